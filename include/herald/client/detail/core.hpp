#pragma once

// What the three clients share: the strand, the registered handlers, the state machine
// (connecting -> open -> reconnecting -> ... -> closed), backoff, the per-topic positions that
// drive resume and de-duplication, the watchdog for connect and idle timeouts, and a stop that
// completes only once no operation of the client is pending any more.

#include <herald/client/backoff.hpp>
#include <herald/client/connector.hpp>
#include <herald/client/error.hpp>
#include <herald/client/options.hpp>
#include <herald/error.hpp>
#include <herald/event.hpp>

#include <boost/asio/any_completion_executor.hpp>
#include <boost/asio/any_completion_handler.hpp>
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/append.hpp>
#include <boost/asio/associated_executor.hpp>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/execution/outstanding_work.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/prefer.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace herald::inline v0::client::detail {

using StopHandler = net::any_completion_handler<void(boost::system::error_code)>;
using clock = std::chrono::steady_clock;

/// Which URL schemes a client accepts.
enum class Schemes : std::uint8_t { http, ws };

inline Url checked_url(std::string_view text, Schemes schemes) {
  auto url = parse_url(text);
  if (!url) throw std::invalid_argument("herald: not an absolute http(s) or ws(s) URL: " + std::string(text));
  bool const http = url->scheme == "http" || url->scheme == "https";
  if (schemes == Schemes::http && !http)
    throw std::invalid_argument("herald: this client takes an http:// or https:// URL");
  if (schemes == Schemes::ws && http)
    throw std::invalid_argument("herald: the WebSocket client takes a ws:// or wss:// URL");
  return *std::move(url);
}

inline void check_options(Options const& o) {
  if (o.connect_timeout.count() <= 0)
    throw std::invalid_argument("herald: Options::connect_timeout must be positive");
  if (o.idle_timeout.count() < 0) throw std::invalid_argument("herald: Options::idle_timeout must not be negative");
  if (o.proof_timeout.count() < 0)
    throw std::invalid_argument("herald: Options::proof_timeout must not be negative");
  if (o.max_message == 0) throw std::invalid_argument("herald: Options::max_message must be positive");
  if (o.poll.wait.count() < 0) throw std::invalid_argument("herald: PollOptions::wait must not be negative");
  if (o.poll.interval.count() < 0)
    throw std::invalid_argument("herald: PollOptions::interval must not be negative");
  for (auto const& t : o.topics)
    if (t.empty()) throw std::invalid_argument("herald: Options::topics must not hold an empty name");
  for (auto const& [name, value] : o.headers)
    for (char c : name + value)
      if (c == '\r' || c == '\n' || c == '\0')
        throw std::invalid_argument("herald: Options::headers must not contain CR, LF or NUL");
}

class Core : public std::enable_shared_from_this<Core> {
 public:
  using executor_type = net::any_io_executor;

  Core(executor_type const& ex, Url url, Options options)
      : url_(std::move(url)),
        options_(std::move(options)),
        backoff_(options_.backoff),
        strand_(net::make_strand(ex)),
        timer_(strand_),
        watchdog_(strand_) {
    check_options(options_);
    if (!options_.connector) options_.connector = plain_tcp();
  }
  Core(Core const&) = delete;
  Core& operator=(Core const&) = delete;
  virtual ~Core() = default;

  std::function<void(Event const&)> on_event_;
  std::function<void(Reset const&)> on_reset_;
  std::function<void(State, boost::system::error_code)> on_state_;

  executor_type const& strand() const noexcept { return strand_; }

  void start() {
    // Not track()ed: the count is the strand's, and this may run on any thread.
    net::post(strand_, [self = shared_from_this()] {
      if (self->started_ || self->stopping_ || self->detached()) return;
      self->started_ = true;
      self->set_state(State::connecting, {});
      if (!self->stopping_) self->attempt();
      self->maybe_finish();
    });
  }

  void stop(StopHandler handler) {
    auto work = net::prefer(net::get_associated_executor(handler, strand_), net::execution::outstanding_work.tracked);
    // Posted: the handler never completes inside the initiating call.
    net::post(strand_, [self = shared_from_this(), h = std::move(handler), work = std::move(work)]() mutable {
      self->waiters_.push_back(Waiter{std::move(h), std::move(work)});
      if (!self->stopping_) {
        self->stopping_ = true;
        self->timer_.cancel();
        self->unwatch();
        if (self->started_) self->begin_stop();
      }
      self->maybe_finish();
    });
  }

