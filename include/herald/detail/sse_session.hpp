#pragma once

#include <herald/detail/buffer_view.hpp>
#include <herald/detail/channel_core.hpp>
#include <herald/detail/handler_memory.hpp>
#include <herald/detail/response.hpp>
#include <herald/detail/sse_format.hpp>
#include <herald/detail/subscriber.hpp>
#include <herald/session.hpp>
#include <herald/transports/sse.hpp>

#include <boost/asio/bind_executor.hpp>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/field.hpp>

#include <array>
#include <type_traits>
#include <vector>

namespace herald::detail {

/** One SSE connection. Everything runs on the connection's strand: the hub only queues into
    the Subscriber inbox and posts a wake-up. One write is in flight at a time, and it gathers
    everything queued since the last one. */
template <class Stream>
class SseSession final : public Subscriber, public SessionBase, public Peer {
 public:
  SseSession(std::shared_ptr<ChannelImpl<Sse>> channel, Stream&& stream)
      : Subscriber(channel->queue_limits(), channel->state().next_connection_id()),
        channel_(std::move(channel)),
        stream_(std::move(stream)),
        strand_(serialized(stream_.get_executor())),
        timer_(strand_) {}

  void start(Request&& req) {
    net::dispatch(strand_, [self = self(), req = std::move(req)]() mutable { self->run(req); });
  }

  void stop() override {
    net::post(strand_, [self = self()] { self->begin_stop(); });
  }

  void abort() override {
    net::post(strand_, [self = self()] { self->close(error::shutting_down); });
  }

  // Peer (herald::Session): set once before the first handle exists, then only read.
  std::uint64_t id() const noexcept override { return connection_id(); }
  std::string const& principal() const noexcept override { return principal_; }
  std::vector<std::string> subscriptions() const override { return topics_.topics; }

  /// SSE carries only the hub's events: there is no per-client message to send.
  SendStatus send(std::string, bool) override { return SendStatus::dropped; }

  void close() override {
    net::post(strand_, [self = self()] { self->close(boost::system::error_code{}); });
  }

 private:
  std::shared_ptr<SseSession> self() {
    return std::static_pointer_cast<SseSession>(shared_from_this());
  }

  HubState& hub() const noexcept { return channel_->state(); }

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

  void on_ready() override {
    post_drain();
  }

  void on_overflow() override {
    net::post(strand_, [self = self()] {
      if (self->closed_) return;
      self->hub().slow_consumer();
      self->close(error::slow_consumer);
    });
  }

  std::size_t wire_size(StoredEvent const& ev) const override {
    return ev.encoded(WireFormat::sse, encode_sse).size();
  }

  // The stream ends; EventSource comes back after `retry` and resumes from its Last-Event-ID.
  void on_replayed(boost::system::error_code ec) override {
    if (ec) net::post(strand_, [self = self(), ec] { self->close(ec); });
  }

  void run(Request const& req) {
    Admission admission;
    std::string detail;
    boost::system::error_code ec;
    if (req.method() != http::verb::get) ec = error::method_not_allowed;
    else ec = channel_->admit(req, admission, detail);
    std::optional<EventId> since;
    if (!ec) {
      std::string_view cursor = req["Last-Event-ID"];
      if (cursor.empty())
        for (auto const& [key, value] : admission.query)
          if (key == "lastEventId") cursor = value;
      if (!cursor.empty()) {
        since = parse_event_id(cursor);
        if (!since) {
          ec = error::bad_cursor;
          detail = "Last-Event-ID must be an event id";
        }
      }
    }
    if (!ec && !channel_->add(this, self()))
      ec = channel_->stopping() ? error::shutting_down : error::too_many_connections;
    if (ec) {
      closed_ = true;
      hub().log(LogLevel::info, Sse::name, connection_id(), ec, "request refused");
      write_and_close(std::move(stream_), error_response(ec, detail, req.version(), false));
      return;
    }

    opened_ = true;
    hub().connection_opened();
    head_ =
        "HTTP/1.1 200 OK\r\n"
        "Content-Type: text/event-stream\r\n"
        "Cache-Control: no-cache\r\n"
        "X-Accel-Buffering: no\r\n";
    // The origin passed the allowlist: let cross-origin EventSource read, with credentials only
    // for an origin the application named.
    if (auto const cors = cors_grant(req[http::field::origin], req[http::field::host],
                                     channel_->options().allowed_origins);
        !cors.allow.empty()) {
      head_ += "Access-Control-Allow-Origin: ";
      head_ += cors.allow;
      if (cors.credentials) head_ += "\r\nAccess-Control-Allow-Credentials: true";
      head_ += "\r\nVary: Origin\r\n";
    }
    head_ += "\r\n";
    head_ += sse_retry(channel_->transport_options().retry);

    topics_ = std::move(admission.topics);
    principal_ = std::move(admission.principal);
    auto const replay = hub().subscribe(shared_from_this(), topics_, since);
    if (replay.reset)
      hub().log(LogLevel::info, Sse::name, connection_id(), error::cursor_expired, "reset notice sent");
    hub().log(LogLevel::debug, Sse::name, connection_id(), {}, "stream opened");
    last_write_ = std::chrono::steady_clock::now();
    announced_ = true;
    if (auto session = this->session(); !channel_->opened(session)) {
      hub().log(LogLevel::error, Sse::name, connection_id(), error::hook_failed, "on_open threw");
      return close(error::hook_failed);
    }
    pump();
    read();
    tick();
  }

