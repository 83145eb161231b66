#pragma once

// Polling: answering a request in place (short polls at once, long polls held as a Subscriber
// until the first event or the wait ends), and the one-request connection used for embedding.

#include <herald/detail/channel_core.hpp>
#include <herald/detail/connection.hpp>
#include <herald/detail/cors.hpp>
#include <herald/detail/poll_format.hpp>
#include <herald/detail/response.hpp>
#include <herald/transports/polling.hpp>

#include <boost/asio/bind_executor.hpp>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core/stream_traits.hpp>
#include <boost/beast/http/field.hpp>
#include <boost/beast/http/serializer.hpp>
#include <boost/beast/http/write.hpp>

#include <algorithm>
#include <array>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace herald::inline v0::detail {

using PollChannel = ChannelImpl<Polling>;

/// An admitted poll, ready to be answered.
struct PollPlan {
  TopicSet topics;
  /// The cursor: the answer holds events above it ("now" when the request named none).
  EventId since = 0;
  std::size_t limit = 0;
  /// PollingOptions::max_answer_bytes.
  std::size_t max_bytes = 0;
  /// Zero: short poll.
  std::chrono::milliseconds wait{0};
  unsigned version = 11;
  bool keep_alive = true;
  /// The CORS answer for the request's Origin (empty when it has none or it was refused).
  CorsGrant cors;
  std::string if_none_match;
};

/// What an answer holds: up to `limit` events, where to continue, and the flags.
struct PollResult {
  std::vector<EventPtr> events;
  EventId cursor = 0;
  bool reset = false;
  bool more = false;
};

/** Shape a batch read with limit + 1 (so that `more` is exact): at most `limit` events and,
    past the first, no more than `max_bytes` of envelopes (one event larger than that still goes
    alone, or its client could never pass it); `more` says something was left for the next
    poll. The cursor is the last event's id, or `since` when nothing is new (so the ETag of a
    quiet topic stays put whatever other topics publish), or the hub's cursor after a reset. */
inline PollResult shape(std::vector<EventPtr>&& events, bool reset, EventId reset_cursor,
                        EventId since, std::size_t limit, std::size_t max_bytes) {
  PollResult r;
  std::size_t n = 0;
  std::size_t bytes = 0;
  for (; n < events.size() && n < limit; ++n) {
    bytes += json_envelope(*events[n]).size() + 1;
    if (bytes > max_bytes && n > 0) break;
  }
  r.more = n < events.size();
  events.resize(n);
  r.events = std::move(events);
  r.reset = reset;
  if (!r.events.empty()) r.cursor = r.events.back()->id();
  else r.cursor = reset ? reset_cursor : since;
  return r;
}

/** The events above a poll's cursor, as its answer should hold them. Under drop_oldest and
    coalesce_latest a polling client's queue is what accumulated since its cursor: all of it
    is run through an Inbox with the channel's budgets and policy (counted in the channel's
    metrics), so a client that fell behind gets a gap notice and the newest events, or the
    newest of each topic, as a stream would. Under the other policies the answer pages through
    history (`limit`, `"more": true`): a poll has no queue to disconnect or reset. */
inline HubState::Batch read_backlog(PollChannel const& ch, TopicSet const& topics, EventId since, std::size_t limit) {
  auto const& limits = ch.queue_limits();
  if (limits.policy != OverflowPolicy::drop_oldest && limits.policy != OverflowPolicy::coalesce_latest)
    return ch.state().read(topics, since, limit + 1);
  auto b = ch.state().read(topics, since, 0);
  Inbox inbox{limits};
  Shed shed;
  for (auto const& ev : b.events)
    inbox.offer(ev, false, [](StoredEvent const& e) { return json_envelope(e).size(); }, shed);
  b.events.clear();
  inbox.take(b.events);
  ch.shed(shed);
  return b;
}

/// The methods a polling path serves, and the request headers it reads.
inline std::vector<std::string> const& poll_methods() {
  static std::vector<std::string> const m{"GET", "HEAD", "OPTIONS"};
  return m;
}
inline std::vector<std::string> const& poll_headers() {
  static std::vector<std::string> const h{"If-None-Match", "Last-Event-ID"};
  return h;
}

