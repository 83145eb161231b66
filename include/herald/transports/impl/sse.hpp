#pragma once

#include <herald/detail/buffer_view.hpp>
#include <herald/detail/channel_core.hpp>
#include <herald/detail/connection.hpp>
#include <herald/detail/cors.hpp>
#include <herald/detail/decimal.hpp>
#include <herald/detail/handler_memory.hpp>
#include <herald/detail/heartbeat.hpp>
#include <herald/detail/response.hpp>
#include <herald/detail/sse_format.hpp>
#include <herald/transports/sse.hpp>

#include <boost/asio/bind_executor.hpp>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/field.hpp>

#include <array>
#include <cstdint>
#include <type_traits>
#include <vector>

namespace herald::inline v0::detail {

/** One SSE connection: the wire side of a Connection. One write is in flight at a time, and it
    gathers everything queued since the last one; a single deadline serves the heartbeat and the
    write timeout. */
template <class Stream>
class SseSession final : public Connection {
 public:
  /// `ex`: the executor the stream came on (an IoSocket's own is its io_context's).
  SseSession(std::shared_ptr<ChannelImpl<Sse>> channel, Stream&& stream, net::any_io_executor const& ex)
      : Connection(std::move(channel), serialized(ex), /*lingers=*/true),
        stream_(std::move(stream)) {}

  void start(Request&& req) {
    net::dispatch(strand(), [self = self(), req = std::move(req)]() mutable { self->run(req); });
  }

 private:
  std::shared_ptr<SseSession> self() { return std::static_pointer_cast<SseSession>(shared_from_this()); }

  ChannelImpl<Sse>& ch() const noexcept { return static_cast<ChannelImpl<Sse>&>(channel()); }

  SseOptions const& topts() const noexcept { return ch().transport_options(); }

  std::size_t wire_size(StoredEvent const& ev) const override { return sse_bytes(ev, envelope_).size(); }

  void run(Request const& req) {
    std::string detail;
    boost::system::error_code ec;
    if (req.method() != http::verb::get) refused(ec = error::method_not_allowed);
    else ec = admit(req, detail, /*empty_means_all=*/true, remote_of(stream_));
    if (ec) {
      auto const retry_after = ch().retry_after(ec);
      write_and_close(std::move(stream_), retryable(ec) ? refusal(req, ec, retry_after)
                                                         : error_response(ec, detail, req.version(), false,
                                                                          retry_after));
      return finish(ec);
    }

    envelope_ = topts().envelope;
    if (auto const q = parse_query(target_query(req.target())))
      for (auto const& [key, value] : *q) {
        if (key == "envelope") envelope_ = query_flag(value);
        else if (key == heartbeat_parameter) heartbeat_events_ = query_flag(value);
      }

    auto& head = gather_.get().head;  // written by the first pump()
    head =
        "HTTP/1.1 200 OK\r\n"
        "Content-Type: text/event-stream\r\n"
        "Cache-Control: no-cache\r\n"
        "X-Accel-Buffering: no\r\n";
    auto const hb = topts().heartbeat;
    if (hb.count() > 0) {
      // The period a client's stall deadline is made of; the body's first bytes go with the
      // headers (retry:, and the first heartbeat event if asked for), so data arrives at once.
      head += heartbeat_header;
      head += ": ";
      append_decimal(head, static_cast<std::uint64_t>(hb.count()));
      head += "\r\n";
    } else {
      heartbeat_events_ = false;
    }
    cors_headers(ch().cors(req), ch().options().cors, {}, [&](http::field name, std::string_view value) {
      head += http::to_string(name);
      head += ": ";
      head += value;
      head += "\r\n";
    });
    head += "\r\n";
    head += sse_retry(topts().retry);
    if (heartbeat_events_) head += sse_heartbeat_event(hb);

    last_write_ = clock::now();
    if (!open(/*announce=*/true)) return;
    pump();
    if constexpr (plain_socket) {
      boost::system::error_code ignored;
      stream_.non_blocking(true, ignored);  // read_some after a wake-up must never block
    }
    read();
    tick();
    watch_expiry();
  }

