// libFuzzer entry point for the bounce parser and classifier: any bytes must parse without a
// crash, a hang or a sanitizer report, and every recipient read is classified with the shipped
// rules, whose verdicts must keep the classifier's promises (net/mail/bounce.hpp): only
// invalid_recipient and bad_domain are hard, never for a transient reply, and every failure
// has a reason from the fixed vocabulary. Built and run by bench/fuzz.sh (clang-14, ASan,
// UBSan), seeded with the bounce corpus, not-bounces and charsets:
//
//   bench/fuzz.sh bounce 600
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "config/bounce_rules.hpp"
#include "net/mail/bounce.hpp"
#include "net/mail/bounce_parser.hpp"

namespace {

const petrel::bounce_classifier& shipped() {
  static const petrel::bounce_classifier classifier = [] {
    auto rules = petrel::load_bounce_rules(std::string(PETREL_SOURCE_DIR) + "/config/bounce_rules.toml");
    if (!rules) __builtin_trap();
    return petrel::bounce_classifier(*rules);
  }();
  return classifier;
}

bool clean(std::string_view text) {
  return std::none_of(text.begin(), text.end(), [](char c) {
    auto u = static_cast<unsigned char>(c);
    return u < 0x20 && u != '\t';
  });
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  auto report = petrel::parse_bounce(std::string_view(reinterpret_cast<const char*>(data), size));
  if (report.recipients.size() > petrel::max_bounce_recipients) __builtin_trap();
  for (const auto& r : report.recipients) {
    if (!clean(r.address) || !clean(r.original) || !clean(r.diagnostic) || !clean(r.status)) __builtin_trap();
    auto verdict = shipped().classify(r.reply_code, r.status, r.diagnostic, r.remote_mta, r.command);
    if (verdict.category == petrel::bounce_category::none) continue;
    bool address_level = verdict.category == petrel::bounce_category::invalid_recipient ||
                         verdict.category == petrel::bounce_category::bad_domain;
    if (verdict.hard && !address_level) __builtin_trap();
    if (verdict.hard && r.reply_code >= 400 && r.reply_code < 500) __builtin_trap();
    const auto& names = petrel::bounce_reason_names;
    if (std::find(names.begin(), names.end(), verdict.reason) == names.end()) __builtin_trap();
  }
  return 0;
}
