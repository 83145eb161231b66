#pragma once

#include <herald/detail/http.hpp>
#include <herald/detail/topic.hpp>
#include <herald/error.hpp>
#include <herald/hooks.hpp>
#include <herald/hub.hpp>
#include <herald/options.hpp>
#include <herald/session.hpp>

#include <boost/asio/detail/concurrency_hint.hpp>
#include <boost/asio/detail/scheduler.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/beast/core/tcp_stream.hpp>

#include <algorithm>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>

namespace herald::detail {

/** Whether `ex` is the executor of an io_context made to be run by one thread
    (`net::io_context ioc{1}`, or an unlocked concurrency hint). Its handlers never run
    concurrently, so it serializes a connection's handlers as a strand would, and a strand
    would only add cost: with hundreds of connections, every strand wake-up allocates, because
    Asio recycles at most two blocks per thread. */
inline bool single_threaded(net::any_io_executor const& ex) {
#if defined(BOOST_ASIO_HAS_IOCP)
  (void)ex;
  return false;
#else
  auto const* io = ex.target<net::io_context::executor_type>();
  if (!io) return false;
  // On POSIX an io_context's implementation is its scheduler service.
  auto& ctx = io->context();
  if (!net::has_service<net::detail::scheduler>(ctx)) return false;
  int const hint = net::use_service<net::detail::scheduler>(ctx).concurrency_hint();
  return hint == 1 || (BOOST_ASIO_CONCURRENCY_HINT_IS_SPECIAL(hint) &&
                       !BOOST_ASIO_CONCURRENCY_HINT_IS_LOCKING(SCHEDULER, hint));
#endif
}

/** An executor that runs a new connection's handlers one at a time: the io_context's own
    executor when it is single-threaded, else a new strand. When `ex` is an io_context's or a
    thread_pool's executor, the strand wraps that concrete executor, so it fits
    any_io_executor's small-object buffer and never type-erases its inner executor: a
    strand<any_io_executor> heap-allocates on every prefer/require/query Asio makes per
    operation (bench/results/analysis.md, section 1). */
inline net::any_io_executor new_strand(net::any_io_executor const& ex) {
  if (single_threaded(ex)) return ex;
  if (auto const* io = ex.target<net::io_context::executor_type>()) return net::make_strand(*io);
  if (auto const* pool = ex.target<net::thread_pool::executor_type>()) return net::make_strand(*pool);
  return net::make_strand(ex);
}

/** An executor that runs one handler at a time: `ex` itself when it is a strand already (as
    herald::Server's connections are) or single-threaded, so handlers do not pay for two
    strands, else a new strand on it. */
inline net::any_io_executor serialized(net::any_io_executor const& ex) {
  if (ex.target<net::strand<net::io_context::executor_type>>() ||
      ex.target<net::strand<net::thread_pool::executor_type>>() ||
      ex.target<net::strand<net::any_io_executor>>())
    return ex;
  return new_strand(ex);
}

/** net::post(ex, handler) through `ex`'s concrete type when it is one new_strand() makes. A
    post through any_io_executor type-erases the handler into memory from Asio's recycling
    allocator, whatever allocator the handler carries, and that allocator keeps only two blocks
    per thread: with hundreds of connections waking at once, every post went to malloc. */
template <class Handler>
void post_to(net::any_io_executor const& ex, Handler&& handler) {
  if (auto const* io = ex.target<net::io_context::executor_type>())
    return net::post(*io, std::forward<Handler>(handler));
  if (auto const* strand = ex.target<net::strand<net::io_context::executor_type>>())
    return net::post(*strand, std::forward<Handler>(handler));
  net::post(ex, std::forward<Handler>(handler));
}

/// What a channel needs from each live connection, whatever its transport.
class SessionBase {
 public:
  virtual ~SessionBase() = default;
  /// Tell the client the server is going away and close once it has been told.
  virtual void stop() = 0;
  /// Close now.
  virtual void abort() = 0;
};

/// The answer to a request a channel answers in place (request/response transports: polling).
using Response = http::response<http::string_body>;

/** Delivers such an answer to the connection that owns the stream; called at most once. The
    answer is complete as it is written (prepare_payload done: Content-Length or chunked set);
    the connection only sets the request's version and its keep-alive decision. */
using Respond = std::function<void(Response&&)>;

/// A request a channel holds (a long poll) on a connection it does not own.
class Held {
 public:
  virtual ~Held() = default;
  /** The client went away: drop the request without answering and free what it holds at once.
      Call on the connection's executor; the Respond is not called after this. */
  virtual void cancel() = 0;
};

/// What herald::Server needs from a channel: the type-erased face of ChannelImpl<T>.
class Endpoint {
 public:
  virtual ~Endpoint() = default;
  virtual std::string const& path() const noexcept = 0;
  virtual void accept(beast::tcp_stream&& stream, Request&& req) = 0;
  /** Whether `req` is answered in place with answer() (the connection stays the caller's, for
      keep-alive and other paths) rather than handed over with accept(). */
  virtual bool answers(Request const& req) const {
    (void)req;
    return false;
  }
  /** Answer `req` without taking the connection. `respond` runs on `ex` (a strand: the
      connection's), exactly once unless the returned Held is cancelled first. It may run before
      answer() returns (an immediate answer), and then nullptr is returned; otherwise the request
      is held and the Held is how the caller cancels it when its client goes away. A held request
      keeps itself alive until it is answered or cancelled, so the caller may (and should) keep
      it as a weak_ptr: `respond` usually owns the caller, and a strong pointer back is a cycle. */
  virtual std::shared_ptr<Held> answer(Request&& req, net::any_io_executor const& ex, Respond respond) {
    (void)ex;
    respond(Response{http::status::not_found, req.version()});
    return nullptr;
  }
  virtual void shutdown() = 0;
  virtual void abort() = 0;
  virtual std::size_t active() const = 0;
};

/// What admission decided for a request that may proceed.
struct Admission {
  std::string principal;
  TopicSet topics;
  QueryParams query;
};

/** The transport-independent part of a channel: options, admission (origin, authorization,
    topics) and the registry of live connections used for limits and shutdown. */
class ChannelCore {
 public:
  /// Tag of the constructor that makes a core sharing another one's state.
  struct share_t {};

