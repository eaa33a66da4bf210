// The rows Petrel keeps: tenants, API keys, messages, recipients and events, as plain structs
// shared by the store backends, the actors and the HTTP API.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <memory>

#include "storage/ids.hpp"

namespace petrel {

struct message_spec;  // net/mail/mime_message.hpp

// Where a recipient stands. queued and deferred are waiting (held by a domain actor); the
// others are final and never change again.
enum class recipient_state : std::uint8_t {
  queued = 0,
  deferred = 1,
  delivered = 2,
  bounced = 3,
  expired = 4,
  suppressed = 5,
  cancelled = 6,
};
std::string_view to_string(recipient_state s);
std::optional<recipient_state> parse_recipient_state(std::string_view text);
inline bool is_final(recipient_state s) {
  return s != recipient_state::queued && s != recipient_state::deferred;
}

// How the recipient was named in the submission.
enum class recipient_kind : std::uint8_t { to = 0, cc = 1, bcc = 2, envelope = 3 };
std::string_view to_string(recipient_kind k);
std::optional<recipient_kind> parse_recipient_kind(std::string_view text);

struct tenant_record {
  id128 id;
  std::string name;
  double rate_per_second = 0;  // 0: the configured default
  std::uint32_t burst = 0;     // 0: the configured default
  bool suspended = false;
  std::int64_t created_at_ms = 0;
  std::string pool;           // egress pool; "" the default pool
  std::uint32_t weight = 1;   // share of turns against other tenants at a busy domain
  bool sandbox = false;       // every message is delivered nowhere (actors/policy/sandbox.hpp)
  // Open and click tracking (docs/sending.md, "Tracking"): the defaults of its messages, whether
  // events keep the client's IP address, and its own tracking domain (a CNAME to the node's
  // tracking.cname_target), used once verified.
  struct tracking_settings {
    bool opens = false;
    bool clicks = false;
    bool record_ip = false;
    std::string domain;
    bool verified = false;
    std::int64_t checked_at_ms = 0;
    std::string status;  // what the last check found
    friend bool operator==(const tracking_settings&, const tracking_settings&) = default;
  };
  tracking_settings tracking;
};

struct api_key_record {
  id128 id;
  id128 tenant_id;
  std::string key_hash;  // hex SHA-256 of the whole key; the key itself is never stored
  std::string prefix;    // the key's first characters, to tell keys apart in listings
  std::int64_t created_at_ms = 0;
  std::int64_t revoked_at_ms = 0;  // 0: active
};

struct recipient_record {
  id128 id;
  std::string address;  // as submitted (domain part lower-cased)
  std::string domain;   // ASCII (A-label) destination domain, lower case
  recipient_kind kind = recipient_kind::to;
  recipient_state state = recipient_state::queued;
  std::uint32_t attempts = 0;
  std::int64_t next_attempt_at_ms = 0;
  std::int64_t updated_at_ms = 0;
  std::string last_reply;
  std::string pool;   // egress pool the message leaves through ("" the default)
  int priority = 0;   // 1: transactional, ahead of 0 (bulk)
  // A templated message's recipient: {"email", "name"?, "substitutions"?} (JSON), what its copy
  // is rendered with at delivery; "" otherwise.
  std::string personal_json;
  std::string metadata_json;  // the recipient's own metadata (JSON object), "" none
};

// A tenant's Idempotency-Key and what the request with it answered (kept until expires_at).
struct idempotency_record {
  std::string key;           // "" none
  std::string request_hash;  // SHA-256 of the request body, hex
  id128 message_id;
  int status = 202;
  std::string response;      // the answer's body (JSON)
  std::int64_t created_at_ms = 0;
  std::int64_t expires_at_ms = 0;
};

struct message_record {
  id128 id;
  id128 tenant_id;
  std::int64_t created_at_ms = 0;
  std::string mail_from;  // envelope sender (RFC 5321 MAIL FROM)
  std::string subject;
  std::string campaign;
  std::string tags_json;      // JSON array of strings
  std::string metadata_json;  // JSON object
  std::string message_id_header;  // the Message-ID header's value, with angle brackets
  std::uint64_t size = 0;
  std::string content;  // the complete RFC 5322 message, CRLF line endings
  std::vector<recipient_record> recipients;
  std::string from_domain;  // the From header's domain (for DKIM)
  bool bulk = false;        // gets per-recipient List-Unsubscribe headers at delivery
  int priority = 0;         // 1 (high): ahead of normal traffic at busy domains
  // content is a template source (net/mail/template_message.hpp), rendered per recipient at
  // delivery; each recipient has its personal_json.
  bool templated = false;
  std::string batch_id;  // the client's batch ("" none): POST /v1/batches/{id}/cancel
  // Deliver nowhere (actors/policy/sandbox.hpp): the recipients get the simulator's pool. Not a
  // column: the recipients' pool says it.
  bool sandbox = false;
  // The request's Idempotency-Key (key "" none): stored in the message's transaction.
  idempotency_record idempotency;
  // Open and click tracking the submission asked for: -1 the tenant's default, 0 off, 1 on.
  std::int8_t track_opens = -1;
  std::int8_t track_clicks = -1;
  // The X-Request-Id of the HTTP request that submitted it ("" other ways): in the accepted
  // event, not a column.
  std::string request_id;
  // A structured message that tracking may turn into copies per recipient (its HTML rewritten):
  // kept from the submission until then, never stored nor sent between nodes.
  std::shared_ptr<const message_spec> spec;
  // A tracked message's links (the n-th trackable link of its HTML at [n-1]) and when their
  // tokens expire: stored in tracking_links in the message's transaction.
  std::vector<std::string> tracking_links;
  std::int64_t tracking_expires_ms = 0;  // 0: not tracked
  std::string tracking_base_url;  // decided by the tenant actor for the signer (not stored)
};

struct event_record {
  id128 id;
  id128 tenant_id;
  id128 message_id;
  id128 recipient_id;  // empty for events about the whole message
  std::string type;    // accepted, delivered, deferred, bounced, ...
  std::int64_t at_ms = 0;
  std::string data_json;  // type-specific details (JSON object)
};

// A page of a tenant's events (GET /v1/events, webhooks): after a position, with filters.
struct event_query {
  id128 tenant_id;
  bool all_tenants = false;     // every tenant's (the admin tail): tenant_id is not looked at
  std::int64_t after_seq = 0;   // the position: events with a larger sequence number
  std::string types;            // comma-separated event types; empty: all
  id128 message_id;             // empty: any
  std::string recipient;        // an address; empty: any
  std::string campaign;         // empty: any
  std::int64_t since_ms = 0;    // created_at >= since
  std::int64_t until_ms = 0;    // created_at < until; 0: no bound
  std::uint64_t limit = 100;
};

// An event with its position and what it is about (from its message and recipient).
struct event_view {
  std::int64_t seq = 0;
  event_record event;
  std::string recipient;      // address, empty for message events
  std::string campaign;
  std::string tags_json;      // JSON array
  std::string metadata_json;  // JSON object
  std::string recipient_metadata_json;  // the recipient's own (JSON object), "" none: over the message's
};

// Counts of a tenant's events per time bucket (GET /v1/stats).
struct stats_query {
  id128 tenant_id;
  std::string campaign;  // empty: all
  std::int64_t bucket_ms = 3600000;
  std::int64_t since_ms = 0;
  std::int64_t until_ms = 0;
};
struct stats_row {
  std::int64_t bucket_start_ms = 0;
  std::string type;
  bool hard = false;            // bounced: a hard bounce; opened, clicked: by a machine
  std::uint64_t count = 0;      // events
  std::uint64_t recipients = 0;  // accepted: the messages' recipients
};

// A tenant's stored template (POST /v1/templates), one record per version; a message that
// names it is rendered from the version it named, copied into the message when accepted.
struct template_record {
  id128 id;
  std::uint32_t version = 1;
  id128 tenant_id;
  std::string name;
  std::string subject;
  bool has_text = false;
  std::string text;
  bool has_html = false;
  std::string html;
  std::int64_t created_at_ms = 0;
};

// GET /v1/messages: a tenant's messages, newest first, filtered (empty: any); a page after the
// position (before_created_ms, before_id) of the last one of the previous page.
struct message_search {
  id128 tenant_id;
  std::string recipient;  // a canonical address: messages with that recipient
  std::string status;     // a recipient state: messages with a recipient (that one, if given) in it
  std::string campaign;
  std::string tag;
  std::string batch_id;
  std::int64_t since_ms = 0;
  std::int64_t until_ms = 0;  // 0: no bound
  std::int64_t before_created_ms = 0;  // 0: from the newest
  id128 before_id;
  std::uint64_t limit = 50;
};

// Where a tracking token leads (GET /c/{token}, /o/{token}.gif): the link of a tracked message,
// its tenant, and what the event about it needs. link 0 is the open pixel (url empty).
struct tracking_query {
  id128 message_id;
  id128 recipient_id;
  std::uint16_t link = 0;
};
struct tracking_target {
  id128 tenant_id;
  std::string url;
  std::int64_t expires_ms = 0;
  bool record_ip = false;          // the tenant's setting
  std::string address;             // the recipient's, "" when it is no longer stored
  std::int64_t delivered_at_ms = 0;  // when it was delivered, 0 not (yet) or unknown
};

// How often a recipient opened its message (link 0) or clicked a link, by people or by
// machines (docs/sending.md, "Machine opens and clicks").
struct tracking_hit_record {
  id128 recipient_id;
  std::uint16_t link = 0;
  bool machine = false;
  std::uint64_t count = 0;
  std::int64_t first_at_ms = 0;
  std::int64_t last_at_ms = 0;
};

// A tenant's template (id empty: the newest version of each of them; version 0: the newest).
struct template_query {
  id128 tenant_id;
  id128 id;
  std::uint32_t version = 0;
};

// A tenant's webhook endpoint and its delivery state.
struct webhook_record {
  id128 id;
  id128 tenant_id;
  std::string url;
  std::string event_types;    // comma-separated; empty: all
  std::string secret;         // HMAC key (stored encrypted when a key encryption key is set)
  std::string previous_secret;        // after a rotation: still signed with until ...
  std::int64_t previous_until_ms = 0;  // ... this time
  std::int64_t created_at_ms = 0;
  std::string state = "active";  // active, paused
  std::string paused_reason;
  std::int64_t cursor = 0;    // events up to this sequence number are delivered
  std::int64_t last_success_at_ms = 0;
  std::string last_error;
  std::int64_t last_error_at_ms = 0;
  std::uint32_t failures = 0;   // consecutive failed attempts
  std::int64_t failing_since_ms = 0;
  std::uint64_t delivered = 0;  // events delivered in all
};

// A waiting recipient as its domain actor holds it: ids and times, no addresses or bodies.
struct queued_recipient {
  id128 recipient_id;
  id128 message_id;
  id128 tenant_id;
  std::string domain;
  recipient_state state = recipient_state::queued;
  std::uint32_t attempts = 0;
  std::int64_t next_attempt_at_ms = 0;
  std::string pool;
  int priority = 0;
  bool alone = false;  // sent in a transaction of its own (its copy is rendered for it)
};

// The waiting recipients of one domain and class (tenant, priority), summed up (the paged
// queue's index: what waits, without reading it).
struct queue_class_summary {
  id128 tenant_id;
  int priority = 0;
  std::uint64_t queued = 0;
  std::uint64_t deferred = 0;
  std::int64_t oldest_ms = 0;    // the oldest one's creation time
  std::int64_t next_due_ms = 0;  // the earliest next attempt
  id128 max_id;                  // the highest recipient id
};

// A page of a domain's waiting recipients of one class, in (next attempt, id) order: keys
// after (after_due_ms, after_id), due at the latest until_ms, at most limit of them.
struct queue_page_query {
  std::string domain;
  id128 tenant_id;
  int priority = 0;
  std::int64_t after_due_ms = 0;
  id128 after_id;
  std::int64_t until_ms = 0;
  std::uint64_t limit = 0;
};

struct queue_page {
  std::vector<queued_recipient> recipients;
  // Whether the class has recipients due after until_ms, and the first one's due time (asked
  // only when the page is not full).
  bool has_later = false;
  std::int64_t later_due_ms = 0;
};

// A recipient's new state after an attempt, with the event that explains it.
struct recipient_update {
  id128 recipient_id;
  recipient_state state = recipient_state::queued;
  std::uint32_t attempts = 0;
  std::int64_t next_attempt_at_ms = 0;
  std::string last_reply;
  event_record event;  // its at_ms is the update's time
  // Fencing (cluster): written only while the recipient's partition is held in this epoch;
  // epoch 0 writes unconditionally (a single node, and writes that are not delivery's).
  std::uint32_t partition = 0;
  std::int64_t epoch = 0;
};

// The reason a store gives for a fenced write it refused (see recipient_update).
inline constexpr const char* fenced_write = "fenced: the partition is no longer held in this epoch";

// What a delivery needs from the store: envelope sender, addresses, the message.
struct delivery_content {
  std::string mail_from;
  std::vector<std::string> addresses;  // in the order of the requested recipient ids
  std::string content;
  std::vector<std::uint8_t> suppressed;  // per address (0 or 1): suppressed for the tenant by now
  bool bulk = false;
  id128 tenant_id;
  std::string from_domain;
  bool templated = false;              // content is a template source: rendered per recipient
  std::vector<std::string> personal;   // per address: its personal_json (templated)
};

// A DKIM key of a sender domain. The private key is PEM, or "enc:v1:..." when encrypted at
// rest; it never leaves Petrel through an API.
struct dkim_key_record {
  id128 id;
  id128 domain_id;
  std::string selector;
  std::string algorithm;    // rsa-sha256, ed25519-sha256
  std::string private_key;
  std::string public_key;   // the DNS record's p= value
  std::int64_t created_at_ms = 0;
  std::string state;        // active, published, retired
};

// A domain a tenant sends from, with its keys and its last DNS verification.
struct sender_domain_record {
  id128 id;
  id128 tenant_id;
  std::string domain;
  std::int64_t created_at_ms = 0;
  bool verified = false;
  std::int64_t checked_at_ms = 0;
  std::string status_json = "{}";  // the last verification report
  std::vector<dkim_key_record> keys;
};

// A suspension (of a domain, site, tenant or source), by an operator or a response rule.
struct control_record {
  std::string kind;    // domain, site, tenant, source, tenant_site (target "tenant@site")
  std::string target;
  std::int64_t until_ms = 0;  // 0: until resumed
  std::string reason;
  std::int64_t created_at_ms = 0;
};

// Messages a source sent in a period ("day" or "hour" starting at period_start_ms).
struct egress_usage_record {
  std::string source;
  std::string period;
  std::int64_t period_start_ms = 0;
  std::uint64_t count = 0;
};

// An address a tenant does not send to (until expires_at, when set).
struct suppression_record {
  id128 tenant_id;
  std::string address;        // as suppression_key() forms it
  std::string reason;         // hard_bounce, complaint, unsubscribe, manual, soft_bounce_streak
  std::string source_event;   // id of the event that caused it, if any
  std::int64_t created_at_ms = 0;
  std::int64_t expires_at_ms = 0;  // 0: never
};

struct soft_bounce_streak {
  std::string address;
  std::uint32_t count = 0;
  std::int64_t first_at_ms = 0;
};

// The form an address is suppressed under: the local part as given (as the address parser
// normalized it), '@', the domain's ASCII (A-label) form in lower case.
std::string suppression_key(std::string_view address, std::string_view ascii_domain);
// The same for an address whose domain is ASCII already.
std::string suppression_key(std::string_view address);

// A recipient found again by id or by its message's Message-ID (asynchronous bounces).
struct recipient_lookup {
  id128 recipient_id;
  id128 message_id;
  id128 tenant_id;
  std::string address;
  std::string domain;
  recipient_state state = recipient_state::queued;
  std::uint32_t attempts = 0;
  std::string sender_domain;  // its message's From domain ("" when the message is gone)
};

// A message as GET /v1/messages/{id} shows it: the message without its content, its
// recipients and the events about it (oldest first).
struct message_details {
  message_record message;
  std::vector<event_record> events;
  // Opens and clicks of its recipients; message.tracking_links holds its links.
  std::vector<tracking_hit_record> hits;
};

}  // namespace petrel
