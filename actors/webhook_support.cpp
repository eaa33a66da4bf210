// Webhook helpers (see webhook_support.hpp).
#include "actors/webhook_support.hpp"

#include "actors/actor_support.hpp"
#include "net/ip_policy.hpp"

#include <openssl/hmac.h>

#include <algorithm>
#include <array>
#include <boost/json.hpp>

namespace petrel {

namespace json = boost::json;

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

std::string webhook_signature(std::string_view secret, std::int64_t unix_seconds, std::string_view body,
                              std::string_view previous_secret) {
  auto t = std::to_string(unix_seconds);
  std::string signed_text = t + "." + std::string(body);
  auto v1 = [&](std::string_view key) {
    std::array<unsigned char, 32> mac{};
    unsigned int length = 0;
    HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
         reinterpret_cast<const unsigned char*>(signed_text.data()), signed_text.size(), mac.data(), &length);
    static const char* hex = "0123456789abcdef";
    std::string out = ",v1=";
    for (unsigned i = 0; i < length; ++i) {
      out += hex[mac[i] >> 4];
      out += hex[mac[i] & 15];
    }
    return out;
  };
  return "t=" + t + v1(secret) + (previous_secret.empty() ? std::string() : v1(previous_secret));
}

namespace {

json::value parse_or(const std::string& text, json::value fallback) {
  boost::system::error_code ec;
  auto v = json::parse(text, ec);
  return ec ? fallback : v;
}

json::value id_or_null(const id128& id) { return id.empty() ? json::value(nullptr) : json::value(id.str()); }

}  // namespace

std::string event_json(const event_view& v) {
  // A recipient's own metadata (a batch's per-recipient data) over the message's, key by key.
  auto metadata = parse_or(v.metadata_json, json::object());
  if (!v.recipient_metadata_json.empty() && metadata.is_object()) {
    auto own = parse_or(v.recipient_metadata_json, json::object());
    if (own.is_object())
      for (auto& kv : own.get_object()) metadata.get_object()[kv.key()] = kv.value();
  }
  json::object o{{"id", v.event.id.str()},
                 {"type", v.event.type},
                 {"at", rfc3339(v.event.at_ms)},
                 {"tenant", id_or_null(v.event.tenant_id)},
                 {"message", id_or_null(v.event.message_id)},
                 {"recipient", id_or_null(v.event.recipient_id)},
                 {"email", v.recipient.empty() ? json::value(nullptr) : json::value(v.recipient)},
                 {"campaign", v.campaign.empty() ? json::value(nullptr) : json::value(v.campaign)},
                 {"tags", parse_or(v.tags_json, json::array())},
                 {"metadata", std::move(metadata)},
                 {"data", parse_or(v.event.data_json, json::object())}};
  return json::serialize(o);
}

std::string webhook_batch_json(const id128& webhook, const std::vector<event_view>& events) {
  std::string out = "{\"webhook\":\"" + webhook.str() + "\",\"events\":[";
  for (std::size_t i = 0; i < events.size(); ++i) {
    if (i) out += ',';
    out += event_json(events[i]);
  }
  out += "]}";
  return out;
}

const std::vector<std::string>& event_types() {
  static const std::vector<std::string> all = {"accepted",   "delivered",    "deferred",  "bounced",
                                               "expired",    "suppressed",   "complained", "unsubscribed",
                                               "cancelled",  "admin_action", "domain_verification_failed",
                                               "reputation_warning", "opened", "clicked"};
  return all;
}

}  // namespace petrel
