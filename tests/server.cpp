// herald::Server over real loopback sockets: routing, keep-alive, limits, errors, shutdown.

#include <herald/herald.hpp>

#include <boost/asio/io_context.hpp>
#include <boost/asio/thread_pool.hpp>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <optional>
#include <string>

#include "http_client.hpp"
#include "loopback.hpp"

namespace {

namespace net = boost::asio;
namespace http = boost::beast::http;
using tcp = net::ip::tcp;
using test::run_until;

herald::Handler text(std::string body) {
  return [body = std::move(body)](herald::Request const& req) {
    http::response<http::string_body> res{http::status::ok, req.version()};
    res.set(http::field::content_type, "text/plain");
    res.body() = body + " " + std::string(req.method_string());
    return res;
  };
}

std::size_t count(std::string const& s, std::string const& what) {
  std::size_t n = 0;
  for (auto p = s.find(what); p != std::string::npos; p = s.find(what, p + 1)) ++n;
  return n;
}

}  // namespace

TEST_CASE("executors: a one-thread io_context needs no strand, any other gets a concrete one", "[unit][server]") {
  using herald::detail::new_strand;
  using herald::detail::serialized;
  using herald::detail::single_threaded;
  using io_strand = net::strand<net::io_context::executor_type>;

  net::io_context one{1};
  net::any_io_executor const ex1 = one.get_executor();
  CHECK(single_threaded(ex1));
  CHECK(new_strand(ex1) == ex1);
  CHECK(serialized(ex1) == ex1);

  net::io_context many;  // the default hint: any number of threads may run it
  net::any_io_executor const exn = many.get_executor();
  CHECK_FALSE(single_threaded(exn));
  auto const s = new_strand(exn);
  // Concrete inner executor: fits any_io_executor's small buffer, no allocation per operation.
  REQUIRE(s.target<io_strand>() != nullptr);
  CHECK(new_strand(exn) != s);      // each connection its own
  CHECK(serialized(s) == s);        // a strand is kept, not wrapped in a second one

  net::thread_pool pool{1};
  CHECK_FALSE(single_threaded(pool.get_executor()));
  CHECK(new_strand(pool.get_executor()).target<net::strand<net::thread_pool::executor_type>>() != nullptr);
  pool.join();
}

TEST_CASE("query_param: one decoded value, nullopt when absent, repeated or malformed", "[unit][server]") {
  using herald::query_param;
  CHECK(query_param("/p?a=1&b=x%20y", "b") == "x y");
  CHECK(query_param("/p?a=1&b=x%20y", "a") == "1");
  CHECK(query_param("/p?a=&b=2", "a") == "");
  CHECK(query_param("/p?ab=1", "a") == std::nullopt);   // a prefix is another key
  CHECK(query_param("/p", "a") == std::nullopt);
  CHECK(query_param("/p?a=1&a=2", "a") == std::nullopt);  // which one was meant is a guess
  CHECK(query_param("/p?a=1&a=2", "b") == std::nullopt);
  CHECK(query_param("/p?a=1&b=%zz", "a") == std::nullopt);  // a malformed query answers nothing
}

TEST_CASE("server: routes by path, 404 for unknown paths, keep-alive for plain requests", "[e2e][server]") {
  net::io_context ioc;
  herald::Server server{ioc.get_executor()};
  server.handle("/hello", text("hi"));
  auto const ep = server.listen("127.0.0.1", 0);
  CHECK(ep.port() != 0);
  CHECK(server.local_endpoint() == ep);

  // Three requests on one connection, the middle one for an unknown path.
  test::RawClient c{ioc};
  c.request(ep,
            "GET /hello?x=1 HTTP/1.1\r\nHost: h\r\n\r\n"
            "GET /nope HTTP/1.1\r\nHost: h\r\n\r\n"
            "POST /hello HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nabc");
  REQUIRE(run_until(ioc, [&] { return count(c.data(), "HTTP/1.1 ") == 3 && c.data().ends_with("hi POST"); }));
  CHECK(c.data().starts_with("HTTP/1.1 200 OK"));
  CHECK(count(c.data(), "HTTP/1.1 404 Not Found") == 1);
  CHECK(c.data().find(R"({"error":"not found"})") != std::string::npos);
  CHECK_FALSE(c.closed());

  test::RawClient head{ioc};
  head.request(ep, "HEAD /hello HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n");
  REQUIRE(run_until(ioc, [&] { return head.closed(); }));
  CHECK(head.status() == 200);
  CHECK(head.header("Content-Length") == "7");
  CHECK(head.body().empty());

  CHECK_THROWS_AS(server.handle("/hello", text("again")), std::invalid_argument);
  CHECK_THROWS_AS(server.handle("relative", text("x")), std::invalid_argument);
}

