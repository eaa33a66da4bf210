// Failure classification: every SMTP reply (sync) and every parsed bounce (async) becomes hard
// or soft, an RFC 3463 enhanced status code (from the reply or inferred) and a category from a
// fixed set that later decides the action (a hard invalid_recipient suppresses the address).
// The rules are data (config/bounce_rules.toml plus the operator's own, see
// config/bounce_rules.hpp); this is the plain code that evaluates them.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "config/bounce_rules.hpp"

namespace petrel {

enum class bounce_category : std::uint8_t {
  none = 0,           // not a failure (2xx)
  invalid_recipient,  // the mailbox does not exist or is closed for good
  bad_domain,         // the domain does not exist or accepts no mail (null MX)
  mailbox_full,       // over quota
  spam_block,         // refused as spam: sending IP or domain on a block list, spam content
  policy,             // refused by the receiver's policy (relaying, sender rejected, filters)
  rate_limited,       // too many connections, messages or recipients for now
  auth_failure,       // SPF / DKIM / DMARC / reverse DNS checks failed
  content,            // the content was refused (virus, forbidden attachment, bad MIME)
  message_too_big,    // over the receiver's size limit
  expired,            // retried until the retry period ran out
  network,            // connection refused, timeouts, DNS failures on the path
  other,              // none of the above (or nothing to tell)
};
static_assert(bounce_category_names.size() == static_cast<std::size_t>(bounce_category::other) + 1);

std::string_view to_string(bounce_category c);  // "invalid_recipient", ...
std::optional<bounce_category> parse_bounce_category(std::string_view text);

// When a failure is hard (it suppresses the address for good): only on strong evidence, since
// a wrong hard reading loses a working address, while a wrong soft one costs a few retries (and
// a recipient that keeps failing softly is suppressed by the soft-bounce streak rule). Signals in
// order of trust: the RFC 3463 status, the reply code, the SMTP command, then phrases.
//   - only invalid_recipient and bad_domain are hard, unless a rule says "hard" for another;
//   - a transient reply (4xx, or 4.x.x without a reply code) is never hard;
//   - a failure at MAIL FROM or before (CONNECT, HELO) is about the sender or the session, and
//     one after DATA came when the recipient had been accepted: neither is hard;
//   - a specific status about another cause (X.2 mailbox full or too small, X.3 system, X.4
//     network, X.6 content, X.7 policy; not X.y.0 "undefined", not X.2.1 "mailbox disabled"
//     which several MTAs send with "User unknown") outranks a phrase, unless the rule itself
//     matched on that status;
//   - then invalid_recipient is hard when the status names the address (X.1.0, X.1.1, X.1.3,
//     X.1.6), when the reply answered RCPT TO, or when the rule's text is marked "hard" (a mail
//     system's own unambiguous wording, or a reply that names the refused address); a phrase
//     alone ("user unknown" in a bounce that shows none of these) is soft, because content
//     filters say it too (Sisimai reads such mail as "filtered");
//   - bad_domain (the domain does not exist or takes no mail) is hard.
struct classification {
  bounce_category category = bounce_category::other;
  bool hard = false;
  std::string enhanced;  // from the reply, else inferred from the category and class ("5.1.1")
  int rule = -1;         // index of the matching rule, -1 = built-in fallback by enhanced code
  std::string reason;    // Sisimai's reason name (bounce_reason_names), "" for a success
};

// Only this much of a reply or diagnostic text is searched: what decides the category is at its
// start, and the standard library's regex engine recurses per character (a bound on stack
// use). Two reply lines' worth (max_reply_line_octets in net/smtp_reply.hpp is 2000).
constexpr std::size_t max_classified_text_octets = 4000;

// Immutable once built: copies share the compiled rules, and classify() may run on any number
// of threads at once.
class bounce_classifier {
 public:
  // Precompiles the rules; throws std::invalid_argument naming the rule index and the reason on
  // a bad regex, category, hardness or enhanced code prefix.
  explicit bounce_classifier(std::vector<bounce_rule> rules);

  // reply_code 0 = no SMTP code (transport error, parsed bounce without code); a 2xx gives
  // category none, hard false. enhanced may be empty: a code found at a word start in the text
  // is used then. provider is the remote MTA's host name (for provider-specific rules).
  // smtp_command is the command the reply answered when known ("RCPT", "DATA"...): an unknown
  // recipient said only after DATA, when RCPT TO was accepted, is a content filter's verdict
  // (Japanese carriers answer "550 User unknown" for filtered mail), so it is not hard unless a
  // rule says so; nor is one that answered MAIL FROM (about the sender, not the recipient).
  classification classify(int reply_code, std::string_view enhanced, std::string_view text,
                          std::string_view provider = {}, std::string_view smtp_command = {}) const;

  std::size_t size() const;  // the number of rules

 private:
  struct compiled;  // the rules with their regexes and literal prefilters
  std::shared_ptr<const compiled> compiled_;
};

// The RFC 3463 class and the rule-less reading of an enhanced code: what the built-in fallback
// concludes from "5.1.1" alone (other for codes that tell nothing, like 5.0.0).
bounce_category category_of_enhanced_code(std::string_view enhanced);

// The first RFC 3463 code ("5.1.1", "4.7.0") standing alone in text (a word of its own, or in
// "(#5.1.1)"), whose class matches reply_code's when that is given; "" if none.
std::string find_enhanced_code(std::string_view text, int reply_code = 0);

}  // namespace petrel
