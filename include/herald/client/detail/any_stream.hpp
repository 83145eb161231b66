#pragma once

// AnyStream: a ByteStream as a value that models Asio's AsyncReadStream/AsyncWriteStream, so
// Beast's HTTP and WebSocket code runs over plain TCP and TLS alike without templates in the
// clients (and without OpenSSL in the core headers).

#include <herald/client/connector.hpp>

#include <boost/asio/append.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/buffer.hpp>
#include <boost/asio/post.hpp>
#include <boost/beast/core/role.hpp>

#include <array>
#include <cstddef>
#include <memory>
#include <span>
#include <utility>

namespace herald::inline v0::client::detail {

class AnyStream {
 public:
  using executor_type = net::any_io_executor;

  explicit AnyStream(std::unique_ptr<ByteStream> stream) : stream_(std::move(stream)) {}
  AnyStream(AnyStream&&) noexcept = default;
  AnyStream& operator=(AnyStream&&) noexcept = default;

  executor_type get_executor() const noexcept { return stream_->get_executor(); }
  ByteStream& impl() const noexcept { return *stream_; }

  template <class MutableBufferSequence, class Token>
  auto async_read_some(MutableBufferSequence const& buffers, Token&& token) {
    net::mutable_buffer first;
    for (auto it = net::buffer_sequence_begin(buffers); it != net::buffer_sequence_end(buffers); ++it) {
      net::mutable_buffer b(*it);
      if (b.size() != 0) {
        first = b;
        break;
      }
    }
    return net::async_initiate<Token, void(boost::system::error_code, std::size_t)>(
        ReadInit{stream_.get()}, token, first);
  }

  template <class ConstBufferSequence, class Token>
  auto async_write_some(ConstBufferSequence const& buffers, Token&& token) {
    std::array<net::const_buffer, 16> array;
    std::size_t n = 0;
    for (auto it = net::buffer_sequence_begin(buffers); it != net::buffer_sequence_end(buffers) && n < array.size(); ++it) {
      net::const_buffer b(*it);
      if (b.size() != 0) array[n++] = b;
    }
    return net::async_initiate<Token, void(boost::system::error_code, std::size_t)>(
        WriteInit{stream_.get()}, token, std::span<net::const_buffer const>(array.data(), n));
  }

 private:
  struct ReadInit {
    ByteStream* stream;
    executor_type get_executor() const noexcept { return stream->get_executor(); }
    template <class Handler>
    void operator()(Handler&& handler, net::mutable_buffer buffer) const {
      stream->async_read_some(buffer, ByteStream::IoHandler(std::forward<Handler>(handler)));
    }
  };
  struct WriteInit {
    ByteStream* stream;
    executor_type get_executor() const noexcept { return stream->get_executor(); }
    template <class Handler>
    void operator()(Handler&& handler, std::span<net::const_buffer const> buffers) const {
      stream->async_write_some(buffers, ByteStream::IoHandler(std::forward<Handler>(handler)));
    }
  };

  std::unique_ptr<ByteStream> stream_;
};

// Beast customization points, found by argument-dependent lookup: how a WebSocket stream over
// an AnyStream closes its transport on timeout and after the closing handshake. The client
// has said goodbye on the WebSocket level already; it does not wait for the TLS close_notify.
inline void beast_close_socket(AnyStream& s) { s.impl().close(); }

inline void teardown(boost::beast::role_type, AnyStream& s, boost::system::error_code& ec) {
  s.impl().close();
  ec = {};
}

template <class TeardownHandler>
void async_teardown(boost::beast::role_type, AnyStream& s, TeardownHandler&& handler) {
  s.impl().close();
  net::post(s.get_executor(), net::append(std::forward<TeardownHandler>(handler), boost::system::error_code{}));
}

}  // namespace herald::client::detail
