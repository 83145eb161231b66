// Twin of negotiated_duplicate.cpp without the misuse.
#include <herald/herald.hpp>
#include <herald/transports/negotiated.hpp>

#include <boost/asio/io_context.hpp>

int main() {
  boost::asio::io_context ioc;
  herald::Hub hub{ioc.get_executor()};
  herald::Channel<herald::Negotiated<herald::Sse, herald::Polling>> live{hub, "/live"};
}
