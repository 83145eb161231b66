#pragma once

#include <cstdint>

namespace herald::inline v0 {

/** What happens when a connection's outbound queue is over its budget (ChannelOptions::overflow;
    the budgets are Limits::queue_events and Limits::queue_bytes, whatever the policy). Replayed
    history is exempt from the budgets under every policy. */
enum class OverflowPolicy : std::uint8_t {
  /// Close the connection (error::slow_consumer); the client resumes from its cursor.
  disconnect,
  /// Drop what is queued and send a reset notice; the connection stays up.
  reset,
  /** Drop the oldest queued events until the newest fits, and put a gap notice (an event of type
      `gap`) where they were: per topic, the first and last id dropped and how many, so that the
      client can fetch them again. Chat, logs: nothing lost silently, the newest first. */
  drop_oldest,
  /** Keep only the newest queued event of each topic: an older one still queued is replaced
      (never written, not counted as delivered) and no notice is sent. Tickers, cursors,
      gauges. When one event per topic is still over the budget, the oldest are dropped as
      under drop_oldest, with a gap notice. */
  coalesce_latest,
};

/// The policy's name in metrics (`herald_overflows_total{policy}`) and docs.
constexpr char const* to_string(OverflowPolicy p) noexcept {
  switch (p) {
    case OverflowPolicy::reset: return "reset";
    case OverflowPolicy::drop_oldest: return "drop_oldest";
    case OverflowPolicy::coalesce_latest: return "coalesce_latest";
    default: return "disconnect";
  }
}

}  // namespace herald
