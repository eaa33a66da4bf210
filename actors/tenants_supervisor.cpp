// The tenants supervisor: the API-key directory (SHA-256 of each active key -> tenant), the
// admin operations on tenants and keys, and the parent of the tenant actors (started on first
// use, restarted one-for-one with backoff).
#include <caf/all.hpp>
#include <spdlog/spdlog.h>

#include <cstdio>
#include <map>
#include <unordered_map>

#include "actors/actor_support.hpp"
#include "actors/api_key.hpp"
#include "actors/metrics.hpp"
#include "actors/policy/event_data.hpp"
#include "actors/services.hpp"
#include "actors/spawn.hpp"
#include "actors/supervision.hpp"

namespace petrel {

namespace {

struct tenant_entry {
  tenant_record record;
  std::vector<api_key_record> keys;  // active keys
  tenant_actor handle;               // null until first use, or while restarting
  bool restarting = false;
  restart_policy policy;
};

// What the tenants actor is given when it starts (its spawn arguments).
struct tenants_start {
  store_actor store;
  signer_actor signers;
  node_settings settings;
};

struct tenants_state : tenants_start {
  // Not an aggregate: CAF would otherwise try to build it from the actor pointer (C++20).
  tenants_state() = default;
  std::map<id128, tenant_entry> tenants;
  std::unordered_map<std::string, id128> key_owner;  // key hash -> tenant id
  std::unordered_map<caf::actor_addr, id128> by_address;
  bool loaded = false;
  // The reputation guard: the level each tenant was last warned of, and whether the guard
  // paused it (until an operator resumes it).
  struct guard_state {
    reputation_level level = reputation_level::ok;  // the tenant's rates as a whole
    std::map<std::string, reputation_level> sender_domains;  // each sender domain's
    std::string paused_by;  // the sender domain whose rates paused it ("" the tenant's)
    bool pausing = false;  // asked the controls actor, no answer yet
    bool paused = false;   // its pause is in force (stored and published)
  };
  std::map<id128, guard_state> guard;
  static inline const char* name = "tenants";
};

using tenants_pointer = tenants_actor::stateful_pointer<tenants_state>;

caf::error unavailable(const std::string& why) {
  return make_error(petrel_errc::unavailable, why, 1000);
}

// The running actor of a tenant, started on first use; null while a restart is pending.
tenant_actor tenant_for(tenants_pointer self, tenant_entry& entry) {
  if (entry.handle || entry.restarting) return entry.handle;
  auto& st = self->state;
  entry.handle = spawn_tenant(self->system(), self, entry.record, st.store, st.signers, st.settings);
  st.by_address[entry.handle.address()] = entry.record.id;
  return entry.handle;
}

tenant_entry* entry_for_key(tenants_pointer self, const std::string& key_hash) {
  auto& st = self->state;
  auto owner = st.key_owner.find(key_hash);
  if (owner == st.key_owner.end()) return nullptr;
  auto it = st.tenants.find(owner->second);
  return it == st.tenants.end() ? nullptr : &it->second;
}

// The running actor of a tenant by id, or why there is none.
caf::expected<tenant_actor> tenant_by_id(tenants_pointer self, const id128& tenant_id) {
  auto& st = self->state;
  if (!st.loaded) return unavailable("tenants are still loading");
  auto it = st.tenants.find(tenant_id);
  if (it == st.tenants.end()) return make_error(petrel_errc::not_found, "no such tenant");
  auto handle = tenant_for(self, it->second);
  if (!handle) return unavailable("the tenant is restarting");
  return handle;
}

// The tenants' weights and names, for the domain actors' rotation and routing table.
void publish_weights(tenants_pointer self) {
  auto table = std::make_shared<weight_directory::table>();
  auto names = std::make_shared<weight_directory::name_table>();
  for (const auto& [id, entry] : self->state.tenants) {
    if (entry.record.weight > 1) (*table)[id] = entry.record.weight;
    (*names)[id] = entry.record.name;
  }
  self->state.settings.shared.weights->set(std::move(table));
  self->state.settings.shared.weights->set_names(std::move(names));
}

std::string check_tenant_name(const std::string& name) {
  if (name.empty()) return "name must not be empty";
  if (name.size() > 128) return "name must be at most 128 characters";
  for (char c : name)
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '_' && c != '.')
      return "name may only contain letters, digits, '-', '_' and '.'";
  return {};
}

api_key_record new_key_record(const id128& tenant_id, const std::string& key) {
  api_key_record k;
  k.id = new_id();
  k.tenant_id = tenant_id;
  k.key_hash = hash_api_key(key);
  k.prefix = api_key_prefix(key);
  k.created_at_ms = unix_now_ms();
  return k;
}

caf::result<created_tenant> create_tenant(tenants_pointer self, const new_tenant& request) {
  auto& st = self->state;
  if (!st.loaded) return unavailable("tenants are still loading");
  if (auto problem = check_tenant_name(request.name); !problem.empty())
    return make_error(petrel_errc::invalid, problem);
  for (const auto& [id, entry] : st.tenants)
    if (entry.record.name == request.name)
      return make_error(petrel_errc::conflict, "a tenant named " + request.name + " exists");
  created_tenant out;
  out.tenant.id = new_id();
  out.tenant.name = request.name;
  out.tenant.rate_per_second = request.rate_per_second;
  out.tenant.burst = request.burst;
  out.tenant.sandbox = request.sandbox;
  out.tenant.created_at_ms = unix_now_ms();
  out.key.api_key = generate_api_key();
  out.key.key = new_key_record(out.tenant.id, out.key.api_key);
  auto rp = self->make_response_promise<created_tenant>();
  self->request(st.store, st.settings.config->storage.request_timeout, persist_atom::value, out.tenant,
                out.key.key)
      .then(
          [=](caf::ok_atom) mutable {
            auto& s = self->state;
            auto& entry = s.tenants[out.tenant.id];
            entry.record = out.tenant;
            entry.keys.push_back(out.key.key);
            entry.policy = restart_policy(restart_limits_from(s.settings.config->actors));
            s.key_owner[out.key.key.key_hash] = out.tenant.id;
            publish_weights(self);  // its name, for the routing table
            spdlog::info("tenants.created tenant={} name={} key_prefix={}", out.tenant.id.str(),
                         out.tenant.name, out.key.key.prefix);
            rp.deliver(std::move(out));
          },
          [=](caf::error& e) mutable { rp.deliver(std::move(e)); });
  return rp;
}

bool same_settings(const tenant_record& a, const tenant_record& b) {
  return a.rate_per_second == b.rate_per_second && a.burst == b.burst && a.suspended == b.suspended &&
         a.pool == b.pool && a.weight == b.weight && a.sandbox == b.sandbox && a.tracking == b.tracking;
}

// At start, and again (refresh) when another node of the cluster changed tenants or keys, or
// the configuration was reloaded: the store's tenants and active keys replace this node's; a
// running tenant actor whose settings changed is told (every one after a reload: the defaults
// of tenant rates may have changed).
void load(tenants_pointer self, bool refresh = false) {
  auto& st = self->state;
  self->request(st.store, st.settings.config->storage.request_timeout, load_atom::value,
                tenant_atom::value)
      .then(
          [=](std::vector<tenant_record>& tenants, std::vector<api_key_record>& keys) {
            auto& s = self->state;
            bool reloaded = refresh_config(s.settings);
            for (auto& t : tenants) {
              auto [it, added] = s.tenants.try_emplace(t.id);
              auto& entry = it->second;
              if (added) entry.policy = restart_policy(restart_limits_from(s.settings.config->actors));
              bool changed = !added && !same_settings(entry.record, t);
              entry.record = std::move(t);
              entry.keys.clear();
              if ((changed || reloaded) && entry.handle) self->send(entry.handle, tenant_atom::value, entry.record);
            }
            s.key_owner.clear();
            for (auto& k : keys) {
              auto it = s.tenants.find(k.tenant_id);
              if (it == s.tenants.end()) continue;
              s.key_owner[k.key_hash] = k.tenant_id;
              it->second.keys.push_back(std::move(k));
            }
            s.loaded = true;
            publish_weights(self);
            spdlog::info("tenants.loaded tenants={} keys={}{}", s.tenants.size(), s.key_owner.size(),
                         refresh ? " (changed on another node)" : "");
          },
          [=](caf::error& e) {
            spdlog::error("tenants.load_failed error=\"{}\"", self->system().render(e));
            if (!refresh) self->quit(e);  // the root restarts us
          });
}

// A new API key for a tenant: stored first, honoured from then on; the key itself is shown once.
caf::result<issued_key> create_key(tenants_pointer self, id128 tenant_id) {
  auto& st = self->state;
  if (!st.loaded) return unavailable("tenants are still loading");
  if (!st.tenants.count(tenant_id))
    return make_error(petrel_errc::not_found, "no such tenant");
  issued_key out;
  out.api_key = generate_api_key();
  out.key = new_key_record(tenant_id, out.api_key);
  auto rp = self->make_response_promise<issued_key>();
  self->request(st.store, st.settings.config->storage.request_timeout, persist_atom::value, out.key)
      .then(
          [=](caf::ok_atom) mutable {
            auto& s = self->state;
            auto it = s.tenants.find(tenant_id);
            if (it != s.tenants.end()) it->second.keys.push_back(out.key);
            s.key_owner[out.key.key_hash] = tenant_id;
            spdlog::info("tenants.key_created tenant={} key={} prefix={}", tenant_id.str(),
                         out.key.id.str(), out.key.prefix);
            rp.deliver(std::move(out));
          },
          [=](caf::error& e) mutable { rp.deliver(std::move(e)); });
  return rp;
}

// A key stops being honoured at once; the store makes it permanent.
caf::result<caf::ok_atom> revoke_key(tenants_pointer self, id128 tenant_id, id128 key_id) {
  auto& st = self->state;
  auto it = st.tenants.find(tenant_id);
  if (it == st.tenants.end()) return make_error(petrel_errc::not_found, "no such tenant");
  auto& keys = it->second.keys;
  auto key = std::find_if(keys.begin(), keys.end(), [&](const auto& k) { return k.id == key_id; });
  if (key == keys.end()) return make_error(petrel_errc::not_found, "no such active key");
  // Stop honouring the key at once; the store makes it permanent.
  st.key_owner.erase(key->key_hash);
  keys.erase(key);
  spdlog::info("tenants.key_revoked tenant={} key={}", tenant_id.str(), key_id.str());
  return self->delegate(st.store, revoke_atom::value, key_id, tenant_id);
}

// A tenant's rate, burst, suspension, pool or weight changes: stored, then its actor told.
caf::result<tenant_record> update_tenant(tenants_pointer self, id128 tenant_id, const tenant_patch& patch) {
  auto& st = self->state;
  auto it = st.tenants.find(tenant_id);
  if (it == st.tenants.end()) return make_error(petrel_errc::not_found, "no such tenant");
  auto updated = it->second.record;
  if (patch.set_rate) updated.rate_per_second = patch.rate_per_second;
  if (patch.set_burst) updated.burst = patch.burst;
  if (patch.set_suspended) updated.suspended = patch.suspended;
  if (patch.set_pool) updated.pool = patch.pool;
  if (patch.set_weight) updated.weight = patch.weight;
  if (patch.set_sandbox) updated.sandbox = patch.sandbox;
  auto& t = updated.tracking;
  if (patch.set_tracking_opens) t.opens = patch.tracking_opens;
  if (patch.set_tracking_clicks) t.clicks = patch.tracking_clicks;
  if (patch.set_tracking_record_ip) t.record_ip = patch.tracking_record_ip;
  if (patch.set_tracking_domain && patch.tracking_domain != t.domain) {
    t.domain = patch.tracking_domain;
    t.verified = false;
    t.checked_at_ms = 0;
    t.status.clear();
  }
  if (patch.set_tracking_check) {
    if (patch.tracking_domain != t.domain)
      return make_error(petrel_errc::conflict, "the tracking domain changed while it was checked; check again");
    t.verified = patch.tracking_verified;
    t.checked_at_ms = patch.tracking_checked_at_ms;
    t.status = patch.tracking_status;
  }
  auto rp = self->make_response_promise<tenant_record>();
  self->request(st.store, st.settings.config->storage.request_timeout, caf::update_atom::value, updated)
      .then(
          [=](caf::ok_atom) mutable {
            auto& s = self->state;
            auto entry = s.tenants.find(tenant_id);
            if (entry != s.tenants.end()) {
              entry->second.record = updated;
              if (entry->second.handle)
                self->send(entry->second.handle, tenant_atom::value, updated);
            }
            publish_weights(self);
            spdlog::info("tenants.updated tenant={} rate_per_second={} burst={} suspended={}",
                         tenant_id.str(), updated.rate_per_second, updated.burst,
                         updated.suspended);
            rp.deliver(updated);
          },
          [=](caf::error& e) mutable { rp.deliver(std::move(e)); });
  return rp;
}

std::string percent(double rate) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2f%%", rate * 100);
  return buf;
}

