// Reading bounce mails and feedback reports that come back to Petrel's return path: RFC 3464
// delivery status notifications, RFC 5965 ARF complaints, the non-standard bounces of the big
// providers and MTAs (by heuristics), and RFC 3834 auto-replies, which are never failures.
// Bounce mail is written by strangers, so parsing never throws and its work and memory are
// bounded whatever arrives.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace petrel {

enum class report_kind : std::uint8_t {
  not_a_report = 0,  // ordinary mail
  delivery_failure,  // a DSN or bounce (including "delayed" and "delivered" DSNs: see action)
  feedback,          // a complaint or opt-out (ARF, or a provider's own feedback format)
  auto_reply,        // vacation or other automatic answer: not a failure
};
std::string_view to_string(report_kind kind);  // "not_a_report", "delivery_failure", ...

struct bounce_recipient {
  std::string address;     // the failed recipient (Final-Recipient, else Original-Recipient,
                           // else what the text names), domain lower-cased
  std::string original;    // the Original-Recipient when it names another mailbox: the address
                           // as the sender gave it, before forwarding or aliasing (RFC 3464
                           // 2.3.1); the one to match against what was sent, before address
  std::string action;      // failed, delayed, delivered, relayed, expanded ("" unknown)
  std::string status;      // RFC 3463 x.y.z if known (the most specific one the report gives)
  std::string diagnostic;  // Diagnostic-Code text or the error text found
  int reply_code = 0;      // SMTP reply code when found
  std::string remote_mta;  // Remote-MTA or host named in the text
  std::string command;     // the SMTP command the failure answered when the report says:
                           // CONNECT, HELO, MAIL, RCPT or DATA ("" unknown)
};

struct bounce_report {
  report_kind kind = report_kind::not_a_report;
  bool standard = false;  // RFC 3464 multipart/report or RFC 5965 ARF structure (vs heuristics)
  std::vector<bounce_recipient> recipients;
  std::string feedback_type;        // ARF Feedback-Type (abuse, fraud, opt-out, not-spam, virus, other)
  std::string original_message_id;  // Message-ID of the returned / reported message, with <>
  std::string original_from, original_to, original_subject;
  // Lower-case name -> first value, of the returned/reported message's headers (x-petrel-id
  // included when present).
  std::map<std::string, std::string> original_headers;
  std::string reporting_mta;
};

// Limits on hostile input. Bytes past max_bounce_message_octets are not read: the report is at
// the start, and a returned message's tail tells nothing.
constexpr std::size_t max_bounce_message_octets = 10 * 1024 * 1024;
constexpr std::size_t max_bounce_recipients = 500;
constexpr std::size_t max_bounce_diagnostic_octets = 2000;

// Never throws; every string in the result is valid UTF-8 without control characters.
bounce_report parse_bounce(std::string_view raw_message);

// Whether a recipient's Action says it failed: "failed" (and the non-standard "failure",
// "expired") or unknown. Not: "delayed" (still trying), "delivered", "relayed" (passed to a
// system that sends no DSN), "expanded" (a list or alias), "deliverable" (a probe's answer).
bool is_failure_action(std::string_view action);

}  // namespace petrel
