// Source choice (see source_choice.hpp).
#include "actors/policy/source_choice.hpp"

namespace petrel {

bool lane_takes_work(const std::string& source, bool blocked, std::int64_t blocked_until_ms,
                     std::string site, const control_snapshot& controls, std::int64_t now_ms) {
  if (blocked && (blocked_until_ms == 0 || blocked_until_ms > now_ms)) return false;
  if (controls.active("source", source, now_ms)) return false;
  if (!site.empty() && !controls.empty()) {
    if (auto hash = site.find('#'); hash != std::string::npos) site.resize(hash);
    if (controls.active("site", site, now_ms) || controls.active("source_site", source + "/" + site, now_ms))
      return false;
  }
  return true;
}

std::string choose_source(const std::vector<pool_source>& members,
                          const std::function<bool(const std::string&)>& open,
                          const std::string& avoid, double random01) {
  if (members.empty()) return std::string();
  std::vector<const pool_source*> candidates;
  std::uint64_t total = 0;
  for (const auto& member : members) {
    if (member.source == avoid || !open(member.source)) continue;
    candidates.push_back(&member);
    total += member.weight;
  }
  if (candidates.empty()) {
    if (!avoid.empty()) return avoid;
    for (const auto& member : members) {
      candidates.push_back(&member);
      total += member.weight;
    }
  }
  auto pick = static_cast<std::uint64_t>(random01 * static_cast<double>(total));
  for (const auto* member : candidates) {
    if (pick < member->weight) return member->source;
    pick -= member->weight;
  }
  return candidates.back()->source;
}

}  // namespace petrel
