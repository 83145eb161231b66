// herald::Server over real loopback sockets: routing, keep-alive, limits, errors, shutdown.

#include <herald/herald.hpp>
#include <herald/metrics.hpp>
#include <herald/transports/negotiated.hpp>

#include <boost/asio/io_context.hpp>
#include <boost/asio/thread_pool.hpp>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "http_client.hpp"
#include "loopback.hpp"

namespace {

namespace net = boost::asio;
namespace http = boost::beast::http;
using tcp = net::ip::tcp;
using test::run_until;

herald::Handler text(std::string body) {
  return [body = std::move(body)](herald::Request const& req) {
    http::response<http::string_body> res{http::status::ok, req.version()};
    res.set(http::field::content_type, "text/plain");
    res.body() = body + " " + std::string(req.method_string());
    return res;
  };
}

std::size_t count(std::string const& s, std::string const& what) {
  std::size_t n = 0;
  for (auto p = s.find(what); p != std::string::npos; p = s.find(what, p + 1)) ++n;
  return n;
}

}  // namespace

TEST_CASE("server: routes by path, 404 for unknown paths, keep-alive for plain requests", "[e2e][server]") {
  net::io_context ioc;
  herald::Server server{ioc.get_executor()};
  server.handle("/hello", text("hi"));
  auto const ep = server.listen("127.0.0.1", 0);
  CHECK(ep.port() != 0);
  CHECK(server.local_endpoint() == ep);

  // Three requests on one connection, the middle one for an unknown path.
  test::RawClient c{ioc};
  c.request(ep,
            "GET /hello?x=1 HTTP/1.1\r\nHost: h\r\n\r\n"
            "GET /nope HTTP/1.1\r\nHost: h\r\n\r\n"
            "POST /hello HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nabc");
  REQUIRE(run_until(ioc, [&] { return count(c.data(), "HTTP/1.1 ") == 3 && c.data().ends_with("hi POST"); }));
  CHECK(c.data().starts_with("HTTP/1.1 200 OK"));
  CHECK(count(c.data(), "HTTP/1.1 404 Not Found") == 1);
  CHECK(c.data().find(R"({"error":"not found"})") != std::string::npos);
  CHECK_FALSE(c.closed());

  test::RawClient head{ioc};
  head.request(ep, "HEAD /hello HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n");
  REQUIRE(run_until(ioc, [&] { return head.closed(); }));
  CHECK(head.status() == 200);
  CHECK(head.header("Content-Length") == "7");
  CHECK(head.body().empty());

  CHECK_THROWS_AS(server.handle("/hello", text("again")), std::invalid_argument);
  CHECK_THROWS_AS(server.handle("relative", text("x")), std::invalid_argument);
}

TEST_CASE("server: an async route answers later, once, with its length, on a kept-alive connection",
          "[e2e][server]") {
  net::io_context ioc;
  herald::Server server{ioc.get_executor()};
  std::vector<herald::Reply> waiting;
  server.handle_async("/later", [&](herald::Request const& req, herald::Reply reply) {
    if (req.target() == "/later?now") {
      http::response<http::string_body> res{http::status::ok, req.version()};
      res.body() = "at once";
      return reply(std::move(res));
    }
    waiting.push_back(std::move(reply));
  });
  server.handle_async("/throws", [](herald::Request const&, herald::Reply) { throw std::runtime_error("x"); });
  server.handle("/x", text("x"));
  auto const ep = server.listen("127.0.0.1", 0);

  test::RawClient c{ioc};
  c.request(ep, "GET /later HTTP/1.1\r\nHost: h\r\n\r\n");
  REQUIRE(run_until(ioc, [&] { return waiting.size() == 1; }));
  CHECK(c.data().empty());  // nothing before the reply
  http::response<http::string_body> res{http::status::accepted, 11};
  res.body() = "done later";
  waiting[0](res);
  waiting[0](res);  // a second reply does nothing
  REQUIRE(run_until(ioc, [&] { return c.data().ends_with("done later"); }));
  CHECK(c.status() == 202);
  CHECK(c.header("Content-Length") == "10");
  CHECK(count(c.data(), "HTTP/1.1 ") == 1);
  // Keep-alive goes on: the next request on the same connection is answered.
  c.send("GET /later?now HTTP/1.1\r\nHost: h\r\n\r\n");
  REQUIRE(run_until(ioc, [&] { return c.data().ends_with("at once"); }));
  CHECK_FALSE(c.closed());

  test::RawClient boom{ioc};
  boom.get(ep, "/throws");
  REQUIRE(run_until(ioc, [&] { return boom.closed(); }));
  CHECK(boom.status() == 500);

  // A client that leaves before the reply: the reply is dropped, nothing breaks.
  test::RawClient gone{ioc};
  gone.get(ep, "/later");
  REQUIRE(run_until(ioc, [&] { return waiting.size() == 2; }));
  gone.close();
  test::RawClient fence{ioc};
  fence.request(ep, "GET /x HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n");
  REQUIRE(run_until(ioc, [&] { return fence.closed(); }));
  waiting[1](res);
  test::drain(ioc);
  CHECK(fence.status() == 200);
  CHECK_THROWS_AS(server.handle_async("/later", [](herald::Request const&, herald::Reply) {}), std::invalid_argument);
}

