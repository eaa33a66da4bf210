// The bounce classifier (see bounce.hpp): ordered rules matched by reply code, enhanced code
// prefix, regex and provider glob, then a built-in fallback by RFC 3463 code.
#include "net/mail/bounce.hpp"

#include <fnmatch.h>

#include <algorithm>
#include <regex>
#include <cmath>
#include <stdexcept>

namespace petrel {

namespace {

char lower_ascii(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c + 32) : c; }

std::string lower_ascii(std::string_view s) {
  std::string out(s);
  for (auto& c : out) c = lower_ascii(c);
  return out;
}

bool is_digit(char c) { return c >= '0' && c <= '9'; }

// An RFC 3463 code split into its three parts; class is '2', '4', '5' (or 'x' in a rule prefix).
struct enhanced_parts {
  char cls = 0;
  std::string subject, detail;  // digits; empty in a prefix means "any"
};

// Parses "5.1.1" (complete = true) or a rule prefix like "5.", "4.7", "x.7.26".
std::optional<enhanced_parts> split_enhanced(std::string_view text, bool complete) {
  if (text.empty()) return std::nullopt;
  enhanced_parts parts;
  parts.cls = lower_ascii(text[0]);
  bool class_ok = parts.cls == '2' || parts.cls == '4' || parts.cls == '5' || (!complete && parts.cls == 'x');
  if (!class_ok) return std::nullopt;
  std::size_t i = 1;
  auto number = [&](std::string& out) -> bool {
    if (i >= text.size()) return !complete;
    if (text[i] != '.') return false;
    ++i;
    std::size_t start = i;
    while (i < text.size() && is_digit(text[i]) && i - start < 3) ++i;
    out = std::string(text.substr(start, i - start));
    return complete ? !out.empty() : true;
  };
  if (!number(parts.subject) || !number(parts.detail) || i != text.size()) return std::nullopt;
  if (complete && (parts.subject.empty() || parts.detail.empty())) return std::nullopt;
  return parts;
}

bool prefix_matches(const enhanced_parts& rule, const enhanced_parts& code) {
  if (rule.cls != 'x' && rule.cls != code.cls) return false;
  if (!rule.subject.empty() && rule.subject != code.subject) return false;
  if (!rule.detail.empty() && rule.detail != code.detail) return false;
  return true;
}

// A prefilter for a rule's regex: every match contains at least one of these lower-cased
// strings. It is checked with plain substring searches before the regex runs, because the
// standard library's regex engine is slow and most rules fail on this cheap test.
using literal_set = std::vector<std::string>;

// The shortest string of a set: a set is as selective as its weakest member.
std::size_t weakest(const literal_set& set) {
  std::size_t out = std::string::npos;
  for (const auto& s : set) out = std::min(out, s.size());
  return set.empty() ? 0 : out;
}

// Walks a pattern from `from`, skipping escapes and bracket classes: `step(i, c, depth)` sees
// every other character with the group depth after it ('(' counts already, ')' no longer);
// the walk stops when `step` returns false. Returns where it stopped, or npos at the end.
template <class Step>
std::size_t walk_pattern(std::string_view pattern, std::size_t from, Step step) {
  int depth = 0;
  bool in_class = false;
  for (std::size_t i = from; i < pattern.size(); ++i) {
    char c = pattern[i];
    if (c == '\\') {
      ++i;
    } else if (in_class) {
      if (c == ']') in_class = false;
    } else if (c == '[') {
      in_class = true;
    } else {
      if (c == '(') ++depth;
      if (c == ')') --depth;
      if (!step(i, c, depth)) return i;
    }
  }
  return std::string_view::npos;
}

// Splits at the '|' that are outside groups and classes.
std::vector<std::string_view> top_level_branches(std::string_view pattern) {
  std::vector<std::string_view> out;
  std::size_t start = 0;
  walk_pattern(pattern, 0, [&](std::size_t i, char c, int depth) {
    if (c == '|' && depth == 0) {
      out.push_back(pattern.substr(start, i - start));
      start = i + 1;
    }
    return true;
  });
  out.push_back(pattern.substr(start));
  return out;
}

std::optional<literal_set> alternation_requirement(std::string_view pattern, int depth);

// The index of the ')' closing the group opened at open, or npos.
std::size_t group_end(std::string_view pattern, std::size_t open) {
  return walk_pattern(pattern, open, [](std::size_t, char c, int depth) { return !(c == ')' && depth == 0); });
}

std::size_t class_end(std::string_view pattern, std::size_t open) {
  std::size_t i = open + 1;
  if (i < pattern.size() && pattern[i] == '^') ++i;
  if (i < pattern.size() && pattern[i] == ']') ++i;
  for (; i < pattern.size(); ++i) {
    if (pattern[i] == '\\') ++i;
    else if (pattern[i] == ']') return i;
  }
  return std::string_view::npos;
}

// What one alternative (a sequence of atoms) requires: its best literal run or required group.
// plain is set when the sequence is one literal run and nothing else.
std::optional<literal_set> sequence_requirement(std::string_view seq, int depth, bool& plain) {
  plain = true;
  std::optional<literal_set> best;
  std::string run;
  // A longer weakest member and fewer members make a set more selective.
  auto score = [](const literal_set& set) { return static_cast<double>(weakest(set)) - std::log2(static_cast<double>(set.size())); };
  auto consider = [&](literal_set candidate) {
    if (weakest(candidate) >= 3 && (!best || score(candidate) > score(*best))) best = std::move(candidate);
  };
  auto end_run = [&] {
    if (!run.empty()) consider({run});
    run.clear();
  };
  auto is_quantifier = [&](std::size_t i) {
    return i < seq.size() && (seq[i] == '*' || seq[i] == '+' || seq[i] == '?' || seq[i] == '{');
  };
  auto optional_quantifier = [&](std::size_t i) {  // may match zero times
    return seq[i] == '*' || seq[i] == '?' || (seq[i] == '{' && i + 1 < seq.size() && seq[i + 1] == '0');
  };
  auto skip_quantifier = [&](std::size_t i) {  // returns the quantifier's last index
    if (seq[i] == '{') {
      auto close = seq.find('}', i);
      i = close == std::string_view::npos ? seq.size() - 1 : close;
    }
    if (i + 1 < seq.size() && seq[i + 1] == '?') ++i;
    return i;
  };
  for (std::size_t i = 0; i < seq.size(); ++i) {
    char c = seq[i];
    if (c == '(' || c == '[') {
      plain = false;
      end_run();
      auto close = c == '(' ? group_end(seq, i) : class_end(seq, i);
      if (close == std::string_view::npos) return std::nullopt;  // malformed: no filter
      bool optional = is_quantifier(close + 1) && optional_quantifier(close + 1);
      if (c == '(' && !optional && depth < 8) {
        auto inner = seq.substr(i + 1, close - i - 1);
        bool lookaround = !inner.empty() && inner[0] == '?' && inner.size() > 1 && inner[1] != ':';
        if (inner.substr(0, 2) == "?:") inner.remove_prefix(2);
        if (!lookaround)
          if (auto requirement = alternation_requirement(inner, depth + 1)) consider(std::move(*requirement));
      }
      i = is_quantifier(close + 1) ? skip_quantifier(close + 1) : close;
      continue;
    }
    char literal = 0;
    if (c == '\\' && i + 1 < seq.size()) {
      char e = seq[++i];
      plain = false;
      if (std::isalnum(static_cast<unsigned char>(e))) {  // \d \s \b \x41 ...: not a literal
        end_run();
        continue;
      }
      literal = e;
    } else if (c == '{') {  // a quantifier of what came before: skip its bounds
      plain = false;
      end_run();
      auto close = seq.find('}', i);
      i = close == std::string_view::npos ? seq.size() : close;
      continue;
    } else if (c == '.' || c == '^' || c == '$' || c == '*' || c == '+' || c == '?' || c == '}' ||
               c == ')' || c == ']' || c == '\\') {
      plain = false;
      end_run();
      continue;
    } else {
      literal = c;
    }
    if (is_quantifier(i + 1)) {
      plain = false;
      if (!optional_quantifier(i + 1)) run.push_back(lower_ascii(literal));  // required once
      end_run();
      i = skip_quantifier(i + 1);
      continue;
    }
    run.push_back(lower_ascii(literal));
  }
  if (plain && !run.empty()) return literal_set{run};
  end_run();
  return best;
}

// Every alternative must have a requirement, or the pattern as a whole has none.
std::optional<literal_set> alternation_requirement(std::string_view pattern, int depth) {
  literal_set out;
  for (auto branch : top_level_branches(pattern)) {
    bool plain = false;
    auto requirement = sequence_requirement(branch, depth, plain);
    if (!requirement) return std::nullopt;
    out.insert(out.end(), requirement->begin(), requirement->end());
  }
  return out;
}

// The rule's prefilter; literal_only when the pattern is nothing but alternative literals, so
// that the prefilter is the whole test.
literal_set required_literals(std::string_view pattern, bool& literal_only) {
  literal_only = true;
  for (auto branch : top_level_branches(pattern)) {
    bool plain = false;
    auto requirement = sequence_requirement(branch, 0, plain);
    literal_only = literal_only && plain && requirement && weakest(*requirement) >= 1;
  }
  auto requirement = alternation_requirement(pattern, 0);
  if (!requirement) {
    literal_only = false;
    return {};
  }
  return *requirement;
}

// Finds which of many literals occur in a text in one pass (Aho-Corasick), so that the rules'
// prefilters cost one scan of the text however many rules there are.
class literal_matcher {
 public:
  // The literal's id; the same literal added twice gets the same id.
  int add(std::string_view literal) {
    int state = 0;
    for (char c : literal) {
      int next = child(state, static_cast<unsigned char>(c));
      if (next < 0) {
        next = static_cast<int>(nodes_.size());
        nodes_[static_cast<std::size_t>(state)].next.emplace_back(static_cast<unsigned char>(c), next);
        nodes_.emplace_back();
      }
      state = next;
    }
    auto& end = nodes_[static_cast<std::size_t>(state)];
    if (end.literal < 0) end.literal = literals_++;
    return end.literal;
  }

