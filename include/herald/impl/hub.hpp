#pragma once

#include <herald/backplane.hpp>
#include <herald/detail/history_store.hpp>
#include <herald/detail/id_store.hpp>
#include <herald/detail/stored_event.hpp>
#include <herald/detail/subscriber.hpp>
#include <herald/detail/topic.hpp>
#include <herald/detail/topic_index.hpp>
#include <herald/error.hpp>

#include <boost/asio/append.hpp>
#include <boost/asio/post.hpp>
#include <boost/system/system_error.hpp>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <exception>
#include <mutex>
#include <stdexcept>
#include <system_error>
#include <unordered_map>

namespace herald::inline v0 {
namespace detail {

/** How an automatic payload travels: JSON when it is a JSON text that can be spliced into an
    envelope as it is, otherwise text. nlohmann's parser reads a NUL byte as the end of input
    and skips a leading byte order mark, so it accepts `{} \0junk` and a BOM before `{}`;
    spliced verbatim, either would break every JSON envelope that carries it (found by
    tests/fuzz/fuzz_envelope.cpp). */
inline PayloadKind payload_kind(std::string_view data) {
  if (data.find('\0') != std::string_view::npos || data.starts_with("\xEF\xBB\xBF")) return PayloadKind::text;
  return nlohmann::json::accept(data) ? PayloadKind::json : PayloadKind::text;
}

/** The shared state behind a Hub: an id source (IdStore, or the backplane), a history store
    and the local topic index, put together under one mutex.

    The mutex orders everything: events are numbered (without a backplane) and queued to
    subscribers under it, so every connection sees its topics in id order and a resume
    (replay + registration) is atomic with respect to publishing. Nothing under the lock
    blocks: queues are bounded, wake-ups are posts, and the id file is written outside it
    (IdStore reserves the next block ahead, see publish_here).

    With a backplane, events enter only through ingress() (BackplaneSink), already numbered
    and in id order, from every node; the history store is then this node's memory of the
    shared history, complete above `coverage_`. A cursor it cannot serve is read from the
    backplane: the subscriber is registered at once but held (TopicIndex::held), the read is
    queued as its replay when it completes, and the live events are released after what the
    replay carried — still no gap and no duplicate. */
class HubState final : public BackplaneSink, public std::enable_shared_from_this<HubState> {
 public:
  struct Replay {
    /// The cursor could not be served without a gap; a reset notice was queued first.
    bool reset = false;
    /** The replay is read from the backplane: it is queued later, and the subscriber's
        on_replayed() says when (or that it failed). */
    bool deferred = false;
    /// Ids up to here may be missing for the requested topics.
    EventId floor = 0;
    std::size_t replayed = 0;
    /** The last id handed out when the subscription took effect: events above it are delivered
        live, none at or below it except the replay (WebSocket acks carry it as the cursor). */
    EventId last = 0;
  };

  struct Batch {
    std::vector<EventPtr> events;
    bool reset = false;
    EventId floor = 0;
    /// The id to resume from after this batch.
    EventId cursor = 0;
  };

  HubState(net::any_io_executor ex, HubOptions options)
      : ex_(std::move(ex)),
        options_(std::move(options)),
        ids_(options_.backplane ? std::string() : options_.id_file, options_.first_id, options_.id_block,
             options_.id_writer),
        history_(options_.history_events, options_.history_age, options_.max_history_bytes),
        backplane_(options_.backplane) {
    if (options_.history_age < std::chrono::steady_clock::duration::zero())
      throw std::invalid_argument("herald: HubOptions::history_age must not be negative");
    if (options_.max_topics == 0 || options_.max_history_bytes == 0)
      throw std::invalid_argument("herald: HubOptions::max_topics and max_history_bytes must be positive");
    if (backplane_ && !options_.id_file.empty())
      throw std::invalid_argument("herald: HubOptions::id_file and backplane exclude each other");
    // Before the backplane says where its stream starts, nothing is known to be in memory.
    if (backplane_) coverage_ = TopicIndex::held;
    else last_ = ids_.last();
  }

  ~HubState() override {
    if (backplane_) backplane_->stop();
  }

  HubState(HubState const&) = delete;
  HubState& operator=(HubState const&) = delete;

