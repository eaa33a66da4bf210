// API key generation and hashing (see api_key.hpp).
#include "actors/api_key.hpp"
#include "net/mail/sha256.hpp"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include <stdexcept>
#include <vector>

namespace petrel {

namespace {

void random_bytes(unsigned char* out, std::size_t n) {
  if (RAND_bytes(out, static_cast<int>(n)) != 1)
    throw std::runtime_error("the system random number generator failed");
}

std::string to_hex(const unsigned char* data, std::size_t n) {
  static constexpr char digits[] = "0123456789abcdef";
  std::string out(n * 2, '0');
  for (std::size_t i = 0; i < n; ++i) {
    out[2 * i] = digits[data[i] >> 4];
    out[2 * i + 1] = digits[data[i] & 15];
  }
  return out;
}

}  // namespace

std::string generate_api_key() {
  static constexpr char alphabet[] =
      "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
  std::string key = "pk_";
  unsigned char buf[64];
  while (key.size() < 43) {
    random_bytes(buf, sizeof buf);
    for (unsigned char b : buf) {
      if (b >= 248) continue;  // 248 = 4 * 62: reject to keep the distribution uniform
      key.push_back(alphabet[b % 62]);
      if (key.size() == 43) break;
    }
  }
  return key;
}

std::string sha256_hex(std::string_view data) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  if (EVP_Digest(data.data(), data.size(), digest, &length, sha256_md(), nullptr) != 1)
    throw std::runtime_error("SHA-256 failed");
  return to_hex(digest, length);
}

std::string hash_api_key(std::string_view key) { return sha256_hex(key); }

std::string api_key_prefix(std::string_view key) { return std::string(key.substr(0, 9)); }

std::string random_hex(std::size_t bytes) {
  std::vector<unsigned char> buf(bytes);
  random_bytes(buf.data(), bytes);
  return to_hex(buf.data(), bytes);
}

bool constant_time_equal(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  return CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

}  // namespace petrel
