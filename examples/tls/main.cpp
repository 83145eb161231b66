// examples/tls: herald speaking https and wss itself (herald::TlsServer, link herald::tls).
//   /live                WebSocket, SSE and polling on one path (herald::Negotiated), topics
//                        from the query (/live?topic=ticks) or, on a WebSocket, {"subscribe":…}
//   /                    a page that follows "ticks" with EventSource and with a WebSocket
//   POST /publish?topic=T  publishes the body; answers its id
// A JSON tick is published on "ticks" every second.
//
//   openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 30
//     -keyout key.pem -out cert.pem -subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1
//     (one command)
//   herald_example_tls --cert cert.pem --key key.pem --port 8443
//   curl -N --cacert cert.pem 'https://127.0.0.1:8443/live?topic=ticks' -H 'Accept: text/event-stream'

#include <herald/herald.hpp>
#include <herald/tls_server.hpp>
#include <herald/transports/negotiated.hpp>

#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>

#include <chrono>
#include <exception>
#include <functional>
#include <iostream>
#include <stdexcept>
#include <string>

#include "cli.hpp"

namespace net = boost::asio;
namespace http = boost::beast::http;

using Live = herald::Negotiated<herald::WebSocket, herald::Sse, herald::Polling>;

namespace {

char const* const page = R"(<!doctype html>
<meta charset="utf-8"><title>herald over TLS</title>
<h1>herald over TLS</h1>
<p>EventSource: <span id="sse">…</span></p>
<p>WebSocket: <span id="ws">…</span></p>
<script>
const es = new EventSource("/live?topic=ticks");
es.onmessage = (e) => { document.getElementById("sse").textContent = e.data; };
const ws = new WebSocket(`wss://${location.host}/live`);
ws.onopen = () => ws.send(JSON.stringify({ subscribe: "ticks" }));
ws.onmessage = (e) => {
  const m = JSON.parse(e.data);
  if (m.topic === "ticks") document.getElementById("ws").textContent = JSON.stringify(m.data);
};
</script>
)";

http::response<http::string_body> text(unsigned version, http::status status, std::string body,
                                       char const* type = "text/plain; charset=utf-8") {
  http::response<http::string_body> res{status, version};
  res.set(http::field::content_type, type);
  res.set(http::field::cache_control, "no-store");
  res.body() = std::move(body);
  return res;
}

}  // namespace

int main(int argc, char** argv) {
  auto const cli = example::parse_cli(argc, argv,
                                      {{.name = "--cert", .meta = "PEM", .required = true},
                                       {.name = "--key", .meta = "PEM", .required = true}});
  net::io_context ioc{1};  // run by this thread alone: herald then needs no strands

  herald::Hub hub{ioc.get_executor()};
  herald::Channel<Live> live{hub, "/live"};
  live.on_message([](herald::Session& s, herald::Message const& m) { s.send("ack:" + std::string(m.data)); });

  herald::TlsServer server{ioc.get_executor()};
  server.add(live);
  server.handle("/", [](herald::Request const& req) {
    return text(req.version(), http::status::ok, page, "text/html; charset=utf-8");
  });
  server.handle("/publish", [&hub](herald::Request const& req) {
    if (req.method() != http::verb::post)
      return text(req.version(), http::status::method_not_allowed, "POST /publish?topic=T\n");
    auto const topic = herald::query_param(req.target(), "topic");
    if (!topic) return text(req.version(), http::status::bad_request, "name one topic: ?topic=T\n");
    try {
      return text(req.version(), http::status::ok, std::to_string(hub.publish(*topic, req.body())) + "\n");
    } catch (std::invalid_argument const& e) {
      return text(req.version(), http::status::bad_request, std::string(e.what()) + "\n");
    }
  });

  std::uint16_t port = 0;
  try {
    // A certificate or key that cannot be used is an exception here, naming the file.
    port = server.listen(cli.host, cli.port,
                         {.certificate_chain_file = cli.flag("--cert"), .private_key_file = cli.flag("--key")})
               .port();
  } catch (std::exception const& e) {
    std::cerr << "cannot listen on " << cli.host << ':' << cli.port << ": " << e.what() << '\n';
    return 1;
  }
  example::announce(cli.host, port, "https");

  net::steady_timer timer{ioc};
  unsigned long tick = 0;
  std::function<void()> schedule = [&] {
    timer.expires_after(std::chrono::seconds(1));
    timer.async_wait([&](boost::system::error_code ec) {
      if (ec) return;
      hub.publish("ticks", R"({"tick":)" + std::to_string(++tick) + "}");
      schedule();
    });
  };
  schedule();

  net::signal_set signals{ioc, SIGINT, SIGTERM};
  signals.async_wait([&](boost::system::error_code, int) {
    timer.cancel();
    server.async_stop(std::chrono::seconds(5), [](boost::system::error_code) {});
  });

  ioc.run();
}
