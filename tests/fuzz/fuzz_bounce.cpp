// libFuzzer entry point for the bounce parser: any bytes must parse without a crash, a hang or a
// sanitizer report. Built only with Clang (tests/CMakeLists.txt, target petrel_fuzz_bounce):
//
//   cmake -S . -B build-fuzz -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
//         -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ \
//         -DCMAKE_CXX_FLAGS="-fsanitize=fuzzer-no-link,address,undefined"
//   cmake --build build-fuzz -j1 --target petrel_fuzz_bounce
//   build-fuzz/tests/petrel_fuzz_bounce -max_len=200000 -timeout=10 \
//         corpus-dir tests/data/bounces/emails tests/data/not-bounces
//
// (the first directory collects new inputs; the data folders seed it with real bounces; the
// CMAKE_CXX_FLAGS give the parser the coverage instrumentation libFuzzer steers by).
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "net/mail/bounce_parser.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  auto report = petrel::parse_bounce(std::string_view(reinterpret_cast<const char*>(data), size));
  if (report.recipients.size() > petrel::max_bounce_recipients) __builtin_trap();
  return 0;
}
