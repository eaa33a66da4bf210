// Building the RFC 5322 / MIME message Petrel sends, from a structured submission (written
// directly: folded headers, 7-bit safe transfer encodings, multipart/alternative, related and
// mixed; GMime's encoders make the RFC 2047 encoded words of UTF-8 header text), and checking
// and normalizing a raw message a client submitted whole.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "config/units.hpp"
#include "net/mail/email_address.hpp"

namespace petrel {

// RFC 5322 2.1.1: a line is at most 998 octets, CRLF excluded.
constexpr std::size_t max_line_octets = 998;

// Calls g_mime_init() once; every function below does this itself.
void mime_init();

// A file sent with the message (RFC 2183). Inline parts with a content_id are shown where the
// HTML names them ("cid:logo"); the others are listed as attachments.
struct attachment_spec {
  std::string filename;      // UTF-8; written with RFC 2231 encoding when not ASCII
  std::string content_type;  // "type/subtype", lower case
  std::string data;          // the bytes
  bool inline_part = false;  // Content-Disposition: inline (else attachment)
  std::string content_id;    // without angle brackets; "" none
};

struct message_spec {
  mailbox from;
  std::vector<mailbox> to;
  std::vector<mailbox> cc;  // bcc recipients never appear in the message
  std::vector<mailbox> reply_to;
  std::string subject;  // UTF-8
  std::optional<std::string> text;
  std::optional<std::string> html;
  std::vector<std::pair<std::string, std::string>> headers;  // validated extra headers
  // Structure: the body (text, html, or multipart/alternative of both); inline parts with a
  // content_id wrap it in multipart/related; other attachments wrap that in multipart/mixed.
  std::vector<attachment_spec> attachments;
  std::string message_id;  // "id@domain", without angle brackets
  std::int64_t date_ms = 0;
};

struct built_message {
  std::string content;            // CRLF line endings, 7-bit clean
  std::string message_id_header;  // "<id@domain>"
};

// Builds the message. Fails only for limits the caller could not check beforehand (a header
// line that cannot be folded under 998 octets).
parsed<built_message> build_message(const message_spec& spec);

// Header names a client may not set through "headers": Petrel writes them itself, or they
// belong to the transport (RFC 5321 4.4 trace fields, authentication results).
bool is_reserved_header(std::string_view name);
// RFC 5322 3.6.8 field-name: printable ASCII except ':' (and no spaces).
bool is_valid_header_name(std::string_view name);

struct raw_message {
  std::string content;            // CRLF line endings; Message-ID/Date added if missing
  std::string message_id_header;  // "<...>" as found or added
  std::string subject;            // the Subject header's raw value, unfolded
  std::string from_header;        // the From header's raw value, unfolded
};

// Checks that bytes are an RFC 5322 message (header fields, then an optional body), that no
// line exceeds 998 octets and no NUL is present; turns bare LF/CR into CRLF; removes Bcc
// fields; adds Message-ID (with message_id, "id@domain") and Date when absent.
parsed<raw_message> prepare_raw_message(std::string_view bytes, const std::string& message_id,
                                        std::int64_t date_ms);

// RFC 5322 date-time in UTC, e.g. "Sun, 29 Nov 2026 01:09:39 +0000".
std::string rfc5322_date(std::int64_t unix_ms);

}  // namespace petrel
