// Tokens that name one recipient and carry an HMAC, so that forged or altered ones are refused:
// the VERP envelope sender of each delivery (b-<token>@<verp domain>: a bounce to it names its
// recipient) and the one-click unsubscribe link (<base>/u/<token>). A token is the recipient id
// (16 bytes) and the first 10 bytes of HMAC-SHA256(secret, purpose, id), in lower-case RFC 4648
// base32: 42 characters, so that a VERP local part stays far below 64 octets and survives
// MTAs that change its case.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "storage/ids.hpp"

namespace petrel {

enum class token_purpose { verp, unsubscribe };

std::string make_recipient_token(std::string_view secret, token_purpose purpose,
                                 const id128& recipient);
// The recipient, if the token is well formed and its HMAC matches (compared in constant time).
std::optional<id128> read_recipient_token(std::string_view secret, token_purpose purpose,
                                          std::string_view token);

// b-<token>@<domain>
std::string verp_address(std::string_view secret, const id128& recipient, std::string_view domain);
// The recipient of a VERP address of `domain` (domain compared case-insensitively).
std::optional<id128> read_verp_address(std::string_view secret, std::string_view address,
                                       std::string_view domain);

// Reads a secret file: at least 32 bytes; surrounding white space is not part of the key.
// Throws std::runtime_error naming the file and the problem.
std::string read_secret_file(const std::string& path);

}  // namespace petrel
