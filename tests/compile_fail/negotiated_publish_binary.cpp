// Misuse: a Negotiated channel with SSE or polling members cannot carry binary (an SSE or polling
// client could not receive it), so publish_binary must not compile even though WebSocket could.
#include <herald/herald.hpp>
#include <herald/transports/negotiated.hpp>

#include <boost/asio/io_context.hpp>

int main() {
  boost::asio::io_context ioc;
  herald::Hub hub{ioc.get_executor()};
  herald::Channel<herald::Negotiated<herald::WebSocket, herald::Sse, herald::Polling>> live{hub, "/live"};
  live.publish_binary("frames", std::string_view("\x00\x01", 2));
}
