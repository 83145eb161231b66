#pragma once

#include <herald/client/detail/any_stream.hpp>
#include <herald/client/detail/envelope.hpp>
#include <herald/client/detail/http.hpp>
#include <herald/client/detail/sse_parser.hpp>
#include <herald/detail/heartbeat.hpp>
#include <herald/detail/http.hpp>

#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/buffer_body.hpp>
#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/message.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/write.hpp>

#include <cstdint>
#include <limits>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace herald::inline v0::client::detail {

class SseImpl final : public Core {
 public:
  using Public = SseClient;

  SseImpl(executor_type const& ex, Url url, Options options)
      : Core(ex, std::move(url), std::move(options)), parser_(options_.max_message) {
    target_ = url_.target;
    for (auto const& t : options_.topics) append_query(target_, "topic", t);
    // One topic: bare data, whose topic the client knows. Several (or every topic): envelopes,
    // which name each event's topic.
    if (options_.topics.size() == 1) topic_ = options_.topics.front();
    else append_query(target_, "envelope", "1");
    if (options_.since) {
      resume_id_ = std::to_string(*options_.since);
      set_last({}, *options_.since);
    }
  }

 private:
  struct Conn {
    explicit Conn(std::unique_ptr<ByteStream> s) : stream(std::move(s)) {}
    AnyStream stream;
    beast::flat_buffer buffer;
    http::request<http::empty_body> req;
    http::response_parser<http::buffer_body> parser;
    std::vector<char> body = std::vector<char>(16 * 1024);
  };

  void connect() override {
    boost::system::error_code ec;
    auto stream = make_stream(ec);
    if (!stream) return fail(ec);
    auto c = std::make_shared<Conn>(std::move(stream));
    conn_ = c;
    parser_.restart();

    c->req.method(http::verb::get);
    c->req.target(target_);
    c->req.version(11);
    c->req.set(http::field::accept, "text/event-stream");
    c->req.set(http::field::cache_control, "no-cache");
    set_common_headers(c->req, url_, options_);
    if (!resume_id_.empty()) c->req.set("Last-Event-ID", resume_id_);
    c->parser.body_limit(std::numeric_limits<std::uint64_t>::max());  // a stream has no end

    c->stream.impl().async_open(url_, track([this, c](boost::system::error_code ec) {
      if (c != conn_) return;
      if (ec) return lost(ec);
      http::async_write(c->stream, c->req, track([this, c](boost::system::error_code ec, std::size_t) {
        if (c != conn_) return;
        if (ec) return lost(ec);
        http::async_read_header(c->stream, c->buffer, c->parser,
                                track([this, c](boost::system::error_code ec, std::size_t) {
                                  if (c != conn_) return;
                                  if (ec) return lost(ec);
                                  on_header(c);
                                }));
      }));
    }));
  }

  void on_header(std::shared_ptr<Conn> const& c) {
    auto const& res = c->parser.get();
    auto const retry_after = parse_retry_after(res[http::field::retry_after]);
    if (res.result_int() != 200) {
      auto const verdict = classify_status(res.result_int());
      if (verdict.retry && retry_after) backoff_server_retry(*retry_after);
      return verdict.retry ? lost(verdict.ec) : fail(verdict.ec);
    }
    if (!content_type_is(res[http::field::content_type], "text/event-stream"))
      return fail(error::bad_content_type);
    // herald's retryable refusal for EventSource (a stream that ends at once): not an open.
    if (retry_after) {
      backoff_server_retry(*retry_after);
      return lost(error::unavailable);
    }
    // herald writes the body's first bytes (retry:) with the headers: with an advertised
    // heartbeat, a body that does not follow is held back on the way (a buffering proxy).
    connected(::herald::detail::parse_heartbeat(res[::herald::detail::heartbeat_header]), options_.idle_timeout);
    read(c);
  }

