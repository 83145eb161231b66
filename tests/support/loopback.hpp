#pragma once

// Deterministic loopback helpers: everything runs on the test thread's io_context, and tests
// wait for conditions with deadlines instead of sleeping.

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>

#include <chrono>

namespace test {

namespace net = boost::asio;

/// Run `ioc` until `pred()` holds or `deadline` passes; returns pred(). Deadlines are generous
/// and never reached in a passing run.
template <class Pred>
bool run_until(net::io_context& ioc, Pred&& pred,
               std::chrono::milliseconds deadline = std::chrono::seconds(10)) {
  auto const end = std::chrono::steady_clock::now() + deadline;
  while (!pred()) {
    if (std::chrono::steady_clock::now() >= end) return false;
    if (ioc.stopped()) ioc.restart();
    ioc.run_one_for(std::chrono::milliseconds(5));
  }
  return true;
}

/// Open `a` on 127.0.0.1 and a free port, listening (the test proxies' front door).
inline void listen_loopback(net::ip::tcp::acceptor& a) {
  net::ip::tcp::endpoint const ep{net::ip::make_address("127.0.0.1"), 0};
  a.open(ep.protocol());
  a.set_option(net::ip::tcp::acceptor::reuse_address(true));
  a.bind(ep);
  a.listen();
}

/// Run every handler that is ready now, without waiting.
inline void drain(net::io_context& ioc) {
  if (ioc.stopped()) ioc.restart();
  ioc.poll();
}

}  // namespace test
