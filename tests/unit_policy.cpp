// The compile-time policy: select_t's whole decision table, each transport's capability traits,
// and one generic function template instantiated for every transport and run over loopback.

#include <herald/detail/token_bucket.hpp>
#include <herald/herald.hpp>
#include <herald/transports/negotiated.hpp>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/thread_pool.hpp>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <chrono>
#include <string>
#include <type_traits>
#include <vector>

#include "http_client.hpp"
#include "loopback.hpp"
#include "sse_reader.hpp"
#include "ws_client.hpp"

namespace {

using herald::Needs;
using herald::Polling;
using herald::select_t;
using herald::Sse;
using herald::WebSocket;
using Negotiated = herald::Negotiated<WebSocket, Sse, Polling>;
using json = nlohmann::json;

// --- the decision table --------------------------------------------------------------------------
// Columns: client_to_server, binary, infrequent, stateless -> transport. The six rows with
// stateless and (client_to_server or binary) are contradictions: compile errors, checked by
// tests/compile_fail/policy_stateless_duplex.cpp (and named in docs/negotiation.md).
template <Needs N, class Expected>
struct Row {
  static constexpr bool holds = std::is_same_v<select_t<N>, Expected>;
  static_assert(holds, "select_t disagrees with the decision table");
};

#define HERALD_POLICY_ROW(c2s, bin, inf, st, T)                                                   \
  Row<Needs{.client_to_server = c2s, .binary = bin, .infrequent = inf, .stateless = st}, T>::holds

constexpr bool table[] = {
    HERALD_POLICY_ROW(false, false, false, false, Sse),        // one-way push
    HERALD_POLICY_ROW(false, false, true, false, Polling),     // infrequent
    HERALD_POLICY_ROW(false, false, false, true, Polling),     // no stateful infrastructure
    HERALD_POLICY_ROW(false, false, true, true, Polling),      // both
    HERALD_POLICY_ROW(true, false, false, false, WebSocket),   // client->server in real time
    HERALD_POLICY_ROW(true, false, true, false, WebSocket),    // ... even if infrequent
    HERALD_POLICY_ROW(false, true, false, false, WebSocket),   // binary payloads
    HERALD_POLICY_ROW(false, true, true, false, WebSocket),    // ... even if infrequent
    HERALD_POLICY_ROW(true, true, false, false, WebSocket),    // both
    HERALD_POLICY_ROW(true, true, true, false, WebSocket),     // all but stateless
};
#undef HERALD_POLICY_ROW

static_assert(std::is_same_v<select_t<Needs{}>, Sse>, "no needs: the least powerful push, SSE");

// --- capability traits ---------------------------------------------------------------------------
static_assert(herald::Transport<Sse> && herald::Transport<WebSocket> && herald::Transport<Polling>);
static_assert(herald::Transport<Negotiated>);
static_assert(herald::Transport<herald::Negotiated<Sse, Polling>>);

static_assert(!Sse::capabilities.client_to_server && !Sse::capabilities.binary &&
              Sse::capabilities.server_push && Sse::capabilities.resumable && !Sse::capabilities.plain_http);
static_assert(WebSocket::capabilities.client_to_server && WebSocket::capabilities.binary &&
              WebSocket::capabilities.server_push && WebSocket::capabilities.resumable &&
              !WebSocket::capabilities.plain_http);
static_assert(!Polling::capabilities.client_to_server && !Polling::capabilities.binary &&
              !Polling::capabilities.server_push && Polling::capabilities.resumable &&
              Polling::capabilities.plain_http);
// Negotiated: messages by POST in degraded modes; binary only if every member carries it.
static_assert(Negotiated::capabilities.client_to_server && !Negotiated::capabilities.binary &&
              Negotiated::capabilities.server_push && Negotiated::capabilities.resumable &&
              Negotiated::capabilities.plain_http);
using PushOnly = herald::Negotiated<Sse>;
static_assert(PushOnly::capabilities.client_to_server && PushOnly::capabilities.server_push &&
              !PushOnly::capabilities.plain_http);
static_assert(herald::Negotiated<WebSocket>::capabilities.binary);

// The policy's choice always has what was asked for.
template <Needs N>
constexpr bool fits() {
  using T = select_t<N>;
  return (!N.client_to_server || T::capabilities.client_to_server) && (!N.binary || T::capabilities.binary) &&
         (!N.stateless || T::capabilities.plain_http);
}
static_assert(fits<Needs{.client_to_server = true}>() && fits<Needs{.binary = true}>() &&
              fits<Needs{.stateless = true}>() && fits<Needs{.infrequent = true}>());

// --- generic application code ---------------------------------------------------------------------
// One function template for every transport: the same publish and handler code; on_message only
// where the transport carries client messages.
struct AppLog {
  int opened = 0;
  int closed = 0;
  std::vector<std::string> messages;
};

template <herald::Transport T>
void wire_app(herald::Channel<T>& channel, AppLog& log) {
  channel.on_open([&log](herald::Session&) { ++log.opened; });
  channel.on_close([&log](herald::Session&, boost::system::error_code) { ++log.closed; });
  if constexpr (T::capabilities.client_to_server) {
    channel.on_message([&log, &channel](herald::Session& s, herald::Message const& m) {
      log.messages.emplace_back(m.data);
      s.send("echo:" + std::string(m.data));
      channel.publish("news", R"({"from":"client"})");
    });
  }
}

template <herald::Transport T>
herald::EventId announce(herald::Channel<T>& channel, int n) {
  return channel.publish("news", R"({"n":)" + std::to_string(n) + "}");
}

namespace net = boost::asio;
using tcp = net::ip::tcp;
using test::run_until;

bool complete(test::RawClient const& c) {
  if (!c.has_headers()) return c.closed();
  auto const len = c.header("Content-Length");
  return !len.empty() && c.body().size() >= std::stoul(len);
}

herald::ChannelOptions fixed_topics() {
  herald::ChannelOptions o;
  o.topics = {"news"};
  return o;
}

template <class T>
struct App {
  App() : hub(ioc.get_executor()), channel(hub, "/app", fixed_topics()), server(ioc.get_executor()) {
    wire_app(channel, log);
    server.add(channel);
    ep = server.listen("127.0.0.1", 0);
  }
  net::io_context ioc;
  herald::Hub hub;
  herald::Channel<T> channel;
  herald::Server server;
  tcp::endpoint ep;
  AppLog log;
};

}  // namespace

