// herald tail: follow any herald endpoint from the command line and print its events and
// reconnects as they happen (herald::client, docs/clients.md).
//
//   herald_example_tail --url http://127.0.0.1:8080/api/feed
//   herald_example_tail --url ws://127.0.0.1:8080/live --topic room1 --topic room2
//   herald_example_tail --url http://127.0.0.1:8080/poll --transport poll --since 1732451696000002
//
// Options:
//   --url URL              http(s):// for SSE and polling, ws(s):// for WebSocket (required)
//   --transport T          sse | ws | poll (default: ws for ws(s) URLs, sse otherwise)
//   --topic NAME           follow this topic (repeatable; none: what the endpoint serves by default)
//   --since ID             start after this event id (default: from now)
//   --header "Name: value" extra request header, e.g. Authorization (repeatable)
//   --wait SECONDS         polling: long-poll wait (default 25; 0 = short polls every second)
//   --count N              exit after N events
//   --ca FILE              https/wss: trust this CA (PEM) instead of the system's
//   --insecure             https/wss: do not verify the certificate (testing only)
//
// Unlike the server examples, tail takes no --host/--port and prints no "listening on" line
// (the examples/common/cli.hpp convention): it is a client, and --url says where to connect.
// TLS needs OpenSSL: examples/tail/example.cmake links herald::tls when CMake found it
// (HERALD_EXAMPLE_TLS); without it, https and wss URLs report "tls not configured".
//
// Output, one line per happening:
//   #<id> <topic> [<type>] <data>          an event (topic empty on multi-topic SSE streams)
//   ~ reset <topic> cursor=<N> (<reason>)  events up to N may be missing
//   ~ <state> [(<reason>)] [next try in S s]
// Ctrl-C stops cleanly (async_stop).

#include <herald/client.hpp>
#if HERALD_EXAMPLE_TLS
#include <herald/client/tls.hpp>
#endif

#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>

#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <iomanip>
#include <iostream>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace net = boost::asio;
namespace hc = herald::client;

namespace {

struct Args {
  std::string url;
  std::string transport;
  hc::Options options;
  std::optional<std::uint64_t> count;
  std::string ca;
  bool insecure = false;
};

[[noreturn]] void usage(char const* argv0, int code) {
  (code == 0 ? std::cout : std::cerr)
      << "usage: " << argv0
      << " --url URL [--transport sse|ws|poll] [--topic NAME]... [--since ID]\n"
         "       [--header 'Name: value']... [--wait SECONDS] [--count N] [--ca FILE] [--insecure]\n";
  std::exit(code);
}

std::uint64_t number(char const* argv0, std::string const& s) {
  char* end = nullptr;
  auto const v = std::strtoull(s.c_str(), &end, 10);
  if (s.empty() || *end != '\0' || s.front() == '-') usage(argv0, 2);
  return v;
}

Args parse(int argc, char** argv) {
  Args a;
  for (int i = 1; i < argc; ++i) {
    std::string_view const arg = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) usage(argv[0], 2);
      return argv[++i];
    };
    if (arg == "--url") a.url = value();
    else if (arg == "--transport") a.transport = value();
    else if (arg == "--topic") a.options.topics.push_back(value());
    else if (arg == "--since") a.options.since = number(argv[0], value());
    else if (arg == "--count") a.count = number(argv[0], value());
    else if (arg == "--wait") a.options.poll.wait = std::chrono::milliseconds(std::stoll(value()) * 1000);
    else if (arg == "--ca") a.ca = value();
    else if (arg == "--insecure") a.insecure = true;
    else if (arg == "--header") {
      auto const h = value();
      auto const colon = h.find(':');
      if (colon == std::string::npos) usage(argv[0], 2);
      auto v = h.substr(colon + 1);
      while (!v.empty() && v.front() == ' ') v.erase(0, 1);
      a.options.headers.emplace_back(h.substr(0, colon), v);
    } else if (arg == "--help" || arg == "-h") {
      usage(argv[0], 0);
    } else {
      usage(argv[0], 2);
    }
  }
  if (a.url.empty()) usage(argv[0], 2);
  if (a.options.poll.wait.count() == 0) a.options.poll.interval = std::chrono::seconds(1);
  if (a.transport.empty()) a.transport = a.url.starts_with("ws") ? "ws" : "sse";
  if (a.transport != "sse" && a.transport != "ws" && a.transport != "poll") usage(argv[0], 2);
  return a;
}

