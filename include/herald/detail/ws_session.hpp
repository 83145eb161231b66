#pragma once

#include <herald/detail/buffer_view.hpp>
#include <herald/detail/channel_core.hpp>
#include <herald/detail/handler_memory.hpp>
#include <herald/detail/error_map.hpp>
#include <herald/detail/json_format.hpp>
#include <herald/detail/response.hpp>
#include <herald/detail/subscriber.hpp>
#include <herald/detail/topic.hpp>
#include <herald/detail/ws_gate.hpp>
#include <herald/detail/ws_protocol.hpp>
#include <herald/session.hpp>
#include <herald/transports/websocket.hpp>

#include <boost/asio/bind_executor.hpp>
#include <boost/asio/buffer.hpp>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core/error.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/stream_traits.hpp>
#include <boost/beast/http/field.hpp>
#include <boost/beast/websocket/error.hpp>
#include <boost/beast/websocket/option.hpp>
#include <boost/beast/websocket/rfc6455.hpp>
#include <boost/beast/websocket/stream.hpp>

#include <algorithm>
#include <chrono>
#include <deque>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace herald::detail {

/** One WebSocket connection, on a `beast::websocket::stream<Stream>`.

    Everything runs on the connection's strand; the hub only queues into the Subscriber inbox
    and posts a wake-up. One write is in flight at a time. Two queues feed it:
      - `out_`: the connection's own messages (acks, errors, Session::send), which go first, so
        an ack precedes every event of its topic, and which Session::send may fill from any
        thread (hence its mutex). It is bounded by the channel's queue limits.
      - the inbox (events), drained in batches into `batch_`.
    A binary event is two frames, its head (text) and its payload (binary), written back to back.

    Without permessage-deflate, text events skip Beast's writer: each is framed once per event
    (WireFormat::ws_frame, shared by every subscriber) and everything queued goes out in one
    gathered write through WsGate, where Beast would write one message per write. The
    connection's own messages, binary events and control frames still go through Beast.

    Closing: the server closes with async_close (after flushing what the reason allows); a read
    error (peer close, protocol failure, timeout) ends the connection; either way finish() runs
    once and releases everything. */
template <class Stream>
class WsSession final : public Subscriber, public SessionBase, public Peer {
 public:
  WsSession(std::shared_ptr<ChannelImpl<WebSocket>> channel, Stream&& stream)
      : Subscriber(channel->queue_limits(), channel->state().next_connection_id()),
        channel_(std::move(channel)),
        ws_(std::move(stream)),
        strand_(serialized(ws_.get_executor())),
        timer_(strand_) {}

  void start(Request&& req) {
    net::dispatch(strand_, [self = self(), req = std::move(req)]() mutable { self->run(std::move(req)); });
  }

  // SessionBase ------------------------------------------------------------------------------

  void stop() override {
    net::post(strand_, [self = self()] { self->begin_stop(); });
  }

  void abort() override {
    net::post(strand_, [self = self()] { self->cut(error::shutting_down); });
  }

  // Peer (herald::Session) -------------------------------------------------------------------

  std::uint64_t id() const noexcept override { return connection_id(); }

  // Set before the first Session handle exists and never changed: safe from any thread.
  std::string const& principal() const noexcept override { return principal_; }

  std::vector<std::string> subscriptions() const override {
    std::lock_guard lock{topics_mutex_};
    return topics_;
  }

  SendStatus send(std::string data, bool binary) override {
    // A text frame that is not UTF-8 would make every conforming client fail the connection.
    if (!binary && !valid_utf8(data)) {
      hub().log(LogLevel::warning, WebSocket::name, connection_id(), error::bad_request,
                "Session::send: text is not UTF-8; not sent");
      return SendStatus::dropped;
    }
    return enqueue(std::move(data), binary, /*from_strand=*/false);
  }

  void close() override {
    net::post(strand_, [self = self()] { self->request_close({}, /*flush_events=*/false, /*flush_out=*/true); });
  }

 private:
  using ws_stream = beast::websocket::stream<WsGate<Stream>>;

  // One gathered write carries at most this much.
  static constexpr std::size_t max_gather = 64;
  static constexpr std::size_t max_gather_bytes = 64 * 1024;

  struct Out {
    std::string data;
    bool binary = false;
  };

  std::shared_ptr<WsSession> self() { return std::static_pointer_cast<WsSession>(shared_from_this()); }

