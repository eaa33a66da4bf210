// DNS lookups for delivery: MX records and host addresses, through c-ares driven by Asio (its
// sockets watched by the io_context, its timeouts on an Asio timer), so no thread ever blocks
// on DNS. Results carry the TTL to cache them for, read from the answer itself.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "net/dane.hpp"
#include "net/mx.hpp"

namespace boost::asio {
class io_context;
}

namespace petrel {

enum class dns_outcome : std::uint8_t {
  found = 0,      // records of the asked type
  no_records = 1, // the name exists, without records of that type (NODATA)
  no_domain = 2,  // NXDOMAIN: permanent
  temporary = 3,  // SERVFAIL, REFUSED, timeout, malformed answer: try again later
};
std::string_view to_string(dns_outcome o);

// secure: the resolver validated the answer with DNSSEC (the AD bit), and it is trusted to
// say so (dns_client::ad_trusted); a negative answer can be secure too (authenticated denial).
struct mx_lookup {
  dns_outcome outcome = dns_outcome::temporary;
  std::vector<mx_record> records;
  std::uint32_t ttl = 0;  // seconds; for negative answers the SOA minimum (RFC 2308)
  std::string error;      // for temporary failures
  bool secure = false;
};

struct address_lookup {
  dns_outcome outcome = dns_outcome::temporary;
  std::vector<std::string> addresses;  // textual IPs; IPv4 first unless prefer_ipv6
  std::uint32_t ttl = 0;
  std::string error;
  bool secure = false;  // every answer it combines was secure
};

struct tlsa_lookup {
  dns_outcome outcome = dns_outcome::temporary;
  std::vector<tlsa_record> records;  // all of them; see usable_for_smtp
  std::uint32_t ttl = 0;
  std::string error;
  bool secure = false;
};

struct txt_lookup {
  dns_outcome outcome = dns_outcome::temporary;
  std::vector<std::string> records;  // each record's character-strings joined
  std::string error;
};

struct cname_lookup {
  dns_outcome outcome = dns_outcome::temporary;
  std::string target;  // the CNAME's target, lower case, without the final dot
  std::string error;
};

struct dns_settings {
  std::vector<std::string> servers;  // "ip:port" or "ip"; empty: /etc/resolv.conf
  std::chrono::milliseconds timeout{5000};  // per try
  int tries = 2;
  bool ipv6 = true;          // also ask AAAA for MX hosts
  bool prefer_ipv6 = false;  // put IPv6 addresses first
  // Whether the resolvers' AD bit (DNSSEC validated) is believed: only from resolvers on
  // loopback, where nobody can alter the answer on the way, or when the operator says the path
  // to them is trusted (as Postfix's smtp_dns_support_level = dnssec).
  bool dnssec_trusted = false;
  // Refuse to start unless the AD bit can be believed (for delivery.dane).
  bool require_dnssec = false;
};

// The A and AAAA answers of one host as one: the addresses of both (the preferred family
// first) with the shorter TTL of those found; else temporary when either failed for now; else
// the negative answer, remembered for the shorter of the two negative TTLs. Secure only when
// both answers are.
address_lookup combine_address_lookups(const address_lookup& v4, const address_lookup& v6,
                                       bool prefer_v6);

// Reads TTLs from a raw DNS answer: the smallest TTL of the answer records of `type`, or, when
// there are none, the negative-caching TTL of the SOA in the authority section (min of its TTL
// and MINIMUM). Returns fallback when the message has neither or is malformed.
std::uint32_t dns_answer_ttl(const unsigned char* message, std::size_t length, int type,
                             std::uint32_t fallback);

// The target of the CNAME record owned by `name` in the answer section of a raw DNS message
// (lower case, no final dot); "" when there is none; false when the message is malformed.
bool parse_cname_answer(const unsigned char* message, std::size_t length, std::string_view name, std::string& target);

// The TLSA records (type 52) in the answer section of a raw DNS message; false when it is
// malformed.
bool parse_tlsa_answer(const unsigned char* message, std::size_t length, std::vector<tlsa_record>& out);

class dns_client {
 public:
  // Throws std::runtime_error when c-ares cannot start (bad server list, no resolv.conf).
  dns_client(boost::asio::io_context& io, const dns_settings& settings);
  ~dns_client();
  dns_client(const dns_client&) = delete;
  dns_client& operator=(const dns_client&) = delete;

  // Callable from any thread; `done` runs on the client's strand, once.
  void lookup_mx(std::string domain, std::function<void(mx_lookup)> done);
  void lookup_addresses(std::string host, std::function<void(address_lookup)> done);
  void lookup_txt(std::string name, std::function<void(txt_lookup)> done);
  // The CNAME record of a name (its target, as the name's own record says).
  void lookup_cname(std::string name, std::function<void(cname_lookup)> done);
  // The TLSA records at name ("_25._tcp.mx.example.com").
  void lookup_tlsa(std::string name, std::function<void(tlsa_lookup)> done);

  // Whether answers' AD bits are believed: every resolver on loopback, or dnssec_trusted.
  bool ad_trusted() const;

  // Stops: pending lookups complete as temporary failures. Callable from any thread.
  void shutdown();

  struct impl;

 private:
  std::shared_ptr<impl> impl_;
};

}  // namespace petrel
