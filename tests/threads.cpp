// The multi-threaded end-to-end cases ([threads]), in a TU of their own so that the TSan tree
// (scripts/test: build/tsan-threads) builds only this file, unit_hub.cpp (the hub's own
// threaded cases) and the Catch2 main instead of every test TU. The ASan tree runs them too,
// with everything else.
//
// Each server runs on worker threads (an io_context run by two threads, or a thread_pool);
// the clients and every assertion stay on the test thread.

#include <herald/herald.hpp>
#include <herald/transports/polling.hpp>
#include <herald/transports/websocket.hpp>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/thread_pool.hpp>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <iterator>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "http_client.hpp"
#include "loopback.hpp"
#include "sse_reader.hpp"
#include "ws_client.hpp"

namespace {

namespace net = boost::asio;
using json = nlohmann::json;
using test::run_until;

/** `n` threads running `ioc` (kept busy by a work guard), stopped and joined on every exit,
    also when a REQUIRE throws. */
class Workers {
 public:
  Workers(net::io_context& ioc, int n) : ioc_(ioc), guard_(net::make_work_guard(ioc)) {
    for (int i = 0; i < n; ++i) threads_.emplace_back([this] { ioc_.run(); });
  }
  ~Workers() {
    ioc_.stop();
    for (auto& t : threads_) t.join();
  }
  Workers(Workers const&) = delete;
  Workers& operator=(Workers const&) = delete;

 private:
  net::io_context& ioc_;
  net::executor_work_guard<net::io_context::executor_type> guard_;
  std::vector<std::thread> threads_;
};

/// A server on a thread_pool, stopped and the pool joined on every exit (also when a REQUIRE
/// throws), before the server goes.
struct StopPool {
  herald::Server& server;
  net::thread_pool& pool;
  ~StopPool() {
    std::atomic<bool> stopped{false};
    server.async_stop(std::chrono::seconds(5), [&](boost::system::error_code) { stopped = true; });
    auto const end = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (!stopped && std::chrono::steady_clock::now() < end) std::this_thread::yield();
    pool.stop();
    pool.join();
  }
};

using Clients = std::vector<std::unique_ptr<test::WsClient>>;

/// `n` WebSocket clients on `ioc`, connecting to `path`.
Clients connect_clients(net::io_context& ioc, net::ip::tcp::endpoint ep, int n, std::string const& path) {
  Clients cs;
  for (int i = 0; i < n; ++i) {
    cs.push_back(std::make_unique<test::WsClient>(ioc));
    cs.back()->connect(ep, path);
  }
  return cs;
}

/// Whether every client has received every one of `ids`.
bool all_saw(Clients const& cs, std::initializer_list<std::uint64_t> ids) {
  return std::all_of(cs.begin(), cs.end(), [&](auto const& c) {
    return std::all_of(ids.begin(), ids.end(), [&](std::uint64_t id) { return c->saw_id(id); });
  });
}

}  // namespace

