// herald::TlsServer over real loopback sockets: https, wss and polling on the same channels
// with herald's C++ clients, a plain listener beside the TLS one, configuration errors, the
// handshake bound, protocol versions and ALPN. The certificate is made at test time.

#include <herald/client.hpp>
#include <herald/client/tls.hpp>
#include <herald/herald.hpp>
#include <herald/tls_server.hpp>
#include <herald/transports/negotiated.hpp>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>

#include <catch2/catch.hpp>

#include <openssl/ssl.h>

#include <array>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <string_view>

#include "client_record.hpp"
#include "loopback.hpp"
#include "tls_cert.hpp"

namespace {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = boost::beast::http;
namespace hc = herald::client;
using tcp = net::ip::tcp;
using namespace std::chrono_literals;
using test::quick_backoff;
using test::Record;
using test::run_until;

/// A temp directory with the PEM files of a fresh self-signed certificate for 127.0.0.1.
struct CertFiles {
  std::filesystem::path dir;
  test::SelfSigned cert = test::make_self_signed("herald tls test", "IP:127.0.0.1,DNS:localhost");
  CertFiles() {
    std::random_device rd;
    for (;;) {
      dir = std::filesystem::temp_directory_path() / ("herald-tls-" + std::to_string(rd()) + std::to_string(rd()));
      if (std::filesystem::create_directory(dir)) break;
    }
    write("cert.pem", cert.cert_pem);
    write("key.pem", cert.key_pem);
  }
  ~CertFiles() {
    std::error_code ec;
    std::filesystem::remove_all(dir, ec);
  }
  CertFiles(CertFiles const&) = delete;
  CertFiles& operator=(CertFiles const&) = delete;
  std::string path(char const* name) const { return (dir / name).string(); }
  void write(char const* name, std::string const& text) const {
    std::ofstream{dir / name, std::ios::binary} << text;
  }
  herald::TlsOptions options() const { return {.certificate_chain_file = path("cert.pem"), .private_key_file = path("key.pem")}; }
};

using Live = herald::Negotiated<herald::WebSocket, herald::Sse, herald::Polling>;

/// A hub with a channel per transport and a negotiated one behind a TlsServer: one TLS
/// listener and one plain listener.
struct TlsWorld {
  TlsWorld(net::io_context& ioc, CertFiles const& files, herald::ServerOptions so = {})
      : hub(ioc.get_executor(), {.first_id = 1}),
        feed(hub, "/sse", {}, {.retry = 1ms}),
        ws(hub, "/ws"),
        poll(hub, "/poll"),
        live(hub, "/live"),
        server(ioc.get_executor(), std::move(so)) {
    server.add(feed).add(ws).add(poll).add(live);
    server.handle("/hello", [](herald::Request const& req) {
      http::response<http::string_body> res{http::status::ok, req.version()};
      res.body() = "hello";
      return res;
    });
    tls_port = server.listen("127.0.0.1", 0, files.options()).port();
    plain_port = server.listen("127.0.0.1", 0).port();
  }
  std::string url(std::string_view scheme, std::string_view path) const {
    bool const secure = scheme == "https" || scheme == "wss";
    return std::string(scheme) + "://127.0.0.1:" + std::to_string(secure ? tls_port : plain_port) + std::string(path);
  }

  herald::Hub hub;
  herald::Channel<herald::Sse> feed;
  herald::Channel<herald::WebSocket> ws;
  herald::Channel<herald::Polling> poll;
  herald::Channel<Live> live;
  herald::TlsServer server;
  std::uint16_t tls_port = 0;
  std::uint16_t plain_port = 0;
};

std::shared_ptr<net::ssl::context> trusting(test::SelfSigned const& cert) {
  auto ctx = std::make_shared<net::ssl::context>(net::ssl::context::tls_client);
  ctx->add_certificate_authority(net::buffer(cert.cert_pem));
  return ctx;
}

/// A raw TLS client connection for checks below the HTTP clients: versions, ALPN, timeouts.
struct RawTls {
  RawTls(net::io_context& ioc, net::ssl::context& ctx) : stream(ioc, ctx) {}
  net::ssl::stream<tcp::socket> stream;
  std::optional<boost::system::error_code> handshake;