TEST_CASE("server: malformed and oversized requests get an error and a close", "[e2e][server]") {
  net::io_context ioc;
  herald::Server server{ioc.get_executor(), {.header_limit = 1024, .body_limit = 16}};
  server.handle("/x", text("x"));
  auto const ep = server.listen("127.0.0.1", 0);

  struct Case {
    std::string request;
    int status;
  };
  std::vector<Case> cases{
      {"NOT HTTP AT ALL\r\n\r\n", 400},
      {"GET /x HTTP/1.1\r\nHost: h\r\nX-Big: " + std::string(2000, 'a') + "\r\n\r\n", 431},
      {"POST /x HTTP/1.1\r\nHost: h\r\nContent-Length: 100\r\n\r\n" + std::string(100, 'b'), 413},
  };
  for (auto const& tc : cases) {
    test::RawClient c{ioc};
    c.request(ep, tc.request);
    REQUIRE(run_until(ioc, [&] { return c.closed(); }));
    INFO(tc.request.substr(0, 40));
    CHECK(c.status() == tc.status);
  }

  // A handler that throws answers 500; the server carries on.
  server.handle("/boom", [](herald::Request const&) -> http::response<http::string_body> {
    throw std::runtime_error("boom");
  });
  test::RawClient boom{ioc};
  boom.get(ep, "/boom");
  REQUIRE(run_until(ioc, [&] { return boom.closed(); }));
  CHECK(boom.status() == 500);
  test::RawClient after{ioc};
  after.request(ep, "GET /x HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n");
  REQUIRE(run_until(ioc, [&] { return after.closed(); }));
  CHECK(after.status() == 200);
}

TEST_CASE("server: idle connections time out, the connection limit answers 503", "[e2e][server]") {
  net::io_context ioc;
  // Two servers, so that neither check races the other's timer: the limit is checked with a
  // request timeout no loaded machine reaches, the timeout on a server of its own.
  herald::Server limited{ioc.get_executor(), {.max_connections = 1, .retry_after = std::chrono::seconds(7)}};
  herald::Server quick{ioc.get_executor(), {.request_timeout = std::chrono::milliseconds(50)}};
  limited.handle("/x", text("x"));
  quick.handle("/x", text("x"));
  auto const ep = limited.listen("127.0.0.1", 0);
  auto const quick_ep = quick.listen("127.0.0.1", 0);

  test::RawClient idle{ioc};
  idle.request(ep, "GET /x HTTP/1.1\r\nHost: h\r\n");  // never finishes its header
  REQUIRE(run_until(ioc, [&] { return idle.connected(); }));
  test::RawClient over{ioc};
  over.get(ep, "/x");
  REQUIRE(run_until(ioc, [&] { return over.closed(); }));
  CHECK(over.status() == 503);
  CHECK(over.header("Retry-After") == "7");
  CHECK_FALSE(idle.closed());
  idle.close();  // frees the slot
  // The slot frees once the server reads idle's end; until then a request may still get 503.
  std::optional<test::RawClient> next;
  int status = 0;
  REQUIRE(run_until(ioc, [&] {
    if (!next) {
      next.emplace(ioc);
      next->request(ep, "GET /x HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n");
    }
    if (!next->closed()) return false;
    status = next->status();
    next.reset();
    return status != 503;
  }));
  CHECK(status == 200);

  test::RawClient slow{ioc};
  slow.request(quick_ep, "GET /x HTTP/1.1\r\nHost: h\r\n");  // never finishes its header
  REQUIRE(run_until(ioc, [&] { return slow.closed(); }));
  CHECK(slow.data().empty());
}