  void read(std::shared_ptr<Conn> const& c) {
    auto& body = c->parser.get().body();
    body.data = c->body.data();
    body.size = c->body.size();
    body.more = true;
    http::async_read_some(c->stream, c->buffer, c->parser, track([this, c](boost::system::error_code ec, std::size_t) {
      if (c != conn_) return;
      if (ec == http::error::need_buffer) ec = {};
      std::size_t const got = c->body.size() - c->parser.get().body().size;
      if (got != 0) {
        received();
        if (c != conn_ || !feed(std::string_view(c->body.data(), got))) return;
      }
      if (ec) return lost(ec);
      if (c->parser.is_done()) return lost(error::stream_ended);
      read(c);
    }));
  }

  /// Parse bytes of the stream; false when the connection or the client is done.
  bool feed(std::string_view chunk) {
    auto const r = parser_.feed(
        chunk, [this](SseDispatch const& d) { return dispatch(d); },
        [this](std::chrono::milliseconds retry) { backoff_server_retry(retry); });
    if (r == SseParser::Result::too_big) {
      lost(herald::error::message_too_big);
      return false;
    }
    return r == SseParser::Result::ok;
  }

  bool dispatch(SseDispatch const& d) {
    // A stream that asked for heartbeat events (a URL with ?heartbeat): proof of life, no event.
    if (d.type == "heartbeat" && !d.has_id) return true;
    // Plain scalars, not the optional itself: GCC 12 at -O3 reports the optional's payload as
    // maybe-uninitialized across the branches below.
    auto const parsed = d.has_id ? ::herald::detail::parse_event_id(d.last_event_id) : std::nullopt;
    bool const numeric = parsed.has_value();
    EventId const id = numeric ? *parsed : 0;
    if (topic_.empty()) return dispatch_envelope(d, numeric, id);
    if (d.type == "reset") {
      if (auto r = parse_reset_data(parse_json(d.data))) {
        // The notice's id is where the stream stands after it (herald: the client's own
        // cursor when history ran out, just below what follows after a timeline change).
        r->topic = topic_;
        if (d.has_id) {
          resume_id_ = std::string(d.last_event_id);
          if (numeric) set_last({}, id);
        }
        return notify_reset(*r);
      }
    }
    Event ev;
    ev.id = id;
    ev.topic = topic_;
    ev.type = std::string(d.type);
    ev.data = std::string(d.data);
    ev.kind = PayloadKind::text;
    if (d.has_id) {
      auto const prev = last({});
      if (!numeric || !prev || id > *prev) resume_id_ = std::string(d.last_event_id);
    }
    return deliver(ev, {});
  }

  /// An event whose data is its JSON envelope (a stream of several topics).
  bool dispatch_envelope(SseDispatch const& d, bool numeric, EventId id) {
    auto env = parse_envelope(parse_json(d.data), d.data);
    if (!env) {
      lost(error::bad_response);
      return false;
    }
    if (d.has_id) {
      auto const prev = last({});
      if (env->reset || !numeric || !prev || id > *prev) resume_id_ = std::string(d.last_event_id);
      if (env->reset && numeric) set_last({}, id);
    }
    if (env->reset) return notify_reset(*env->reset);
    return deliver(env->event, {});
  }

  void disconnect() override {
    if (!conn_) return;
    conn_->stream.impl().close();
    conn_.reset();
  }

  std::shared_ptr<Conn> conn_;
  SseParser parser_;
  std::string target_;
  std::string topic_;
  /// Sent as Last-Event-ID: the id of the last event delivered (or of the last reset notice).
  std::string resume_id_;
};

}  // namespace herald::client::detail

namespace herald::inline v0::client {

inline SseClient::SseClient(executor_type const& ex, std::string_view url, Options options)
    : ClientHandle(std::make_shared<detail::SseImpl>(ex, detail::checked_url(url, detail::Schemes::http),
                                                     std::move(options))) {}

}  // namespace herald::client
