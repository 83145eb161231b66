#pragma once

#include <herald/detail/channel_core.hpp>
#include <herald/detail/executor.hpp>
#include <herald/detail/handler_memory.hpp>
#include <herald/detail/subscriber.hpp>
#include <herald/error.hpp>
#include <herald/session.hpp>

#include <boost/asio/bind_executor.hpp>
#include <boost/asio/error.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core/tcp_stream.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

namespace herald::inline v0::detail {

/// How much of what is queued a graceful end still writes before the goodbye.
enum class Flush : std::uint8_t {
  /// Nothing: the queue is dropped (overflow, a hook that threw).
  nothing,
  /// The connection's own messages (replies, Session::send), no further events (Session::close).
  own,
  /// Everything queued (shutdown, a replay that could not be read).
  all,
};

/** A lock of one byte for what every connection holds and almost no one contends for (its
    topic list: written on the strand, read by Session::subscriptions): a std::mutex is 40 bytes
    on every idle connection. Holders copy or edit a short vector, nothing that blocks. */
class SpinLock {
 public:
  void lock() noexcept {
    while (locked_.exchange(true, std::memory_order_acquire))
      while (locked_.load(std::memory_order_relaxed)) std::this_thread::yield();
  }
  void unlock() noexcept { locked_.store(false, std::memory_order_release); }

 private:
  std::atomic<bool> locked_{false};
};

class Connection;

/** The connections of one single-threaded io_context with events to write, drained by one
    handler per turn of its loop. A publish on the loop's own thread wakes every subscriber of
    its topic; a handler posted per subscriber would cost a pass through the scheduler each (a
    lock, a queue push and pop), and the drains would interleave with the next publisher read.
    Instead the wake-ups join this list, and the one handler posted for the turn drains them
    all, after the handler that published: everything published in one turn goes out in one
    write per connection (the uWebSockets cork). Wake-ups from other threads post as before. */
class ReadyList final : public net::execution_context::service {
 public:
  using key_type = ReadyList;
  inline static net::execution_context::id id;

  explicit ReadyList(net::execution_context& ctx)
      : net::execution_context::service(ctx), io_(static_cast<net::io_context&>(ctx)) {}

  /// Whether the caller runs on this loop's thread (only then may it add()).
  bool on_loop() const noexcept { return io_.get_executor().running_in_this_thread(); }

  /// Drain `c` in this turn's flush. On the loop's thread.
  void add(std::shared_ptr<Connection> c) {
    ready_.push_back(std::move(c));
    if (std::exchange(posted_, true)) return;
    net::post(io_, [this] { run(); });
  }

 private:
  void run();
  void shutdown() override {
    ready_.clear();
    running_.clear();
  }

  net::io_context& io_;
  std::vector<std::shared_ptr<Connection>> ready_;
  std::vector<std::shared_ptr<Connection>> running_;  // kept to reuse its capacity
  bool posted_ = false;
};

/** The deadlines of one execution context's connections, served by one timer. A timer per
    connection costs every idle connection the timer (120 bytes) and its pending wait (a 192-byte
    operation); here a connection holds a heap slot. The timer is armed for the earliest
    deadline; when it fires, each connection that is due runs its on_deadline() on its own
    strand. Connections on several threads share it, so the heap and the timer are under a lock:
    arming is rare (a deadline moves when a write starts or a deadline passes, not per message). */
class Deadlines final : public net::execution_context::service {
 public:
  using clock = std::chrono::steady_clock;
  using key_type = Deadlines;
  inline static net::execution_context::id id;
  static constexpr std::uint32_t none = UINT32_MAX;

  explicit Deadlines(net::execution_context& ctx) : net::execution_context::service(ctx) {}

  /** The ReadyList of `io`, the context this serves: kept here so that a connection finds it
      through the pointer it has anyway, not through one more of its own. */
  ReadyList& ready_list(net::io_context& io) {
    auto* r = ready_.load(std::memory_order_acquire);
    if (!r) ready_.store(r = &net::use_service<ReadyList>(io), std::memory_order_release);  // same for all
    return *r;
  }
  /// After ready_list(io) was called once.
  ReadyList& ready_list() const noexcept { return *ready_.load(std::memory_order_acquire); }

