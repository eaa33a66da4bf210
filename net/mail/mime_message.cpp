// Message building with GMime and raw message normalization (see mime_message.hpp).
#include "net/mail/mime_message.hpp"

#include <gmime/gmime.h>

#include "net/mail/gobject_ptr.hpp"

#include <algorithm>
#include <array>
#include <cstring>
#include <ctime>
#include <memory>
#include <mutex>

namespace petrel {

namespace {

std::string lower(std::string_view s) {
  std::string out(s);
  for (auto& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

bool is_ascii(std::string_view s) {
  return std::all_of(s.begin(), s.end(), [](char c) { return static_cast<unsigned char>(c) < 0x80; });
}

// Normalizes line endings of client text to LF; GMime writes CRLF on output.
std::string to_lf(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '\r') {
      out.push_back('\n');
      if (i + 1 < text.size() && text[i + 1] == '\n') ++i;
    } else {
      out.push_back(text[i]);
    }
  }
  return out;
}

GMimeObject* make_text_part(const char* subtype, const std::string& text) {
  auto* part = g_mime_text_part_new_with_subtype(subtype);
  auto content = to_lf(text);
  gptr<GMimeStream> stream(g_mime_stream_mem_new_with_buffer(content.data(), content.size()));
  gptr<GMimeDataWrapper> wrapper(
      g_mime_data_wrapper_new_with_stream(stream.get(), GMIME_CONTENT_ENCODING_DEFAULT));
  g_mime_part_set_content(GMIME_PART(part), wrapper.get());
  g_mime_text_part_set_charset(part, is_ascii(content) ? "us-ascii" : "utf-8");
  // 7-bit safe: quoted-printable or base64 where the text needs it, so neither 8BITMIME nor
  // long lines are ever required of the receiving server.
  auto encoding = g_mime_part_get_best_content_encoding(GMIME_PART(part),
                                                        GMIME_ENCODING_CONSTRAINT_7BIT);
  g_mime_part_set_content_encoding(GMIME_PART(part), encoding);
  return GMIME_OBJECT(part);
}

// A file part: base64 (lines of 76, 7-bit safe), its disposition with the file name (RFC 2231
// encoded by GMime when not ASCII, on Content-Type's name too for old readers), its Content-ID.
GMimeObject* make_attachment_part(const attachment_spec& a) {
  auto slash = a.content_type.find('/');
  auto type = slash == std::string::npos ? std::string("application") : a.content_type.substr(0, slash);
  auto subtype = slash == std::string::npos ? std::string("octet-stream") : a.content_type.substr(slash + 1);
  auto* part = g_mime_part_new_with_type(type.c_str(), subtype.c_str());
  gptr<GMimeStream> stream(g_mime_stream_mem_new_with_buffer(a.data.data(), a.data.size()));
  gptr<GMimeDataWrapper> wrapper(g_mime_data_wrapper_new_with_stream(stream.get(), GMIME_CONTENT_ENCODING_DEFAULT));
  g_mime_part_set_content(part, wrapper.get());
  g_mime_part_set_content_encoding(part, GMIME_CONTENT_ENCODING_BASE64);
  g_mime_object_set_disposition(GMIME_OBJECT(part), a.inline_part ? "inline" : "attachment");
  if (!a.filename.empty()) {
    g_mime_part_set_filename(part, a.filename.c_str());
    // RFC 2231 in UTF-8 for names that are not ASCII (GMime would pick the smallest charset).
    if (!is_ascii(a.filename)) {
      if (auto* disposition = g_mime_object_get_content_disposition(GMIME_OBJECT(part)))
        if (auto* p = g_mime_param_list_get_parameter(g_mime_content_disposition_get_parameters(disposition), "filename"))
          g_mime_param_set_charset(p, "utf-8");
      if (auto* type = g_mime_object_get_content_type(GMIME_OBJECT(part)))
        if (auto* p = g_mime_param_list_get_parameter(g_mime_content_type_get_parameters(type), "name"))
          g_mime_param_set_charset(p, "utf-8");
    }
  }
  if (!a.content_id.empty()) g_mime_part_set_content_id(part, a.content_id.c_str());
  return GMIME_OBJECT(part);
}

// Wraps body (its reference taken over) in a multipart of subtype with parts after it.
GMimeObject* wrap(GMimeObject* body, const char* subtype, const std::vector<const attachment_spec*>& parts) {
  if (parts.empty()) return body;
  auto* multipart = g_mime_multipart_new_with_subtype(subtype);
  if (std::string_view(subtype) == "related")  // RFC 2387: the root's type
    g_mime_object_set_content_type_parameter(GMIME_OBJECT(multipart), "type",
                                             GMIME_IS_MULTIPART(body) ? "multipart/alternative" : "text/html");
  g_mime_multipart_add(multipart, body);
  g_object_unref(body);
  for (const auto* a : parts) {
    gptr<GMimeObject> part(make_attachment_part(*a));
    g_mime_multipart_add(multipart, part.get());
  }
  return GMIME_OBJECT(multipart);
}

void add_mailboxes(GMimeMessage* message, GMimeAddressType type,
                   const std::vector<mailbox>& boxes) {
  for (const auto& box : boxes) {
    auto address = box.address();
    g_mime_message_add_mailbox(message, type,
                               box.display_name.empty() ? nullptr : box.display_name.c_str(),
                               address.c_str());
  }
}

std::string longest_line_problem(std::string_view content) {
  std::size_t line = 1, start = 0;
  for (std::size_t i = 0; i < content.size(); ++i) {
    if (content[i] == '\n') {
      auto length = i - start - (i > start && content[i - 1] == '\r' ? 1 : 0);
      if (length > max_line_octets)
        return "line " + std::to_string(line) + " is " + std::to_string(length) +
               " octets long (RFC 5322 allows 998)";
      start = i + 1;
      ++line;
    }
  }
  if (content.size() - start > max_line_octets)
    return "line " + std::to_string(line) + " is longer than 998 octets";
  return {};
}

}  // namespace

void mime_init() {
  static std::once_flag once;
  std::call_once(once, [] { g_mime_init(); });
}

std::string rfc5322_date(std::int64_t unix_ms) {
  std::time_t seconds = static_cast<std::time_t>(unix_ms / 1000);
  std::tm tm{};
  gmtime_r(&seconds, &tm);
  static constexpr std::array<const char*, 7> days = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
  static constexpr std::array<const char*, 12> months = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                                         "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
  char buf[64];
  std::snprintf(buf, sizeof buf, "%s, %02d %s %04d %02d:%02d:%02d +0000", days[tm.tm_wday],
                tm.tm_mday, months[tm.tm_mon], tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
  return buf;
}

bool is_valid_header_name(std::string_view name) {
  if (name.empty() || name.size() > 76) return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    auto u = static_cast<unsigned char>(c);
    return u >= 33 && u <= 126 && u != ':';
  });
}

