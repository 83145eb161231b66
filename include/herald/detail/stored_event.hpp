#pragma once

#include <herald/event.hpp>

#include <array>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <forward_list>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>

namespace herald::inline v0::detail {

/** Names one wire format an event is encoded into; its address is the key. A transport
    declares its own as `inline constexpr WireFormat my_format{"name"};` (sse_format.hpp,
    json_format.hpp): the set is open, and adding a format edits nothing else. `slot` is where
    the format's bytes are looked for first (herald's formats take 0 to 2), so that the lookup on
    every delivery is one load; a format found elsewhere costs a short scan, never a lock. */
struct WireFormat {
  std::string_view name;
  std::uint8_t slot = 0;
};

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

  /** The bytes of this event in `format`, encoded by `encode(event)` on first use. The bytes
      stay where they are for the event's lifetime. Any thread. */
  template <class Encode>
  std::string const& encoded(WireFormat const& format, Encode&& encode) const {
    // A slot's key is published after its bytes, so a key seen means complete bytes.
    auto const& home = slots_[format.slot % slots_.size()];
    if (home.key.load(std::memory_order_acquire) == &format) return home.bytes;
    return encoded_elsewhere(format, encode);
  }

 private:
  friend class HubState;
  struct Slot {
    std::atomic<WireFormat const*> key{nullptr};
    std::string bytes;
  };

  template <class Encode>
  std::string const& encoded_elsewhere(WireFormat const& format, Encode& encode) const {
    for (auto const& slot : slots_)
      if (slot.key.load(std::memory_order_acquire) == &format) return slot.bytes;
    std::lock_guard lock{encode_mutex_};
    for (auto const& slot : slots_)
      if (slot.key.load(std::memory_order_relaxed) == &format) return slot.bytes;
    for (auto const& [key, bytes] : more_)
      if (key == &format) return bytes;
    // Its own slot when free, else any free one; more formats than slots (a custom transport
    // beside the built-in ones) go to a list, whose elements never move.
    Slot* slot = &slots_[format.slot % slots_.size()];
    if (slot->key.load(std::memory_order_relaxed)) {
      slot = nullptr;
      for (auto& s : slots_)
        if (!s.key.load(std::memory_order_relaxed)) {
          slot = &s;
          break;
        }
      if (!slot) return more_.emplace_front(&format, encode(event_)).second;
    }
    slot->bytes = encode(event_);
    slot->key.store(&format, std::memory_order_release);
    return slot->bytes;
  }

  Event event_;
  std::chrono::steady_clock::time_point at_;
  // In place rather than behind pointers: one allocation per encoding, not two. Three: SSE,
  // the JSON envelope and the WebSocket frame.
  mutable std::array<Slot, 3> slots_{};
  mutable std::forward_list<std::pair<WireFormat const*, std::string>> more_;
  mutable std::mutex encode_mutex_;
};

using EventPtr = std::shared_ptr<StoredEvent const>;

}  // namespace herald::detail
