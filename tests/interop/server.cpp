// herald_interop_server: the server the interop tests drive with independent clients (curl, Node's
// eventsource and ws). Built like an example: default header-only mode, no test macros.
//
//   herald_interop_server [--host 127.0.0.1] [--port 8080] [--history N] [--limited N]
//
// Routes:
//   /sse        Channel<Sse>, topics from the query, SseOptions::retry = 100 ms (quick reconnects)
//   /ws         Channel<WebSocket> on the same hub
//   /poll       Channel<Polling> on the same hub
//   /sse-one    Channel<Sse> that holds one connection (Limits::max_connections = 1), with
//               Limits::retry_after = 1 s: more are refused with a stream that ends at once
//   /page       a blank HTML page, so a browser's EventSource is same-origin with the channels
//   /publish    POST or GET ?topic=T&data=D[&type=E] (percent-encoded; a POST without `data`
//               publishes its body); answers the new event id as text
//   /drop       Channel::disconnect_all() on every channel: streams close, clients resume
//   /stop       Server::async_stop; the program exits 0 once every connection closed (1 if some
//               had to be cut after the grace period)
//
// With --limited N, a second server on its own port (announced on the second line as "limited on
// http://HOST:PORT") holds at most N connections (ServerOptions::max_connections, retry_after
// 1 s, request_timeout 60 s) and serves /sse-any: a Channel<Sse> on the same hub that allows any
// Origin, so that a page of the first server can open an EventSource on it.
//
// The first line of output is "listening on http://HOST:PORT" (flushed). SIGINT/SIGTERM stop
// the server like /stop.

#include <herald/detail/http.hpp>
#include <herald/herald.hpp>

#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>

#include <chrono>
#include <cstdlib>
#include <exception>
#include <iostream>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "cli.hpp"

namespace net = boost::asio;
namespace http = boost::beast::http;

namespace {

using Response = http::response<http::string_body>;

Response text(herald::Request const& req, http::status status, std::string body) {
  Response res{status, req.version()};
  res.set(http::field::content_type, "text/plain; charset=utf-8");
  res.set(http::field::cache_control, "no-store");
  res.body() = std::move(body);
  res.body() += '\n';
  return res;
}

/// Takes `--history N` out of argv (the rest goes to example::parse_cli); nullopt if absent.
std::optional<std::size_t> take_history(int& argc, char** argv) {
  std::optional<std::size_t> history;
  int out = 1;
  for (int i = 1; i < argc; ++i) {
    std::string_view const arg = argv[i];
    std::string value;
    if (arg == "--history" && i + 1 < argc) {
      value = argv[++i];
    } else if (arg.starts_with("--history=")) {
      value = arg.substr(10);
    } else {
      argv[out++] = argv[i];
      continue;
    }
    char* end = nullptr;
    unsigned long long const n = std::strtoull(value.c_str(), &end, 10);
    if (value.empty() || *end != '\0') {
      std::cerr << argv[0] << ": --history needs a number of events\n";
      std::exit(2);
    }
    history = static_cast<std::size_t>(n);
  }
  argc = out;
  argv[argc] = nullptr;
  return history;
}

}  // namespace

