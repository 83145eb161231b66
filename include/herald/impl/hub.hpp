#pragma once

#include <herald/detail/id_store.hpp>
#include <herald/detail/stored_event.hpp>
#include <herald/detail/subscriber.hpp>
#include <herald/detail/topic.hpp>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <atomic>
#include <deque>
#include <mutex>
#include <stdexcept>
#include <unordered_map>

namespace herald {
namespace detail {

struct StringHash {
  using is_transparent = void;
  std::size_t operator()(std::string_view s) const noexcept { return std::hash<std::string_view>{}(s); }
};

/// What a subscription asks for: named topics, or every topic of the hub.
struct TopicSet {
  std::vector<std::string> topics;
  bool all = false;
};

/** The shared state behind a Hub. One mutex orders everything: ids are handed out and events
    are queued to subscribers under it, so every connection sees its topics in id order and a
    resume (replay + registration) is atomic with respect to publishing. Nothing under the lock
    blocks: queues are bounded and wake-ups are posts. */
class HubState {
 public:
  struct Replay {
    /// The cursor could not be served without a gap; a reset notice was queued first.
    bool reset = false;
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
        ids_(options_.id_file, options_.first_id, options_.id_block) {
    if (options_.history_age < std::chrono::steady_clock::duration::zero())
      throw std::invalid_argument("herald: HubOptions::history_age must not be negative");
  }

  net::any_io_executor const& executor() const noexcept { return ex_; }

  std::chrono::steady_clock::time_point now() const {
    return options_.clock ? options_.clock() : std::chrono::steady_clock::now();
  }

  EventId publish(std::string_view topic, std::string_view data, PublishOptions const& po) {
    if (!valid_topic(topic))
      throw std::invalid_argument("herald: invalid topic name for publish");
    for (unsigned char c : po.type)
      if (c < 0x20 || c == 0x7f)
        throw std::invalid_argument("herald: event type must not contain control characters");
    if (!valid_utf8(po.type)) throw std::invalid_argument("herald: event type must be UTF-8");
    Event ev;
    ev.topic = topic;
    ev.type = po.type;
    ev.data = data;
    ev.kind = po.kind;
    if (ev.kind == PayloadKind::automatic)
      ev.kind = nlohmann::json::accept(data) ? PayloadKind::json : PayloadKind::text;
    auto const at = now();
    auto stored = std::make_shared<StoredEvent>(std::move(ev), at);

    std::lock_guard lock{mutex_};
    stored->event_.id = ids_.next();
    EventPtr const ptr = stored;
    auto it = topics_.find(topic);
    if (it == topics_.end()) it = topics_.emplace(std::string(topic), Topic{}).first;
    Topic& t = it->second;
    evict(t, at);
    if (options_.history_events > 0) {
      if (t.history.size() >= options_.history_events) {
        t.evicted_up_to = t.history.front()->id();
        t.history.pop_front();
      }
      t.history.push_back(ptr);
    } else {
      t.evicted_up_to = ptr->id();
    }
    fan_out(t.subscribers, ptr);
    fan_out(all_, ptr);
    published_.fetch_add(1, std::memory_order_relaxed);
    return ptr->id();
  }

  /** Register `sub` for `set` and, when `since` is given, queue every retained event above it
      first, all under the lock, so the seam between replay and live has no gap and no
      duplicate. A cursor that cannot be served queues a reset notice before the replay. */
  Replay subscribe(SubscriberPtr const& sub, TopicSet const& set, std::optional<EventId> since) {
    std::lock_guard lock{mutex_};
    Replay r;
    r.last = ids_.last();
    if (since) {
      auto const at = now();
      r.floor = ids_.floor();
      for_each_topic(set, [&](Topic& t) {
        evict(t, at);
        r.floor = std::max(r.floor, t.evicted_up_to);
      });
      EventId const last = ids_.last();
      bool const future = *since > last;  // a cursor from another timeline
      auto events = collect(set, future ? 0 : *since, 0);
      if (*since < r.floor || future) {
        r.reset = true;
        // The notice's id is the client's position after it: its own cursor when history ran
        // out (a client that drops right after the notice is told again rather than skipping
        // ahead), and just below what follows when the cursor came from another timeline, so
        // ids keep increasing on the wire.
        EventId const id = !future ? *since : events.empty() ? last : events.front()->id() - 1;
        auto notice = make_reset_notice(set.topics.size() == 1 ? set.topics.front() : std::string(),
                                        id, std::min(r.floor, last), "cursor_expired");
        sub->offer(notice, true);
        resets_.fetch_add(1, std::memory_order_relaxed);
      }
      for (auto const& ev : events) sub->offer(ev, true);
      r.replayed = events.size();
    }
    Entry entry{sub.get(), sub};
    if (set.all) {
      all_.push_back(std::move(entry));
    } else {
      for (auto const& name : set.topics) {
        auto it = topics_.find(name);
        if (it == topics_.end()) it = topics_.emplace(name, Topic{}).first;
        it->second.subscribers.push_back(entry);
      }
    }
    return r;
  }

  void unsubscribe(Subscriber const* sub, TopicSet const& set) {
    std::lock_guard lock{mutex_};
    if (set.all) remove(all_, sub);
    for (auto const& name : set.topics) {
      auto it = topics_.find(name);
      if (it == topics_.end()) continue;
      remove(it->second.subscribers, sub);
      // Topics that never held an event are forgotten when their last subscriber leaves, so
      // clients cannot grow the map; topics with history keep their eviction mark.
      if (it->second.subscribers.empty() && it->second.history.empty() &&
          it->second.evicted_up_to == 0)
        topics_.erase(it);
    }
  }

