// Several transports on one path (herald::Negotiated): WebSocket, SSE and polling clients of one
// hub see the same events; POSTed messages reach on_message; the negotiation answer; fallbacks.

#include <herald/herald.hpp>
#include <herald/transports/negotiated.hpp>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/read.hpp>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "fixture.hpp"
#include "http_client.hpp"
#include "loopback.hpp"
#include "sse_reader.hpp"
#include "ws_client.hpp"

namespace {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = boost::beast::http;
using tcp = net::ip::tcp;
using json = nlohmann::json;
using test::run_until;
using namespace std::chrono_literals;

using Live = herald::Negotiated<herald::WebSocket, herald::Sse, herald::Polling>;

Live::options live_options() {
  Live::options o;
  o.of<herald::Sse>().retry = 100ms;
  o.of<herald::Polling>().max_wait = 5s;
  o.max_message = 64;
  return o;
}

struct Fixture : test::ChannelFixture<Live> {
  explicit Fixture(herald::ChannelOptions copts = {}, Live::options topts = live_options())
      : ChannelFixture("/live", std::move(copts), std::move(topts), {}) {
    // WebSocket and SSE call on_open once their subscriptions are live (a WebSocket's ?topic=
    // subscriptions are not acknowledged on the wire), so tests wait on this before publishing.
    live.on_open([this](herald::Session&) { ++opened; });
  }
  herald::Channel<Live>& live = channel;
  int opened = 0;

  /// A complete request with a body (Content-Length set).
  std::string post(std::string target, std::string body, std::string headers = {}) const {
    return "POST " + target + " HTTP/1.1\r\n" + host() + headers + "Content-Length: " +
           std::to_string(body.size()) + "\r\n\r\n" + body;
  }
};

/// A response is complete once its Content-Length bytes are there (or the server closed).
bool complete(test::RawClient const& c) {
  if (!c.has_headers()) return c.closed();
  auto const len = c.header("Content-Length");
  if (len.empty()) return c.status() == 204 || c.status() == 304 || c.closed();
  return c.body().size() >= std::stoul(len);
}

struct SseClient {
  explicit SseClient(net::io_context& ioc) : raw(ioc) {}
  test::RawClient raw;
  test::SseReader reader;
  std::vector<test::SseEvent> const& events() {
    reader.feed_all(raw.body());
    return reader.events();
  }
};

/// What a client saw of one event, transport-independent.
struct Seen {
  std::string id;
  std::string topic;
  json data;
  bool operator==(Seen const&) const = default;
};

json as_json(std::string const& text) {
  auto j = json::parse(text, nullptr, false);
  return j.is_discarded() ? json(text) : j;
}

std::vector<Seen> ws_seen(test::WsClient const& ws) {
  std::vector<Seen> out;
  for (auto const& j : ws.texts())
    if (j.is_object() && j.contains("id"))
      out.push_back({std::to_string(j["id"].get<std::uint64_t>()), j["topic"], j["data"]});
  return out;
}

std::vector<Seen> sse_seen(SseClient& c, std::string const& topic) {
  std::vector<Seen> out;
  for (auto const& e : c.events()) out.push_back({e.id, topic, as_json(e.data)});
  return out;
}

std::vector<Seen> poll_seen(json const& answer) {
  std::vector<Seen> out;
  for (auto const& e : answer["events"])
    out.push_back({std::to_string(e["id"].get<std::uint64_t>()), e["topic"], e["data"]});
  return out;
}

}  // namespace

