// What a site actor does to a loaded message before an SMTP session sends it, as plain code:
// recipients suppressed since they were queued are taken out (reported, not sent); a message to
// one recipient gets a VERP envelope sender (bounces.verp_domain) that names the recipient; a
// bulk message to one recipient gets its own List-Unsubscribe and List-Unsubscribe-Post fields
// (RFC 8058), unless the sender wrote them; and whether the transaction needs SMTPUTF8
// (RFC 6531: a non-ASCII envelope address). The caller signs a message whose fields were added
// (the signature must cover them).
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "storage/ids.hpp"
#include "storage/records.hpp"

namespace petrel {

struct preparation_settings {
  std::string verp_domain;           // bounces.verp_domain; empty: the sender's own envelope
  std::string bounce_secret;         // key of the VERP and unsubscribe tokens; empty: neither
  std::string unsubscribe_base_url;  // bounces.unsubscribe_base_url; empty: no List-Unsubscribe
};

struct prepared_message {
  std::vector<id128> recipient_ids;  // to send to, in order
  std::vector<std::string> addresses;
  struct skipped {
    id128 recipient_id;
    std::string address;
  };
  std::vector<skipped> suppressed;  // not sent: suppressed by the tenant since it was queued
  std::string mail_from;
  bool needs_smtputf8 = false;
  std::string content;
  bool unsubscribe_added = false;  // List-Unsubscribe fields were put in front: sign again
};

// Open and click tracking at submission (docs/sending.md, "Tracking"): what a message gets, from
// what it asked for (message_record::track_opens/track_clicks) over its tenant's defaults.
struct tracking_decision {
  bool opens = false;
  bool clicks = false;
  std::string base_url;  // empty: not tracked
  std::string refusal;   // the message asked for tracking that cannot be had: a 400 with this
};
struct tracking_environment {
  bool enabled = false;          // tracking.enabled
  std::string node_base_url;     // tracking.base_url
  std::string scheme = "https";  // of tenants' tracking domains
};
tracking_decision decide_tracking(const tracking_environment& env, const tenant_record::tracking_settings& tenant,
                                  std::int8_t asked_opens, std::int8_t asked_clicks);

// Makes a structured message (its spec kept, or a template source) tracked copies: the HTML's
// links and an open pixel become marks, the links are kept for tracking_links until expires_ms,
// and every recipient is sent a copy of its own. False (the message unchanged) when there is
// nothing to track: no HTML, or clicks only and no trackable link.
bool apply_tracking(message_record& m, const tracking_decision& d, std::int64_t expires_ms);

// `recipient_ids` in the order of `content.addresses` (as the store loaded them).
prepared_message prepare_message(const preparation_settings& settings, std::vector<id128> recipient_ids,
                                 delivery_content content);

// Whether the message's header block has a field of this name (`name`: lower case, with the
// colon, e.g. "list-unsubscribe:"). The body is not looked at.
bool has_header(std::string_view message, std::string_view name);

}  // namespace petrel
