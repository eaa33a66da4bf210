// The controls actor: owner of the suspensions in force (see protocol.hpp). A change is written
// to the store first, then published as a new snapshot (node_settings.controls) and announced
// to the domains and egress supervisors, which tell every domain and site actor: a suspension
// takes effect within one message round, and survives restarts (loaded at start). Timed
// controls are dropped by a timer at their expiry, which announces the change again.
#include <caf/all.hpp>
#include <spdlog/spdlog.h>

#include <map>

#include "actors/actor_support.hpp"
#include "actors/policy/event_data.hpp"
#include "actors/metrics.hpp"
#include "actors/services.hpp"
#include "actors/spawn.hpp"

namespace petrel {

namespace {

// What the controls actor is given when it starts (its spawn arguments).
struct controls_start {
  store_actor store;
  domains_actor domains;
  egress_actor egress;
  node_settings settings;
};

struct controls_state : controls_start {
  controls_state() = default;
  std::map<std::pair<std::string, std::string>, control_record> controls;
  std::uint64_t timer_generation = 0;
  static inline const char* name = "controls";
};

using controls_pointer = controls_actor::stateful_pointer<controls_state>;

const std::set<std::string>& kinds() {
  static const std::set<std::string> all = {"domain", "site", "tenant", "source", "source_site",
                                            "tenant_site"};
  return all;
}

void publish(controls_pointer self) {
  auto& st = self->state;
  std::vector<control_record> all;
  for (const auto& [key, c] : st.controls) all.push_back(c);
  st.settings.shared.controls->set(std::make_shared<const control_snapshot>(std::move(all)));
  self->send(st.domains, controls_atom::value);
  self->send(st.egress, controls_atom::value);
  metrics().get_gauge("petrel_controls", "Suspensions in force").set(static_cast<double>(st.controls.size()));
}

// A timer at the earliest expiry.
void arm(controls_pointer self) {
  auto& st = self->state;
  std::int64_t next = 0;
  for (const auto& [key, c] : st.controls)
    if (c.until_ms != 0 && (next == 0 || c.until_ms < next)) next = c.until_ms;
  if (next == 0) return;
  auto delay = std::max<std::int64_t>(next - unix_now_ms(), 0) + 1;
  self->delayed_send(self, std::chrono::milliseconds(delay), caf::tick_atom::value);
}

// The admin_action event of a change (the tenant's, when a tenant is its target).
event_record action_event(const std::string& action, const control_record& c, const std::string& by) {
  event_record e;
  e.id = new_id();
  if (c.kind == "tenant")
    if (auto t = id128::parse(c.target)) e.tenant_id = *t;
  e.type = "admin_action";
  e.at_ms = unix_now_ms();
  e.data_json = event_data::admin_action(action, c.kind, c.target, c.until_ms, c.reason, by);
  return e;
}

template <class Done>
void persist(controls_pointer self, std::vector<write_op> ops, Done done) {
  auto& st = self->state;
  auto left = std::make_shared<std::size_t>(ops.size());
  auto failure = std::make_shared<caf::error>();
  for (auto& op : ops) {
    self->request(st.store, st.settings.config->storage.request_timeout, persist_atom::value,
                  write_request{std::move(op)})
        .then(
            [=](caf::ok_atom) mutable {
              if (--*left == 0) done(*failure);
            },
            [=](caf::error& e) mutable {
              *failure = e;
              if (--*left == 0) done(*failure);
            });
  }
}

// Stores and publishes a suspension; `done` gets the error, or none and the control.
template <class Done>
void apply_suspend(controls_pointer self, control_record c, const std::string& by, Done done) {
  c.created_at_ms = unix_now_ms();
  auto event = action_event("suspend", c, by);
  persist(self, {upsert_control_op{c}, append_event_op{event}}, [=](const caf::error& e) mutable {
    if (e) return done(e, c);
    auto& st = self->state;
    st.controls[{c.kind, c.target}] = c;
    spdlog::info("controls.suspended kind={} target={} until_ms={} reason=\"{}\" by={}", c.kind,
                 c.target, c.until_ms, c.reason, by);
    publish(self);
    arm(self);
    done(caf::error{}, c);
  });
}

caf::result<control_record> suspend(controls_pointer self, control_record c, const std::string& by) {
  if (!kinds().count(c.kind))
    return make_error(petrel_errc::invalid, "kind must be domain, site, tenant or source");
  if (c.target.empty()) return make_error(petrel_errc::invalid, "no target given");
  auto rp = self->make_response_promise<control_record>();
  apply_suspend(self, std::move(c), by, [=](const caf::error& e, const control_record& c) mutable {
    if (e)
      rp.deliver(e);
    else
      rp.deliver(c);
  });
  return rp;
}

// At start, and again (refresh) when another node of the cluster changed the controls: the
// store's set replaces this node's.
void load(controls_pointer self, bool refresh = false) {
  auto& st = self->state;
  self->request(st.store, st.settings.config->storage.request_timeout, load_atom::value, controls_atom::value)
      .then(
          [=](std::vector<control_record>& all) {
            auto& s = self->state;
            if (refresh) s.controls.clear();
            for (auto& c : all) s.controls[{c.kind, c.target}] = std::move(c);
            if (!s.controls.empty() || refresh)
              spdlog::info("controls.loaded count={}{}", s.controls.size(), refresh ? " (changed on another node)" : "");
            publish(self);
            arm(self);
          },
          [=](caf::error& e) {
            spdlog::error("controls.load_failed error=\"{}\"", self->system().render(e));
            if (!refresh) self->quit(e);  // the root restarts us
          });
}

controls_actor::behavior_type controls_behavior(controls_pointer self, controls_start start) {
  auto& st = start_actor(self);
  static_cast<controls_start&>(st) = std::move(start);
  load(self);
  return {
      [=](suspend_atom, control_record& c) -> caf::result<control_record> {
        return suspend(self, std::move(c), "admin");
      },
      [=](suspend_atom, control_record& c, const std::string& rule) {
        auto& st = self->state;
        // A rule that fires again while its suspension holds extends nothing: the first one
        // runs its course (the reply that fired it is seen again and again meanwhile).
        auto it = st.controls.find({c.kind, c.target});
        if (it != st.controls.end() && (it->second.until_ms == 0 || it->second.until_ms >= c.until_ms))
          return;
        metrics().get_counter("petrel_response_rule_actions_total", "Response rules that fired",
                              {{"action", "suspend"}}).inc();
        // No answer: the site sent this without asking for one.
        apply_suspend(self, std::move(c), "rule " + rule, [](const caf::error&, const control_record&) {});
      },
      [=](guard_atom, suspend_atom, control_record& c) -> caf::result<control_record> {
        auto& st = self->state;
        if (auto it = st.controls.find({c.kind, c.target}); it != st.controls.end()) return it->second;
        return suspend(self, std::move(c), "reputation_guard");
      },
      [=](resume_atom, const std::string& kind, const std::string& target) -> caf::result<caf::ok_atom> {
        auto& st = self->state;
        auto it = st.controls.find({kind, target});
        if (it == st.controls.end()) return make_error(petrel_errc::not_found, "no such suspension");
        auto c = it->second;
        auto rp = self->make_response_promise<caf::ok_atom>();
        persist(self, {delete_control_op{kind, target}, append_event_op{action_event("resume", c, "admin")}},
                [=](const caf::error& e) mutable {
                  if (e) {
                    // Already gone from the store (expired meanwhile) counts as resumed.
                    petrel_errc code;
                    std::string detail;
                    std::int64_t retry = 0;
                    if (!(read_error(e, code, detail, retry) && code == petrel_errc::conflict)) {
                      rp.deliver(e);
                      return;
                    }
                  }
                  self->state.controls.erase({kind, target});
                  spdlog::info("controls.resumed kind={} target={}", kind, target);
                  publish(self);
                  rp.deliver(caf::ok_atom::value);
                });
        return rp;
      },
      [=](load_atom) { load(self, true); },
      [=](list_atom) {
        std::vector<control_record> out;
        auto now = unix_now_ms();
        for (const auto& [key, c] : self->state.controls)
          if (c.until_ms == 0 || c.until_ms > now) out.push_back(c);
        return out;
      },
      [=](caf::tick_atom) {
        auto& st = self->state;
        auto now = unix_now_ms();
        std::vector<write_op> drops;
        for (auto it = st.controls.begin(); it != st.controls.end();) {
          if (it->second.until_ms != 0 && it->second.until_ms <= now) {
            spdlog::info("controls.expired kind={} target={}", it->second.kind, it->second.target);
            drops.push_back(delete_control_op{it->second.kind, it->second.target});
            it = st.controls.erase(it);
          } else {
            ++it;
          }
        }
        if (drops.empty()) return;
        publish(self);
        arm(self);
        persist(self, std::move(drops), [](const caf::error&) {});  // expired ones are ignored anyway
      },
  };
}

}  // namespace

controls_actor spawn_controls(caf::actor_system& sys, caf::local_actor* parent, store_actor store,
                              domains_actor domains, egress_actor egress,
                              const node_settings& settings) {
  return spawn_child(sys, parent, controls_behavior,
                     controls_start{std::move(store), std::move(domains), std::move(egress),
                                    settings});
}

}  // namespace petrel