  /// Connect the backplane, once the state is owned by a shared_ptr.
  void start() {
    if (backplane_)
      backplane_->start(std::weak_ptr<BackplaneSink>(shared_from_this()), options_.history_events,
                        options_.history_age);
  }

  net::any_io_executor const& executor() const noexcept { return ex_; }
  bool has_backplane() const noexcept { return backplane_ != nullptr; }

  std::chrono::steady_clock::time_point now() const {
    return options_.clock ? options_.clock() : std::chrono::steady_clock::now();
  }

  /// Why `topic` and `type` cannot be published, or empty.
  static std::string_view invalid_publish(std::string_view topic, std::string_view type) {
    if (!valid_topic(topic)) return "invalid topic name for publish";
    for (unsigned char c : type)
      if (c < 0x20 || c == 0x7f) return "event type must not contain control characters";
    if (!valid_utf8(type)) return "event type must be UTF-8";
    return {};
  }

  /** Hub::publish's work: the id, or 0 with `ec` set (bad_topic, bad_request, too_many_topics,
      message_too_big). With a backplane: 0, and the publish goes on in the background. */
  EventId publish(std::string_view topic, std::string_view data, PublishOptions const& po,
                  boost::system::error_code& ec) {
    ec = {};
    if (auto problem = invalid_publish(topic, po.type); !problem.empty()) {
      ec = valid_topic(topic) ? error::bad_request : error::bad_topic;
      return 0;
    }
    Event ev;
    ev.topic = topic;
    ev.type = po.type;
    ev.data = data;
    ev.kind = po.kind;
    if (!backplane_) return publish_here(std::move(ev), ec);
    if ((ec = fits(ev))) return 0;
    forward(std::move(ev), Backplane::publish_handler(
                               [w = weak_from_this()](boost::system::error_code ec, EventId) {
                                 if (auto self = w.lock(); self && ec)
                                   self->log(LogLevel::warning, "hub", 0, ec, "publish failed");
                               }));
    return 0;
  }

  void async_publish(Event&& ev, Backplane::publish_handler handler) {
    boost::system::error_code ec;
    EventId id = 0;
    if (auto problem = invalid_publish(ev.topic, ev.type); !problem.empty()) {
      ec = valid_topic(ev.topic) ? error::bad_request : error::bad_topic;
    } else if (!backplane_) {
      id = publish_here(std::move(ev), ec);
    } else if (!(ec = fits(ev))) {
      return forward(std::move(ev), std::move(handler));
    }
    net::post(ex_, net::append(std::move(handler), ec, id));
  }

  /** Register `sub` for `set` and, when `since` is given, queue every retained event above it
      first, all under the lock, so the seam between replay and live has no gap and no
      duplicate. A cursor that cannot be served queues a reset notice before the replay. With a
      backplane, a cursor this node's memory cannot serve is read from the backplane's history
      (at most `limit` events per topic; 0: all, which every subscription that stays open must
      ask for) and the replay is deferred. */
  Replay subscribe(SubscriberPtr const& sub, TopicSet const& set, std::optional<EventId> since,
                   std::size_t limit = 0) {
    std::unique_lock lock{mutex_};
    Replay r;
    r.last = last_;
    if (since) {
      auto const at = now();
      if (backplane_ && !covers(set, *since, at)) {
        index_.add(sub, set, TopicIndex::held);
        std::uint64_t const ticket = ++tickets_;
        pending_.push_back(Pending{ticket, sub.get(), set});
        lock.unlock();
        r.deferred = true;
        read_backplane(sub, set, *since, limit, ticket);
        return r;
      }
      r.floor = std::max(floor(), history_.floor(set, at));
      bool const future = *since > last_;  // a cursor from another timeline
      auto events = history_.collect(set, future ? 0 : *since, 0);
      if (*since < r.floor || future) {
        r.reset = true;
        expired(*sub, set, future ? std::nullopt : since, events, last_, std::min(r.floor, last_));
      }
      for (auto const& ev : events) sub->offer(ev, true);
      r.replayed = events.size();
    }
    index_.add(sub, set, 0);
    return r;
  }