TEST_CASE("server: over its connection limit a request is read and refused so that its client retries", "[e2e][server]") {
  net::io_context ioc;
  herald::Hub hub{ioc.get_executor()};
  herald::Channel<herald::Sse> feed{hub, "/feed", {.allowed_origins = {"http://app.example"}}};
  herald::Channel<herald::WebSocket> live{hub, "/live"};
  herald::Channel<herald::Polling> poll{hub, "/poll"};
  // A held long poll takes the only slot (streams handed to a channel leave the server's count).
  herald::Server server{ioc.get_executor(), {.max_connections = 1,
                                             .retry_after = std::chrono::seconds(7),
                                             .request_timeout = std::chrono::milliseconds(300)}};
  server.add(feed).add(live).add(poll);
  server.handle("/x", text("x"));
  auto const ep = server.listen("127.0.0.1", 0);
  test::RawClient held{ioc};
  held.get(ep, "/poll?topic=t&wait=30");
  REQUIRE(run_until(ioc, [&] { return poll.connections() == 1; }));

  // An EventSource: a stream that ends with retry:, which it follows (a 503 would end it for
  // good), with the channel's CORS headers so a cross-origin page can read it.
  test::RawClient es{ioc};
  es.get(ep, "/feed?topic=t", "Accept: text/event-stream\r\nOrigin: http://app.example\r\n");
  REQUIRE(run_until(ioc, [&] { return es.closed(); }));
  CHECK(es.status() == 200);
  CHECK(es.header("Content-Type") == "text/event-stream");
  CHECK(es.header("Retry-After") == "7");
  CHECK(es.header("Access-Control-Allow-Origin") == "http://app.example");
  CHECK(es.body() == ": refused: too many connections\nretry: 7000\n\n");

  // A WebSocket upgrade and anything else: 503 with Retry-After, never a 101.
  test::RawClient ws{ioc};
  ws.get(ep, "/live?topic=t",
         "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
         "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n");
  test::RawClient plain{ioc};
  plain.get(ep, "/x");
  REQUIRE(run_until(ioc, [&] { return ws.closed() && plain.closed(); }));
  for (auto* c : {&ws, &plain}) {
    CHECK(c->status() == 503);
    CHECK(c->header("Retry-After") == "7");
    CHECK(nlohmann::json::parse(c->body()) == nlohmann::json{{"error", "too many connections"}});
  }
  CHECK(ws.data().find("101") == std::string::npos);

  // One that sends nothing costs the server a short wait, then is closed unanswered; one whose
  // header is over the refusal's 4 KiB gets the plain 503.
  test::RawClient mute{ioc};
  mute.request(ep, "");
  test::RawClient big{ioc};
  big.get(ep, "/feed", "Accept: text/event-stream\r\nX-Big: " + std::string(5000, 'a') + "\r\n");
  REQUIRE(run_until(ioc, [&] { return mute.closed() && big.closed(); }));
  CHECK(mute.data().empty());
  CHECK(big.status() == 503);

  // The slot frees: the EventSource's next try is a stream.
  auto const id = hub.publish("t", "free");
  REQUIRE(run_until(ioc, [&] { return held.closed() || held.body().find(std::to_string(id)) != std::string::npos; }));
  held.close();
  std::optional<test::RawClient> next;
  REQUIRE(run_until(ioc, [&] {
    if (next && next->closed()) next.reset();  // refused while the server had not seen the slot free
    if (!next) {
      next.emplace(ioc);
      next->get(ep, "/feed?topic=t", "Accept: text/event-stream\r\nOrigin: http://app.example\r\n");
    }
    return feed.connections() == 1;
  }));
  auto const later = hub.publish("t", "hello");
  REQUIRE(run_until(ioc, [&] { return next->body().find("id: " + std::to_string(later)) != std::string::npos; }));
}

