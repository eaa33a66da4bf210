// libFuzzer entry point for the command side of Petrel's SMTP listeners (net/smtp_command.hpp):
// any bytes, read as a client's session the way net/smtp_server.cpp reads it (LF-ended lines,
// commands of at most 2,048 octets, the content after DATA up to the final dot). Every command
// is parsed; the promises are checked: a path has no control character or space, SASL PLAIN
// credentials come from between the NULs, and content kept after DATA is within its limit with
// every LF after a CR. Built by bench/fuzz.sh.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <optional>
#include <string>
#include <string_view>

#include "net/mail/base64.hpp"
#include "net/smtp_command.hpp"

namespace {

constexpr std::size_t max_command_line = 2048;  // as net/smtp_server.cpp
constexpr std::size_t max_content = 4096;       // small, so that the limit is reached

void check_path(const std::optional<petrel::smtp_path>& path) {
  if (!path) return;
  for (char c : path->address)
    if (static_cast<unsigned char>(c) < 0x20 || c == ' ' || c == 0x7f) std::abort();
}

void check_content(petrel::smtp_data_reader& reader) {
  auto content = reader.take();
  if (reader.too_big() && !content.empty()) std::abort();
  if (content.size() > max_content) std::abort();
  for (std::size_t i = 0; i < content.size(); ++i)
    if (content[i] == '\n' && (i == 0 || content[i - 1] != '\r')) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view input(reinterpret_cast<const char*>(data), size);
  std::optional<petrel::smtp_data_reader> reader;
  std::size_t at = 0;
  while (at < input.size()) {
    auto end = input.find('\n', at);
    if (end == std::string_view::npos) break;  // the server waits for the rest of a line
    auto line = input.substr(at, end + 1 - at);
    at = end + 1;
    if (reader) {
      if (reader->line(line)) {
        check_content(*reader);
        reader.reset();
      }
      continue;
    }
    if (line.size() > max_command_line) continue;  // "500 line too long"
    auto command = petrel::parse_smtp_command(line);
    if (command.args.size() >= line.size()) std::abort();
    switch (command.verb) {
      case petrel::smtp_verb::mail: {
        auto path = petrel::parse_smtp_path(command.args, "from:");
        check_path(path);
        if (path) (void)petrel::smtp_declared_size(path->params);
        break;
      }
      case petrel::smtp_verb::rcpt:
        check_path(petrel::parse_smtp_path(command.args, "to:"));
        break;
      case petrel::smtp_verb::auth: {
        auto auth = petrel::parse_smtp_auth(command.args);
        std::string decoded;
        if (petrel::decode_base64(auth.initial, decoded)) {
          if (auto credentials = petrel::parse_sasl_plain(decoded)) {
            if (credentials->user.size() + credentials->password.size() + 2 > decoded.size()) std::abort();
          }
        }
        break;
      }
      case petrel::smtp_verb::data:
        reader.emplace(max_content);
        break;
      default:
        break;
    }
  }
  if (reader) check_content(*reader);
  return 0;
}
