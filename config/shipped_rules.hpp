// The bounce classification rules shipped with Petrel (config/bounce_rules.toml, compiled into
// the binary so that a node needs no file beside it to classify).
#pragma once

#include <string_view>

namespace petrel {

std::string_view shipped_bounce_rules_text();

}  // namespace petrel
