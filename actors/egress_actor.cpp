// The egress supervisor and its egress actors: one egress actor per configured source (IP +
// EHLO name), each the parent of the site actors that leave from that source, started on
// demand when a domain asks for its site. A crashed site actor is forgotten (domains monitor
// their site and ask again, which starts a fresh one); a crashed egress actor is restarted by
// the supervisor with backoff and bounded intensity.

#include <caf/all.hpp>
#include <spdlog/spdlog.h>

#include <map>
#include <unordered_map>

#include "actors/actor_start.hpp"
#include "actors/actor_support.hpp"
#include "actors/policy/sandbox.hpp"
#include "actors/metrics.hpp"
#include "actors/services.hpp"
#include "actors/spawn.hpp"
#include "actors/supervision.hpp"

namespace petrel {

std::vector<egress_source> egress_sources_from(const config& cfg, const std::string& hostname) {
  auto ehlo = cfg.delivery.ehlo_name.empty() ? hostname : cfg.delivery.ehlo_name;
  std::vector<egress_source> out;
  for (const auto& s : cfg.egress.sources)
    if (s.node.empty() || s.node == cfg.cluster.node_name)
      out.push_back({s.name, s.address, s.ehlo_name.empty() ? ehlo : s.ehlo_name});
  if (cfg.egress.sources.empty()) out.push_back({"default", "", ehlo});
  return out;
}

std::vector<std::string> egress_source_names(const config& cfg) {
  std::vector<std::string> out;
  for (const auto& s : cfg.egress.sources) out.push_back(s.name);
  if (out.empty()) out.push_back("default");
  return out;
}

std::string remote_node_of(const egress_settings& egress, const std::string& self_node, const std::string& source) {
  for (const auto& s : egress.sources)
    if (s.name == source) return s.node == self_node ? std::string() : s.node;
  return std::string();
}

namespace {

// -- egress actor (one source) ---------------------------------------------------------------

// What the egress_source actor is given when it starts (its spawn arguments).
struct source_start : source_path {
  node_settings settings;
};

struct source_state : source_start {
  source_state() = default;
  std::unordered_map<std::string, site_actor> sites;  // by site name
  std::unordered_map<caf::actor_addr, std::string> by_address;
  static inline const char* name = "egress";
};

using source_pointer = egress_source_actor::stateful_pointer<source_state>;

egress_source_actor::behavior_type source_behavior(source_pointer self, source_start start) {
  auto& st = start_actor(self);
  static_cast<source_start&>(st) = std::move(start);
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
        auto limits = site_limits_for(s.settings.config->delivery, r);
        auto site_name = r.site;
        auto site = spawn_site(self->system(), self, s.runtime, s.store, s.source, s.gate,
                               std::move(r), limits, s.settings);
        s.sites.emplace(site_name, site);
        s.by_address.emplace(site.address(), site_name);
        return site;
      },
      [=](controls_atom) {
        refresh_config(self->state.settings);  // sites started from now on get the new limits
        for (auto& [name, site] : self->state.sites) self->send(site, controls_atom::value);
      },
      [=](egress_atom) -> caf::result<std::vector<source_stats>> {
        auto& s = self->state;
        auto now = unix_now_ms();
        source_stats out;
        out.name = s.source.name;
        out.address = s.source.address;
        auto w = s.gate->warmup().view(now);
        out.warmup = w.active;
        out.warmup_day = w.day;
        out.per_day = w.per_day;
        out.per_hour = w.per_hour;
        out.used_today = w.used_today;
        out.used_this_hour = w.used_this_hour;
        out.warmup_started_ms = w.started_ms;
        for (auto& site : s.gate->site_warmups()) {
          auto v = site.budget->view(now);
          out.site_warmups.push_back({site.pattern, v.day, v.per_day, v.per_hour, v.used_today, v.used_this_hour});
        }
        for (const auto& src : s.settings.config->egress.sources)
          if (src.name == s.source.name) out.message_rate = src.message_rate.per_second;
        auto rp = self->make_response_promise<std::vector<source_stats>>();
        if (s.sites.empty()) {
          rp.deliver(std::vector<source_stats>{std::move(out)});
          return rp;
        }
        auto result = std::make_shared<source_stats>(std::move(out));
        auto left = std::make_shared<std::size_t>(s.sites.size());
        for (auto& [name, site] : s.sites) {
          self->request(site, std::chrono::seconds(5), stats_atom::value)
              .then(
                  [=](site_stats& one) mutable {
                    result->sites.push_back(std::move(one));
                    if (--*left == 0) rp.deliver(std::vector<source_stats>{*result});
                  },
                  [=](caf::error&) mutable {
                    if (--*left == 0) rp.deliver(std::vector<source_stats>{*result});
                  });
        }
        return rp;
      },
  };
}

