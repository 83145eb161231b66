// Proof of delivery (issue 13, item 1): the heartbeats herald's servers advertise and send, the
// C++ clients' proof and stall deadlines, and the NegotiatingClient falling back (WebSocket ->
// SSE -> polling) and probing back, through a proxy that holds data back the way broken
// corporate proxies do (tests/support/stall_proxy.hpp). Every fallback must end on a working
// transport with every event delivered exactly once.

#include <herald/client.hpp>
#include <herald/detail/heartbeat.hpp>
#include <herald/detail/sse_format.hpp>
#include <herald/herald.hpp>
#include <herald/transports/negotiated.hpp>

#include <boost/asio/io_context.hpp>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <chrono>
#include <cstdio>
#include <map>
#include <stdexcept>
#include <string>
#include <vector>

#include "client_record.hpp"
#include "fixture.hpp"
#include "http_client.hpp"
#include "loopback.hpp"
#include "sse_reader.hpp"
#include "stall_proxy.hpp"
#include "ws_client.hpp"

namespace {

namespace net = boost::asio;
namespace hc = herald::client;
using namespace std::chrono_literals;
using test::Record;
using test::run_until;
using Hold = test::StallProxy::Hold;
using Kind = test::StallProxy::Kind;
using Live = herald::Negotiated<herald::WebSocket, herald::Sse, herald::Polling>;

// Long enough that a loaded machine (a thread descheduled for a few hundred ms) shows no false
// stall at 2 x heartbeat.
constexpr auto heartbeat = 400ms;
constexpr char const* accept_sse = "Accept: text/event-stream\r\n";

Live::options live_options() {
  Live::options o;
  o.of<herald::Sse>().retry = 50ms;
  o.of<herald::Sse>().heartbeat = heartbeat;
  o.of<herald::WebSocket>().heartbeat = heartbeat;
  o.of<herald::Polling>().max_wait = 5s;
  return o;
}

/// A negotiated channel on /live behind a StallProxy; clients connect to the proxy.
struct World : test::ChannelFixture<Live> {
  World() : ChannelFixture("/live", {}, live_options()), proxy(ioc, ep) {}
  std::string url(char const* scheme = "http") const {
    return std::string(scheme) + "://127.0.0.1:" + std::to_string(proxy.endpoint().port()) + "/live";
  }
  herald::EventId publish(std::string const& topic) {
    auto const id = hub.publish(topic, R"({"n":)" + std::to_string(++n) + "}");
    published[topic].push_back(id);
    return id;
  }
  test::StallProxy proxy;
  std::map<std::string, std::vector<herald::EventId>> published;
  int n = 0;
};

/// Deadlines short enough for tests, long enough for a loaded machine under sanitizers.
hc::Options options(std::chrono::milliseconds probe_after = 10min) {
  return {.topics = {"a", "b"},
          .backoff = test::quick_backoff(),
          .connect_timeout = 1500ms,
          .proof_timeout = 1500ms,
          .poll = {.wait = 1s},
          .negotiate = {.probe_after = probe_after, .probe_cap = 10min}};
}

std::map<std::string, std::vector<herald::EventId>> by_topic(Record const& rec) {
  std::map<std::string, std::vector<herald::EventId>> out;
  for (auto const& e : rec.events) out[e.topic].push_back(e.id);
  return out;
}

bool saw_reason(Record const& rec, boost::system::error_code ec) {
  for (auto const& [state, why] : rec.states)
    if (state == hc::State::reconnecting && why == ec) return true;
  return false;
}

double ms_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
}

/// A sentinel on each topic, then the whole record: every event once, in order per topic.
void every_event_once(World& w, Record const& rec) {
  auto const sa = w.publish("a");
  auto const sb = w.publish("b");
  REQUIRE(run_until(w.ioc, [&] { return rec.saw(sa) && rec.saw(sb); }, 20s));
  CHECK(by_topic(rec) == w.published);
}

/** Start `c`, publish while it looks for a working transport, wait until `transport` works,
    publish more and a sentinel on each topic: every event once, in order per topic. */
