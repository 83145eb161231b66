#pragma once

#include <herald/config.hpp>

#include <boost/asio/buffer.hpp>

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

}  // namespace herald::detail