inline Response poll_error(PollChannel const& ch, boost::system::error_code ec, std::string_view detail,
                           unsigned version, bool keep_alive, CorsGrant const& cors) {
  auto res = error_response(ec, detail, version, keep_alive, ch.retry_after(ec));
  if (ec == error::method_not_allowed) res.set(http::field::allow, "GET, HEAD, OPTIONS");
  add_cors(res, cors, ch.options().cors, "ETag");
  return res;
}

/** The answer to a poll during a drain (drain_answer: 503, the client's delay, `cursor`, where
    it may resume), with the CORS headers of any answer. */
inline Response poll_drained(PollChannel const& ch, unsigned version, std::chrono::milliseconds delay,
                             EventId cursor, CorsGrant const& cors) {
  auto res = drain_answer(version, delay, cursor);
  add_cors(res, cors, ch.options().cors, "ETag");
  return res;
}

/** The answer to a poll. Short polls carry an ETag and may be cached privately if revalidated
    (so browsers send If-None-Match by themselves); long polls are never stored. The body keeps
    the events themselves (their shared envelopes are written from where the hub keeps them). */
inline Response poll_response(PollChannel const& ch, PollPlan const& plan, PollResult&& r, bool short_poll) {
  Response res{http::status::ok, plan.version};
  res.set(http::field::content_type, "application/json");
  add_cors(res, plan.cors, ch.options().cors, "ETag");
  res.keep_alive(plan.keep_alive);
  if (short_poll) {
    res.set(http::field::cache_control, "private, no-cache");
    auto tag = poll_etag(r.events, r.cursor, r.reset, r.more);
    bool const unchanged = !plan.if_none_match.empty() && etag_matches(plan.if_none_match, tag);
    res.set(http::field::etag, std::move(tag));
    if (unchanged) {
      res.result(http::status::not_modified);  // no body and no Content-Length
      return res;
    }
  } else {
    res.set(http::field::cache_control, "no-store");
  }
  res.body() = AnswerBody::value_type::spliced(poll_frame(r.cursor, r.reset, r.more), poll_frame_events_at,
                                               std::move(r.events));
  res.prepare_payload();
  return res;
}

/** A held poll: a Connection registered with the poll's cursor, so the hub replays anything
    published since the client's cursor and then queues live events; the first wake-up answers
    with what is queued. A long poll waits for that up to its wait. A short poll is held only
    while its replay is read from the hub's backplane, and is answered when that read completes.
    Everything runs on the connection's strand; the hub only queues and posts. It counts as one
    of the channel's connections while held, and calls no on_open/on_close (a poll is a request,
    not a connection). Every way it ends answers once: an event, the end of the wait, shutdown
    (Connection: close), abort or disconnect_all (the same), or the client going away (cancel:
    no answer). */
class PollExchange final : public Connection, public Held {
 public:
  PollExchange(std::shared_ptr<PollChannel> channel, net::any_io_executor ex, Respond respond, PollPlan plan,
               bool short_poll)
      : Connection(std::move(channel), ex, /*lingers=*/false),
        timer_(std::move(ex)),
        respond_(std::move(respond)),
        plan_(std::move(plan)),
        short_(short_poll) {}

  /** Register, subscribe and arm the wait. When the channel is full or stopping, answers 503 at
      once and returns false. On the strand. */
  bool start(Admission&& admission) {
    admission.topics = plan_.topics;
    admission.since = plan_.since;
    if (auto ec = adopt(std::move(admission))) {
      refused(ec);
      auto respond = std::move(respond_);
      respond_ = nullptr;
      finish(ec);
      respond(ec == error::draining
                  ? poll_drained(ch(), plan_.version, ch().retry_after(ec), plan_.since, plan_.cors)
                  : poll_error(ch(), ec, {}, plan_.version, plan_.keep_alive, plan_.cors));
      return false;
    }
    // Anything above the cursor published since the caller's read is replayed into the inbox
    // under the hub's lock, so there is no gap between that read and this registration. A
    // replay from the backplane is one answer: at most limit + 1 events (so `more` is exact).
    open(/*announce=*/false, plan_.limit + 1);
    if (short_) {
      // Served from memory after all (the node caught up meanwhile): answer now.
      if (!deferred()) {
        post_to(strand(), [self = self()] { self->expire(true); });
        return true;
      }
      // Nothing else holds a short poll while its replay is read (its connection keeps it
      // weakly): the timer does, and bounds the wait should the backplane break its contract.
      timer_.expires_after(replay_bound);
      timer_.async_wait([self = self()](boost::system::error_code ec) {
        if (!ec) self->on_replayed(error::backplane_unavailable);
      });
      return true;
    }
    timer_.expires_after(plan_.wait);
    timer_.async_wait([self = self()](boost::system::error_code ec) {
      if (!ec) self->expire(true);
    });
    return true;
  }

