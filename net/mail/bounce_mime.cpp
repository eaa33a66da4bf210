// Bounce parsing, the MIME level (see bounce_reading.hpp): GMime splits the structure; the
// parts that matter are collected into a mime_content, every stage bounded.
#include "net/mail/bounce_reading.hpp"

#include <gmime/gmime.h>
#include <iconv.h>

#include "net/mail/gobject_ptr.hpp"

#include <algorithm>
#include <array>
#include <cstring>
#include <memory>
#include <optional>

#include "net/mail/bounce.hpp"
#include "net/mail/mime_message.hpp"

namespace petrel::bounce_reading {

// ---------------------------------------------------------------------------------------------
// MIME structure, read with GMime.

namespace {

fields header_fields_of(GMimeObject* object) {
  fields out;
  GMimeHeaderList* list = g_mime_object_get_header_list(object);
  if (!list) return out;
  int count = std::min(g_mime_header_list_get_count(list), static_cast<int>(max_header_fields));
  for (int i = 0; i < count; ++i) {
    GMimeHeader* header = g_mime_header_list_get_header_at(list, i);
    const char* name = header ? g_mime_header_get_name(header) : nullptr;
    const char* raw = header ? g_mime_header_get_raw_value(header) : nullptr;
    if (!name || !raw) continue;
    std::string value;
    for (std::string_view rest = raw; !rest.empty() && value.size() < max_field_octets;) {
      auto end = rest.find('\n');
      auto piece = trim(rest.substr(0, end));
      if (!piece.empty()) value += (value.empty() ? "" : " ") + std::string(piece);
      if (end == std::string_view::npos) break;
      rest.remove_prefix(end + 1);
    }
    out.push_back({lower(name), value.substr(0, max_field_octets)});
  }
  return out;
}

std::string media_type_of(GMimeObject* object) {
  GMimeContentType* type = g_mime_object_get_content_type(object);
  if (!type) return "text/plain";
  const char* media = g_mime_content_type_get_media_type(type);
  const char* subtype = g_mime_content_type_get_media_subtype(type);
  return lower(std::string(media ? media : "text") + "/" + (subtype ? subtype : "plain"));
}

// ISO-2022-JP announces itself: its kanji and kana come between escape sequences (ESC $ B,
// ESC $ @, ESC ( J; RFC 1468). Japanese bounces often carry it without declaring a charset.
bool looks_like_iso2022jp(std::string_view text) {
  for (auto pos = text.find('\x1b'); pos != std::string_view::npos && pos + 2 < text.size(); pos = text.find('\x1b', pos + 1)) {
    auto seq = text.substr(pos + 1, 2);
    if (seq == "$B" || seq == "$@" || seq == "(J" || seq == "$(") return true;
  }
  return false;
}

// text converted from a charset to UTF-8 with iconv; empty if the charset is unknown or the
// text is not in it.
std::string convert_to_utf8(std::string_view text, const char* charset) {
  iconv_t cd = iconv_open("UTF-8", charset);
  if (cd == reinterpret_cast<iconv_t>(-1)) return {};
  std::string out(text.size() * 3 + 16, '\0');
  auto* in = const_cast<char*>(text.data());
  std::size_t in_left = text.size();
  char* to = out.data();
  std::size_t out_left = out.size();
  auto result = iconv(cd, &in, &in_left, &to, &out_left);
  iconv_close(cd);
  if (result == static_cast<std::size_t>(-1)) return {};
  out.resize(out.size() - out_left);
  return out;
}

bool declares_charset(GMimePart* part) {
  GMimeContentType* type = g_mime_object_get_content_type(GMIME_OBJECT(part));
  const char* charset = type ? g_mime_content_type_get_parameter(type, "charset") : nullptr;
  if (!charset) return false;
  std::string name = lower(charset);
  return name != "us-ascii" && name != "ascii";
}

// The decoded content of a leaf part; text parts converted to UTF-8 from their charset, and
// undeclared ISO-2022-JP recognized by its escape sequences.
std::string part_content(GMimePart* part) {
  if (GMIME_IS_TEXT_PART(part)) {
    if (char* text = g_mime_text_part_get_text(GMIME_TEXT_PART(part))) {
      std::string out(text, std::min(std::strlen(text), max_part_octets));
      g_free(text);
      if (!declares_charset(part) && looks_like_iso2022jp(out))
        if (auto converted = convert_to_utf8(out, "ISO-2022-JP"); !converted.empty()) return converted;
      return out;
    }
  }
  GMimeDataWrapper* wrapper = g_mime_part_get_content(part);
  if (!wrapper) return {};
  gptr<GMimeStream> stream(g_mime_stream_mem_new());
  g_mime_data_wrapper_write_to_stream(wrapper, stream.get());
  GByteArray* bytes = g_mime_stream_mem_get_byte_array(GMIME_STREAM_MEM(stream.get()));
  if (!bytes) return {};
  return std::string(reinterpret_cast<const char*>(bytes->data), std::min<std::size_t>(bytes->len, max_part_octets));
}

// A text part that is itself a returned message: it starts with header fields.
bool starts_with_headers(std::string_view text) {
  std::size_t pos = 0;
  while (pos < text.size() && (text[pos] == '\n' || text[pos] == '\r')) ++pos;
  auto block = parse_fields(text, pos);
  if (block.size() < 3) return false;
  static const std::array<std::string_view, 6> typical = {"received", "from", "to", "subject", "message-id", "return-path"};
  return std::count_if(block.begin(), block.end(), [](const field& f) {
           return std::find(typical.begin(), typical.end(), f.name) != typical.end();
         }) >= 2;
}

void take_original(mime_content& out, fields headers) {
  if (out.has_original) return;
  out.original = std::move(headers);
  out.has_original = true;
}

void walk(GMimeObject* object, int depth, mime_content& out);

// The boundary a multipart body really uses when its Content-Type names another one (it
// happens): the first "--token" line that comes back later. RFC 2046 5.1.1: at most 70
// characters, no quotes.
std::string guess_boundary(std::string_view body) {
  for (auto line : split_lines(body.substr(0, 64 * 1024))) {
    line = trim(line);
    if (line.size() < 4 || line.size() > 72 || !starts_with(line, "--")) continue;
    auto boundary = line.substr(2);
    if (boundary.size() > 2 && boundary.substr(boundary.size() - 2) == "--") continue;
    if (std::any_of(boundary.begin(), boundary.end(), [](char c) { return is_space(c) || c == '"' || c == '\\'; }))
      continue;
    auto first = body.find(line);
    if (body.find("\n" + std::string(line), first + line.size()) != std::string_view::npos) return std::string(boundary);
  }
  return {};
}

// A multipart whose parts GMime could not find: its whole body is the prologue. Read again with
// the boundary it really uses, or else as text (once per message, so hostile nesting cannot
// multiply the work).
void walk_lost_parts(GMimeMultipart* multipart, int depth, mime_content& out) {
  const char* prologue = g_mime_multipart_get_prologue(multipart);
  if (!prologue || out.reparsed) return;
  out.reparsed = true;
  std::string_view body(prologue, std::min(std::strlen(prologue), max_bounce_message_octets));
  if (auto boundary = guess_boundary(body); !boundary.empty()) {
    std::string text = "Content-Type: multipart/mixed; boundary=\"" + boundary + "\"\n\n" + std::string(body);
    gptr<GMimeStream> stream(g_mime_stream_mem_new_with_buffer(text.data(), text.size()));
    gptr<GMimeParser> parser(g_mime_parser_new_with_stream(stream.get()));
    gptr<GMimeObject> part(g_mime_parser_construct_part(parser.get(), nullptr));
    if (part && GMIME_IS_MULTIPART(part.get()) && g_mime_multipart_get_count(GMIME_MULTIPART(part.get())) > 0) {
      walk(part.get(), depth + 1, out);
      return;
    }
  }
  if (!out.has_original) out.texts.emplace_back(body.substr(0, max_part_octets));
}

void walk(GMimeObject* object, int depth, mime_content& out) {
  if (!object || depth > max_mime_depth || ++out.entities > max_mime_entities) return;
  auto media = media_type_of(object);
  if (GMIME_IS_MULTIPART(object)) {
    if (media == "multipart/report" && out.report_type.empty()) {
      const char* type = g_mime_object_get_content_type_parameter(object, "report-type");
      if (type) out.report_type = lower(type);
    }
    auto* multipart = GMIME_MULTIPART(object);
    int count = g_mime_multipart_get_count(multipart);
    if (count == 0) walk_lost_parts(multipart, depth, out);
    for (int i = 0; i < count; ++i) walk(g_mime_multipart_get_part(multipart, i), depth + 1, out);
    return;
  }
  if (GMIME_IS_MESSAGE_PART(object)) {
    GMimeMessage* inner = g_mime_message_part_get_message(GMIME_MESSAGE_PART(object));
    if (!inner) return;
    GMimeObject* body = g_mime_message_get_mime_part(inner);
    bool wrapped_report = body && out.delivery_status.empty() && out.feedback_report.empty() &&
                          media_type_of(body) == "multipart/report";
    if (wrapped_report) {  // a bounce forwarded as an attachment: read the report inside
      walk(body, depth + 1, out);
      return;
    }
    take_original(out, header_fields_of(GMIME_OBJECT(inner)));
    return;
  }
  if (!GMIME_IS_PART(object)) return;
  auto* part = GMIME_PART(object);
  if (media == "message/delivery-status" || media == "message/global-delivery-status") {
    out.delivery_status += part_content(part) + "\n\n";
  } else if (media == "message/feedback-report") {
    out.feedback_report += part_content(part) + "\n\n";
  } else if (media == "text/rfc822-headers" || media == "text/rfc822-header" ||
             media == "message/rfc822-headers" || media == "message/global-headers" ||
             media == "message/rfc822" || media == "message/global") {
    auto content = part_content(part);
    std::size_t pos = 0;
    while (pos < content.size() && (content[pos] == '\n' || content[pos] == '\r')) ++pos;
    take_original(out, parse_fields(content, pos));
  } else if (starts_with(media, "text/") && !out.has_original) {
    auto content = part_content(part);
    if (starts_with_headers(content)) {
      std::size_t pos = 0;
      while (pos < content.size() && (content[pos] == '\n' || content[pos] == '\r')) ++pos;
      take_original(out, parse_fields(content, pos));
    } else if (media == "text/html") {
      out.htmls.push_back(html_to_text(content));
    } else {
      out.texts.push_back(std::move(content));
    }
  }
}

// What GMime may read of the input: up to max_bounce_message_octets, before the
// (max_content_type_fields + 1)th Content-Type field, without an mbox "From " line.
std::string_view bounded_input(std::string_view raw) {
  raw = raw.substr(0, max_bounce_message_octets);
  if (starts_with(raw, "From ")) {
    auto end = raw.find('\n');
    raw.remove_prefix(end == std::string_view::npos ? raw.size() : end + 1);
  }
  std::size_t seen = 0;
  for (std::size_t pos = raw.find(':'); pos != std::string_view::npos; pos = raw.find(':', pos + 1)) {
    if (pos < 12) continue;
    auto name = raw.substr(pos - 12, 12);
    if (lower(name) == "content-type" && (pos == 12 || raw[pos - 13] == '\n') && ++seen > max_content_type_fields)
      return raw.substr(0, pos - 12);
  }
  return raw;
}

}  // namespace

std::optional<mime_content> read_mime(std::string_view raw) {
  mime_init();
  auto input = bounded_input(raw);
  gptr<GMimeStream> stream(g_mime_stream_mem_new_with_buffer(input.data(), input.size()));
  gptr<GMimeParser> parser(g_mime_parser_new_with_stream(stream.get()));
  g_mime_parser_set_format(parser.get(), GMIME_FORMAT_MESSAGE);
  gptr<GMimeMessage> message(g_mime_parser_construct_message(parser.get(), nullptr));
  if (!message) return std::nullopt;
  mime_content out;
  out.top = header_fields_of(GMIME_OBJECT(message.get()));
  walk(g_mime_message_get_mime_part(message.get()), 0, out);
  return out;
}

}  // namespace petrel::bounce_reading
