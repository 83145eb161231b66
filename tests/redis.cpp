// The Redis backplane (herald::redis) against a real redis-server that each case starts on a
// free port in a temporary directory and stops by PID: ids assigned in Redis (exact above
// 2^53), several nodes behaving as one hub on every transport, clients that land on another
// node at every reconnect, and the faults: Redis paused, killed and restarted, emptied; a node
// that goes away. Several nodes share the test thread's io_context, as several processes would
// share one Redis; waits are conditions with deadlines.

#include <herald/client.hpp>
#include <herald/herald.hpp>
#include <herald/redis.hpp>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <limits>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "chaos_proxy.hpp"
#include "client_record.hpp"
#include "fleet.hpp"
#include "hop_connector.hpp"
#include "http_client.hpp"
#include "loopback.hpp"
#include "redis_server.hpp"

namespace {

namespace net = boost::asio;
namespace hc = herald::client;
using tcp = net::ip::tcp;
using namespace std::chrono_literals;
using test::quick_backoff;
using test::Record;
using test::run_until;

/// Timeouts short enough that faults are noticed within a test's patience.
herald::redis::Options fast(std::string url, std::string prefix = "herald") {
  herald::redis::Options o;
  o.url = std::move(url);
  o.prefix = std::move(prefix);
  o.connect_timeout = 500ms;
  o.command_timeout = 300ms;
  o.backoff_initial = 10ms;
  o.backoff_max = 100ms;
  o.block = 200ms;
  return o;
}

/// One herald process: a hub on the backplane, one channel per transport, a Server on :0.
struct Node {
  Node(net::io_context& ioc, herald::redis::Options ro, herald::HubOptions ho = {})
      : redis(std::make_shared<herald::redis::Backplane>(ioc.get_executor(), std::move(ro))),
        hub(ioc.get_executor(), with_backplane(std::move(ho), redis)),
        feed(hub, "/sse", {}, {.retry = 1ms}),
        live(hub, "/ws"),
        poll(hub, "/poll"),
        server(ioc.get_executor()) {
    server.add(feed).add(live).add(poll);
    ep = server.listen("127.0.0.1", 0);
  }

  static herald::HubOptions with_backplane(herald::HubOptions ho, std::shared_ptr<herald::redis::Backplane> bp) {
    ho.backplane = std::move(bp);
    return ho;
  }

  std::uint16_t port() const { return ep.port(); }
  bool connected() const { return redis->stats().connected; }
  void drop_all() {
    feed.disconnect_all();
    live.disconnect_all();
    poll.disconnect_all();
  }

  std::shared_ptr<herald::redis::Backplane> redis;
  herald::Hub hub;
  herald::Channel<herald::Sse> feed;
  herald::Channel<herald::WebSocket> live;
  herald::Channel<herald::Polling> poll;
  herald::Server server;
  tcp::endpoint ep;
};

struct Published {
  boost::system::error_code ec;
  herald::EventId id = 0;
  bool done = false;
};

/// async_publish on `node`; the result fills in when it completes.
std::shared_ptr<Published> start_publish(Node& node, std::string const& topic, std::string const& data) {
  auto p = std::make_shared<Published>();
  node.hub.async_publish(topic, data, [p](boost::system::error_code ec, herald::EventId id) {
    p->ec = ec;
    p->id = id;
    p->done = true;
  });
  return p;
}

herald::EventId publish(net::io_context& ioc, Node& node, std::string const& topic, std::string const& data) {
  auto p = start_publish(node, topic, data);
  REQUIRE(run_until(ioc, [&] { return p->done; }));
  REQUIRE_FALSE(p->ec);
  return p->id;
}

template <class... Nodes>
bool all_connected(net::io_context& ioc, Nodes&... nodes) {
  return run_until(ioc, [&] { return (nodes.connected() && ...); });
}

template <class Client>
struct Wire;
template <>
struct Wire<hc::SseClient> {
  static std::string url(std::uint16_t port) { return "http://127.0.0.1:" + std::to_string(port) + "/sse"; }
};
template <>
struct Wire<hc::WebSocketClient> {
  static std::string url(std::uint16_t port) { return "ws://127.0.0.1:" + std::to_string(port) + "/ws"; }
};
template <>
struct Wire<hc::PollingClient> {
  static std::string url(std::uint16_t port) { return "http://127.0.0.1:" + std::to_string(port) + "/poll"; }
};

template <class Client>
hc::Options client_options(std::vector<std::string> topics, std::optional<herald::EventId> since,
                           std::shared_ptr<hc::Connector> connector = {}, std::uint64_t seed = 1) {
  hc::Options o;
  o.topics = std::move(topics);
  o.since = since;
  o.backoff = quick_backoff(seed);
  o.connector = std::move(connector);
  o.poll.wait = 500ms;  // the first answer (State::open) of a quiet topic comes after one wait
  return o;
}

/// Whether `rec` is open and, for WebSocket, has its subscriptions acknowledged (the point from
/// which it receives every event).
template <class Client>
bool following(Client& c, Record const& rec) {
  if (!rec.open()) return false;
  if constexpr (std::is_same_v<Client, hc::WebSocketClient>) return c.stats().connections > 0;
  return true;
}

}  // namespace

