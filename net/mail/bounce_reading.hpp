// The parts of the bounce parser (bounce_parser.cpp and the bounce_*.cpp beside it) that its
// files share: limits, field blocks, the MIME reading, and the readers of each report kind.
// Internal to net/mail: nothing outside the parser includes it.
#pragma once

#include <array>
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <boost/json/object.hpp>

#include "net/mail/bounce_parser.hpp"

namespace petrel::bounce_reading {

// ---------------------------------------------------------------------------------------------
// Limits. Bounce mail is hostile input: each stage reads a bounded amount.

// GMime's parser recurses once per nested MIME entity and tests every body line against every
// open boundary: the input is cut before the 201st Content-Type field, which bounds both (a real
// bounce has a handful of entities).
inline constexpr std::size_t max_content_type_fields = 200;
inline constexpr std::size_t max_mime_entities = 200;
inline constexpr int max_mime_depth = 12;

inline constexpr std::size_t max_part_octets = 1024 * 1024;             // decoded text of one part
inline constexpr std::size_t max_scanned_text_octets = 256 * 1024;      // human-readable text read
inline constexpr std::size_t max_header_fields = 500;                   // per header block
inline constexpr std::size_t max_field_octets = 8 * 1024;               // per unfolded field value
inline constexpr std::size_t max_recipient_block_lines = 40;            // text read per recipient
inline constexpr std::size_t max_json_octets = 1024 * 1024;             // an Amazon SES notification
inline constexpr std::size_t max_address_octets = 254;                  // RFC 5321 4.5.3.1.3

// ---------------------------------------------------------------------------------------------
// Text helpers.

inline char lower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c + 32) : c; }

std::string lower(std::string_view s);

inline bool is_space(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }
inline bool is_digit(char c) { return c >= '0' && c <= '9'; }
inline bool is_alpha(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }

std::string_view trim(std::string_view s);

bool starts_with(std::string_view s, std::string_view prefix);

// `lowered` must already be lower case; each needle is lower case.
template <std::size_t N>
bool contains_any(std::string_view lowered, const std::array<std::string_view, N>& needles) {
  return std::any_of(needles.begin(), needles.end(),
                     [&](std::string_view n) { return lowered.find(n) != std::string_view::npos; });
}

// Valid UTF-8 without control characters (tabs and line breaks become spaces, runs of spaces
// collapse), at most max_octets long, cut on a character boundary: safe for logs, JSON events
// and the store whatever the bounce contained.
std::string clean_text(std::string_view text, std::size_t max_octets = max_field_octets);

// Lines without their CR, each cut at max_scanned_line_octets, at most max_scanned_lines.
std::vector<std::string_view> split_lines(std::string_view text);

// A line of a forwarded bounce without its "> " quoting. Sendmail transcript lines (">>> DATA",
// "<<< 550 ...") keep their arrows: they say which command failed.
std::string_view unquote(std::string_view line);

// Removes a leading "type;" from report fields: "rfc822; a@b", "smtp; 550 ...", "dns; mx".
std::string_view strip_type_prefix(std::string_view value);

// A crude reading of HTML as text, for bounces that come as HTML only: tags dropped, block ends
// made line breaks, the few entities that matter decoded.
std::string html_to_text(std::string_view html);

// ---------------------------------------------------------------------------------------------
// Header-style field blocks: message headers, DSN and ARF report fields.

struct field {
  std::string name;   // lower case
  std::string value;  // unfolded, trimmed, at most max_field_octets
};

using fields = std::vector<field>;

const std::string* find_field(const fields& block, std::string_view name);

std::string field_or_empty(const fields& block, std::string_view name);

// Reads "Name: value" lines with their folded continuations from pos up to an empty line (which
// is consumed) or a line that is no field (which is not); pos moves past what was read.
fields parse_fields(std::string_view text, std::size_t& pos);

bool looks_like_header_line(std::string_view line);

// local@domain with the domain lower-cased; brackets, "mailto:" and spaces removed.
std::string normalize_address(std::string_view text);

struct address_mention {
  std::string address;  // normalized
  std::size_t begin = 0, end = 0;  // in the line searched
};

// Every plausible mailbox address in a line of text, left to right. Words that are URLs are
// skipped (unsubscribe links carry addresses in their query strings).
std::vector<address_mention> find_addresses(std::string_view line);

std::vector<std::string> addresses_in(std::string_view text);

std::string first_address(std::string_view text);

std::string local_part(std::string_view address);

bool same_address(std::string_view a, std::string_view b);

// ---------------------------------------------------------------------------------------------
// SMTP details in diagnostic text.

// The first SMTP reply code in text: three digits (2xx to 5xx) standing alone, followed by a
// space, '-' or the end, not part of a dotted number, a time or a date.
int find_reply_code(std::string_view text);

// The SMTP command a failure answered, as the report tells it: "after RCPT TO:" (Exim), "in
// reply to end of DATA command" (Postfix), ">>> DATA" (Sendmail transcripts), "SMTP command
// DATA" (m-FILTER), "did not like our final DATA" (DragonFly). The last one named wins: in a
// transcript it is the one the error followed.
std::string find_smtp_command(std::string_view text);