  /// Retained events of `set` above `since`, at most `limit` (0: all), without subscribing.
  Batch read(TopicSet const& set, EventId since, std::size_t limit) {
    std::lock_guard lock{mutex_};
    Batch b;
    auto const at = now();
    b.floor = ids_.floor();
    for_each_topic(set, [&](Topic& t) {
      evict(t, at);
      b.floor = std::max(b.floor, t.evicted_up_to);
    });
    EventId const last = ids_.last();
    EventId from = since;
    if (since < b.floor || since > last) {
      b.reset = true;
      from = since > last ? 0 : since;
    }
    b.events = collect(set, from, limit);
    // Without a limit the client has seen everything up to `last`; with one, up to the batch.
    b.cursor = (limit != 0 && b.events.size() == limit) ? b.events.back()->id() : last;
    return b;
  }

  std::vector<Event> history(std::string_view topic, EventId since) {
    std::vector<Event> out;
    std::lock_guard lock{mutex_};
    auto it = topics_.find(topic);
    if (it == topics_.end()) return out;
    evict(it->second, now());
    for (auto const& ev : it->second.history)
      if (ev->id() > since) out.push_back(ev->event());
    return out;
  }

  HubStats stats() const {
    HubStats s;
    s.connections = connections_.load(std::memory_order_relaxed);
    s.connections_total = connections_total_.load(std::memory_order_relaxed);
    s.events_published = published_.load(std::memory_order_relaxed);
    s.deliveries = deliveries_.load(std::memory_order_relaxed);
    s.slow_consumer_disconnects = slow_.load(std::memory_order_relaxed);
    s.resets = resets_.load(std::memory_order_relaxed);
    std::lock_guard lock{mutex_};
    s.topics = topics_.size();
    s.last_id = ids_.last();
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

 private:
  struct Entry {
    Subscriber* raw;
    std::weak_ptr<Subscriber> weak;
  };

  struct Topic {
    std::deque<EventPtr> history;
    /// Highest id dropped from history (by count or age): cursors below it cannot be served.
    EventId evicted_up_to = 0;
    std::vector<Entry> subscribers;
  };

  void evict(Topic& t, std::chrono::steady_clock::time_point at) {
    if (options_.history_age == std::chrono::steady_clock::duration::zero()) return;
    while (!t.history.empty() && at - t.history.front()->published_at() > options_.history_age) {
      t.evicted_up_to = t.history.front()->id();
      t.history.pop_front();
    }
  }

  template <class F>
  void for_each_topic(TopicSet const& set, F&& f) {
    if (set.all) {
      for (auto& [name, t] : topics_) f(t);
      return;
    }
    for (auto const& name : set.topics)
      if (auto it = topics_.find(name); it != topics_.end()) f(it->second);
  }

  std::vector<EventPtr> collect(TopicSet const& set, EventId since, std::size_t limit) {
    std::vector<EventPtr> out;
    std::size_t sources = 0;
    for_each_topic(set, [&](Topic& t) {
      auto first = std::upper_bound(t.history.begin(), t.history.end(), since,
                                    [](EventId id, EventPtr const& ev) { return id < ev->id(); });
      if (first != t.history.end()) ++sources;
      out.insert(out.end(), first, t.history.end());
    });
    if (sources > 1)
      std::sort(out.begin(), out.end(), [](EventPtr const& a, EventPtr const& b) { return a->id() < b->id(); });
    if (limit != 0 && out.size() > limit) out.resize(limit);
    return out;
  }

  void fan_out(std::vector<Entry>& subs, EventPtr const& ev) {
    bool dead = false;
    for (auto const& e : subs) {
      if (auto s = e.weak.lock()) {
        if (s->offer(ev) == Offer::reset) resets_.fetch_add(1, std::memory_order_relaxed);
      } else {
        dead = true;
      }
    }
    if (dead) std::erase_if(subs, [](Entry const& e) { return e.weak.expired(); });
  }

  static void remove(std::vector<Entry>& subs, Subscriber const* sub) {
    auto it = std::find_if(subs.begin(), subs.end(), [&](Entry const& e) { return e.raw == sub; });
    if (it == subs.end()) return;
    *it = std::move(subs.back());
    subs.pop_back();
  }

  net::any_io_executor ex_;
  HubOptions const options_;
  mutable std::mutex mutex_;
  IdStore ids_;
  std::unordered_map<std::string, Topic, StringHash, std::equal_to<>> topics_;
  std::vector<Entry> all_;
  std::atomic<std::uint64_t> next_connection_{0};
  std::atomic<std::uint64_t> connections_{0};
  std::atomic<std::uint64_t> connections_total_{0};
  std::atomic<std::uint64_t> published_{0};
  std::atomic<std::uint64_t> deliveries_{0};
  std::atomic<std::uint64_t> slow_{0};
  std::atomic<std::uint64_t> resets_{0};
};

}  // namespace detail

inline Hub::Hub(executor_type ex, HubOptions options)
    : state_(std::make_shared<detail::HubState>(std::move(ex), std::move(options))) {}

inline EventId Hub::publish(std::string_view topic, std::string_view data, PublishOptions options) {
  return state_->publish(topic, data, options);
}

inline std::vector<Event> Hub::history(std::string_view topic, EventId since) const {
  return state_->history(topic, since);
}

inline HubStats Hub::stats() const { return state_->stats(); }

inline Hub::executor_type Hub::get_executor() const noexcept { return state_->executor(); }

}  // namespace herald