  HubState& hub() const noexcept { return channel_->state(); }
  WebSocketOptions const& topts() const noexcept { return channel_->transport_options(); }
  Limits const& limits() const noexcept { return channel_->options().limits; }

  Session session() { return Session{std::weak_ptr<Peer>(std::static_pointer_cast<Peer>(self()))}; }

  /// Drain the queue on the strand (handler memory from HandlerCache: this runs per write).
  void post_pump() {
    post_to(strand_, cached([self = self()] { self->pump(); }));
  }

  /** Events are queued (a wake-up, or a write of events just completed): drain now, or first
      let the loop turn while more are on their way (Subscriber::linger), so that they go out
      in one write. */
  void drain_soon() {
    if (linger()) return post_drain();
    pump();
  }

  void post_drain() {
    post_to(strand_, cached([self = self()] { self->drain_soon(); }));
  }

  // Subscriber ------------------------------------------------------------------------------

  void on_ready() override {
    post_drain();
  }

  void on_overflow() override {
    net::post(strand_, [self = self()] { self->overflowed(); });
  }

  // Closed with 1013 after what is queued: the client comes back and resumes every topic.
  void on_replayed(boost::system::error_code ec) override {
    if (!ec) return;
    net::post(strand_, [self = self(), ec] {
      self->unsubscribe_all();
      self->request_close(ec, /*flush_events=*/true, /*flush_out=*/true);
    });
  }

  std::size_t wire_size(StoredEvent const& ev) const override {
    auto const& e = ev.event();
    if (e.kind == PayloadKind::binary) return e.data.size() + e.topic.size() + e.type.size() + 64;
    if (raw_) return ev.encoded(WireFormat::ws_frame, encode_ws_frame).size();
    return ev.encoded(WireFormat::json, encode_json_envelope).size();
  }

  // Handshake -------------------------------------------------------------------------------

  void run(Request&& req) {
    Admission admission;
    std::string detail;
    boost::system::error_code ec;
    bool const upgrade = beast::websocket::is_upgrade(req);
    if (!upgrade) {
      ec = error::bad_request;
      detail = "this path speaks WebSocket: send an upgrade request";
    } else {
      ec = channel_->admit(req, admission, detail, /*empty_means_all=*/false);
    }
    if (!ec) {
      for (auto const& [key, value] : admission.query) {
        if (key != "since") continue;
        since_ = parse_event_id(value);
        if (!since_) {
          ec = error::bad_cursor;
          detail = "since must be an event id";
        }
      }
    }
    if (!ec && !channel_->add(this, self()))
      ec = channel_->stopping() ? error::shutting_down : error::too_many_connections;
    if (ec) {
      done_ = true;
      hub().log(LogLevel::info, WebSocket::name, connection_id(), ec, "upgrade refused");
      auto res = error_response(ec, detail, req.version(), false);
      if (!upgrade) {
        res.result(http::status::upgrade_required);
        res.set(http::field::upgrade, "websocket");
      }
      write_and_close(std::move(ws_.next_layer().next_layer()), std::move(res));
      return;
    }
    added_ = true;
    principal_ = std::move(admission.principal);
    initial_ = std::move(admission.topics.topics);

    // Beast's own timers take over; a tcp_stream's deadline from the HTTP read must not cut us.
    auto& lowest = beast::get_lowest_layer(ws_);
    if constexpr (requires { lowest.expires_never(); }) lowest.expires_never();

    auto const& o = topts();
    beast::websocket::stream_base::timeout t{};
    t.handshake_timeout = o.handshake_timeout.count() > 0
                              ? std::chrono::duration_cast<std::chrono::steady_clock::duration>(o.handshake_timeout)
                              : beast::websocket::stream_base::none();
    t.idle_timeout = o.idle_timeout.count() > 0
                         ? std::chrono::duration_cast<std::chrono::steady_clock::duration>(o.idle_timeout)
                         : beast::websocket::stream_base::none();
    t.keep_alive_pings = o.keepalive_pings;
    ws_.set_option(t);
    ws_.read_message_max(o.read_message_max);
    ws_.auto_fragment(false);  // one frame per message: one gathered write instead of many
    raw_ = !o.deflate.enable;
    ws_.next_layer().on_idle([w = std::weak_ptr<WsSession>(self())] {
      if (auto s = w.lock()) s->post_pump();
    });
    if (o.deflate.enable) {
      beast::websocket::permessage_deflate pmd;
      pmd.server_enable = true;
      pmd.server_max_window_bits = o.deflate.max_window_bits;
      pmd.client_max_window_bits = o.deflate.max_window_bits;
      pmd.server_no_context_takeover = o.deflate.no_context_takeover;
      pmd.client_no_context_takeover = o.deflate.no_context_takeover;
      pmd.compLevel = o.deflate.level;
      pmd.memLevel = o.deflate.mem_level;
      pmd.msg_size_threshold = o.deflate.threshold;
      ws_.set_option(pmd);
    }
    std::string protocol{ws::select_subprotocol(req[http::field::sec_websocket_protocol], o.subprotocols)};
    ws_.set_option(beast::websocket::stream_base::decorator(
        [protocol = std::move(protocol)](beast::websocket::response_type& res) {
          res.set(http::field::server, "herald");
          if (!protocol.empty()) res.set(http::field::sec_websocket_protocol, protocol);
        }));

    // The request stays alive until the handshake completes.
    req_ = std::move(req);
    ws_.async_accept(req_, net::bind_executor(strand_, [self = self()](boost::system::error_code ec) {
                       self->on_accept(ec);
                     }));
  }