  ChannelCore(Hub hub, std::string path, ChannelOptions options)
      : hub_(std::move(hub)), path_(std::move(path)), options_(std::move(options)),
        shared_(std::make_shared<Shared>()) {
    if (path_.empty() || path_.front() != '/')
      throw std::invalid_argument("herald: channel path must start with '/'");
    for (auto const& t : options_.topics)
      if (!valid_topic(t, max_topic_length))
        throw std::invalid_argument("herald: ChannelOptions::topics holds an invalid topic name");
    if (options_.limits.queue_events == 0 || options_.limits.queue_bytes == 0)
      throw std::invalid_argument("herald: Limits::queue_events and queue_bytes must be positive");
    if (options_.limits.max_subscriptions == 0)
      throw std::invalid_argument("herald: Limits::max_subscriptions must be positive");
  }

  /** A core for one member of a multi-transport channel (herald::Negotiated): the same hub,
      path and options, and the *same* handlers, connection registry and stopping flag as
      `other`, so limits, shutdown, abort and disconnect_all of `other` cover its connections. */
  ChannelCore(ChannelCore const& other, share_t)
      : hub_(other.hub_), path_(other.path_), options_(other.options_), shared_(other.shared_) {}

  ChannelCore(ChannelCore const&) = delete;
  ChannelCore& operator=(ChannelCore const&) = delete;

  Hub const& hub() const noexcept { return hub_; }
  Hub& hub() noexcept { return hub_; }
  HubState& state() const noexcept { return *hub_.state(); }
  std::string const& path() const noexcept { return path_; }
  ChannelOptions const& options() const noexcept { return options_; }

  QueueLimits queue_limits() const noexcept {
    return {options_.limits.queue_events, options_.limits.queue_bytes, options_.overflow};
  }