  void start(std::uint16_t port) {
    stream.next_layer().async_connect({net::ip::make_address("127.0.0.1"), port}, [this](boost::system::error_code ec) {
      if (ec) {
        handshake = ec;
        return;
      }
      stream.async_handshake(net::ssl::stream_base::client, [this](boost::system::error_code ec) { handshake = ec; });
    });
  }
  std::string alpn() {
    unsigned char const* p = nullptr;
    unsigned int n = 0;
    SSL_get0_alpn_selected(stream.native_handle(), &p, &n);
    return p ? std::string(reinterpret_cast<char const*>(p), n) : std::string();
  }
};

}  // namespace

TEST_CASE("tls server: https, wss and polling on the same channels with the C++ clients", "[e2e][tls]") {
  CertFiles files;
  net::io_context ioc;
  TlsWorld w{ioc, files};
  auto const tls = hc::tls({.context = trusting(files.cert)});

  hc::SseClient sse{ioc.get_executor(), w.url("https", "/sse"),
                    {.topics = {"a"}, .since = 0, .backoff = quick_backoff(), .connector = tls}};
  hc::WebSocketClient ws{ioc.get_executor(), w.url("wss", "/ws"),
                         {.topics = {"a"}, .since = 0, .backoff = quick_backoff(), .connector = tls}};
  hc::PollingClient poll{ioc.get_executor(), w.url("https", "/poll"),
                         {.topics = {"a"}, .since = 0, .backoff = quick_backoff(), .connector = tls,
                          .poll = {.wait = 2s}}};
  // The negotiated path over TLS: an SSE request and a WebSocket upgrade.
  hc::SseClient live_sse{ioc.get_executor(), w.url("https", "/live"),
                         {.topics = {"a"}, .since = 0, .backoff = quick_backoff(), .connector = tls}};
  hc::WebSocketClient live_ws{ioc.get_executor(), w.url("wss", "/live"),
                              {.topics = {"a"}, .since = 0, .backoff = quick_backoff(), .connector = tls}};
  hc::PollingClient live_poll{ioc.get_executor(), w.url("https", "/live"),
                              {.topics = {"a"}, .since = 0, .backoff = quick_backoff(), .connector = tls,
                               .poll = {.wait = 2s}}};
  // And plain http on the second listener of the same server.
  hc::SseClient plain{ioc.get_executor(), w.url("http", "/sse"), {.topics = {"a"}, .since = 0, .backoff = quick_backoff()}};
  Record r[7];
  r[0].attach(sse);
  r[1].attach(ws);
  r[2].attach(poll);
  r[3].attach(live_sse);
  r[4].attach(live_ws);
  r[5].attach(plain);
  r[6].attach(live_poll);
  auto const saw = [&](herald::EventId id) {
    for (auto const& rec : r)
      if (!rec.saw(id)) return false;
    return true;
  };

  auto const e1 = w.hub.publish("a", R"({"n":1})");
  sse.start();
  ws.start();
  poll.start();
  live_sse.start();
  live_ws.start();
  plain.start();
  live_poll.start();
  REQUIRE(run_until(ioc, [&] { return saw(e1); }, 20s));

  // Every stream is cut; each client comes back over TLS and resumes without a gap.
  w.feed.disconnect_all();
  w.ws.disconnect_all();
  w.live.disconnect_all();
  auto const e2 = w.hub.publish("a", R"({"n":2})");
  auto const e3 = w.hub.publish("a", R"({"n":3})");
  REQUIRE(run_until(ioc, [&] { return saw(e3); }, 20s));
  for (auto const& rec : r) CHECK(rec.ids() == std::vector<herald::EventId>{e1, e2, e3});
  for (int i : {0, 1, 3, 4}) CHECK(r[i].count(hc::State::open) >= 2);  // the streams did reconnect

  bool stopped = false;
  w.server.async_stop(2s, [&](boost::system::error_code) { stopped = true; });
  for (auto* c : {&sse, &live_sse, &plain}) c->async_stop([](boost::system::error_code) {});
  for (auto* c : {&ws, &live_ws}) c->async_stop([](boost::system::error_code) {});
  for (auto* c : {&poll, &live_poll}) c->async_stop([](boost::system::error_code) {});
  REQUIRE(run_until(ioc, [&] { return stopped; }, 10s));
}

