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
#include <caf/all.hpp>
#include <spdlog/spdlog.h>

#include <map>
#include <set>

#include "actors/actor_support.hpp"
#include "actors/policy/partitions.hpp"
#include "actors/services.hpp"
#include "actors/spawn.hpp"
#include "storage/pg_cluster.hpp"

namespace petrel {

namespace {

struct cluster_start {
  domains_actor domains;
  node_settings settings;
};

struct cluster_state : cluster_start {
  cluster_state() = default;
  std::unique_ptr<cluster_store> db;
  bool adopted = false;                    // partitions of an earlier run of this node read
  std::map<std::uint32_t, std::int64_t> held;  // partition -> epoch
  std::set<std::uint32_t> draining;            // held, being handed over
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

void publish_held(cluster_pointer self) {
  self->send(self->state.domains, partition_atom::value, grants_of(self->state));
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
    auto table = st.db->partitions();
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

cluster_actor::behavior_type cluster_behavior(cluster_pointer self, cluster_start start) {
  auto& st = start_actor(self);
  static_cast<cluster_start&>(st) = std::move(start);
  st.view.enabled = true;
  st.view.node = st.settings.config->cluster.node_name;
  self->send(self, caf::tick_atom::value);
  return {
      [=](caf::tick_atom) { run_round(self); },
      [=](cluster_atom) { return self->state.view; },
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

}  // namespace

cluster_actor spawn_cluster(caf::actor_system& sys, caf::local_actor* parent, domains_actor domains,
                            const node_settings& settings) {
  return spawn_child(sys, parent, runs_on::own_thread, cluster_behavior,
                     cluster_start{std::move(domains), settings});
}

}  // namespace petrel
