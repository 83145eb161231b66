#pragma once

#include <herald/detail/history_store.hpp>
#include <herald/detail/subscriber.hpp>

#include <algorithm>
#include <cstddef>
#include <limits>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace herald::inline v0::detail {

/** Which of this process's connections receive which topic: the hub's local fan-out.

    An entry holds its subscriber weakly (a connection that is gone is dropped at the next
    event) and an `after` id: only events above it are offered. That is how a subscription
    whose replay is still being read elsewhere (a backplane's history) holds its live events
    back, and then skips those the replay already carried.

    Not thread-safe: the hub calls it under its lock, in id order.
*/
class TopicIndex {
 public:
  /// `after` of an entry that receives nothing yet.
  static constexpr EventId held = std::numeric_limits<EventId>::max();

  void add(SubscriberPtr const& sub, TopicSet const& set, EventId after) {
    Entry entry{sub, after};
    if (set.all) {
      all_.push_back(std::move(entry));
      return;
    }
    for (auto const& name : set.topics) {
      auto it = topics_.find(name);
      if (it == topics_.end()) it = topics_.emplace(name, std::vector<Entry>{}).first;
      it->second.push_back(entry);
    }
  }

  /// Remove `sub` from `set`; a topic left without subscribers is forgotten.
  void remove(Subscriber const* sub, TopicSet const& set) {
    auto const owner = sub->weak_from_this();
    if (set.all) erase(all_, owner);
    for (auto const& name : set.topics) {
      auto it = topics_.find(name);
      if (it == topics_.end()) continue;
      erase(it->second, owner);
      if (it->second.empty()) topics_.erase(it);
    }
  }

  /// From now on offer `sub` the events of `set` above `after` (held: none).
  void release(Subscriber const* sub, TopicSet const& set, EventId after) {
    auto const owner = sub->weak_from_this();
    auto set_after = [&](std::vector<Entry>& entries) {
      for (auto& e : entries)
        if (e.of(owner)) e.after = after;
    };
    if (set.all) set_after(all_);
    for (auto const& name : set.topics)
      if (auto it = topics_.find(name); it != topics_.end()) set_after(it->second);
  }

  /// Offer `ev` to the subscribers of its topic and of every topic. Returns the reset offers.
  std::size_t fan_out(EventPtr const& ev) {
    std::size_t resets = 0;
    if (auto it = topics_.find(ev->event().topic); it != topics_.end()) resets += offer(it->second, ev);
    if (!all_.empty()) resets += offer(all_, ev);
    return resets;
  }

  /** Call `f(subscriber, topic, held)` for every live entry; `topic` is empty for an entry of
      every topic. */
  template <class F>
  void for_each(F&& f) const {
    for (auto const& e : all_)
      if (auto s = e.weak.lock()) f(s, std::string_view{}, e.after == held);
    for (auto const& [name, entries] : topics_)
      for (auto const& e : entries)
        if (auto s = e.weak.lock()) f(s, std::string_view(name), e.after == held);
  }

  bool contains(std::string_view topic) const { return topics_.find(topic) != topics_.end(); }

  /// Topics with at least one subscriber; `skip(name)` excludes some (counted elsewhere).
  template <class Skip>
  std::size_t topics(Skip&& skip) const {
    std::size_t n = 0;
    for (auto const& [name, entries] : topics_)
      if (!skip(name)) ++n;
    return n;
  }

 private:
  // 24 bytes: a topic's vector holds one per subscriber, so no raw pointer beside the weak one;
  // an entry is found by its owner (the control block), which stays the same even while the
  // subscriber is being destroyed.
  struct Entry {
    std::weak_ptr<Subscriber> weak;
    EventId after;
    bool of(std::weak_ptr<Subscriber const> const& owner) const noexcept {
      return !weak.owner_before(owner) && !owner.owner_before(weak);
    }
  };

  static std::size_t offer(std::vector<Entry>& entries, EventPtr const& ev) {
    std::size_t resets = 0;
    bool dead = false;
    EventId const id = ev->id();
    for (auto const& e : entries) {
      if (id <= e.after) continue;
      if (auto s = e.weak.lock()) {
        if (s->offer(ev) == Offer::reset) ++resets;
      } else {
        dead = true;
      }
    }
    if (dead) std::erase_if(entries, [](Entry const& e) { return e.weak.expired(); });
    return resets;
  }

  static void erase(std::vector<Entry>& entries, std::weak_ptr<Subscriber const> const& owner) {
    auto it = std::find_if(entries.begin(), entries.end(), [&](Entry const& e) { return e.of(owner); });
    if (it == entries.end()) return;
    *it = std::move(entries.back());
    entries.pop_back();
  }

  std::unordered_map<std::string, std::vector<Entry>, StringHash, std::equal_to<>> topics_;
  std::vector<Entry> all_;
};

}  // namespace herald::detail
