// Polling: pure format functions, then end-to-end short and long polls over real loopback
// sockets. The io_context runs on the test thread; every wait is a condition with a deadline.

#include <herald/herald.hpp>
#include <herald/metrics.hpp>
#include <herald/detail/answer_body.hpp>
#include <herald/detail/history_store.hpp>
#include <herald/detail/poll_format.hpp>
#include <herald/transports/polling.hpp>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/read.hpp>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "fixture.hpp"
#include "http_client.hpp"
#include "loopback.hpp"

namespace {

namespace net = boost::asio;
namespace http = boost::beast::http;
using tcp = net::ip::tcp;
using herald::EventId;
using json = nlohmann::json;
using test::run_until;
using namespace std::chrono_literals;

// ---------------------------------------------------------------------------------------------
// An independent reader of HTTP/1.1 responses on one connection (Content-Length framing only,
// which is all herald sends for polls), so keep-alive sequences can be checked as bytes.
// ---------------------------------------------------------------------------------------------

struct Reply {
  int status = 0;
  std::string head;  // status line and header lines
  std::string body;

  /// Header value by case-insensitive name, or "".
  std::string header(std::string_view name) const {
    std::size_t pos = head.find("\r\n");
    while (pos != std::string::npos && pos + 2 < head.size()) {
      auto const end = head.find("\r\n", pos + 2);
      auto const line = head.substr(pos + 2, end - pos - 2);
      auto const colon = line.find(':');
      if (colon != std::string::npos && colon == name.size() &&
          boost::beast::iequals(std::string_view(line).substr(0, colon), name)) {
        auto v = line.substr(colon + 1);
        while (!v.empty() && v.front() == ' ') v.erase(0, 1);
        return v;
      }
      pos = end;
    }
    return {};
  }
  bool has(std::string_view name) const { return head.find(std::string(name) + ":") != std::string::npos; }
  json body_json() const { return json::parse(body); }
};

/// Complete responses in `data`, in order. `heads` holds the indices of responses to HEAD.
std::vector<Reply> replies(std::string const& data, std::set<std::size_t> const& heads = {}) {
  std::vector<Reply> out;
  std::size_t pos = 0;
  while (pos < data.size()) {
    auto const end = data.find("\r\n\r\n", pos);
    if (end == std::string::npos) break;
    Reply r;
    r.head = data.substr(pos, end + 2 - pos);
    r.status = std::stoi(r.head.substr(9, 3));
    std::size_t length = 0;
    if (auto cl = r.header("Content-Length"); !cl.empty()) length = std::stoul(cl);
    if (heads.count(out.size()) || r.status == 204 || r.status == 304) length = 0;
    if (data.size() < end + 4 + length) break;
    r.body = data.substr(end + 4, length);
    pos = end + 4 + length;
    out.push_back(std::move(r));
  }
  return out;
}

std::string get(std::string const& target, std::string const& headers = {}) {
  return "GET " + target + " HTTP/1.1\r\nHost: 127.0.0.1\r\n" + headers + "\r\n";
}

std::vector<EventId> ids_in(json const& body) {
  std::vector<EventId> out;
  for (auto const& e : body["events"]) out.push_back(e["id"].get<EventId>());
  return out;
}

/// A hub (ids from 1), a polling channel on /poll, a plain route /other and a Server.
struct Fixture : test::ChannelFixture<herald::Polling> {
  explicit Fixture(herald::ChannelOptions co = {}, herald::PollingOptions po = {},
                   herald::HubOptions ho = {.first_id = 1}, herald::ServerOptions so = {})
      : ChannelFixture("/poll", std::move(co), std::move(po), std::move(ho), std::move(so),
                       BOOST_ASIO_CONCURRENCY_HINT_DEFAULT, [](herald::Server& server) {
                         server.handle("/other", [](herald::Request const& req) {
                           http::response<http::string_body> res{http::status::ok, req.version()};
                           res.set(http::field::content_type, "text/plain");
                           res.body() = "other";
                           return res;
                         });
                       }) {}
  herald::Channel<herald::Polling>& poll = channel;

  /// One request on a new connection; waits for its first complete response.
  Reply once(std::string const& request, bool head = false) {
    test::RawClient c{ioc};
    c.request(ep, request);
    std::set<std::size_t> heads;
    if (head) heads.insert(0);
    REQUIRE(run_until(ioc, [&] { return !replies(c.data(), heads).empty() || c.closed(); }));
    auto r = replies(c.data(), heads);
    REQUIRE(r.size() == 1);
    return r.front();
  }
};

}  // namespace

// =============================================================================================
// Pure format functions
// =============================================================================================

// =============================================================================================
// End to end
// =============================================================================================

TEST_CASE("polling: a short poll answers at once with events, a cursor and an ETag", "[e2e][polling]") {
  Fixture f;
  auto const a = f.hub.publish("orders", R"({"id":42})");
  auto const b = f.hub.publish("orders", "plain text", {.type = "note"});
  f.hub.publish("other", "not asked for");

  auto const r = f.once(get("/poll?topic=orders&since=0"));
  CHECK(r.status == 200);
  CHECK(r.header("Content-Type") == "application/json");
  CHECK(r.header("Cache-Control") == "private, no-cache");
  CHECK_FALSE(r.header("ETag").empty());
  CHECK(r.header("Vary") == "Origin");
  auto const j = r.body_json();
  REQUIRE(j["events"].size() == 2);
  CHECK(j["events"][0] == json{{"id", a}, {"topic", "orders"}, {"data", {{"id", 42}}}});
  CHECK(j["events"][1] == json{{"id", b}, {"topic", "orders"}, {"event", "note"}, {"data", "plain text"}});
  CHECK(j["cursor"] == b);
  CHECK_FALSE(j.contains("reset"));

  SECTION("without since the poll starts from now") {
    auto const now = f.once(get("/poll?topic=orders"));
    CHECK(now.status == 200);
    CHECK(now.body_json() == json{{"events", json::array()}, {"cursor", f.hub.stats().last_id}});
  }
  SECTION("limit caps the batch and says there is more") {
    auto const first = f.once(get("/poll?topic=orders&since=0&limit=1")).body_json();
    CHECK(ids_in(first) == std::vector<EventId>{a});
    CHECK(first["cursor"] == a);
    CHECK(first["more"] == true);
    auto const rest = f.once(get("/poll?topic=orders&limit=1&since=" + std::to_string(a))).body_json();
    CHECK(ids_in(rest) == std::vector<EventId>{b});
    CHECK_FALSE(rest.contains("more"));
  }
  SECTION("no topic on a channel without fixed topics: every topic") {
    auto const all = f.once(get("/poll?since=0")).body_json();
    CHECK(all["events"].size() == 3);
  }
  CHECK(f.poll.connections() == 0);  // short polls are never held
}

