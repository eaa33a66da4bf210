// The reputation guard's arithmetic (docs/sending.md, "Reputation guard"): each tenant's final
// outcomes over a rolling window (delivered, hard bounces, complaints), and what its rates mean
// against the thresholds: nothing, a warning, or a pause. Outcomes of the sandbox are not
// counted. Thread-safe: domain and bounces actors write, the tenants supervisor reads.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "storage/ids.hpp"

namespace petrel {

enum class reputation_outcome { delivered, hard_bounce, complaint };

struct reputation_counts {
  std::uint64_t delivered = 0;
  std::uint64_t hard_bounces = 0;
  std::uint64_t complaints = 0;
  // Complaints per delivered message; hard bounces per final attempt (delivered + hard bounces).
  double complaint_rate() const { return delivered ? static_cast<double>(complaints) / delivered : 0; }
  double hard_bounce_rate() const {
    auto n = delivered + hard_bounces;
    return n ? static_cast<double>(hard_bounces) / n : 0;
  }
  std::uint64_t volume() const { return delivered + hard_bounces; }
};

// Counts per tenant, and per sender domain (the From domain) of each tenant, in `buckets`
// slices of the window; a slice older than the window is dropped as time moves on. A tenant's
// first max_sender_domains sender domains are counted apart (a tenant may write any From
// domain: memory stays bounded); all of them count toward the tenant.
class reputation_book {
 public:
  explicit reputation_book(std::chrono::milliseconds window = std::chrono::hours(24));
  void record(const id128& tenant, reputation_outcome what, std::int64_t now_ms) {
    record(tenant, {}, what, now_ms);
  }
  // sender_domain "": unknown (the tenant's counts only).
  void record(const id128& tenant, const std::string& sender_domain, reputation_outcome what, std::int64_t now_ms);
  reputation_counts counts(const id128& tenant, std::int64_t now_ms) const;
  // The tenant's sender domains with their counts, by name.
  std::vector<std::pair<std::string, reputation_counts>> sender_domain_counts(const id128& tenant,
                                                                              std::int64_t now_ms) const;
  // Starts the tenant's window over, its sender domains' too (an operator resumed it).
  void reset(const id128& tenant);

  static constexpr std::size_t max_sender_domains = 64;
  std::chrono::milliseconds window() const { return std::chrono::milliseconds(window_ms_); }

  static constexpr int buckets = 48;

 private:
  struct slice {
    std::int64_t index = -1;  // which slice of time (now / slice width)
    reputation_counts counts;
  };
  struct ledger {
    slice slices[buckets];
    void add(std::int64_t index, reputation_outcome what);
    reputation_counts sum(std::int64_t newest) const;
  };
  std::int64_t window_ms_;
  std::int64_t slice_ms_;
  mutable std::mutex mutex_;
  std::unordered_map<id128, ledger, id128_hash> tenants_;
  std::unordered_map<id128, std::map<std::string, ledger>, id128_hash> sender_domains_;
};

struct reputation_thresholds {
  std::uint64_t min_volume = 500;  // final attempts in the window before rates count
  double complaint_warn = 0.001;
  double complaint_pause = 0.003;
  double bounce_warn = 0.05;
  double bounce_pause = 0.10;
};

enum class reputation_level { ok, warning, pause };

struct reputation_verdict {
  reputation_level level = reputation_level::ok;
  // What crossed the highest threshold reached: "complaint_rate" or "hard_bounce_rate".
  std::string metric;
  double rate = 0;
  double threshold = 0;
};

reputation_verdict judge_reputation(const reputation_counts& c, const reputation_thresholds& t);
const char* to_string(reputation_level l);

}  // namespace petrel
