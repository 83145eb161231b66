// Twin of negotiated_publish_binary.cpp without the misuse: text publishes and on_message compile
// on a Negotiated channel (messages arrive by WebSocket or, degraded, by POST), and a Negotiated
// channel whose members all carry binary accepts binary publishes.
#include <herald/herald.hpp>
#include <herald/transports/negotiated.hpp>

#include <boost/asio/io_context.hpp>

int main() {
  boost::asio::io_context ioc;
  herald::Hub hub{ioc.get_executor()};
  herald::Channel<herald::Negotiated<herald::WebSocket, herald::Sse, herald::Polling>> live{hub, "/live"};
  live.publish("frames", "text");
  live.on_message([](herald::Session& s, herald::Message const& m) { s.send(std::string(m.data)); });
  herald::Channel<herald::Negotiated<herald::WebSocket>> ws{hub, "/ws"};
  ws.publish_binary("frames", std::string_view("\x00\x01", 2));
}
