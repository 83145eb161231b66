// Events per second one SSE client receives, herald next to a raw Asio floor in the same run.
//
//   herald_bench_sse_throughput [--events N] [--payload BYTES]
//
// Both servers run on their own thread and io_context, the client on another; the publisher
// (main thread) publishes N events as fast as it can and the clock stops when the client has
// parsed the N-th event. The floor is the least a server must do: the same pre-encoded SSE
// frames, queued and written with one write in flight, gathering what queued meanwhile.
#include <herald/herald.hpp>

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/write.hpp>

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

/// Reads an SSE response and counts events (blank-line terminated blocks after the header).
struct Client {
  explicit Client(std::size_t expect) : expect(expect) {}
  std::size_t expect;
  std::atomic<std::size_t> received{0};
  std::atomic<bool> headers{false};
  std::atomic<bool> failed{false};

  void run(tcp::endpoint ep, std::string target) {
    net::io_context ioc;
    tcp::socket s{ioc};
    s.connect(ep);
    std::string req = "GET " + target + " HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n";
    net::write(s, net::buffer(req));
    std::vector<char> buf(1 << 16);
    std::string pending;
    bool in_body = false;
    std::size_t count = 0;
    char prev = 0;
    while (count < expect) {
      boost::system::error_code ec;
      std::size_t n = s.read_some(net::buffer(buf), ec);
      if (ec) {
        failed = true;
        return;
      }
      std::size_t i = 0;
      if (!in_body) {
        pending.append(buf.data(), n);
        auto p = pending.find("\r\n\r\n");
        if (p == std::string::npos) continue;
        in_body = true;
        headers = true;
        // Skip "retry: N\n\n" and count the rest of what arrived with the header.
        std::string rest = pending.substr(p + 4);
        for (char c : rest) {
          if (c == '\n' && prev == '\n') ++count;
          prev = c;
        }
        count -= 1;  // the retry block
        received = count;
        continue;
      }
      for (; i < n; ++i) {
        if (buf[i] == '\n' && prev == '\n') ++count;
        prev = buf[i];
      }
      received.store(count, std::memory_order_relaxed);
    }
    received = count;
  }
};

void wait_for(std::atomic<bool> const& flag) {
  while (!flag.load()) std::this_thread::yield();
}

double run_herald(std::size_t events, std::string const& payload) {
  net::io_context ioc{1};
  herald::Hub hub{ioc.get_executor(), {.history_events = 0}};
  herald::Channel<herald::Sse> feed{
      hub, "/feed", {.limits = {.queue_events = events + 16, .queue_bytes = std::size_t(1) << 34}}};
  herald::Server server{ioc.get_executor()};
  server.add(feed);
  auto ep = server.listen("127.0.0.1", 0);
  auto guard = net::make_work_guard(ioc);
  std::thread srv{[&] { ioc.run(); }};

  Client client{events};
  std::thread cli{[&] { client.run(ep, "/feed?topic=t"); }};
  wait_for(client.headers);
  while (feed.connections() == 0) std::this_thread::yield();

  auto const start = clock_type::now();
  for (std::size_t i = 0; i < events; ++i) hub.publish("t", payload, {.kind = herald::PayloadKind::text});
  cli.join();
  auto const secs = std::chrono::duration<double>(clock_type::now() - start).count();
  guard.reset();
  ioc.stop();
  srv.join();
  if (client.failed || client.received < events) return -1;
  return double(events) / secs;
}

/// The floor: accept one connection, answer the header, then write queued frames.
struct RawServer {
  net::io_context ioc{1};
  tcp::acceptor acceptor{ioc, {net::ip::make_address("127.0.0.1"), 0}};
  std::unique_ptr<tcp::socket> sock;
  net::strand<net::io_context::executor_type> strand{ioc.get_executor()};
  std::vector<std::shared_ptr<std::string const>> queue, writing;
  std::vector<net::const_buffer> bufs;
  bool busy = false;

  void start(std::atomic<bool>& ready) {
    sock = std::make_unique<tcp::socket>(ioc);
    acceptor.accept(*sock);
    std::vector<char> buf(4096);
    std::string req;
    while (req.find("\r\n\r\n") == std::string::npos) {
      auto n = sock->read_some(net::buffer(buf));
      req.append(buf.data(), n);
    }
    std::string head =
        "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n\r\nretry: 3000\n\n";
    net::write(*sock, net::buffer(head));
    ready = true;
  }
  void publish(std::shared_ptr<std::string const> frame) {
    net::post(strand, [this, frame = std::move(frame)]() mutable {
      queue.push_back(std::move(frame));
      pump();
    });
  }
  void pump() {
    if (busy || queue.empty()) return;
    writing.clear();
    writing.swap(queue);
    bufs.clear();
    for (auto& f : writing) bufs.push_back(net::buffer(*f));
    busy = true;
    net::async_write(*sock, bufs, net::bind_executor(strand, [this](boost::system::error_code ec, std::size_t) {
      busy = false;
      if (!ec) pump();
    }));
  }
};

double run_raw(std::size_t events, std::string const& payload) {
  RawServer server;
  auto ep = server.acceptor.local_endpoint();
  std::atomic<bool> ready{false};
  Client client{events};
  std::thread cli{[&] { client.run(ep, "/feed"); }};
  server.start(ready);
  auto guard = net::make_work_guard(server.ioc);
  std::thread srv{[&] { server.ioc.run(); }};
  wait_for(client.headers);

  auto const start = clock_type::now();
  for (std::size_t i = 0; i < events; ++i) {
    // The same work per event as herald's encode-once: build the frame, share it.
    herald::Event ev{.id = i + 1, .topic = "t", .type = {}, .data = payload};
    server.publish(std::make_shared<std::string const>(herald::detail::encode_sse(ev)));
  }
  cli.join();
  auto const secs = std::chrono::duration<double>(clock_type::now() - start).count();
  guard.reset();
  server.ioc.stop();
  srv.join();
  if (client.failed || client.received < events) return -1;
  return double(events) / secs;
}

}  // namespace

int main(int argc, char** argv) {
  std::size_t events = 200'000;
  std::size_t payload_size = 64;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!std::strcmp(argv[i], "--events")) events = std::stoul(argv[i + 1]);
    else if (!std::strcmp(argv[i], "--payload")) payload_size = std::stoul(argv[i + 1]);
  }
  std::string const payload(payload_size, 'x');
  double const raw = run_raw(events, payload);
  double const herald_rate = run_herald(events, payload);
  std::printf("| server | events | payload | events/s | vs floor |\n|---|---|---|---|---|\n");
  std::printf("| raw asio floor | %zu | %zu B | %.0f | 1.00 |\n", events, payload_size, raw);
  std::printf("| herald Channel<Sse> | %zu | %zu B | %.0f | %.2f |\n", events, payload_size, herald_rate,
              herald_rate / raw);
  return raw > 0 && herald_rate > 0 ? 0 : 1;
}
