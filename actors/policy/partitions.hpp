// Which node owns which destination domains in a cluster (docs/cluster.md), as plain code.
// Domains fall into a fixed number of partitions by a stable hash of their name; each partition
// has one owner among the live nodes, chosen by rendezvous (highest random weight) hashing, so
// that a node joining or leaving moves only the partitions it gains or loses (about 1/n of
// them) and every node computes the same answer from the same member list. Moves are made
// gradually: a node claims at most a few partitions per lease round, and hands over a partition
// only once its new owner is live.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace petrel {

// A stable 64-bit hash (FNV-1a) of text: the same on every node and every build.
std::uint64_t stable_hash(std::string_view text);

// The partition of a destination domain (ASCII, lower case: as the queues name it), 0..count-1.
std::uint32_t partition_of(std::string_view domain, std::uint32_t count);

// The node that should own a partition among the live nodes (names, any order); nothing when
// there is no live node.
std::optional<std::string> preferred_owner(std::uint32_t partition, const std::vector<std::string>& live_nodes);

// One partition as the store records it: its owner ("" when none) and whether that owner's
// lease is still valid.
struct partition_state {
  std::uint32_t id = 0;
  std::string owner;
  bool lease_valid = false;
};

// What one node should do in this round.
struct partition_moves {
  std::vector<std::uint32_t> claim;    // free, expired, or preferred here and released by its owner
  std::vector<std::uint32_t> release;  // owned here, preferred elsewhere by a live node
};

// The moves of node `self` in one round, given every partition's state and the live nodes
// (self included). At most `max_claims` claims and `max_releases` releases per round, so that a
// membership change is spread over several rounds instead of stopping every domain at once.
// A partition without a valid owner (never owned, released, or its owner's lease expired) is
// claimed by its preferred owner only, which is live by definition; a partition owned by a
// live node stays there until that node releases it.
partition_moves plan_partition_moves(const std::string& self, const std::vector<partition_state>& partitions,
                                     const std::vector<std::string>& live_nodes, std::size_t max_claims,
                                     std::size_t max_releases);

}  // namespace petrel
