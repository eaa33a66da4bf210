// When a deferred recipient is tried again: a list of delays (the last one repeats), each
// spread by a random jitter so that recipients deferred together do not return together, and
// a maximum age past which a recipient expires. Plain code; randomness is passed in.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

namespace petrel {

class retry_schedule {
 public:
  retry_schedule(std::vector<std::chrono::milliseconds> delays, double jitter,
                 std::chrono::milliseconds max_age);

  // The delay after the n-th failed attempt (n >= 1); random01 in [0, 1) picks the jitter.
  std::chrono::milliseconds delay_after(std::uint32_t failed_attempts, double random01) const;

  // When to try next after a failure at now_ms, for a recipient accepted at created_ms, or 0
  // when that would be at or past its expiry (created + max_age): then it expires now rather
  // than wait for an attempt it may not make.
  std::int64_t next_attempt_ms(std::int64_t created_ms, std::int64_t now_ms,
                               std::uint32_t failed_attempts, double random01) const;

  bool expired(std::int64_t created_ms, std::int64_t now_ms) const {
    return now_ms >= created_ms + max_age_.count();
  }
  std::chrono::milliseconds max_age() const { return max_age_; }

 private:
  std::vector<std::chrono::milliseconds> delays_;
  double jitter_;
  std::chrono::milliseconds max_age_;
};

}  // namespace petrel
