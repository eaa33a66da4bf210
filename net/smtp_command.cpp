#include "net/smtp_command.hpp"

#include <strings.h>

#include <cctype>
#include <limits>

namespace petrel {

namespace {

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && ::strncasecmp(a.data(), b.data(), a.size()) == 0;
}

std::string lower(std::string_view s) {
  std::string out(s);
  for (auto& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

}  // namespace

smtp_command parse_smtp_command(std::string_view line) {
  while (!line.empty() && (line.back() == '\n' || line.back() == '\r')) line.remove_suffix(1);
  auto space = line.find(' ');
  auto verb = line.substr(0, space);
  smtp_command out;
  out.args = space == std::string_view::npos ? std::string_view() : line.substr(space + 1);
  static constexpr std::pair<std::string_view, smtp_verb> verbs[] = {
      {"ehlo", smtp_verb::ehlo}, {"helo", smtp_verb::helo}, {"starttls", smtp_verb::starttls},
      {"auth", smtp_verb::auth}, {"mail", smtp_verb::mail}, {"rcpt", smtp_verb::rcpt},
      {"data", smtp_verb::data}, {"rset", smtp_verb::rset}, {"noop", smtp_verb::noop},
      {"vrfy", smtp_verb::vrfy}, {"quit", smtp_verb::quit}};
  for (const auto& [name, v] : verbs)
    if (iequals(verb, name)) out.verb = v;
  return out;
}

std::optional<smtp_path> parse_smtp_path(std::string_view args, std::string_view keyword) {
  if (args.size() < keyword.size() || !iequals(args.substr(0, keyword.size()), keyword)) return std::nullopt;
  args.remove_prefix(keyword.size());
  auto open = args.find('<');
  if (open == std::string_view::npos) return std::nullopt;
  auto close = args.find('>', open);
  if (close == std::string_view::npos) return std::nullopt;
  for (std::size_t i = 0; i < open; ++i)
    if (args[i] != ' ') return std::nullopt;
  auto address = args.substr(open + 1, close - open - 1);
  if (!address.empty() && address.front() == '@') {
    auto colon = address.find(':');
    if (colon == std::string_view::npos) return std::nullopt;
    address.remove_prefix(colon + 1);
  }
  for (char c : address)
    if (static_cast<unsigned char>(c) < 0x20 || c == ' ' || c == 0x7f) return std::nullopt;
  return smtp_path{std::string(address), std::string(args.substr(close + 1))};
}

std::optional<std::uint64_t> smtp_declared_size(std::string_view params) {
  // Parameters are "keyword[=value]" separated by spaces (RFC 5321 4.1.2, esmtp-param).
  std::size_t at = 0;
  while (at < params.size()) {
    auto end = params.find(' ', at);
    auto param = params.substr(at, end == std::string_view::npos ? std::string_view::npos : end - at);
    if (param.size() >= 5 && iequals(param.substr(0, 5), "size=")) {
      std::uint64_t value = 0;
      auto digits = param.substr(5);
      if (digits.empty()) return 0;
      for (char c : digits) {
        if (c < '0' || c > '9') return 0;
        auto d = static_cast<std::uint64_t>(c - '0');
        if (value > (std::numeric_limits<std::uint64_t>::max() - d) / 10)
          return std::numeric_limits<std::uint64_t>::max();
        value = value * 10 + d;
      }
      return value;
    }
    if (end == std::string_view::npos) break;
    at = end + 1;
  }
  return std::nullopt;
}

smtp_auth_start parse_smtp_auth(std::string_view args) {
  auto end = args.find(' ');
  smtp_auth_start out;
  out.mechanism = lower(args.substr(0, end));
  if (end != std::string_view::npos) out.initial = std::string(args.substr(end + 1));
  return out;
}

std::optional<smtp_credentials> parse_sasl_plain(std::string_view decoded) {
  auto first = decoded.find('\0');
  if (first == std::string_view::npos) return std::nullopt;
  auto second = decoded.find('\0', first + 1);
  if (second == std::string_view::npos) return std::nullopt;
  return smtp_credentials{std::string(decoded.substr(first + 1, second - first - 1)),
                          std::string(decoded.substr(second + 1))};
}

bool smtp_data_reader::line(std::string_view text) {
  if (text == ".\r\n") return true;
  if (!text.empty() && text.front() == '.') text.remove_prefix(1);  // dot-unstuffing
  // A bare LF ending becomes CRLF: one octet more, counted against the limit too.
  bool bare_lf = !text.empty() && text.back() == '\n' &&
                 (text.size() >= 2 ? text[text.size() - 2] != '\r' : content_.empty() || content_.back() != '\r');
  if (too_big_ || content_.size() + text.size() + (bare_lf ? 1 : 0) > max_bytes_) {
    too_big_ = true;
    content_.clear();
    return false;
  }
  if (bare_lf) {
    content_.append(text.substr(0, text.size() - 1));
    content_.append("\r\n");
  } else {
    content_.append(text);
  }
  return false;
}

}  // namespace petrel
