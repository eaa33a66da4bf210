// Partition ownership (see partitions.hpp).
#include "actors/policy/partitions.hpp"

namespace petrel {

std::uint64_t stable_hash(std::string_view text) {
  std::uint64_t h = 14695981039346656037ull;  // FNV-1a, 64-bit
  for (unsigned char c : text) {
    h ^= c;
    h *= 1099511628211ull;
  }
  return h;
}

namespace {

// A strong mix of a 64-bit value (the finalizer of SplitMix64): FNV-1a alone spreads short,
// similar inputs ("node-1", "node-2") poorly over the high bits that decide the comparison.
std::uint64_t mix(std::uint64_t x) {
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ull;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebull;
  x ^= x >> 31;
  return x;
}

std::uint64_t weight(std::uint32_t partition, std::string_view node) {
  return mix(stable_hash(node) ^ mix(partition + 0x9e3779b97f4a7c15ull));
}

}  // namespace

std::uint32_t partition_of(std::string_view domain, std::uint32_t count) {
  if (count == 0) return 0;
  return static_cast<std::uint32_t>(mix(stable_hash(domain)) % count);
}

std::optional<std::string> preferred_owner(std::uint32_t partition, const std::vector<std::string>& live_nodes) {
  const std::string* best = nullptr;
  std::uint64_t best_weight = 0;
  for (const auto& node : live_nodes) {
    auto w = weight(partition, node);
    // Ties (practically never) go to the smaller name, so every node decides alike.
    if (!best || w > best_weight || (w == best_weight && node < *best)) {
      best = &node;
      best_weight = w;
    }
  }
  if (!best) return std::nullopt;
  return *best;
}

partition_moves plan_partition_moves(const std::string& self, const std::vector<partition_state>& partitions,
                                     const std::vector<std::string>& live_nodes, std::size_t max_claims,
                                     std::size_t max_releases) {
  partition_moves out;
  for (const auto& p : partitions) {
    auto preferred = preferred_owner(p.id, live_nodes);
    if (!preferred) continue;
    bool mine = p.owner == self && p.lease_valid;
    bool owned = !p.owner.empty() && p.lease_valid;
    if (mine && *preferred != self) {
      if (out.release.size() < max_releases) out.release.push_back(p.id);
    } else if (!owned && *preferred == self) {
      if (out.claim.size() < max_claims) out.claim.push_back(p.id);
    }
  }
  return out;
}

}  // namespace petrel