// --- configuration ---------------------------------------------------------------------------------

TEST_CASE("redis: bad options are refused at construction", "[redis]") {
  net::io_context ioc;
  auto make = [&](herald::redis::Options o) { herald::redis::Backplane b{ioc.get_executor(), std::move(o)}; };
  auto with = [](auto f) {
    herald::redis::Options o;
    f(o);
    return o;
  };
  CHECK_NOTHROW(make({}));
  CHECK_THROWS_AS(make(with([](auto& o) { o.url = "http://127.0.0.1:6379"; })), std::invalid_argument);
  CHECK_THROWS_AS(make(with([](auto& o) { o.url = "redis://127.0.0.1:0"; })), std::invalid_argument);
  CHECK_THROWS_AS(make(with([](auto& o) { o.url = "redis://h/x"; })), std::invalid_argument);
  CHECK_THROWS_AS(make(with([](auto& o) { o.prefix = "a{b}"; })), std::invalid_argument);
  CHECK_THROWS_AS(make(with([](auto& o) { o.prefix = ""; })), std::invalid_argument);
  CHECK_THROWS_AS(make(with([](auto& o) { o.command_timeout = 0ms; })), std::invalid_argument);
  CHECK_THROWS_AS(make(with([](auto& o) { o.log_events = 0; })), std::invalid_argument);
  CHECK_THROWS_AS(make(with([](auto& o) { o.backoff_max = 1ms; })), std::invalid_argument);
  // A backplane numbers the events: an id file beside it would be a second authority.
  auto bp = std::make_shared<herald::redis::Backplane>(ioc.get_executor());
  CHECK_THROWS_AS((herald::Hub{ioc.get_executor(), {.id_file = "ids", .backplane = bp}}), std::invalid_argument);
}

// --- ids -------------------------------------------------------------------------------------------

TEST_CASE("redis: ids come from Redis, exact above 2^53, increasing over every node", "[redis]") {
  test::RedisServer r;
  net::io_context ioc;
  herald::EventId const above = (herald::EventId{1} << 53) + 1;  // not a double
  Node a{ioc, fast(r.url()), {.first_id = above}};
  Node b{ioc, fast(r.url())};
  REQUIRE(all_connected(ioc, a, b));

  // first_id raises only what its own node asks for; once an id is above 2^53, all that follow are.
  CHECK(publish(ioc, a, "t", "first") == above);
  CHECK(r.command({"HGET", "{herald}:meta", "floor"}) == std::to_string(above - 1));
  std::vector<std::shared_ptr<Published>> all;
  for (int i = 0; i < 20; ++i) all.push_back(start_publish(i % 2 ? b : a, "t", std::to_string(i)));
  REQUIRE(run_until(ioc, [&] { return std::all_of(all.begin(), all.end(), [](auto& p) { return p->done; }); }));
  std::vector<herald::EventId> ids;
  for (auto& p : all) {
    REQUIRE_FALSE(p->ec);
    ids.push_back(p->id);
  }
  std::set<herald::EventId> const distinct(ids.begin(), ids.end());
  CHECK(distinct.size() == ids.size());
  CHECK(*distinct.begin() > above);
  // Redis holds the last id as the exact decimal, not a rounded double.
  CHECK(r.command({"HGET", "{herald}:meta", "last"}) == std::to_string(*distinct.rbegin()));
  // Each node's own publishes complete in order on its one connection: increasing.
  for (std::size_t i = 2; i < ids.size(); ++i) CHECK(ids[i] > ids[i - 2]);

  // Both nodes took in every event, in id order.
  REQUIRE(run_until(ioc, [&] { return a.hub.stats().last_id == *distinct.rbegin() && b.hub.stats().last_id == *distinct.rbegin(); }));
  auto const history = b.hub.history("t");
  std::vector<herald::EventId> seen;
  for (auto const& e : history) seen.push_back(e.id);
  std::vector<herald::EventId> want{above};
  want.insert(want.end(), distinct.begin(), distinct.end());
  CHECK(seen == want);

  SECTION("the decimal carry past 19 nines") {
    Node c{ioc, fast(r.url(), "carry"), {.first_id = 9'999'999'999'999'999'999ull}};
    REQUIRE(all_connected(ioc, c));
    CHECK(publish(ioc, c, "t", "x") == 9'999'999'999'999'999'999ull);
    CHECK(publish(ioc, c, "t", "y") == 10'000'000'000'000'000'000ull);
    CHECK(r.command({"HGET", "{carry}:meta", "last"}) == "10000000000000000000");
  }
}

