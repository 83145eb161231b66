// End-to-end SSE tests over real loopback sockets. The io_context runs on the test thread;
// every wait is a condition with a deadline.

#include <herald/herald.hpp>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "fixture.hpp"
#include "hand_off.hpp"
#include "http_client.hpp"
#include "loopback.hpp"
#include "slow_consumer.hpp"
#include "sse_reader.hpp"

namespace {

namespace net = boost::asio;
namespace http = boost::beast::http;
using tcp = net::ip::tcp;
using test::run_until;

constexpr char const* accept_sse = "Accept: text/event-stream\r\n";

/// One SSE channel on /api/feed; one thread runs the loop (hint 1): no strands.
struct Fixture : test::ChannelFixture<herald::Sse> {
  explicit Fixture(herald::ChannelOptions co = {}, herald::SseOptions so = {},
                   herald::HubOptions ho = {.first_id = 1})
      : ChannelFixture("/api/feed", std::move(co), so, std::move(ho), {}, 1) {}
  herald::Channel<herald::Sse>& feed = channel;
};

/// A raw client plus an independent SSE parser over its body.
struct SseClient {
  explicit SseClient(net::io_context& ioc) : raw(ioc) {}
  test::RawClient raw;
  test::SseReader reader;

  std::vector<test::SseEvent> const& events() {
    reader.feed_all(raw.body());
    return reader.events();
  }
  bool has(std::size_t n) { return events().size() >= n; }
  bool saw_id(herald::EventId id) {
    for (auto const& e : events())
      if (e.id == std::to_string(id)) return true;
    return false;
  }
  std::vector<std::string> ids() {
    std::vector<std::string> out;
    for (auto const& e : events()) out.push_back(e.id);
    return out;
  }
};

/** The application's own accept loop and request parsing, as a Beast server would have them,
    handing each stream to `feed`. A small kernel send buffer makes a client that does not
    read fall behind quickly. */
/// The application's own server (see HandOffServer), with a small send buffer: slow readers fall behind.
test::HandOffServer app_server(net::io_context& ioc, herald::Channel<herald::Sse>& feed) {
  return test::HandOffServer{
      ioc, [&feed](test::HandOffServer::Conn& c) { feed.accept(std::move(c.stream), std::move(c.req)); }, 4096};
}

std::vector<std::string> ids_of(std::initializer_list<herald::EventId> ids) {
  std::vector<std::string> out;
  for (auto id : ids) out.push_back(std::to_string(id));
  return out;
}

}  // namespace

TEST_CASE("sse: a stream has the event-stream headers, retry, and live events in order", "[e2e][sse]") {
  Fixture f;
  f.hub.publish("orders", R"({"before":true})");  // not delivered: no cursor, live only

  SseClient c{f.ioc};
  c.raw.get(f.ep, "/api/feed", accept_sse);
  REQUIRE(run_until(f.ioc, [&] { return c.raw.has_headers(); }));
  CHECK(c.raw.status() == 200);
  CHECK(c.raw.header("Content-Type") == "text/event-stream");
  CHECK(c.raw.header("Cache-Control") == "no-cache");
  CHECK(c.raw.header("X-Accel-Buffering") == "no");
  CHECK(c.raw.header("Content-Length").empty());

  auto const a = f.hub.publish("orders", R"({"id":1})");
  auto const b = f.hub.publish("orders", "plain text", {.type = "note"});
  auto const d = f.hub.publish("other", "line one\r\nline two\rline three\nline four");
  REQUIRE(run_until(f.ioc, [&] { return c.has(3); }));

  REQUIRE(c.reader.retry() == 3000);
  auto const& ev = c.events();
  REQUIRE(ev.size() == 3);
  CHECK(ev[0].id == std::to_string(a));
  CHECK(ev[0].type == "message");
  CHECK(nlohmann::json::parse(ev[0].data) == nlohmann::json{{"id", 1}});
  CHECK(ev[1].id == std::to_string(b));
  CHECK(ev[1].type == "note");
  CHECK(ev[1].data == "plain text");
  CHECK(ev[2].id == std::to_string(d));
  CHECK(ev[2].data == "line one\nline two\nline three\nline four");
  CHECK(f.hub.stats().deliveries >= 3);
  CHECK(f.hub.stats().connections == 1);
}

