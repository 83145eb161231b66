// bench/poll_wake: how long one publish takes to wake N held long polls.
//
//   herald_bench_poll_wake [clients=1000] [rounds=20]
//
// The server (Hub + Channel<Polling> + herald::Server) runs on one thread, as an application's
// io_context would; N clients on keep-alive loopback connections run on a second thread. Each
// round every client sends `GET /poll?topic=news&since=<last>&wait=30`; once the channel holds
// all N, the server thread publishes one event, and the round's time is from just before
// publish() to the moment the last client has read its complete answer. Prints min/median/max.
// Build it in Release (`cmake --preset release`); 127.0.0.1 only.

#include <herald/herald.hpp>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/write.hpp>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <future>
#include <memory>
#include <string>
#include <thread>
#include <vector>

namespace net = boost::asio;
using tcp = net::ip::tcp;
using clock_type = std::chrono::steady_clock;

namespace {

/// One keep-alive client: writes a request, reads one Content-Length-framed answer.
struct Client : std::enable_shared_from_this<Client> {
  explicit Client(net::io_context& ioc) : socket(ioc) {}
  tcp::socket socket;
  std::string out;
  std::string in;
  std::array<char, 4096> buf{};

  void poll(std::string request, std::function<void(std::string_view)> done) {
    out = std::move(request);
    in.clear();
    net::async_write(socket, net::buffer(out), [self = shared_from_this(), done](boost::system::error_code ec, std::size_t) {
      if (ec) return done({});
      self->read(done);
    });
  }

  void read(std::function<void(std::string_view)> done) {
    socket.async_read_some(net::buffer(buf), [self = shared_from_this(), done](boost::system::error_code ec, std::size_t n) {
      if (ec) return done({});
      self->in.append(self->buf.data(), n);
      auto const end = self->in.find("\r\n\r\n");
      if (end != std::string::npos) {
        auto const cl = self->in.find("Content-Length: ");
        if (cl != std::string::npos && cl < end) {
          auto const length = std::stoul(self->in.substr(cl + 16));
          if (self->in.size() >= end + 4 + length) return done(std::string_view(self->in).substr(end + 4, length));
        }
      }
      self->read(done);
    });
  }
};

}  // namespace

int main(int argc, char** argv) {
  int const n = argc > 1 ? std::atoi(argv[1]) : 1000;
  int const rounds = argc > 2 ? std::atoi(argv[2]) : 20;

  net::io_context server_ioc;
  herald::Hub hub{server_ioc.get_executor()};
  herald::Channel<herald::Polling> poll{hub, "/poll"};
  herald::Server server{server_ioc.get_executor()};
  server.add(poll);
  auto const ep = server.listen("127.0.0.1", 0);
  auto server_work = net::make_work_guard(server_ioc);
  std::thread server_thread([&] { server_ioc.run(); });

  net::io_context client_ioc;
  auto client_work = net::make_work_guard(client_ioc);
  std::thread client_thread([&] { client_ioc.run(); });

  std::vector<std::shared_ptr<Client>> clients;
  for (int i = 0; i < n; ++i) {
    clients.push_back(std::make_shared<Client>(client_ioc));
    clients.back()->socket.connect(ep);
    clients.back()->socket.set_option(tcp::no_delay(true));
  }

  std::vector<double> times_ms;
  herald::EventId last = hub.stats().last_id;
  for (int round = 0; round < rounds; ++round) {
    std::atomic<int> answered{0};
    std::atomic<int> failed{0};
    std::promise<clock_type::time_point> all_done;
    std::string const request = "GET /poll?topic=news&wait=30&since=" + std::to_string(last) +
                                " HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
    net::post(client_ioc, [&] {
      for (auto& c : clients)
        c->poll(request, [&](std::string_view body) {
          if (body.empty() || body.find("\"events\":[{") == std::string_view::npos) failed++;
          if (++answered == n) all_done.set_value(clock_type::now());
        });
    });
    // Wait (bounded) until the channel holds every poll.
    auto const deadline = clock_type::now() + std::chrono::seconds(30);
    while (poll.connections() < static_cast<std::size_t>(n) && clock_type::now() < deadline)
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    if (poll.connections() < static_cast<std::size_t>(n)) {
      std::fprintf(stderr, "only %zu of %d polls held\n", poll.connections(), n);
      return 1;
    }
    std::promise<clock_type::time_point> published;
    net::post(server_ioc, [&] {
      auto const t0 = clock_type::now();
      last = hub.publish("news", R"({"headline":"wake up"})");
      published.set_value(t0);
    });
    auto const t0 = published.get_future().get();
    auto const t1 = all_done.get_future().get();
    if (failed != 0) {
      std::fprintf(stderr, "%d answers without the event\n", failed.load());
      return 1;
    }
    times_ms.push_back(std::chrono::duration<double, std::milli>(t1 - t0).count());
  }

  std::sort(times_ms.begin(), times_ms.end());
  std::printf("poll_wake: %d held long polls woken by one publish, %d rounds: min %.2f ms, median %.2f ms, max %.2f ms\n",
              n, rounds, times_ms.front(), times_ms[times_ms.size() / 2], times_ms.back());

  client_work.reset();
  for (auto& c : clients) net::post(client_ioc, [c] { c->socket.close(); });
  client_thread.join();
  server_work.reset();
  server.async_stop(std::chrono::seconds(2), [](boost::system::error_code) {});
  server_thread.join();
}
