// Tenant API keys: "pk_" followed by 40 base62 characters (238 random bits from OpenSSL's
// CSPRNG). Only the SHA-256 of a key is stored; a fast hash is enough because the keys are
// random and long, not human-chosen passwords.
#pragma once

#include <string>
#include <string_view>

namespace petrel {

std::string generate_api_key();
// SHA-256 of data, lower-case hex.
std::string sha256_hex(std::string_view data);
std::string hash_api_key(std::string_view key);  // lower-case hex SHA-256
std::string api_key_prefix(std::string_view key);  // "pk_" + 6 characters, for listings
// A random token of `bytes` bytes, hex-encoded (admin tokens, secrets).
std::string random_hex(std::size_t bytes);
// Compares in time independent of where the inputs differ.
bool constant_time_equal(std::string_view a, std::string_view b);

}  // namespace petrel
