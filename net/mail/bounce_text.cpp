// Bounce parsing, the text level (see bounce_reading.hpp): text helpers, header-style field
// blocks, addresses found in free text, and SMTP details in diagnostic text.
#include "net/mail/bounce_reading.hpp"

#include <algorithm>
#include <array>
#include <cstring>
#include <memory>
#include <optional>

#include "net/mail/bounce.hpp"

namespace petrel::bounce_reading {

// ---------------------------------------------------------------------------------------------
// Limits. Bounce mail is hostile input: each stage reads a bounded amount.

namespace {

constexpr std::size_t max_scanned_lines = 5000;

constexpr std::size_t max_scanned_line_octets = 2000;            // longer lines are cut

// ---------------------------------------------------------------------------------------------
// Text helpers.

}  // namespace

std::string lower(std::string_view s) {
  std::string out(s);
  for (auto& c : out) c = lower(c);
  return out;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && is_space(s.front())) s.remove_prefix(1);
  while (!s.empty() && is_space(s.back())) s.remove_suffix(1);
  return s;
}

bool starts_with(std::string_view s, std::string_view prefix) {
  return s.size() >= prefix.size() && s.substr(0, prefix.size()) == prefix;
}

// Valid UTF-8 without control characters (tabs and line breaks become spaces, runs of spaces
// collapse), at most max_octets long, cut on a character boundary: safe for logs, JSON events
// and the store whatever the bounce contained.
std::string clean_text(std::string_view text, std::size_t max_octets) {
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
  if (!token) return value;
  value = trim(value.substr(semicolon + 1));
  // Some MTAs repeat the type ("rfc822; rfc822;a@example.com").
  if (value.size() > 7 && lower(value.substr(0, 7)) == "rfc822;") value = trim(value.substr(7));
  return value;
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

const std::string* find_field(const fields& block, std::string_view name) {
  for (const auto& f : block)
    if (f.name == name) return &f.value;
  return nullptr;
}

std::string field_or_empty(const fields& block, std::string_view name) {
  auto* value = find_field(block, name);
  return value ? *value : std::string();
}

namespace {

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

}  // namespace

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

// ---------------------------------------------------------------------------------------------
// Addresses found in free text.

namespace {

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

}  // namespace

// local@domain with the domain lower-cased; brackets, "mailto:" and spaces removed.
std::string normalize_address(std::string_view text) {
  text = trim(text);
  while (!text.empty() && (text.front() == '<' || text.front() == '(' || text.front() == '[')) text.remove_prefix(1);
  while (!text.empty() && (text.back() == '>' || text.back() == ')' || text.back() == ']' ||
                           text.back() == '.' || text.back() == ',' || text.back() == ';'))
    text.remove_suffix(1);
  text = trim(text);
  if (lower(text.substr(0, 7)) == "mailto:") text.remove_prefix(7);
  // An RFC 821 source route, "@relay1,@relay2:user@example.com": the mailbox is after the colon.
  if (!text.empty() && text.front() == '@') {
    auto colon = text.find(':');
    if (colon != std::string_view::npos && text.find('@', colon) != std::string_view::npos) text = trim(text.substr(colon + 1));
  }
  if (text.size() > max_address_octets) return {};
  auto at = text.rfind('@');
  if (at == std::string_view::npos) return std::string(text);
  return std::string(text.substr(0, at + 1)) + lower(text.substr(at + 1));
}

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
// DATA" (m-FILTER), "did not like our final DATA" (DragonFly), "most progress was RCPT TO
// response" (qmail), "SMTP:RCPT host" (X3), "[RCPT_TO]" (Yahoo). The last one named wins: in a
// transcript it is the one the error followed.
std::string find_smtp_command(std::string_view text) {
  auto lowered = lower(text.substr(0, max_bounce_diagnostic_octets * 4));
  static const std::array<std::string_view, 10> markers = {
      ">>> ",           "after ",      "in reply to ",       "smtp command", "did not like our ",
      "our final ",     "in response to ", "most progress was ", "smtp:",        "["};
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

namespace {

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

}  // namespace

// Fills reply code, status and remote host of a recipient from its diagnostic text.
void complete_from_diagnostic(bounce_recipient& r) {
  if (r.command.empty()) r.command = find_smtp_command(r.diagnostic);
  if (r.reply_code == 0) r.reply_code = find_reply_code(r.diagnostic);
  r.status = best_status(r.status, r.diagnostic, r.reply_code);
  if (r.remote_mta.empty()) r.remote_mta = find_remote_host(r.diagnostic);
}

bool looks_like_header_line(std::string_view line) { return header_name_length(line) > 0; }

}  // namespace petrel::bounce_reading