TEST_CASE("select_t follows the whole decision table", "[unit][policy]") {
  for (bool row : table) CHECK(row);
  CHECK(std::is_same_v<select_t<Needs{.client_to_server = true}>, WebSocket>);
  CHECK(std::is_same_v<select_t<Needs{.infrequent = true}>, Polling>);
  CHECK(std::is_same_v<select_t<Needs{}>, Sse>);
}

TEST_CASE("capabilities are traits of each transport", "[unit][policy]") {
  CHECK(WebSocket::capabilities.client_to_server);
  CHECK_FALSE(Sse::capabilities.client_to_server);
  CHECK_FALSE(Polling::capabilities.server_push);
  CHECK(Negotiated::capabilities.client_to_server);
  CHECK_FALSE(Negotiated::capabilities.binary);
  CHECK(Negotiated::name == "negotiated");
  CHECK(Negotiated::transport_list() == R"(["websocket","sse","polling"])");
}

TEST_CASE("generic code runs unchanged on Channel<Sse>", "[e2e][policy]") {
  App<Sse> app;
  test::RawClient c(app.ioc);
  c.get(app.ep, "/app", "Accept: text/event-stream\r\n");
  REQUIRE(run_until(app.ioc, [&] { return app.channel.connections() == 1; }));
  auto const id = announce(app.channel, 1);
  test::SseReader reader;
  REQUIRE(run_until(app.ioc, [&] {
    reader.feed_all(c.body());
    return !reader.events().empty();
  }));
  CHECK(reader.events()[0].id == std::to_string(id));
  CHECK(json::parse(reader.events()[0].data) == json{{"n", 1}});
}