int main(int argc, char** argv) {
  auto const history = take_history(argc, argv);
  auto const cli = example::parse_cli(argc, argv, {{"--limited", "N", ""}});

  net::io_context ioc;
  herald::HubOptions hub_options;
  if (history) hub_options.history_events = *history;
  herald::Hub hub{ioc.get_executor(), std::move(hub_options)};

  herald::Channel<herald::Sse> sse{hub, "/sse", {}, {.retry = std::chrono::milliseconds(100)}};
  herald::Channel<herald::WebSocket> ws{hub, "/ws"};
  herald::Channel<herald::Polling> poll{hub, "/poll"};
  herald::Channel<herald::Sse> one{hub, "/sse-one",
                                   {.limits = {.max_connections = 1, .retry_after = std::chrono::seconds(1)}}};

  herald::Server server{ioc.get_executor()};
  server.add(sse).add(ws).add(poll).add(one);

  herald::Channel<herald::Sse> any{hub, "/sse-any", {.allowed_origins = {"*"}}, {.retry = std::chrono::milliseconds(100)}};
  std::optional<herald::Server> limited;
  if (auto const& n = cli.flag("--limited"); !n.empty()) {
    limited.emplace(ioc.get_executor(),
                    herald::ServerOptions{.max_connections = std::stoul(n),
                                          .retry_after = std::chrono::seconds(1),
                                          .request_timeout = std::chrono::seconds(60)});
    limited->add(any);
  }

  server.handle("/page", [](herald::Request const& req) {
    auto res = text(req, http::status::ok, "<!doctype html><title>herald interop</title>");
    res.set(http::field::content_type, "text/html; charset=utf-8");
    return res;
  });

  server.handle("/publish", [&hub](herald::Request const& req) {
    if (req.method() != http::verb::get && req.method() != http::verb::post)
      return text(req, http::status::method_not_allowed, "publish: GET or POST");
    auto const query = herald::detail::parse_query(herald::detail::target_query(req.target()));
    if (!query) return text(req, http::status::bad_request, "publish: malformed query");
    std::optional<std::string> topic, data;
    std::string type;
    for (auto const& [key, value] : *query) {
      if (key == "topic") topic = value;
      else if (key == "data") data = value;
      else if (key == "type") type = value;
    }
    if (!data && req.method() == http::verb::post) data = req.body();
    if (!topic || !data) return text(req, http::status::bad_request, "publish: needs topic and data");
    try {
      auto const id = hub.publish(*topic, *data, {.type = type});
      return text(req, http::status::ok, std::to_string(id));
    } catch (std::invalid_argument const& e) {
      return text(req, http::status::bad_request, std::string("publish: ") + e.what());
    }
  });

  server.handle("/drop", [&](herald::Request const& req) {
    std::size_t const n = sse.connections() + ws.connections() + poll.connections();
    sse.disconnect_all();
    ws.disconnect_all();
    poll.disconnect_all();
    return text(req, http::status::ok, "dropped " + std::to_string(n));
  });

  int exit_code = 0;
  bool stopping = false;
  auto stop = [&] {
    if (stopping) return;  // async_stop must not be called twice
    stopping = true;
    if (limited) limited->async_stop(std::chrono::seconds(5), [](boost::system::error_code) {});
    server.async_stop(std::chrono::seconds(5), [&](boost::system::error_code ec) {
      if (ec) {
        std::cerr << "herald_interop_server: stop: " << ec.message() << '\n';
        exit_code = 1;
      }
      ioc.stop();
    });
  };
  // The handler runs on the connection's strand, the signal handler on the io_context: with one
  // thread running ioc (below) they never run at once, so `stopping` needs no lock.
  server.handle("/stop", [&](herald::Request const& req) {
    stop();
    return text(req, http::status::ok, "stopping");
  });

  net::signal_set signals{ioc, SIGINT, SIGTERM};
  signals.async_wait([&](boost::system::error_code ec, int) {
    if (!ec) stop();
  });

  net::ip::tcp::endpoint ep;
  try {
    ep = server.listen(cli.host, cli.port);
  } catch (std::exception const& e) {
    std::cerr << "cannot listen on " << cli.host << ':' << cli.port << ": " << e.what() << '\n';
    return 1;
  }
  example::announce(cli.host, ep.port());
  if (limited) {
    try {
      auto const lep = limited->listen(cli.host, 0);
      std::cout << "limited on http://" << cli.host << ':' << lep.port() << std::endl;
    } catch (std::exception const& e) {
      std::cerr << "cannot listen on " << cli.host << ": " << e.what() << '\n';
      return 1;
    }
  }

  ioc.run();
  return exit_code;
}
