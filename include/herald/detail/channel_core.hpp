#pragma once

#include <herald/detail/admission.hpp>
#include <herald/detail/cors.hpp>
#include <herald/detail/drain.hpp>
#include <herald/detail/endpoint.hpp>
#include <herald/detail/error_table.hpp>
#include <herald/detail/executor.hpp>
#include <herald/detail/inbox.hpp>
#include <herald/metrics_text.hpp>
#include <herald/detail/response.hpp>
#include <herald/detail/topic.hpp>
#include <herald/error.hpp>
#include <herald/hooks.hpp>
#include <herald/hub.hpp>
#include <herald/options.hpp>
#include <herald/session.hpp>

#include <boost/beast/core/tcp_stream.hpp>

#include <algorithm>
#include <array>
#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>

namespace herald::inline v0::detail {

/** A channel's counters (per transport: each member of a Negotiated channel has its own), for
    herald::Metrics. Relaxed atomics: each is a count, read on its own. */
struct ChannelCounters {
  std::atomic<std::uint64_t> connections{0};
  std::atomic<std::uint64_t> connections_opened{0};
  std::atomic<std::uint64_t> subscriptions{0};
  std::atomic<std::uint64_t> deliveries{0};
  std::atomic<std::uint64_t> replayed{0};
  std::atomic<std::uint64_t> slow_consumer{0};
  /// Shed::overflow, dropped, notice, coalesced, summed over the channel's connections.
  std::atomic<std::uint64_t> overflows{0};
  std::atomic<std::uint64_t> dropped{0};
  std::atomic<std::uint64_t> gap_notices{0};
  std::atomic<std::uint64_t> coalesced{0};
  std::atomic<std::uint64_t> written_bytes{0};
  /// Refusals by error (error_table order; the last slot: errors of other categories).
  std::array<std::atomic<std::uint64_t>, error_table.size() + 1> refusals{};

  void add(std::atomic<std::uint64_t>& c, std::uint64_t n) noexcept { c.fetch_add(n, std::memory_order_relaxed); }
  void sub(std::atomic<std::uint64_t>& c, std::uint64_t n) noexcept { c.fetch_sub(n, std::memory_order_relaxed); }
  void refused(boost::system::error_code ec) noexcept {
    auto const* row = error_info(ec);
    add(refusals[row ? static_cast<std::size_t>(row - error_table.data()) : error_table.size()], 1);
  }
};

/** The transport-independent part of a channel: options, admission (origin, authorization,
    topics) and the registry of live connections used for limits and shutdown. */
class ChannelCore {
 public:
  /// Tag of the constructor that makes a core sharing another one's state.
  struct share_t {};

  /// `transport`: the transport's name, in logs and metrics (a string with static storage).
  ChannelCore(Hub hub, std::string path, ChannelOptions options, std::string_view transport)
      : hub_(std::move(hub)), path_(std::move(path)), options_(std::move(options)),
        queue_limits_{options_.limits.queue_events, options_.limits.queue_bytes, options_.overflow},
        transport_name_(transport), shared_(std::make_shared<Shared>()) {
    if (path_.empty() || path_.front() != '/')
      throw std::invalid_argument("herald: channel path must start with '/'");
    for (auto const& t : options_.topics)
      if (!valid_topic(t, max_topic_length))
        throw std::invalid_argument("herald: ChannelOptions::topics holds an invalid topic name");
    if (options_.limits.queue_events == 0 || options_.limits.queue_bytes == 0)
      throw std::invalid_argument("herald: Limits::queue_events and queue_bytes must be positive");
    if (options_.limits.max_subscriptions == 0)
      throw std::invalid_argument("herald: Limits::max_subscriptions must be positive");
    for (auto const& h : options_.allowed_hosts) {
      std::string_view name, port;
      if (!split_authority(h, name, port) || name == "*." || h.find_first_of(" /\t") != std::string::npos)
        throw std::invalid_argument("herald: ChannelOptions::allowed_hosts holds an invalid entry: " + h);
    }
    if (options_.limits.retry_after.count() <= 0)
      throw std::invalid_argument("herald: Limits::retry_after must be positive");
    for (auto const& h : options_.cors.headers)
      if (!http_token(h)) throw std::invalid_argument("herald: CorsOptions::headers holds an invalid header name");
    if (options_.cors.max_age.count() < 0)
      throw std::invalid_argument("herald: CorsOptions::max_age must not be negative");
  }

