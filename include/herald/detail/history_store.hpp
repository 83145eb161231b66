#pragma once

#include <herald/detail/stored_event.hpp>
#include <herald/event.hpp>

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <deque>
#include <functional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace herald::inline v0::detail {

/// Transparent hash, so maps keyed by std::string are searched with a string_view.
struct StringHash {
  using is_transparent = void;
  std::size_t operator()(std::string_view s) const noexcept { return std::hash<std::string_view>{}(s); }
};

/// What a subscription asks for: named topics, or every topic of the hub.
struct TopicSet {
  std::vector<std::string> topics;
  bool all = false;

  bool contains(std::string_view topic) const {
    return all || std::find(topics.begin(), topics.end(), topic) != topics.end();
  }
};

/** The events a hub retains per topic so that clients can resume: at most `max_events` per
    topic, none older than `max_age` (zero: any age).

    Each topic remembers the highest id it has evicted, so a cursor below it is known to have a
    gap (the reset notice) instead of silently missing events. Events are appended in id order
    and are shared, never copied: replays and queues hold the same StoredEvent.

    Not thread-safe: the hub calls it under its lock. Age is measured with the `at` the caller
    passes (the hub's injectable clock).
*/
class HistoryStore {
 public:
  using time_point = std::chrono::steady_clock::time_point;
  using duration = std::chrono::steady_clock::duration;

  HistoryStore(std::size_t max_events, duration max_age) : max_events_(max_events), max_age_(max_age) {}

  /// Retain `ev` (above every id retained so far), evicting what the bounds require.
  void append(EventPtr const& ev, time_point at) {
    auto it = topics_.find(ev->event().topic);
    if (it == topics_.end()) it = topics_.emplace(ev->event().topic, Topic{}).first;
    Topic& t = it->second;
    evict(t, at);
    if (max_events_ == 0) {
      t.evicted_up_to = ev->id();
      return;
    }
    if (t.events.size() >= max_events_) {
      t.evicted_up_to = t.events.front()->id();
      t.events.pop_front();
    }
    t.events.push_back(ev);
  }

  /** The highest id evicted from the topics of `set` (after evicting by age at `at`): a
      cursor below it cannot be served without a gap. */
  EventId floor(TopicSet const& set, time_point at) {
    EventId f = 0;
    for_each(set, [&](Topic& t) {
      evict(t, at);
      f = std::max(f, t.evicted_up_to);
    });
    return f;
  }

  /// Retained events of `set` above `since`, in id order, at most `limit` (0: all).
  std::vector<EventPtr> collect(TopicSet const& set, EventId since, std::size_t limit) {
    std::vector<EventPtr> out;
    std::size_t sources = 0;
    for_each(set, [&](Topic& t) {
      auto first = std::upper_bound(t.events.begin(), t.events.end(), since,
                                    [](EventId id, EventPtr const& ev) { return id < ev->id(); });
      if (first != t.events.end()) ++sources;
      out.insert(out.end(), first, t.events.end());
    });
    if (sources > 1)
      std::sort(out.begin(), out.end(), [](EventPtr const& a, EventPtr const& b) { return a->id() < b->id(); });
    if (limit != 0 && out.size() > limit) out.resize(limit);
    return out;
  }

  /// The retained event of `topic` with id `id`, or null.
  EventPtr find(std::string_view topic, EventId id) const {
    auto it = topics_.find(topic);
    if (it == topics_.end()) return nullptr;
    auto const& events = it->second.events;
    auto pos = std::lower_bound(events.begin(), events.end(), id,
                                [](EventPtr const& ev, EventId v) { return ev->id() < v; });
    return pos != events.end() && (*pos)->id() == id ? *pos : nullptr;
  }

  /// Copies of the retained events of `topic` above `since`, oldest first.
  std::vector<Event> events(std::string_view topic, EventId since, time_point at) {
    std::vector<Event> out;
    auto it = topics_.find(topic);
    if (it == topics_.end()) return out;
    evict(it->second, at);
    for (auto const& ev : it->second.events)
      if (ev->id() > since) out.push_back(ev->event());
    return out;
  }

  bool contains(std::string_view topic) const { return topics_.find(topic) != topics_.end(); }

  /// Topics that hold events or an eviction mark.
  std::size_t topics() const noexcept { return topics_.size(); }

 private:
  struct Topic {
    std::deque<EventPtr> events;
    /// Highest id dropped (by count or age): cursors below it cannot be served.
    EventId evicted_up_to = 0;
  };

  void evict(Topic& t, time_point at) const {
    if (max_age_ == duration::zero()) return;
    while (!t.events.empty() && at - t.events.front()->published_at() > max_age_) {
      t.evicted_up_to = t.events.front()->id();
      t.events.pop_front();
    }
  }

  template <class F>
  void for_each(TopicSet const& set, F&& f) {
    if (set.all) {
      for (auto& [name, t] : topics_) f(t);
      return;
    }
    for (auto const& name : set.topics)
      if (auto it = topics_.find(name); it != topics_.end()) f(it->second);
  }

  std::size_t const max_events_;
  duration const max_age_;
  std::unordered_map<std::string, Topic, StringHash, std::equal_to<>> topics_;
};

}  // namespace herald::detail
