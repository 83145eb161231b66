// examples/hello: the standalone hello world. herald::Server serves an SSE channel; a timer
// publishes a JSON event every second. Try: curl -N http://127.0.0.1:8080/api/feed
#include <herald/herald.hpp>

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>

#include "cli.hpp"

int main(int argc, char** argv) {
  auto const cli = example::parse_cli(argc, argv);
  boost::asio::io_context ioc{1};  // run by this thread alone: herald then needs no strands
  herald::Hub hub{ioc.get_executor()};
  herald::Channel<herald::Sse> feed{hub, "/api/feed"};
  herald::Server server{ioc.get_executor()};
  server.add(feed);
  example::announce(cli.host, server.listen(cli.host, cli.port).port());

  boost::asio::steady_timer timer{ioc};
  int n = 0;
  std::function<void()> tick = [&] {
    timer.expires_after(std::chrono::seconds(1));
    timer.async_wait([&](boost::system::error_code) {
      hub.publish("orders", R"({"id":)" + std::to_string(++n) + "}");
      tick();
    });
  };
  tick();
  ioc.run();
}