TEST_CASE("server: async_stop closes idle keep-alive connections and stops accepting", "[e2e][server]") {
  net::io_context ioc;
  herald::Server server{ioc.get_executor()};
  server.handle("/x", text("x"));
  auto const ep = server.listen("127.0.0.1", 0);
  test::RawClient kept{ioc};
  kept.get(ep, "/x");
  REQUIRE(run_until(ioc, [&] { return kept.data().ends_with("x GET"); }));

  std::optional<boost::system::error_code> done;
  server.async_stop(std::chrono::seconds(5), [&](boost::system::error_code ec) { done = ec; });
  REQUIRE(run_until(ioc, [&] { return done.has_value() && kept.closed(); }));
  CHECK(!*done);
}

TEST_CASE("server: async_stop cuts what does not close within the grace period", "[e2e][server]") {
  // A raw endpoint-free route cannot hold a connection, so use an SSE stream whose client never
  // reads and a zero grace period.
  net::io_context ioc;
  herald::Hub hub{ioc.get_executor()};
  herald::Channel<herald::Sse> feed{hub, "/s"};
  herald::Server server{ioc.get_executor()};
  server.add(feed);
  auto const ep = server.listen("127.0.0.1", 0);
  test::RawClient c{ioc};
  c.get(ep, "/s");
  REQUIRE(run_until(ioc, [&] { return feed.connections() == 1; }));

  std::optional<boost::system::error_code> done;
  server.async_stop(std::chrono::milliseconds(0), [&](boost::system::error_code ec) { done = ec; });
  REQUIRE(run_until(ioc, [&] { return done.has_value() && c.closed() && feed.connections() == 0; }));
  // Either the stream closed in time or it was cut: both leave nothing open.
  CHECK((!*done || *done == net::error::timed_out));
}

TEST_CASE("server: listen reports failures as exceptions", "[e2e][server]") {
  net::io_context ioc;
  herald::Server a{ioc.get_executor()};
  auto const ep = a.listen("127.0.0.1", 0);
  herald::Server b{ioc.get_executor()};
  CHECK_THROWS_AS(b.listen("127.0.0.1", ep.port()), boost::system::system_error);
  herald::Server c{ioc.get_executor()};
  CHECK_THROWS(c.listen("not-an-address", 0));
}


TEST_CASE("metrics: a hub's and its channels' counters, per transport, on a Server route", "[e2e][server][metrics]") {
  net::io_context ioc{1};
  herald::Hub hub{ioc.get_executor(), {.first_id = 1}};
  herald::Channel<herald::Sse> feed{hub, "/feed"};
  herald::Channel<herald::Negotiated<herald::WebSocket, herald::Polling>> live{hub, "/live"};
  herald::Metrics metrics;
  metrics.add(hub, "main").add(feed).add(live);
  herald::Server server{ioc.get_executor()};
  server.add(feed).add(live);
  server.handle("/metrics", metrics.handler());
  auto const ep = server.listen("127.0.0.1", 0);

  test::RawClient sse{ioc}, refused{ioc}, poll{ioc};
  sse.get(ep, "/feed?topic=t&since=0", "Accept: text/event-stream\r\n");
  refused.get(ep, "/feed?topic=t&since=x", "Accept: text/event-stream\r\n");
  auto const id = hub.publish("t", "one");
  REQUIRE(run_until(ioc, [&] { return feed.connections() == 1 && refused.closed(); }));
  REQUIRE(run_until(ioc, [&] { return sse.body().find("id: " + std::to_string(id)) != std::string::npos; }));
  poll.get(ep, "/live?topic=t&since=0");
  REQUIRE(run_until(ioc, [&] { return poll.body().find("\"cursor\"") != std::string::npos; }));

  test::RawClient scrape{ioc};
  scrape.get(ep, "/metrics");
  REQUIRE(run_until(ioc, [&] { return scrape.body().find("herald_refusals_total") != std::string::npos; }));
  CHECK(scrape.header("Content-Type") == "text/plain; version=0.0.4; charset=utf-8");
  auto const text = scrape.body();
  auto has = [&](std::string const& line) {
    INFO(line);
    return text.find(line + "\n") != std::string::npos;
  };
  CHECK(has("herald_events_published_total{hub=\"main\"} 1"));
  CHECK(has("herald_connections{channel=\"/feed\",transport=\"sse\"} 1"));
  CHECK(has("herald_connections_opened_total{channel=\"/feed\",transport=\"sse\"} 1"));
  CHECK(has("herald_subscriptions{channel=\"/feed\",transport=\"sse\"} 1"));
  CHECK(has("herald_deliveries_total{channel=\"/feed\",transport=\"sse\"} 1"));
  CHECK(has("herald_refusals_total{channel=\"/feed\",transport=\"sse\",status=\"400\",reason=\"bad cursor\"} 1"));
  // The negotiated channel: its members' series, each with its transport.
  CHECK(has("herald_deliveries_total{channel=\"/live\",transport=\"polling\"} 1"));
  CHECK(has("herald_connections{channel=\"/live\",transport=\"websocket\"} 0"));
  CHECK(text.find("herald_written_bytes_total{channel=\"/feed\",transport=\"sse\"} 0\n") == std::string::npos);
  // The slow-consumer families are there even before any queue overflowed: a dashboard's rate()
  // must not start from a missing series.
  CHECK(has("herald_overflows_total{channel=\"/feed\",transport=\"sse\",policy=\"disconnect\"} 0"));
  CHECK(std::count(text.begin(), text.end(), '#') == 2 * 16);  // HELP and TYPE once per family
  test::RawClient post{ioc};
  post.request(ep, "POST /metrics HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n");
  REQUIRE(run_until(ioc, [&] { return post.status() != 0; }));
  CHECK(post.status() == 405);
}