TEST_CASE("websocket: publish and Session::send from other threads while the server runs on two", "[e2e][websocket][threads]") {
  // The server's io_context runs on two worker threads; the clients' on the test thread.
  net::io_context server_ioc;
  herald::Hub hub{server_ioc.get_executor(), {.first_id = 1}};
  herald::Channel<herald::WebSocket> live{hub, "/live"};
  std::mutex mutex;
  std::vector<herald::Session> sessions;
  live.on_open([&](herald::Session& s) {
    std::lock_guard lock{mutex};
    sessions.push_back(s);
  });
  live.on_message([](herald::Session& s, herald::Message const& m) { s.send(std::string(m.data)); });
  herald::Server server{server_ioc.get_executor()};
  server.add(live);
  auto const ep = server.listen("127.0.0.1", 0);
  Workers workers{server_ioc, 2};

  constexpr int clients = 8;
  constexpr int events = 200;
  constexpr int sends = 20;
  net::io_context ioc;
  auto cs = connect_clients(ioc, ep, clients, "/live?topic=a&topic=b");
  REQUIRE(run_until(ioc, [&] {
    std::lock_guard lock{mutex};
    return sessions.size() == clients;
  }));

  std::thread pa{[&] {
    for (int i = 0; i < events; ++i) hub.publish("a", std::to_string(i));
  }};
  std::thread pb{[&] {
    std::vector<herald::Session> copy;
    {
      std::lock_guard lock{mutex};
      copy = sessions;
    }
    for (int i = 0; i < events; ++i) {
      hub.publish("b", std::to_string(i));
      if (i % (events / sends) == 0)
        for (auto& s : copy) s.send("app " + std::to_string(i));
    }
  }};
  // Meanwhile every client also talks to the server.
  for (auto& c : cs) c->send("ping from client");
  pa.join();
  pb.join();
  auto const sa = hub.publish("a", "sentinel");
  auto const sb = hub.publish("b", "sentinel");
  // The clients' own messages leave only once this thread runs their loop again, so the echo
  // may come after the sentinels.
  auto echoed_once = [](test::WsClient const& c) {
    return std::count_if(c.frames().begin(), c.frames().end(),
                         [](test::WsFrame const& f) { return f.data == "ping from client"; }) == 1;
  };
  REQUIRE(run_until(ioc, [&] {
    return all_saw(cs, {sa, sb}) && std::all_of(cs.begin(), cs.end(), [&](auto const& c) { return echoed_once(*c); });
  }, std::chrono::seconds(30)));
  for (auto const& c : cs) {
    std::vector<std::uint64_t> a, b;
    int app = 0, echoed = 0;
    for (auto const& f : c->frames()) {
      if (f.data.starts_with("app ")) ++app;
      else if (f.data == "ping from client") ++echoed;
      else {
        auto const j = json::parse(f.data);
        (j["topic"] == "a" ? a : b).push_back(j["id"]);
      }
    }
    CHECK(a.size() == events + 1);
    CHECK(b.size() == events + 1);
    CHECK(std::is_sorted(a.begin(), a.end()));
    CHECK(std::is_sorted(b.begin(), b.end()));
    CHECK(app == sends);
    CHECK(echoed == 1);
  }
  std::atomic<bool> stopped{false};
  server.async_stop(std::chrono::seconds(5), [&](boost::system::error_code) { stopped = true; });
  REQUIRE(run_until(ioc, [&] {
    for (auto const& c : cs)
      if (!c->ended()) return false;
    return stopped.load();
  }));
  for (auto const& c : cs) CHECK(c->close_code() == 1001);
  CHECK(live.connections() == 0);
}

