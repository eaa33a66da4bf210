// Metrics registry and Prometheus rendering (see metrics.hpp).
#include "actors/metrics.hpp"

#include "actors/activity.hpp"

#include <dirent.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <map>
#include <sstream>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace petrel {

histogram::histogram(std::vector<double> upper_bounds)
    : bounds_(std::move(upper_bounds)),
      buckets_(new std::atomic<std::uint64_t>[bounds_.size() + 1]) {
  for (std::size_t i = 0; i <= bounds_.size(); ++i) buckets_[i].store(0);
}

void histogram::observe(double value) {
  std::size_t i = 0;
  while (i < bounds_.size() && value > bounds_[i]) ++i;
  buckets_[i].fetch_add(1, std::memory_order_relaxed);
  count_.fetch_add(1, std::memory_order_relaxed);
  if (value > 0 && std::isfinite(value))
    sum_micro_.fetch_add(static_cast<std::uint64_t>(value * 1e6), std::memory_order_relaxed);
}

std::vector<std::uint64_t> histogram::cumulative_counts() const {
  std::vector<std::uint64_t> out(bounds_.size() + 1);
  std::uint64_t running = 0;
  for (std::size_t i = 0; i <= bounds_.size(); ++i) {
    running += buckets_[i].load(std::memory_order_relaxed);
    out[i] = running;
  }
  return out;
}

double histogram::sum() const {
  return static_cast<double>(sum_micro_.load(std::memory_order_relaxed)) / 1e6;
}

namespace {

std::string render_labels(const metric_labels& labels) {
  if (labels.empty()) return {};
  std::string out = "{";
  for (std::size_t i = 0; i < labels.size(); ++i) {
    if (i) out += ",";
    out += labels[i].first + "=\"";
    for (char c : labels[i].second) {
      if (c == '\\' || c == '"') out += '\\';
      if (c == '\n') {
        out += "\\n";
        continue;
      }
      out += c;
    }
    out += "\"";
  }
  return out + "}";
}

std::string format_number(double v) {
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.9g", v);
  return buf;
}

// Inserts le="..." into a rendered label set.
std::string with_le(const std::string& labels, const std::string& le) {
  if (labels.empty()) return "{le=\"" + le + "\"}";
  return labels.substr(0, labels.size() - 1) + ",le=\"" + le + "\"}";
}

}  // namespace

metrics_registry::family& metrics_registry::get_family(const std::string& name,
                                                       const std::string& help, kind type) {
  auto it = families_.find(name);
  if (it == families_.end()) it = families_.emplace(name, family{type, help, {}, {}, {}}).first;
  return it->second;
}

counter& metrics_registry::get_counter(const std::string& name, const std::string& help,
                                       const metric_labels& labels) {
  std::lock_guard<std::mutex> lock(mutex_);
  auto& f = get_family(name, help, kind::counter);
  auto& slot = f.counters[render_labels(labels)];
  if (!slot) slot = std::make_unique<counter>();
  return *slot;
}

gauge& metrics_registry::get_gauge(const std::string& name, const std::string& help,
                                   const metric_labels& labels) {
  std::lock_guard<std::mutex> lock(mutex_);
  auto& f = get_family(name, help, kind::gauge);
  auto& slot = f.gauges[render_labels(labels)];
  if (!slot) slot = std::make_unique<gauge>();
  return *slot;
}

histogram& metrics_registry::get_histogram(const std::string& name, const std::string& help,
                                           const std::vector<double>& bounds,
                                           const metric_labels& labels) {
  std::lock_guard<std::mutex> lock(mutex_);
  auto& f = get_family(name, help, kind::histogram);
  auto& slot = f.histograms[render_labels(labels)];
  if (!slot) slot = std::make_unique<histogram>(bounds);
  return *slot;
}

std::string metrics_registry::render() const {
  std::lock_guard<std::mutex> lock(mutex_);
  std::ostringstream out;
  for (const auto& [name, f] : families_) {
    out << "# HELP " << name << " " << f.help << "\n";
    switch (f.type) {
      case kind::counter:
        out << "# TYPE " << name << " counter\n";
        for (const auto& [labels, c] : f.counters) out << name << labels << " " << c->value() << "\n";
        break;
      case kind::gauge:
        out << "# TYPE " << name << " gauge\n";
        for (const auto& [labels, g] : f.gauges) out << name << labels << " " << g->value() << "\n";
        break;
      case kind::histogram:
        out << "# TYPE " << name << " histogram\n";
        for (const auto& [labels, h] : f.histograms) {
          auto counts = h->cumulative_counts();
          for (std::size_t i = 0; i < h->bounds().size(); ++i)
            out << name << "_bucket" << with_le(labels, format_number(h->bounds()[i])) << " "
                << counts[i] << "\n";
          out << name << "_bucket" << with_le(labels, "+Inf") << " " << counts.back() << "\n";
          out << name << "_sum" << labels << " " << format_number(h->sum()) << "\n";
          out << name << "_count" << labels << " " << counts.back() << "\n";
        }
        break;
    }
  }
  return out.str();
}

