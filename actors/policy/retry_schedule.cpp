// Retry delays with jitter and expiry (see retry_schedule.hpp).
#include "actors/policy/retry_schedule.hpp"

#include <algorithm>

namespace petrel {

retry_schedule::retry_schedule(std::vector<std::chrono::milliseconds> delays, double jitter,
                               std::chrono::milliseconds max_age)
    : delays_(std::move(delays)), jitter_(std::clamp(jitter, 0.0, 1.0)), max_age_(max_age) {
  if (delays_.empty()) delays_.push_back(std::chrono::minutes(5));
}

std::chrono::milliseconds retry_schedule::delay_after(std::uint32_t failed_attempts,
                                                      double random01) const {
  auto index = std::min<std::size_t>(failed_attempts == 0 ? 0 : failed_attempts - 1,
                                     delays_.size() - 1);
  auto base = static_cast<double>(delays_[index].count());
  auto factor = 1.0 + jitter_ * (2.0 * random01 - 1.0);  // within +-jitter of the base
  return std::chrono::milliseconds(static_cast<std::int64_t>(base * factor));
}

std::int64_t retry_schedule::next_attempt_ms(std::int64_t created_ms, std::int64_t now_ms,
                                             std::uint32_t failed_attempts,
                                             double random01) const {
  auto next = now_ms + delay_after(failed_attempts, random01).count();
  return next >= created_ms + max_age_.count() ? 0 : next;
}

}  // namespace petrel
