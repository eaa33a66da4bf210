// The composition root of a Petrel node: opens the store, starts the actor system and the
// HTTP listeners, and runs until SIGTERM/SIGINT (then stops in order and returns 0).
#pragma once

#include "config/config.hpp"

namespace petrel {

// Returns the process exit code.
int run_server(const config& cfg);

}  // namespace petrel
