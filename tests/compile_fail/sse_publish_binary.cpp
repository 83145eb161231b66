// Misuse: SSE carries text only, so a binary publish through a Channel<Sse> must not compile.
#include <herald/herald.hpp>

#include <boost/asio/io_context.hpp>

int main() {
  boost::asio::io_context ioc;
  herald::Hub hub{ioc.get_executor()};
  herald::Channel<herald::Sse> feed{hub, "/feed"};
  feed.publish_binary("frames", std::string_view("\x00\x01", 2));
}
