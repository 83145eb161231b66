#pragma once

#include <herald/config.hpp>

#include <boost/asio/buffer.hpp>
#include <boost/system/error_code.hpp>

#include <cstddef>
#include <vector>

namespace herald::inline v0::detail {

/** The buffers of a vector, as a buffer sequence that does not own them. Asio's write
    operations keep their buffer sequence by value, so passing the vector itself copies it
    (a heap allocation) on every write. The vector must outlive the write and stay unchanged. */
class BufferView {
 public:
  using value_type = net::const_buffer;
  using const_iterator = net::const_buffer const*;

  explicit BufferView(std::vector<net::const_buffer> const& buffers) noexcept
      : begin_(buffers.data()), end_(buffers.data() + buffers.size()) {}

  const_iterator begin() const noexcept { return begin_; }
  const_iterator end() const noexcept { return end_; }

 private:
  const_iterator begin_;
  const_iterator end_;
};

/** A write tried at once, as one non-blocking send (`socket` is in non-blocking mode), before
    any asynchronous operation: on an uncongested connection the kernel takes it all, and the
    write then costs no operation, no reactor registration and no completion handler through
    the scheduler. Returns whether everything was sent; otherwise what was sent is dropped from
    the front of `buffers`, which hold the rest for the asynchronous write, and `sent` says how
    much that was. An error is left for the asynchronous write to report.

    The caller completes a write that returned true itself, and a completion that writes again
    recurses: SyncDepth bounds that. */
template <class Socket>
bool send_now(Socket& socket, std::vector<net::const_buffer>& buffers, std::size_t& sent) {
  boost::system::error_code ec;
  sent = socket.write_some(BufferView(buffers), ec);
  std::size_t left = sent;
  auto it = buffers.begin();
  while (it != buffers.end() && left >= it->size()) left -= it++->size();
  if (it == buffers.end()) return true;
  *it += left;
  buffers.erase(buffers.begin(), it);
  return false;
}

template <class Socket>
bool send_now(Socket& socket, net::const_buffer& buffer, std::size_t& sent) {
  boost::system::error_code ec;
  sent = socket.write_some(buffer, ec);
  buffer += sent;
  return buffer.size() == 0;
}

/** How many writes completed at once are nested on this thread's stack (a completion drains
    again, and its write may complete at once too). Past a few, the write goes asynchronous, so
    a long backlog is written through the loop rather than down the stack. */
class SyncDepth {
 public:
  static bool room() noexcept { return depth() < 4; }
  SyncDepth() noexcept { ++depth(); }
  ~SyncDepth() { --depth(); }
  SyncDepth(SyncDepth const&) = delete;
  SyncDepth& operator=(SyncDepth const&) = delete;

 private:
  static unsigned& depth() noexcept {
    thread_local unsigned d = 0;
    return d;
  }
};

}  // namespace herald::detail