  /** `c`'s deadline is `at` (moved if it had one). `strand` is c's: the timer runs on the
      executor under it, and c's handler is posted to it. */
  void arm(std::shared_ptr<Connection> c, clock::time_point at, net::any_io_executor const& strand);
  /// `c` has no deadline.
  void cancel(Connection& c);

 private:
  struct Entry {
    clock::time_point at;
    std::shared_ptr<Connection> c;  // a connection with a deadline lives until it is due
  };

  void shutdown() override;
  void fired(boost::system::error_code ec);
  // The rest under the lock.
  void wait_for(clock::time_point at);
  void place(std::size_t i, Entry e);
  void up(std::size_t i);
  void down(std::size_t i);
  std::shared_ptr<Connection> erase(std::size_t i);

  std::atomic<ReadyList*> ready_{nullptr};
  std::mutex mutex_;
  // A binary min-heap on `at`; a connection knows its index. A deque: a vector's doubling
  // would leave a third of it unused on average, per connection.
  std::deque<Entry> heap_;
  std::optional<net::steady_timer> timer_;
  clock::time_point armed_ = clock::time_point::max();  // what the timer waits for
  bool shut_ = false;
};

/** The life of one server connection, written once for every transport: registration with the
    channel, subscription (and its reset notices), on_open / on_close, the hub's wake-ups, the
    close verbs and how a close is logged. A transport derives from it and writes only its wire
    I/O and protocol: how to drain the queue (drain), how to say goodbye (goodbye) and how to
    close its stream (shut).

    Life: admitting -> open -> closing -> closed. A refused request never opens (the transport
    answers the refusal itself); an open connection ends through end() (graceful: the
    transport writes what `Flush` allows, its goodbye, then calls finish()) or finish() (now).
    finish() runs once and releases everything: subscriptions, the registration, on_close.

    Threads: everything runs on strand(); stop(), abort() and close() may be called from any
    thread and post to it. The hub calls the Subscriber side (offer, on_ready, on_overflow,
    on_replayed) from publishing threads; those post too, except a wake-up on the loop's own
    thread of an io_context{1}, which joins its ReadyList.

    Close verbs, one each:
      stop()     any thread   end(error::shutting_down, Flush::all)   channel shutdown
      drain(d)   any thread   end(error::draining, Flush::all)        Server::async_drain
      abort()    any thread   finish(error::shutting_down)             abort, disconnect_all
      close(ec)  any thread   end(ec, Flush::own)                      herald::Session::close
      end()      strand       graceful
      finish()   strand       now; the transport calls it when its goodbye is written
*/
class Connection : public Subscriber, public SessionBase, public Peer {
  friend class ReadyList;  // woken
  friend class Deadlines;  // deadline_slot_

 public:
  enum class State : std::uint8_t { admitting, open, closing, closed };

  // SessionBase ------------------------------------------------------------------------------
  void stop() final {
    post_to(strand_, [self = self()] { self->end(error::shutting_down, Flush::all); });
  }
  std::shared_ptr<SessionBase> shared() noexcept final {
    auto self = Subscriber::weak_from_this().lock();
    return self ? std::shared_ptr<SessionBase>(self, static_cast<SessionBase*>(this)) : nullptr;
  }
  void abort() final {
    post_to(strand_, [self = self()] { self->finish(error::shutting_down); });
  }
  void drain(std::chrono::milliseconds delay) final {
    post_to(strand_, [self = self(), delay] {
      self->drain_ms_ = static_cast<std::uint32_t>(std::clamp<std::int64_t>(delay.count(), 0, UINT32_MAX));
      self->end(error::draining, Flush::all);
    });
  }

  // Peer (herald::Session) -------------------------------------------------------------------
  std::uint64_t id() const noexcept final { return connection_id(); }
  // Set at admission, before the first Session handle exists, then never changed.
  std::string const& principal() const noexcept final {
    static std::string const anonymous;
    return principal_ ? *principal_ : anonymous;
  }
  std::vector<std::string> subscriptions() const final {
    std::lock_guard lock{topics_lock_};
    return subscribed_ ? topics_.topics : std::vector<std::string>{};
  }
  /// Transports that carry the connection's own messages override it; the others drop them.
  SendStatus send(std::string, bool) override { return SendStatus::dropped; }
  void close(boost::system::error_code reason) final {
    post_to(strand_, [self = self(), reason] { self->end(reason, Flush::own); });
  }

