#pragma once

// A WebSocket client for tests, on Beast's client role: connect + handshake, then every frame
// the server sends is collected (text and binary, in order), along with the close code the
// server sent. Everything runs on the test's io_context; tests wait with run_until.

#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core/buffers_to_string.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/field.hpp>
#include <boost/beast/websocket/option.hpp>
#include <boost/beast/websocket/rfc6455.hpp>
#include <boost/beast/websocket/stream.hpp>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace test {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace websocket = boost::beast::websocket;
using tcp = net::ip::tcp;

/// One final, masked client frame (payload under 126 bytes), as RFC 6455 §5.2 lays it out.
inline std::string client_frame(unsigned char opcode, std::string_view payload) {
  std::string f;
  f += static_cast<char>(0x80 | opcode);
  f += static_cast<char>(0x80 | (payload.size() & 0x7f));
  unsigned char const mask[4] = {0x12, 0x34, 0x56, 0x78};
  for (unsigned char m : mask) f += static_cast<char>(m);
  for (std::size_t i = 0; i < payload.size(); ++i) f += static_cast<char>(payload[i] ^ mask[i % 4]);
  return f;
}

struct WsFrame {
  bool binary = false;
  std::string data;
};

class WsClient {
 public:
  explicit WsClient(net::io_context& ioc) : s_(std::make_shared<State>(ioc)) {}

  /// Extra request header for the handshake (Origin, Authorization, Sec-WebSocket-Protocol).
  WsClient& header(std::string name, std::string value) {
    s_->headers.emplace_back(std::move(name), std::move(value));
    return *this;
  }

  /// Offer permessage-deflate (before connect).
  WsClient& deflate() {
    websocket::permessage_deflate pmd;
    pmd.client_enable = true;
    s_->ws.set_option(pmd);
    return *this;
  }

  /// Shrink the receive buffer (before connect) to make a slow consumer.
  WsClient& receive_buffer(int bytes) {
    auto& sock = beast::get_lowest_layer(s_->ws).socket();
    sock.open(tcp::v4());
    sock.set_option(net::socket_base::receive_buffer_size(bytes));
    return *this;
  }

  /// Connect and handshake; with `read`, frames are collected from then on.
  void connect(tcp::endpoint ep, std::string target, bool read = true) {
    auto s = s_;
    s->read_on_open = read;
    s->target = std::move(target);
    s->host = "127.0.0.1:" + std::to_string(ep.port());
    // The stream owns these callbacks: they must not own the state back (a leak cycle).
    s->ws.set_option(websocket::stream_base::decorator([headers = s->headers](websocket::request_type& req) {
      for (auto const& [name, value] : headers) req.set(name, value);
    }));
    s->ws.control_callback([raw = s.get()](websocket::frame_type kind, beast::string_view) {
      if (kind == websocket::frame_type::ping) ++raw->pings;
      if (kind == websocket::frame_type::pong) ++raw->pongs;
    });
    beast::get_lowest_layer(s->ws).async_connect(ep, [s](beast::error_code ec) {
      if (ec) return fail(s, ec);
      s->ws.async_handshake(s->response, s->host, s->target, [s](beast::error_code ec) {
        if (ec) return fail(s, ec);
        s->open = true;
        if (s->read_on_open) start_read(s);
        write_next(s);
      });
    });
  }

  /// Begin collecting frames (after connect(..., false)).
  void start_reading() {
    if (!s_->reading && !s_->ended) start_read(s_);
  }

  void send(std::string text) { queue(std::move(text), false); }
  void send(char const* text) { queue(text, false); }
  void send(nlohmann::json const& j) { queue(j.dump(), false); }
  void send_binary(std::string bytes) { queue(std::move(bytes), true); }

  /// Start the closing handshake with `code`.
  void close(websocket::close_code code = websocket::close_code::normal) {
    auto s = s_;
    s->ws.async_close(code, [s](beast::error_code) { s->closed_sent = true; });
  }

  /// Send a ping (one at a time: wait for pings_sent() before the next); see pongs().
  void ping() {
    auto s = s_;
    s->ws.async_ping({}, [s](beast::error_code ec) {
      if (!ec) ++s->pings_sent;
    });
  }

  /// Drop the TCP connection without a close frame.
  void drop() {
    beast::error_code ignored;
    beast::get_lowest_layer(s_->ws).socket().close(ignored);
  }

