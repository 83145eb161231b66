// Twin of transport_without_start.cpp: the same transport with start() is a Transport.
#include <herald/herald.hpp>

#include <boost/asio/io_context.hpp>

struct Whole {
  static constexpr std::string_view name = "whole";
  static constexpr herald::Capabilities capabilities{};
  struct options {};
  static bool matches(herald::Request const&) { return true; }
  template <class Stream>
  static void start(std::shared_ptr<herald::ChannelContext<Whole>>, Stream&&, herald::Request&&) {}
};

int main() {
  boost::asio::io_context ioc;
  herald::Hub hub{ioc.get_executor()};
  herald::Channel<Whole> channel{hub, "/whole"};
}
