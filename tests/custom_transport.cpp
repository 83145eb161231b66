// The Transport contract, proved from outside include/: a transport of the test's own —
// newline-delimited JSON over a plain HTTP response — served through herald::Channel and
// herald::Server (alone and inside Negotiated), with a wire format and a stream type of its own,
// and no edit to Channel, Hub, Server or the other transports.

#include <herald/herald.hpp>
#include <herald/detail/connection.hpp>
#include <herald/detail/json_format.hpp>
#include <herald/detail/response.hpp>
#include <herald/transports/negotiated.hpp>

#include <boost/asio/bind_executor.hpp>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/write.hpp>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <array>
#include <memory>
#include <string>
#include <vector>

#include "http_client.hpp"
#include "loopback.hpp"

namespace ndjson {

namespace net = boost::asio;
namespace http = boost::beast::http;

/** A stream type herald knows nothing about: a socket it closes itself, counting the closes.
    herald finds herald_close() by argument-dependent lookup (transport.hpp). */
class CountedStream {
 public:
  using executor_type = net::any_io_executor;
  CountedStream(net::ip::tcp::socket socket, int* closes) : socket_(std::move(socket)), closes_(closes) {}
  executor_type get_executor() { return socket_.get_executor(); }
  template <class Buffers, class Token>
  auto async_write_some(Buffers const& b, Token&& t) {
    return socket_.async_write_some(b, std::forward<Token>(t));
  }
  template <class Buffers, class Token>
  auto async_read_some(Buffers const& b, Token&& t) {
    return socket_.async_read_some(b, std::forward<Token>(t));
  }
  friend void herald_close(CountedStream& s) {
    ++*s.closes_;
    boost::system::error_code ignored;
    s.socket_.shutdown(net::ip::tcp::socket::shutdown_send, ignored);
    s.socket_.close(ignored);
  }

 private:
  net::ip::tcp::socket socket_;
  int* closes_;
};

/// One line per event: the JSON envelope and "\n". A wire format of this transport's own.
inline constexpr herald::detail::WireFormat wire{"ndjson"};
inline std::string encode(herald::Event const& ev) { return herald::detail::encode_json_envelope(ev) + "\n"; }

struct Options {
  /// Stream-closes counted here (the test's window into herald_close).
  int* closes = nullptr;
};

struct Transport;

/// The wire side of a connection; the lifecycle is herald's detail::Connection.
class Session final : public herald::detail::Connection {
 public:
  Session(std::shared_ptr<herald::ChannelContext<Transport>> ch, CountedStream stream);
  void start(herald::Request req) {
    net::dispatch(strand(), [self = self(), req = std::move(req)] { self->run(req); });
  }

 private:
  std::shared_ptr<Session> self() { return std::static_pointer_cast<Session>(shared_from_this()); }

  void run(herald::Request const& req) {
    std::string detail;
    if (auto ec = admit(req, detail)) {
      herald::detail::write_and_close(std::move(stream_),
                                      herald::detail::error_response(ec, detail, req.version(), false));
      return finish(ec);
    }
    head_ = "HTTP/1.1 200 OK\r\nContent-Type: application/x-ndjson\r\nConnection: close\r\n\r\n";
    if (!open(/*announce=*/true)) return;
    drain();
    stream_.async_read_some(net::buffer(discard_), net::bind_executor(strand(), [self = self()](auto ec, std::size_t) {
                              if (ec) self->finish(ec);
                            }));
  }

  void drain() override {
    if (writing_ || state() == State::closed) return;
    batch_.clear();
    buffers_.clear();
    if (!head_.empty()) buffers_.push_back(net::buffer(head_));
    if (take(batch_))
      for (auto const& ev : batch_) buffers_.push_back(net::buffer(ev->encoded(wire, encode)));
    if (buffers_.empty()) {
      if (state() == State::closing) finish(reason());
      return;
    }
    writing_ = true;
    net::async_write(stream_, buffers_, net::bind_executor(strand(), [self = self()](auto ec, std::size_t) {
                       self->writing_ = false;
                       if (ec) return self->finish(ec);
                       self->hub().delivered(self->batch_.size());
                       self->head_.clear();
                       self->drain_soon();
                     }));
  }

  void goodbye(herald::detail::Flush flush) override {
    if (flush == herald::detail::Flush::all) return drain();
    finish(reason());
  }

  void shut() override { herald::detail::close_stream(stream_); }

  std::size_t wire_size(herald::detail::StoredEvent const& ev) const override { return ev.encoded(wire, encode).size(); }

  CountedStream stream_;
  std::string head_;
  std::vector<herald::detail::EventPtr> batch_;
  std::vector<net::const_buffer> buffers_;
  std::array<char, 64> discard_{};
  bool writing_ = false;
};

struct Transport {
  static constexpr std::string_view name = "ndjson";
  static constexpr herald::Capabilities capabilities{.server_push = true, .resumable = true};
  using options = Options;

