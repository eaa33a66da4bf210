// The due recipients of one destination domain through one egress source, served fairly:
// higher priority classes first; within a class the tenants in weighted rotation (a tenant of
// weight w gets up to w jobs per turn), so one tenant's million-message campaign does not
// starve another's password resets; within a tenant, messages in arrival order. Recipients of
// the same message that are due together travel in one job (up to max_recipients).
// Plain code: no actor, no clock.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <optional>
#include <unordered_map>
#include <vector>

#include "storage/ids.hpp"

namespace petrel {

struct ready_job {
  id128 message;
  id128 tenant;
  int priority = 0;
  std::vector<id128> recipients;
};

class fair_queue {
 public:
  // weight: the tenant's share of turns (>= 1); the latest value given counts.
  // alone: the recipient travels in a job of its own (its copy of the message is its own).
  void push(const id128& recipient, const id128& message, const id128& tenant, int priority,
            std::uint32_t weight, bool alone = false);

  // The next job in fair order among tenants for which `eligible` holds (nullptr: all), at
  // most max_recipients recipients of one message; nullopt when none is eligible.
  std::optional<ready_job> pop(std::size_t max_recipients,
                               const std::function<bool(const id128& tenant)>& eligible = nullptr);

  // Removes and returns every recipient for which `pick(tenant)` holds (all when null).
  std::vector<ready_job> drain(const std::function<bool(const id128& tenant)>& pick = nullptr);

  std::size_t recipients() const { return recipients_; }
  bool empty() const { return recipients_ == 0; }
  // Jobs the queued recipients make with at most max_recipients per job.
  std::size_t jobs(std::size_t max_recipients) const;
  // Recipients queued per tenant (for the admin views).
  std::unordered_map<id128, std::size_t, id128_hash> per_tenant() const;

 private:
  struct tenant_queue {
    std::deque<ready_job> messages;
    std::unordered_map<id128, std::size_t, id128_hash> open;  // message -> recipients queued
    std::uint32_t weight = 1;
    std::uint32_t served = 0;  // jobs served in the current turn
  };
  struct priority_class {
    std::deque<id128> rotation;  // tenants with work, in turn order
    std::unordered_map<id128, tenant_queue, id128_hash> tenants;
  };
  std::map<int, priority_class, std::greater<int>> classes_;
  std::size_t recipients_ = 0;
};

}  // namespace petrel