  void unsubscribe(Subscriber const* sub, TopicSet const& set) {
    std::lock_guard lock{mutex_};
    index_.remove(sub, set);
    // A topic nobody follows any more and with nothing retained is forgotten now.
    for (auto const& t : set.topics)
      if (!index_.contains(t)) history_.forget_if_empty(t);
    history_.sweep(now(), keep());
    // A replay still being read for these topics is dropped when it arrives.
    std::erase_if(pending_, [&](Pending const& p) {
      return p.sub == sub &&
             (set.all || p.set.all ||
              std::any_of(set.topics.begin(), set.topics.end(), [&](auto const& t) { return p.set.contains(t); }));
    });
  }

  /** Retained events of `set` above `since`, at most `limit` (0: all), without subscribing.
      Only this process's memory: with a backplane, check covers() first. */
  Batch read(TopicSet const& set, EventId since, std::size_t limit) {
    std::lock_guard lock{mutex_};
    Batch b;
    auto const at = now();
    b.floor = std::max(floor(), history_.floor(set, at));
    EventId from = since;
    if (since < b.floor || since > last_) {
      b.reset = true;
      from = since > last_ ? 0 : since;
    }
    b.events = history_.collect(set, from, limit);
    // Without a limit the client has seen everything up to `last_`; with one, up to the batch.
    b.cursor = (limit != 0 && b.events.size() == limit) ? b.events.back()->id() : last_;
    return b;
  }

  /// Whether read() can serve `since` for `set` from this process's memory (always, without
  /// a backplane: it then decides about resets itself).
  bool covers(TopicSet const& set, EventId since) {
    if (!backplane_) return true;
    std::lock_guard lock{mutex_};
    return covers(set, since, now());
  }

  std::vector<Event> history(std::string_view topic, EventId since) {
    std::lock_guard lock{mutex_};
    return history_.events(topic, since, now());
  }

  /// The last id handed out (with a backplane: taken in).
  EventId last() const {
    std::lock_guard lock{mutex_};
    return last_;
  }

  HubStats stats() {
    HubStats s;
    s.connections = connections_.load(std::memory_order_relaxed);
    s.connections_total = connections_total_.load(std::memory_order_relaxed);
    s.events_published = published_.load(std::memory_order_relaxed);
    s.deliveries = deliveries_.load(std::memory_order_relaxed);
    s.slow_consumer_disconnects = slow_.load(std::memory_order_relaxed);
    s.reset_reasons.cursor_expired = resets_expired_.load(std::memory_order_relaxed);
    s.reset_reasons.slow_consumer = resets_slow_.load(std::memory_order_relaxed);
    s.reset_reasons.backplane_gap = resets_gap_.load(std::memory_order_relaxed);
    s.resets = s.reset_reasons.cursor_expired + s.reset_reasons.slow_consumer + s.reset_reasons.backplane_gap;
    s.discontinuities = discontinuities_.load(std::memory_order_relaxed);
    std::lock_guard lock{mutex_};
    // What has aged out is let go before it is counted.
    history_.sweep(now(), keep());
    s.topics = history_.topics() + index_.topics([&](std::string_view t) { return history_.contains(t); });
    s.history_bytes = history_.bytes();
    s.last_id = last_;
    return s;
  }

  std::uint64_t next_connection_id() { return next_connection_.fetch_add(1, std::memory_order_relaxed) + 1; }
  void connection_opened() {
    connections_.fetch_add(1, std::memory_order_relaxed);
    connections_total_.fetch_add(1, std::memory_order_relaxed);
  }
  void connection_closed() { connections_.fetch_sub(1, std::memory_order_relaxed); }
  void delivered(std::size_t n) { deliveries_.fetch_add(n, std::memory_order_relaxed); }
  void slow_consumer() { slow_.fetch_add(1, std::memory_order_relaxed); }

  bool logs(LogLevel level) const noexcept { return options_.log && level >= options_.log_level; }

  /// Calls the log hook; a throwing hook is ignored rather than unwinding into I/O handlers.
  void log(LogLevel level, std::string_view transport, std::uint64_t connection,
           boost::system::error_code ec, std::string_view message) const noexcept {
    if (!logs(level)) return;
    try {
      options_.log(LogRecord{level, transport, connection, ec, message});
    } catch (...) {
    }
  }

  // BackplaneSink ----------------------------------------------------------------------------