  static bool matches(herald::Request const& req) {
    return req.method() == http::verb::get && req[http::field::accept] == "application/x-ndjson";
  }

  template <class Stream>
  static void start(std::shared_ptr<herald::ChannelContext<Transport>> ch, Stream&& stream, herald::Request&& req) {
    auto* closes = ch->transport_options().closes;
    auto socket = boost::beast::get_lowest_layer(stream).release_socket();
    std::make_shared<Session>(std::move(ch), CountedStream{std::move(socket), closes})->start(std::move(req));
  }
};

inline Session::Session(std::shared_ptr<herald::ChannelContext<Transport>> ch, CountedStream stream)
    : Connection(std::move(ch), herald::detail::serialized(stream.get_executor()), true),
      stream_(std::move(stream)) {}

static_assert(herald::Transport<Transport>);

/// The ids of the complete lines of a raw response body.
std::vector<herald::EventId> ids(std::string const& body) {
  std::vector<herald::EventId> out;
  std::size_t from = 0;
  for (auto nl = body.find('\n'); nl != std::string::npos; nl = body.find('\n', from = nl + 1))
    out.push_back(nlohmann::json::parse(body.substr(from, nl - from)).at("id").get<herald::EventId>());
  return out;
}

}  // namespace ndjson

TEST_CASE("custom transport: served through Channel and Server, resumed, closed through herald_close",
          "[e2e][transport]") {
  boost::asio::io_context ioc{1};
  herald::Hub hub{ioc.get_executor(), {.first_id = 1}};
  int closes = 0;
  herald::Channel<ndjson::Transport> feed{hub, "/lines", {}, {.closes = &closes}};
  int opened = 0;
  feed.on_open([&](herald::Session&) { ++opened; });
  herald::Server server{ioc.get_executor()};
  server.add(feed);
  auto const ep = server.listen("127.0.0.1", 0);

  auto const a = hub.publish("t", R"({"n":1})");
  test::RawClient live{ioc}, resumed{ioc}, refused{ioc};
  live.get(ep, "/lines?topic=t", "Accept: application/x-ndjson\r\n");
  resumed.get(ep, "/lines?topic=t&since=0", "Accept: application/x-ndjson\r\n");
  refused.get(ep, "/lines?topic=t&since=x", "Accept: application/x-ndjson\r\n");
  REQUIRE(test::run_until(ioc, [&] { return opened == 2 && refused.closed(); }));
  CHECK(refused.status() == 400);  // admission (the cursor rule) is herald's, not the transport's
  auto const b = hub.publish("t", R"({"n":2})");
  REQUIRE(test::run_until(ioc, [&] {
    return ndjson::ids(live.body()).size() == 1 && ndjson::ids(resumed.body()).size() == 2;
  }));
  CHECK(live.header("Content-Type") == "application/x-ndjson");
  CHECK(ndjson::ids(live.body()) == std::vector<herald::EventId>{b});
  CHECK(ndjson::ids(resumed.body()) == std::vector<herald::EventId>{a, b});
  CHECK(feed.connections() == 2);

  // Shutdown flushes, then the transport's own stream type is closed by herald_close.
  feed.shutdown();
  REQUIRE(test::run_until(ioc, [&] { return live.closed() && resumed.closed(); }));
  CHECK(closes >= 2);
  CHECK(feed.connections() == 0);
  CHECK(hub.stats().connections == 0);
}

TEST_CASE("custom transport: a member of Negotiated next to SSE, chosen by its own matches()",
          "[e2e][transport]") {
  boost::asio::io_context ioc{1};
  herald::Hub hub{ioc.get_executor(), {.first_id = 1}};
  herald::Channel<herald::Negotiated<herald::Sse, ndjson::Transport>> live{hub, "/live"};
  herald::Server server{ioc.get_executor()};
  server.add(live);
  auto const ep = server.listen("127.0.0.1", 0);

  test::RawClient lines{ioc}, events{ioc};
  lines.get(ep, "/live?topic=t", "Accept: application/x-ndjson\r\n");
  events.get(ep, "/live?topic=t", "Accept: text/event-stream\r\n");
  REQUIRE(test::run_until(ioc, [&] { return live.connections() == 2; }));
  auto const id = hub.publish("t", R"({"n":1})");
  REQUIRE(test::run_until(ioc, [&] {
    return !ndjson::ids(lines.body()).empty() && events.body().find("\n\n", events.body().find("id:")) != std::string::npos;
  }));
  CHECK(ndjson::ids(lines.body()) == std::vector<herald::EventId>{id});
  CHECK(events.header("Content-Type") == "text/event-stream");
  CHECK(events.body().find("id: " + std::to_string(id)) != std::string::npos);
}