TEST_CASE("sse: resume with Last-Event-ID replays exactly the missed events, then live", "[e2e][sse]") {
  Fixture f;
  SseClient first{f.ioc};
  first.raw.get(f.ep, "/api/feed?topic=orders", accept_sse);
  REQUIRE(run_until(f.ioc, [&] { return first.raw.has_headers(); }));
  auto const e1 = f.hub.publish("orders", "1");
  auto const e2 = f.hub.publish("orders", "2");
  auto const e3 = f.hub.publish("orders", "3");
  REQUIRE(run_until(f.ioc, [&] { return first.has(3); }));
  CHECK(first.ids() == ids_of({e1, e2, e3}));

  // The connection drops; events keep coming.
  first.raw.close();
  REQUIRE(run_until(f.ioc, [&] { return f.feed.connections() == 0; }));
  auto const e4 = f.hub.publish("orders", "4");
  auto const ignored = f.hub.publish("elsewhere", "not my topic");

  SECTION("Last-Event-ID header") {
    SseClient again{f.ioc};
    again.raw.get(f.ep, "/api/feed?topic=orders", "Accept: text/event-stream\r\nLast-Event-ID: " + std::to_string(e3) + "\r\n");
    // Published while the resume request is in flight: must appear once, in order.
    auto const e5 = f.hub.publish("orders", "5");
    REQUIRE(run_until(f.ioc, [&] { return again.has(2); }));
    auto const sentinel = f.hub.publish("orders", "sentinel");
    REQUIRE(run_until(f.ioc, [&] { return again.saw_id(sentinel); }));
    CHECK(again.ids() == ids_of({e4, e5, sentinel}));
    CHECK_FALSE(again.saw_id(ignored));
  }
  SECTION("lastEventId query parameter") {
    SseClient again{f.ioc};
    again.raw.get(f.ep, "/api/feed?topic=orders&lastEventId=" + std::to_string(e3), accept_sse);
    REQUIRE(run_until(f.ioc, [&] { return again.has(1); }));
    auto const sentinel = f.hub.publish("orders", "sentinel");
    REQUIRE(run_until(f.ioc, [&] { return again.saw_id(sentinel); }));
    CHECK(again.ids() == ids_of({e4, sentinel}));
  }
}

TEST_CASE("sse: a cursor older than the history gets an explicit reset notice", "[e2e][sse]") {
  Fixture f{{}, {}, {.history_events = 2, .first_id = 1}};
  std::vector<herald::EventId> ids;
  for (int i = 0; i < 5; ++i) ids.push_back(f.hub.publish("orders", std::to_string(i)));

  SseClient c{f.ioc};
  c.raw.get(f.ep, "/api/feed?topic=orders", "Accept: text/event-stream\r\nLast-Event-ID: " + std::to_string(ids[0]) + "\r\n");
  REQUIRE(run_until(f.ioc, [&] { return c.has(3); }));
  auto const sentinel = f.hub.publish("orders", "sentinel");
  REQUIRE(run_until(f.ioc, [&] { return c.saw_id(sentinel); }));

  auto const& ev = c.events();
  REQUIRE(ev.size() == 4);
  CHECK(ev[0].type == "reset");
  auto const notice = nlohmann::json::parse(ev[0].data);
  CHECK(notice["reason"] == "cursor_expired");
  CHECK(notice["cursor"] == ids[2]);  // everything up to here may be missing
  CHECK(ev[1].id == std::to_string(ids[3]));
  CHECK(ev[2].id == std::to_string(ids[4]));
  CHECK(ev[3].id == std::to_string(sentinel));
  CHECK(f.hub.stats().resets == 1);
}

