// bench/drain_spread: what Server::async_drain does to a fleet. N clients (herald's C++ clients,
// mixed: SSE, WebSocket, long polling, in turn) follow one topic each on server A; a publisher
// publishes throughout. A drains over --window while server B (same process, same Hub: the
// successor) takes over; the clients' connector points at B from the drain's start on (a
// balancer that took A out). Prints when the clients left A and when they were back on B, as
// text histograms over the window, then checks that every client received every event of its
// topic exactly once, in order, across the hand-off.
//
//   herald_bench_drain_spread [--clients 1000] [--window 10] [--jitter-ms 1000] [--rate 200]
//
// Exit status 0 only when every client's sequence is complete, without a gap or a duplicate.
#include <herald/client.hpp>
#include <herald/herald.hpp>

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace {

namespace net = boost::asio;
namespace hc = herald::client;
using namespace std::chrono_literals;
using clock_type = std::chrono::steady_clock;

/// Every attempt goes to the port of the moment: A until the drain, then B.
class SwitchConnector final : public hc::Connector {
 public:
  std::uint16_t port = 0;

  std::unique_ptr<hc::ByteStream> make(net::any_io_executor const& ex, hc::Url const& url) override {
    return std::make_unique<To>(hc::plain_tcp()->make(ex, url), port);
  }

 private:
  class To final : public hc::ByteStream {
   public:
    To(std::unique_ptr<ByteStream> inner, std::uint16_t port) : inner_(std::move(inner)), port_(port) {}
    executor_type get_executor() noexcept override { return inner_->get_executor(); }
    void async_open(hc::Url const& url, OpenHandler handler) override {
      auto there = url;
      there.port = port_;
      inner_->async_open(there, std::move(handler));
    }
    void async_read_some(net::mutable_buffer b, IoHandler h) override { inner_->async_read_some(b, std::move(h)); }
    void async_write_some(std::span<net::const_buffer const> b, IoHandler h) override {
      inner_->async_write_some(b, std::move(h));
    }
    void close() noexcept override { inner_->close(); }

   private:
    std::unique_ptr<ByteStream> inner_;
    std::uint16_t port_;
  };
};

struct Slot {
  std::string transport;
  std::string topic;
  std::shared_ptr<void> client;
  std::vector<herald::EventId> ids;
  std::optional<clock_type::time_point> left;
  std::optional<clock_type::time_point> back;
  bool open = false;
};

template <class Pred>
bool run_until(net::io_context& ioc, Pred pred, clock_type::duration limit) {
  auto const end = clock_type::now() + limit;
  while (!pred()) {
    if (clock_type::now() >= end) return false;
    ioc.run_one_for(10ms);
  }
  return true;
}

/// A text histogram of `at` (seconds after the drain began) in 1-s buckets over [0, span).
void histogram(char const* title, std::vector<double> const& at, int span) {
  std::vector<std::size_t> buckets(static_cast<std::size_t>(span) + 1, 0);
  for (double t : at) buckets[std::min<std::size_t>(static_cast<std::size_t>(std::max(t, 0.0)), buckets.size() - 1)]++;
  std::size_t const top = *std::max_element(buckets.begin(), buckets.end());
  std::printf("%s (%zu clients, 1-s buckets after the drain began)\n", title, at.size());
  for (std::size_t i = 0; i < buckets.size(); ++i) {
    int const bar = top == 0 ? 0 : static_cast<int>(buckets[i] * 50 / top);
    if (i + 1 < buckets.size()) std::printf("  %3zu-%3zu s %5zu %s\n", i, i + 1, buckets[i], std::string(static_cast<std::size_t>(bar), '#').c_str());
    else std::printf("  %3zu s +   %5zu %s\n", i, buckets[i], std::string(static_cast<std::size_t>(bar), '#').c_str());
  }
}

}  // namespace

