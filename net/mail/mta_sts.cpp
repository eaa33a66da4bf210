// MTA-STS parsing and matching (see mta_sts.hpp).
#include "net/mail/mta_sts.hpp"

#include <algorithm>

namespace petrel {

namespace {

std::string lower(std::string_view s) {
  std::string out(s);
  for (auto& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  while (!out.empty() && out.back() == '.') out.pop_back();
  return out;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) s.remove_suffix(1);
  return s;
}

}  // namespace

parsed<std::string> parse_mta_sts_record(std::string_view txt) {
  std::string version, id;
  bool first = true;
  std::size_t pos = 0;
  while (pos <= txt.size()) {
    auto end = txt.find(';', pos);
    if (end == std::string_view::npos) end = txt.size();
    auto item = trim(txt.substr(pos, end - pos));
    pos = end + 1;
    if (item.empty()) continue;
    auto eq = item.find('=');
    if (eq == std::string_view::npos) return parsed<std::string>::failure("malformed field in the _mta-sts record");
    auto key = trim(item.substr(0, eq));
    auto value = trim(item.substr(eq + 1));
    if (first && key != "v") return parsed<std::string>::failure("the _mta-sts record must start with v=STSv1");
    first = false;
    if (key == "v") version = std::string(value);
    if (key == "id") id = std::string(value);
  }
  if (version != "STSv1") return parsed<std::string>::failure("not an STSv1 record");
  if (id.empty() || id.size() > 32 ||
      !std::all_of(id.begin(), id.end(), [](char c) { return std::isalnum(static_cast<unsigned char>(c)); }))
    return parsed<std::string>::failure("the _mta-sts record has no valid id");
  return id;
}

parsed<mta_sts_policy> parse_mta_sts_policy(std::string_view body) {
  mta_sts_policy p;
  std::string version;
  bool have_age = false;
  std::size_t pos = 0;
  while (pos < body.size()) {
    auto end = body.find('\n', pos);
    if (end == std::string_view::npos) end = body.size();
    auto line = trim(body.substr(pos, end - pos));
    pos = end + 1;
    if (line.empty()) continue;
    auto colon = line.find(':');
    if (colon == std::string_view::npos) return parsed<mta_sts_policy>::failure("malformed policy line");
    auto key = trim(line.substr(0, colon));
    auto value = trim(line.substr(colon + 1));
    if (key == "version") version = std::string(value);
    else if (key == "mode") p.mode = std::string(value);
    else if (key == "mx") p.mx.push_back(lower(value));
    else if (key == "max_age") {
      if (value.empty() || value.size() > 19 ||
          !std::all_of(value.begin(), value.end(), [](char c) { return std::isdigit(static_cast<unsigned char>(c)); }))
        return parsed<mta_sts_policy>::failure("max_age is not a number");
      auto age = std::stoull(std::string(value));
      p.max_age = static_cast<std::uint32_t>(std::min<unsigned long long>(age, 31557600));
      have_age = true;
    }
  }
  if (version != "STSv1") return parsed<mta_sts_policy>::failure("the policy is not version STSv1");
  if (p.mode != "enforce" && p.mode != "testing" && p.mode != "none")
    return parsed<mta_sts_policy>::failure("the policy's mode is not enforce, testing or none");
  if (!have_age) return parsed<mta_sts_policy>::failure("the policy has no max_age");
  if (p.mx.empty() && p.mode != "none") return parsed<mta_sts_policy>::failure("the policy names no mx");
  return p;
}

bool mta_sts_mx_matches(std::string_view pattern, std::string_view host) {
  auto p = lower(pattern);
  auto h = lower(host);
  if (p.rfind("*.", 0) != 0) return p == h;
  auto suffix = p.substr(1);  // ".example.net"
  if (h.size() <= suffix.size() || h.compare(h.size() - suffix.size(), suffix.size(), suffix) != 0)
    return false;
  auto label = h.substr(0, h.size() - suffix.size());
  return !label.empty() && label.find('.') == std::string::npos;  // exactly one label
}

bool mta_sts_any_matches(const std::vector<std::string>& patterns, std::string_view host) {
  return std::any_of(patterns.begin(), patterns.end(),
                     [&](const std::string& p) { return mta_sts_mx_matches(p, host); });
}

}  // namespace petrel
