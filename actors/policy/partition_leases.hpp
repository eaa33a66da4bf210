// What this node may do for each partition right now (docs/cluster.md "Fencing"): the epoch it
// holds and until when, by this machine's monotonic clock. The cluster actor grants a lease
// after each renewal (the time it sent the renewal + lease − safe margin, so the local deadline
// always falls before the database's) and revokes it when the partition is lost or handed over.
// Domain actors check it before handing out work, SMTP sessions right before the final dot. A
// process stopped past its lease finds its deadlines passed when it wakes, whatever its
// messages say. Without a cluster (count 0) every check passes.
#pragma once

#include <cstdint>
#include <mutex>
#include <vector>

namespace petrel {

class partition_leases {
 public:
  explicit partition_leases(std::uint32_t count = 0) : slots_(count), seen_(count) {}

  bool clustered() const { return !slots_.empty(); }
  std::uint32_t count() const { return static_cast<std::uint32_t>(slots_.size()); }

  // The partition is held in this epoch until `until_ms` (steady clock, milliseconds).
  void grant(std::uint32_t partition, std::int64_t epoch, std::int64_t until_ms);
  void revoke(std::uint32_t partition);

  // Whether work of this epoch may go on at `at_ms` (steady ms): held, same epoch, not past
  // the deadline. Always true without a cluster.
  bool holds(std::uint32_t partition, std::int64_t epoch, std::int64_t at_ms) const;
  // The epoch held now (0: none).
  std::int64_t epoch(std::uint32_t partition) const;

  // Another node holds the partition in this epoch until at least `until_ms` (steady ms), as
  // this node read it from the database (the time it sent the query + the lease left then −
  // safe margin); epoch 0 forgets it. Jobs of that node sent through this node's sources are
  // checked against it (docs/cluster.md "Sources on nodes").
  void observe(std::uint32_t partition, std::int64_t epoch, std::int64_t until_ms);
  // Whether work of this epoch may go on at `at_ms`: held here (holds) or, as far as this node
  // knows, by the node that sent it. Always true without a cluster.
  bool in_force(std::uint32_t partition, std::int64_t epoch, std::int64_t at_ms) const;

  // The steady clock these deadlines use, in milliseconds.
  static std::int64_t now_ms();

 private:
  struct slot {
    std::int64_t epoch = 0;
    std::int64_t until_ms = 0;
  };
  mutable std::mutex mutex_;
  std::vector<slot> slots_;
  std::vector<slot> seen_;  // other nodes' leases
};

}  // namespace petrel