  // Links every node to its longest proper suffix in the trie, breadth first.
  void build() {
    std::vector<int> queue;
    for (auto& [c, next] : nodes_[0].next) queue.push_back(next);
    for (std::size_t head = 0; head < queue.size(); ++head) {
      int parent = queue[head];
      for (auto& [c, next] : nodes_[static_cast<std::size_t>(parent)].next) {
        int fail = nodes_[static_cast<std::size_t>(parent)].fail;
        while (fail > 0 && child(fail, c) < 0) fail = nodes_[static_cast<std::size_t>(fail)].fail;
        int target = child(fail, c);
        auto& n = nodes_[static_cast<std::size_t>(next)];
        n.fail = target >= 0 && target != next ? target : 0;
        const auto& f = nodes_[static_cast<std::size_t>(n.fail)];
        n.output = f.literal >= 0 ? n.fail : f.output;
        queue.push_back(next);
      }
    }
  }

  // found[id] becomes 1 for every literal occurring in text.
  void scan(std::string_view text, std::vector<char>& found) const {
    found.assign(static_cast<std::size_t>(literals_), 0);
    int state = 0;
    for (char ch : text) {
      auto c = static_cast<unsigned char>(ch);
      while (state > 0 && child(state, c) < 0) state = nodes_[static_cast<std::size_t>(state)].fail;
      int next = child(state, c);
      state = next < 0 ? 0 : next;
      // Walk the outputs; a literal already found had its whole chain walked then.
      for (int n = state; n > 0;) {
        const auto& at = nodes_[static_cast<std::size_t>(n)];
        if (at.literal >= 0) {
          if (found[static_cast<std::size_t>(at.literal)]) break;
          found[static_cast<std::size_t>(at.literal)] = 1;
        }
        n = at.output;
      }
    }
  }

