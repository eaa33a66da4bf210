// Additive increase, multiplicative decrease of a site's connection limit: a refused
// connection or a 421 halves the connections allowed (down to 1); every `limit` deliveries
// without one add a connection back, up to the configured limit. Providers signal overload
// this way (TCP's congestion control reacts to loss the same way). Plain code.
#pragma once

#include <algorithm>
#include <cstdint>

namespace petrel {

class concurrency_control {
 public:
  explicit concurrency_control(std::uint32_t limit = 10) { configure(limit); }

  void configure(std::uint32_t limit) {
    max_ = std::max<std::uint32_t>(limit, 1);
    current_ = std::min(std::max<std::uint32_t>(current_, 1), max_);
    if (!touched_) current_ = max_;
  }
  // A sign of overload (421, refused connection): halve.
  void on_overload() {
    touched_ = true;
    current_ = std::max<std::uint32_t>(current_ / 2, 1);
    successes_ = 0;
  }
  // A delivery that went through: after `current` of them, one more connection.
  void on_success() {
    if (current_ >= max_) return;
    if (++successes_ >= current_) {
      ++current_;
      successes_ = 0;
    }
  }
  std::uint32_t limit() const { return current_; }
  std::uint32_t max() const { return max_; }

 private:
  std::uint32_t max_ = 10;
  std::uint32_t current_ = 10;
  std::uint32_t successes_ = 0;
  bool touched_ = false;
};

}  // namespace petrel
