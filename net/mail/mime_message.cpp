// Message building and raw message normalization (see mime_message.hpp). The message is
// written straight into one string: building it as a GMime object tree cost about 16% of
// Petrel's CPU per 1 KB message (GObject allocation, locking, stream filters; see
// docs/performance.md). GMime still encodes non-ASCII header text, and parses the result in the
// tests.
#include "net/mail/mime_message.hpp"

#include <gmime/gmime.h>

#include "net/mail/base64.hpp"

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

bool needs_quoting_in_phrase(std::string_view s) {
  // RFC 5322 3.2.3: atoms (atext) with spaces between them may stand unquoted.
  if (s.empty() || s.front() == ' ' || s.back() == ' ') return true;
  if (s.find("=?") != std::string_view::npos) return true;  // would read as an encoded word
  return !std::all_of(s.begin(), s.end(), [](char c) { return c == ' ' || is_atext(static_cast<unsigned char>(c)); });
}

// GMime's encoders for the hard part of headers: RFC 2047 encoded words for UTF-8 text and
// phrases (charset, word length, Q or B). Called only for values that are not plain ASCII.
std::string encoded_words(std::string_view text, bool phrase) {
  mime_init();
  std::string value(text);
  char* encoded = phrase ? g_mime_utils_header_encode_phrase(nullptr, value.c_str(), "utf-8")
                         : g_mime_utils_header_encode_text(nullptr, value.c_str(), "utf-8");
  std::string out = encoded ? encoded : "";
  g_free(encoded);
  return out;
}

// The whole value as B encoded words of at most 45 octets of UTF-8 each (60 characters
// encoded, 72 with the wrapping), never splitting a character; the spaces of the value are
// inside the words, since white space between encoded words is not part of the text.
std::string whole_encoded_words(std::string_view text) {
  std::string out;
  std::size_t i = 0;
  while (i < text.size()) {
    auto end = std::min(text.size(), i + 45);
    while (end < text.size() && end > i + 1 && (static_cast<unsigned char>(text[end]) & 0xC0) == 0x80) --end;
    if (!out.empty()) out.push_back(' ');
    out += "=?UTF-8?B?" + base64_encode(text.substr(i, end - i)) + "?=";
    i = end;
  }
  return out;
}

// An unstructured header value (RFC 5322 3.2.5): as is when plain ASCII, else encoded words.
// Text that contains "=?" is encoded whole, or a reader would decode what only looks encoded.
std::string header_text(std::string_view value) {
  if (value.find("=?") != std::string_view::npos) return whole_encoded_words(value);
  if (is_ascii(value)) return std::string(value);
  return encoded_words(value, false);
}

std::string display_phrase(const std::string& name) {
  if (!is_ascii(name)) {
    if (name.find("=?") != std::string::npos) return whole_encoded_words(name);
    return encoded_words(name, true);
  }
  return needs_quoting_in_phrase(name) ? quoted_string(name) : name;
}

// The mailbox as a header shows it: the domain in its A-label form unless the local part is
// UTF-8 anyway (RFC 6532: the message then travels with SMTPUTF8).
std::string header_mailbox(const mailbox& box) {
  std::string address = is_ascii(box.local_part) ? box.local_part + "@" + box.ascii_domain : box.address();
  if (box.display_name.empty()) return address;
  return display_phrase(box.display_name) + " <" + address + ">";
}

// Appends "Name: value" CRLF, folded (RFC 5322 2.2.3) before white space so that lines stay
// within 78 octets where the words allow; a longer word stays whole (the 998 check follows).
// Appends value at `column`, folding before white space where a line would pass 78 (never
// before its first word); returns the column after it.
std::size_t append_folding(std::string& out, std::string_view value, std::size_t column) {
  std::size_t i = 0;
  while (i < value.size()) {
    // The next word with the white space before it.
    auto word_end = value.find_first_of(" \t", i + 1);
    if (word_end == std::string_view::npos) word_end = value.size();
    auto piece = value.substr(i, word_end - i);
    if (column + piece.size() > 78 && i > 0 && (piece.front() == ' ' || piece.front() == '\t')) {
      out.append("\r\n");
      column = 0;
    }
    out.append(piece);
    column += piece.size();
    i = word_end;
  }
  return column;
}

void append_folded(std::string& out, std::string_view name, std::string_view value) {
  out.append(name);
  out.append(": ");
  append_folding(out, value, name.size() + 2);
  out.append("\r\n");
}