 private:
  struct node {
    std::vector<std::pair<unsigned char, int>> next;
    int fail = 0;
    int output = -1;   // the nearest suffix node that ends a literal
    int literal = -1;  // the id of the literal ending here
  };
  int child(int state, unsigned char c) const {
    for (const auto& [edge, next] : nodes_[static_cast<std::size_t>(state)].next)
      if (edge == c) return next;
    return -1;
  }
  std::vector<node> nodes_ = std::vector<node>(1);
  int literals_ = 0;
};

int reply_class(int reply_code) { return reply_code >= 200 && reply_code <= 599 ? reply_code / 100 : 0; }

// An address status (RFC 3463 X.1.0 other address status, X.1.1 bad destination mailbox, X.1.3
// bad mailbox syntax, X.1.6 mailbox moved, and the non-standard X.1.nnn of Exchange): the status
// itself says the recipient's address is bad. Not X.1.2 (host), X.1.4 (ambiguous), X.1.5
// (valid), X.1.7/8 (the sender), X.1.9 (relayed), X.1.10 (null MX).
bool address_status(const std::optional<enhanced_parts>& code) {
  if (!code || code->subject != "1") return false;
  const auto& d = code->detail;
  return d != "2" && d != "4" && d != "5" && d != "7" && d != "8" && d != "9" && d != "10";
}

bool code_is(const std::optional<enhanced_parts>& code, std::string_view subject, std::string_view detail) {
  return code && code->subject == subject && code->detail == detail;
}

// Whether a status names a cause other than the address (see "When a failure is hard").
bool other_cause_status(const std::optional<enhanced_parts>& code) {
  if (!code || code->detail == "0" || code_is(code, "2", "1")) return false;
  const auto& s = code->subject;
  return s == "2" || s == "3" || s == "4" || s == "6" || s == "7";
}

// Whether the text quotes a status naming another cause, besides the one given: a relay's DSN
// that says "5.1.0 Unknown address error" over the remote's own "5.7.1 Access denied".
bool text_quotes_other_cause(std::string_view text) {
  for (std::size_t from = 0; from < text.size();) {
    auto found = find_enhanced_code(text.substr(from));
    if (found.empty()) return false;
    if (other_cause_status(split_enhanced(found, true))) return true;
    from = text.find(found, from) + found.size();
  }
  return false;
}

// See "When a failure is hard" in bounce.hpp. rule_hardness: -1 the default, 0 soft, 1 hard (the
// rule's text is enough on its own); rule_names_status: the rule matched on the status code.
bool hard_reading(bounce_category category, int cls, const std::optional<enhanced_parts>& code, std::string_view text,
                  std::string_view smtp_command, int rule_hardness, bool rule_names_status) {
  if (cls == 4 || rule_hardness == 0) return false;
  bool address_level = category == bounce_category::invalid_recipient || category == bounce_category::bad_domain;
  if (!address_level) return rule_hardness == 1;
  auto command = lower_ascii(smtp_command);
  if (command == "connect" || command == "helo" || command == "ehlo" || command == "mail" || command == "data")
    return false;
  if (category == bounce_category::bad_domain) return true;
  // A specific status about something else (the mailbox is full, the system, the network, the
  // content, a policy) outranks a phrase. Not X.y.0 ("other or undefined"), and not X.2.1
  // (mailbox disabled, "not accepting messages"), which several MTAs send with "User unknown".
  if (!rule_names_status && (other_cause_status(code) || text_quotes_other_cause(text))) return false;
  return rule_hardness == 1 || command == "rcpt" || address_status(code);
}

// The Sisimai reason a category stands for, when its rule names none.
std::string_view default_reason(bounce_category category, bool hard, int cls, const std::optional<enhanced_parts>& code,
                                bool has_text) {
  using c = bounce_category;
  switch (category) {
    case c::none: return {};
    case c::invalid_recipient:
      if (hard || (cls == 4 && address_status(code))) return code_is(code, "1", "6") ? "hasmoved" : "userunknown";
      if (code_is(code, "2", "1") || code_is(code, "7", "13")) return "suspend";
      return "filtered";
    case c::bad_domain:
      return code_is(code, "1", "10") || code_is(code, "3", "2") || code_is(code, "7", "27") ? "notaccept" : "hostunknown";
    case c::mailbox_full: return code_is(code, "2", "3") ? "exceedlimit" : "mailboxfull";
    case c::spam_block: return "blocked";
    case c::policy:
      if (code && code->subject == "1" && (code->detail == "7" || code->detail == "8")) return "rejected";
      return code && code->subject == "7" ? "securityerror" : "policyviolation";
    case c::rate_limited: return "toomanyconn";
    case c::auth_failure: return "securityerror";
    case c::content: return "contenterror";
    case c::message_too_big: return "mesgtoobig";
    case c::expired: return "expired";
    case c::network: return "networkerror";
    case c::other: break;
  }
  if (code && code->subject == "3") return "systemerror";
  if (code && code->subject == "5") return "syntaxerror";
  return has_text ? "onhold" : "undefined";
}

// The code a category stands for when the reply gave none (RFC 3463 section 3).
std::string infer_enhanced(bounce_category category, int cls) {
  std::string_view rest = ".0.0";
  switch (category) {
    case bounce_category::invalid_recipient: rest = ".1.1"; break;
    case bounce_category::bad_domain: rest = ".1.2"; break;
    case bounce_category::mailbox_full: rest = ".2.2"; break;
    case bounce_category::spam_block: rest = ".7.1"; break;
    case bounce_category::policy: rest = ".7.1"; break;
    case bounce_category::rate_limited: rest = ".4.5"; break;   // mail system congestion
    case bounce_category::auth_failure: rest = ".7.26"; break;  // RFC 7372: auth checks failed
    case bounce_category::content: rest = ".6.0"; break;
    case bounce_category::message_too_big: rest = ".3.4"; break;
    case bounce_category::expired: rest = ".4.7"; break;
    case bounce_category::network: rest = ".4.0"; break;
    case bounce_category::none: return {};
    case bounce_category::other: break;
  }
  return std::string(1, static_cast<char>('0' + cls)) + std::string(rest);
}

}  // namespace

