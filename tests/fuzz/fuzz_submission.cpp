// libFuzzer entry point for the submission path (app/submission_request.hpp): any bytes as the
// body of POST /v1/messages, through JSON validation, templates and the MIME builder with
// whatever field values the input holds. A refusal names a reason; an accepted message is a
// well-formed RFC 5322 message (CRLF lines of at most 998 octets, no NUL, a header block, a
// Message-ID) with at least one recipient. Built by bench/fuzz.sh.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <variant>

#include "app/submission_request.hpp"
#include "net/mail/mime_message.hpp"
#include "net/mail/template_message.hpp"

namespace {

void check_message(const std::string& m) {
  if (m.find('\0') != std::string::npos) std::abort();
  std::size_t at = 0;
  while (at < m.size()) {
    auto end = m.find("\r\n", at);
    if (end == std::string::npos) std::abort();  // every line ends in CRLF
    if (end - at > 998) std::abort();
    if (m.substr(at, end - at).find('\n') != std::string::npos) std::abort();  // no bare LF
    at = end + 2;
  }
  if (m.find("\r\n\r\n") == std::string::npos && m.rfind("\r\n") != m.size() - 2) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  petrel::mime_init();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view body(reinterpret_cast<const char*>(data), size);
  petrel::submission_settings settings;
  settings.max_message_bytes = 1 << 20;
  settings.max_json_values = 20000;
  auto result = petrel::parse_submission(body, settings, 1'800'000'000'000);
  if (auto* rejection = std::get_if<petrel::submission_rejection>(&result)) {
    if (rejection->errors.empty() || rejection->errors.front().detail.empty()) std::abort();
    return 0;
  }
  auto* m = std::get_if<petrel::message_record>(&result);
  if (!m) return 0;  // a stored template would be looked up first
  if (m->recipients.empty()) std::abort();
  if (m->templated) {
    for (const auto& r : m->recipients) {
      auto copy = petrel::render_template_copy(m->content, r.personal_json);
      if (copy) check_message(copy.value().content);
    }
  } else {
    check_message(m->content);
    if (m->message_id_header.empty()) std::abort();
  }
  return 0;
}
