#pragma once

#include <herald/detail/buffer_view.hpp>
#include <herald/detail/channel_core.hpp>
#include <herald/detail/connection.hpp>
#include <herald/detail/error_map.hpp>
#include <herald/detail/handler_memory.hpp>
#include <herald/detail/heartbeat.hpp>
#include <herald/detail/json_format.hpp>
#include <herald/detail/response.hpp>
#include <herald/detail/token_bucket.hpp>
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

namespace herald::inline v0::detail {

/// The herald-framed text frame of an event as a wire format (gathered writes, no deflate).
inline constexpr WireFormat ws_frame_wire{"ws_frame", 2};

inline std::string encode_ws_frame(Event const& ev) {
  return ws_text_frame(json_envelope_size_hint(ev), [&](std::string& out) { append_json_envelope(out, ev); });
}

/** One WebSocket connection: the wire side of a Connection, on a
    `beast::websocket::stream<Stream>`.

    One write is in flight at a time. Two queues feed it:
      - `out_`: the connection's own messages (acks, errors, Session::send), which go first, so
        an ack precedes every event of its topic, and which Session::send may fill from any
        thread (hence its mutex). It is bounded by the channel's queue limits.
      - the inbox (events), drained in batches into `batch_`.
    A binary event is two frames, its head (text) and its payload (binary), written back to back.

    Without permessage-deflate, text events skip Beast's writer: each is framed once per event
    (ws_frame_wire, shared by every subscriber) and everything queued goes out in one gathered
    write through WsGate, where Beast would write one message per write. The connection's own
    messages, binary events and control frames still go through Beast.

    Closing: goodbye() flushes what the Flush allows, then async_close sends the close frame
    for reason(); a read error (the peer's close, a protocol failure, a timeout) finishes the
    connection at once.

    Reading: every message a client sends, control messages, pings and pongs too, passes its
    inbound_rate budget first; over it, the client gets an error frame and a 1008 close, and
    whatever it sends meanwhile is read (the close handshake needs its close frame) but
    ignored. */
template <class Stream>
class WsSession final : public Connection {
 public:
  WsSession(std::shared_ptr<ChannelImpl<WebSocket>> channel, Stream&& stream, std::string already_read)
      : Connection(std::move(channel), serialized(stream.get_executor()), /*lingers=*/true),
        ws_(std::move(stream)),
        timer_(strand()),
        messages_(topts().inbound_rate.messages_per_second, topts().inbound_rate.message_burst),
        bytes_(topts().inbound_rate.bytes_per_second, topts().inbound_rate.byte_burst) {
    ws_.next_layer().already_read(std::move(already_read));
  }

  void start(Request&& req) {
    net::dispatch(strand(), [self = self(), req = std::move(req)]() mutable { self->run(std::move(req)); });
  }