std::string_view to_string(bounce_category c) {
  auto index = static_cast<std::size_t>(c);
  return index < bounce_category_names.size() ? bounce_category_names[index] : "other";
}

std::optional<bounce_category> parse_bounce_category(std::string_view text) {
  for (std::size_t i = 0; i < bounce_category_names.size(); ++i)
    if (bounce_category_names[i] == text) return static_cast<bounce_category>(i);
  return std::nullopt;
}

bounce_category category_of_enhanced_code(std::string_view enhanced) {
  auto parts = split_enhanced(enhanced, true);
  if (!parts || parts->cls == '2') return parts ? bounce_category::none : bounce_category::other;
  int subject = std::stoi(parts->subject), detail = std::stoi(parts->detail);
  using c = bounce_category;
  switch (subject) {
    case 1:  // addressing status
      if (detail == 0 || detail == 1 || detail == 3 || detail == 6) return c::invalid_recipient;
      if (detail == 2 || detail == 10) return c::bad_domain;  // 10: null MX, RFC 7505
      if (detail == 7 || detail == 8) return c::policy;       // our sender address refused
      return c::other;
    case 2:  // mailbox status
      if (detail == 1) return c::invalid_recipient;  // mailbox disabled
      if (detail == 2) return c::mailbox_full;
      if (detail == 3) return c::message_too_big;  // over the mailbox's per-message limit
      return c::other;
    case 3:  // mail system status
      return detail == 4 ? c::message_too_big : c::other;
    case 4:  // network and routing status
      if (detail == 4) return c::bad_domain;  // unable to route
      if (detail == 7) return c::expired;
      if (detail == 5) return c::rate_limited;  // mail system congestion
      return c::network;
    case 5:  // mail delivery protocol status
      return c::other;
    case 6:  // message content or media status
      return c::content;
    case 7:  // security or policy status
      if ((detail >= 20 && detail <= 27) || detail == 29) return c::auth_failure;  // RFC 7372, 7505, 8617
      if ((detail >= 4 && detail <= 9) || detail == 14) return c::auth_failure;  // RFC 3463, 4954
      if (detail == 28) return c::rate_limited;  // RFC 8904: mail flood detected
      return c::policy;
    default:
      return c::other;
  }
}