// --- one hub, many nodes -----------------------------------------------------------------------------

namespace {

/// Clients of all three transports on three nodes see every event published on any node.
void every_node_every_event() {
  test::RedisServer r;
  net::io_context ioc;
  Node a{ioc, fast(r.url())}, b{ioc, fast(r.url())}, c{ioc, fast(r.url())};
  REQUIRE(all_connected(ioc, a, b, c));

  hc::SseClient sse{ioc.get_executor(), Wire<hc::SseClient>::url(a.port()), client_options<hc::SseClient>({"x", "y"}, 0)};
  hc::WebSocketClient ws{ioc.get_executor(), Wire<hc::WebSocketClient>::url(b.port()),
                         client_options<hc::WebSocketClient>({"x", "y"}, 0)};
  hc::PollingClient poll{ioc.get_executor(), Wire<hc::PollingClient>::url(c.port()),
                         client_options<hc::PollingClient>({"x", "y"}, 0)};
  Record rs, rw, rp;
  rs.attach(sse);
  rw.attach(ws);
  rp.attach(poll);
  sse.start();
  ws.start();
  poll.start();
  REQUIRE(run_until(ioc, [&] { return following(sse, rs) && following(ws, rw) && following(poll, rp); }));

  std::vector<herald::EventId> expected;
  Node* nodes[] = {&a, &b, &c};
  for (int i = 0; i < 30; ++i) {
    expected.push_back(publish(ioc, *nodes[i % 3], i % 2 ? "x" : "y", R"({"n":)" + std::to_string(i) + "}"));
    publish(ioc, *nodes[(i + 1) % 3], "z", "not followed");
  }
  auto const last = expected.back();
  REQUIRE(run_until(ioc, [&] { return rs.saw(last) && rw.saw(last) && rp.saw(last); }));
  CHECK(rs.ids() == expected);
  CHECK(rw.ids() == expected);
  CHECK(rp.ids() == expected);
  CHECK(rs.resets.empty());
  CHECK(rw.resets.empty());
  CHECK(rp.resets.empty());
  CHECK(rw.events.at(1).data == R"({"n":1})");
  CHECK(rw.events.at(1).kind == herald::PayloadKind::json);
}

/** A client that lands on the next node at every reconnect, dropped three times with events
    published meanwhile on other nodes, gets each event once, in order; then one more node
    started after all of that (its memory starts after every event) serves the client's oldest
    cursor from Redis. */
template <class Client>
void resume_on_any_node() {
  test::RedisServer r;
  net::io_context ioc;
  Node a{ioc, fast(r.url())}, b{ioc, fast(r.url())}, c{ioc, fast(r.url())};
  REQUIRE(all_connected(ioc, a, b, c));
  Node* nodes[] = {&a, &b, &c};

  auto hop = std::make_shared<test::HopConnector>(std::vector<std::uint16_t>{a.port(), b.port(), c.port()});
  Client client{ioc.get_executor(), Wire<Client>::url(a.port()), client_options<Client>({"x"}, 0, hop)};
  Record rec;
  rec.attach(client);
  client.start();
  REQUIRE(run_until(ioc, [&] { return following(client, rec); }));

  std::vector<herald::EventId> expected;
  expected.push_back(publish(ioc, a, "x", "first"));
  REQUIRE(run_until(ioc, [&] { return rec.saw(expected.back()); }));
  for (int round = 0; round < 3; ++round) {
    for (auto* n : nodes) n->drop_all();
    for (int i = 0; i < 4; ++i) {
      expected.push_back(publish(ioc, *nodes[(round + i) % 3], "x", "r" + std::to_string(round) + "." + std::to_string(i)));
      publish(ioc, *nodes[i % 3], "other", "-");
    }
    REQUIRE(run_until(ioc, [&] { return rec.saw(expected.back()); }));
  }
  CHECK(rec.ids() == expected);
  CHECK(rec.resets.empty());
  std::set<std::uint16_t> const landed(hop->attempts.begin(), hop->attempts.end());
  CHECK(landed.size() == 3);  // it really moved between nodes

  // A node that starts now knows nothing of the past; a client resuming from the first event
  // gets the rest from Redis, then live, with no gap and no duplicate at the seam.
  Node late{ioc, fast(r.url())};
  REQUIRE(all_connected(ioc, late));
  Client again{ioc.get_executor(), Wire<Client>::url(late.port()), client_options<Client>({"x"}, expected.front())};
  Record rec2;
  rec2.attach(again);
  again.start();
  std::vector<herald::EventId> const rest(expected.begin() + 1, expected.end());
  REQUIRE(run_until(ioc, [&] { return rec2.events.size() >= rest.size(); }));
  auto const live = publish(ioc, late, "x", "live");
  REQUIRE(run_until(ioc, [&] { return rec2.saw(live); }));
  auto want = rest;
  want.push_back(live);
  CHECK(rec2.ids() == want);
  CHECK(rec2.resets.empty());
  CHECK(late.redis->stats().history_reads >= 1);
}

}  // namespace

