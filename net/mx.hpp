// MX handling of RFC 5321 5.1 as plain code: ordering by preference with equal preferences
// randomized, null MX (RFC 7505), and the site name that groups domains sharing their MX hosts
// (all Google Workspace domains are one site, so they share one set of limits).
#pragma once

#include <cstdint>
#include <random>
#include <string>
#include <vector>

namespace petrel {

struct mx_record {
  std::uint16_t preference = 0;
  std::string host;  // lower case, no trailing dot
};

// RFC 7505: a single MX with an empty (root) host says the domain accepts no mail.
bool is_null_mx(const std::vector<mx_record>& records);

// Sorted by preference; hosts of equal preference shuffled with `rng` (RFC 5321 5.1 asks to
// spread load across them); duplicate hosts dropped.
std::vector<mx_record> order_mx(std::vector<mx_record> records, std::mt19937_64& rng);

// The site of a set of MX hosts: the sorted, distinct host names joined by ",". Independent of
// preferences and order, so every domain served by the same hosts lands on the same site.
std::string site_name(const std::vector<mx_record>& records);

// Lower case, without the trailing dot of a fully qualified name.
std::string normalize_host(std::string_view name);

}  // namespace petrel
