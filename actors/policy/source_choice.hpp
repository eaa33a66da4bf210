// Which egress source a recipient leaves from: a lane per source in each domain actor, open
// unless its site blocked it or a control suspends the source, its site or the source at that
// site; among a pool's open sources, one by weight.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "actors/policy/shaping.hpp"

namespace petrel {

// Whether the lane of `source` takes work now. blocked_until_ms: 0 blocks until unblocked;
// site: the destination's site name ("" when its route is not known yet; a "#..." suffix,
// such as MTA-STS's, is ignored for controls).
bool lane_takes_work(const std::string& source, bool blocked, std::int64_t blocked_until_ms,
                     std::string site, const control_snapshot& controls, std::int64_t now_ms);

// A source of the pool by weight among those `open` says take work now, leaving out `avoid`
// (the source that just failed); when none is open: `avoid` if given (it waits in that lane),
// else one by weight among all. random01 is uniform in [0, 1). "" for an empty pool.
std::string choose_source(const std::vector<pool_source>& members,
                          const std::function<bool(const std::string&)>& open,
                          const std::string& avoid, double random01);

}  // namespace petrel
