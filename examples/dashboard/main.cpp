// examples/dashboard: one path (/live) that serves WebSocket, SSE and long polling from one hub
// (herald::Negotiated), a page at / that connects with examples/dashboard/herald.js and shows
// which transport is live (?transport=websocket|sse|polling forces one), and /herald.js itself.
// The server publishes a metrics sample every 500 ms on "metrics"; what clients send (WebSocket
// frame, or POST /live in the degraded modes) is published on "chat" and acknowledged.
//
// SSE and WebSocket send a heartbeat after --heartbeat milliseconds of silence (default 15000),
// which herald.js holds the server to: a transport that shows no data is given up.
//
// /secure is the same channel behind single-use tickets (herald::TicketBook): POST /ticket, here
// "authenticated" by an X-Demo-User header where a real application checks its session cookie,
// answers a ticket for that user and the "metrics" topic, which herald.js's `ticket` option
// fetches before each request (index.html?secure); a ticket is good for one request, for 5 s.
//
// SIGTERM (or Ctrl-C) stops the server at once (WebSocket 1001, SSE's final retry:); with
// --drain SECONDS it drains instead (Server::async_drain, docs/drain.md): the connections are
// closed spread over that window, each client told when to come back and from which cursor.
//
//   herald_example_dashboard [--heartbeat MS] [--drain SECONDS] [--host 127.0.0.1] [--port 8080]
//   open http://127.0.0.1:8080/?transport=sse
//   curl http://127.0.0.1:8080/live?negotiate
//   curl -d hello http://127.0.0.1:8080/live
//   T=$(curl -s -XPOST -H 'X-Demo-User: ann' http://127.0.0.1:8080/ticket)
//   curl -N -H 'Accept: text/event-stream' "http://127.0.0.1:8080/secure?ticket=$T"

#include <herald/herald.hpp>
#include <herald/metrics.hpp>
#include <herald/transports/negotiated.hpp>

#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>

#include <chrono>
#include <cmath>
#include <cstdlib>
#include <functional>
#include <iostream>
#include <memory>
#include <optional>
#include <string>

#include "cli.hpp"

namespace net = boost::asio;
namespace http = boost::beast::http;

using Live = herald::Negotiated<herald::WebSocket, herald::Sse, herald::Polling>;

namespace {

http::response<http::string_body> file(herald::Request const& req, std::string const& body,
                                       char const* type) {
  http::response<http::string_body> res{http::status::ok, req.version()};
  res.set(http::field::content_type, type);
  res.set(http::field::cache_control, "no-cache");
  res.body() = body;
  return res;
}

std::string json_string(std::string_view s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    if (static_cast<unsigned char>(c) < 0x20) continue;
    out += c;
  }
  return out + '"';
}

}  // namespace

int main(int argc, char** argv) {
  auto const cli = example::parse_cli(argc, argv, {{"--heartbeat", "MS", "15000"}, {"--drain", "SECONDS", "0"}});
  auto const heartbeat = std::chrono::milliseconds(std::strtol(cli.flag("--heartbeat").c_str(), nullptr, 10));
  if (heartbeat.count() <= 0) {
    std::cerr << "--heartbeat takes a positive number of milliseconds\n";
    return 2;
  }
  net::io_context ioc{1};  // run by this thread alone: herald then needs no strands

  herald::Hub hub{ioc.get_executor()};
  Live::options topts;
  topts.of<herald::Sse>().retry = std::chrono::seconds(1);
  topts.of<herald::Sse>().heartbeat = heartbeat;
  topts.of<herald::WebSocket>().heartbeat = heartbeat;
  topts.of<herald::Polling>().max_wait = std::chrono::seconds(20);
  topts.max_message = 4096;
  herald::Channel<Live> live{hub, "/live", {}, topts};
  live.on_message([&live](herald::Session& s, herald::Message const& m) {
    if (m.binary) return;
    live.publish("chat", R"({"from":)" + std::to_string(s.id()) + R"(,"text":)" + json_string(m.data) + "}");
    s.send("ack:" + std::string(m.data));
  });

  auto tickets = std::make_shared<herald::TicketBook>();
  herald::Channel<Live> secure{hub, "/secure", {.tickets = tickets}, topts};

  herald::Server server{ioc.get_executor()};
  server.add(live).add(secure);
  server.handle("/ticket", [&tickets](herald::Request const& req) {
    auto const user = req["X-Demo-User"];
    http::response<http::string_body> res{http::status::ok, req.version()};
    res.set(http::field::cache_control, "no-store");
    if (req.method() != http::verb::post) res.result(http::status::method_not_allowed);
    else if (user.empty()) res.result(http::status::unauthorized);
    else if (auto t = tickets->mint({.principal = std::string(user), .topics = {"metrics"}})) res.body() = std::move(*t);
    else res.result(http::status::service_unavailable);  // the book is full: minted too fast
    return res;
  });
  // What an operator scrapes: the hub's and the channel's counters, per transport.
  herald::Metrics metrics;
  metrics.add(hub).add(live);
  server.handle("/metrics", metrics.handler());
  std::string const page = example::asset("index.html", "<!doctype html><p>index.html missing</p>");
  std::string const script = example::asset("herald.js", "/* herald.js missing */");
  server.handle("/", [&page](herald::Request const& req) { return file(req, page, "text/html; charset=utf-8"); });
  server.handle("/herald.js", [&script](herald::Request const& req) {
    return file(req, script, "text/javascript; charset=utf-8");
  });

  net::ip::tcp::endpoint ep;
  try {
    ep = server.listen(cli.host, cli.port);
  } catch (std::exception const& e) {
    std::cerr << "cannot listen on " << cli.host << ':' << cli.port << ": " << e.what() << '\n';
    return 1;
  }
  example::announce(cli.host, ep.port());

  // A metrics sample every 500 ms.
  net::steady_timer timer{ioc};
  unsigned long n = 0;
  std::function<void()> schedule = [&] {
    timer.expires_after(std::chrono::milliseconds(500));
    timer.async_wait([&](boost::system::error_code ec) {
      if (ec) return;
      ++n;
      double const load = 50 + 40 * std::sin(static_cast<double>(n) / 10);
      hub.publish("metrics", R"({"n":)" + std::to_string(n) + R"(,"load":)" + std::to_string(load) +
                                 R"(,"clients":)" + std::to_string(live.connections()) + "}");
      schedule();
    });
  };
  schedule();

  // Ctrl-C / SIGTERM: WebSocket 1001, SSE final retry:, held polls answered; then leave run().
  // With --drain, the samples go on during the window: the clients not yet closed still get them.
  auto const drain = std::chrono::seconds(std::strtol(cli.flag("--drain").c_str(), nullptr, 10));
  net::signal_set signals{ioc, SIGINT, SIGTERM};
  signals.async_wait([&](boost::system::error_code, int) {
    if (drain.count() > 0)
      return server.async_drain({.window = drain}, [&](boost::system::error_code) { timer.cancel(); });
    timer.cancel();
    server.async_stop(std::chrono::seconds(5), [](boost::system::error_code) {});
  });

  ioc.run();
}
