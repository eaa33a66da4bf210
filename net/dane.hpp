// DANE for SMTP (RFC 7672) as plain data: the TLSA records of an MX host and which of them an
// SMTP client may use. The lookup is in net/dns.hpp (with the DNSSEC verdict of the resolver),
// the certificate matching in the SMTP client (OpenSSL's DANE support).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace petrel {

struct tlsa_record {
  std::uint8_t usage = 0;     // 0 PKIX-TA, 1 PKIX-EE, 2 DANE-TA, 3 DANE-EE
  std::uint8_t selector = 0;  // 0 the whole certificate, 1 its SubjectPublicKeyInfo
  std::uint8_t matching = 0;  // 0 exact, 1 SHA-256, 2 SHA-512
  std::string data;           // binary
};

// RFC 7672 3.1.3: only DANE-TA(2) and DANE-EE(3) are usable for SMTP (PKIX-* would need the
// WebPKI trust that SMTP has none of); with a known selector, a known matching type and data of
// the length that matching type gives.
inline bool usable_for_smtp(const tlsa_record& r) {
  if (r.usage != 2 && r.usage != 3) return false;
  if (r.selector > 1) return false;
  switch (r.matching) {
    case 0: return !r.data.empty();
    case 1: return r.data.size() == 32;
    case 2: return r.data.size() == 64;
    default: return false;
  }
}

inline std::vector<tlsa_record> usable_for_smtp(const std::vector<tlsa_record>& records) {
  std::vector<tlsa_record> out;
  for (const auto& r : records)
    if (usable_for_smtp(r)) out.push_back(r);
  return out;
}

}  // namespace petrel
