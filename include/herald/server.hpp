#pragma once

#include <herald/channel.hpp>
#include <herald/config.hpp>
#include <herald/detail/channel_core.hpp>
#include <herald/detail/http.hpp>
#include <herald/hooks.hpp>
#include <herald/log.hpp>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core/tcp_stream.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

namespace herald::inline v0 {

namespace detail {
template <class... Streams>
class ServerState;
template <class Stream>
struct ServerStream;
}

/// Limits and timeouts of herald::Server. Every default is safe for a public server.
struct ServerOptions {
  /** HTTP connections held at once (streams handed to channels count against the channel).
      A connection over it still sends its request (within 2 s and 4 KiB; 64 such at a time,
      more get the 503 at once) and gets a refusal its client retries: an event stream that
      ends with `retry:` for an EventSource's request (which a 503 would end for good), else
      503 with Retry-After; over TLS it is closed unanswered. */
  std::size_t max_connections = 10'000;
  /// The Retry-After (and SSE retry:) of those refusals and of a refusal during shutdown. Positive.
  std::chrono::seconds retry_after = default_retry_after;
  /// Largest request header; larger ones get 431.
  std::size_t header_limit = 8 * 1024;
  /// Largest request body; larger ones get 413.
  std::size_t body_limit = 64 * 1024;
  /// Time allowed to receive a complete request, including between keep-alive requests.
  std::chrono::milliseconds request_timeout = std::chrono::seconds(10);
  /// Backlog of the listening socket.
  int backlog = 1024;
  /// Log hook for connection-level events; none by default.
  LogHook log;
  LogLevel log_level = LogLevel::info;
};

/** A plain HTTP route's handler. Runs on the connection's strand and must not block; if it
    throws, the client gets a 500. */
using Handler = std::function<http::response<http::string_body>(Request const&)>;

/** Sends the answer of an asynchronous route. Call it once, from any thread; later calls, and a
    call after the client went away, do nothing. */
using Reply = std::function<void(http::response<http::string_body>)>;

/** A plain route's handler that answers later (after an async_publish, a database query...):
    it must call `reply` exactly once, or the request stays open until the client gives up or
    the server stops. Runs on the connection's strand and must not block; if it throws before
    replying, the client gets a 500. */
using AsyncHandler = std::function<void(Request const&, Reply reply)>;

/** The value of `key` in the query of a request target ("/p?a=1&b=x%20y"), percent-decoded;
    nullopt if the key is absent, appears more than once (which value was meant is a guess a
    route should not make: answer 400) or the query is malformed. For plain routes (handle,
    handle_async); channels parse their own parameters. */
inline std::optional<std::string> query_param(std::string_view target, std::string_view key) {
  auto const params = detail::parse_query(detail::target_query(target));
  if (!params) return std::nullopt;
  std::optional<std::string> found;
  for (auto const& [k, v] : *params) {
    if (k != key) continue;
    if (found) return std::nullopt;
    found = v;
  }
  return found;
}

/** The server behind herald::Server and herald::TlsServer: listeners, a router by path,
    keep-alive for plain requests, 404 for unknown paths, graceful stop. It runs on the
    application's executor and starts no threads.

    `Streams` are the stream types its connections can have (beast::tcp_stream, and
    beast::ssl_stream<beast::tcp_stream> for herald::TlsServer): each channel added gets a
    hand-off for each of them, compiled where the server type is named, so code that names
    only herald::Server never sees OpenSSL.

    Thread safety: add(), handle() and handle_async() before listen(); the rest from any thread.
*/
template <class... Streams>
class BasicServer {
 public:
  using executor_type = net::any_io_executor;

  explicit BasicServer(executor_type ex, ServerOptions options = {});
  BasicServer(BasicServer const&) = delete;
  BasicServer& operator=(BasicServer const&) = delete;
  /// Closes the listeners and every connection still open.
  ~BasicServer();

  /// Route the channel's path to it. Throws std::invalid_argument if the path is taken.
  template <Transport T>
  BasicServer& add(Channel<T> const& channel);

  /// Serve `path` with `handler` (any method). Throws std::invalid_argument if the path is taken.
  BasicServer& handle(std::string path, Handler handler);

  /** Serve `path` with `handler`, which answers through its Reply when it is ready. The
      connection stays the server's (keep-alive, limits, graceful stop), and the answer gets its
      Content-Length. Throws std::invalid_argument if the path is taken.

      Example:
        server.handle_async("/publish", [&](herald::Request const& req, herald::Reply reply) {
          hub.async_publish("t", req.body(), [reply](auto ec, herald::EventId id) { reply(…); });
        });
  */
  BasicServer& handle_async(std::string path, AsyncHandler handler);

  /** Bind a plain-TCP listener (http, ws) and start accepting. `host` is an IP literal or
      "localhost"; port 0 picks a free port. Returns the bound endpoint. May be called again for
      more listeners (another address or port); they share routes, limits and async_stop.
      Throws boost::system::system_error on failure. */
  net::ip::tcp::endpoint listen(std::string_view host, std::uint16_t port);

  /// The endpoint of the first listener.
  net::ip::tcp::endpoint local_endpoint() const;

  /** Stop gracefully: stop accepting, close idle connections, ask every channel to tell its
      clients (SSE final `retry:`, WebSocket 1001), then wait for them to close. Whatever is
      still open after `grace` is closed at once.

      Completion signature: void(error_code) — success if every connection closed within
      `grace`, net::error::timed_out if some had to be cut. Must not be called twice.
  */
  template <class Token = net::default_completion_token_t<executor_type>>
  auto async_stop(std::chrono::steady_clock::duration grace,
                  Token&& token = net::default_completion_token_t<executor_type>());

  executor_type get_executor() const noexcept;

 protected:
  /// Bind a listener whose connections are `Stream`s made with `config` (see detail::ServerStream).
  template <class Stream>
  net::ip::tcp::endpoint listen_as(std::string_view host, std::uint16_t port,
                                   typename detail::ServerStream<Stream>::Config config);

 private:
  std::shared_ptr<detail::ServerState<Streams...>> state_;
};

/** A small standalone HTTP/1.1 server over plain TCP (http, ws): listener, router by path,
    keep-alive for plain requests, 404 for unknown paths, graceful stop. It runs on the
    application's executor and starts no threads. For https and wss, herald::TlsServer
    (<herald/tls_server.hpp>, link herald::tls) has the same interface and also listens with a
    certificate.

    Thread safety: add() and handle() before listen(); the rest from any thread.

    Example:
      herald::Server server{ioc.get_executor()};
      server.add(feed);
      server.listen("127.0.0.1", 8080);
      ioc.run();
*/
class Server final : public BasicServer<beast::tcp_stream> {
 public:
  using BasicServer::BasicServer;
};

}  // namespace herald

#include <herald/impl/server.hpp>
