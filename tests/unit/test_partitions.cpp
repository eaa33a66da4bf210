// Partition ownership in a cluster (actors/policy/partitions): stable partitions, rendezvous
// owners that every node computes alike, few moves when membership changes, gradual rounds.
#include <catch2/catch.hpp>

#include <map>
#include <set>

#include "actors/policy/partition_leases.hpp"
#include "actors/policy/partitions.hpp"

using namespace petrel;

namespace {

constexpr std::uint32_t count = 256;

std::map<std::uint32_t, std::string> owners(const std::vector<std::string>& nodes) {
  std::map<std::uint32_t, std::string> out;
  for (std::uint32_t p = 0; p < count; ++p) out[p] = *preferred_owner(p, nodes);
  return out;
}

}  // namespace

TEST_CASE("a domain's partition is stable and domains spread over the partitions") {
  CHECK(stable_hash("example.com") == stable_hash("example.com"));
  CHECK(stable_hash("") == 14695981039346656037ull);  // FNV-1a's offset basis: no input, no change
  CHECK(partition_of("gmail.com", count) == partition_of("gmail.com", count));
  CHECK(partition_of("anything", 0) == 0);
  std::vector<int> used(count, 0);
  for (int i = 0; i < 25600; ++i) ++used[partition_of("d" + std::to_string(i) + ".example", count)];
  for (auto n : used) {
    CHECK(n > 50);   // 100 expected in each
    CHECK(n < 160);
  }
}

TEST_CASE("every node computes the same owner whatever the order of the member list") {
  std::vector<std::string> a{"node-1", "node-2", "node-3"};
  std::vector<std::string> b{"node-3", "node-1", "node-2"};
  CHECK(owners(a) == owners(b));
  CHECK_FALSE(preferred_owner(7, {}).has_value());
  CHECK(*preferred_owner(7, {"solo"}) == "solo");
}

TEST_CASE("partitions are balanced over the live nodes") {
  auto o = owners({"node-1", "node-2", "node-3"});
  std::map<std::string, int> per_node;
  for (const auto& [p, node] : o) ++per_node[node];
  REQUIRE(per_node.size() == 3);
  for (const auto& [node, n] : per_node) {
    CHECK(n > 256 / 3 - 30);
    CHECK(n < 256 / 3 + 30);
  }
}

TEST_CASE("a node leaving moves only its own partitions; a node joining takes about 1/n") {
  auto three = owners({"node-1", "node-2", "node-3"});
  auto two = owners({"node-1", "node-3"});
  for (std::uint32_t p = 0; p < count; ++p)
    if (three[p] != "node-2") CHECK(two[p] == three[p]);  // the others keep theirs
  auto four = owners({"node-1", "node-2", "node-3", "node-4"});
  int moved = 0;
  for (std::uint32_t p = 0; p < count; ++p) {
    if (four[p] != three[p]) {
      ++moved;
      CHECK(four[p] == "node-4");  // moves go to the newcomer only
    }
  }
  CHECK(moved > 256 / 4 - 25);
  CHECK(moved < 256 / 4 + 25);
}

TEST_CASE("in each round a node claims what is free and preferred here, and releases what is preferred elsewhere") {
  std::vector<std::string> live{"a", "b"};
  std::vector<partition_state> state;
  for (std::uint32_t p = 0; p < 16; ++p) state.push_back({p, "", false});
  auto first = plan_partition_moves("a", state, live, 100, 100);
  CHECK(first.release.empty());
  for (auto p : first.claim) CHECK(*preferred_owner(p, live) == "a");
  std::set<std::uint32_t> claimed(first.claim.begin(), first.claim.end());
  auto for_b = plan_partition_moves("b", state, live, 100, 100);
  for (auto p : for_b.claim) CHECK_FALSE(claimed.count(p));  // never both
  CHECK(first.claim.size() + for_b.claim.size() == 16);

  // "a" owned everything while alone; "b" joined: "a" releases b's share, a few per round.
  for (auto& p : state) p = {p.id, "a", true};
  auto release = plan_partition_moves("a", state, live, 100, 3);
  CHECK(release.claim.empty());
  CHECK(release.release.size() == std::min<std::size_t>(3, for_b.claim.size()));
  for (auto p : release.release) CHECK(*preferred_owner(p, live) == "b");
  // "b" claims nothing still validly owned by "a".
  CHECK(plan_partition_moves("b", state, live, 100, 100).claim.empty());
}

TEST_CASE("when an owner's lease expires, its partitions go to their preferred survivors") {
  std::vector<partition_state> state;
  for (std::uint32_t p = 0; p < 32; ++p) state.push_back({p, "dead", false});
  std::vector<std::string> live{"x", "y"};
  auto x = plan_partition_moves("x", state, live, 2, 100);
  CHECK(x.claim.size() == 2);  // gradually: two per round
  auto all_x = plan_partition_moves("x", state, live, 100, 100);
  auto all_y = plan_partition_moves("y", state, live, 100, 100);
  CHECK(all_x.claim.size() + all_y.claim.size() == 32);
}

TEST_CASE("partition leases: held in one epoch until a local deadline, revoked at once") {
  partition_leases none;
  CHECK_FALSE(none.clustered());
  CHECK(none.holds(3, 0, 1'000'000));  // no cluster: every check passes

  partition_leases leases(4);
  CHECK(leases.clustered());
  CHECK_FALSE(leases.holds(1, 1, 100));  // never granted
  leases.grant(1, 7, 1000);
  CHECK(leases.holds(1, 7, 999));
  CHECK_FALSE(leases.holds(1, 7, 1000));  // the deadline itself is too late
  CHECK_FALSE(leases.holds(1, 6, 500));   // an older epoch is fenced
  CHECK(leases.epoch(1) == 7);
  leases.revoke(1);
  CHECK_FALSE(leases.holds(1, 7, 500));
  CHECK(leases.epoch(1) == 0);
  CHECK_FALSE(leases.holds(9, 1, 0));  // out of range
}

TEST_CASE("another node's lease: its jobs sent through this node's sources stop at its deadline") {
  partition_leases none;
  CHECK(none.in_force(2, 0, 1'000'000));  // no cluster: every check passes

  partition_leases leases(4);
  CHECK_FALSE(leases.in_force(2, 5, 100));  // nothing known
  leases.observe(2, 5, 1000);               // read from the database: held elsewhere in epoch 5
  CHECK(leases.in_force(2, 5, 999));
  CHECK_FALSE(leases.in_force(2, 5, 1000));  // past what was read
  CHECK_FALSE(leases.in_force(2, 4, 500));   // an older epoch (a node that lost it) is fenced
  CHECK_FALSE(leases.holds(2, 5, 500));      // observed is not held: this node's domains wait
  leases.observe(2, 6, 3000);                // claimed by a third node
  CHECK_FALSE(leases.in_force(2, 5, 500));
  leases.observe(2, 0, 0);                   // free now
  CHECK_FALSE(leases.in_force(2, 6, 500));
  leases.grant(3, 9, 2000);                  // this node's own
  CHECK(leases.in_force(3, 9, 1999));
  CHECK_FALSE(leases.in_force(3, 9, 2000));
}
