// The "data" object of every event type (docs/events.md; docs/schemas/event.schema.json), built
// in one place with Boost.JSON so that what the store keeps, the events API serves and webhooks
// post is valid JSON of the documented shape whatever the texts inside hold. The unit tests
// validate every builder's output against the schema. Also the delivery log's line and the
// RFC 3339 timestamps events use.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "net/mail/bounce.hpp"
#include "storage/records.hpp"
#include "storage/store.hpp"

namespace petrel {

// RFC 3339 UTC with milliseconds: 2026-11-29T01:25:53.426Z.
std::string rfc3339(std::int64_t unix_ms);

namespace event_data {

// One delivery attempt (delivered, deferred, bounced, expired).
struct attempt_facts {
  std::uint32_t attempt = 0;
  const classification* failure = nullptr;  // failures only: category, hard, inferred code
  int smtp_code = 0;                         // 0: no reply (then `error` says why)
  std::string_view enhanced_code;
  std::string_view reply;
  std::string_view error;
  std::string_view mx_host;  // empty: no connection was made
  std::string_view mx_ip;
  std::string_view source;
  std::string_view source_ip;
  bool tls = false;
  std::string_view tls_version;
  std::string_view tls_cipher;
  bool dane = false;  // the certificate matched DNSSEC-validated TLSA records
  std::int64_t next_attempt_at_ms = 0;  // deferred only
  std::string_view simulated;  // the sandbox's simulated outcome ("" a real attempt)
};
std::string attempt(const attempt_facts& a);

// An asynchronous bounce: a DSN or a provider notification after the message was accepted.
struct async_bounce_facts {
  const classification* reading = nullptr;
  int smtp_code = 0;
  std::string_view diagnostic;
  std::string_view remote_mta;
  std::string_view reporting_mta;
  std::string_view origin;  // how it came in: "dsn", "arf", "ses", ...
};
std::string async_bounce(const async_bounce_facts& b);

// request_id: the X-Request-Id of the submitting HTTP request, when there was one.
std::string accepted(std::size_t recipients, std::string_view request_id = {});
std::string suppressed_at_submission(std::string_view reason);
std::string suppressed_at_delivery(std::uint32_t attempt);
std::string complained(std::string_view feedback_type, std::string_view reporting_mta,
                       std::string_view origin);
std::string unsubscribed_one_click();
// The first open (link 0) or click of a link by a recipient, by a person or by a machine (reason:
// actors/policy/engagement.hpp). ip empty: not kept (the tenant's tracking.record_ip).
struct hit_facts_data {
  std::uint16_t link = 0;
  std::string_view url;  // clicks
  std::string_view user_agent;
  std::string_view ip;
  bool machine = false;
  std::string_view machine_reason;
};
std::string tracking_hit(const hit_facts_data& hit);
std::string cancelled(std::string_view by, std::string_view reason);
// until_ms 0: no end time.
std::string admin_action(std::string_view action, std::string_view kind, std::string_view target,
                         std::int64_t until_ms, std::string_view reason, std::string_view by);
// The reputation guard: a tenant's rate crossed a threshold (level "warning" or "paused"); paused:
// its sending was suspended by it.
std::string reputation_warning(std::string_view level, std::string_view metric, double rate, double threshold,
                               std::int64_t window_seconds, std::uint64_t delivered, std::uint64_t hard_bounces,
                               std::uint64_t complaints, bool paused, std::string_view sender_domain = {});
// status_json: the verification report (an object); anything else is kept as {"raw": text}.
std::string domain_verification_failed(std::string_view domain, std::string_view status_json);

// A new message as the store writes it: the message, its accepted event, and a suppressed event
// for each recipient suppressed at submission (final at once).
insert_message_op submission(message_record m);

// One line of the delivery log (log.delivery_log): the attempt's event with its domain and
// address; the event's data is embedded as the object it is.
std::string delivery_log_line(const event_record& e, std::string_view domain,
                              std::string_view address);

}  // namespace event_data
}  // namespace petrel
