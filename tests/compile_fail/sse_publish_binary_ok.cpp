// Twin of sse_publish_binary.cpp without the misuse: text publishes compile on every transport.
#include <herald/herald.hpp>

#include <boost/asio/io_context.hpp>

int main() {
  boost::asio::io_context ioc;
  herald::Hub hub{ioc.get_executor()};
  herald::Channel<herald::Sse> feed{hub, "/feed"};
  feed.publish("frames", "text");
}