// An address list, folded after the commas.
void append_addresses(std::string& out, std::string_view name, const std::vector<mailbox>& boxes) {
  if (boxes.empty()) return;
  out.append(name);
  out.append(": ");
  std::size_t column = name.size() + 2;
  for (std::size_t i = 0; i < boxes.size(); ++i) {
    auto item = header_mailbox(boxes[i]);
    if (i > 0) {
      out.push_back(',');
      ++column;
      if (column + 1 + item.size() + 1 > 78) {  // room for the space and a comma after
        out.append("\r\n");
        column = 0;
      }
      out.push_back(' ');
      ++column;
    }
    // An encoded phrase is words separated by spaces: it folds inside too when it is long.
    column = append_folding(out, item, column);
  }
  out.append("\r\n");
}

// How a text part travels 7-bit clean (so neither 8BITMIME nor long lines are ever asked of
// the receiving server): as is when ASCII with short lines, else quoted-printable when mostly
// ASCII, else base64.
enum class text_encoding { seven_bit, quoted_printable, base64 };

struct text_form {
  text_encoding encoding = text_encoding::seven_bit;
  bool ascii = true;
};

// One pass over the text: octets that are not ASCII, control characters, the longest line.
text_form best_encoding(std::string_view text) {
  std::size_t eight_bit = 0, line_start = 0, longest = 0;
  bool controls = false;
  for (std::size_t i = 0; i < text.size(); ++i) {
    auto c = static_cast<unsigned char>(text[i]);
    if (c >= 0x20 && c < 0x7f) continue;
    if (c == '\n' || c == '\r') {
      longest = std::max(longest, i - line_start);
      line_start = i + 1;
    } else if (c >= 0x80) {
      ++eight_bit;
    } else if (c != '\t') {
      controls = true;
    }
  }
  longest = std::max(longest, text.size() - line_start);
  text_form form;
  form.ascii = eight_bit == 0;
  if (eight_bit == 0 && !controls && longest <= 998) form.encoding = text_encoding::seven_bit;
  else if (eight_bit * 100 <= text.size() * 17) form.encoding = text_encoding::quoted_printable;
  else form.encoding = text_encoding::base64;
  return form;
}

// Client text with any line ending (CRLF, LF or CR) as CRLF lines; the last line ends too.
template <class Line>
void for_each_line(std::string_view text, Line&& line) {
  std::size_t start = 0;
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '\r' || text[i] == '\n') {
      line(text.substr(start, i - start));
      if (text[i] == '\r' && i + 1 < text.size() && text[i + 1] == '\n') ++i;
      start = i + 1;
    }
  }
  if (start < text.size()) line(text.substr(start));
}

void append_seven_bit(std::string& out, std::string_view text) {
  for_each_line(text, [&](std::string_view l) {
    out.append(l);
    out.append("\r\n");
  });
}

// RFC 2045 6.7: lines of at most 76 characters with soft breaks, '=' and anything not
// printable encoded, white space before a line break encoded. Runs of characters that stand
// for themselves are copied whole.
void append_quoted_printable(std::string& out, std::string_view text) {
  static constexpr char hex[] = "0123456789ABCDEF";
  static const auto plain = [] {
    std::array<bool, 256> t{};
    for (int c = 33; c <= 126; ++c) t[static_cast<std::size_t>(c)] = c != '=';
    return t;
  }();
  for_each_line(text, [&](std::string_view l) {
    const auto n = l.size();
    // A character stands for itself: printable but '=', or white space not ending the line.
    auto literal = [&](std::size_t i) {
      auto c = static_cast<unsigned char>(l[i]);
      return plain[c] || ((c == ' ' || c == '\t') && i + 1 < n);
    };
    std::size_t column = 0, i = 0;
    while (i < n) {
      if (literal(i)) {
        if (column >= 75) {
          out.append("=\r\n");
          column = 0;
        }
        auto limit = std::min(n, i + (75 - column));
        auto j = i + 1;
        while (j < limit && literal(j)) ++j;
        out.append(l.data() + i, j - i);
        column += j - i;
        i = j;
      } else {
        if (column + 3 > 75) {
          out.append("=\r\n");
          column = 0;
        }
        auto c = static_cast<unsigned char>(l[i]);
        char triplet[3] = {'=', hex[c >> 4], hex[c & 15]};
        out.append(triplet, 3);
        column += 3;
        ++i;
      }
    }
    out.append("\r\n");
  });
}

// Base64 in lines of 76 characters.
void append_base64(std::string& out, std::string_view data) {
  auto encoded = base64_encode(data);
  for (std::size_t i = 0; i < encoded.size(); i += 76) {
    out.append(encoded, i, 76);
    out.append("\r\n");
  }
}

