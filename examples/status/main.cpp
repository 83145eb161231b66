// examples/status: a status page served by polling. /api/status is a Channel<Polling> on the
// topics "services" (state changes, reported with POST /api/report) and "metrics" (a sample every
// two seconds). The page at / short-polls every three seconds, or long-polls (?mode=long).
//
//   herald_example_status [--host 127.0.0.1] [--port 8080]
//   curl 'http://127.0.0.1:8080/api/status?since=0'                         short poll
//   curl 'http://127.0.0.1:8080/api/status?topic=services&since=N&wait=25'  long poll
//   curl -d '{"service":"db","state":"down"}' http://127.0.0.1:8080/api/report

#include <herald/herald.hpp>

#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>

#include <nlohmann/json.hpp>

#include <chrono>
#include <ctime>
#include <functional>
#include <iostream>
#include <string>

#include "cli.hpp"

namespace net = boost::asio;
namespace http = boost::beast::http;
using json = nlohmann::json;

namespace {

std::string utc_now() {
  std::time_t const now = std::time(nullptr);
  char when[32];
  std::strftime(when, sizeof when, "%FT%TZ", std::gmtime(&now));
  return when;
}

http::response<http::string_body> json_answer(herald::Request const& req, http::status status, json const& body) {
  http::response<http::string_body> res{status, req.version()};
  res.set(http::field::content_type, "application/json");
  res.set(http::field::cache_control, "no-store");
  res.body() = body.dump() + "\n";
  return res;
}

}  // namespace

int main(int argc, char** argv) {
  auto const cli = example::parse_cli(argc, argv);
  net::io_context ioc{1};  // run by this thread alone: herald then needs no strands

  herald::Hub hub{ioc.get_executor()};
  herald::Channel<herald::Polling> status{hub, "/api/status", {.topics = {"services", "metrics"}}};

  herald::Server server{ioc.get_executor()};
  server.add(status);
  std::string const page = example::asset("index.html", "<!doctype html><p>index.html missing</p>");
  server.handle("/", [&page](herald::Request const& req) {
    http::response<http::string_body> res{http::status::ok, req.version()};
    res.set(http::field::content_type, "text/html; charset=utf-8");
    res.body() = page;
    return res;
  });
  // Services report their state: {"service":"db","state":"up|degraded|down","note":"..."}.
  server.handle("/api/report", [&hub](herald::Request const& req) {
    if (req.method() != http::verb::post) {
      auto res = json_answer(req, http::status::method_not_allowed, {{"error", "POST a JSON report"}});
      res.set(http::field::allow, "POST");
      return res;
    }
    auto report = json::parse(req.body(), nullptr, /*allow_exceptions=*/false);
    if (report.is_discarded() || !report.is_object() || !report.contains("service") ||
        !report["service"].is_string() || !report.contains("state") || !report["state"].is_string())
      return json_answer(req, http::status::bad_request,
                         {{"error", R"(expected {"service":"name","state":"up|degraded|down"})"}});
    json event{{"service", report["service"]}, {"state", report["state"]}, {"time", utc_now()}};
    if (report.contains("note") && report["note"].is_string()) event["note"] = report["note"];
    auto const id = hub.publish("services", event.dump());
    return json_answer(req, http::status::accepted, {{"id", id}});
  });

  net::ip::tcp::endpoint ep;
  try {
    ep = server.listen(cli.host, cli.port);
  } catch (std::exception const& e) {
    std::cerr << "cannot listen on " << cli.host << ':' << cli.port << ": " << e.what() << '\n';
    return 1;
  }
  example::announce(cli.host, ep.port());

  // The services start up; their states stay in history, so a page that polls with since=0
  // rebuilds the whole board.
  for (char const* name : {"api", "db", "queue"})
    hub.publish("services", json{{"service", name}, {"state", "up"}, {"time", utc_now()}}.dump());

  // A metrics sample every two seconds.
  net::steady_timer timer{ioc};
  auto const started = std::chrono::steady_clock::now();
  unsigned long sample = 0;
  std::function<void()> schedule = [&] {
    timer.expires_after(std::chrono::seconds(2));
    timer.async_wait([&](boost::system::error_code ec) {
      if (ec) return;
      auto const up = std::chrono::duration_cast<std::chrono::seconds>(std::chrono::steady_clock::now() - started);
      auto const stats = hub.stats();
      hub.publish("metrics", json{{"sample", ++sample},
                                  {"uptime_s", up.count()},
                                  {"held_polls", status.connections()},
                                  {"events", stats.events_published},
                                  {"time", utc_now()}}
                                 .dump());
      schedule();
    });
  };
  schedule();

  // Ctrl-C / SIGTERM: held polls are answered (Connection: close), then run() returns.
  net::signal_set signals{ioc, SIGINT, SIGTERM};
  signals.async_wait([&](boost::system::error_code, int) {
    timer.cancel();
    server.async_stop(std::chrono::seconds(5), [](boost::system::error_code) {});
  });

  ioc.run();
}