TEST_CASE("sse: topics come from the query, from the channel, or are every topic", "[e2e][sse]") {
  SECTION("no fixed topics") {
    Fixture f;
    SseClient a{f.ioc}, ab{f.ioc}, all{f.ioc};
    a.raw.get(f.ep, "/api/feed?topic=a", accept_sse);
    ab.raw.get(f.ep, "/api/feed?topic=a&topic=b&topic=a", accept_sse);
    all.raw.get(f.ep, "/api/feed", accept_sse);
    REQUIRE(run_until(f.ioc, [&] { return a.raw.has_headers() && ab.raw.has_headers() && all.raw.has_headers(); }));
    auto const a1 = f.hub.publish("a", "a1");
    auto const b1 = f.hub.publish("b", "b1");
    auto const c1 = f.hub.publish("c", "c1");
    auto const s = f.hub.publish("a", "sentinel");
    REQUIRE(run_until(f.ioc, [&] { return a.saw_id(s) && ab.saw_id(s) && all.saw_id(s); }));
    CHECK(a.ids() == ids_of({a1, s}));
    CHECK(ab.ids() == ids_of({a1, b1, s}));
    CHECK(all.ids() == ids_of({a1, b1, c1, s}));
  }
  SECTION("fixed topics: a bare EventSource URL works, and the query may only narrow") {
    Fixture f{{.topics = {"x", "y"}}};
    SseClient bare{f.ioc}, narrow{f.ioc}, outside{f.ioc};
    bare.raw.get(f.ep, "/api/feed", accept_sse);
    narrow.raw.get(f.ep, "/api/feed?topic=y", accept_sse);
    outside.raw.get(f.ep, "/api/feed?topic=z", accept_sse);
    REQUIRE(run_until(f.ioc, [&] { return bare.raw.has_headers() && narrow.raw.has_headers() && outside.raw.closed(); }));
    CHECK(outside.raw.status() == 403);
    auto const x = f.hub.publish("x", "x");
    f.hub.publish("z", "z");
    auto const y = f.hub.publish("y", "y");
    REQUIRE(run_until(f.ioc, [&] { return bare.saw_id(y) && narrow.saw_id(y); }));
    CHECK(bare.ids() == ids_of({x, y}));
    CHECK(narrow.ids() == ids_of({y}));
  }
}

TEST_CASE("sse: bad requests get a clear HTTP error and no stream", "[e2e][sse]") {
  Fixture f{{.limits = {.max_subscriptions = 2}}};
  struct Case {
    std::string request;
    int status;
    std::string error;
  };
  std::string const host = "Host: 127.0.0.1\r\n";
  std::vector<Case> cases{
      {"POST /api/feed HTTP/1.1\r\n" + host + "Content-Length: 0\r\n\r\n", 405, "method not allowed"},
      {"GET /api/feed HTTP/1.1\r\n" + host + "Last-Event-ID: 12abc\r\n\r\n", 400, "bad cursor"},
      {"GET /api/feed?lastEventId=-1 HTTP/1.1\r\n" + host + "\r\n", 400, "bad cursor"},
      {"GET /api/feed?topic=%01x HTTP/1.1\r\n" + host + "\r\n", 400, "bad topic name"},
      {"GET /api/feed?topic=%zz HTTP/1.1\r\n" + host + "\r\n", 400, "bad request"},
      {"GET /api/feed?topic=a&topic=b&topic=c HTTP/1.1\r\n" + host + "\r\n", 400, "too many subscriptions"},
  };
  for (auto const& tc : cases) {
    test::RawClient c{f.ioc};
    c.request(f.ep, tc.request);
    REQUIRE(run_until(f.ioc, [&] { return c.closed(); }));
    INFO(tc.request);
    CHECK(c.status() == tc.status);
    CHECK(c.header("Content-Type") == "application/json");
    CHECK(nlohmann::json::parse(c.body())["error"] == tc.error);
  }
  CHECK(f.feed.connections() == 0);
  CHECK(f.hub.stats().connections == 0);
}

TEST_CASE("sse: the authorize hook answers 401/403 before any stream byte", "[e2e][sse][auth]") {
  auto co = test::bearer_auth();
  Fixture f{std::move(co)};

  auto attempt = [&](std::string target, std::string headers) {
    auto c = std::make_unique<test::RawClient>(f.ioc);
    c->get(f.ep, target, std::string(accept_sse) + headers);
    REQUIRE(run_until(f.ioc, [&] { return c->closed() || (c->has_headers() && c->status() == 200); }));
    return c;
  };
  auto none = attempt("/api/feed?topic=t", "");
  CHECK(none->status() == 401);
  CHECK(none->header("Content-Type") == "application/json");
  CHECK(none->data().find("text/event-stream") == std::string::npos);
  CHECK(nlohmann::json::parse(none->body())["message"] == "token required");

  CHECK(attempt("/api/feed?topic=t", "Authorization: Bearer banned\r\n")->status() == 403);
  CHECK(attempt("/api/feed?topic=t", "Authorization: Bearer throw\r\n")->status() == 500);
  CHECK(attempt("/api/feed?topic=secret", "Authorization: Bearer good\r\n")->status() == 403);
  CHECK(attempt("/api/feed", "Authorization: Bearer good\r\n")->status() == 403);  // every topic needs "*"
  auto ok = attempt("/api/feed?topic=t", "Authorization: Bearer good\r\n");
  CHECK(ok->status() == 200);
  CHECK(f.feed.connections() == 1);
}