// -- egress supervisor -----------------------------------------------------------------------

struct egress_child {
  egress_source_actor handle;
  restart_policy policy;
};

// What the egress_supervisor actor is given when it starts (its spawn arguments).
using egress_start = io_actor_start;

struct supervisor_state : egress_start {
  supervisor_state() = default;
  std::unordered_map<std::string, egress_child> children;  // by source name
  std::unordered_map<caf::actor_addr, std::string> by_address;
  std::unordered_map<std::string, std::shared_ptr<source_gate>> gates;  // by source name
  std::unordered_map<std::string, std::pair<std::uint64_t, std::uint64_t>> stored;  // day, hour counts
  std::unordered_map<std::string, std::int64_t> stored_starts;  // warm-up starts in the store
  std::map<std::string, node_actor> nodes;  // cluster: the linked nodes, for their sources
  static inline const char* name = "egress_supervisor";
};

using egress_pointer = egress_actor::stateful_pointer<supervisor_state>;

// How often the warm-up counters are written to the store: a crash loses at most this much of
// the day's count (and may send that many messages over the budget after a restart).
constexpr std::chrono::seconds usage_flush_interval{5};
constexpr std::int64_t hour_ms = 3'600'000;

double rate_of(const node_settings& settings, const std::string& source) {
  for (const auto& src : settings.config->egress.sources)
    if (src.name == source) return src.message_rate.per_second;
  return 0;
}

// The source's own schedule (site "") or that of one site pattern.
std::vector<warmup_step> warmup_of(const node_settings& settings, const std::string& source,
                                   const std::string& site = {}) {
  std::vector<warmup_step> out;
  for (const auto& src : settings.config->egress.sources)
    if (src.name == source)
      for (const auto& w : src.warmup)
        if (w.site == site) out.push_back({w.day, w.per_day, w.per_hour});
  return out;
}

// The site patterns of a source's warm-up, each with its schedule, in the order configured.
std::vector<std::pair<std::string, std::vector<warmup_step>>> site_warmups_of(const node_settings& settings,
                                                                               const std::string& source) {
  std::vector<std::pair<std::string, std::vector<warmup_step>>> out;
  for (const auto& src : settings.config->egress.sources)
    if (src.name == source)
      for (const auto& w : src.warmup)
        if (!w.site.empty() && std::none_of(out.begin(), out.end(), [&](const auto& s) { return s.first == w.site; }))
          out.emplace_back(w.site, warmup_of(settings, source, w.site));
  return out;
}

// The gate of a source: its rate, its warm-up and one budget per site pattern of its schedule.
// Warm-ups start unstarted (0): day 1 is the day of the source's first message, unless the
// store has an earlier start (load_usage).
std::shared_ptr<source_gate> make_gate(const node_settings& settings, const std::string& source) {
  auto gate = std::make_shared<source_gate>(rate_of(settings, source), warmup_of(settings, source), 0);
  for (auto& [pattern, schedule] : site_warmups_of(settings, source)) gate->add_site_warmup(pattern, schedule, 0);
  return gate;
}

