// How the actors are started, and the directory through which the HTTP layer finds them.
// The root supervisor publishes the current handles after every (re)start; HTTP handlers
// read a snapshot per request, so they never hold a handle of a dead actor for long.
#pragma once

#include <atomic>
#include <functional>
#include <memory>

#include "actors/protocol.hpp"
#include "actors/restart_policy.hpp"
#include "config/config.hpp"

namespace petrel {

struct services {
  store_actor store;
  domains_actor domains;
  ingest_actor ingest;
  tenants_actor tenants;
  root_actor root;
};

class service_directory {
 public:
  std::shared_ptr<const services> get() const { return current_.load(); }
  void set(std::shared_ptr<const services> s) { current_.store(std::move(s)); }

 private:
  std::atomic<std::shared_ptr<const services>> current_{std::make_shared<services>()};
};

// Opens a store; called again when the store actor is restarted after a crash.
using store_factory = std::function<std::unique_ptr<store>()>;

struct node_settings {
  storage_settings storage;
  tenant_settings tenants;
  actor_settings actors;
  bool store_detached = true;  // false under CAF's deterministic test scheduler
};

restart_limits restart_limits_from(const actor_settings& a);

// Each spawns the actor linked to `parent` when given, else unlinked from `sys`.
store_actor spawn_store(caf::actor_system& sys, caf::local_actor* parent, store_factory open,
                        std::unique_ptr<store> opened, const node_settings& settings);
domains_actor spawn_domains(caf::actor_system& sys, caf::local_actor* parent, store_actor store,
                            const node_settings& settings);
ingest_actor spawn_ingest(caf::actor_system& sys, caf::local_actor* parent, store_actor store,
                          domains_actor domains, const node_settings& settings);
tenants_actor spawn_tenants(caf::actor_system& sys, caf::local_actor* parent, store_actor store,
                            ingest_actor ingest, const node_settings& settings);
tenant_actor spawn_tenant(caf::actor_system& sys, caf::local_actor* parent, tenant_record record,
                          store_actor store, ingest_actor ingest, const node_settings& settings);
domain_actor spawn_domain(caf::actor_system& sys, caf::local_actor* parent, std::string domain,
                          store_actor store, domains_actor supervisor,
                          const node_settings& settings);

// The root: starts store, domains, ingest and tenants in that order, keeps the directory
// current. `opened` is the store main() already opened and migrated (fail fast at start).
root_actor spawn_root(caf::actor_system& sys, store_factory open, std::unique_ptr<store> opened,
                      node_settings settings, std::shared_ptr<service_directory> directory);

}  // namespace petrel