bool is_reserved_header(std::string_view name) {
  static const std::array<const char*, 22> reserved = {
      "from", "sender", "to", "cc", "bcc", "reply-to", "subject", "date", "message-id",
      "mime-version", "content-type", "content-transfer-encoding", "content-disposition",
      "return-path", "received", "dkim-signature", "arc-seal", "arc-message-signature",
      "arc-authentication-results", "authentication-results", "resent-from", "delivered-to"};
  auto n = lower(name);
  return std::any_of(reserved.begin(), reserved.end(), [&](const char* r) { return n == r; });
}

parsed<built_message> build_message(const message_spec& spec) {
  mime_init();
  gptr<GMimeMessage> message(g_mime_message_new(FALSE));
  add_mailboxes(message.get(), GMIME_ADDRESS_TYPE_FROM, {spec.from});
  add_mailboxes(message.get(), GMIME_ADDRESS_TYPE_REPLY_TO, spec.reply_to);
  add_mailboxes(message.get(), GMIME_ADDRESS_TYPE_TO, spec.to);
  add_mailboxes(message.get(), GMIME_ADDRESS_TYPE_CC, spec.cc);
  g_mime_message_set_subject(message.get(), spec.subject.c_str(), "utf-8");
  GDateTime* date = g_date_time_new_from_unix_utc(spec.date_ms / 1000);
  g_mime_message_set_date(message.get(), date);
  g_date_time_unref(date);
  g_mime_message_set_message_id(message.get(), spec.message_id.c_str());
  for (const auto& [name, value] : spec.headers)
    g_mime_object_append_header(GMIME_OBJECT(message.get()), name.c_str(), value.c_str(),
                                "utf-8");

  GMimeObject* body = nullptr;
  if (spec.text && spec.html) {
    auto* alternative = g_mime_multipart_new_with_subtype("alternative");
    gptr<GMimeObject> text(make_text_part("plain", *spec.text));
    gptr<GMimeObject> html(make_text_part("html", *spec.html));
    g_mime_multipart_add(alternative, text.get());  // the multipart takes its own reference
    g_mime_multipart_add(alternative, html.get());
    body = GMIME_OBJECT(alternative);
  } else if (spec.html) {
    body = make_text_part("html", *spec.html);
  } else {
    body = make_text_part("plain", spec.text.value_or(std::string()));
  }
  std::vector<const attachment_spec*> related, mixed;
  for (const auto& a : spec.attachments)
    (a.inline_part && !a.content_id.empty() && spec.html ? related : mixed).push_back(&a);
  body = wrap(body, "related", related);
  body = wrap(body, "mixed", mixed);
  g_mime_message_set_mime_part(message.get(), body);
  g_object_unref(body);

  GMimeFormatOptions* options = g_mime_format_options_new();
  g_mime_format_options_set_newline_format(options, GMIME_NEWLINE_FORMAT_DOS);
  gptr<GMimeStream> out(g_mime_stream_mem_new());
  g_mime_object_write_to_stream(GMIME_OBJECT(message.get()), options, out.get());
  g_mime_format_options_free(options);
  GByteArray* bytes = g_mime_stream_mem_get_byte_array(GMIME_STREAM_MEM(out.get()));

  built_message result;
  result.content.assign(reinterpret_cast<const char*>(bytes->data), bytes->len);
  result.message_id_header = "<" + spec.message_id + ">";
  if (auto problem = longest_line_problem(result.content); !problem.empty())
    return parsed<built_message>::failure("the built message has a header that cannot be folded: " +
                                          problem);
  return result;
}

