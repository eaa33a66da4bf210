// The sandbox (docs/sending.md, "Sandbox"): mail of a sandbox tenant, or submitted with
// "sandbox": true, is validated, stored, rendered and signed as usual but delivered nowhere.
// Its recipients get the reserved pool below, which the domain actors send through the node's
// simulator (a source whose sessions answer by address, actors/sandbox_session.cpp) instead of
// an egress source. Simulated outcomes make the same events and webhooks as real ones, and
// count toward neither suppressions nor the reputation guard.
#pragma once

#include <string>
#include <string_view>

namespace petrel {

// The pool of sandboxed recipients, and the name of the simulator's source and site. Pool and
// source names of the configuration cannot start with '~'.
inline constexpr std::string_view sandbox_pool = "~sandbox";
inline constexpr std::string_view sandbox_site = "sandbox";
// The route key of the simulator's lane in a domain actor (no DNS lookup).
inline constexpr std::string_view sandbox_route_key = "~sandbox";

// Addresses at this domain choose the simulated outcome by their local part (before any '+'):
//   bounce@      550 5.1.1: a hard bounce
//   complaint@   delivered, then a complaint (a "complained" event)
//   defer@       451 4.2.0 on the first attempt, delivered on the next
//   ooto@        delivered, then an automatic reply (out of office: counted, no event, as for real mail)
// Every other address, at this domain or any other, is delivered.
inline constexpr std::string_view simulator_domain = "simulator.petrel.test";

enum class simulated_outcome { delivered, bounce, complaint, defer_once, out_of_office };
simulated_outcome simulated_outcome_for(std::string_view address);
const char* to_string(simulated_outcome o);

}  // namespace petrel
