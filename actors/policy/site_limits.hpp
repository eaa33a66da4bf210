// The limits and TLS policy of one site (a set of MX hosts): the delivery defaults, overridden
// by the first [[delivery.sites]] pattern that matches one of the hosts, and MTA-STS enforce
// (RFC 8461 4.2: TLS with a certificate valid for the host, or nothing) on top.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "config/config.hpp"
#include "net/tls_mode.hpp"

namespace petrel {

struct site_limits {
  std::uint32_t connection_limit = 10;
  std::uint32_t max_deliveries_per_connection = 100;
  std::uint32_t ready_queue = 20;
  double message_rate = 0;     // per second; 0 unlimited
  double connection_rate = 0;  // new connections per second; 0 unlimited
  tls_mode tls = tls_mode::opportunistic;
  bool verify_certificate = false;
};

// The first [[delivery.sites]] entry whose glob matches one of the MX host names, or null.
const site_policy* site_policy_for(const delivery_settings& d, const std::vector<std::string>& mx_hosts);
site_limits site_limits_for(const delivery_settings& d, const std::vector<std::string>& mx_hosts,
                            bool sts_enforced);

}  // namespace petrel
