#pragma once

// A raw-socket HTTP client for tests: writes exact request bytes and collects every byte the
// server sends, so tests check the wire itself rather than a library's view of it.

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/write.hpp>

#include <array>
#include <memory>
#include <string>
#include <string_view>

namespace test {

namespace net = boost::asio;
using tcp = net::ip::tcp;

class RawClient {
 public:
  explicit RawClient(net::io_context& ioc) : state_(std::make_shared<State>(ioc)) {}

  /// Shrink the receive buffer (before connect) to make a slow consumer.
  void receive_buffer(int bytes) {
    state_->socket.open(tcp::v4());
    state_->socket.set_option(net::socket_base::receive_buffer_size(bytes));
  }

  /// Connect, send `request` verbatim, and start collecting the response.
  void request(tcp::endpoint ep, std::string request, bool read = true) {
    auto s = state_;
    s->out = std::move(request);
    s->socket.async_connect(ep, [s, read](boost::system::error_code ec) {
      if (ec) {
        s->error = ec;
        s->closed = true;
        return;
      }
      s->connected = true;
      net::async_write(s->socket, net::buffer(s->out), [s](boost::system::error_code ec, std::size_t) {
        if (ec) s->error = ec;
      });
      if (read) start_read(s);
    });
  }

  /// A GET with the given extra header lines (each ending in \r\n).
  void get(tcp::endpoint ep, std::string_view target, std::string_view headers = {}, bool read = true) {
    request(ep,
            "GET " + std::string(target) + " HTTP/1.1\r\nHost: 127.0.0.1:" +
                std::to_string(ep.port()) + "\r\n" + std::string(headers) + "\r\n",
            read);
  }

  /// Start collecting what the server sends (after a request made with `read` false).
  void start_reading() { start_read(state_); }

  void send(std::string bytes) {
    auto s = state_;
    auto buf = std::make_shared<std::string>(std::move(bytes));
    net::async_write(s->socket, net::buffer(*buf), [s, buf](boost::system::error_code, std::size_t) {});
  }

  void close() {
    boost::system::error_code ignored;
    state_->socket.close(ignored);
  }

  std::string const& data() const { return state_->in; }
  bool connected() const { return state_->connected; }
  /// The server closed the connection (or it failed).
  bool closed() const { return state_->closed; }
  boost::system::error_code error() const { return state_->error; }

  /// Status code of the response, 0 until the status line arrived.
  int status() const {
    auto const& d = state_->in;
    if (d.size() < 12 || d.compare(0, 5, "HTTP/") != 0) return 0;
    return std::stoi(d.substr(9, 3));
  }
  bool has_headers() const { return state_->in.find("\r\n\r\n") != std::string::npos; }
  std::string headers() const { return state_->in.substr(0, state_->in.find("\r\n\r\n") + 2); }
  std::string body() const {
    auto const p = state_->in.find("\r\n\r\n");
    return p == std::string::npos ? std::string() : state_->in.substr(p + 4);
  }
  /// The value of header `name` (case-sensitive match on the name as sent), or "".
  std::string header(std::string_view name) const {
    auto const h = headers();
    auto const key = "\r\n" + std::string(name) + ": ";
    auto p = h.find(key);
    if (p == std::string::npos) return {};
    p += key.size();
    return h.substr(p, h.find("\r\n", p) - p);
  }

 private:
  struct State {
    explicit State(net::io_context& ioc) : socket(ioc) {}
    tcp::socket socket;
    std::string out;
    std::string in;
    std::array<char, 4096> buf{};
    bool connected = false;
    bool closed = false;
    boost::system::error_code error;
  };

  static void start_read(std::shared_ptr<State> s) {
    s->socket.async_read_some(net::buffer(s->buf), [s](boost::system::error_code ec, std::size_t n) {
      s->in.append(s->buf.data(), n);
      if (ec) {
        if (ec != net::error::eof) s->error = ec;
        s->closed = true;
        return;
      }
      start_read(s);
    });
  }

  std::shared_ptr<State> state_;
};

}  // namespace test
