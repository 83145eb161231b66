// examples/cluster: one node of a herald cluster. Start it several times on one Redis (the same
// --prefix) and the nodes behave as one hub (herald::redis::Backplane): ids are global, an event
// published on any node reaches the clients of every node, and a client that reconnects to
// another node with its cursor gets exactly what it missed. Each node serves
//   /live                WebSocket, SSE and polling on one path (herald::Negotiated), with
//                        query topics (/live?topic=a&topic=b); what clients send is published
//                        on "chat", as in examples/dashboard
//   /, /herald.js        the dashboard page and its script (examples/dashboard's files)
//   POST /publish?topic=T  the body is the event; 200 with its id once Redis stored it, 503 and
//                        Retry-After: 1 while Redis cannot be reached, 400 for a bad topic
//   GET /node            {"node":"HOST:PORT","connected":…,"position":…,"last_id":…}
//
//   redis-server --port 6379 --bind 127.0.0.1 --save "" --appendonly no &
//   herald_example_cluster --redis redis://127.0.0.1:6379 --port 8081 &
//   herald_example_cluster --redis redis://127.0.0.1:6379 --port 8082 &
//   curl -N -H 'Accept: text/event-stream' 'http://127.0.0.1:8082/live?topic=chat' &
//   curl -d '{"text":"hi"}' 'http://127.0.0.1:8081/publish?topic=chat'

#include <herald/herald.hpp>
#include <herald/redis.hpp>
#include <herald/transports/negotiated.hpp>

#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>

#include <nlohmann/json.hpp>

#include <chrono>
#include <iostream>
#include <memory>
#include <string>
#include <string_view>
#include <utility>

#include "cli.hpp"

namespace net = boost::asio;
namespace http = boost::beast::http;
using json = nlohmann::json;

using Live = herald::Negotiated<herald::WebSocket, herald::Sse, herald::Polling>;

namespace {

http::response<http::string_body> text(unsigned version, http::status status, std::string body) {
  http::response<http::string_body> res{status, version};
  res.set(http::field::content_type, "text/plain; charset=utf-8");
  res.set(http::field::cache_control, "no-store");
  res.body() = std::move(body) + "\n";
  return res;
}

/** POST /publish?topic=T. The answer waits for Redis (the event's id, or the reason it was not
    published), so the route is asynchronous: Server::handle_async keeps the connection meanwhile
    and sends the reply on the connection's strand. */
herald::AsyncHandler publish_route(herald::Hub& hub) {
  return [&hub](herald::Request const& req, herald::Reply reply) {
    unsigned const version = req.version();
    if (req.method() != http::verb::post) {
      auto res = text(version, http::status::method_not_allowed,
                      "POST /publish?topic=T with the event as the body");
      res.set(http::field::allow, "POST");
      return reply(std::move(res));
    }
    auto const topic = herald::query_param(req.target(), "topic");
    if (!topic)  // absent or repeated
      return reply(text(version, http::status::bad_request, "name one topic: POST /publish?topic=T"));
    hub.async_publish(*topic, req.body(), [reply, version](boost::system::error_code ec, herald::EventId id) {
      if (!ec) return reply(text(version, http::status::ok, std::to_string(id)));
      if (ec == herald::error::backplane_unavailable || ec == net::error::operation_aborted) {
        auto res = text(version, http::status::service_unavailable, "redis unavailable, not published: retry");
        res.set(http::field::retry_after, "1");
        return reply(std::move(res));
      }
      reply(text(version, http::status::bad_request, ec.message()));  // bad_topic
    });
  };
}

/// A plain route that answers with a fixed body (a page, a script).
herald::Handler asset_route(std::string body, std::string type) {
  return [body = std::move(body), type = std::move(type)](herald::Request const& req) {
    http::response<http::string_body> res{http::status::ok, req.version()};
    res.set(http::field::content_type, type);
    res.set(http::field::cache_control, "no-cache");
    res.body() = body;
    return res;
  };
}

std::string node_name(std::string const& host, std::uint16_t port) {
  bool const v6 = host.find(':') != std::string::npos;
  return (v6 ? "[" + host + "]" : host) + ':' + std::to_string(port);
}

}  // namespace