  void on_accept(boost::system::error_code ec) {
    req_ = {};
    if (done_) return;
    if (ec) {
      hub().log(LogLevel::info, WebSocket::name, connection_id(), ec, "handshake failed");
      return finish(ec, /*cut_socket=*/true);
    }
    opened_ = true;
    hub().connection_opened();
    arm_timer();
    read();
    if (closing_) return pump();  // stopped during the handshake: straight to the close

    if (!initial_.empty()) {
      TopicSet set{std::move(initial_), false};
      auto const replay = hub().subscribe(shared_from_this(), set, since_);
      if (replay.reset)
        hub().log(LogLevel::info, WebSocket::name, connection_id(), error::cursor_expired, "reset notice sent");
      std::lock_guard lock{topics_mutex_};
      topics_ = std::move(set.topics);
    }
    hub().log(LogLevel::debug, WebSocket::name, connection_id(), {}, "connection opened");
    announced_ = true;
    auto s = session();
    if (!channel_->opened(s)) {
      hub().log(LogLevel::error, WebSocket::name, connection_id(), error::hook_failed, "on_open threw");
      return request_close(error::hook_failed, false, false);
    }
    pump();
  }

  // Reading ---------------------------------------------------------------------------------

  void read() {
    ws_.async_read(read_buf_, cached(net::bind_executor(strand_, [self = self()](boost::system::error_code ec, std::size_t) {
                     self->on_read(ec);
                   })));
  }

  void on_read(boost::system::error_code ec) {
    if (ec) return on_read_error(ec);
    if (done_) return;
    if (!closing_) {
      auto const* p = static_cast<char const*>(read_buf_.cdata().data());
      std::string_view const data{p, read_buf_.size()};
      if (ws_.got_binary()) application_message(data, true);
      else text_message(data);
    }
    read_buf_.consume(read_buf_.size());
    // One large message must not pin its buffer for the connection's lifetime.
    if (read_buf_.capacity() > 64 * 1024) read_buf_.shrink_to_fit();
    // A closing connection keeps reading: the peer's close frame completes the handshake.
    if (!done_) read();
  }

  void on_read_error(boost::system::error_code ec) {
    if (done_) return;
    boost::system::error_code reason = ec;
    if (closing_) reason = close_ec_;
    else if (ec == beast::websocket::error::closed) reason = {};  // the client closed: normal
    else if (ec == beast::error::timeout) reason = error::idle_timeout;
    else if (ec == beast::websocket::error::message_too_big) reason = error::message_too_big;
    // After a close handshake or a protocol failure Beast has torn the connection down itself
    // (and sent 1009/1007/1002 first); anything else (EOF, reset, timeout) needs the socket closed.
    finish(reason, /*cut_socket=*/true);
  }

  void text_message(std::string_view text) {
    auto c = ws::parse_control(text);
    switch (c.kind) {
      case ws::Control::Kind::none:
        return application_message(text, false);
      case ws::Control::Kind::invalid:
        return reply(ws::error_message(error::bad_control_message, c.topic, c.problem));
      case ws::Control::Kind::subscribe:
        return subscribe(c.topic, c.since);
      case ws::Control::Kind::unsubscribe:
        return unsubscribe(c.topic);
    }
  }

