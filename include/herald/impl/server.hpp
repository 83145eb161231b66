#pragma once

#include <herald/detail/response.hpp>

#include <boost/asio/bind_executor.hpp>
#include <boost/asio/compose.hpp>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/serializer.hpp>
#include <boost/beast/http/write.hpp>

#include <atomic>
#include <map>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <tuple>
#include <type_traits>
#include <unordered_map>
#include <vector>
#include <variant>

namespace herald::inline v0::detail {

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
  std::tuple<std::function<void(Streams&&, Request&&)>...> accept;
};

template <class State, class Stream>
class HttpSession;

/// Shared by the server handle and its connections, so connections never outlive what they use.
template <class... Streams>
class ServerState : public std::enable_shared_from_this<ServerState<Streams...>> {
 public:
  using Routed = ChannelRoute<Streams...>;
  using Route = std::variant<Routed, Handler, AsyncHandler>;

  ServerState(net::any_io_executor ex, ServerOptions options) : ex_(std::move(ex)), options_(std::move(options)) {}

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
  std::unordered_map<ServerConnection*, std::weak_ptr<ServerConnection>> sessions_;
};

/** One HTTP/1.1 connection until it is handed to a channel or closed.

    Requests a channel answers in place (polling) keep the connection here: while a long poll is
    held, a read stays outstanding so that a client that goes away cancels it at once; bytes
    that arrive meanwhile (a pipelined request) are kept in the buffer, up to header_limit, and
    parsed once the answer is written. */
