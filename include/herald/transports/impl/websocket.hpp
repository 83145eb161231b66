#pragma once

#include <herald/detail/buffer_view.hpp>
#include <herald/detail/channel_core.hpp>
#include <herald/detail/connection.hpp>
#include <herald/detail/decimal.hpp>
#include <herald/detail/error_map.hpp>
#include <herald/detail/handler_memory.hpp>
#include <herald/detail/heartbeat.hpp>
#include <herald/detail/json_format.hpp>
#include <herald/detail/response.hpp>
#include <herald/detail/token_bucket.hpp>
#include <herald/detail/topic.hpp>
#include <herald/detail/ws_frame.hpp>
#include <herald/detail/ws_frame_reader.hpp>
#include <herald/detail/ws_inflate.hpp>
#include <herald/detail/ws_protocol.hpp>
#include <herald/session.hpp>
#include <herald/transports/websocket.hpp>

#include <boost/asio/bind_executor.hpp>
#include <boost/asio/buffer.hpp>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/stream_traits.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/field.hpp>
#include <boost/beast/http/write.hpp>
#include <boost/beast/websocket/detail/hybi13.hpp>
#include <boost/beast/websocket/detail/pmd_extension.hpp>
#include <boost/beast/websocket/error.hpp>
#include <boost/beast/websocket/option.hpp>
#include <boost/beast/websocket/rfc6455.hpp>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <memory>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

namespace herald::inline v0::detail {

/// The herald-framed text frame of an event as a wire format (gathered writes, no deflate).
inline constexpr WireFormat ws_frame_wire{"ws_frame", 2};

inline std::string encode_ws_frame(Event const& ev) {
  return ws::frame_message(ws::Opcode::text, json_envelope_size_hint(ev),
                           [&](std::string& out) { append_json_envelope(out, ev); });
}

/** A WebSocket connection's own messages (acks, errors, Session::send), in order: a singly
    linked list, two pointers while empty (a std::deque allocates a map and a 512-byte node as
    soon as it exists, on every idle connection). */
class OutQueue {
 public:
  struct Out {
    std::string bytes;
    bool binary = false;
  };

  OutQueue() noexcept = default;
  OutQueue(OutQueue const&) = delete;
  OutQueue& operator=(OutQueue const&) = delete;
  ~OutQueue() { clear(); }

  bool empty() const noexcept { return head_ == nullptr; }

  void push(std::string bytes, bool binary) {
    auto node = std::make_unique<Node>(Node{{std::move(bytes), binary}, nullptr});
    Node* const last = node.get();
    if (tail_) tail_->next = std::move(node);
    else head_ = std::move(node);
    tail_ = last;
  }

  /// The first message, taken out; the queue must not be empty.
  Out pop() noexcept {
    auto node = std::move(head_);
    head_ = std::move(node->next);
    if (!head_) tail_ = nullptr;
    return std::move(node->out);
  }

  void clear() noexcept {
    while (head_) head_ = std::move(head_->next);  // a loop: a long list must not recurse
    tail_ = nullptr;
  }

 private:
  struct Node {
    Out out;
    std::unique_ptr<Node> next;
  };
  std::unique_ptr<Node> head_;
  Node* tail_ = nullptr;
};

/** One WebSocket connection: the wire side of a Connection, on the stream the HTTP server
    handed over. herald speaks RFC 6455 itself: Beast parsed the upgrade request, herald answers
    it (the 101, subprotocol, permessage-deflate), reads frames with ws::FrameReader and frames
    every message it writes.

    Reading: on a plain socket the connection waits for readability and reads into a buffer of
    its thread (read_buffer), so an idle connection holds no read buffer; the reader keeps bytes
    only for a partial frame or an unfinished message. Other streams (TLS) read into a small
    buffer of the connection's own. Every message a client sends, control messages, pings and
    pongs too, passes its inbound_rate budget first; over it, the client gets an error frame
    and a 1008 close, and whatever it sends meanwhile is read (the close handshake needs its
    close frame) but ignored.

    Writing: one write in flight, gathering everything queued, in this order: the 101 (once),
    pongs and a keepalive ping, the connection's own messages (`out_`, which Session::send may
    fill from any thread, framed when queued), then events (up to max_gather of them). A text
    event without deflate is the frame every subscriber shares (ws_frame_wire); a binary event
    is its head (text) and its payload (binary), back to back. With permessage-deflate each
    message is compressed and framed into the write's scratch bytes as it is gathered. What a
    write needs (Gather) is held only while events are taken or a write is in flight: an idle
    connection holds none, however much it wrote before.

    Closing: goodbye() flushes what the Flush allows, then send_close() writes the close frame
    for reason(); once the client's close frame is read too (or the reading failed), the server
    half-closes and reads until the client ends its side (teardown), within close_timeout. A
    client's close is echoed with its code. */
template <class Stream>
class WsSession final : public Connection {
 public:
  /// `ex`: the executor the stream came on (an IoSocket's own is its io_context's).
  WsSession(std::shared_ptr<ChannelImpl<WebSocket>> channel, Stream&& stream, net::any_io_executor const& ex)
      : Connection(std::move(channel), serialized(ex), /*lingers=*/true),
        stream_(std::move(stream)) {}

