// Events per second fanned out to many WebSocket clients by one herald Channel<WebSocket>.
//
//   herald_bench_ws_fanout [--clients 100] [--events 20000] [--payload 64] [--runs 3]
//
// The server (hub, channel, herald::Server) runs on its own thread and io_context; the clients
// are raw sockets on another thread that complete the handshake by hand and count frames with a
// minimal RFC 6455 frame parser (so the client costs little next to the server). The main thread
// publishes N events as fast as it can; the clock stops when every client has counted N frames.
// Queues are made large enough that nobody is disconnected as slow: this measures throughput.
// Reported: events/s (each reaching every client) and deliveries/s (events x clients).
#include <herald/herald.hpp>

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/write.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <thread>
#include <vector>

namespace net = boost::asio;
using tcp = net::ip::tcp;
using clock_type = std::chrono::steady_clock;

namespace {

/// One raw client: handshake, then count server frames (unmasked; 2, 4 or 10 byte headers).
struct Conn : std::enable_shared_from_this<Conn> {
  Conn(net::io_context& ioc, std::atomic<std::size_t>& done, std::size_t expect)
      : sock(ioc), done(done), expect(expect) {}
  tcp::socket sock;
  std::atomic<std::size_t>& done;
  std::size_t expect;
  std::vector<unsigned char> buf = std::vector<unsigned char>(1 << 16);
  std::vector<unsigned char> pending;
  std::size_t frames = 0;
  bool failed = false;

  void start(tcp::endpoint ep, std::atomic<std::size_t>& open) {
    sock.connect(ep);
    sock.set_option(tcp::no_delay(true));
    std::string req =
        "GET /ws?topic=t HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";
    net::write(sock, net::buffer(req));
    std::string head;
    while (head.find("\r\n\r\n") == std::string::npos) {
      char c;
      net::read(sock, net::buffer(&c, 1));
      head += c;
    }
    if (head.compare(0, 12, "HTTP/1.1 101") != 0) {
      failed = true;
      return;
    }
    ++open;
    read();
  }

  void read() {
    sock.async_read_some(net::buffer(buf), [self = shared_from_this()](boost::system::error_code ec, std::size_t n) {
      if (ec) {
        self->failed = self->frames < self->expect;
        return;
      }
      self->parse(n);
      if (self->frames >= self->expect) {
        self->done.fetch_add(1);
        return;
      }
      self->read();
    });
  }

  void parse(std::size_t n) {
    pending.insert(pending.end(), buf.begin(), buf.begin() + static_cast<std::ptrdiff_t>(n));
    std::size_t at = 0;
    for (;;) {
      if (pending.size() - at < 2) break;
      std::size_t len = pending[at + 1] & 0x7f;
      std::size_t header = 2;
      if (len == 126) {
        if (pending.size() - at < 4) break;
        len = std::size_t(pending[at + 2]) << 8 | pending[at + 3];
        header = 4;
      } else if (len == 127) {
        if (pending.size() - at < 10) break;
        len = 0;
        for (int i = 0; i < 8; ++i) len = len << 8 | pending[at + 2 + std::size_t(i)];
        header = 10;
      }
      if (pending.size() - at < header + len) break;
      if ((pending[at] & 0x0f) == 0x1 || (pending[at] & 0x0f) == 0x2) ++frames;
      at += header + len;
    }
    pending.erase(pending.begin(), pending.begin() + static_cast<std::ptrdiff_t>(at));
  }
};

struct Result {
  double seconds = -1;
  std::size_t clients = 0;
  std::size_t events = 0;
};

Result run(std::size_t clients, std::size_t events, std::string const& payload) {
  net::io_context server_ioc{1};
  herald::Hub hub{server_ioc.get_executor(), {.history_events = 0}};
  herald::Channel<herald::WebSocket> live{
      hub, "/ws",
      {.limits = {.max_connections = clients + 16, .queue_events = events + 16, .queue_bytes = std::size_t(1) << 34}}};
  herald::Server server{server_ioc.get_executor()};
  server.add(live);
  auto const ep = server.listen("127.0.0.1", 0);
  auto server_guard = net::make_work_guard(server_ioc);
  std::thread srv{[&] { server_ioc.run(); }};

  net::io_context client_ioc{1};
  std::atomic<std::size_t> open{0};
  std::atomic<std::size_t> done{0};
  std::vector<std::shared_ptr<Conn>> conns;
  for (std::size_t i = 0; i < clients; ++i) {
    conns.push_back(std::make_shared<Conn>(client_ioc, done, events));
    conns.back()->start(ep, open);
  }
  while (live.connections() < clients) std::this_thread::yield();
  std::thread cli{[&] { client_ioc.run(); }};

  auto const start = clock_type::now();
  for (std::size_t i = 0; i < events; ++i) hub.publish("t", payload, {.kind = herald::PayloadKind::text});
  cli.join();  // returns once every client has its N frames (no more reads pending)
  auto const secs = std::chrono::duration<double>(clock_type::now() - start).count();

  Result r;
  r.clients = clients;
  r.events = events;
  if (done.load() == clients) r.seconds = secs;
  for (auto& c : conns) {
    boost::system::error_code ignored;
    c->sock.close(ignored);
  }
  server_guard.reset();
  server_ioc.stop();
  srv.join();
  return r;
}

}  // namespace

int main(int argc, char** argv) {
  std::size_t clients = 100;
  std::size_t events = 20'000;
  std::size_t payload_size = 64;
  int runs = 3;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!std::strcmp(argv[i], "--clients")) clients = std::stoul(argv[i + 1]);
    else if (!std::strcmp(argv[i], "--events")) events = std::stoul(argv[i + 1]);
    else if (!std::strcmp(argv[i], "--payload")) payload_size = std::stoul(argv[i + 1]);
    else if (!std::strcmp(argv[i], "--runs")) runs = std::stoi(argv[i + 1]);
  }
  std::string const payload(payload_size, 'x');
  std::printf("| run | clients | events | payload | seconds | events/s | deliveries/s |\n|---|---|---|---|---|---|---|\n");
  std::vector<double> rates;
  for (int k = 1; k <= runs; ++k) {
    auto const r = run(clients, events, payload);
    if (r.seconds <= 0) {
      std::printf("| %d | %zu | %zu | %zu B | failed | | |\n", k, clients, events, payload_size);
      return 1;
    }
    double const rate = double(events) / r.seconds;
    rates.push_back(rate);
    std::printf("| %d | %zu | %zu | %zu B | %.3f | %.0f | %.0f |\n", k, clients, events, payload_size, r.seconds,
                rate, rate * double(clients));
  }
  std::sort(rates.begin(), rates.end());
  double const median = rates[rates.size() / 2];
  std::printf("median: %.0f events/s to each of %zu clients (%.0f deliveries/s)\n", median, clients,
              median * double(clients));
  return 0;
}