TEST_CASE("negotiated: one publish sequence reaches WebSocket, SSE and polling clients identically",
          "[e2e][negotiated]") {
  Fixture f;
  test::WsClient ws(f.ioc);
  ws.connect(f.ep, "/live?topic=orders");
  SseClient sse(f.ioc);
  sse.raw.get(f.ep, "/live?topic=orders", "Accept: text/event-stream\r\n");
  test::RawClient first_poll(f.ioc);
  first_poll.get(f.ep, "/live?topic=orders");
  REQUIRE(run_until(f.ioc, [&] {
    return f.opened == 2 && ws.open() && sse.raw.has_headers() && complete(first_poll);
  }));
  CHECK(ws.status() == 101);
  CHECK(sse.raw.header("Content-Type") == "text/event-stream");
  REQUIRE(first_poll.status() == 200);
  auto const cursor = json::parse(first_poll.body())["cursor"].get<std::uint64_t>();
  REQUIRE(run_until(f.ioc, [&] { return f.live.connections() == 2; }));  // WS + SSE, one registry

  f.live.publish("orders", R"({"n":1})");
  f.live.publish("other", R"({"n":"not subscribed"})");
  f.live.publish("orders", "plain text");
  f.live.publish("orders", R"([1,2,3])", {.type = "batch"});
  f.live.publish("orders", R"({"n":4,"s":"ü"})");
  auto const last = f.live.publish("orders", R"("sentinel")");

  test::RawClient poll(f.ioc);
  poll.get(f.ep, "/live?topic=orders&since=" + std::to_string(cursor));
  REQUIRE(run_until(f.ioc, [&] {
    return ws.saw_id(last) && !sse.events().empty() && sse.events().back().id == std::to_string(last) &&
           complete(poll);
  }));
  REQUIRE(poll.status() == 200);
  auto const from_ws = ws_seen(ws);
  auto const from_sse = sse_seen(sse, "orders");
  auto const from_poll = poll_seen(json::parse(poll.body()));
  REQUIRE(from_ws.size() == 5);
  CHECK(from_ws == from_sse);
  CHECK(from_ws == from_poll);
  CHECK(from_ws[1].data == json("plain text"));
  CHECK(sse.events()[2].type == "batch");
}

TEST_CASE("negotiated: POST reaches the same on_message as WebSocket, with replies in the response",
          "[e2e][negotiated]") {
  Fixture f;
  std::vector<std::string> got;
  f.live.on_message([&](herald::Session& s, herald::Message const& m) {
    got.emplace_back(m.data);
    CHECK(s.id() != 0);
    s.send("ack:" + std::string(m.data));
    s.send(R"({"quoted":"x"})");
    if (m.binary) s.send_binary(std::string("\x00\x01", 2));
    f.live.publish("chat", m.data);  // degraded clients' messages reach everyone
  });
  test::WsClient ws(f.ioc);
  ws.connect(f.ep, "/live?topic=chat");
  REQUIRE(run_until(f.ioc, [&] { return f.opened == 1; }));

  test::RawClient post(f.ioc);
  post.request(f.ep, f.post("/live", "hello", "Content-Type: text/plain\r\n"));
  REQUIRE(run_until(f.ioc, [&] { return complete(post); }));
  CHECK(post.status() == 200);
  CHECK(post.header("Content-Type") == "application/json");
  CHECK(json::parse(post.body()) == json::array({"ack:hello", R"({"quoted":"x"})"}));
  CHECK(post.header("Connection") != "close");

  test::RawClient bin(f.ioc);
  bin.request(f.ep, f.post("/live", std::string("a\xff", 2), "Content-Type: application/octet-stream\r\n"));
  REQUIRE(run_until(f.ioc, [&] { return complete(bin); }));
  CHECK(bin.status() == 200);
  // "ack:a\xff" is not UTF-8, so that text reply is dropped; the binary one goes as base64.
  CHECK(json::parse(bin.body()) == json::array({R"({"quoted":"x"})", json{{"binary", "AAE="}}}));

  ws.send("from-ws");
  REQUIRE(run_until(f.ioc, [&] { return got.size() == 3 && ws.count() >= 5; }));
  CHECK(got == std::vector<std::string>{"hello", std::string("a\xff", 2), "from-ws"});
  bool replied = false;
  for (auto const& fr : ws.frames()) replied = replied || fr.data == "ack:from-ws";
  CHECK(replied);
  CHECK(ws.count_with("id") >= 2);  // the published "hello" and the binary head
}