 protected:
  /** `lingers`: wake-ups may let the loop turn while more events arrive (Subscriber::linger),
      so that they go out in one write. */
  Connection(std::shared_ptr<ChannelCore> channel, net::any_io_executor strand, bool lingers)
      : Subscriber(channel->queue_limits(), channel->state().next_connection_id()),
        channel_(std::move(channel)),
        strand_(std::move(strand)),
        deadlines_(&net::use_service<Deadlines>(net::query(strand_, net::execution::context))),
        lingers_(lingers),
        own_loop_(strand_.target<net::io_context::executor_type>() != nullptr) {
    if (own_loop_) deadlines_->ready_list(strand_.target<net::io_context::executor_type>()->context());
  }

  // Reached unfinished only when the io_context was destroyed with the connection's handlers
  // still queued: the hub and the channel may outlive the loop, so they let go of it here.
  ~Connection() override {
    if (state_ == State::closed) return;
    if (subscribed_ && (!topics_.topics.empty() || topics_.all)) {
      hub().unsubscribe(this, topics_);
      channel_->counters().sub(channel_->counters().subscriptions, topics_.all ? 1 : topics_.topics.size());
    }
    if (registered_) channel_->remove(this);
    if (counted_) {
      hub().connection_closed();
      channel_->counters().sub(channel_->counters().connections, 1);
      channel_->closed_one();
    }
  }

  std::shared_ptr<Connection> self() { return std::static_pointer_cast<Connection>(shared_from_this()); }

  ChannelCore& channel() const noexcept { return *channel_; }
  HubState& hub() const noexcept { return channel_->state(); }
  net::any_io_executor const& strand() const noexcept { return strand_; }

  /** Calls `initiate(h)`, where h is `handler` with HandlerCache memory that runs on strand().
      It is bound to strand() only when `io` (the I/O object's executor) is another one: an
      operation that carries a second executor is larger, and an idle connection keeps its
      read pending for as long as it lives. */
  template <class Initiate, class Handler>
  void on_strand(net::any_io_executor const& io, Initiate&& initiate, Handler&& handler) {
    if (io == strand_) initiate(cached(std::forward<Handler>(handler)));
    else initiate(cached(net::bind_executor(strand_, std::forward<Handler>(handler))));
  }

  State state() const noexcept { return state_; }
  bool is_open() const noexcept { return state_ == State::open; }
  bool ended() const noexcept { return state_ >= State::closing; }
  /// The reason end() or finish() was given; what on_close reports.
  boost::system::error_code reason() const noexcept { return reason_; }
  /// The cursor the request asked to resume from.
  std::optional<EventId> since() const noexcept { return has_since_ ? std::optional<EventId>{since_} : std::nullopt; }

  void log(LogLevel level, boost::system::error_code ec, std::string_view what) const noexcept {
    hub().log(level, channel_->transport_name(), connection_id(), ec, what);
  }

  // Opening ----------------------------------------------------------------------------------

  /** Admit `req` from `remote` (ChannelCore::admit) and register with the channel
      (too_many_connections or shutting_down when it is full or stopping). On refusal returns
      the error, sets `detail`, and logs; the transport answers the client. */
  boost::system::error_code admit(Request const& req, std::string& detail, bool empty_means_all = true,
                                  net::ip::tcp::endpoint remote = {}) {
    Admission a;
    auto ec = channel_->admit(req, a, detail, empty_means_all, std::move(remote));
    if (!ec) ec = adopt(std::move(a));
    if (ec) refused(ec, req.target());
    return ec;
  }

  /// Take over what an admission decided and register (polls are admitted before they are held).
  boost::system::error_code adopt(Admission&& a) {
    if (!a.principal.empty()) principal_ = std::make_unique<std::string const>(std::move(a.principal));
    has_since_ = a.since.has_value();
    since_ = a.since.value_or(0);
    topics_ = std::move(a.topics);  // subscribed when the connection opens
    if (a.expires || !a.granted.empty())
      auth_ = std::make_unique<Authority>(strand_, a.expires, std::move(a.granted));
    if (!channel_->add(this)) {
      if (channel_->stopping()) return error::shutting_down;
      return channel_->draining() ? error::draining : error::too_many_connections;
    }
    registered_ = true;
    return {};
  }

