#pragma once

// One HTTP/1.1 connection of herald::Server: read a request, route it (a channel takes the
// connection over, answers it in place, or a plain route answers), write, keep alive.
// Included by impl/server.hpp only, after impl/server_state.hpp.

#include <herald/detail/response.hpp>

#include <boost/asio/bind_executor.hpp>
#include <boost/asio/compose.hpp>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/beast/core/buffers_to_string.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/serializer.hpp>
#include <boost/beast/http/write.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
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
      auto const ec = server_->refusal_reason();
      server_->log(LogLevel::warning, ec, "connection refused");
      // Over TLS the answer would need a handshake first, which is what the limit spares (a
      // connection closed unanswered is a network error, which EventSource retries).
      if constexpr (ServerStream<Stream>::handshake) close_stream(stream_);
      else refuse(ec);
      return;
    }
    registered_ = true;
    if constexpr (std::is_same_v<Stream, beast::tcp_stream>) {
      // Answers are tried as a non-blocking send first (async_write_answer); asynchronous
      // operations do not mind the mode.
      boost::system::error_code ignored;
      tcp().socket().non_blocking(true, ignored);
    }
    net::dispatch(stream_.get_executor(), [self = this->shared_from_this()] {
      if constexpr (ServerStream<Stream>::handshake) self->handshake();
      else self->read();
    });
  }

  ~HttpSession() override {
    if (registered_) server_->remove(this);
    if (refusing_) server_->end_refusal();
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

  /// How long, and how much, a connection over the limit may take to send its request.
  static constexpr std::chrono::seconds refusal_timeout{2};
  static constexpr std::size_t refusal_header_limit = 4 * 1024;

  /** Over the server's connection limit: read the request's header, under refusal_timeout and
      refusal_header_limit, to answer with a refusal its client retries: an EventSource gives up
      for good on a 503, but comes back after a stream that ends (retryable_refusal, with the
      channel's CORS headers). The first ServerState::max_refusing at a time; the others, and
      a request over the size, get the 503 with Retry-After; one that does not arrive in time
      gets nothing. Not registered: neither counted nor stopped, only bounded by the timeout. */
  void refuse(boost::system::error_code ec) {
    auto const& o = server_->options();
    if (!server_->begin_refusal())
      return write_and_close(std::move(stream_), error_response(ec, {}, 11, false, server_->retry_after(ec)));
    refusing_ = true;
    parser_.emplace();
    parser_->header_limit(static_cast<std::uint32_t>(std::min(o.header_limit, refusal_header_limit)));
    tcp().expires_after(std::min<std::chrono::steady_clock::duration>(o.request_timeout, refusal_timeout));
    http::async_read_header(stream_, buffer_, *parser_,
                            [self = this->shared_from_this(), ec](boost::system::error_code read_ec, std::size_t) {
                              self->refused(ec, read_ec);
                            });
  }

  void refused(boost::system::error_code ec, boost::system::error_code read_ec) {
    if (read_ec == http::error::end_of_stream || read_ec == net::error::operation_aborted ||
        read_ec == beast::error::timeout || read_ec == net::error::eof || read_ec == net::error::connection_reset)
      return close();
    auto const retry_after = server_->retry_after(ec);
    if (read_ec) {
      res_ = error_response(ec, {}, 11, false, retry_after);
    } else {
      auto const& req = parser_->get();
      auto const* route = server_->find(target_path(req.target()));
      auto const* channel = route ? std::get_if<typename State::Routed>(route) : nullptr;
      res_ = channel ? channel->endpoint->refusal(req, ec, retry_after) : retryable_refusal(req, ec, retry_after);
    }
    serializer_.emplace(res_);
    // Still under the deadline refuse() set: a client that does not read its answer is cut.
    http::async_write(stream_, *serializer_,
                      [self = this->shared_from_this()](boost::system::error_code, std::size_t) { self->close(); });
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
      // A client may send its first WebSocket frames in the same packet as the upgrade.
      std::get<std::function<void(Stream&&, Request&&, std::string&&)>>(channel->accept)(
          std::move(stream_), std::move(req), beast::buffers_to_string(buffer_.data()));
      return;
    }
    if (auto const* async = std::get_if<AsyncHandler>(route)) return later(*async, std::move(req));
    Response res;
    try {
      res = to_answer(std::get<Handler>(*route)(req));
    } catch (...) {
      server_->log(LogLevel::error, error::hook_failed, "handler threw");
      res = error_response(error::hook_failed, {}, req.version(), false);
    }
    res.version(req.version());
    res.keep_alive(req.keep_alive() && res.keep_alive());
    res.prepare_payload();
    respond(std::move(res), req.method() == http::verb::head);
  }

  void respond(Response&& res, bool head_only) {
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
    async_write_answer(stream_, *serializer_, gather_, head_only, std::move(done));
  }

  void close() {
    if (auto held = std::exchange(held_, {}).lock()) held->cancel();
    // No expires_never() here: Beast asserts when a read and a write are both pending (a held
    // poll's answer being written while watch() reads). Closing the socket completes every
    // pending operation, and each cancels its own timer.
    close_stream(stream_);
  }

  net::ip::tcp::endpoint const& remote() {
    if (!remote_) remote_ = remote_of(stream_);
    return *remote_;
  }

  // A request the channel answers in place; the connection stays here.
  void exchange(Endpoint& endpoint, Request&& req) {
    bool const head = req.method() == http::verb::head;
    unsigned const version = req.version();
    bool const keep_alive = req.keep_alive();
    answered_ = false;
    tcp().expires_never();  // a held request is bounded by its own wait
    auto held = endpoint.answer(
        std::move(req), stream_.get_executor(),
        [self = this->shared_from_this(), head, version, keep_alive](Response&& res) {
          self->answered(std::move(res), head, version, keep_alive);
        },
        remote());
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
        Response answer;
        try {
          res.prepare_payload();
          answer = to_answer(std::move(res));
        } catch (std::exception const&) {  // a body on a 1xx, 204 or 304
          self->server_->log(LogLevel::error, error::hook_failed, "reply with a body its status forbids");
          answer = error_response(error::hook_failed, {}, version, false);
        }
        self->answered(std::move(answer), head, version, keep_alive);
      });
    };
    try {
      handler(req, reply);
    } catch (...) {
      server_->log(LogLevel::error, error::hook_failed, "handler threw");
      reply(error_response<http::string_body>(error::hook_failed, {}, version, false));
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
  Response res_;
  std::optional<http::response_serializer<AnswerBody>> serializer_;
  std::vector<net::const_buffer> gather_;  // a spliced answer's pieces while they are written
  // Weak: a held request keeps itself alive (its wait timer), and its respond keeps this session;
  // a strong pointer back would be a cycle that outlives a destroyed io_context.
  std::weak_ptr<Held> held_;
  std::optional<net::ip::tcp::endpoint> remote_;  // asked of the kernel once, not per request
  bool reading_ = false;
  bool answered_ = false;
  bool watching_ = false;
  bool resume_ = false;
  bool registered_ = false;
  bool refusing_ = false;
};

}  // namespace herald::inline v0::detail
