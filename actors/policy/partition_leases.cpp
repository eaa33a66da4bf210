#include "actors/policy/partition_leases.hpp"

#include <chrono>

namespace petrel {

void partition_leases::grant(std::uint32_t partition, std::int64_t epoch, std::int64_t until_ms) {
  std::lock_guard lock(mutex_);
  if (partition < slots_.size()) slots_[partition] = slot{epoch, until_ms};
}

void partition_leases::revoke(std::uint32_t partition) {
  std::lock_guard lock(mutex_);
  if (partition < slots_.size()) slots_[partition] = slot{};
}

bool partition_leases::holds(std::uint32_t partition, std::int64_t epoch, std::int64_t at_ms) const {
  if (slots_.empty()) return true;
  std::lock_guard lock(mutex_);
  if (partition >= slots_.size()) return false;
  const auto& s = slots_[partition];
  return s.epoch != 0 && s.epoch == epoch && at_ms < s.until_ms;
}

void partition_leases::observe(std::uint32_t partition, std::int64_t epoch, std::int64_t until_ms) {
  std::lock_guard lock(mutex_);
  if (partition < seen_.size()) seen_[partition] = epoch == 0 ? slot{} : slot{epoch, until_ms};
}

bool partition_leases::in_force(std::uint32_t partition, std::int64_t epoch, std::int64_t at_ms) const {
  if (slots_.empty()) return true;
  if (holds(partition, epoch, at_ms)) return true;
  std::lock_guard lock(mutex_);
  if (partition >= seen_.size()) return false;
  const auto& s = seen_[partition];
  return s.epoch != 0 && s.epoch == epoch && at_ms < s.until_ms;
}

std::int64_t partition_leases::epoch(std::uint32_t partition) const {
  std::lock_guard lock(mutex_);
  return partition < slots_.size() ? slots_[partition].epoch : 0;
}

std::int64_t partition_leases::now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

}  // namespace petrel