TEST_CASE("websocket: on a one-thread io_context, publishes from its loop and from other threads arrive once and in order",
          "[e2e][websocket][threads]") {
  // io_context{1} run by one worker: herald drains the connections a publish on the loop's own
  // thread wakes in one pass (detail::ReadyList), while a publish from any other thread posts
  // each wake-up. Both at once here: clients' messages publish on the loop, two threads publish
  // beside it.
  net::io_context server_ioc{1};
  herald::Hub hub{server_ioc.get_executor(), {.first_id = 1}};
  herald::Channel<herald::WebSocket> live{hub, "/live"};
  live.on_message([&](herald::Session&, herald::Message const& m) { hub.publish("c", std::string(m.data)); });
  herald::Server server{server_ioc.get_executor()};
  server.add(live);
  auto const ep = server.listen("127.0.0.1", 0);
  Workers workers{server_ioc, 1};

  constexpr int clients = 4;
  constexpr int events = 300;
  constexpr int messages = 25;
  net::io_context ioc;
  auto cs = connect_clients(ioc, ep, clients, "/live?topic=a&topic=b&topic=c");
  REQUIRE(run_until(ioc, [&] { return live.connections() == clients; }));

  std::thread pa{[&] {
    for (int i = 0; i < events; ++i) hub.publish("a", std::to_string(i));
  }};
  std::thread pb{[&] {
    for (int i = 0; i < events; ++i) hub.publish("b", std::to_string(i));
  }};
  for (int i = 0; i < messages; ++i)
    for (auto& c : cs) c->send("from a client " + std::to_string(i));
  pa.join();
  pb.join();
  // The clients' messages leave once this thread runs their loop: wait for all of them to be
  // published before the sentinels, which then come last on every topic.
  REQUIRE(run_until(ioc, [&] { return hub.stats().events_published == 2 * events + clients * messages; },
                    std::chrono::seconds(30)));
  auto const sa = hub.publish("a", "sentinel");
  auto const sb = hub.publish("b", "sentinel");
  auto const sc = hub.publish("c", "sentinel");
  REQUIRE(run_until(ioc, [&] { return all_saw(cs, {sa, sb, sc}); }, std::chrono::seconds(30)));
  for (auto const& c : cs) {
    std::vector<std::uint64_t> ids;
    std::size_t a = 0, b = 0, cc = 0;
    for (auto const& f : c->frames()) {
      auto const j = json::parse(f.data);
      ids.push_back(j["id"]);
      auto const topic = j["topic"].get<std::string>();
      (topic == "a" ? a : topic == "b" ? b : cc) += 1;
    }
    CHECK(a == events + 1);
    CHECK(b == events + 1);
    CHECK(cc == clients * messages + 1);
    // One hub, one lock: every connection sees the hub's order, each id once.
    CHECK(std::adjacent_find(ids.begin(), ids.end(), std::greater_equal<>()) == ids.end());
  }
}

namespace {

/** Chains long polls, one connection each (Connection: close), every answer's cursor going
    into the next request; collects the ids it is given. */
class Poller {
 public:
  Poller(net::io_context& ioc, net::ip::tcp::endpoint ep) : ioc_(ioc), ep_(ep) { next(); }

  /// Take a finished answer and send the next poll; false once an answer was not a clean 200.
  bool step() {
    if (failed_ || !raw_->closed()) return !failed_;
    auto const& data = raw_->data();
    auto const body = data.find("\r\n\r\n");
    if (raw_->status() != 200 || body == std::string::npos) {
      failed_ = true;
      return false;
    }
    auto const j = json::parse(data.substr(body + 4), nullptr, false);
    if (j.is_discarded() || j.contains("reset")) {
      failed_ = true;
      return false;
    }
    for (auto const& e : j["events"]) ids.push_back(e["id"].get<std::uint64_t>());
    cursor_ = j["cursor"].get<std::uint64_t>();
    next();
    return true;
  }

  bool saw(std::uint64_t id) const { return std::find(ids.begin(), ids.end(), id) != ids.end(); }
  std::vector<std::uint64_t> ids;

