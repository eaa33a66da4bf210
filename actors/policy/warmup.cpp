// IP warm-up budgets (see warmup.hpp).
#include "actors/policy/warmup.hpp"

namespace petrel {

namespace {
constexpr std::int64_t day_ms = 86'400'000;
constexpr std::int64_t hour_ms = 3'600'000;
}  // namespace

warmup_step warmup_limits(const std::vector<warmup_step>& schedule, std::uint32_t day_number) {
  warmup_step out;  // no limits
  out.day = day_number;
  for (const auto& step : schedule)
    if (step.day <= day_number) out = step;
  return out;
}

std::uint32_t warmup_day(std::int64_t started_ms, std::int64_t now_ms) {
  if (started_ms <= 0 || now_ms < started_ms) return 1;
  return static_cast<std::uint32_t>(now_ms / day_ms - started_ms / day_ms) + 1;
}

void warmup_budget::roll(std::int64_t now_ms) {
  auto day_start = now_ms - now_ms % day_ms;
  auto hour_start = now_ms - now_ms % hour_ms;
  if (day_start != day_start_ms_) {
    day_start_ms_ = day_start;
    used_today_ = 0;
  }
  if (hour_start != hour_start_ms_) {
    hour_start_ms_ = hour_start;
    used_this_hour_ = 0;
  }
}

bool warmup_budget::try_take(std::int64_t now_ms, std::int64_t& retry_at_ms) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (schedule_.empty()) return true;
  if (started_ms_ == 0) started_ms_ = now_ms;  // the first message: day 1 begins
  roll(now_ms);
  auto limits = warmup_limits(schedule_, warmup_day(started_ms_, now_ms));
  if (limits.per_day && used_today_ >= limits.per_day) {
    retry_at_ms = day_start_ms_ + day_ms;
    return false;
  }
  if (limits.per_hour && used_this_hour_ >= limits.per_hour) {
    retry_at_ms = hour_start_ms_ + hour_ms;
    return false;
  }
  ++used_today_;
  ++used_this_hour_;
  return true;
}

void warmup_budget::give_back(std::int64_t now_ms) {
  std::lock_guard<std::mutex> lock(mutex_);
  roll(now_ms);
  if (used_today_) --used_today_;
  if (used_this_hour_) --used_this_hour_;
}

void warmup_budget::restore(std::int64_t now_ms, std::uint64_t used_today, std::uint64_t used_this_hour) {
  std::lock_guard<std::mutex> lock(mutex_);
  roll(now_ms);
  used_today_ = std::max(used_today_, used_today);
  used_this_hour_ = std::max(used_this_hour_, used_this_hour);
}

warmup_budget::snapshot warmup_budget::view(std::int64_t now_ms) {
  std::lock_guard<std::mutex> lock(mutex_);
  snapshot out;
  out.active = !schedule_.empty();
  if (!out.active) return out;
  roll(now_ms);
  out.day = warmup_day(started_ms_, now_ms);
  auto limits = warmup_limits(schedule_, out.day);
  out.per_day = limits.per_day;
  out.per_hour = limits.per_hour;
  out.used_today = used_today_;
  out.used_this_hour = used_this_hour_;
  out.started_ms = started_ms_;
  out.day_start_ms = day_start_ms_;
  return out;
}

}  // namespace petrel
