#include "actors/scheduler_policy.hpp"

#include <caf/actor_system.hpp>
#include <caf/scheduler/coordinator.hpp>

namespace petrel {

void use_next_slot_sharing(caf::actor_system_config& cfg) {
  // An actor system takes a scheduler module from the factories when one is given, and makes
  // its default (scheduler.policy) only otherwise.
  cfg.module_factories.push_back([](caf::actor_system& sys) -> caf::actor_system::module* {
    return new caf::scheduler::coordinator<next_slot_sharing>(sys);
  });
}

}  // namespace petrel