  void ingress(std::vector<Event>&& events) override {
    auto const at = now();
    std::vector<std::shared_ptr<StoredEvent>> stored;
    stored.reserve(events.size());
    for (auto& ev : events) stored.push_back(std::make_shared<StoredEvent>(std::move(ev), at));
    std::lock_guard lock{mutex_};
    history_.sweep(at, keep());
    // The hub's budgets hold for events from other nodes too: one that does not fit this
    // node's memory is still delivered to the connections here, but not retained (a resume
    // below it reads the backplane's history, or gets the reset notice).
    for (auto const& ev : stored)
      if (ev->id() > last_) take(ev, at, static_cast<bool>(fits_locked(ev->event())));
  }

  void discontinuity(EventId position, bool initial) override {
    std::lock_guard lock{mutex_};
    coverage_ = initial ? position : std::max(coverage_, position);
    last_ = std::max(last_, position);
    if (initial) return;
    discontinuities_.fetch_add(1, std::memory_order_relaxed);
    notify_gap();
  }

 private:
  struct Pending {
    std::uint64_t ticket;
    Subscriber const* sub;
    TopicSet set;
  };

  /// Every id at or below this one may be missing from this process's memory.
  EventId floor() const noexcept { return backplane_ ? coverage_ : ids_.floor(); }

  bool covers(TopicSet const& set, EventId since, std::chrono::steady_clock::time_point at) {
    return since <= last_ && since >= coverage_ && since >= history_.floor(set, at);
  }

  /// What tells the history store that a topic must be remembered: a local subscriber.
  struct Keep {
    TopicIndex const* index;
    bool operator()(std::string_view topic) const { return index->contains(topic); }
  };
  Keep keep() const { return Keep{&index_}; }

  /** Whether `ev` fits the hub's budgets: a topic beyond max_topics (after letting go of what
      has aged out) or an event larger than the whole history budget does not. Under the lock. */
  boost::system::error_code fits_locked(Event const& ev) {
    if (options_.history_events == 0) return {};
    if (HistoryStore::event_bytes(ev) > options_.max_history_bytes) return error::message_too_big;
    if (history_.contains(ev.topic) || history_.topics() < options_.max_topics) return {};
    history_.sweep(now(), keep());
    if (history_.topics() < options_.max_topics) return {};
    return error::too_many_topics;
  }

  boost::system::error_code fits(Event const& ev) {
    std::lock_guard lock{mutex_};
    return fits_locked(ev);
  }

  EventId publish_here(Event&& ev, boost::system::error_code& ec) {
    if (ev.kind == PayloadKind::automatic) ev.kind = payload_kind(ev.data);
    auto const at = now();
    auto stored = std::make_shared<StoredEvent>(std::move(ev), at);
    std::unique_lock lock{mutex_};
    for (;;) {
      // Checked under the same lock as the append: two publishes cannot both take the last
      // slot (and again after waiting for ids, which let other publishes in).
      if ((ec = fits_locked(stored->event()))) return 0;
      auto const draw = ids_.next();
      if (draw.id != 0) {
        stored->event_.id = draw.id;
        take(stored, at);
        history_.sweep(at, keep());
        lock.unlock();
        // This event is out; its own publish pays for reserving the next block, and a failure
        // is only logged (the write is asked for again before the reserved ids run out).
        if (draw.write != 0) write_ids(draw.write, false);
        return stored->id();
      }
      if (draw.write != 0) {
        lock.unlock();
        write_ids(draw.write, true);  // no id is left: this publish cannot go on without it
        lock.lock();
      } else {
        ids_written_.wait(lock);  // releases the lock: another publish is writing the next block
      }
    }
  }

  /** Write an id mark outside the hub's lock (IdStore::next asked this caller to), record the
      outcome under it and wake publishers waiting for ids. Throws the writer's error if
      `rethrow`. */
  void write_ids(EventId mark, bool rethrow) {
    std::exception_ptr failure;
    // The writer reports errno values (std::generic_category); the log hook takes Boost's.
    boost::system::error_code code{EIO, boost::system::generic_category()};
    try {
      ids_.write(mark);
    } catch (std::system_error const& e) {
      failure = std::current_exception();
      code.assign(e.code().value(), e.code().category() == std::generic_category()
                                        ? boost::system::generic_category()
                                        : boost::system::system_category());
    } catch (...) {
      failure = std::current_exception();
    }
    {
      std::lock_guard lock{mutex_};
      ids_.written(mark, !failure);
    }
    ids_written_.notify_all();
    if (!failure) return;
    if (rethrow) std::rethrow_exception(failure);
    log(LogLevel::error, "hub", 0, code, "cannot reserve ids ahead in the id file");
  }

