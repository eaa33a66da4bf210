// A log file of JSON lines the operator rotates (move it, then SIGHUP: the file is reopened):
// the delivery log (one line per attempt outcome: delivered, deferred, bounced, expired,
// suppressed) and the access log (one line per HTTP request). Thread-safe; each line is written
// whole with one write.
#pragma once

#include <cstdio>
#include <mutex>
#include <string>
#include <string_view>

namespace petrel {

class delivery_log {
 public:
  // Throws std::runtime_error naming the file when it cannot be opened for appending. `kind`
  // ("delivery", "access") labels its metrics (log="...").
  explicit delivery_log(std::string path, std::string kind = "delivery");
  ~delivery_log();
  delivery_log(const delivery_log&) = delete;
  delivery_log& operator=(const delivery_log&) = delete;

  void write(std::string_view line);  // adds the newline
  // After the operator moved the file away: opens the path anew. When that fails, the old
  // descriptor stays in use (no line is lost) and the reason is returned; "" on success.
  // Both outcomes are counted in /metrics (petrel_log_reopen_failures_total{log} and the gauge
  // petrel_log_reopen_failed{log}, 1 while the log still writes to the file it had).
  std::string reopen();
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  std::string kind_;
  std::mutex mutex_;
  std::FILE* file_ = nullptr;
};

}  // namespace petrel
