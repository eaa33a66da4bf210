// Cluster coordination on PostgreSQL (issue 14, docs/architecture.md "Next"): node leases and
// partition owners with epochs. Every decision about time is the database's (clock_timestamp()),
// never a node's clock. A claim succeeds only on a partition that is free or whose lease has
// expired, and raises its epoch, which fences the previous owner: its renewals return nothing,
// and writes that carry the old epoch can be refused. Its own connection, blocking: used by one
// detached actor.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

struct pg_conn;  // libpq's PGconn

namespace petrel {

struct cluster_partition {
  std::uint32_t id = 0;
  std::string owner;  // "" when none
  std::int64_t epoch = 0;
  bool lease_valid = false;
  std::int64_t lease_left_ms = 0;  // by the database's clock when read (0 when not valid)
};

class cluster_store {
 public:
  // A PostgreSQL URL (postgresql://...); anything else is refused: a cluster needs PostgreSQL.
  explicit cluster_store(const std::string& url);
  ~cluster_store();
  cluster_store(const cluster_store&) = delete;
  cluster_store& operator=(const cluster_store&) = delete;

  // Registers the node or renews its lease (now + lease, by the database's clock).
  void renew_node(const std::string& name, const std::string& advertise, std::chrono::milliseconds lease);
  // The nodes whose lease has not expired, by name.
  std::vector<std::string> live_nodes();
  struct member {
    std::string name;
    std::string advertise;
    std::int64_t lease_left_ms = 0;  // negative: expired that long ago
  };
  // Every registered node, live or not, by name.
  std::vector<member> members();
  // Makes sure partitions 0..count-1 exist (free when new); returns how many the cluster has
  // (more than count when another node was configured with more).
  std::uint32_t ensure_partitions(std::uint32_t count);
  // Ends the node's lease now (a clean exit, after its partitions are released).
  void leave(const std::string& name);

  // What changed in the shared state other nodes keep in memory ("controls", "tenants",
  // "webhooks"), as the store announced it (pg_notify at commit), since the last call. Never
  // blocks. After the connection was lost every kind is returned: changes may have been missed.
  std::vector<std::string> changes();

  std::vector<cluster_partition> partitions();
  // The new epoch when the partition was free or its lease expired; nothing when another node
  // holds it.
  std::optional<std::int64_t> claim(std::uint32_t id, const std::string& node, std::chrono::milliseconds lease);
  // Renews the partitions the node holds in the epochs it knows; returns those still held. One
  // missing from the answer is lost: its work must stop at once.
  std::vector<std::pair<std::uint32_t, std::int64_t>> renew(const std::string& node,
                                                            const std::vector<std::pair<std::uint32_t, std::int64_t>>& held,
                                                            std::chrono::milliseconds lease);
  // Gives a partition up (handover); false when the node no longer held it in that epoch.
  bool release(std::uint32_t id, const std::string& node, std::int64_t epoch);

 private:
  void listen();
  pg_conn* conn_ = nullptr;
  int listen_pid_ = 0;  // the server process that LISTENs for us (another after a reconnect)
};

}  // namespace petrel