TEST_CASE("polling: a long poll is held until a publish wakes it", "[e2e][polling]") {
  Fixture f;
  auto const before = f.hub.publish("t", "before");

  test::RawClient c{f.ioc};
  c.request(f.ep, get("/poll?topic=t&wait=10&since=" + std::to_string(before)));
  REQUIRE(run_until(f.ioc, [&] { return f.poll.connections() == 1; }));
  CHECK(f.hub.stats().connections == 1);
  CHECK(c.data().empty());
  f.hub.publish("elsewhere", "does not wake it");
  auto const ev = f.hub.publish("t", R"({"wake":true})");
  REQUIRE(run_until(f.ioc, [&] { return replies(c.data()).size() == 1; }));
  auto const r = replies(c.data()).front();
  CHECK(r.status == 200);
  CHECK(r.header("Cache-Control") == "no-store");
  CHECK(r.header("ETag").empty());
  auto const j = r.body_json();
  CHECK(ids_in(j) == std::vector<EventId>{ev});
  CHECK(j["events"][0]["data"] == json{{"wake", true}});
  CHECK(j["cursor"] == ev);
  REQUIRE(run_until(f.ioc, [&] { return f.poll.connections() == 0 && f.hub.stats().connections == 0; }));
  CHECK_FALSE(c.closed());  // keep-alive

  SECTION("a long poll that finds events answers at once") {
    auto const now = f.once(get("/poll?topic=t&wait=10&since=" + std::to_string(before)));
    CHECK(ids_in(now.body_json()) == std::vector<EventId>{ev});
    CHECK(now.header("Cache-Control") == "no-store");
  }
  SECTION("a long poll without since waits for the next event") {
    test::RawClient w{f.ioc};
    w.request(f.ep, get("/poll?topic=t&wait=10"));
    REQUIRE(run_until(f.ioc, [&] { return f.poll.connections() == 1; }));
    auto const next = f.hub.publish("t", "next");
    REQUIRE(run_until(f.ioc, [&] { return replies(w.data()).size() == 1; }));
    CHECK(ids_in(replies(w.data()).front().body_json()) == std::vector<EventId>{next});
  }
}

TEST_CASE("polling: a long poll that sees nothing answers an empty batch when the wait ends", "[e2e][polling]") {
  SECTION("the client's wait") {
    Fixture f;
    auto const id = f.hub.publish("t", "x");
    auto const r = f.once(get("/poll?topic=t&wait=0.05&since=" + std::to_string(id)));
    CHECK(r.status == 200);
    CHECK(r.body_json() == json{{"events", json::array()}, {"cursor", id}});
    CHECK(r.header("Cache-Control") == "no-store");
    REQUIRE(run_until(f.ioc, [&] { return f.poll.connections() == 0; }));
  }
  SECTION("the server's cap") {
    Fixture f{{}, {.max_wait = 30ms}};
    auto const r = f.once(get("/poll?topic=t&wait=3600&since=0"));
    CHECK(r.status == 200);
    CHECK(r.body_json()["events"].empty());
  }
  SECTION("max_wait 0 makes every poll short") {
    Fixture f{{}, {.max_wait = 0ms}};
    auto const r = f.once(get("/poll?topic=t&wait=5&since=0"));
    CHECK(r.status == 200);
    CHECK_FALSE(r.header("ETag").empty());
  }
}

namespace {

/// Chains polls on one keep-alive connection: each answer's cursor goes into the next request.
struct ChainPoller {
  ChainPoller(net::io_context& ioc, tcp::endpoint ep, std::string query) : raw(ioc), query(std::move(query)) {
    raw.request(ep, next_request());
  }

  std::string next_request() {
    ++sent;
    // Alternate short polls, long polls and small limits so every path is crossed.
    std::string target = "/poll?" + query + "&since=" + std::to_string(cursor);
    if (sent % 3 == 0) target += "&wait=0.2";
    if (sent % 2 == 0) target += "&limit=3";
    return get(target);
  }

  /// Take any new answer and send the next poll; true while the connection is fine.
  bool step() {
    auto const all = replies(raw.data());
    while (handled < all.size()) {
      auto const& r = all[handled++];
      if (r.status != 200) {
        failed = true;
        return false;
      }
      auto const j = r.body_json();
      if (j.contains("reset")) resets++;
      for (auto id : ids_in(j)) seen.push_back(id);
      cursor = j["cursor"].get<EventId>();
      raw.send(next_request());
    }
    return !raw.closed();
  }

  bool saw(EventId id) const { return std::find(seen.begin(), seen.end(), id) != seen.end(); }

  test::RawClient raw;
  std::string query;
  EventId cursor = 0;
  std::size_t sent = 0;
  std::size_t handled = 0;
  int resets = 0;
  bool failed = false;
  std::vector<EventId> seen;
};

}  // namespace

