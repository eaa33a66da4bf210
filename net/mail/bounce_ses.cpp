// Bounce parsing: Amazon SES notifications (JSON in the body, directly or inside an SNS
// envelope), see bounce_reading.hpp.
#include "net/mail/bounce_reading.hpp"

#include <boost/json/parse.hpp>
#include <boost/json/value.hpp>

#include <algorithm>
#include <array>
#include <cstring>
#include <memory>
#include <optional>

#include "net/mail/bounce.hpp"

namespace petrel::bounce_reading {

// ---------------------------------------------------------------------------------------------
// Amazon SES notifications (JSON in the body, directly or inside an SNS envelope).

namespace {

std::string json_string(const boost::json::object& object, std::string_view key) {
  auto it = object.find(key);
  if (it == object.end() || !it->value().is_string()) return {};
  return std::string(it->value().as_string().c_str());
}

const boost::json::object* json_object(const boost::json::object& object, std::string_view key) {
  auto it = object.find(key);
  return it != object.end() && it->value().is_object() ? &it->value().as_object() : nullptr;
}

const boost::json::array* json_array(const boost::json::object& object, std::string_view key) {
  auto it = object.find(key);
  return it != object.end() && it->value().is_array() ? &it->value().as_array() : nullptr;
}

std::optional<boost::json::object> parse_json_object(std::string_view text) {
  boost::system::error_code error;
  auto value = boost::json::parse(boost::json::string_view(text.data(), text.size()), error);
  if (error || !value.is_object()) return std::nullopt;
  return std::move(value.as_object());
}

}  // namespace

// The JSON text of a notification: the body up to the "--" footer, with the line folding that
// mail transport added (a line break followed by one space) undone.
std::optional<boost::json::object> ses_notification(const std::vector<std::string>& texts) {
  if (texts.empty()) return std::nullopt;
  auto body = trim(std::string_view(texts.front()).substr(0, max_json_octets));
  if (body.empty() || body.front() != '{') return std::nullopt;
  std::string json;
  for (auto line : split_lines(body)) {
    if (line == "--") break;
    if (!line.empty() && line.front() == ' ' && !json.empty()) line.remove_prefix(1);
    else if (!json.empty()) json += '\n';
    json += line;
  }
  auto object = parse_json_object(json);
  if (!object) return std::nullopt;
  if (json_string(*object, "Type") == "Notification") {
    object = parse_json_object(json_string(*object, "Message"));
    if (!object) return std::nullopt;
  }
  if (json_string(*object, "notificationType").empty() && json_string(*object, "eventType").empty()) return std::nullopt;
  return object;
}

namespace {

void original_from_ses(const boost::json::object& notification, bounce_report& report) {
  auto* mail = json_object(notification, "mail");
  if (!mail) return;
  if (auto* headers = json_array(*mail, "headers")) {
    for (const auto& item : *headers) {
      if (!item.is_object() || report.original_headers.size() >= max_header_fields) continue;
      auto name = lower(json_string(item.as_object(), "name"));
      if (!name.empty()) report.original_headers.emplace(name, clean_text(json_string(item.as_object(), "value")));
    }
  }
}

}  // namespace

bounce_report report_from_ses(const boost::json::object& notification) {
  bounce_report report;
  auto type = json_string(notification, "notificationType");
  if (type.empty()) type = json_string(notification, "eventType");
  auto add = [&](const boost::json::array* list, const std::string& action) {
    if (!list) return;
    for (const auto& item : *list) {
      if (report.recipients.size() >= max_bounce_recipients) break;
      bounce_recipient r;
      if (item.is_string()) {
        r.address = normalize_address(item.as_string().c_str());
      } else if (item.is_object()) {
        const auto& o = item.as_object();
        r.address = normalize_address(json_string(o, "emailAddress"));
        r.action = lower(json_string(o, "action"));
        r.status = json_string(o, "status");
        r.diagnostic = std::string(strip_type_prefix(json_string(o, "diagnosticCode")));
      }
      if (r.action.empty()) r.action = action;
      if (!r.address.empty()) report.recipients.push_back(std::move(r));
    }
  };
  if (type == "Bounce") {
    report.kind = report_kind::delivery_failure;
    if (auto* bounce = json_object(notification, "bounce")) {
      add(json_array(*bounce, "bouncedRecipients"), "failed");
      report.reporting_mta = std::string(strip_type_prefix(json_string(*bounce, "reportingMTA")));
      for (auto& r : report.recipients) r.remote_mta = json_string(*bounce, "remoteMtaIp");
    }
  } else if (type == "Complaint") {
    report.kind = report_kind::feedback;
    if (auto* complaint = json_object(notification, "complaint")) {
      add(json_array(*complaint, "complainedRecipients"), "");
      report.feedback_type = lower(json_string(*complaint, "complaintFeedbackType"));
      if (report.feedback_type.empty()) report.feedback_type = "abuse";
    }
  } else if (type == "Delivery") {
    report.kind = report_kind::delivery_failure;
    if (auto* delivery = json_object(notification, "delivery")) {
      add(json_array(*delivery, "recipients"), "delivered");
      auto response = json_string(*delivery, "smtpResponse");
      report.reporting_mta = json_string(*delivery, "reportingMTA");
      for (auto& r : report.recipients) r.diagnostic = response;
    }
  } else {
    return {};
  }
  for (auto& r : report.recipients) complete_from_diagnostic(r);
  original_from_ses(notification, report);
  return report;
}

}  // namespace petrel::bounce_reading
