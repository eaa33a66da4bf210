// Small helpers every actor implementation uses: handlers that log through spdlog instead of
// CAF's defaults (which print to stdout), and time in the store's units.
#pragma once

#include <chrono>
#include <cstdint>

#include <caf/scheduled_actor.hpp>

namespace petrel {

// Unexpected messages are logged and dropped; exceptions are logged with their what() and
// end the actor with that text as exit reason (its supervisor decides what happens next).
void install_logging_handlers(caf::scheduled_actor* self, const char* actor_name);

inline std::int64_t unix_now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace petrel
