// Bounce, feedback report and auto-reply parsing (see bounce_parser.hpp). GMime splits the MIME
// structure; the report fields (RFC 3464, RFC 5965) and the human-readable text of
// non-standard bounces are read by the plain code below, each step bounded.
#include "net/mail/bounce_parser.hpp"

#include <gmime/gmime.h>

#include <boost/json/parse.hpp>
#include <boost/json/value.hpp>

#include <algorithm>
#include <array>
#include <cstring>
#include <memory>
#include <optional>

#include "net/mail/bounce.hpp"
#include "net/mail/mime_message.hpp"

namespace petrel {

namespace {

// ---------------------------------------------------------------------------------------------
// Limits. Bounce mail is hostile input: each stage reads a bounded amount.

// GMime's parser recurses once per nested MIME entity and tests every body line against every
// open boundary: the input is cut before the 201st Content-Type field, which bounds both (a real
// bounce has a handful of entities).
constexpr std::size_t max_content_type_fields = 200;
constexpr std::size_t max_mime_entities = 200;
constexpr int max_mime_depth = 12;
constexpr std::size_t max_part_octets = 1024 * 1024;             // decoded text of one part
constexpr std::size_t max_scanned_text_octets = 256 * 1024;      // human-readable text read
constexpr std::size_t max_scanned_lines = 5000;
constexpr std::size_t max_scanned_line_octets = 2000;            // longer lines are cut
constexpr std::size_t max_header_fields = 500;                   // per header block
constexpr std::size_t max_field_octets = 8 * 1024;               // per unfolded field value
constexpr std::size_t max_recipient_block_lines = 40;            // text read per recipient
constexpr std::size_t max_json_octets = 1024 * 1024;             // an Amazon SES notification
constexpr std::size_t max_address_octets = 254;                  // RFC 5321 4.5.3.1.3

// ---------------------------------------------------------------------------------------------
// Text helpers.

char lower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c + 32) : c; }

std::string lower(std::string_view s) {
  std::string out(s);
  for (auto& c : out) c = lower(c);
  return out;
}

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }
bool is_digit(char c) { return c >= '0' && c <= '9'; }
bool is_alpha(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }

std::string_view trim(std::string_view s) {
  while (!s.empty() && is_space(s.front())) s.remove_prefix(1);
  while (!s.empty() && is_space(s.back())) s.remove_suffix(1);
  return s;
}

bool starts_with(std::string_view s, std::string_view prefix) {
  return s.size() >= prefix.size() && s.substr(0, prefix.size()) == prefix;
}

// `lowered` must already be lower case; each needle is lower case.
template <std::size_t N>
bool contains_any(std::string_view lowered, const std::array<std::string_view, N>& needles) {
  return std::any_of(needles.begin(), needles.end(),
                     [&](std::string_view n) { return lowered.find(n) != std::string_view::npos; });
}

// Valid UTF-8 without control characters (tabs and line breaks become spaces, runs of spaces
// collapse), at most max_octets long, cut on a character boundary: safe for logs, JSON events
// and the store whatever the bounce contained.
std::string clean_text(std::string_view text, std::size_t max_octets = max_field_octets) {
  std::string out;
  out.reserve(std::min(text.size(), max_octets));
  auto push = [&](std::string_view bytes) {
    if (out.size() + bytes.size() > max_octets) return false;
    out.append(bytes);
    return true;
  };
  for (std::size_t i = 0; i < text.size();) {
    auto c = static_cast<unsigned char>(text[i]);
    if (c < 0x80) {
      char ch = (c < 0x20 || c == 0x7f) ? ' ' : static_cast<char>(c);
      if (ch == ' ' && (out.empty() || out.back() == ' ')) { ++i; continue; }
      if (!push(std::string_view(&ch, 1))) break;
      ++i;
      continue;
    }
    std::size_t length = c >= 0xf0 && c <= 0xf4 ? 4 : c >= 0xe0 ? 3 : c >= 0xc2 && c <= 0xdf ? 2 : 0;
    bool valid = length > 0 && i + length <= text.size();
    for (std::size_t k = 1; valid && k < length; ++k)
      valid = (static_cast<unsigned char>(text[i + k]) & 0xc0) == 0x80;
    if (valid && length == 3) {  // no overlong forms, no surrogates
      auto c1 = static_cast<unsigned char>(text[i + 1]);
      valid = !(c == 0xe0 && c1 < 0xa0) && !(c == 0xed && c1 >= 0xa0);
    }
    if (valid && length == 4) {
      auto c1 = static_cast<unsigned char>(text[i + 1]);
      valid = !(c == 0xf0 && c1 < 0x90) && !(c == 0xf4 && c1 >= 0x90);
    }
    if (!valid) {
      if (!push("?")) break;
      ++i;
      continue;
    }
    if (!push(text.substr(i, length))) break;
    i += length;
  }
  while (!out.empty() && out.back() == ' ') out.pop_back();
  return out;
}

