// Twin of sse_on_message.cpp without the misuse: lifecycle handlers exist on every transport.
#include <herald/herald.hpp>

#include <boost/asio/io_context.hpp>

int main() {
  boost::asio::io_context ioc;
  herald::Hub hub{ioc.get_executor()};
  herald::Channel<herald::Sse> feed{hub, "/feed"};
  feed.on_open([](herald::Session&) {});
  feed.on_close([](herald::Session&, boost::system::error_code) {});
}
