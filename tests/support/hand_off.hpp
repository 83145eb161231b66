#pragma once

// An application's own HTTP server in front of herald: it accepts on a strand per connection,
// reads each request with Beast and hands the stream and the request to a channel
// (Channel::accept), as an application that embeds herald does.

#include <herald/herald.hpp>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/strand.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/read.hpp>

#include <chrono>
#include <functional>
#include <memory>

namespace test {

struct HandOffServer {
  /// One accepted connection, its request read.
  struct Conn {
    explicit Conn(boost::asio::ip::tcp::socket s) : stream(std::move(s)) {}
    boost::beast::tcp_stream stream;
    boost::beast::flat_buffer buffer;
    herald::Request req;
  };

  /** `hand_off` is called with each request read. `send_buffer` (> 0) shrinks the socket's
      send buffer; `request_deadline` (> 0) is the application's own deadline for reading a
      request, left on the stream it hands over. */
  HandOffServer(boost::asio::io_context& ioc, std::function<void(Conn&)> hand_off, int send_buffer = 0,
                std::chrono::milliseconds request_deadline = {})
      : acceptor(ioc, {boost::asio::ip::make_address("127.0.0.1"), 0}), ep(acceptor.local_endpoint()) {
    accept_one = [this, &ioc, hand_off = std::move(hand_off), send_buffer, request_deadline] {
      acceptor.async_accept(boost::asio::make_strand(ioc), [&, this](boost::system::error_code ec,
                                                                      boost::asio::ip::tcp::socket s) {
        if (ec) return;
        if (send_buffer > 0) s.set_option(boost::asio::socket_base::send_buffer_size(send_buffer));
        auto conn = std::make_shared<Conn>(std::move(s));
        if (request_deadline.count() > 0) conn->stream.expires_after(request_deadline);
        boost::beast::http::async_read(conn->stream, conn->buffer, conn->req,
                                       [&, conn](boost::system::error_code ec, std::size_t) {
                                         if (ec) return;
                                         hand_off(*conn);
                                         ++handed_over;
                                       });
        accept_one();
      });
    };
    accept_one();
  }

  boost::asio::ip::tcp::acceptor acceptor;
  boost::asio::ip::tcp::endpoint ep;
  int handed_over = 0;
  std::function<void()> accept_one;
};

}  // namespace test
