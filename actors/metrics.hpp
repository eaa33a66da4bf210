// Process-wide metrics in the Prometheus text format: counters, gauges and histograms,
// updated with atomics from any thread (actors, Asio threads, the store thread) and rendered
// by GET /metrics. Families are registered once; hot paths keep references to their series.
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

namespace petrel {

class counter {
 public:
  void inc(std::uint64_t n = 1) { value_.fetch_add(n, std::memory_order_relaxed); }
  std::uint64_t value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<std::uint64_t> value_{0};
};

class gauge {
 public:
  void add(std::int64_t n) { value_.fetch_add(n, std::memory_order_relaxed); }
  void set(std::int64_t n) { value_.store(n, std::memory_order_relaxed); }
  std::int64_t value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<std::int64_t> value_{0};
};

class histogram {
 public:
  explicit histogram(std::vector<double> upper_bounds);
  void observe(double value);
  std::vector<std::uint64_t> cumulative_counts() const;  // one per bound, then +Inf
  const std::vector<double>& bounds() const { return bounds_; }
  double sum() const;
  std::uint64_t count() const { return count_.load(std::memory_order_relaxed); }

 private:
  std::vector<double> bounds_;
  std::unique_ptr<std::atomic<std::uint64_t>[]> buckets_;  // bounds_.size() + 1
  std::atomic<std::uint64_t> count_{0};
  std::atomic<std::uint64_t> sum_micro_{0};  // sum in millionths, integral for atomics
};

// Label pairs, rendered as {k="v",...}; values are escaped.
using metric_labels = std::vector<std::pair<std::string, std::string>>;

class metrics_registry {
 public:
  counter& get_counter(const std::string& name, const std::string& help,
                       const metric_labels& labels = {});
  gauge& get_gauge(const std::string& name, const std::string& help,
                   const metric_labels& labels = {});
  histogram& get_histogram(const std::string& name, const std::string& help,
                           const std::vector<double>& bounds, const metric_labels& labels = {});

  // The whole registry in Prometheus text exposition format 0.0.4.
  std::string render() const;

 private:
  enum class kind { counter, gauge, histogram };
  struct family {
    kind type;
    std::string help;
    std::map<std::string, std::unique_ptr<counter>> counters;
    std::map<std::string, std::unique_ptr<gauge>> gauges;
    std::map<std::string, std::unique_ptr<histogram>> histograms;
  };
  family& get_family(const std::string& name, const std::string& help, kind type);

  mutable std::mutex mutex_;
  std::map<std::string, family> families_;
};

metrics_registry& metrics();

// Bounds the values of a label (domains, sites, tenants): the first `limit` values that are
// seen `threshold` times keep their own series for good; every other value is "other". So the
// busiest destinations get their own lines and a million small domains cost one. Thread-safe.
class label_limiter {
 public:
  label_limiter(std::size_t limit, std::uint64_t threshold) : limit_(limit), threshold_(threshold) {}
  // With `settled`: set to whether this value's label can no longer change (admitted, or "other"
  // because the limit is reached), so that a caller may keep what it looked up with it.
  std::string label(const std::string& value, bool* settled = nullptr);

 private:
  std::mutex mutex_;
  std::size_t limit_;
  std::uint64_t threshold_;
  std::unordered_set<std::string> admitted_;
  std::unordered_map<std::string, std::uint64_t> candidates_;  // cleared past 100,000 entries
};

// The series Petrel updates on hot paths, registered once.
struct core_metrics {
  counter& messages_accepted;
  counter& recipients_accepted;
  counter& submissions_rejected_rate;
  counter& submissions_rejected_overload;
  histogram& store_commit_seconds;
  histogram& store_batch_operations;
  counter& store_commits;
  counter& store_commit_failures;
  gauge& recipients_waiting;
  gauge& recipients_queued;    // waiting, not yet attempted
  gauge& recipients_deferred;  // waiting after a temporary failure
  gauge& domain_actors;
  counter& actor_restarts;
  counter& http_requests(const std::string& listener, int status);
  // DANE (RFC 7672) outcomes in TLS-RPT's result types (RFC 8460 4.3): success,
  // starttls-not-supported, validation-failure (sessions), dnssec-invalid (TLSA lookups).
  counter& dane(const std::string& result);
  // An attempt's outcome (delivered, deferred, bounced, expired, suppressed, cancelled) by
  // destination domain and by tenant (both bounded), and failures by category.
  void count_outcome(const std::string& outcome, const std::string& domain, const std::string& tenant,
                     const char* category);
};
core_metrics& core();

// Adds process_resident_memory_bytes and process_open_fds, read from /proc now.
std::string render_process_metrics();

// Several nodes' expositions (node name, Prometheus text) as one: every sample gets a
// node="<name>" label, and each metric family appears once (HELP and TYPE from the first node
// that has it, then the samples of every node), as the text format requires.
std::string merge_expositions(const std::vector<std::pair<std::string, std::string>>& nodes);

}  // namespace petrel
