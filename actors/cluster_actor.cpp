// The cluster actor (docs/cluster.md): this node's membership and partitions, with PostgreSQL
// as the authority. Every renew_interval one lease round:
//   1. renew the node's lease (nodes table);
//   2. renew the partitions it holds, each in the epoch it claimed it with; one not renewed is
//      lost: revoked locally at once (partition_leases), so no attempt starts and no final
//      dot is sent for it, whatever any actor still believes;
//   3. read the members and partitions, plan the moves (actors/policy/partitions.hpp:
//      rendezvous hashing over the live nodes, a few partitions per round) and make them:
//      claims raise the epoch (fencing the previous owner); a partition to hand over drains
//      first (its domain actors start no attempt and finish those in flight, with the lease
//      still renewed), then is released, so that the next owner starts from what was committed;
//   4. grant a local deadline for every partition held (the time the renewal was sent + lease
//      − safe margin: always before the database's own expiry) and tell the domains
//      supervisor what is held now.
// A round that fails (PostgreSQL unreachable, a statement timeout) changes nothing held: the
// local deadlines run out by themselves, which stops delivery before another node can claim.
// It blocks on PostgreSQL, so it runs on its own thread, with its own connection.
//
// It also keeps this node's links to the other live members (CAF's middleman, TLS when
// configured): each member's node actor, connected asynchronously and monitored, and the
// owner of every partition, so that the domains supervisor can announce recipients to their
// owners (partition_routes). The node actor (node_endpoint below) is published by the
// composition root on cluster.listen.
#include <caf/all.hpp>
#include <caf/io/all.hpp>
#include <caf/openssl/manager.hpp>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <map>
#include <set>

#include "actors/actor_support.hpp"
#include "actors/metrics.hpp"
#include "actors/policy/partitions.hpp"
#include "actors/services.hpp"
#include "actors/spawn.hpp"
#include "storage/pg_cluster.hpp"

