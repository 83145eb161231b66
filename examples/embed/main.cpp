// examples/embed: herald inside an application's own Boost.Beast server. The application
// accepts and parses requests itself and hands /events (stream + request) to a channel, which
// owns the connection from then on. Everything else stays the application's.
#include <herald/herald.hpp>

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include "cli.hpp"

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = net::ip::tcp;

struct Connection : std::enable_shared_from_this<Connection> {
  Connection(tcp::socket s, herald::Channel<herald::Sse>& ch) : stream(std::move(s)), events(ch) {}
  beast::tcp_stream stream;
  beast::flat_buffer buffer;
  http::request<http::string_body> req;
  http::response<http::string_body> res;
  herald::Channel<herald::Sse>& events;

  void read() {
    http::async_read(stream, buffer, req, [self = shared_from_this()](beast::error_code ec, std::size_t) {
      if (ec) return;
      if (req_path(self->req) == "/events")  // hand over: herald streams from here on
        return self->events.accept(std::move(self->stream), std::move(self->req));
      self->res = {http::status::ok, self->req.version()};
      self->res.set(http::field::content_type, "text/plain");
      self->res.body() = "the application's own page; events are at /events\n";
      self->res.prepare_payload();
      http::async_write(self->stream, self->res, [self](beast::error_code, std::size_t) {
        self->stream.socket().shutdown(tcp::socket::shutdown_send);
      });
    });
  }
  static std::string_view req_path(http::request<http::string_body> const& r) {
    std::string_view t = r.target();
    return t.substr(0, t.find('?'));
  }
};

int main(int argc, char** argv) {
  auto const cli = example::parse_cli(argc, argv);
  net::io_context ioc{1};  // run by this thread alone: herald then needs no strands
  herald::Hub hub{ioc.get_executor()};
  herald::Channel<herald::Sse> events{hub, "/events"};

  tcp::acceptor acceptor{ioc, {net::ip::make_address(cli.host), cli.port}};
  example::announce(cli.host, acceptor.local_endpoint().port());
  std::function<void()> accept = [&] {
    acceptor.async_accept(net::make_strand(ioc), [&](beast::error_code ec, tcp::socket s) {
      if (!ec) std::make_shared<Connection>(std::move(s), events)->read();
      accept();
    });
  };
  accept();

  net::steady_timer timer{ioc};
  int n = 0;
  std::function<void()> tick = [&] {
    timer.expires_after(std::chrono::seconds(1));
    timer.async_wait([&](beast::error_code) {
      hub.publish("orders", R"({"id":)" + std::to_string(++n) + "}");
      tick();
    });
  };
  tick();
  ioc.run();
}