  void pump() {
    if (writing_ || closed_) return;
    batch_.clear();
    buffers_.clear();
    if (!head_.empty()) buffers_.push_back(net::buffer(head_));
    if (!control_.empty()) buffers_.push_back(net::buffer(control_));
    if (take(batch_))
      for (auto const& ev : batch_) buffers_.push_back(net::buffer(ev->encoded(WireFormat::sse, encode_sse)));
    if (buffers_.empty()) {
      if (stopping_) {
        if (final_sent_) return close(error::shutting_down);
        // The stream ends with a retry: so EventSource reconnects (to another node) promptly.
        final_sent_ = true;
        final_ = sse_retry(channel_->transport_options().retry);
        control_ = final_;
        pump();
      }
      return;
    }
    writing_ = true;
    write_started_ = std::chrono::steady_clock::now();
    net::async_write(stream_, BufferView(buffers_),
                     cached(net::bind_executor(strand_, [self = self()](boost::system::error_code ec, std::size_t) {
                       self->on_write(ec);
                     })));
  }

  void on_write(boost::system::error_code ec) {
    writing_ = false;
    if (ec) return close(ec);
    if (!batch_.empty()) hub().delivered(batch_.size());
    batch_.clear();
    if (!head_.empty()) std::string().swap(head_);
    control_ = {};
    last_write_ = std::chrono::steady_clock::now();
    drain_soon();
  }

  // The client sends nothing after its request; reading is how a disconnect is noticed.
  void read() {
    stream_.async_read_some(
        net::buffer(discard_),
        net::bind_executor(strand_, [self = self()](boost::system::error_code ec, std::size_t n) {
          if (ec) return self->close(ec);
          self->received_ += n;
          if (self->received_ > max_unsolicited) return self->close(error::bad_request);
          self->read();
        }));
  }

  // One timer per connection serves both the heartbeat and the write timeout.
  void tick() {
    auto const& topts = channel_->transport_options();
    auto const write_timeout = channel_->options().limits.write_timeout;
    auto period = write_timeout;
    if (topts.heartbeat.count() > 0 && topts.heartbeat < period) period = topts.heartbeat;
    timer_.expires_after(period);
    timer_.async_wait([self = self()](boost::system::error_code ec) {
      if (ec || self->closed_) return;
      auto const now = std::chrono::steady_clock::now();
      auto const& o = self->channel_->transport_options();
      if (self->writing_) {
        if (now - self->write_started_ >= self->channel_->options().limits.write_timeout)
          return self->close(error::write_timeout);
      } else if (o.heartbeat.count() > 0 && now - self->last_write_ >= o.heartbeat) {
        self->control_ = sse_heartbeat;
        self->pump();
      }
      self->tick();
    });
  }

  void begin_stop() {
    if (closed_ || stopping_) return;
    stopping_ = true;
    hub().unsubscribe(this, topics_);
    pump();
  }

  void close(boost::system::error_code ec) {
    if (closed_) return;
    closed_ = true;
    if (opened_) {
      hub().unsubscribe(this, topics_);
      channel_->remove(this);
      hub().connection_closed();
    }
    timer_.cancel();
    close_stream(stream_);
    bool const normal = !ec || ec == error::shutting_down || ec == net::error::eof ||
                        ec == net::error::operation_aborted || ec == net::error::connection_reset;
    hub().log(normal ? LogLevel::debug : LogLevel::info, Sse::name, connection_id(), ec, "stream closed");
    if (announced_) {
      auto session = this->session();
      if (!channel_->closed(session, ec))
        hub().log(LogLevel::error, Sse::name, connection_id(), error::hook_failed, "on_close threw");
    }
  }

  static constexpr std::size_t max_unsolicited = 64 * 1024;

  std::shared_ptr<ChannelImpl<Sse>> channel_;
  Stream stream_;
  net::any_io_executor strand_;
  net::steady_timer timer_;
  TopicSet topics_;
  std::string principal_;
  std::string head_;
  std::string final_;
  std::string_view control_;
  std::vector<EventPtr> batch_;
  std::vector<net::const_buffer> buffers_;
  std::chrono::steady_clock::time_point last_write_{};
  std::chrono::steady_clock::time_point write_started_{};
  std::size_t received_ = 0;
  std::array<char, 32> discard_{};
  bool opened_ = false;
  bool announced_ = false;
  bool writing_ = false;
  bool stopping_ = false;
  bool final_sent_ = false;
  bool closed_ = false;
};

}  // namespace herald::detail

namespace herald {

template <class Stream>
void Sse::start(std::shared_ptr<detail::ChannelImpl<Sse>> channel, Stream&& stream, Request&& req) {
  using S = std::decay_t<Stream>;
  if constexpr (std::is_same_v<S, beast::tcp_stream>) {
    // The session's own timer covers write timeouts and heartbeats, so a tcp_stream's timers
    // and state would only cost memory on every idle connection (and its pending read is a
    // larger operation): the plain socket it wraps is enough.
    auto session = std::make_shared<detail::SseSession<net::ip::tcp::socket>>(std::move(channel),
                                                                              stream.release_socket());
    session->start(std::move(req));
  } else {
    auto session = std::make_shared<detail::SseSession<S>>(std::move(channel), std::move(stream));
    session->start(std::move(req));
  }
}

}  // namespace herald
