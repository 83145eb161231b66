// Misuse: a transport listed twice in Negotiated (the second could never be chosen).
#include <herald/herald.hpp>
#include <herald/transports/negotiated.hpp>

#include <boost/asio/io_context.hpp>

int main() {
  boost::asio::io_context ioc;
  herald::Hub hub{ioc.get_executor()};
  herald::Channel<herald::Negotiated<herald::Sse, herald::Polling, herald::Sse>> live{hub, "/live"};
}
