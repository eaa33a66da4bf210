// How an SMTP connection uses STARTTLS: never, when offered (default), or always (else fail).
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

namespace petrel {

enum class tls_mode : std::uint8_t { disabled = 0, opportunistic = 1, required = 2 };
std::string_view to_string(tls_mode m);
std::optional<tls_mode> parse_tls_mode(std::string_view text);

}  // namespace petrel
