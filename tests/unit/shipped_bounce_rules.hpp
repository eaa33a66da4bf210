// The bounce rules Petrel ships (config/bounce_rules.toml), loaded once for the tests.
#pragma once

#include <stdexcept>
#include <string>

#include "config/bounce_rules.hpp"
#include "net/mail/bounce.hpp"

namespace petrel::testing {

inline const bounce_classifier& shipped_classifier() {
  static const bounce_classifier classifier = [] {
    auto rules = load_bounce_rules(std::string(PETREL_SOURCE_DIR) + "/config/bounce_rules.toml");
    if (!rules) throw std::runtime_error(rules.error());
    return bounce_classifier(*rules);
  }();
  return classifier;
}

}  // namespace petrel::testing