TEST_CASE("negotiated: POST obeys Origin, authorize, the size limit and the handler's outcome",
          "[e2e][negotiated]") {
  herald::ChannelOptions copts;
  copts.allowed_origins = {"http://good.example"};
  copts.authorize = [](herald::Request const& req) {
    return req[http::field::authorization] == "Bearer ok" ? herald::Verdict::allow("alice")
                                                            : herald::Verdict::deny(herald::error::unauthorized);
  };
  Fixture f{copts};
  std::string principal;
  f.live.on_message([&](herald::Session& s, herald::Message const& m) {
    principal = s.principal();
    if (m.data == "throw") throw std::runtime_error("boom");
    if (m.data == "close") s.close();
  });
  auto const auth = std::string("Authorization: Bearer ok\r\n");
  auto status_of = [&](std::string request) {
    test::RawClient c(f.ioc);
    c.request(f.ep, std::move(request));
    REQUIRE(run_until(f.ioc, [&] { return complete(c); }));
    return std::make_pair(c.status(), c.header("Connection"));
  };
  CHECK(status_of(f.post("/live", "hi")).first == 401);
  CHECK(status_of(f.post("/live", "hi", auth + "Origin: http://evil.example\r\n")).first == 403);
  CHECK(status_of(f.post("/live", std::string(65, 'x'), auth)).first == 413);
  CHECK(status_of(f.post("/live", std::string("\xc3\x28", 2), auth)).first == 400);
  CHECK(status_of(f.post("/live", "throw", auth)).first == 500);
  CHECK(status_of(f.post("/live", "close", auth)) == std::make_pair(200, std::string("close")));
  auto const ok = status_of(f.post("/live", "hi", auth + "Origin: http://good.example\r\n"));
  CHECK(ok.first == 200);
  CHECK(principal == "alice");
  // The same hook guards the streams: an SSE GET without credentials gets 401 before any byte.
  CHECK(status_of("GET /live HTTP/1.1\r\n" + f.host() + "Accept: text/event-stream\r\n\r\n").first == 401);

  // A channel with no message handler refuses messages.
  herald::Channel<Live> quiet{f.hub, "/quiet"};
  f.server.add(quiet);
  CHECK(status_of(f.post("/quiet", "hi")).first == 405);
}

TEST_CASE("negotiated: the negotiation answer and the CORS preflight", "[e2e][negotiated]") {
  herald::ChannelOptions copts;
  copts.allowed_origins = {"http://good.example"};
  Fixture f{copts};
  f.live.on_message([](herald::Session&, herald::Message const&) {});
  auto const last = f.live.publish("orders", "x");

  test::RawClient neg(f.ioc);
  neg.get(f.ep, "/live?negotiate");
  REQUIRE(run_until(f.ioc, [&] { return complete(neg); }));
  REQUIRE(neg.status() == 200);
  auto const j = json::parse(neg.body());
  CHECK(j["transports"] == json::array({"websocket", "sse", "polling"}));
  CHECK(j["messages"] == true);
  CHECK(j["max_message"] == 64);
  CHECK(j["cursor"] == last);

  test::RawClient pre(f.ioc);
  pre.request(f.ep, "OPTIONS /live HTTP/1.1\r\n" + f.host() +
                        "Origin: http://good.example\r\nAccess-Control-Request-Method: POST\r\n\r\n");
  REQUIRE(run_until(f.ioc, [&] { return complete(pre); }));
  CHECK(pre.status() == 204);
  CHECK(pre.header("Access-Control-Allow-Origin") == "http://good.example");
  CHECK(pre.header("Access-Control-Allow-Credentials") == "true");
  CHECK(pre.header("Access-Control-Allow-Methods").find("POST") != std::string::npos);
  CHECK(pre.header("Access-Control-Allow-Headers").find("Content-Type") != std::string::npos);

  test::RawClient bad(f.ioc);
  bad.request(f.ep, "DELETE /live HTTP/1.1\r\n" + f.host() + "\r\n");
  REQUIRE(run_until(f.ioc, [&] { return complete(bad); }));
  CHECK(bad.status() == 405);
  CHECK(bad.header("Allow") == "GET, HEAD, OPTIONS, POST");
}