  /// The client went away: no answer, everything released now.
  void cancel() override {
    respond_ = nullptr;
    finish(net::error::operation_aborted);
  }

 private:
  std::shared_ptr<PollExchange> self() {
    return std::static_pointer_cast<PollExchange>(Subscriber::shared_from_this());
  }

  PollChannel& ch() const noexcept { return static_cast<PollChannel&>(channel()); }

  void drain() override {
    if (!respond_) return;
    batch_.clear();
    if (take(batch_)) answer_batch(true);
  }

  // A burst beyond the queue bound before the wake-up ran: answer from history instead.
  void on_overflow() override {
    post_to(strand(), [self = self()] {
      if (self->respond_) self->from_history(true);
    });
  }

  std::size_t wire_size(StoredEvent const& ev) const override { return json_envelope(ev).size(); }

  void on_replayed(boost::system::error_code ec) override {
    post_to(strand(), [self = self(), ec] {
      if (!self->respond_) return;
      if (ec) {
        auto const& p = self->plan_;
        return self->deliver(
            poll_error(self->ch(), ec, "history unavailable; poll again", p.version, p.keep_alive, p.cors), 0);
      }
      if (self->short_) self->expire(true);
    });
  }

  /** Shutdown: answered now with what is queued, and Connection: close. A drain: 503 with the
      client's delay and cursor; anything queued is left to its next poll (from the cursor it
      sent, so nothing is skipped). */
  void goodbye(Flush) override {
    if (reason() != error::draining) return expire(false);
    batch_.clear();
    bool const queued = take(batch_);
    batch_.clear();
    auto const cursor = queued ? plan_.since : std::max(plan_.since, drain_cursor());
    deliver(poll_drained(ch(), plan_.version, drain_delay(), cursor, plan_.cors), 0);
  }

  /// Aborted (or disconnect_all) while held: answered like a shutdown.
  void shut() override {
    timer_.cancel();
    expire(false);
  }

  /// The wait ended (or the channel is ending): answer with what is queued, maybe nothing.
  void expire(bool keep_alive) {
    if (!respond_) return;
    if (!keep_alive) plan_.keep_alive = false;
    batch_.clear();
    take(batch_);
    answer_batch(keep_alive);
  }

  void answer_batch(bool keep_alive) {
    auto const notice = [](EventPtr const& ev) { return ev->event().event_kind == EventKind::reset; };
    bool const reset = std::any_of(batch_.begin(), batch_.end(), notice);
    // A reset notice means the hub could not replay from the cursor: let read() say what is
    // left (which also recovers from an OverflowPolicy::reset), unless the replay came from the
    // backplane, which already said it: the answer is the batch, flagged.
    if (reset && !deferred()) return from_history(keep_alive);
    if (reset) std::erase_if(batch_, notice);
    answer(shape(std::move(batch_), reset, hub().last(), plan_.since, plan_.limit, plan_.max_bytes));
  }

  void from_history(bool keep_alive) {
    if (!keep_alive) plan_.keep_alive = false;
    auto b = read_backlog(ch(), plan_.topics, plan_.since, plan_.limit);
    answer(shape(std::move(b.events), b.reset, b.cursor, plan_.since, plan_.limit, plan_.max_bytes));
  }

  void answer(PollResult&& r) {
    auto const events = r.events.size();
    deliver(poll_response(ch(), plan_, std::move(r), short_), events);
  }

  void deliver(Response&& res, std::size_t events) {
    auto respond = std::move(respond_);
    respond_ = nullptr;
    finish({});
    if (events != 0) delivered(events);
    wrote(res.body().size());
    batch_.clear();
    respond(std::move(res));
  }