template <class State, class Stream>
class HttpSession final : public ServerConnection,
                          public std::enable_shared_from_this<HttpSession<State, Stream>> {
 public:
  HttpSession(std::shared_ptr<State> server, Stream&& stream)
      : server_(std::move(server)), stream_(std::move(stream)) {}

  void start() {
    if (!server_->add(this, this->weak_from_this())) {
      auto ec = server_->stopping() ? make_error_code(error::shutting_down)
                                    : make_error_code(error::too_many_connections);
      server_->log(LogLevel::warning, ec, "connection refused");
      // Over TLS the answer would need a handshake first, which is what the limit spares.
      if constexpr (ServerStream<Stream>::handshake) close_stream(stream_);
      else write_and_close(std::move(stream_), error_response(ec, {}, 11, false));
      return;
    }
    registered_ = true;
    net::dispatch(stream_.get_executor(), [self = this->shared_from_this()] {
      if constexpr (ServerStream<Stream>::handshake) self->handshake();
      else self->read();
    });
  }

  ~HttpSession() override {
    if (registered_) server_->remove(this);
  }

  void stop() override {
    net::post(stream_.get_executor(), [self = this->shared_from_this()] {
      if (self->reading_) self->close();
    });
  }

  void abort() override {
    net::post(stream_.get_executor(), [self = this->shared_from_this()] { self->close(); });
  }

 private:
  beast::tcp_stream& tcp() noexcept { return beast::get_lowest_layer(stream_); }

  // The handshake counts as reading a request: request_timeout bounds it, and stop() closes it.
  void handshake() {
    if (server_->stopping()) return close();
    tcp().expires_after(server_->options().request_timeout);
    reading_ = true;
    ServerStream<Stream>::async_handshake(stream_, [self = this->shared_from_this()](boost::system::error_code ec) {
      self->reading_ = false;
      if (ec) {
        self->server_->log(LogLevel::info, ec, "tls handshake failed");
        return self->close();
      }
      self->read();
    });
  }

  void read() {
    if (server_->stopping()) return close();
    parser_.emplace();
    parser_->header_limit(static_cast<std::uint32_t>(server_->options().header_limit));
    parser_->body_limit(server_->options().body_limit);
    tcp().expires_after(server_->options().request_timeout);
    reading_ = true;
    http::async_read(stream_, buffer_, *parser_,
                     [self = this->shared_from_this()](boost::system::error_code ec, std::size_t) {
                       self->reading_ = false;
                       self->on_read(ec);
                     });
  }

  void on_read(boost::system::error_code ec) {
    if (ec == http::error::end_of_stream || ec == net::error::operation_aborted ||
        ec == beast::error::timeout || ServerStream<Stream>::peer_gone(ec))
      return close();
    if (ec) {
      // The request could not be parsed: answer once, then close (the framing is lost).
      error e = error::bad_request;
      if (ec == http::error::header_limit) e = error::message_too_big;
      if (ec == http::error::body_limit) e = error::message_too_big;
      server_->log(LogLevel::info, ec, "bad request");
      auto res = error_response(e, ec.message(), 11, false);
      if (ec == http::error::header_limit)
        res.result(http::status::request_header_fields_too_large);
      return respond(std::move(res), false);
    }
    Request req = parser_->release();
    auto const* route = server_->find(target_path(req.target()));
    if (!route) {
      auto res = error_response(error::not_found, {}, req.version(), req.keep_alive());
      return respond(std::move(res), req.method() == http::verb::head);
    }
    if (auto const* channel = std::get_if<typename State::Routed>(route)) {
      if (channel->endpoint->answers(req)) return exchange(*channel->endpoint, std::move(req));
      tcp().expires_never();
      server_->remove(this);
      registered_ = false;
      std::get<std::function<void(Stream&&, Request&&)>>(channel->accept)(std::move(stream_), std::move(req));
      return;
    }
    if (auto const* async = std::get_if<AsyncHandler>(route)) return later(*async, std::move(req));
    http::response<http::string_body> res;
    try {
      res = std::get<Handler>(*route)(req);
    } catch (...) {
      server_->log(LogLevel::error, error::hook_failed, "handler threw");
      res = error_response(error::hook_failed, {}, req.version(), false);
    }
    res.version(req.version());
    res.keep_alive(req.keep_alive() && res.keep_alive());
    res.prepare_payload();
    respond(std::move(res), req.method() == http::verb::head);
  }

  void respond(http::response<http::string_body>&& res, bool head_only) {
    res_ = std::move(res);
    if (server_->stopping()) res_.keep_alive(false);
    serializer_.emplace(res_);
    tcp().expires_after(server_->options().request_timeout);
    auto done = [self = this->shared_from_this()](boost::system::error_code ec, std::size_t) {
      self->serializer_.reset();
      if (ec || !self->res_.keep_alive()) return self->close();
      // A read watching a held request is still out: stop it, its handler reads the next request.
      if (self->watching_) {
        self->resume_ = true;
        boost::system::error_code ignored;
        lowest_socket(self->stream_).cancel(ignored);
        return;
      }
      self->read();
    };
    if (head_only) http::async_write_header(stream_, *serializer_, std::move(done));
    else http::async_write(stream_, *serializer_, std::move(done));
  }

  void close() {
    if (auto held = std::exchange(held_, {}).lock()) held->cancel();
    // No expires_never() here: Beast asserts when a read and a write are both pending (a held
    // poll's answer being written while watch() reads). Closing the socket completes every
    // pending operation, and each cancels its own timer.
    close_stream(stream_);
  }

  // A request the channel answers in place; the connection stays here.
  void exchange(Endpoint& endpoint, Request&& req) {
    bool const head = req.method() == http::verb::head;
    unsigned const version = req.version();
    bool const keep_alive = req.keep_alive();
    answered_ = false;
    tcp().expires_never();  // a held request is bounded by its own wait
    auto held = endpoint.answer(std::move(req), stream_.get_executor(),
                                [self = this->shared_from_this(), head, version, keep_alive](Response&& res) {
                                  self->answered(std::move(res), head, version, keep_alive);
                                });
    if (answered_) return;
    held_ = std::move(held);
    watch();
  }

  /** A route that answers later: like a held request, the connection watches for its client
      going away meanwhile. The Reply holds the session weakly (the watching read keeps it), so a
      reply after the client left does nothing, and a reply that never comes holds nothing. */
  void later(AsyncHandler const& handler, Request&& req) {
    bool const head = req.method() == http::verb::head;
    unsigned const version = req.version();
    bool const keep_alive = req.keep_alive();
    answered_ = false;
    tcp().expires_never();
    auto once = std::make_shared<std::atomic<bool>>(false);
    Reply reply = [w = this->weak_from_this(), ex = stream_.get_executor(), once, head, version,
                   keep_alive](http::response<http::string_body> res) {
      if (once->exchange(true)) return;
      net::post(ex, [w, res = std::move(res), head, version, keep_alive]() mutable {
        auto self = w.lock();
        if (!self || self->answered_) return;
        try {
          res.prepare_payload();
        } catch (std::exception const&) {  // a body on a 1xx, 204 or 304
          self->server_->log(LogLevel::error, error::hook_failed, "reply with a body its status forbids");
          res = error_response(error::hook_failed, {}, version, false);
        }
        self->answered(std::move(res), head, version, keep_alive);
      });
    };
    try {
      handler(req, reply);
    } catch (...) {
      server_->log(LogLevel::error, error::hook_failed, "handler threw");
      reply(error_response(error::hook_failed, {}, version, false));
    }
    watch();
  }

  void answered(Response&& res, bool head, unsigned version, bool keep_alive) {
    answered_ = true;
    held_.reset();
    res.version(version);
    res.keep_alive(keep_alive && res.keep_alive());
    respond(std::move(res), head);
  }

  void watch() {
    if (buffer_.size() >= server_->options().header_limit) return;  // enough pipelined for now
    watching_ = true;
    stream_.async_read_some(buffer_.prepare(1024), [self = this->shared_from_this()](boost::system::error_code ec,
                                                                                      std::size_t n) {
      self->watching_ = false;
      self->buffer_.commit(n);
      if (self->resume_) {  // the answer is written and keep-alive goes on
        self->resume_ = false;
        return ec && ec != net::error::operation_aborted ? self->close() : self->read();
      }
      if (self->answered_) return;  // the answer is being written; its completion carries on
      if (ec) return self->close();  // the client went away: close() cancels the held request
      self->watch();
    });
  }

  std::shared_ptr<State> server_;
  Stream stream_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  http::response<http::string_body> res_;
  std::optional<http::response_serializer<http::string_body>> serializer_;
  // Weak: a held request keeps itself alive (its wait timer), and its respond keeps this session;
  // a strong pointer back would be a cycle that outlives a destroyed io_context.
  std::weak_ptr<Held> held_;
  bool reading_ = false;
  bool answered_ = false;
  bool watching_ = false;
  bool resume_ = false;
  bool registered_ = false;
};