// A text part's headers and body. Inside a multipart, text that does not end with a line break
// gets none: the line break before the next boundary belongs to the boundary (RFC 2046 5.1.1).
void append_text_part(std::string& out, const char* subtype, std::string_view text, bool in_multipart) {
  auto form = best_encoding(text);
  out.append("Content-Type: text/");
  out.append(subtype);
  out.append(form.ascii ? "; charset=us-ascii\r\n" : "; charset=utf-8\r\n");
  switch (form.encoding) {
    case text_encoding::seven_bit:
      out.append("Content-Transfer-Encoding: 7bit\r\n\r\n");
      append_seven_bit(out, text);
      break;
    case text_encoding::quoted_printable:
      out.append("Content-Transfer-Encoding: quoted-printable\r\n\r\n");
      append_quoted_printable(out, text);
      break;
    case text_encoding::base64:
      out.append("Content-Transfer-Encoding: base64\r\n\r\n");
      append_base64(out, text);
      return;
  }
  if (in_multipart && !text.empty() && text.back() != '\n' && text.back() != '\r') out.resize(out.size() - 2);
}

bool is_token(std::string_view value) {
  // RFC 2045 5.1: any CHAR except SPACE, CTLs and tspecials.
  return !value.empty() && std::all_of(value.begin(), value.end(), [](char ch) {
    auto c = static_cast<unsigned char>(ch);
    return c > 32 && c < 127 && !std::strchr("()<>@,;:\\\"/[]?=", ch);
  });
}

// A header with MIME parameters (RFC 2045 5.1, RFC 2231), folded before a parameter that
// would pass 78 columns: a token as is, short printable ASCII quoted, anything else
// percent-encoded UTF-8, in numbered sections when long.
class parameter_header {
 public:
  parameter_header(std::string& out, std::string_view name, std::string_view value) : out_(out) {
    auto before = out_.size();
    out_.append(name);
    out_.append(": ");
    out_.append(value);
    column_ = out_.size() - before;
  }
  void add(std::string_view name, std::string_view value) {
    if (is_token(value)) return piece(std::string(name) + "=" + std::string(value));
    bool printable = is_ascii(value) && value.size() <= 60 &&
                     std::all_of(value.begin(), value.end(), [](char c) { return c >= 0x20 && c != 0x7f; });
    if (printable) return piece(std::string(name) + "=" + quoted_string(value));
    static constexpr char hex[] = "0123456789ABCDEF";
    std::vector<std::string> sections(1);
    for (char ch : value) {
      auto c = static_cast<unsigned char>(ch);
      std::string encoded;
      if (std::isalnum(c) || (ch != '\0' && std::strchr("!#$&+-.^_`|~", ch)))
        encoded.push_back(ch);
      else
        encoded = {'%', hex[c >> 4], hex[c & 15]};
      if (sections.back().size() + encoded.size() > 60) sections.emplace_back();
      sections.back() += encoded;
    }
    for (std::size_t i = 0; i < sections.size(); ++i)
      piece(std::string(name) + (sections.size() > 1 ? "*" + std::to_string(i) : std::string()) + "*=" +
            (i == 0 ? "UTF-8''" : "") + sections[i]);
  }
  void end() { out_.append("\r\n"); }

 private:
  void piece(const std::string& text) {
    out_.push_back(';');
    if (column_ + 2 + text.size() > 78) {
      out_.append("\r\n\t");
      column_ = 1;
    } else {
      out_.push_back(' ');
      column_ += 2;
    }
    out_.append(text);
    column_ += text.size();
  }
  std::string& out_;
  std::size_t column_ = 0;
};

// A file part: base64, its disposition with the file name, its Content-ID.
void append_attachment_part(std::string& out, const attachment_spec& a) {
  auto slash = a.content_type.find('/');
  parameter_header type(out, "Content-Type",
                        slash == std::string::npos ? std::string_view("application/octet-stream")
                                                   : std::string_view(a.content_type));
  if (!a.filename.empty()) type.add("name", a.filename);  // for old readers
  type.end();
  parameter_header disposition(out, "Content-Disposition", a.inline_part ? "inline" : "attachment");
  if (!a.filename.empty()) disposition.add("filename", a.filename);
  disposition.end();
  out.append("Content-Transfer-Encoding: base64\r\n");
  if (!a.content_id.empty()) {
    out.append("Content-ID: <");
    out.append(a.content_id);
    out.append(">\r\n");
  }
  out.append("\r\n");
  append_base64(out, a.data);
}

// The boundaries of the message's multiparts: "=_" cannot occur in quoted-printable or base64
// text, and the 7-bit text parts are checked.
class boundaries {
 public:
  explicit boundaries(const message_spec& spec) : spec_(spec) {}
  std::string next() {
    for (;;) {
      std::string b = "=_" + std::to_string(++n_) + "_" + spec_.message_id.substr(0, spec_.message_id.find('@'));
      auto occurs = [&](const std::optional<std::string>& t) { return t && t->find(b) != std::string::npos; };
      if (!occurs(spec_.text) && !occurs(spec_.html)) return b;
    }
  }

