// The outcome of a delivery attempt (see attempt_outcome.hpp).
#include "actors/policy/attempt_outcome.hpp"

#include <algorithm>

namespace petrel {

namespace {

// RFC 3463 4.4.7: delivery time expired.
classification expiry() { return classification{bounce_category::expired, false, "4.4.7", -1, "expired"}; }

}  // namespace

bool category_listed(const std::vector<std::string>& names, bounce_category c) {
  auto name = to_string(c);
  return std::find(names.begin(), names.end(), name) != names.end();
}

attempt_outcome decide_attempt_outcome(const attempt_facts& facts,
                                       const std::function<classification()>& classify,
                                       const std::function<std::int64_t(std::uint32_t)>& next_attempt,
                                       const std::vector<std::string>& retry_5xx_categories) {
  attempt_outcome out;
  if (facts.suppressed) {  // final, not attempted
    out.state = recipient_state::suppressed;
    out.attempts = facts.attempts_before;
    return out;
  }
  if (facts.expired) {  // final, not attempted
    out.state = recipient_state::expired;
    out.attempts = facts.attempts_before;
    out.failure = expiry();
    return out;
  }
  out.attempts = facts.attempts_before + 1;
  if (facts.code >= 200 && facts.code < 300) {
    out.state = recipient_state::delivered;
    return out;
  }
  out.failure = classify();
  // 5xx is final unless its category is one operators retry; a response rule may make any
  // failure final.
  if (facts.force_bounce || (facts.code >= 500 && !category_listed(retry_5xx_categories, out.failure->category))) {
    out.state = recipient_state::bounced;
    return out;
  }
  out.next_attempt_at_ms = next_attempt(out.attempts);
  if (out.next_attempt_at_ms) {
    out.state = recipient_state::deferred;
  } else {
    out.state = recipient_state::expired;
    out.failure = expiry();
  }
  return out;
}

}  // namespace petrel
