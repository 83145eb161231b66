// Misuse: a transport that cannot take over a connection (no start) is not a Transport, and
// the diagnostic names the member and how to declare it.
#include <herald/herald.hpp>

#include <boost/asio/io_context.hpp>

struct Half {
  static constexpr std::string_view name = "half";
  static constexpr herald::Capabilities capabilities{};
  struct options {};
  static bool matches(herald::Request const&) { return true; }
};

int main() {
  boost::asio::io_context ioc;
  herald::Hub hub{ioc.get_executor()};
  herald::Channel<Half> channel{hub, "/half"};
}