// Lines without their CR, each cut at max_scanned_line_octets, at most max_scanned_lines.
std::vector<std::string_view> split_lines(std::string_view text) {
  std::vector<std::string_view> lines;
  std::size_t pos = 0;
  while (pos < text.size() && lines.size() < max_scanned_lines) {
    auto end = text.find('\n', pos);
    if (end == std::string_view::npos) end = text.size();
    auto line = text.substr(pos, end - pos);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    lines.push_back(line.substr(0, max_scanned_line_octets));
    pos = end + 1;
  }
  return lines;
}

// A line of a forwarded bounce without its "> " quoting. Sendmail transcript lines (">>> DATA",
// "<<< 550 ...") keep their arrows: they say which command failed.
std::string_view unquote(std::string_view line) {
  static const std::array<std::string_view, 7> verbs = {"data", "rcpt", "mail", "helo", "ehlo", "quit", "rset"};
  for (int depth = 0; depth < 8 && !line.empty() && line.front() == '>'; ++depth) {
    if (starts_with(line, ">>> ")) {
      auto verb = lower(line.substr(4, 4));
      if (std::find(verbs.begin(), verbs.end(), verb) != verbs.end()) return line;
    }
    line.remove_prefix(1);
    if (!line.empty() && line.front() == ' ') line.remove_prefix(1);
  }
  return line;
}

// Removes a leading "type;" from report fields: "rfc822; a@b", "smtp; 550 ...", "dns; mx".
std::string_view strip_type_prefix(std::string_view value) {
  value = trim(value);
  auto semicolon = value.find(';');
  if (semicolon == std::string_view::npos || semicolon > 20) return value;
  auto type = value.substr(0, semicolon);
  bool token = std::all_of(type.begin(), type.end(), [](char c) {
    return is_alpha(c) || is_digit(c) || c == '-' || c == '_' || c == '.';
  });
  return token ? trim(value.substr(semicolon + 1)) : value;
}