TEST_CASE("server: an async route answers later, once, with its length, on a kept-alive connection",
          "[e2e][server]") {
  net::io_context ioc;
  herald::Server server{ioc.get_executor()};
  std::vector<herald::Reply> waiting;
  server.handle_async("/later", [&](herald::Request const& req, herald::Reply reply) {
    if (req.target() == "/later?now") {
      http::response<http::string_body> res{http::status::ok, req.version()};
      res.body() = "at once";
      return reply(std::move(res));
    }
    waiting.push_back(std::move(reply));
  });
  server.handle_async("/throws", [](herald::Request const&, herald::Reply) { throw std::runtime_error("x"); });
  server.handle("/x", text("x"));
  auto const ep = server.listen("127.0.0.1", 0);

  test::RawClient c{ioc};
  c.request(ep, "GET /later HTTP/1.1\r\nHost: h\r\n\r\n");
  REQUIRE(run_until(ioc, [&] { return waiting.size() == 1; }));
  CHECK(c.data().empty());  // nothing before the reply
  http::response<http::string_body> res{http::status::accepted, 11};
  res.body() = "done later";
  waiting[0](res);
  waiting[0](res);  // a second reply does nothing
  REQUIRE(run_until(ioc, [&] { return c.data().ends_with("done later"); }));
  CHECK(c.status() == 202);
  CHECK(c.header("Content-Length") == "10");
  CHECK(count(c.data(), "HTTP/1.1 ") == 1);
  // Keep-alive goes on: the next request on the same connection is answered.
  c.send("GET /later?now HTTP/1.1\r\nHost: h\r\n\r\n");
  REQUIRE(run_until(ioc, [&] { return c.data().ends_with("at once"); }));
  CHECK_FALSE(c.closed());

  test::RawClient boom{ioc};
  boom.get(ep, "/throws");
  REQUIRE(run_until(ioc, [&] { return boom.closed(); }));
  CHECK(boom.status() == 500);

  // A client that leaves before the reply: the reply is dropped, nothing breaks.
  test::RawClient gone{ioc};
  gone.get(ep, "/later");
  REQUIRE(run_until(ioc, [&] { return waiting.size() == 2; }));
  gone.close();
  test::RawClient fence{ioc};
  fence.request(ep, "GET /x HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n");
  REQUIRE(run_until(ioc, [&] { return fence.closed(); }));
  waiting[1](res);
  test::drain(ioc);
  CHECK(fence.status() == 200);
  CHECK_THROWS_AS(server.handle_async("/later", [](herald::Request const&, herald::Reply) {}), std::invalid_argument);
}

TEST_CASE("server: malformed and oversized requests get an error and a close", "[e2e][server]") {
  net::io_context ioc;
  herald::Server server{ioc.get_executor(), {.header_limit = 1024, .body_limit = 16}};
  server.handle("/x", text("x"));
  auto const ep = server.listen("127.0.0.1", 0);

  struct Case {
    std::string request;
    int status;
  };
  std::vector<Case> cases{
      {"NOT HTTP AT ALL\r\n\r\n", 400},
      {"GET /x HTTP/1.1\r\nHost: h\r\nX-Big: " + std::string(2000, 'a') + "\r\n\r\n", 431},
      {"POST /x HTTP/1.1\r\nHost: h\r\nContent-Length: 100\r\n\r\n" + std::string(100, 'b'), 413},
  };
  for (auto const& tc : cases) {
    test::RawClient c{ioc};
    c.request(ep, tc.request);
    REQUIRE(run_until(ioc, [&] { return c.closed(); }));
    INFO(tc.request.substr(0, 40));
    CHECK(c.status() == tc.status);
  }

  // A handler that throws answers 500; the server carries on.
  server.handle("/boom", [](herald::Request const&) -> http::response<http::string_body> {
    throw std::runtime_error("boom");
  });
  test::RawClient boom{ioc};
  boom.get(ep, "/boom");
  REQUIRE(run_until(ioc, [&] { return boom.closed(); }));
  CHECK(boom.status() == 500);
  test::RawClient after{ioc};
  after.request(ep, "GET /x HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n");
  REQUIRE(run_until(ioc, [&] { return after.closed(); }));
  CHECK(after.status() == 200);
}

