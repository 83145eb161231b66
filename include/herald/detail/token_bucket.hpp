#pragma once

#include <herald/config.hpp>

#include <algorithm>
#include <chrono>
#include <cstddef>

namespace herald::inline v0::detail {

/** A token bucket (the usual rate limiter): `rate` tokens a second flow into a bucket that
    holds at most `burst`, and it starts full, so a client that has been quiet may spend
    `burst` at once and then `rate` a second. A rate of 0 lets everything through. Pure: the
    caller passes the time, so tests run it in virtual time. */
class TokenBucket {
 public:
  using clock = std::chrono::steady_clock;

  TokenBucket(std::size_t rate, std::size_t burst) noexcept
      : rate_(static_cast<double>(rate)), burst_(static_cast<double>(burst)), tokens_(burst_) {}

  /// Take `n` tokens at `now`; false, taking none, when the bucket holds fewer.
  bool take(std::size_t n, clock::time_point now) noexcept {
    if (rate_ == 0) return true;
    if (last_ != clock::time_point{}) {
      std::chrono::duration<double> const elapsed = std::max(now - last_, clock::duration::zero());
      tokens_ = std::min(burst_, tokens_ + elapsed.count() * rate_);
    }
    last_ = now;
    auto const want = static_cast<double>(n);
    if (tokens_ < want) return false;
    tokens_ -= want;
    return true;
  }

 private:
  double rate_;
  double burst_;
  double tokens_;
  clock::time_point last_{};
};

}  // namespace herald::detail
