// A rate limiter by the generic cell rate algorithm (GCRA): equivalent to a token bucket of
// `burst` tokens refilled at `rate` per second, but kept as one timestamp (the theoretical
// arrival time), so each limiter costs 16 bytes. Plain code; time is passed in, so tests
// drive it with exact virtual times.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstdint>

namespace petrel {

class rate_limiter {
 public:
  using clock = std::chrono::steady_clock;

  rate_limiter() = default;
  // rate_per_second <= 0 means unlimited.
  rate_limiter(double rate_per_second, std::uint32_t burst) { configure(rate_per_second, burst); }

  void configure(double rate_per_second, std::uint32_t burst) {
    unlimited_ = rate_per_second <= 0;
    interval_ns_ = unlimited_ ? 0 : static_cast<std::int64_t>(1e9 / rate_per_second);
    tolerance_ns_ = interval_ns_ * static_cast<std::int64_t>(std::max<std::uint32_t>(burst, 1) - 1);
  }

  // Takes n cells at `now` if allowed and returns zero; otherwise takes nothing and returns
  // how long to wait until n cells would be allowed.
  std::chrono::nanoseconds try_acquire(clock::time_point now, std::uint32_t n = 1) {
    if (unlimited_) return std::chrono::nanoseconds(0);
    auto t = now.time_since_epoch().count();
    auto tat = std::max(tat_ns_, t);
    auto new_tat = tat + interval_ns_ * static_cast<std::int64_t>(n);
    auto allowed_at = new_tat - interval_ns_ - tolerance_ns_;
    if (allowed_at > t) return std::chrono::nanoseconds(allowed_at - t);
    tat_ns_ = new_tat;
    return std::chrono::nanoseconds(0);
  }

  bool unlimited() const { return unlimited_; }

 private:
  bool unlimited_ = true;
  std::int64_t interval_ns_ = 0;
  std::int64_t tolerance_ns_ = 0;
  std::int64_t tat_ns_ = 0;
};

}  // namespace petrel
