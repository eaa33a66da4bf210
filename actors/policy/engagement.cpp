// Opens and clicks: machine heuristics and the client's address (see engagement.hpp).
#include "actors/policy/engagement.hpp"

#include <algorithm>
#include <array>
#include <cctype>

namespace petrel {

namespace {

bool contains_ci(std::string_view text, std::string_view lower_needle) {
  if (lower_needle.size() > text.size()) return false;
  for (std::size_t i = 0; i + lower_needle.size() <= text.size(); ++i) {
    bool same = true;
    for (std::size_t j = 0; j < lower_needle.size() && same; ++j)
      same = std::tolower(static_cast<unsigned char>(text[i + j])) == lower_needle[j];
    if (same) return true;
  }
  return false;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

bool trusted(std::string_view ip, const std::vector<ip_network>& networks) {
  std::array<std::uint8_t, 16> bytes{};
  if (!parse_ip_address(std::string(ip), bytes)) return false;
  return std::any_of(networks.begin(), networks.end(), [&](const ip_network& n) { return n.contains(bytes); });
}

}  // namespace

const std::vector<std::string_view>& scanner_user_agent_patterns() {
  static const std::vector<std::string_view> all = {
      "bot",          "spider",        "crawl",          "slurp",          "preview",      "scanner",
      "barracuda",    "mimecast",      "proofpoint",     "symantec",       "messagelabs",  "forcepoint",
      "trendmicro",   "sophos",        "fortinet",       "safelinks",      "urldefense",   "cisco",
      "ironport",     "python-",       "curl/",          "wget/",          "go-http-client", "java/",
      "okhttp",       "libwww",        "httpclient",     "headlesschrome", "phantomjs",    "facebookexternalhit",
      "whatsapp",     "skypeuripreview", "validator",    "monitor"};
  return all;
}

hit_verdict judge_hit(const hit_facts& f) {
  if (f.method == "HEAD") return {true, "head_request"};
  std::array<std::uint8_t, 16> bytes{};
  if (parse_ip_address(std::string(f.client_ip), bytes)) {
    // IPv4-mapped 17.0.0.0/8: ::ffff:17.x.x.x
    static const std::array<std::uint8_t, 12> mapped = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    if (std::equal(mapped.begin(), mapped.end(), bytes.begin()) && bytes[12] == 17)
      return {true, "apple_privacy_proxy"};
  }
  auto agent = trim(f.user_agent);
  if (agent.empty()) return {true, "no_user_agent"};
  for (auto pattern : scanner_user_agent_patterns())
    if (contains_ci(agent, pattern)) return {true, "scanner_user_agent"};
  if (f.delivered_at_ms > 0 && f.machine_window_ms > 0 && f.at_ms >= f.delivered_at_ms &&
      f.at_ms - f.delivered_at_ms < f.machine_window_ms)
    return {true, "soon_after_delivery"};
  return {};
}

std::string client_address(std::string_view peer, std::string_view forwarded_for,
                           const std::vector<ip_network>& trusted_proxies) {
  if (trusted_proxies.empty() || !trusted(peer, trusted_proxies) || forwarded_for.empty()) return std::string(peer);
  // From the right: the hops our proxies appended; the first one not ours is the client.
  std::string_view rest = forwarded_for;
  while (!rest.empty()) {
    auto comma = rest.rfind(',');
    auto entry = trim(comma == std::string_view::npos ? rest : rest.substr(comma + 1));
    rest = comma == std::string_view::npos ? std::string_view() : rest.substr(0, comma);
    std::array<std::uint8_t, 16> bytes{};
    if (!parse_ip_address(std::string(entry), bytes)) return std::string(peer);  // not an address: trust none
    if (!trusted(entry, trusted_proxies)) return std::string(entry);
    if (rest.empty()) return std::string(entry);
  }
  return std::string(peer);
}

}  // namespace petrel
