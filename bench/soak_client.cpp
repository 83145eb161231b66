// bench/soak_client: the client side of bench/soak. Thousands of subscribers mixed over SSE,
// WebSocket and long polling (herald's own C++ clients), plus raw SSE readers that stall, against
// one herald server (bench/herald_server), with a publisher; every subscriber's sequence is
// checked to be complete at the end.
//
//   herald_bench_soak_client --port P [--host 127.0.0.1] [--clients 10000] [--duration 600]
//                            [--topics 20] [--rate 20] [--lifetime 120] [--stall-share 5]
//
// Each subscriber (a "slot") follows one topic. The publisher POSTs /pub?topic=… at --rate
// events per second over all topics, round robin, over one keep-alive connection, and records
// every id the server gives. Before anything else it publishes one event per topic: each
// slot starts right after it (Options::since), so what a slot must receive is exactly every
// later id of its topic.
//
// Churn: a slot's client lives a random time (uniform, up to 2 x --lifetime seconds), then is
// dropped (destroyed, no goodbye) and comes back 0.2-5 s later as a new client that resumes
// after the last id it received. Stall: --stall-share percent of the slots are raw SSE readers
// with a tiny receive buffer that stop reading for 5-40 s at a time; when the server drops one
// (slow consumer, write timeout) it reconnects with Last-Event-ID.
//
// At --duration the churn stops, every slot is brought back, one sentinel per topic is
// published and each slot must see it (within 120 s). Output: progress lines every 10 s on
// stderr, then one line on stdout:
//   SOAK slots=… complete=… incomplete=… resets=… duplicates=… published=… reconnects=… stalls=…
// Exit status 0 only when every slot's sequence is complete, with no reset and no duplicate.
#include <herald/client.hpp>
#include <herald/client/detail/sse_parser.hpp>
#include <herald/detail/http.hpp>

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read_until.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/streambuf.hpp>
#include <boost/asio/write.hpp>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <unordered_map>
#include <variant>
#include <vector>

namespace {

namespace net = boost::asio;
namespace hc = herald::client;
using tcp = net::ip::tcp;
using herald::EventId;
using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

struct Config {
  std::string host = "127.0.0.1";
  unsigned short port = 0;
  int clients = 10'000;
  int duration_s = 600;
  int topics = 20;
  int rate = 20;
  int lifetime_s = 120;
  int stall_share = 5;
};

Config parse(int argc, char** argv) {
  Config c;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string_view const k = argv[i];
    char const* v = argv[i + 1];
    if (k == "--host") c.host = v;
    else if (k == "--port") c.port = static_cast<unsigned short>(std::atoi(v));
    else if (k == "--clients") c.clients = std::atoi(v);
    else if (k == "--duration") c.duration_s = std::atoi(v);
    else if (k == "--topics") c.topics = std::atoi(v);
    else if (k == "--rate") c.rate = std::atoi(v);
    else if (k == "--lifetime") c.lifetime_s = std::atoi(v);
    else if (k == "--stall-share") c.stall_share = std::atoi(v);
    else {
      std::fprintf(stderr, "soak_client: unknown option %s\n", argv[i]);
      std::exit(2);
    }
  }
  if (c.port == 0 || c.clients <= 0 || c.topics <= 0 || c.rate <= 0 || c.lifetime_s <= 0) {
    std::fprintf(stderr, "soak_client: --port is required; counts and rates must be positive\n");
    std::exit(2);
  }
  return c;
}

/// The publisher: one keep-alive connection, one POST at a time, ids recorded per topic.
class Publisher {
 public:
  Publisher(net::io_context& ioc, tcp::endpoint ep) : socket_(ioc), ep_(ep) {}

  /// Publish `body` on `topic` synchronously (before the run, and for sentinels): the id.
  EventId publish_now(std::string const& topic, std::string const& body) {
    if (!socket_.is_open()) socket_.connect(ep_);
    std::string req = "POST /pub?topic=" + topic + " HTTP/1.1\r\nHost: soak\r\nContent-Type: application/json\r\n" +
                      "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
    net::write(socket_, net::buffer(req));
    return read_reply(topic);
  }

