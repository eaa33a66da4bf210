// The egress supervisor and its egress actors: one egress actor per configured source (IP +
// EHLO name), each the parent of the site actors that leave from that source, started on
// demand when a domain asks for its site. A crashed site actor is forgotten (domains monitor
// their site and ask again, which starts a fresh one); a crashed egress actor is restarted by
// the supervisor with backoff and bounded intensity.
#include <fnmatch.h>

#include <caf/all.hpp>
#include <spdlog/spdlog.h>

#include <unordered_map>

#include "actors/actor_support.hpp"
#include "actors/metrics.hpp"
#include "actors/services.hpp"

namespace petrel {

const site_policy* site_policy_for(const delivery_settings& d, const route& r) {
  for (const auto& policy : d.sites)
    for (const auto& host : r.hosts)
      if (fnmatch(policy.match.c_str(), host.name.c_str(), FNM_CASEFOLD) == 0) return &policy;
  return nullptr;
}

site_limits site_limits_for(const delivery_settings& d, const route& r) {
  site_limits limits;
  limits.connection_limit = d.connection_limit;
  limits.max_deliveries_per_connection = d.max_deliveries_per_connection;
  limits.tls = parse_tls_mode(d.tls).value_or(tls_mode::opportunistic);
  limits.verify_certificate = d.verify_certificate;
  if (const auto* policy = site_policy_for(d, r)) {  // the first matching policy wins
    if (policy->connection_limit) limits.connection_limit = policy->connection_limit;
    if (policy->max_deliveries_per_connection)
      limits.max_deliveries_per_connection = policy->max_deliveries_per_connection;
    if (auto mode = parse_tls_mode(policy->tls)) limits.tls = *mode;
    if (policy->verify_certificate >= 0) limits.verify_certificate = policy->verify_certificate == 1;
  }
  if (r.sts_enforced) {
    // MTA-STS enforce (RFC 8461 4.2): TLS with a certificate valid for the MX host, or nothing.
    limits.tls = tls_mode::required;
    limits.verify_certificate = true;
  }
  limits.ready_queue = d.ready_queue ? d.ready_queue : 2 * limits.connection_limit;
  return limits;
}

std::vector<egress_source> egress_sources_from(const config& cfg, const std::string& hostname) {
  auto ehlo = cfg.delivery.ehlo_name.empty() ? hostname : cfg.delivery.ehlo_name;
  std::vector<egress_source> out;
  for (const auto& s : cfg.egress.sources)
    out.push_back({s.name, s.address, s.ehlo_name.empty() ? ehlo : s.ehlo_name});
  if (out.empty()) out.push_back({"default", "", ehlo});
  return out;
}

namespace {

// -- egress actor (one source) ---------------------------------------------------------------

struct source_state {
  source_state() = default;
  std::shared_ptr<delivery_runtime> runtime;
  store_actor store;
  egress_source source;
  node_settings settings;
  std::unordered_map<std::string, site_actor> sites;  // by site name
  std::unordered_map<caf::actor_addr, std::string> by_address;
  static inline const char* name = "egress";
};

using source_pointer = egress_actor::stateful_pointer<source_state>;

egress_actor::behavior_type source_behavior(source_pointer self,
                                            std::shared_ptr<delivery_runtime> runtime,
                                            store_actor store, egress_source source,
                                            node_settings settings) {
  install_logging_handlers(self, "egress");
  auto& st = self->state;
  st.runtime = std::move(runtime);
  st.store = std::move(store);
  st.source = std::move(source);
  st.settings = std::move(settings);
  self->set_exit_handler([=](caf::exit_msg& msg) {
    auto& s = self->state;
    auto it = s.by_address.find(msg.source);
    if (it == s.by_address.end()) {
      if (msg.reason) self->quit(msg.reason);
      return;
    }
    if (msg.reason) {
      core().actor_restarts.inc();
      spdlog::warn("egress.site_crashed source={} site={} reason=\"{}\"", s.source.name, it->second,
                   self->system().render(msg.reason));
    }
    s.sites.erase(it->second);
    s.by_address.erase(it);
  });
  return {
      [=](site_atom, const std::string&, route& r) -> caf::result<site_actor> {
        auto& s = self->state;
        auto it = s.sites.find(r.site);
        if (it != s.sites.end()) {
          self->send(it->second, route_atom::value, r);
          return it->second;
        }
        auto limits = site_limits_for(s.settings.delivery, r);
        auto site_name = r.site;
        auto site = spawn_site(self->system(), self, s.runtime, s.store, s.source, std::move(r),
                               limits, s.settings);
        s.sites.emplace(site_name, site);
        s.by_address.emplace(site.address(), site_name);
        return site;
      },
      [=](restart_atom, const std::string&) {},
  };
}

// -- egress supervisor -----------------------------------------------------------------------

struct egress_child {
  egress_actor handle;
  restart_policy policy;
};

struct egress_state {
  egress_state() = default;
  std::shared_ptr<delivery_runtime> runtime;
  store_actor store;
  node_settings settings;
  std::unordered_map<std::string, egress_child> children;  // by source name
  std::unordered_map<caf::actor_addr, std::string> by_address;
  static inline const char* name = "egress_supervisor";
};

using egress_pointer = egress_actor::stateful_pointer<egress_state>;

void start_source(egress_pointer self, const egress_source& source) {
  auto& st = self->state;
  auto& child = st.children[source.name];
  child.handle = self->spawn<caf::linked>(source_behavior, st.runtime, st.store, source, st.settings);
  st.by_address[child.handle.address()] = source.name;
}

egress_actor::behavior_type egress_behavior(egress_pointer self,
                                            std::shared_ptr<delivery_runtime> runtime,
                                            store_actor store, node_settings settings) {
  install_logging_handlers(self, "egress_supervisor");
  auto& st = self->state;
  st.runtime = std::move(runtime);
  st.store = std::move(store);
  st.settings = std::move(settings);
  for (const auto& source : st.settings.sources) {
    st.children[source.name].policy = restart_policy(restart_limits_from(st.settings.actors));
    start_source(self, source);
    spdlog::info("egress.source name={} address={} ehlo={}", source.name,
                 source.address.empty() ? "(any)" : source.address, source.ehlo_name);
  }
  self->set_exit_handler([=](caf::exit_msg& msg) {
    auto& s = self->state;
    auto it = s.by_address.find(msg.source);
    if (it == s.by_address.end()) {
      if (msg.reason) self->quit(msg.reason);
      return;
    }
    auto name = it->second;
    s.by_address.erase(it);
    auto& child = s.children[name];
    child.handle = nullptr;
    if (!msg.reason) return;
    core().actor_restarts.inc();
    auto delay = child.policy.on_failure(std::chrono::steady_clock::now());
    if (delay.count() < 0) {
      spdlog::error("egress.giving_up source={} reason=\"restart intensity exceeded\"", name);
      self->quit(make_error(petrel_errc::unavailable, "egress actor " + name + " keeps crashing"));
      return;
    }
    spdlog::warn("egress.source_crashed source={} restart_in_ms={}", name, delay.count());
    self->delayed_send(self, delay, restart_atom::value, name);
  });
  return {
      [=](site_atom, const std::string& source, route& r) -> caf::result<site_actor> {
        auto& s = self->state;
        if (s.settings.sources.empty())
          return make_error(petrel_errc::unavailable, "no egress source is configured");
        auto it = source.empty() ? s.children.find(s.settings.sources.front().name)
                                 : s.children.find(source);
        if (it == s.children.end())
          return make_error(petrel_errc::invalid, "no egress source named " + source);
        if (!it->second.handle)
          return make_error(petrel_errc::unavailable, "egress source " + source + " is restarting", 1000);
        return self->delegate(it->second.handle, site_atom::value, source, std::move(r));
      },
      [=](restart_atom, const std::string& name) {
        auto& s = self->state;
        for (const auto& src : s.settings.sources)
          if (src.name == name && !s.children[name].handle) start_source(self, src);
      },
  };
}

}  // namespace

egress_actor spawn_egress(caf::actor_system& sys, caf::local_actor* parent,
                          std::shared_ptr<delivery_runtime> runtime, store_actor store,
                          const node_settings& settings) {
  if (parent)
    return parent->spawn<caf::linked>(egress_behavior, std::move(runtime), std::move(store), settings);
  return sys.spawn(egress_behavior, std::move(runtime), std::move(store), settings);
}

}  // namespace petrel
