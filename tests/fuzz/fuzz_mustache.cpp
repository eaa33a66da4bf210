// libFuzzer entry point for the Mustache renderer: the input is a template, a NUL, then JSON
// data (and, after a second NUL, a partial named "p"). Any bytes must compile or fail with an
// error, and render within the bounds (net/template/mustache.hpp) without a crash, a hang or a
// sanitizer report. Built and run by bench/fuzz.sh, seeded with the Mustache
// specification's templates (bench/fuzz.sh mustache 600).
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include <boost/json/parse.hpp>
#include <boost/json/value.hpp>

#include "net/template/mustache.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view input(reinterpret_cast<const char*>(data), size);
  auto first = input.find('\0');
  auto text = input.substr(0, first);
  std::string_view json_text, partial;
  if (first != std::string_view::npos) {
    auto rest = input.substr(first + 1);
    auto second = rest.find('\0');
    json_text = rest.substr(0, second);
    if (second != std::string_view::npos) partial = rest.substr(second + 1);
  }
  boost::json::error_code ec;
  auto value = boost::json::parse(json_text, ec);
  if (ec) value = boost::json::object{{"name", "x"}, {"list", boost::json::array{1, 2, 3}}};

  petrel::mustache::limits bounds;
  bounds.max_output_octets = 1024 * 1024;
  petrel::mustache::error failure;
  auto compiled = petrel::mustache::compiled_template::compile(text, failure, bounds);
  if (!compiled) {
    if (failure.message.empty()) __builtin_trap();  // a failure always says why
    return 0;
  }
  for (bool escape : {false, true}) {
    petrel::mustache::render_options options;
    options.escape_html = escape;
    options.strict = escape;
    options.bounds = bounds;
    options.partials = [&](std::string_view name) -> std::optional<std::string_view> {
      if (name == "p") return partial;
      return std::nullopt;
    };
    auto out = compiled->render(value, options, failure);
    if (out && out->size() > bounds.max_output_octets) __builtin_trap();
    if (!out && failure.message.empty()) __builtin_trap();
  }
  compiled->variables();
  return 0;
}
