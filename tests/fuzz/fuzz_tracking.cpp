// libFuzzer entry point for tracking's parsers (net/mail/tracking.hpp): any bytes as a token
// and as an HTML part. A token is refused or reads back to the same token; any HTML is scanned
// and rewritten without a crash, a hang or a sanitizer report, and the rewritten document has
// exactly as many trackable links, each now the click URL; marking a part for tracking and
// resolving its marks gives the same links, and leaves no mark byte behind. Built and run
// by bench/fuzz.sh (bench/fuzz.sh tracking 600).
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "net/mail/tracking.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view input(reinterpret_cast<const char*>(data), size);
  const std::string secret = "fuzzing-secret-fuzzing-secret-0123456789";
  if (auto t = petrel::read_tracking_token(secret, input)) {
    if (petrel::make_tracking_token(secret, *t) != input) std::abort();  // one spelling per token
  }
  auto links = petrel::trackable_links(input);
  auto out = petrel::rewrite_html(input, [](std::size_t n) { return "https://t.example/c/" + std::to_string(n); },
                                  "https://t.example/o.gif");
  auto again = petrel::trackable_links(out);
  if (again.size() != links.size()) std::abort();
  for (std::size_t i = 0; i < again.size(); ++i)
    if (again[i] != "https://t.example/c/" + std::to_string(i + 1)) std::abort();
  std::vector<std::string> marked_links;
  auto marked = petrel::mark_tracking(input, true, true, marked_links);
  if (marked_links != links) std::abort();
  auto resolved = petrel::resolve_tracking_marks(marked, [](std::size_t n) {
    return n == 0 ? std::string("https://t.example/o.gif") : "https://t.example/c/" + std::to_string(n);
  });
  if (resolved.find_first_of("\x01\x02") != std::string::npos) std::abort();
  if (input.find_first_of("\x01\x02") == std::string_view::npos) {
    auto tracked = petrel::trackable_links(resolved);
    if (tracked.size() != links.size()) std::abort();
    for (std::size_t i = 0; i < tracked.size(); ++i)
      if (tracked[i] != "https://t.example/c/" + std::to_string(i + 1)) std::abort();
  }
  return 0;
}