/// One line per event, with line breaks in the payload shown as \n so each stays one line.
void print_event(herald::Event const& e) {
  std::string data;
  for (char c : e.data) {
    if (c == '\n') data += "\\n";
    else if (c == '\r') data += "\\r";
    else data += c;
  }
  if (e.kind == herald::PayloadKind::binary) data = "<" + std::to_string(e.data.size()) + " bytes>";
  std::cout << '#' << e.id << ' ' << e.topic << ' ' << (e.type.empty() ? "" : "[" + e.type + "] ") << data
            << std::endl;
}

}  // namespace

int main(int argc, char** argv) {
  Args args = parse(argc, argv);
  net::io_context ioc;

#if HERALD_EXAMPLE_TLS
  hc::TlsOptions tls{.verify = !args.insecure};
  if (!args.ca.empty()) {
    tls.context = std::make_shared<net::ssl::context>(net::ssl::context::tls_client);
    tls.context->load_verify_file(args.ca);
  }
  args.options.connector = hc::tls(std::move(tls));
#else
  if (!args.ca.empty() || args.insecure) std::cerr << "tail: built without TLS; --ca and --insecure are ignored\n";
#endif

  std::variant<std::monostate, hc::SseClient, hc::WebSocketClient, hc::PollingClient> client;
  try {
    if (args.transport == "ws") client.emplace<hc::WebSocketClient>(ioc.get_executor(), args.url, args.options);
    else if (args.transport == "poll") client.emplace<hc::PollingClient>(ioc.get_executor(), args.url, args.options);
    else client.emplace<hc::SseClient>(ioc.get_executor(), args.url, args.options);
  } catch (std::exception const& e) {
    std::cerr << "tail: " << e.what() << '\n';
    return 2;
  }

  std::uint64_t seen = 0;
  int exit_code = 0;
  net::signal_set signals{ioc, SIGINT, SIGTERM};
  auto stop = [&] {
    signals.cancel();
    std::visit(
        [](auto& c) {
          if constexpr (!std::is_same_v<std::decay_t<decltype(c)>, std::monostate>)
            c.async_stop([](boost::system::error_code) {});
        },
        client);
  };
  signals.async_wait([&](boost::system::error_code ec, int) {
    if (!ec) stop();
  });

  std::visit(
      [&](auto& c) {
        if constexpr (!std::is_same_v<std::decay_t<decltype(c)>, std::monostate>) {
          c.on_event([&](herald::Event const& e) {
            print_event(e);
            if (args.count && ++seen == *args.count) stop();
          });
          c.on_reset([](hc::Reset const& r) {
            std::cout << "~ reset " << (r.topic.empty() ? "*" : r.topic) << " cursor=" << r.cursor << " ("
                      << r.reason << ")" << std::endl;
          });
          c.on_state([&](hc::State s, boost::system::error_code ec) {
            std::cout << "~ " << hc::to_string(s);
            if (ec) std::cout << " (" << ec.message() << ")";
            if (s == hc::State::reconnecting)
              std::cout << " next try in " << std::fixed << std::setprecision(3)
                        << std::chrono::duration<double>(c.reconnect_delay()).count() << " s";
            std::cout << std::endl;
            if (s == hc::State::closed) {
              if (ec) exit_code = 1;
              signals.cancel();
            }
          });
          if constexpr (std::is_same_v<std::decay_t<decltype(c)>, hc::WebSocketClient>)
            c.on_message([](herald::Message const& m) {
              std::cout << "> " << (m.binary ? "<binary>" : std::string(m.data)) << std::endl;
            });
          c.start();
        }
      },
      client);

  ioc.run();
  return exit_code;
}