  /** A retryable refusal as an event stream that ends at once (stream_refusal), with the CORS
      headers of a stream, so a cross-origin EventSource may read it too. */
  Response refusal(Request const& req, boost::system::error_code ec, std::chrono::milliseconds retry_after) {
    auto res = stream_refusal(req.version(), ec, retry_after);
    add_cors(res, ch().cors(req), ch().options().cors);
    return res;
  }

  void drain() override { pump(); }

  void pump() {
    if (writing_ || state() == State::closed) return;
    auto& w = gather_.get();
    w.batch.clear();
    w.buffers.clear();
    if (!w.head.empty()) w.buffers.push_back(net::buffer(w.head));
    if (heartbeat_due_) w.buffers.push_back(net::buffer(sse_heartbeat));
    if (take(w.batch))
      for (auto const& ev : w.batch) w.buffers.push_back(net::buffer(sse_bytes(*ev, envelope_)));
    if (w.buffers.empty()) {
      if (state() == State::closing && !final_sent_) {
        // The stream ends with a retry: so EventSource reconnects (to another node) promptly;
        // a drain's says when, and its final event where to resume (Last-Event-ID); an expiry
        // first says so in a `close` event ({"error":"credentials expired"}).
        final_sent_ = true;
        if (reason() == error::draining) {
          w.head = sse_drain(drain_delay(), std::max(drain_cursor(), written_));
        } else {
          w.head = reason() == error::credentials_expired ? "event: close\ndata: " + error_body(reason(), {}) + "\n\n"
                                                           : std::string();
          w.head += sse_retry(topts().retry);
        }
        return pump();
      }
      gather_.release();
      if (state() == State::closing) finish(reason());
      return;
    }
    writing_ = true;
    std::size_t sent = 0;
    if constexpr (plain_socket) {
      // Only on the hub's wake-up, not where a caller goes on after pump(); not before reading
      // began (the response head's own write).
      if (may_write_now() && SyncDepth::room() && stream_.non_blocking() &&
          send_now(stream_, w.buffers, sent)) {
        SyncDepth nested;
        return on_write({}, sent);
      }
    }
    w.started = clock::now();
    if (deadline() == clock::time_point::max()) tick();  // without a heartbeat, only while a write runs
    net::async_write(stream_, BufferView(w.buffers),
                     cached(net::bind_executor(strand(), [self = self(), sent](boost::system::error_code ec,
                                                                               std::size_t n) {
                       self->on_write(ec, sent + n);
                     })));
  }

  void on_write(boost::system::error_code ec, std::size_t bytes) {
    writing_ = false;
    if (ec) return finish(ec);
    wrote(bytes);
    if (auto& batch = gather_->batch; !batch.empty()) {
      delivered(batch.size());
      written_ = std::max(written_, batch.back()->id());
      batch.clear();
    }
    gather_->head.clear();
    heartbeat_due_ = false;
    last_write_ = clock::now();
    drain_soon();
  }

  // The client sends nothing after its request; reading is how a disconnect is noticed. On a
  // plain socket the session waits for readability and reads into the stack: the pending
  // operation an idle connection holds is then the smallest Asio has, and no buffer is kept.
  void read() {
    if constexpr (plain_socket) {
      on_strand(
          stream_.get_executor(),
          [this](auto handler) { stream_.async_wait(net::socket_base::wait_read, std::move(handler)); },
          [self = self()](boost::system::error_code ec) {
            std::array<char, 512> discard;
            std::size_t const n = ec ? 0 : self->stream_.read_some(net::buffer(discard), ec);
            if (ec == net::error::would_block) return self->read();  // a spurious wake-up
            self->on_read(ec, n);
          });
    } else {
      on_strand(
          stream_.get_executor(),
          [this](auto handler) { stream_.async_read_some(net::buffer(discard_), std::move(handler)); },
          [self = self()](boost::system::error_code ec, std::size_t n) { self->on_read(ec, n); });
    }
  }

