// Which IP addresses Petrel may connect to on a client's say-so (webhook endpoints, MX hosts,
// address literals): public ones only unless the operator allows private networks, and no
// numeric host spellings that a resolver would quietly turn into an address.
#pragma once

#include <string_view>

namespace petrel {

// False for loopback, private (RFC 1918, fc00::/7), link-local, CGNAT, multicast, unspecified
// and other special-use addresses; also for text that is not an IP address.
bool is_public_address(std::string_view ip);
// A dotted-quad IPv4 or an IPv6 address (strict inet_pton syntax).
bool is_ip_literal(std::string_view host);
// A host name that only a permissive resolver reads as an address: a last label that is all
// digits or hex ("2130706433", "0x7f000001", "127.1", "1.0x7f"), which no DNS name has
// (RFC 3696 2), while not a strict IP literal.
bool is_numeric_host_form(std::string_view host);

}  // namespace petrel
