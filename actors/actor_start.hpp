// What several actors are given alike when they start (their `<name>_start` structs, see
// start_actor in actor_support.hpp).
#pragma once

#include <memory>

#include "actors/services.hpp"

namespace petrel {

// The actors that work through the I/O runtime besides the store: the senders actor (DNS
// verification), the events actor (webhook POSTs) and the egress supervisor (SMTP sessions).
struct io_actor_start {
  store_actor store;
  std::shared_ptr<delivery_runtime> runtime;
  node_settings settings;
};

// One egress source's path out: the runtime and store its sessions use, the source (address,
// EHLO name) and its gate (rate and warm-up shared by its sites). Given to the source's actor
// and, with a route and limits, to each of its site actors.
struct source_path {
  std::shared_ptr<delivery_runtime> runtime;
  store_actor store;
  egress_source source;
  std::shared_ptr<source_gate> gate;
};

}  // namespace petrel
