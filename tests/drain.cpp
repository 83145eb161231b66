// Drain with hand-off (issue 13, item 2): Server::async_drain closes connections spread over a
// window, each close carrying the client's delay and cursor, refuses new requests with delays
// spread over what is left of the window, and herald's clients wait exactly that and resume
// from the cursor on another server of the same hub, losing and repeating nothing.

#include <herald/client.hpp>
#include <herald/detail/drain.hpp>
#include <herald/detail/response.hpp>
#include <herald/detail/sse_format.hpp>
#include <herald/herald.hpp>
#include <herald/metrics.hpp>

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <deque>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "client_record.hpp"
#include "hop_connector.hpp"
#include "http_client.hpp"
#include "loopback.hpp"
#include "ws_client.hpp"

namespace {

namespace net = boost::asio;
namespace hc = herald::client;
using namespace std::chrono_literals;
using clock_type = std::chrono::steady_clock;
using test::run_until;

std::function<std::uint64_t()> seeded(std::uint64_t seed) {
  auto rng = std::make_shared<std::mt19937_64>(seed);
  return [rng] { return (*rng)(); };
}

}  // namespace

TEST_CASE("drain: the hand-off on the wire, as pure functions", "[drain]") {
  using herald::detail::drain_json;
  CHECK(drain_json(1234ms, 42) == R"({"error":"draining","retry_ms":1234,"cursor":42})");
  CHECK(drain_json(0ms, 0) == R"({"error":"draining","retry_ms":0})");
  // The largest fits a WebSocket close reason (123 bytes).
  CHECK(drain_json(std::chrono::milliseconds(INT64_MAX), UINT64_MAX).size() <= 123);

  CHECK(herald::detail::sse_drain(750ms, 9) ==
        "retry: 750\n\nevent: herald.drain\nid: 9\ndata: {\"error\":\"draining\",\"retry_ms\":750,\"cursor\":9}\n\n");
  CHECK(herald::detail::sse_drain(750ms, 0).find("id:") == std::string::npos);

  auto const res = herald::detail::drain_answer(11, 1001ms, 7);
  CHECK(res.result_int() == 503);
  CHECK(res[boost::beast::http::field::retry_after] == "2");  // whole seconds, rounded up
  CHECK(res["Herald-Retry-Ms"] == "1001");
  CHECK(!res.keep_alive());

  // Every other retryable refusal keeps its plain Retry-After.
  auto const full = herald::detail::error_response(herald::error::too_many_connections, {}, 11, false, 5s);
  CHECK(full[boost::beast::http::field::retry_after] == "5");
  CHECK(full["Herald-Retry-Ms"].empty());

  auto const n = hc::detail::parse_drain(drain_json(1234ms, 42));
  REQUIRE(n);
  CHECK(n->retry == 1234ms);
  CHECK(n->cursor == 42u);
  CHECK(!hc::detail::parse_drain(R"({"error":"draining"})"));
  CHECK(!hc::detail::parse_drain(R"({"error":"shutting down","retry_ms":5})"));
  CHECK(!hc::detail::parse_drain("draining"));

  // Refusals are told what is left of the window on top of the jitter; closes only the jitter.
  herald::detail::RetrySpread spread{100ms, 50ms, clock_type::now() + 10s, seeded(1)};
  for (int i = 0; i < 100; ++i) {
    auto const d = spread.draw();
    CHECK((d >= 100ms && d <= 150ms));
    auto const r = spread.draw_refusal();
    CHECK((r >= 100ms && r <= 150ms + 10s));
  }
}

