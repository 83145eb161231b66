#pragma once

// The setup most e2e tests share: an io_context the test thread runs, a hub, one channel on a
// path, and a herald::Server on 127.0.0.1:0 serving it. Also the authorize hooks the auth tests
// of every transport use, so the same tokens mean the same thing everywhere.

#include <herald/herald.hpp>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>

#include <functional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>

namespace test {

template <class T>
struct ChannelFixture {
  /** `hint` is the io_context's concurrency hint: 1 makes herald run without strands (the
      examples' way), the default keeps them (what multi-threaded applications get). `routes`
      adds the test's other routes before the server listens. */
  explicit ChannelFixture(std::string path, herald::ChannelOptions co = {}, typename T::options to = {},
                          herald::HubOptions ho = {.first_id = 1}, herald::ServerOptions so = {},
                          int hint = BOOST_ASIO_CONCURRENCY_HINT_DEFAULT,
                          std::function<void(herald::Server&)> const& routes = {})
      : ioc(hint),
        hub(ioc.get_executor(), std::move(ho)),
        channel(hub, std::move(path), std::move(co), std::move(to)),
        server(ioc.get_executor(), std::move(so)) {
    server.add(channel);
    if (routes) routes(server);
    ep = server.listen("127.0.0.1", 0);
  }

  /// The Host header line of a request to the server.
  std::string host() const { return "Host: 127.0.0.1:" + std::to_string(ep.port()) + "\r\n"; }

  boost::asio::io_context ioc;
  herald::Hub hub;
  herald::Channel<T> channel;
  herald::Server server;
  boost::asio::ip::tcp::endpoint ep;
};

/** Bearer tokens the auth tests send: "good" is alice, "banned" is refused with 403 "banned",
    "throw" makes the hook throw (500), anything else (or none) is 401 "token required". */
inline herald::Verdict bearer_verdict(herald::Request const& req) {
  auto const auth = req[boost::beast::http::field::authorization];
  if (auth == "Bearer good") return herald::Verdict::allow("alice");
  if (auth == "Bearer banned") return herald::Verdict::deny(herald::error::forbidden, "banned");
  if (auth == "Bearer throw") throw std::runtime_error("hook failure");
  return herald::Verdict::deny(herald::error::unauthorized, "token required");
}

/// Channel options with bearer_verdict, where alice may subscribe to anything but "secret".
inline herald::ChannelOptions bearer_auth(bool every_topic = false) {
  herald::ChannelOptions co;
  co.authorize = bearer_verdict;
  co.authorize_topic = [every_topic](std::string_view principal, std::string_view topic) {
    return principal == "alice" && topic != "secret" && (every_topic || topic != "*");
  };
  return co;
}

}  // namespace test
