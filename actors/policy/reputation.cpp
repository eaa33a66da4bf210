#include "actors/policy/reputation.hpp"

#include <algorithm>

namespace petrel {

reputation_book::reputation_book(std::chrono::milliseconds window)
    : window_ms_(std::max<std::int64_t>(window.count(), buckets)), slice_ms_(window_ms_ / buckets) {}

void reputation_book::ledger::add(std::int64_t index, reputation_outcome what) {
  auto& s = slices[index % buckets];
  if (s.index != index) s = slice{index, {}};
  switch (what) {
    case reputation_outcome::delivered: ++s.counts.delivered; break;
    case reputation_outcome::hard_bounce: ++s.counts.hard_bounces; break;
    case reputation_outcome::complaint: ++s.counts.complaints; break;
  }
}

reputation_counts reputation_book::ledger::sum(std::int64_t newest) const {
  reputation_counts out;
  for (const auto& s : slices)
    if (s.index > newest - buckets && s.index <= newest) {
      out.delivered += s.counts.delivered;
      out.hard_bounces += s.counts.hard_bounces;
      out.complaints += s.counts.complaints;
    }
  return out;
}

void reputation_book::record(const id128& tenant, const std::string& sender_domain, reputation_outcome what,
                             std::int64_t now_ms) {
  auto index = now_ms / slice_ms_;
  std::lock_guard lock(mutex_);
  tenants_[tenant].add(index, what);
  if (sender_domain.empty()) return;
  auto& domains = sender_domains_[tenant];
  auto it = domains.find(sender_domain);
  if (it == domains.end()) {
    if (domains.size() >= max_sender_domains) return;
    it = domains.emplace(sender_domain, ledger{}).first;
  }
  it->second.add(index, what);
}

reputation_counts reputation_book::counts(const id128& tenant, std::int64_t now_ms) const {
  std::lock_guard lock(mutex_);
  auto it = tenants_.find(tenant);
  return it == tenants_.end() ? reputation_counts{} : it->second.sum(now_ms / slice_ms_);
}

std::vector<std::pair<std::string, reputation_counts>> reputation_book::sender_domain_counts(
    const id128& tenant, std::int64_t now_ms) const {
  std::vector<std::pair<std::string, reputation_counts>> out;
  std::lock_guard lock(mutex_);
  auto it = sender_domains_.find(tenant);
  if (it == sender_domains_.end()) return out;
  for (const auto& [domain, l] : it->second) out.emplace_back(domain, l.sum(now_ms / slice_ms_));
  return out;
}

void reputation_book::reset(const id128& tenant) {
  std::lock_guard lock(mutex_);
  tenants_.erase(tenant);
  sender_domains_.erase(tenant);
}

reputation_verdict judge_reputation(const reputation_counts& c, const reputation_thresholds& t) {
  if (c.volume() < t.min_volume) return {};
  // The first that holds: a pause outranks a warning, and complaints (the rarer and graver
  // signal) come before bounces at the same level.
  const struct {
    reputation_level level;
    const char* metric;
    double rate;
    double threshold;
  } checks[] = {
      {reputation_level::pause, "complaint_rate", c.complaint_rate(), t.complaint_pause},
      {reputation_level::pause, "hard_bounce_rate", c.hard_bounce_rate(), t.bounce_pause},
      {reputation_level::warning, "complaint_rate", c.complaint_rate(), t.complaint_warn},
      {reputation_level::warning, "hard_bounce_rate", c.hard_bounce_rate(), t.bounce_warn},
  };
  for (const auto& k : checks)
    if (k.rate >= k.threshold) return {k.level, k.metric, k.rate, k.threshold};
  return {};
}

const char* to_string(reputation_level l) {
  switch (l) {
    case reputation_level::ok: return "ok";
    case reputation_level::warning: return "warning";
    case reputation_level::pause: return "paused";
  }
  return "ok";
}

}  // namespace petrel