TEST_CASE("negotiated: an origin allowed by \"*\" alone gets no credentials", "[e2e][negotiated]") {
  herald::ChannelOptions copts;
  copts.allowed_origins = {"*"};
  Fixture f{copts};
  test::RawClient neg(f.ioc), pre(f.ioc);
  neg.request(f.ep, "GET /live?negotiate HTTP/1.1\r\n" + f.host() + "Origin: https://evil.example\r\n\r\n");
  pre.request(f.ep, "OPTIONS /live HTTP/1.1\r\n" + f.host() +
                        "Origin: https://evil.example\r\nAccess-Control-Request-Method: POST\r\n\r\n");
  REQUIRE(run_until(f.ioc, [&] { return complete(neg) && complete(pre); }));
  CHECK(neg.status() == 200);
  CHECK(pre.status() == 204);
  for (auto const* c : {&neg, &pre}) {
    CHECK(c->header("Access-Control-Allow-Origin") == "*");
    CHECK(c->header("Access-Control-Allow-Credentials").empty());
  }
}

TEST_CASE("negotiated: forced fallbacks resume across transports with no gap and no duplicate",
          "[e2e][negotiated]") {
  Fixture f;
  // Without a WebSocket member an upgrade is refused as plain HTTP (what a client behind a proxy
  // that breaks upgrades sees as a failure), and the client falls back on the same path.
  net::io_context& ioc = f.ioc;
  using Degraded = herald::Negotiated<herald::Sse, herald::Polling>;
  static_assert(Degraded::capabilities.client_to_server && !Degraded::capabilities.binary);
  herald::Channel<Degraded> degraded{f.hub, "/degraded"};
  f.server.add(degraded);
  test::WsClient refused(ioc);
  refused.connect(f.ep, "/degraded?topic=t");
  REQUIRE(run_until(ioc, [&] { return refused.failed(); }));

  // WebSocket first: events 1..3.
  test::WsClient ws(ioc);
  ws.connect(f.ep, "/live?topic=t");
  REQUIRE(run_until(ioc, [&] { return f.opened == 1; }));
  std::vector<herald::EventId> ids;
  for (int i = 0; i < 3; ++i) ids.push_back(f.live.publish("t", std::to_string(i)));
  REQUIRE(run_until(ioc, [&] { return ws.saw_id(ids.back()); }));
  ws.drop();
  for (int i = 3; i < 6; ++i) ids.push_back(f.live.publish("t", std::to_string(i)));

  // Falls back to SSE with Last-Event-ID: gets 4..6 exactly once.
  SseClient sse(ioc);
  sse.raw.get(f.ep, "/live?topic=t", "Accept: text/event-stream\r\nLast-Event-ID: " + std::to_string(ids[2]) + "\r\n");
  REQUIRE(run_until(ioc, [&] { return sse.events().size() == 3; }));
  for (std::size_t i = 0; i < 3; ++i) CHECK(sse.events()[i].id == std::to_string(ids[3 + i]));
  sse.raw.close();
  ids.push_back(f.live.publish("t", "6"));

  // Then to long polling with since: held, then answered by the next publish.
  test::RawClient poll(ioc);
  poll.get(f.ep, "/live?topic=t&wait=5&since=" + std::to_string(ids[6]));
  REQUIRE(run_until(ioc, [&] { return f.live.connections() == 1; }));  // the held poll
  CHECK_FALSE(poll.has_headers());
  ids.push_back(f.live.publish("t", "7"));
  REQUIRE(run_until(ioc, [&] { return complete(poll); }));
  auto const answer = json::parse(poll.body());
  REQUIRE(answer["events"].size() == 1);
  CHECK(answer["events"][0]["id"] == ids[7]);

  // The SSE member of the degraded channel serves the forced client.
  SseClient forced(ioc);
  forced.raw.get(f.ep, "/degraded?topic=t", "Accept: text/event-stream\r\n");
  REQUIRE(run_until(ioc, [&] { return forced.raw.has_headers(); }));
  REQUIRE(run_until(ioc, [&] { return degraded.connections() == 1; }));
  auto const id = f.live.publish("t", "8");
  REQUIRE(run_until(ioc, [&] { return !forced.events().empty(); }));
  CHECK(forced.events()[0].id == std::to_string(id));
}