  void application_message(std::string_view data, bool binary) {
    if (!channel_->has_message_handler()) {
      return reply(ws::error_message(
          error::bad_control_message, {},
          binary ? "this channel takes no binary messages"
                 : R"(expected {"subscribe":"<topic>"} (optionally with "since") or {"unsubscribe":"<topic>"})"));
    }
    auto s = session();
    if (!channel_->message(s, Message{data, binary})) {
      hub().log(LogLevel::error, WebSocket::name, connection_id(), error::hook_failed, "on_message threw");
      request_close(error::hook_failed, false, false);
    }
  }

  bool subscribed_to(std::string_view topic) const {
    return std::find(topics_.begin(), topics_.end(), topic) != topics_.end();
  }

  void subscribe(std::string const& topic, std::optional<EventId> since) {
    auto const& co = channel_->options();
    boost::system::error_code ec;
    std::string detail;
    if (!valid_topic(topic, co.limits.max_topic_length)) {
      ec = error::bad_topic;
      detail = "invalid topic name";
    } else if (!co.topics.empty() && std::find(co.topics.begin(), co.topics.end(), topic) == co.topics.end()) {
      ec = error::forbidden;
      detail = "topic not offered on this channel";
    } else if (subscribed_to(topic)) {
      // Idempotent: no second registration, no replay; the cursor is where the stream is now.
      return reply(ws::subscribed(topic, hub().last()));
    } else if (topics_.size() >= co.limits.max_subscriptions) {
      ec = error::too_many_subscriptions;
      detail = "at most " + std::to_string(co.limits.max_subscriptions) + " topics per connection";
    } else if (co.authorize_topic) {
      try {
        if (!co.authorize_topic(principal_, topic)) {
          ec = error::forbidden;
          detail = "not allowed to subscribe to this topic";
        }
      } catch (...) {
        ec = error::hook_failed;
        hub().log(LogLevel::error, WebSocket::name, connection_id(), ec, "authorize_topic threw");
      }
    }
    if (ec) {
      hub().log(LogLevel::debug, WebSocket::name, connection_id(), ec, "subscribe refused");
      return reply(ws::error_message(ec, topic, detail));
    }
    TopicSet set{{topic}, false};
    // Replay and registration are one step under the hub's lock: no gap, no duplicate.
    auto const replay = hub().subscribe(shared_from_this(), set, since);
    if (replay.reset)
      hub().log(LogLevel::info, WebSocket::name, connection_id(), error::cursor_expired, "reset notice sent");
    {
      std::lock_guard lock{topics_mutex_};
      topics_.push_back(topic);
    }
    // Queued ahead of the inbox, so the ack precedes the replay and every live event of the topic.
    reply(ws::subscribed(topic, replay.last));
  }

  void unsubscribe(std::string const& topic) {
    if (!valid_topic(topic, channel_->options().limits.max_topic_length))
      return reply(ws::error_message(error::bad_topic, topic, "invalid topic name"));
    if (subscribed_to(topic)) {
      hub().unsubscribe(this, TopicSet{{topic}, false});
      {
        std::lock_guard lock{topics_mutex_};
        topics_.erase(std::find(topics_.begin(), topics_.end(), topic));
      }
      purge(topic);
    }
    reply(ws::unsubscribed(topic));
  }

  /** Drop every queued event of `topic`. The hub sends none after unsubscribe(), so after this
      none is left anywhere: the unsubscribe ack is the last word on the topic, and a later
      subscribe with `since` cannot meet a stale copy. */
  void purge(std::string_view topic) {
    auto of_topic = [&](EventPtr const& ev) { return ev->event().topic == topic; };
    batch_.erase(std::remove_if(batch_.begin() + static_cast<std::ptrdiff_t>(pos_), batch_.end(), of_topic),
                 batch_.end());
    std::vector<EventPtr> more;
    if (take(more)) {
      std::erase_if(more, of_topic);
      batch_.insert(batch_.end(), more.begin(), more.end());
    }
  }

  // Writing ---------------------------------------------------------------------------------