  /// The public object is being destroyed: no handler runs after this returns; the
  /// connection closes and pending operations drain on their own.
  void detach() noexcept {
    detached_.store(true);
    try {
      net::post(strand_, [self = shared_from_this()] {
        self->stopping_ = true;
        self->timer_.cancel();
        self->unwatch();
        self->disconnect();
        self->on_event_ = nullptr;
        self->on_reset_ = nullptr;
        self->on_state_ = nullptr;
        self->release_handlers();
        self->maybe_finish();
      });
    } catch (...) {
    }
  }

  ClientStats stats() const noexcept {
    return {connections_.load(), reconnects_.load(), events_.load(), duplicates_.load(), resets_.load()};
  }

  std::chrono::microseconds reconnect_delay() const noexcept {
    return std::chrono::microseconds(delay_us_.load());
  }

 protected:
  /// Begin one connection attempt (on the strand, never while stopping).
  virtual void connect() = 0;
  /// Close the current connection or attempt at once. Idempotent.
  virtual void disconnect() = 0;
  /// async_stop on a started client: by default close at once (WebSocket says goodbye first).
  virtual void begin_stop() { disconnect(); }
  /// Drop user handlers the transport holds (on_message, ...), after detach().
  virtual void release_handlers() {}

  /** Wrap a completion handler so that stop can tell when nothing is pending: the count goes
      up now and down when it runs. After detach() only the bookkeeping runs. */
  template <class F>
  auto track(F f) {
    ++ops_;
    return [self = shared_from_this(), f = std::move(f)](auto&&... args) mutable {
      --self->ops_;
      if (!self->detached_.load(std::memory_order_relaxed)) f(std::forward<decltype(args)>(args)...);
      self->maybe_finish();
    };
  }

  bool stopping() const noexcept { return stopping_; }
  bool detached() const noexcept { return detached_.load(std::memory_order_relaxed); }

  /// A new stream for the URL; null (and `ec`) when the connector cannot reach the scheme.
  std::unique_ptr<ByteStream> make_stream(boost::system::error_code& ec) {
    auto s = options_.connector->make(strand_, url_);
    if (!s) ec = error::tls_not_configured;
    return s;
  }

  /// The connection is up: state open (reported once per transition).
  void opened() {
    if (!was_open_) {
      was_open_ = true;
      opened_at_ = clock::now();
      connections_.fetch_add(1, std::memory_order_relaxed);
    }
    if (state_ != State::open) set_state(State::open, {});
  }

  /// A poll was answered: the connection proved healthy, so backoff starts over.
  void healthy() noexcept { backoff_.reset(); }

  /** The connection is up (SSE headers, WebSocket upgrade). A server that advertised its
      `heartbeat` promised data at once and then at least every period: the client is open only
      once data arrived (received()) within proof_timeout, and afterwards twice the period
      without data is a stall. Without a heartbeat (or with proof_timeout zero) it is open now,
      and nothing received for `idle` means a dead connection (zero: no watch). */
  void connected(std::optional<std::chrono::milliseconds> heartbeat, std::chrono::milliseconds idle) {
    if (!heartbeat || options_.proof_timeout.count() == 0) {
      proving_ = false;
      opened();
      if (stopping_) return;
      if (idle.count() > 0) watch(idle, herald::error::idle_timeout);
      else unwatch();
      return;
    }
    stall_ = 2 * *heartbeat;
    proving_ = true;
    watch(options_.proof_timeout, error::no_data);
  }

  /// Data arrived on the connection: its proof of delivery, or one more sign of life.
  void received() {
    if (!proving_) return touch();
    proving_ = false;
    opened();
    if (!stopping_) watch(stall_, error::stalled);
  }

  /** For a client composed of others: the connection it relied on dropped and something else
      reconnects it (no backoff here). Reported as reconnecting with `ec`. */
  void reconnecting(boost::system::error_code ec) {
    was_open_ = false;
    reconnects_.fetch_add(1, std::memory_order_relaxed);
    delay_us_.store(0);
    set_state(State::reconnecting, ec);
  }

  /// The connection dropped or an attempt failed: back off, then try again.
  void lost(boost::system::error_code ec) {
    unwatch();
    disconnect();
    proving_ = false;
    if (stopping_) return;
    if (was_open_ && backoff_.healthy(clock::now() - opened_at_)) backoff_.reset();
    was_open_ = false;
    reconnects_.fetch_add(1, std::memory_order_relaxed);
    auto const delay = backoff_.next();
    delay_us_.store(delay.count());
    set_state(State::reconnecting, ec);
    if (stopping_) return;
    timer_.expires_after(delay);
    timer_.async_wait(track([this](boost::system::error_code e) {
      if (e || stopping_) return;
      attempt();
    }));
  }

