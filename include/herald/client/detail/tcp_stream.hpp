#pragma once

// The plain-TCP ByteStream and the default Connector.

#include <herald/client/connector.hpp>

#include <boost/asio/append.hpp>
#include <boost/asio/connect.hpp>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/container/static_vector.hpp>

#include <algorithm>
#include <memory>
#include <string>
#include <utility>

namespace herald::inline v0::client::detail {

using tcp = net::ip::tcp;

/// Up to 16 buffers of a sequence, held by value (what socket operations copy).
using BufferArray = boost::container::static_vector<net::const_buffer, 16>;

inline BufferArray to_array(std::span<net::const_buffer const> buffers) {
  BufferArray out;
  for (auto const& b : buffers) {
    if (out.size() == out.capacity()) break;  // write_some may write a prefix
    if (b.size() != 0) out.push_back(b);
  }
  return out;
}

/// Resolve and connect `socket` to url's host and port, then call `next(ec)` on the socket's
/// executor. `resolver` and `socket` must outlive the operation (they are the stream's).
template <class Next>
void resolve_and_connect(tcp::resolver& resolver, tcp::socket& socket, Url const& url, Next next) {
  resolver.async_resolve(
      url.host, std::to_string(url.port),
      [&socket, next = std::move(next)](boost::system::error_code ec, tcp::resolver::results_type results) mutable {
        if (ec) return next(ec);
        net::async_connect(socket, results,
                           [&socket, next = std::move(next)](boost::system::error_code err, tcp::endpoint) mutable {
                             if (!err) {
                               boost::system::error_code ignored;
                               socket.set_option(tcp::no_delay(true), ignored);
                             }
                             next(err);
                           });
      });
}

class TcpByteStream final : public ByteStream {
 public:
  explicit TcpByteStream(net::any_io_executor const& ex) : resolver_(ex), socket_(ex) {}

  executor_type get_executor() noexcept override { return socket_.get_executor(); }

  void async_open(Url const& url, OpenHandler handler) override {
    resolve_and_connect(resolver_, socket_, url, [h = std::move(handler)](boost::system::error_code ec) mutable {
      net::dispatch(net::append(std::move(h), ec));
    });
  }

  void async_read_some(net::mutable_buffer buffer, IoHandler handler) override {
    socket_.async_read_some(buffer, std::move(handler));
  }

  void async_write_some(std::span<net::const_buffer const> buffers, IoHandler handler) override {
    socket_.async_write_some(to_array(buffers), std::move(handler));
  }

  void close() noexcept override {
    boost::system::error_code ignored;
    resolver_.cancel();
    socket_.shutdown(tcp::socket::shutdown_both, ignored);
    socket_.close(ignored);
  }

 private:
  tcp::resolver resolver_;
  tcp::socket socket_;
};

class PlainConnector final : public Connector {
 public:
  std::unique_ptr<ByteStream> make(net::any_io_executor const& ex, Url const& url) override {
    if (url.secure()) return nullptr;
    return std::make_unique<TcpByteStream>(ex);
  }
};

}  // namespace herald::client::detail

namespace herald::inline v0::client {

inline std::shared_ptr<Connector> plain_tcp() {
  return std::make_shared<detail::PlainConnector>();
}

}  // namespace herald::client
