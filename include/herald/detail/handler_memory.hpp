#pragma once

#include <herald/config.hpp>

#include <boost/asio/bind_allocator.hpp>

#include <array>
#include <cstddef>
#include <new>
#include <utility>

namespace herald::inline v0::detail {

/** A per-thread cache of freed handler memory, in size classes up to 4 KiB that are malloc's
    own: 16 bytes apart, 8 below a multiple of 16 (what a malloc chunk of that size holds). An
    idle connection keeps its read pending for as long as it lives, and its 104 bytes must not
    take a 128-byte chunk.

    Asio recycles at most two blocks per thread, and none above 1,020 bytes. A fan-out has
    hundreds of operations in flight, and a write through `beast::tcp_stream` takes 1,248 bytes,
    so without this every write and wake-up went to malloc (bench/results/analysis.md). The
    cache holds at most max_cached_bytes per thread; blocks freed on another thread join that
    thread's cache. */
class HandlerCache {
 public:
  static constexpr std::size_t granule = 16;
  static constexpr std::size_t classes = 256;  // up to 4 KiB
  static constexpr std::size_t max_cached_bytes = 1024 * 1024;

  static void* allocate(std::size_t size) {
    auto const c = size_class(size);
    auto& s = state();
    if (c < classes && !s.dead) {
      if (auto* b = s.heads[c]) {
        s.heads[c] = b->next;
        s.bytes -= class_size(c);
        return b;
      }
      return ::operator new(class_size(c));
    }
    return ::operator new(size);
  }

  static void deallocate(void* p, std::size_t size) noexcept {
    auto const c = size_class(size);
    auto& s = state();
    if (c < classes && !s.dead && s.bytes + class_size(c) <= max_cached_bytes) {
      reaper();
      s.heads[c] = ::new (p) Block{s.heads[c]};
      s.bytes += class_size(c);
      return;
    }
    ::operator delete(p);
  }

 private:
  struct Block {
    Block* next;
  };

  // Trivially destructible, so it can be used at any point of thread exit; the Reaper frees
  // the blocks when the thread ends, and later frees bypass the cache.
  struct State {
    std::array<Block*, classes> heads;
    std::size_t bytes;
    bool dead;
  };

  struct Reaper {
    ~Reaper() {
      auto& s = state();
      s.dead = true;
      for (auto*& head : s.heads)
        while (head) ::operator delete(std::exchange(head, head->next));
      s.bytes = 0;
    }
  };

  // Class c holds up to class_size(c) bytes: 8, 24, 40, ... (never less than a Block).
  static std::size_t size_class(std::size_t size) noexcept { return (size + 7) / granule; }
  static std::size_t class_size(std::size_t c) noexcept { return (c + 1) * granule - 8; }

  static State& state() noexcept {
    thread_local State s{};
    return s;
  }

  static void reaper() noexcept {
    thread_local Reaper r;
    (void)r;
  }
};

/** An object of T held only while it is in use, taken from a per-thread free list: the state
    a connection needs while it writes (gathered buffers, the events they point into) is held
    by the connections writing now, not by every idle one, and it keeps its capacity from one
    write to the next as a per-connection copy would. T::recycle() empties it for its next user
    and returns false when it holds too much to keep. At most max_cached are kept per thread. */
template <class T>
class Pooled {
 public:
  static constexpr std::size_t max_cached = 1024;

  Pooled() noexcept = default;
  Pooled(Pooled const&) = delete;
  Pooled& operator=(Pooled const&) = delete;
  ~Pooled() { release(); }

  T& get() {
    if (!p_) p_ = take();
    return *p_;
  }
  T* operator->() const noexcept { return p_; }
  explicit operator bool() const noexcept { return p_ != nullptr; }
  void release() noexcept {
    if (p_) give(std::exchange(p_, nullptr));
  }

 private:
  // As HandlerCache's: trivially destructible, the Reaper frees what is kept at thread exit.
  struct State {
    std::array<T*, max_cached> free;
    std::size_t n;
    bool dead;
  };

  struct Reaper {
    ~Reaper() {
      auto& s = state();
      s.dead = true;
      while (s.n != 0) delete s.free[--s.n];
    }
  };

  static State& state() noexcept {
    thread_local State s{};
    return s;
  }

  static T* take() {
    auto& s = state();
    if (s.n != 0) return s.free[--s.n];
    return new T();
  }

  static void give(T* p) noexcept {
    auto& s = state();
    if (!s.dead && s.n < max_cached && p->recycle()) {
      thread_local Reaper r;
      (void)r;
      s.free[s.n++] = p;
      return;
    }
    delete p;
  }

  T* p_ = nullptr;
};

/** The allocator herald binds to its hot completion handlers (net::bind_allocator), so that
    the operations carrying them take their memory from HandlerCache. */
template <class T>
class HandlerAllocator {
 public:
  using value_type = T;

  HandlerAllocator() noexcept = default;
  template <class U>
  HandlerAllocator(HandlerAllocator<U> const&) noexcept {}

  T* allocate(std::size_t n) {
    static_assert(alignof(T) <= __STDCPP_DEFAULT_NEW_ALIGNMENT__, "over-aligned handler");
    return static_cast<T*>(HandlerCache::allocate(n * sizeof(T)));
  }
  void deallocate(T* p, std::size_t n) noexcept { HandlerCache::deallocate(p, n * sizeof(T)); }

  template <class U>
  bool operator==(HandlerAllocator<U> const&) const noexcept {
    return true;
  }
};

/// `handler`, with its operations' memory from HandlerCache.
template <class Handler>
auto cached(Handler&& handler) {
  return net::bind_allocator(HandlerAllocator<void>{}, std::forward<Handler>(handler));
}

}  // namespace herald::detail
