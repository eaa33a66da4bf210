// What Petrel's signed tokens (VERP, unsubscribe, tracking) share: their HMAC (HMAC-SHA256 over
// a label, a zero byte and the token's fields, truncated to its first N bytes) and their text
// form (the bytes as groups of Bits bits, big-endian, one character each, without padding).
#pragma once

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "net/mail/sha256.hpp"

#include <array>
#include <cstdint>
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
  HMAC(sha256_md(), secret.data(), static_cast<int>(secret.size()),
       reinterpret_cast<const unsigned char*>(input.data()), input.size(), full, &length);
  std::array<unsigned char, N> out{};
  std::memcpy(out.data(), full, N);
  return out;
}

template <int Bits>
std::string encode_token(std::string_view alphabet, const unsigned char* data, std::size_t size) {
  std::string out;
  std::uint32_t buffer = 0;
  int bits = 0;
  for (std::size_t i = 0; i < size; ++i) {
    buffer = (buffer << 8) | data[i];
    bits += 8;
    while (bits >= Bits) {
      out.push_back(alphabet[(buffer >> (bits - Bits)) & ((1u << Bits) - 1)]);
      bits -= Bits;
    }
  }
  if (bits > 0) out.push_back(alphabet[(buffer << (Bits - bits)) & ((1u << Bits) - 1)]);
  return out;
}

// value_of(c): the character's value, or -1. True when the text is exactly `size` bytes and its
// padding bits are zero (one spelling per token).
template <int Bits, class ValueOf>
bool decode_token(std::string_view text, ValueOf value_of, unsigned char* out, std::size_t size) {
  std::uint32_t buffer = 0;
  int bits = 0;
  std::size_t n = 0;
  for (char c : text) {
    int value = value_of(c);
    if (value < 0) return false;
    buffer = (buffer << Bits) | static_cast<std::uint32_t>(value);
    bits += Bits;
    if (bits >= 8) {
      if (n == size) return false;
      out[n++] = static_cast<unsigned char>(buffer >> (bits - 8));
      bits -= 8;
    }
  }
  return n == size && (buffer & ((1u << bits) - 1)) == 0;
}

}  // namespace petrel
