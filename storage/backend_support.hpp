// What both store backends (sqlite_store.cpp, pg_store.cpp) use internally: the wall clock in the
// store's units, and the failure of one write operation that leaves its transaction usable (a
// constraint), which makes the batch replay operation by operation; the rows of a queue summary
// folded into classes.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <stdexcept>
#include <string_view>
#include <vector>

#include "storage/records.hpp"

namespace petrel::storage_detail {

inline std::int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

class operation_error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// One row of the summary query (grouped by tenant, priority and state) added to its class.
inline void add_summary_row(std::vector<queue_class_summary>& out, const id128& tenant, int priority,
                            std::string_view state, std::uint64_t count, const id128& min_id,
                            std::int64_t min_due_ms, const id128& max_id) {
  queue_class_summary* c = nullptr;
  for (auto& x : out)
    if (x.tenant_id == tenant && x.priority == priority) c = &x;
  if (!c) {
    out.push_back({tenant, priority, 0, 0, min_id.time_ms(), min_due_ms, max_id});
    c = &out.back();
  }
  (state == "deferred" ? c->deferred : c->queued) += count;
  c->oldest_ms = std::min(c->oldest_ms, min_id.time_ms());
  c->next_due_ms = std::min(c->next_due_ms, min_due_ms);
  c->max_id = std::max(c->max_id, max_id);
}

}  // namespace petrel::storage_detail