  void refused(boost::system::error_code ec, std::string_view target = {}) const noexcept {
    channel_->refused(ec, connection_id(), target);
  }

  /// `n` events written to the client; `bytes` on the wire (herald::Metrics).
  void delivered(std::size_t n) const noexcept { channel_->delivered(n); }
  void wrote(std::size_t bytes) const noexcept {
    channel_->counters().add(channel_->counters().written_bytes, bytes);
  }

  std::size_t queued_bytes(void const* channel) const override {
    return channel == channel_.get() ? Subscriber::queued_bytes() : 0;
  }

  /** Open: subscribe the admitted topics from the cursor (a reset notice first when it cannot
      be served without a gap), count the connection, and, with `announce`, run on_open. At
      most `limit` events are replayed from a backplane (0: all). Returns false when on_open
      threw and the connection is ending. */
  bool open(bool announce, std::size_t limit = 0) {
    state_ = State::open;
    auto& c = channel_->counters();
    if (!pending_end_) {
      if (!topics_.topics.empty() || topics_.all) {
        auto const r = hub().subscribe(shared_from_this(), topics_, since(), limit);
        deferred_ = r.deferred;
        if (r.reset) log(LogLevel::info, error::cursor_expired, "reset notice sent");
        c.add(c.replayed, r.replayed);
        c.add(c.subscriptions, topics_.all ? 1 : topics_.topics.size());
      }
      std::lock_guard lock{topics_lock_};
      subscribed_ = true;
    }
    // Counted once subscribed: whoever sees it in Channel::connections() (on another thread)
    // and publishes, reaches it.
    hub().connection_opened();
    counted_ = true;
    c.add(c.connections, 1);
    c.add(c.connections_opened, 1);
    channel_->opened_one();
    if (pending_end_) {
      end(reason_, *pending_end_);
      return false;
    }
    log(LogLevel::debug, {}, "opened");
    if (!announce) return true;
    announced_ = true;
    auto s = session();
    if (channel_->opened(s)) return true;
    log(LogLevel::error, error::hook_failed, "on_open threw");
    end(error::hook_failed, Flush::nothing);
    return false;
  }

  /// Whether the subscription's replay is read from the backplane (on_replayed follows).
  bool deferred() const noexcept { return deferred_; }

  herald::Session session() {
    return herald::Session{std::weak_ptr<Peer>(std::static_pointer_cast<Peer>(self()))};
  }

  // Subscriptions at run time ----------------------------------------------------------------

  struct Subscribed {
    boost::system::error_code ec;
    std::string detail;
    /// Events above it reach the client (the ack's cursor).
    EventId cursor = 0;
  };

  bool subscribed_to(std::string_view topic) const {
    auto const& t = topics_.topics;
    return std::find(t.begin(), t.end(), topic) != t.end();
  }

  /** Subscribe `topic` from `since`, under the same rules as a request's topics. Subscribing
      again is a no-op whose cursor is the hub's newest id. */
  Subscribed subscribe(std::string const& topic, std::optional<EventId> since) {
    auto const& o = channel_->options();
    Subscribed out;
    if ((out.ec = admit_topic(o, topic, out.detail))) return out;
    if (subscribed_to(topic)) {
      out.cursor = hub().last();
      return out;
    }
    if (auth_ && !within_grant(auth_->granted, topic)) {
      out.detail = "the ticket does not cover topic " + topic;
      out.ec = error::forbidden;
      return out;
    }
    if ((out.ec = admit_count(o, topics_.topics.size() + 1, out.detail))) return out;
    if ((out.ec = authorize_topic(o, principal(), topic, out.detail))) {
      if (out.ec == error::hook_failed) log(LogLevel::error, out.ec, "authorize_topic threw");
      return out;
    }
    // Replay and registration are one step under the hub's lock: no gap, no duplicate.
    auto const r = hub().subscribe(shared_from_this(), TopicSet{{topic}, false}, since);
    if (r.reset) log(LogLevel::info, error::cursor_expired, "reset notice sent");
    out.cursor = r.last;
    auto& c = channel_->counters();
    c.add(c.replayed, r.replayed);
    c.add(c.subscriptions, 1);
    std::lock_guard lock{topics_lock_};
    topics_.topics.push_back(topic);
    return out;
  }

