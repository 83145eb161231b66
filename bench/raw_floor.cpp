// bench/raw_floor: the least a Boost.Beast broadcast server must do; the floor that herald (and
// any Beast-based library) is measured against. Same routes and wire bytes as herald_server:
//
//   GET  /ws?topic=t     WebSocket: every event as a text frame {"id":…,"topic":"t","data":…}
//   GET  /sse?topic=t    SSE: `id: …\ndata: …\n\n` (after `retry: 3000\n\n`)
//   GET  /poll[?wait=…]  polling: `{"events":[…],"cursor":…}` at once, or held until a publish
//   POST /pub?topic=t    publishes the body to every subscriber (one topic: everyone)
//   GET  /pub (upgrade)  a WebSocket publisher: each message it sends is published
//   GET  /mark           allocs=<n> rss_kb=<kb> (and a callgrind dump point)
//
// What it does per event and nothing more: encode once per wire format into one shared,
// immutable buffer; per connection a bounded queue of references (overflow closes the
// connection), one write in flight, SSE writes gathering everything queued. One thread, no
// strands, no timers, no history, no ids file, no authorization.
//
//   herald_bench_raw_floor [--port 0] [--host 127.0.0.1] [--queue 1024]
#include "bench_common.hpp"

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>
#include <boost/beast/websocket/rfc6455.hpp>
#include <boost/beast/websocket/stream.hpp>

#include <array>
#include <chrono>
#include <cstdio>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace websocket = beast::websocket;
using tcp = net::ip::tcp;
using error_code = boost::system::error_code;
using Bytes = std::shared_ptr<std::string const>;

namespace {

std::size_t queue_limit = 1024;

/// A bounded FIFO of shared buffers that reuses its storage (no allocation in steady state).
struct Queue {
  std::vector<Bytes> items;
  std::size_t head = 0;
  bool push(Bytes b) {
    if (items.size() - head >= queue_limit) return false;
    items.push_back(std::move(b));
    return true;
  }
  bool empty() const { return head == items.size(); }
  void clear_taken() {
    if (head == items.size()) {
      items.clear();
      head = 0;
    }
  }
};

class Registry;
Registry* registry = nullptr;

class Subscriber {
 public:
  virtual ~Subscriber() = default;
  virtual void send(Bytes const& ws, Bytes const& sse) = 0;
};

class Registry {
 public:
  std::vector<Subscriber*> subs;
  std::uint64_t next_id = static_cast<std::uint64_t>(
      std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::system_clock::now().time_since_epoch()).count());
  std::uint64_t last_id = 0;
  std::vector<std::function<void(std::string const&)>> polls;  // held long polls

  void add(Subscriber* s) { subs.push_back(s); }
  void remove(Subscriber* s) {
    for (auto& p : subs)
      if (p == s) {
        p = subs.back();
        subs.pop_back();
        return;
      }
  }

  void publish(std::string_view topic, std::string_view data) {
    last_id = next_id++;
    auto const id = std::to_string(last_id);
    std::string env;
    env.reserve(data.size() + topic.size() + 48);
    env += R"({"id":)";
    env += id;
    env += R"(,"topic":")";
    env += topic;
    env += R"(","data":)";
    env += data;
    env += '}';
    std::string sse;
    sse.reserve(data.size() + 32);
    sse += "id: ";
    sse += id;
    sse += "\ndata: ";
    sse += data;
    sse += "\n\n";
    auto const ws_bytes = std::make_shared<std::string const>(std::move(env));
    auto const sse_bytes = std::make_shared<std::string const>(std::move(sse));
    // A subscriber may remove itself (overflow) while we iterate: iterate over a copy of the size.
    for (std::size_t i = 0; i < subs.size(); ++i) subs[i]->send(ws_bytes, sse_bytes);
    if (!polls.empty()) {
      std::string body = R"({"events":[)" + *ws_bytes + R"(],"cursor":)" + id + "}";
      auto held = std::move(polls);
      polls.clear();
      for (auto& p : held) p(body);
    }
  }
};

class WsSession final : public Subscriber, public std::enable_shared_from_this<WsSession> {
 public:
  WsSession(tcp::socket&& s, bool publisher) : ws_(std::move(s)), publisher_(publisher) {}
  ~WsSession() override { close(); }

  void start(http::request<http::string_body> req) {
    ws_.auto_fragment(false);
    ws_.async_accept(req, [self = shared_from_this()](error_code ec) {
      if (ec) return;
      if (!self->publisher_) {
        registry->add(self.get());
        self->registered_ = true;
      }
      self->read();
    });
  }

  void send(Bytes const& ws, Bytes const&) override {
    if (!q_.push(ws)) return close();  // slow consumer: bounded queue
    if (!writing_) write();
  }

 private:
  void read() {
    ws_.async_read(in_, [self = shared_from_this()](error_code ec, std::size_t) {
      if (ec) return self->close();
      if (self->publisher_)
        registry->publish("t", std::string_view(static_cast<char const*>(self->in_.cdata().data()), self->in_.size()));
      self->in_.consume(self->in_.size());
      self->read();
    });
  }
  void write() {
    writing_ = true;
    ws_.async_write(net::buffer(*q_.items[q_.head]), [self = shared_from_this()](error_code ec, std::size_t) {
      self->writing_ = false;
      if (ec) return self->close();
      self->q_.items[self->q_.head++].reset();
      self->q_.clear_taken();
      if (!self->q_.empty()) self->write();
    });
  }
  void close() {
    if (registered_) {
      registered_ = false;
      registry->remove(this);
      error_code ignored;
      beast::get_lowest_layer(ws_).close(ignored);
    }
  }

  websocket::stream<tcp::socket> ws_;
  beast::flat_buffer in_;
  Queue q_;
  bool publisher_ = false;
  bool writing_ = false;
  bool registered_ = false;
};