  net::steady_timer timer_;
  Respond respond_;  // empty once answered or cancelled
  PollPlan plan_;
  static constexpr std::chrono::seconds replay_bound{30};

  std::vector<EventPtr> batch_;
  bool const short_;
};

/** Answer a poll: at once when it can be (errors, preflight, short polls, long polls that find
    events), else hold it. See Endpoint::answer for the contract. */
inline std::shared_ptr<Held> answer_poll(std::shared_ptr<PollChannel> ch, Request&& req,
                                         net::any_io_executor const& ex, Respond& respond,
                                         net::ip::tcp::endpoint remote) {
  auto const& topts = ch->transport_options();
  unsigned const version = req.version();
  bool const keep_alive = req.keep_alive();
  auto cors = ch->cors(req);
  auto fail = [&](boost::system::error_code ec, std::string_view detail) -> std::shared_ptr<Held> {
    ch->refused(ec, 0, req.target());
    respond(poll_error(*ch, ec, detail, version, keep_alive, cors));
    return nullptr;
  };

  auto const method = req.method();
  if (method == http::verb::options) {
    respond(preflight(req, cors, ch->options().cors, poll_methods(), poll_headers()));
    return nullptr;
  }
  if (method != http::verb::get && method != http::verb::head)
    return fail(error::method_not_allowed, "polling answers GET, HEAD and OPTIONS");

  Admission admission;
  std::string detail;
  if (auto ec = ch->admit(req, admission, detail, true, std::move(remote))) {
    if (ec != error::draining) return fail(ec, detail);
    // A new poll during a drain: told when to come back, and from where (its own cursor).
    ch->refused(ec, 0, req.target());
    respond(poll_drained(*ch, version, ch->retry_after(ec), admission.since.value_or(ch->state().last()), cors));
    return nullptr;
  }
  PollParams params;
  if (auto ec = parse_poll_params(admission.query, params, detail)) return fail(ec, detail);

  PollPlan plan;
  plan.topics = std::move(admission.topics);
  plan.limit = std::min(params.limit.value_or(topts.default_limit), topts.max_limit);
  plan.max_bytes = topts.max_answer_bytes;
  plan.wait = std::min(params.wait.value_or(std::chrono::milliseconds(0)), topts.max_wait);
  // A poll is not held past its authorization: the next one meets the authorize hook again.
  if (admission.expires)
    plan.wait = std::min(plan.wait, std::chrono::ceil<std::chrono::milliseconds>(*admission.expires -
                                                                                std::chrono::system_clock::now()));
  plan.version = version;
  plan.keep_alive = keep_alive;
  plan.cors = std::move(cors);
  // HEAD is never held: it asks what a GET would answer now.
  bool const hold = method == http::verb::get && plan.wait.count() > 0;
  if (!hold) plan.if_none_match = req[http::field::if_none_match];

  auto& hub = ch->state();
  if (!admission.since) {
    // No cursor: start from now. A short poll learns the cursor; a long poll waits for news.
    plan.since = hub.last();
    if (!hold) {
      respond(poll_response(*ch, plan, PollResult{{}, plan.since, false, false}, true));
      return nullptr;
    }
  } else {
    plan.since = *admission.since;
    // A cursor this node's memory cannot serve (with a backplane) is answered from the
    // backplane's history, by a held exchange, short poll or long.
    if (hub.covers(plan.topics, plan.since)) {
      auto b = read_backlog(*ch, plan.topics, plan.since, plan.limit);
      if (!b.events.empty() || b.reset || !hold) {
        auto r = shape(std::move(b.events), b.reset, b.cursor, plan.since, plan.limit, plan.max_bytes);
        if (!r.events.empty()) ch->delivered(r.events.size());
        auto res = poll_response(*ch, plan, std::move(r), !hold);
        ch->counters().add(ch->counters().written_bytes, res.body().size());
        respond(std::move(res));
        return nullptr;
      }
    }
  }
  auto held = std::make_shared<PollExchange>(std::move(ch), ex, std::move(respond), std::move(plan), !hold);
  if (!held->start(std::move(admission))) return nullptr;
  return held;
}