  /// Unsubscribe `topic`; false if it was not subscribed. No event of it is offered after this.
  bool unsubscribe(std::string const& topic) {
    if (!subscribed_to(topic)) return false;
    hub().unsubscribe(this, TopicSet{{topic}, false});
    channel_->counters().sub(channel_->counters().subscriptions, 1);
    std::lock_guard lock{topics_lock_};
    auto& t = topics_.topics;
    t.erase(std::find(t.begin(), t.end(), topic));
    return true;
  }

  /// No further events: the hub forgets this connection's topics.
  void unsubscribe_all() {
    TopicSet gone;
    bool was_subscribed;
    {
      std::lock_guard lock{topics_lock_};
      gone = std::move(topics_);
      topics_ = {};
      was_subscribed = std::exchange(subscribed_, false);
    }
    if (!was_subscribed || (gone.topics.empty() && !gone.all)) return;
    hub().unsubscribe(this, gone);
    channel_->counters().sub(channel_->counters().subscriptions, gone.all ? 1 : gone.topics.size());
  }

  // Closing ----------------------------------------------------------------------------------

  /** End gracefully with `reason` (success: a normal close): no further events are offered;
      the transport writes what `flush` allows and its goodbye, then calls finish(). An admitted
      connection not open yet (a WebSocket in its handshake) ends as soon as it opens. */
  void end(boost::system::error_code reason, Flush flush) {
    if (state_ == State::admitting && registered_) {
      // Admitted but not open yet (a WebSocket in its handshake): it ends as it opens.
      reason_ = reason;
      pending_end_ = flush;
      return;
    }
    if (state_ != State::open) return;
    state_ = State::closing;
    reason_ = reason;
    if (reason == error::draining) drain_cursor_ = position();
    unsubscribe_all();
    goodbye(flush);
  }

  /// A drained connection's delay and cursor (0: unknown), for its goodbye (detail/drain.hpp).
  std::chrono::milliseconds drain_delay() const noexcept { return std::chrono::milliseconds(drain_ms_); }
  EventId drain_cursor() const noexcept { return drain_cursor_; }

  /** Close now and release everything, once: the stream (shut), subscriptions, the
      registration, the counts; then log and run on_close. A connection already ending keeps
      the reason it ends for. A refused one (never registered) only changes state: its stream
      went with the refusal. */
  void finish(boost::system::error_code reason) {
    if (state_ == State::closed) return;
    if (state_ != State::closing) reason_ = reason;
    state_ = State::closed;
    if (auth_) auth_->timer.cancel();
    // Refused before registration: the transport answered the request with the stream.
    if (!registered_) return;
    shut();
    unsubscribe_all();
    channel_->remove(this);
    if (!counted_) return;  // never opened (a WebSocket handshake that failed)
    hub().connection_closed();
    channel_->counters().sub(channel_->counters().connections, 1);
    channel_->closed_one();
    auto const ec = reason_;
    bool const normal = !ec || ec == error::shutting_down || ec == error::draining || ec == net::error::eof ||
                        ec == net::error::operation_aborted || ec == net::error::connection_reset;
    log(normal ? LogLevel::debug : LogLevel::info, ec, "closed");
    if (!announced_) return;
    auto s = session();
    if (!channel_->closed(s, ec)) log(LogLevel::error, error::hook_failed, "on_close threw");
  }

  // Expiry -----------------------------------------------------------------------------------

  /// When the connection's authorization ends (Verdict::until, Grant::expires); none: never.
  std::optional<std::chrono::system_clock::time_point> expires() const noexcept {
    return auth_ ? auth_->expires : std::nullopt;
  }

  /** Arm the expiry of an open stream (SSE, WebSocket), if its authorization has one: at
      expiry the reauthorize hook renews it, or the connection ends with
      error::credentials_expired (after its own messages). Only such connections hold a timer. */
  void watch_expiry() {
    if (!auth_ || !auth_->expires || state_ != State::open) return;
    auto const left = *auth_->expires - std::chrono::system_clock::now();
    auth_->timer.expires_after(std::chrono::duration_cast<std::chrono::steady_clock::duration>(left));
    auth_->timer.async_wait([self = self()](boost::system::error_code ec) {
      if (!ec) self->expired();
    });
  }

