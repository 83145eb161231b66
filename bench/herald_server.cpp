// bench/herald_server: herald under test. One Hub, one thread, every transport:
//
//   GET  /ws                  WebSocket (Channel<WebSocket>): {"subscribe":"t"} subscribes; any
//                             other text message is published on topic t (the WebSocket publisher)
//   GET  /sse?topic=t         Server-Sent Events (Channel<Sse>)
//   GET  /poll?topic=t&...    short and long polling (Channel<Polling>)
//   POST /pub?topic=t         publishes the request body (a JSON payload) on topic t
//   GET  /mark                allocs=<n> rss_kb=<kb> (and a callgrind dump point)
//
//   herald_bench_herald_server [--port 0] [--host 127.0.0.1] [--queue 1024]
//
// Prints `listening on http://HOST:PORT` once ready. Limits are raised for the benchmarks
// (connections), everything else is herald's defaults. The _allocs build counts every heap
// allocation of the process (bench_common.hpp).
#include "bench_common.hpp"

#include <herald/herald.hpp>

#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>

#include <cstdio>

int main(int argc, char** argv) {
  auto const args = bench::parse_args(argc, argv);
  boost::asio::io_context ioc{1};
  herald::Hub hub{ioc.get_executor()};

  herald::ChannelOptions options;
  options.limits.max_connections = 1'000'000;
  options.limits.queue_events = args.queue;
  options.allowed_origins = {"*"};
  herald::Channel<herald::WebSocket> ws{hub, "/ws", options};
  herald::Channel<herald::Sse> sse{hub, "/sse", options};
  herald::Channel<herald::Polling> poll{hub, "/poll", options};

  herald::Server server{ioc.get_executor(), {.max_connections = 1'000'000, .backlog = 4096}};
  // The WebSocket publisher: every application message is an event of topic t.
  ws.on_message([&](herald::Session&, herald::Message const& m) {
    hub.publish("t", m.data, {.kind = herald::PayloadKind::json});
  });
  server.add(ws).add(sse).add(poll);
  server.handle("/pub", [&](herald::Request const& req) {
    namespace http = boost::beast::http;
    http::response<http::string_body> res{http::status::ok, req.version()};
    if (req.method() != http::verb::post) {
      res.result(http::status::method_not_allowed);
      return res;
    }
    auto const topic = bench::query_arg(req.target(), "topic", "t");
    auto const id = hub.publish(topic, req.body(), {.kind = herald::PayloadKind::json});
    res.body() = std::to_string(id);
    return res;
  });
  server.handle("/mark", [](herald::Request const& req) {
    namespace http = boost::beast::http;
    http::response<http::string_body> res{http::status::ok, req.version()};
    res.body() = bench::mark();
    return res;
  });

  auto const ep = server.listen(args.host, args.port);
  std::printf("listening on http://%s:%u\n", ep.address().to_string().c_str(), unsigned(ep.port()));
  std::fflush(stdout);

  boost::asio::signal_set signals{ioc, SIGINT, SIGTERM};
  signals.async_wait([&](boost::system::error_code, int) {
    server.async_stop(std::chrono::milliseconds(200), [&](boost::system::error_code) { ioc.stop(); });
  });
  ioc.run();
}
