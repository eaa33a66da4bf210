#include "actors/activity.hpp"

#include "storage/ids.hpp"

#include <atomic>
#include <chrono>

namespace petrel {

namespace {

constexpr std::int64_t slots = 1440;
// Each count carries the minute it belongs to in its top 20 bits (minutes since the epoch,
// modulo 2^20: about two years), so a slot starts over by itself when its minute comes round
// again, without a lock: a writer that finds an older minute swaps in the new one with its count.
constexpr int tag_shift = 44;
constexpr std::uint64_t count_mask = (std::uint64_t{1} << tag_shift) - 1;

std::uint64_t tag_of(std::int64_t minute) { return static_cast<std::uint64_t>(minute) & ((1u << 20) - 1); }

std::array<std::array<std::atomic<std::uint64_t>, activity_kinds>, slots>& table() {
  static std::array<std::array<std::atomic<std::uint64_t>, activity_kinds>, slots> t{};
  return t;
}

std::int64_t minute_now() {
  using namespace std::chrono;
  return clock_ms() / 60'000;
}

}  // namespace

const char* activity_name(activity a) {
  static const char* names[activity_kinds] = {"accepted", "delivered", "deferred",   "bounced",
                                              "complained", "expired", "suppressed", "cancelled",
                                              "dns_resolved", "dns_failed"};
  return names[static_cast<unsigned>(a)];
}

std::optional<activity> activity_of(std::string_view outcome) {
  for (unsigned i = 0; i < activity_kinds; ++i)
    if (outcome == activity_name(static_cast<activity>(i))) return static_cast<activity>(i);
  return std::nullopt;
}

void record_activity(activity what, std::uint64_t n) {
  auto minute = minute_now();
  auto tag = tag_of(minute) << tag_shift;
  auto& cell = table()[static_cast<std::size_t>(minute % slots)][static_cast<unsigned>(what)];
  auto v = cell.load(std::memory_order_relaxed);
  for (;;) {
    if ((v & ~count_mask) == tag) {
      cell.fetch_add(n, std::memory_order_relaxed);
      return;
    }
    if (cell.compare_exchange_weak(v, tag | (n & count_mask), std::memory_order_relaxed)) return;
  }
}

std::vector<activity_minute> activity_history(std::int64_t now_ms, int minutes) {
  if (minutes < 1) minutes = 1;
  if (minutes > slots) minutes = static_cast<int>(slots);
  auto current = now_ms / 60'000;
  std::vector<activity_minute> out;
  out.reserve(static_cast<std::size_t>(minutes));
  for (auto m = current - minutes + 1; m <= current; ++m) {
    activity_minute row;
    row.start_ms = m * 60'000;
    auto& slot = table()[static_cast<std::size_t>(m % slots)];
    for (unsigned k = 0; k < activity_kinds; ++k) {
      auto v = slot[k].load(std::memory_order_relaxed);
      if ((v >> tag_shift) == tag_of(m)) row.counts[k] = v & count_mask;
    }
    out.push_back(row);
  }
  return out;
}

}  // namespace petrel