  /** Retain (unless `skip_history`: the event did not fit) and fan out an event that has its
      id (above last_). Under the lock. */
  void take(EventPtr const& ev, std::chrono::steady_clock::time_point at, bool skip_history = false) {
    last_ = ev->id();
    if (skip_history) history_.not_retained(ev->event().topic, ev->id());
    else history_.append(ev, at, keep());
    if (auto const n = index_.fan_out(ev)) resets_slow_.fetch_add(n, std::memory_order_relaxed);
    published_.fetch_add(1, std::memory_order_relaxed);
  }

  void forward(Event&& ev, Backplane::publish_handler handler) {
    if (ev.kind == PayloadKind::automatic) ev.kind = payload_kind(ev.data);
    EventId known = 0;
    {
      std::lock_guard lock{mutex_};
      known = last_;
    }
    if (options_.first_id > known + 1) known = options_.first_id - 1;
    backplane_->async_publish(std::move(ev), known, std::move(handler));
  }

  void read_backplane(SubscriberPtr const& sub, TopicSet const& set, EventId since, std::size_t limit,
                      std::uint64_t ticket) {
    backplane_->async_history(
        set.all ? std::vector<std::string>{} : set.topics, since, limit,
        Backplane::history_handler([w = weak_from_this(), sub = std::weak_ptr<Subscriber>(sub), set, since,
                                    ticket](boost::system::error_code ec, BackplaneHistory h) mutable {
          auto self = w.lock();
          auto s = sub.lock();
          if (self && s) self->replayed(s, set, since, ticket, ec, std::move(h));
        }));
  }

  /** A deferred replay arrived: queue it (after a reset notice when the backplane could not
      serve the cursor either), add what this node took in meanwhile, and release the live
      events that follow. */
  void replayed(SubscriberPtr const& sub, TopicSet const& set, EventId since, std::uint64_t ticket,
                boost::system::error_code ec, BackplaneHistory&& h) {
    std::unique_lock lock{mutex_};
    auto it = std::find_if(pending_.begin(), pending_.end(), [&](Pending const& p) { return p.ticket == ticket; });
    if (it == pending_.end()) return;  // unsubscribed meanwhile
    pending_.erase(it);
    // Read before this node knew where its stream starts: what follows the read may never
    // reach this node, so the client must come back.
    if (!ec && coverage_ == TopicIndex::held) ec = error::backplane_unavailable;
    if (ec) {
      lock.unlock();
      log(LogLevel::warning, "hub", sub->connection_id(), ec, "history unavailable");
      sub->on_replayed(ec);
      return;
    }
    auto const at = now();
    bool const future = since > h.last;
    std::vector<EventPtr> replay;
    replay.reserve(h.events.size());
    for (auto& e : h.events) {
      if (e.id > h.complete_to) break;
      if (!future && e.id <= since) continue;
      if (auto mine = history_.find(e.topic, e.id)) replay.push_back(std::move(mine));
      else replay.push_back(std::make_shared<StoredEvent const>(std::move(e), at));
    }
    bool const cut = h.complete_to < h.last;
    EventId after = h.complete_to;
    EventId gap = h.floor;
    if (!cut && last_ > h.complete_to) {
      // What this node took in while the read was under way comes from its own memory.
      if (EventId const mine = std::max(coverage_, history_.floor(set, at)); mine > h.complete_to)
        gap = std::max(gap, mine);
      auto mine = history_.collect(set, h.complete_to, 0);
      replay.insert(replay.end(), mine.begin(), mine.end());
      after = last_;
    }
    if (future || since < gap)
      expired(*sub, set, future ? std::nullopt : std::optional(since), replay, after,
              std::min(gap, std::max(h.last, last_)));
    for (auto const& ev : replay) sub->offer(ev, true);
    // A read cut by its limit is a one-shot answer (a poll): nothing live may follow it.
    index_.release(sub.get(), set, cut ? TopicIndex::held : after);
    lock.unlock();
    sub->on_replayed({});
  }