TEST_CASE("negotiated: graceful stop reaches every member's connections", "[e2e][negotiated]") {
  Fixture f;
  test::WsClient ws(f.ioc);
  ws.connect(f.ep, "/live?topic=t");
  SseClient sse(f.ioc);
  sse.raw.get(f.ep, "/live?topic=t", "Accept: text/event-stream\r\n");
  test::RawClient poll(f.ioc);
  // A cursor at the head of the (empty) history: the poll is held, not answered with a reset.
  poll.get(f.ep, "/live?topic=t&wait=5&since=" + std::to_string(f.hub.stats().last_id));
  REQUIRE(run_until(f.ioc, [&] { return f.opened == 2 && f.live.connections() == 3; }));
  std::optional<boost::system::error_code> stopped;
  f.server.async_stop(2s, [&](boost::system::error_code ec) { stopped = ec; });
  REQUIRE(run_until(f.ioc, [&] { return stopped.has_value(); }));
  CHECK(*stopped == boost::system::error_code{});  // drained in time: the registry is shared
  CHECK(ws.close_code() == 1001);
  CHECK(f.live.connections() == 0);
}

TEST_CASE("negotiated: Channel::accept embedding routes to the matching member", "[e2e][negotiated]") {
  net::io_context ioc;
  herald::Hub hub{ioc.get_executor()};
  herald::Channel<Live> live{hub, "/live", {}, live_options()};
  int opened = 0;
  live.on_open([&](herald::Session&) { ++opened; });
  std::vector<std::string> got;
  live.on_message([&](herald::Session& s, herald::Message const& m) {
    got.emplace_back(m.data);
    s.send("ok");
  });
  // The application's own server: reads one request, hands the stream over.
  tcp::acceptor acceptor{ioc, {net::ip::make_address("127.0.0.1"), 0}};
  auto const ep = acceptor.local_endpoint();
  std::function<void()> accept_one = [&] {
    acceptor.async_accept([&](boost::system::error_code ec, tcp::socket socket) {
      if (ec) return;
      struct Conn {
        beast::tcp_stream stream;
        beast::flat_buffer buffer;
        herald::Request req;
      };
      auto c = std::make_shared<Conn>(Conn{beast::tcp_stream(std::move(socket)), {}, {}});
      http::async_read(c->stream, c->buffer, c->req, [&, c](boost::system::error_code ec, std::size_t) {
        if (!ec) live.accept(std::move(c->stream), std::move(c->req), c->buffer.data());
      });
      accept_one();
    });
  };
  accept_one();

  SseClient sse(ioc);
  sse.raw.get(ep, "/live?topic=t", "Accept: text/event-stream\r\n");
  test::WsClient ws(ioc);
  ws.connect(ep, "/live?topic=t");
  REQUIRE(run_until(ioc, [&] { return opened == 2; }));
  auto const id = live.publish("t", "x");
  REQUIRE(run_until(ioc, [&] { return ws.saw_id(id) && !sse.events().empty(); }));
  CHECK(sse.events()[0].id == std::to_string(id));

  test::RawClient post(ioc);
  post.request(ep, "POST /live HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi");
  REQUIRE(run_until(ioc, [&] { return post.closed(); }));
  CHECK(post.status() == 200);
  CHECK(json::parse(post.body()) == json::array({"ok"}));
  CHECK(got == std::vector<std::string>{"hi"});

  test::RawClient poll(ioc);
  poll.get(ep, "/live?topic=t&since=0");
  REQUIRE(run_until(ioc, [&] { return poll.closed(); }));
  CHECK(json::parse(poll.body())["events"][0]["id"] == id);

  // A frame in the same packet as the upgrade reaches the WebSocket member.
  test::RawClient packed(ioc);
  packed.request(ep, "GET /live HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                     "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n" +
                         test::client_frame(0x1, "packed"));
  REQUIRE(run_until(ioc, [&] { return got.size() == 2 || packed.closed(); }));
  CHECK(got.back() == "packed");
  acceptor.close();
  live.shutdown();
  REQUIRE(run_until(ioc, [&] { return live.connections() == 0; }));
}
