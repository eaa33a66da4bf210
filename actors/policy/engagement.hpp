// Opens and clicks as the tracking listener sees them (docs/sending.md, "Machine opens and
// clicks"): who the client is behind trusted proxies, and whether a hit was a person's or a
// machine's, by documented heuristics. Machine hits are recorded and counted apart, never
// dropped and never mixed into the people's counts. Plain code.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "config/units.hpp"

namespace petrel {

struct hit_facts {
  std::string_view method;      // GET or HEAD
  std::string_view user_agent;  // "" none
  std::string_view client_ip;
  std::int64_t at_ms = 0;
  std::int64_t delivered_at_ms = 0;  // 0: not known
  std::int64_t machine_window_ms = 0;  // tracking.machine_window
};

struct hit_verdict {
  bool machine = false;
  // Why: "apple_privacy_proxy", "head_request", "no_user_agent", "scanner_user_agent",
  // "soon_after_delivery"; "" for a person.
  std::string reason;
};

// In this order, the first that applies:
// - a HEAD request (a person's mail client fetches with GET): head_request;
// - an address in 17.0.0.0/8 (Apple's network, from which Mail Privacy Protection fetches every
//   image of a message when it arrives): apple_privacy_proxy;
// - no User-Agent: no_user_agent;
// - a User-Agent of a known scanner, crawler, link previewer or HTTP library
//   (scanner_user_agent_patterns()): scanner_user_agent;
// - within machine_window of the delivery (security gateways fetch links as the message
//   arrives): soon_after_delivery.
hit_verdict judge_hit(const hit_facts& facts);

// The case-insensitive User-Agent substrings taken for machines.
const std::vector<std::string_view>& scanner_user_agent_patterns();

// The client's address: the peer's; when the peer is a trusted proxy, the last address of
// X-Forwarded-For that is not one (what the first untrusted hop said it came from).
std::string client_address(std::string_view peer, std::string_view forwarded_for,
                           const std::vector<ip_network>& trusted_proxies);

}  // namespace petrel