  /** Queue one of the connection's own messages. Over the queue bound the connection is closed
      as a slow consumer, like an event overflow. */
  SendStatus enqueue(std::string data, bool binary, bool from_strand) {
    bool post = false;
    bool overflow = false;
    bool half = false;
    {
      std::lock_guard lock{out_mutex_};
      if (out_closed_) return SendStatus::dropped;
      auto const& l = limits();
      if (out_.size() + 1 > l.queue_events || out_bytes_ + data.size() > l.queue_bytes) {
        out_closed_ = true;
        out_.clear();
        out_bytes_ = 0;
        overflow = true;
      } else {
        out_bytes_ += data.size();
        out_.push_back(Out{std::move(data), binary});
        half = out_.size() * 2 > l.queue_events || out_bytes_ * 2 > l.queue_bytes;
        if (!from_strand && !out_posted_) post = out_posted_ = true;
      }
    }
    if (overflow) {
      net::post(strand_, [self = self()] { self->overflowed(); });
      return SendStatus::dropped;
    }
    if (post) post_pump();
    return half ? SendStatus::backpressure : SendStatus::accepted;
  }

  void reply(std::string text) {
    enqueue(std::move(text), false, /*from_strand=*/true);
    pump();
  }

  bool pop_out(Out& m) {
    std::lock_guard lock{out_mutex_};
    if (out_.empty()) {
      out_posted_ = false;
      return false;
    }
    m = std::move(out_.front());
    out_.pop_front();
    out_bytes_ -= m.data.size();
    return true;
  }

  /// The next queued event, still queued; nullptr when there is none.
  StoredEvent const* peek_event() {
    if (pos_ == batch_.size()) {
      batch_.clear();
      pos_ = 0;
      flush_delivered();
      if (!take(batch_)) return nullptr;
    }
    return batch_[pos_].get();
  }

  void pump() {
    if (!opened_ || done_ || writing_ || close_started_) return;
    if (payload_next_) {
      in_flight_ = std::exchange(payload_next_, nullptr);
      auto const& data = in_flight_->event().data;
      return write(net::const_buffer(data.data(), data.size()), true, true);
    }
    if (pop_out(current_)) return write(net::buffer(current_.data), current_.binary, false);
    if (!closing_ || flush_events_) {
      if (auto const* next = peek_event()) {
        if (raw_ && next->event().kind != PayloadKind::binary) return write_events();
        auto ev = std::move(batch_[pos_++]);
        if (ev->event().kind == PayloadKind::binary) {
          head_ = ws::encode_binary_head(ev->event());
          payload_next_ = std::move(ev);
          return write(net::buffer(head_), false, false);
        }
        auto const& bytes = ev->encoded(WireFormat::json, encode_json_envelope);
        in_flight_ = std::move(ev);
        return write(net::buffer(bytes), false, true);
      }
    }
    if (closing_) start_close();
  }

  /** Every queued text event up to the next binary one (and the gather bounds), framed,
      in one write. */
  void write_events() {
    auto& gate = ws_.next_layer();
    if (!gate.raw_ready()) return gate.wait_idle();  // a pong or ping is being written
    if (!ws_.is_open()) return;  // Beast is answering a close frame: nothing may follow it
    std::size_t bytes = 0;
    while (raw_batch_.size() < max_gather && bytes < max_gather_bytes) {
      auto const* ev = peek_event();
      if (!ev || ev->event().kind == PayloadKind::binary) break;
      auto const& frame = ev->encoded(WireFormat::ws_frame, encode_ws_frame);
      buffers_.push_back(net::buffer(frame));
      bytes += frame.size();
      raw_batch_.push_back(std::move(batch_[pos_++]));
    }
    writing_ = true;
    write_events_ = raw_batch_.size();
    write_started_ = std::chrono::steady_clock::now();
    gate.async_write_raw(BufferView(buffers_),
                         cached(net::bind_executor(strand_, [self = self()](boost::system::error_code ec, std::size_t) {
                           self->on_write(ec);
                         })));
  }

  static std::string encode_ws_frame(Event const& ev) {
    return ws_text_frame(json_envelope_size_hint(ev), [&](std::string& out) { append_json_envelope(out, ev); });
  }

  void write(net::const_buffer bytes, bool binary, bool event) {
    BOOST_ASSERT(!writing_);  // Beast allows one write in flight
    writing_ = true;
    write_events_ = event ? 1 : 0;
    write_started_ = std::chrono::steady_clock::now();
    ws_.binary(binary);
    ws_.async_write(bytes, cached(net::bind_executor(strand_, [self = self()](boost::system::error_code ec, std::size_t) {
                      self->on_write(ec);
                    })));
  }

