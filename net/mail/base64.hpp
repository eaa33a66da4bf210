// Base64 (RFC 4648, standard alphabet, padded, no line breaks).
#pragma once

#include <string>
#include <string_view>

namespace petrel {

std::string base64_encode(std::string_view data);

// Standard or URL-safe base64; line breaks and spaces are skipped; false on anything else.
bool decode_base64(std::string_view text, std::string& out);

}  // namespace petrel
