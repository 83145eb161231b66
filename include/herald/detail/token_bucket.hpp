#pragma once

#include <herald/config.hpp>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstddef>

namespace herald::inline v0::detail {

/** N token buckets (the usual rate limiter) filled by one clock: bucket i gains
    `rates[i].per_second` tokens a second up to `rates[i].burst`, and starts full, so a client
    that has been quiet may spend the burst at once and then the rate. A rate of 0 lets
    everything through. The rates are passed on each take, not kept: every WebSocket connection
    has its buckets (messages and bytes), and the rates are its channel's; so they cost 8 bytes
    of time and 4 a bucket. Pure: the caller passes the time, so tests run it in virtual time. */
template <std::size_t N>
class TokenBuckets {
 public:
  using clock = std::chrono::steady_clock;

  struct Rate {
    std::size_t per_second;
    std::size_t burst;
  };

  /// What take() returns when every bucket had enough.
  static constexpr std::size_t ok = N;

  /** Take `n[i]` tokens from each bucket i at `now`, from all or from none: ok, or the index
      of the first bucket that holds fewer (then nothing is taken). */
  std::size_t take(std::array<std::size_t, N> const& n, clock::time_point now,
                   std::array<Rate, N> const& rates) noexcept {
    double elapsed = 0;
    if (last_ != clock::time_point{})
      elapsed = std::chrono::duration<double>(std::max(now - last_, clock::duration::zero())).count();
    last_ = now;
    std::size_t short_of = ok;
    for (std::size_t i = 0; i < N; ++i) {
      if (rates[i].per_second == 0) continue;
      // Spent tokens as a float: 24 bits of precision, a token in 16 at a 1 MiB burst.
      spent_[i] = static_cast<float>(
          std::max(0.0, static_cast<double>(spent_[i]) - elapsed * static_cast<double>(rates[i].per_second)));
      if (short_of == ok && static_cast<double>(rates[i].burst) - spent_[i] < static_cast<double>(n[i])) short_of = i;
    }
    if (short_of != ok) return short_of;
    for (std::size_t i = 0; i < N; ++i)
      if (rates[i].per_second != 0) spent_[i] += static_cast<float>(n[i]);
    return ok;
  }

 private:
  clock::time_point last_{};
  std::array<float, N> spent_{};  // below full
};

}  // namespace herald::detail