std::string find_enhanced_code(std::string_view text, int reply_code) {
  int wanted = reply_class(reply_code);
  for (std::size_t i = 0; i + 5 <= text.size(); ++i) {
    char cls = text[i];
    if (cls != '2' && cls != '4' && cls != '5') continue;
    if (i > 0) {
      char before = text[i - 1];
      if (is_digit(before) || before == '.' || std::isalpha(static_cast<unsigned char>(before))) continue;
    }
    std::size_t j = i + 1;
    if (text[j] != '.') continue;
    std::size_t subject_start = ++j;
    while (j < text.size() && is_digit(text[j]) && j - subject_start < 4) ++j;
    if (j == subject_start || j - subject_start > 3 || j >= text.size() || text[j] != '.') continue;
    std::size_t detail_start = ++j;
    while (j < text.size() && is_digit(text[j]) && j - detail_start < 4) ++j;
    if (j == detail_start || j - detail_start > 3) continue;
    if (j < text.size() && (is_digit(text[j]) || (text[j] == '.' && j + 1 < text.size() && is_digit(text[j + 1]))))
      continue;  // part of a longer number, like an IP address
    if (wanted && cls - '0' != wanted) continue;
    return std::string(text.substr(i, j - i));
  }
  return {};
}

namespace {

struct compiled_rule {
  bounce_category category = bounce_category::other;
  int hardness = -1;  // -1 the category's default, 0 soft, 1 hard
  int reply_code = 0;
  std::optional<enhanced_parts> enhanced;
  std::vector<int> literal_ids;  // every match contains one of these literals (none: no filter)
  std::optional<std::regex> pattern;  // absent when the literals are the whole test
  std::string provider;
  std::string reason;
};

compiled_rule compile_rule(const bounce_rule& rule, std::size_t index, literal_matcher& literals) {
  auto fail = [&](const std::string& why) {
    throw std::invalid_argument("bounce rule " + std::to_string(index) + ": " + why);
  };
  compiled_rule out;
  auto category = parse_bounce_category(rule.category);
  if (!category || *category == bounce_category::none)
    fail("\"" + rule.category + "\" is not a bounce category");
  out.category = *category;
  if (rule.hardness == "hard") out.hardness = 1;
  else if (rule.hardness == "soft") out.hardness = 0;
  else if (!rule.hardness.empty()) fail("hardness must be \"hard\", \"soft\" or \"\"");
  if (rule.reply_code != 0 && rule.reply_code != 4 && rule.reply_code != 5 &&
      (rule.reply_code < 400 || rule.reply_code > 599))
    fail("reply_code " + std::to_string(rule.reply_code) + " is not 0, 4, 5 or 400..599");
  out.reply_code = rule.reply_code;
  if (!rule.enhanced.empty()) {
    out.enhanced = split_enhanced(rule.enhanced, false);
    if (!out.enhanced) fail("\"" + rule.enhanced + "\" is not an enhanced code prefix");
  }
  if (rule.pattern.size() > max_bounce_pattern_octets) fail("pattern longer than 1000 octets");
  if (!rule.pattern.empty()) {
    std::optional<std::regex> compiled;
    try {
      compiled.emplace(rule.pattern, std::regex::ECMAScript | std::regex::icase | std::regex::nosubs |
                                         std::regex::optimize);
    } catch (const std::regex_error& e) {
      fail("invalid pattern \"" + rule.pattern + "\": " + e.what());
    }
    bool literal_only = false;
    for (const auto& literal : required_literals(rule.pattern, literal_only)) out.literal_ids.push_back(literals.add(literal));
    if (!literal_only || out.literal_ids.empty()) out.pattern = std::move(compiled);
  }
  out.provider = rule.provider;
  if (!rule.reason.empty() &&
      std::find(bounce_reason_names.begin(), bounce_reason_names.end(), rule.reason) == bounce_reason_names.end())
    fail("\"" + rule.reason + "\" is not a bounce reason");
  out.reason = rule.reason;
  return out;
}

}  // namespace

