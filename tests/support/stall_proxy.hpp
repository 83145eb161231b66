#pragma once

// A TCP proxy that holds data back the way broken corporate proxies do, for the proof-of-delivery
// tests: it tells WebSocket upgrades, SSE requests (Accept: text/event-stream) and plain
// requests apart by the client's first request, and per kind it may hold back the server's
// whole answer (headers never arrive), or let the headers through (a 101, a 200) and hold back
// everything after them, in both directions. stall() makes every open connection go silent
// mid-way, both ways. Held bytes are read and dropped (a proxy buffering a response that never
// ends), so the server sees a healthy reader. Runs on the test's io_context like everything else.

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/write.hpp>

#include <array>
#include <cstddef>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "loopback.hpp"

namespace test {

namespace net = boost::asio;
using tcp = net::ip::tcp;

class StallProxy {
 public:
  /// What a connection's first request was.
  enum class Kind { websocket, sse, plain };
  /// What of the server's answer the proxy holds back.
  enum class Hold {
    /// Nothing: everything passes.
    nothing,
    /// Everything: not even the status line arrives.
    response,
    /// What follows the response headers (both ways): the upgrade or the stream "opens", then nothing.
    body,
  };

  StallProxy(net::io_context& ioc, tcp::endpoint upstream) : state_(std::make_shared<State>(ioc)) {
    state_->upstream = upstream;
    listen_loopback(state_->acceptor);
    accept(state_);
  }
  StallProxy(StallProxy const&) = delete;
  StallProxy& operator=(StallProxy const&) = delete;
  ~StallProxy() {
    boost::system::error_code ignored;
    state_->acceptor.close(ignored);
    for (auto& w : state_->pairs)
      if (auto p = w.lock()) p->close();
  }

  tcp::endpoint endpoint() const { return state_->acceptor.local_endpoint(); }

  /// Connections of `kind` whose first request arrives from now on are held so.
  void hold(Kind kind, Hold what) { state_->holds[kind] = what; }

  /// From now on nothing passes on any open connection, either way (they stay open).
  void stall() {
    for (auto& w : state_->pairs)
      if (auto p = w.lock()) p->stalled = true;
  }

  /// Connections whose first request was of `kind`.
  std::size_t connections(Kind kind) const {
    auto const it = state_->counts.find(kind);
    return it == state_->counts.end() ? 0 : it->second;
  }

 private:
  struct Pair;

  struct State {
    explicit State(net::io_context& ioc) : ioc(ioc), acceptor(ioc) {}
    net::io_context& ioc;
    tcp::acceptor acceptor;
    tcp::endpoint upstream;
    std::map<Kind, Hold> holds;
    std::map<Kind, std::size_t> counts;
    std::vector<std::weak_ptr<Pair>> pairs;
  };

  struct Pair {
    Pair(net::io_context& ioc) : down(ioc), up(ioc) {}
    tcp::socket down;
    tcp::socket up;
    std::array<char, 8192> from_server{};
    std::array<char, 8192> from_client{};
    std::string request;   // the first request's head, until it is complete
    std::string response;  // the first answer's head, until it is complete
    bool classified = false;
    bool headers_passed = false;  // the answer's head went through: Hold::body holds from here
    bool stalled = false;
    bool closed = false;
    Hold hold = Hold::nothing;

    void close() {
      if (closed) return;
      closed = true;
      boost::system::error_code ignored;
      down.close(ignored);
      up.close(ignored);
    }

    /// Whether bytes may pass now, from the client or (`answer`) from the server.
    bool passing(bool answer) const {
      if (stalled || (answer && hold == Hold::response)) return false;
      return hold != Hold::body || !headers_passed;
    }
  };

  static bool has(std::string_view head, std::string_view needle) {
    auto lower = std::string(head);
    for (char& c : lower) c = static_cast<char>(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
    return lower.find(needle) != std::string::npos;
  }

  static void accept(std::shared_ptr<State> const& s) {
    auto p = std::make_shared<Pair>(s->ioc);
    s->acceptor.async_accept(p->down, [s, p](boost::system::error_code ec) {
      if (ec) return;  // closed
      std::erase_if(s->pairs, [](auto const& w) { return w.expired(); });
      s->pairs.push_back(p);
      p->up.async_connect(s->upstream, [s, p](boost::system::error_code ec) {
        if (ec) return p->close();
        from_client(s, p);
        from_server(s, p);
      });
      accept(s);
    });
  }

  static void from_client(std::shared_ptr<State> const& s, std::shared_ptr<Pair> const& p) {
    p->down.async_read_some(net::buffer(p->from_client), [s, p](boost::system::error_code ec, std::size_t n) {
      if (ec || p->closed) return p->close();
      if (!p->classified) {
        p->request.append(p->from_client.data(), n);
        if (p->request.find("\r\n\r\n") != std::string::npos) {
          p->classified = true;
          auto const kind = has(p->request, "upgrade: websocket")          ? Kind::websocket
                            : has(p->request, "accept: text/event-stream") ? Kind::sse
                                                                            : Kind::plain;
          ++s->counts[kind];
          if (auto const it = s->holds.find(kind); it != s->holds.end()) p->hold = it->second;
        }
      }
      if (!p->passing(false)) return from_client(s, p);
      net::async_write(p->up, net::buffer(p->from_client.data(), n), [s, p](boost::system::error_code ec, std::size_t) {
        if (ec || p->closed) return p->close();
        from_client(s, p);
      });
    });
  }

  static void from_server(std::shared_ptr<State> const& s, std::shared_ptr<Pair> const& p) {
    p->up.async_read_some(net::buffer(p->from_server), [s, p](boost::system::error_code ec, std::size_t n) {
      if (ec || p->closed) return p->close();
      if (!p->passing(true)) return from_server(s, p);
      std::size_t pass = n;
      if (p->hold == Hold::body) {
        // Up to the end of the answer's head, not a byte beyond.
        auto const before = p->response.size();
        p->response.append(p->from_server.data(), n);
        if (auto const end = p->response.find("\r\n\r\n"); end != std::string::npos) {
          pass = end + 4 - before;
          p->headers_passed = true;
        }
      }
      net::async_write(p->down, net::buffer(p->from_server.data(), pass), [s, p](boost::system::error_code ec, std::size_t) {
        if (ec || p->closed) return p->close();
        from_server(s, p);
      });
    });
  }

  std::shared_ptr<State> state_;
};

}  // namespace test
