// MTA-STS (RFC 8461) as plain code: the _mta-sts TXT record, the policy file, and MX pattern
// matching. Fetching and caching happen in the resolver; enforcement in the domain actor.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "config/units.hpp"

namespace petrel {

struct mta_sts_policy {
  std::string id;                // from the TXT record
  std::string mode;              // enforce, testing, none
  std::vector<std::string> mx;   // patterns: "mail.example.com", "*.example.net"
  std::uint32_t max_age = 0;     // seconds (RFC 8461 3.2: at most 31557600)
};

// "v=STSv1; id=20160831085700Z;" -> the id (RFC 8461 3.1).
parsed<std::string> parse_mta_sts_record(std::string_view txt);
// The policy file (RFC 8461 3.2): key: value lines, CRLF or LF.
parsed<mta_sts_policy> parse_mta_sts_policy(std::string_view body);
// RFC 8461 4.1: exact match, or "*." matching exactly one leftmost label.
bool mta_sts_mx_matches(std::string_view pattern, std::string_view host);
bool mta_sts_any_matches(const std::vector<std::string>& patterns, std::string_view host);

}  // namespace petrel