  // Deadlines --------------------------------------------------------------------------------

  using clock = std::chrono::steady_clock;

  /** Run on_deadline() on the strand at `at`, instead of at the deadline armed before. One that
      was already due when it moved may still run: on_deadline() looks at the clock. */
  void arm_deadline(clock::time_point at) {
    deadline_ = at;
    deadlines_->arm(self(), at, strand_);
  }
  void cancel_deadline() {
    if (std::exchange(deadline_, clock::time_point::max()) != clock::time_point::max()) deadlines_->cancel(*this);
  }
  /// The deadline armed; max when none is.
  clock::time_point deadline() const noexcept { return deadline_; }
  /// A deadline armed with arm_deadline() has come (on the strand, not after finish()).
  virtual void on_deadline() {}

  // What a transport writes ------------------------------------------------------------------

  /** Write what is queued (events in the inbox, the transport's own messages). On the strand,
      from the hub's wake-up or after a write of events completed: the write it starts may be
      tried at once (may_write_now). */
  virtual void drain() = 0;
  /** Begin the graceful end (reason() says why): write what `flush` allows, then the
      transport's goodbye (a close frame, a final retry:), then call finish(). */
  virtual void goodbye(Flush flush) = 0;
  /// Close the stream and cancel the transport's timers; called once, by finish().
  virtual void shut() = 0;

  /** Where this connection stands once all it has queued is written, read while still
      subscribed: every event of its topics up to the hub's newest id is queued by then (the
      hub queues under the lock that last() takes). Unless a replay from the backplane may
      still be on its way: then only the cursor it asked for is sure. 0: unknown. */
  EventId position() const {
    if (deferred_) return has_since_ ? since_ : 0;
    return has_since_ ? std::max(since_, hub().last()) : hub().last();
  }

  // Subscriber: the hub's side ----------------------------------------------------------------

  /// Drain on the strand (handler memory from HandlerCache: this runs per write).
  void on_ready() override { post_drain(); }

  /** A write of events has just completed and more may be queued: drain now, or first let the
      loop turn while more are on their way, so that they go out in one write. */
  void drain_soon() {
    if (lingers_ && linger()) return post_drain();
    drain_now();
  }

  /** The wake-up post_drain() scheduled: drain at once (what one handler published is all
      queued by now), unless it is a turn drain_soon() lingers. */
  void woken() {
    if (lingers_ && lingering() && linger()) return post_drain();
    drain_now();
  }

  void post_drain() {
    if (own_loop_)
      if (auto& ready = deadlines_->ready_list(); ready.on_loop()) return ready.add(self());
    post_to(strand_, cached([self = self()] { self->woken(); }));
  }

  /** Whether the write about to start may be tried at once, as a non-blocking send
      (detail::send_now); once per drain(). Only there: not where a caller goes on after it
      started a write (the 101, close frames, goodbyes). */
  bool may_write_now() noexcept { return std::exchange(sync_write_, false); }

  /// The queue bound was hit under OverflowPolicy::disconnect: a slow consumer.
  void on_overflow() override {
    post_to(strand_, [self = self()] {
      if (self->state_ != State::open) return;
      self->hub().slow_consumer();
      self->channel_->counters().add(self->channel_->counters().slow_consumer, 1);
      self->log(LogLevel::warning, error::slow_consumer, "queue bound exceeded; closing");
      self->end(error::slow_consumer, Flush::nothing);
    });
  }

  void on_shed(Shed const& shed) override { channel_->shed(shed); }

  /// A replay from the backplane failed: what is queued goes out, then the client resumes later.
  void on_replayed(boost::system::error_code ec) override {
    if (ec) post_to(strand_, [self = self(), ec] { self->end(ec, Flush::all); });
  }