TEST_CASE("sse: the Origin allowlist guards browser requests", "[e2e][sse][auth]") {
  SECTION("default: same origin only") {
    Fixture f;
    auto const self = "http://127.0.0.1:" + std::to_string(f.ep.port());
    test::RawClient same{f.ioc}, cross{f.ioc}, none{f.ioc};
    same.get(f.ep, "/api/feed", "Origin: " + self + "\r\n");
    cross.get(f.ep, "/api/feed", "Origin: http://evil.example\r\n");
    none.get(f.ep, "/api/feed");
    REQUIRE(run_until(f.ioc, [&] { return same.has_headers() && cross.closed() && none.has_headers(); }));
    CHECK(same.status() == 200);
    CHECK(cross.status() == 403);
    CHECK(nlohmann::json::parse(cross.body())["error"] == "origin not allowed");
    CHECK(none.status() == 200);
  }
  SECTION("allowlist") {
    Fixture f{{.allowed_origins = {"https://app.example"}}};
    test::RawClient good{f.ioc}, bad{f.ioc};
    good.get(f.ep, "/api/feed", "Origin: https://app.example\r\n");
    bad.get(f.ep, "/api/feed", "Origin: https://app.example.evil\r\n");
    REQUIRE(run_until(f.ioc, [&] { return good.has_headers() && bad.closed(); }));
    CHECK(good.status() == 200);
    CHECK(good.header("Access-Control-Allow-Origin") == "https://app.example");
    CHECK(good.header("Access-Control-Allow-Credentials") == "true");
    CHECK(bad.status() == 403);
  }
  SECTION("\"*\": any page may read, never with the user's credentials") {
    Fixture f{{.allowed_origins = {"*", "https://app.example"}}};
    test::RawClient any{f.ioc}, named{f.ioc};
    any.get(f.ep, "/api/feed", "Origin: https://evil.example\r\n");
    named.get(f.ep, "/api/feed", "Origin: https://app.example\r\n");
    REQUIRE(run_until(f.ioc, [&] { return any.has_headers() && named.has_headers(); }));
    CHECK(any.status() == 200);
    CHECK(any.header("Access-Control-Allow-Origin") == "*");
    CHECK(any.header("Access-Control-Allow-Credentials").empty());
    CHECK(named.header("Access-Control-Allow-Origin") == "https://app.example");
    CHECK(named.header("Access-Control-Allow-Credentials") == "true");
  }
}

TEST_CASE("sse: ?envelope names each event's topic, and bare data stays the default", "[e2e][sse]") {
  Fixture f;
  SseClient bare{f.ioc}, enveloped{f.ioc}, off{f.ioc};
  bare.raw.get(f.ep, "/api/feed?topic=a&topic=b", accept_sse);
  enveloped.raw.get(f.ep, "/api/feed?topic=a&topic=b&envelope", accept_sse);
  off.raw.get(f.ep, "/api/feed?topic=a&topic=b&envelope=0", accept_sse);
  REQUIRE(run_until(f.ioc, [&] { return f.feed.connections() == 3; }));
  auto const a = f.hub.publish("a", R"({"n":1})");
  auto const b = f.hub.publish("b", "two\nlines", {.type = "note"});
  REQUIRE(run_until(f.ioc, [&] { return bare.has(2) && enveloped.has(2) && off.has(2); }));

  for (auto* c : {&bare, &off}) {
    CHECK(c->events()[0].data == R"({"n":1})");
    CHECK(c->events()[1].type == "note");
    CHECK(c->events()[1].data == "two\nlines");
  }
  auto const& e = enveloped.events();
  // Plain messages (onmessage sees them all), each with its envelope; the id still resumes.
  CHECK(e[0].type == "message");
  CHECK(e[1].type == "message");
  CHECK(e[0].id == std::to_string(a));
  CHECK(nlohmann::json::parse(e[0].data) == nlohmann::json{{"id", a}, {"topic", "a"}, {"data", {{"n", 1}}}});
  CHECK(nlohmann::json::parse(e[1].data) ==
        nlohmann::json{{"id", b}, {"topic", "b"}, {"event", "note"}, {"data", "two\nlines"}});

  // A reset notice in envelope form names its reason and cursor like the bare one.
  SseClient stale{f.ioc};
  stale.raw.get(f.ep, "/api/feed?topic=a&envelope&lastEventId=999999999999", accept_sse);
  REQUIRE(run_until(f.ioc, [&] { return stale.has(1); }));
  auto const notice = nlohmann::json::parse(stale.events()[0].data);
  CHECK(notice["event"] == "reset");
  CHECK(notice["data"]["reason"] == "cursor_expired");
}

