// What both store backends (sqlite_store.cpp, pg_store.cpp) use internally: the wall clock in the
// store's units, and the failure of one write operation that leaves its transaction usable (a
// constraint), which makes the batch replay operation by operation.
#pragma once

#include <chrono>
#include <cstdint>
#include <stdexcept>

#include "storage/ids.hpp"

namespace petrel::storage_detail {

inline std::int64_t now_ms() { return clock_ms(); }

class operation_error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

}  // namespace petrel::storage_detail