TEST_CASE("polling: chained cursors see every event once and in order while events are published", "[e2e][polling]") {
  Fixture f;
  ChainPoller p{f.ioc, f.ep, "topic=a&topic=b"};

  // A publisher on the same loop, between and during polls: a, b and an unrelated c.
  std::vector<EventId> expected;
  net::steady_timer timer{f.ioc};
  int published = 0;
  std::function<void()> tick = [&] {
    timer.expires_after(std::chrono::microseconds(300));
    timer.async_wait([&](boost::system::error_code ec) {
      if (ec) return;
      int const burst = 1 + published % 3;
      for (int k = 0; k < burst; ++k, ++published) {
        char const* topic = published % 5 == 4 ? "c" : (published % 2 ? "b" : "a");
        auto const id = f.hub.publish(topic, std::to_string(published));
        if (*topic != 'c') expected.push_back(id);
      }
      if (published < 400) tick();
    });
  };
  tick();
  REQUIRE(run_until(f.ioc, [&] { return !p.step() || published >= 400; }, 20s));
  auto const sentinel = f.hub.publish("a", "sentinel");
  expected.push_back(sentinel);
  REQUIRE(run_until(f.ioc, [&] { return !p.step() || p.saw(sentinel); }, 20s));
  CHECK_FALSE(p.failed);
  CHECK(p.resets == 0);
  CHECK(p.seen == expected);
  CHECK(p.sent > 20);
}

TEST_CASE("polling: chained cursors stay exact while another thread publishes", "[e2e][polling][threads]") {
  Fixture f;
  ChainPoller p{f.ioc, f.ep, "topic=a&topic=b"};
  std::vector<EventId> expected;  // written by the publisher only, read after join
  std::thread publisher([&] {
    for (int i = 0; i < 2000; ++i) {
      char const* topic = i % 5 == 4 ? "c" : (i % 2 ? "b" : "a");
      auto const id = f.hub.publish(topic, std::to_string(i));
      if (*topic != 'c') expected.push_back(id);
      if (i % 64 == 0) std::this_thread::yield();
    }
  });
  bool ok = run_until(f.ioc, [&] { return !p.step() || p.seen.size() >= 100; }, 20s);
  publisher.join();
  REQUIRE(ok);
  auto const sentinel = f.hub.publish("b", "sentinel");
  expected.push_back(sentinel);
  REQUIRE(run_until(f.ioc, [&] { return !p.step() || p.saw(sentinel); }, 20s));
  CHECK_FALSE(p.failed);
  CHECK(p.resets == 0);
  CHECK(p.seen.size() == expected.size());
  CHECK(p.seen == expected);
}

TEST_CASE("polling: a cursor outside the history answers reset and a cursor to go on from", "[e2e][polling]") {
  Fixture f{{}, {}, {.history_events = 2, .first_id = 1}};
  std::vector<EventId> ids;
  for (int i = 0; i < 5; ++i) ids.push_back(f.hub.publish("t", std::to_string(i)));

  SECTION("too old") {
    auto const j = f.once(get("/poll?topic=t&since=" + std::to_string(ids[0]))).body_json();
    CHECK(j["reset"] == true);
    CHECK(ids_in(j) == std::vector<EventId>{ids[3], ids[4]});
    CHECK(j["cursor"] == ids[4]);
    // Continuing from the cursor is clean.
    auto const next = f.once(get("/poll?topic=t&since=" + std::to_string(ids[4]))).body_json();
    CHECK_FALSE(next.contains("reset"));
    CHECK(next["events"].empty());
  }
  SECTION("from the future (another timeline)") {
    auto const j = f.once(get("/poll?topic=t&since=999999")).body_json();
    CHECK(j["reset"] == true);
    CHECK(j["cursor"] == ids[4]);
  }
  SECTION("a long poll with an expired cursor answers at once") {
    auto const j = f.once(get("/poll?topic=t&wait=10&since=" + std::to_string(ids[1]))).body_json();
    CHECK(j["reset"] == true);
    CHECK(ids_in(j) == std::vector<EventId>{ids[3], ids[4]});
  }
  SECTION("edge of history is not a reset") {
    auto const j = f.once(get("/poll?topic=t&since=" + std::to_string(ids[2]))).body_json();
    CHECK_FALSE(j.contains("reset"));
    CHECK(ids_in(j) == std::vector<EventId>{ids[3], ids[4]});
  }
}

TEST_CASE("polling: ETag and If-None-Match answer 304 while nothing is new", "[e2e][polling]") {
  Fixture f;
  auto const id = f.hub.publish("t", "x");
  auto const target = "/poll?topic=t&since=" + std::to_string(id);
  auto const first = f.once(get(target));
  REQUIRE(first.status == 200);
  auto const tag = first.header("ETag");
  REQUIRE_FALSE(tag.empty());

  auto const same = f.once(get(target, "If-None-Match: " + tag + "\r\n"));
  CHECK(same.status == 304);
  CHECK(same.header("ETag") == tag);
  CHECK(same.body.empty());
  CHECK(same.header("Cache-Control") == "private, no-cache");
  CHECK(f.once(get(target, "If-None-Match: \"other\", W/" + tag + "\r\n")).status == 304);
  CHECK(f.once(get(target, "If-None-Match: *\r\n")).status == 304);

  f.hub.publish("unrelated", "y");  // news elsewhere changes nothing for this poll
  CHECK(f.once(get(target, "If-None-Match: " + tag + "\r\n")).status == 304);

  auto const news = f.hub.publish("t", "z");
  auto const changed = f.once(get(target, "If-None-Match: " + tag + "\r\n"));
  CHECK(changed.status == 200);
  CHECK(changed.header("ETag") != tag);
  CHECK(ids_in(changed.body_json()) == std::vector<EventId>{news});
}