TEST_CASE("tls server: TLS 1.2 and 1.3 only, ALPN http/1.1, an application's own context", "[e2e][tls]") {
  CertFiles files;
  net::io_context ioc;
  TlsWorld w{ioc, files};

  SECTION("a client that offers h2 and http/1.1 gets http/1.1") {
    auto ctx = trusting(files.cert);
    RawTls c{ioc, *ctx};
    static constexpr unsigned char protos[] = {2, 'h', '2', 8, 'h', 't', 't', 'p', '/', '1', '.', '1'};
    REQUIRE(SSL_set_alpn_protos(c.stream.native_handle(), protos, sizeof protos) == 0);
    c.start(w.tls_port);
    REQUIRE(run_until(ioc, [&] { return c.handshake.has_value(); }));
    CHECK_FALSE(*c.handshake);
    CHECK(c.alpn() == "http/1.1");
  }
  SECTION("TLS 1.2 is accepted, TLS 1.1 is refused") {
    auto ctx12 = trusting(files.cert);
    SSL_CTX_set_max_proto_version(ctx12->native_handle(), TLS1_2_VERSION);
    RawTls c12{ioc, *ctx12};
    c12.start(w.tls_port);
    auto ctx11 = trusting(files.cert);
    SSL_CTX_set_min_proto_version(ctx11->native_handle(), TLS1_VERSION);
    SSL_CTX_set_max_proto_version(ctx11->native_handle(), TLS1_1_VERSION);
    SSL_CTX_set_security_level(ctx11->native_handle(), 0);  // let the client even try 1.1
    RawTls c11{ioc, *ctx11};
    c11.start(w.tls_port);
    REQUIRE(run_until(ioc, [&] { return c12.handshake && c11.handshake; }));
    CHECK_FALSE(*c12.handshake);
    CHECK(SSL_version(c12.stream.native_handle()) == TLS1_2_VERSION);
    CHECK(*c11.handshake);
  }
  SECTION("a context the application owns") {
    auto own = std::make_shared<net::ssl::context>(net::ssl::context::tls_server);
    own->use_certificate_chain(net::buffer(files.cert.cert_pem));
    own->use_private_key(net::buffer(files.cert.key_pem), net::ssl::context::pem);
    herald::Channel<herald::Sse> other{w.hub, "/other"};
    herald::TlsServer second{ioc.get_executor()};
    second.add(other);
    auto const port = second.listen("127.0.0.1", 0, own).port();
    hc::SseClient c{ioc.get_executor(), "https://127.0.0.1:" + std::to_string(port) + "/other",
                    {.since = 0, .backoff = quick_backoff(), .connector = hc::tls({.context = trusting(files.cert)})}};
    Record rec;
    rec.attach(c);
    auto const id = w.hub.publish("x", "own context");
    c.start();
    REQUIRE(run_until(ioc, [&] { return rec.saw(id); }));
    c.async_stop([](boost::system::error_code) {});
    REQUIRE(run_until(ioc, [&] { return rec.closed(); }));
  }
}

