// Bounce parsing, reading the reports (see bounce_reading.hpp): where the returned message
// begins, RFC 3464 delivery-status fields, the failed recipients of a human-readable bounce,
// and what kind of mail this is.
#include "net/mail/bounce_reading.hpp"

#include <gmime/gmime.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <memory>
#include <optional>

#include "net/mail/bounce.hpp"

namespace petrel::bounce_reading {

// ---------------------------------------------------------------------------------------------
// Where the human-readable part ends and the returned message begins, in one text.

namespace {

// Phrases of the lines MTAs put before the copy of the message they return.
constexpr std::array<std::string_view, 22> original_message_phrases = {
    "copy of the message", "copy of your message", "original message", "original mail",
    "unsent message", "returned message", "undelivered message", "message headers follow",
    "header of the original", "headers of the original", "headers of your message",
    "bounced e-mail", "bounced email", "message follows", "rfc822 headers", "original headers",
    "header of your message", "headers follow", "your message follows", "message text follows",
    "original text", "content of the original"};

// The line index where the returned message starts (the marker line), or lines.size().
std::size_t find_original_marker(const std::vector<std::string_view>& lines) {
  for (std::size_t i = 0; i < lines.size(); ++i) {
    auto line = trim(lines[i]);
    if (line.empty() || line.size() > 120) continue;
    auto lowered = lower(line);
    if (!contains_any(lowered, original_message_phrases)) continue;
    bool separator = line.front() == '-' || line.front() == '=' || line.front() == '_' ||
                     line.front() == '*' || line.front() == '#' || line.front() == '[' || line.front() == '|';
    std::size_t next = i + 1;
    while (next < lines.size() && trim(lines[next]).empty()) ++next;
    bool headers_follow = next < lines.size() && looks_like_header_line(lines[next]);
    bool short_label = line.size() <= 70 && (line.back() == ':' || line.back() == '.' || line.back() == '-');
    if (separator || (short_label && headers_follow) || (line.size() <= 45 && headers_follow)) return i;
  }
  return lines.size();
}

// The text with "> " quoting removed from every line (a forwarded bounce reads as the bounce).
std::string unquoted_text(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (auto line : split_lines(text)) {
    out += unquote(line);
    out += '\n';
  }
  return out;
}

}  // namespace

// Splits one text part at the returned-message marker.
split_text split_at_original(std::string_view part_text) {
  split_text out;
  auto text = unquoted_text(part_text.substr(0, max_scanned_text_octets));
  auto lines = split_lines(text);
  auto marker = find_original_marker(lines);
  for (std::size_t i = 0; i < marker; ++i) {
    out.failure += lines[i];
    out.failure += '\n';
  }
  if (marker < lines.size()) {
    // The returned headers start at the first header line within a few lines after the marker.
    for (std::size_t i = marker + 1; i < lines.size() && i < marker + 6; ++i) {
      if (!looks_like_header_line(lines[i])) continue;
      auto offset = static_cast<std::size_t>(lines[i].data() - text.data());
      auto block = parse_fields(text, offset);
      if (!block.empty()) out.original = std::move(block);
      break;
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// RFC 3464 delivery-status fields.

namespace {

bool is_recipient_field(const std::string& name) {
  return name == "final-recipient" || name == "original-recipient";
}

bool is_per_message_field(const std::string& name) {
  return name == "reporting-mta" || name == "dsn-gateway" || name == "received-from-mta" ||
         name == "arrival-date" || name == "original-envelope-id";
}

}  // namespace

// Groups are separated by empty lines (RFC 3464 2.1); a group with a recipient field is a
// recipient's, whatever order its fields come in. Lenient where MTAs are sloppy: per-message
// fields in a recipient's group go where they belong, and a recipient field seen twice in one
// group starts the next recipient (some MTAs leave out the empty line).
delivery_status_fields parse_delivery_status(std::string_view content) {
  delivery_status_fields out;
  std::size_t pos = 0;
  while (pos < content.size() && out.per_recipient.size() < max_bounce_recipients) {
    auto before = pos;
    auto group = parse_fields(content, pos);
    if (pos == before) {  // a line that is no field: skip it
      auto end = content.find('\n', pos);
      pos = end == std::string_view::npos ? content.size() : end + 1;
      continue;
    }
    bool has_recipient = std::any_of(group.begin(), group.end(), [](const field& f) { return is_recipient_field(f.name); });
    if (!has_recipient) {
      if (out.per_recipient.empty()) out.per_message.insert(out.per_message.end(), group.begin(), group.end());
      else if (out.returned_headers.empty() && (find_field(group, "message-id") || find_field(group, "received")))
        out.returned_headers = std::move(group);
      continue;
    }
    fields current;
    for (auto& f : group) {
      if (is_per_message_field(f.name)) {
        out.per_message.push_back(std::move(f));
        continue;
      }
      if (is_recipient_field(f.name) && find_field(current, f.name)) {
        out.per_recipient.push_back(std::move(current));
        current.clear();
      }
      current.push_back(std::move(f));
    }
    out.per_recipient.push_back(std::move(current));
  }
  return out;
}

namespace {

// local@domain with both parts present (a DSN may name a file or a bare "@host").
bool is_mailbox_like(std::string_view address) {
  auto at = address.rfind('@');
  return at != std::string_view::npos && at > 0 && at + 1 < address.size() &&
         address.find_first_of(" /|") == std::string_view::npos;
}

// The recipient a DSN block names, or "" when it names no mailbox.
std::string address_field(const fields& block) {
  for (std::string_view name : {"final-recipient", "original-recipient", "x-actual-recipient"}) {
    auto* value = find_field(block, name);
    if (!value) continue;
    auto address = normalize_address(strip_type_prefix(*value));
    if (is_mailbox_like(address)) return address;
  }
  return {};
}

}  // namespace

bounce_recipient recipient_from_fields(const fields& block) {
  bounce_recipient r;
  r.address = address_field(block);
  if (auto* original = find_field(block, "original-recipient")) {
    auto address = normalize_address(strip_type_prefix(*original));
    if (is_mailbox_like(address) && lower(address) != lower(r.address)) r.original = std::move(address);
  }
  auto action = lower(trim(field_or_empty(block, "action")));
  r.action = action.substr(0, action.find_first_of(" (;"));
  auto status = std::string(trim(field_or_empty(block, "status")));
  r.status = status.substr(0, status.find_first_of(" (;"));
  r.diagnostic = std::string(strip_type_prefix(field_or_empty(block, "diagnostic-code")));
  auto remote = std::string(strip_type_prefix(field_or_empty(block, "remote-mta")));
  remote.erase(std::remove_if(remote.begin(), remote.end(), [](char c) { return c == '[' || c == ']'; }), remote.end());
  r.remote_mta = lower(trim(remote.substr(0, remote.find_first_of(" (;"))));
  complete_from_diagnostic(r);
  return r;
}

// ---------------------------------------------------------------------------------------------
// The human-readable text of a bounce: which addresses failed and what was said about each.

exclusions make_exclusions(const fields& top, const fields* original) {
  exclusions out;
  auto add_from = [](std::vector<std::string>& to, const fields& block, std::initializer_list<std::string_view> names) {
    for (auto name : names)
      if (auto* value = find_field(block, name))
        for (auto& a : addresses_in(*value)) to.push_back(std::move(a));
  };
  add_from(out.strong, top, {"from", "sender"});
  add_from(out.weak, top, {"to", "reply-to", "return-path", "delivered-to", "x-original-to"});
  if (original) add_from(out.strong, *original, {"from", "sender", "return-path", "reply-to", "errors-to"});
  return out;
}

namespace {

bool is_reply_code_prefix(std::string_view text) {
  // "554" or "550 5.1.1" / "550-5.1.1": Sendmail's "NNN <a@b>... reason" lines
  if (text.size() < 3 || !is_digit(text[0]) || !is_digit(text[1]) || !is_digit(text[2])) return false;
  if (text.size() == 3) return true;
  return (text[3] == ' ' || text[3] == '-') && find_enhanced_code(text.substr(4)) == text.substr(4);
}

// The address is what the line is about: nothing but a short label or a reply code stands before
// it, or it is followed by a colon ("<a@b>: host said ...").
bool is_announced(std::string_view line, const address_mention& mention, bool first_on_line) {
  auto after = line.substr(mention.end);
  while (!after.empty() && (after.front() == '>' || after.front() == '"')) after.remove_prefix(1);
  if (!after.empty() && after.front() == ':') return true;
  if (!first_on_line) return false;
  auto before = trim(line.substr(0, mention.begin));
  while (!before.empty() && (before.back() == '<' || before.back() == '"' || before.back() == '(' || before.back() == '\''))
    before.remove_suffix(1);
  before = trim(before);
  if (before.empty()) return true;
  if (before.size() > 48) return false;
  if (is_reply_code_prefix(before)) return starts_with(after, "...");
  auto lowered = lower(before);
  if (before.back() == ':') return lowered.find("from:") == std::string::npos && lowered.find("sender") == std::string::npos;
  for (std::string_view ending : {" to", " for", "recipient", "address", "addressee"})
    if (lowered.size() >= ending.size() && lowered.substr(lowered.size() - ending.size()) == ending) return true;
  return false;
}

// Lines that name addresses that are not recipients: quoted headers of the returned message.
bool is_sender_line(std::string_view line) {
  auto lowered = lower(trim(line));
  for (std::string_view prefix : {"from:", "sender:", "reply-to:", "return-path:", "message-id:", "references:",
                                  "in-reply-to:", "envelope-from", "original sender", "errors-to:", "cc:"})
    if (starts_with(lowered, prefix)) return true;
  return false;
}

std::vector<text_mention> find_mentions(const std::vector<std::string_view>& lines, const exclusions& excluded) {
  std::vector<text_mention> out;
  for (std::size_t i = 0; i < lines.size(); ++i) {
    if (is_sender_line(lines[i])) continue;
    bool first_on_line = true;
    for (auto& mention : find_addresses(lines[i])) {
      bool announced = is_announced(lines[i], mention, first_on_line);
      first_on_line = false;
      if (!excluded.excluded(mention.address, announced)) out.push_back({std::move(mention.address), i, announced});
    }
  }
  return out;
}

// The recipients to report: X-Failed-Recipients when given, else the announced addresses, else
// every address the text names; each with the line where its block starts.
std::vector<std::pair<std::string, std::size_t>> choose_recipients(
    const std::vector<text_mention>& mentions, const std::vector<std::string>& failed_header) {
  std::vector<std::pair<std::string, std::size_t>> out;
  auto add = [&](const std::string& address, std::size_t line) {
    if (out.size() >= max_bounce_recipients) return;
    for (auto& [known, known_line] : out)
      if (same_address(known, address)) return;
    out.emplace_back(address, line);
  };
  constexpr std::size_t not_in_text = static_cast<std::size_t>(-1);
  if (!failed_header.empty()) {
    for (const auto& address : failed_header) {
      std::size_t line = not_in_text;
      for (const auto& m : mentions)
        if (same_address(m.address, address) && (line == not_in_text || m.announced)) {
          line = m.line;
          if (m.announced) break;
        }
      add(address, line);
    }
    return out;
  }
  bool any_announced = std::any_of(mentions.begin(), mentions.end(), [](const auto& m) { return m.announced; });
  for (const auto& m : mentions)
    if (m.announced || !any_announced) add(m.address, m.line);
  return out;
}

}  // namespace

std::string join_lines(const std::vector<std::string_view>& lines, std::size_t from, std::size_t to) {
  std::string out;
  for (std::size_t i = from; i < to && i < lines.size() && out.size() < max_bounce_diagnostic_octets; ++i) {
    auto line = trim(lines[i]);
    if (line.empty()) continue;
    if (!out.empty()) out += ' ';
    out += line;
  }
  return clean_text(out, max_bounce_diagnostic_octets);
}

namespace {

// How much a block says beyond the addresses it names: letters outside addresses.
std::size_t substance(std::string_view text) {
  std::size_t letters = 0;
  std::size_t skip_until = 0;
  for (const auto& mention : find_addresses(text)) {
    for (std::size_t i = skip_until; i < mention.begin; ++i) letters += is_alpha(text[i]) ? 1 : 0;
    skip_until = mention.end;
  }
  for (std::size_t i = skip_until; i < text.size(); ++i) letters += is_alpha(text[i]) ? 1 : 0;
  return letters;
}

// Where a recipient's block ends: at the first empty line after it said a reply code or status
// (the blocks of qmail, Exim, Postfix and Sendmail texts are paragraphs), else at limit.
// A line that begins a new reply ("550 ..." but not the "550-" lines of a multi-line one, nor
// the last line of one).
bool starts_new_reply(std::string_view line, std::string_view previous) {
  line = trim(line);
  previous = trim(previous);
  if (line.size() < 4 || !is_reply_code_prefix(line.substr(0, 3)) || line[3] != ' ') return false;
  return !(previous.size() >= 4 && previous.substr(0, 3) == line.substr(0, 3) && previous[3] == '-');
}

// Where a recipient's block ends: at the first empty line after it said a reply code or status
// (the blocks of qmail, Exim, Postfix and Sendmail texts are paragraphs), or at the next reply
// of Sendmail's one-line "NNN <a@b>... reason" lists; else at limit.
std::size_t block_end(const std::vector<std::string_view>& lines, std::size_t start, std::size_t limit) {
  bool said = false;
  for (std::size_t i = start; i < limit; ++i) {
    if (trim(lines[i]).empty()) {
      if (said) return i;
      continue;
    }
    if (said && i > start && starts_new_reply(lines[i], lines[i - 1])) return i;
    said = said || find_reply_code(lines[i]) != 0 || !find_enhanced_code(lines[i]).empty();
  }
  return limit;
}

constexpr std::array<std::string_view, 9> delay_phrases = {
    "has been delayed", "have been delayed", "delivery delayed", "delayed mail", "will be retried",
    "warning message only", "not yet been delivered", "still trying", "will continue trying"};

}  // namespace

std::vector<bounce_recipient> recipients_from_text(std::string_view failure_text, const exclusions& excluded,
                                                   const std::vector<std::string>& failed_header) {
  std::vector<bounce_recipient> out;
  auto lines = split_lines(failure_text);
  auto mentions = find_mentions(lines, excluded);
  auto chosen = choose_recipients(mentions, failed_header);
  if (chosen.empty()) return out;

  std::vector<std::size_t> starts;
  for (auto& [address, line] : chosen) starts.push_back(line);
  std::sort(starts.begin(), starts.end());
  std::size_t first_start = starts.front();
  bool delayed = contains_any(lower(failure_text.substr(0, 20000)), delay_phrases);

  for (auto& [address, start] : chosen) {
    bounce_recipient r;
    r.address = address;
    r.action = delayed ? "delayed" : "failed";
    if (start >= lines.size()) {  // named only in X-Failed-Recipients: the whole text is about it
      r.diagnostic = join_lines(lines, 0, lines.size());
    } else {
      auto next = std::upper_bound(starts.begin(), starts.end(), start);
      std::size_t limit = std::min({next == starts.end() ? lines.size() : *next, start + max_recipient_block_lines, lines.size()});
      auto end = block_end(lines, start, limit);
      r.diagnostic = join_lines(lines, start, end);
      bool says_why = find_reply_code(r.diagnostic) != 0 || !find_enhanced_code(r.diagnostic).empty();
      if (!says_why || substance(r.diagnostic) < 12) {  // the reason stands before the addresses
        std::size_t from = first_start > 8 ? first_start - 8 : 0;
        r.diagnostic = clean_text(join_lines(lines, from, first_start) + " " + r.diagnostic, max_bounce_diagnostic_octets);
      }
      if (r.command.empty() && chosen.size() == 1) r.command = find_smtp_command(failure_text);
    }
    complete_from_diagnostic(r);
    out.push_back(std::move(r));
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// What kind of mail this is, from its headers and text.

namespace {

constexpr std::array<std::string_view, 12> daemon_senders = {
    "mailer-daemon", "mailer_daemon", "postmaster", "mail delivery", "mail-daemon", "maildelivery",
    "mdaemon", "mail administrator", "system administrator", "mailer daemon", "post_master", "mail system"};

constexpr std::array<std::string_view, 32> bounce_subjects = {
    "undeliver", "undelivered", "delivery status notification", "delivery failure", "delivery failed",
    "delivery has failed", "failure notice", "returned mail", "mail delivery failed", "mail system error",
    "non-delivery", "nondeliverable", "non deliverable", "delivery problem", "delivery notification",
    "could not send", "not delivered", "delivery report", "warning: message", "delayed mail",
    "mail failure", "error sending", "bounce", "delivery status", "rejected", "returned to sender",
    "message status", "failed delivery", "delivery error", "smtp server: errors from", "エラー", "配信"};

}  // namespace

bool is_daemon_sender(const fields& top) {
  auto from = lower(field_or_empty(top, "from"));
  if (contains_any(from, daemon_senders)) return true;
  auto address = first_address(from);
  return trim(from) == "<>" || (address.empty() && from.find('@') == std::string::npos && !from.empty());
}

namespace {

constexpr std::array<std::string_view, 24> auto_reply_subjects = {
    "out of office", "out of the office", "automatic reply", "auto reply", "auto-reply", "autoreply",
    "auto:", "autorespon", "auto respon", "auto-respon", "abwesenheitsnotiz", "abwesend",
    "réponse automatique", "respuesta automática", "risposta automatica", "automatisch antwoord",
    "automatische antwort", "vacation", "away from", "away until", "on leave", "自動応答", "自動返信",
    "autosvar"};

}  // namespace

bool is_auto_reply(const fields& top) {
  auto auto_submitted = lower(field_or_empty(top, "auto-submitted"));
  if (starts_with(auto_submitted, "auto-replied")) return true;
  for (std::string_view name : {"x-autoreply", "x-autorespond", "x-autoresponder", "x-mail-autoreply"})
    if (find_field(top, name)) return true;
  auto precedence = lower(field_or_empty(top, "precedence"));
  if (precedence.find("auto_reply") != std::string::npos || precedence.find("auto-reply") != std::string::npos) return true;
  if (lower(field_or_empty(top, "x-autogenerated")) == "reply") return true;
  auto subject = lower(field_or_empty(top, "subject"));
  if (char* decoded = g_mime_utils_header_decode_text(nullptr, subject.c_str())) {
    subject = lower(decoded);
    g_free(decoded);
  }
  return contains_any(subject, auto_reply_subjects);
}

namespace {

constexpr std::array<std::string_view, 8> list_headers = {
    "list-id", "list-post", "x-mailman-version", "x-list-administrivia", "mailing-list", "x-ml-name",
    "x-mlserver", "x-ml-info"};

constexpr std::array<std::string_view, 18> list_phrases = {
    "awaits moderator approval", "held for moderation", "held until the list moderator",
    "is being held", "moderator", "not a member", "not member", "non-member", "members-only",
    "members only", "not allowed to post", "posting restricted", "post by non-member",
    "confirm your subscription", "subscription request", "you have been unsubscribed",
    "welcome to the", "list administrator"};

}  // namespace

bool is_list_reply(const fields& top, std::string_view text) {
  if (std::none_of(list_headers.begin(), list_headers.end(), [&](std::string_view name) { return find_field(top, name); }))
    return false;
  auto words = lower(field_or_empty(top, "subject")) + "\n" + lower(text.substr(0, 4096));
  return contains_any(words, list_phrases);
}

bool has_bounce_subject(const fields& top) {
  return contains_any(lower(field_or_empty(top, "subject")), bounce_subjects);
}

}  // namespace petrel::bounce_reading
