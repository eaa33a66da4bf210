// The routing table (see routing.hpp).
#include "actors/policy/routing.hpp"

#include <fnmatch.h>

#include <charconv>

namespace petrel {

routing_table::routing_table(const delivery_settings& delivery, std::vector<std::string> passwords) {
  for (std::size_t i = 0; i < delivery.relays.size(); ++i) {
    const auto& r = delivery.relays[i];
    relay_target t;
    t.name = r.name;
    t.host = r.host;
    t.port = r.port;
    t.tls = parse_tls_mode(r.tls).value_or(tls_mode::opportunistic);
    t.verify_certificate = r.verify_certificate;
    t.username = r.username;
    if (i < passwords.size()) t.password = std::move(passwords[i]);
    relays_.push_back(std::move(t));
  }
  for (const auto& route : delivery.routes) {
    int relay = -1;
    for (std::size_t i = 0; i < relays_.size(); ++i)
      if (!route.relay.empty() && relays_[i].name == route.relay) relay = static_cast<int>(i);
    if (!route.relay.empty() && relay < 0) continue;  // (the loader refuses such a route)
    routes_.push_back(route);
    route_relay_.push_back(relay);
  }
}

std::string routing_table::key_for(std::string_view domain, std::string_view tenant_id,
                                   std::string_view tenant_name) const {
  std::string d(domain);
  for (std::size_t i = 0; i < routes_.size(); ++i) {
    const auto& r = routes_[i];
    bool domain_matches = r.domains.empty();
    for (const auto& pattern : r.domains)
      domain_matches = domain_matches || fnmatch(pattern.c_str(), d.c_str(), FNM_CASEFOLD) == 0;
    if (!domain_matches) continue;
    bool tenant_matches = r.tenants.empty();
    for (const auto& t : r.tenants)
      tenant_matches = tenant_matches || t == tenant_id || (!tenant_name.empty() && t == tenant_name);
    if (tenant_matches) return "#" + std::to_string(i);
  }
  return std::string();
}

std::optional<routing_table::target> routing_table::resolve_key(std::string_view key) const {
  if (key.size() < 2 || key.front() != '#') return std::nullopt;
  std::size_t index = 0;
  auto [ptr, ec] = std::from_chars(key.data() + 1, key.data() + key.size(), index);
  if (ec != std::errc{} || ptr != key.data() + key.size() || index >= routes_.size()) return std::nullopt;
  target out;
  if (auto relay = route_relay_[index]; relay >= 0) {
    out.relay = &relays_[static_cast<std::size_t>(relay)];
    out.hosts.push_back({out.relay->host, out.relay->port});
    out.site = "relay:" + out.relay->name;
  } else {
    out.hosts = routes_[index].mx;
  }
  return out;
}

const relay_target* routing_table::relay(std::string_view name) const {
  for (const auto& r : relays_)
    if (r.name == name) return &r;
  return nullptr;
}

}  // namespace petrel