TEST_CASE("sse: heartbeat comments flow while the stream is idle", "[e2e][sse]") {
  Fixture f{{}, {.retry = std::chrono::milliseconds(1500), .heartbeat = std::chrono::milliseconds(20)}};
  SseClient c{f.ioc};
  c.raw.get(f.ep, "/api/feed", accept_sse);
  REQUIRE(run_until(f.ioc, [&] {
    c.events();
    return c.reader.comments() >= 2;
  }));
  CHECK(c.reader.retry() == 1500);
  CHECK(c.events().empty());
}

TEST_CASE("sse: a client that goes away is cleaned up", "[e2e][sse]") {
  Fixture f;
  std::vector<std::unique_ptr<test::RawClient>> clients;
  for (int i = 0; i < 5; ++i) {
    clients.push_back(std::make_unique<test::RawClient>(f.ioc));
    clients.back()->get(f.ep, "/api/feed?topic=t", accept_sse);
  }
  REQUIRE(run_until(f.ioc, [&] { return f.feed.connections() == 5; }));
  CHECK(f.hub.stats().connections == 5);
  for (auto& c : clients) c->close();
  REQUIRE(run_until(f.ioc, [&] { return f.feed.connections() == 0 && f.hub.stats().connections == 0; }));
  // The topic had no events: with its last subscriber gone, the hub forgets it.
  CHECK(f.hub.stats().topics == 0);
}

TEST_CASE("sse: bytes a client sends after its request are discarded up to a bound, then it is cut",
          "[e2e][sse]") {
  Fixture f;
  SseClient quiet{f.ioc}, chatty{f.ioc};
  quiet.raw.get(f.ep, "/api/feed?topic=t", accept_sse);
  chatty.raw.get(f.ep, "/api/feed?topic=t", accept_sse);
  REQUIRE(run_until(f.ioc, [&] { return f.feed.connections() == 2; }));
  // A few stray bytes (several reads' worth, in separate packets) leave the stream working.
  for (int i = 0; i < 4; ++i) chatty.raw.send(std::string(300, 'x'));
  f.hub.publish("t", "after-stray");
  REQUIRE(run_until(f.ioc, [&] { return chatty.has(1) && quiet.has(1); }));
  CHECK(chatty.events()[0].data == "after-stray");
  CHECK(f.feed.connections() == 2);
  // Past 64 KiB the session ends the stream; the other client keeps its own.
  chatty.raw.send(std::string(70 * 1024, 'x'));
  REQUIRE(run_until(f.ioc, [&] { return chatty.raw.closed() && f.feed.connections() == 1; }));
  f.hub.publish("t", "still-here");
  REQUIRE(run_until(f.ioc, [&] { return quiet.has(2); }));
  CHECK(quiet.events()[1].data == "still-here");
}

