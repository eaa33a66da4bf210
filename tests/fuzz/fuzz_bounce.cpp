// libFuzzer entry point for the bounce parser and classifier: any bytes must parse without a
// crash, a hang or a sanitizer report, and every recipient read is classified with the shipped
// rules, whose verdicts must keep the classifier's promises (net/mail/bounce.hpp): only
// invalid_recipient and bad_domain are hard, never for a transient reply, and every failure
// has a reason from the fixed vocabulary. Built only with Clang (tests/CMakeLists.txt, target petrel_fuzz_bounce):
//
//   cmake -S . -B build-fuzz -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
//         -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ \
//         -DCMAKE_CXX_FLAGS="-fsanitize=fuzzer-no-link,address,undefined"
//   cmake --build build-fuzz -j1 --target petrel_fuzz_bounce
//   build-fuzz/tests/petrel_fuzz_bounce -max_len=200000 -timeout=10 \
//         corpus-dir tests/data/bounces/emails tests/data/not-bounces tests/data/charsets
//
// (the first directory collects new inputs; the data folders seed it with real bounces; the
// CMAKE_CXX_FLAGS give the parser the coverage instrumentation libFuzzer steers by).
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
