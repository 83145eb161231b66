#pragma once

#include <herald/event.hpp>

#include <array>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <memory>
#include <mutex>
#include <string>

namespace herald::detail {

/// Wire formats an event can be encoded into; each transport names the one it uses.
enum class WireFormat : std::uint8_t { sse, json, ws_frame, count_ };

/** An event as the hub keeps it: immutable once published, shared by history and queues.

    Each wire format is encoded at most once, by whoever needs it first, and the bytes are
    then shared by every subscriber of that format.
*/
class StoredEvent {
 public:
  StoredEvent(Event ev, std::chrono::steady_clock::time_point at) : event_(std::move(ev)), at_(at) {}
  StoredEvent(StoredEvent const&) = delete;
  StoredEvent& operator=(StoredEvent const&) = delete;
  ~StoredEvent() = default;

  Event const& event() const noexcept { return event_; }
  EventId id() const noexcept { return event_.id; }
  std::chrono::steady_clock::time_point published_at() const noexcept { return at_; }

  /// The bytes of this event in `format`, encoded by `encode(event)` on first use.
  template <class Encode>
  std::string const& encoded(WireFormat format, Encode&& encode) const {
    auto const i = static_cast<std::size_t>(format);
    if (ready_[i].load(std::memory_order_acquire)) return bytes_[i];
    // Only a miss takes the lock, so each format is encoded exactly once per event.
    std::lock_guard lock{encode_mutex_};
    if (!ready_[i].load(std::memory_order_relaxed)) {
      bytes_[i] = encode(event_);
      ready_[i].store(true, std::memory_order_release);
    }
    return bytes_[i];
  }

 private:
  friend class HubState;
  static constexpr std::size_t formats = static_cast<std::size_t>(WireFormat::count_);
  Event event_;
  std::chrono::steady_clock::time_point at_;
  // In place rather than behind pointers: one allocation per encoding, not two.
  mutable std::array<std::string, formats> bytes_{};
  mutable std::array<std::atomic<bool>, formats> ready_{};
  mutable std::mutex encode_mutex_;
};

using EventPtr = std::shared_ptr<StoredEvent const>;

}  // namespace herald::detail
