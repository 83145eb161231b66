#pragma once

// What herald::Server's handle and its connections share: options, routes, listeners and the
// registry of live connections (limits, graceful stop). Included by impl/server.hpp only.

#include <herald/detail/response.hpp>

#include <boost/asio/strand.hpp>
#include <boost/beast/core/tcp_stream.hpp>

#include <atomic>
#include <functional>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <tuple>
#include <unordered_map>
#include <variant>
#include <vector>

namespace herald::inline v0::detail {

template <class State, class Stream>
class HttpSession;

/** How a server's connections of type `Stream` begin. Plain TCP needs nothing; TLS specializes
    this (tls_server.hpp) with its context and handshake. */
template <class Stream>
struct ServerStream {
  /// What a listener of these streams holds (a TLS context; nothing here).
  struct Config {};
  static Stream make(net::ip::tcp::socket&& socket, Config const&) { return Stream(std::move(socket)); }
  /// Whether a handshake precedes the first request (bounded by ServerOptions::request_timeout).
  static constexpr bool handshake = false;
  template <class Handler>
  static void async_handshake(Stream&, Handler&&) {}
  /// Whether a read error only means the client went away (a TLS close without close_notify).
  static bool peer_gone(boost::system::error_code const&) noexcept { return false; }
};

/// The face of one connection the server tracks (for its limit and for shutdown).
class ServerConnection {
 public:
  virtual ~ServerConnection() = default;
  /// Close if idle; a connection writing a response closes after it.
  virtual void stop() = 0;
  virtual void abort() = 0;
};

/// A channel's route: the type-erased endpoint, and its hand-off for each stream type.
template <class... Streams>
struct ChannelRoute {
  std::shared_ptr<Endpoint> endpoint;
  /// Takes the stream, its request and the bytes read past the request.
  std::tuple<std::function<void(Streams&&, Request&&, std::string&&)>...> accept;
};

/// Shared by the server handle and its connections, so connections never outlive what they use.
template <class... Streams>
class ServerState : public std::enable_shared_from_this<ServerState<Streams...>> {
 public:
  using Routed = ChannelRoute<Streams...>;
  using Route = std::variant<Routed, Handler, AsyncHandler>;

  ServerState(net::any_io_executor ex, ServerOptions options) : ex_(std::move(ex)), options_(std::move(options)) {
    if (options_.retry_after.count() <= 0)
      throw std::invalid_argument("herald: ServerOptions::retry_after must be positive");
  }

  net::any_io_executor const& executor() const noexcept { return ex_; }
  ServerOptions const& options() const noexcept { return options_; }

  void add_route(std::string path, Route route) {
    if (path.empty() || path.front() != '/')
      throw std::invalid_argument("herald: route path must start with '/'");
    if (!routes_.emplace(std::move(path), std::move(route)).second)
      throw std::invalid_argument("herald: a route for this path exists already");
  }

  Route const* find(std::string_view path) const {
    auto it = routes_.find(path);
    return it == routes_.end() ? nullptr : &it->second;
  }

  template <class Stream>
  net::ip::tcp::endpoint listen(std::string_view host, std::uint16_t port,
                                typename ServerStream<Stream>::Config config) {
    auto const address = net::ip::make_address(host == "localhost" ? "127.0.0.1" : std::string(host));
    net::ip::tcp::endpoint const ep{address, port};
    auto listener = std::make_shared<Listener<Stream>>(this->shared_from_this(), std::move(config));
    auto& acceptor = listener->acceptor;
    acceptor.open(ep.protocol());
    acceptor.set_option(net::socket_base::reuse_address(true));
    acceptor.bind(ep);
    acceptor.listen(options_.backlog);
    auto const bound = acceptor.local_endpoint();
    {
      std::lock_guard lock{mutex_};
      if (listeners_.empty()) bound_ = bound;
      listeners_.push_back(listener);
    }
    net::dispatch(acceptor.get_executor(), [listener] { listener->accept(); });
    return bound;
  }

  net::ip::tcp::endpoint local_endpoint() const {
    std::lock_guard lock{mutex_};
    return bound_;
  }

  void log(LogLevel level, boost::system::error_code ec, std::string_view message) const noexcept {
    if (!options_.log || level < options_.log_level) return;
    try {
      options_.log(LogRecord{level, "server", 0, ec, message});
    } catch (...) {
    }
  }