  std::map<std::string, std::vector<EventId>> ids;

 private:
  EventId read_reply(std::string const& topic) {
    net::read_until(socket_, in_, "\r\n\r\n");
    std::string head(net::buffers_begin(in_.data()), net::buffers_end(in_.data()));
    auto const end = head.find("\r\n\r\n");
    head.resize(end + 4);
    in_.consume(end + 4);
    if (head.compare(0, 12, "HTTP/1.1 200") != 0) {
      std::fprintf(stderr, "soak_client: publish refused: %s\n", head.c_str());
      std::exit(1);
    }
    auto const cl = head.find("Content-Length: ");
    std::size_t const length = cl == std::string::npos ? 0 : std::strtoul(head.c_str() + cl + 16, nullptr, 10);
    while (in_.size() < length) {
      boost::system::error_code ec;
      auto const n = socket_.read_some(in_.prepare(4096), ec);
      if (ec) {
        std::fprintf(stderr, "soak_client: publisher connection: %s\n", ec.message().c_str());
        std::exit(1);
      }
      in_.commit(n);
    }
    std::string body(net::buffers_begin(in_.data()), net::buffers_begin(in_.data()) + static_cast<long>(length));
    in_.consume(length);
    EventId const id = std::strtoull(body.c_str(), nullptr, 10);
    ids[topic].push_back(id);
    return id;
  }

  tcp::socket socket_;
  tcp::endpoint ep_;
  net::streambuf in_;
};

/// What one subscriber slot has received, over all its connections.
struct Record {
  std::string topic;
  EventId start = 0;   // the genesis event of its topic: everything above it is due
  EventId last = 0;    // the last id received
  std::size_t count = 0;
  std::size_t duplicates = 0;
  std::size_t out_of_order = 0;
  std::size_t resets = 0;
  std::vector<EventId> got;

  void take(EventId id) {
    if (id <= last) {
      (id == last || std::binary_search(got.begin(), got.end(), id) ? duplicates : out_of_order)++;
      return;
    }
    last = id;
    got.push_back(id);
    ++count;
  }
};

/// A raw SSE reader that stalls: stops reading for a while, with a tiny receive buffer.
class StallingReader : public std::enable_shared_from_this<StallingReader> {
 public:
  StallingReader(net::io_context& ioc, tcp::endpoint ep, Record& rec, std::mt19937_64& rng, std::size_t& stalls,
                 std::size_t& reconnects)
      : ioc_(ioc), ep_(ep), rec_(rec), rng_(rng), stalls_(stalls), reconnects_(reconnects), timer_(ioc) {}

  void start() { connect(); }
  void stop() {
    stopped_ = true;
    timer_.cancel();
    boost::system::error_code ignored;
    if (socket_) socket_->close(ignored);
  }
  /// Stop stalling (the end of the run): read on.
  void calm() { calm_ = true; }

 private:
  void connect() {
    if (stopped_) return;
    socket_ = std::make_unique<tcp::socket>(ioc_);
    socket_->open(tcp::v4());
    socket_->set_option(net::socket_base::receive_buffer_size(2048));
    parser_.restart();
    headers_done_ = false;
    head_.clear();
    req_ = "GET /sse?topic=" + rec_.topic + " HTTP/1.1\r\nHost: soak\r\nAccept: text/event-stream\r\nLast-Event-ID: " +
           std::to_string(std::max(rec_.last, rec_.start)) + "\r\n\r\n";
    socket_->async_connect(ep_, [self = shared_from_this()](boost::system::error_code ec) {
      if (ec) return self->retry();
      net::async_write(*self->socket_, net::buffer(self->req_), [self](boost::system::error_code ec, std::size_t) {
        if (ec) return self->retry();
        self->next_stall = Clock::now() + std::chrono::seconds(5 + self->rng_() % 20);
        self->read();
      });
    });
  }