TEST_CASE("polling: CORS preflight and cross-origin answers", "[e2e][polling][auth]") {
  Fixture f{{.allowed_origins = {"https://app.example"}, .cors = {.max_age = 60s}}};
  auto const pre = f.once(
      "OPTIONS /poll?topic=t HTTP/1.1\r\nHost: 127.0.0.1\r\nOrigin: https://app.example\r\n"
      "Access-Control-Request-Method: GET\r\nAccess-Control-Request-Headers: authorization\r\n\r\n");
  CHECK(pre.status == 204);
  CHECK(pre.header("Access-Control-Allow-Origin") == "https://app.example");
  CHECK(pre.header("Access-Control-Allow-Methods") == "GET, HEAD, OPTIONS");
  CHECK(pre.header("Access-Control-Allow-Headers") == "If-None-Match, Last-Event-ID, Authorization, Cache-Control");
  CHECK(pre.header("Access-Control-Max-Age") == "60");
  CHECK(pre.header("Access-Control-Allow-Credentials") == "true");
  CHECK(pre.header("Vary") == "Origin");
  CHECK_FALSE(pre.has("Content-Length"));

  auto const evil = f.once(
      "OPTIONS /poll HTTP/1.1\r\nHost: 127.0.0.1\r\nOrigin: https://evil.example\r\n"
      "Access-Control-Request-Method: GET\r\n\r\n");
  CHECK(evil.status == 403);
  CHECK_FALSE(evil.has("Access-Control-Allow-Origin"));

  auto const plain = f.once("OPTIONS /poll HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
  CHECK(plain.status == 204);
  CHECK(plain.header("Allow") == "GET, HEAD, OPTIONS");
  CHECK_FALSE(plain.has("Access-Control-Allow-Origin"));

  auto const cross = f.once(get("/poll?topic=t", "Origin: https://app.example\r\n"));
  CHECK(cross.status == 200);
  CHECK(cross.header("Access-Control-Allow-Origin") == "https://app.example");
  CHECK(cross.header("Access-Control-Expose-Headers") == "ETag");
  CHECK(cross.header("Access-Control-Allow-Credentials") == "true");

  auto const refused = f.once(get("/poll?topic=t", "Origin: https://evil.example\r\n"));
  CHECK(refused.status == 403);
  CHECK(refused.body_json()["error"] == "origin not allowed");
  CHECK_FALSE(refused.has("Access-Control-Allow-Origin"));

  // An allowed origin can read error answers too (so its script sees why).
  auto const bad = f.once(get("/poll?since=x", "Origin: https://app.example\r\n"));
  CHECK(bad.status == 400);
  CHECK(bad.header("Access-Control-Allow-Origin") == "https://app.example");
}

TEST_CASE("polling: an origin allowed by \"*\" alone reads without credentials", "[e2e][polling][auth]") {
  Fixture f{{.allowed_origins = {"*"}}};
  auto const pre = f.once(
      "OPTIONS /poll?topic=t HTTP/1.1\r\nHost: 127.0.0.1\r\nOrigin: https://evil.example\r\n"
      "Access-Control-Request-Method: GET\r\n\r\n");
  CHECK(pre.status == 204);
  CHECK(pre.header("Access-Control-Allow-Origin") == "*");
  CHECK_FALSE(pre.has("Access-Control-Allow-Credentials"));
  auto const cross = f.once(get("/poll?topic=t", "Origin: https://evil.example\r\n"));
  CHECK(cross.status == 200);
  CHECK(cross.header("Access-Control-Allow-Origin") == "*");
  CHECK(cross.header("Access-Control-Expose-Headers") == "ETag");
  CHECK_FALSE(cross.has("Access-Control-Allow-Credentials"));
}

TEST_CASE("polling: HEAD answers a GET's headers without the body, on a kept-alive connection", "[e2e][polling]") {
  Fixture f;
  auto const id = f.hub.publish("t", R"({"n":1})");
  test::RawClient c{f.ioc};
  auto const target = "/poll?topic=t&since=0&wait=10";  // HEAD is never held
  c.request(f.ep, "HEAD " + std::string(target) + " HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n" +
                      "HEAD /poll?topic=t&wait=10 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n" + get(target));
  REQUIRE(run_until(f.ioc, [&] { return replies(c.data(), {0, 1}).size() == 3; }));
  auto const r = replies(c.data(), {0, 1});
  CHECK(r[0].status == 200);
  CHECK(r[0].body.empty());
  CHECK(r[1].status == 200);
  CHECK(r[2].status == 200);
  CHECK(r[0].header("Content-Length") == std::to_string(r[2].body.size()));
  CHECK(ids_in(r[2].body_json()) == std::vector<EventId>{id});
  CHECK(c.data().size() == r[0].head.size() + 2 + r[1].head.size() + 2 + r[2].head.size() + 2 + r[2].body.size());
  CHECK(f.poll.connections() == 0);
}

TEST_CASE("polling: bad parameters get 400 with a JSON error", "[e2e][polling]") {
  Fixture f{{.limits = {.max_subscriptions = 2}}};
  struct Case {
    std::string request;
    int status;
    std::string error;
  };
  auto g = [](std::string target) { return get(target, "Connection: close\r\n"); };
  std::vector<Case> cases{
      {g("/poll?since=abc"), 400, "bad cursor"},
      {g("/poll?since=-1"), 400, "bad cursor"},
      {g("/poll?since="), 400, "bad cursor"},
      {g("/poll?since=1&since=2"), 400, "bad cursor"},
      {g("/poll?since=99999999999999999999999"), 400, "bad cursor"},
      {g("/poll?wait=-1"), 400, "bad request"},
      {g("/poll?wait=abc"), 400, "bad request"},
      {g("/poll?wait=1e3"), 400, "bad request"},
      {g("/poll?wait=86400"), 400, "bad request"},
      {g("/poll?wait=99999999999999999999999"), 400, "bad request"},
      {g("/poll?limit=0"), 400, "bad request"},
      {g("/poll?limit=-5"), 400, "bad request"},
      {g("/poll?limit=ten"), 400, "bad request"},
      {g("/poll?topic=%01x"), 400, "bad topic name"},
      {g("/poll?topic="), 400, "bad topic name"},
      {g("/poll?topic=%zz"), 400, "bad request"},
      {g("/poll?topic=a&topic=b&topic=c"), 400, "too many subscriptions"},
      {"POST /poll HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\nConnection: close\r\n\r\n", 405, "method not allowed"},
      {"DELETE /poll HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n", 405, "method not allowed"},
  };
  for (auto const& tc : cases) {
    INFO(tc.request);
    auto const r = f.once(tc.request);
    CHECK(r.status == tc.status);
    CHECK(r.header("Content-Type") == "application/json");
    CHECK(r.header("Cache-Control") == "no-store");
    auto const j = r.body_json();
    CHECK(j["error"] == tc.error);
    if (tc.status == 405) CHECK(r.header("Allow") == "GET, HEAD, OPTIONS");
    if (tc.status == 400 && tc.error != "bad request") CHECK(j.contains("message"));
  }
  // A 400 keeps the connection: the next request on it is served.
  test::RawClient c{f.ioc};
  c.request(f.ep, get("/poll?since=x") + get("/poll?topic=t"));
  REQUIRE(run_until(f.ioc, [&] { return replies(c.data()).size() == 2; }));
  CHECK(replies(c.data())[0].status == 400);
  CHECK(replies(c.data())[1].status == 200);
  CHECK(f.poll.connections() == 0);
  CHECK(f.hub.stats().connections == 0);
}

TEST_CASE("polling: the authorize hook and topic checks answer 401/403 before any poll", "[e2e][polling][auth]") {
  auto co = test::bearer_auth();
  Fixture f{std::move(co)};
  auto const none = f.once(get("/poll?topic=t&wait=10"));
  CHECK(none.status == 401);
  CHECK(none.body_json()["message"] == "token required");
  CHECK(f.once(get("/poll?topic=t", "Authorization: Bearer banned\r\n")).status == 403);
  CHECK(f.once(get("/poll?topic=t", "Authorization: Bearer throw\r\n")).status == 500);
  CHECK(f.once(get("/poll?topic=secret", "Authorization: Bearer good\r\n")).status == 403);
  CHECK(f.once(get("/poll", "Authorization: Bearer good\r\n")).status == 403);
  CHECK(f.once(get("/poll?topic=t", "Authorization: Bearer good\r\n")).status == 200);
  // A preflight carries no credentials: it is answered without the hook.
  CHECK(f.once("OPTIONS /poll HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n").status == 204);
  CHECK(f.poll.connections() == 0);
}

TEST_CASE("polling: fixed topics are the default and the query may only narrow them", "[e2e][polling]") {
  Fixture f{{.topics = {"x", "y"}}};
  auto const x = f.hub.publish("x", "x");
  f.hub.publish("z", "z");
  auto const y = f.hub.publish("y", "y");
  CHECK(ids_in(f.once(get("/poll?since=0")).body_json()) == std::vector<EventId>{x, y});
  CHECK(ids_in(f.once(get("/poll?since=0&topic=y")).body_json()) == std::vector<EventId>{y});
  CHECK(f.once(get("/poll?since=0&topic=z")).status == 403);
}

TEST_CASE("polling: one publish wakes 1,000 held long polls", "[e2e][polling][scale]") {
  Fixture f;
  constexpr int n = 1000;
  std::vector<std::unique_ptr<test::RawClient>> clients;
  clients.reserve(n);
  auto const target = "/poll?topic=news&wait=30&since=" + std::to_string(f.hub.stats().last_id);
  for (int i = 0; i < n; ++i) {
    clients.push_back(std::make_unique<test::RawClient>(f.ioc));
    clients.back()->request(f.ep, get(target));
  }
  REQUIRE(run_until(f.ioc, [&] { return f.poll.connections() == n; }, 60s));
  CHECK(f.hub.stats().connections == n);

  auto const start = std::chrono::steady_clock::now();
  auto const id = f.hub.publish("news", R"({"headline":"one publish"})");
  std::vector<bool> done(n, false);
  std::size_t answered = 0;
  REQUIRE(run_until(f.ioc, [&] {
    for (int i = 0; i < n; ++i)
      if (!done[i] && !clients[i]->data().empty() && !replies(clients[i]->data()).empty()) {
        done[i] = true;
        ++answered;
      }
    return answered == n;
  }, 60s));
  auto const elapsed = std::chrono::steady_clock::now() - start;
  INFO("woke " << n << " held polls in "
               << std::chrono::duration_cast<std::chrono::microseconds>(elapsed).count() << " us");
  for (auto const& c : clients) {
    auto const r = replies(c->data()).front();
    REQUIRE(r.status == 200);
    REQUIRE(ids_in(r.body_json()) == std::vector<EventId>{id});
  }
  REQUIRE(run_until(f.ioc, [&] { return f.poll.connections() == 0 && f.hub.stats().connections == 0; }));
  CHECK(f.hub.stats().deliveries == n);
}

TEST_CASE("polling: a held client that goes away is cleaned up at once", "[e2e][polling]") {
  Fixture f;
  std::vector<std::unique_ptr<test::RawClient>> clients;
  for (int i = 0; i < 5; ++i) {
    clients.push_back(std::make_unique<test::RawClient>(f.ioc));
    clients.back()->request(f.ep, get("/poll?topic=fresh&wait=30&since=0"));
  }
  REQUIRE(run_until(f.ioc, [&] { return f.poll.connections() == 5; }));
  CHECK(f.hub.stats().connections == 5);
  CHECK(f.hub.stats().topics == 1);
  for (auto& c : clients) c->close();
  // Well before the 30 s wait: the server's read notices each disconnect.
  REQUIRE(run_until(f.ioc, [&] {
    return f.poll.connections() == 0 && f.hub.stats().connections == 0 && f.hub.stats().topics == 0;
  }, 5s));
  // The hub holds nothing for them: a publish reaches nobody.
  f.hub.publish("fresh", "after");
  CHECK(f.hub.stats().deliveries == 0);
}

TEST_CASE("polling: keep-alive carries polls, a held poll and another path on one connection", "[e2e][polling]") {
  Fixture f;
  auto const a = f.hub.publish("t", "a");
  test::RawClient c{f.ioc};
  c.request(f.ep, get("/poll?topic=t&since=0"));
  REQUIRE(run_until(f.ioc, [&] { return replies(c.data()).size() == 1; }));
  CHECK(ids_in(replies(c.data())[0].body_json()) == std::vector<EventId>{a});

  c.send(get("/poll?topic=t&wait=10&since=" + std::to_string(a)));
  REQUIRE(run_until(f.ioc, [&] { return f.poll.connections() == 1; }));
  auto const b = f.hub.publish("t", "b");
  REQUIRE(run_until(f.ioc, [&] { return replies(c.data()).size() == 2; }));
  CHECK(ids_in(replies(c.data())[1].body_json()) == std::vector<EventId>{b});

  c.send(get("/other"));
  REQUIRE(run_until(f.ioc, [&] { return replies(c.data()).size() == 3; }));
  CHECK(replies(c.data())[2].status == 200);
  CHECK(replies(c.data())[2].body == "other");

  SECTION("a request pipelined behind a held poll is answered after it, in order") {
    c.send(get("/poll?topic=t&wait=10&since=" + std::to_string(b)) + get("/other") +
           get("/poll?topic=t&since=" + std::to_string(b)));
    REQUIRE(run_until(f.ioc, [&] { return f.poll.connections() == 1; }));
    auto const d = f.hub.publish("t", "d");
    REQUIRE(run_until(f.ioc, [&] { return replies(c.data()).size() == 6; }));
    auto const r = replies(c.data());
    CHECK(ids_in(r[3].body_json()) == std::vector<EventId>{d});
    CHECK(r[4].body == "other");
    CHECK(ids_in(r[5].body_json()) == std::vector<EventId>{d});
  }
  SECTION("Connection: close is honoured after a held poll") {
    c.send(get("/poll?topic=t&wait=0.02&since=" + std::to_string(b), "Connection: close\r\n"));
    REQUIRE(run_until(f.ioc, [&] { return c.closed(); }));
    CHECK(replies(c.data()).size() == 4);
  }
  CHECK_FALSE(c.error());
}

TEST_CASE("polling: an answer stops at max_answer_bytes, says more, and the next polls get the rest",
          "[e2e][polling]") {
  Fixture f{{}, {.max_answer_bytes = 4096}};
  std::vector<EventId> published;
  for (int i = 0; i < 20; ++i) published.push_back(f.hub.publish("t", std::string(1000, static_cast<char>('a' + i))));
  auto const big = f.hub.publish("t", std::string(10'000, 'z'));  // larger than the bound: goes alone
  published.push_back(big);
  auto const after = f.hub.publish("t", "small");
  published.push_back(after);

  std::vector<EventId> got;
  EventId cursor = 0;
  for (int polls = 0; polls < 30; ++polls) {
    auto const r = f.once(get("/poll?topic=t&limit=1000&since=" + std::to_string(cursor)));
    REQUIRE(r.status == 200);
    auto const j = r.body_json();
    auto const ids = ids_in(j);
    REQUIRE_FALSE(ids.empty());
    if (ids.size() > 1) CHECK(r.body.size() <= 4096 + 64);  // the envelopes, plus the cursor and flags
    if (ids.front() == big) CHECK(ids.size() == 1);
    got.insert(got.end(), ids.begin(), ids.end());
    CHECK(j["cursor"] == ids.back());
    cursor = ids.back();
    if (!j.contains("more")) break;
    CHECK(j["more"] == true);
  }
  CHECK(got == published);  // in order, nothing lost, nothing twice

  // A long poll answers live events under the same bound.
  test::RawClient held{f.ioc};
  held.request(f.ep, get("/poll?topic=t&limit=1000&wait=10&since=" + std::to_string(after)));
  REQUIRE(run_until(f.ioc, [&] { return f.poll.connections() == 1; }));
  for (int i = 0; i < 3; ++i) f.hub.publish("t", std::string(3000, 'x'));
  REQUIRE(run_until(f.ioc, [&] { return replies(held.data()).size() == 1; }));
  auto const live = replies(held.data())[0].body_json();
  CHECK(ids_in(live).size() < 3);
  CHECK(live["more"] == true);
}

TEST_CASE("polling: answers nobody reads hold at most max_answer_bytes each", "[e2e][polling]") {
  constexpr std::size_t bound = 64 * 1024;
  Fixture f{{}, {.max_answer_bytes = bound}};
  herald::Metrics metrics;
  metrics.add(f.poll);
  auto written = [&] {
    auto const text = metrics.text();
    std::string const key = R"(herald_written_bytes_total{channel="/poll",transport="polling"} )";
    auto const at = text.find(key);
    return at == std::string::npos ? std::size_t{0} : std::stoul(text.substr(at + key.size()));
  };
  std::string const payload(4096, 'p');
  for (int i = 0; i < 200; ++i) f.hub.publish("t", payload);  // 800 KiB of history

  auto const one = f.once(get("/poll?topic=t&since=0&limit=1000"));
  REQUIRE(one.status == 200);
  CHECK(one.body_json()["more"] == true);
  auto const size = one.body.size();
  CHECK(size <= bound + payload.size() + 128);
  REQUIRE(written() == size);

  // Twenty clients ask for everything and never read: what the server builds for them is
  // twenty bounded answers, not twenty copies of the history.
  std::vector<std::unique_ptr<test::RawClient>> stalled;
  for (int i = 0; i < 20; ++i) {
    stalled.push_back(std::make_unique<test::RawClient>(f.ioc));
    stalled.back()->receive_buffer(4096);
    stalled.back()->request(f.ep, get("/poll?topic=t&since=0&limit=1000"), /*read=*/false);
  }
  REQUIRE(run_until(f.ioc, [&] { return written() == 21 * size; }));
  CHECK(size * 10 < 200 * payload.size());  // an unbounded answer would copy all 800 KiB
}

TEST_CASE("polling: held polls count toward the channel's connection limit", "[e2e][polling]") {
  Fixture f{{.limits = {.max_connections = 1}}};
  test::RawClient held{f.ioc};
  held.request(f.ep, get("/poll?topic=t&wait=10&since=0"));
  REQUIRE(run_until(f.ioc, [&] { return f.poll.connections() == 1; }));
  auto const over = f.once(get("/poll?topic=t&wait=10&since=0"));
  CHECK(over.status == 503);
  CHECK(over.body_json()["error"] == "too many connections");
  CHECK(over.header("Retry-After") == "5");  // herald::default_retry_after
  CHECK(f.once(get("/poll?topic=t&since=0")).status == 200);  // a short poll is never held
  auto const id = f.hub.publish("t", "x");
  REQUIRE(run_until(f.ioc, [&] { return replies(held.data()).size() == 1; }));
  CHECK(ids_in(replies(held.data())[0].body_json()) == std::vector<EventId>{id});
}

TEST_CASE("polling: graceful shutdown answers held polls and closes", "[e2e][polling]") {
  Fixture f;
  auto const last = f.hub.publish("t", "x");
  test::RawClient held{f.ioc};
  held.request(f.ep, get("/poll?topic=t&wait=30&since=" + std::to_string(last)));
  REQUIRE(run_until(f.ioc, [&] { return f.poll.connections() == 1; }));

  std::optional<boost::system::error_code> stopped;
  f.server.async_stop(5s, [&](boost::system::error_code ec) { stopped = ec; });
  REQUIRE(run_until(f.ioc, [&] { return stopped && held.closed(); }));
  CHECK(!*stopped);
  auto const r = replies(held.data());
  REQUIRE(r.size() == 1);
  CHECK(r[0].status == 200);
  CHECK(r[0].body_json() == json{{"events", json::array()}, {"cursor", last}});
  CHECK(r[0].header("Connection") == "close");
  CHECK(f.poll.connections() == 0);
}

TEST_CASE("polling: a large answer is written from the stored envelopes, byte for byte, and keep-alive goes on",
          "[e2e][polling]") {
  Fixture f;
  std::string expected = R"({"events":[)";
  EventId last = 0;
  for (int i = 0; i < 8; ++i) {  // 32 KiB: past AnswerBody::splice_from, so held by pointer
    std::string const data(4096, static_cast<char>('a' + i));
    last = f.hub.publish("t", data);
    herald::Event ev;
    ev.id = last;
    ev.topic = "t";
    ev.data = data;
    ev.kind = herald::PayloadKind::text;
    expected += (i ? "," : "") + herald::detail::encode_json_envelope(ev);
  }
  expected += R"(],"cursor":)" + std::to_string(last) + "}\n";
  REQUIRE(expected.size() >= herald::detail::AnswerBody::splice_from);

  // A GET, a HEAD of the same and a GET for what follows, pipelined on one connection.
  std::string const target = "/poll?topic=t&since=0&limit=1000";
  test::RawClient c{f.ioc};
  c.request(f.ep, get(target) + "HEAD " + target + " HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n" +
                      get("/poll?topic=t&since=" + std::to_string(last)));
  REQUIRE(run_until(f.ioc, [&] { return replies(c.data(), {1}).size() == 3; }));
  auto const r = replies(c.data(), {1});
  CHECK(r[0].status == 200);
  CHECK(r[0].body == expected);
  CHECK(r[1].header("Content-Length") == std::to_string(expected.size()));
  CHECK(r[1].body.empty());
  CHECK(r[2].body_json() == json{{"events", json::array()}, {"cursor", last}});
  CHECK_FALSE(c.closed());
}

TEST_CASE("polling: twenty answers to one large poll are written from the hub's stored envelopes, not copies",
          "[unit][polling]") {
  net::io_context ioc;
  herald::Hub hub{ioc.get_executor(), {.first_id = 1}};
  herald::Channel<herald::Polling> poll{hub, "/poll"};
  for (int i = 0; i < 64; ++i) hub.publish("t", std::string(4096, static_cast<char>('a' + i % 26)));
  // What the hub retains: the stored events every transport writes from.
  auto const stored = hub.state()->read(herald::detail::TopicSet{{"t"}}, 0, 0).events;
  REQUIRE(stored.size() == 64);
  auto const held_before = stored.front().use_count();

  std::vector<herald::Response> answers;
  for (int i = 0; i < 20; ++i) {
    herald::Request req{http::verb::get, "/poll?topic=t&since=0&limit=1000", 11};
    req.set(http::field::host, "127.0.0.1");
    auto const held = poll.endpoint()->answer(std::move(req), ioc.get_executor(),
                                              [&](herald::Response&& res) { answers.push_back(std::move(res)); });
    CHECK(held == nullptr);  // a short poll is answered at once
  }
  REQUIRE(answers.size() == 20);
  std::size_t own = 0;  // the bytes each answer has of its own: the frame and the commas
  for (auto const& res : answers) {
    auto const& body = res.body();
    REQUIRE(body.pieces() == 2 * stored.size() + 1);
    for (std::size_t i = 0; i < stored.size(); ++i) {
      auto const piece = body.piece(2 * i + 1);
      auto const& envelope = herald::detail::json_envelope(*stored[i]);
      CHECK(piece.data() == envelope.data());  // the hub's bytes themselves
      CHECK(piece.size() == envelope.size());
    }
    own = body.size();
    for (std::size_t i = 0; i < stored.size(); ++i) own -= body.piece(2 * i + 1).size();
  }
  CHECK(own < 128);
  // Each answer holds each event by one shared pointer, so they outlive the history.
  CHECK(stored.front().use_count() == held_before + 20);
}

TEST_CASE("polling: embedding answers the handed-over request, then closes", "[e2e][polling][embed]") {
  net::io_context ioc;
  herald::Hub hub{ioc.get_executor(), {.first_id = 1}};
  herald::Channel<herald::Polling> poll{hub, "/updates"};
  tcp::acceptor acceptor{ioc, {net::ip::make_address("127.0.0.1"), 0}};
  auto const ep = acceptor.local_endpoint();

  struct Conn {
    explicit Conn(tcp::socket s) : stream(std::move(s)) {}
    boost::beast::tcp_stream stream;
    boost::beast::flat_buffer buffer;
    herald::Request req;
  };
  std::function<void()> accept_one = [&] {
    acceptor.async_accept(net::make_strand(ioc), [&](boost::system::error_code ec, tcp::socket s) {
      if (ec) return;
      auto conn = std::make_shared<Conn>(std::move(s));
      conn->stream.expires_after(5s);  // the application's own request timeout must not cut a hold
      http::async_read(conn->stream, conn->buffer, conn->req, [&, conn](boost::system::error_code ec, std::size_t) {
        if (!ec) poll.accept(std::move(conn->stream), std::move(conn->req));
      });
      accept_one();
    });
  };
  accept_one();

  auto a = hub.publish("t", "a");
  test::RawClient shortc{ioc};
  shortc.request(ep, get("/updates?topic=t&since=0"));
  REQUIRE(run_until(ioc, [&] { return shortc.closed(); }));
  auto const r = replies(shortc.data());
  REQUIRE(r.size() == 1);
  CHECK(r[0].header("Connection") == "close");
  CHECK(ids_in(r[0].body_json()) == std::vector<EventId>{a});

  // A large answer (its envelopes written in place, not copied) arrives whole before the close.
  std::vector<EventId> large;
  for (int i = 0; i < 8; ++i) large.push_back(hub.publish("t", std::string(4096, 'l')));
  test::RawClient bigc{ioc};
  bigc.request(ep, get("/updates?topic=t&since=" + std::to_string(a)));
  REQUIRE(run_until(ioc, [&] { return bigc.closed(); }));
  REQUIRE(replies(bigc.data()).size() == 1);
  CHECK(ids_in(replies(bigc.data())[0].body_json()) == large);
  a = large.back();

  test::RawClient longc{ioc}, gone{ioc};
  longc.request(ep, get("/updates?topic=t&wait=10&since=" + std::to_string(a)));
  gone.request(ep, get("/updates?topic=t&wait=10&since=" + std::to_string(a)));
  REQUIRE(run_until(ioc, [&] { return poll.connections() == 2; }));
  gone.close();
  REQUIRE(run_until(ioc, [&] { return poll.connections() == 1; }));
  auto const b = hub.publish("t", "b");
  REQUIRE(run_until(ioc, [&] { return longc.closed(); }));
  CHECK(ids_in(replies(longc.data()).at(0).body_json()) == std::vector<EventId>{b});
  CHECK(poll.connections() == 0);
  CHECK(hub.stats().connections == 0);
}

TEST_CASE("polling: disconnect_all answers held polls and keeps admitting", "[e2e][polling]") {
  Fixture f;
  auto const last = f.hub.publish("t", "x");
  test::RawClient held{f.ioc};
  held.request(f.ep, get("/poll?topic=t&wait=30&since=" + std::to_string(last)));
  REQUIRE(run_until(f.ioc, [&] { return f.poll.connections() == 1; }));
  f.poll.disconnect_all();
  REQUIRE(run_until(f.ioc, [&] { return held.closed(); }));
  auto const r = replies(held.data());
  REQUIRE(r.size() == 1);
  CHECK(r[0].body_json() == json{{"events", json::array()}, {"cursor", last}});
  CHECK(r[0].header("Connection") == "close");
  CHECK(f.poll.connections() == 0);
  // The client polls again from its cursor and is served.
  test::RawClient again{f.ioc};
  again.request(f.ep, get("/poll?topic=t&wait=30&since=" + std::to_string(last)));
  REQUIRE(run_until(f.ioc, [&] { return f.poll.connections() == 1; }));
  auto const next = f.hub.publish("t", "y");
  REQUIRE(run_until(f.ioc, [&] { return replies(again.data()).size() == 1; }));
  CHECK(ids_in(replies(again.data())[0].body_json()) == std::vector<EventId>{next});
}

TEST_CASE("polling: destroying everything while polls are held leaks nothing", "[e2e][polling]") {
  // Run under ASan/LSan: a reference cycle between a connection and its held poll would leak here.
  Fixture f;
  test::RawClient held{f.ioc};
  held.request(f.ep, get("/poll?topic=t&wait=30&since=0"));
  REQUIRE(run_until(f.ioc, [&] { return f.poll.connections() == 1; }));
  held.close();  // the server has not run since: it never sees the close
}