// Fills reply code, status and remote host of a recipient from its diagnostic text.
void complete_from_diagnostic(bounce_recipient& r);

// ---------------------------------------------------------------------------------------------
// MIME structure, read with GMime.

struct mime_content {
  fields top;                       // the bounce's own header fields
  std::string report_type;          // report-type of a multipart/report
  std::vector<std::string> texts;   // text/plain parts before the returned message
  std::vector<std::string> htmls;   // text/html parts before the returned message
  std::string delivery_status;      // message/delivery-status content
  std::string feedback_report;      // message/feedback-report content
  bool has_original = false;
  fields original;                  // the returned or reported message's header fields
  std::size_t entities = 0;
  bool reparsed = false;            // a lost boundary was guessed once already
};

std::optional<mime_content> read_mime(std::string_view raw);

// ---------------------------------------------------------------------------------------------
// Where the human-readable part ends and the returned message begins, in one text.

struct split_text {
  std::string failure;  // the human-readable report, unquoted
  std::optional<fields> original;
};

// Splits one text part at the returned-message marker.
split_text split_at_original(std::string_view part_text);

// ---------------------------------------------------------------------------------------------
// RFC 3464 delivery-status fields.

struct delivery_status_fields {
  fields per_message;
  std::vector<fields> per_recipient;
  fields returned_headers;  // a header block after the report (DSN fields written into a text)
};

// Groups are separated by empty lines (RFC 3464 2.1); a group with a recipient field is a
// recipient's, whatever order its fields come in. Lenient where MTAs are sloppy: per-message
// fields in a recipient's group go where they belong, and a recipient field seen twice in one
// group starts the next recipient (some MTAs leave out the empty line).
delivery_status_fields parse_delivery_status(std::string_view content);

bounce_recipient recipient_from_fields(const fields& block);

// ---------------------------------------------------------------------------------------------
// The human-readable text of a bounce: which addresses failed and what was said about each.

// Addresses that are not the failed recipient: the returned message's sender and the bounce's
// own sender (always), and the bounce's addressee, our return path (unless the text names it as
// the failed address: a sender can write to itself).
struct exclusions {
  std::vector<std::string> strong, weak;
  bool excluded(std::string_view address, bool announced) const {
    auto local = local_part(address);
    if (local == "mailer-daemon" || local == "mailer_daemon" || local == "mail-daemon") return true;
    auto same = [&](const std::string& a) { return same_address(a, address); };
    if (std::any_of(strong.begin(), strong.end(), same)) return true;
    return !announced && std::any_of(weak.begin(), weak.end(), same);
  }
};

exclusions make_exclusions(const fields& top, const fields* original);

struct text_mention {
  std::string address;
  std::size_t line = 0;
  bool announced = false;  // the line names the address as its subject ("<a@b>:", "To: a@b")
};

std::string join_lines(const std::vector<std::string_view>& lines, std::size_t from, std::size_t to);

std::vector<bounce_recipient> recipients_from_text(std::string_view failure_text, const exclusions& excluded,
                                                   const std::vector<std::string>& failed_header);

// ---------------------------------------------------------------------------------------------
// What kind of mail this is, from its headers and text.

inline constexpr std::array<std::string_view, 30> failure_phrases = {
    "could not be delivered", "couldn't be delivered", "undeliverable", "delivery failed",
    "delivery has failed", "failed permanently", "permanent error", "permanent failure", "user unknown",
    "unknown user", "no such user", "was not delivered", "wasn't able to deliver", "unable to deliver",
    "delivery to the following", "address(es) failed", "addresses failed", "did not reach",
    "could not be reached", "delivery problems", "mailbox is full", "mailbox full", "not be delivered",
    "rejected", "has been delayed", "could not deliver", "failed to deliver", "delivery error",
    "returned to sender", "message delivery"};

bool is_daemon_sender(const fields& top);

bool has_bounce_subject(const fields& top);

bool is_auto_reply(const fields& top);

// A mailing list's own answer to a post (held for moderation, not a member, posting
// restricted, subscription notices): list headers on the message (List-Id, X-Mailman-Version,
// X-List-Administrivia, Mailing-List, X-ML-Name, ...) and a list's wording in its subject or
// text. Not a delivery failure: the list received the message. (A DSN relayed through a list
// is read as the DSN it is before this is asked.)
bool is_list_reply(const fields& top, std::string_view text);

// The JSON text of a notification: the body up to the "--" footer, with the line folding that
// mail transport added (a line break followed by one space) undone.
std::optional<boost::json::object> ses_notification(const std::vector<std::string>& texts);

bounce_report report_from_ses(const boost::json::object& notification);

// The failure text of the bounce and the returned message's headers when only the text has them.
struct readable_part {
  std::string text;
  std::optional<fields> original;
};

}  // namespace petrel::bounce_reading
