// The delivery log (see delivery_log.hpp).
#include "actors/delivery_log.hpp"

#include <cerrno>
#include <cstring>
#include <stdexcept>

#include "actors/metrics.hpp"

namespace petrel {

namespace {

counter& reopen_failures(const std::string& kind) {
  return metrics().get_counter("petrel_log_reopen_failures_total",
                               "Log reopens (SIGHUP) that failed; the old file stays in use", {{"log", kind}});
}
gauge& reopen_failed(const std::string& kind) {
  return metrics().get_gauge("petrel_log_reopen_failed",
                             "1 while a log writes to the file it had before a failed reopen", {{"log", kind}});
}
counter& write_failures(const std::string& kind) {
  return metrics().get_counter("petrel_log_write_failures_total", "Log lines that could not be written",
                               {{"log", kind}});
}

std::FILE* open_for_append(const std::string& path, const std::string& kind) {
  auto* f = std::fopen(path.c_str(), "ae");
  if (!f) throw std::runtime_error("cannot open the " + kind + " log " + path + ": " + std::strerror(errno));
  std::setvbuf(f, nullptr, _IOLBF, 1 << 16);  // one write per line
  return f;
}

}  // namespace

delivery_log::delivery_log(std::string path, std::string kind)
    : path_(std::move(path)), kind_(std::move(kind)), file_(open_for_append(path_, kind_)) {
  reopen_failures(kind_);  // listed in /metrics from the start, at 0
  reopen_failed(kind_).set(0);
  write_failures(kind_);
}

delivery_log::~delivery_log() {
  if (file_) std::fclose(file_);
}

void delivery_log::write(std::string_view line) {
  std::lock_guard lock(mutex_);
  if (!file_) return;
  if (std::fwrite(line.data(), 1, line.size(), file_) != line.size() ||
      std::fputc('\n', file_) == EOF) {
    write_failures(kind_).inc();
    std::clearerr(file_);
  }
}

std::string delivery_log::reopen() {
  std::FILE* fresh = nullptr;
  try {
    fresh = open_for_append(path_, kind_);
  } catch (const std::exception& e) {
    // Keep writing to the old file rather than losing lines.
    reopen_failures(kind_).inc();
    reopen_failed(kind_).set(1);
    return e.what();
  }
  {
    std::lock_guard lock(mutex_);
    if (file_) std::fclose(file_);
    file_ = fresh;
  }
  reopen_failed(kind_).set(0);
  return {};
}

}  // namespace petrel