TEST_CASE("sse: a full channel refuses with a stream that ends at once with retry:, so EventSource comes back",
          "[e2e][sse]") {
  Fixture f{{.limits = {.max_connections = 1, .retry_after = std::chrono::seconds(2)}}};
  SseClient first{f.ioc};
  first.raw.get(f.ep, "/api/feed?topic=t", accept_sse);
  REQUIRE(run_until(f.ioc, [&] { return first.raw.has_headers(); }));
  SseClient second{f.ioc};
  auto const origin = "http://127.0.0.1:" + std::to_string(f.ep.port());
  second.raw.get(f.ep, "/api/feed?topic=t", "Origin: " + origin + "\r\n");
  REQUIRE(run_until(f.ioc, [&] { return second.raw.closed(); }));
  // A plain EventSource treats every status but 200 as final: the refusal is a 200 stream.
  CHECK(second.raw.status() == 200);
  CHECK(second.raw.header("Content-Type") == "text/event-stream");
  CHECK(second.raw.header("Retry-After") == "2");
  CHECK(second.raw.header("Access-Control-Allow-Origin") == origin);
  CHECK(second.raw.body() == ": refused: too many connections\nretry: 2000\n\n");
  CHECK(second.events().empty());  // nothing an application handler would see
  CHECK(second.reader.retry() == 2000);
  CHECK(first.raw.status() == 200);

  first.raw.close();  // frees the slot: the same request now opens a stream
  REQUIRE(run_until(f.ioc, [&] { return f.feed.connections() == 0; }));
  SseClient third{f.ioc};
  third.raw.get(f.ep, "/api/feed?topic=t", accept_sse);
  REQUIRE(run_until(f.ioc, [&] { return f.feed.connections() == 1; }));
  auto const id = f.hub.publish("t", "back");
  REQUIRE(run_until(f.ioc, [&] { return third.saw_id(id); }));
  CHECK(third.raw.header("Retry-After").empty());
}

TEST_CASE("sse: a refusal that retrying cannot fix stays an HTTP error", "[e2e][sse]") {
  Fixture f{{.topics = {"fixed"}}};
  test::RawClient c{f.ioc};
  c.get(f.ep, "/api/feed?topic=other", accept_sse);
  REQUIRE(run_until(f.ioc, [&] { return c.closed(); }));
  CHECK(c.status() == 403);
  CHECK(c.header("Retry-After").empty());
}

TEST_CASE("sse: streams with different heartbeats share the loop's one timer, and none outlives them", "[e2e][sse]") {
  // Each stream's next deadline is a slot in its loop's heap (detail::Deadlines), served by one
  // timer. A deadline a minute away, armed last, must not hold back one due every 50 ms; and once
  // the streams are gone, no wait may be left to keep the loop running.
  net::io_context ioc{1};
  herald::Hub hub{ioc.get_executor(), {.first_id = 1}};
  herald::Channel<herald::Sse> fast{hub, "/fast", {}, {.heartbeat = std::chrono::milliseconds(50)}};
  herald::Channel<herald::Sse> slow{hub, "/slow", {}, {.heartbeat = std::chrono::minutes(1)}};
  herald::Server server{ioc.get_executor()};
  server.add(fast);
  server.add(slow);
  auto const ep = server.listen("127.0.0.1", 0);
  {
    test::RawClient a{ioc}, b{ioc};
    a.get(ep, "/fast?topic=t", accept_sse);
    REQUIRE(run_until(ioc, [&] { return fast.connections() == 1; }));
    b.get(ep, "/slow?topic=t", accept_sse);
    REQUIRE(run_until(ioc, [&] { return slow.connections() == 1; }));
    auto pings = [](test::RawClient const& c) {
      test::SseReader r;
      r.feed_all(c.body());
      return r.comments();
    };
    REQUIRE(run_until(ioc, [&] { return pings(a) >= 3; }));
    CHECK(pings(b) == 0);
    std::optional<boost::system::error_code> stopped;
    server.async_stop(std::chrono::seconds(5), [&](boost::system::error_code ec) { stopped = ec; });
    REQUIRE(run_until(ioc, [&] { return stopped && a.closed() && b.closed(); }));
  }
  // Streams, clients and listener gone: the loop runs dry at once, not after the slow deadline.
  auto const start = std::chrono::steady_clock::now();
  ioc.restart();
  ioc.run_for(std::chrono::seconds(20));
  CHECK(ioc.stopped());
  CHECK(std::chrono::steady_clock::now() - start < std::chrono::seconds(10));
}

TEST_CASE("sse: graceful shutdown ends every stream after a final retry", "[e2e][sse]") {
  Fixture f;
  SseClient a{f.ioc}, b{f.ioc};
  a.raw.get(f.ep, "/api/feed", accept_sse);
  b.raw.get(f.ep, "/api/feed?topic=x", accept_sse);
  REQUIRE(run_until(f.ioc, [&] { return f.feed.connections() == 2; }));
  auto const last = f.hub.publish("x", "last words");

  std::optional<boost::system::error_code> stopped;
  f.server.async_stop(std::chrono::seconds(5), [&](boost::system::error_code ec) { stopped = ec; });
  CHECK_FALSE(stopped);  // never completes inside the initiating call
  REQUIRE(run_until(f.ioc, [&] { return stopped && a.raw.closed() && b.raw.closed(); }));
  CHECK(!*stopped);
  for (auto* c : {&a, &b}) {
    CHECK(c->saw_id(last));
    auto const body = c->raw.body();
    CHECK(body.size() >= 13);
    CHECK(body.substr(body.size() - 13) == "retry: 3000\n\n");
  }
  CHECK(f.feed.connections() == 0);

  // No longer accepting.
  test::RawClient late{f.ioc};
  late.get(f.ep, "/api/feed");
  REQUIRE(run_until(f.ioc, [&] { return late.closed(); }));
  CHECK(late.status() == 0);
}