class SseSession final : public Subscriber, public std::enable_shared_from_this<SseSession> {
 public:
  explicit SseSession(tcp::socket&& s) : socket_(std::move(s)) {}
  ~SseSession() override { close(); }

  void start() {
    static std::string const head =
        "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n"
        "X-Accel-Buffering: no\r\n\r\nretry: 3000\n\n";
    q_.push(std::make_shared<std::string const>(head));
    registry->add(this);
    registered_ = true;
    write();
    read();
  }

  void send(Bytes const&, Bytes const& sse) override {
    if (!q_.push(sse)) return close();
    if (!writing_) write();
  }

 private:
  void read() {
    socket_.async_read_some(net::buffer(discard_), [self = shared_from_this()](error_code ec, std::size_t) {
      if (ec) return self->close();
      self->read();
    });
  }
  void write() {
    // Gather everything queued into one write.
    bufs_.clear();
    for (std::size_t i = q_.head; i < q_.items.size(); ++i) bufs_.push_back(net::buffer(*q_.items[i]));
    taken_ = q_.items.size();
    writing_ = true;
    net::async_write(socket_, bufs_, [self = shared_from_this()](error_code ec, std::size_t) {
      self->writing_ = false;
      if (ec) return self->close();
      for (std::size_t i = self->q_.head; i < self->taken_; ++i) self->q_.items[i].reset();
      self->q_.head = self->taken_;
      self->q_.clear_taken();
      if (!self->q_.empty()) self->write();
    });
  }
  void close() {
    if (registered_) {
      registered_ = false;
      registry->remove(this);
      error_code ignored;
      socket_.close(ignored);
    }
  }

  tcp::socket socket_;
  Queue q_;
  std::vector<net::const_buffer> bufs_;
  std::size_t taken_ = 0;
  std::array<char, 32> discard_{};
  bool writing_ = false;
  bool registered_ = false;
};

/// Plain HTTP: publish, polls, mark; hands upgrades and event streams over.
class HttpSession : public std::enable_shared_from_this<HttpSession> {
 public:
  explicit HttpSession(tcp::socket&& s) : socket_(std::move(s)) {}

  void read() {
    req_ = {};
    http::async_read(socket_, buf_, req_, [self = shared_from_this()](error_code ec, std::size_t) {
      if (ec) return;
      self->route();
    });
  }

 private:
  void route() {
    auto const target = std::string_view(req_.target());
    auto const path = target.substr(0, target.find('?'));
    if (websocket::is_upgrade(req_)) {
      std::make_shared<WsSession>(std::move(socket_), path == "/pub")->start(std::move(req_));
      return;
    }
    if (path == "/sse") {
      std::make_shared<SseSession>(std::move(socket_))->start();
      return;
    }
    if (path == "/pub" && req_.method() == http::verb::post) {
      registry->publish(bench::query_arg(target, "topic", "t"), req_.body());
      return respond(std::to_string(registry->last_id));
    }
    if (path == "/poll") {
      if (!bench::query_arg(target, "wait", "").empty()) {
        // Held until the next publish.
        registry->polls.push_back([self = shared_from_this()](std::string const& body) { self->respond(body, "application/json"); });
        return;
      }
      return respond(R"({"events":[],"cursor":)" + std::to_string(registry->last_id) + "}", "application/json");
    }
    if (path == "/mark") return respond(bench::mark());
    res_ = {http::status::not_found, req_.version()};
    res_.keep_alive(req_.keep_alive());
    res_.prepare_payload();
    write();
  }

  void respond(std::string body, char const* type = "text/plain") {
    res_ = {http::status::ok, req_.version()};
    res_.set(http::field::content_type, type);
    res_.keep_alive(req_.keep_alive());
    res_.body() = std::move(body);
    res_.prepare_payload();
    write();
  }

  void write() {
    http::async_write(socket_, res_, [self = shared_from_this()](error_code ec, std::size_t) {
      if (ec || !self->res_.keep_alive()) {
        error_code ignored;
        self->socket_.shutdown(tcp::socket::shutdown_both, ignored);
        return;
      }
      self->read();
    });
  }

  tcp::socket socket_;
  beast::flat_buffer buf_;
  http::request<http::string_body> req_;
  http::response<http::string_body> res_;
};

void accept(tcp::acceptor& acceptor) {
  acceptor.async_accept([&acceptor](error_code ec, tcp::socket s) {
    if (!ec) {
      s.set_option(tcp::no_delay(true), ec);
      std::make_shared<HttpSession>(std::move(s))->read();
    }
    if (acceptor.is_open()) accept(acceptor);
  });
}

}  // namespace

int main(int argc, char** argv) {
  auto const args = bench::parse_args(argc, argv);
  if (!args.redis.empty()) {
    std::fprintf(stderr, "raw_floor: --redis is herald_server's option (the floor has no backplane)\n");
    return 2;
  }
  queue_limit = args.queue;
  net::io_context ioc{1};
  Registry reg;
  registry = &reg;
  tcp::acceptor acceptor{ioc};
  tcp::endpoint const ep{net::ip::make_address(args.host), args.port};
  acceptor.open(ep.protocol());
  acceptor.set_option(net::socket_base::reuse_address(true));
  acceptor.bind(ep);
  acceptor.listen(4096);
  auto const bound = acceptor.local_endpoint();
  std::printf("listening on http://%s:%u\n", bound.address().to_string().c_str(), unsigned(bound.port()));
  std::fflush(stdout);
  accept(acceptor);
  net::signal_set signals{ioc, SIGINT, SIGTERM};
  signals.async_wait([&](error_code, int) { ioc.stop(); });
  ioc.run();
}
