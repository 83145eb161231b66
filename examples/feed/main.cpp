// examples/feed: an SSE feed on /api/feed that publishes a JSON tick every second, and a page
// at / whose script is the seed's EventSource snippet.
//
//   herald_example_feed [--host 127.0.0.1] [--port 8080]
//   curl -N http://127.0.0.1:8080/api/feed

#include <herald/herald.hpp>

#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>

#include <chrono>
#include <ctime>
#include <iostream>
#include <string>

#include "cli.hpp"

namespace net = boost::asio;
namespace http = boost::beast::http;

int main(int argc, char** argv) {
  auto const cli = example::parse_cli(argc, argv);
  net::io_context ioc{1};  // run by this thread alone: herald then needs no strands

  herald::Hub hub{ioc.get_executor()};
  herald::Channel<herald::Sse> feed{hub, "/api/feed", {.topics = {"ticks"}}};

  herald::Server server{ioc.get_executor()};
  server.add(feed);
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

  // One JSON event a second on the "ticks" topic.
  net::steady_timer timer{ioc};
  unsigned long tick = 0;
  std::function<void()> schedule = [&] {
    timer.expires_after(std::chrono::seconds(1));
    timer.async_wait([&](boost::system::error_code ec) {
      if (ec) return;
      std::time_t const now = std::time(nullptr);
      char when[32];
      std::strftime(when, sizeof when, "%FT%TZ", std::gmtime(&now));
      hub.publish("ticks", R"({"tick":)" + std::to_string(++tick) + R"(,"time":")" + when + R"("})");
      schedule();
    });
  };
  schedule();

  // Ctrl-C / SIGTERM: end streams gracefully (final retry:), then leave run().
  net::signal_set signals{ioc, SIGINT, SIGTERM};
  signals.async_wait([&](boost::system::error_code, int) {
    timer.cancel();
    server.async_stop(std::chrono::seconds(5), [](boost::system::error_code) {});
  });

  ioc.run();
}