TEST_CASE("redis: three nodes are one hub for clients of every transport", "[redis]") { every_node_every_event(); }

TEST_CASE("redis: a client resumes on any node with exactly what it missed", "[redis]") {
  SECTION("sse") { resume_on_any_node<hc::SseClient>(); }
  SECTION("websocket") { resume_on_any_node<hc::WebSocketClient>(); }
  SECTION("polling") { resume_on_any_node<hc::PollingClient>(); }
}


// --- faults ------------------------------------------------------------------------------------------

TEST_CASE("redis: while Redis is paused, publishes fail in bounded time, connections stay up, and what failed never arrives",
          "[redis]") {
  test::RedisServer r;
  net::io_context ioc;
  Node a{ioc, fast(r.url())}, b{ioc, fast(r.url())};
  REQUIRE(all_connected(ioc, a, b));
  hc::SseClient sse{ioc.get_executor(), Wire<hc::SseClient>::url(b.port()), client_options<hc::SseClient>({"x"}, 0)};
  hc::WebSocketClient ws{ioc.get_executor(), Wire<hc::WebSocketClient>::url(a.port()),
                         client_options<hc::WebSocketClient>({"x"}, 0)};
  Record rs, rw;
  rs.attach(sse);
  rw.attach(ws);
  sse.start();
  ws.start();
  REQUIRE(run_until(ioc, [&] { return following(sse, rs) && following(ws, rw); }));
  auto const before = publish(ioc, a, "x", "before");
  REQUIRE(run_until(ioc, [&] { return rs.saw(before) && rw.saw(before); }));

  r.pause();
  // In flight when Redis stopped answering, then sent while the node knows it is gone: both
  // fail, within the command timeout, with the error that says "not published".
  auto in_flight = start_publish(a, "x", "during-a");
  auto also = start_publish(b, "x", "during-b");
  REQUIRE(run_until(ioc, [&] { return in_flight->done && also->done; }));
  CHECK(in_flight->ec == herald::error::backplane_unavailable);
  CHECK(also->ec == herald::error::backplane_unavailable);
  REQUIRE(run_until(ioc, [&] { return !a.connected() && !b.connected(); }));
  auto later = start_publish(b, "x", "while-down");
  REQUIRE(run_until(ioc, [&] { return later->done; }));
  CHECK(later->ec == herald::error::backplane_unavailable);
  CHECK(later->ec == herald::condition::overloaded);

  r.resume();
  REQUIRE(all_connected(ioc, a, b));
  auto const after = publish(ioc, b, "x", "after");
  REQUIRE(run_until(ioc, [&] { return rs.saw(after) && rw.saw(after); }));
  // The publish that reached Redis late (it was in its socket buffer) was refused there.
  CHECK(rs.ids() == std::vector<herald::EventId>{before, after});
  CHECK(rw.ids() == std::vector<herald::EventId>{before, after});
  CHECK(r.command({"XLEN", "{herald}:h:x"}) == "2");
  CHECK(rs.resets.empty());
  CHECK(rw.resets.empty());
  CHECK(sse.stats().reconnects == 0);
  CHECK(ws.stats().reconnects == 0);
  CHECK(a.redis->stats().publish_failures >= 1);
  CHECK(a.redis->stats().reconnects >= 1);
}

