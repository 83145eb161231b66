// herald_hostile_server: the server the hostile-input suite (hostile.py) attacks. Built like an
// example (default header-only mode, Release in CI), with every budget small enough that a test
// reaches it in seconds, and each stated here because the suite's expectations follow from them:
//
//   server     max_connections 64, request header 8 KiB (431 over), body 64 KiB (413 over),
//              request_timeout 1 s (a slowloris is cut then)
//   hub        max_topics 500, max_history_bytes 4 MiB, history_age 2 s (so what the attacks
//              leave behind ages out and memory can come back), history_events 1024
//   /ws        Channel<WebSocket>: allowed_hosts 127.0.0.1 and localhost (any other Host: 421),
//              same-origin only, read_message_max 64 KiB (1009 over), inbound_rate 100/s burst
//              200 and 256 KiB/s burst 1 MiB (1008 over), a queue of 64 events or 256 KiB with
//              write_timeout 5 s (a slow consumer is cut with 1013). A text message
//              {"publish":"<topic>","data":"<text>"} publishes (a refusal comes back as
//              {"error":"<wire name>"}); other messages are ignored.
//   /sse       Channel<Sse> (same Host allowlist)
//   /poll      Channel<Polling>, max_answer_bytes 1 MiB (the default)
//   /publish   POST ?topic=T with the data as body: 200 and the id, or the error's status and
//              JSON body (503 too many topics, 400 bad topic)
//   /stats     the hub's stats as JSON
//
//   herald_hostile_server [--host 127.0.0.1] [--port 0]
//
// The first line of output is "listening on http://HOST:PORT" (flushed). SIGINT/SIGTERM stop it.

#include <herald/detail/response.hpp>
#include <herald/herald.hpp>

#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>

#include <nlohmann/json.hpp>

#include <chrono>
#include <string>

#include "cli.hpp"

namespace net = boost::asio;
namespace http = boost::beast::http;
using json = nlohmann::json;

namespace {

http::response<http::string_body> answer(herald::Request const& req, http::status status, std::string body,
                                         std::string_view type = "application/json") {
  http::response<http::string_body> res{status, req.version()};
  res.set(http::field::content_type, type);
  res.set(http::field::cache_control, "no-store");
  res.body() = std::move(body);
  res.body() += '\n';
  return res;
}

}  // namespace

int main(int argc, char** argv) {
  auto const cli = example::parse_cli(argc, argv);
  net::io_context ioc{1};

  herald::Hub hub{ioc.get_executor(), {.history_events = 1024,
                                       .history_age = std::chrono::seconds(2),
                                       .max_topics = 500,
                                       .max_history_bytes = 4u * 1024u * 1024u}};
  herald::ChannelOptions const guarded{
      .allowed_hosts = {"127.0.0.1", "localhost"},
      .limits = {.queue_events = 64, .queue_bytes = 256 * 1024, .write_timeout = std::chrono::seconds(5)}};
  herald::Channel<herald::WebSocket> ws{hub, "/ws", guarded, {}};
  herald::Channel<herald::Sse> sse{hub, "/sse", guarded};
  herald::Channel<herald::Polling> poll{hub, "/poll"};

  ws.on_message([&hub](herald::Session& s, herald::Message const& m) {
    auto const msg = json::parse(m.data, nullptr, /*allow_exceptions=*/false);
    // Anything else is ignored without a reply: a flood then costs the server reads only.
    if (!msg.is_object() || !msg.contains("publish") || !msg["publish"].is_string() || !msg.contains("data") ||
        !msg["data"].is_string())
      return;
    boost::system::error_code ec;
    hub.publish(msg["publish"].get<std::string>(), msg["data"].get<std::string>(), {}, ec);
    if (ec) s.send(json{{"error", herald::detail::wire_name(ec)}}.dump());
  });

  herald::Server server{ioc.get_executor(), {.max_connections = 64, .request_timeout = std::chrono::seconds(1)}};
  server.add(ws).add(sse).add(poll);

  server.handle("/publish", [&hub](herald::Request const& req) {
    auto const topic = herald::query_param(req.target(), "topic");
    if (req.method() != http::verb::post || !topic)
      return answer(req, http::status::bad_request, R"({"error":"bad request"})");
    boost::system::error_code ec;
    auto const id = hub.publish(*topic, req.body(), {}, ec);
    if (ec) {
      auto res = herald::detail::error_response<http::string_body>(ec, {}, req.version(), req.keep_alive());
      return res;
    }
    return answer(req, http::status::ok, std::to_string(id), "text/plain");
  });

  server.handle("/stats", [&hub](herald::Request const& req) {
    auto const s = hub.stats();
    return answer(req, http::status::ok,
                  json{{"connections", s.connections},
                       {"topics", s.topics},
                       {"history_bytes", s.history_bytes},
                       {"slow_consumer_disconnects", s.slow_consumer_disconnects},
                       {"last_id", s.last_id}}
                      .dump());
  });

  net::signal_set signals{ioc, SIGINT, SIGTERM};
  signals.async_wait([&](boost::system::error_code ec, int) {
    if (!ec) server.async_stop(std::chrono::seconds(2), [&](boost::system::error_code) { ioc.stop(); });
  });

  example::listen(server, cli);
  ioc.run();
  return 0;
}
