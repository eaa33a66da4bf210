// AES-256-GCM sealing of stored secrets (see secret_box.hpp).
#include "net/secret_box.hpp"

#include "net/mail/base64.hpp"

#include <openssl/evp.h>
#include <openssl/rand.h>

#include <fstream>
#include <sstream>

namespace petrel {

namespace {

bool base64_decode(std::string_view text, std::string& out) {
  out.assign(3 * (text.size() / 4) + 3, '\0');
  int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                          reinterpret_cast<const unsigned char*>(text.data()), static_cast<int>(text.size()));
  if (n < 0) return false;
  std::size_t padding = 0;
  for (auto it = text.rbegin(); it != text.rend() && *it == '='; ++it) ++padding;
  out.resize(static_cast<std::size_t>(n) - padding);
  return true;
}

}  // namespace

parsed<std::string> load_secret_key(const std::string& path) {
  std::ifstream in(path);
  if (!in) return parsed<std::string>::failure("cannot read the key file " + path);
  std::string hex;
  in >> hex;
  if (hex.size() != 64 || hex.find_first_not_of("0123456789abcdefABCDEF") != std::string::npos)
    return parsed<std::string>::failure("the key file " + path + " must hold 64 hex characters");
  std::string key(32, '\0');
  for (std::size_t i = 0; i < 32; ++i) key[i] = static_cast<char>(std::stoi(hex.substr(2 * i, 2), nullptr, 16));
  return key;
}

std::string seal_secret(const std::string& key, std::string_view plaintext) {
  unsigned char nonce[12];
  RAND_bytes(nonce, sizeof nonce);
  std::string out(reinterpret_cast<char*>(nonce), sizeof nonce);
  std::string cipher(plaintext.size(), '\0');
  unsigned char tag[16];
  int len = 0;
  EVP_CIPHER_CTX* ctx = EVP_CIPHER_CTX_new();
  EVP_EncryptInit_ex(ctx, EVP_aes_256_gcm(), nullptr,
                     reinterpret_cast<const unsigned char*>(key.data()), nonce);
  EVP_EncryptUpdate(ctx, reinterpret_cast<unsigned char*>(cipher.data()), &len,
                    reinterpret_cast<const unsigned char*>(plaintext.data()), static_cast<int>(plaintext.size()));
  EVP_EncryptFinal_ex(ctx, nullptr, &len);
  EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, sizeof tag, tag);
  EVP_CIPHER_CTX_free(ctx);
  out += cipher;
  out.append(reinterpret_cast<char*>(tag), sizeof tag);
  return "enc:v1:" + base64_encode(out);
}

parsed<std::string> open_secret(const std::string& key, std::string_view stored) {
  if (!is_sealed(stored)) return std::string(stored);
  if (key.size() != 32) return parsed<std::string>::failure("an encrypted key needs dkim.key_encryption_key_file");
  std::string raw;
  if (!base64_decode(stored.substr(7), raw) || raw.size() < 28)
    return parsed<std::string>::failure("malformed encrypted secret");
  auto nonce = reinterpret_cast<const unsigned char*>(raw.data());
  auto cipher = raw.substr(12, raw.size() - 28);
  auto tag = raw.substr(raw.size() - 16);
  std::string plain(cipher.size(), '\0');
  int len = 0;
  EVP_CIPHER_CTX* ctx = EVP_CIPHER_CTX_new();
  EVP_DecryptInit_ex(ctx, EVP_aes_256_gcm(), nullptr, reinterpret_cast<const unsigned char*>(key.data()), nonce);
  EVP_DecryptUpdate(ctx, reinterpret_cast<unsigned char*>(plain.data()), &len,
                    reinterpret_cast<const unsigned char*>(cipher.data()), static_cast<int>(cipher.size()));
  EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, 16, tag.data());
  bool ok = EVP_DecryptFinal_ex(ctx, nullptr, &len) == 1;
  EVP_CIPHER_CTX_free(ctx);
  if (!ok) return parsed<std::string>::failure("the secret does not decrypt with this key (wrong key or tampered)");
  return plain;
}

}  // namespace petrel
