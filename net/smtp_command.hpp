// Commands an SMTP client sends to Petrel's own SMTP listeners (bounces and feedback, and
// submission): the command line, MAIL and RCPT paths with their parameters, AUTH and its
// credentials, and the message content after DATA. All of it is hostile until checked; this is
// the parsing half of net/smtp_server.cpp, kept free of I/O so that it can be tested and fuzzed
// on its own (tests/fuzz/fuzz_smtp_command.cpp).
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace petrel {

enum class smtp_verb { ehlo, helo, starttls, auth, mail, rcpt, data, rset, noop, vrfy, quit, unknown };

struct smtp_command {
  smtp_verb verb = smtp_verb::unknown;
  std::string_view args;  // after the first space, as sent (a view into the line)
};

// One command line, with or without its CRLF (or a bare LF). The verb is case-insensitive.
smtp_command parse_smtp_command(std::string_view line);

// The reverse-path or forward-path of "MAIL FROM:<a@b> SIZE=1" / "RCPT TO:<a@b>": `args` is
// everything after the verb, `keyword` "from:" or "to:" (case-insensitive). A source route
// (<@a,@b:user@c>, RFC 5321 4.1.2 and appendix C) is accepted and dropped. An address with a
// control character or a space is refused; <> is the empty (null) path.
struct smtp_path {
  std::string address;
  std::string params;  // what follows the closing '>'
};
std::optional<smtp_path> parse_smtp_path(std::string_view args, std::string_view keyword);

// The SIZE= value among MAIL parameters (RFC 1870), as a keyword of its own ("SIZE=10",
// case-insensitive): nullopt when absent, 0 when it is not a number. Values past 2^64 saturate.
std::optional<std::uint64_t> smtp_declared_size(std::string_view params);

// "AUTH PLAIN dGVzdA==": the mechanism (lower case) and the initial response, if any.
struct smtp_auth_start {
  std::string mechanism;
  std::string initial;
};
smtp_auth_start parse_smtp_auth(std::string_view args);

// SASL PLAIN (RFC 4616): "authzid NUL authcid NUL passwd", already base64-decoded.
struct smtp_credentials {
  std::string user;
  std::string password;
};
std::optional<smtp_credentials> parse_sasl_plain(std::string_view decoded);

// The message content after DATA, line by line (RFC 5321 4.1.1.4 and 4.5.2): only CRLF.CRLF
// ends it (a bare LF "." does not: no smuggling), a leading dot is unstuffed, and a bare LF
// line ending becomes CRLF. Content past max_bytes is counted, not kept.
class smtp_data_reader {
 public:
  explicit smtp_data_reader(std::size_t max_bytes) : max_bytes_(max_bytes) {}

  // One line including its ending as read ("...\r\n" or "...\n"); true at the final ".\r\n".
  bool line(std::string_view text);
  // A line longer than the listener's line limit: the message is refused, reading goes on.
  void overlong_line() { too_big_ = true; }

  bool too_big() const { return too_big_; }
  std::string take() { return std::move(content_); }

 private:
  std::size_t max_bytes_;
  std::string content_;
  bool too_big_ = false;
};

}  // namespace petrel