TEST_CASE("server: allowed_hosts answers 421 to a Host it does not list, on every transport, before any stream",
          "[e2e][server][auth]") {
  net::io_context ioc;
  herald::Hub hub{ioc.get_executor(), {.first_id = 1}};
  herald::ChannelOptions const co{.allowed_hosts = {"app.example", "*.example.org", "[::1]:8080"}};
  herald::Channel<herald::Sse> feed{hub, "/sse", co};
  herald::Channel<herald::WebSocket> live{hub, "/ws", co};
  herald::Channel<herald::Polling> poll{hub, "/poll", co};
  herald::Server server{ioc.get_executor()};
  server.add(feed).add(live).add(poll);
  auto const ep = server.listen("127.0.0.1", 0);

  std::string const ws_headers =
      "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
      "Sec-WebSocket-Version: 13\r\n";
  struct Path {
    std::string target;
    std::string headers;
    int ok;
  };
  std::vector<Path> const paths{{"/sse?topic=t", "Accept: text/event-stream\r\n", 200},
                                {"/ws?topic=t", ws_headers, 101},
                                {"/poll?topic=t&since=0", "", 200}};
  auto ask = [&](Path const& p, std::string const& host_lines) {
    auto c = std::make_unique<test::RawClient>(ioc);
    c->request(ep, "GET " + p.target + " HTTP/1.1\r\n" + host_lines + p.headers + "\r\n");
    REQUIRE(run_until(ioc, [&] { return c->closed() || c->has_headers(); }));
    return c;
  };
  for (auto const& p : paths) {
    INFO(p.target);
    // A DNS-rebinding page: its Origin matches its Host, which is not one of ours.
    for (std::string host : {"Host: evil.example\r\nOrigin: http://evil.example\r\n", "Host: evil.example:80\r\n",
                             "Host: example.org\r\n", "Host: app.example.evil\r\n", "Host: [::1]:8081\r\n", ""}) {
      INFO(host);
      auto c = ask(p, host);
      REQUIRE(run_until(ioc, [&] { return c->closed() || c->body().ends_with("}\n"); }));
      CHECK(c->status() == 421);
      CHECK(nlohmann::json::parse(c->body())["error"] == "host not allowed");
      CHECK(c->data().find("101 Switching") == std::string::npos);
    }
    for (std::string host : {"Host: app.example\r\n", "Host: APP.example:8443\r\n", "Host: app.example.\r\n",
                             "Host: a.b.example.org\r\n", "Host: [::1]:8080\r\n",
                             "Host: app.example\r\nOrigin: http://app.example\r\n"}) {
      INFO(host);
      CHECK(ask(p, host)->status() == p.ok);
    }
    // The Host passed, so the same-origin rule compares a trusted name.
    auto cross = ask(p, "Host: app.example\r\nOrigin: http://evil.example\r\n");
    CHECK(cross->status() == 403);
  }

  CHECK_THROWS_AS(herald::Channel<herald::Sse>(hub, "/bad", {.allowed_hosts = {"a b"}}), std::invalid_argument);
  CHECK_THROWS_AS(herald::Channel<herald::Sse>(hub, "/bad", {.allowed_hosts = {""}}), std::invalid_argument);
}