  void on_write(boost::system::error_code ec) {
    writing_ = false;
    in_flight_ = nullptr;
    raw_batch_.clear();
    buffers_.clear();
    if (done_) return;
    if (ec) {
      // A failing stream fails the pending read too, which ends the connection with its
      // reason; a real I/O error ends it here.
      if (ec == net::error::operation_aborted || ec == beast::websocket::error::closed) return;
      return finish(closing_ ? close_ec_ : ec, /*cut_socket=*/true);
    }
    delivered_ += write_events_;
    if (!current_.data.empty()) current_ = {};
    if (write_events_ != 0) return drain_soon();
    pump();
  }

  void flush_delivered() {
    if (delivered_ != 0) hub().delivered(std::exchange(delivered_, 0));
  }

  // Closing ---------------------------------------------------------------------------------

  void overflowed() {
    if (done_ || closing_) return;
    hub().slow_consumer();
    hub().log(LogLevel::warning, WebSocket::name, connection_id(), error::slow_consumer,
              "queue bound exceeded; closing");
    request_close(error::slow_consumer, false, false);
  }

  void begin_stop() {
    if (done_ || closing_) return;
    // No new events: what is queued is flushed, then 1001.
    unsubscribe_all();
    request_close(error::shutting_down, /*flush_events=*/true, /*flush_out=*/true);
  }

  /** Close with the code for `ec` once what the reason lets through has been written. `ec`
      is what on_close reports (success for a normal close). */
  void request_close(boost::system::error_code ec, bool flush_events, bool flush_out) {
    if (done_ || closing_) return;
    closing_ = true;
    close_ec_ = ec;
    flush_events_ = flush_events;
    if (!flush_events) {
      batch_.clear();
      pos_ = 0;
      payload_next_ = nullptr;  // its head may be out; nothing follows a close frame anyway
    }
    {
      std::lock_guard lock{out_mutex_};
      out_closed_ = true;
      if (!flush_out) {
        out_.clear();
        out_bytes_ = 0;
      }
    }
    close_deadline_ = std::chrono::steady_clock::now() + topts().close_timeout;
    if (opened_) {
      arm_timer();
      pump();
    }
  }

  void start_close() {
    close_started_ = true;
    std::uint16_t const code =
        close_ec_ == error::slow_consumer ? topts().overflow_close_code : to_close_code(close_ec_);
    beast::websocket::close_reason cr{code};
    if (close_ec_) cr.reason = close_ec_.message();
    ws_.async_close(cr, net::bind_executor(strand_, [self = self()](boost::system::error_code) {
                      // Beast tore the connection down (or failed to); either way it is over.
                      self->finish(self->close_ec_, /*cut_socket=*/true);
                    }));
  }

  /// Close the socket now, without a close frame (abort, timeouts).
  void cut(boost::system::error_code ec) {
    if (done_) return;
    if (!closing_) close_ec_ = ec;
    finish(closing_ ? close_ec_ : ec, /*cut_socket=*/true);
  }

  void unsubscribe_all() {
    std::vector<std::string> topics;
    {
      std::lock_guard lock{topics_mutex_};
      topics.swap(topics_);
    }
    if (!topics.empty()) hub().unsubscribe(this, TopicSet{std::move(topics), false});
  }

  void finish(boost::system::error_code ec, bool cut_socket) {
    if (done_) return;
    done_ = true;
    {
      std::lock_guard lock{out_mutex_};
      out_closed_ = true;
      out_.clear();
      out_bytes_ = 0;
    }
    ++timer_generation_;
    timer_.cancel();
    batch_.clear();
    payload_next_ = nullptr;
    if (cut_socket) close_stream(ws_.next_layer().next_layer());
    if (opened_) {
      unsubscribe_all();
      flush_delivered();
      hub().connection_closed();
    }
    if (added_) channel_->remove(this);
    bool const normal = !ec || ec == error::shutting_down || ec == net::error::eof ||
                        ec == net::error::connection_reset || ec == net::error::operation_aborted;
    hub().log(normal ? LogLevel::debug : LogLevel::info, WebSocket::name, connection_id(), ec, "connection closed");
    if (announced_) {
      auto s = session();
      if (!channel_->closed(s, ec))
        hub().log(LogLevel::error, WebSocket::name, connection_id(), error::hook_failed, "on_close threw");
    }
  }