namespace {

/// What one client of a hand-off saw: when it left server A and when it was back on B.
template <class Client>
struct Member {
  std::shared_ptr<test::HopConnector> hop;
  std::unique_ptr<Client> client;
  test::Record rec;
  std::optional<clock_type::time_point> left;
  std::optional<clock_type::time_point> back;
  std::chrono::microseconds delay{};
};

/** `n` clients of transport T follow topic "t" on server A; A drains over `window` while a
    second server B (its own channel, the same hub) takes the clients over (their connector now
    points at B). Events are published only once the drain began, so an SSE client knows no id
    of its own: only the drain's cursor tells it where it stands. */
template <class T, class Client>
void hand_off(std::string const& scheme, std::size_t n, hc::Options base = {}) {
  net::io_context ioc{1};
  herald::Hub hub{ioc.get_executor(), {.first_id = 1}};
  herald::Channel<T> on_a{hub, "/s"};
  herald::Channel<T> on_b{hub, "/s"};
  herald::Server a{ioc.get_executor()};
  herald::Server b{ioc.get_executor()};
  a.add(on_a);
  b.add(on_b);
  auto const pa = a.listen("127.0.0.1", 0).port();
  auto const pb = b.listen("127.0.0.1", 0).port();

  std::deque<Member<Client>> members(n);
  for (auto& m : members) {
    m.hop = std::make_shared<test::HopConnector>(std::vector<std::uint16_t>{pa});
    auto o = base;
    o.topics = {"t"};
    o.connector = m.hop;
    o.backoff = test::quick_backoff();
    m.client = std::make_unique<Client>(ioc.get_executor(), scheme + "://127.0.0.1:" + std::to_string(pa) + "/s", o);
    m.rec.attach(*m.client);
    m.client->on_state([&m](hc::State s, boost::system::error_code ec) {
      m.rec.states.emplace_back(s, ec);
      if (s == hc::State::reconnecting && ec == herald::error::draining && !m.left) {
        m.left = clock_type::now();
        m.delay = m.client->reconnect_delay();
      }
      if (s == hc::State::open && m.left && !m.back) m.back = clock_type::now();
    });
    m.client->start();
  }
  REQUIRE(run_until(ioc, [&] { return std::all_of(members.begin(), members.end(), [](auto& m) { return m.rec.open(); }); }));
  // Every client is subscribed on A (a long poll held, a stream open, a WebSocket's subscribe
  // message acknowledged) before the drain begins: a subscription that never took effect has no
  // position to hand over.
  herald::Metrics metrics;
  metrics.add(on_a);
  auto const subscribed = "herald_subscriptions{channel=\"/s\",transport=\"" + std::string(T::name) + "\"} " +
                          std::to_string(n) + "\n";
  REQUIRE(run_until(ioc, [&] { return on_a.connections() == n && metrics.text().find(subscribed) != std::string::npos; }));

  constexpr auto window = 400ms;
  herald::DrainOptions const drain{.window = window, .retry_min = 150ms, .retry_jitter = 100ms, .grace = 2s,
                                   .random = seeded(7)};
  std::optional<boost::system::error_code> drained;
  a.async_drain(drain, [&](boost::system::error_code ec) { drained = ec; });
  for (auto& m : members) m.hop->ports({pb});

  // Publish every 10 ms through the drain until every client is back, then a last one.
  std::vector<herald::EventId> published;
  bool publishing = true;
  net::steady_timer tick{ioc};
  std::function<void()> publish = [&] {
    published.push_back(hub.publish("t", R"({"n":)" + std::to_string(published.size()) + "}"));
    if (!publishing) return;
    tick.expires_after(10ms);
    tick.async_wait([&](boost::system::error_code ec) {
      if (!ec) publish();
    });
  };
  publish();
  REQUIRE(run_until(ioc, [&] { return std::all_of(members.begin(), members.end(), [](auto& m) { return m.back.has_value(); }); },
                    20s));
  publishing = false;
  tick.cancel();
  publish();
  bool const complete = run_until(ioc, [&] {
    return std::all_of(members.begin(), members.end(), [&](auto& m) { return m.rec.events.size() >= published.size(); });
  });
  for (auto& m : members)
    if (m.rec.events.size() < published.size()) {
      std::string ids;
      for (auto id : m.rec.ids()) ids += std::to_string(id) + " ";
      UNSCOPED_INFO("incomplete client: " << m.rec.events.size() << " of " << published.size() << ": " << ids);
    }
  REQUIRE(complete);
  REQUIRE(run_until(ioc, [&] { return drained.has_value(); }));
  CHECK(!*drained);

  std::vector<clock_type::time_point> back;
  for (auto& m : members) {
    INFO("client " << (&m - &members.front()));
    // Exactly the published sequence: nothing lost across the hand-off, nothing twice.
    CHECK(m.rec.ids() == published);
    CHECK(m.rec.resets.empty());
    // It waited the delay it was told, not its backoff (at most 20 ms here).
    CHECK(m.delay >= drain.retry_min);
    CHECK(m.delay <= drain.retry_min + drain.retry_jitter + window);
    // It came back to B (and to A never again), soon after its delay.
    CHECK(m.hop->attempts.back() == pb);
    auto const gap = std::chrono::duration_cast<std::chrono::milliseconds>(*m.back - *m.left);
    INFO("back " << gap.count() << " ms after it left, told " << m.delay.count() << " us");
    CHECK(gap < std::chrono::duration_cast<std::chrono::milliseconds>(m.delay) + 2s);
    back.push_back(*m.back);
  }
  // The returns are spread over the window, not bunched in one instant.
  std::sort(back.begin(), back.end());
  CHECK(back.back() - back.front() >= window / 2);
  CHECK(on_a.connections() == 0);
}

}  // namespace