// Usage rows of a site budget are stored under "<source>@<pattern>".
std::string usage_key(const std::string& source, const std::string& pattern) { return source + "@" + pattern; }

void start_source(egress_pointer self, const egress_source& source) {
  auto& st = self->state;
  auto& child = st.children[source.name];
  auto runtime = st.runtime;
  if (source.name == sandbox_pool) {
    // The sandbox's simulator: a source like the others whose sessions connect nowhere.
    runtime = std::make_shared<delivery_runtime>(st.runtime ? *st.runtime : delivery_runtime{});
    runtime->start_session = start_sandbox_session;
  }
  child.handle = self->spawn<caf::linked>(source_behavior,
                                          source_start{{runtime, st.store, source, st.gates[source.name]},
                                                       st.settings});
  st.by_address[child.handle.address()] = source.name;
}

egress_source sandbox_source(const egress_pointer& self) {
  const auto& rt = self->state.runtime;
  return egress_source{std::string(sandbox_pool), "", rt ? rt->hostname : std::string()};
}

// Restores warm-up starts and today's counts; a source that has not sent yet keeps no start
// (its first message sets one, which flush_usage writes).
void load_usage(egress_pointer self) {
  auto& st = self->state;
  self->request(st.store, st.settings.config->storage.request_timeout, load_atom::value, egress_atom::value)
      .then(
          [=](egress_state& saved) {
            auto& s = self->state;
            auto now = unix_now_ms();
            std::unordered_map<std::string, std::int64_t> starts;
            for (std::size_t i = 0; i < saved.sources.size() && i < saved.warmup_started.size(); ++i)
              starts[saved.sources[i]] = saved.warmup_started[i];
            std::unordered_map<std::string, warmup_budget*> budgets;  // by usage key
            for (auto& [name, gate] : s.gates) {
              budgets[name] = &gate->warmup();
              for (auto& site : gate->site_warmups()) budgets[usage_key(name, site.pattern)] = site.budget.get();
              if (!gate->warmup().active() && gate->site_warmups().empty()) continue;
              auto it = starts.find(name);
              if (it != starts.end() && it->second > 0) {
                gate->warmup().set_started(it->second);
                for (auto& site : gate->site_warmups()) site.budget->set_started(it->second);
                s.stored_starts[name] = it->second;
              }
            }
            for (const auto& u : saved.usage) {
              auto b = budgets.find(u.source);
              if (b == budgets.end()) continue;
              auto day_start = now - now % 86'400'000;
              auto hour_start = now - now % hour_ms;
              if (u.period == "day" && u.period_start_ms == day_start) b->second->restore(now, u.count, 0);
              if (u.period == "hour" && u.period_start_ms == hour_start) b->second->restore(now, 0, u.count);
            }
          },
          [=](caf::error& e) {
            spdlog::warn("egress.usage_not_loaded error=\"{}\"", self->system().render(e));
          });
}

// The usage rows of a budget that changed since they were last written.
void changed_usage(egress_pointer self, const std::string& key, warmup_budget& budget,
                   std::int64_t now, std::vector<egress_usage_record>& out) {
  auto& st = self->state;
  auto v = budget.view(now);
  if (!v.active) return;
  auto& last = st.stored[key];
  if (last.first == v.used_today && last.second == v.used_this_hour) return;
  last = {v.used_today, v.used_this_hour};
  out.push_back({key, "day", v.day_start_ms, v.used_today});
  out.push_back({key, "hour", now - now % hour_ms, v.used_this_hour});
}

