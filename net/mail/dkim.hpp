// DKIM signing (RFC 6376) with rsa-sha256 and ed25519-sha256 (RFC 8463), relaxed/relaxed
// canonicalization, over-signing, no l= tag. Written on OpenSSL: the canonicalizer is plain
// code with unit tests, and signatures are checked by independent verifiers (dkimpy,
// OpenDKIM) in the system tests. Keys are parsed once; a signer is immutable and shared.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "config/units.hpp"

namespace petrel {

enum class dkim_algorithm : std::uint8_t { rsa_sha256 = 0, ed25519_sha256 = 1 };
std::string_view to_string(dkim_algorithm a);  // "rsa-sha256", "ed25519-sha256"

// A private key with what signing needs. Immutable after creation; share it freely.
class dkim_signer {
 public:
  // From a PEM private key (PKCS#8 or traditional RSA). Fails on anything else.
  static parsed<std::shared_ptr<const dkim_signer>> from_pem(const std::string& domain,
                                                             const std::string& selector,
                                                             const std::string& pem);
  ~dkim_signer();

  const std::string& domain() const { return domain_; }
  const std::string& selector() const { return selector_; }
  dkim_algorithm algorithm() const { return algorithm_; }
  // The p= value of the DNS record: base64 of the public key (SubjectPublicKeyInfo for RSA,
  // the raw 32 bytes for Ed25519, as RFC 8463 3 requires).
  const std::string& public_key_base64() const { return public_key_; }
  // The TXT record to publish at <selector>._domainkey.<domain>.
  std::string dns_record() const;

  // The DKIM-Signature header field (folded, ending in CRLF) to put before the message.
  // message: the whole RFC 5322 message with CRLF line endings.
  std::string sign(std::string_view message, std::int64_t unix_time) const;

  struct key;

 private:
  dkim_signer() = default;
  std::string domain_, selector_, public_key_;
  dkim_algorithm algorithm_ = dkim_algorithm::rsa_sha256;
  std::unique_ptr<key> key_;
};

// A new private key as PEM (PKCS#8): RSA of `rsa_bits`, or Ed25519.
std::string generate_dkim_key(dkim_algorithm algorithm, int rsa_bits = 2048);

// Header fields signed when present, and those signed once more than they occur so that no
// instance can be added after signing (over-signing, RFC 6376 8.15).
const std::vector<std::string>& dkim_signed_headers();
const std::vector<std::string>& dkim_oversigned_headers();

// Canonicalization, exposed for tests (RFC 6376 3.4.2 and 3.4.4).
std::string dkim_relaxed_header(std::string_view name, std::string_view value);
std::string dkim_relaxed_body(std::string_view body);

}  // namespace petrel
