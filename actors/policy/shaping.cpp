// Shared traffic-shaping state (see shaping.hpp).
#include "actors/policy/shaping.hpp"

#include <fnmatch.h>

#include <algorithm>
#include <chrono>

namespace petrel {

pool_table pools_from(const egress_settings& egress, const std::vector<std::string>& source_names) {
  pool_table out;
  for (const auto& pool : egress.pools) {
    auto& members = out[pool.name];
    for (const auto& m : pool.sources) members.push_back({m.source, m.weight});
  }
  if (!out.count("default")) {
    auto& members = out["default"];
    for (const auto& name : source_names) members.push_back({name, 1});
  }
  return out;
}

control_snapshot::control_snapshot(std::vector<control_record> controls)
    : controls_(std::move(controls)) {
  for (std::size_t i = 0; i < controls_.size(); ++i)
    index_[controls_[i].kind + ":" + controls_[i].target] = i;
}

const control_record* control_snapshot::find(std::string_view kind, std::string_view target,
                                             std::int64_t now_ms) const {
  if (controls_.empty()) return nullptr;
  std::string key;
  key.reserve(kind.size() + target.size() + 1);
  key.append(kind).append(":").append(target);
  auto it = index_.find(key);
  if (it == index_.end()) return nullptr;
  const auto& c = controls_[it->second];
  if (c.until_ms != 0 && c.until_ms <= now_ms) return nullptr;
  return &c;
}

void source_gate::add_site_warmup(std::string pattern, std::vector<warmup_step> schedule, std::int64_t started_ms) {
  sites_.push_back({std::move(pattern), std::make_unique<warmup_budget>(std::move(schedule), started_ms)});
}

bool source_gate::reconfigure(double rate_per_second, std::vector<warmup_step> warmup,
                              const std::vector<std::pair<std::string, std::vector<warmup_step>>>& site_schedules) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    limiter_.configure(rate_per_second, std::max(1u, static_cast<std::uint32_t>(rate_per_second)));
  }
  warmup_.set_schedule(std::move(warmup));
  bool same_patterns = site_schedules.size() == sites_.size();
  for (const auto& [pattern, schedule] : site_schedules) {
    auto it = std::find_if(sites_.begin(), sites_.end(), [&](const auto& s) { return s.pattern == pattern; });
    if (it == sites_.end()) {
      same_patterns = false;
      continue;
    }
    it->budget->set_schedule(schedule);
  }
  return same_patterns;
}

source_gate::verdict source_gate::try_take(std::int64_t now_ms, std::int64_t& retry_at_ms,
                                           const std::vector<std::string>& mx_hosts) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (!limiter_.unlimited()) {
      auto wait = limiter_.try_acquire(std::chrono::steady_clock::now());
      if (wait.count() > 0) {
        retry_at_ms = now_ms + std::chrono::duration_cast<std::chrono::milliseconds>(wait).count() + 1;
        return verdict::rate;
      }
    }
  }
  if (!warmup_.try_take(now_ms, retry_at_ms)) return verdict::warmup;
  auto started = warmup_.start(now_ms);  // day 1 of the site budgets too is the source's
  for (auto& site : sites_) {
    bool matches = false;
    for (const auto& host : mx_hosts)
      if (fnmatch(site.pattern.c_str(), host.c_str(), FNM_CASEFOLD) == 0) matches = true;
    if (!matches) continue;
    site.budget->start(started);
    if (!site.budget->try_take(now_ms, retry_at_ms)) {
      warmup_.give_back(now_ms);  // not sent after all
      return verdict::warmup;
    }
    break;  // the first matching pattern only
  }
  return verdict::go;
}

}  // namespace petrel
