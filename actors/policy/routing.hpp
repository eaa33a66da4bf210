// The routing table (delivery.routes, docs/configuration.md "Routing"): which recipients leave
// through a relay host (smarthost) or through fixed hosts instead of their domain's MX records.
// Entries match on the destination domain (globs) and the tenant (name or id); the first
// matching entry applies, and a recipient no entry matches goes to its domain's MX hosts.
// Domain actors look up a route key per tenant; the resolver turns a key into a route.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "config/config.hpp"
#include "net/tls_mode.hpp"

namespace petrel {

struct relay_target {
  std::string name;
  std::string host;
  std::uint16_t port = 25;
  tls_mode tls = tls_mode::opportunistic;
  bool verify_certificate = false;
  std::string username;  // SMTP AUTH when not empty
  std::string password;
};

class routing_table {
 public:
  routing_table() = default;
  // From the configuration, with each relay's password as read from its password_file.
  routing_table(const delivery_settings& delivery, std::vector<std::string> passwords);

  bool empty() const { return routes_.empty(); }

  // The route key of recipients of this tenant in this domain: "" for the domain's own MX
  // hosts, else "#<entry>" (domain names cannot start with '#').
  std::string key_for(std::string_view domain, std::string_view tenant_id, std::string_view tenant_name) const;

  // What an entry's key stands for: the relay it names, or its fixed hosts (port 0: the
  // delivery port). Nothing for a key that is not an entry of this table.
  struct target {
    const relay_target* relay = nullptr;
    std::vector<listen_address> hosts;  // the relay's host, or the entry's mx
    std::string site;                   // "relay:<name>", or "" (named after the hosts)
  };
  std::optional<target> resolve_key(std::string_view key) const;

  const relay_target* relay(std::string_view name) const;

 private:
  std::vector<relay_target> relays_;
  std::vector<route_config> routes_;
  std::vector<int> route_relay_;  // per route: index in relays_, -1 for mx
};

}  // namespace petrel
