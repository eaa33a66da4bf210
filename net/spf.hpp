// SPF evaluation (RFC 7208 check_host) as a coroutine over an abstract DNS: mechanisms all,
// include, a, mx, ip4, ip6, exists, ptr (never matches, as 5.5 advises), modifiers redirect
// and exp (ignored); qualifiers + - ~ ?; at most 10 DNS-querying terms (4.6.4) and 2 void
// lookups. Macros (7) are not expanded: a term using one is a permerror. Used to tell whether a
// sender domain's SPF record authorizes Petrel's egress addresses.
#pragma once

#include <string>
#include <vector>

#include <boost/asio/awaitable.hpp>

#include "net/dns.hpp"

namespace petrel {

enum class spf_result { none, neutral, pass, fail, softfail, temperror, permerror };
std::string_view to_string(spf_result r);

// What the evaluator asks of DNS; the server implements it with c-ares, tests with a map.
class spf_dns {
 public:
  virtual ~spf_dns() = default;
  virtual boost::asio::awaitable<txt_lookup> txt(std::string name) = 0;
  virtual boost::asio::awaitable<address_lookup> addresses(std::string name) = 0;
  virtual boost::asio::awaitable<mx_lookup> mx(std::string name) = 0;
};

struct spf_evaluation {
  spf_result result = spf_result::none;
  std::string explanation;  // which term decided, or what was wrong
  int lookups = 0;
};

boost::asio::awaitable<spf_evaluation> spf_check(spf_dns& dns, std::string ip, std::string domain);

}  // namespace petrel
