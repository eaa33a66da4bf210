// Bounce classification rules as data: the rule record and its TOML loader. The rules live
// here, not in net/, so that the configuration can read and check them without depending on
// the classifier (net/bounce.hpp), which evaluates them.
#pragma once

#include <array>
#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "config/units.hpp"

namespace petrel {

// The category names, in the order of petrel::bounce_category (net/bounce.hpp). "none" is the
// category of a success and is not allowed in a rule.
inline constexpr std::array<std::string_view, 13> bounce_category_names = {
    "none",         "invalid_recipient", "bad_domain", "mailbox_full", "spam_block",
    "policy",       "rate_limited",      "auth_failure", "content",    "message_too_big",
    "expired",      "network",           "other"};

// Sisimai's reason names (https://libsisimai.org/en/reason/), reported as `bounce_reason` next to
// Petrel's category so that users can compare with the tool they know. A rule may set one; else
// it follows from the category, the hardness and the status code (net/mail/bounce.hpp).
inline constexpr std::array<std::string_view, 26> bounce_reason_names = {
    "userunknown",   "hasmoved",     "hostunknown",   "notaccept",      "suspend",
    "filtered",      "mailboxfull",  "mesgtoobig",    "exceedlimit",    "blocked",
    "spamdetected",  "policyviolation", "rejected",   "norelaying",     "securityerror",
    "virusdetected", "contenterror", "toomanyconn",   "expired",        "networkerror",
    "systemerror",   "systemfull",   "mailererror",   "syntaxerror",    "onhold",
    "undefined"};

// One rule: every non-empty condition must hold for it to match; the first matching rule of
// the ordered list decides.
struct bounce_rule {
  std::string category;  // a bounce_category name
  std::string hardness;  // "hard", "soft", or "" (the category's default: hard for
                         // invalid_recipient and bad_domain, soft otherwise)
  int reply_code = 0;    // 0 any; 4 or 5 any of that class; else exact (e.g. 550)
  std::string enhanced;  // prefix like "5.1.1" or "4.7." ; "" any
  std::string pattern;   // ECMAScript regex, case-insensitive, searched in the reply/diagnostic
                         // text; "" any
  std::string provider;  // glob (fnmatch, case-insensitive) on the remote MTA host name; "" any
  std::string reason;    // a bounce_reason_names entry; "" follows from the category
  std::string comment;   // why the rule exists; not evaluated
};

// Limits of a rules file: a rule set is read at start, but from a file an operator edits, so a
// runaway file is refused rather than slowing every classification.
constexpr std::size_t max_bounce_rules = 2000;
constexpr std::size_t max_bounce_pattern_octets = 1000;

// Reads ordered [[rule]] tables (keys category, hardness, reply_code, enhanced, pattern,
// provider, reason, comment). Unknown keys, wrong types, unknown categories and invalid patterns are
// errors naming file:line:column and the key; all errors found are reported, one per line.
parsed<std::vector<bounce_rule>> load_bounce_rules(const std::string& path);
parsed<std::vector<bounce_rule>> load_bounce_rules_text(std::string_view toml_text,
                                                        const std::string& source_name);

}  // namespace petrel
