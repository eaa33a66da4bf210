// Identifiers of tenants, messages, recipients, keys and events: 128-bit ULIDs (48-bit
// millisecond time + 80 random bits), written as 26 Crockford base32 characters. They sort by
// creation time, need no database round trip to allocate, and are unique across nodes.
#pragma once

#include <compare>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

namespace petrel {

struct id128 {
  std::uint64_t hi = 0;
  std::uint64_t lo = 0;

  bool empty() const { return hi == 0 && lo == 0; }
  std::string str() const;  // 26 characters
  std::int64_t time_ms() const { return static_cast<std::int64_t>(hi >> 16); }
  static std::optional<id128> parse(std::string_view text);  // case-insensitive

  friend auto operator<=>(const id128&, const id128&) = default;
};

// Petrel's clock, in unix milliseconds: the wall clock read once (the first time a process asks),
// advanced by the monotonic clock from then on. Every time Petrel stores or compares (due times,
// events, ids) comes from it, so a step of the wall clock while the node runs (someone sets the
// date) neither starves a waiting retry nor fires it early: due times and timers move together.
// NTP's gradual corrections reach it (they slew the monotonic clock too); a step is taken over at
// the next start. Thread-safe.
std::int64_t clock_ms();

// A new ULID, strictly greater than every earlier one made by this process (monotonic).
id128 new_id();
// An id for something that starts at a given time (a scheduled message and its recipients:
// their expiry counts from it): that time and 80 random bits, outside new_id's monotonic
// sequence.
id128 new_id_at(std::int64_t unix_ms);

struct id128_hash {
  std::size_t operator()(const id128& id) const noexcept {
    return std::hash<std::uint64_t>{}(id.hi * 0x9E3779B97F4A7C15ull ^ id.lo);
  }
};

}  // namespace petrel