void ends_on(World& w, hc::NegotiatingClient& c, Record& rec, std::string const& transport, char const* what) {
  auto const t0 = std::chrono::steady_clock::now();
  c.start();
  // Once the first transport is tried, the negotiation answer named the cursor to start from:
  // what is published from here on must arrive on whichever transport ends up working.
  REQUIRE(run_until(w.ioc, [&] { return w.proxy.connections(Kind::websocket) >= 1; }));
  w.publish("a");
  w.publish("b");
  REQUIRE(run_until(w.ioc, [&] { return c.transport() == transport; }, 20s));
  std::printf("fallback/%s: working on %s after %.0f ms\n", what, transport.c_str(), ms_since(t0));
  w.publish("a");
  every_event_once(w, rec);
  CHECK(rec.resets.empty());
}

}  // namespace

// --- the wire format --------------------------------------------------------------------------

TEST_CASE("heartbeat: the advertised period, the message and the SSE event", "[heartbeat]") {
  using namespace herald::detail;
  CHECK(heartbeat_message(15s) == R"({"heartbeat":15000})");
  CHECK(sse_heartbeat_event(250ms) == "event: heartbeat\ndata: {\"heartbeat\":250}\n\n");
  CHECK(parse_heartbeat("15000") == 15000ms);
  CHECK(parse_heartbeat("3600000") == 1h);
  for (auto bad : {"", "0", "-1", "1.5", "15s", " 15", "3600001", "99999999999999999999999"})
    CHECK_FALSE(parse_heartbeat(bad));
  CHECK(heartbeat_period(nlohmann::json::parse(R"({"heartbeat":200})")) == 200ms);
  for (auto other : {R"({"heartbeat":0})", R"({"heartbeat":"200"})", R"({"heartbeat":200,"id":1})", R"([200])",
                     R"({"heartbeat":-5})", R"({"beat":200})"})
    CHECK_FALSE(heartbeat_period(nlohmann::json::parse(other)));
  CHECK(wants_heartbeat("/live?topic=a&heartbeat"));
  CHECK(wants_heartbeat("/live?heartbeat=1"));
  CHECK_FALSE(wants_heartbeat("/live?heartbeat=0"));
  CHECK_FALSE(wants_heartbeat("/live?heartbeat=false"));
  CHECK_FALSE(wants_heartbeat("/live?topic=heartbeat"));
}

TEST_CASE("heartbeat: SSE advertises its period and sends its first bytes with the headers", "[e2e][heartbeat]") {
  World w;
  SECTION("comments for a plain EventSource") {
    test::RawClient c{w.ioc};
    c.get(w.ep, "/live?topic=a", accept_sse);
    REQUIRE(run_until(w.ioc, [&] { return c.has_headers() && !c.body().empty(); }));
    CHECK(c.header("Herald-Heartbeat") == "400");
    test::SseReader reader;
    REQUIRE(run_until(w.ioc, [&] {
      reader.feed_all(c.body());
      return reader.comments() >= 2;
    }));
    CHECK(reader.events().empty());  // nothing reaches onmessage
  }
  SECTION("?heartbeat: an event at once and after every period of silence, with no id") {
    test::RawClient c{w.ioc};
    c.get(w.ep, "/live?topic=a&heartbeat", accept_sse);
    REQUIRE(run_until(w.ioc, [&] { return c.has_headers() && c.body().find("event: heartbeat") != std::string::npos; }));
    // The first heartbeat travels in the very first write, right after retry:.
    CHECK(c.body() == "retry: 50\n\nevent: heartbeat\ndata: {\"heartbeat\":400}\n\n");
    auto const id = w.publish("a");
    test::SseReader reader;
    REQUIRE(run_until(w.ioc, [&] {
      reader.feed_all(c.body());
      std::size_t beats = 0;
      for (auto const& e : reader.events()) beats += e.type == "heartbeat";
      return beats >= 3;
    }));
    CHECK(reader.comments() == 0);
    for (auto const& e : reader.events()) {
      if (e.type == "heartbeat") CHECK(e.data == R"({"heartbeat":400})");
      else CHECK(e.id == std::to_string(id));
    }
    CHECK(reader.last_event_id() == std::to_string(id));  // heartbeats carry no id
  }
}

