#pragma once

#include <herald/config.hpp>

#include <algorithm>
#include <chrono>
#include <cstddef>

namespace herald::inline v0::detail {

/** A token bucket (the usual rate limiter): `rate.per_second` tokens a second flow into a
    bucket that holds at most `rate.burst`, and it starts full, so a client that has been quiet
    may spend the burst at once and then the rate. A rate of 0 lets everything through. The
    rate is passed on each take, not kept: every connection has two buckets, and the rate is
    its channel's. Pure: the caller passes the time, so tests run it in virtual time. */
class TokenBucket {
 public:
  using clock = std::chrono::steady_clock;

  struct Rate {
    std::size_t per_second;
    std::size_t burst;
  };

  /// Take `n` tokens at `now`; false, taking none, when the bucket holds fewer.
  bool take(std::size_t n, clock::time_point now, Rate rate) noexcept {
    if (rate.per_second == 0) return true;
    if (last_ != clock::time_point{}) {
      std::chrono::duration<double> const elapsed = std::max(now - last_, clock::duration::zero());
      spent_ = std::max(0.0, spent_ - elapsed.count() * static_cast<double>(rate.per_second));
    }
    last_ = now;
    auto const want = static_cast<double>(n);
    if (static_cast<double>(rate.burst) - spent_ < want) return false;
    spent_ += want;
    return true;
  }

 private:
  double spent_ = 0;  // below full
  clock::time_point last_{};
};

}  // namespace herald::detail