/// The state machine of async_stop: begin, poll until drained or past the deadline.
template <class State>
struct StopOp {
  std::shared_ptr<State> server;
  std::chrono::steady_clock::time_point deadline;
  std::unique_ptr<net::steady_timer> timer;
  bool started = false;

  template <class Self>
  void operator()(Self& self, boost::system::error_code = {}) {
    if (!started) {
      started = true;
      server->begin_stop();
    } else if (server->drained()) {
      return self.complete({});
    } else if (std::chrono::steady_clock::now() >= deadline) {
      server->abort_all();
      return self.complete(net::error::timed_out);
    }
    // Connections close on their own strands; poll briefly rather than couple every session
    // to a completion callback (shutdown is rare, and this bounds the wait at the deadline).
    timer->expires_after(std::chrono::milliseconds(5));
    timer->async_wait(std::move(self));
  }
};

}  // namespace herald::detail

namespace herald::inline v0 {

template <class... Streams>
BasicServer<Streams...>::BasicServer(executor_type ex, ServerOptions options)
    : state_(std::make_shared<detail::ServerState<Streams...>>(std::move(ex), std::move(options))) {}

template <class... Streams>
BasicServer<Streams...>::~BasicServer() {
  if (state_) state_->abort_all();
}

template <class... Streams>
template <Transport T>
BasicServer<Streams...>& BasicServer<Streams...>::add(Channel<T> const& channel) {
  // The hand-offs are compiled here, where T and every stream type are known.
  auto impl = std::static_pointer_cast<detail::ChannelImpl<T>>(channel.endpoint());
  typename detail::ServerState<Streams...>::Routed route{
      channel.endpoint(), {std::function<void(Streams&&, Request&&)>([impl](Streams&& stream, Request&& req) {
        impl->accept_stream(std::move(stream), std::move(req));
      })...}};
  state_->add_route(channel.path(), std::move(route));
  return *this;
}

template <class... Streams>
BasicServer<Streams...>& BasicServer<Streams...>::handle(std::string path, Handler handler) {
  if (!handler) throw std::invalid_argument("herald: Server::handle needs a handler");
  state_->add_route(std::move(path), std::move(handler));
  return *this;
}

template <class... Streams>
BasicServer<Streams...>& BasicServer<Streams...>::handle_async(std::string path, AsyncHandler handler) {
  if (!handler) throw std::invalid_argument("herald: Server::handle_async needs a handler");
  state_->add_route(std::move(path), std::move(handler));
  return *this;
}

template <class... Streams>
net::ip::tcp::endpoint BasicServer<Streams...>::listen(std::string_view host, std::uint16_t port) {
  return listen_as<beast::tcp_stream>(host, port, {});
}

template <class... Streams>
template <class Stream>
net::ip::tcp::endpoint BasicServer<Streams...>::listen_as(std::string_view host, std::uint16_t port,
                                                          typename detail::ServerStream<Stream>::Config config) {
  static_assert((std::is_same_v<Stream, Streams> || ...), "herald: this server does not serve that stream type");
  return state_->template listen<Stream>(host, port, std::move(config));
}

template <class... Streams>
net::ip::tcp::endpoint BasicServer<Streams...>::local_endpoint() const {
  return state_->local_endpoint();
}

template <class... Streams>
typename BasicServer<Streams...>::executor_type BasicServer<Streams...>::get_executor() const noexcept {
  return state_->executor();
}

template <class... Streams>
template <class Token>
auto BasicServer<Streams...>::async_stop(std::chrono::steady_clock::duration grace, Token&& token) {
  using State = detail::ServerState<Streams...>;
  auto timer = std::make_unique<net::steady_timer>(state_->executor());
  return net::async_compose<Token, void(boost::system::error_code)>(
      detail::StopOp<State>{state_, std::chrono::steady_clock::now() + grace, std::move(timer)}, token,
      state_->executor());
}

}  // namespace herald