/** A connection handed over with Channel::accept(): answer its request, then close. Closing
    (rather than serving more requests) is deliberate: the connection came from the
    application's server, and a browser may send requests for the application's other paths on
    it next. While a poll is held, a read is kept outstanding so a client that goes away is
    noticed at once; bytes it sends meanwhile are dropped (the connection closes anyway). */
template <class Stream>
class PollConnection : public std::enable_shared_from_this<PollConnection<Stream>> {
 public:
  PollConnection(std::shared_ptr<PollChannel> channel, Stream&& stream)
      : channel_(std::move(channel)), stream_(std::move(stream)), strand_(serialized(stream_.get_executor())) {}

  void start(Request&& req) {
    net::dispatch(strand_, [self = this->shared_from_this(), req = std::move(req)]() mutable {
      self->run(std::move(req));
    });
  }

 private:
  void run(Request&& req) {
    // A request timeout the application set must not cut a held poll: the wait bounds it.
    if constexpr (requires { beast::get_lowest_layer(stream_).expires_never(); })
      beast::get_lowest_layer(stream_).expires_never();
    head_ = req.method() == http::verb::head;
    auto held = Polling::answer(
        channel_, std::move(req), strand_,
        [self = this->shared_from_this()](Response&& res) { self->write(std::move(res)); }, remote_of(stream_));
    if (answered_) return;
    held_ = std::move(held);
    watch();
  }

  void write(Response&& res) {
    answered_ = true;
    held_.reset();
    res_ = std::move(res);
    res_.keep_alive(false);
    serializer_.emplace(res_);
    auto done = net::bind_executor(strand_, [self = this->shared_from_this()](boost::system::error_code, std::size_t) {
      close_stream(self->stream_);
    });
    async_write_answer(stream_, *serializer_, gather_, head_, std::move(done));
  }

  void watch() {
    stream_.async_read_some(
        net::buffer(discard_),
        net::bind_executor(strand_, [self = this->shared_from_this()](boost::system::error_code ec, std::size_t) {
          if (self->answered_) return;
          if (ec) {
            if (auto held = std::exchange(self->held_, {}).lock()) held->cancel();
            close_stream(self->stream_);
            return;
          }
          self->watch();
        }));
  }

  std::shared_ptr<PollChannel> channel_;
  Stream stream_;
  net::any_io_executor strand_;
  std::weak_ptr<Held> held_;  // weak: see HttpSession::held_
  Response res_;
  std::optional<http::response_serializer<AnswerBody>> serializer_;
  std::vector<net::const_buffer> gather_;
  std::array<char, 512> discard_{};
  bool head_ = false;
  bool answered_ = false;
};

}  // namespace herald::detail

namespace herald::inline v0 {


inline void Polling::validate(PollingOptions const& o) {
  if (o.max_wait.count() < 0)
    throw std::invalid_argument("herald: PollingOptions::max_wait must not be negative");
  if (o.max_wait > std::chrono::seconds(detail::max_wait_parameter_seconds))
    throw std::invalid_argument("herald: PollingOptions::max_wait must be at most an hour");
  if (o.default_limit == 0 || o.max_limit == 0)
    throw std::invalid_argument("herald: PollingOptions::default_limit and max_limit must be positive");
  if (o.default_limit > o.max_limit)
    throw std::invalid_argument("herald: PollingOptions::default_limit must not exceed max_limit");
  if (o.max_limit > detail::max_limit_parameter)
    throw std::invalid_argument("herald: PollingOptions::max_limit is too large");
  if (o.max_answer_bytes == 0)
    throw std::invalid_argument("herald: PollingOptions::max_answer_bytes must be positive");
}

inline std::shared_ptr<Held> Polling::answer(std::shared_ptr<ChannelContext<Polling>> channel,
                                                     Request&& req, net::any_io_executor const& ex,
                                                     Respond respond, net::ip::tcp::endpoint remote) {
  return detail::answer_poll(std::move(channel), std::move(req), ex, respond, std::move(remote));
}

template <class Stream>
void Polling::start(std::shared_ptr<ChannelContext<Polling>> channel, Stream&& stream, Request&& req) {
  std::make_shared<detail::PollConnection<std::decay_t<Stream>>>(std::move(channel), std::move(stream))
      ->start(std::move(req));
}

}  // namespace herald
