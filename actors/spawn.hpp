// Starting an actor: linked to its supervisor (parent) when there is one, else alone from the
// actor system (the tests start actors without a supervisor). One helper instead of the same
// two branches in every actor's spawn function.
#pragma once

#include <caf/actor_system.hpp>
#include <caf/local_actor.hpp>

#include <utility>

namespace petrel {

// Where an actor runs: on the shared scheduler, or detached on a thread of its own (actors
// that block: the store, DKIM key generation).
enum class runs_on { scheduler, own_thread };

template <class F, class... Ts>
auto spawn_child(caf::actor_system& sys, caf::local_actor* parent, runs_on where, F fun,
                 Ts&&... xs) {
  if (where == runs_on::own_thread) {
    if (parent) return parent->spawn<caf::detached + caf::linked>(fun, std::forward<Ts>(xs)...);
    return sys.spawn<caf::detached>(fun, std::forward<Ts>(xs)...);
  }
  if (parent) return parent->spawn<caf::linked>(fun, std::forward<Ts>(xs)...);
  return sys.spawn(fun, std::forward<Ts>(xs)...);
}

template <class F, class... Ts>
auto spawn_child(caf::actor_system& sys, caf::local_actor* parent, F fun, Ts&&... xs) {
  return spawn_child(sys, parent, runs_on::scheduler, std::move(fun), std::forward<Ts>(xs)...);
}

}  // namespace petrel