struct bounce_classifier::compiled {
  std::vector<compiled_rule> rules;
  literal_matcher literals;
};

bounce_classifier::bounce_classifier(std::vector<bounce_rule> rules) {
  auto out = std::make_shared<compiled>();
  out->rules.reserve(rules.size());
  for (std::size_t i = 0; i < rules.size(); ++i) out->rules.push_back(compile_rule(rules[i], i, out->literals));
  out->literals.build();
  compiled_ = std::move(out);
}

std::size_t bounce_classifier::size() const { return compiled_->rules.size(); }

classification bounce_classifier::classify(int reply_code, std::string_view enhanced,
                                           std::string_view text, std::string_view provider,
                                           std::string_view smtp_command) const {
  classification out;
  text = text.substr(0, max_classified_text_octets);
  std::string code = split_enhanced(enhanced, true) ? std::string(enhanced) : find_enhanced_code(text, reply_code);
  int cls = reply_class(reply_code);
  if (!cls && !code.empty()) cls = code[0] - '0';
  if (cls == 2) {
    out.category = bounce_category::none;
    out.enhanced = code;
    return out;
  }
  auto code_parts = split_enhanced(code, true);
  std::string lowered = lower_ascii(text);
  std::string provider_name(provider);
  std::vector<char> found;
  compiled_->literals.scan(lowered, found);

  const auto& rules = compiled_->rules;
  for (std::size_t i = 0; i < rules.size(); ++i) {
    const auto& rule = rules[i];
    if (rule.reply_code != 0) {
      bool class_only = rule.reply_code < 10;
      if (class_only ? rule.reply_code != cls : rule.reply_code != reply_code) continue;
    }
    if (rule.enhanced && (!code_parts || !prefix_matches(*rule.enhanced, *code_parts))) continue;
    if (!rule.provider.empty() &&
        (provider_name.empty() || fnmatch(rule.provider.c_str(), provider_name.c_str(), FNM_CASEFOLD) != 0))
      continue;
    if (!rule.literal_ids.empty() &&
        std::none_of(rule.literal_ids.begin(), rule.literal_ids.end(),
                     [&](int id) { return found[static_cast<std::size_t>(id)] != 0; }))
      continue;
    if (rule.pattern && !std::regex_search(lowered, *rule.pattern)) continue;
    out.category = rule.category;
    out.hard = hard_reading(rule.category, cls, code_parts, text, smtp_command, rule.hardness, rule.enhanced.has_value());
    out.rule = static_cast<int>(i);
    out.enhanced = code.empty() ? infer_enhanced(rule.category, cls ? cls : (out.hard ? 5 : 4)) : code;
    out.reason = rule.reason.empty() ? std::string(default_reason(out.category, out.hard, cls, code_parts, !text.empty()))
                                     : rule.reason;
    return out;
  }

  out.category = code.empty() ? bounce_category::other : category_of_enhanced_code(code);
  if (out.category == bounce_category::none) out.category = bounce_category::other;
  out.hard = hard_reading(out.category, cls, code_parts, text, smtp_command, -1, true);
  out.enhanced = code.empty() ? infer_enhanced(out.category, cls ? cls : 4) : code;
  out.reason = default_reason(out.category, out.hard, cls, code_parts, !text.empty());
  return out;
}

}  // namespace petrel
