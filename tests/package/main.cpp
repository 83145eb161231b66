// A user's program: built against installed (or add_subdirectory'd) herald in the default
// header-only mode. Exits 0 when publishing reached the hub.
#include <herald/herald.hpp>

#include <boost/asio/io_context.hpp>

int main() {
  boost::asio::io_context ioc;
  herald::Hub hub{ioc.get_executor()};
  herald::Channel<herald::Sse> feed{hub, "/api/feed"};
  hub.publish("orders", R"({"id":42})");
  return hub.stats().events_published == 1 ? 0 : 1;
}
