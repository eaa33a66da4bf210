// What the delivery actors share for traffic shaping (docs/shaping.md): the egress pools, the
// controls in force (suspensions by operators and response rules) and, per egress source, its
// gate (rate limit and warm-up budget, taken by every site actor of the source). The pools are
// fixed at start; the controls are a snapshot the controls actor republishes on every change;
// a gate locks for a few arithmetic operations only.
#pragma once

#include <atomic>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "actors/policy/published.hpp"
#include "actors/policy/rate_limiter.hpp"
#include "actors/policy/warmup.hpp"
#include "config/config.hpp"
#include "storage/records.hpp"

namespace petrel {

struct pool_source {
  std::string source;
  std::uint32_t weight = 1;
};
// Pool name -> its sources; always has the default pool.
using pool_table = std::unordered_map<std::string, std::vector<pool_source>>;

// The pools of the configuration; "default" holds every source (weight 1) unless configured.
// source_names: the sources that exist (egress_sources_from).
pool_table pools_from(const egress_settings& egress, const std::vector<std::string>& source_names);

// The controls in force. Keys are "<kind>:<target>", kinds: domain, site, tenant, source,
// source_site ("<source>/<site>"), tenant_site ("<tenant>/<site>").
class control_snapshot {
 public:
  control_snapshot() = default;
  explicit control_snapshot(std::vector<control_record> controls);
  // The control in force for kind:target at now_ms, or null.
  const control_record* find(std::string_view kind, std::string_view target, std::int64_t now_ms) const;
  bool active(std::string_view kind, std::string_view target, std::int64_t now_ms) const {
    return find(kind, target, now_ms) != nullptr;
  }
  const std::vector<control_record>& all() const { return controls_; }
  bool empty() const { return controls_.empty(); }

 private:
  std::vector<control_record> controls_;
  std::unordered_map<std::string, std::size_t> index_;
};

// Published by the controls actor.
using control_directory = published<control_snapshot>;

// Tenant weights (share of turns at a busy domain), published by the tenants supervisor.
class weight_directory {
 public:
  using table = std::unordered_map<id128, std::uint32_t, id128_hash>;
  using name_table = std::unordered_map<id128, std::string, id128_hash>;
  std::uint32_t weight(const id128& tenant) const {
    auto t = current_.load();
    auto it = t->find(tenant);
    return it == t->end() ? 1 : it->second;
  }
  // The tenant's name ("" when unknown): the routing table may name tenants.
  std::string name(const id128& tenant) const {
    auto t = names_.load();
    auto it = t->find(tenant);
    return it == t->end() ? std::string() : it->second;
  }
  void set(std::shared_ptr<const table> t) { current_.store(std::move(t)); }
  void set_names(std::shared_ptr<const name_table> t) { names_.store(std::move(t)); }

 private:
  std::atomic<std::shared_ptr<const table>> current_{std::make_shared<table>()};
  std::atomic<std::shared_ptr<const name_table>> names_{std::make_shared<name_table>()};
};

// Recipients waiting in memory (in domain actors), in all and per tenant: the bounds of
// submission backpressure (shaping.max_waiting_*). Domain actors count; tenants read.
class backlog_counter {
 public:
  void add(const id128& tenant, std::int64_t n) {
    total_ += n;
    std::lock_guard<std::mutex> lock(mutex_);
    auto& v = per_tenant_[tenant];
    v += n;
    if (v <= 0) per_tenant_.erase(tenant);
  }
  std::int64_t total() const { return total_.load(); }
  std::int64_t of(const id128& tenant) const {
    std::lock_guard<std::mutex> lock(mutex_);
    auto it = per_tenant_.find(tenant);
    return it == per_tenant_.end() ? 0 : it->second;
  }

 private:
  std::atomic<std::int64_t> total_{0};
  mutable std::mutex mutex_;
  std::unordered_map<id128, std::int64_t, id128_hash> per_tenant_;
};

// One egress source's shared limits: its message rate over all its sites, and its warm-up.
class source_gate {
 public:
  source_gate(double rate_per_second, std::vector<warmup_step> warmup, std::int64_t warmup_started_ms)
      : limiter_(rate_per_second, std::max(1u, static_cast<std::uint32_t>(rate_per_second))),
        warmup_(std::move(warmup), warmup_started_ms) {}

  // A warm-up budget of its own at the sites whose MX hosts match `pattern` (a glob); day 1 is
  // the source's. Added before the gate is shared.
  void add_site_warmup(std::string pattern, std::vector<warmup_step> schedule, std::int64_t started_ms);

  enum class verdict { go, rate, warmup };
  // Takes one message from the rate and the budgets (the source's, and the one of the first
  // site pattern that matches one of `mx_hosts`), or says which one is out and until when
  // (unix ms for warm-up; steady wait for the rate, in retry_at_ms as now + wait).
  verdict try_take(std::int64_t now_ms, std::int64_t& retry_at_ms,
                   const std::vector<std::string>& mx_hosts = {});
  warmup_budget& warmup() { return warmup_; }
  // A reload: the source's rate and schedule, and the schedules of its site patterns, from now
  // on (counts and starts stay). Returns false when the patterns themselves differ from the
  // gate's: those take a restart (the patterns that are the same are updated).
  bool reconfigure(double rate_per_second, std::vector<warmup_step> warmup,
                   const std::vector<std::pair<std::string, std::vector<warmup_step>>>& site_schedules);
  bool rate_limited() const { return !limiter_.unlimited(); }

  struct site_warmup {
    std::string pattern;
    std::unique_ptr<warmup_budget> budget;
  };
  std::vector<site_warmup>& site_warmups() { return sites_; }

 private:
  std::mutex mutex_;
  rate_limiter limiter_;
  warmup_budget warmup_;
  std::vector<site_warmup> sites_;  // fixed once shared
};

}  // namespace petrel