  /// A permanent error (401, 403, 404, a throwing handler): closed, no further attempt.
  void fail(boost::system::error_code ec) {
    if (stopping_) return;
    stopping_ = true;
    final_ec_ = ec;
    timer_.cancel();
    unwatch();
    disconnect();
  }

  /// Run after `delay` (tracked), unless the client stops first.
  template <class F>
  void after(std::chrono::steady_clock::duration delay, F f) {
    timer_.expires_after(delay);
    timer_.async_wait(track([this, f = std::move(f)](boost::system::error_code e) mutable {
      if (e || stopping_) return;
      f();
    }));
  }

  /** Hand `ev` to on_event unless its id is not above the last one seen under `key` (its
      topic; "" for SSE, whose stream is one sequence) nor above `floor` (a position every key
      has reached). Events without an id (0) always pass. Returns false once the client is
      stopping (then the caller stops delivering). */
  bool deliver(Event const& ev, std::string_view key, EventId floor = 0) {
    if (stopping_) return false;
    if (ev.id != 0) {
      auto it = last_.find(key);
      if (ev.id <= floor || (it != last_.end() && ev.id <= it->second)) {
        duplicates_.fetch_add(1, std::memory_order_relaxed);
        return true;
      }
      if (it == last_.end()) last_.emplace(std::string(key), ev.id);
      else it->second = ev.id;
    }
    events_.fetch_add(1, std::memory_order_relaxed);
    invoke(on_event_, ev);
    return !stopping_;
  }

  /// Hand a reset notice to on_reset. The caller moves its positions first.
  bool notify_reset(Reset const& r) {
    if (stopping_) return false;
    resets_.fetch_add(1, std::memory_order_relaxed);
    invoke(on_reset_, r);
    return !stopping_;
  }

  /// The last id seen under `key`, if any.
  std::optional<EventId> last(std::string_view key) const {
    auto it = last_.find(key);
    if (it == last_.end()) return std::nullopt;
    return it->second;
  }

  void set_last(std::string_view key, EventId id) {
    auto it = last_.find(key);
    if (it == last_.end()) last_.emplace(std::string(key), id);
    else it->second = id;
  }

  /// Call a user handler; one that throws closes the client with error::hook_failed.
  template <class F, class... Args>
  void invoke(F& f, Args&&... args) {
    if (!f || detached()) return;
    try {
      f(std::forward<Args>(args)...);
    } catch (...) {
      fail(herald::error::hook_failed);
    }
  }

  /** Watchdog: unless touch()ed within `period`, the current connection is closed and reported
      lost with `reason` (then retried). Zero disarms it. */
  void watch(clock::duration period, boost::system::error_code reason) {
    if (period <= clock::duration::zero()) return unwatch();
    watch_reason_ = reason;
    watch_period_ = period;
    deadline_ = clock::now() + period;
    if (!watch_armed_ || watchdog_.expiry() > deadline_) arm_watchdog();
  }

  void touch() noexcept {
    if (watch_armed_) deadline_ = clock::now() + watch_period_;
  }

  void unwatch() {
    if (!watch_armed_) return;
    watch_armed_ = false;
    ++watch_gen_;
    watchdog_.cancel();
  }

  void backoff_server_retry(std::chrono::milliseconds delay) { backoff_.server_retry(delay); }

  /** Once stopping with nothing pending: on_state(closed), then the stop waiters. Tracked
      handlers run it after themselves; a client driven by other clients' handlers (the
      NegotiatingClient) runs it after each of those. */
  void maybe_finish() {
    if (!stopping_ || ops_ != 0) return;
    if (!finished_) {
      finished_ = true;
      state_ = State::closed;
      if (!detached() && on_state_) {
        try {
          on_state_(State::closed, final_ec_);
        } catch (...) {
        }
      }
    }
    for (auto& w : waiters_)
      net::post(strand_, [h = std::move(w.handler), work = std::move(w.work)]() mutable {
        net::dispatch(net::append(std::move(h), boost::system::error_code{}));
      });
    waiters_.clear();
  }

  Url const url_;
  Options options_;
  /// Positions per topic (per stream for SSE): resume cursors and the de-duplication bound.
  std::map<std::string, EventId, std::less<>> last_;

 private:
  struct Waiter {
    StopHandler handler;
    net::any_completion_executor work;
  };

  void attempt() {
    watch(options_.connect_timeout, error::connect_timeout);
    connect();
  }

  void arm_watchdog() {
    watch_armed_ = true;
    auto const gen = ++watch_gen_;
    watchdog_.expires_at(deadline_);
    watchdog_.async_wait(track([this, gen](boost::system::error_code ec) {
      if (ec || gen != watch_gen_ || !watch_armed_) return;
      if (clock::now() < deadline_) return arm_watchdog();
      watch_armed_ = false;
      // The pending operations of the connection fail once it is closed, but find it replaced
      // (conn_) and report nothing: the watchdog reports the loss itself.
      lost(watch_reason_);
    }));
  }

