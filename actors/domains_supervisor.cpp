// The domains supervisor: routes durable recipients to their domain actors, starting them on
// demand; restarts crashed ones with backoff (one-for-one, bounded intensity per domain);
// retires idle ones; and on start recovers every domain the store has waiting recipients for.
#include <caf/all.hpp>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <unordered_map>
#include <unordered_set>

#include "actors/actor_support.hpp"
#include "actors/metrics.hpp"
#include "actors/services.hpp"
#include "actors/spawn.hpp"
#include "actors/supervision.hpp"

namespace petrel {

namespace {

// Domains fetched per recovery page.
constexpr std::uint64_t recovery_page = 1000;

struct child {
  domain_actor handle;  // null while waiting for a restart
  restart_policy policy;
  std::uint64_t batches_sent = 0;
};

// What the domains actor is given when it starts (its spawn arguments).
struct domains_start {
  store_actor store;
  resolver_actor resolver;
  egress_actor egress;
  node_settings settings;
};

struct domains_state : domains_start {
  // Not an aggregate: CAF would otherwise try to build it from the actor pointer (C++20).
  domains_state() = default;
  std::unordered_map<std::string, child> children;
  std::unordered_map<caf::actor_addr, std::string> by_address;
  bool recovered = false;  // every page of domains read and their actors started
  std::uint64_t recovered_domains = 0;
  // Domains started by recovery whose actors have not loaded their recipients yet: ready
  // only when this is empty too.
  std::unordered_set<std::string> loading;
  std::string recovery_error;
  static inline const char* name = "domains";
};

using domains_pointer = domains_actor::stateful_pointer<domains_state>;

domain_actor start_child(domains_pointer self, const std::string& domain) {
  auto& st = self->state;
  auto& c = st.children.try_emplace(domain, child{domain_actor{}, restart_policy(restart_limits_from(st.settings.config->actors)), 0})
                .first->second;
  c.handle = spawn_domain(self->system(), self, domain, st.store, st.resolver, st.egress,
                          caf::actor_cast<domains_actor>(self), st.settings);
  c.batches_sent = 0;
  st.by_address[c.handle.address()] = domain;
  return c.handle;
}

// The live actor of a domain, started if there is none. Null while a restart is pending:
// the restarted actor loads everything from the store, so nothing needs to be sent to it.
domain_actor child_for(domains_pointer self, const std::string& domain) {
  auto& st = self->state;
  auto it = st.children.find(domain);
  if (it == st.children.end()) return start_child(self, domain);
  return it->second.handle;
}

void recover_page(domains_pointer self, std::string after) {
  auto& st = self->state;
  self->request(st.store, st.settings.config->storage.request_timeout, domains_atom::value, after,
                recovery_page)
      .then(
          [=](std::vector<std::string>& domains) {
            for (const auto& d : domains) {
              child_for(self, d);
              self->state.loading.insert(d);
              ++self->state.recovered_domains;
            }
            if (domains.size() == recovery_page) {
              recover_page(self, domains.back());
              return;
            }
            self->state.recovered = true;
            spdlog::info("domains.recovered domains={}", self->state.recovered_domains);
          },
          [=](caf::error& e) {
            self->state.recovery_error = self->system().render(e);
            spdlog::error("domains.recovery_failed error=\"{}\"", self->state.recovery_error);
            self->quit(e);  // the root restarts us, and recovery starts over
          });
}

// Sends one request to the actor of `domain` ("" every live domain actor) and answers with
// the sum of their counts; a domain without an actor counts 0.
template <class T, class Send>
caf::result<T> fan_out(domains_pointer self, const std::string& domain, Send send) {
  auto& st = self->state;
  std::vector<domain_actor> targets;
  for (auto& [name, c] : st.children)
    if (c.handle && (domain.empty() || name == domain)) targets.push_back(c.handle);
  auto rp = self->make_response_promise<T>();
  if (targets.empty()) {
    rp.deliver(T{});
    return rp;
  }
  auto sum = std::make_shared<T>();
  auto left = std::make_shared<std::size_t>(targets.size());
  for (auto& h : targets) {
    auto req = [&](domain_actor target, auto&&... xs) {
      return self->request(target, std::chrono::seconds(10), std::forward<decltype(xs)>(xs)...);
    };
    send(h, req).then(
        [=](T n) mutable {
          *sum += n;
          if (--*left == 0) rp.deliver(*sum);
        },
        [=](caf::error&) mutable {
          if (--*left == 0) rp.deliver(*sum);
        });
  }
  return rp;
}

// Recipients accepted (or recovered): grouped by domain, one batch to each domain actor (started on demand).
void route_recipients(domains_pointer self, std::vector<queued_recipient>& recipients) {
  // Group by domain, then one message per domain actor.
  std::sort(recipients.begin(), recipients.end(),
            [](const auto& a, const auto& b) { return a.domain < b.domain; });
  std::size_t i = 0;
  while (i < recipients.size()) {
    std::size_t j = i;
    while (j < recipients.size() && recipients[j].domain == recipients[i].domain) ++j;
    const auto& domain = recipients[i].domain;
    auto handle = child_for(self, domain);
    if (handle) {
      auto& c = self->state.children[domain];
      std::vector<queued_recipient> batch(
          std::make_move_iterator(recipients.begin() + static_cast<std::ptrdiff_t>(i)),
          std::make_move_iterator(recipients.begin() + static_cast<std::ptrdiff_t>(j)));
      self->send(handle, enqueue_atom::value, ++c.batches_sent, std::move(batch));
    }
    i = j;
  }
}

// Every domain actor's queue, asked of each; a domain that crashed or retired meanwhile is left out.
caf::result<queue_summary> queue_summary_of(domains_pointer self) {
  auto& st = self->state;
  auto rp = self->make_response_promise<queue_summary>();
  auto summary = std::make_shared<queue_summary>();
  auto remaining = std::make_shared<std::size_t>(0);
  for (auto& [domain, c] : st.children) {
    if (c.handle)
      ++*remaining;
    else
      ++summary->restarting;
  }
  summary->domain_actors = *remaining;
  auto finish = [summary, rp]() mutable {
    std::sort(summary->domains.begin(), summary->domains.end(),
              [](const auto& a, const auto& b) { return a.domain < b.domain; });
    rp.deliver(std::move(*summary));
  };
  if (*remaining == 0) {
    finish();
    return rp;
  }
  for (auto& [domain, c] : st.children) {
    if (!c.handle) continue;
    self->request(c.handle, std::chrono::seconds(5), stats_atom::value)
        .then(
            [=](domain_queue_stats& s) mutable {
              summary->domains.push_back(std::move(s));
              if (--*remaining == 0) finish();
            },
            [=](caf::error&) mutable {
              // A domain that crashed or retired meanwhile is left out of this view.
              if (--*remaining == 0) finish();
            });
  }
  return rp;
}

// A child ended: retired normally (forgotten), or crashed (restarted by the supervision helper).
// Any other exit message is from the parent going away: followed.
void on_child_exit(domains_pointer self, caf::exit_msg& msg) {
  auto& st = self->state;
  auto exited = exited_child(self, st.by_address, msg);
  if (!exited) return;
  const auto& domain = *exited;
  auto c = st.children.find(domain);
  if (c == st.children.end()) return;
  if (!msg.reason) {  // retired normally
    st.children.erase(c);
    return;
  }
  c->second.handle = nullptr;
  restart_child(self, c->second.policy, "domains", "domain", domain, msg.reason,
                restart_atom::value, domain);
}

domains_actor::behavior_type domains_behavior(domains_pointer self, domains_start start) {
  auto& st = start_actor(self);
  static_cast<domains_start&>(st) = std::move(start);
  self->set_exit_handler([=](caf::exit_msg& msg) { on_child_exit(self, msg); });
  recover_page(self, "");
  return {
      [=](enqueue_atom, std::vector<queued_recipient>& recipients) {
        route_recipients(self, recipients);
      },
      [=](stats_atom) -> caf::result<queue_summary> { return queue_summary_of(self); },
      [=](crash_atom, const std::string& domain) {
        auto it = self->state.children.find(domain);
        if (it == self->state.children.end() || !it->second.handle) return false;
        self->send(it->second.handle, crash_atom::value);
        return true;
      },
      [=](ready_atom) {
        auto& st = self->state;
        if (st.recovered && st.loading.empty()) return readiness{true, ""};
        auto loaded = st.recovered_domains - st.loading.size();
        return readiness{false, "recovering waiting recipients from the store: " +
                                    std::to_string(loaded) + " domains loaded, " +
                                    std::to_string(st.loading.size()) + " loading" +
                                    (st.recovered ? "" : ", more to list")};
      },
      [=](ready_atom, const std::string& domain) {
        auto& st = self->state;
        if (st.loading.erase(domain) > 0 && st.recovered && st.loading.empty())
          spdlog::info("domains.recovery_loaded domains={}", st.recovered_domains);
      },
      [=](restart_atom, const std::string& domain) {
        auto it = self->state.children.find(domain);
        if (it == self->state.children.end() || it->second.handle) return;
        start_child(self, domain);
        spdlog::info("domains.child_restarted domain={}", domain);
      },
      [=](controls_atom) {
        for (auto& [domain, c] : self->state.children)
          if (c.handle) self->send(c.handle, controls_atom::value);
      },
      [=](stats_atom, const std::string& domain) -> caf::result<domain_queue_stats> {
        auto it = self->state.children.find(domain);
        if (it == self->state.children.end() || !it->second.handle)
          return make_error(petrel_errc::not_found, "no recipients wait for " + domain);
        return self->delegate(it->second.handle, stats_atom::value);
      },
      [=](cancel_atom, const std::string& domain, id128 tenant,
          const std::string& reason) -> caf::result<std::uint64_t> {
        return fan_out<std::uint64_t>(self, domain, [=](domain_actor h, auto& req) {
          return req(h, cancel_atom::value, tenant, reason);
        });
      },
      [=](flush_atom, const std::string& domain) -> caf::result<std::uint64_t> {
        return fan_out<std::uint64_t>(self, domain, [=](domain_actor h, auto& req) {
          return req(h, flush_atom::value);
        });
      },
      [=](retire_atom, const std::string& domain, std::uint64_t last_batch) {
        auto it = self->state.children.find(domain);
        if (it == self->state.children.end() || !it->second.handle) return;
        // Only if the actor has seen every batch we sent it; otherwise one is on its way.
        if (it->second.batches_sent != last_batch) return;
        auto handle = it->second.handle;
        self->state.by_address.erase(handle.address());
        self->state.children.erase(it);
        self->send(handle, retire_atom::value);
      },
  };
}

}  // namespace

restart_limits restart_limits_from(const actor_settings& a) {
  return restart_limits{a.max_restarts, a.restart_window, a.restart_backoff,
                        a.restart_backoff_max};
}

domains_actor spawn_domains(caf::actor_system& sys, caf::local_actor* parent, store_actor store,
                            resolver_actor resolver, egress_actor egress,
                            const node_settings& settings) {
  return spawn_child(sys, parent, domains_behavior,
                     domains_start{std::move(store), std::move(resolver), std::move(egress),
                                   settings});
}

}  // namespace petrel
