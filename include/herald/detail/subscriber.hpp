#pragma once

#include <herald/detail/stored_event.hpp>
#include <herald/event.hpp>
#include <herald/overflow.hpp>

#include <boost/system/error_code.hpp>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace herald::inline v0 {

namespace detail {

/// What Subscriber::offer did with an event.
enum class Offer : std::uint8_t {
  /// Queued.
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

/** The hub's view of a connection: a bounded inbox the hub fills and the connection drains.

    The hub calls offer() with its lock held, in id order; the connection calls take() on its
    strand. An inbox that goes from idle to non-empty calls on_ready() once, so a burst of
    publishes costs one wake-up, and the connection writes everything queued in one gather.
*/
class Subscriber : public std::enable_shared_from_this<Subscriber> {
 public:
  Subscriber(QueueLimits limits, std::uint64_t id) : limits_(limits), id_(id) {}
  Subscriber(Subscriber const&) = delete;
  Subscriber& operator=(Subscriber const&) = delete;
  virtual ~Subscriber() = default;

  std::uint64_t connection_id() const noexcept { return id_; }

  /** Queue `ev`. Replayed history is exempt from the bound, and does not use it up: history is
      bounded itself, and a resuming client must not be disconnected for the size of what it
      missed. */
  Offer offer(EventPtr const& ev, bool replay = false) {
    Offer result = Offer::queued;
    bool wake = false;
    {
      std::lock_guard lock{mutex_};
      if (overflowed_) return Offer::dropped;
      std::size_t const size = wire_size(*ev);
      if (replay) {
        pending_.push_back(ev);
      } else if (live_events_ + 1 > limits_.events || live_bytes_ + size > limits_.bytes) {
        pending_.clear();
        live_events_ = 0;
        live_bytes_ = 0;
        if (limits_.policy == OverflowPolicy::disconnect) {
          overflowed_ = true;
          result = Offer::overflow;
        } else {
          // Single-topic or not, the notice names no topic: it covers the whole connection.
          auto notice = make_reset_notice(std::string(), ev->id(), ev->id(), "slow_consumer");
          live_events_ = 1;
          live_bytes_ = wire_size(*notice);
          pending_.push_back(std::move(notice));
          result = Offer::reset;
        }
      } else {
        pending_.push_back(ev);
        ++live_events_;
        live_bytes_ += size;
      }
      if (result != Offer::overflow && !scheduled_) {
        scheduled_ = true;
        wake = true;
      }
    }
    if (result == Offer::overflow) on_overflow();
    else if (wake) on_ready();
    return result;
  }

  /** Move everything queued into `out` (which should be empty). Returns false, and re-arms
      the wake-up, when nothing was queued. */
  bool take(std::vector<EventPtr>& out) {
    std::lock_guard lock{mutex_};
    if (pending_.empty()) {
      scheduled_ = false;
      return false;
    }
    out.swap(pending_);  // both vectors keep their capacity: no allocation in steady state
    live_events_ = 0;
    live_bytes_ = 0;
    return true;
  }

  /// Bytes of live events queued now (what the bound applies to), for herald::Metrics.
  std::size_t queued_bytes() const {
    std::lock_guard lock{mutex_};
    return live_bytes_;
  }

  /** Called when a write has completed, before draining again: whether to let one more turn
      of the event loop pass first, so that what the loop is about to publish joins the next
      write. A write per event costs a syscall per event, the larger part of a delivery.

      Only under load: events queued while the write was in flight, and the queue grew in one
      of the last two turns (a publisher's message can take two turns to arrive: its read
      completes on its own strand). A lone event is written at once. At most max_linger
      turns, and never past half the queue bound, so lingering never turns into an overflow. */
  bool linger() {
    std::lock_guard lock{mutex_};
    std::size_t const n = pending_.size();
    if (n > linger_seen_) linger_stalls_ = 0;
    else ++linger_stalls_;
    bool const more = n != 0 && linger_stalls_ < 2 && lingered_ < max_linger &&
                      live_events_ * 2 < limits_.events && live_bytes_ * 2 < limits_.bytes &&
                      live_bytes_ < max_linger_bytes;
    if (!more) {
      lingered_ = 0;
      linger_seen_ = 0;
      linger_stalls_ = 0;
      return false;
    }
    ++lingered_;
    linger_seen_ = n;
    return true;
  }

 protected:
  friend class HubState;  // on_replayed
  /// The inbox became non-empty: schedule a drain on the connection's strand. Must not block.
  virtual void on_ready() = 0;
  /// The bound was exceeded under OverflowPolicy::disconnect: schedule a close. Must not block.
  virtual void on_overflow() = 0;
  /// Bytes `ev` occupies on this connection's wire (encoding it if needed).
  virtual std::size_t wire_size(StoredEvent const& ev) const = 0;
  /** A replay the hub had to read from its backplane (HubState::Replay::deferred) is queued,
      and live events of those topics follow it (`ec` clear); or it could not be read
      (error::backplane_unavailable), nothing of those topics will arrive, and the connection
      should close so that its client resumes later. Called without the hub's lock. Must not
      block. */
  virtual void on_replayed(boost::system::error_code ec) = 0;

 private:
  QueueLimits const limits_;
  std::uint64_t const id_;
  mutable std::mutex mutex_;
  std::vector<EventPtr> pending_;
  /// What live (not replayed) events occupy of pending_: the part the bound applies to.
  std::size_t live_events_ = 0;
  std::size_t live_bytes_ = 0;
  static constexpr std::uint8_t max_linger = 16;
  static constexpr std::size_t max_linger_bytes = 64 * 1024;
  std::size_t linger_seen_ = 0;
  std::uint8_t lingered_ = 0;
  std::uint8_t linger_stalls_ = 0;
  bool scheduled_ = false;
  bool overflowed_ = false;
};

using SubscriberPtr = std::shared_ptr<Subscriber>;

}  // namespace detail
}  // namespace herald
