// Base64 (RFC 4648, standard alphabet, padded, no line breaks).
#pragma once

#include <string>
#include <string_view>

namespace petrel {

std::string base64_encode(std::string_view data);

}  // namespace petrel
