#pragma once

#include <herald/detail/stored_event.hpp>
#include <herald/event.hpp>

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <deque>
#include <functional>
#include <list>
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
    topic, none older than `max_age` (zero: any age), and at most `max_bytes` over all topics
    (event_bytes() each).

    Each topic remembers the highest id it has evicted, so a cursor below it is known to have a
    gap (the reset notice) instead of silently missing events. Events are appended in id order
    and are shared, never copied: replays and queues hold the same StoredEvent.

    A topic that retains no event and that `keep(topic)` does not claim (the hub: no local
    subscriber) is forgotten, so memory follows what is live rather than every topic ever seen.
    Its eviction mark is folded into one store-wide mark, `forgotten_`, that stands for every
    topic the store does not know: a cursor below it, for such a topic, gets the reset notice
    (perhaps needlessly, for a topic that never had an event: never a silent gap).

    Topics with retained events are kept in the order of their last append, so that expired
    topics are found without a scan (sweep()) and the byte bound evicts the history of the
    topics published least recently first.

    Not thread-safe: the hub calls it under its lock. Age is measured with the `at` the caller
    passes (the hub's injectable clock).
*/
class HistoryStore {
 public:
  using time_point = std::chrono::steady_clock::time_point;
  using duration = std::chrono::steady_clock::duration;

  HistoryStore(std::size_t max_events, duration max_age, std::size_t max_bytes = std::size_t(-1))
      : max_events_(max_events), max_age_(max_age), max_bytes_(max_bytes) {}

  HistoryStore(HistoryStore const&) = delete;
  HistoryStore& operator=(HistoryStore const&) = delete;

  /// What one retained event counts against the byte bound: its strings and its bookkeeping.
  static std::size_t event_bytes(Event const& ev) noexcept {
    return sizeof(StoredEvent) + 32 + ev.topic.size() + ev.type.size() + ev.data.size();
  }

  /** Retain `ev` (above every id retained so far), evicting what the bounds require. `keep`
      says whether a topic whose history runs empty must still be remembered. The caller
      checks event_bytes(ev) <= max_bytes first (else it is retained alone, over the bound). */
  template <class Keep>
  void append(EventPtr const& ev, time_point at, Keep&& keep) {
    auto it = topics_.find(ev->event().topic);
    if (it == topics_.end()) it = topics_.emplace(ev->event().topic, Topic{forgotten_}).first;
    Entry* entry = &*it;
    Topic& t = entry->second;
    evict(t, at);
    if (max_events_ == 0) {
      t.evicted_up_to = ev->id();
      settle(entry, keep);
      return;
    }
    if (t.events.size() >= max_events_) pop(t);
    t.events.push_back(ev);
    t.bytes += event_bytes(ev->event());
    bytes_ += event_bytes(ev->event());
    // Most recently published last.
    if (t.in_lru) lru_.splice(lru_.end(), lru_, t.lru);
    else {
      t.lru = lru_.insert(lru_.end(), entry);
      t.in_lru = true;
    }
    while (bytes_ > max_bytes_ && !lru_.empty()) {
      Entry* oldest = lru_.front();
      if (oldest == entry && t.events.size() == 1) break;  // never the event just retained
      // (A topic emptied by age on a read is still listed; settle() takes it out.)
      if (!oldest->second.events.empty()) pop(oldest->second);
      settle(oldest, keep);
    }
  }

  /** Evict what has aged out from the topics published least recently, and forget the topics
      left empty that `keep` does not claim. Cheap when nothing expired: it stops at the first
      topic whose newest event is still young. */
  template <class Keep>
  void sweep(time_point at, Keep&& keep) {
    if (max_age_ == duration::zero()) return;
    while (!lru_.empty()) {
      Entry* oldest = lru_.front();
      Topic& t = oldest->second;
      if (!t.events.empty() && at - t.events.back()->published_at() <= max_age_) break;
      while (!t.events.empty()) pop(t);
      settle(oldest, keep);
    }
  }

  /// Forget `topic` if it retains nothing (its last subscriber left).
  void forget_if_empty(std::string_view topic) {
    if (auto it = topics_.find(topic); it != topics_.end() && it->second.events.empty()) forget(it);
  }

  /** The highest id evicted from the topics of `set` (after evicting by age at `at`): a
      cursor below it cannot be served without a gap. */
  EventId floor(TopicSet const& set, time_point at) {
    EventId f = 0;
    std::size_t known = 0;
    for_each(set, [&](Topic& t) {
      evict(t, at);
      f = std::max(f, t.evicted_up_to);
      ++known;
    });
    // A topic the store does not know may be one it forgot.
    if (set.all || known < set.topics.size()) f = std::max(f, forgotten_);
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

  /// What the retained events count against the byte bound (event_bytes() each).
  std::size_t bytes() const noexcept { return bytes_; }

  /** Record that an event of `topic` with id `id` was not retained (the store was full of
      topics): resumes below it, on that topic, must get the reset notice. */
  void not_retained(std::string_view topic, EventId id) {
    if (auto it = topics_.find(topic); it != topics_.end()) it->second.evicted_up_to = id;
    else forgotten_ = std::max(forgotten_, id);
  }

 private:
  struct Topic;
  using Map = std::unordered_map<std::string, Topic, StringHash, std::equal_to<>>;
  // Map nodes stay put until erased (unlike iterators, which a rehash invalidates).
  using Entry = Map::value_type;

  struct Topic {
    explicit Topic(EventId floor) : evicted_up_to(floor) {}
    std::deque<EventPtr> events;
    /// Highest id dropped (by count, age or bytes): cursors below it cannot be served.
    EventId evicted_up_to = 0;
    std::size_t bytes = 0;
    /// Where the topic stands in lru_; only while it retains events.
    std::list<Entry*>::iterator lru;
    bool in_lru = false;
  };

  void pop(Topic& t) {
    auto const n = event_bytes(t.events.front()->event());
    t.evicted_up_to = t.events.front()->id();
    t.events.pop_front();
    t.bytes -= n;
    bytes_ -= n;
  }

  /// After evictions: a topic left empty leaves lru_, and is forgotten unless `keep` claims it.
  template <class Keep>
  void settle(Entry* entry, Keep& keep) {
    Topic& t = entry->second;
    if (!t.events.empty()) return;
    if (t.in_lru) {
      lru_.erase(t.lru);
      t.in_lru = false;
    }
    if (!keep(std::string_view(entry->first))) forget(topics_.find(entry->first));
  }

  void forget(Map::iterator it) {
    forgotten_ = std::max(forgotten_, it->second.evicted_up_to);
    if (it->second.in_lru) lru_.erase(it->second.lru);
    bytes_ -= it->second.bytes;
    topics_.erase(it);
  }

  void evict(Topic& t, time_point at) {
    if (max_age_ == duration::zero()) return;
    while (!t.events.empty() && at - t.events.front()->published_at() > max_age_) pop(t);
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
  std::size_t const max_bytes_;
  Map topics_;
  /// Topics that retain events, least recently appended first.
  std::list<Entry*> lru_;
  std::size_t bytes_ = 0;
  /// The highest eviction mark of every topic forgotten (see the class comment).
  EventId forgotten_ = 0;
};

}  // namespace herald::detail
