// Small helpers every actor implementation uses: handlers that log through spdlog instead of
// CAF's defaults (which print to stdout), and time in the store's units.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>
#include <type_traits>

#include <caf/scheduled_actor.hpp>

#include "actors/policy/event_data.hpp"  // rfc3339
#include "storage/ids.hpp"

namespace petrel {

// Unexpected messages are logged and dropped; exceptions are logged with their what() and
// end the actor with that text as exit reason (its supervisor decides what happens next).
void install_logging_handlers(caf::scheduled_actor* self, const char* actor_name);

// How every actor's behaviour begins: the logging handlers, under the name its state gives
// (the name CAF reports too), and a reference to its state. An actor's state derives from a
// `<name>_start` struct (what it is given when it starts: its spawn arguments), which the
// behaviour assigns in one statement: `static_cast<site_start&>(st) = std::move(start);`.
template <class Pointer>
auto& start_actor(Pointer self) {
  install_logging_handlers(self, std::remove_reference_t<decltype(self->state)>::name);
  return self->state;
}


struct submit_receipt;

// The body of a submission's 202 answer (the HTTP API sends it; an Idempotency-Key keeps it).
std::string receipt_json_text(const submit_receipt& receipt);
// The detail of the conflict error when another request with the same Idempotency-Key was
// stored first.
inline constexpr std::string_view idempotency_conflict = "idempotency-key-taken";

// The timeout of a request to the store on a message's way (its write at submission, its load
// before an attempt, its outcomes, a domain's queue pages): none. The store answers every
// request it takes -- a failed commit or read is an error reply -- and if it dies, the root
// supervisor restarts every actor started after it (rest-for-one), which is every actor that
// can be waiting on it; the HTTP side keeps its own deadline. A CAF request timeout costs an
// entry in CAF's clock and a wake-up of its thread per request, which CAF 0.17 does not cancel
// when the answer comes (docs/performance.md).
inline constexpr auto store_answers = caf::infinite;

// Petrel's clock (storage/ids.hpp: the wall clock at start, advanced by the monotonic clock).
inline std::int64_t unix_now_ms() { return clock_ms(); }

}  // namespace petrel
