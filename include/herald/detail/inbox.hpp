#pragma once

#include <herald/detail/stored_event.hpp>
#include <herald/event.hpp>
#include <herald/overflow.hpp>

#include <nlohmann/json.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_set>
#include <utility>
#include <vector>

namespace herald::inline v0::detail {

/// What Inbox::offer (and Subscriber::offer) did with an event.
enum class Offer : std::uint8_t {
  /// Queued (under drop_oldest and coalesce_latest, perhaps in place of older events).
  queued,
  /// The bound was hit under OverflowPolicy::disconnect: the connection is being closed.
  overflow,
  /// The bound was hit under OverflowPolicy::reset: the queue became one reset notice.
  reset,
  /// Ignored: the connection overflowed earlier and is closing.
  dropped,
};

/// Bounds of one connection's outbound queue.
struct QueueLimits {
  std::size_t events = HERALD_DEFAULT_QUEUE_EVENTS;
  std::size_t bytes = HERALD_DEFAULT_QUEUE_BYTES;
  OverflowPolicy policy = OverflowPolicy::disconnect;
};

/** A reset notice: tells a client that events up to `cursor` may be missing for it. The notice
    carries id `id`, the client's position after it (its own cursor when history ran out,
    so a client that drops right after the notice is told again rather than skipping ahead). */
inline EventPtr make_reset_notice(std::string topic, EventId id, EventId cursor, std::string_view reason) {
  Event ev;
  ev.id = id;
  ev.topic = std::move(topic);
  ev.type = "reset";
  ev.data = std::string(R"({"reason":")") + std::string(reason) + R"(","cursor":)" +
            std::to_string(cursor) + "}";
  ev.kind = PayloadKind::json;
  ev.event_kind = EventKind::reset;
  return std::make_shared<StoredEvent const>(std::move(ev), std::chrono::steady_clock::now());
}

/// What a gap notice says of one topic: the ids dropped from it, `first` to `last`, `count` of them.
struct GapRange {
  /// "*" (no topic may be named so) for every topic beyond max_gap_topics, taken together.
  std::string topic;
  EventId first = 0;
  EventId last = 0;
  std::uint64_t count = 0;
};

/// Topics a gap notice names one by one; the rest are summed up under "*", so a notice is small.
inline constexpr std::size_t max_gap_topics = 32;

/** A gap notice: event type `gap`, id `id` (the last id dropped: the client's position after
    it, below every event that follows), topic the one topic dropped from (empty for several),
    data `{"reason":"slow_consumer","missed":[{"topic":"t","first":41,"last":57,"count":12},…]}`.
    Ids are the hub's (shared by every topic), so count may be less than last - first + 1. */
inline EventPtr make_gap_notice(std::vector<GapRange> const& ranges, EventId id) {
  nlohmann::json missed = nlohmann::json::array();
  for (auto const& r : ranges)
    missed.push_back({{"topic", r.topic}, {"first", r.first}, {"last", r.last}, {"count", r.count}});
  Event ev;
  ev.id = id;
  if (ranges.size() == 1 && ranges.front().topic != "*") ev.topic = ranges.front().topic;
  ev.type = "gap";
  ev.data = nlohmann::json{{"reason", "slow_consumer"}, {"missed", std::move(missed)}}.dump();
  ev.kind = PayloadKind::json;
  ev.event_kind = EventKind::gap;
  return std::make_shared<StoredEvent const>(std::move(ev), std::chrono::steady_clock::now());
}

/// What one offer cost the queue, beyond queuing: for the counters (herald::Metrics).
struct Shed {
  /** The queue reached its budget: under disconnect and reset every time, under drop_oldest and
      coalesce_latest once per take() cycle (a slow consumer's queue stays at its budget). */
  bool overflow = false;
  /// A gap notice was started (one per take() cycle at most).
  bool notice = false;
  /// Events dropped into the gap notice.
  std::size_t dropped = 0;
  /// Events replaced by a newer one of their topic.
  std::size_t coalesced = 0;
};

/** A bounded queue of events under one OverflowPolicy: the logic of a connection's inbox, with
    no lock and no wake-ups (Subscriber adds those); a poll answer runs the events it found
    through one too (the "queue" of a polling client is what accumulated since its cursor).

    Live events count against the budgets, replayed ones (history, notices) do not. Under
    drop_oldest the oldest live events give way: each leaves a hole, and the last hole becomes
    the gap notice when take() hands the queue over, so the notice comes after every event
    that was kept before the dropped ones (replays) and before every event that follows them.
    Under coalesce_latest an older live event of the same topic gives way first. Holes are
    null pointers, closed up by take(); nothing is allocated per event unless the budget is hit.

    Not thread-safe. */
class Inbox {
 public:
  /// `limits` outlive the inbox (a channel's: every connection's inbox shares them).
  explicit Inbox(QueueLimits const& limits) noexcept : limits_(&limits) {}

  QueueLimits const& limits() const noexcept { return *limits_; }
  /// Entries queued (holes included).
  std::size_t size() const noexcept { return pending_.size(); }
  std::size_t live_events() const noexcept { return live_events_; }
  std::size_t live_bytes() const noexcept { return live_bytes_; }

  /** Queue `ev` (`replay`: exempt from the budgets); `size_of(StoredEvent const&)` is its
      bytes on the wire. Adds to `shed` what making room cost. */
  template <class SizeOf>
  Offer offer(EventPtr const& ev, bool replay, SizeOf&& size_of, Shed& shed) {
    if (overflowed_) return Offer::dropped;
    if (replay) {
      push(ev, false);
      return Offer::queued;
    }
    std::size_t const size = size_of(*ev);
    if (live_events_ + 1 <= limits_->events && live_bytes_ + size <= limits_->bytes) {
      push(ev, true);
      live_events_ += 1;
      live_bytes_ += size;
      if (shedding_) shedding_->distinct = false;
      return Offer::queued;
    }
    switch (limits_->policy) {
      case OverflowPolicy::disconnect:
        shed.overflow = true;
        clear();
        overflowed_ = true;
        return Offer::overflow;
      case OverflowPolicy::reset: {
        shed.overflow = true;
        clear();
        // Single-topic or not, the notice names no topic: it covers the whole connection.
        auto notice = make_reset_notice(std::string(), ev->id(), ev->id(), "slow_consumer");
        live_events_ = 1;
        live_bytes_ = size_of(*notice);
        pending_.push_back(std::move(notice));
        return Offer::reset;
      }
      default:
        break;
    }
    if (!cycle_overflowed_) cycle_overflowed_ = shed.overflow = true;
    push(ev, true);
    live_events_ += 1;
    live_bytes_ += size;
    auto& st = *shedding_;
    if (limits_->policy == OverflowPolicy::coalesce_latest) coalesce(st, size_of, shed);
    // The new event is the newest live one: in the worst case (larger than the byte budget on
    // its own) it goes too, and the notice names it.
    for (; over() && st.scan < pending_.size(); ++st.scan)
      if (pending_[st.scan] && st.live[st.scan]) drop(st, st.scan, size_of, shed);
    return Offer::queued;
  }

  /** Move everything queued into `out` (which should be empty), the gap notice in its place
      and without holes. False when nothing was queued. */
  bool take(std::vector<EventPtr>& out) {
    if (pending_.empty()) return false;
    if (shedding_) {
      auto& st = *shedding_;
      if (st.open) {
        pending_[st.at] = make_gap_notice(st.ranges(), st.last);
        st.clear();
      }
      st.live.clear();
      st.scan = 0;
      st.distinct = false;
    }
    if (holes_) std::erase(pending_, nullptr);
    out.swap(pending_);  // both vectors keep their capacity: no allocation in steady state
    live_events_ = 0;
    live_bytes_ = 0;
    holes_ = false;
    cycle_overflowed_ = false;
    return true;
  }

 private:
  /** What drop_oldest and coalesce_latest keep beside the queue, allocated by the first push
      under them (so a connection under disconnect or reset pays one pointer for it). */
  struct Shedding {
    /// Per entry of pending_: whether it is live.
    std::vector<std::uint8_t> live;
    /// The gap being gathered: per topic, and the topics beyond max_gap_topics.
    std::vector<GapRange> named;
    GapRange rest{"*"};
    EventId last = 0;
    /// coalesce_latest's scratch.
    std::unordered_set<std::string_view> seen;
    /// Where the next oldest live event is looked for (every live one before it was dropped).
    std::size_t scan = 0;
    /// Where the notice goes, when `open`.
    std::size_t at = 0;
    bool open = false;
    bool distinct = false;  // coalesce_latest: no two live entries share a topic

    void add(std::string_view topic, EventId id) {
      last = id;
      auto hit = [&](GapRange& r) {
        if (r.count == 0) r.first = id;
        r.last = id;
        ++r.count;
      };
      for (auto& r : named)
        if (r.topic == topic) return hit(r);
      if (named.size() < max_gap_topics) return hit(named.emplace_back(GapRange{std::string(topic)}));
      hit(rest);
    }
    std::vector<GapRange> ranges() const {
      auto all = named;
      if (rest.count != 0) all.push_back(rest);
      return all;
    }
    void clear() {
      named.clear();
      rest = GapRange{"*"};
      open = false;
    }
  };

  bool tracks() const noexcept {
    return limits_->policy == OverflowPolicy::drop_oldest || limits_->policy == OverflowPolicy::coalesce_latest;
  }
  bool over() const noexcept { return live_events_ > limits_->events || live_bytes_ > limits_->bytes; }

  void push(EventPtr const& ev, bool live) {
    pending_.push_back(ev);
    if (!tracks()) return;
    if (!shedding_) shedding_ = std::make_unique<Shedding>();
    shedding_->live.push_back(live ? 1 : 0);
  }

  void clear() {
    pending_.clear();
    live_events_ = 0;
    live_bytes_ = 0;
  }

  /// Make live entry `i` a hole, no longer counted against the budgets.
  template <class SizeOf>
  void hole(std::size_t i, SizeOf& size_of) {
    live_events_ -= 1;
    live_bytes_ -= size_of(*pending_[i]);
    pending_[i].reset();
    holes_ = true;
  }

  template <class SizeOf>
  void drop(Shedding& st, std::size_t i, SizeOf& size_of, Shed& shed) {
    auto const& e = pending_[i]->event();
    st.add(e.topic, e.id);
    hole(i, size_of);
    if (!st.open) shed.notice = true;
    st.open = true;
    st.at = i;  // the notice follows what was dropped
    ++shed.dropped;
  }

  /** Keep the newest live event of each topic. The newest's own topic is checked first, with
      no allocation; the whole queue only when that was not enough and it may hold duplicates
      (not again until a plain push: when every topic is over the budget, each offer would
      otherwise pay for a pass that finds nothing). */
  template <class SizeOf>
  void coalesce(Shedding& st, SizeOf& size_of, Shed& shed) {
    std::string_view const topic = pending_.back()->event().topic;
    for (std::size_t i = pending_.size() - 1; i-- > st.scan;)
      if (pending_[i] && st.live[i] && pending_[i]->event().topic == topic) {
        hole(i, size_of);
        ++shed.coalesced;
      }
    if (!over() || st.distinct) return;
    st.seen.clear();
    for (std::size_t i = pending_.size(); i-- > st.scan;) {
      if (!pending_[i] || !st.live[i]) continue;
      if (st.seen.insert(pending_[i]->event().topic).second) continue;
      hole(i, size_of);
      ++shed.coalesced;
    }
    st.seen.clear();
    st.distinct = true;
  }

  QueueLimits const* limits_;
  std::vector<EventPtr> pending_;
  /// What live (not replayed) events occupy of pending_: the part the bound applies to.
  std::size_t live_events_ = 0;
  std::size_t live_bytes_ = 0;
  std::unique_ptr<Shedding> shedding_;
  bool holes_ = false;
  bool cycle_overflowed_ = false;
  bool overflowed_ = false;
};

}  // namespace herald::detail