 private:
  const message_spec& spec_;
  int n_ = 0;
};

// Writes a body: (text | html | alternative), in related when inline parts name it, in mixed
// with the other attachments.
struct body_writer {
  const message_spec& spec;
  boundaries& names;
  std::vector<const attachment_spec*> related, mixed;

  void alternative(std::string& out, bool in_multipart) {
    if (spec.text && spec.html) {
      auto b = names.next();
      out.append("Content-Type: multipart/alternative; boundary=\"" + b + "\"\r\n\r\n");
      out.append("--" + b + "\r\n");
      append_text_part(out, "plain", *spec.text, true);
      out.append("\r\n--" + b + "\r\n");
      append_text_part(out, "html", *spec.html, true);
      out.append("\r\n--" + b + "--\r\n");
    } else if (spec.html) {
      append_text_part(out, "html", *spec.html, in_multipart);
    } else {
      append_text_part(out, "plain", spec.text ? std::string_view(*spec.text) : std::string_view(), in_multipart);
    }
  }

  // A multipart of `type` (with its parameters before the boundary): first what `first`
  // writes, then the files.
  template <class First>
  void multipart(std::string& out, const std::string& type, First&& first,
                 const std::vector<const attachment_spec*>& files) {
    auto b = names.next();
    out.append("Content-Type: " + type + "; boundary=\"" + b + "\"\r\n\r\n--" + b + "\r\n");
    first();
    for (const auto* a : files) {
      out.append("\r\n--" + b + "\r\n");
      append_attachment_part(out, *a);
    }
    out.append("\r\n--" + b + "--\r\n");
  }

  void with_related(std::string& out, bool in_multipart) {
    if (related.empty()) return alternative(out, in_multipart);
    std::string root = spec.text && spec.html ? "multipart/alternative" : "text/html";
    multipart(out, "multipart/related; type=\"" + root + "\"", [&] { alternative(out, true); }, related);
  }

  void with_mixed(std::string& out) {
    if (mixed.empty()) return with_related(out, false);
    multipart(out, "multipart/mixed", [&] { with_related(out, true); }, mixed);
  }
};

std::string longest_line_problem(std::string_view content) {
  std::size_t line = 1, start = 0;
  while (start < content.size()) {
    const void* hit = std::memchr(content.data() + start, '\n', content.size() - start);
    if (!hit) break;
    auto i = static_cast<std::size_t>(static_cast<const char*>(hit) - content.data());
    auto length = i - start - (i > start && content[i - 1] == '\r' ? 1 : 0);
    if (length > max_line_octets)
      return "line " + std::to_string(line) + " is " + std::to_string(length) +
             " octets long (RFC 5322 allows 998)";
    start = i + 1;
    ++line;
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
  // Every message of a second gets the same text: made once per second and thread.
  thread_local std::time_t cached_second = -1;
  thread_local std::string cached;
  if (seconds == cached_second && !cached.empty()) return cached;
  std::tm tm{};
  gmtime_r(&seconds, &tm);
  static constexpr std::array<const char*, 7> days = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
  static constexpr std::array<const char*, 12> months = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                                         "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
  char buf[64];
  std::snprintf(buf, sizeof buf, "%s, %02d %s %04d %02d:%02d:%02d +0000", days[tm.tm_wday],
                tm.tm_mday, months[tm.tm_mon], tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
  cached_second = seconds;
  cached = buf;
  return cached;
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
  std::size_t size_hint = 1024 + (spec.text ? spec.text->size() * 11 / 10 : 0) +
                          (spec.html ? spec.html->size() * 11 / 10 : 0);
  for (const auto& a : spec.attachments) size_hint += a.data.size() * 138 / 100 + 256;
  built_message result;
  auto& out = result.content;
  out.reserve(size_hint);
  append_addresses(out, "From", {spec.from});
  append_addresses(out, "Reply-To", spec.reply_to);
  append_addresses(out, "To", spec.to);
  append_addresses(out, "Cc", spec.cc);
  append_folded(out, "Subject", header_text(spec.subject));
  out.append("Date: " + rfc5322_date(spec.date_ms) + "\r\n");
  result.message_id_header = "<" + spec.message_id + ">";
  out.append("Message-ID: " + result.message_id_header + "\r\n");
  for (const auto& [name, value] : spec.headers) append_folded(out, name, header_text(value));
  out.append("MIME-Version: 1.0\r\n");

  boundaries names(spec);
  body_writer body{spec, names, {}, {}};
  for (const auto& a : spec.attachments)
    (a.inline_part && !a.content_id.empty() && spec.html ? body.related : body.mixed).push_back(&a);
  body.with_mixed(out);

  if (auto problem = longest_line_problem(out); !problem.empty())
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