  void retry() {
    if (stopped_) return;
    ++reconnects_;
    timer_.expires_after(std::chrono::milliseconds(200 + rng_() % 1000));
    timer_.async_wait([self = shared_from_this()](boost::system::error_code ec) {
      if (!ec) self->connect();
    });
  }

  void read() {
    if (stopped_) return;
    if (!calm_ && Clock::now() >= next_stall) {
      ++stalls_;
      next_stall = Clock::now() + std::chrono::seconds(20 + rng_() % 40);
      timer_.expires_after(std::chrono::seconds(5 + rng_() % 36));
      timer_.async_wait([self = shared_from_this()](boost::system::error_code ec) {
        if (!ec || self->calm_) self->read();
      });
      return;
    }
    socket_->async_read_some(net::buffer(buf_), [self = shared_from_this()](boost::system::error_code ec, std::size_t n) {
      if (ec) return self->retry();
      self->feed(std::string_view(self->buf_.data(), n));
      self->read();
    });
  }

  void feed(std::string_view bytes) {
    if (!headers_done_) {
      head_.append(bytes);
      auto const end = head_.find("\r\n\r\n");
      if (end == std::string::npos) return;
      if (head_.compare(0, 12, "HTTP/1.1 200") != 0) {
        std::fprintf(stderr, "soak_client: stalling reader refused: %.*s\n", static_cast<int>(end), head_.data());
        return;
      }
      headers_done_ = true;
      bytes = std::string_view(head_).substr(end + 4);
      std::string rest(bytes);
      return parse(rest);
    }
    parse(bytes);
  }

  void parse(std::string_view bytes) {
    parser_.feed(
        bytes,
        [&](hc::detail::SseDispatch const& d) {
          if (d.type == "reset") ++rec_.resets;
          else if (auto id = herald::detail::parse_event_id(d.last_event_id)) rec_.take(*id);
          return true;
        },
        [](std::chrono::milliseconds) {});
  }

 public:
  Clock::time_point next_stall{};

 private:
  net::io_context& ioc_;
  tcp::endpoint ep_;
  Record& rec_;
  std::mt19937_64& rng_;
  std::size_t& stalls_;
  std::size_t& reconnects_;
  net::steady_timer timer_;
  std::unique_ptr<tcp::socket> socket_;
  std::array<char, 4096> buf_{};
  std::string req_;
  std::string head_;
  bool headers_done_ = false;
  bool stopped_ = false;
  bool calm_ = false;
  hc::detail::SseParser parser_;
};

enum class Kind { sse, ws, poll, stall };
char const* name(Kind k) {
  switch (k) {
    case Kind::sse: return "sse";
    case Kind::ws: return "ws";
    case Kind::poll: return "poll";
    case Kind::stall: return "stall";
  }
  return "?";
}

struct Slot {
  Kind kind = Kind::sse;
  Record rec;
  std::variant<std::monostate, hc::SseClient, hc::WebSocketClient, hc::PollingClient> client;
  std::shared_ptr<StallingReader> reader;
  std::unique_ptr<net::steady_timer> timer;
  bool away = false;
};

}  // namespace