TEST_CASE("heartbeat: SSE without a heartbeat advertises none", "[e2e][heartbeat]") {
  auto o = live_options();
  o.of<herald::Sse>().heartbeat = 0ms;
  test::ChannelFixture<Live> f{"/live", {}, std::move(o)};
  test::RawClient c{f.ioc};
  c.get(f.ep, "/live?topic=a&heartbeat", accept_sse);
  REQUIRE(run_until(f.ioc, [&] { return c.has_headers() && !c.body().empty(); }));
  CHECK(c.header("Herald-Heartbeat").empty());
  CHECK(c.body() == "retry: 50\n\n");
}

TEST_CASE("heartbeat: WebSocket sends heartbeat frames to clients that ask, first of all", "[e2e][heartbeat]") {
  World w;
  test::WsClient asks{w.ioc};
  asks.connect(w.ep, "/live?topic=a&heartbeat=1");
  test::WsClient plain{w.ioc};
  plain.connect(w.ep, "/live?topic=a");
  REQUIRE(run_until(w.ioc, [&] { return asks.count() >= 1 && plain.open(); }));
  CHECK(asks.response()["Herald-Heartbeat"] == "400");
  CHECK(plain.response()["Herald-Heartbeat"].empty());
  CHECK(asks.json(0) == nlohmann::json{{"heartbeat", 400}});
  auto const id = w.publish("a");
  REQUIRE(run_until(w.ioc, [&] { return asks.count_with("heartbeat") >= 3 && asks.saw_id(id); }));
  REQUIRE(run_until(w.ioc, [&] { return plain.saw_id(id); }));
  auto const sentinel = w.publish("a");
  REQUIRE(run_until(w.ioc, [&] { return plain.saw_id(sentinel); }));
  CHECK(plain.count_with("heartbeat") == 0);  // the seed's snippet sees only its events
  CHECK(plain.count() == 2);
}

// --- the C++ clients hold a server to its heartbeat ------------------------------------------------

namespace {

/** Through a proxy that lets `kind`'s headers through and holds back the rest, `Client` never
    opens (no_data); let through, it opens; stalled mid-way, it reconnects (stalled) and resumes
    with nothing lost. */
template <class Client>
void held_then_stalled(Kind kind, char const* scheme) {
  World w;
  w.proxy.hold(kind, Hold::body);
  auto o = options();
  o.since = 0;  // a WebSocket client without a cursor starts at its subscriptions' acknowledgement
  Client c{w.ioc.get_executor(), w.url(scheme), std::move(o)};
  Record rec;
  rec.attach(c);
  if constexpr (requires { c.on_message([](herald::Message const&) {}); })
    c.on_message([&](herald::Message const& m) { rec.messages.emplace_back(m.data); });
  c.start();
  REQUIRE(run_until(w.ioc, [&] { return saw_reason(rec, hc::error::no_data); }));
  CHECK(rec.count(hc::State::open) == 0);
  w.proxy.hold(kind, Hold::nothing);
  REQUIRE(run_until(w.ioc, [&] { return rec.open(); }));
  auto const first = w.publish("a");
  REQUIRE(run_until(w.ioc, [&] { return rec.saw(first); }));
  w.proxy.stall();
  auto const missed = w.publish("b");
  REQUIRE(run_until(w.ioc, [&] { return saw_reason(rec, hc::error::stalled); }));
  auto const sentinel = w.publish("a");
  REQUIRE(run_until(w.ioc, [&] { return rec.saw(sentinel) && rec.saw(missed); }));
  CHECK(by_topic(rec) == w.published);
  CHECK(rec.messages.empty());  // heartbeat frames never reach on_message
}

}  // namespace