  /** Queue the reset notice for a cursor that cannot be served: events up to `cursor` may be
      missing. Its id is the client's position after it: its own cursor (`since`) when history
      ran out, so a client that drops right after the notice is told again rather than skipping
      ahead; and, for a cursor from another timeline (no `since`), just below the first event
      of `replay` (or `last` without one), so ids keep increasing on the wire. */
  void expired(Subscriber& sub, TopicSet const& set, std::optional<EventId> since,
               std::vector<EventPtr> const& replay, EventId last, EventId cursor) {
    EventId const id = since ? *since : replay.empty() ? last : replay.front()->id() - 1;
    sub.offer(make_reset_notice(set.topics.size() == 1 ? set.topics.front() : std::string(), id, cursor,
                                "cursor_expired"),
              true);
    resets_expired_.fetch_add(1, std::memory_order_relaxed);
  }

  /** Tell every live subscription that events up to last_ may be missing: one notice for the
      whole connection, or, on a connection with a replay still being read (which must not be
      overtaken by a notice), one per topic that is live. Under the lock. */
  void notify_gap() {
    struct Target {
      SubscriberPtr sub;
      std::vector<std::string_view> live;
      bool held = false;
    };
    std::unordered_map<Subscriber const*, Target> targets;
    index_.for_each([&](SubscriberPtr const& s, std::string_view topic, bool held) {
      auto& t = targets[s.get()];
      t.sub = s;
      if (held) t.held = true;
      else t.live.push_back(topic);
    });
    EventPtr const whole = make_reset_notice(std::string(), last_, last_, "backplane_gap");
    for (auto& [raw, t] : targets) {
      if (!t.held) {
        t.sub->offer(whole, true);
        resets_gap_.fetch_add(1, std::memory_order_relaxed);
        continue;
      }
      for (auto topic : t.live) {
        t.sub->offer(make_reset_notice(std::string(topic), last_, last_, "backplane_gap"), true);
        resets_gap_.fetch_add(1, std::memory_order_relaxed);
      }
    }
  }

  net::any_io_executor ex_;
  HubOptions const options_;
  mutable std::mutex mutex_;
  /// Publishers that found no reserved id wait here (with mutex_) for the write in flight.
  std::condition_variable ids_written_;
  IdStore ids_;
  HistoryStore history_;
  TopicIndex index_;
  std::shared_ptr<Backplane> const backplane_;
  /// The last id handed out or taken in.
  EventId last_ = 0;
  /// With a backplane: this process's memory holds every event above this id (up to last_).
  EventId coverage_ = 0;
  std::vector<Pending> pending_;
  std::uint64_t tickets_ = 0;
  std::atomic<std::uint64_t> next_connection_{0};
  std::atomic<std::uint64_t> connections_{0};
  std::atomic<std::uint64_t> connections_total_{0};
  std::atomic<std::uint64_t> published_{0};
  std::atomic<std::uint64_t> deliveries_{0};
  std::atomic<std::uint64_t> slow_{0};
  std::atomic<std::uint64_t> resets_expired_{0};
  std::atomic<std::uint64_t> resets_slow_{0};
  std::atomic<std::uint64_t> resets_gap_{0};
  std::atomic<std::uint64_t> discontinuities_{0};
};

}  // namespace detail

inline Hub::Hub(executor_type ex, HubOptions options)
    : state_(std::make_shared<detail::HubState>(std::move(ex), std::move(options))) {
  state_->start();
}

inline void Hub::start_publish(std::shared_ptr<detail::HubState> const& state, Event&& event,
                               publish_handler handler) {
  state->async_publish(std::move(event), std::move(handler));
}

inline EventId Hub::publish(std::string_view topic, std::string_view data, PublishOptions options) {
  boost::system::error_code ec;
  EventId const id = state_->publish(topic, data, options, ec);
  if (ec == error::bad_topic || ec == error::bad_request)
    throw std::invalid_argument("herald: " + std::string(detail::HubState::invalid_publish(topic, options.type)));
  if (ec) throw boost::system::system_error(ec, "herald: publish");
  return id;
}

inline EventId Hub::publish(std::string_view topic, std::string_view data, PublishOptions options,
                            boost::system::error_code& ec) {
  return state_->publish(topic, data, options, ec);
}

inline std::vector<Event> Hub::history(std::string_view topic, EventId since) const {
  return state_->history(topic, since);
}

inline HubStats Hub::stats() const { return state_->stats(); }

inline Hub::executor_type Hub::get_executor() const noexcept { return state_->executor(); }

}  // namespace herald
