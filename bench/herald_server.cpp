// bench/herald_server: herald under test. One Hub, one thread, every transport:
//
//   GET  /ws                  WebSocket (Channel<WebSocket>): {"subscribe":"t"} subscribes; any
//                             other text message is published on topic t (the WebSocket publisher)
//   GET  /sse?topic=t         Server-Sent Events (Channel<Sse>)
//   GET  /poll?topic=t&...    short and long polling (Channel<Polling>)
//   POST /pub?topic=t         publishes the request body (a JSON payload) on topic t
//   GET  /mark                allocs=<n> rss_kb=<kb> (and a callgrind dump point)
//
//   herald_bench_herald_server [--port 0] [--host 127.0.0.1] [--queue 1024] [--redis URL]
//
// Prints `listening on http://HOST:PORT` once ready. Limits are raised for the benchmarks
// (connections), everything else is herald's defaults. The _allocs build counts every heap
// allocation of the process (bench_common.hpp).
//
// --redis URL (builds linked with herald::redis, HERALD_BENCH_HAVE_REDIS): the hub shares
// itself through the Redis backplane at URL (bench/run scenario f runs two of these on one
// Redis). "Ready" then also means the backplane is connected: the line is printed only once
// Backplane::stats().connected holds, and the server exits with status 3 (and the backplane's
// last error on stderr) if that takes longer than redis_ready_timeout. On SIGTERM it prints
// the backplane's counters on stderr (`redis: published=… publish_failures=… …`).
#include "bench_common.hpp"

#include <herald/herald.hpp>
#if defined(HERALD_BENCH_HAVE_REDIS)
#include <herald/redis.hpp>
#endif

#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>

#include <chrono>
#include <cstdio>
#include <functional>
#include <memory>

namespace {

#if defined(HERALD_BENCH_HAVE_REDIS)
/// How long a --redis server waits for the backplane to connect before it gives up.
constexpr std::chrono::seconds redis_ready_timeout{10};

/// The backplane's warnings and errors, on stderr (bench/run shows a server's output when it
/// fails to start).
void log_to_stderr(herald::LogRecord const& r) {
  std::fprintf(stderr, "redis: %.*s%s%s\n", static_cast<int>(r.message.size()), r.message.data(),
               r.ec ? ": " : "", r.ec ? r.ec.message().c_str() : "");
}
#endif

}  // namespace

int main(int argc, char** argv) {
  auto const args = bench::parse_args(argc, argv);
  boost::asio::io_context ioc{1};

  herald::HubOptions hub_options;
#if defined(HERALD_BENCH_HAVE_REDIS)
  std::shared_ptr<herald::redis::Backplane> redis;
  if (!args.redis.empty()) {
    redis = std::make_shared<herald::redis::Backplane>(
        ioc.get_executor(), herald::redis::Options{.url = args.redis, .log = log_to_stderr,
                                                   .log_level = herald::LogLevel::warning});
    hub_options.backplane = redis;
  }
#else
  if (!args.redis.empty()) {
    std::fprintf(stderr, "herald_server: --redis needs a build with herald::redis (hiredis, libhiredis-dev)\n");
    return 2;
  }
#endif
  herald::Hub hub{ioc.get_executor(), std::move(hub_options)};

  herald::ChannelOptions options;
  options.limits.max_connections = 1'000'000;
  options.limits.queue_events = args.queue;
  options.allowed_origins = {"*"};
  // The WebSocket publisher is the benchmark's own load: no inbound rate limit.
  herald::Channel<herald::WebSocket> ws{
      hub, "/ws", options, {.inbound_rate = {.messages_per_second = 0, .bytes_per_second = 0}}};
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
  auto announce = [ep] {
    std::printf("listening on http://%s:%u\n", ep.address().to_string().c_str(), unsigned(ep.port()));
    std::fflush(stdout);
  };

  int status = 0;
  boost::asio::steady_timer ready_timer{ioc};
  std::function<void()> poll_ready;  // outlives the timer's handlers: they call it
#if defined(HERALD_BENCH_HAVE_REDIS)
  if (redis) {
    // Poll the backplane until it is connected (both connections up, scripts loaded), bounded.
    auto const give_up = std::chrono::steady_clock::now() + redis_ready_timeout;
    poll_ready = [&, give_up] {
      if (redis->stats().connected) return announce();
      if (std::chrono::steady_clock::now() >= give_up) {
        auto const why = redis->stats().last_error;
        std::fprintf(stderr, "herald_server: Redis at %s not connected after %lld s%s%s\n", args.redis.c_str(),
                     static_cast<long long>(redis_ready_timeout.count()), why.empty() ? "" : ": ", why.c_str());
        status = 3;
        ioc.stop();
        return;
      }
      ready_timer.expires_after(std::chrono::milliseconds(10));
      ready_timer.async_wait([&](boost::system::error_code ec) {
        if (!ec) poll_ready();
      });
    };
    poll_ready();
  } else {
    announce();
  }
#else
  announce();
#endif

  boost::asio::signal_set signals{ioc, SIGINT, SIGTERM};
  signals.async_wait([&](boost::system::error_code, int) {
    ready_timer.cancel();
#if defined(HERALD_BENCH_HAVE_REDIS)
    if (redis) {
      auto const st = redis->stats();
      std::fprintf(stderr,
                   "redis: published=%llu publish_failures=%llu ingested=%llu reconnects=%llu discontinuities=%llu\n",
                   static_cast<unsigned long long>(st.published), static_cast<unsigned long long>(st.publish_failures),
                   static_cast<unsigned long long>(st.ingested), static_cast<unsigned long long>(st.reconnects),
                   static_cast<unsigned long long>(st.discontinuities));
    }
#endif
    server.async_stop(std::chrono::milliseconds(200), [&](boost::system::error_code) { ioc.stop(); });
  });
  ioc.run();
  return status;
}