int main(int argc, char** argv) {
  std::size_t clients = 1000;
  int window_s = 10;
  int jitter_ms = 1000;
  int rate = 200;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string_view const k = argv[i];
    long const v = std::strtol(argv[i + 1], nullptr, 10);
    if (k == "--clients") clients = static_cast<std::size_t>(v);
    else if (k == "--window") window_s = static_cast<int>(v);
    else if (k == "--jitter-ms") jitter_ms = static_cast<int>(v);
    else if (k == "--rate") rate = static_cast<int>(v);
    else return std::fprintf(stderr, "unknown option %s\n", argv[i]), 2;
  }

  net::io_context ioc{1};
  herald::Hub hub{ioc.get_executor(), {.first_id = 1}};
  herald::ChannelOptions co;
  co.limits.max_connections = 100'000;
  /// One server with its own channels on the shared hub.
  struct Node {
    Node(net::io_context& ioc, herald::Hub const& hub, herald::ChannelOptions const& co)
        : sse(hub, "/sse", co), ws(hub, "/ws", co), poll(hub, "/poll", co),
          server(ioc.get_executor(), {.max_connections = 100'000}) {
      server.add(sse).add(ws).add(poll);
      port = server.listen("127.0.0.1", 0).port();
    }
    herald::Channel<herald::Sse> sse;
    herald::Channel<herald::WebSocket> ws;
    herald::Channel<herald::Polling> poll;
    herald::Server server;
    std::uint16_t port = 0;
  };
  auto node = [&] { return std::make_unique<Node>(ioc, hub, co); };
  auto a = node();
  auto b = node();

  auto sw = std::make_shared<SwitchConnector>();
  sw->port = a->port;
  std::vector<std::string> const topics{"t0", "t1", "t2", "t3"};
  std::deque<Slot> slots(clients);
  for (std::size_t i = 0; i < clients; ++i) {
    auto& s = slots[i];
    s.topic = topics[i % topics.size()];
    hc::Options o;
    o.topics = {s.topic};
    o.connector = sw;
    o.poll.wait = 25s;
    auto const base = "://127.0.0.1:" + std::to_string(a->port);
    auto attach = [&s](auto& c) {
      c.on_event([&s](herald::Event const& e) { s.ids.push_back(e.id); });
      c.on_state([&s](hc::State st, boost::system::error_code ec) {
        if (st == hc::State::open) s.open = true;
        if (st == hc::State::reconnecting && ec == herald::error::draining && !s.left) s.left = clock_type::now();
        if (st == hc::State::open && s.left && !s.back) s.back = clock_type::now();
      });
      c.start();
    };
    switch (i % 3) {
      case 0: {
        auto c = std::make_shared<hc::SseClient>(ioc.get_executor(), "http" + base + "/sse", o);
        s.transport = "sse";
        attach(*c);
        s.client = c;
        break;
      }
      case 1: {
        auto c = std::make_shared<hc::WebSocketClient>(ioc.get_executor(), "ws" + base + "/ws", o);
        s.transport = "websocket";
        attach(*c);
        s.client = c;
        break;
      }
      default: {
        auto c = std::make_shared<hc::PollingClient>(ioc.get_executor(), "http" + base + "/poll", o);
        s.transport = "polling";
        attach(*c);
        s.client = c;
      }
    }
  }
  auto on_a = [&] { return a->sse.connections() + a->ws.connections() + a->poll.connections(); };
  if (!run_until(ioc, [&] { return on_a() == clients && std::all_of(slots.begin(), slots.end(), [](auto& s) { return s.open; }); },
                 120s)) {
    std::fprintf(stderr, "only %zu of %zu clients connected\n", on_a(), clients);
    return 1;
  }

  // The publisher: --rate events a second, round robin over the topics, from before the drain
  // until every client is back.
  std::map<std::string, std::vector<herald::EventId>> published;
  std::size_t n = 0;
  bool publishing = true;
  net::steady_timer tick{ioc};
  auto const period = std::chrono::microseconds(1'000'000 / std::max(rate, 1));
  std::function<void()> publish = [&] {
    auto const& t = topics[n % topics.size()];
    published[t].push_back(hub.publish(t, R"({"n":)" + std::to_string(n) + "}"));
    ++n;
    if (!publishing) return;
    tick.expires_after(period);
    tick.async_wait([&](boost::system::error_code ec) {
      if (!ec) publish();
    });
  };
  publish();
  run_until(ioc, [] { return false; }, 1s);  // a second of traffic before the drain

  auto const began = clock_type::now();
  std::optional<boost::system::error_code> drained;
  a->server.async_drain({.window = std::chrono::seconds(window_s), .retry_min = 0ms,
                         .retry_jitter = std::chrono::milliseconds(jitter_ms)},
                        [&](boost::system::error_code ec) { drained = ec; });
  sw->port = b->port;
  bool const all_back = run_until(
      ioc, [&] { return std::all_of(slots.begin(), slots.end(), [](auto& s) { return s.back.has_value(); }); },
      std::chrono::seconds(window_s * 3 + 30));
  publishing = false;
  tick.cancel();
  for (std::size_t i = 0; i < topics.size(); ++i) publish();  // one last event per topic
  auto complete = [&](Slot const& s) { return s.ids.size() >= published[s.topic].size(); };
  run_until(ioc, [&] { return std::all_of(slots.begin(), slots.end(), complete); }, 60s);
  run_until(ioc, [&] { return drained.has_value(); }, 30s);

  std::vector<double> left, back;
  std::map<std::string, std::vector<double>> back_by;
  std::size_t exact = 0, missing = 0, duplicated = 0;
  for (auto const& s : slots) {
    auto secs = [&](clock_type::time_point t) { return std::chrono::duration<double>(t - began).count(); };
    if (s.left) left.push_back(secs(*s.left));
    if (s.back) {
      back.push_back(secs(*s.back));
      back_by[s.transport].push_back(secs(*s.back));
    }
    auto const& want = published[s.topic];
    if (s.ids == want) {
      ++exact;
      continue;
    }
    std::vector<herald::EventId> sorted = s.ids;
    std::sort(sorted.begin(), sorted.end());
    auto const uniq = static_cast<std::size_t>(std::unique(sorted.begin(), sorted.end()) - sorted.begin());
    duplicated += s.ids.size() - uniq;
    sorted.resize(uniq);
    for (auto id : want)
      if (!std::binary_search(sorted.begin(), sorted.end(), id)) ++missing;
  }
  std::size_t events = 0;
  for (auto const& [t, ids] : published) events += ids.size();

  std::printf("drain of %zu clients (sse/websocket/polling in turn, %zu topics) over %d s, jitter %d ms, %d events/s\n",
              clients, topics.size(), window_s, jitter_ms, rate);
  histogram("left server A", left, window_s + 2);
  histogram("back on server B", back, window_s + 2);
  for (auto& [t, v] : back_by) {
    std::sort(v.begin(), v.end());
    std::printf("  %-9s back: %zu clients, first %.3f s, median %.3f s, last %.3f s\n", t.c_str(), v.size(), v.front(),
                v[v.size() / 2], v.back());
  }
  std::sort(back.begin(), back.end());
  std::size_t peak = 0;
  for (std::size_t i = 0, j = 0; i < back.size(); ++i) {
    while (back[i] - back[j] >= 1.0) ++j;
    peak = std::max(peak, i - j + 1);
  }
  std::printf("busiest second of returns: %zu clients (all at once would be %zu)\n", peak, clients);
  std::printf("drain completed: %s; all back on B: %s\n",
              !drained ? "no" : (*drained ? drained->message().c_str() : "success"), all_back ? "yes" : "no");
  std::printf("DRAIN clients=%zu published=%zu exact=%zu missing=%zu duplicated=%zu\n", clients, events, exact, missing,
              duplicated);
  return exact == clients && all_back ? 0 : 1;
}
