// Response rules: SMTP replies that shape traffic. A rule matches a reply by code, enhanced code
// prefix, a regular expression on its text and a glob on the MX host; after `threshold`
// matches within `window` (per site, and per tenant for suspend_tenant) it fires its action
// for `duration`: suspend the site for the source, suspend the tenant at the site, throttle
// the site (rate and connections times `factor`), or bounce the recipient (at once, no
// threshold). Plain code; time is passed in.
#pragma once

#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <regex>
#include <string>
#include <unordered_map>
#include <vector>

#include "config/config.hpp"

namespace petrel {

enum class response_action { suspend_site, suspend_tenant, throttle, bounce };

struct response_decision {
  response_action action = response_action::throttle;
  std::string rule;  // its name
  std::int64_t until_ms = 0;
  double factor = 1;
};

class response_rules {
 public:
  response_rules() = default;
  // Throws std::invalid_argument naming the rule on a bad pattern or action.
  explicit response_rules(const std::vector<response_rule_config>& rules);
  bool empty() const { return rules_.empty(); }

  struct compiled {
    response_rule_config config;
    response_action action = response_action::throttle;
    std::optional<std::regex> pattern;
  };
  const std::vector<compiled>& rules() const { return rules_; }

 private:
  std::vector<compiled> rules_;
};

// The matches one site has seen, per rule (and tenant), to apply thresholds.
class response_tracker {
 public:
  explicit response_tracker(std::shared_ptr<const response_rules> rules) : rules_(std::move(rules)) {}

  // The decisions this reply triggers now (empty most of the time).
  std::vector<response_decision> observe(int code, std::string_view enhanced, std::string_view text,
                                         std::string_view mx_host, const std::string& tenant,
                                         std::int64_t now_ms);

 private:
  std::shared_ptr<const response_rules> rules_;
  std::unordered_map<std::string, std::deque<std::int64_t>> hits_;  // rule#tenant -> times
};

}  // namespace petrel
