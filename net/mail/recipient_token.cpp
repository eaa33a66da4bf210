// Signed recipient tokens (see recipient_token.hpp).
#include "net/mail/recipient_token.hpp"

#include "net/mail/token_mac.hpp"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <array>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>
#include <stdexcept>

namespace petrel {

namespace {

constexpr std::string_view alphabet = "abcdefghijklmnopqrstuvwxyz234567";
constexpr std::size_t id_bytes = 16;
constexpr std::size_t mac_bytes = 10;
constexpr std::size_t token_bytes = id_bytes + mac_bytes;  // 26 bytes -> 42 characters
constexpr std::size_t token_chars = (token_bytes * 8 + 4) / 5;

std::array<unsigned char, id_bytes> id_to_bytes(const id128& id) {
  std::array<unsigned char, id_bytes> out{};
  for (int i = 0; i < 8; ++i) {
    out[static_cast<std::size_t>(i)] = static_cast<unsigned char>(id.hi >> (56 - 8 * i));
    out[static_cast<std::size_t>(8 + i)] = static_cast<unsigned char>(id.lo >> (56 - 8 * i));
  }
  return out;
}

id128 id_from_bytes(const unsigned char* b) {
  id128 id;
  for (int i = 0; i < 8; ++i) {
    id.hi = (id.hi << 8) | b[i];
    id.lo = (id.lo << 8) | b[8 + i];
  }
  return id;
}

std::array<unsigned char, mac_bytes> mac(std::string_view secret, token_purpose purpose,
                                         const unsigned char* id) {
  return token_mac<mac_bytes>(secret, purpose == token_purpose::verp ? "petrel-verp" : "petrel-unsubscribe", id,
                              id_bytes);
}

std::string base32(const unsigned char* data, std::size_t size) { return encode_token<5>(alphabet, data, size); }

bool unbase32(std::string_view text, unsigned char* out, std::size_t size) {
  return decode_token<5>(
      text,
      [](char c) {
        if (c >= 'a' && c <= 'z') return c - 'a';
        if (c >= 'A' && c <= 'Z') return c - 'A';
        if (c >= '2' && c <= '7') return c - '2' + 26;
        return -1;
      },
      out, size);
}

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i)
    if (std::tolower(static_cast<unsigned char>(a[i])) != std::tolower(static_cast<unsigned char>(b[i])))
      return false;
  return true;
}

}  // namespace

std::string make_recipient_token(std::string_view secret, token_purpose purpose,
                                 const id128& recipient) {
  std::array<unsigned char, token_bytes> raw{};
  auto id = id_to_bytes(recipient);
  std::memcpy(raw.data(), id.data(), id_bytes);
  auto m = mac(secret, purpose, id.data());
  std::memcpy(raw.data() + id_bytes, m.data(), mac_bytes);
  return base32(raw.data(), raw.size());
}

std::optional<id128> read_recipient_token(std::string_view secret, token_purpose purpose,
                                          std::string_view token) {
  if (token.size() != token_chars || secret.empty()) return std::nullopt;
  std::array<unsigned char, token_bytes> raw{};
  if (!unbase32(token, raw.data(), raw.size())) return std::nullopt;
  auto expected = mac(secret, purpose, raw.data());
  if (CRYPTO_memcmp(expected.data(), raw.data() + id_bytes, mac_bytes) != 0) return std::nullopt;
  return id_from_bytes(raw.data());
}

std::string verp_address(std::string_view secret, const id128& recipient, std::string_view domain) {
  return "b-" + make_recipient_token(secret, token_purpose::verp, recipient) + "@" +
         std::string(domain);
}

std::optional<id128> read_verp_address(std::string_view secret, std::string_view address,
                                       std::string_view domain) {
  auto at = address.rfind('@');
  if (at == std::string_view::npos || !iequals(address.substr(at + 1), domain)) return std::nullopt;
  auto local = address.substr(0, at);
  if (local.size() < 2 || (local[0] != 'b' && local[0] != 'B') || local[1] != '-') return std::nullopt;
  return read_recipient_token(secret, token_purpose::verp, local.substr(2));
}

std::string read_secret_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot read the secret file " + path + ": " + std::strerror(errno));
  std::stringstream text;
  text << in.rdbuf();
  auto s = text.str();
  auto first = s.find_first_not_of(" \t\r\n");
  auto last = s.find_last_not_of(" \t\r\n");
  s = first == std::string::npos ? std::string() : s.substr(first, last - first + 1);
  if (s.size() < 32)
    throw std::runtime_error("the secret file " + path + " must hold at least 32 bytes (e.g. " +
                             "openssl rand -hex 32 > " + path + ")");
  return s;
}

}  // namespace petrel
