#pragma once

// A TCP proxy for chaos tests: it forwards every connection to an upstream endpoint and cuts it
// after a random number of bytes from the server (so mid-event, mid-frame and mid-header cuts
// all happen), with a seeded RNG so a failing run can be replayed. Runs on the test's
// io_context like everything else.

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/write.hpp>

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <random>
#include <vector>

#include "loopback.hpp"

namespace test {

namespace net = boost::asio;
using tcp = net::ip::tcp;

class ChaosProxy {
 public:
  ChaosProxy(net::io_context& ioc, std::uint64_t seed) : state_(std::make_shared<State>(ioc, seed)) {
    listen_loopback(state_->acceptor);
    accept(state_);
  }
  ChaosProxy(ChaosProxy const&) = delete;
  ChaosProxy& operator=(ChaosProxy const&) = delete;
  ~ChaosProxy() {
    boost::system::error_code ignored;
    state_->acceptor.close(ignored);
    close_all();
  }

  tcp::endpoint endpoint() const { return state_->acceptor.local_endpoint(); }

  /// Where new connections go (existing ones keep their upstream).
  void upstream(tcp::endpoint ep) { state_->upstream = ep; }

  /// Each connection is cut after a uniform random number of server bytes in [min, max];
  /// max == 0 turns cutting off for connections accepted from now on.
  void budget(std::size_t min, std::size_t max) {
    state_->min_budget = min;
    state_->max_budget = max;
  }

  /// Close every connection now.
  void close_all() {
    for (auto& w : state_->pairs)
      if (auto p = w.lock()) p->close();
    state_->pairs.clear();
  }

  /// Connections cut by the byte budget.
  std::size_t cuts() const { return state_->cuts; }
  /// Connections accepted.
  std::size_t connections() const { return state_->accepted; }

 private:
  struct Pair;

  struct State {
    State(net::io_context& ioc, std::uint64_t seed) : ioc(ioc), acceptor(ioc), rng(seed) {}
    net::io_context& ioc;
    tcp::acceptor acceptor;
    tcp::endpoint upstream;
    std::mt19937_64 rng;
    std::size_t min_budget = 0;
    std::size_t max_budget = 0;
    std::size_t cuts = 0;
    std::size_t accepted = 0;
    std::vector<std::weak_ptr<Pair>> pairs;
  };

  struct Pair : std::enable_shared_from_this<Pair> {
    Pair(net::io_context& ioc, State& s) : down(ioc), up(ioc), state(s) {}
    tcp::socket down;
    tcp::socket up;
    std::array<char, 8192> from_server{};
    std::array<char, 8192> from_client{};
    std::size_t budget = 0;  // 0: unlimited
    bool closed = false;
    State& state;

    void close() {
      if (closed) return;
      closed = true;
      boost::system::error_code ignored;
      down.close(ignored);
      up.close(ignored);
    }
  };

  static void accept(std::shared_ptr<State> const& s) {
    auto p = std::make_shared<Pair>(s->ioc, *s);
    s->acceptor.async_accept(p->down, [s, p](boost::system::error_code ec) {
      if (ec) return;  // closed
      ++s->accepted;
      if (s->max_budget != 0) {
        std::uniform_int_distribution<std::size_t> d(s->min_budget == 0 ? 1 : s->min_budget, s->max_budget);
        p->budget = d(s->rng);
      }
      std::erase_if(s->pairs, [](auto const& w) { return w.expired(); });
      s->pairs.push_back(p);
      p->up.async_connect(s->upstream, [s, p](boost::system::error_code ec) {
        if (ec) return p->close();
        pump(s, p, p->up, p->down, p->from_server, true);
        pump(s, p, p->down, p->up, p->from_client, false);
      });
      accept(s);
    });
  }

  static void pump(std::shared_ptr<State> const& s, std::shared_ptr<Pair> const& p, tcp::socket& from,
                   tcp::socket& to, std::array<char, 8192>& buf, bool limited) {
    from.async_read_some(net::buffer(buf), [s, p, &from, &to, &buf, limited](boost::system::error_code ec, std::size_t n) {
      if (ec || p->closed) return p->close();
      bool cut = false;
      if (limited && p->budget != 0) {
        if (n >= p->budget) {
          n = p->budget;
          cut = true;
        } else {
          p->budget -= n;
        }
      }
      net::async_write(to, net::buffer(buf.data(), n), [s, p, &from, &to, &buf, limited, cut](boost::system::error_code ec, std::size_t) {
        if (cut) ++s->cuts;
        if (ec || cut || p->closed) return p->close();
        pump(s, p, from, to, buf, limited);
      });
    });
  }

  std::shared_ptr<State> state_;
};

}  // namespace test
