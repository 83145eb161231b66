#pragma once

#include <herald/config.hpp>

#include <boost/asio/bind_allocator.hpp>

#include <array>
#include <cstddef>
#include <new>
#include <utility>

namespace herald::inline v0::detail {

/** A per-thread cache of freed handler memory, in 64-byte size classes up to 4 KiB.

    Asio recycles at most two blocks per thread, and none above 1,020 bytes. A fan-out has
    hundreds of operations in flight, and a write through `beast::tcp_stream` takes 1,248 bytes,
    so without this every write and wake-up went to malloc (bench/results/analysis.md). The
    cache holds at most max_cached_bytes per thread; blocks freed on another thread join that
    thread's cache. */
class HandlerCache {
 public:
  static constexpr std::size_t granule = 64;
  static constexpr std::size_t classes = 64;  // up to 4 KiB
  static constexpr std::size_t max_cached_bytes = 1024 * 1024;

  static void* allocate(std::size_t size) {
    auto const c = size_class(size);
    auto& s = state();
    if (c < classes && !s.dead) {
      if (auto* b = s.heads[c]) {
        s.heads[c] = b->next;
        s.bytes -= (c + 1) * granule;
        return b;
      }
      return ::operator new((c + 1) * granule);
    }
    return ::operator new(size);
  }

  static void deallocate(void* p, std::size_t size) noexcept {
    auto const c = size_class(size);
    auto& s = state();
    if (c < classes && !s.dead && s.bytes + (c + 1) * granule <= max_cached_bytes) {
      reaper();
      s.heads[c] = ::new (p) Block{s.heads[c]};
      s.bytes += (c + 1) * granule;
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

  static std::size_t size_class(std::size_t size) noexcept { return size == 0 ? 0 : (size - 1) / granule; }

  static State& state() noexcept {
    thread_local State s{};
    return s;
  }

  static void reaper() noexcept {
    thread_local Reaper r;
    (void)r;
  }
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