// Writes the counters that changed; `done` (if any) runs once every write is answered.
void flush_usage(egress_pointer self, std::function<void()> done = nullptr) {
  auto& st = self->state;
  auto now = unix_now_ms();
  std::vector<egress_usage_record> rows;
  for (auto& [name, gate] : st.gates) {
    // A warm-up that began since (its first message): its start is kept for later restarts.
    if (auto started = gate->warmup().started_ms();
        started > 0 && (gate->warmup().active() || !gate->site_warmups().empty()) && st.stored_starts[name] != started) {
      st.stored_starts[name] = started;
      self->request(st.store, st.settings.config->storage.request_timeout, persist_atom::value,
                    write_request{set_warmup_start_op{name, started}})
          .then([](caf::ok_atom) {}, [](caf::error&) {});
    }
    changed_usage(self, name, gate->warmup(), now, rows);
    for (auto& site : gate->site_warmups())
      changed_usage(self, usage_key(name, site.pattern), *site.budget, now, rows);
  }
  auto left = std::make_shared<std::size_t>(rows.size());
  auto answered = [left, done] {
    if (--*left == 0 && done) done();
  };
  if (rows.empty() && done) done();
  for (auto& row : rows)
    self->request(st.store, st.settings.config->storage.request_timeout, persist_atom::value,
                  write_request{set_egress_usage_op{std::move(row)}})
        .then([answered](caf::ok_atom) { answered(); }, [answered](caf::error&) { answered(); });
}

// A reloaded configuration: sources it adds are started, the others get its rate and warm-up
// schedules (their counts stay). A source it removes takes no new work (no pool names it any
// more) and ends with the node.
void reconcile_sources(egress_pointer self) {
  auto& st = self->state;
  for (const auto& source : st.settings.config->sources) {
    auto gate = st.gates.find(source.name);
    if (gate == st.gates.end()) {
      st.gates[source.name] = make_gate(st.settings, source.name);
      st.children[source.name].policy = restart_policy(restart_limits_from(st.settings.config->actors));
      start_source(self, source);
      spdlog::info("egress.source_added name={} address={} ehlo={}", source.name,
                   source.address.empty() ? "(any)" : source.address, source.ehlo_name);
      continue;
    }
    if (!gate->second->reconfigure(rate_of(st.settings, source.name), warmup_of(st.settings, source.name),
                                   site_warmups_of(st.settings, source.name)))
      spdlog::warn("egress.warmup_sites_unchanged source={} reason=\"site patterns of a warm-up change at the next start\"",
                   source.name);
  }
}