TEST_CASE("clients: a stream that opens and delivers nothing is not open, and one that stalls reconnects",
          "[e2e][heartbeat][client]") {
  SECTION("sse: headers through, body held back") { held_then_stalled<hc::SseClient>(Kind::sse, "http"); }
  SECTION("websocket: the upgrade through, then nothing") {
    held_then_stalled<hc::WebSocketClient>(Kind::websocket, "ws");
  }
}

// --- the NegotiatingClient ---------------------------------------------------------------------------

TEST_CASE("negotiating client: options are checked at construction", "[heartbeat][client]") {
  net::io_context ioc;
  auto make = [&](hc::Options o, char const* url = "http://127.0.0.1:1/live") {
    hc::NegotiatingClient c{ioc.get_executor(), url, std::move(o)};
  };
  CHECK_THROWS_AS(make({.negotiate = {.transports = {"carrier-pigeon"}}}), std::invalid_argument);
  CHECK_THROWS_AS(make({.negotiate = {.transports = {}}}), std::invalid_argument);
  CHECK_THROWS_AS(make({.negotiate = {.probe_after = 0ms}}), std::invalid_argument);
  CHECK_THROWS_AS(make({.negotiate = {.probe_after = 2h, .probe_cap = 1h}}), std::invalid_argument);
  CHECK_THROWS_AS(make({.proof_timeout = -1ms}), std::invalid_argument);
  CHECK_THROWS_AS(make({}, "ws://127.0.0.1:1/live"), std::invalid_argument);
  CHECK_NOTHROW(make({.negotiate = {.transports = {"sse", "sse", "polling"}}}));
}

TEST_CASE("negotiating client: a transport that opens and delivers nothing gives way to the next",
          "[e2e][heartbeat][client]") {
  World w;
  hc::NegotiatingClient c{w.ioc.get_executor(), w.url(), options()};
  Record rec;
  rec.attach(c);
  SECTION("nothing held: WebSocket") {
    ends_on(w, c, rec, "websocket", "none held");
    CHECK(rec.states.at(0).first == hc::State::connecting);
    CHECK(rec.states.at(1).first == hc::State::open);
    CHECK(w.proxy.connections(Kind::sse) == 0);
  }
  SECTION("an upgrade that succeeds and then delivers nothing: SSE") {
    w.proxy.hold(Kind::websocket, Hold::body);
    ends_on(w, c, rec, "sse", "upgrade then nothing");
    CHECK(saw_reason(rec, hc::error::no_data));
    CHECK(rec.count(hc::State::open) == 1);
    // The working choice is kept: a dropped SSE stream comes back on SSE, not WebSocket.
    auto const upgrades = w.proxy.connections(Kind::websocket);
    w.channel.disconnect_all();
    auto const sentinel = w.publish("b");
    REQUIRE(run_until(w.ioc, [&] { return rec.saw(sentinel); }));
    CHECK(c.transport() == "sse");
    CHECK(w.proxy.connections(Kind::websocket) == upgrades);
    CHECK(by_topic(rec) == w.published);
  }
  SECTION("SSE headers that never arrive: polling") {
    w.proxy.hold(Kind::websocket, Hold::response);
    w.proxy.hold(Kind::sse, Hold::response);
    ends_on(w, c, rec, "polling", "no headers");
    CHECK(saw_reason(rec, hc::error::connect_timeout));
  }
  SECTION("SSE headers whose body is held back: polling") {
    w.proxy.hold(Kind::websocket, Hold::body);
    w.proxy.hold(Kind::sse, Hold::body);
    ends_on(w, c, rec, "polling", "body held");
    CHECK(w.proxy.connections(Kind::sse) >= 1);
    CHECK(saw_reason(rec, hc::error::no_data));
  }
}

TEST_CASE("negotiating client: a stream that stalls mid-way moves to the next transport", "[e2e][heartbeat][client]") {
  World w;
  hc::NegotiatingClient c{w.ioc.get_executor(), w.url(), options()};
  Record rec;
  rec.attach(c);
  ends_on(w, c, rec, "websocket", "before the stall");
  w.proxy.stall();
  auto const t0 = std::chrono::steady_clock::now();
  w.publish("a");  // while the WebSocket is silent
  w.publish("b");
  REQUIRE(run_until(w.ioc, [&] { return c.transport() == "sse"; }, 20s));
  std::printf("fallback/stall: working on sse %.0f ms after the stall\n", ms_since(t0));
  CHECK(saw_reason(rec, hc::error::stalled));
  every_event_once(w, rec);
}

