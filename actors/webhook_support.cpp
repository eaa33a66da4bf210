// Webhook helpers (see webhook_support.hpp).
#include "actors/webhook_support.hpp"

#include "actors/actor_support.hpp"
#include "net/ip_policy.hpp"
#include "net/mail/sha256.hpp"

#include <openssl/hmac.h>

#include <algorithm>
#include <array>
#include <boost/json.hpp>

namespace petrel {

namespace json = boost::json;


std::string webhook_signature(std::string_view secret, std::int64_t unix_seconds, std::string_view body,
                              std::string_view previous_secret) {
  auto t = std::to_string(unix_seconds);
  std::string signed_text = t + "." + std::string(body);
  auto v1 = [&](std::string_view key) {
    std::array<unsigned char, 32> mac{};
    unsigned int length = 0;
    HMAC(sha256_md(), key.data(), static_cast<int>(key.size()),
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