  void on_read(boost::system::error_code ec, std::size_t n) {
    if (ec) return finish(ec);
    received_ += static_cast<std::uint32_t>(n);  // n <= 512
    if (received_ > max_unsolicited) return finish(error::bad_request);
    read();
  }

  /** One deadline (Connection::arm_deadline) serves the write timeout and the heartbeat, the
      one that comes next: the write in flight's (write_timeout after it started) and the heartbeat's
      (heartbeat after the last write; while a write is in flight, not before `heartbeat` from
      now, since that write is not silence). Both fire on time, not up to a period late, and a
      busy stream moves it about once per heartbeat, not once per write. */
  void tick() {
    auto const wt = ch().options().limits.write_timeout;
    auto const hb = topts().heartbeat;
    auto const now = clock::now();
    auto at = clock::time_point::max();
    if (writing_ && wt.count() > 0) at = gather_->started + wt;
    if (hb.count() > 0) at = std::min(at, writing_ ? std::max(last_write_ + hb, now + hb) : last_write_ + hb);
    if (at == clock::time_point::max()) return cancel_deadline();
    arm_deadline(at);
  }

  void on_deadline() override {
    auto const now = clock::now();
    auto const wt = ch().options().limits.write_timeout;
    auto const hb = topts().heartbeat;
    if (writing_ && wt.count() > 0 && now - gather_->started >= wt) return finish(error::write_timeout);
    if (!writing_ && hb.count() > 0 && now - last_write_ >= hb) {
      // An event rides in the write's head, so an idle stream keeps no bytes.
      if (heartbeat_events_) gather_.get().head = sse_heartbeat_event(hb);
      else heartbeat_due_ = true;
      pump();
    }
    tick();
  }

  /** Shutdown, drains and failed replays flush the stream and end it with a retry, an expiry
      with its `close` event and a retry; the rest end it now. */
  void goodbye(Flush flush) override {
    if (flush == Flush::all || reason() == error::credentials_expired) return pump();
    finish(reason());
  }

  void shut() override {
    cancel_deadline();
    close_stream(stream_);
  }

  static constexpr std::size_t max_unsolicited = 64 * 1024;
  static constexpr bool plain_socket = plain_socket_v<Stream>;
  struct NoBuffer {};

  Stream stream_;
  // What a write needs, held only while one is pending or in flight (Pooled): an idle stream
  // holds none.
  struct Gather {
    // Bytes ahead of the events: the response head, a heartbeat event, at a graceful end the
    // final retry: (and drain or close event).
    std::string head;
    std::vector<EventPtr> batch;  // the events of the write (they own its bytes)
    std::vector<net::const_buffer> buffers;
    clock::time_point started;  // of the write in flight
    bool recycle() noexcept {
      head.clear();
      batch.clear();
      buffers.clear();
      // What a burst grew is not kept for the next user.
      return batch.capacity() <= 1024 && head.capacity() <= 4096;
    }
  };
  Pooled<Gather> gather_;
  clock::time_point last_write_{};
  std::uint32_t received_ = 0;  // at most max_unsolicited
  EventId written_ = 0;  // the newest id written: a drain's cursor is never below it
  // Another stream (TLS) reads what a client should not send into this.
  [[no_unique_address]] std::conditional_t<plain_socket, NoBuffer, std::array<char, 16>> discard_{};
  bool writing_ = false;
  bool envelope_ = false;  // events as JSON envelopes (a stream of several topics)
  bool final_sent_ = false;
  bool heartbeat_due_ = false;
  bool heartbeat_events_ = false;  // heartbeats as `heartbeat` events (?heartbeat), not comments
};

}  // namespace herald::detail

namespace herald::inline v0 {

template <class Stream>
void Sse::start(std::shared_ptr<ChannelContext<Sse>> channel, Stream&& stream, Request&& req) {
  detail::start_session<detail::SseSession>(std::move(channel), std::forward<Stream>(stream), std::move(req));
}

}  // namespace herald