metrics_registry& metrics() {
  static metrics_registry registry;
  return registry;
}


counter& core_metrics::dane(const std::string& result) {
  return metrics().get_counter("petrel_dane_total", "DANE (RFC 7672) outcomes by TLS-RPT result type",
                               {{"result", result}});
}

core_metrics& core() {
  auto& r = metrics();
  static core_metrics m{
      r.get_counter("petrel_messages_accepted_total", "Messages accepted (durably stored)"),
      r.get_counter("petrel_recipients_accepted_total", "Recipients accepted (durably stored)"),
      r.get_counter("petrel_submissions_rejected_total", "Submissions refused before storing",
                    {{"reason", "rate_limited"}}),
      r.get_counter("petrel_submissions_rejected_total", "Submissions refused before storing",
                    {{"reason", "overloaded"}}),
      r.get_histogram("petrel_store_commit_seconds", "Time to commit one group-commit batch",
                      {0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5}),
      r.get_histogram("petrel_store_batch_operations", "Write operations per committed batch",
                      {1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048}),
      r.get_counter("petrel_store_commits_total", "Committed batches"),
      r.get_counter("petrel_store_commit_failures_total", "Batches that failed to commit"),
      r.get_gauge("petrel_recipients_waiting", "Recipients held by domain actors (queued or deferred)"),
      r.get_gauge("petrel_recipients_queue", "Recipients held by domain actors, by state", {{"state", "queued"}}),
      r.get_gauge("petrel_recipients_queue", "Recipients held by domain actors, by state", {{"state", "deferred"}}),
      r.get_gauge("petrel_domain_actors", "Live domain actors"),
      r.get_counter("petrel_actor_restarts_total", "Actors restarted by their supervisor"),
  };
  return m;
}

std::string render_process_metrics() {
  std::ostringstream out;
  long pages = 0, resident = 0;
  if (FILE* f = std::fopen("/proc/self/statm", "r")) {
    if (std::fscanf(f, "%ld %ld", &pages, &resident) != 2) resident = 0;
    std::fclose(f);
  }
  out << "# HELP process_resident_memory_bytes Resident memory size in bytes.\n"
      << "# TYPE process_resident_memory_bytes gauge\n"
      << "process_resident_memory_bytes " << resident * sysconf(_SC_PAGESIZE) << "\n";
  long fds = 0;
  if (DIR* d = opendir("/proc/self/fd")) {
    while (readdir(d)) ++fds;
    closedir(d);
    fds -= 3;  // ".", ".." and the directory's own descriptor
  }
  out << "# HELP process_open_fds Number of open file descriptors.\n"
      << "# TYPE process_open_fds gauge\n"
      << "process_open_fds " << fds << "\n";
  return out.str();
}

std::string label_limiter::label(const std::string& value, bool* settled) {
  std::lock_guard lock(mutex_);
  if (settled) *settled = true;
  if (admitted_.count(value)) return value;
  if (admitted_.size() >= limit_) return "other";
  if (settled) *settled = false;
  if (candidates_.size() > 100000) candidates_.clear();
  if (++candidates_[value] < threshold_) return "other";
  candidates_.erase(value);
  admitted_.insert(value);
  return value;
}

namespace {

// The counters of one labelled family an attempt updates, remembered per thread by the label
// values they were found with: the registry's lock, the label list and its rendering are paid
// once per series and thread, not once per attempt. Series are never removed from the registry.
class counter_cache {
 public:
  template <class Find>
  counter& get(const std::string& a, std::string_view b, Find find) {
    key_.assign(a);
    key_.push_back('\0');
    key_.append(b);
    if (auto it = cache_.find(key_); it != cache_.end()) return *it->second;
    bool settled = true;
    counter& c = find(settled);
    if (settled) {
      if (cache_.size() >= 10000) cache_.clear();
      cache_.emplace(key_, &c);
    }
    return c;
  }

 private:
  std::string key_;
  std::unordered_map<std::string, counter*> cache_;
};

}  // namespace

counter& core_metrics::http_requests(const std::string& listener, int status) {
  thread_local counter_cache by_listener;
  char code[16];
  auto n = std::snprintf(code, sizeof code, "%d", status);
  return by_listener.get(listener, std::string_view(code, static_cast<std::size_t>(n)), [&](bool&) -> counter& {
    return metrics().get_counter("petrel_http_requests_total", "HTTP responses by listener and status code",
                                 {{"listener", listener}, {"code", std::string(code, static_cast<std::size_t>(n))}});
  });
}

