// libFuzzer entry point for the configuration loader (config/config.hpp): any bytes as a TOML
// file give a configuration or errors that name a file, a line and a reason, never a crash.
// Built by bench/fuzz.sh.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "config/config.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  auto result = petrel::load_config_text(text, "fuzz.toml");
  for (const auto& e : result.errors) {
    if (e.reason.empty() || e.file != "fuzz.toml") std::abort();
    (void)e.to_string();
  }
  return 0;
}
