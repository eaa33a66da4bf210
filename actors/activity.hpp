// What this node did minute by minute over the last 24 hours, for the console's overview:
// recipients accepted and their outcomes, complaints, and DNS route lookups. In memory only (a restart starts it empty), updated
// with one atomic operation per count from any thread.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string_view>
#include <vector>

namespace petrel {

enum class activity : unsigned {
  accepted,
  delivered,
  deferred,
  bounced,
  complained,
  expired,
  suppressed,
  cancelled,
  dns_resolved,  // a domain's route resolved (cache misses only)
  dns_failed,    // ... or failed for now (timeouts, SERVFAIL): the resolver's health
};
inline constexpr std::size_t activity_kinds = 10;
// The names used in JSON, in the order of the enum.
const char* activity_name(activity a);
// The kind an attempt's outcome counts as ("delivered", "deferred", ...), if any.
std::optional<activity> activity_of(std::string_view outcome);

void record_activity(activity what, std::uint64_t n = 1);

struct activity_minute {
  std::int64_t start_ms = 0;
  std::array<std::uint64_t, activity_kinds> counts{};
};
// The `minutes` whole minutes up to and including the current one, oldest first (at most 1,440).
std::vector<activity_minute> activity_history(std::int64_t now_ms, int minutes);

}  // namespace petrel