namespace petrel {

namespace {

struct cluster_start {
  domains_actor domains;
  egress_actor egress;
  controls_actor controls;
  tenants_actor tenants;
  events_actor events;
  node_settings settings;
};

// How long a cluster-wide admin view waits for each member.
constexpr auto gather_timeout = std::chrono::seconds(3);

// How often the changes other nodes announce are looked for (propagation within a second).
constexpr auto change_poll = std::chrono::milliseconds(200);

struct cluster_state : cluster_start {
  cluster_state() = default;
  std::unique_ptr<cluster_store> db;
  bool adopted = false;                    // partitions of an earlier run of this node read
  std::map<std::uint32_t, std::int64_t> held;  // partition -> epoch
  std::set<std::uint32_t> draining;            // held, being handed over
  std::vector<partition_grant> published;      // what the actors were told last
  // Links to the other members' node actors, by member name; and each partition's owner.
  std::map<std::string, node_actor> links;
  std::map<caf::actor_addr, std::string> link_names;
  std::set<std::string> connecting;
  // A member that could not be linked is tried again after a growing pause (1 s .. 60 s): a
  // refused TLS handshake also disturbs the middleman's other connections.
  std::map<std::string, std::pair<int, std::int64_t>> link_backoff;  // failures, next try (steady ms)
  std::vector<std::string> owners;  // by partition, "" when none
  bool leaving = false;                        // drain requested: hand everything over
  std::vector<caf::typed_response_promise<caf::ok_atom>> left;  // answered once nothing is held
  cluster_view view;
  static inline const char* name = "cluster";
};

using cluster_pointer = cluster_actor::stateful_pointer<cluster_state>;

std::vector<partition_grant> grants_of(const cluster_state& st) {
  std::vector<partition_grant> out;
  for (const auto& [p, epoch] : st.held) out.push_back({p, epoch});
  return out;
}

// Drops a partition: locally first (so that nothing more is sent for it), then from the list.
void lose(cluster_state& st, std::uint32_t p, const char* why) {
  st.settings.shared.leases->revoke(p);
  spdlog::warn("cluster.partition_lost partition={} epoch={} reason=\"{}\"", p, st.held[p], why);
  st.held.erase(p);
}

// The owners' node actors by partition, for the domains supervisor's announcements, and every
// linked node's, for the egress supervisor's remote sources.
void publish_routes(cluster_pointer self) {
  auto& st = self->state;
  partition_routes routes;
  routes.owners.resize(st.owners.size());
  for (std::size_t p = 0; p < st.owners.size(); ++p)
    if (auto it = st.links.find(st.owners[p]); it != st.links.end()) routes.owners[p] = it->second;
  routes.nodes = st.links;
  self->send(st.egress, route_atom::value, routes);
  self->send(st.domains, route_atom::value, std::move(routes));
}

void add_link(cluster_pointer self, const std::string& name, const node_actor& handle) {
  auto& st = self->state;
  if (auto old = st.links.find(name); old != st.links.end()) {
    if (old->second == handle) return;
    st.link_names.erase(old->second.address());
    self->demonitor(old->second.address());
  }
  st.links[name] = handle;
  st.link_names[handle.address()] = name;
  self->monitor(handle);
  spdlog::info("cluster.linked node={}", name);
  publish_routes(self);
}

// Connects to every live member that is not linked yet (asynchronously: the middleman does
// the connecting and answers with the remote node actor).
void link_members(cluster_pointer self, const std::vector<cluster_store::member>& members) {
  auto& st = self->state;
  const auto& k = st.settings.config->cluster;
  for (const auto& m : members) {
    // One connection per pair: the node whose name sorts first dials (see node_actor).
    if (m.lease_left_ms <= 0 || m.name <= k.node_name || st.links.count(m.name) || st.connecting.count(m.name))
      continue;
    if (auto b = st.link_backoff.find(m.name); b != st.link_backoff.end() && b->second.second > partition_leases::now_ms())
      continue;
    auto colon = m.advertise.rfind(':');
    if (colon == std::string::npos) continue;
    auto host = m.advertise.substr(0, colon);
    if (host.size() > 2 && host.front() == '[') host = host.substr(1, host.size() - 2);
    std::uint16_t port = 0;
    try {
      port = static_cast<std::uint16_t>(std::stoul(m.advertise.substr(colon + 1)));
    } catch (const std::exception&) {
      continue;
    }
    if (port == 0) continue;
    st.connecting.insert(m.name);
    auto& sys = self->system();
    auto mm = k.tls_cert_file.empty() ? sys.middleman().actor_handle() : sys.openssl_manager().actor_handle();
    auto name = m.name;
    self->request(mm, std::chrono::seconds(5), caf::connect_atom::value, host, port)
        .then(
            [self, name](caf::node_id&, caf::strong_actor_ptr& ptr, std::set<std::string>&) {
              auto& st = self->state;
              st.connecting.erase(name);
              st.link_backoff.erase(name);
              auto handle = caf::actor_cast<node_actor>(ptr);
              if (!handle) return;
              add_link(self, name, handle);
              // Introduce this node over the new connection, so that the other side can send too
              // (anonymously: the cluster actor itself is never exported to another node).
              if (st.settings.shared.endpoint)
                caf::anon_send(handle, cluster_atom::value, st.settings.config->cluster.node_name,
                               *st.settings.shared.endpoint);
            },
            [self, name](caf::error& e) {
              auto& st = self->state;
              st.connecting.erase(name);
              auto& [failures, next_try] = st.link_backoff[name];
              auto pause = std::min<std::int64_t>(60'000, 1000ll << std::min(failures, 6));
              ++failures;
              next_try = partition_leases::now_ms() + pause;
              spdlog::warn("cluster.link_failed node={} error=\"{}\" retry_in_ms={}", name,
                           self->system().render(e), pause);
            });
  }
}

// The domains supervisor hears every round; the events actor (webhook endpoints belong to
// partitions too) when what is held changed.
void publish_held(cluster_pointer self) {
  auto& st = self->state;
  auto grants = grants_of(st);
  bool changed = grants.size() != st.published.size();
  for (std::size_t i = 0; !changed && i < grants.size(); ++i)
    changed = grants[i].partition != st.published[i].partition || grants[i].epoch != st.published[i].epoch;
  if (changed) self->send(st.events, recover_atom::value);
  st.published = grants;
  self->send(st.domains, partition_atom::value, std::move(grants));
}

// The end of a handover: the partition's domain actors are done (or the drain timed out).
void release(cluster_pointer self, std::uint32_t p) {
  auto& st = self->state;
  st.draining.erase(p);
  auto it = st.held.find(p);
  if (it == st.held.end()) return;  // lost meanwhile
  auto epoch = it->second;
  st.settings.shared.leases->revoke(p);
  st.held.erase(it);
  try {
    st.db->release(p, st.settings.config->cluster.node_name, epoch);
    spdlog::info("cluster.partition_released partition={} epoch={}", p, epoch);
  } catch (const std::exception& e) {
    // Not released: its lease runs out instead, and another node claims it then.
    spdlog::warn("cluster.release_failed partition={} error=\"{}\"", p, e.what());
  }
  publish_held(self);
}

void start_handover(cluster_pointer self, std::uint32_t p) {
  auto& st = self->state;
  if (!st.held.count(p) || !st.draining.insert(p).second) return;
  auto timeout = st.settings.config->cluster.drain_timeout + std::chrono::seconds(2);
  self->request(st.domains, timeout, drain_atom::value, p)
      .then([=](caf::ok_atom) { release(self, p); },
            [=](caf::error& e) {
              spdlog::warn("cluster.drain_incomplete partition={} error=\"{}\"", p,
                           self->system().render(e));
              release(self, p);
            });
}

void answer_if_left(cluster_pointer self) {
  auto& st = self->state;
  if (!st.leaving || !st.held.empty() || st.left.empty()) return;
  try {
    st.db->leave(st.settings.config->cluster.node_name);
  } catch (const std::exception& e) {
    spdlog::warn("cluster.leave_failed error=\"{}\"", e.what());
  }
  spdlog::info("cluster.left node={}", st.settings.config->cluster.node_name);
  for (auto& rp : st.left) rp.deliver(caf::ok_atom::value);
  st.left.clear();
}

void run_round(cluster_pointer self) {
  auto& st = self->state;
  const auto& k = st.settings.config->cluster;
  auto& leases = *st.settings.shared.leases;
  auto deadline_from = [&](std::int64_t sent_ms) {
    return sent_ms + (k.lease - k.safe_margin).count();
  };
  auto started = partition_leases::now_ms();
  try {
    if (!st.db) st.db = std::make_unique<cluster_store>(st.settings.config->storage.url);
    if (!st.adopted) {
      // After a restart of this actor (or of the process within its lease): what the table
      // says this node holds is renewed below if still valid, or claimed again.
      for (const auto& p : st.db->partitions())
        if (p.owner == k.node_name && p.epoch > 0) st.held[p.id] = p.epoch;
      st.adopted = true;
    }
    // A leaving node is not a member any more: nobody hands it partitions, and the others
    // claim what it releases.
    if (st.leaving)
      st.db->leave(k.node_name);
    else
      st.db->renew_node(k.node_name, k.advertise, k.lease);

    auto renew_sent = partition_leases::now_ms();
    std::vector<std::pair<std::uint32_t, std::int64_t>> mine(st.held.begin(), st.held.end());
    auto kept = st.db->renew(k.node_name, mine, k.lease);
    std::map<std::uint32_t, std::int64_t> still(kept.begin(), kept.end());
    for (const auto& [p, epoch] : mine)
      if (!still.count(p)) {
        lose(st, p, "lease not renewed: expired or claimed by another node");
        st.draining.erase(p);
      }
    for (const auto& [p, epoch] : still) leases.grant(p, epoch, deadline_from(renew_sent));

    auto members = st.db->members();
    auto read_sent = partition_leases::now_ms();
    auto table = st.db->partitions();
    // Other nodes' leases, for their jobs sent through this node's sources.
    for (const auto& p : table)
      if (p.owner != k.node_name && p.lease_valid)
        leases.observe(p.id, p.epoch, read_sent + p.lease_left_ms - k.safe_margin.count());
      else
        leases.observe(p.id, 0, 0);
    std::vector<std::string> live;
    for (const auto& m : members)
      if (m.lease_left_ms > 0) live.push_back(m.name);
    std::vector<partition_state> states;
    for (const auto& p : table) states.push_back({p.id, p.owner, p.lease_valid});
    auto moves = plan_partition_moves(k.node_name, states, live, k.max_claims_per_round,
                                      k.max_releases_per_round);
    if (st.leaving) {
      moves.claim.clear();
      moves.release.clear();
      for (const auto& [p, epoch] : st.held) moves.release.push_back(p);
    }
    for (auto p : moves.release) start_handover(self, p);
    for (auto p : moves.claim) {
      auto sent = partition_leases::now_ms();
      if (auto epoch = st.db->claim(p, k.node_name, k.lease)) {
        st.held[p] = *epoch;
        leases.grant(p, *epoch, deadline_from(sent));
        spdlog::info("cluster.partition_claimed partition={} epoch={}", p, *epoch);
      }
    }

    st.settings.shared.live_nodes->store(static_cast<std::uint32_t>(std::max<std::size_t>(1, live.size())));
    if (!st.leaving) link_members(self, members);  // (a leaving node makes no new links)
    std::vector<std::string> owners(leases.count());
    for (const auto& p : table)
      if (p.id < owners.size() && p.lease_valid) owners[p.id] = p.owner;
    if (owners != st.owners) {
      st.owners = std::move(owners);
      publish_routes(self);
    }

    // The view for GET /admin/cluster, from what was read this round (claims included).
    cluster_view v;
    v.enabled = true;
    v.node = k.node_name;
    v.partition_count = leases.count();
    std::map<std::string, std::uint64_t> counts;
    for (const auto& p : table) {
      cluster_partition_view pv{p.id, p.owner, p.epoch, p.lease_valid};
      if (auto it = st.held.find(p.id); it != st.held.end()) {
        pv.owner = k.node_name;
        pv.epoch = it->second;
        pv.lease_valid = true;
      } else if (p.owner == k.node_name) {
        pv.owner.clear();  // released or lost this round
        pv.lease_valid = false;
      }
      if (pv.lease_valid && !pv.owner.empty()) ++counts[pv.owner];
      v.partitions.push_back(std::move(pv));
    }
    for (const auto& m : members)
      v.members.push_back({m.name, m.advertise, m.lease_left_ms > 0, m.lease_left_ms, counts[m.name]});
    v.last_round_at_ms = unix_now_ms();
    v.round_duration_ms = partition_leases::now_ms() - started;
    st.view = std::move(v);
  } catch (const std::exception& e) {
    // Nothing held changes: the local deadlines expire on their own if this goes on.
    st.view.error = e.what();
    st.view.last_round_at_ms = unix_now_ms();
    spdlog::warn("cluster.round_failed error=\"{}\" held={}", e.what(), st.held.size());
  }
  st.view.draining = st.leaving;
  publish_held(self);
  answer_if_left(self);
  auto elapsed = partition_leases::now_ms() - started;
  auto next = std::max<std::int64_t>(0, k.renew_interval.count() - elapsed);
  self->delayed_send(self, std::chrono::milliseconds(next), caf::tick_atom::value);
}

// Changes another node committed (pg_notify): the actors that keep them in memory reload.
void poll_changes(cluster_pointer self) {
  auto& st = self->state;
  if (st.db) {
    try {
      for (const auto& kind : st.db->changes()) {
        spdlog::debug("cluster.change kind={}", kind);
        if (kind == "controls") self->send(st.controls, load_atom::value);
        if (kind == "tenants") self->send(st.tenants, load_atom::value);
        if (kind == "webhooks") self->send(st.events, recover_atom::value);
      }
    } catch (const std::exception& e) {
      spdlog::debug("cluster.changes_unavailable error=\"{}\"", e.what());
    }
  }
  self->delayed_send(self, change_poll, load_atom::value);
}

// A cluster-wide admin view: the same question to every live member's node actor (this node's
// own endpoint included) at once; a member that is not linked or does not answer in time is
// reported with the reason.
template <class T, class Atom, class Fill>
caf::result<std::vector<node_report>> gather(cluster_pointer self, Atom atom, Fill fill) {
  auto& st = self->state;
  std::vector<std::pair<std::string, node_actor>> targets;
  if (st.settings.shared.endpoint)
    targets.emplace_back(st.view.node, caf::actor_cast<node_actor>(*st.settings.shared.endpoint));
  for (const auto& [name, handle] : st.links) targets.emplace_back(name, handle);
  auto out = std::make_shared<std::vector<node_report>>();
  for (const auto& m : st.view.members)
    if (m.live && m.name != st.view.node && !st.links.count(m.name))
      out->push_back(node_report{m.name, "not linked to " + st.view.node + " now", {}, {}, {}});
  auto rp = self->make_response_promise<std::vector<node_report>>();
  auto left = std::make_shared<std::size_t>(targets.size());
  auto finish = [out, left, rp]() mutable {
    if (--*left != 0) return;
    std::sort(out->begin(), out->end(), [](const auto& a, const auto& b) { return a.node < b.node; });
    rp.deliver(std::move(*out));
  };
  auto first = out->size();
  out->resize(first + targets.size());
  for (std::size_t i = 0; i < targets.size(); ++i) {
    (*out)[first + i].node = targets[i].first;
    self->request(targets[i].second, gather_timeout, atom)
        .then([out, i = first + i, fill, finish](T& answer) mutable {
                fill((*out)[i], answer);
                finish();
              },
              [self, out, i = first + i, finish](caf::error& e) mutable {
                (*out)[i].error = self->system().render(e);
                finish();
              });
  }
  if (targets.empty()) rp.deliver(std::move(*out));
  return rp;
}

cluster_actor::behavior_type cluster_behavior(cluster_pointer self, cluster_start start) {
  auto& st = start_actor(self);
  static_cast<cluster_start&>(st) = std::move(start);
  st.view.enabled = true;
  st.view.node = st.settings.config->cluster.node_name;
  self->set_down_handler([self](caf::down_msg& msg) {
    auto& st = self->state;
    auto it = st.link_names.find(msg.source);
    if (it == st.link_names.end()) return;
    spdlog::info("cluster.unlinked node={} reason=\"{}\"", it->second, self->system().render(msg.reason));
    st.links.erase(it->second);
    st.link_names.erase(it);
    publish_routes(self);
  });
  self->send(self, caf::tick_atom::value);
  self->delayed_send(self, change_poll, load_atom::value);
  return {
      [=](caf::tick_atom) { run_round(self); },
      [=](load_atom) { poll_changes(self); },
      [=](cluster_atom, const std::string& name, caf::actor& endpoint) {
        if (auto handle = caf::actor_cast<node_actor>(endpoint); handle && name != self->state.view.node)
          add_link(self, name, handle);
      },
      [=](cluster_atom) { return self->state.view; },
      [=](stats_atom) {
        return gather<queue_summary>(self, stats_atom::value,
                                     [](node_report& r, queue_summary& q) { r.queues = std::move(q); });
      },
      [=](egress_atom) {
        return gather<std::vector<source_stats>>(
            self, egress_atom::value, [](node_report& r, std::vector<source_stats>& s) { r.sources = std::move(s); });
      },
      [=](metrics_atom) {
        return gather<std::string>(self, metrics_atom::value,
                                   [](node_report& r, std::string& text) { r.metrics = std::move(text); });
      },
      [=](drain_atom) -> caf::result<caf::ok_atom> {
        auto& st = self->state;
        auto rp = self->make_response_promise<caf::ok_atom>();
        st.left.push_back(rp);
        if (!st.leaving) spdlog::info("cluster.draining node={} partitions={}", st.view.node, st.held.size());
        st.leaving = true;
        st.view.draining = true;
        if (st.held.empty() && st.db) answer_if_left(self);
        return rp;
      },
  };
}

// A node's endpoint: what the other nodes ask of this one, passed to the actor that does it.
node_actor::behavior_type node_endpoint_behavior(node_actor::pointer self,
                                                 std::weak_ptr<const service_directory> weak_directory,
                                                 std::shared_ptr<const node_config> config) {
  // A weak reference: the directory holds every actor's handle, and the endpoint must not keep
  // them (detached ones included) alive past shutdown.
  auto services_now = [weak_directory]() -> std::shared_ptr<const services> {
    auto directory = weak_directory.lock();
    return directory ? directory->get() : nullptr;
  };
  auto unavailable = [] { return make_error(petrel_errc::unavailable, "this node is starting or stopping", 1000); };
  return {
      [self, services_now](announce_atom, std::vector<queued_recipient>& recipients) {
        auto s = services_now();
        if (s && s->domains) self->send(s->domains, enqueue_atom::value, std::move(recipients));
      },
      [self, services_now](cluster_atom, std::string& name, caf::actor& endpoint) {
        auto s = services_now();
        if (s && s->cluster) self->send(s->cluster, cluster_atom::value, std::move(name), std::move(endpoint));
      },
      [self, services_now, config, unavailable](site_atom, std::string& source,
                                                route& r) -> caf::result<site_actor> {
        // Only a source of this node: never passed on again (nodes that disagree about where a
        // source is would otherwise send the request around).
        bool local = false;
        for (const auto& src : config->sources) local = local || src.name == source;
        if (source.empty() || !local)
          return make_error(petrel_errc::invalid, "egress source \"" + source + "\" is not on node " +
                                                      config->cluster.node_name);
        auto s = services_now();
        if (!s || !s->egress) return unavailable();
        return self->delegate(s->egress, site_atom::value, std::move(source), std::move(r));
      },
      [self, services_now, unavailable](stats_atom) -> caf::result<queue_summary> {
        auto s = services_now();
        if (!s || !s->domains) return unavailable();
        return self->delegate(s->domains, stats_atom::value);
      },
      [self, services_now, unavailable](egress_atom) -> caf::result<std::vector<source_stats>> {
        auto s = services_now();
        if (!s || !s->egress) return unavailable();
        return self->delegate(s->egress, egress_atom::value);
      },
      [](metrics_atom) { return metrics().render() + render_process_metrics(); },
  };
}

}  // namespace

node_actor spawn_node_endpoint(caf::actor_system& sys, std::shared_ptr<const service_directory> directory,
                               std::shared_ptr<const node_config> config) {
  return sys.spawn(node_endpoint_behavior, std::weak_ptr<const service_directory>(directory), std::move(config));
}

cluster_actor spawn_cluster(caf::actor_system& sys, caf::local_actor* parent, domains_actor domains,
                            egress_actor egress, controls_actor controls, tenants_actor tenants,
                            events_actor events, const node_settings& settings) {
  return spawn_child(sys, parent, runs_on::own_thread, cluster_behavior,
                     cluster_start{std::move(domains), std::move(egress), std::move(controls), std::move(tenants),
                                   std::move(events), settings});
}

}  // namespace petrel
