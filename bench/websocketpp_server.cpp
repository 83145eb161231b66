// bench/websocketpp_server: a websocketpp (Debian libwebsocketpp-dev 0.8) broadcast server, the
// library's own broadcast idiom: every message received on /pub is sent, as the same
// message_ptr, to every other connection. One thread (asio, no TLS), logging off.
//
//   herald_bench_websocketpp_server [--port 0] [--host 127.0.0.1]
//
// Subscribers connect to any other path. Prints `listening on http://HOST:PORT`.
// Built only when websocketpp's headers are found (bench/CMakeLists.txt).
#include <websocketpp/config/asio_no_tls.hpp>
#include <websocketpp/server.hpp>

#include <cstdio>
#include <cstdlib>
#include <set>
#include <string>
#include <string_view>

using server_type = websocketpp::server<websocketpp::config::asio>;
using websocketpp::connection_hdl;

int main(int argc, char** argv) {
  std::string host = "127.0.0.1";
  unsigned short port = 0;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string_view const k = argv[i];
    if (k == "--host") host = argv[i + 1];
    else if (k == "--port") port = static_cast<unsigned short>(std::atoi(argv[i + 1]));
  }

  server_type server;
  std::set<connection_hdl, std::owner_less<connection_hdl>> subscribers;
  server.clear_access_channels(websocketpp::log::alevel::all);
  server.clear_error_channels(websocketpp::log::elevel::all);
  server.init_asio();
  server.set_reuse_addr(true);
  server.set_listen_backlog(4096);
  server.set_open_handler([&](connection_hdl h) {
    auto con = server.get_con_from_hdl(h);
    if (con->get_resource().rfind("/pub", 0) != 0) subscribers.insert(h);
  });
  server.set_close_handler([&](connection_hdl h) { subscribers.erase(h); });
  server.set_fail_handler([&](connection_hdl h) { subscribers.erase(h); });
  server.set_message_handler([&](connection_hdl, server_type::message_ptr msg) {
    for (auto const& h : subscribers) {
      websocketpp::lib::error_code ec;
      server.send(h, msg, ec);
    }
  });

  websocketpp::lib::asio::error_code ec;
  server.listen(websocketpp::lib::asio::ip::tcp::endpoint(websocketpp::lib::asio::ip::make_address(host), port), ec);
  if (ec) {
    std::fprintf(stderr, "listen: %s\n", ec.message().c_str());
    return 1;
  }
  server.start_accept();
  auto const ep = server.get_local_endpoint(ec);
  std::printf("listening on http://%s:%u\n", host.c_str(), unsigned(ep.port()));
  std::fflush(stdout);
  server.run();
}
