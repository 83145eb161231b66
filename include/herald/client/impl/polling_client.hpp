#pragma once

#include <herald/client/detail/any_stream.hpp>
#include <herald/client/detail/envelope.hpp>
#include <herald/client/detail/http.hpp>

#include <boost/beast/core/flat_buffer.hpp>
#include <boost/asio/error.hpp>
#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/message.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>

#include <cstdio>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace herald::inline v0::client::detail {

/// A wait as the `wait` parameter takes it: seconds with millisecond precision ("25", "0.05").
inline std::string wait_parameter(std::chrono::milliseconds wait) {
  auto const ms = wait.count();
  std::string out = std::to_string(ms / 1000);
  if (auto const frac = ms % 1000; frac != 0) {
    char buf[8];
    std::snprintf(buf, sizeof buf, ".%03d", static_cast<int>(frac));
    out += buf;
  }
  return out;
}

class PollImpl final : public Core {
 public:
  using Public = PollingClient;

  PollImpl(executor_type const& ex, Url url, Options options)
      : Core(ex, std::move(url), std::move(options)), cursor_(options_.since) {}

 private:
  struct Conn {
    explicit Conn(std::unique_ptr<ByteStream> s) : stream(std::move(s)) {}
    AnyStream stream;
    beast::flat_buffer buffer;
    http::request<http::empty_body> req;
    std::optional<http::response_parser<http::string_body>> parser;
    /// Carried an answer before: a failure before any byte means the server closed it idle.
    bool reused = false;
  };

  void connect() override {
    answered_ = false;
    poll();
  }

  void poll() {
    if (stopping()) return;
    if (conn_) return request(conn_);
    boost::system::error_code ec;
    auto stream = make_stream(ec);
    if (!stream) return fail(ec);
    auto c = std::make_shared<Conn>(std::move(stream));
    conn_ = c;
    watch(options_.connect_timeout, error::connect_timeout);
    c->stream.impl().async_open(url_, track([this, c](boost::system::error_code ec) {
      if (c != conn_) return;
      if (ec) return lost(ec);
      request(c);
    }));
  }

  std::string target() const {
    std::string t = url_.target;
    for (auto const& topic : options_.topics) append_query(t, "topic", topic);
    if (cursor_) append_query(t, "since", std::to_string(*cursor_));
    // The first poll of an attempt is short: its answer, at once, proves that polls get through.
    if (options_.poll.wait.count() > 0 && answered_) append_query(t, "wait", wait_parameter(options_.poll.wait));
    if (options_.poll.limit != 0) append_query(t, "limit", std::to_string(options_.poll.limit));
    return t;
  }

  void request(std::shared_ptr<Conn> const& c) {
    c->req = {};
    c->req.method(http::verb::get);
    c->req.target(target());
    c->req.version(11);
    c->req.set(http::field::accept, "application/json");
    set_common_headers(c->req, url_, options_);
    c->parser.emplace();
    c->parser->body_limit(options_.max_message);
    // A held poll answers within `wait`; past that (plus a margin) the connection is dead.
    watch(options_.poll.wait + options_.connect_timeout, herald::error::idle_timeout);
    http::async_write(c->stream, c->req, track([this, c](boost::system::error_code ec, std::size_t) {
      if (c != conn_) return;
      if (ec) return failed(c, ec);
      http::async_read(c->stream, c->buffer, *c->parser, track([this, c](boost::system::error_code ec, std::size_t) {
        if (c != conn_) return;
        if (ec) return failed(c, ec);
        answered(c);
      }));
    }));
  }

  void failed(std::shared_ptr<Conn> const& c, boost::system::error_code ec) {
    bool const closed = ec == http::error::end_of_stream || ec == net::error::eof ||
                        ec == net::error::connection_reset || ec == net::error::broken_pipe;
    if (c->reused && closed && !c->parser->got_some()) {
      // The server closed a keep-alive connection between polls: not a failure, poll anew.
      disconnect();
      return poll();
    }
    lost(ec);
  }

  void answered(std::shared_ptr<Conn> const& c) {
    unwatch();
    auto res = c->parser->release();
    auto const status = res.result_int();
    if (status != 200 && status != 304) {
      auto const verdict = classify_status(status, res.body());
      return verdict.retry ? lost(verdict.ec) : fail(verdict.ec);
    }
    if (!res.keep_alive()) disconnect();
    else c->reused = true;
    opened();
    healthy();
    answered_ = true;
    more_ = false;
    if (status == 200 && !apply(res.body())) return;
    if (stopping()) return;
    if (more_ || options_.poll.wait.count() > 0) return poll();
    after(options_.poll.interval, [this] { poll(); });
  }

  /// Deliver an answer's events; false when the client stops or the answer was malformed.
  bool apply(std::string const& body) {
    auto answer = parse_poll_answer(body);
    if (!answer) {
      lost(error::bad_response);
      return false;
    }
    if (answer->reset) {
      // What history still has follows; its ids may lie below the positions held so far.
      last_.clear();
      // The answer names no topic: the notice covers every topic followed.
      std::string topic = options_.topics.size() == 1 ? options_.topics.front() : std::string();
      if (!notify_reset(Reset{std::move(topic), 0, "cursor_expired"})) return false;
    }
    for (auto& env : answer->events) {
      if (env.reset) {
        set_last(env.event.topic, env.event.id);
        if (!notify_reset(*env.reset)) return false;
      } else if (!deliver(env.event, env.event.topic)) {
        return false;
      }
    }
    cursor_ = answer->cursor;
    more_ = answer->more;
    return true;
  }

  void disconnect() override {
    if (!conn_) return;
    conn_->stream.impl().close();
    conn_.reset();
  }

  std::shared_ptr<Conn> conn_;
  /// The next request's `since`: the last answer's cursor.
  std::optional<EventId> cursor_;
  bool more_ = false;
  bool answered_ = false;  // a poll of this attempt was answered: the next ones may wait
};

}  // namespace herald::client::detail

namespace herald::inline v0::client {

inline PollingClient::PollingClient(executor_type const& ex, std::string_view url, Options options)
    : ClientHandle(std::make_shared<detail::PollImpl>(ex, detail::checked_url(url, detail::Schemes::http),
                                                      std::move(options))) {}

}  // namespace herald::client
