// Loads bounce classification rules ([[rule]] tables) from TOML with toml++: every key's type
// and value is checked, unknown keys are refused (a typo must not silently widen a rule), and
// each error names file:line:column and the key, like config_loader.cpp.
#include "config/bounce_rules.hpp"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <regex>
#include <set>
#include <sstream>
#include <tuple>

#include <toml++/toml.h>

namespace petrel {

namespace {

class rule_reader {
 public:
  explicit rule_reader(std::string source) : source_(std::move(source)) {}

  void read(const toml::table& root, std::vector<bounce_rule>& out) {
    for (auto&& [key, node] : root) {
      if (key.str() != "rule") error(&node, std::string(key.str()), "unknown key (expected [[rule]] tables)");
    }
    auto* node = root.get("rule");
    if (!node) return;
    auto* array = node->as_array();
    if (!array || !array->is_array_of_tables()) return error(node, "rule", "expected [[rule]] tables");
    if (array->size() > max_bounce_rules)
      return error(node, "rule", "more than " + std::to_string(max_bounce_rules) + " rules");
    for (std::size_t i = 0; i < array->size(); ++i) {
      prefix_ = "rule[" + std::to_string(i) + "]";
      out.push_back(read_rule(*array->get(i)->as_table()));
    }
  }

  // In file order, as an editor would walk them.
  std::string errors() const {
    auto sorted = errors_;
    std::stable_sort(sorted.begin(), sorted.end(), [](const auto& a, const auto& b) {
      return std::tie(a.line, a.column) < std::tie(b.line, b.column);
    });
    std::string out;
    for (const auto& e : sorted) out += (out.empty() ? "" : "\n") + e.text;
    return out;
  }
  bool failed() const { return !errors_.empty(); }

  void error(const toml::node* node, const std::string& key, const std::string& reason) {
    problem p;
    std::ostringstream text;
    text << source_;
    if (node) {
      p.line = node->source().begin.line;
      p.column = node->source().begin.column;
      text << ":" << p.line << ":" << p.column;
    }
    text << ": " << (prefix_.empty() ? key : prefix_ + "." + key) << ": " << reason;
    p.text = text.str();
    errors_.push_back(std::move(p));
  }

 private:
  bounce_rule read_rule(const toml::table& table) {
    static const std::set<std::string_view> known = {"category", "hardness", "reply_code", "enhanced",
                                                     "pattern",  "provider", "reason",   "comment"};
    for (auto&& [key, node] : table)
      if (!known.count(key.str())) error(&node, std::string(key.str()), "unknown key");
    bounce_rule rule;
    string(table, "category", rule.category, 40);
    string(table, "hardness", rule.hardness, 10);
    string(table, "enhanced", rule.enhanced, 16);
    string(table, "pattern", rule.pattern, max_bounce_pattern_octets);
    string(table, "provider", rule.provider, 253);
    string(table, "reason", rule.reason, 40);
    string(table, "comment", rule.comment, 4096);
    reply_code(table, rule.reply_code);
    check(table, rule);
    return rule;
  }

  void string(const toml::table& table, const char* key, std::string& out, std::size_t max_length) {
    auto* node = table.get(key);
    if (!node) return;
    if (!node->is_string()) return error(node, key, "expected a string");
    auto value = *node->value<std::string>();
    if (value.size() > max_length)
      return error(node, key, "longer than " + std::to_string(max_length) + " characters");
    out = std::move(value);
  }

  void reply_code(const toml::table& table, int& out) {
    auto* node = table.get("reply_code");
    if (!node) return;
    if (!node->is_integer()) return error(node, "reply_code", "expected an integer");
    auto value = *node->value<std::int64_t>();
    if (value != 0 && value != 4 && value != 5 && (value < 400 || value > 599))
      return error(node, "reply_code",
                   "must be 0 (any), 4 or 5 (a class) or a code from 400 to 599, got " +
                       std::to_string(value));
    out = static_cast<int>(value);
  }

