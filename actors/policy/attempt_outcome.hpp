// What the result of a delivery attempt makes of a recipient: delivered, deferred (with its
// next attempt), bounced, expired or suppressed. The decision the domain actor applies to every
// outcome, as plain code: reply classes of RFC 5321 4.2.1, the operator's list of categories
// whose 5xx replies are retried (throttling sent as 5xx), response rules that make a failure
// final, and the retry schedule's max_age.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "net/mail/bounce.hpp"
#include "storage/records.hpp"

namespace petrel {

struct attempt_facts {
  int code = 0;               // the SMTP reply code; 0 when there was none (network, DNS, ...)
  bool suppressed = false;    // not attempted: the address became suppressed meanwhile
  bool expired = false;       // not attempted: past max_age before it could be
  bool force_bounce = false;  // a response rule made this failure final
  std::uint32_t attempts_before = 0;
};

struct attempt_outcome {
  recipient_state state = recipient_state::deferred;
  std::uint32_t attempts = 0;             // counting this attempt when one was made
  std::int64_t next_attempt_at_ms = 0;    // deferred only
  std::optional<classification> failure;  // why it was not delivered (expiry included)
};

// Whether a category is named in a configured list (bounces.suppress_categories, ...).
bool category_listed(const std::vector<std::string>& names, bounce_category c);

// classify: the failure's classification (called only for a failed attempt); next_attempt:
// the schedule's time for the attempt after `attempts` (0 when past max_age).
attempt_outcome decide_attempt_outcome(const attempt_facts& facts,
                                       const std::function<classification()>& classify,
                                       const std::function<std::int64_t(std::uint32_t)>& next_attempt,
                                       const std::vector<std::string>& retry_5xx_categories);

}  // namespace petrel