  /** A core for one member of a multi-transport channel (herald::Negotiated): the same hub,
      path and options, and the *same* handlers, connection registry and stopping flag as
      `other`, so limits, shutdown, abort and disconnect_all of `other` cover its connections. */
  ChannelCore(ChannelCore const& other, share_t, std::string_view transport)
      : hub_(other.hub_), path_(other.path_), options_(other.options_), queue_limits_(other.queue_limits_),
        transport_name_(transport), shared_(other.shared_) {}

  ChannelCore(ChannelCore const&) = delete;
  ChannelCore& operator=(ChannelCore const&) = delete;

  Hub const& hub() const noexcept { return hub_; }
  Hub& hub() noexcept { return hub_; }
  HubState& state() const noexcept { return *hub_.state(); }
  std::string const& path() const noexcept { return path_; }
  ChannelOptions const& options() const noexcept { return options_; }
  std::string_view transport_name() const noexcept { return transport_name_; }

  /// The bounds of every connection's queue (Inbox keeps a pointer to them).
  QueueLimits const& queue_limits() const noexcept { return queue_limits_; }

  /** Decide whether `req`, from `remote`, may proceed (detail::admit_request: origin,
      authorization, topics, cursor) on a channel that still admits. On refusal returns the
      error and sets `detail` to a message for the client. */
  boost::system::error_code admit(Request const& req, Admission& out, std::string& detail,
                                  bool empty_means_all = true, net::ip::tcp::endpoint remote = {}) const {
    if (stopping()) return error::shutting_down;
    auto ec = admit_request(options_, AuthRequest{req, std::move(remote), transport_name_}, out, detail,
                            empty_means_all);
    // Checked after the request's own checks: only a client that may come back is told when.
    if (!ec && draining()) ec = error::draining;
    return ec;
  }

  /** The delay a retryable refusal for `ec` tells its client: during a drain, one drawn per
      client (RetrySpread); else Limits::retry_after. */
  std::chrono::milliseconds retry_after(boost::system::error_code ec) const {
    if (ec == error::draining)
      if (auto spread = drain_spread()) return spread->draw_refusal();
    return options_.limits.retry_after;
  }

  ChannelCounters& counters() const noexcept { return counters_; }

  /// `n` events written to a client of this channel (the hub's count and the channel's).
  void delivered(std::size_t n) const noexcept {
    state().delivered(n);
    counters_.add(counters_.deliveries, n);
  }

  /// Count what a queue of this channel shed to stay within its budget.
  void shed(Shed const& s) const noexcept {
    auto& c = counters_;
    if (s.overflow) c.add(c.overflows, 1);
    if (s.notice) c.add(c.gap_notices, 1);
    c.add(c.dropped, s.dropped);
    c.add(c.coalesced, s.coalesced);
  }

  /** Log and count a request this channel refused; the log names its target (if given) with
      every credential in its query redacted (redact_target). */
  void refused(boost::system::error_code ec, std::uint64_t connection, std::string_view target = {}) const noexcept {
    counters_.refused(ec);
    auto const level = ec == error::hook_failed ? LogLevel::error : LogLevel::info;
    if (target.empty() || !state().logs(level)) return state().log(level, transport_name_, connection, ec, "refused");
    try {
      state().log(level, transport_name_, connection, ec, "refused " + redact_target(target));
    } catch (std::bad_alloc const&) {
      state().log(level, transport_name_, connection, ec, "refused");
    }
  }

