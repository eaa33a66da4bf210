// The delivery log (see delivery_log.hpp).
#include "actors/delivery_log.hpp"

#include <cerrno>
#include <cstring>
#include <stdexcept>

namespace petrel {

namespace {

std::FILE* open_for_append(const std::string& path) {
  auto* f = std::fopen(path.c_str(), "ae");
  if (!f) throw std::runtime_error("cannot open the delivery log " + path + ": " + std::strerror(errno));
  std::setvbuf(f, nullptr, _IOLBF, 1 << 16);  // one write per line
  return f;
}

}  // namespace

delivery_log::delivery_log(std::string path) : path_(std::move(path)), file_(open_for_append(path_)) {}

delivery_log::~delivery_log() {
  if (file_) std::fclose(file_);
}

void delivery_log::write(std::string_view line) {
  std::lock_guard lock(mutex_);
  if (!file_) return;
  std::fwrite(line.data(), 1, line.size(), file_);
  std::fputc('\n', file_);
}

void delivery_log::reopen() {
  std::FILE* fresh = nullptr;
  try {
    fresh = open_for_append(path_);
  } catch (const std::exception&) {
    return;  // keep writing to the old file rather than losing lines
  }
  std::lock_guard lock(mutex_);
  if (file_) std::fclose(file_);
  file_ = fresh;
}

}  // namespace petrel
