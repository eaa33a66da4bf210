// Site limits (see site_limits.hpp).
#include "actors/policy/site_limits.hpp"

#include <fnmatch.h>

namespace petrel {

const site_policy* site_policy_for(const delivery_settings& d, const std::vector<std::string>& mx_hosts) {
  for (const auto& policy : d.sites)
    for (const auto& host : mx_hosts)
      if (fnmatch(policy.match.c_str(), host.c_str(), FNM_CASEFOLD) == 0) return &policy;
  return nullptr;
}

site_limits site_limits_for(const delivery_settings& d, const std::vector<std::string>& mx_hosts,
                            bool sts_enforced) {
  site_limits limits;
  limits.connection_limit = d.connection_limit;
  limits.max_deliveries_per_connection = d.max_deliveries_per_connection;
  limits.tls = parse_tls_mode(d.tls).value_or(tls_mode::opportunistic);
  limits.verify_certificate = d.verify_certificate;
  limits.message_rate = d.message_rate.per_second;
  limits.connection_rate = d.connection_rate.per_second;
  if (const auto* policy = site_policy_for(d, mx_hosts)) {  // the first matching policy wins
    if (policy->connection_limit) limits.connection_limit = policy->connection_limit;
    if (policy->message_rate.per_second > 0) limits.message_rate = policy->message_rate.per_second;
    if (policy->connection_rate.per_second > 0) limits.connection_rate = policy->connection_rate.per_second;
    if (policy->max_deliveries_per_connection)
      limits.max_deliveries_per_connection = policy->max_deliveries_per_connection;
    if (auto mode = parse_tls_mode(policy->tls)) limits.tls = *mode;
    if (policy->verify_certificate >= 0) limits.verify_certificate = policy->verify_certificate == 1;
  }
  if (sts_enforced) {
    limits.tls = tls_mode::required;
    limits.verify_certificate = true;
  }
  limits.ready_queue = d.ready_queue ? d.ready_queue : 2 * limits.connection_limit;
  return limits;
}

}  // namespace petrel