int main(int argc, char** argv) {
  auto const cli = example::parse_cli(argc, argv,
                                      {{.name = "--redis", .meta = "URL", .required = true},
                                       {.name = "--prefix", .meta = "NAME", .value = "herald"}});
  net::io_context ioc{1};  // run by this thread alone: herald then needs no strands

  std::string node;  // HOST:PORT once listening; names this node in logs, chat and /node
  auto log = [&node](herald::LogRecord const& r) {
    std::cerr << node << ' ' << (r.level == herald::LogLevel::error ? "error" : "warning") << ' '
              << (r.transport.empty() ? "hub" : r.transport) << ": " << r.message
              << (r.ec ? " (" + r.ec.message() + ")" : "") << '\n';
  };
  std::shared_ptr<herald::redis::Backplane> redis;
  try {
    redis = std::make_shared<herald::redis::Backplane>(
        ioc.get_executor(), herald::redis::Options{.url = cli.flag("--redis"),
                                                   .prefix = cli.flag("--prefix"),
                                                   .log = log,
                                                   .log_level = herald::LogLevel::warning});
  } catch (std::exception const& e) {
    std::cerr << argv[0] << ": " << e.what() << '\n';
    return 2;
  }
  herald::Hub hub{ioc.get_executor(),
                  {.log = log, .log_level = herald::LogLevel::warning, .backplane = redis}};

  Live::options topts;
  topts.of<herald::Sse>().retry = std::chrono::seconds(1);
  topts.of<herald::Polling>().max_wait = std::chrono::seconds(20);
  topts.max_message = 4096;
  herald::Channel<Live> live{hub, "/live", {}, std::move(topts)};
  // A message from a client (WebSocket frame, or POST /live) goes to everyone on "chat", on
  // every node; Redis numbers it, and a failure is logged.
  live.on_message([&hub, &node](herald::Session& s, herald::Message const& m) {
    if (m.binary) return;
    json const chat{{"from", node}, {"text", m.data}};  // text is UTF-8: herald checked it
    hub.publish("chat", chat.dump());
    s.send("ack:" + std::string(m.data));
  });

  herald::Server server{ioc.get_executor()};
  server.add(live);
  server.handle_async("/publish", publish_route(hub));
  server.handle("/", asset_route(example::asset("../dashboard/index.html",
                                                "<!doctype html><p>index.html missing</p>"),
                                 "text/html; charset=utf-8"));
  server.handle("/herald.js",
                asset_route(example::asset("../dashboard/herald.js", "/* herald.js missing */"),
                            "text/javascript; charset=utf-8"));
  server.handle("/node", [&](herald::Request const& req) {
    auto const bp = redis->stats();
    nlohmann::ordered_json const status{{"node", node},
                                        {"connected", bp.connected},
                                        {"position", bp.position},
                                        {"last_id", hub.stats().last_id}};
    http::response<http::string_body> res{http::status::ok, req.version()};
    res.set(http::field::content_type, "application/json");
    res.set(http::field::cache_control, "no-store");
    res.body() = status.dump() + "\n";
    return res;
  });

  node = node_name(cli.host, example::listen(server, cli));

  // Ctrl-C / SIGTERM: WebSocket 1001, SSE final retry:, held polls and publishes answered; then
  // Redis is let go and run() returns. Clients resume on the other nodes.
  net::signal_set signals{ioc, SIGINT, SIGTERM};
  signals.async_wait([&](boost::system::error_code, int) {
    server.async_stop(std::chrono::seconds(5),
                      [&redis](boost::system::error_code) { redis->stop(); });
  });

  ioc.run();
}