  /** Decide whether `req` may proceed: origin, authorization, topics, topic authorization.
      On refusal returns the error and sets `detail` to a message for the client. Hooks that
      throw refuse with error::hook_failed. A request naming no topic gets the channel's fixed
      topics, or, if it has none and `empty_means_all`, every topic (else no topic at all:
      transports such as WebSocket subscribe later). */
  boost::system::error_code admit(Request const& req, Admission& out, std::string& detail,
                                  bool empty_means_all = true) const {
    if (stopping()) return error::shutting_down;
    if (!origin_allowed(req[http::field::origin], req[http::field::host], options_.allowed_origins))
      return error::origin_not_allowed;
    auto query = parse_query(target_query(req.target()));
    if (!query) {
      detail = "malformed query string";
      return error::bad_request;
    }
    try {
      if (options_.authorize) {
        Verdict v = options_.authorize(req);
        if (!v.allowed()) {
          detail = v.text();
          return v.reason();
        }
        out.principal = v.text();
      }
      for (auto const& [key, value] : *query) {
        if (key != "topic") continue;
        if (!valid_topic(value, options_.limits.max_topic_length)) {
          detail = "invalid topic name";
          return error::bad_topic;
        }
        if (!options_.topics.empty() &&
            std::find(options_.topics.begin(), options_.topics.end(), value) == options_.topics.end()) {
          detail = "topic not offered on this channel: " + value;
          return error::forbidden;
        }
        if (std::find(out.topics.topics.begin(), out.topics.topics.end(), value) == out.topics.topics.end())
          out.topics.topics.push_back(value);
      }
      if (out.topics.topics.empty()) {
        out.topics.topics = options_.topics;
        out.topics.all = options_.topics.empty() && empty_means_all;
      }
      if (out.topics.topics.size() > options_.limits.max_subscriptions) {
        detail = "at most " + std::to_string(options_.limits.max_subscriptions) + " topics";
        return error::too_many_subscriptions;
      }
      if (options_.authorize_topic) {
        if (out.topics.all && !options_.authorize_topic(out.principal, "*")) {
          detail = "not allowed to subscribe to every topic";
          return error::forbidden;
        }
        for (auto const& t : out.topics.topics)
          if (!options_.authorize_topic(out.principal, t)) {
            detail = "not allowed to subscribe to " + t;
            return error::forbidden;
          }
      }
    } catch (...) {
      return error::hook_failed;
    }
    out.query = std::move(*query);
    return {};
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
  bool add(SessionBase* s, std::weak_ptr<SessionBase> w) {
    std::lock_guard lock{shared_->mutex};
    if (shared_->stopping || shared_->sessions.size() >= options_.limits.max_connections) return false;
    shared_->sessions.emplace(s, std::move(w));
    return true;
  }

  void remove(SessionBase* s) {
    std::lock_guard lock{shared_->mutex};
    shared_->sessions.erase(s);
  }

  std::size_t active() const {
    std::lock_guard lock{shared_->mutex};
    return shared_->sessions.size();
  }

  bool stopping() const {
    std::lock_guard lock{shared_->mutex};
    return shared_->stopping;
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
    std::vector<std::shared_ptr<SessionBase>> out;
    std::lock_guard lock{shared_->mutex};
    if (stop) shared_->stopping = true;
    out.reserve(shared_->sessions.size());
    for (auto& [raw, weak] : shared_->sessions)
      if (auto s = weak.lock()) out.push_back(std::move(s));
    return out;
  }

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
    std::unordered_map<SessionBase*, std::weak_ptr<SessionBase>> sessions;
  };

  Hub hub_;
  std::string path_;
  ChannelOptions options_;
  std::shared_ptr<Shared> shared_;
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

/// A channel's state for transport T: the core plus T's options, shared with its connections.
template <class T>
class ChannelImpl final : public ChannelCore,
                          public Endpoint,
                          public std::enable_shared_from_this<ChannelImpl<T>> {
 public:
  ChannelImpl(Hub hub, std::string path, ChannelOptions options, typename T::options topts)
      : ChannelCore(std::move(hub), std::move(path), std::move(options)),
        transport_(validated(std::move(topts))),
        state_(static_cast<ChannelCore const&>(*this), transport_) {}

  /// A member channel of a multi-transport channel: shares `core`'s handlers and registry.
  ChannelImpl(ChannelCore const& core, typename T::options topts)
      : ChannelCore(core, share_t{}), transport_(validated(std::move(topts))),
        state_(static_cast<ChannelCore const&>(*this), transport_) {}

  typename T::options const& transport_options() const noexcept { return transport_; }

  /// The transport's per-channel state (T::channel_state), if it declares one.
  typename channel_state_of<T>::type& channel_state() noexcept { return state_; }

  template <class Stream>
  void accept_stream(Stream&& stream, Request&& req) {
    T::start(this->shared_from_this(), std::forward<Stream>(stream), std::move(req));
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
  std::shared_ptr<Held> answer(Request&& req, net::any_io_executor const& ex, Respond respond) override {
    if constexpr (requires { T::answers(req); })
      return T::answer(this->shared_from_this(), std::move(req), ex, std::move(respond));
    else return Endpoint::answer(std::move(req), ex, std::move(respond));
  }
  void shutdown() override { ChannelCore::shutdown(); }
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
