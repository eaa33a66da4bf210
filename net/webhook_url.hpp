// A webhook endpoint's URL as a tenant registers it (docs/webhooks.md): hostile until checked,
// so parsed strictly; apart from the rest of webhook delivery so that it can be fuzzed alone
// (tests/fuzz/fuzz_webhook_url.cpp).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "config/units.hpp"

namespace petrel {

struct webhook_url {
  bool https = true;
  std::string host;  // lower case; an IPv6 literal without brackets
  std::uint16_t port = 443;
  std::string target = "/";  // path and query
};

// http(s)://host[:port][/path][?query]; no user info, no fragment, at most 2,000 octets.
parsed<webhook_url> parse_webhook_url(std::string_view url, bool allow_http);

}  // namespace petrel