 private:
  void next() {
    raw_ = std::make_unique<test::RawClient>(ioc_);
    raw_->request(ep_, "GET /poll?topic=a&topic=b&wait=5&since=" + std::to_string(cursor_) +
                           " HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
  }

  net::io_context& ioc_;
  net::ip::tcp::endpoint ep_;
  std::unique_ptr<test::RawClient> raw_;
  std::uint64_t cursor_ = 0;
  bool failed_ = false;
};

}  // namespace

TEST_CASE("polling: a server on a thread_pool answers chained long polls while two threads publish",
          "[e2e][polling][threads]") {
  net::thread_pool pool{2};
  herald::Hub hub{pool.get_executor(), {.first_id = 1}};
  herald::Channel<herald::Polling> poll{hub, "/poll"};
  herald::Server server{pool.get_executor()};
  server.add(poll);
  auto const ep = server.listen("127.0.0.1", 0);
  StopPool stop{server, pool};

  constexpr int pollers = 4;
  constexpr int events = 300;
  net::io_context ioc;
  std::vector<std::unique_ptr<Poller>> ps;
  for (int i = 0; i < pollers; ++i) ps.push_back(std::make_unique<Poller>(ioc, ep));
  auto step_all = [&] {
    bool ok = true;
    for (auto& p : ps) ok = p->step() && ok;
    return ok;
  };
  // Every poller holds a poll (cursor 0: from the start) before the publishers start.
  REQUIRE(run_until(ioc, [&] { return !step_all() || poll.connections() == pollers; }));
  REQUIRE(step_all());

  std::vector<std::uint64_t> published_a, published_b;
  std::thread pa{[&] {
    for (int i = 0; i < events; ++i) published_a.push_back(hub.publish("a", std::to_string(i)));
  }};
  std::thread pb{[&] {
    for (int i = 0; i < events; ++i) published_b.push_back(hub.publish("b", std::to_string(i)));
  }};
  bool const polled = run_until(ioc, [&] { return !step_all() || ps.front()->ids.size() >= 50; },
                                std::chrono::seconds(30));
  pa.join();
  pb.join();
  REQUIRE(polled);
  auto const sentinel = hub.publish("a", "sentinel");
  REQUIRE(run_until(ioc, [&] {
    if (!step_all()) return true;
    return std::all_of(ps.begin(), ps.end(), [&](auto const& p) { return p->saw(sentinel); });
  }, std::chrono::seconds(30)));
  REQUIRE(step_all());

  std::vector<std::uint64_t> expected;
  std::merge(published_a.begin(), published_a.end(), published_b.begin(), published_b.end(),
             std::back_inserter(expected));
  expected.push_back(sentinel);
  for (auto const& p : ps) CHECK(p->ids == expected);  // each once, in id order, no gap
}

TEST_CASE("websocket and sse: a server on a thread_pool streams events and heartbeats", "[e2e][websocket][sse][threads]") {
  // A thread_pool's executor is no io_context's: the sessions keep Asio's own socket type, and
  // their deadlines (the heartbeats) are served by a timer on the pool.
  net::thread_pool pool{2};
  herald::Hub hub{pool.get_executor(), {.first_id = 1}};
  herald::Channel<herald::WebSocket> live{hub, "/live", {}, {.heartbeat = std::chrono::milliseconds(100)}};
  herald::Channel<herald::Sse> feed{hub, "/feed", {}, {.heartbeat = std::chrono::milliseconds(100)}};
  herald::Server server{pool.get_executor()};
  server.add(live);
  server.add(feed);
  auto const ep = server.listen("127.0.0.1", 0);
  StopPool stop{server, pool};

  net::io_context ioc;
  test::WsClient ws{ioc};
  ws.connect(ep, "/live?topic=a&heartbeat");
  test::RawClient sse{ioc};
  sse.get(ep, "/feed?topic=a", "Accept: text/event-stream\r\n");
  REQUIRE(run_until(ioc, [&] { return ws.open() && feed.connections() == 1; }));

  std::vector<std::uint64_t> published;
  for (int i = 0; i < 100; ++i) published.push_back(hub.publish("a", std::to_string(i)));
  test::SseReader r;
  // Each has every event, and then heartbeats: the first goes out as a stream opens, the rest
  // come from the deadlines.
  bool const streamed = run_until(ioc, [&] {
    r = test::SseReader{};
    r.feed_all(sse.body());
    return ws.saw_id(published.back()) && ws.count_with("heartbeat") >= 3 && r.events().size() == published.size() &&
           r.comments() >= 2;
  }, std::chrono::seconds(30));
  CHECK(ws.saw_id(published.back()));
  CHECK(ws.count_with("heartbeat") >= 3);
  CHECK(r.events().size() == published.size());
  CHECK(r.comments() >= 2);
  REQUIRE(streamed);
  std::vector<std::uint64_t> ws_ids, sse_ids;
  for (auto const& j : ws.texts())
    if (j.contains("id")) ws_ids.push_back(j["id"].get<std::uint64_t>());
  for (auto const& e : r.events()) sse_ids.push_back(std::stoull(e.id));
  CHECK(ws_ids == published);
  CHECK(sse_ids == published);
}
