// The HMAC of Petrel's signed tokens (VERP, unsubscribe, tracking): HMAC-SHA256 over a label,
// a zero byte and the token's fields, truncated to its first N bytes.
#pragma once

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <array>
#include <cstring>
#include <string>
#include <string_view>

namespace petrel {

template <std::size_t N>
std::array<unsigned char, N> token_mac(std::string_view secret, std::string_view label, const unsigned char* data,
                                       std::size_t size) {
  static_assert(N <= 32);
  std::string input(label);
  input.push_back('\0');
  input.append(reinterpret_cast<const char*>(data), size);
  unsigned char full[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  HMAC(EVP_sha256(), secret.data(), static_cast<int>(secret.size()),
       reinterpret_cast<const unsigned char*>(input.data()), input.size(), full, &length);
  std::array<unsigned char, N> out{};
  std::memcpy(out.data(), full, N);
  return out;
}

}  // namespace petrel
