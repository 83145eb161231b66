// Misuse: SSE carries no client->server messages, so on_message must not compile, and the
// diagnostic must name the transport to use instead.
#include <herald/herald.hpp>

#include <boost/asio/io_context.hpp>

int main() {
  boost::asio::io_context ioc;
  herald::Hub hub{ioc.get_executor()};
  herald::Channel<herald::Sse> feed{hub, "/feed"};
  feed.on_message([](herald::Session&, herald::Message const&) {});
}
