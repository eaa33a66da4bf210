// Bounce, feedback report and auto-reply parsing (see bounce_parser.hpp): the assembly of a
// report from its parts. GMime splits the MIME structure (bounce_mime.cpp); the report fields
// (RFC 3464, RFC 5965) and the human-readable text of non-standard bounces are read by plain
// code (bounce_text.cpp, bounce_text_reading.cpp, bounce_ses.cpp), each step bounded. What
// these files share is declared in bounce_reading.hpp.
#include "net/mail/bounce_parser.hpp"
#include "net/mail/bounce_reading.hpp"

#include <gmime/gmime.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <memory>
#include <optional>

#include "net/mail/bounce.hpp"
#include "net/mail/mime_message.hpp"

namespace petrel {

using namespace bounce_reading;

namespace {

// ---------------------------------------------------------------------------------------------
// Assembling the report.

void fill_original(const fields& original, bounce_report& report) {
  for (const auto& f : original)
    if (report.original_headers.size() < max_header_fields) report.original_headers.emplace(clean_text(f.name, 76), f.value);
}

std::string decode_header_text(const std::string& value) {
  char* decoded = g_mime_utils_header_decode_text(nullptr, value.c_str());
  if (!decoded) return value;
  std::string out = decoded;
  g_free(decoded);
  return out;
}

// Derived fields and the cleaning every output string gets.
void finish(bounce_report& report) {
  for (auto& [name, value] : report.original_headers) value = clean_text(value);
  auto header = [&](const char* name) {
    auto it = report.original_headers.find(name);
    return it == report.original_headers.end() ? std::string() : it->second;
  };
  auto message_id = std::string(trim(header("message-id")));
  if (!message_id.empty()) {
    auto open = message_id.find('<'), close = message_id.find('>', open == std::string::npos ? 0 : open);
    if (open != std::string::npos && close != std::string::npos) message_id = message_id.substr(open, close - open + 1);
    else message_id = "<" + message_id.substr(0, message_id.find(' ')) + ">";
    report.original_message_id = clean_text(message_id, 1000);
  }
  report.original_from = clean_text(header("from"), 1000);
  report.original_to = clean_text(header("to"), 4000);
  report.original_subject = clean_text(decode_header_text(header("subject")), 1000);
  report.feedback_type = clean_text(report.feedback_type, 100);
  report.reporting_mta = clean_text(report.reporting_mta, 253);
  for (auto& r : report.recipients) {
    r.address = clean_text(r.address, max_address_octets);
    r.original = clean_text(r.original, max_address_octets);
    r.action = clean_text(r.action, 20);
    r.status = clean_text(r.status, 16);
    r.diagnostic = clean_text(r.diagnostic, max_bounce_diagnostic_octets);
    r.remote_mta = clean_text(r.remote_mta, 253);
  }
  report.recipients.erase(std::remove_if(report.recipients.begin(), report.recipients.end(),
                                         [](const bounce_recipient& r) { return r.address.empty(); }),
                          report.recipients.end());
}

readable_part readable_text(const mime_content& mime) {
  readable_part out;
  const auto& sources = mime.texts.empty() ? mime.htmls : mime.texts;
  for (const auto& text : sources) {
    if (out.text.size() >= max_scanned_text_octets) break;
    auto split = split_at_original(text);
    out.text += split.failure.substr(0, max_scanned_text_octets - out.text.size());
    out.text += '\n';
    if (split.original && !out.original) {
      out.original = std::move(split.original);
      break;  // what follows the returned message is not the report
    }
  }
  return out;
}

bounce_report feedback_report_of(const mime_content& mime) {
  bounce_report report;
  report.kind = report_kind::feedback;
  report.standard = true;
  std::size_t pos = 0;
  fields arf;
  while (pos < mime.feedback_report.size() && arf.size() < max_header_fields) {
    auto before = pos;
    auto block = parse_fields(mime.feedback_report, pos);
    if (pos == before) break;
    arf.insert(arf.end(), block.begin(), block.end());
  }
  report.feedback_type = lower(trim(field_or_empty(arf, "feedback-type")));
  report.reporting_mta = std::string(strip_type_prefix(field_or_empty(arf, "reporting-mta")));
  std::vector<std::string> complained;
  for (const auto& f : arf)
    if (f.name == "original-rcpt-to" || f.name == "removal-recipient")
      for (auto& a : addresses_in(f.value)) complained.push_back(std::move(a));
  if (complained.empty() && mime.has_original)
    complained = addresses_in(field_or_empty(mime.original, "to"));
  for (auto& address : complained) {
    if (report.recipients.size() >= max_bounce_recipients) break;
    bounce_recipient r;
    r.address = std::move(address);
    r.diagnostic = report.feedback_type;
    report.recipients.push_back(std::move(r));
  }
  if (mime.has_original) fill_original(mime.original, report);
  return report;
}

bounce_report delivery_status_report_of(const mime_content& mime, const readable_part& readable,
                                        std::string_view content, bool standard) {
  bounce_report report;
  report.kind = report_kind::delivery_failure;
  report.standard = standard;
  auto status = parse_delivery_status(content);
  report.reporting_mta = std::string(strip_type_prefix(field_or_empty(status.per_message, "reporting-mta")));
  auto excluded = make_exclusions(mime.top, mime.has_original ? &mime.original : nullptr);
  auto from_text = recipients_from_text(readable.text, excluded, addresses_in(field_or_empty(mime.top, "x-failed-recipients")));
  for (const auto& block : status.per_recipient) {
    auto r = recipient_from_fields(block);
    if (r.address.empty()) continue;
    // The human-readable part may say more than the fields: the error text when the DSN has no
    // Diagnostic-Code, the command it answered (Postfix: "in reply to end of DATA command").
    for (const auto& t : from_text) {
      if (!same_address(t.address, r.address)) continue;
      if (r.diagnostic.empty()) r.diagnostic = t.diagnostic;
      if (r.command.empty()) r.command = t.command;
    }
    if (r.command.empty() && status.per_recipient.size() == 1) r.command = find_smtp_command(readable.text);
    complete_from_diagnostic(r);
    report.recipients.push_back(std::move(r));
  }
  if (report.recipients.empty()) {
    report.standard = false;
    report.recipients = std::move(from_text);
  }
  if (!mime.has_original && !readable.original && !status.returned_headers.empty())
    fill_original(status.returned_headers, report);
  return report;
}

// Delivery-status fields written into the text itself (a multipart/report whose boundaries were
// lost, a forwarded bounce): from the first Reporting-MTA or recipient field at a line start.
std::string_view embedded_delivery_status(std::string_view text) {
  for (auto line : split_lines(text)) {
    auto lowered = lower(line.substr(0, 20));
    if (starts_with(lowered, "reporting-mta:") || starts_with(lowered, "final-recipient:") ||
        starts_with(lowered, "original-recipient:"))
      return text.substr(static_cast<std::size_t>(line.data() - text.data()));
  }
  return {};
}

bounce_recipient named_recipient(std::string address, std::string diagnostic) {
  bounce_recipient r;
  r.address = std::move(address);
  r.diagnostic = std::move(diagnostic);
  return r;
}

// Feedback formats from before ARF: Hotmail's JMRP (the reported message carries
// X-HmXmrOriginalRecipient) and Apple Mail's one-click unsubscribe mail.
std::optional<bounce_report> legacy_feedback_of(const mime_content& mime) {
  bounce_report report;
  report.kind = report_kind::feedback;
  if (mime.has_original && find_field(mime.original, "x-hmxmroriginalrecipient")) {
    report.feedback_type = "abuse";
    for (auto& a : addresses_in(field_or_empty(mime.original, "x-hmxmroriginalrecipient")))
      report.recipients.push_back(named_recipient(a, "abuse"));
    fill_original(mime.original, report);
    return report;
  }
  if (lower(trim(field_or_empty(mime.top, "x-apple-unsubscribe"))) == "true") {
    report.feedback_type = "opt-out";
    auto from = first_address(field_or_empty(mime.top, "from"));
    if (!from.empty()) report.recipients.push_back(named_recipient(from, "opt-out"));
    return report;
  }
  return std::nullopt;
}

// A bounce without report structure is recognized by at least two signs among: its sender (a
// mailer daemon), its subject, failure phrases in its text, and a returned message.
bool looks_like_bounce(const mime_content& mime, const readable_part& readable) {
  if (find_field(mime.top, "x-failed-recipients")) return true;
  int signs = 0;
  signs += is_daemon_sender(mime.top) ? 1 : 0;
  signs += has_bounce_subject(mime.top) ? 1 : 0;
  signs += contains_any(lower(std::string_view(readable.text).substr(0, 50000)), failure_phrases) ? 1 : 0;
  signs += (mime.has_original || readable.original) ? 1 : 0;
  return signs >= 2;
}

bounce_report heuristic_report_of(const mime_content& mime, const readable_part& readable) {
  bounce_report report;
  const fields* original = mime.has_original ? &mime.original : (readable.original ? &*readable.original : nullptr);
  auto excluded = make_exclusions(mime.top, original);
  report.recipients = recipients_from_text(readable.text, excluded, addresses_in(field_or_empty(mime.top, "x-failed-recipients")));
  if (report.recipients.empty() && original) {
    // Nothing named in the text: the returned message's To is who it could not reach.
    auto to = addresses_in(field_or_empty(*original, "to"));
    if (to.size() == 1 && !excluded.excluded(to.front(), false)) {
      bounce_recipient r;
      r.address = to.front();
      r.action = "failed";
      auto lines = split_lines(readable.text);
      r.diagnostic = join_lines(lines, 0, lines.size());
      complete_from_diagnostic(r);
      report.recipients.push_back(std::move(r));
    }
  }
  if (report.recipients.empty()) return {};
  report.kind = report_kind::delivery_failure;
  auto from = first_address(field_or_empty(mime.top, "from"));
  if (auto at = from.rfind('@'); at != std::string::npos) report.reporting_mta = from.substr(at + 1);
  if (original) fill_original(*original, report);
  return report;
}

bounce_report auto_reply_of(const mime_content& mime) {
  bounce_report report;
  report.kind = report_kind::auto_reply;
  auto from = first_address(field_or_empty(mime.top, "from"));
  if (!from.empty()) report.recipients.push_back(named_recipient(from, ""));
  if (mime.has_original) fill_original(mime.original, report);
  return report;
}

bounce_report parse(std::string_view raw) {
  auto mime = read_mime(raw);
  if (!mime) return {};
  auto readable = readable_text(*mime);
  bounce_report report;
  if (!mime->feedback_report.empty()) {
    report = feedback_report_of(*mime);
  } else if (!mime->delivery_status.empty()) {
    report = delivery_status_report_of(*mime, readable, mime->delivery_status, true);
  } else if (auto embedded = embedded_delivery_status(readable.text);
             !embedded.empty() && looks_like_bounce(*mime, readable)) {
    report = delivery_status_report_of(*mime, readable, embedded, false);
  } else if (auto ses = ses_notification(mime->texts)) {
    report = report_from_ses(*ses);
  } else if (auto legacy = legacy_feedback_of(*mime)) {
    report = std::move(*legacy);
  } else if (is_list_reply(mime->top, readable.text) ||
             (is_auto_reply(mime->top) && !is_daemon_sender(mime->top))) {
    report = auto_reply_of(*mime);
  } else if (looks_like_bounce(*mime, readable)) {
    report = heuristic_report_of(*mime, readable);
  }
  if (report.kind != report_kind::not_a_report && report.original_headers.empty()) {
    if (mime->has_original) fill_original(mime->original, report);
    else if (readable.original) fill_original(*readable.original, report);
  }
  finish(report);
  return report;
}

}  // namespace

std::string_view to_string(report_kind kind) {
  switch (kind) {
    case report_kind::not_a_report: return "not_a_report";
    case report_kind::delivery_failure: return "delivery_failure";
    case report_kind::feedback: return "feedback";
    case report_kind::auto_reply: return "auto_reply";
  }
  return "not_a_report";
}

bool is_failure_action(std::string_view action) {
  auto word = lower(action.substr(0, action.find_first_of(" (;")));
  return !(word == "delayed" || word == "delivered" || word == "relayed" || word == "expanded" ||
           word == "deliverable");
}

bounce_report parse_bounce(std::string_view raw_message) {
  try {
    return parse(raw_message);
  } catch (...) {  // bad_alloc, or a library's surprise: hostile mail must not take the caller down
    return {};
  }
}

}  // namespace petrel