TEST_CASE("redis: Redis killed and restarted with its data: clients stay, nothing is lost or repeated", "[redis]") {
  test::RedisServer r{{.persist = true}};
  net::io_context ioc;
  Node a{ioc, fast(r.url())}, b{ioc, fast(r.url())};
  REQUIRE(all_connected(ioc, a, b));
  hc::SseClient sse{ioc.get_executor(), Wire<hc::SseClient>::url(a.port()), client_options<hc::SseClient>({"x"}, 0)};
  hc::PollingClient poll{ioc.get_executor(), Wire<hc::PollingClient>::url(b.port()),
                         client_options<hc::PollingClient>({"x"}, 0)};
  Record rs, rp;
  rs.attach(sse);
  rp.attach(poll);
  sse.start();
  poll.start();
  REQUIRE(run_until(ioc, [&] { return following(sse, rs) && following(poll, rp); }));
  auto const e1 = publish(ioc, a, "x", "one");
  REQUIRE(run_until(ioc, [&] { return rs.saw(e1) && rp.saw(e1); }));

  r.kill();
  auto lost = start_publish(b, "x", "while-dead");
  REQUIRE(run_until(ioc, [&] { return lost->done; }));
  CHECK(lost->ec == herald::error::backplane_unavailable);
  r.restart();
  REQUIRE(all_connected(ioc, a, b));
  auto const e2 = publish(ioc, b, "x", "two");
  CHECK(e2 > e1);
  REQUIRE(run_until(ioc, [&] { return rs.saw(e2) && rp.saw(e2); }));
  CHECK(rs.ids() == std::vector<herald::EventId>{e1, e2});
  CHECK(rp.ids() == std::vector<herald::EventId>{e1, e2});
  CHECK(rs.resets.empty());
  CHECK(rp.resets.empty());

  // The history survived too: a node started now serves it to a resuming client.
  Node c{ioc, fast(r.url())};
  REQUIRE(all_connected(ioc, c));
  hc::WebSocketClient ws{ioc.get_executor(), Wire<hc::WebSocketClient>::url(c.port()),
                         client_options<hc::WebSocketClient>({"x"}, e1 - 1)};
  Record rw;
  rw.attach(ws);
  ws.start();
  REQUIRE(run_until(ioc, [&] { return rw.saw(e2); }));
  CHECK(rw.ids() == std::vector<herald::EventId>{e1, e2});
  CHECK(rw.resets.empty());
}

namespace {

/// Redis comes back without the hub's data: every client that may have missed something is
/// told so, and no id is handed out twice.
void lost_data(bool flush) {
  test::RedisServer r;
  net::io_context ioc;
  Node a{ioc, fast(r.url())}, b{ioc, fast(r.url())};
  REQUIRE(all_connected(ioc, a, b));
  hc::SseClient sse{ioc.get_executor(), Wire<hc::SseClient>::url(a.port()), client_options<hc::SseClient>({"x"}, 0)};
  hc::WebSocketClient ws{ioc.get_executor(), Wire<hc::WebSocketClient>::url(b.port()),
                         client_options<hc::WebSocketClient>({"x"}, 0)};
  Record rs, rw;
  rs.attach(sse);
  rw.attach(ws);
  sse.start();
  ws.start();
  REQUIRE(run_until(ioc, [&] { return following(sse, rs) && following(ws, rw); }));
  auto const e1 = publish(ioc, a, "x", "one");
  REQUIRE(run_until(ioc, [&] { return rs.saw(e1) && rw.saw(e1); }));

  if (flush) {
    CHECK(r.command({"FLUSHALL"}) == "OK");
  } else {
    r.kill();
    REQUIRE(run_until(ioc, [&] { return !a.connected() && !b.connected(); }));
    r.restart();
    REQUIRE(all_connected(ioc, a, b));
  }
  auto const e2 = publish(ioc, b, "x", "two");
  CHECK(e2 > e1);  // never a reused id
  REQUIRE(run_until(ioc, [&] { return rs.saw(e2) && rw.saw(e2); }));
  for (Record const* rec : {&rs, &rw}) {
    CHECK(rec->ids() == std::vector<herald::EventId>{e1, e2});
    REQUIRE(rec->resets.size() == 1);
    CHECK(rec->reset_at == std::vector<std::size_t>{1});  // between the two timelines
    CHECK(rec->resets[0].reason == "backplane_gap");
  }
  CHECK(a.hub.stats().discontinuities == 1);

  // A client resuming from before the loss, on a node that never saw it, is told too.
  Node c{ioc, fast(r.url())};
  REQUIRE(all_connected(ioc, c));
  hc::PollingClient poll{ioc.get_executor(), Wire<hc::PollingClient>::url(c.port()),
                         client_options<hc::PollingClient>({"x"}, e1)};
  Record rp;
  rp.attach(poll);
  poll.start();
  REQUIRE(run_until(ioc, [&] { return rp.saw(e2); }));
  REQUIRE(rp.resets.size() == 1);
  CHECK(rp.ids() == std::vector<herald::EventId>{e2});
}

}  // namespace

TEST_CASE("redis: Redis lost its data: a reset notice, never a silent gap or a reused id", "[redis]") {
  SECTION("FLUSHALL") { lost_data(true); }
  SECTION("restart without persistence") { lost_data(false); }
}