TEST_CASE("generic code runs unchanged on Channel<Polling>", "[e2e][policy]") {
  App<Polling> app;
  auto const id = announce(app.channel, 2);
  test::RawClient c(app.ioc);
  c.get(app.ep, "/app?since=0");
  REQUIRE(run_until(app.ioc, [&] { return complete(c); }));
  auto const j = json::parse(c.body());
  REQUIRE(j["events"].size() == 1);
  CHECK(j["events"][0]["id"] == id);
  CHECK(j["events"][0]["data"] == json{{"n", 2}});
}

TEST_CASE("generic code runs unchanged on Channel<WebSocket>", "[e2e][policy]") {
  App<WebSocket> app;
  test::WsClient ws(app.ioc);
  ws.connect(app.ep, "/app?topic=news");
  REQUIRE(run_until(app.ioc, [&] { return ws.open() && app.log.opened == 1; }));
  auto const id = announce(app.channel, 3);
  REQUIRE(run_until(app.ioc, [&] { return ws.saw_id(id); }));
  ws.send("hi");
  REQUIRE(run_until(app.ioc, [&] { return app.log.messages.size() == 1 && ws.ids().size() == 2; }));
  bool echoed = false;
  for (auto const& f : ws.frames()) echoed = echoed || f.data == "echo:hi";
  CHECK(echoed);
  ws.close();
  REQUIRE(run_until(app.ioc, [&] { return app.log.closed == 1; }));
}

TEST_CASE("generic code runs unchanged on Channel<Negotiated<WebSocket, Sse, Polling>>", "[e2e][policy]") {
  App<Negotiated> app;
  test::WsClient ws(app.ioc);
  ws.connect(app.ep, "/app?topic=news");
  REQUIRE(run_until(app.ioc, [&] { return ws.open() && app.log.opened == 1; }));
  auto const id = announce(app.channel, 4);
  REQUIRE(run_until(app.ioc, [&] { return ws.saw_id(id); }));
  // A degraded client's message: a POST to the same path, the same handler.
  test::RawClient post(app.ioc);
  post.request(app.ep, "POST /app HTTP/1.1\r\nHost: 127.0.0.1:" + std::to_string(app.ep.port()) +
                           "\r\nContent-Length: 2\r\n\r\nyo");
  REQUIRE(run_until(app.ioc, [&] { return complete(post) && ws.ids().size() == 2; }));
  CHECK(json::parse(post.body()) == json::array({"echo:yo"}));
  CHECK(app.log.messages == std::vector<std::string>{"yo"});
}

// ---------------------------------------------------------------------------------------------
// Moved here from the e2e files: cases that need no socket.
// ---------------------------------------------------------------------------------------------

namespace net = boost::asio;
namespace http = boost::beast::http;
using namespace std::chrono_literals;

TEST_CASE("polling: options that cannot work throw at construction", "[unit][polling]") {
  net::io_context ioc;
  herald::Hub hub{ioc.get_executor()};
  using P = herald::Channel<herald::Polling>;
  CHECK_THROWS_AS(P(hub, "/p", {}, {.max_wait = -1ms}), std::invalid_argument);
  CHECK_THROWS_AS(P(hub, "/p", {}, {.max_wait = 2h}), std::invalid_argument);
  CHECK_THROWS_AS(P(hub, "/p", {}, {.default_limit = 0}), std::invalid_argument);
  CHECK_THROWS_AS(P(hub, "/p", {}, {.default_limit = 10, .max_limit = 5}), std::invalid_argument);
  herald::ChannelOptions bad_cors;
  bad_cors.cors.headers = {"X-Ok", "Bad\r\nHeader"};
  CHECK_THROWS_AS(P(hub, "/p", bad_cors), std::invalid_argument);
  bad_cors.cors.headers = {""};
  CHECK_THROWS_AS(P(hub, "/p", bad_cors), std::invalid_argument);
  CHECK_NOTHROW(P(hub, "/p", {}, {.max_wait = 0ms}));
  static_assert(herald::Polling::capabilities.plain_http && herald::Polling::capabilities.resumable &&
                !herald::Polling::capabilities.server_push && !herald::Polling::capabilities.client_to_server &&
                !herald::Polling::capabilities.binary);
  static_assert(herald::Polling::name == "polling");
}

