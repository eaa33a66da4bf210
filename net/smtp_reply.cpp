// SMTP reply parsing (see smtp_reply.hpp).
#include "net/smtp_reply.hpp"

#include <cctype>

namespace petrel {

namespace {

bool is_digits(std::string_view s, std::size_t min, std::size_t max) {
  if (s.size() < min || s.size() > max) return false;
  for (char c : s)
    if (!std::isdigit(static_cast<unsigned char>(c))) return false;
  return true;
}

}  // namespace

std::string smtp_reply::text() const {
  std::string out;
  for (const auto& line : lines) {
    if (!out.empty()) out += ' ';
    out += line;
  }
  return out;
}

std::string smtp_reply::to_string() const {
  std::string out = std::to_string(code);
  if (!enhanced.empty()) out += " " + enhanced;
  auto t = text();
  if (!t.empty()) out += " " + t;
  return out;
}

std::string take_enhanced_code(std::string& text, int reply_code) {
  // class "." subject "." detail, class in {2,4,5} (RFC 3463 2), subject and detail 1-3 digits.
  auto space = text.find(' ');
  std::string_view word(text.data(), space == std::string::npos ? text.size() : space);
  auto dot1 = word.find('.');
  if (dot1 != 1) return {};
  auto dot2 = word.find('.', dot1 + 1);
  if (dot2 == std::string_view::npos) return {};
  auto cls = word.substr(0, 1);
  auto subject = word.substr(dot1 + 1, dot2 - dot1 - 1);
  auto detail = word.substr(dot2 + 1);
  if (cls != "2" && cls != "4" && cls != "5") return {};
  if (cls[0] - '0' != reply_code / 100) return {};
  if (!is_digits(subject, 1, 3) || !is_digits(detail, 1, 3)) return {};
  std::string code(word);
  text = space == std::string::npos ? std::string() : text.substr(space + 1);
  return code;
}

smtp_reply_parser::status smtp_reply_parser::feed(std::string_view line) {
  auto fail = [this](std::string why) {
    error_ = std::move(why);
    reply_ = {};
    return status::error;
  };
  if (line.size() > max_reply_line_octets) return fail("reply line longer than 2000 octets");
  if (line.size() < 3 || !is_digits(line.substr(0, 3), 3, 3))
    return fail("reply line does not start with a 3-digit code: \"" +
                std::string(line.substr(0, 40)) + "\"");
  int code = (line[0] - '0') * 100 + (line[1] - '0') * 10 + (line[2] - '0');
  if (code < 200 || code > 599) return fail("reply code " + std::to_string(code) + " is out of range");
  if (reply_.code != 0 && code != reply_.code)
    return fail("multi-line reply changes its code from " + std::to_string(reply_.code) + " to " +
                std::to_string(code));
  bool last = true;
  std::string text;
  if (line.size() > 3) {
    if (line[3] == '-')
      last = false;
    else if (line[3] != ' ')
      return fail("reply code not followed by space or hyphen");
    text = std::string(line.substr(4));
  }
  for (char c : text)
    if (static_cast<unsigned char>(c) < 0x20 && c != '\t') return fail("control character in reply");
  if (reply_.lines.size() >= max_reply_lines) return fail("reply has more than 100 lines");
  reply_.code = code;
  auto enhanced = take_enhanced_code(text, code);
  if (reply_.lines.empty()) reply_.enhanced = enhanced;
  reply_.lines.push_back(std::move(text));
  return last ? status::done : status::more;
}

smtp_reply smtp_reply_parser::take() {
  smtp_reply out = std::move(reply_);
  reply_ = {};
  error_.clear();
  return out;
}

bool parse_smtp_reply(std::string_view text, smtp_reply& out, std::string& error) {
  smtp_reply_parser parser;
  std::size_t pos = 0;
  while (pos < text.size()) {
    auto end = text.find('\n', pos);
    if (end == std::string_view::npos) end = text.size();
    auto line = text.substr(pos, end - pos);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    pos = end + 1;
    switch (parser.feed(line)) {
      case smtp_reply_parser::status::more: continue;
      case smtp_reply_parser::status::error: error = parser.error(); return false;
      case smtp_reply_parser::status::done:
        out = parser.take();
        return pos >= text.size() || text.substr(pos).find_first_not_of("\r\n") == std::string_view::npos
                   ? true
                   : (error = "text after the last line of the reply", false);
    }
  }
  error = "the reply ends without a last line";
  return false;
}

}  // namespace petrel
