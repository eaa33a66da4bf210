// Encryption at rest for secrets Petrel stores (DKIM private keys): AES-256-GCM with a key
// the operator keeps outside the database. Sealed text is "enc:v1:" + base64(nonce|data|tag).
#pragma once

#include <string>
#include <string_view>

#include "config/units.hpp"

namespace petrel {

// The key from a file holding 64 hex characters (32 bytes).
parsed<std::string> load_secret_key(const std::string& path);
std::string seal_secret(const std::string& key, std::string_view plaintext);
// Sealed text is decrypted; anything else is returned as it is (stored before encryption).
parsed<std::string> open_secret(const std::string& key, std::string_view stored);
inline bool is_sealed(std::string_view stored) { return stored.rfind("enc:v1:", 0) == 0; }

}  // namespace petrel