  SendStatus send(std::string data, bool binary) override {
    // A text frame that is not UTF-8 would make every conforming client fail the connection.
    if (!binary && !valid_utf8(data)) {
      log(LogLevel::warning, error::bad_request, "Session::send: text is not UTF-8; not sent");
      return SendStatus::dropped;
    }
    return enqueue(std::move(data), binary, /*from_strand=*/false);
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

  ChannelImpl<WebSocket>& ch() const noexcept { return static_cast<ChannelImpl<WebSocket>&>(channel()); }

  WebSocketOptions const& topts() const noexcept { return ch().transport_options(); }
  Limits const& limits() const noexcept { return ch().options().limits; }

  std::size_t wire_size(StoredEvent const& ev) const override {
    auto const& e = ev.event();
    if (e.kind == PayloadKind::binary) return e.data.size() + e.topic.size() + e.type.size() + 64;
    if (raw_) return ev.encoded(ws_frame_wire, encode_ws_frame).size();
    return json_envelope(ev).size();
  }

  // Handshake -------------------------------------------------------------------------------

  void run(Request&& req) {
    std::string detail;
    boost::system::error_code ec;
    bool const upgrade = beast::websocket::is_upgrade(req);
    if (!upgrade) {
      refused(ec = error::bad_request);
      detail = "this path speaks WebSocket: send an upgrade request";
    } else if (auto const problem = ws::key_problem(req[http::field::sec_websocket_key]); !problem.empty()) {
      // Beast checks only the key's presence and length bound; a 101 to "abc" would be answered.
      refused(ec = error::bad_request);
      detail = problem;
    } else {
      ec = admit(req, detail, /*empty_means_all=*/false);
    }
    if (ec) {
      auto res = error_response(ec, detail, req.version(), false, ch().options().limits.retry_after);
      if (!upgrade) {
        res.result(http::status::upgrade_required);
        res.set(http::field::upgrade, "websocket");
      }
      write_and_close(std::move(ws_.next_layer().next_layer()), std::move(res));
      return finish(ec);
    }

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
    // Runs inside Beast's read, before it answers a ping or a close frame; ws_ owns it, so
    // `this` outlives it.
    ws_.control_callback([this](beast::websocket::frame_type kind, beast::string_view payload) {
      if (kind == beast::websocket::frame_type::close) return check_close_code();
      // Pings and pongs are messages too: Beast answers every ping, so a ping flood would
      // otherwise cost a write each, for free.
      if (!is_open()) return;
      if (auto const short_of = take_budget(payload.size()); short_of != Budget::ok)
        post_to(strand(), [self = self(), short_of] {
          if (self->is_open()) self->over_budget(short_of, /*ping=*/true);
        });
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
    heartbeat_ = o.heartbeat.count() > 0 && wants_heartbeat(req.target());
    std::string heartbeat = heartbeat_ ? std::to_string(o.heartbeat.count()) : std::string();
    ws_.set_option(beast::websocket::stream_base::decorator(
        [protocol = std::move(protocol), heartbeat = std::move(heartbeat)](beast::websocket::response_type& res) {
          res.set(http::field::server, "herald");
          if (!protocol.empty()) res.set(http::field::sec_websocket_protocol, protocol);
          if (!heartbeat.empty()) res.set(heartbeat_header, heartbeat);
        }));

    // The request stays alive until the handshake completes.
    req_ = std::move(req);
    ws_.async_accept(req_, net::bind_executor(strand(), [self = self()](boost::system::error_code ec) {
                       self->on_accept(ec);
                     }));
  }

  void on_accept(boost::system::error_code ec) {
    req_ = {};
    if (state() == State::closed) return;
    if (ec) {
      log(LogLevel::info, ec, "handshake failed");
      return finish(ec);
    }
    read();
    // The first heartbeat goes out at once, ahead of any ack or event: the client's proof that
    // data flows past whatever lies between it and the server.
    if (heartbeat_) enqueue(heartbeat_message(topts().heartbeat), false, /*from_strand=*/true);
    last_write_ = std::chrono::steady_clock::now();
    if (!open(/*announce=*/true)) return;
    pump();
    if (heartbeat_ && !timer_armed_) arm_timer();
  }

  // Reading ---------------------------------------------------------------------------------

  void read() {
    ws_.async_read(read_buf_, cached(net::bind_executor(strand(), [self = self()](boost::system::error_code ec, std::size_t) {
                     self->on_read(ec);
                   })));
  }

  void on_read(boost::system::error_code ec) {
    if (ec) return on_read_error(ec);
    if (state() == State::closed) return;
    if (is_open() && within_budget(read_buf_.size())) {
      auto const* p = static_cast<char const*>(read_buf_.cdata().data());
      std::string_view const data{p, read_buf_.size()};
      if (ws_.got_binary()) application_message(data, true);
      else text_message(data);
    }
    read_buf_.consume(read_buf_.size());
    // One large message must not pin its buffer for the connection's lifetime.
    if (read_buf_.capacity() > 64 * 1024) read_buf_.shrink_to_fit();
    // A closing connection keeps reading: the peer's close frame completes the handshake.
    if (state() != State::closed) read();
  }

  /** After a close handshake or a protocol failure Beast has torn the connection down itself
      (and sent 1009/1007/1002 first); anything else (EOF, reset, timeout) needs the socket
      closed: finish() does both. */
  void on_read_error(boost::system::error_code ec) {
    if (bad_close_code_) ec = beast::websocket::error::bad_close_code;
    else if (ec == beast::websocket::error::closed) ec = {};  // the client closed: normal
    else if (ec == beast::error::timeout) ec = error::idle_timeout;
    else if (ec == beast::websocket::error::message_too_big) ec = error::message_too_big;
    finish(ec);
  }

  /** Whether a message of `size` bytes fits the client's inbound_rate; if not, the client is
      told (error frame, then 1008) and nothing it sends is acted on any more. */
  bool within_budget(std::size_t size) {
    auto const short_of = take_budget(size);
    if (short_of == Budget::ok) return true;
    over_budget(short_of, false);
    return false;
  }

  enum class Budget : std::uint8_t { ok, messages, bytes };

  /** Take one message and `size` bytes from the client's inbound_rate buckets, or say which one
      holds too little. Data messages, pings and pongs alike. */
  Budget take_budget(std::size_t size) noexcept {
    auto const now = TokenBucket::clock::now();
    if (!messages_.take(1, now)) return Budget::messages;
    return bytes_.take(size, now) ? Budget::ok : Budget::bytes;
  }

  /// The client went over its inbound_rate (with a ping or a pong: `ping`): an error frame, then 1008.
  void over_budget(Budget short_of, bool ping) {
    auto const& r = topts().inbound_rate;
    auto detail = short_of == Budget::messages
                      ? "over " + std::to_string(r.messages_per_second) + " messages a second"
                      : "over " + std::to_string(r.bytes_per_second) + " bytes a second";
    if (ping) detail += " (pings count)";
    log(LogLevel::info, error::rate_limited, detail);
    reply(ws::error_message(error::rate_limited, {}, detail));
    end(error::rate_limited, Flush::own);
  }

  /** RFC 6455 §7.4: a close code outside the allowed ranges fails the connection. Beast 1.81
      would echo a code of 5000 or more; cutting the TCP connection here (what RFC 6455 §7.1.7
      allows, and Autobahn accepts) makes its echo fail instead. */
  void check_close_code() {
    auto const code = ws_.reason().code;
    if (code == beast::websocket::close_code::none || ws::sendable_close_code(code)) return;
    bad_close_code_ = true;
    close_stream(ws_.next_layer().next_layer());
  }

  void text_message(std::string_view text) {
    auto c = ws::parse_control(text);
    switch (c.kind) {
      case ws::Control::Kind::none:
        return application_message(text, false);
      case ws::Control::Kind::invalid:
        return reply(ws::error_message(error::bad_control_message, c.topic, c.problem));
      case ws::Control::Kind::subscribe: {
        auto const r = subscribe(c.topic, c.since);
        if (r.ec) {
          log(LogLevel::debug, r.ec, "subscribe refused");
          return reply(ws::error_message(r.ec, c.topic, r.detail));
        }
        // Queued ahead of the inbox, so the ack precedes the replay and every live event of it.
        return reply(ws::subscribed(c.topic, r.cursor));
      }
      case ws::Control::Kind::unsubscribe: {
        std::string detail;
        if (auto ec = admit_topic(ch().options(), c.topic, detail); ec == error::bad_topic)
          return reply(ws::error_message(ec, c.topic, detail));
        if (unsubscribe(c.topic)) purge(c.topic);
        return reply(ws::unsubscribed(c.topic));
      }
    }
  }

  void application_message(std::string_view data, bool binary) {
    if (!ch().has_message_handler()) {
      return reply(ws::error_message(
          error::bad_control_message, {},
          binary ? "this channel takes no binary messages"
                 : R"(expected {"subscribe":"<topic>"} (optionally with "since") or {"unsubscribe":"<topic>"})"));
    }
    auto s = session();
    if (!ch().message(s, Message{data, binary})) {
      log(LogLevel::error, error::hook_failed, "on_message threw");
      end(error::hook_failed, Flush::nothing);
    }
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
      on_overflow();
      return SendStatus::dropped;
    }
    if (post) post_pump();
    return half ? SendStatus::backpressure : SendStatus::accepted;
  }

  void reply(std::string text) {
    enqueue(std::move(text), false, /*from_strand=*/true);
    pump();
  }

  void post_pump() {
    post_to(strand(), cached([self = self()] { self->pump(); }));
  }

  /// Stop taking the connection's own messages; `keep` says whether those queued still go.
  void close_out(bool keep) {
    std::lock_guard lock{out_mutex_};
    out_closed_ = true;
    if (!keep) {
      out_.clear();
      out_bytes_ = 0;
    }
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

  void drain() override { pump(); }

  void pump() {
    if (state() == State::admitting || state() == State::closed || writing_ || close_started_) return;
    if (payload_next_) {
      in_flight_ = std::exchange(payload_next_, nullptr);
      auto const& data = in_flight_->event().data;
      return write(net::const_buffer(data.data(), data.size()), true, true);
    }
    if (pop_out(current_)) return write(net::buffer(current_.data), current_.binary, false);
    if (is_open() || flush_events_) {
      if (auto const* next = peek_event()) {
        if (raw_ && next->event().kind != PayloadKind::binary) return write_events();
        auto ev = std::move(batch_[pos_++]);
        if (ev->event().kind == PayloadKind::binary) {
          head_ = ws::encode_binary_head(ev->event());
          payload_next_ = std::move(ev);
          return write(net::buffer(head_), false, false);
        }
        auto const& bytes = json_envelope(*ev);
        in_flight_ = std::move(ev);
        return write(net::buffer(bytes), false, true);
      }
    }
    if (state() == State::closing) send_close();
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
      auto const& frame = ev->encoded(ws_frame_wire, encode_ws_frame);
      buffers_.push_back(net::buffer(frame));
      bytes += frame.size();
      raw_batch_.push_back(std::move(batch_[pos_++]));
    }
    writing_ = true;
    write_events_ = raw_batch_.size();
    started_write();
    gate.async_write_raw(BufferView(buffers_),
                         cached(net::bind_executor(strand(), [self = self()](boost::system::error_code ec, std::size_t n) {
                           self->on_write(ec, n);
                         })));
  }

  void write(net::const_buffer bytes, bool binary, bool event) {
    BOOST_ASSERT(!writing_);  // Beast allows one write in flight
    writing_ = true;
    write_events_ = event ? 1 : 0;
    started_write();
    ws_.binary(binary);
    ws_.async_write(bytes, cached(net::bind_executor(strand(), [self = self()](boost::system::error_code ec, std::size_t n) {
                      self->on_write(ec, n);
                    })));
  }

  void on_write(boost::system::error_code ec, std::size_t bytes) {
    writing_ = false;
    in_flight_ = nullptr;
    raw_batch_.clear();
    buffers_.clear();
    if (state() == State::closed) return;
    if (ec) {
      // A failing stream fails the pending read too, which ends the connection with its
      // reason; a real I/O error ends it here.
      if (ec == net::error::operation_aborted || ec == beast::websocket::error::closed) return;
      return finish(ec);
    }
    wrote(bytes);
    last_write_ = std::chrono::steady_clock::now();
    delivered_ += write_events_;
    if (!current_.data.empty()) current_ = {};
    if (write_events_ != 0) return drain_soon();
    pump();
  }

  void flush_delivered() {
    if (delivered_ != 0) delivered(std::exchange(delivered_, 0));
  }

  // Closing ---------------------------------------------------------------------------------

  /// What is flushed before the close frame: see Flush.
  void goodbye(Flush flush) override {
    flush_events_ = flush == Flush::all;
    if (!flush_events_) {
      batch_.clear();
      pos_ = 0;
      payload_next_ = nullptr;  // its head may be out; nothing follows a close frame anyway
    }
    close_out(/*keep=*/flush != Flush::nothing);
    close_deadline_ = std::chrono::steady_clock::now() + topts().close_timeout;
    arm_timer();
    pump();
  }

  void send_close() {
    close_started_ = true;
    auto const ec = reason();
    std::uint16_t const code = ec == error::slow_consumer ? topts().overflow_close_code : to_close_code(ec);
    beast::websocket::close_reason cr{code};
    if (ec) cr.reason = wire_name(ec);
    ws_.async_close(cr, net::bind_executor(strand(), [self = self()](boost::system::error_code) {
                      // Beast tore the connection down (or failed to); either way it is over.
                      self->finish(self->reason());
                    }));
  }

  void shut() override {
    close_out(/*keep=*/false);
    ++timer_generation_;
    timer_.cancel();
    batch_.clear();
    payload_next_ = nullptr;
    flush_delivered();
    close_stream(ws_.next_layer().next_layer());
  }

  /** One timer per connection, armed for the deadline that comes next: while closing, the
      close handshake's; while open, the write in flight's and, for a client that asked for
      heartbeats, the next heartbeat's (heartbeat after the last write; while a write is in
      flight, not before `heartbeat` from now). Without heartbeats none while idle: Beast's idle
      timeout covers a silent peer. A write timeout fires on time, not a period late. */
  void arm_timer() {
    if (state() == State::closed) return;
    auto const now = std::chrono::steady_clock::now();
    auto at = std::chrono::steady_clock::time_point::max();
    if (state() == State::closing) {
      at = close_deadline_;
    } else {
      if (writing_ && limits().write_timeout.count() > 0) at = write_started_ + limits().write_timeout;
      if (heartbeat_) {
        auto const hb = topts().heartbeat;
        at = std::min(at, writing_ ? std::max(last_write_ + hb, now + hb) : last_write_ + hb);
      }
    }
    if (at == std::chrono::steady_clock::time_point::max()) return void(timer_armed_ = false);
    timer_armed_ = true;
    auto const generation = ++timer_generation_;
    timer_.expires_at(at);
    timer_.async_wait(net::bind_executor(strand(), [self = self(), generation](boost::system::error_code ec) {
      if (ec || self->state() == State::closed || generation != self->timer_generation_) return;
      self->on_timer();
    }));
  }

  void on_timer() {
    auto const now = std::chrono::steady_clock::now();
    if (state() == State::closing) {
      if (now >= close_deadline_) {
        log(LogLevel::info, reason(), "close handshake timed out");
        return finish(reason());
      }
    } else if (writing_ && limits().write_timeout.count() > 0 && now - write_started_ >= limits().write_timeout) {
      log(LogLevel::info, error::write_timeout, "write stalled");
      return finish(error::write_timeout);
    } else if (heartbeat_ && !writing_ && is_open() && now - last_write_ >= topts().heartbeat) {
      reply(heartbeat_message(topts().heartbeat));
    }
    arm_timer();
  }

  /// A write starts: its deadline needs the timer unless the timer is already armed.
  void started_write() {
    write_started_ = std::chrono::steady_clock::now();
    // Armed for a later heartbeat, the timer must come earlier for this write's deadline.
    auto const wt = limits().write_timeout;
    if (!timer_armed_ || (wt.count() > 0 && timer_.expiry() > write_started_ + wt)) arm_timer();
  }

  ws_stream ws_;
  net::steady_timer timer_;
  Request req_;
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
  std::chrono::steady_clock::time_point last_write_{};
  std::chrono::steady_clock::time_point close_deadline_{};
  std::uint64_t timer_generation_ = 0;
  std::size_t write_events_ = 0;  // events the write in flight delivers
  bool writing_ = false;
  bool timer_armed_ = false;
  bool heartbeat_ = false;        // the client asked for heartbeat frames (?heartbeat)
  bool raw_ = false;              // text events are framed by herald and gathered
  bool flush_events_ = false;
  bool close_started_ = false;
  bool bad_close_code_ = false;
  // The client's inbound_rate budget.
  TokenBucket messages_;
  TokenBucket bytes_;
};

}  // namespace herald::detail

namespace herald::inline v0 {

inline void WebSocket::validate(WebSocketOptions const& o) {
  auto fail = [](char const* what) { throw std::invalid_argument(std::string("herald: WebSocketOptions::") + what); };
  for (auto const& p : o.subprotocols)
    if (!detail::http_token(p)) fail("subprotocols holds a name that is not an HTTP token");
  if (o.handshake_timeout.count() < 0) fail("handshake_timeout must not be negative");
  if (o.idle_timeout.count() < 0) fail("idle_timeout must not be negative");
  if (o.heartbeat.count() < 0 || o.heartbeat > detail::max_heartbeat) fail("heartbeat must be 0..1 hour");
  if (o.close_timeout.count() <= 0) fail("close_timeout must be positive");
  if (o.read_message_max == 0) fail("read_message_max must be positive");
  if (o.inbound_rate.messages_per_second != 0 && o.inbound_rate.message_burst == 0)
    fail("inbound_rate.message_burst must be positive: no message could pass");
  if (o.inbound_rate.bytes_per_second != 0 && o.inbound_rate.byte_burst < o.read_message_max)
    fail("inbound_rate.byte_burst must be at least read_message_max: a larger message could never pass");
  if (!detail::ws::sendable_close_code(o.overflow_close_code))
    fail("overflow_close_code is not a close code a server may send");
  if (o.deflate.max_window_bits < 9 || o.deflate.max_window_bits > 15) fail("deflate.max_window_bits must be 9..15");
  if (o.deflate.mem_level < 1 || o.deflate.mem_level > 9) fail("deflate.mem_level must be 1..9");
  if (o.deflate.level < 0 || o.deflate.level > 9) fail("deflate.level must be 0..9");
}

template <class Stream>
void WebSocket::start(std::shared_ptr<ChannelContext<WebSocket>> channel, Stream&& stream, Request&& req,
                      std::string already_read) {
  auto session = std::make_shared<detail::WsSession<std::decay_t<Stream>>>(std::move(channel), std::move(stream),
                                                                           std::move(already_read));
  session->start(std::move(req));
}

}  // namespace herald
