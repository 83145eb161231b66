#pragma once

#include <herald/client/options.hpp>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <random>
#include <stdexcept>
#include <utility>

namespace herald::inline v0::client {

/** Delays between reconnection attempts: exponential backoff with full jitter.

    The n-th consecutive retry waits uniformly at random in [0, min(cap, base * 2^n)]
    ("full jitter": a fleet of clients dropped together does not reconnect in lockstep).
    reset() after a healthy connection starts again from n = 0; server_retry() applies an SSE
    server's `retry:` when BackoffOptions::honor_server_retry is set.

    Not thread-safe; each client owns one on its strand.

    Example:
      herald::client::Backoff b{{.base = 100ms, .cap = 5s, .random = my_rng}};
      auto d1 = b.next();   // in [0, 100ms]
      auto d2 = b.next();   // in [0, 200ms]
*/
class Backoff {
 public:
  using duration = std::chrono::microseconds;

  /// Throws std::invalid_argument for a negative base or reset_after, or a cap below base.
  explicit Backoff(BackoffOptions options = {}) : options_(std::move(options)) {
    if (options_.base.count() < 0)
      throw std::invalid_argument("herald: BackoffOptions::base must not be negative");
    if (options_.cap < options_.base)
      throw std::invalid_argument("herald: BackoffOptions::cap must not be below base");
    if (options_.reset_after.count() < 0)
      throw std::invalid_argument("herald: BackoffOptions::reset_after must not be negative");
    if (!options_.random) {
      auto engine = std::make_shared<std::mt19937_64>(std::random_device{}());
      options_.random = [engine] { return (*engine)(); };
    }
  }

  /// The delay before the next attempt; each call counts one more failed attempt.
  duration next() {
    duration const top = ceiling();
    if (attempt_ < 62) ++attempt_;
    auto const span = static_cast<std::uint64_t>(top.count());
    if (span == 0) return duration::zero();
    std::uint64_t const r = options_.random();
    return duration(static_cast<duration::rep>(span == UINT64_MAX ? r : r % (span + 1)));
  }

  /// The upper bound of the delay next() returns now.
  duration ceiling() const noexcept {
    auto const base = std::chrono::duration_cast<duration>(effective_base()).count();
    auto const cap = std::chrono::duration_cast<duration>(effective_cap()).count();
    // base * 2^attempt, saturating at cap.
    auto value = base;
    for (unsigned i = 0; i < attempt_ && value < cap; ++i) value = value > cap / 2 ? cap : value * 2;
    return duration(std::min(value, cap));
  }

  /// A healthy connection: the next delay is drawn from [0, base] again.
  void reset() noexcept { attempt_ = 0; }

  /// The server asked for this reconnection time (SSE `retry:`).
  void server_retry(std::chrono::milliseconds delay) noexcept {
    if (options_.honor_server_retry && delay.count() >= 0) server_retry_ = delay;
  }

  /// Failed attempts since the last reset().
  unsigned attempts() const noexcept { return attempt_; }

  /// Whether a connection open for `open_for` counts as healthy (BackoffOptions::reset_after).
  bool healthy(std::chrono::steady_clock::duration open_for) const noexcept {
    return open_for >= options_.reset_after;
  }

  BackoffOptions const& options() const noexcept { return options_; }

 private:
  std::chrono::milliseconds effective_base() const noexcept {
    return server_retry_ ? *server_retry_ : options_.base;
  }
  std::chrono::milliseconds effective_cap() const noexcept {
    return std::max(options_.cap, effective_base());
  }

  BackoffOptions options_;
  std::optional<std::chrono::milliseconds> server_retry_;
  unsigned attempt_ = 0;
};

}  // namespace herald::client