  /** This core's series (labelled channel, transport) into `m`; its connections' queued bytes
      are summed from the registry, which the members of a Negotiated channel share. */
  void write_metrics(MetricsText& m) const {
    auto const& c = counters_;
    auto const transport = transport_name_;
    std::string_view const path = path_;
    auto get = [](std::atomic<std::uint64_t> const& a) { return a.load(std::memory_order_relaxed); };
    std::uint64_t queued = 0;
    for (auto const& s : snapshot_all()) queued += s->queued_bytes(this);
    m.family("herald_connections", "gauge", "Connections open now.");
    m.sample({{"channel", path}, {"transport", transport}}, get(c.connections));
    m.family("herald_connections_opened_total", "counter", "Connections opened (admitted and subscribed).");
    m.sample({{"channel", path}, {"transport", transport}}, get(c.connections_opened));
    m.family("herald_subscriptions", "gauge", "Topics subscribed now, over every connection (an every-topic stream counts 1).");
    m.sample({{"channel", path}, {"transport", transport}}, get(c.subscriptions));
    m.family("herald_deliveries_total", "counter", "Events written to clients.");
    m.sample({{"channel", path}, {"transport", transport}}, get(c.deliveries));
    m.family("herald_replayed_events_total", "counter", "Events replayed from history to resuming clients.");
    m.sample({{"channel", path}, {"transport", transport}}, get(c.replayed));
    m.family("herald_slow_consumer_disconnects_total", "counter", "Connections closed for falling behind their queue bound.");
    m.sample({{"channel", path}, {"transport", transport}}, get(c.slow_consumer));
    m.family("herald_overflows_total", "counter",
             "Times a connection's queue reached its budget and the channel's overflow policy applied "
             "(drop_oldest, coalesce_latest: once per write).");
    m.sample({{"channel", path}, {"transport", transport}, {"policy", to_string(options_.overflow)}}, get(c.overflows));
    m.family("herald_dropped_events_total", "counter", "Events dropped from slow consumers' queues, each named in a gap notice.");
    m.sample({{"channel", path}, {"transport", transport}}, get(c.dropped));
    m.family("herald_gap_notices_total", "counter", "Gap notices sent to slow consumers.");
    m.sample({{"channel", path}, {"transport", transport}}, get(c.gap_notices));
    m.family("herald_coalesced_events_total", "counter",
             "Events replaced in a queue by a newer one of their topic (coalesce_latest): never written.");
    m.sample({{"channel", path}, {"transport", transport}}, get(c.coalesced));
    m.family("herald_queued_bytes", "gauge", "Bytes of events waiting in connections' queues.");
    m.sample({{"channel", path}, {"transport", transport}}, queued);
    m.family("herald_written_bytes_total", "counter", "Bytes of events and answers written to clients.");
    m.sample({{"channel", path}, {"transport", transport}}, get(c.written_bytes));
    m.family("herald_refusals_total", "counter", "Requests refused, by HTTP status and herald error.");
    for (std::size_t i = 0; i <= error_table.size(); ++i) {
      auto const n = get(c.refusals[i]);
      if (n == 0) continue;
      auto const status = std::to_string(i < error_table.size() ? error_table[i].status : 500u);
      m.sample({{"channel", path}, {"transport", transport}, {"status", status},
                {"reason", i < error_table.size() ? error_table[i].wire : std::string_view("other")}},
               n);
    }
  }

  /// The CORS answer for `req`'s Origin (detail/cors.hpp).
  CorsGrant cors(Request const& req) const {
    return cors_grant(req[http::field::origin], req[http::field::host], options_.allowed_origins);
  }

  // Handlers are set before the channel serves (documented on Channel), then only read.
  void set_on_message(MessageHandler h) { shared_->on_message = std::move(h); }
  void set_on_open(OpenHandler h) { shared_->on_open = std::move(h); }
  void set_on_close(CloseHandler h) { shared_->on_close = std::move(h); }
  bool has_message_handler() const noexcept { return static_cast<bool>(shared_->on_message); }

  /// Run the message handler; false if it threw (the caller closes the connection).
  bool message(Session& s, Message const& m) const noexcept { return invoke(shared_->on_message, s, m); }
  bool opened(Session& s) const noexcept { return invoke(shared_->on_open, s); }
  bool closed(Session& s, boost::system::error_code ec) const noexcept {
    return invoke(shared_->on_close, s, ec);
  }

  /// Register a live connection; false if the channel is full or stopping.
  bool add(SessionBase* s) {
    std::lock_guard lock{shared_->mutex};
    if (shared_->stopping || shared_->drain || shared_->sessions.size() >= options_.limits.max_connections)
      return false;
    shared_->sessions.push(s);
    return true;
  }

  void remove(SessionBase* s) {
    std::lock_guard lock{shared_->mutex};
    shared_->sessions.erase(s);
  }

  /// Registered connections, open or not yet (a WebSocket in its handshake).
  std::size_t active() const {
    std::lock_guard lock{shared_->mutex};
    return shared_->sessions.size();
  }