  // One timer per connection: the write timeout while open, the close deadline while closing.
  void arm_timer() {
    if (done_) return;
    auto const now = std::chrono::steady_clock::now();
    std::chrono::steady_clock::time_point at;
    if (closing_) {
      at = close_deadline_;
    } else {
      auto const wt = limits().write_timeout;
      if (wt.count() <= 0) return;
      at = now + std::max<std::chrono::steady_clock::duration>(wt / 2, std::chrono::milliseconds(1));
    }
    auto const generation = ++timer_generation_;
    timer_.expires_at(at);
    timer_.async_wait(net::bind_executor(strand_, [self = self(), generation](boost::system::error_code ec) {
      if (ec || self->done_ || generation != self->timer_generation_) return;
      self->on_timer();
    }));
  }

  void on_timer() {
    auto const now = std::chrono::steady_clock::now();
    if (closing_) {
      if (now >= close_deadline_) {
        hub().log(LogLevel::info, WebSocket::name, connection_id(), close_ec_, "close handshake timed out");
        return cut(close_ec_);
      }
    } else if (writing_ && now - write_started_ >= limits().write_timeout) {
      hub().log(LogLevel::info, WebSocket::name, connection_id(), error::write_timeout, "write stalled");
      return cut(error::write_timeout);
    }
    arm_timer();
  }

  std::shared_ptr<ChannelImpl<WebSocket>> channel_;
  ws_stream ws_;
  net::any_io_executor strand_;
  net::steady_timer timer_;
  Request req_;
  std::string principal_;
  std::vector<std::string> initial_;
  std::optional<EventId> since_;

  // Topics subscribed now; written on the strand, read by Session::subscriptions anywhere.
  mutable std::mutex topics_mutex_;
  std::vector<std::string> topics_;

  beast::flat_buffer read_buf_;

  // The connection's own messages; Session::send fills it from any thread.
  std::mutex out_mutex_;
  std::deque<Out> out_;
  std::size_t out_bytes_ = 0;
  bool out_posted_ = false;
  bool out_closed_ = false;

  // Strand-only state.
  Out current_;
  std::vector<EventPtr> batch_;
  std::size_t pos_ = 0;
  EventPtr payload_next_;
  // Owns the bytes of the event being written, whatever happens to the batch meanwhile.
  EventPtr in_flight_;
  // A gathered write's events (which own its bytes) and buffers.
  std::vector<EventPtr> raw_batch_;
  std::vector<net::const_buffer> buffers_;
  std::string head_;
  std::size_t delivered_ = 0;
  std::chrono::steady_clock::time_point write_started_{};
  std::chrono::steady_clock::time_point close_deadline_{};
  std::uint64_t timer_generation_ = 0;
  boost::system::error_code close_ec_;
  bool added_ = false;
  bool opened_ = false;
  bool announced_ = false;
  bool writing_ = false;
  std::size_t write_events_ = 0;  // events the write in flight delivers
  bool raw_ = false;             // text events are framed by herald and gathered
  bool closing_ = false;
  bool flush_events_ = false;
  bool close_started_ = false;
  bool done_ = false;
};

}  // namespace herald::detail

namespace herald {

inline void WebSocket::validate(WebSocketOptions const& o) {
  auto fail = [](char const* what) { throw std::invalid_argument(std::string("herald: WebSocketOptions::") + what); };
  for (auto const& p : o.subprotocols)
    if (!detail::ws::is_token(p)) fail("subprotocols holds a name that is not an HTTP token");
  if (o.handshake_timeout.count() < 0) fail("handshake_timeout must not be negative");
  if (o.idle_timeout.count() < 0) fail("idle_timeout must not be negative");
  if (o.close_timeout.count() <= 0) fail("close_timeout must be positive");
  if (o.read_message_max == 0) fail("read_message_max must be positive");
  if (!detail::ws::sendable_close_code(o.overflow_close_code))
    fail("overflow_close_code is not a close code a server may send");
  if (o.deflate.max_window_bits < 9 || o.deflate.max_window_bits > 15) fail("deflate.max_window_bits must be 9..15");
  if (o.deflate.mem_level < 1 || o.deflate.mem_level > 9) fail("deflate.mem_level must be 1..9");
  if (o.deflate.level < 0 || o.deflate.level > 9) fail("deflate.level must be 0..9");
}

template <class Stream>
void WebSocket::start(std::shared_ptr<detail::ChannelImpl<WebSocket>> channel, Stream&& stream, Request&& req) {
  auto session = std::make_shared<detail::WsSession<std::decay_t<Stream>>>(std::move(channel), std::move(stream));
  session->start(std::move(req));
}

}  // namespace herald