TEST_CASE("drain: SSE streams end spread over the window with retry and cursor, and resume on another server",
          "[e2e][drain]") {
  hand_off<herald::Sse, hc::SseClient>("http", 8);
}

TEST_CASE("drain: WebSocket closes 1012 spread over the window with delay and cursor, and resumes elsewhere",
          "[e2e][drain]") {
  hand_off<herald::WebSocket, hc::WebSocketClient>("ws", 8);
}

TEST_CASE("drain: long polls get 503 with their delay and cursor, and resume elsewhere", "[e2e][drain]") {
  hc::Options o;
  o.poll.wait = 5s;
  hand_off<herald::Polling, hc::PollingClient>("http", 8, o);
}

TEST_CASE("drain: the wire of each transport, and new requests refused with a delay", "[e2e][drain]") {
  net::io_context ioc{1};
  herald::Hub hub{ioc.get_executor(), {.first_id = 1}};
  herald::Channel<herald::Sse> sse{hub, "/sse"};
  herald::Channel<herald::WebSocket> ws{hub, "/ws"};
  herald::Channel<herald::Polling> poll{hub, "/poll"};
  herald::Server server{ioc.get_executor()};
  server.add(sse).add(ws).add(poll);
  auto const ep = server.listen("127.0.0.1", 0);
  std::string const host = "Host: 127.0.0.1:" + std::to_string(ep.port()) + "\r\n";

  test::RawClient stream{ioc};
  stream.get(ep, "/sse?topic=t");
  test::WsClient socket{ioc};
  socket.connect(ep, "/ws");
  REQUIRE(run_until(ioc, [&] { return socket.open(); }));
  socket.send(R"({"subscribe":"t"})");
  REQUIRE(run_until(ioc, [&] { return socket.count_with("subscribed") == 1; }));
  auto const first = hub.publish("t", "1");
  REQUIRE(run_until(ioc, [&] { return stream.data().find("data: 1") != std::string::npos && socket.saw_id(first); }));
  test::RawClient held{ioc};
  held.get(ep, "/poll?topic=t&since=" + std::to_string(first) + "&wait=10");
  REQUIRE(run_until(ioc, [&] { return poll.connections() == 1; }));
  // Another topic moves the hub on: the cursors say where each client stands, past it.
  auto const other = hub.publish("elsewhere", "x");

  std::optional<boost::system::error_code> drained;
  server.async_drain({.window = 0ms, .retry_min = 100ms, .retry_jitter = 0ms, .grace = 2s},
                     [&](boost::system::error_code ec) { drained = ec; });
  REQUIRE(run_until(ioc, [&] { return stream.closed() && socket.ended() && held.closed(); }));

  // SSE: retry: with the delay, then the herald.drain event whose id is the cursor.
  auto const body = stream.body();
  auto const at = body.find("retry: 100\n\nevent: herald.drain\nid: " + std::to_string(other) + "\n");
  CHECK(at != std::string::npos);
  CHECK(body.find(R"(data: {"error":"draining","retry_ms":100,"cursor":)" + std::to_string(other) + "}") != std::string::npos);

  // WebSocket: 1012 with the JSON reason.
  CHECK(socket.close_code() == 1012);
  auto const reason = nlohmann::json::parse(socket.close_reason(), nullptr, false);
  REQUIRE(reason.is_object());
  CHECK(reason["error"] == "draining");
  CHECK(reason["retry_ms"] == 100);
  CHECK(reason["cursor"] == other);

  // A held long poll: 503, Retry-After in seconds, the exact delay, the cursor in the body.
  CHECK(held.data().starts_with("HTTP/1.1 503"));
  CHECK(held.header("Retry-After") == "1");
  CHECK(held.header("Herald-Retry-Ms") == "100");
  auto const answer = nlohmann::json::parse(held.body(), nullptr, false);
  REQUIRE(answer.is_object());
  CHECK(answer["cursor"] == other);

  REQUIRE(run_until(ioc, [&] { return drained.has_value(); }));
  CHECK(!*drained);
}