void core_metrics::count_outcome(const std::string& outcome, const std::string& domain, const std::string& tenant,
                                 const char* category) {
  if (auto kind = activity_of(outcome)) record_activity(*kind);
  static label_limiter domains(50, 10);
  static label_limiter tenants(1000, 1);
  thread_local counter_cache by_domain, by_tenant, failures;
  by_domain
      .get(domain, outcome,
           [&](bool& settled) -> counter& {
             return metrics().get_counter(
                 "petrel_domain_outcomes_total",
                 "Delivery outcomes by destination domain (the first 50 to reach 10 attempts; the rest \"other\")",
                 {{"domain", domains.label(domain, &settled)}, {"outcome", outcome}});
           })
      .inc();
  by_tenant
      .get(tenant, outcome,
           [&](bool& settled) -> counter& {
             return metrics().get_counter("petrel_tenant_outcomes_total",
                                          "Delivery outcomes by tenant id (1,000 at most)",
                                          {{"tenant", tenants.label(tenant, &settled)}, {"outcome", outcome}});
           })
      .inc();
  if (category)
    failures
        .get(outcome, category,
             [&](bool&) -> counter& {
               return metrics().get_counter("petrel_failures_total", "Failed attempts by outcome and classification",
                                            {{"outcome", outcome}, {"category", category}});
             })
        .inc();
}

namespace {

// The family a sample line belongs to: its metric name, less a histogram's or summary's suffix
// when that family was declared (name_bucket, name_sum, name_count).
std::string family_of(const std::string& metric, const std::map<std::string, std::string>& types) {
  for (const char* suffix : {"_bucket", "_sum", "_count"}) {
    std::string_view m(metric), x(suffix);
    if (m.size() > x.size() && m.substr(m.size() - x.size()) == x) {
      std::string base(m.substr(0, m.size() - x.size()));
      if (types.count(base)) return base;
    }
  }
  return metric;
}

std::string escape_label(const std::string& value) {
  std::string out;
  for (char c : value) {
    if (c == '\\' || c == '"') out += '\\';
    if (c == '\n') {
      out += "\\n";
      continue;
    }
    out += c;
  }
  return out;
}

}  // namespace

std::string merge_expositions(const std::vector<std::pair<std::string, std::string>>& nodes) {
  struct family {
    std::vector<std::string> header;  // HELP and TYPE lines
    std::vector<std::string> samples;
  };
  std::vector<std::string> order;
  std::map<std::string, family> families;
  std::map<std::string, std::string> types;  // family -> its TYPE line's kind
  auto get = [&](const std::string& name) -> family& {
    auto [it, added] = families.try_emplace(name);
    if (added) order.push_back(name);
    return it->second;
  };
  for (const auto& [node, text] : nodes) {
    auto label = "node=\"" + escape_label(node) + "\"";
    std::size_t pos = 0;
    while (pos < text.size()) {
      auto end = text.find('\n', pos);
      if (end == std::string::npos) end = text.size();
      std::string line = text.substr(pos, end - pos);
      pos = end + 1;
      if (line.empty()) continue;
      if (line[0] == '#') {
        // "# HELP name ..." / "# TYPE name kind"; other comments are dropped.
        std::istringstream in(line);
        std::string hash, kind, name;
        in >> hash >> kind >> name;
        if ((kind != "HELP" && kind != "TYPE") || name.empty()) continue;
        if (kind == "TYPE") {
          std::string type;
          in >> type;
          types.emplace(name, type);
        }
        auto& f = get(name);
        bool seen = false;
        for (const auto& h : f.header) seen = seen || h.rfind("# " + kind + " ", 0) == 0;
        if (!seen) f.header.push_back(line);
        continue;
      }
      auto name_end = line.find_first_of("{ ");
      if (name_end == std::string::npos) continue;
      auto metric = line.substr(0, name_end);
      std::string sample;
      if (line[name_end] == '{') {
        auto close = line.find('}', name_end);
        if (close == std::string::npos) continue;
        bool empty = close == name_end + 1;
        sample = metric + "{" + label + (empty ? "" : ",") + line.substr(name_end + 1);
      } else {
        sample = metric + "{" + label + "}" + line.substr(name_end);
      }
      get(family_of(metric, types)).samples.push_back(std::move(sample));
    }
  }
  std::ostringstream out;
  for (const auto& name : order) {
    const auto& f = families[name];
    for (const auto& h : f.header) out << h << "\n";
    for (const auto& s : f.samples) out << s << "\n";
  }
  return out.str();
}

}  // namespace petrel
