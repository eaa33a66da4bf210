// libFuzzer entry point for the SMTP reply parser (net/smtp_reply.hpp): what a remote server
// sends, line by line. Any bytes give a reply or an error, never a crash or a hang; a parsed
// reply keeps its promises (a code of 200..599, bounded lines, an enhanced code whose class is
// the reply's). Built by bench/fuzz.sh.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "net/smtp_reply.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view input(reinterpret_cast<const char*>(data), size);
  petrel::smtp_reply reply;
  std::string error;
  if (petrel::parse_smtp_reply(input, reply, error)) {
    if (reply.code < 200 || reply.code > 599) std::abort();
    if (reply.lines.empty() || reply.lines.size() > petrel::max_reply_lines) std::abort();
    for (const auto& l : reply.lines)
      if (l.size() > petrel::max_reply_line_octets) std::abort();
    if (!reply.enhanced.empty() && reply.enhanced[0] != static_cast<char>('0' + reply.code / 100)) std::abort();
    (void)reply.text();
    (void)reply.to_string();
  } else if (error.empty()) {
    std::abort();  // a refusal names its reason
  }
  // The streaming parser, fed the same lines, agrees.
  petrel::smtp_reply_parser parser;
  std::size_t at = 0;
  while (at <= input.size()) {
    auto end = input.find('\n', at);
    auto line = input.substr(at, end == std::string_view::npos ? std::string_view::npos : end - at);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    auto s = parser.feed(line);
    if (s != petrel::smtp_reply_parser::status::more) {
      if (s == petrel::smtp_reply_parser::status::done) (void)parser.take();
      break;
    }
    if (end == std::string_view::npos) break;
    at = end + 1;
  }
  return 0;
}