  /// `already_read`: the frames that came in the packet of the upgrade request.
  void start(Request&& req, std::string already_read) {
    net::dispatch(strand(), [self = self(), req = std::move(req), bytes = std::move(already_read)]() mutable {
      self->run(req, bytes);
    });
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
  using Out = OutQueue::Out;
  using clock = std::chrono::steady_clock;

  // One gathered write carries at most this much.
  static constexpr std::size_t max_gather = 64;
  static constexpr std::size_t max_gather_bytes = 64 * 1024;
  static constexpr bool plain_socket = plain_socket_v<Stream>;
  // What a plain connection reads at once into its thread's buffer; what a TLS one keeps.
  static constexpr std::size_t read_buffer_size = 64 * 1024;
  static constexpr std::size_t tls_read_size = 8 * 1024;
  static constexpr std::size_t max_pending_pongs = 4 * 1024;
  struct NoBuffer {};

  std::shared_ptr<WsSession> self() { return std::static_pointer_cast<WsSession>(shared_from_this()); }

  ChannelImpl<WebSocket>& ch() const noexcept { return static_cast<ChannelImpl<WebSocket>&>(channel()); }

  WebSocketOptions const& topts() const noexcept { return ch().transport_options(); }
  Limits const& limits() const noexcept { return ch().options().limits; }

  std::size_t wire_size(StoredEvent const& ev) const override {
    auto const& e = ev.event();
    if (e.kind == PayloadKind::binary) return e.data.size() + e.topic.size() + e.type.size() + 64;
    if (!deflate_) return ev.encoded(ws_frame_wire, encode_ws_frame).size();
    return json_envelope(ev).size();
  }

  // Handshake -------------------------------------------------------------------------------

  void run(Request const& req, std::string& already_read) {
    std::string detail;
    boost::system::error_code ec;
    bool const upgrade = beast::websocket::is_upgrade(req);
    if (!upgrade) {
      refused(ec = error::bad_request);
      detail = "this path speaks WebSocket: send an upgrade request";
    } else if (auto const problem = ws::key_problem(req[http::field::sec_websocket_key]); !problem.empty()) {
      // A 101 to "abc" would answer a client that is no WebSocket implementation.
      refused(ec = error::bad_request);
      detail = problem;
    } else {
      ec = admit(req, detail, /*empty_means_all=*/false, remote_of(stream_));
      // After admission, as Beast's handshake was: a request without Host gets 421 first.
      if (!ec)
        if (auto const bad = handshake_problem(req)) return refuse_handshake(req, bad);
    }
    if (ec) {
      auto res = error_response(ec, detail, req.version(), false, ch().retry_after(ec));
      if (!upgrade) {
        res.result(http::status::upgrade_required);
        res.set(http::field::upgrade, "websocket");
      }
      write_and_close(std::move(stream_), std::move(res));
      return finish(ec);
    }

    // herald's deadlines take over; a tcp_stream's deadline from the HTTP read must not cut us.
    auto& lowest = beast::get_lowest_layer(stream_);
    if constexpr (requires { lowest.expires_never(); }) lowest.expires_never();

    auto const& o = topts();
    std::string extension;
    if (o.deflate.enable) negotiate_deflate(req, extension);
    heartbeat_ = o.heartbeat.count() > 0 && wants_heartbeat(req.target());
    // The 101 is the first of the bytes herald writes itself: the first write carries it.
    append(accept_response(req, extension));
    head_in_write_ = static_cast<std::uint32_t>(g().scratch.size());

    last_read_ = last_write_ = clock::now();
    // The first heartbeat goes out at once, behind the 101 and ahead of any ack or event: the
    // client's proof that data flows past whatever lies between it and the server.
    if (heartbeat_) enqueue(heartbeat_message(o.heartbeat), false, /*from_strand=*/true);
    if (open(/*announce=*/true)) pump();
    if constexpr (plain_socket) {
      boost::system::error_code ignored;
      stream_.non_blocking(true, ignored);  // read_some after a wake-up must never block
    }
    // Frames the client sent in the packet of its upgrade request are its first.
    if (!already_read.empty()) consume({already_read.data(), already_read.size()});
    if (state() == State::closed) return;
    read();
    if (deadline() == clock::time_point::max()) arm_next_deadline();
    watch_expiry();
  }

  /** What Beast's handshake refused beyond an upgrade request with a good key: no Host, and a
      Sec-WebSocket-Version other than 13. */
  static boost::system::error_code handshake_problem(Request const& req) {
    using beast::websocket::error;
    if (req.find(http::field::host) == req.end()) return error::no_host;
    auto const version = req.find(http::field::sec_websocket_version);
    if (version == req.end()) return error::no_sec_version;
    if (version->value() != "13") return error::bad_sec_version;
    return {};
  }

  /** An admitted request the handshake refuses: the answer, then finish() releases the
      registration and closes the stream. */
  void refuse_handshake(Request const& req, boost::system::error_code bad) {
    log(LogLevel::info, bad, "handshake failed");
    auto res = std::make_shared<Response>(handshake_refusal(req, bad));
    http::async_write(stream_, *res,
                      net::bind_executor(strand(), [self = self(), res, bad](boost::system::error_code, std::size_t) {
                        self->finish(bad);
                      }));
  }

  /// Beast's answer to handshake_problem: 400, or 426 naming the version herald speaks.
  static Response handshake_refusal(Request const& req, boost::system::error_code ec) {
    Response res{http::status::bad_request, req.version()};
    if (ec == beast::websocket::error::bad_sec_version) {
      res.result(http::status::upgrade_required);
      res.set(http::field::sec_websocket_version, "13");
    }
    res.set(http::field::server, "herald");
    res.body() = ec.message();
    res.prepare_payload();
    return res;
  }

  /// The 101 (RFC 6455 §4.2.2), with the subprotocol, extension and heartbeat that apply.
  std::string accept_response(Request const& req, std::string_view extension) const {
    beast::websocket::detail::sec_ws_accept_type accept;
    beast::websocket::detail::make_sec_ws_accept(accept, req[http::field::sec_websocket_key]);
    std::string out =
        "HTTP/1.1 101 Switching Protocols\r\n"
        "Upgrade: websocket\r\n"
        "Connection: upgrade\r\n"
        "Sec-WebSocket-Accept: ";
    out.append(accept.data(), accept.size());
    out += "\r\n";
    if (!extension.empty()) {
      out += "Sec-WebSocket-Extensions: ";
      out += extension;
      out += "\r\n";
    }
    out += "Server: herald\r\n";
    auto const protocol = ws::select_subprotocol(req[http::field::sec_websocket_protocol], topts().subprotocols);
    if (!protocol.empty()) {
      out += "Sec-WebSocket-Protocol: ";
      out += protocol;
      out += "\r\n";
    }
    if (heartbeat_) {
      out += heartbeat_header;
      out += ": ";
      append_decimal(out, static_cast<std::uint64_t>(topts().heartbeat.count()));
      out += "\r\n";
    }
    out += "\r\n";
    return out;
  }

  /** permessage-deflate (RFC 7692) negotiated as Beast's stream negotiates it: the answer's
      extension (left empty when declined) and the parameters of both directions. */
  void negotiate_deflate(Request const& req, std::string& extension) {
    namespace bd = beast::websocket::detail;
    bd::pmd_offer offer{};
    bd::pmd_read(offer, req);
    if (!offer.accept) return;
    auto const& d = topts().deflate;
    beast::websocket::permessage_deflate pmd;
    pmd.server_enable = true;
    pmd.server_max_window_bits = d.max_window_bits;
    pmd.client_max_window_bits = d.max_window_bits;
    pmd.server_no_context_takeover = d.no_context_takeover;
    pmd.client_no_context_takeover = d.no_context_takeover;
    bd::pmd_offer config{};
    config.accept = true;
    auto const answer = bd::pmd_negotiate_impl(config, offer, pmd);
    if (!config.accept) return;
    extension.assign(answer.data(), answer.size());
    deflate_ = true;
    client_window_bits_ = static_cast<std::uint8_t>(config.client_max_window_bits);
    client_no_takeover_ = config.client_no_context_takeover;
    server_window_bits_ = static_cast<std::uint8_t>(config.server_max_window_bits);
    server_no_takeover_ = config.server_no_context_takeover;
  }

  // Reading ---------------------------------------------------------------------------------

  /// The buffer every plain connection of this thread reads into, one read at a time.
  static std::span<char> read_buffer() {
    thread_local std::unique_ptr<char[]> buffer;
    if (!buffer) buffer = std::make_unique_for_overwrite<char[]>(read_buffer_size);
    return {buffer.get(), read_buffer_size};
  }

  void read() {
    if constexpr (plain_socket) {
      on_strand(
          stream_.get_executor(),
          [this](auto handler) { stream_.async_wait(net::socket_base::wait_read, std::move(handler)); },
          [self = self()](boost::system::error_code ec) { self->on_readable(ec); });
    } else {
      if (!tls_buffer_) tls_buffer_ = std::make_unique_for_overwrite<char[]>(tls_read_size);
      on_strand(
          stream_.get_executor(),
          [this](auto handler) {
            stream_.async_read_some(net::buffer(tls_buffer_.get(), tls_read_size), std::move(handler));
          },
          [self = self()](boost::system::error_code ec, std::size_t n) {
            self->on_read(ec, {self->tls_buffer_.get(), n});
          });
    }
  }

  void on_readable(boost::system::error_code ec) {
    std::span<char> bytes;
    if (!ec && state() != State::closed) {
      bytes = read_buffer();
      std::size_t const n = stream_.read_some(net::buffer(bytes.data(), bytes.size()), ec);
      if (ec == net::error::would_block) return read();  // a spurious wake-up
      bytes = bytes.first(n);
    }
    on_read(ec, bytes);
  }

  void on_read(boost::system::error_code ec, std::span<char> bytes) {
    if (state() == State::closed) return;
    if (ec) return finish(ec);  // a connection closing keeps the reason it closes for
    consume(bytes);
    // A closing connection keeps reading: the peer's close frame completes the handshake, and
    // the end of its stream the teardown.
    if (state() != State::closed) read();
  }

  /// The client's next bytes: whatever arrives is a sign of life (idle_timeout).
  void consume(std::span<char> bytes) {
    last_read_ = clock::now();
    ping_sent_ = false;
    if (read_done_) return;  // after its close frame or a failure, nothing the client sends counts
    // The reader is lent (Pooled) while a frame or message is unfinished: between frames it
    // holds nothing a new one would not, so an idle connection keeps none.
    bool const fresh = !reader_;
    auto& reader = reader_.get();
    if (fresh) reader = ws::FrameReader(ws::DeflateParams{deflate_, client_window_bits_, client_no_takeover_});
    if (auto const ec = reader.feed(bytes, topts().read_message_max, [this](ws::Received const& r) { on_frame(r); }))
      return fail(ec);
    if (reader.idle()) reader_.release();
  }

  void on_frame(ws::Received const& r) {
    switch (r.opcode) {
      case ws::Opcode::text:
      case ws::Opcode::binary:
        if (is_open() && within_budget(r.payload.size())) {
          if (r.opcode == ws::Opcode::binary) application_message(r.payload, true);
          else text_message(r.payload);
        }
        return;
      case ws::Opcode::ping:
      case ws::Opcode::pong:
        // Pings and pongs are messages too: every ping costs a pong, so a ping flood would
        // otherwise cost a write each, for free.
        if (!is_open()) return;
        if (auto const short_of = take_budget(r.payload.size()); short_of != Budget::ok)
          return over_budget(short_of, /*ping=*/true);
        if (r.opcode == ws::Opcode::ping) {
          // Each ping gets its pong, with its bytes, in the next write; past max_pending_pongs
          // of them unwritten (a client that pings and does not read), no more.
          if (!pongs_) pongs_ = std::make_unique<std::string>();
          if (pongs_->size() < max_pending_pongs) pongs_->append(ws::ControlFrame(ws::Opcode::pong, r.payload).bytes());
          pump();
        }
        return;
      case ws::Opcode::close:
        return on_peer_close(r.close_code);
      case ws::Opcode::continuation:
        return;
    }
  }

  /** The client's close frame: while open, the server echoes its code (RFC 6455 §5.5.1; 1000
      for a close without one) and sends nothing more; while closing, the handshake is complete
      once the server's own close frame is out. */
  void on_peer_close(std::uint16_t code) {
    read_done_ = true;
    if (is_open()) {
      echo_code_ = code == 1005 ? 1000 : code;
      return end({}, Flush::nothing);  // the client closed: a normal end
    }
    if (close_sent_) {
      if (!writing_) teardown();  // else when the close frame is written
      return;
    }
    abandon_flush();  // the client reads nothing more: the close frame goes next
    pump();
  }

  /** The client broke RFC 6455 (reader error: 1002, 1007 or 1009): the connection fails with
      that close code. A close frame with a code no one may send fails it too, as
      beast::websocket::error::bad_close_code: with 1002 (and no reason) for the reserved and
      unassigned codes, and cut without a close frame for 5000 and above, which no endpoint
      could send (Autobahn accepts either). */
  void fail(boost::system::error_code ec) {
    read_done_ = true;
    if (auto const code = reader_->bad_close_code(); code != 0) {
      ec = beast::websocket::error::bad_close_code;
      if (code >= 5000) {
        log(LogLevel::info, ec, "close code out of range; cut");
        return finish(ec);
      }
    }
    log(LogLevel::info, ec, "client broke the protocol");
    if (is_open()) return end(ec, Flush::nothing);
    abandon_flush();
    if (close_sent_) {
      if (!writing_) teardown();
      return;
    }
    pump();
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
    auto const& r = topts().inbound_rate;
    switch (budget_.take({1, size}, clock::now(),
                         {{{r.messages_per_second, r.message_burst}, {r.bytes_per_second, r.byte_burst}}})) {
      case 0: return Budget::messages;
      case 1: return Budget::bytes;
      default: return Budget::ok;
    }
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
    auto& w = g();
    w.batch.erase(std::remove_if(w.batch.begin() + static_cast<std::ptrdiff_t>(w.pos), w.batch.end(), of_topic),
                  w.batch.end());
    std::vector<EventPtr> more;
    if (take(more)) {
      std::erase_if(more, of_topic);
      w.batch.insert(w.batch.end(), more.begin(), more.end());
    }
  }

  // Writing ---------------------------------------------------------------------------------

  /** Queue one of the connection's own messages, framed (with permessage-deflate it is
      compressed and framed when written, in order). Over the queue bound the connection is
      closed as a slow consumer, like an event overflow. */
  SendStatus enqueue(std::string data, bool binary, bool from_strand) {
    if (!deflate_) data = ws::frame_message(binary ? ws::Opcode::binary : ws::Opcode::text, data);
    bool post = false;
    bool overflow = false;
    bool half = false;
    {
      std::lock_guard lock{out_lock_};
      if (out_closed_) return SendStatus::dropped;
      auto const& l = limits();
      // 32-bit counts: the connection's own messages are bounded to 4 GiB whatever the limits.
      if (out_count_ + 1 > std::min<std::size_t>(l.queue_events, UINT32_MAX) ||
          out_bytes_ + data.size() > std::min<std::size_t>(l.queue_bytes, UINT32_MAX)) {
        out_closed_ = true;
        out_.clear();
        out_count_ = out_bytes_ = 0;
        overflow = true;
      } else {
        ++out_count_;
        out_bytes_ += static_cast<std::uint32_t>(data.size());
        out_.push(std::move(data), binary);
        half = std::size_t{out_count_} * 2 > l.queue_events || std::size_t{out_bytes_} * 2 > l.queue_bytes;
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
    std::lock_guard lock{out_lock_};
    out_closed_ = true;
    if (!keep) {
      out_.clear();
      out_count_ = out_bytes_ = 0;
    }
  }

  bool pop_out(Out& m) {
    std::lock_guard lock{out_lock_};
    if (out_.empty()) {
      out_posted_ = false;
      return false;
    }
    m = out_.pop();
    --out_count_;
    out_bytes_ -= static_cast<std::uint32_t>(m.bytes.size());
    return true;
  }

  /// The next queued event, still queued; nullptr when there is none.
  StoredEvent const* peek_event() {
    auto& w = g();
    if (w.pos == w.batch.size()) {
      w.batch.clear();
      w.pos = 0;
      flush_delivered();
      if (!take(w.batch)) return nullptr;
    }
    return w.batch[w.pos].get();
  }

  void drain() override { pump(); }

  /** Write everything queued, gathered (see the class doc); once a closing connection has
      nothing left to flush, its close frame. */
  void pump() {
    if (state() == State::admitting || state() == State::closed || writing_ || close_sent_) return;
    if (pongs_) append(*std::exchange(pongs_, nullptr));
    if (ping_due_ && is_open()) append(ws::ControlFrame(ws::Opcode::ping, {}).bytes());
    ping_due_ = false;
    Out m;
    while (g().scratch.size() < max_gather_bytes && pop_out(m)) {
      if (deflate_) append_message(m.bytes, m.binary);
      else append(m.bytes);
    }
    if (is_open() || flush_events_) gather_events();
    if (gather_->pieces != 0) return write();
    if (state() == State::closing) return send_close();
    if (gather_->idle()) gather_.release();
  }

  /// Queued events, up to the gather bounds, behind what the write already holds.
  void gather_events() {
    std::size_t bytes = 0;
    auto& w = g();
    while (w.events < max_gather && bytes < max_gather_bytes) {
      auto const* next = peek_event();
      if (!next) break;
      auto const& e = next->event();
      if (e.kind == PayloadKind::binary) {
        auto const head = ws::encode_binary_head(e);
        if (deflate_) {
          append_message(head, false);
          append_message(e.data, true);
        } else {
          append(ws::FrameHeader(ws::Opcode::text, head.size()).bytes());
          append(head);
          append(ws::FrameHeader(ws::Opcode::binary, e.data.size()).bytes());
          add(net::buffer(e.data));  // the payload's bytes, shared
        }
        bytes += head.size() + e.data.size();
      } else if (deflate_) {
        auto const& text = json_envelope(*next);
        append_message(text, false);
        bytes += text.size();
      } else {
        auto const& frame = next->encoded(ws_frame_wire, encode_ws_frame);
        add(net::buffer(frame));
        bytes += frame.size();
      }
      w.in_flight.push_back(std::move(w.batch[w.pos++]));  // owns the bytes until the write is done
      ++w.events;
    }
  }

  /** What one gathered write needs, held while events are taken or a write is in flight
      (Pooled). The write is `pieces` buffers, the first in `first` (a lone buffer needs no
      vector), the rest in `buffers`; bytes herald wrote itself (the 101, frame headers,
      control frames, its own messages, compressed messages) go in `scratch`, marked by
      scratch_mark() until write() points them at `scratch`, whose bytes may move while it
      grows. */
  struct Gather {
    std::vector<EventPtr> batch;  // taken from the queue; those before `pos` are in the write
    std::size_t pos = 0;
    std::vector<EventPtr> in_flight;  // the events of the write in flight (they own its bytes)
    std::vector<net::const_buffer> buffers;
    net::const_buffer first;
    std::string scratch;
    std::size_t pieces = 0;
    std::size_t events = 0;  // events the write delivers
    clock::time_point started;  // of the write in flight

    bool idle() const noexcept { return pieces == 0 && pos == batch.size(); }
    bool recycle() noexcept {
      batch.clear();
      pos = 0;
      in_flight.clear();
      buffers.clear();
      scratch.clear();
      pieces = events = 0;
      // What a burst grew is not kept for the next user.
      return batch.capacity() <= 1024 && scratch.capacity() <= max_gather_bytes;
    }
  };

  Gather& g() { return gather_.get(); }

  static void const* scratch_mark() noexcept {
    static char const mark = 0;
    return &mark;
  }

  void add(net::const_buffer b) {
    auto& w = g();
    if (w.pieces == 0) w.first = b;
    else {
      if (w.pieces == 1) w.buffers.push_back(w.first);
      w.buffers.push_back(b);
    }
    ++w.pieces;
  }

  /// `n` more bytes at the end of the scratch bytes belong to the write.
  void extend_scratch(std::size_t n) {
    if (n == 0) return;
    if (auto& w = g(); w.pieces != 0) {
      auto& last = w.pieces == 1 ? w.first : w.buffers.back();
      if (last.data() == scratch_mark()) return void(last = net::const_buffer(scratch_mark(), last.size() + n));
    }
    add(net::const_buffer(scratch_mark(), n));
  }

  void append(std::string_view bytes) {
    g().scratch += bytes;
    extend_scratch(bytes.size());
  }

  /// One whole message, compressed (RFC 7692) from the deflate threshold up, framed.
  void append_message(std::string_view payload, bool binary) {
    auto const op = binary ? ws::Opcode::binary : ws::Opcode::text;
    auto const& d = topts().deflate;
    if (payload.size() < d.threshold) {
      append(ws::FrameHeader(op, payload.size()).bytes());
      return append(payload);
    }
    if (!deflater_) deflater_ = std::make_unique<ws::Deflater>(d.level, server_window_bits_, d.mem_level);
    constexpr std::size_t room = 10;  // the longest header, filled in once the size is known
    auto& scratch = g().scratch;
    auto const at = scratch.size();
    scratch.resize(at + room);
    deflater_->deflate(payload, scratch, server_no_takeover_);
    ws::FrameHeader const frame(op, scratch.size() - at - room, true, /*rsv1=*/true);
    auto const header = frame.bytes();
    std::memcpy(scratch.data() + at + room - header.size(), header.data(), header.size());
    scratch.erase(at, room - header.size());
    extend_scratch(scratch.size() - at);
  }

  void write() {
    BOOST_ASSERT(!writing_);  // one write in flight
    auto& w = g();
    std::size_t at = 0;
    auto const place = [&](net::const_buffer& b) {
      if (b.data() != scratch_mark()) return;
      b = net::const_buffer(w.scratch.data() + at, b.size());
      at += b.size();
    };
    if (w.pieces == 1) place(w.first);
    else
      for (auto& b : w.buffers) place(b);
    writing_ = true;
    std::size_t sent = 0;
    if constexpr (plain_socket) {
      if (may_write_now() && SyncDepth::room() && try_send(sent)) {
        SyncDepth nested;
        return on_write({}, sent);
      }
    }
    started_write();
    auto done = [self = self(), sent](boost::system::error_code ec, std::size_t n) { self->on_write(ec, sent + n); };
    if (w.pieces == 1) {
      on_strand(
          stream_.get_executor(), [&](auto handler) { net::async_write(stream_, w.first, std::move(handler)); },
          std::move(done));
    } else {
      on_strand(
          stream_.get_executor(),
          [&](auto handler) { net::async_write(stream_, BufferView(w.buffers), std::move(handler)); },
          std::move(done));
    }
  }

  /** A wake-up's write is first tried at once (send_now), on the hub's wake-up only, not where
      a caller goes on after pump(). */
  bool try_send(std::size_t& sent) {
    if (!stream_.non_blocking()) return false;  // the 101 before reading began: the handshake's own path
    auto& w = g();
    if (w.pieces == 1) return send_now(stream_, w.first, sent);
    bool const all = send_now(stream_, w.buffers, sent);
    if (!all && (w.pieces = w.buffers.size()) == 1) {
      w.first = w.buffers.front();
      w.buffers.clear();
    }
    return all;
  }

  void on_write(boost::system::error_code ec, std::size_t bytes) {
    writing_ = false;
    auto& w = g();
    w.pieces = 0;
    w.buffers.clear();
    w.in_flight.clear();
    w.scratch.clear();
    // The 101 is no WebSocket traffic.
    if (auto const head = std::exchange(head_in_write_, 0); head != 0) bytes -= std::min<std::size_t>(bytes, head);
    auto const events = std::exchange(w.events, 0);
    if (state() == State::closed) return;
    if (ec) return finish(ec);
    wrote(bytes);
    last_write_ = clock::now();
    delivered_ += static_cast<std::uint32_t>(events);
    if (close_sent_) {
      if (read_done_) teardown();  // else the client's close frame completes the handshake
      return;
    }
    if (events != 0) return drain_soon();
    pump();
  }

  void flush_delivered() {
    if (delivered_ != 0) delivered(std::exchange(delivered_, 0));
  }

  // Closing ---------------------------------------------------------------------------------

  /// What is flushed before the close frame: see Flush.
  void goodbye(Flush flush) override {
    flush_events_ = flush == Flush::all;
    if (!flush_events_) drop_batch();
    close_out(/*keep=*/flush != Flush::nothing);
    arm_deadline(clock::now() + topts().close_timeout);  // the close handshake's, kept till the end
    pump();
  }

  /// The events taken but not written go (a write in flight keeps its own, in in_flight).
  void drop_batch() {
    if (!gather_) return;
    gather_->batch.clear();
    gather_->pos = 0;
  }

  /// Nothing more is written but the close frame (the client sent its own, or broke the protocol).
  void abandon_flush() {
    flush_events_ = false;
    drop_batch();
    close_out(/*keep=*/false);
  }

  /** The close frame: the client's code echoed (without a reason), or reason()'s code with its
      wire name as the reason. */
  void send_close() {
    close_sent_ = true;
    auto const ec = reason();
    std::uint16_t code = echo_code_;
    std::string why;
    if (code == 0) {
      if (ec == beast::websocket::error::bad_close_code) code = 1002;
      else {
        code = ec == error::slow_consumer ? topts().overflow_close_code : to_close_code(ec);
        // A drain's reason is JSON (detail/drain.hpp): when to come back and from where.
        if (ec == error::draining) why = drain_json(drain_delay(), drain_cursor());
        else if (ec) why = wire_name(ec);
      }
    }
    append(ws::ControlFrame::close(code, why).bytes());
    write();
  }

  /** Both close frames are out, or the reading failed: the server closes first (RFC 6455
      §7.1.1). It half-closes and reads on until the client ends its side: closing with unread
      bytes would reset the connection, which can destroy the close frame before the client
      reads it. close_timeout bounds the wait. */
  void teardown() {
    if (tearing_down_) return;
    tearing_down_ = true;
    auto& sock = lowest_socket(stream_);
    if constexpr (requires(boost::system::error_code& e) { sock.shutdown(net::socket_base::shutdown_send, e); }) {
      boost::system::error_code ignored;
      sock.shutdown(net::socket_base::shutdown_send, ignored);
    } else {
      finish(reason());
    }
  }

  void shut() override {
    close_out(/*keep=*/false);
    cancel_deadline();
    drop_batch();
    pongs_ = nullptr;
    flush_delivered();
    close_stream(stream_);
  }

  /** One deadline per connection (Connection::arm_deadline), the one that comes next: while
      closing, the close handshake's; while open, the write in flight's, the idle timeout's (a
      keepalive ping after idle_timeout / 2 without a byte from the client, the end after
      idle_timeout) and, for a client that asked for heartbeats, the next heartbeat's
      (heartbeat after the last write; while a write is in flight, not before `heartbeat` from
      now). It is not moved on every read: when it comes early it moves on. A deadline fires on
      time, not a period late. */
  void arm_next_deadline() {
    if (state() == State::closed) return;
    auto const now = clock::now();
    auto at = clock::time_point::max();
    if (state() == State::closing) {
      at = deadline();  // set by goodbye(); re-armed as it was if it came early
    } else {
      if (auto const wt = write_limit(); writing_ && wt.count() > 0) at = gather_->started + wt;
      if (auto const idle = topts().idle_timeout; idle.count() > 0)
        at = std::min(at, last_read_ + (topts().keepalive_pings && !ping_sent_ ? idle / 2 : idle));
      if (heartbeat_) {
        auto const hb = topts().heartbeat;
        at = std::min(at, writing_ ? std::max(last_write_ + hb, now + hb) : last_write_ + hb);
      }
    }
    if (at == clock::time_point::max()) return cancel_deadline();
    arm_deadline(at);
  }

  void on_deadline() override {
    auto const now = clock::now();
    auto const idle = topts().idle_timeout;
    if (state() == State::closing) {
      if (now >= deadline()) {
        log(LogLevel::info, reason(), "close handshake timed out");
        return finish(reason());
      }
    } else if (auto const wt = write_limit(); writing_ && wt.count() > 0 && now - gather_->started >= wt) {
      log(LogLevel::info, error::write_timeout, "write stalled");
      return finish(error::write_timeout);
    } else if (idle.count() > 0 && now - last_read_ >= idle) {
      log(LogLevel::info, error::idle_timeout, "nothing from the client");
      return finish(error::idle_timeout);
    } else {
      if (idle.count() > 0 && topts().keepalive_pings && !ping_sent_ && now - last_read_ >= idle / 2) {
        ping_sent_ = ping_due_ = true;
        pump();
      }
      if (heartbeat_ && !writing_ && is_open() && now - last_write_ >= topts().heartbeat)
        reply(heartbeat_message(topts().heartbeat));
    }
    arm_next_deadline();
  }

  /// How long the write in flight may take: the 101 is the opening handshake.
  std::chrono::milliseconds write_limit() const noexcept {
    return head_in_write_ != 0 ? topts().handshake_timeout : limits().write_timeout;
  }

  /// A write starts: its deadline moves unless it is sooner already.
  void started_write() {
    auto const started = g().started = clock::now();
    auto const wt = write_limit();
    if (deadline() == clock::time_point::max() || (wt.count() > 0 && deadline() > started + wt)) arm_next_deadline();
  }

  Stream stream_;
  Pooled<ws::FrameReader> reader_;  // see consume()
  [[no_unique_address]] std::conditional_t<plain_socket, NoBuffer, std::unique_ptr<char[]>> tls_buffer_;
  std::unique_ptr<std::string> pongs_;      // pongs not written yet
  std::unique_ptr<ws::Deflater> deflater_;  // from the first message that is compressed

  // The connection's own messages; Session::send fills it from any thread.
  OutQueue out_;
  std::uint32_t out_count_ = 0;
  std::uint32_t out_bytes_ = 0;

  // Strand-only state.
  Pooled<Gather> gather_;
  std::uint32_t head_in_write_ = 0;  // bytes of the 101 in the scratch bytes, until written
  std::uint32_t delivered_ = 0;  // events written since the channel's count was told (one batch)
  clock::time_point last_write_{};
  clock::time_point last_read_{};
  // The client's inbound_rate budget.
  TokenBuckets<2> budget_;  // inbound_rate: messages, bytes
  std::uint16_t echo_code_ = 0;  // the client's close code, echoed; 0 until it closed
  std::uint8_t server_window_bits_ = 15;
  std::uint8_t client_window_bits_ = 15;  // the reader's permessage-deflate parameters
  SpinLock out_lock_;  // guards out_, out_count_, out_bytes_, out_posted_, out_closed_
  bool out_posted_ = false;
  bool out_closed_ = false;
  bool deflate_ = false;  // permessage-deflate negotiated (read by enqueue on any thread)
  bool writing_ = false;
  bool heartbeat_ = false;  // the client asked for heartbeat frames (?heartbeat)
  // Bits touched on the strand only (they share a byte, so no other thread may touch them).
  bool server_no_takeover_ : 1 = false;
  bool client_no_takeover_ : 1 = false;
  bool flush_events_ : 1 = false;
  bool close_sent_ : 1 = false;  // the close frame is written (or being written)
  bool read_done_ : 1 = false;   // the client's close frame was read, or the reading failed
  bool tearing_down_ : 1 = false;
  bool ping_due_ : 1 = false;
  bool ping_sent_ : 1 = false;   // a keepalive ping went out and nothing came since
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
  detail::start_session<detail::WsSession>(std::move(channel), std::forward<Stream>(stream), std::move(req),
                                           std::move(already_read));
}

}  // namespace herald