// A crude reading of HTML as text, for bounces that come as HTML only: tags dropped, block ends
// made line breaks, the few entities that matter decoded.
std::string html_to_text(std::string_view html) {
  std::string out;
  out.reserve(html.size());
  for (std::size_t i = 0; i < html.size(); ++i) {
    char c = html[i];
    if (c == '<') {
      auto close = html.find('>', i);
      if (close == std::string_view::npos) break;
      auto tag = lower(html.substr(i + 1, std::min<std::size_t>(close - i - 1, 8)));
      if (starts_with(tag, "br") || starts_with(tag, "/p") || starts_with(tag, "/div") ||
          starts_with(tag, "/tr") || starts_with(tag, "/li") || starts_with(tag, "p") ||
          starts_with(tag, "/h"))
        out.push_back('\n');
      if (starts_with(tag, "/td")) out.push_back(' ');
      i = close;
    } else if (c == '&') {
      static const std::array<std::pair<std::string_view, char>, 6> entities = {
          {{"&nbsp;", ' '}, {"&lt;", '<'}, {"&gt;", '>'}, {"&amp;", '&'}, {"&quot;", '"'}, {"&#39;", '\''}}};
      bool done = false;
      for (const auto& [name, value] : entities) {
        if (html.substr(i, name.size()) == name) {
          out.push_back(value);
          i += name.size() - 1;
          done = true;
          break;
        }
      }
      if (!done) out.push_back(c);
    } else {
      out.push_back(c);
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Header-style field blocks: message headers, DSN and ARF report fields.

struct field {
  std::string name;   // lower case
  std::string value;  // unfolded, trimmed, at most max_field_octets
};
using fields = std::vector<field>;

const std::string* find_field(const fields& block, std::string_view name) {
  for (const auto& f : block)
    if (f.name == name) return &f.value;
  return nullptr;
}

std::string field_or_empty(const fields& block, std::string_view name) {
  auto* value = find_field(block, name);
  return value ? *value : std::string();
}

// "Name:" with a printable name of at most 76 characters (RFC 5322 3.6.8 field-name; whitespace
// before the colon is tolerated as RFC 822 allowed it). Returns the name's length or 0.
std::size_t header_name_length(std::string_view line) {
  std::size_t i = 0;
  while (i < line.size() && i < 77) {
    auto c = static_cast<unsigned char>(line[i]);
    if (c == ':') break;
    if (c <= 32 || c >= 127) break;
    ++i;
  }
  std::size_t name_length = i;
  while (i < line.size() && (line[i] == ' ' || line[i] == '\t') && i < 80) ++i;
  if (name_length == 0 || name_length > 76 || i >= line.size() || line[i] != ':') return 0;
  return name_length;
}

// Reads "Name: value" lines with their folded continuations from pos up to an empty line (which
// is consumed) or a line that is no field (which is not); pos moves past what was read.
fields parse_fields(std::string_view text, std::size_t& pos) {
  fields out;
  while (pos < text.size()) {
    auto end = text.find('\n', pos);
    if (end == std::string_view::npos) end = text.size();
    auto line = text.substr(pos, end - pos);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (trim(line).empty()) {
      pos = std::min(end + 1, text.size());
      break;
    }
    bool continuation = line[0] == ' ' || line[0] == '\t';
    if (continuation && !out.empty()) {
      auto& value = out.back().value;
      if (value.size() < max_field_octets) {
        value += ' ';
        value += trim(line).substr(0, max_field_octets - value.size());
      }
    } else if (auto name_length = header_name_length(line); name_length > 0) {
      if (out.size() >= max_header_fields) {
        pos = end + 1;
        continue;
      }
      auto colon = line.find(':', name_length);
      out.push_back({lower(line.substr(0, name_length)),
                     std::string(trim(line.substr(colon + 1)).substr(0, max_field_octets))});
    } else {
      break;
    }
    pos = end + 1;
  }
  return out;
}

bool looks_like_header_line(std::string_view line) { return header_name_length(line) > 0; }

// ---------------------------------------------------------------------------------------------
// Addresses found in free text.

bool is_local_char(unsigned char c) {
  if (is_alpha(static_cast<char>(c)) || is_digit(static_cast<char>(c))) return true;
  static constexpr std::string_view specials = ".!#$%&'*+-/=?^_`{|}~";
  return specials.find(static_cast<char>(c)) != std::string_view::npos;
}

bool is_domain_char(unsigned char c) {
  return is_alpha(static_cast<char>(c)) || is_digit(static_cast<char>(c)) || c == '-' || c == '.' || c >= 0x80;
}

// A host name with at least two labels and a top label that is not all digits.
bool plausible_domain(std::string_view domain) {
  if (domain.empty() || domain.size() > 253 || domain.find('.') == std::string_view::npos) return false;
  std::size_t start = 0;
  while (start <= domain.size()) {
    auto dot = domain.find('.', start);
    auto label = domain.substr(start, dot == std::string_view::npos ? std::string_view::npos : dot - start);
    if (label.empty() || label.size() > 63 || label.front() == '-') return false;
    if (dot == std::string_view::npos) {
      return std::any_of(label.begin(), label.end(), [](char c) { return !is_digit(c); });
    }
    start = dot + 1;
  }
  return false;
}

// local@domain with the domain lower-cased; brackets, "mailto:" and spaces removed.
std::string normalize_address(std::string_view text) {
  text = trim(text);
  while (!text.empty() && (text.front() == '<' || text.front() == '(' || text.front() == '[')) text.remove_prefix(1);
  while (!text.empty() && (text.back() == '>' || text.back() == ')' || text.back() == ']' ||
                           text.back() == '.' || text.back() == ',' || text.back() == ';'))
    text.remove_suffix(1);
  text = trim(text);
  if (lower(text.substr(0, 7)) == "mailto:") text.remove_prefix(7);
  if (text.size() > max_address_octets) return {};
  auto at = text.rfind('@');
  if (at == std::string_view::npos) return std::string(text);
  return std::string(text.substr(0, at + 1)) + lower(text.substr(at + 1));
}

struct address_mention {
  std::string address;  // normalized
  std::size_t begin = 0, end = 0;  // in the line searched
};

// Every plausible mailbox address in a line of text, left to right. Words that are URLs are
// skipped (unsubscribe links carry addresses in their query strings).
std::vector<address_mention> find_addresses(std::string_view line) {
  std::vector<address_mention> out;
  for (std::size_t at = line.find('@'); at != std::string_view::npos; at = line.find('@', at + 1)) {
    std::size_t begin = at;
    while (begin > 0 && is_local_char(static_cast<unsigned char>(line[begin - 1])) && at - begin < 64) --begin;
    std::size_t end = at + 1;
    while (end < line.size() && is_domain_char(static_cast<unsigned char>(line[end])) && end - at < 254) ++end;
    while (begin < at && line[begin] == '.') ++begin;
    while (end > at + 1 && (line[end - 1] == '.' || line[end - 1] == '-')) --end;
    if (begin == at || end == at + 1) continue;
    auto domain = line.substr(at + 1, end - at - 1);
    if (!plausible_domain(domain)) continue;
    std::size_t word_begin = begin;
    while (word_begin > 0 && !is_space(line[word_begin - 1])) --word_begin;
    if (line.substr(word_begin, end - word_begin).find("://") != std::string_view::npos) continue;
    out.push_back({normalize_address(line.substr(begin, end - begin)), begin, end});
  }
  return out;
}

std::vector<std::string> addresses_in(std::string_view text) {
  std::vector<std::string> out;
  for (auto& mention : find_addresses(text.substr(0, max_field_octets))) out.push_back(std::move(mention.address));
  return out;
}

std::string first_address(std::string_view text) {
  auto found = addresses_in(text);
  return found.empty() ? std::string() : found.front();
}

std::string local_part(std::string_view address) {
  auto at = address.rfind('@');
  return lower(address.substr(0, at == std::string_view::npos ? address.size() : at));
}

bool same_address(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) { return lower(x) == lower(y); });
}

// ---------------------------------------------------------------------------------------------
// SMTP details in diagnostic text.

// The first SMTP reply code in text: three digits (2xx to 5xx) standing alone, followed by a
// space, '-' or the end, not part of a dotted number, a time or a date.
int find_reply_code(std::string_view text) {
  for (std::size_t i = 0; i + 3 <= text.size(); ++i) {
    char c = text[i];
    if (c != '2' && c != '4' && c != '5') continue;
    if (!is_digit(text[i + 1]) || !is_digit(text[i + 2])) continue;
    if (i > 0) {
      char before = text[i - 1];
      if (!(is_space(before) || before == ':' || before == '(' || before == '[' || before == '"' || before == '<' || before == ';'))
        continue;
    }
    std::size_t after = i + 3;
    if (after < text.size() && !(text[after] == ' ' || text[after] == '-' || text[after] == '\t' || text[after] == ')'))
      continue;
    if (after + 1 < text.size() && text[after] == '-' && is_digit(text[after + 1]) &&
        !(after + 2 < text.size() && text[after + 2] == '.'))
      continue;  // "550-1234" is no reply, "550-5.1.1" is
    int code = (c - '0') * 100 + (text[i + 1] - '0') * 10 + (text[i + 2] - '0');
    if (code % 100 > 59) continue;  // reply codes are x0y..x5y (RFC 5321 4.2.1)
    if (c == '2' && i > 0) continue;  // in a failure's text a 2xx is a transcript line or a count
    return code;
  }
  return 0;
}

// The SMTP command a failure answered, as the report tells it: "after RCPT TO:" (Exim), "in
// reply to end of DATA command" (Postfix), ">>> DATA" (Sendmail transcripts), "SMTP command
// DATA" (m-FILTER), "did not like our final DATA" (DragonFly). The last one named wins: in a
// transcript it is the one the error followed.
std::string find_smtp_command(std::string_view text) {
  auto lowered = lower(text.substr(0, max_bounce_diagnostic_octets * 4));
  static const std::array<std::string_view, 7> markers = {">>> ",        "after ",          "in reply to ",
                                                          "smtp command", "did not like our ", "our final ",
                                                          "in response to "};
  std::string found;
  std::size_t found_at = 0;
  for (auto marker : markers) {
    for (auto pos = lowered.find(marker); pos != std::string::npos; pos = lowered.find(marker, pos + 1)) {
      auto rest = std::string_view(lowered).substr(pos + marker.size());
      while (!rest.empty() && (rest.front() == ' ' || rest.front() == ':' || rest.front() == '\n')) rest.remove_prefix(1);
      if (starts_with(rest, "end of data") || starts_with(rest, "final data")) rest = "data";
      // In a transcript, a command answered "503 bad sequence" came after the real failure; and
      // with PIPELINING the RCPT TO replies arrive after ">>> DATA", which then gets "503 need
      // RCPT" or "554 no valid recipients": the failure is the RCPT's.
      bool pipelined_rcpt = false;
      if (marker == ">>> ") {
        auto line_end = rest.find('\n');
        auto next = line_end == std::string_view::npos ? std::string_view() : trim(rest.substr(line_end + 1, 16));
        if (starts_with(next, "<<< 503")) continue;
        auto window = rest.substr(0, 400);
        pipelined_rcpt = starts_with(rest, "data") &&
                         (window.find("<<< 503") != std::string_view::npos || window.find("no valid recipients") != std::string_view::npos ||
                          window.find("need rcpt") != std::string_view::npos || window.find("rcpt commands were rejected") != std::string_view::npos);
      }
      std::string command;
      if (pipelined_rcpt) command = "RCPT";
      else if (starts_with(rest, "data")) command = "DATA";
      else if (starts_with(rest, "rcpt")) command = "RCPT";
      else if (starts_with(rest, "mail from")) command = "MAIL";
      else if (starts_with(rest, "helo") || starts_with(rest, "ehlo")) command = "HELO";
      else if (starts_with(rest, "initial connection") || starts_with(rest, "greeting")) command = "CONNECT";
      if (!command.empty() && pos >= found_at) {
        found = command;
        found_at = pos;
      }
    }
  }
  return found;
}

bool plausible_host(std::string_view host) {
  if (host.size() < 3 || host.size() > 253) return false;
  bool address_literal = std::all_of(host.begin(), host.end(), [](char c) { return is_digit(c) || c == '.' || c == ':'; });
  return address_literal ? host.find('.') != std::string_view::npos || host.find(':') != std::string_view::npos
                         : plausible_domain(host);
}

// The remote host a diagnostic names: "host mx.example.com[192.0.2.1] said:", "remote host
// 192.0.2.32 said", "by mx.example.jp. [192.0.2.153]", "mx.example.com [1.2.3.4] did not like".
std::string find_remote_host(std::string_view text) {
  auto lowered = lower(text);
  for (std::string_view marker : {"host ", " by "}) {
    for (auto pos = lowered.find(marker); pos != std::string::npos; pos = lowered.find(marker, pos + 1)) {
      auto start = pos + marker.size();
      while (start < text.size() && text[start] == ' ') ++start;
      auto end = start;
      while (end < text.size() && (is_alpha(text[end]) || is_digit(text[end]) || text[end] == '.' || text[end] == '-' || text[end] == '_'))
        ++end;
      auto host = text.substr(start, end - start);
      while (!host.empty() && host.back() == '.') host.remove_suffix(1);
      if (plausible_host(host)) return lower(host);
    }
  }
  return {};
}

bool valid_status(std::string_view status) { return !status.empty() && find_enhanced_code(status) == status; }

// The most specific status: a report's generic "5.0.0" gives way to the diagnostic's "5.1.1".
std::string best_status(std::string_view status, std::string_view diagnostic, int reply_code) {
  std::string given = valid_status(status) ? std::string(status) : std::string();
  int cls = reply_code ? reply_code / 100 : (given.empty() ? 0 : given[0] - '0');
  auto found = find_enhanced_code(diagnostic, cls * 100);
  if (given.empty()) return found;
  bool generic = given.size() >= 4 && given.substr(1) == ".0.0";
  if (generic && !found.empty() && found[0] == given[0]) return found;
  return given;
}

// Fills reply code, status and remote host of a recipient from its diagnostic text.
void complete_from_diagnostic(bounce_recipient& r) {
  if (r.command.empty()) r.command = find_smtp_command(r.diagnostic);
  if (r.reply_code == 0) r.reply_code = find_reply_code(r.diagnostic);
  r.status = best_status(r.status, r.diagnostic, r.reply_code);
  if (r.remote_mta.empty()) r.remote_mta = find_remote_host(r.diagnostic);
}

// ---------------------------------------------------------------------------------------------
// MIME structure, read with GMime.

struct gobject_deleter {
  void operator()(void* p) const {
    if (p) g_object_unref(p);
  }
};
template <class T>
using gptr = std::unique_ptr<T, gobject_deleter>;

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

// The decoded content of a leaf part; text parts converted to UTF-8 from their charset.
std::string part_content(GMimePart* part) {
  if (GMIME_IS_TEXT_PART(part)) {
    if (char* text = g_mime_text_part_get_text(GMIME_TEXT_PART(part))) {
      std::string out(text, std::min(std::strlen(text), max_part_octets));
      g_free(text);
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

// ---------------------------------------------------------------------------------------------
// Where the human-readable part ends and the returned message begins, in one text.

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

struct split_text {
  std::string failure;  // the human-readable report, unquoted
  std::optional<fields> original;
};

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

struct delivery_status_fields {
  fields per_message;
  std::vector<fields> per_recipient;
  fields returned_headers;  // a header block after the report (DSN fields written into a text)
};

bool is_recipient_field(const std::string& name) {
  return name == "final-recipient" || name == "original-recipient";
}

bool is_per_message_field(const std::string& name) {
  return name == "reporting-mta" || name == "dsn-gateway" || name == "received-from-mta" ||
         name == "arrival-date" || name == "original-envelope-id";
}

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

bounce_recipient recipient_from_fields(const fields& block) {
  bounce_recipient r;
  r.address = address_field(block);
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

struct text_mention {
  std::string address;
  std::size_t line = 0;
  bool announced = false;  // the line names the address as its subject ("<a@b>:", "To: a@b")
};

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

constexpr std::array<std::string_view, 30> failure_phrases = {
    "could not be delivered", "couldn't be delivered", "undeliverable", "delivery failed",
    "delivery has failed", "failed permanently", "permanent error", "permanent failure", "user unknown",
    "unknown user", "no such user", "was not delivered", "wasn't able to deliver", "unable to deliver",
    "delivery to the following", "address(es) failed", "addresses failed", "did not reach",
    "could not be reached", "delivery problems", "mailbox is full", "mailbox full", "not be delivered",
    "rejected", "has been delayed", "could not deliver", "failed to deliver", "delivery error",
    "returned to sender", "message delivery"};

bool is_daemon_sender(const fields& top) {
  auto from = lower(field_or_empty(top, "from"));
  if (contains_any(from, daemon_senders)) return true;
  auto address = first_address(from);
  return trim(from) == "<>" || (address.empty() && from.find('@') == std::string::npos && !from.empty());
}

bool has_bounce_subject(const fields& top) { return contains_any(lower(field_or_empty(top, "subject")), bounce_subjects); }

constexpr std::array<std::string_view, 24> auto_reply_subjects = {
    "out of office", "out of the office", "automatic reply", "auto reply", "auto-reply", "autoreply",
    "auto:", "autorespon", "auto respon", "auto-respon", "abwesenheitsnotiz", "abwesend",
    "réponse automatique", "respuesta automática", "risposta automatica", "automatisch antwoord",
    "automatische antwort", "vacation", "away from", "away until", "on leave", "自動応答", "自動返信",
    "autosvar"};

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

// ---------------------------------------------------------------------------------------------
// Amazon SES notifications (JSON in the body, directly or inside an SNS envelope).

std::string json_string(const boost::json::object& object, std::string_view key) {
  auto it = object.find(key);
  if (it == object.end() || !it->value().is_string()) return {};
  return std::string(it->value().as_string().c_str());
}

const boost::json::object* json_object(const boost::json::object& object, std::string_view key) {
  auto it = object.find(key);
  return it != object.end() && it->value().is_object() ? &it->value().as_object() : nullptr;
}

const boost::json::array* json_array(const boost::json::object& object, std::string_view key) {
  auto it = object.find(key);
  return it != object.end() && it->value().is_array() ? &it->value().as_array() : nullptr;
}

std::optional<boost::json::object> parse_json_object(std::string_view text) {
  boost::system::error_code error;
  auto value = boost::json::parse(boost::json::string_view(text.data(), text.size()), error);
  if (error || !value.is_object()) return std::nullopt;
  return std::move(value.as_object());
}

// The JSON text of a notification: the body up to the "--" footer, with the line folding that
// mail transport added (a line break followed by one space) undone.
std::optional<boost::json::object> ses_notification(const std::vector<std::string>& texts) {
  if (texts.empty()) return std::nullopt;
  auto body = trim(std::string_view(texts.front()).substr(0, max_json_octets));
  if (body.empty() || body.front() != '{') return std::nullopt;
  std::string json;
  for (auto line : split_lines(body)) {
    if (line == "--") break;
    if (!line.empty() && line.front() == ' ' && !json.empty()) line.remove_prefix(1);
    else if (!json.empty()) json += '\n';
    json += line;
  }
  auto object = parse_json_object(json);
  if (!object) return std::nullopt;
  if (json_string(*object, "Type") == "Notification") {
    object = parse_json_object(json_string(*object, "Message"));
    if (!object) return std::nullopt;
  }
  if (json_string(*object, "notificationType").empty() && json_string(*object, "eventType").empty()) return std::nullopt;
  return object;
}

void original_from_ses(const boost::json::object& notification, bounce_report& report) {
  auto* mail = json_object(notification, "mail");
  if (!mail) return;
  if (auto* headers = json_array(*mail, "headers")) {
    for (const auto& item : *headers) {
      if (!item.is_object() || report.original_headers.size() >= max_header_fields) continue;
      auto name = lower(json_string(item.as_object(), "name"));
      if (!name.empty()) report.original_headers.emplace(name, clean_text(json_string(item.as_object(), "value")));
    }
  }
}

bounce_report report_from_ses(const boost::json::object& notification) {
  bounce_report report;
  auto type = json_string(notification, "notificationType");
  if (type.empty()) type = json_string(notification, "eventType");
  auto add = [&](const boost::json::array* list, const std::string& action) {
    if (!list) return;
    for (const auto& item : *list) {
      if (report.recipients.size() >= max_bounce_recipients) break;
      bounce_recipient r;
      if (item.is_string()) {
        r.address = normalize_address(item.as_string().c_str());
      } else if (item.is_object()) {
        const auto& o = item.as_object();
        r.address = normalize_address(json_string(o, "emailAddress"));
        r.action = lower(json_string(o, "action"));
        r.status = json_string(o, "status");
        r.diagnostic = std::string(strip_type_prefix(json_string(o, "diagnosticCode")));
      }
      if (r.action.empty()) r.action = action;
      if (!r.address.empty()) report.recipients.push_back(std::move(r));
    }
  };
  if (type == "Bounce") {
    report.kind = report_kind::delivery_failure;
    if (auto* bounce = json_object(notification, "bounce")) {
      add(json_array(*bounce, "bouncedRecipients"), "failed");
      report.reporting_mta = std::string(strip_type_prefix(json_string(*bounce, "reportingMTA")));
      for (auto& r : report.recipients) r.remote_mta = json_string(*bounce, "remoteMtaIp");
    }
  } else if (type == "Complaint") {
    report.kind = report_kind::feedback;
    if (auto* complaint = json_object(notification, "complaint")) {
      add(json_array(*complaint, "complainedRecipients"), "");
      report.feedback_type = lower(json_string(*complaint, "complaintFeedbackType"));
      if (report.feedback_type.empty()) report.feedback_type = "abuse";
    }
  } else if (type == "Delivery") {
    report.kind = report_kind::delivery_failure;
    if (auto* delivery = json_object(notification, "delivery")) {
      add(json_array(*delivery, "recipients"), "delivered");
      auto response = json_string(*delivery, "smtpResponse");
      report.reporting_mta = json_string(*delivery, "reportingMTA");
      for (auto& r : report.recipients) r.diagnostic = response;
    }
  } else {
    return {};
  }
  for (auto& r : report.recipients) complete_from_diagnostic(r);
  original_from_ses(notification, report);
  return report;
}

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
    r.action = clean_text(r.action, 20);
    r.status = clean_text(r.status, 16);
    r.diagnostic = clean_text(r.diagnostic, max_bounce_diagnostic_octets);
    r.remote_mta = clean_text(r.remote_mta, 253);
  }
  report.recipients.erase(std::remove_if(report.recipients.begin(), report.recipients.end(),
                                         [](const bounce_recipient& r) { return r.address.empty(); }),
                          report.recipients.end());
}

// The failure text of the bounce and the returned message's headers when only the text has them.
struct readable_part {
  std::string text;
  std::optional<fields> original;
};

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
  } else if (is_auto_reply(mime->top) && !is_daemon_sender(mime->top)) {
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

bounce_report parse_bounce(std::string_view raw_message) {
  try {
    return parse(raw_message);
  } catch (...) {  // bad_alloc, or a library's surprise: hostile mail must not take the caller down
    return {};
  }
}

}  // namespace petrel