TEST_CASE("redis: a node that goes away loses nothing for its clients", "[redis]") {
  test::RedisServer r;
  net::io_context ioc;
  std::optional<Node> a{std::in_place, ioc, fast(r.url())};
  Node b{ioc, fast(r.url())}, c{ioc, fast(r.url())};
  REQUIRE(all_connected(ioc, *a, b, c));
  auto const a_port = a->port();
  auto hop = std::make_shared<test::HopConnector>(std::vector<std::uint16_t>{a_port, b.port(), c.port()});
  hc::SseClient sse{ioc.get_executor(), Wire<hc::SseClient>::url(a_port), client_options<hc::SseClient>({"x"}, 0, hop)};
  auto hop2 = std::make_shared<test::HopConnector>(std::vector<std::uint16_t>{a_port, c.port()});
  hc::WebSocketClient ws{ioc.get_executor(), Wire<hc::WebSocketClient>::url(a_port),
                         client_options<hc::WebSocketClient>({"x"}, 0, hop2)};
  Record rs, rw;
  rs.attach(sse);
  rw.attach(ws);
  sse.start();
  ws.start();
  REQUIRE(run_until(ioc, [&] { return following(sse, rs) && following(ws, rw); }));
  auto const e1 = publish(ioc, b, "x", "one");
  REQUIRE(run_until(ioc, [&] { return rs.saw(e1) && rw.saw(e1); }));

  a.reset();  // the node both clients were on is gone: its connections die with it
  auto const e2 = publish(ioc, c, "x", "two");
  auto const e3 = publish(ioc, b, "x", "three");
  REQUIRE(run_until(ioc, [&] { return rs.saw(e3) && rw.saw(e3); }));
  CHECK(rs.ids() == std::vector<herald::EventId>{e1, e2, e3});
  CHECK(rw.ids() == std::vector<herald::EventId>{e1, e2, e3});
  CHECK(rs.resets.empty());
  CHECK(rw.resets.empty());
  CHECK(sse.stats().reconnects >= 1);
}

// --- chaos -------------------------------------------------------------------------------------------