  bool open() const { return s_->open; }
  /// Connect or handshake failed (e.g. the server answered with an HTTP error).
  bool failed() const { return s_->failed; }
  /// The read loop ended: the server closed (see close_code()) or the connection failed.
  bool ended() const { return s_->ended; }
  beast::error_code error() const { return s_->error; }
  websocket::response_type const& response() const { return s_->response; }
  int status() const { return static_cast<int>(s_->response.result_int()); }
  /// The close code the server sent (0 when none was received).
  std::uint16_t close_code() const { return s_->close_code; }
  std::string const& close_reason() const { return s_->close_reason; }
  int pings() const { return s_->pings; }
  int pings_sent() const { return s_->pings_sent; }
  int pongs() const { return s_->pongs; }
  websocket::stream<beast::tcp_stream>& stream() { return s_->ws; }

  std::vector<WsFrame> const& frames() const { return s_->frames; }
  std::size_t count() const { return s_->frames.size(); }

  /// Text frame `i` as JSON (discarded when not JSON).
  nlohmann::json json(std::size_t i) const {
    return nlohmann::json::parse(s_->frames.at(i).data, nullptr, false);
  }
  /// Every text frame as JSON, in order.
  std::vector<nlohmann::json> texts() const {
    std::vector<nlohmann::json> out;
    for (auto const& f : s_->frames)
      if (!f.binary) out.push_back(nlohmann::json::parse(f.data, nullptr, false));
    return out;
  }
  /// Ids of every event envelope received (text frames with an "id"), in order.
  std::vector<std::uint64_t> const& ids() const { return s_->ids; }
  bool saw_id(std::uint64_t id) const {
    // Ids only grow on one connection's stream of one hub, but replays of several topics need
    // not: search from the back, where a waited-for id usually is.
    return std::find(s_->ids.rbegin(), s_->ids.rend(), id) != s_->ids.rend();
  }
  /// Whether a text frame with `key` (e.g. "subscribed", "error") has arrived, `n` times.
  std::size_t count_with(std::string_view key) const {
    std::size_t n = 0;
    for (auto const& j : texts())
      if (j.is_object() && j.contains(key)) ++n;
    return n;
  }

 private:
  struct State {
    explicit State(net::io_context& ioc) : ws(ioc) {}
    websocket::stream<beast::tcp_stream> ws;
    std::vector<std::pair<std::string, std::string>> headers;
    std::string host;
    std::string target;
    websocket::response_type response;
    beast::flat_buffer buffer;
    std::vector<WsFrame> frames;
    std::vector<std::uint64_t> ids;  // parsed once per frame, so waits stay cheap
    std::deque<WsFrame> out;
    bool writing = false;
    bool read_on_open = true;
    bool reading = false;
    bool open = false;
    bool failed = false;
    bool ended = false;
    bool closed_sent = false;
    int pings = 0;
    int pings_sent = 0;
    int pongs = 0;
    std::uint16_t close_code = 0;
    std::string close_reason;
    beast::error_code error;
  };

  static void fail(std::shared_ptr<State> const& s, beast::error_code ec) {
    s->error = ec;
    s->failed = true;
    s->ended = true;
  }

  static void start_read(std::shared_ptr<State> s) {
    s->reading = true;
    s->ws.async_read(s->buffer, [s](beast::error_code ec, std::size_t) {
      if (ec) {
        s->error = ec;
        s->ended = true;
        s->close_code = s->ws.reason().code;
        s->close_reason = std::string(s->ws.reason().reason.data(), s->ws.reason().reason.size());
        return;
      }
      s->frames.push_back({s->ws.got_binary(), beast::buffers_to_string(s->buffer.data())});
      if (!s->frames.back().binary) {
        auto const j = nlohmann::json::parse(s->frames.back().data, nullptr, false);
        if (j.is_object() && j.contains("id") && j["id"].is_number_unsigned()) s->ids.push_back(j["id"].get<std::uint64_t>());
      }
      s->buffer.consume(s->buffer.size());
      start_read(s);
    });
  }

  void queue(std::string data, bool binary) {
    s_->out.push_back({binary, std::move(data)});
    if (s_->open) write_next(s_);
  }

  static void write_next(std::shared_ptr<State> s) {
    if (s->writing || s->out.empty() || s->ended) return;
    s->writing = true;
    s->ws.binary(s->out.front().binary);
    s->ws.async_write(net::buffer(s->out.front().data), [s](beast::error_code ec, std::size_t) {
      s->writing = false;
      s->out.pop_front();
      if (ec) return;
      write_next(s);
    });
  }

  std::shared_ptr<State> s_;
};

}  // namespace test