// The reputation guard's round (reputation.check_interval): each tenant's rates over the
// window against the thresholds, and each of its sender domains' (a clean stream from one
// domain does not hide a bad one from another). Crossing up to a warning or a pause records a
// reputation_warning event (naming the sender domain, if it was one's rates); a pause suspends
// the tenant's sending (a control of kind "tenant", by "reputation_guard": recipients wait)
// until an operator resumes it, which starts the tenant's windows over.
void guard_round(tenants_pointer self) {
  auto& st = self->state;
  const auto& cfg = st.settings.config->reputation;
  auto now = unix_now_ms();
  reputation_thresholds limits{cfg.min_volume, cfg.complaint_warn, cfg.complaint_pause, cfg.bounce_warn,
                               cfg.bounce_pause};
  auto controls = st.settings.shared.controls->get();
  const auto& book = st.settings.shared.reputation;
  for (const auto& [id, entry] : st.tenants) {
    auto& g = st.guard[id];
    if (g.pausing) continue;  // until the controls actor answers
    bool suspended = controls->active("tenant", id.str(), now);
    if (g.paused && !suspended) {
      // Resumed by an operator: the rates start over from now.
      book->reset(id);
      g = {};
      spdlog::info("reputation.resumed tenant={} name={}", id.str(), entry.record.name);
      continue;
    }
    auto name = entry.record.name;
    // The tenant as a whole first, then each sender domain.
    std::vector<std::pair<std::string, reputation_counts>> scopes{{std::string(), book->counts(id, now)}};
    for (auto& d : book->sender_domain_counts(id, now)) scopes.push_back(std::move(d));
    const auto& counts = scopes.front().second;
    if (counts.volume() > 0) {
      auto labels = metric_labels{{"tenant", name}};
      metrics().get_gauge("petrel_tenant_complaint_rate_ppm", "Complaints per million delivered over reputation.window",
                          labels).set(static_cast<std::int64_t>(counts.complaint_rate() * 1e6));
      metrics().get_gauge("petrel_tenant_hard_bounce_rate_ppm",
                          "Hard bounces per million final attempts over reputation.window", labels)
          .set(static_cast<std::int64_t>(counts.hard_bounce_rate() * 1e6));
    }
    for (const auto& [domain, c] : scopes) {
      // A tenant's only sender domain has the tenant's own counts: judged once, as the tenant.
      if (!domain.empty() && c.delivered == counts.delivered && c.hard_bounces == counts.hard_bounces &&
          c.complaints == counts.complaints)
        continue;
      auto& level = domain.empty() ? g.level : g.sender_domains[domain];
      auto verdict = judge_reputation(c, limits);
      if (verdict.level == reputation_level::ok) {
        if (!g.paused) level = reputation_level::ok;
        continue;
      }
      // Suspended already (by an operator, another node's guard, or this guard for another
      // scope): nothing to pause, but once that suspension ends the pause is due, so the level
      // stays below it.
      if (verdict.level == reputation_level::pause && (suspended || g.pausing || g.paused))
        verdict.level = reputation_level::warning;
      if (verdict.level <= level) continue;  // warned of this level already
      level = verdict.level;
      bool pause = verdict.level == reputation_level::pause;
      event_record e;
      e.id = new_id();
      e.tenant_id = id;
      e.type = "reputation_warning";
      e.at_ms = now;
      e.data_json = event_data::reputation_warning(to_string(verdict.level), verdict.metric, verdict.rate,
                                                   verdict.threshold, cfg.window.count() / 1000, c.delivered,
                                                   c.hard_bounces, c.complaints, pause, domain);
      self->request(st.store, st.settings.config->storage.request_timeout, record_atom::value, std::move(e))
          .then([](caf::ok_atom) {}, [](caf::error&) {});
      spdlog::warn("reputation.{} tenant={} name={} sender_domain={} metric={} rate={} threshold={} delivered={} "
                   "hard_bounces={} complaints={}",
                   pause ? "paused" : "warning", id.str(), name, domain.empty() ? "-" : domain, verdict.metric,
                   percent(verdict.rate), percent(verdict.threshold), c.delivered, c.hard_bounces, c.complaints);
      metrics().get_counter("petrel_reputation_actions_total", "Reputation guard warnings and pauses",
                            {{"action", pause ? "pause" : "warn"}}).inc();
      if (!pause) continue;
      g.pausing = true;
      g.paused_by = domain;
      control_record ctl_record;
      ctl_record.kind = "tenant";
      ctl_record.target = id.str();
      ctl_record.reason = "reputation guard: " +
                          (domain.empty() ? std::string() : "sender domain " + domain + ": ") +
                          std::string(verdict.metric == "complaint_rate" ? "complaint" : "hard bounce") + " rate " +
                          percent(verdict.rate) + " >= " + percent(verdict.threshold) + " over " +
                          format_duration(cfg.window) + "; resume it when the cause is fixed";
      auto ctl = st.settings.shared.directory ? st.settings.shared.directory->get()->controls : controls_actor{};
      auto tenant = id;
      auto scope = domain;
      auto failed = [=](const std::string& why) {
        // Judged again next round (the warning is not repeated).
        auto& g = self->state.guard[tenant];
        g.pausing = false;
        g.paused_by.clear();
        (scope.empty() ? g.level : g.sender_domains[scope]) = reputation_level::warning;
        spdlog::warn("reputation.pause_failed tenant={} error=\"{}\"", tenant.str(), why);
      };
      if (!ctl) {
        failed("the controls actor is not running");
        continue;
      }
      self->request(ctl, st.settings.config->storage.request_timeout, guard_atom::value, suspend_atom::value,
                    std::move(ctl_record))
          .then(
              [=](control_record&) {
                auto& g = self->state.guard[tenant];
                g.pausing = false;
                g.paused = true;
              },
              [=](caf::error& e) { failed(self->system().render(e)); });
    }
  }
  self->delayed_send(self, cfg.check_interval, guard_atom::value);
}

