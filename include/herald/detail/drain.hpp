#pragma once

// A drain's hand-off (Server::async_drain): the delay each client is told to wait, and the one
// JSON object every transport carries it in. Pure functions and a small thread-safe draw.

#include <herald/detail/decimal.hpp>
#include <herald/event.hpp>

#include <chrono>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>

namespace herald::inline v0::detail {

/** The per-client retry delays of a drain. A connection closed on the drain's schedule is
    told min + U[0, jitter]: its close is already spread over the window. A request refused
    during the drain (a new connection, a poll) is told that plus U[0, time left in the
    window], so that refused clients come back spread over the window too, not all at once.
    Thread-safe: channels draw from any strand. */
class RetrySpread {
 public:
  using clock = std::chrono::steady_clock;

  RetrySpread(std::chrono::milliseconds min, std::chrono::milliseconds jitter, clock::time_point until,
              std::function<std::uint64_t()> random)
      : min_(min), jitter_(jitter), until_(until), random_(std::move(random)) {}

  /// The delay of a connection closed on schedule.
  std::chrono::milliseconds draw() { return min_ + uniform(jitter_); }

  /// The delay of a request refused now.
  std::chrono::milliseconds draw_refusal() {
    auto const left = std::chrono::duration_cast<std::chrono::milliseconds>(until_ - clock::now());
    return draw() + uniform(left);
  }

 private:
  std::chrono::milliseconds uniform(std::chrono::milliseconds span) {
    if (span.count() <= 0) return std::chrono::milliseconds(0);
    std::lock_guard lock{mutex_};
    return std::chrono::milliseconds(static_cast<std::int64_t>(random_() % (static_cast<std::uint64_t>(span.count()) + 1)));
  }

  std::chrono::milliseconds const min_;
  std::chrono::milliseconds const jitter_;
  clock::time_point const until_;
  std::mutex mutex_;
  std::function<std::uint64_t()> random_;
};

/** What a drained client is told, on every transport: {"error":"draining","retry_ms":N} plus
    ,"cursor":C when the server knows where the client stands (cursor 0: unknown). At most 75
    bytes, so it fits a WebSocket close reason (123 bytes). */
inline std::string drain_json(std::chrono::milliseconds delay, EventId cursor) {
  std::string out = R"({"error":"draining","retry_ms":)";
  append_decimal(out, static_cast<std::uint64_t>(delay.count() < 0 ? 0 : delay.count()));
  if (cursor != 0) {
    out += R"(,"cursor":)";
    append_decimal(out, cursor);
  }
  out += '}';
  return out;
}

/// The header with a retry delay in milliseconds (Retry-After has whole seconds only).
inline constexpr std::string_view retry_ms_header = "Herald-Retry-Ms";

}  // namespace herald::detail