TEST_CASE("negotiating client: after a fallback it probes the better transport and moves back up",
          "[e2e][heartbeat][client]") {
  World w;
  w.proxy.hold(Kind::websocket, Hold::body);
  hc::NegotiatingClient c{w.ioc.get_executor(), w.url(), options(/*probe_after=*/300ms)};
  Record rec;
  rec.attach(c);
  ends_on(w, c, rec, "sse", "before the probe");
  auto const upgrades = w.proxy.connections(Kind::websocket);
  SECTION("probes fail while WebSocket is held, the first after its release takes over") {
    // Still held: probes fail (and the next waits longer) while SSE keeps delivering.
    REQUIRE(run_until(w.ioc, [&] { return w.proxy.connections(Kind::websocket) >= upgrades + 2; }));
    CHECK(c.transport() == "sse");
    w.proxy.hold(Kind::websocket, Hold::nothing);
    w.publish("a");
    REQUIRE(run_until(w.ioc, [&] { return c.transport() == "websocket"; }, 20s));
    every_event_once(w, rec);
    CHECK(rec.count(hc::State::open) == 1);  // the switch up never left the open state

    bool stopped = false;
    c.async_stop([&](boost::system::error_code) { stopped = true; });
    REQUIRE(run_until(w.ioc, [&] { return stopped; }));
    CHECK(rec.closed());
  }
  SECTION("SSE stalls while a probe is under way: down to polling, then probing from there") {
    REQUIRE(run_until(w.ioc, [&] { return w.proxy.connections(Kind::websocket) > upgrades; }));
    // The probe waits for its proof (held) when SSE stalls: both are given up.
    w.proxy.stall();
    w.proxy.hold(Kind::websocket, Hold::nothing);
    w.publish("a");
    REQUIRE(run_until(w.ioc, [&] { return c.transport() == "polling"; }, 20s));
    CHECK(saw_reason(rec, hc::error::stalled));
    w.publish("b");
    REQUIRE(run_until(w.ioc, [&] { return c.transport() == "websocket"; }, 20s));
    every_event_once(w, rec);
  }
}

TEST_CASE("negotiating client: refusals end it, a channel without WebSocket is no refusal", "[e2e][heartbeat][client]") {
  SECTION("401 on every transport closes the client") {
    test::ChannelFixture<Live> f{"/live",
                                 {.authorize = [](herald::Request const&) {
                                   return herald::Verdict::deny(herald::error::unauthorized, "no");
                                 }},
                                 live_options()};
    hc::NegotiatingClient c{f.ioc.get_executor(), "http://127.0.0.1:" + std::to_string(f.ep.port()) + "/live",
                            options()};
    Record rec;
    rec.attach(c);
    c.start();
    REQUIRE(run_until(f.ioc, [&] { return rec.closed(); }));
    CHECK(rec.states.back().second == herald::error::unauthorized);
  }
  SECTION("Negotiated<Sse, Polling>: the negotiation answer leaves WebSocket out") {
    using Two = herald::Negotiated<herald::Sse, herald::Polling>;
    Two::options o;
    o.of<herald::Sse>().heartbeat = heartbeat;
    test::ChannelFixture<Two> f{"/live", {}, std::move(o)};
    hc::NegotiatingClient c{f.ioc.get_executor(), "http://127.0.0.1:" + std::to_string(f.ep.port()) + "/live",
                            options()};
    Record rec;
    rec.attach(c);
    c.start();
    REQUIRE(run_until(f.ioc, [&] { return c.transport() == "sse"; }));
    CHECK(rec.count(hc::State::reconnecting) == 0);
    auto const id = f.hub.publish("a", "x");
    REQUIRE(run_until(f.ioc, [&] { return rec.saw(id); }));
  }
}
