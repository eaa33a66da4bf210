// Webhook endpoint URLs (see webhook_url.hpp).
#include "net/webhook_url.hpp"

#include <algorithm>
#include <cctype>
#include <string>

#include "net/ip_policy.hpp"

namespace petrel {

parsed<webhook_url> parse_webhook_url(std::string_view url, bool allow_http) {
  using result = parsed<webhook_url>;
  if (url.size() > 2000) return result::failure("longer than 2,000 octets");
  webhook_url out;
  auto lower_prefix = [&](std::string_view p) {
    if (url.size() < p.size()) return false;
    for (std::size_t i = 0; i < p.size(); ++i)
      if (std::tolower(static_cast<unsigned char>(url[i])) != p[i]) return false;
    return true;
  };
  if (lower_prefix("https://")) {
    url.remove_prefix(8);
  } else if (lower_prefix("http://")) {
    if (!allow_http) return result::failure("must be an https:// URL");
    out.https = false;
    out.port = 80;
    url.remove_prefix(7);
  } else {
    return result::failure("must start with https://");
  }
  for (char c : url)
    if (static_cast<unsigned char>(c) <= 0x20 || c == 0x7f || c == '\\')
      return result::failure("contains spaces, control characters or backslashes");
  if (url.find('#') != std::string_view::npos) return result::failure("must not have a fragment");
  auto end = url.find_first_of("/?");
  auto authority = url.substr(0, end);
  std::string_view rest = end == std::string_view::npos ? std::string_view() : url.substr(end);
  if (authority.find('@') != std::string_view::npos) return result::failure("must not contain user info");
  std::string_view host = authority, port;
  if (!authority.empty() && authority.front() == '[') {
    auto close = authority.find(']');
    if (close == std::string_view::npos) return result::failure("unclosed [ in the host");
    host = authority.substr(1, close - 1);
    auto after = authority.substr(close + 1);
    if (!after.empty()) {
      if (after.front() != ':') return result::failure("unexpected text after the IPv6 address");
      port = after.substr(1);
    }
    if (!is_ip_literal(host)) return result::failure("not an IPv6 address in brackets");
  } else if (auto colon = authority.rfind(':'); colon != std::string_view::npos) {
    host = authority.substr(0, colon);
    port = authority.substr(colon + 1);
  }
  if (host.empty() || host.size() > 253) return result::failure("needs a host name");
  if (host.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-:") !=
      std::string_view::npos)
    return result::failure("the host has characters a host name cannot have (use the A-label of IDNs)");
  if (!port.empty() || authority.back() == ':') {
    if (port.empty() || port.size() > 5 || port.find_first_not_of("0123456789") != std::string_view::npos)
      return result::failure("the port must be a number");
    auto n = std::stoul(std::string(port));
    if (n == 0 || n > 65535) return result::failure("the port must be 1-65535");
    out.port = static_cast<std::uint16_t>(n);
  }
  out.host.assign(host);
  std::transform(out.host.begin(), out.host.end(), out.host.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  if (is_numeric_host_form(out.host))
    return result::failure("the host is a numeric address form other than a dotted-quad IPv4 or an "
                           "IPv6 address (e.g. 2130706433, 0x7f000001, 127.1)");
  if (!rest.empty()) out.target = rest.front() == '?' ? "/" + std::string(rest) : std::string(rest);
  return out;
}

}  // namespace petrel
