// IP warm-up: a new source's daily (and optionally hourly) message budget grows by day number,
// as mailbox providers expect of a new IP. The schedule is data (config); the budget is plain
// code with time passed in, so tests drive it with exact times. Day 1 is the UTC day the source
// sent its first message (persisted, so a restart does not start over; a source configured
// long before it sends starts on day 1 all the same).
#pragma once

#include <cstdint>
#include <mutex>
#include <string>
#include <vector>

namespace petrel {

struct warmup_step {
  std::uint32_t day = 1;       // from this day number on ...
  std::uint64_t per_day = 0;   // ... at most this many messages per UTC day (0: no day limit)
  std::uint64_t per_hour = 0;  // ... and per hour (0: no hour limit)
};

// The limits that apply on a day: those of the last step whose day is <= day_number (a step
// keeps applying until the next one; end a schedule with a step of 0 / 0 to lift the limits).
// Before the first step and without a schedule there is no limit.
warmup_step warmup_limits(const std::vector<warmup_step>& schedule, std::uint32_t day_number);

// Day number (1-based) of `now_ms` for a warm-up that started at `started_ms` (UTC days); 1
// while it has not started (started_ms 0).
std::uint32_t warmup_day(std::int64_t started_ms, std::int64_t now_ms);

// Messages a source has sent in the current day and hour, against its schedule. Shared by the
// site actors of one source (each takes before it sends), so it locks; the lock is held for a
// few arithmetic operations only.
class warmup_budget {
 public:
  warmup_budget() = default;
  // started_ms 0: not started yet; the first message starts day 1 (see start()).
  warmup_budget(std::vector<warmup_step> schedule, std::int64_t started_ms)
      : schedule_(std::move(schedule)), started_ms_(started_ms) {}

  bool active() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return !schedule_.empty();
  }
  // A reload: another schedule from now on; the start and today's counts stay.
  void set_schedule(std::vector<warmup_step> schedule) {
    std::lock_guard<std::mutex> lock(mutex_);
    schedule_ = std::move(schedule);
  }
  void set_started(std::int64_t started_ms) {
    std::lock_guard<std::mutex> lock(mutex_);
    started_ms_ = started_ms;
  }
  // The start, set to `now_ms` if there is none yet (the first message). Returns it.
  std::int64_t start(std::int64_t now_ms) {
    std::lock_guard<std::mutex> lock(mutex_);
    if (started_ms_ == 0) started_ms_ = now_ms;
    return started_ms_;
  }
  std::int64_t started_ms() {
    std::lock_guard<std::mutex> lock(mutex_);
    return started_ms_;
  }
  // Takes one message of today's budget if there is room (the first one starts day 1); else
  // returns false and sets `retry_at_ms` to when there will be (the next hour or day).
  bool try_take(std::int64_t now_ms, std::int64_t& retry_at_ms);
  // Returns a message taken by try_take that was not sent after all.
  void give_back(std::int64_t now_ms);
  // Counts restored after a restart (today's and this hour's use).
  void restore(std::int64_t now_ms, std::uint64_t used_today, std::uint64_t used_this_hour);

  struct snapshot {
    bool active = false;
    std::uint32_t day = 0;
    std::uint64_t per_day = 0, per_hour = 0, used_today = 0, used_this_hour = 0;
    std::int64_t started_ms = 0;
    std::int64_t day_start_ms = 0;
  };
  snapshot view(std::int64_t now_ms);

 private:
  void roll(std::int64_t now_ms);  // start a new day / hour when the clock passed one

  mutable std::mutex mutex_;
  std::vector<warmup_step> schedule_;
  std::int64_t started_ms_ = 0;
  std::int64_t day_start_ms_ = -1;
  std::int64_t hour_start_ms_ = -1;
  std::uint64_t used_today_ = 0;
  std::uint64_t used_this_hour_ = 0;
};

}  // namespace petrel