TEST_CASE("server: idle connections time out, the connection limit answers 503", "[e2e][server]") {
  net::io_context ioc;
  herald::Server server{ioc.get_executor(),
                        {.max_connections = 1, .request_timeout = std::chrono::milliseconds(50)}};
  server.handle("/x", text("x"));
  auto const ep = server.listen("127.0.0.1", 0);

  test::RawClient idle{ioc};
  idle.request(ep, "GET /x HTTP/1.1\r\nHost: h\r\n");  // never finishes its header
  REQUIRE(run_until(ioc, [&] { return idle.connected(); }));
  test::RawClient over{ioc};
  over.get(ep, "/x");
  REQUIRE(run_until(ioc, [&] { return over.closed(); }));
  CHECK(over.status() == 503);

  REQUIRE(run_until(ioc, [&] { return idle.closed(); }));
  CHECK(idle.data().empty());
  test::RawClient next{ioc};
  next.request(ep, "GET /x HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n");
  REQUIRE(run_until(ioc, [&] { return next.closed(); }));
  CHECK(next.status() == 200);
}

TEST_CASE("server: async_stop closes idle keep-alive connections and stops accepting", "[e2e][server]") {
  net::io_context ioc;
  herald::Server server{ioc.get_executor()};
  server.handle("/x", text("x"));
  auto const ep = server.listen("127.0.0.1", 0);
  test::RawClient kept{ioc};
  kept.get(ep, "/x");
  REQUIRE(run_until(ioc, [&] { return kept.data().ends_with("x GET"); }));

  std::optional<boost::system::error_code> done;
  server.async_stop(std::chrono::seconds(5), [&](boost::system::error_code ec) { done = ec; });
  REQUIRE(run_until(ioc, [&] { return done.has_value() && kept.closed(); }));
  CHECK(!*done);
}

TEST_CASE("server: async_stop cuts what does not close within the grace period", "[e2e][server]") {
  // A raw endpoint-free route cannot hold a connection, so use an SSE stream whose client never
  // reads and a zero grace period.
  net::io_context ioc;
  herald::Hub hub{ioc.get_executor()};
  herald::Channel<herald::Sse> feed{hub, "/s"};
  herald::Server server{ioc.get_executor()};
  server.add(feed);
  auto const ep = server.listen("127.0.0.1", 0);
  test::RawClient c{ioc};
  c.get(ep, "/s");
  REQUIRE(run_until(ioc, [&] { return feed.connections() == 1; }));

  std::optional<boost::system::error_code> done;
  server.async_stop(std::chrono::milliseconds(0), [&](boost::system::error_code ec) { done = ec; });
  REQUIRE(run_until(ioc, [&] { return done.has_value() && c.closed() && feed.connections() == 0; }));
  // Either the stream closed in time or it was cut: both leave nothing open.
  CHECK((!*done || *done == net::error::timed_out));
}

TEST_CASE("server: listen reports failures as exceptions", "[e2e][server]") {
  net::io_context ioc;
  herald::Server a{ioc.get_executor()};
  auto const ep = a.listen("127.0.0.1", 0);
  herald::Server b{ioc.get_executor()};
  CHECK_THROWS_AS(b.listen("127.0.0.1", ep.port()), boost::system::system_error);
  herald::Server c{ioc.get_executor()};
  CHECK_THROWS(c.listen("not-an-address", 0));
}

TEST_CASE("channel: configuration errors throw at construction", "[unit][channel]") {
  net::io_context ioc;
  herald::Hub hub{ioc.get_executor()};
  using Sse = herald::Channel<herald::Sse>;
  CHECK_THROWS_AS(Sse(hub, "no-slash"), std::invalid_argument);
  CHECK_THROWS_AS(Sse(hub, "/x", {.topics = {"bad\ntopic"}}), std::invalid_argument);
  CHECK_THROWS_AS(Sse(hub, "/x", {.limits = {.queue_events = 0}}), std::invalid_argument);
  CHECK_NOTHROW(Sse(hub, "/x", {.topics = {"ok"}}));
}
