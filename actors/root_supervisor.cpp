// The root supervisor: starts store, resolver, egress, domains, ingest, senders, signers,
// tenants, bounces, controls and events, in that order, linked to
// itself; keeps the service directory current; restarts rest-for-one (a crashed child and
// every child started after it, since those hold its handle) with backoff and a bounded
// intensity, past which it fails and the process exits with an error for its own supervisor
// (systemd) to handle. On shutdown it stops the children in reverse order, the store last so
// that its pending commits finish.
#include <caf/all.hpp>
#include <spdlog/spdlog.h>

#include "actors/actor_support.hpp"
#include "actors/metrics.hpp"
#include "actors/services.hpp"

namespace petrel {

namespace {

enum child_index : std::uint64_t {
  store_child = 0,
  resolver_child,
  egress_child,
  domains_child,
  ingest_child,
  senders_child,
  signers_child,
  tenants_child,
  bounces_child,
  controls_child,
  events_child,
  cluster_child,  // cluster mode only
  child_count
};
const char* child_names[] = {"store",   "resolver", "egress",   "domains", "ingest", "senders",
                             "signers", "tenants",  "bounces", "controls", "events", "cluster"};

// What the root actor is given when it starts (its spawn arguments).
struct root_start {
  store_factory open;
  std::shared_ptr<std::unique_ptr<store>> first_store;
  node_settings settings;
  std::shared_ptr<service_directory> directory;
  std::shared_ptr<delivery_runtime> runtime;
};

struct root_state : root_start {
  // Not an aggregate: CAF would otherwise try to build it from the actor pointer (C++20).
  root_state() = default;
  services current;
  std::unordered_map<caf::actor_addr, std::uint64_t> by_address;
  restart_policy policy;
  bool restart_pending = false;
  bool shutting_down = false;
  static inline const char* name = "root";
};

using root_pointer = root_actor::stateful_pointer<root_state>;

caf::actor_addr address_of(root_pointer self, std::uint64_t index) {
  auto& c = self->state.current;
  switch (index) {
    case store_child: return c.store.address();
    case resolver_child: return c.resolver.address();
    case egress_child: return c.egress.address();
    case domains_child: return c.domains.address();
    case ingest_child: return c.ingest.address();
    case senders_child: return c.senders.address();
    case signers_child: return c.signers.address();
    case tenants_child: return c.tenants.address();
    case bounces_child: return c.bounces.address();
    case controls_child: return c.controls.address();
    case events_child: return c.events.address();
    default: return c.cluster.address();
  }
}

void publish(root_pointer self) {
  auto snapshot = std::make_shared<services>(self->state.current);
  snapshot->root = caf::actor_cast<root_actor>(self);
  self->state.directory->set(std::move(snapshot));
}

void start_from(root_pointer self, std::uint64_t first) {
  auto& st = self->state;
  auto& sys = self->system();
  refresh_config(st.settings);  // children restarted after a reload get the reloaded configuration
  for (std::uint64_t i = first; i < child_count; ++i) {
    switch (i) {
      case store_child: {
        std::unique_ptr<store> opened;
        if (st.first_store) opened = std::move(*st.first_store);
        st.first_store.reset();
        st.current.store = spawn_store(sys, self, st.open, std::move(opened), st.settings);
        break;
      }
      case resolver_child:
        st.current.resolver = spawn_resolver(sys, self, st.runtime, st.settings.config->dns, st.settings.config->mta_sts,
                                             st.settings.config->delivery, st.settings.config->routing,
                                             st.settings.shared.live);
        break;
      case egress_child:
        st.current.egress = spawn_egress(sys, self, st.runtime, st.current.store, st.settings);
        break;
      case domains_child:
        st.current.domains = spawn_domains(sys, self, st.current.store, st.current.resolver,
                                           st.current.egress, st.settings);
        break;
      case ingest_child:
        st.current.ingest =
            spawn_ingest(sys, self, st.current.store, st.current.domains, st.settings);
        break;
      case senders_child:
        st.current.senders = spawn_senders(sys, self, st.current.store, st.runtime, st.settings);
        break;
      case signers_child:
        st.current.signers = spawn_signers(sys, self, st.current.ingest, st.settings);
        break;
      case tenants_child:
        st.current.tenants =
            spawn_tenants(sys, self, st.current.store, st.current.signers, st.settings);
        break;
      case bounces_child:
        st.current.bounces = spawn_bounces(sys, self, st.current.store, st.current.tenants,
                                           st.settings);
        break;
      case controls_child:
        st.current.controls = spawn_controls(sys, self, st.current.store, st.current.domains,
                                             st.current.egress, st.settings);
        break;
      case events_child:
        st.current.events = spawn_events(sys, self, st.current.store, st.runtime, st.settings);
        break;
      case cluster_child:
        if (st.settings.config->cluster.enabled)
          st.current.cluster = spawn_cluster(sys, self, st.current.domains, st.current.egress, st.current.controls,
                                             st.current.tenants, st.current.events, st.settings);
        break;
    }
    if (auto addr = address_of(self, i)) st.by_address[addr] = i;
  }
  publish(self);
}

// Stops children from `first` on, newest first; their exit messages are ignored.
void stop_from(root_pointer self, std::uint64_t first, caf::exit_reason reason) {
  for (std::uint64_t i = child_count; i-- > first;) {
    auto addr = address_of(self, i);
    if (addr) self->state.by_address.erase(addr);  // (null: the cluster actor of a single node)
    switch (i) {
      case store_child: self->send_exit(self->state.current.store, reason); break;
      case resolver_child: self->send_exit(self->state.current.resolver, reason); break;
      case egress_child: self->send_exit(self->state.current.egress, reason); break;
      case domains_child: self->send_exit(self->state.current.domains, reason); break;
      case ingest_child: self->send_exit(self->state.current.ingest, reason); break;
      case senders_child: self->send_exit(self->state.current.senders, reason); break;
      case signers_child: self->send_exit(self->state.current.signers, reason); break;
      case tenants_child: self->send_exit(self->state.current.tenants, reason); break;
      case bounces_child: self->send_exit(self->state.current.bounces, reason); break;
      case controls_child: self->send_exit(self->state.current.controls, reason); break;
      case events_child: self->send_exit(self->state.current.events, reason); break;
      case cluster_child:
        if (self->state.current.cluster) self->send_exit(self->state.current.cluster, reason);
        break;
    }
  }
}

root_actor::behavior_type root_behavior(root_pointer self, root_start start) {
  auto& st = start_actor(self);
  static_cast<root_start&>(st) = std::move(start);
  st.settings.shared.directory = st.directory;
  st.policy = restart_policy(restart_limits_from(st.settings.config->actors));
  self->set_exit_handler([=](caf::exit_msg& msg) {
    auto& s = self->state;
    auto it = s.by_address.find(msg.source);
    if (it == s.by_address.end() || s.shutting_down) return;
    auto index = it->second;
    s.by_address.erase(it);
    if (!msg.reason) {
      spdlog::warn("root.child_stopped child={}", child_names[index]);
    }
    core().actor_restarts.inc();
    auto delay = s.policy.on_failure(std::chrono::steady_clock::now());
    if (delay.count() < 0) {
      spdlog::critical("root.giving_up child={} reason=\"restart intensity exceeded\"",
                       child_names[index]);
      s.shutting_down = true;
      stop_from(self, 0, caf::exit_reason::user_shutdown);
      self->quit(make_error(petrel_errc::unavailable, "the actor tree keeps crashing"));
      return;
    }
    spdlog::error("root.child_crashed child={} reason=\"{}\" restart_in_ms={}", child_names[index],
                  self->system().render(msg.reason), delay.count());
    stop_from(self, index + 1, caf::exit_reason::user_shutdown);
    self->delayed_send(self, delay, restart_atom::value, static_cast<std::uint64_t>(index));
  });
  start_from(self, 0);
  return {
      [=](ready_atom) -> caf::result<readiness> {
        auto& s = self->state;
        auto rp = self->make_response_promise<readiness>();
        auto timeout = std::chrono::seconds(2);
        auto fail = [rp](const std::string& why) mutable { rp.deliver(readiness{false, why}); };
        if (s.shutting_down) {
          fail("shutting down");
          return rp;
        }
        auto services_now = s.current;
        self->request(services_now.store, timeout, ready_atom::value)
            .then(
                [=](readiness& store) mutable {
                  if (!store.ready) return fail(store.reason);
                  self->request(services_now.tenants, timeout, ready_atom::value)
                      .then(
                          [=](readiness& tenants) mutable {
                            if (!tenants.ready) return fail(tenants.reason);
                            self->request(services_now.domains, timeout, ready_atom::value)
                                .then([=](readiness& domains) mutable { rp.deliver(domains); },
                                      [=](caf::error&) mutable { fail("domains not answering"); });
                          },
                          [=](caf::error&) mutable { fail("tenants not answering"); });
                },
                [=](caf::error&) mutable { fail("the store is not answering"); });
        return rp;
      },
      [=](restart_atom, std::uint64_t first) {
        if (self->state.shutting_down) return;
        spdlog::info("root.restarting from={}", child_names[first]);
        start_from(self, first);
      },
      [=](shutdown_atom) -> caf::result<caf::ok_atom> {
        auto& s = self->state;
        s.shutting_down = true;
        auto rp = self->make_response_promise<caf::ok_atom>();
        // Children stop, then the store commits what is pending and closes.
        auto stop_all = [=]() mutable {
          auto& now = self->state;
          stop_from(self, resolver_child, caf::exit_reason::user_shutdown);
          self->request(now.current.store, now.settings.config->storage.request_timeout, shutdown_atom::value)
              .then(
                  [=](caf::ok_atom) mutable {
                    rp.deliver(caf::ok_atom::value);
                    self->quit();
                  },
                  [=](caf::error& e) mutable {
                    spdlog::error("root.store_shutdown_failed error=\"{}\"", self->system().render(e));
                    rp.deliver(caf::ok_atom::value);
                    self->quit();
                  });
        };
        // First the warm-up counters counted since the egress supervisor's last tick.
        if (!s.current.egress) {
          stop_all();
          return rp;
        }
        self->request(s.current.egress, s.settings.config->storage.request_timeout, shutdown_atom::value)
            .then([=](caf::ok_atom) mutable { stop_all(); },
                  [=](caf::error& e) mutable {
                    spdlog::warn("root.usage_not_flushed error=\"{}\"", self->system().render(e));
                    stop_all();
                  });
        return rp;
      },
  };
}

}  // namespace

root_actor spawn_root(caf::actor_system& sys, store_factory open, std::unique_ptr<store> opened,
                      node_settings settings, std::shared_ptr<service_directory> directory,
                      std::shared_ptr<delivery_runtime> runtime) {
  auto holder = std::make_shared<std::unique_ptr<store>>(std::move(opened));
  return sys.spawn(root_behavior,
                   root_start{std::move(open), holder, std::move(settings), std::move(directory),
                              std::move(runtime)});
}

}  // namespace petrel
