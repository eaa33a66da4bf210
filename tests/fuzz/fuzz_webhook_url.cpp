// libFuzzer entry point for webhook endpoint URLs (net/webhook_url.hpp), as tenants register
// them: any bytes give a URL or a reason. An accepted URL keeps its promises: a lower-case host
// of host-name characters (or an IPv6 literal), a port of 1-65535, a target that starts with '/'
// and has no space, control character, backslash or fragment, and https unless http was
// allowed. Built by bench/fuzz.sh.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "net/webhook_url.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view input(reinterpret_cast<const char*>(data), size);
  for (bool allow_http : {false, true}) {
    auto url = petrel::parse_webhook_url(input, allow_http);
    if (!url) {
      if (url.error().empty()) std::abort();  // a refusal names its reason
      continue;
    }
    const auto& u = *url;
    if (!allow_http && !u.https) std::abort();
    if (u.host.empty() || u.host.size() > 253 || u.port == 0) std::abort();
    for (char c : u.host)
      if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '-' || c == ':')) std::abort();
    if (u.target.empty() || u.target.front() != '/') std::abort();
    for (char c : u.target)
      if (static_cast<unsigned char>(c) <= 0x20 || c == 0x7f || c == '\\' || c == '#') std::abort();
  }
  return 0;
}