int main(int argc, char** argv) {
  Config const cfg = parse(argc, argv);
  net::io_context ioc{1};
  tcp::endpoint const ep{net::ip::make_address(cfg.host), cfg.port};
  std::string const base = "http://" + cfg.host + ":" + std::to_string(cfg.port);
  std::string const ws_base = "ws://" + cfg.host + ":" + std::to_string(cfg.port);
  std::mt19937_64 rng{20261205};
  std::size_t reconnects = 0;
  std::size_t stalls = 0;
  std::size_t churned = 0;

  Publisher pub{ioc, ep};
  std::vector<std::string> topics;
  std::map<std::string, EventId> genesis;
  for (int t = 0; t < cfg.topics; ++t) {
    topics.push_back("soak" + std::to_string(t));
    genesis[topics.back()] = pub.publish_now(topics.back(), R"({"genesis":true})");
  }
  pub.ids.clear();  // the genesis events are before every slot's start

  std::vector<std::unique_ptr<Slot>> slots;
  slots.reserve(static_cast<std::size_t>(cfg.clients));
  for (int i = 0; i < cfg.clients; ++i) {
    auto s = std::make_unique<Slot>();
    bool const stall = static_cast<int>(rng() % 100) < cfg.stall_share;
    s->kind = stall ? Kind::stall : static_cast<Kind>(i % 3);
    s->rec.topic = topics[static_cast<std::size_t>(i) % topics.size()];
    s->rec.start = s->rec.last = genesis[s->rec.topic];
    s->timer = std::make_unique<net::steady_timer>(ioc);
    slots.push_back(std::move(s));
  }

  auto connect = [&](Slot& s) {
    s.away = false;
    if (s.kind == Kind::stall) {
      s.reader = std::make_shared<StallingReader>(ioc, ep, s.rec, rng, stalls, reconnects);
      s.reader->start();
      return;
    }
    hc::Options o;
    o.topics = {s.rec.topic};
    o.since = s.rec.last;
    o.backoff.base = 200ms;
    o.backoff.cap = 5s;
    auto wire = [&](auto& c) {
      c.on_event([&s](herald::Event const& e) { s.rec.take(e.id); });
      c.on_reset([&s](hc::Reset const&) { ++s.rec.resets; });
      c.on_state([&](hc::State st, boost::system::error_code) {
        if (st == hc::State::reconnecting) ++reconnects;
      });
      c.start();
    };
    switch (s.kind) {
      case Kind::sse: wire(s.client.emplace<hc::SseClient>(ioc.get_executor(), base + "/sse", o)); break;
      case Kind::ws: wire(s.client.emplace<hc::WebSocketClient>(ioc.get_executor(), ws_base + "/ws", o)); break;
      case Kind::poll:
        o.poll.wait = 20s;
        wire(s.client.emplace<hc::PollingClient>(ioc.get_executor(), base + "/poll", o));
        break;
      case Kind::stall: break;
    }
  };
  auto drop = [&](Slot& s) {
    s.away = true;
    s.client.emplace<std::monostate>();  // destroyed: the connection closes without a goodbye
    if (s.reader) s.reader->stop();
    s.reader.reset();
  };

  bool churning = true;
  std::function<void(Slot&)> live;  // schedule the slot's departure
  live = [&](Slot& s) {
    s.timer->expires_after(std::chrono::milliseconds(1000 + rng() % (2000ull * static_cast<unsigned>(cfg.lifetime_s))));
    s.timer->async_wait([&](boost::system::error_code ec) {
      if (ec || !churning) return;
      drop(s);
      ++churned;
      s.timer->expires_after(std::chrono::milliseconds(200 + rng() % 4800));
      s.timer->async_wait([&](boost::system::error_code ec) {
        if (ec || !churning) return;
        connect(s);
        live(s);
      });
    });
  };

  // Ramp up over 20 s: the server's accept queue and the clients' handshakes are not flooded.
  auto const started = Clock::now();
  net::steady_timer ramp{ioc};
  std::size_t connected = 0;
  std::function<void()> ramp_step = [&] {
    std::size_t const batch = std::max<std::size_t>(1, slots.size() / 200);
    for (std::size_t k = 0; k < batch && connected < slots.size(); ++k, ++connected) {
      connect(*slots[connected]);
      live(*slots[connected]);
    }
    if (connected < slots.size()) {
      ramp.expires_after(100ms);
      ramp.async_wait([&](boost::system::error_code ec) {
        if (!ec) ramp_step();
      });
    }
  };
  ramp_step();

  // The publisher, paced by a timer; each publish is one synchronous round trip (loopback).
  net::steady_timer pace{ioc};
  std::size_t published = 0;
  auto const period = std::chrono::microseconds(1'000'000 / cfg.rate);
  auto next_pub = Clock::now();
  std::function<void()> publish_step = [&] {
    if (!churning) return;
    auto const& topic = topics[published % topics.size()];
    pub.publish_now(topic, R"({"s":)" + std::to_string(published) + "}");
    ++published;
    next_pub += period;
    pace.expires_at(next_pub);
    pace.async_wait([&](boost::system::error_code ec) {
      if (!ec) publish_step();
    });
  };
  publish_step();

  // Progress every 10 s.
  net::steady_timer progress{ioc};
  std::function<void()> report = [&] {
    std::size_t away = 0;
    for (auto const& s : slots) away += s->away;
    std::fprintf(stderr, "soak_client: t=%llds published=%zu churned=%zu reconnects=%zu stalls=%zu away=%zu\n",
                 static_cast<long long>(std::chrono::duration_cast<std::chrono::seconds>(Clock::now() - started).count()),
                 published, churned, reconnects, stalls, away);
    progress.expires_after(10s);
    progress.async_wait([&](boost::system::error_code ec) {
      if (!ec) report();
    });
  };
  report();

  ioc.run_until(started + std::chrono::seconds(cfg.duration_s));

  // The end: no more churn, everyone back, then one sentinel per topic.
  churning = false;
  pace.cancel();
  for (auto& s : slots) {
    s->timer->cancel();
    if (s->away) connect(*s);
    if (s->reader) s->reader->calm();
  }
  std::map<std::string, EventId> sentinel;
  for (auto const& t : topics) sentinel[t] = pub.publish_now(t, R"({"sentinel":true})");
  auto const deadline = Clock::now() + 120s;
  auto all_done = [&] {
    return std::all_of(slots.begin(), slots.end(), [&](auto const& s) { return s->rec.last >= sentinel[s->rec.topic]; });
  };
  while (!all_done() && Clock::now() < deadline) ioc.run_for(100ms);
  progress.cancel();

  std::size_t complete = 0;
  std::size_t resets = 0;
  std::size_t duplicates = 0;
  std::map<std::string, std::size_t> incomplete_by_kind;
  for (auto const& s : slots) {
    auto const& due = pub.ids[s->rec.topic];
    bool const ok = s->rec.got == due && s->rec.resets == 0 && s->rec.duplicates == 0 && s->rec.out_of_order == 0;
    resets += s->rec.resets;
    duplicates += s->rec.duplicates + s->rec.out_of_order;
    if (ok) {
      ++complete;
    } else {
      ++incomplete_by_kind[name(s->kind)];
      if (incomplete_by_kind[name(s->kind)] <= 3)
        std::fprintf(stderr, "soak_client: %s slot on %s: got %zu of %zu (last %llu, due last %llu) resets=%zu dup=%zu\n",
                     name(s->kind), s->rec.topic.c_str(), s->rec.got.size(), due.size(),
                     static_cast<unsigned long long>(s->rec.last),
                     static_cast<unsigned long long>(due.empty() ? 0 : due.back()), s->rec.resets, s->rec.duplicates);
    }
  }
  for (auto& s : slots) drop(*s);
  ioc.run_for(2s);  // let the closes go out

  std::size_t by_kind[4] = {};
  for (auto const& s : slots) ++by_kind[static_cast<int>(s->kind)];
  std::printf("SOAK slots=%zu sse=%zu ws=%zu poll=%zu stall=%zu complete=%zu incomplete=%zu resets=%zu duplicates=%zu "
              "published=%zu churned=%zu reconnects=%zu stalls=%zu\n",
              slots.size(), by_kind[0], by_kind[1], by_kind[2], by_kind[3], complete, slots.size() - complete, resets,
              duplicates, published + 2 * topics.size(), churned, reconnects, stalls);
  return complete == slots.size() ? 0 : 1;
}
