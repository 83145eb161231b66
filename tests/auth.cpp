// One auth story on every transport: what the authorize hook sees, single-use tickets, a
// Verdict's expiry (close or reauthorize) and credentials kept out of the logs, each checked on
// SSE, WebSocket and polling over real loopback sockets.

#include <herald/herald.hpp>
#include <herald/detail/http.hpp>
#include <herald/tickets.hpp>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <chrono>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "http_client.hpp"
#include "loopback.hpp"
#include "sse_reader.hpp"
#include "ws_client.hpp"

namespace {

namespace net = boost::asio;
namespace http = boost::beast::http;
using json = nlohmann::json;
using test::run_until;
using namespace std::chrono_literals;

constexpr std::string_view accept_sse = "Accept: text/event-stream\r\n";

/// An SSE stream, a WebSocket path and a polling path on one server, with the same options.
struct Rig {
  explicit Rig(herald::ChannelOptions co, herald::HubOptions ho = {.first_id = 1})
      : hub(ioc.get_executor(), std::move(ho)),
        sse(hub, "/sse", co),
        ws(hub, "/ws", co),
        poll(hub, "/poll", co),
        server(ioc.get_executor()) {
    server.add(sse).add(ws).add(poll);
    ep = server.listen("127.0.0.1", 0);
  }

  /// Run the loop for `d` (a ticket's lifetime passing), without sleeping the thread.
  void wait(std::chrono::milliseconds d) {
    net::steady_timer t{ioc, d};
    bool done = false;
    t.async_wait([&](boost::system::error_code) { done = true; });
    REQUIRE(run_until(ioc, [&] { return done; }));
  }

  /// The status a GET of `target` is answered with (200 once an SSE stream's head arrived).
  int status(std::string const& target, std::string const& headers = {}) {
    test::RawClient c{ioc};
    // Connection: close, so that a poll's answer (kept alive otherwise) ends with the connection.
    c.get(ep, target, std::string(accept_sse) + "Connection: close\r\n" + headers);
    REQUIRE(run_until(ioc, [&] { return c.closed() || (c.has_headers() && c.status() == 200); }));
    if (c.status() != 200) last_error = json::parse(c.body(), nullptr, false);
    return c.status();
  }

  /// The status a WebSocket upgrade of `target` is answered with (101 when it opened).
  int upgrade(std::string const& target, std::string const& cookie = {}) {
    test::WsClient c{ioc};
    if (!cookie.empty()) c.header("Cookie", cookie);
    c.connect(ep, target);
    REQUIRE(run_until(ioc, [&] { return c.open() || c.failed(); }));
    return c.open() ? 101 : c.status();
  }

  net::io_context ioc;
  herald::Hub hub;
  herald::Channel<herald::Sse> sse;
  herald::Channel<herald::WebSocket> ws;
  herald::Channel<herald::Polling> poll;
  herald::Server server;
  net::ip::tcp::endpoint ep;
  json last_error;
};

}  // namespace

// =============================================================================================
// TicketBook
// =============================================================================================

TEST_CASE("tickets: 192 random bits, redeemed once, worthless after use or expiry", "[unit][auth]") {
  herald::TicketBook book{{.lifetime = 10min, .capacity = 4}};
  auto const t = book.mint({.principal = "bob", .topics = {"a"}});
  REQUIRE(t);
  CHECK(t->size() == 48);
  CHECK(t->find_first_not_of("0123456789abcdef") == std::string::npos);
  std::set<std::string> seen{*t};
  for (int i = 0; i < 3; ++i) CHECK(seen.insert(*book.mint({.principal = "x"})).second);
  // The capacity counts tickets minted within one lifetime, redeemed or not.
  CHECK_FALSE(book.mint({.principal = "y"}));

  auto wrong = *t;
  wrong.back() = wrong.back() == '0' ? '1' : '0';  // same handle, another secret
  CHECK_FALSE(book.redeem(wrong));
  CHECK_FALSE(book.redeem(t->substr(0, 47)));
  CHECK_FALSE(book.redeem(std::string(48, 'g')));
  auto const g = book.redeem(*t);  // a wrong secret did not use the ticket up
  REQUIRE(g);
  CHECK(g->principal == "bob");
  CHECK(g->topics == std::vector<std::string>{"a"});
  CHECK_FALSE(book.redeem(*t));
  CHECK(book.outstanding() == 3);

  CHECK_THROWS_AS(herald::TicketBook({.lifetime = 0ms}), std::invalid_argument);
  CHECK_THROWS_AS(herald::TicketBook({.capacity = 0}), std::invalid_argument);
}

