// The domains supervisor: routes durable recipients to their domain actors, starting them on
// demand; restarts crashed ones with backoff (one-for-one, bounded intensity per domain);
// retires idle ones; and on start recovers every domain the store has waiting recipients for.
// In a cluster it runs only the domains of the partitions this node holds (the cluster actor
// tells it after every lease round): a partition gained is recovered from the store, one lost
// stops its domain actors at once, and a periodic repair scan finds recipients that other
// nodes accepted for held partitions.
#include <caf/all.hpp>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <unordered_map>
#include <unordered_set>

#include "actors/actor_support.hpp"
#include "actors/metrics.hpp"
#include "actors/policy/partitions.hpp"
#include "actors/services.hpp"
#include "actors/spawn.hpp"
#include "actors/supervision.hpp"

namespace petrel {

namespace {

// Domains fetched per recovery page.
constexpr std::uint64_t recovery_page = 1000;

counter& core_announced() {
  static auto& c = metrics().get_counter("petrel_cluster_announced_total",
                                         "Recipients announced to the node that owns their domain");
  return c;
}

struct child {
  domain_actor handle;  // null while waiting for a restart
  restart_policy policy;
  std::uint64_t batches_sent = 0;
  partition_grant claim;  // cluster: its partition and epoch
};

using partition_set = std::unordered_set<std::uint32_t>;

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
  // Cluster: the partitions held now, with their epochs; nothing runs for other partitions.
  bool clustered = false;
  bool membership_known = false;  // the cluster actor has reported once
  std::unordered_map<std::uint32_t, std::int64_t> held;
  std::uint64_t repair_generation = 0;
  // Partitions being handed over: no new work; the cluster actor is answered once the last
  // of their domain actors has finished.
  struct drain {
    caf::typed_response_promise<caf::ok_atom> done;
    std::size_t remaining = 0;
  };
  std::unordered_map<std::uint32_t, drain> draining;
  partition_routes routes;  // owners' node actors, for announcements
  static inline const char* name = "domains";
};

using domains_pointer = domains_actor::stateful_pointer<domains_state>;

// Cluster: the domain's partition and the epoch this node holds it in; nothing when another
// node holds it. Without a cluster every domain is this node's (epoch 0).
std::optional<partition_grant> claim_of(domains_pointer self, const std::string& domain) {
  auto& st = self->state;
  if (!st.clustered) return partition_grant{};
  auto p = partition_of(domain, st.settings.shared.leases->count());
  auto it = st.held.find(p);
  if (it == st.held.end() || st.draining.count(p)) return std::nullopt;
  return partition_grant{p, it->second};
}

domain_actor start_child(domains_pointer self, const std::string& domain, partition_grant claim) {
  auto& st = self->state;
  auto& c = st.children.try_emplace(domain, child{domain_actor{}, restart_policy(restart_limits_from(st.settings.config->actors)), 0, claim})
                .first->second;
  c.claim = claim;
  c.handle = spawn_domain(self->system(), self, domain, st.store, st.resolver, st.egress,
                          caf::actor_cast<domains_actor>(self), st.settings, claim);
  c.batches_sent = 0;
  st.by_address[c.handle.address()] = domain;
  return c.handle;
}

// The live actor of a domain, started if there is none. Null while a restart is pending:
// the restarted actor loads everything from the store, so nothing needs to be sent to it.
// Null too for a domain of a partition another node holds (its owner delivers it).
domain_actor child_for(domains_pointer self, const std::string& domain) {
  auto& st = self->state;
  auto it = st.children.find(domain);
  if (it != st.children.end()) return it->second.handle;
  auto claim = claim_of(self, domain);
  if (!claim) return domain_actor{};
  return start_child(self, domain, *claim);
}

// Stops the actors of domains whose partition is no longer held in their epoch: at once, and
// without a restart (their outcomes would be refused by the store anyway).
void stop_unheld(domains_pointer self) {
  auto& st = self->state;
  for (auto it = st.children.begin(); it != st.children.end();) {
    auto held = st.held.find(it->second.claim.partition);
    if (held != st.held.end() && held->second == it->second.claim.epoch) {
      ++it;
      continue;
    }
    if (it->second.handle) {
      st.by_address.erase(it->second.handle.address());
      self->send_exit(it->second.handle, caf::exit_reason::user_shutdown);
    }
    st.loading.erase(it->first);
    it = st.children.erase(it);
  }
}

// One page of the domains with waiting recipients: starts their actors (recovery). In a
// cluster only domains of held partitions count, of `only` when given; a repair scan also asks
// the domains that already have an actor to look for recipients they were not told about.
void recover_page(domains_pointer self, std::string after, std::shared_ptr<const partition_set> only,
                  bool repair) {
  auto& st = self->state;
  self->request(st.store, st.settings.config->storage.request_timeout, domains_atom::value, after,
                recovery_page)
      .then(
          [=](std::vector<std::string>& domains) {
            auto& st = self->state;
            for (const auto& d : domains) {
              auto claim = claim_of(self, d);
              if (!claim || (only && !only->count(claim->partition))) continue;
              auto existing = st.children.find(d);
              if (existing != st.children.end()) {
                if (repair && existing->second.handle)
                  self->send(existing->second.handle, recover_atom::value);
                continue;
              }
              child_for(self, d);
              st.loading.insert(d);
              ++st.recovered_domains;
            }
            if (domains.size() == recovery_page) {
              recover_page(self, domains.back(), only, repair);
              return;
            }
            if (repair || st.recovered) return;
            st.recovered = true;
            spdlog::info("domains.recovered domains={}", st.recovered_domains);
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

// Cluster: recipients of a domain whose partition another node holds go to that node's
// endpoint (none while the partition is being handed over from here, or without a link).
template <class It>
void announce(domains_pointer self, const std::string& domain, It first, It last) {
  auto& st = self->state;
  auto p = partition_of(domain, st.settings.shared.leases->count());
  if (st.held.count(p) || p >= st.routes.owners.size() || !st.routes.owners[p]) return;
  self->send(st.routes.owners[p], announce_atom::value,
             std::vector<queued_recipient>(std::make_move_iterator(first), std::make_move_iterator(last)));
  core_announced().inc(static_cast<std::uint64_t>(last - first));
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
    // In a cluster, another node's domain is announced to its owner when this node has a
    // link to it; either way the owner's repair scan would find the recipients in the store.
    if (self->state.clustered && !claim_of(self, domain)) {
      announce(self, domain, recipients.begin() + static_cast<std::ptrdiff_t>(i),
               recipients.begin() + static_cast<std::ptrdiff_t>(j));
      i = j;
      continue;
    }
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

// The sender cancels these recipients: each domain's to its actor (started if need be); the
// sum of what they cancelled. In a cluster, only domains this node holds (see docs/api.md).
caf::result<std::uint64_t> cancel_listed(domains_pointer self, std::vector<queued_recipient>& list,
                                         const std::string& reason) {
  std::sort(list.begin(), list.end(), [](const auto& a, const auto& b) { return a.domain < b.domain; });
  std::vector<std::pair<domain_actor, std::vector<queued_recipient>>> batches;
  for (std::size_t i = 0, j = 0; i < list.size(); i = j) {
    while (j < list.size() && list[j].domain == list[i].domain) ++j;
    const auto& domain = list[i].domain;
    if (self->state.clustered && !claim_of(self, domain)) continue;
    if (auto handle = child_for(self, domain))
      batches.emplace_back(handle, std::vector<queued_recipient>(list.begin() + static_cast<std::ptrdiff_t>(i),
                                                                 list.begin() + static_cast<std::ptrdiff_t>(j)));
  }
  auto rp = self->make_response_promise<std::uint64_t>();
  if (batches.empty()) {
    rp.deliver(std::uint64_t{0});
    return rp;
  }
  auto sum = std::make_shared<std::uint64_t>(0);
  auto left = std::make_shared<std::size_t>(batches.size());
  for (auto& [handle, batch] : batches)
    self->request(handle, std::chrono::seconds(10), cancel_atom::value, std::move(batch), reason)
        .then(
            [=](std::uint64_t n) mutable {
              *sum += n;
              if (--*left == 0) rp.deliver(*sum);
            },
            [=](caf::error&) mutable {
              if (--*left == 0) rp.deliver(*sum);
            });
  return rp;
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
  if (auto d = st.draining.find(c->second.claim.partition); d != st.draining.end()) {
    // Handed over (or failed while draining): either way it is not restarted here.
    st.children.erase(c);
    if (--d->second.remaining == 0) {
      d->second.done.deliver(caf::ok_atom::value);
      d->second.remaining = 0;
    }
    return;
  }
  if (!msg.reason) {  // retired normally
    st.children.erase(c);
    return;
  }
  c->second.handle = nullptr;
  if (!claim_of(self, domain)) {  // its partition went meanwhile: nothing to restart
    st.children.erase(c);
    return;
  }
  restart_child(self, c->second.policy, "domains", "domain", domain, msg.reason,
                restart_atom::value, domain);
}

// Cluster: the partitions held now. Lost ones stop; gained ones are recovered from the store.
void on_partitions(domains_pointer self, const std::vector<partition_grant>& grants) {
  auto& st = self->state;
  std::unordered_map<std::uint32_t, std::int64_t> now;
  for (const auto& g : grants) now.emplace(g.partition, g.epoch);
  auto gained = std::make_shared<partition_set>();
  for (const auto& [p, epoch] : now) {
    auto before = st.held.find(p);
    if (before == st.held.end() || before->second != epoch) gained->insert(p);
  }
  std::size_t lost = 0;
  for (const auto& [p, epoch] : st.held) {
    auto after = now.find(p);
    if (after == now.end() || after->second != epoch) ++lost;
  }
  st.held = std::move(now);
  // A handover ends when its partition is no longer held (released or lost).
  for (auto it = st.draining.begin(); it != st.draining.end();) {
    if (st.held.count(it->first)) {
      ++it;
      continue;
    }
    if (it->second.remaining > 0) it->second.done.deliver(caf::ok_atom::value);
    it = st.draining.erase(it);
  }
  if (lost > 0) stop_unheld(self);
  if (gained->empty() && lost == 0 && st.membership_known) return;
  spdlog::info("domains.partitions held={} gained={} lost={}", st.held.size(), gained->size(), lost);
  if (!st.membership_known) {
    st.membership_known = true;
    self->delayed_send(self, st.settings.config->cluster.repair_interval, recover_atom::value,
                       ++st.repair_generation);
    if (gained->empty()) st.recovered = true;
  }
  if (!gained->empty()) recover_page(self, "", gained, false);
}

domains_actor::behavior_type domains_behavior(domains_pointer self, domains_start start) {
  auto& st = start_actor(self);
  static_cast<domains_start&>(st) = std::move(start);
  self->set_exit_handler([=](caf::exit_msg& msg) { on_child_exit(self, msg); });
  st.clustered = st.settings.shared.leases->clustered();
  // In a cluster nothing is recovered before the cluster actor says which partitions are held.
  if (!st.clustered) recover_page(self, "", nullptr, false);
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
        if (st.clustered && !st.membership_known)
          return readiness{false, "waiting for the cluster: no lease round has finished yet"};
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
        auto claim = claim_of(self, domain);
        if (!claim) {
          self->state.children.erase(it);
          return;
        }
        start_child(self, domain, *claim);
        spdlog::info("domains.child_restarted domain={}", domain);
      },
      [=](controls_atom) {
        refresh_config(self->state.settings);  // domain actors started from now on get it
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
      [=](cancel_atom, std::vector<queued_recipient>& list, const std::string& reason) -> caf::result<std::uint64_t> {
        return cancel_listed(self, list, reason);
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
        // One being handed over quits by itself, and is counted when it does.
        if (self->state.draining.count(it->second.claim.partition)) return;
        auto handle = it->second.handle;
        self->state.by_address.erase(handle.address());
        self->state.children.erase(it);
        self->send(handle, retire_atom::value);
      },
      [=](partition_atom, const std::vector<partition_grant>& grants) { on_partitions(self, grants); },
      [=](route_atom, partition_routes& routes) { self->state.routes = std::move(routes); },
      [=](drain_atom, std::uint32_t partition) -> caf::result<caf::ok_atom> {
        auto& st = self->state;
        auto rp = self->make_response_promise<caf::ok_atom>();
        auto& d = st.draining[partition];
        if (d.remaining > 0) d.done.deliver(caf::ok_atom::value);  // an earlier request: superseded
        d = {rp, 0};
        for (auto it = st.children.begin(); it != st.children.end();) {
          if (it->second.claim.partition != partition) {
            ++it;
            continue;
          }
          if (!it->second.handle) {  // waiting for a restart: nothing in flight
            st.loading.erase(it->first);
            it = st.children.erase(it);
            continue;
          }
          self->send(it->second.handle, drain_atom::value);
          st.loading.erase(it->first);
          ++d.remaining;
          ++it;
        }
        if (d.remaining == 0) rp.deliver(caf::ok_atom::value);
        spdlog::info("domains.draining partition={} domains={}", partition, d.remaining);
        return rp;
      },
      [=](recover_atom, std::uint64_t generation) {
        auto& st = self->state;
        if (generation != st.repair_generation) return;
        recover_page(self, "", nullptr, true);
        self->delayed_send(self, st.settings.config->cluster.repair_interval, recover_atom::value,
                           generation);
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
