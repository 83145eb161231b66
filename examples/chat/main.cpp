// examples/chat: a WebSocket chat. Rooms are topics. A browser joins a room with the seed's
// control message, {"subscribe":"lobby"}, and says something with
// {"room":"lobby","name":"ann","text":"hi"}; the server publishes {"name":…,"text":…} on the
// room's topic, so every member of the room (the sender too) receives it as
// {"id":…,"topic":"lobby","data":{"name":"ann","text":"hi"}}.
//
//   herald_example_chat [--host 127.0.0.1] [--port 8080]
//   open http://127.0.0.1:8080/   (the socket is ws://127.0.0.1:8080/chat)

#include <herald/herald.hpp>

#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <iostream>
#include <string>

#include "cli.hpp"

namespace net = boost::asio;
namespace http = boost::beast::http;
using json = nlohmann::json;

namespace {

// Replies go to the sender only; the connection stays open.
void refuse(herald::Session& s, std::string_view why) { s.send(json{{"error", why}}.dump()); }

}  // namespace

int main(int argc, char** argv) {
  auto const cli = example::parse_cli(argc, argv);
  net::io_context ioc{1};  // run by this thread alone: herald then needs no strands

  // The last 100 messages of each room are kept: a browser that joins with "since": 0 sees them,
  // and one that reconnects with the id of the last message it saw gets exactly what it missed.
  herald::Hub hub{ioc.get_executor(), {.history_events = 100, .history_age = std::chrono::hours(1)}};
  herald::Channel<herald::WebSocket> chat{
      hub, "/chat", {.limits = {.max_subscriptions = 8, .max_topic_length = 40}}, {.read_message_max = 4096}};

  chat.on_message([&hub](herald::Session& s, herald::Message const& m) {
    if (m.binary) return refuse(s, "this chat takes text");
    auto const msg = json::parse(m.data, nullptr, /*allow_exceptions=*/false);
    if (!msg.is_object() || !msg.contains("room") || !msg["room"].is_string() || !msg.contains("text") ||
        !msg["text"].is_string())
      return refuse(s, R"(send {"room":"…","name":"…","text":"…"})");
    auto const room = msg["room"].get<std::string>();
    auto const subs = s.subscriptions();
    if (std::find(subs.begin(), subs.end(), room) == subs.end())
      return refuse(s, "join the room first: {\"subscribe\":\"" + room + "\"}");
    auto const text = msg["text"].get<std::string>();
    if (text.empty() || text.size() > 1000) return refuse(s, "a message has 1 to 1000 bytes");
    std::string name = msg.contains("name") && msg["name"].is_string() ? msg["name"].get<std::string>() : "";
    if (name.empty() || name.size() > 32) name = "anonymous";
    // The room's topic: every member receives it, the sender included.
    hub.publish(room, json{{"name", name}, {"text", text}}.dump());
  });

  herald::Server server{ioc.get_executor()};
  server.add(chat);
  std::string const page = example::asset("index.html", "<!doctype html><p>index.html missing</p>");
  server.handle("/", [&page](herald::Request const& req) {
    http::response<http::string_body> res{http::status::ok, req.version()};
    res.set(http::field::content_type, "text/html; charset=utf-8");
    res.body() = page;
    return res;
  });

  net::ip::tcp::endpoint ep;
  try {
    ep = server.listen(cli.host, cli.port);
  } catch (std::exception const& e) {
    std::cerr << "cannot listen on " << cli.host << ':' << cli.port << ": " << e.what() << '\n';
    return 1;
  }
  example::announce(cli.host, ep.port());

  // Ctrl-C / SIGTERM: every client gets close code 1001 (going away), then run() returns.
  net::signal_set signals{ioc, SIGINT, SIGTERM};
  signals.async_wait([&](boost::system::error_code, int) {
    server.async_stop(std::chrono::seconds(5), [](boost::system::error_code) {});
  });

  ioc.run();
}
