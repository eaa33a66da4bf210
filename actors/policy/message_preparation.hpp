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

// `recipient_ids` in the order of `content.addresses` (as the store loaded them).
prepared_message prepare_message(const preparation_settings& settings, std::vector<id128> recipient_ids,
                                 delivery_content content);

// Whether the message's header block has a field of this name (`name`: lower case, with the
// colon, e.g. "list-unsubscribe:"). The body is not looked at.
bool has_header(std::string_view message, std::string_view name);

}  // namespace petrel
