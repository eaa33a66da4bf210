// When a supervisor may restart a crashed child, and after what delay: at most max_restarts
// within a sliding window (restart intensity, as in Erlang/OTP), with exponential backoff.
// Past the intensity the supervisor gives up and fails itself, escalating to its parent.
// Plain code so that it is tested without actors.
#pragma once

#include <algorithm>
#include <chrono>
#include <deque>

namespace petrel {

struct restart_limits {
  int max_restarts = 5;
  std::chrono::milliseconds window{60'000};
  std::chrono::milliseconds backoff{100};
  std::chrono::milliseconds backoff_max{10'000};
};

class restart_policy {
 public:
  using clock = std::chrono::steady_clock;

  explicit restart_policy(restart_limits limits = {}) : limits_(limits) {}

  // Records a crash at `now`. Returns the delay before the restart, or a negative duration
  // when the intensity is exceeded (do not restart; escalate).
  std::chrono::milliseconds on_failure(clock::time_point now) {
    while (!failures_.empty() && now - failures_.front() > limits_.window) failures_.pop_front();
    failures_.push_back(now);
    if (static_cast<int>(failures_.size()) > limits_.max_restarts)
      return std::chrono::milliseconds(-1);
    // 1st restart: backoff, 2nd: 2x, 3rd: 4x ... capped.
    auto delay = limits_.backoff;
    for (std::size_t i = 1; i < failures_.size() && delay < limits_.backoff_max; ++i) delay *= 2;
    return std::min(delay, limits_.backoff_max);
  }

  std::size_t recent_failures() const { return failures_.size(); }

 private:
  restart_limits limits_;
  std::deque<clock::time_point> failures_;
};

}  // namespace petrel
