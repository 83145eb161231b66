#pragma once

#include <herald/detail/inbox.hpp>
#include <herald/detail/stored_event.hpp>
#include <herald/event.hpp>

#include <boost/system/error_code.hpp>

#include <cstddef>
#include <algorithm>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace herald::inline v0 {

namespace detail {

/** The hub's view of a connection: a bounded inbox the hub fills and the connection drains.

    The hub calls offer() with its lock held, in id order; the connection calls take() on its
    strand. An inbox that goes from idle to non-empty calls on_ready() once, so a burst of
    publishes costs one wake-up, and the connection writes everything queued in one gather.
*/
class Subscriber : public std::enable_shared_from_this<Subscriber> {
 public:
  /// `limits` outlive the subscriber (Inbox).
  Subscriber(QueueLimits const& limits, std::uint64_t id) : id_(id), inbox_(limits) {}
  Subscriber(Subscriber const&) = delete;
  Subscriber& operator=(Subscriber const&) = delete;
  virtual ~Subscriber() = default;

  std::uint64_t connection_id() const noexcept { return id_; }

  /** Queue `ev`. Replayed history is exempt from the bound, and does not use it up: history is
      bounded itself, and a resuming client must not be disconnected for the size of what it
      missed. */
  Offer offer(EventPtr const& ev, bool replay = false) {
    Shed shed;
    Offer result = Offer::queued;
    bool wake = false;
    {
      std::lock_guard lock{inbox_lock()};
      result = inbox_.offer(ev, replay, [this](StoredEvent const& e) { return wire_size(e); }, shed);
      if ((result == Offer::queued || result == Offer::reset) && !scheduled_) {
        scheduled_ = true;
        wake = true;
      }
    }
    if (shed.overflow || shed.dropped != 0 || shed.coalesced != 0) on_shed(shed);
    if (result == Offer::overflow) on_overflow();
    else if (wake) on_ready();
    return result;
  }

  /** Move everything queued into `out` (which should be empty). Returns false, and re-arms
      the wake-up, when nothing was queued. */
  bool take(std::vector<EventPtr>& out) {
    std::lock_guard lock{inbox_lock()};
    if (inbox_.take(out)) return true;
    scheduled_ = false;
    return false;
  }

  /// Whether linger() let the loop turn last time (only the draining side calls either).
  bool lingering() const noexcept { return lingered_ != 0; }

  /// Bytes of live events queued now (what the bound applies to), for herald::Metrics.
  std::size_t queued_bytes() const {
    std::lock_guard lock{inbox_lock()};
    return inbox_.live_bytes();
  }

  /** Called when a write has completed, before draining again: whether to let one more turn
      of the event loop pass first, so that what the loop is about to publish joins the next
      write. A write per event costs a syscall per event, the larger part of a delivery.

      Only under load: events queued while the write was in flight, and the queue grew in one
      of the last two turns (a publisher's message can take two turns to arrive: its read
      completes on its own strand). A wake-up does not linger (Connection::woken), so a lone
      event is written at once. At most max_linger turns, and never past half the queue bound,
      so lingering never turns into an overflow. */
  bool linger() {
    std::lock_guard lock{inbox_lock()};
    auto const n = static_cast<std::uint32_t>(std::min<std::size_t>(inbox_.size(), UINT32_MAX));
    auto const& limits = inbox_.limits();
    if (n > linger_seen_) linger_stalls_ = 0;
    else ++linger_stalls_;
    bool const more = n != 0 && linger_stalls_ < 2 && lingered_ < max_linger &&
                      inbox_.live_events() * 2 < limits.events && inbox_.live_bytes() * 2 < limits.bytes &&
                      inbox_.live_bytes() < max_linger_bytes;
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
  /** The queue hit its budget, or made room under OverflowPolicy::drop_oldest or
      coalesce_latest (`shed` says which), for the counters. Called on the publishing thread,
      without the inbox's lock. Must not block. */
  virtual void on_shed(Shed const&) {}
  /// Bytes `ev` occupies on this connection's wire (encoding it if needed).
  virtual std::size_t wire_size(StoredEvent const& ev) const = 0;
  /** A replay the hub had to read from its backplane (HubState::Replay::deferred) is queued,
      and live events of those topics follow it (`ec` clear); or it could not be read
      (error::backplane_unavailable), nothing of those topics will arrive, and the connection
      should close so that its client resumes later. Called without the hub's lock. Must not
      block. */
  virtual void on_replayed(boost::system::error_code ec) = 0;

 private:
  /** The lock of this inbox: one of a fixed set, shared by subscribers whose ids share a
      stripe. A std::mutex of its own would be 40 bytes on every idle connection; an inbox's
      lock is held only to queue or take, never while another is held, so a shared one costs
      only a rare, short wait. */
  std::mutex& inbox_lock() const noexcept {
    struct alignas(64) Stripe {
      std::mutex m;
    };
    static Stripe stripes[256];
    return stripes[id_ % 256].m;
  }

  std::uint64_t const id_;
  Inbox inbox_;
  static constexpr std::uint8_t max_linger = 16;
  static constexpr std::size_t max_linger_bytes = 64 * 1024;
  std::uint32_t linger_seen_ = 0;
  std::uint8_t lingered_ = 0;
  std::uint8_t linger_stalls_ = 0;
  bool scheduled_ = false;
};

using SubscriberPtr = std::shared_ptr<Subscriber>;

}  // namespace detail
}  // namespace herald