  // Connection registry: for the connection limit and for shutdown.
  bool add(ServerConnection* s, std::weak_ptr<ServerConnection> w) {
    std::lock_guard lock{mutex_};
    if (stopping_ || sessions_.size() >= options_.max_connections) return false;
    sessions_.emplace(s, std::move(w));
    return true;
  }
  void remove(ServerConnection* s) {
    std::lock_guard lock{mutex_};
    sessions_.erase(s);
  }

  /** Connections over the limit read their request (briefly, see HttpSession::refuse) while
      fewer than this many are doing so; the others get their 503 at once. */
  static constexpr std::size_t max_refusing = 64;
  bool begin_refusal() {
    std::lock_guard lock{mutex_};
    if (refusing_ >= max_refusing) return false;
    ++refusing_;
    return true;
  }
  void end_refusal() {
    std::lock_guard lock{mutex_};
    --refusing_;
  }
  bool stopping() const {
    std::lock_guard lock{mutex_};
    return stopping_;
  }

  void begin_stop() { stop_all(false); }
  void abort_all() { stop_all(true); }

  bool drained() const {
    {
      std::lock_guard lock{mutex_};
      if (!sessions_.empty()) return false;
    }
    for (auto const& [path, route] : routes_)
      if (auto const* ch = std::get_if<ChannelRoute<Streams...>>(&route); ch && ch->endpoint->active() != 0)
        return false;
    return true;
  }

 private:
  /// Type-erased so that listeners of several stream types share one list.
  struct ListenerBase {
    virtual ~ListenerBase() = default;
    virtual void close() = 0;
  };

  /// One listening socket and the accept loop that makes `Stream` connections.
  template <class Stream>
  struct Listener final : ListenerBase, std::enable_shared_from_this<Listener<Stream>> {
    Listener(std::shared_ptr<ServerState> server, typename ServerStream<Stream>::Config config)
        : server(std::move(server)), config(std::move(config)), acceptor(new_strand(this->server->ex_)) {}

    void accept() {
      acceptor.async_accept(new_strand(server->ex_), [self = this->shared_from_this()](boost::system::error_code ec,
                                                                                  net::ip::tcp::socket socket) {
        if (!self->acceptor.is_open()) return;
        if (ec) {
          // Out of descriptors or similar: back off instead of spinning on the error.
          self->server->log(LogLevel::error, ec, "accept failed");
          self->retry.emplace(self->acceptor.get_executor());
          self->retry->expires_after(std::chrono::milliseconds(100));
          self->retry->async_wait([self](boost::system::error_code) {
            if (self->acceptor.is_open()) self->accept();
          });
          return;
        }
        socket.set_option(net::ip::tcp::no_delay(true), ec);
        std::make_shared<HttpSession<ServerState, Stream>>(
            self->server, ServerStream<Stream>::make(std::move(socket), self->config))
            ->start();
        self->accept();
      });
    }

    void close() override {
      net::dispatch(acceptor.get_executor(), [self = this->shared_from_this()] {
        boost::system::error_code ignored;
        self->acceptor.close(ignored);
        if (self->retry) self->retry->cancel();
      });
    }

    std::shared_ptr<ServerState> server;
    typename ServerStream<Stream>::Config config;
    net::ip::tcp::acceptor acceptor;
    std::optional<net::steady_timer> retry;
  };

  void stop_all(bool now) {
    std::vector<std::shared_ptr<ServerConnection>> sessions;
    std::vector<std::shared_ptr<ListenerBase>> listeners;
    {
      std::lock_guard lock{mutex_};
      stopping_ = true;
      for (auto& [raw, weak] : sessions_)
        if (auto s = weak.lock()) sessions.push_back(std::move(s));
      // The listeners hold the state: dropping them here breaks the cycle once they are closed.
      listeners.swap(listeners_);
    }
    for (auto& l : listeners) l->close();
    for (auto& s : sessions) now ? s->abort() : s->stop();
    for (auto& [path, route] : routes_)
      if (auto const* ch = std::get_if<ChannelRoute<Streams...>>(&route))
        now ? ch->endpoint->abort() : ch->endpoint->shutdown();
  }

  net::any_io_executor ex_;
  ServerOptions options_;
  std::map<std::string, Route, std::less<>> routes_;
  mutable std::mutex mutex_;
  std::vector<std::shared_ptr<ListenerBase>> listeners_;
  net::ip::tcp::endpoint bound_;
  bool stopping_ = false;
  std::size_t refusing_ = 0;
  std::unordered_map<ServerConnection*, std::weak_ptr<ServerConnection>> sessions_;
};

}  // namespace herald::inline v0::detail
