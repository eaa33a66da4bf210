// What a one-for-one supervisor does when a child crashed, written once: count the restart,
// ask the child's restart_policy (backoff, restart intensity), then either send the supervisor
// its restart message after the backoff, or -- past the intensity -- fail the supervisor so
// that its own parent decides (escalation, as in Erlang/OTP). CAF 0.17 has no supervisors of
// its own (see docs/architecture.md, supervision).
#pragma once

#include <caf/error.hpp>
#include <spdlog/spdlog.h>

#include <chrono>
#include <optional>
#include <string>
#include <unordered_map>
#include <utility>

#include "actors/metrics.hpp"
#include "actors/policy/restart_policy.hpp"
#include "actors/protocol.hpp"

namespace petrel {

// supervisor: the log prefix ("domains"); kind and child: what crashed ("domain",
// "example.com"), logged as kind=child. Returns false when the supervisor has given up (it is
// quitting).
template <class Self, class... Restart>
bool restart_child(Self* self, restart_policy& policy, const char* supervisor, const char* kind,
                   const std::string& child, const caf::error& reason, Restart&&... restart) {
  core().actor_restarts.inc();
  auto delay = policy.on_failure(std::chrono::steady_clock::now());
  if (delay.count() < 0) {
    spdlog::error("{}.giving_up {}={} reason=\"restart intensity exceeded\"", supervisor, kind, child);
    self->quit(make_error(petrel_errc::unavailable,
                          std::string(kind) + " " + child + " keeps crashing"));
    return false;
  }
  spdlog::warn("{}.child_crashed {}={} reason=\"{}\" restart_in_ms={}", supervisor, kind, child,
               self->system().render(reason), delay.count());
  self->delayed_send(self, delay, std::forward<Restart>(restart)...);
  return true;
}

// Which child an exit message is about, taken out of the supervisor's index of children by
// address. Nothing when it is not one of them: then the parent is going away, and the
// supervisor follows it (quits with its reason).
template <class Self, class Key>
std::optional<Key> exited_child(Self* self, std::unordered_map<caf::actor_addr, Key>& by_address,
                                const caf::exit_msg& msg) {
  auto it = by_address.find(msg.source);
  if (it == by_address.end()) {
    if (msg.reason) self->quit(msg.reason);
    return std::nullopt;
  }
  auto key = std::move(it->second);
  by_address.erase(it);
  return key;
}

}  // namespace petrel
