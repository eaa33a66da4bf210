// SMTP replies (RFC 5321 4.2): single or multi-line, with RFC 2034/3463 enhanced status codes,
// parsed from what a remote server sends, which is hostile until checked: every line and
// every reply is bounded, and a malformed reply is an error, not a guess.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace petrel {

struct smtp_reply {
  int code = 0;              // 200..599
  std::string enhanced;      // "4.7.0", or empty when the server gave none
  std::vector<std::string> lines;  // text of each line, without code and separator

  bool positive() const { return code >= 200 && code < 400; }
  bool transient() const { return code >= 400 && code < 500; }
  bool permanent() const { return code >= 500; }
  // The text of all lines, joined by single spaces (enhanced code of the first line removed).
  std::string text() const;
  // "451 4.3.0 text", for logs and events.
  std::string to_string() const;
};

// Limits a reply may not exceed (RFC 5321 4.5.3.1.5 sets 512 octets a line; servers exceed it
// in practice, so lines are allowed up to 2000 octets).
constexpr std::size_t max_reply_line_octets = 2000;
constexpr std::size_t max_reply_lines = 100;

// Feeds reply lines one at a time (without CRLF) until a reply is complete.
class smtp_reply_parser {
 public:
  enum class status { more, done, error };

  status feed(std::string_view line);
  smtp_reply take();  // the completed reply; resets the parser
  const std::string& error() const { return error_; }

 private:
  smtp_reply reply_;
  std::string error_;
};

// Parses a reply given whole (lines separated by CRLF or LF); for tests and tools.
bool parse_smtp_reply(std::string_view text, smtp_reply& out, std::string& error);

// Splits "x.y.z" off the start of a text when it is an RFC 3463 enhanced status code whose
// class matches the reply code's first digit; returns it (or empty) and leaves the rest.
std::string take_enhanced_code(std::string& text, int reply_code);

}  // namespace petrel