TEST_CASE("redis chaos: clients hop between nodes through cutting proxies while Redis restarts, and every client gets exactly its sequence",
          "[redis][chaos]") {
  auto const seed = test::chaos_seed();
  INFO("seed " << seed << " (rerun with HERALD_CHAOS_SEED=" << seed << ")");
  auto const t0 = std::chrono::steady_clock::now();
  std::mt19937_64 rng{seed};
  constexpr std::size_t events = 600;

  test::RedisServer r{{.persist = true}};
  net::io_context ioc;
  std::vector<std::unique_ptr<Node>> nodes;
  std::vector<std::unique_ptr<test::ChaosProxy>> proxies;
  std::vector<std::uint16_t> ports;
  for (int i = 0; i < 3; ++i) {
    nodes.push_back(std::make_unique<Node>(ioc, fast(r.url()), herald::HubOptions{.history_events = 10'000}));
    auto& p = *proxies.emplace_back(std::make_unique<test::ChaosProxy>(ioc, seed + static_cast<std::uint64_t>(i)));
    p.upstream(nodes.back()->ep);
    p.budget(1, 8000);
    ports.push_back(p.endpoint().port());
  }
  REQUIRE(run_until(ioc, [&] { return std::all_of(nodes.begin(), nodes.end(), [](auto& n) { return n->connected(); }); }));

  test::Published published;
  test::Fleet fleet;
  fleet.published = &published;
  hc::Options base{.since = 0, .backoff = quick_backoff(seed), .connect_timeout = 5s, .poll = {.wait = 200ms, .limit = 16}};
  base.connector = std::make_shared<test::HopConnector>(ports);
  fleet.add_every_kind(ioc, ports.front(), base, 1);
  fleet.start();

  // Publish one event at a time on a random node; at a third of the way Redis is killed and
  // restarted (with its data), at two thirds every connection of one node is dropped.
  std::size_t failed = 0;
  std::size_t restarts = 0;
  for (std::size_t i = 0; published.count < events; ++i) {
    if (i == events / 3) {
      r.kill();
      r.restart();
      ++restarts;
    }
    if (i == 2 * events / 3) nodes[rng() % nodes.size()]->drop_all();
    auto const& topic = test::all_topics[rng() % test::all_topics.size()];
    std::string data = R"({"seq":)" + std::to_string(i) + R"(,"pad":")" + std::string(rng() % 300, 'x') + "\"}";
    auto p = start_publish(*nodes[rng() % nodes.size()], topic, data);
    REQUIRE(run_until(ioc, [&] { return p->done; }));
    if (p->ec) {
      ++failed;  // Redis was down: not published, and never delivered (checked below)
      REQUIRE(run_until(ioc, [&] { return std::all_of(nodes.begin(), nodes.end(), [](auto& n) { return n->connected(); }); }));
      continue;
    }
    published.add(p->id, topic, std::move(data));
    ++published.count;
  }
  // Counted when checked, not as events arrive: an event can reach a client before its
  // publish completes here (it travels through the log), so the topic of an id is known late.
  auto complete = [&](test::Fleet::Member const& m) {
    auto const got = test::by_topic(m.rec, published);
    return std::all_of(m.topics.begin(), m.topics.end(), [&](auto const& t) {
      return (got.count(t) ? got.at(t).size() : 0) >= (published.ids.count(t) ? published.ids.at(t).size() : 0);
    });
  };
  bool const all = run_until(ioc, [&] { return std::all_of(fleet.members.begin(), fleet.members.end(), complete); }, 60s);
  if (!all)
    for (auto const& m : fleet.members) {
      auto const got = test::by_topic(m.rec, published);
      for (auto const& t : m.topics)
        UNSCOPED_INFO(m.transport << " topic " << t << ": " << (got.count(t) ? got.at(t).size() : 0) << " of "
                                  << (published.ids.count(t) ? published.ids.at(t).size() : 0) << ", resets "
                                  << m.rec.resets.size());
    }
  REQUIRE(all);
  for (auto const& m : fleet.members) {
    test::check_exact(m, published);
    CHECK(m.rec.resets.empty());
  }
  std::size_t cuts = 0;
  for (auto& p : proxies) cuts += p->cuts();
  CHECK(cuts > 50);
  REQUIRE(fleet.stop(ioc));
  std::printf("redis chaos: seed %llu: %zu events on 3 nodes to %zu clients (sse, websocket, polling) hopping nodes, "
              "%zu Redis restart(s), %zu publishes refused while Redis was down, %zu connections cut, %llu client "
              "reconnects, %llu duplicates dropped, 0 lost, %.2f s\n",
              static_cast<unsigned long long>(seed), published.count, fleet.members.size(), restarts, failed, cuts,
              static_cast<unsigned long long>(fleet.reconnects()), static_cast<unsigned long long>(fleet.duplicates()),
              std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
}

TEST_CASE("redis: a failover that lost the newest writes: nodes that saw them raise the floor and tell their clients",
          "[redis]") {
  test::RedisServer r;
  net::io_context ioc;
  Node a{ioc, fast(r.url())};
  REQUIRE(all_connected(ioc, a));
  hc::SseClient sse{ioc.get_executor(), Wire<hc::SseClient>::url(a.port()), client_options<hc::SseClient>({"x"}, 0)};
  Record rec;
  rec.attach(sse);
  sse.start();
  REQUIRE(run_until(ioc, [&] { return following(sse, rec); }));
  auto const e1 = publish(ioc, a, "x", "one");
  auto const e2 = publish(ioc, a, "x", "two");
  REQUIRE(run_until(ioc, [&] { return rec.saw(e2); }));

  // What a promoted replica that never got e2 looks like: the log, the history and `last` end at e1.
  auto const sid = std::to_string(e2) + "-0";
  CHECK(r.command({"XDEL", "{herald}:log", sid}) == "1");
  CHECK(r.command({"XDEL", "{herald}:h:x", sid}) == "1");
  CHECK(r.command({"HSET", "{herald}:meta", "last", std::to_string(e1)}) == "0");

  auto const e3 = publish(ioc, a, "x", "three");
  CHECK(e3 > e2);  // `known`: above what the node saw, though Redis forgot it
  REQUIRE(run_until(ioc, [&] { return rec.saw(e3); }));
  CHECK(rec.ids() == std::vector<herald::EventId>{e1, e2, e3});
  REQUIRE(rec.resets.size() == 1);
  CHECK(rec.reset_at == std::vector<std::size_t>{2});
  REQUIRE(run_until(ioc, [&] { return r.command({"HGET", "{herald}:meta", "floor"}) == std::to_string(e2); }));

  // A client that had seen only e1, resuming on a node that never saw e2, is told.
  Node b{ioc, fast(r.url())};
  REQUIRE(all_connected(ioc, b));
  hc::WebSocketClient ws{ioc.get_executor(), Wire<hc::WebSocketClient>::url(b.port()),
                         client_options<hc::WebSocketClient>({"x"}, e1)};
  Record rw;
  rw.attach(ws);
  ws.start();
  REQUIRE(run_until(ioc, [&] { return rw.saw(e3); }));
  CHECK(rw.ids() == std::vector<herald::EventId>{e3});
  CHECK(rw.resets.size() == 1);
}

TEST_CASE("redis: a cursor older than the node's memory while Redis is paused: the client is turned away, then served",
          "[redis]") {
  test::RedisServer r;
  net::io_context ioc;
  Node a{ioc, fast(r.url())};
  REQUIRE(all_connected(ioc, a));
  auto const e1 = publish(ioc, a, "x", "one");
  Node late{ioc, fast(r.url())};  // its memory starts after e1
  REQUIRE(all_connected(ioc, late));

  r.pause();
  REQUIRE(run_until(ioc, [&] { return !late.connected(); }));
  hc::SseClient sse{ioc.get_executor(), Wire<hc::SseClient>::url(late.port()),
                    client_options<hc::SseClient>({"x"}, e1 - 1)};
  hc::PollingClient poll{ioc.get_executor(), Wire<hc::PollingClient>::url(late.port()),
                         client_options<hc::PollingClient>({"x"}, e1 - 1)};
  Record rs, rp;
  rs.attach(sse);
  rp.attach(poll);
  sse.start();
  poll.start();
  // Both are refused in a way that makes them come back (the SSE stream ends, the poll gets 503).
  REQUIRE(run_until(ioc, [&] { return sse.stats().reconnects >= 2 && poll.stats().reconnects >= 2; }));
  CHECK(rs.events.empty());
  CHECK(rp.events.empty());
  CHECK_FALSE(rs.closed());
  CHECK_FALSE(rp.closed());

  r.resume();
  REQUIRE(all_connected(ioc, a, late));
  auto const e2 = publish(ioc, a, "x", "two");
  REQUIRE(run_until(ioc, [&] { return rs.saw(e2) && rp.saw(e2); }));
  CHECK(rs.ids() == std::vector<herald::EventId>{e1, e2});
  CHECK(rp.ids() == std::vector<herald::EventId>{e1, e2});
  CHECK(rs.resets.empty());
  CHECK(rp.resets.empty());
}

TEST_CASE("redis: the URL's password and database are used, and a wrong password is reported", "[redis]") {
  test::RedisServer r{{.password = "s3cr et"}};
  net::io_context ioc;
  auto const base = "redis://:s3cr%20et@127.0.0.1:" + std::to_string(r.port());
  Node a{ioc, fast(base + "/3")};
  REQUIRE(all_connected(ioc, a));
  auto const id = publish(ioc, a, "x", "in db 3");
  CHECK(r.command({"EXISTS", "{herald}:meta"}) == "0");  // not in database 0
  CHECK(r.command({"EVAL", "redis.call('SELECT', 3) return redis.call('HGET', KEYS[1], 'last')", "1",
                   "{herald}:meta"}) == std::to_string(id));

  auto wrong = std::make_shared<herald::redis::Backplane>(
      ioc.get_executor(), fast("redis://:nope@127.0.0.1:" + std::to_string(r.port())));
  herald::Hub hub{ioc.get_executor(), {.backplane = wrong}};
  REQUIRE(run_until(ioc, [&] { return !wrong->stats().last_error.empty(); }));
  CHECK_FALSE(wrong->stats().connected);
  CHECK(wrong->stats().last_error.find("WRONGPASS") != std::string::npos);
  auto p = std::make_shared<Published>();
  hub.async_publish("x", "y", [p](boost::system::error_code ec, herald::EventId) {
    p->ec = ec;
    p->done = true;
  });
  REQUIRE(run_until(ioc, [&] { return p->done; }));
  CHECK(p->ec == herald::error::backplane_unavailable);
}

TEST_CASE("redis: a short poll whose replay comes from Redis is answered, on the wire", "[redis]") {
  test::RedisServer r;
  net::io_context ioc;
  Node a{ioc, fast(r.url())};
  REQUIRE(all_connected(ioc, a));
  auto const e1 = publish(ioc, a, "x", R"({"n":1})");
  auto const e2 = publish(ioc, a, "x", R"({"n":2})");
  Node late{ioc, fast(r.url())};  // its memory starts after e2
  REQUIRE(all_connected(ioc, late));

  // Short poll (no wait) and HEAD, both with a cursor only Redis can serve.
  test::RawClient get{ioc}, head{ioc};
  get.get(late.ep, "/poll?topic=x&since=" + std::to_string(e1 - 1));
  head.request(late.ep, "HEAD /poll?topic=x&since=" + std::to_string(e1 - 1) +
                            " HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
  REQUIRE(run_until(ioc, [&] { return get.has_headers() && get.body().size() >= std::stoul(get.header("Content-Length")); }));
  CHECK(get.status() == 200);
  CHECK_FALSE(get.header("ETag").empty());
  auto const body = nlohmann::json::parse(get.body());
  REQUIRE(body["events"].size() == 2);
  CHECK(body["events"][0]["id"] == e1);
  CHECK(body["events"][1]["id"] == e2);
  CHECK(body["cursor"] == e2);
  REQUIRE(run_until(ioc, [&] { return head.has_headers(); }));
  CHECK(head.status() == 200);
  CHECK(late.poll.connections() == 0);  // nothing left held
}