egress_actor::behavior_type egress_behavior(egress_pointer self, egress_start start) {
  auto& st = start_actor(self);
  static_cast<egress_start&>(st) = std::move(start);
  // Gates outlive restarts of their egress actor: a crash must not reset a warm-up budget.
  for (const auto& source : st.settings.config->sources)
    st.gates[source.name] = make_gate(st.settings, source.name);
  load_usage(self);
  self->delayed_send(self, usage_flush_interval, caf::tick_atom::value);
  for (const auto& source : st.settings.config->sources) {
    st.children[source.name].policy = restart_policy(restart_limits_from(st.settings.config->actors));
    start_source(self, source);
    spdlog::info("egress.source name={} address={} ehlo={}", source.name,
                 source.address.empty() ? "(any)" : source.address, source.ehlo_name);
  }
  {
    auto sandbox = sandbox_source(self);
    st.gates[sandbox.name] = make_gate(st.settings, sandbox.name);
    st.children[sandbox.name].policy = restart_policy(restart_limits_from(st.settings.config->actors));
    start_source(self, sandbox);
  }
  self->set_exit_handler([=](caf::exit_msg& msg) {
    auto& s = self->state;
    auto exited = exited_child(self, s.by_address, msg);
    if (!exited) return;
    const auto& name = *exited;
    auto& child = s.children[name];
    child.handle = nullptr;
    if (!msg.reason) return;
    restart_child(self, child.policy, "egress", "source", name, msg.reason, restart_atom::value, name);
  });
  return {
      [=](site_atom, const std::string& source, route& r) -> caf::result<site_actor> {
        auto& s = self->state;
        if (source.empty() && s.settings.config->sources.empty())
          return make_error(petrel_errc::unavailable, "no egress source is configured on this node");
        auto it = source.empty() ? s.children.find(s.settings.config->sources.front().name)
                                 : s.children.find(source);
        if (it == s.children.end()) {
          // Another node's source (cluster): its site actor is there; the domain actor runs the
          // same demand/credit protocol with it over the node link.
          const auto& k = s.settings.config->cluster;
          auto node = remote_node_of(s.settings.config->egress, k.node_name, source);
          if (!k.enabled || node.empty())
            return make_error(petrel_errc::invalid, "no egress source named " + source);
          auto link = s.nodes.find(node);
          if (link == s.nodes.end() || !link->second)
            return make_error(petrel_errc::unavailable,
                              "egress source " + source + " is on node " + node + ", not linked now", 5000);
          return self->delegate(link->second, site_atom::value, source, std::move(r));
        }
        if (!it->second.handle)
          return make_error(petrel_errc::unavailable, "egress source " + source + " is restarting", 1000);
        return self->delegate(it->second.handle, site_atom::value, source, std::move(r));
      },
      [=](restart_atom, const std::string& name) {
        auto& s = self->state;
        for (const auto& src : s.settings.config->sources)
          if (src.name == name && !s.children[name].handle) start_source(self, src);
        if (name == sandbox_pool && !s.children[name].handle) start_source(self, sandbox_source(self));
      },
      [=](controls_atom) {
        if (refresh_config(self->state.settings)) reconcile_sources(self);
        for (auto& [name, child] : self->state.children)
          if (child.handle) self->send(child.handle, controls_atom::value);
      },
      [=](route_atom, partition_routes& routes) { self->state.nodes = std::move(routes.nodes); },
      [=](egress_atom) -> caf::result<std::vector<source_stats>> {
        auto& s = self->state;
        auto rp = self->make_response_promise<std::vector<source_stats>>();
        auto result = std::make_shared<std::vector<source_stats>>();
        auto left = std::make_shared<std::size_t>(0);
        // (The sandbox's simulator is no egress path: the views leave it out.)
        for (auto& [name, child] : s.children)
          if (child.handle && name != sandbox_pool) ++*left;
        if (*left == 0) {
          rp.deliver(std::vector<source_stats>{});
          return rp;
        }
        for (auto& [name, child] : s.children) {
          if (!child.handle || name == sandbox_pool) continue;
          self->request(child.handle, std::chrono::seconds(10), egress_atom::value)
              .then(
                  [=](std::vector<source_stats>& one) mutable {
                    for (auto& x : one) result->push_back(std::move(x));
                    if (--*left == 0) {
                      std::sort(result->begin(), result->end(),
                                [](const auto& a, const auto& b) { return a.name < b.name; });
                      rp.deliver(*result);
                    }
                  },
                  [=](caf::error&) mutable {
                    if (--*left == 0) rp.deliver(*result);
                  });
        }
        return rp;
      },
      [=](caf::tick_atom) {
        flush_usage(self);
        self->delayed_send(self, usage_flush_interval, caf::tick_atom::value);
      },
      [=](shutdown_atom) -> caf::result<caf::ok_atom> {
        // What was counted since the last tick would otherwise be lost by a clean stop.
        auto rp = self->make_response_promise<caf::ok_atom>();
        flush_usage(self, [rp]() mutable { rp.deliver(caf::ok_atom::value); });
        return rp;
      },
  };
}

}  // namespace

egress_actor spawn_egress(caf::actor_system& sys, caf::local_actor* parent,
                          std::shared_ptr<delivery_runtime> runtime, store_actor store,
                          const node_settings& settings) {
  return spawn_child(sys, parent, egress_behavior,
                     egress_start{std::move(store), std::move(runtime), settings});
}

}  // namespace petrel
