// Event payloads (see event_data.hpp).
#include "actors/policy/event_data.hpp"

#include <boost/json.hpp>
#include <cstdio>
#include <ctime>

#include "storage/ids.hpp"

namespace petrel {

namespace json = boost::json;

std::string rfc3339(std::int64_t unix_ms) {
  std::time_t seconds = static_cast<std::time_t>(unix_ms / 1000);
  std::tm tm{};
  gmtime_r(&seconds, &tm);
  char buf[80];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
                tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                static_cast<int>(unix_ms % 1000));
  return buf;
}

namespace event_data {
namespace {

// Texts come from remote servers and operators: Boost.JSON escapes what JSON needs escaped.
// Invalid UTF-8 is passed through as it is (refused at the edges that take text in).
void put_if(json::object& o, std::string_view key, std::string_view value) {
  if (!value.empty()) o[key] = value;
}

std::string text(const json::object& o) { return json::serialize(o); }

}  // namespace

std::string attempt(const attempt_facts& a) {
  // Made for every attempt: its object and strings live on the stack (no allocation unless a
  // reply is long), with room for every key it can have.
  unsigned char buffer[2048];
  json::monotonic_resource arena(buffer, sizeof buffer);
  json::object o(&arena);
  o.reserve(20);
  o["attempt"] = a.attempt;
  if (a.failure) {
    o["category"] = to_string(a.failure->category);
    put_if(o, "bounce_reason", a.failure->reason);
    o["hard"] = a.failure->hard;
    if (!a.failure->enhanced.empty() && a.enhanced_code.empty())
      o["inferred_enhanced_code"] = a.failure->enhanced;
  }
  if (a.smtp_code) {
    o["smtp_code"] = a.smtp_code;
    put_if(o, "enhanced_code", a.enhanced_code);
    o["reply"] = a.reply;
  } else {
    put_if(o, "error", a.error);
  }
  if (!a.mx_host.empty()) {
    o["mx_host"] = a.mx_host;
    o["mx_ip"] = a.mx_ip;
    o["source"] = a.source;
    o["source_ip"] = a.source_ip;
    o["tls"] = a.tls;
    if (a.tls) {
      o["tls_version"] = a.tls_version;
      o["tls_cipher"] = a.tls_cipher;
      if (a.dane) o["dane"] = true;
    }
  }
  if (a.next_attempt_at_ms > 0) o["next_attempt_at"] = rfc3339(a.next_attempt_at_ms);
  if (!a.simulated.empty()) {
    o["sandbox"] = true;
    o["simulated"] = a.simulated;
  }
  return text(o);
}

std::string async_bounce(const async_bounce_facts& b) {
  json::object o;
  o["async"] = true;
  o["category"] = b.reading ? to_string(b.reading->category) : to_string(bounce_category::other);
  if (b.reading) put_if(o, "bounce_reason", b.reading->reason);
  o["hard"] = b.reading && b.reading->hard;
  if (b.reading) put_if(o, "enhanced_code", b.reading->enhanced);
  if (b.smtp_code) o["smtp_code"] = b.smtp_code;
  put_if(o, "diagnostic", b.diagnostic);
  put_if(o, "remote_mta", b.remote_mta);
  put_if(o, "reporting_mta", b.reporting_mta);
  o["origin"] = b.origin;
  return text(o);
}

std::string accepted(std::size_t recipients, std::string_view request_id) {
  json::object o{{"recipients", recipients}};
  if (!request_id.empty()) o["request_id"] = request_id;
  return text(o);
}

std::string suppressed_at_submission(std::string_view reason) {
  json::object o{{"stage", "submission"}};
  put_if(o, "reason", reason);
  return text(o);
}

std::string suppressed_at_delivery(std::uint32_t attempt) {
  return text(json::object{{"stage", "delivery"}, {"attempt", attempt}});
}

std::string complained(std::string_view feedback_type, std::string_view reporting_mta,
                       std::string_view origin) {
  json::object o{{"feedback_type", feedback_type}};
  put_if(o, "reporting_mta", reporting_mta);
  o["origin"] = origin;
  return text(o);
}

std::string unsubscribed_one_click() { return text(json::object{{"method", "one-click"}}); }

std::string tracking_hit(const hit_facts_data& hit) {
  json::object o;
  if (hit.link > 0) {
    o["link"] = hit.link;
    o["url"] = hit.url;
  }
  // A client's text: bounded, printable ASCII (User-Agent is ASCII; anything else is hostile).
  std::string agent;
  for (char ch : hit.user_agent.substr(0, 300)) {
    auto c = static_cast<unsigned char>(ch);
    agent.push_back(c < 32 || c >= 127 ? '?' : ch);
  }
  o["user_agent"] = agent;
  if (!hit.ip.empty()) o["ip"] = hit.ip;
  o["machine"] = hit.machine;
  if (hit.machine) o["machine_reason"] = hit.machine_reason;
  o["first"] = true;
  return text(o);
}

std::string cancelled(std::string_view by, std::string_view reason) {
  json::object o{{"by", by}};
  put_if(o, "reason", reason);
  return text(o);
}

std::string admin_action(std::string_view action, std::string_view kind, std::string_view target,
                         std::int64_t until_ms, std::string_view reason, std::string_view by) {
  json::object o{{"action", action}, {"kind", kind}, {"target", target}};
  if (until_ms) o["until"] = rfc3339(until_ms);
  put_if(o, "reason", reason);
  o["by"] = by;
  return text(o);
}

std::string reputation_warning(std::string_view level, std::string_view metric, double rate, double threshold,
                               std::int64_t window_seconds, std::uint64_t delivered, std::uint64_t hard_bounces,
                               std::uint64_t complaints, bool paused, std::string_view sender_domain) {
  // Rates in parts per million: integers, never "4E-3".
  auto ppm = [](double r) { return static_cast<std::int64_t>(r * 1e6 + 0.5); };
  return text(json::object{{"level", level},
                           {"sender_domain", sender_domain.empty() ? json::value(nullptr) : json::value(sender_domain)},
                           {"metric", metric},
                           {"rate_ppm", ppm(rate)},
                           {"threshold_ppm", ppm(threshold)},
                           {"window_seconds", window_seconds},
                           {"delivered", delivered},
                           {"hard_bounces", hard_bounces},
                           {"complaints", complaints},
                           {"paused", paused}});
}

std::string domain_verification_failed(std::string_view domain, std::string_view status_json) {
  json::object o{{"domain", domain}};
  boost::system::error_code ec;
  auto status = json::parse(status_json, ec);
  if (!ec && status.is_object())
    o["status"] = std::move(status);
  else
    o["status"] = json::object{{"raw", status_json}};
  return text(o);
}

insert_message_op submission(message_record m) {
  auto make = [&m](std::string type, std::string data) {
    event_record e;
    e.id = new_id();
    e.tenant_id = m.tenant_id;
    e.message_id = m.id;
    e.type = std::move(type);
    e.at_ms = m.created_at_ms;
    e.data_json = std::move(data);
    return e;
  };
  auto accepted_event = make("accepted", accepted(m.recipients.size(), m.request_id));
  std::vector<event_record> events;
  for (const auto& r : m.recipients) {
    if (r.state != recipient_state::suppressed) continue;
    events.push_back(make("suppressed", suppressed_at_submission(r.last_reply)));
    events.back().recipient_id = r.id;
  }
  return insert_message_op{std::move(m), std::move(accepted_event), std::move(events)};
}

std::string delivery_log_line(const event_record& e, std::string_view domain,
                              std::string_view address) {
  json::object o{{"at", rfc3339(e.at_ms)},          {"type", e.type},
                 {"tenant", e.tenant_id.str()},     {"message", e.message_id.str()},
                 {"recipient", e.recipient_id.str()}, {"domain", domain}};
  if (address.empty())
    o["email"] = nullptr;
  else
    o["email"] = address;
  o["event"] = e.id.str();
  // The data was built by this file (valid JSON): appended as it is rather than parsed again.
  auto line = text(o);
  line.pop_back();
  line += ",\"data\":";
  line += e.data_json.empty() ? std::string_view("{}") : std::string_view(e.data_json);
  line += '}';
  return line;
}

}  // namespace event_data
}  // namespace petrel