  /** Connections open now: subscribed, so that an event published after a caller sees the
      count reaches them. */
  std::size_t open_connections() const noexcept { return shared_->open.load(std::memory_order_acquire); }
  void opened_one() noexcept { shared_->open.fetch_add(1, std::memory_order_release); }
  void closed_one() noexcept { shared_->open.fetch_sub(1, std::memory_order_relaxed); }

  bool stopping() const {
    std::lock_guard lock{shared_->mutex};
    return shared_->stopping;
  }

  bool draining() const {
    std::lock_guard lock{shared_->mutex};
    return shared_->drain != nullptr;
  }

  /// The retry delays of the drain under way; null when none is.
  std::shared_ptr<RetrySpread> drain_spread() const {
    std::lock_guard lock{shared_->mutex};
    return shared_->drain;
  }

  /** Begin a drain: refuse new connections with error::draining (delays from `spread`) and
      return the live ones, for the server to close over its window. */
  std::vector<std::shared_ptr<SessionBase>> drain(std::shared_ptr<RetrySpread> spread) {
    std::lock_guard lock{shared_->mutex};
    shared_->drain = std::move(spread);
    return live();
  }

  /// Stop admitting and ask every connection to close gracefully.
  void shutdown() {
    for (auto& s : snapshot(true)) s->stop();
  }

  /// Stop admitting and close every connection now.
  void abort() {
    for (auto& s : snapshot(true)) s->abort();
  }

  /// Close every connection now but keep admitting: clients reconnect and resume.
  void disconnect_all() {
    for (auto& s : snapshot(false)) s->abort();
  }

 private:
  std::vector<std::shared_ptr<SessionBase>> snapshot(bool stop) {
    std::lock_guard lock{shared_->mutex};
    if (stop) shared_->stopping = true;
    return live();
  }

  // Under shared_->mutex.
  std::vector<std::shared_ptr<SessionBase>> live() const { return shared_->sessions.live(); }

  template <class F, class... Args>
  static bool invoke(F const& f, Args&&... args) noexcept {
    if (!f) return true;
    try {
      f(std::forward<Args>(args)...);
      return true;
    } catch (...) {
      return false;
    }
  }

  // What the cores of one multi-transport channel share (see the share_t constructor).
  struct Shared {
    MessageHandler on_message;
    OpenHandler on_open;
    CloseHandler on_close;
    std::mutex mutex;
    bool stopping = false;
    /// Set while draining: the retry delays new refusals and drained connections carry.
    std::shared_ptr<RetrySpread> drain;
    SessionList sessions;
    /// Of those, the ones open (subscribed; counted by opened_one/closed_one).
    std::atomic<std::size_t> open{0};
  };

  std::vector<std::shared_ptr<SessionBase>> snapshot_all() const {
    std::lock_guard lock{shared_->mutex};
    return live();
  }