  // Checks across keys, and values whose syntax a type check cannot see.
  void check(const toml::table& table, const bounce_rule& rule) {
    const auto* category_node = table.get("category");
    auto names = bounce_category_names;
    if (rule.category.empty()) {
      error(category_node ? category_node : &table, "category", "required: a category name");
    } else if (rule.category == "none" ||
               std::find(names.begin(), names.end(), rule.category) == names.end()) {
      std::string list;
      for (std::size_t i = 1; i < names.size(); ++i) list += (i > 1 ? ", " : "") + std::string(names[i]);
      error(category_node, "category", "\"" + rule.category + "\" is not one of: " + list);
    }
    if (!rule.hardness.empty() && rule.hardness != "hard" && rule.hardness != "soft")
      error(table.get("hardness"), "hardness", "must be \"hard\", \"soft\" or \"\"");
    if (!rule.reason.empty()) {
      auto reasons = bounce_reason_names;
      if (std::find(reasons.begin(), reasons.end(), rule.reason) == reasons.end()) {
        std::string list;
        for (std::size_t i = 0; i < reasons.size(); ++i) list += (i ? ", " : "") + std::string(reasons[i]);
        error(table.get("reason"), "reason", "\"" + rule.reason + "\" is not one of: " + list);
      }
    }
    if (!is_enhanced_prefix(rule.enhanced))
      error(table.get("enhanced"), "enhanced",
            "\"" + rule.enhanced + "\" is not an RFC 3463 code or prefix like \"5.1.1\", \"4.7.\" or \"x.7.26\"");
    if (!rule.pattern.empty()) {
      try {
        std::regex compiled(rule.pattern, std::regex::ECMAScript | std::regex::icase);
      } catch (const std::regex_error& e) {
        error(table.get("pattern"), "pattern", std::string("invalid regular expression: ") + e.what());
      }
    }
  }

  // "5", "5.", "5.1", "5.1.", "5.1.1", with 'x' standing for any class.
  static bool is_enhanced_prefix(std::string_view text) {
    if (text.empty()) return true;
    if (text[0] != '2' && text[0] != '4' && text[0] != '5' && text[0] != 'x' && text[0] != 'X') return false;
    int dots = 0;
    std::size_t digits = 0;
    for (std::size_t i = 1; i < text.size(); ++i) {
      char c = text[i];
      if (c == '.') {
        if (i > 1 && digits == 0) return false;
        if (++dots > 2) return false;
        digits = 0;
      } else if (c >= '0' && c <= '9') {
        if (dots == 0 || ++digits > 3) return false;
      } else {
        return false;
      }
    }
    return true;
  }

  struct problem {
    std::uint32_t line = 0, column = 0;
    std::string text;
  };
  std::string source_;
  std::string prefix_;
  std::vector<problem> errors_;
};

}  // namespace

parsed<std::vector<bounce_rule>> load_bounce_rules_text(std::string_view toml_text,
                                                        const std::string& source_name) {
  using result = parsed<std::vector<bounce_rule>>;
  toml::table root;
  try {
    root = toml::parse(toml_text, source_name);
  } catch (const toml::parse_error& e) {
    return result::failure(source_name + ":" + std::to_string(e.source().begin.line) + ":" +
                           std::to_string(e.source().begin.column) +
                           ": TOML syntax error: " + std::string(e.description()));
  }
  rule_reader reader(source_name);
  std::vector<bounce_rule> rules;
  reader.read(root, rules);
  if (reader.failed()) return result::failure(reader.errors());
  return rules;
}

parsed<std::vector<bounce_rule>> load_bounce_rules(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in)
    return parsed<std::vector<bounce_rule>>::failure(path + ": cannot open the file: " +
                                                     std::strerror(errno));
  std::stringstream text;
  text << in.rdbuf();
  return load_bounce_rules_text(text.str(), path);
}

}  // namespace petrel