TEST_CASE("sse: embedding hands a parsed request and its stream to the channel", "[e2e][sse][embed]") {
  // The application's own accept loop and request parsing, as a Beast server would have them.
  net::io_context ioc;
  herald::Hub hub{ioc.get_executor(), {.first_id = 1}};
  herald::Channel<herald::Sse> feed{hub, "/events",
                                    {.limits = {.queue_events = 64, .queue_bytes = 1 << 20}}};
  auto app = app_server(ioc, feed);
  auto const ep = app.ep;

  SseClient fast{ioc};
  test::RawClient slow{ioc};
  slow.receive_buffer(4096);
  fast.raw.get(ep, "/events?topic=t", accept_sse);
  slow.get(ep, "/events?topic=t", accept_sse, /*read=*/false);
  REQUIRE(run_until(ioc, [&] { return fast.raw.has_headers() && feed.connections() == 2; }));

  // Publish (bounded) until the non-reading client is cut off; publish returns every time.
  std::string const payload(1024, 'x');
  std::vector<herald::EventId> published;
  for (int i = 0; i < 5000 && hub.stats().slow_consumer_disconnects == 0; ++i) {
    published.push_back(hub.publish("t", payload));
    test::drain(ioc);
  }
  REQUIRE(hub.stats().slow_consumer_disconnects == 1);
  REQUIRE(run_until(ioc, [&] { return feed.connections() == 1; }));
  auto const sentinel = hub.publish("t", "sentinel");
  published.push_back(sentinel);
  REQUIRE(run_until(ioc, [&] { return fast.saw_id(sentinel); }));
  std::vector<std::string> expected;
  for (auto id : published) expected.push_back(std::to_string(id));
  CHECK(fast.ids() == expected);
}

TEST_CASE("sse: on_open and on_close see every stream once, with a working Session", "[e2e][sse]") {
  Fixture f;
  int opened = 0;
  int closed = 0;
  std::vector<std::string> topics;
  herald::Session kept;
  f.feed.on_open([&](herald::Session& s) {
    ++opened;
    topics = s.subscriptions();
    kept = s;
  });
  f.feed.on_close([&](herald::Session&, boost::system::error_code) { ++closed; });

  test::RawClient c{f.ioc};
  c.get(f.ep, "/api/feed?topic=t&topic=u", accept_sse);
  REQUIRE(run_until(f.ioc, [&] { return opened == 1 && c.has_headers(); }));
  CHECK(topics == std::vector<std::string>{"t", "u"});
  CHECK(kept.alive());
  CHECK(kept.id() != 0);
  CHECK(kept.send("not on SSE") == herald::SendStatus::dropped);
  kept.close();  // the application ends the stream
  REQUIRE(run_until(f.ioc, [&] { return closed == 1 && c.closed(); }));
  CHECK(opened == 1);
  CHECK(f.feed.connections() == 0);
}

// --- slow consumers: a client that stops reading, under each overflow policy ------------------

namespace {

/** A channel under `policy` with a queue of 16 events, served with a small send buffer, its
    counters, and a client on `target` that does not read until told to (start_reading). */
struct SlowClient {
  SlowClient(herald::OverflowPolicy policy, std::string const& target)
      : feed{hub, "/events", {.limits = {.queue_events = 16, .queue_bytes = 1 << 20}, .overflow = policy}},
        app(app_server(ioc, feed)),
        c{ioc} {
    metrics.add(feed);
    c.raw.receive_buffer(4096);
    c.raw.get(app.ep, target, accept_sse, /*read=*/false);
    REQUIRE(run_until(ioc, [&] { return feed.connections() == 1; }));
  }