 private:
  // What a connection admitted with an expiry or a ticket's topic bound holds; most hold none.
  struct Authority {
    Authority(net::any_io_executor const& ex, std::optional<std::chrono::system_clock::time_point> at,
              std::vector<std::string> topics)
        : timer(ex), expires(at), granted(std::move(topics)) {}
    net::steady_timer timer;
    std::optional<std::chrono::system_clock::time_point> expires;
    std::vector<std::string> granted;
  };

  void expired() {
    if (state_ != State::open) return;
    if (auto const& hook = channel_->options().reauthorize) {
      std::optional<Verdict> v;
      try {
        auto s = session();
        v = hook(s);
      } catch (...) {
        log(LogLevel::error, error::hook_failed, "reauthorize threw");
      }
      if (v && v->allowed() && (!v->expires() || *v->expires() > std::chrono::system_clock::now())) {
        auth_->expires = v->expires();
        log(LogLevel::debug, {}, "reauthorized");
        return watch_expiry();
      }
    }
    log(LogLevel::info, error::credentials_expired, "authorization expired; closing");
    end(error::credentials_expired, Flush::own);
  }

  void drain_now() {
    sync_write_ = true;
    drain();
    sync_write_ = false;
  }

  // Deadlines: `at` is due; on the timer's thread.
  void due() {
    post_to(strand_, cached([self = self()] {
      if (self->state_ != State::closed) self->on_deadline();
    }));
  }