TEST_CASE("Polling::matches plain GET, HEAD and OPTIONS only", "[unit][polling]") {
  herald::Request req{http::verb::get, "/p", 11};
  CHECK(herald::Polling::matches(req));
  req.method(http::verb::head);
  CHECK(herald::Polling::matches(req));
  req.method(http::verb::options);
  CHECK(herald::Polling::matches(req));
  req.method(http::verb::post);
  CHECK_FALSE(herald::Polling::matches(req));
  req.method(http::verb::get);
  req.set(http::field::accept, "text/event-stream");
  CHECK_FALSE(herald::Polling::matches(req));
  req.erase(http::field::accept);
  req.set(http::field::upgrade, "websocket");
  CHECK_FALSE(herald::Polling::matches(req));
}

TEST_CASE("WebSocketOptions: out-of-range options are refused at construction", "[unit][websocket]") {
  net::io_context ioc;
  herald::Hub hub{ioc.get_executor()};
  auto make = [&](herald::WebSocketOptions o) { herald::Channel<herald::WebSocket>{hub, "/ws", {}, std::move(o)}; };
  CHECK_NOTHROW(make({}));
  CHECK_THROWS_AS(make({.subprotocols = {"bad name"}}), std::invalid_argument);
  CHECK_THROWS_AS(make({.read_message_max = 0}), std::invalid_argument);
  CHECK_THROWS_AS(make({.overflow_close_code = 1006}), std::invalid_argument);
  CHECK_THROWS_AS(make({.deflate = {.enable = true, .max_window_bits = 8}}), std::invalid_argument);
  CHECK_THROWS_WITH(make({.deflate = {.mem_level = 10}}), Catch::Contains("deflate.mem_level"));
  // An inbound budget that no message, or no message of the allowed size, could ever pass.
  CHECK_THROWS_WITH(make({.inbound_rate = {.message_burst = 0}}), Catch::Contains("inbound_rate.message_burst"));
  CHECK_THROWS_WITH(make({.read_message_max = 4096, .inbound_rate = {.byte_burst = 4095}}),
                    Catch::Contains("inbound_rate.byte_burst"));
  CHECK_NOTHROW(make({.inbound_rate = {.messages_per_second = 0, .message_burst = 0, .bytes_per_second = 0,
                                       .byte_burst = 0}}));
}

TEST_CASE("TokenBuckets: a burst at once, then the rate, in virtual time", "[unit][websocket]") {
  using Bucket = herald::detail::TokenBuckets<1>;
  auto const t0 = Bucket::clock::time_point{} + std::chrono::hours(1);
  std::array<Bucket::Rate, 1> const r{{{.per_second = 10, .burst = 5}}};
  Bucket b;
  for (int i = 0; i < 5; ++i) CHECK(b.take({1}, t0, r) == Bucket::ok);
  CHECK(b.take({1}, t0, r) == 0);
  CHECK(b.take({1}, t0 + std::chrono::milliseconds(100), r) == Bucket::ok);  // 10 a second: one more after 100 ms
  CHECK(b.take({1}, t0 + std::chrono::milliseconds(150), r) == 0);
  CHECK(b.take({5}, t0 + std::chrono::seconds(60), r) == Bucket::ok);  // a long quiet spell refills only up to the burst
  CHECK(b.take({1}, t0 + std::chrono::seconds(60), r) == 0);
  CHECK(b.take({6}, t0 + std::chrono::seconds(120), r) == 0);  // more than the burst never passes, taking none
  CHECK(b.take({5}, t0 + std::chrono::seconds(120), r) == Bucket::ok);
  Bucket unlimited;
  CHECK(unlimited.take({1'000'000}, t0, {{{.per_second = 0, .burst = 0}}}) == Bucket::ok);
}