TEST_CASE("tls server: the handshake is bounded by request_timeout, and plain HTTP on it gets nowhere",
          "[e2e][tls]") {
  CertFiles files;
  net::io_context ioc;
  TlsWorld w{ioc, files, {.request_timeout = 300ms}};

  SECTION("a client that connects and says nothing is closed") {
    tcp::socket s{ioc};
    bool connected = false;
    std::optional<boost::system::error_code> read;
    std::array<char, 64> buf{};
    auto const start = std::chrono::steady_clock::now();
    s.async_connect({net::ip::make_address("127.0.0.1"), w.tls_port}, [&](boost::system::error_code ec) {
      connected = !ec;
      if (ec) return;
      s.async_read_some(net::buffer(buf), [&](boost::system::error_code ec, std::size_t) { read = ec; });
    });
    REQUIRE(run_until(ioc, [&] { return read.has_value(); }, 10s));
    auto const took = std::chrono::steady_clock::now() - start;
    CHECK(connected);
    CHECK(*read == net::error::eof);
    CHECK(took >= 250ms);  // closed by the bound, not at once
  }
  SECTION("an HTTP request sent in the clear gets no answer, and the connection closes") {
    tcp::socket s{ioc};
    std::string const req = "GET /hello HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
    std::string got;
    std::array<char, 256> buf{};
    std::optional<boost::system::error_code> done;
    std::function<void()> read = [&] {
      s.async_read_some(net::buffer(buf), [&](boost::system::error_code ec, std::size_t n) {
        got.append(buf.data(), n);
        if (ec) done = ec;
        else read();
      });
    };
    s.async_connect({net::ip::make_address("127.0.0.1"), w.tls_port}, [&](boost::system::error_code ec) {
      if (ec) {
        done = ec;
        return;
      }
      net::async_write(s, net::buffer(req), [](boost::system::error_code, std::size_t) {});
      read();
    });
    REQUIRE(run_until(ioc, [&] { return done.has_value(); }, 10s));
    CHECK(got.find("hello") == std::string::npos);
    CHECK(got.find("HTTP/1.1 200") == std::string::npos);
  }
}

TEST_CASE("tls server: unusable certificate files are configuration errors that name the file", "[unit][tls]") {
  CertFiles files;
  net::io_context ioc;
  herald::TlsServer server{ioc.get_executor()};
  auto message_of = [&](herald::TlsOptions const& o) -> std::string {
    try {
      server.listen("127.0.0.1", 0, o);
    } catch (boost::system::system_error const& e) {
      return e.what();
    }
    return "(no exception)";
  };
  SECTION("a certificate file that does not exist") {
    auto const m = message_of({.certificate_chain_file = files.path("missing.pem"), .private_key_file = files.path("key.pem")});
    CHECK_THAT(m, Catch::Contains("certificate_chain_file") && Catch::Contains("missing.pem"));
  }
  SECTION("a key file that does not exist") {
    auto const m = message_of({.certificate_chain_file = files.path("cert.pem"), .private_key_file = files.path("nokey.pem")});
    CHECK_THAT(m, Catch::Contains("private_key_file") && Catch::Contains("nokey.pem"));
  }
  SECTION("a file that is not PEM") {
    files.write("junk.pem", "not a certificate\n");
    auto const m = message_of({.certificate_chain_file = files.path("junk.pem"), .private_key_file = files.path("key.pem")});
    CHECK_THAT(m, Catch::Contains("junk.pem"));
  }
  SECTION("a key of another certificate") {
    auto const other = test::make_self_signed("other", "DNS:other.example");
    files.write("other-key.pem", other.key_pem);
    auto const m = message_of({.certificate_chain_file = files.path("cert.pem"), .private_key_file = files.path("other-key.pem")});
    // OpenSSL finds the mismatch as it loads the key ("key values mismatch").
    CHECK_THAT(m, Catch::Contains("private_key_file") && Catch::Contains("other-key.pem") &&
                      (Catch::Contains("mismatch") || Catch::Contains("does not belong")));
  }
  SECTION("empty paths") {
    CHECK_THAT(message_of({}), Catch::Contains("certificate_chain_file is empty"));
  }
  SECTION("no context") {
    CHECK_THROWS_AS(server.listen("127.0.0.1", 0, std::shared_ptr<net::ssl::context>{}), std::invalid_argument);
  }
  // Nothing was bound by a failed listen: the server has no listener.
  CHECK(server.local_endpoint().port() == 0);
}