  /// Publish a 1 KiB event (bounded) until `done`; every publish returns at once.
  std::vector<herald::EventId> publish_until(std::function<std::string(int)> const& topic,
                                             std::function<bool()> const& done) {
    std::string const payload(1024, 'x');
    std::vector<herald::EventId> ids;
    for (int i = 0; i < 5000 && !done(); ++i) {
      ids.push_back(hub.publish(topic(i), payload));
      test::drain(ioc);
    }
    return ids;
  }

  std::uint64_t metric(std::string_view family) const { return test::metric(metrics, family); }

  /// Read until `id` arrived and every write completed (its events then count as delivered).
  void read_until(herald::EventId id) {
    c.raw.start_reading();
    REQUIRE(run_until(ioc, [&] { return c.saw_id(id) && metric("herald_deliveries_total") == c.events().size(); }));
  }

  /** Events (bare payloads, or envelopes with `envelope`) and gap notices (`event: gap`, or an
      envelope whose "event" is "gap"), in order. */
  std::vector<test::Received> received(bool envelope) {
    std::vector<test::Received> out;
    for (auto const& e : c.events()) {
      test::Received r;
      r.id = std::stoull(e.id);
      if (envelope) {
        auto const j = nlohmann::json::parse(e.data);
        r.topic = j["topic"].get<std::string>();
        r.gap = j.value("event", "") == "gap";
        if (r.gap) r.data = j["data"];
      } else if (e.type == "gap") {
        r.gap = true;
        r.data = nlohmann::json::parse(e.data);
      }
      out.push_back(std::move(r));
    }
    return out;
  }

  net::io_context ioc;
  herald::Hub hub{ioc.get_executor(), {.first_id = 1}};
  herald::Channel<herald::Sse> feed;
  herald::Metrics metrics;
  test::HandOffServer app;
  SseClient c;
};

}  // namespace

TEST_CASE("sse: drop_oldest: a client that stops reading gets a gap notice, then the newest events",
          "[e2e][sse][slow]") {
  SlowClient s{herald::OverflowPolicy::drop_oldest, "/events?topic=t"};
  auto published = s.publish_until([](int) { return "t"; }, [&] { return s.metric("herald_dropped_events_total") >= 50; });
  auto const sentinel = s.hub.publish("t", "sentinel");
  published.push_back(sentinel);
  test::drain(s.ioc);
  CHECK(s.feed.connections() == 1);
  CHECK(s.hub.stats().slow_consumer_disconnects == 0);

  s.read_until(sentinel);
  auto const got = s.received(false);
  auto const dropped = test::check_gaps(got, published, "t");
  auto const notices = static_cast<std::uint64_t>(std::count_if(got.begin(), got.end(), [](auto const& r) { return r.gap; }));
  CHECK(s.metric("herald_dropped_events_total") == dropped);
  CHECK(s.metric("herald_gap_notices_total") == notices);
  CHECK(s.metric("herald_overflows_total") == notices);
  CHECK(s.metrics.text().find(R"(policy="drop_oldest")") != std::string::npos);
  CHECK_FALSE(s.c.raw.closed());
}

TEST_CASE("sse: coalesce_latest: a client that stops reading gets the newest event of each topic",
          "[e2e][sse][slow]") {
  SlowClient s{herald::OverflowPolicy::coalesce_latest, "/events?topic=a&topic=b&envelope"};
  auto const ids = s.publish_until([](int i) { return i % 2 ? "b" : "a"; },
                                   [&] { return s.metric("herald_coalesced_events_total") >= 50; });
  std::map<std::string, std::vector<herald::EventId>> published;
  for (std::size_t i = 0; i < ids.size(); ++i) published[i % 2 ? "b" : "a"].push_back(ids[i]);
  published["b"].push_back(s.hub.publish("b", "newest b"));
  auto const last_a = s.hub.publish("a", "newest a");
  published["a"].push_back(last_a);
  test::drain(s.ioc);
  CHECK(s.feed.connections() == 1);

  s.read_until(last_a);
  auto const got = s.received(true);
  auto const delivered = test::check_coalesced(got, published);
  CHECK(s.metric("herald_coalesced_events_total") == ids.size() + 2 - delivered);  // not delivered
  CHECK(s.metric("herald_deliveries_total") == delivered);
  CHECK(s.metric("herald_gap_notices_total") == 0);
  CHECK(s.metric("herald_overflows_total") > 0);
}
