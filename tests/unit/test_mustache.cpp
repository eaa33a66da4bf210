// The Mustache renderer against the specification's own tests (every test of the required
// modules in tests/data/mustache-spec), then what the sending API needs beyond them: HTML
// escaping only when asked, strict mode naming the missing variable, errors with line and
// column, and bounds on hostile templates.
#include <catch2/catch.hpp>

#include <boost/json/parse.hpp>
#include <boost/json/value.hpp>

#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>

#include "net/template/mustache.hpp"

using namespace petrel;
namespace fs = std::filesystem;
namespace json = boost::json;

namespace {

std::string read_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

std::string render(const std::string& text, const json::value& data, mustache::render_options options = {}) {
  mustache::error failure;
  auto compiled = mustache::compiled_template::compile(text, failure);
  if (!compiled) return "compile error: " + failure.message;
  auto out = compiled->render(data, options, failure);
  return out ? *out : "render error: " + failure.message;
}

}  // namespace

TEST_CASE("the Mustache specification's required modules pass in full", "[mustache]") {
  int passed = 0, total = 0;
  for (const char* module : {"comments", "delimiters", "interpolation", "inverted", "partials", "sections"}) {
    auto spec = json::parse(read_file(fs::path(PETREL_TESTDATA_DIR) / "mustache-spec" / (std::string(module) + ".json")));
    for (const auto& test : spec.at("tests").as_array()) {
      const auto& t = test.as_object();
      std::map<std::string, std::string> partials;
      if (const auto* p = t.if_contains("partials"))
        for (const auto& [name, text] : p->as_object()) partials[std::string(name)] = std::string(text.as_string());
      mustache::render_options options;
      options.escape_html = true;  // the specification's {{x}} escapes HTML
      options.partials = [&](std::string_view name) -> std::optional<std::string_view> {
        auto found = partials.find(std::string(name));
        if (found == partials.end()) return std::nullopt;
        return std::string_view(found->second);
      };
      auto got = render(std::string(t.at("template").as_string()), t.at("data"), options);
      std::string expected(t.at("expected").as_string());
      INFO(module << ": " << t.at("name").as_string().c_str() << "\n" << t.at("desc").as_string().c_str());
      CHECK(got == expected);
      ++total;
      passed += got == expected ? 1 : 0;
    }
  }
  std::printf("mustache specification: %d of %d tests pass\n", passed, total);
  CHECK(total == 136);
}

TEST_CASE("{{x}} is HTML-escaped only when asked; {{{x}}} and {{& x}} never", "[mustache]") {
  auto data = json::parse(R"({"name": "<Ann & \"Bo\" O'Hara>"})");
  mustache::render_options html;
  html.escape_html = true;
  CHECK(render("Hi {{name}}", data, html) == "Hi &lt;Ann &amp; &quot;Bo&quot; O&#39;Hara&gt;");
  CHECK(render("Hi {{{name}}} {{&name}}", data, html) == "Hi <Ann & \"Bo\" O'Hara> <Ann & \"Bo\" O'Hara>");
  CHECK(render("Hi {{name}}", data) == "Hi <Ann & \"Bo\" O'Hara>");  // a text part or a subject
}

TEST_CASE("missing variables are empty, or name themselves in strict mode", "[mustache]") {
  auto data = json::parse(R"({"first": "Ann", "order": {"id": 7}})");
  CHECK(render("Dear {{first}} {{last}}, order {{order.id}}{{order.total}}", data) == "Dear Ann , order 7");
  mustache::render_options strict;
  strict.strict = true;
  CHECK(render("Dear {{first}} {{last}}", data, strict) == "render error: the variable \"last\" has no value");
  CHECK(render("{{order.total}}", data, strict) == "render error: the variable \"order.total\" has no value");
  CHECK(render("{{#coupon}}Use {{code}}{{/coupon}}done", data, strict) == "done");  // a section may be absent
  mustache::error failure;
  auto compiled = mustache::compiled_template::compile("{{a}} {{#s}}{{b.c}}{{/s}} {{{a}}} {{.}}", failure);
  REQUIRE(compiled);
  CHECK(compiled->variables() == std::vector<std::string>{"a", "b.c"});
}

TEST_CASE("values render as JSON readers expect; falsey follows JavaScript", "[mustache]") {
  auto data = json::parse(R"({"n": 3, "big": 18446744073709551615, "x": 2.5, "t": true, "z": 0, "e": "", "o": {}, "l": [1,2]})");
  CHECK(render("{{n}} {{big}} {{x}} {{t}} [{{o}}] [{{l}}]", data) == "3 18446744073709551615 2.5 true [] []");
  CHECK(render("{{#z}}zero{{/z}}{{^z}}no zero{{/z}} {{^e}}empty{{/e}} {{#o}}object{{/o}}", data) == "no zero empty object");
}

TEST_CASE("template errors name the line and column", "[mustache]") {
  auto error_of = [](const std::string& text) {
    mustache::error failure;
    auto compiled = mustache::compiled_template::compile(text, failure);
    return compiled ? std::string("compiled") : failure.message;
  };
  CHECK(error_of("Hello\n  {{name") == "line 2, column 3: unclosed tag \"{{\"");
  CHECK(error_of("{{#items}}\n{{name}}") == "unclosed section \"items\"");
  CHECK(error_of("{{#a}}{{/b}}") == "line 1, column 7: \"b\" closes the section \"a\"");
  CHECK(error_of("x {{/a}}") == "line 1, column 3: \"a\" closes no section");
  CHECK(error_of("{{=<% =}}") == "line 1, column 1: a delimiter change needs two delimiters");
  CHECK(error_of("{{}}") == "line 1, column 1: a tag without a name");
}

TEST_CASE("hostile templates stay bounded", "[mustache]") {
  mustache::error failure;
  mustache::limits small;
  small.max_template_octets = 100;
  CHECK_FALSE(mustache::compiled_template::compile(std::string(101, 'x'), failure, small));
  std::string deep;
  for (int i = 0; i < 200; ++i) deep += "{{#a}}";
  CHECK_FALSE(mustache::compiled_template::compile(deep, failure));
  CHECK_THAT(failure.message, Catch::Contains("nest deeper than 100"));

  // A partial that includes itself forever stops at the depth limit.
  mustache::render_options options;
  options.partials = [](std::string_view) -> std::optional<std::string_view> { return std::string_view("x{{>self}}"); };
  CHECK(render("{{>self}}", json::object(), options) == "render error: partials nest deeper than 32 (\"self\")");

  // Output past its limit fails instead of growing: a list of 1,000 items each 1 KB, capped at 100 KB.
  json::array items;
  for (int i = 0; i < 1000; ++i) items.push_back(json::value(std::string(1000, 'y')));
  json::object data{{"items", items}};
  options.partials = nullptr;
  options.bounds.max_output_octets = 100 * 1000;
  CHECK_THAT(render("{{#items}}{{.}}{{/items}}", data, options), Catch::Contains("longer than 100000 octets"));
}