tenants_actor::behavior_type tenants_behavior(tenants_pointer self, tenants_start start) {
  auto& st = start_actor(self);
  static_cast<tenants_start&>(st) = std::move(start);
  self->set_exit_handler([=](caf::exit_msg& msg) {
    auto& st = self->state;
    auto exited = exited_child(self, st.by_address, msg);
    if (!exited) return;
    auto id = *exited;
    auto entry = st.tenants.find(id);
    if (entry == st.tenants.end()) return;
    entry->second.handle = nullptr;
    if (!msg.reason) return;
    if (restart_child(self, entry->second.policy, "tenants", "tenant", id.str(), msg.reason,
                      restart_atom::value, id))
      entry->second.restarting = true;
  });
  load(self);
  if (st.settings.config->reputation.enabled)
    self->delayed_send(self, st.settings.config->reputation.check_interval, guard_atom::value);
  return {
      [=](guard_atom) { guard_round(self); },
      [=](auth_atom, const std::string& key_hash) -> caf::result<tenant_identity> {
        if (!self->state.loaded) return unavailable("tenants are still loading");
        auto* entry = entry_for_key(self, key_hash);
        if (!entry) return make_error(petrel_errc::unauthorized, "unknown or revoked API key");
        return tenant_identity{entry->record.id, entry->record.name};
      },
      [=](submit_atom, const std::string& key_hash,
          message_record& m) -> caf::result<submit_receipt> {
        if (!self->state.loaded) return unavailable("tenants are still loading");
        auto* entry = entry_for_key(self, key_hash);
        if (!entry) return make_error(petrel_errc::unauthorized, "unknown or revoked API key");
        auto handle = tenant_for(self, *entry);
        if (!handle) return unavailable("the tenant is restarting");
        return self->delegate(handle, submit_atom::value, std::move(m));
      },
      [=](message_atom, const std::string& key_hash,
          id128 message_id) -> caf::result<message_details> {
        if (!self->state.loaded) return unavailable("tenants are still loading");
        auto* entry = entry_for_key(self, key_hash);
        if (!entry) return make_error(petrel_errc::unauthorized, "unknown or revoked API key");
        auto handle = tenant_for(self, *entry);
        if (!handle) return unavailable("the tenant is restarting");
        return self->delegate(handle, message_atom::value, message_id);
      },
      [=](create_atom, const new_tenant& request) -> caf::result<created_tenant> {
        return create_tenant(self, request);
      },
      [=](create_atom, key_atom, id128 tenant_id) -> caf::result<issued_key> {
        return create_key(self, tenant_id);
      },
      [=](revoke_atom, id128 tenant_id, id128 key_id) -> caf::result<caf::ok_atom> {
        return revoke_key(self, tenant_id, key_id);
      },
      [=](caf::update_atom, id128 tenant_id, const tenant_patch& patch) -> caf::result<tenant_record> {
        return update_tenant(self, tenant_id, patch);
      },
      [=](list_atom) {
        std::vector<tenant_summary> out;
        for (const auto& [id, entry] : self->state.tenants) {
          tenant_summary s;
          s.tenant = entry.record;
          s.keys = entry.keys;
          for (auto& k : s.keys) k.key_hash.clear();
          auto now = unix_now_ms();
          s.reputation = self->state.settings.shared.reputation->counts(id, now);
          auto g = self->state.guard.find(id);
          if (g != self->state.guard.end()) {
            // The worst of the tenant's and its sender domains' levels.
            auto worst = g->second.level;
            for (const auto& [domain, l] : g->second.sender_domains) worst = std::max(worst, l);
            s.reputation_state = g->second.paused ? "paused" : to_string(std::min(worst, reputation_level::warning));
          }
          for (auto& [domain, counts] : self->state.settings.shared.reputation->sender_domain_counts(id, now)) {
            sender_domain_reputation d{domain, counts, "ok"};
            if (g != self->state.guard.end()) {
              if (g->second.paused && g->second.paused_by == domain) d.state = "paused";
              else if (auto l = g->second.sender_domains.find(domain); l != g->second.sender_domains.end())
                d.state = to_string(l->second == reputation_level::pause ? reputation_level::warning : l->second);
            }
            s.sender_domains.push_back(std::move(d));
          }
          out.push_back(std::move(s));
        }
        return out;
      },
      [=](bootstrap_atom, const std::string& name) -> caf::result<created_tenant> {
        if (!self->state.loaded) return unavailable("tenants are still loading");
        if (!self->state.tenants.empty()) return created_tenant{};
        return create_tenant(self, new_tenant{name, 0, 0});
      },
      [=](load_atom) { load(self, true); },
      [=](ready_atom) {
        if (self->state.loaded) return readiness{true, ""};
        return readiness{false, "loading tenants"};
      },
      [=](suppress_atom, id128 tenant_id,
          std::vector<suppression_record>& records) -> caf::result<caf::ok_atom> {
        auto handle = tenant_by_id(self, tenant_id);
        if (!handle) return handle.error();
        return self->delegate(*handle, suppress_atom::value, std::move(records));
      },
      [=](caf::delete_atom, suppress_atom, id128 tenant_id,
          std::string& key) -> caf::result<caf::ok_atom> {
        auto handle = tenant_by_id(self, tenant_id);
        if (!handle) return handle.error();
        return self->delegate(*handle, caf::delete_atom::value, suppress_atom::value, std::move(key));
      },
      [=](bounce_atom, id128 tenant_id, id128 recipient, std::string& key, std::string& event_id) {
        auto handle = tenant_by_id(self, tenant_id);
        if (handle)
          self->send(*handle, bounce_atom::value, recipient, std::move(key), std::move(event_id));
      },
      [=](restart_atom, id128 tenant_id) {
        auto it = self->state.tenants.find(tenant_id);
        if (it == self->state.tenants.end()) return;
        it->second.restarting = false;
        tenant_for(self, it->second);
      },
  };
}

}  // namespace

tenants_actor spawn_tenants(caf::actor_system& sys, caf::local_actor* parent, store_actor store,
                            signer_actor signers, const node_settings& settings) {
  return spawn_child(sys, parent, tenants_behavior,
                     tenants_start{std::move(store), std::move(signers), settings});
}

}  // namespace petrel
