// The resolver actor: turns a destination domain into a route (RFC 5321 5.1): MX hosts in
// order (equal preferences shuffled), each with its addresses, or the domain's own A/AAAA
// when it has no MX, or a permanent failure for NXDOMAIN and null MX (RFC 7505), or a
// temporary one. Answers are cached for their TTL (bounded by dns.min_ttl/max_ttl) in bounded
// caches, negative ones in their own, and concurrent requests for a domain share one lookup.
// The lookups run on the I/O threads (c-ares); answers come back as messages.
//
// DANE (RFC 7672, delivery.dane): when the MX answer (or the domain's own address answer
// without MX) and a host's address answers are DNSSEC-secure, the host's TLSA records
// (_<port>._tcp.<host>) are looked up too; secure, usable ones go with the host in the route,
// and the SMTP session then requires TLS that matches them. A TLSA lookup that fails for a
// secure host (SERVFAIL: bogus or unreachable) makes the host unusable for now (RFC 7672
// 2.2); an insecure or empty answer leaves the host to opportunistic TLS as before.
#include <caf/all.hpp>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <random>
#include <unordered_map>

#include "actors/activity.hpp"
#include "actors/actor_support.hpp"
#include "actors/metrics.hpp"
#include "actors/policy/route_cache.hpp"
#include "actors/services.hpp"
#include "actors/spawn.hpp"
#include "config/units.hpp"
#include "net/ip_policy.hpp"

