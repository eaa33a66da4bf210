// A rate-limit refusal that carries the limit (tenant actor -> admin/API layer), so that a 429
// can say it in headers (X-RateLimit-*, RateLimit-Policy) as well as in its detail. Read with
// read_error like any other Petrel error; rate_limit_of adds the limit.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include <caf/fwd.hpp>

namespace petrel {

struct rate_limit_facts {
  std::uint32_t burst = 0;  // requests that may come at once
  double per_second = 0;    // the sustained rate
};

caf::error make_rate_limited(std::string detail, std::int64_t retry_after_ms, rate_limit_facts limit);
std::optional<rate_limit_facts> rate_limit_of(const caf::error& e);

}  // namespace petrel