  Hub hub_;
  std::string path_;
  ChannelOptions options_;
  QueueLimits queue_limits_;
  std::string_view transport_name_;
  std::shared_ptr<Shared> shared_;
  mutable ChannelCounters counters_;
};

/// Per-channel state a transport may ask for with a nested `channel_state` type; none by default.
struct NoChannelState {
  template <class... Args>
  explicit NoChannelState(Args const&...) noexcept {}
};

template <class T>
struct channel_state_of {
  using type = NoChannelState;
};

template <class T>
  requires requires { typename T::channel_state; }
struct channel_state_of<T> {
  using type = typename T::channel_state;
};

template <class T>
class ChannelImpl;

/** Start transport T on a connection. `already_read`, the bytes read past the request (frames
    a WebSocket client sent in the same packet as its upgrade), reaches a transport whose
    start() takes it; the others never read from the connection after its request. */
template <class T, class Stream>
void start_transport(std::shared_ptr<ChannelImpl<T>> ch, Stream&& stream, Request&& req, std::string&& already_read) {
  if constexpr (requires { T::start(ch, std::forward<Stream>(stream), std::move(req), std::move(already_read)); })
    T::start(std::move(ch), std::forward<Stream>(stream), std::move(req), std::move(already_read));
  else
    T::start(std::move(ch), std::forward<Stream>(stream), std::move(req));
}

/** Answer `req` in place with transport T (T::answers said so); `remote` reaches a T::answer
    that takes it (the authorize hook's AuthRequest::remote). Without T::answers: 404. */
template <class T>
std::shared_ptr<Held> answer_transport(std::shared_ptr<ChannelImpl<T>> ch, Request&& req, net::any_io_executor const& ex,
                                       Respond respond, net::ip::tcp::endpoint remote) {
  if constexpr (requires { T::answer(ch, std::move(req), ex, std::move(respond), std::move(remote)); })
    return T::answer(std::move(ch), std::move(req), ex, std::move(respond), std::move(remote));
  else if constexpr (requires { T::answers(req); })
    return T::answer(std::move(ch), std::move(req), ex, std::move(respond));
  else return static_cast<Endpoint&>(*ch).Endpoint::answer(std::move(req), ex, std::move(respond));
}

/// A channel's state for transport T: the core plus T's options, shared with its connections.
template <class T>
class ChannelImpl final : public ChannelCore,
                          public Endpoint,
                          public std::enable_shared_from_this<ChannelImpl<T>> {
 public:
  ChannelImpl(Hub hub, std::string path, ChannelOptions options, typename T::options topts)
      : ChannelCore(std::move(hub), std::move(path), std::move(options), T::name),
        transport_(validated(std::move(topts))),
        state_(static_cast<ChannelCore const&>(*this), transport_) {}

  /// A member channel of a multi-transport channel: shares `core`'s handlers and registry.
  ChannelImpl(ChannelCore const& core, typename T::options topts)
      : ChannelCore(core, share_t{}, T::name), transport_(validated(std::move(topts))),
        state_(static_cast<ChannelCore const&>(*this), transport_) {}

  typename T::options const& transport_options() const noexcept { return transport_; }

  /// The transport's per-channel state (T::channel_state), if it declares one.
  typename channel_state_of<T>::type& channel_state() noexcept { return state_; }

  template <class Stream>
  void accept_stream(Stream&& stream, Request&& req, std::string&& already_read = {}) {
    start_transport<T>(this->shared_from_this(), std::forward<Stream>(stream), std::move(req), std::move(already_read));
  }

  std::string const& path() const noexcept override { return ChannelCore::path(); }
  void accept(beast::tcp_stream&& stream, Request&& req) override {
    accept_stream(std::move(stream), std::move(req));
  }
  // Request/response transports (polling) provide T::answers and T::answer.
  bool answers(Request const& req) const override {
    if constexpr (requires { T::answers(req); }) return T::answers(req);
    else return Endpoint::answers(req);
  }
  std::shared_ptr<Held> answer(Request&& req, net::any_io_executor const& ex, Respond respond,
                               net::ip::tcp::endpoint remote = {}) override {
    return answer_transport<T>(this->shared_from_this(), std::move(req), ex, std::move(respond), std::move(remote));
  }
  void metrics(MetricsText& m) const override {
    write_metrics(m);
    if constexpr (requires { state_.for_each_member([](auto const&) {}); })
      state_.for_each_member([&](auto const& member) { member->metrics(m); });
  }
  Response refusal(Request const& req, boost::system::error_code ec,
                   std::chrono::milliseconds retry_after) const override {
    auto res = retryable_refusal(req, ec, retry_after);
    if constexpr (requires { T::answers(req); }) {
      // A poll refused during a drain learns its cursor, as a drained poll does (after the
      // same admission, so that only a client that may poll here is told where it stands).
      Admission a;
      std::string detail;
      if (ec == error::draining && T::answers(req) &&
          !admit_request(options(), AuthRequest{req, {}, transport_name()}, a, detail, true))
        res = drain_answer(req.version(), retry_after, a.since.value_or(state().last()));
    }
    add_cors(res, cors(req), options().cors);
    return res;
  }
  void shutdown() override { ChannelCore::shutdown(); }
  std::vector<std::shared_ptr<SessionBase>> drain(std::shared_ptr<RetrySpread> spread) override {
    return ChannelCore::drain(std::move(spread));
  }
  void abort() override { ChannelCore::abort(); }
  std::size_t active() const override { return ChannelCore::active(); }

 private:
  static typename T::options validated(typename T::options o) {
    if constexpr (requires { T::validate(o); }) T::validate(o);
    return o;
  }

  typename T::options transport_;
  typename channel_state_of<T>::type state_;
};

}  // namespace herald::detail