TEST_CASE("drain: requests during a drain are refused retryably, with delays spread over the window",
          "[e2e][drain]") {
  net::io_context ioc{1};
  herald::Hub hub{ioc.get_executor(), {.first_id = 1}};
  herald::Channel<herald::Sse> sse{hub, "/sse"};
  herald::Channel<herald::Polling> poll{hub, "/poll"};
  herald::Server server{ioc.get_executor()};
  server.add(sse).add(poll);
  auto const ep = server.listen("127.0.0.1", 0);
  // One stream keeps the drain's window open while the refusals are asked for.
  test::RawClient keep{ioc};
  keep.get(ep, "/sse?topic=t");
  REQUIRE(run_until(ioc, [&] { return sse.connections() == 1; }));
  auto const last = hub.publish("t", "1");

  std::optional<boost::system::error_code> drained;
  server.async_drain({.window = 2s, .retry_min = 100ms, .retry_jitter = 0ms, .grace = 2s, .random = seeded(3)},
                     [&](boost::system::error_code ec) { drained = ec; });
  test::drain(ioc);

  // A new connection: an EventSource's request gets a stream that ends with its retry:.
  test::RawClient es{ioc};
  es.request(ep, "GET /sse?topic=t HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n");
  // A poll (new connection too): 503, its delay, the cursor it may resume from.
  std::vector<std::unique_ptr<test::RawClient>> polls;
  for (int i = 0; i < 8; ++i) {
    polls.push_back(std::make_unique<test::RawClient>(ioc));
    polls.back()->get(ep, "/poll?topic=t");
  }
  REQUIRE(run_until(ioc, [&] {
    return es.closed() && std::all_of(polls.begin(), polls.end(), [](auto const& p) { return p->closed(); });
  }));
  CHECK(es.data().starts_with("HTTP/1.1 200"));
  CHECK(es.body().find(": refused: draining\nretry: ") != std::string::npos);
  CHECK(!es.header("Herald-Retry-Ms").empty());
  std::vector<long> delays;
  for (auto const& p : polls) {
    CHECK(p->data().starts_with("HTTP/1.1 503"));
    auto const ms = std::stol(p->header("Herald-Retry-Ms"));
    CHECK((ms >= 100 && ms <= 2100));
    delays.push_back(ms);
    auto const body = nlohmann::json::parse(p->body(), nullptr, false);
    CHECK(body["error"] == "draining");
    CHECK(body["cursor"] == last);
  }
  // Spread over the window's rest, not one value for all.
  std::sort(delays.begin(), delays.end());
  CHECK(delays.back() - delays.front() >= 200);

  REQUIRE(run_until(ioc, [&] { return drained.has_value(); }, 10s));
  CHECK(!*drained);
  CHECK(keep.closed());
}
