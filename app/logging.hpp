// Process logging: spdlog to stderr, one event per line, as key=value text or JSON objects.
#pragma once

#include "config/config.hpp"

namespace petrel {

void setup_logging(const log_settings& settings);

}  // namespace petrel