  void set_state(State s, boost::system::error_code ec) {
    state_ = s;
    invoke(on_state_, s, ec);
  }

  Backoff backoff_;
  executor_type strand_;
  net::steady_timer timer_;
  net::steady_timer watchdog_;
  std::vector<Waiter> waiters_;
  State state_ = State::closed;
  boost::system::error_code final_ec_;
  boost::system::error_code watch_reason_;
  clock::duration watch_period_{};
  std::chrono::milliseconds stall_{};
  clock::time_point deadline_{};
  clock::time_point opened_at_{};
  std::uint64_t watch_gen_ = 0;
  std::size_t ops_ = 0;
  bool watch_armed_ = false;
  bool proving_ = false;  // the connection is up, its first data not yet arrived
  bool started_ = false;
  bool stopping_ = false;
  bool finished_ = false;
  bool was_open_ = false;
  std::atomic<bool> detached_{false};
  std::atomic<std::uint64_t> connections_{0};
  std::atomic<std::uint64_t> reconnects_{0};
  std::atomic<std::uint64_t> events_{0};
  std::atomic<std::uint64_t> duplicates_{0};
  std::atomic<std::uint64_t> resets_{0};
  std::atomic<std::int64_t> delay_us_{0};
};

/** The public face every client shares: registered handlers, start, async_stop, stats.
    `Impl` derives from Core. */
template <class Impl>
class ClientHandle {
 public:
  using executor_type = net::any_io_executor;

  ClientHandle(ClientHandle&&) noexcept = default;
  ClientHandle& operator=(ClientHandle&& other) noexcept {
    if (this != &other) {
      if (impl_) impl_->detach();
      impl_ = std::move(other.impl_);
    }
    return *this;
  }
  ClientHandle(ClientHandle const&) = delete;
  ClientHandle& operator=(ClientHandle const&) = delete;

  /// Stops the client without waiting: no handler runs once the destructor returned.
  ~ClientHandle() {
    if (impl_) impl_->detach();
  }

  /** Called for every event, exactly once per id and topic, in order. Set before start().
      Runs on the client's strand; must not block. If it throws, the client closes with
      herald::error::hook_failed. */
  template <class F>
  auto& on_event(F&& handler) {
    impl_->on_event_ = std::forward<F>(handler);
    return self();
  }

  /// Called for every reset notice (events up to Reset::cursor may be missing). Set before start().
  template <class F>
  auto& on_reset(F&& handler) {
    impl_->on_reset_ = std::forward<F>(handler);
    return self();
  }

  /** Called on every change of state with the reason (the error that caused a reconnect or a
      close; success for an orderly close). Set before start(). */
  template <class F>
  auto& on_state(F&& handler) {
    impl_->on_state_ = std::forward<F>(handler);
    return self();
  }

  /// Begin connecting (from any thread). Calling it again does nothing.
  void start() { impl_->start(); }

  /** Stop: close the connection, cancel timers, and complete once nothing of the client is
      pending any more (on_state(closed) has run by then).

      Completion signature: void(error_code) — always success. Never completes inside this
      call. May be called from any thread, more than once; each call completes. Destroying
      the client while the operation is pending completes it too.
  */
  template <class Token = net::default_completion_token_t<executor_type>>
  auto async_stop(Token&& token = net::default_completion_token_t<executor_type>()) {
    return net::async_initiate<Token, void(boost::system::error_code)>(StopInit{impl_}, token);
  }

  ClientStats stats() const noexcept { return impl_->stats(); }

  /// The delay before the next attempt; meaningful inside on_state(reconnecting, ...).
  std::chrono::microseconds reconnect_delay() const noexcept { return impl_->reconnect_delay(); }

  /// The client's strand: every handler runs on it.
  executor_type get_executor() const noexcept { return impl_->strand(); }

 protected:
  explicit ClientHandle(std::shared_ptr<Impl> impl) : impl_(std::move(impl)) {}
  std::shared_ptr<Impl> impl_;

 private:
  auto& self() { return static_cast<typename Impl::Public&>(*this); }

  struct StopInit {
    std::shared_ptr<Impl> impl;
    executor_type get_executor() const noexcept { return impl->strand(); }
    template <class Handler>
    void operator()(Handler&& handler) const {
      impl->stop(StopHandler(std::forward<Handler>(handler)));
    }
  };
};

}  // namespace herald::client::detail