TEST_CASE("TokenBuckets: several buckets take from all or from none", "[unit][websocket]") {
  using Buckets = herald::detail::TokenBuckets<2>;
  auto const t0 = Buckets::clock::time_point{} + std::chrono::hours(1);
  // Messages: 2 at once, 1 a second; bytes: 1 MiB at once, 1 KiB a second.
  std::array<Buckets::Rate, 2> const r{{{.per_second = 1, .burst = 2}, {.per_second = 1024, .burst = 1 << 20}}};
  Buckets b;
  CHECK(b.take({1, (1 << 20) - 100}, t0, r) == Buckets::ok);
  CHECK(b.take({1, 200}, t0, r) == 1);  // short of bytes: the message is not taken either
  CHECK(b.take({1, 100}, t0, r) == Buckets::ok);  // so this one still has a message
  CHECK(b.take({1, 0}, t0, r) == 0);
  // Half a second later: 512 bytes more, no whole message yet.
  CHECK(b.take({1, 0}, t0 + std::chrono::milliseconds(500), r) == 0);
  CHECK(b.take({0, 512}, t0 + std::chrono::milliseconds(500), r) == Buckets::ok);
  CHECK(b.take({0, 1}, t0 + std::chrono::milliseconds(500), r) == 1);
  CHECK(b.take({1, 1}, t0 + std::chrono::milliseconds(1500), r) == Buckets::ok);
}

TEST_CASE("Pooled: held only while in use, reused with its capacity unless it grew too much", "[unit][server]") {
  struct Buffer {
    std::vector<int> v;
    bool recycle() noexcept {
      v.clear();
      return v.capacity() <= 64;
    }
  };
  using herald::detail::Pooled;
  Buffer const* first = nullptr;
  {
    Pooled<Buffer> a;
    CHECK_FALSE(a);
    a.get().v.assign(10, 1);
    first = &a.get();
    CHECK(a);
    a.release();
    CHECK_FALSE(a);
  }
  Pooled<Buffer> b;
  CHECK(&b.get() == first);  // this thread's last one back
  CHECK(b->v.empty());
  CHECK(b->v.capacity() >= 10);
  b->v.assign(1000, 1);
  b.release();  // grew past what is kept: freed
  Pooled<Buffer> c;
  CHECK(c.get().v.capacity() == 0);
}

TEST_CASE("executors: a one-thread io_context needs no strand, any other gets a concrete one", "[unit][server]") {
  using herald::detail::new_strand;
  using herald::detail::serialized;
  using herald::detail::single_threaded;
  using io_strand = net::strand<net::io_context::executor_type>;

  net::io_context one{1};
  net::any_io_executor const ex1 = one.get_executor();
  CHECK(single_threaded(ex1));
  CHECK(new_strand(ex1) == ex1);
  CHECK(serialized(ex1) == ex1);

  net::io_context many;  // the default hint: any number of threads may run it
  net::any_io_executor const exn = many.get_executor();
  CHECK_FALSE(single_threaded(exn));
  auto const s = new_strand(exn);
  // Concrete inner executor: fits any_io_executor's small buffer, no allocation per operation.
  REQUIRE(s.target<io_strand>() != nullptr);
  CHECK(new_strand(exn) != s);      // each connection its own
  CHECK(serialized(s) == s);        // a strand is kept, not wrapped in a second one

  net::thread_pool pool{1};
  CHECK_FALSE(single_threaded(pool.get_executor()));
  CHECK(new_strand(pool.get_executor()).target<net::strand<net::thread_pool::executor_type>>() != nullptr);
  pool.join();
}

TEST_CASE("channel: configuration errors throw at construction", "[unit][channel]") {
  net::io_context ioc;
  herald::Hub hub{ioc.get_executor()};
  using Sse = herald::Channel<herald::Sse>;
  CHECK_THROWS_AS(Sse(hub, "no-slash"), std::invalid_argument);
  CHECK_THROWS_AS(Sse(hub, "/x", {.topics = {"bad\ntopic"}}), std::invalid_argument);
  CHECK_THROWS_AS(Sse(hub, "/x", {.limits = {.queue_events = 0}}), std::invalid_argument);
  CHECK_NOTHROW(Sse(hub, "/x", {.topics = {"ok"}}));
}