  std::shared_ptr<ChannelCore> channel_;
  net::any_io_executor strand_;
  Deadlines* deadlines_;  // and through it, the loop's ReadyList
  clock::time_point deadline_ = clock::time_point::max();
  std::unique_ptr<std::string const> principal_;  // most connections have none
  std::unique_ptr<Authority> auth_;
  EventId since_ = 0;  // with has_since_: an optional, without its padding on every connection
  EventId drain_cursor_ = 0;
  // The admitted topics until open() subscribes them (subscribed_), then the topics subscribed
  // now: written on the strand, read by Session::subscriptions on any thread.
  TopicSet topics_;
  boost::system::error_code reason_;
  State state_ = State::admitting;
  std::optional<Flush> pending_end_;
  std::uint32_t drain_ms_ = 0;
  std::uint32_t deadline_slot_ = Deadlines::none;  // in deadlines_'s heap, under its lock
  bool const lingers_;
  // strand_ is an io_context's own executor (a single-threaded one): wake-ups on its thread
  // join its ReadyList; connections on strands post theirs. Looked up once, not per wake-up.
  bool const own_loop_;
  bool has_since_ = false;
  bool registered_ = false;
  bool counted_ = false;
  bool announced_ = false;
  bool deferred_ = false;
  bool sync_write_ = false;  // see may_write_now
  mutable SpinLock topics_lock_;  // guards topics_ and subscribed_
  bool subscribed_ = false;
};

/** Start a `Session<stream type>` on `stream`: a plain TCP stream (a tcp_stream, whose timers
    the session's deadline replaces, or a socket) goes on an IoSocket when it runs on an
    io_context; other streams (TLS) are kept whole. The session's strand comes from the
    stream's executor as it was handed over. */
template <template <class> class Session, class Channel, class Stream, class... Args>
void start_session(Channel channel, Stream&& stream, Args&&... args) {
  using S = std::decay_t<Stream>;
  if constexpr (std::is_same_v<S, beast::tcp_stream> || std::is_same_v<S, net::ip::tcp::socket>) {
    auto sock = [&]() -> net::ip::tcp::socket {
      if constexpr (std::is_same_v<S, beast::tcp_stream>) return stream.release_socket();
      else return std::move(stream);
    }();
    auto const ex = sock.get_executor();
    if (auto io = to_io_socket(sock))
      return std::make_shared<Session<IoSocket>>(std::move(channel), std::move(*io), ex)
          ->start(std::forward<Args>(args)...);
    std::make_shared<Session<net::ip::tcp::socket>>(std::move(channel), std::move(sock), ex)
        ->start(std::forward<Args>(args)...);
  } else {
    auto const ex = stream.get_executor();
    std::make_shared<Session<S>>(std::move(channel), std::move(stream), ex)->start(std::forward<Args>(args)...);
  }
}

inline void ReadyList::run() {
  posted_ = false;
  running_.swap(ready_);
  std::size_t i = 0;
  try {
    // What a drain wakes (a lingering connection) joins ready_, for the next turn.
    for (; i < running_.size(); ++i) running_[i]->woken();
  } catch (...) {
    // The rest still have their wake-up pending (Subscriber::scheduled_): keep them.
    for (++i; i < running_.size(); ++i) add(std::move(running_[i]));
    running_.clear();
    throw;
  }
  running_.clear();
}

inline void Deadlines::arm(std::shared_ptr<Connection> c, clock::time_point at, net::any_io_executor const& strand) {
  std::lock_guard lock{mutex_};
  if (shut_) return;
  if (auto const i = c->deadline_slot_; i != none) {
    bool const sooner = at < heap_[i].at;
    heap_[i].at = at;
    sooner ? up(i) : down(i);
  } else {
    heap_.push_back({at, nullptr});
    place(heap_.size() - 1, {at, std::move(c)});
    up(heap_.size() - 1);
  }
  if (at >= armed_) return;
  if (!timer_) timer_.emplace(inner_executor(strand));
  wait_for(at);
}

inline void Deadlines::cancel(Connection& c) {
  std::shared_ptr<Connection> gone;  // released after the lock
  std::lock_guard lock{mutex_};
  if (c.deadline_slot_ == none) return;  // due already
  gone = erase(c.deadline_slot_);
  if (heap_.empty() && armed_ != clock::time_point::max()) {
    // A pending wait would keep the loop's run() from returning.
    armed_ = clock::time_point::max();
    timer_->cancel();
  }
}

inline void Deadlines::fired(boost::system::error_code ec) {
  if (ec == net::error::operation_aborted) return;  // the timer was moved or cancelled
  std::vector<std::shared_ptr<Connection>> due;
  {
    std::lock_guard lock{mutex_};
    if (shut_) return;
    auto const now = clock::now();
    while (!heap_.empty() && heap_.front().at <= now) due.push_back(erase(0));
    // Another wait may be pending (armed while this completion was queued): this one replaces it.
    if (!heap_.empty()) wait_for(heap_.front().at);
    else if (std::exchange(armed_, clock::time_point::max()) != clock::time_point::max()) timer_->cancel();
  }
  for (auto const& c : due) c->due();
}

inline void Deadlines::wait_for(clock::time_point at) {
  armed_ = at;
  timer_->expires_at(at);
  timer_->async_wait(cached([this](boost::system::error_code ec) { fired(ec); }));
}

inline void Deadlines::shutdown() {
  std::deque<Entry> gone;  // the connections it held go after the lock
  std::lock_guard lock{mutex_};
  shut_ = true;
  for (auto& e : heap_) e.c->deadline_slot_ = none;
  gone.swap(heap_);
  timer_.reset();  // before the timer's service is destroyed
}

inline void Deadlines::place(std::size_t i, Entry e) {
  e.c->deadline_slot_ = static_cast<std::uint32_t>(i);
  heap_[i] = std::move(e);
}

inline void Deadlines::up(std::size_t i) {
  auto e = std::move(heap_[i]);
  while (i > 0) {
    auto const parent = (i - 1) / 2;
    if (heap_[parent].at <= e.at) break;
    place(i, std::move(heap_[parent]));
    i = parent;
  }
  place(i, std::move(e));
}

inline void Deadlines::down(std::size_t i) {
  auto e = std::move(heap_[i]);
  auto const n = heap_.size();
  for (;;) {
    auto child = 2 * i + 1;
    if (child >= n) break;
    if (child + 1 < n && heap_[child + 1].at < heap_[child].at) ++child;
    if (e.at <= heap_[child].at) break;
    place(i, std::move(heap_[child]));
    i = child;
  }
  place(i, std::move(e));
}

inline std::shared_ptr<Connection> Deadlines::erase(std::size_t i) {
  auto gone = std::move(heap_[i].c);
  gone->deadline_slot_ = none;
  auto const last = heap_.size() - 1;
  if (i != last) {
    auto const at = heap_[last].at;
    place(i, std::move(heap_[last]));
    heap_.pop_back();
    if (i > 0 && at < heap_[(i - 1) / 2].at) up(i);
    else down(i);
  } else {
    heap_.pop_back();
  }
  return gone;
}

}  // namespace herald::detail