namespace petrel {

namespace {

// A cached MTA-STS policy, kept for its max_age.
struct sts_policy {
  std::string id;
  std::string mode;
  std::vector<std::string> mx;
};

struct pending_route {
  std::chrono::steady_clock::time_point started = std::chrono::steady_clock::now();
  std::optional<route> awaiting_sts;  // resolved, waiting for its MTA-STS policy
  std::vector<caf::typed_response_promise<route>> waiting;
  std::vector<mx_record> mx;      // in order
  bool implicit_mx = false;       // no MX: the domain itself is the host
  bool mx_secure = false;         // the MX answer (or NODATA) was DNSSEC-validated
  std::uint32_t mx_ttl = 0;
  std::size_t unresolved = 0;     // hosts whose addresses are still being looked up
  // A route of the routing table ("#<entry>"): its relay or fixed hosts, configured by the
  // operator, so loopback and private addresses are allowed and no MTA-STS applies.
  bool configured = false;
  std::string site;   // "relay:<name>", or "" (named after the hosts)
  std::string relay;  // the relay's name, or ""
  std::unordered_map<std::string, std::uint16_t> ports;  // by host (0: delivery.port)
};

struct resolver_state {
  resolver_state() = default;
  std::shared_ptr<delivery_runtime> runtime;
  dns_config settings;
  expiring_cache<route> routes{100000};
  expiring_cache<route> failures{10000};  // permanent and temporary failures
  expiring_cache<address_lookup> hosts{100000};
  expiring_cache<tlsa_lookup> tlsa{100000};  // DANE: by host, for secure hosts only
  bool dane = false;                          // delivery.dane
  std::uint16_t port = 25;                    // delivery.port: the port of the TLSA name
  expiring_cache<sts_policy> sts{100000};
  mta_sts_config sts_settings;
  // delivery.allow_private_destinations: MX hosts and address literals on loopback, private
  // or link-local networks are refused unless this is set (net/ip_policy.hpp).
  bool allow_private = false;
  std::shared_ptr<const routing_table> routing;
  std::shared_ptr<config_directory> live;  // a reload's routing table replaces `routing`
  std::unordered_map<std::string, pending_route> pending;  // by domain
  std::unordered_map<std::string, std::vector<std::string>> host_waiters;  // host -> domains
  std::mt19937_64 rng{std::random_device{}()};
  static inline const char* name = "resolver";
};

using resolver_pointer = resolver_actor::stateful_pointer<resolver_state>;

counter& dns_lookups(const char* type) {
  return metrics().get_counter("petrel_dns_lookups_total", "DNS queries sent", {{"type", type}});
}
counter& sts_events(const char* event) {
  return metrics().get_counter("petrel_mta_sts_total", "MTA-STS events", {{"event", event}});
}

counter& route_requests(const char* result) {
  return metrics().get_counter("petrel_dns_route_requests_total",
                               "Route requests by cache result", {{"result", result}});
}

std::int64_t expiry(const resolver_state& st, std::uint32_t ttl_seconds) {
  auto ttl = std::chrono::milliseconds(static_cast<std::int64_t>(ttl_seconds) * 1000);
  ttl = std::clamp(ttl, st.settings.min_ttl, st.settings.max_ttl);
  return unix_now_ms() + ttl.count();
}

void finish(resolver_pointer self, const std::string& domain, route r) {
  auto& st = self->state;
  auto it = st.pending.find(domain);
  if (it == st.pending.end()) return;
  if (r.status == route_status::ok)
    st.routes.put(domain, r, r.expires_at_ms);
  else
    st.failures.put(domain, r, r.expires_at_ms);
  metrics()
      .get_histogram("petrel_dns_route_seconds",
                     "Time to resolve a domain's route (MX and addresses), cache misses only",
                     {0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 2, 5, 10, 30})
      .observe(std::chrono::duration<double>(std::chrono::steady_clock::now() - it->second.started)
                   .count());
  record_activity(r.status == route_status::temporary ? activity::dns_failed : activity::dns_resolved);
  if (r.status != route_status::ok)
    spdlog::info("dns.route_failed domain={} status={} error=\"{}\"", domain,
                 r.status == route_status::permanent ? "permanent" : "temporary", r.error);
  for (auto& p : it->second.waiting) p.deliver(r);
  st.pending.erase(it);
}

route failure(const resolver_state& st, route_status status, std::string error, std::uint32_t ttl) {
  route r;
  r.status = status;
  r.error = std::move(error);
  r.expires_at_ms = status == route_status::temporary
                        ? unix_now_ms() + st.settings.temporary_failure_ttl.count()
                        : expiry(st, ttl);
  return r;
}

// The TLSA records that go with a host into a domain's route: usable ones when the chain to
// them was secure. Sets `error` when the host must not be used now; lowers `ttl` to the TLSA
// answer's, so that the route is not kept past it.
std::vector<tlsa_record> dane_records(resolver_state& st, const pending_route& p, const std::string& host,
                                      const address_lookup& a, std::int64_t now, std::string& error,
                                      std::uint32_t& ttl) {
  if (!st.dane || p.configured || !p.mx_secure || !a.secure) return {};
  const auto* t = st.tlsa.find(host, now);
  if (!t) return {};
  if (t->outcome != dns_outcome::temporary) ttl = std::min(ttl, t->ttl);
  if (t->outcome == dns_outcome::temporary) {
    error = "DANE: the TLSA records of " + host + " could not be had securely (" + t->error + ")";
    return {};
  }
  if (!t->secure || t->outcome != dns_outcome::found) return {};
  return usable_for_smtp(t->records);
}

void complete(resolver_pointer self, const std::string& domain);

// A host's lookups are done: the domains that waited for it may be complete.
void release_host_waiters(resolver_pointer self, const std::string& host) {
  auto& s = self->state;
  auto waiters = std::move(s.host_waiters[host]);
  s.host_waiters.erase(host);
  for (const auto& domain : waiters) {
    auto it = s.pending.find(domain);
    if (it == s.pending.end()) continue;
    if (--it->second.unresolved == 0) complete(self, domain);
  }
}

// Builds the route once every host has its addresses.
void complete(resolver_pointer self, const std::string& domain) {
  auto& st = self->state;
  auto& p = st.pending[domain];
  route r;
  r.status = route_status::ok;
  r.site = p.site.empty() ? site_name(p.mx) : p.site;
  r.relay = p.relay;
  std::uint32_t ttl = p.mx_ttl;
  bool any_temporary = false;
  std::string last_error;
  std::string refused;  // MX hosts left out for their non-public addresses
  auto now = unix_now_ms();
  for (const auto& mx : p.mx) {
    auto* a = st.hosts.find(mx.host, now);
    if (!a) {
      any_temporary = true;
      continue;
    }
    if (a->outcome == dns_outcome::found) {
      auto addresses = a->addresses;
      if (!st.allow_private && !p.configured)
        addresses.erase(std::remove_if(addresses.begin(), addresses.end(),
                                       [](const std::string& ip) { return !is_public_address(ip); }),
                        addresses.end());
      if (addresses.empty()) {
        if (!refused.empty()) refused += ", ";
        refused += mx.host + " (" + (a->addresses.empty() ? std::string() : a->addresses.front()) + ")";
        continue;
      }
      std::string dane_error;
      auto tlsa = dane_records(st, p, mx.host, *a, now, dane_error, ttl);
      if (!dane_error.empty()) {
        any_temporary = true;
        last_error = dane_error;
        continue;
      }
      auto port = p.ports.find(mx.host);
      r.hosts.push_back({mx.host, std::move(addresses), port == p.ports.end() ? std::uint16_t(0) : port->second,
                         std::move(tlsa)});
      ttl = std::min(ttl, a->ttl);
    } else if (a->outcome == dns_outcome::temporary) {
      any_temporary = true;
      last_error = a->error;
    } else {
      last_error = "MX host " + mx.host + " has no address";
    }
  }
  if (r.hosts.empty()) {
    if (!refused.empty() && !any_temporary)
      return finish(self, domain,
                    failure(st, route_status::permanent,
                            "every mail host of the domain has only loopback, private or "
                            "link-local addresses: " + refused +
                                "; delivery there is refused (delivery.allow_private_destinations)",
                            ttl));
    if (p.implicit_mx && !any_temporary)
      return finish(self, domain,
                    failure(st, route_status::permanent,
                            "the domain has no MX record and no address (RFC 5321 5.1)", ttl));
    return finish(self, domain,
                  failure(st, route_status::temporary,
                          last_error.empty() ? "no MX host of the domain has an address" : last_error,
                          ttl));
  }
  r.expires_at_ms = expiry(st, ttl);
  if (!st.sts_settings.enabled || p.configured) return finish(self, domain, std::move(r));
  // MTA-STS: look for the domain's policy before answering (RFC 8461 3).
  std::string cached_id;
  if (auto* cached = st.sts.find(domain, unix_now_ms())) cached_id = cached->id;
  p.awaiting_sts = std::move(r);
  start_mta_sts_discovery(st.runtime, caf::actor_cast<resolver_actor>(self), domain, cached_id,
                          st.sts_settings);
}

// Attaches the policy MTA-STS discovery found (or the cached one) and answers.
void with_sts(resolver_pointer self, const std::string& domain, const sts_result& found) {
  auto& st = self->state;
  auto it = st.pending.find(domain);
  if (it == st.pending.end() || !it->second.awaiting_sts) return;
  auto r = std::move(*it->second.awaiting_sts);
  auto now = unix_now_ms();
  const sts_policy* policy = st.sts.find(domain, now);
  if (found.found && !found.unchanged && found.error.empty()) {
    sts_events("policy_fetched").inc();
    st.sts.put(domain, sts_policy{found.id, found.mode, found.mx},
               now + static_cast<std::int64_t>(found.max_age) * 1000);
    policy = st.sts.find(domain, now);
  } else if (!found.error.empty()) {
    // RFC 8461 5.1: a fetch that fails keeps an unexpired cached policy in force.
    sts_events("fetch_failed").inc();
    spdlog::warn("mta_sts.fetch_failed domain={} cached={} error=\"{}\"", domain, policy != nullptr,
                 found.error);
  }
  if (policy && policy->mode != "none") {
    r.sts_mode = policy->mode;
    r.sts_mx = policy->mx;
  }
  finish(self, domain, std::move(r));
}

void resolve_hosts(resolver_pointer self, const std::string& domain) {
  auto& st = self->state;
  auto& p = st.pending[domain];
  auto now = unix_now_ms();
  p.unresolved = 0;
  for (const auto& mx : p.mx) {
    if (st.hosts.find(mx.host, now)) continue;
    std::array<std::uint8_t, 16> ip{};
    if (parse_ip_address(mx.host, ip)) {
      // An address in the routing table: no DNS.
      address_lookup literal;
      literal.outcome = dns_outcome::found;
      literal.addresses = {mx.host};
      literal.ttl = static_cast<std::uint32_t>(std::chrono::duration_cast<std::chrono::seconds>(st.settings.max_ttl).count());
      st.hosts.put(mx.host, std::move(literal), now + st.settings.max_ttl.count());
      continue;
    }
    ++p.unresolved;
    auto& waiters = st.host_waiters[mx.host];
    waiters.push_back(domain);
    if (waiters.size() > 1) continue;  // a lookup for this host is already on its way
    dns_lookups("address").inc();
    auto handle = caf::actor_cast<resolver_actor>(self);
    st.runtime->dns->lookup_addresses(mx.host, [handle, host = mx.host](address_lookup a) {
      caf::anon_send(handle, address_atom::value, host, std::move(a));
    });
  }
  if (p.unresolved == 0) complete(self, domain);
}

// A route key of the routing table ("#<entry>"): its relay or fixed hosts, resolved to
// addresses like MX hosts (RFC 5321 5.1 order: as configured).
caf::result<route> resolve_configured(resolver_pointer self, const std::string& key) {
  auto& st = self->state;
  auto target = st.routing ? st.routing->resolve_key(key) : std::nullopt;
  if (!target || target->hosts.empty())
    return failure(st, route_status::temporary, "no route " + key + " in the routing table", 0);
  auto rp = self->make_response_promise<route>();
  auto& p = st.pending[key];
  p.waiting.push_back(rp);
  if (p.waiting.size() > 1) return rp;
  p.configured = true;
  p.site = target->site;
  p.relay = target->relay ? target->relay->name : std::string();
  p.mx.clear();
  p.mx_ttl = static_cast<std::uint32_t>(std::chrono::duration_cast<std::chrono::seconds>(st.settings.max_ttl).count());
  std::uint16_t preference = 0;
  for (const auto& h : target->hosts) {
    auto host = normalize_host(h.host);
    p.mx.push_back({preference++, host});
    p.ports[host] = h.port;
  }
  resolve_hosts(self, key);
  return rp;
}

resolver_actor::behavior_type resolver_behavior(resolver_pointer self,
                                                std::shared_ptr<delivery_runtime> runtime,
                                                dns_config settings, mta_sts_config sts,
                                                bool allow_private, bool dane, std::uint16_t port,
                                                std::shared_ptr<const routing_table> routing,
                                                std::shared_ptr<config_directory> live) {
  auto& st = start_actor(self);
  st.live = std::move(live);
  st.allow_private = allow_private;
  st.dane = dane;
  st.port = port;
  st.routing = std::move(routing);
  st.runtime = std::move(runtime);
  st.settings = settings;
  st.routes = expiring_cache<route>(settings.cache_size);
  st.hosts = expiring_cache<address_lookup>(settings.cache_size);
  st.failures = expiring_cache<route>(settings.negative_cache_size);
  st.sts = expiring_cache<sts_policy>(sts.cache_size);
  st.sts_settings = sts;
  return {
      [=](resolve_atom, const std::string& domain) -> caf::result<route> {
        auto& s = self->state;
        auto now = unix_now_ms();
        if (auto c = s.live ? s.live->get() : nullptr; c && c->routing && c->routing != s.routing) {
          // A reload changed the routing table: its entries ("#n") mean other hosts now.
          s.routing = c->routing;
          s.routes = expiring_cache<route>(s.settings.cache_size);
          s.failures = expiring_cache<route>(s.settings.negative_cache_size);
        }
        if (auto* r = s.routes.find(domain, now)) {
          route_requests("hit").inc();
          return *r;
        }
        if (auto* r = s.failures.find(domain, now)) {
          route_requests("negative_hit").inc();
          return *r;
        }
        if (!domain.empty() && domain.front() == '#') {
          route_requests("configured").inc();
          return resolve_configured(self, domain);
        }
        if (!domain.empty() && domain.front() == '[') {
          // An address literal: no DNS (RFC 5321 4.1.3).
          auto inner = domain.substr(1, domain.size() - 2);
          if (inner.rfind("IPv6:", 0) == 0) inner = inner.substr(5);
          route r;
          r.expires_at_ms = now + s.settings.max_ttl.count();
          if (!s.allow_private && !is_public_address(inner)) {
            r.status = route_status::permanent;
            r.error = "the address literal " + domain +
                      " is a loopback, private or link-local address; delivery there is refused "
                      "(delivery.allow_private_destinations)";
            return r;
          }
          r.status = route_status::ok;
          r.site = domain;
          r.hosts.push_back({domain, {inner}, 0, {}});
          return r;
        }
        route_requests("miss").inc();
        auto rp = self->make_response_promise<route>();
        auto& p = s.pending[domain];
        p.waiting.push_back(rp);
        if (p.waiting.size() == 1) {
          dns_lookups("mx").inc();
          auto handle = caf::actor_cast<resolver_actor>(self);
          s.runtime->dns->lookup_mx(domain, [handle, domain](mx_lookup m) {
            caf::anon_send(handle, mx_atom::value, domain, std::move(m));
          });
        }
        return rp;
      },
      [=](mx_atom, const std::string& domain, mx_lookup& m) {
        auto& s = self->state;
        if (!s.pending.count(domain)) return;
        auto& p = s.pending[domain];
        switch (m.outcome) {
          case dns_outcome::no_domain:
            return finish(self, domain,
                          failure(s, route_status::permanent, "the domain does not exist (NXDOMAIN)", m.ttl));
          case dns_outcome::temporary:
            return finish(self, domain, failure(s, route_status::temporary, m.error, 0));
          case dns_outcome::no_records:
            p.implicit_mx = true;
            p.mx = {{0, domain}};
            p.mx_ttl = m.ttl;
            p.mx_secure = m.secure;
            break;
          case dns_outcome::found:
            if (is_null_mx(m.records))
              return finish(self, domain,
                            failure(s, route_status::permanent,
                                    "the domain accepts no mail (null MX, RFC 7505)", m.ttl));
            p.mx = order_mx(std::move(m.records), s.rng);
            p.mx_ttl = m.ttl;
            p.mx_secure = m.secure;
            if (p.mx.empty())
              return finish(self, domain,
                            failure(s, route_status::permanent, "the MX records name no host", m.ttl));
            break;
        }
        resolve_hosts(self, domain);
      },
      [=](sts_atom, const std::string& domain, const sts_result& found) {
        with_sts(self, domain, found);
      },
      [=](address_atom, const std::string& host, address_lookup& a) {
        auto& s = self->state;
        auto ttl = a.outcome == dns_outcome::temporary
                       ? unix_now_ms() + s.settings.temporary_failure_ttl.count()
                       : expiry(s, a.ttl);
        bool want_tlsa = s.dane && a.secure && a.outcome == dns_outcome::found;
        s.hosts.put(host, std::move(a), ttl);
        if (want_tlsa) {  // the waiters wait for the TLSA answer too
          dns_lookups("tlsa").inc();
          auto handle = caf::actor_cast<resolver_actor>(self);
          s.runtime->dns->lookup_tlsa("_" + std::to_string(s.port) + "._tcp." + host,
                                      [handle, host](tlsa_lookup t) {
                                        caf::anon_send(handle, address_atom::value, host, std::move(t));
                                      });
          return;
        }
        release_host_waiters(self, host);
      },
      [=](address_atom, const std::string& host, tlsa_lookup& t) {
        auto& s = self->state;
        if (t.outcome == dns_outcome::temporary) {
          core().dane("dnssec-invalid").inc();
          spdlog::warn("dane.tlsa_lookup_failed host={} error=\"{}\"", host, t.error);
        }
        auto ttl = t.outcome == dns_outcome::temporary ? unix_now_ms() + s.settings.temporary_failure_ttl.count()
                                                         : expiry(s, t.ttl);
        s.tlsa.put(host, std::move(t), ttl);
        release_host_waiters(self, host);
      },
  };
}

}  // namespace

resolver_actor spawn_resolver(caf::actor_system& sys, caf::local_actor* parent,
                              std::shared_ptr<delivery_runtime> runtime, const dns_config& dns,
                              const mta_sts_config& sts, const delivery_settings& delivery,
                              std::shared_ptr<const routing_table> routing,
                              std::shared_ptr<config_directory> live) {
  return spawn_child(sys, parent, resolver_behavior, std::move(runtime), dns, sts,
                     delivery.allow_private_destinations, delivery.dane, delivery.port, std::move(routing),
                     std::move(live));
}

}  // namespace petrel