parsed<raw_message> prepare_raw_message(std::string_view bytes, const std::string& message_id,
                                        std::int64_t date_ms) {
  using result = parsed<raw_message>;
  if (bytes.find('\0') != std::string_view::npos) return result::failure("the message contains NUL octets");

  // Normalize line endings first: CRLF stays, bare CR and bare LF become CRLF.
  std::string content;
  content.reserve(bytes.size() + bytes.size() / 32 + 128);
  for (std::size_t i = 0; i < bytes.size(); ++i) {
    char c = bytes[i];
    if (c == '\r') {
      content += "\r\n";
      if (i + 1 < bytes.size() && bytes[i + 1] == '\n') ++i;
    } else if (c == '\n') {
      content += "\r\n";
    } else {
      content.push_back(c);
    }
  }
  if (auto problem = longest_line_problem(content); !problem.empty()) return result::failure(problem);

  // Walk the header section: field lines and their folded continuations, up to the empty line.
  raw_message out;
  bool has_message_id = false, has_date = false, has_from = false;
  std::string* current = nullptr;  // value being unfolded, for the fields we keep
  std::size_t pos = 0, line_number = 0, header_count = 0;
  bool ended = false;
  // Bcc fields (with their continuation lines) are cut from what is sent: the recipients of
  // the envelope must not learn of each other (RFC 5322 3.6.3 leaves it to the sender).
  std::vector<std::pair<std::size_t, std::size_t>> bcc_ranges;
  bool in_bcc = false;
  while (pos < content.size()) {
    auto eol = content.find("\r\n", pos);
    if (eol == std::string::npos) eol = content.size();
    std::string_view line(content.data() + pos, eol - pos);
    auto line_start = pos;
    ++line_number;
    pos = std::min(eol + 2, content.size());
    if (line.empty()) {
      ended = true;
      break;
    }
    if (line.front() == ' ' || line.front() == '\t') {
      if (header_count == 0)
        return result::failure("line 1 starts with white space: not a header field");
      if (current) *current += std::string(line);
      if (in_bcc) bcc_ranges.back().second = pos;
      continue;
    }
    in_bcc = false;
    auto colon = line.find(':');
    if (colon == std::string_view::npos || !is_valid_header_name(line.substr(0, colon))) {
      if (header_count == 0)
        return result::failure("not an RFC 5322 message: line 1 is not a header field");
      return result::failure("line " + std::to_string(line_number) +
                             " is neither a header field nor a continuation, and no empty line "
                             "separates the headers from the body");
    }
    ++header_count;
    auto name = lower(line.substr(0, colon));
    auto value = std::string(line.substr(colon + 1));
    current = nullptr;
    if (name == "message-id") {
      has_message_id = true;
      out.message_id_header = value;
      current = &out.message_id_header;
    } else if (name == "date") {
      has_date = true;
    } else if (name == "from") {
      has_from = true;
      out.from_header = value;
      current = &out.from_header;
    } else if (name == "subject") {
      out.subject = value;
      current = &out.subject;
    } else if (name == "bcc") {
      in_bcc = true;
      bcc_ranges.emplace_back(line_start, pos);
    }
  }
  if (header_count == 0) return result::failure("the message has no header fields");
  if (!ended && pos < content.size()) return result::failure("the header section does not end");
  if (!has_from) return result::failure("the message has no From header field (RFC 5322 3.6)");

  auto trim = [](std::string& s) {
    auto b = s.find_first_not_of(" \t");
    auto e = s.find_last_not_of(" \t");
    s = b == std::string::npos ? std::string() : s.substr(b, e - b + 1);
  };
  trim(out.message_id_header);
  trim(out.subject);
  trim(out.from_header);

  for (auto it = bcc_ranges.rbegin(); it != bcc_ranges.rend(); ++it)
    content.erase(it->first, it->second - it->first);

  std::string added;
  if (!has_message_id) {
    out.message_id_header = "<" + message_id + ">";
    added += "Message-ID: " + out.message_id_header + "\r\n";
  }
  if (!has_date) added += "Date: " + rfc5322_date(date_ms) + "\r\n";
  // SMTP needs the message to end with a line break.
  if (content.size() < 2 || content.compare(content.size() - 2, 2, "\r\n") != 0)
    content += "\r\n";
  out.content = added + content;
  return out;
}

}  // namespace petrel
