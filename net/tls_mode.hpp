// How an SMTP connection uses STARTTLS: never, when offered (default), or always (else fail).
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

namespace petrel {

enum class tls_mode : std::uint8_t { disabled = 0, opportunistic = 1, required = 2 };

inline std::string_view to_string(tls_mode m) {
  switch (m) {
    case tls_mode::disabled: return "disabled";
    case tls_mode::opportunistic: return "opportunistic";
    case tls_mode::required: return "required";
  }
  return "unknown";
}

inline std::optional<tls_mode> parse_tls_mode(std::string_view text) {
  if (text == "disabled") return tls_mode::disabled;
  if (text == "opportunistic") return tls_mode::opportunistic;
  if (text == "required") return tls_mode::required;
  return std::nullopt;
}

}  // namespace petrel
