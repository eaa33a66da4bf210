// POST /v1/messages bodies: validation of the JSON (structured or raw), and the message
// record it becomes (built RFC 5322 content, recipients, metadata). Plain code: runs on the
// HTTP threads, unit-tested directly.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "config/config.hpp"
#include "net/mail/base64.hpp"  // decode_base64
#include "storage/records.hpp"

namespace petrel {

struct field_error {
  std::string field;   // JSON path: "to[2]", "from", "headers.X-Tag", "" for the body
  std::string detail;  // what is wrong, in a sentence
};

struct submission_rejection {
  int status = 400;  // 400, or 413 when the message exceeds max_message_bytes
  std::vector<field_error> errors;
};

// The submission names a stored template ("template_id", "template_version"; 0: the newest):
// the caller looks it up and parses again with it.
struct template_needed {
  id128 id;
  std::uint32_t version = 0;
};

using submission_result = std::variant<message_record, submission_rejection, template_needed>;

// Parses and validates a submission; on success the record has fresh ids, its content built
// (or the raw message normalized) and every recipient "queued" and due at now_ms. The tenant
// id is left empty for the tenant actor to fill.
// `stored`: the template the body names, looked up after a first call answered template_needed
// (nullptr then: there is no such template, a 400 naming template_id).
submission_result parse_submission(std::string_view body, const submission_settings& settings,
                                   std::int64_t now_ms, const template_record* stored = nullptr,
                                   bool looked_up = false);

// A message submitted over SMTP (the submission listener): the envelope as given in MAIL FROM
// and RCPT TO and the message as received; the checks and normalization of a raw submission
// (From header, lines, Bcc removed, Message-ID and Date added when missing).
submission_result parse_smtp_submission(const std::string& mail_from, const std::vector<std::string>& rcpt_to,
                                        std::string_view content, const submission_settings& settings,
                                        std::int64_t now_ms);

}  // namespace petrel