TEST_CASE("tickets: expired ones are refused and purged as the book is used", "[unit][auth]") {
  net::io_context ioc;
  herald::TicketBook book{{.lifetime = 50ms, .capacity = 2}};
  auto const a = *book.mint({.principal = "a"});
  auto const b = *book.mint({.principal = "b"});
  CHECK_FALSE(book.mint({.principal = "c"}));
  net::steady_timer timer{ioc, 80ms};
  bool done = false;
  timer.async_wait([&](boost::system::error_code) { done = true; });
  REQUIRE(run_until(ioc, [&] { return done; }));
  CHECK_FALSE(book.redeem(a));
  CHECK(book.outstanding() == 0);  // that redeem purged both
  CHECK_FALSE(book.redeem(b));
  CHECK(book.mint({.principal = "c"}));
}

TEST_CASE("tickets: minted and redeemed from several threads at once", "[threads][auth]") {
  herald::TicketBook book{{.lifetime = 10min, .capacity = 100'000}};
  constexpr int threads = 4, per_thread = 2000;
  std::vector<std::vector<std::string>> minted(threads);
  std::vector<std::thread> pool;
  for (int i = 0; i < threads; ++i)
    pool.emplace_back([&, i] {
      for (int k = 0; k < per_thread; ++k) minted[i].push_back(*book.mint({.principal = std::to_string(i)}));
    });
  for (auto& th : pool) th.join();
  pool.clear();
  // Each thread redeems every ticket of its right-hand neighbour twice: once wins, once loses.
  std::vector<int> won(threads), lost(threads);
  for (int i = 0; i < threads; ++i)
    pool.emplace_back([&, i] {
      for (auto const& t : minted[(i + 1) % threads])
        for (int twice = 0; twice < 2; ++twice) {
          auto g = book.redeem(t);
          if (g && g->principal == std::to_string((i + 1) % threads)) ++won[i];
          else ++lost[i];
        }
    });
  for (auto& th : pool) th.join();
  for (int i = 0; i < threads; ++i) {
    CHECK(won[i] == per_thread);
    CHECK(lost[i] == per_thread);
  }
  CHECK(book.outstanding() == 0);
}

TEST_CASE("redact_target: credentials in a query never reach a log", "[unit][auth]") {
  using herald::detail::redact_target;
  CHECK(redact_target("/live") == "/live");
  CHECK(redact_target("/live?") == "/live?");
  CHECK(redact_target("/live?topic=a&ticket=0123&since=4") == "/live?topic=a&ticket=[redacted]&since=4");
  CHECK(redact_target("/live?token=x&access_token=y&ACCESS_TOKEN=z&id_token=w") ==
        "/live?token=[redacted]&access_token=[redacted]&ACCESS_TOKEN=[redacted]&id_token=[redacted]");
  CHECK(redact_target("/live?tick%65t=s3cret&a") == "/live?tick%65t=[redacted]&a");
  CHECK(redact_target("/live?password=p&api_key=k&jwt=j") == "/live?password=[redacted]&api_key=[redacted]&jwt=[redacted]");
  CHECK(redact_target("/live?%zz=s3cret") == "/live?[redacted]");
  CHECK(redact_target("/live?ticket") == "/live?ticket");
}

// =============================================================================================
// What the authorize hook sees
// =============================================================================================

TEST_CASE("auth: the authorize hook sees method, target, headers, cookies and the peer on every transport",
          "[e2e][auth]") {
  struct Seen {
    std::string transport, method, target, header, cookie;
    net::ip::tcp::endpoint remote;
  };
  std::vector<Seen> seen;
  herald::ChannelOptions co;
  co.authorize = [&](herald::AuthRequest const& r) {
    seen.push_back({std::string(r.transport()), std::string(http::to_string(r.method())), std::string(r.target()),
                    std::string(r["X-App"]), std::string(r.cookie("session")), r.remote()});
    return herald::Verdict::allow("carol");
  };
  Rig rig{co};
  std::string const headers = "X-App: 7\r\nCookie: theme=dark; session=abc123\r\n";
  CHECK(rig.status("/sse?topic=a", headers) == 200);
  CHECK(rig.status("/poll?topic=a", headers) == 200);
  test::WsClient ws{rig.ioc};
  ws.header("X-App", "7").header("Cookie", "theme=dark; session=abc123");
  ws.connect(rig.ep, "/ws?topic=a");
  REQUIRE(run_until(rig.ioc, [&] { return ws.open(); }));

  REQUIRE(seen.size() == 3);
  std::vector<std::string> const transports{"sse", "polling", "websocket"};
  for (std::size_t i = 0; i < seen.size(); ++i) {
    INFO(transports[i]);
    CHECK(seen[i].transport == transports[i]);
    CHECK(seen[i].method == "GET");
    CHECK(seen[i].target == "/" + std::string(i == 0 ? "sse" : i == 1 ? "poll" : "ws") + "?topic=a");
    CHECK(seen[i].header == "7");
    CHECK(seen[i].cookie == "abc123");
    CHECK(seen[i].remote.address() == net::ip::make_address("127.0.0.1"));
    CHECK(seen[i].remote.port() != 0);
    CHECK(seen[i].remote.port() != rig.ep.port());
  }
  // The client's own port: the same peer as the socket's.
  CHECK(seen[2].remote == boost::beast::get_lowest_layer(ws.stream()).socket().local_endpoint());
}

TEST_CASE("auth: a hook written for herald::Request keeps working", "[e2e][auth]") {
  herald::ChannelOptions co;
  co.authorize = [](herald::Request const& req) {
    return req[http::field::authorization] == "Bearer good" ? herald::Verdict::allow("alice")
                                                             : herald::Verdict::deny(herald::error::unauthorized);
  };
  Rig rig{co};
  CHECK(rig.status("/sse?topic=a", "Authorization: Bearer good\r\n") == 200);
  CHECK(rig.status("/poll?topic=a") == 401);
}

// =============================================================================================
// Tickets on every transport
// =============================================================================================

TEST_CASE("auth: a ticket admits once on every transport, then 401, and 401 after its lifetime",
          "[e2e][auth]") {
  auto book = std::make_shared<herald::TicketBook>(herald::TicketOptions{.lifetime = 100ms});
  std::vector<std::string> principals;
  herald::ChannelOptions co{.tickets = book};
  co.authorize_topic = [&](std::string_view principal, std::string_view) {
    principals.emplace_back(principal);
    return true;
  };
  Rig rig{co};
  auto mint = [&] { return *book->mint({.principal = "bob", .topics = {"a", "b"}}); };
  auto const unauthorized = [&](std::string const& message) {
    return rig.last_error["error"] == "unauthorized" && rig.last_error["message"] == message;
  };

  SECTION("sse") {
    auto const t = mint();
    CHECK(rig.status("/sse?topic=a&ticket=" + t) == 200);
    CHECK(principals == std::vector<std::string>{"bob"});
    CHECK(rig.status("/sse?topic=a&ticket=" + t) == 401);
    CHECK(unauthorized("ticket unknown, already used or expired"));
  }
  SECTION("websocket") {
    auto const t = mint();
    CHECK(rig.upgrade("/ws?topic=a&ticket=" + t) == 101);
    CHECK(principals == std::vector<std::string>{"bob"});
    CHECK(rig.upgrade("/ws?topic=a&ticket=" + t) == 401);
  }
  SECTION("polling") {
    auto const t = mint();
    CHECK(rig.status("/poll?topic=a&ticket=" + t) == 200);
    CHECK(principals == std::vector<std::string>{"bob"});
    CHECK(rig.status("/poll?topic=a&ticket=" + t) == 401);
    CHECK(unauthorized("ticket unknown, already used or expired"));
  }
  SECTION("expired, on each transport") {
    auto const a = mint(), b = mint(), c = mint();
    rig.wait(150ms);
    CHECK(rig.status("/sse?topic=a&ticket=" + a) == 401);
    CHECK(rig.upgrade("/ws?topic=a&ticket=" + b) == 401);
    CHECK(rig.status("/poll?topic=a&ticket=" + c) == 401);
    CHECK(principals.empty());
  }
  SECTION("no ticket, and no authorize hook to fall back on") {
    CHECK(rig.status("/sse?topic=a") == 401);
    CHECK(unauthorized("a ticket is required"));
    CHECK(rig.upgrade("/ws?topic=a") == 401);
    CHECK(rig.status("/poll?topic=a&ticket=" + mint() + "&ticket=x") == 401);
  }
  SECTION("the ticket's topics bound the connection") {
    CHECK(rig.status("/sse?topic=c&ticket=" + mint()) == 403);
    CHECK(rig.last_error["message"] == "the ticket does not cover topic c");
    // No topic named: the ticket's.
    test::RawClient c{rig.ioc};
    c.get(rig.ep, "/sse?envelope&ticket=" + mint(), accept_sse);
    REQUIRE(run_until(rig.ioc, [&] { return rig.sse.connections() == 1; }));
    rig.hub.publish("c", "1");
    rig.hub.publish("b", "2");
    test::SseReader r;
    REQUIRE(run_until(rig.ioc, [&] {
      r.feed_all(c.body());
      return !r.events().empty();
    }));
    CHECK(json::parse(r.events()[0].data)["topic"] == "b");
    // On a WebSocket, run-time subscriptions too.
    test::WsClient ws{rig.ioc};
    ws.connect(rig.ep, "/ws?ticket=" + mint());
    REQUIRE(run_until(rig.ioc, [&] { return ws.open(); }));
    ws.send(json{{"subscribe", "c"}});
    ws.send(json{{"subscribe", "a"}});
    REQUIRE(run_until(rig.ioc, [&] { return ws.count_with("subscribed") == 1 && ws.count_with("error") == 1; }));
    for (auto const& j : ws.texts())
      if (j.contains("error")) CHECK(j["message"] == "the ticket does not cover topic c");
  }
}

TEST_CASE("auth: with a ticket book and an authorize hook, requests without a ticket meet the hook",
          "[e2e][auth]") {
  auto book = std::make_shared<herald::TicketBook>();
  int hook_calls = 0;
  herald::ChannelOptions co{.tickets = book};
  co.authorize = [&](herald::AuthRequest const& r) {
    ++hook_calls;
    return r.cookie("session") == "ok" ? herald::Verdict::allow("dave") : herald::Verdict::deny(herald::error::unauthorized);
  };
  Rig rig{co};
  CHECK(rig.status("/poll?topic=a", "Cookie: session=ok\r\n") == 200);
  CHECK(rig.status("/poll?topic=a") == 401);
  CHECK(hook_calls == 2);
  CHECK(rig.status("/poll?topic=a&ticket=" + *book->mint({.principal = "bob"})) == 200);
  CHECK(rig.status("/poll?topic=a&ticket=nonsense", "Cookie: session=ok\r\n") == 401);  // a bad ticket is final
  CHECK(hook_calls == 2);
}

// =============================================================================================
// Expiry
// =============================================================================================

namespace {

herald::ChannelOptions expiring(std::chrono::milliseconds in) {
  herald::ChannelOptions co;
  co.authorize = [in](herald::AuthRequest const&) {
    return herald::Verdict::allow("erin").until(std::chrono::system_clock::now() + in);
  };
  return co;
}

/// One SSE and one WebSocket client on topic a, both open; the reasons on_close reports, in order.
struct OpenStreams {
  explicit OpenStreams(Rig& rig) : sse{rig.ioc}, ws{rig.ioc} {
    auto on_close = [this](herald::Session&, boost::system::error_code ec) { closed.push_back(ec); };
    rig.sse.on_close(on_close);
    rig.ws.on_close(on_close);
    sse.get(rig.ep, "/sse?topic=a", accept_sse);
    ws.connect(rig.ep, "/ws?topic=a");
    REQUIRE(run_until(rig.ioc, [&] { return ws.open() && rig.sse.connections() == 1; }));
  }

  std::vector<boost::system::error_code> closed;
  test::RawClient sse;
  test::WsClient ws;
};

}  // namespace

TEST_CASE("auth: at its verdict's expiry an open stream is closed with the reason", "[e2e][auth]") {
  Rig rig{expiring(300ms)};
  OpenStreams s{rig};
  auto const id = rig.hub.publish("a", R"({"n":1})");  // delivered while the verdict holds
  REQUIRE(run_until(rig.ioc, [&] { return s.ws.saw_id(id); }));

  auto const start = std::chrono::steady_clock::now();
  REQUIRE(run_until(rig.ioc, [&] { return s.sse.closed() && s.ws.ended() && s.closed.size() == 2; }));
  CHECK(std::chrono::steady_clock::now() - start < 5s);

  test::SseReader r;
  r.feed_all(s.sse.body());
  REQUIRE(r.events().size() == 2);
  CHECK(r.events()[0].data == R"({"n":1})");
  CHECK(r.events()[1].type == "close");
  CHECK(json::parse(r.events()[1].data)["error"] == "credentials expired");
  CHECK(r.retry());

  CHECK(s.ws.close_code() == 1008);
  CHECK(s.ws.close_reason() == "credentials expired");
  for (auto const& ec : s.closed) CHECK(ec == herald::error::credentials_expired);

  // A verdict that has already expired refuses the request.
  Rig past{expiring(-1s)};
  CHECK(past.status("/sse?topic=a") == 401);
  CHECK(past.last_error["error"] == "credentials expired");
  CHECK(past.upgrade("/ws?topic=a") == 401);
  CHECK(past.status("/poll?topic=a") == 401);
}

TEST_CASE("auth: a long poll is answered at its verdict's expiry, not held to its wait", "[e2e][auth]") {
  Rig rig{expiring(300ms)};
  test::RawClient c{rig.ioc};
  auto const start = std::chrono::steady_clock::now();
  c.get(rig.ep, "/poll?topic=a&since=0&wait=30");
  REQUIRE(run_until(rig.ioc, [&] { return c.has_headers() && c.body().find('}') != std::string::npos; }));
  auto const took = std::chrono::steady_clock::now() - start;
  CHECK(took >= 250ms);
  CHECK(took < 10s);
  CHECK(c.status() == 200);
  CHECK(json::parse(c.body())["events"].empty());
}

TEST_CASE("auth: the reauthorize hook extends an expiring stream, and its denial closes it", "[e2e][auth]") {
  auto co = expiring(200ms);
  int asked = 0;
  std::vector<std::string> principals;
  co.reauthorize = [&](herald::Session& s) {
    principals.push_back(s.principal());
    // Each connection is renewed once, then refused.
    return ++asked <= 2 ? herald::Verdict::allow().until(std::chrono::system_clock::now() + 200ms)
                        : herald::Verdict::deny(herald::error::unauthorized);
  };
  Rig rig{co};
  OpenStreams s{rig};

  // Past the first expiry both are open and still served.
  REQUIRE(run_until(rig.ioc, [&] { return asked == 2; }));
  auto const id = rig.hub.publish("a", R"({"n":2})");
  REQUIRE(run_until(rig.ioc, [&] { return s.ws.saw_id(id) && s.sse.body().find(R"({"n":2})") != std::string::npos; }));
  CHECK(s.closed.empty());

  REQUIRE(run_until(rig.ioc, [&] { return s.closed.size() == 2 && s.sse.closed() && s.ws.ended(); }));
  CHECK(asked == 4);
  CHECK(principals == std::vector<std::string>(4, "erin"));  // the principal stays the admitted one
  for (auto const& ec : s.closed) CHECK(ec == herald::error::credentials_expired);
  CHECK(s.ws.close_code() == 1008);
  CHECK(s.sse.body().find("event: close") != std::string::npos);
}

TEST_CASE("auth: a ticket's grant expiry ends the stream it opened", "[e2e][auth]") {
  auto book = std::make_shared<herald::TicketBook>();
  Rig rig{{.tickets = book}};
  test::WsClient ws{rig.ioc};
  ws.connect(rig.ep, "/ws?topic=a&ticket=" +
                         *book->mint({.principal = "bob", .expires = std::chrono::system_clock::now() + 200ms}));
  REQUIRE(run_until(rig.ioc, [&] { return ws.open(); }));
  REQUIRE(run_until(rig.ioc, [&] { return ws.ended(); }));
  CHECK(ws.close_code() == 1008);
  CHECK(ws.close_reason() == "credentials expired");
}

// =============================================================================================
// Logs
// =============================================================================================

TEST_CASE("auth: tickets and tokens never appear in herald's logs", "[e2e][auth]") {
  std::vector<std::string> logged;
  auto book = std::make_shared<herald::TicketBook>();
  Rig rig{{.tickets = book},
          {.first_id = 1,
           .log = [&](herald::LogRecord const& r) { logged.emplace_back(r.message); },
           .log_level = herald::LogLevel::debug}};
  std::vector<std::string> secrets;
  auto ticket = [&] {
    secrets.push_back(*book->mint({.principal = "bob", .topics = {"a"}}));
    return secrets.back();
  };
  // Admitted, refused for a topic after the ticket was used, and refused for a used ticket.
  for (std::string path : {"/sse", "/poll"}) {
    auto const t = ticket();
    CHECK(rig.status(path + "?topic=a&ticket=" + t + "&access_token=tok3n") == 200);
    CHECK(rig.status(path + "?topic=a&ticket=" + t + "&access_token=tok3n") == 401);
    CHECK(rig.status(path + "?topic=zz&ticket=" + ticket() + "&token=tok3n") == 403);
  }
  auto const t = ticket();
  CHECK(rig.upgrade("/ws?topic=a&ticket=" + t + "&access_token=tok3n") == 101);
  CHECK(rig.upgrade("/ws?topic=a&ticket=" + t + "&access_token=tok3n") == 401);
  REQUIRE(run_until(rig.ioc, [&] {
    return std::count_if(logged.begin(), logged.end(), [](auto const& m) { return m.starts_with("refused"); }) == 5;
  }));

  bool named_a_target = false;
  for (auto const& m : logged) {
    INFO(m);
    CHECK(m.find("tok3n") == std::string::npos);
    for (auto const& s : secrets) CHECK(m.find(s) == std::string::npos);
    if (m.find("ticket=[redacted]") != std::string::npos) named_a_target = true;
  }
  CHECK(named_a_target);
  CHECK(std::find(logged.begin(), logged.end(), "refused /ws?topic=a&ticket=[redacted]&access_token=[redacted]") !=
        logged.end());
}
