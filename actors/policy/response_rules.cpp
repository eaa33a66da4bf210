// Response rules (see response_rules.hpp).
#include "actors/policy/response_rules.hpp"

#include <fnmatch.h>

#include <stdexcept>

namespace petrel {

response_rules::response_rules(const std::vector<response_rule_config>& rules) {
  for (const auto& r : rules) {
    compiled c;
    c.config = r;
    if (r.action == "suspend_site") c.action = response_action::suspend_site;
    else if (r.action == "suspend_tenant") c.action = response_action::suspend_tenant;
    else if (r.action == "throttle") c.action = response_action::throttle;
    else if (r.action == "bounce") c.action = response_action::bounce;
    else throw std::invalid_argument("response rule " + r.name + ": unknown action \"" + r.action + "\"");
    if (!r.pattern.empty()) {
      try {
        c.pattern.emplace(r.pattern, std::regex::ECMAScript | std::regex::icase);
      } catch (const std::regex_error& e) {
        throw std::invalid_argument("response rule " + r.name + ": bad pattern: " + e.what());
      }
    }
    rules_.push_back(std::move(c));
  }
}

namespace {

bool code_matches(int wanted, int code) {
  if (wanted == 0) return true;
  if (wanted < 10) return code / 100 == wanted;
  return code == wanted;
}

}  // namespace

std::vector<response_decision> response_tracker::observe(int code, std::string_view enhanced,
                                                         std::string_view text,
                                                         std::string_view mx_host,
                                                         const std::string& tenant,
                                                         std::int64_t now_ms) {
  std::vector<response_decision> out;
  if (!rules_) return out;
  const auto& rules = rules_->rules();
  for (std::size_t i = 0; i < rules.size(); ++i) {
    const auto& r = rules[i];
    const auto& c = r.config;
    if (!code_matches(c.reply_code, code)) continue;
    if (!c.enhanced.empty() && enhanced.substr(0, c.enhanced.size()) != c.enhanced) continue;
    if (!c.provider.empty()) {
      std::string host(mx_host);
      if (fnmatch(c.provider.c_str(), host.c_str(), FNM_CASEFOLD) != 0) continue;
    }
    if (r.pattern) {
      // Bounded like the bounce classifier: what decides is at the start of a reply.
      std::string head(text.substr(0, 2000));
      if (!std::regex_search(head, *r.pattern)) continue;
    }
    response_decision d;
    d.action = r.action;
    d.rule = c.name;
    d.until_ms = now_ms + c.duration.count();
    d.factor = c.factor;
    if (r.action == response_action::bounce) {
      out.push_back(std::move(d));
      continue;
    }
    auto key = std::to_string(i) + (r.action == response_action::suspend_tenant ? "#" + tenant : "");
    auto& times = hits_[key];
    times.push_back(now_ms);
    while (!times.empty() && times.front() <= now_ms - c.window.count()) times.pop_front();
    if (times.size() >= c.threshold) {
      times.clear();  // fired: count afresh
      out.push_back(std::move(d));
    }
  }
  return out;
}

}  // namespace petrel
