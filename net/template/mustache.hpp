// Mustache templates (https://mustache.github.io/mustache.5.html) over JSON data, as the
// sending API renders a message's subject, text and HTML per recipient: variables ({{name}},
// escaped for HTML when asked; {{{name}}} and {{& name}} never), dotted names, sections and
// inverted sections over lists and objects, comments, partials and set delimiters, with the
// whitespace rules of the specification (standalone tags take their line with them). It passes
// every test of the specification's required modules (tests/unit/test_mustache.cpp).
//
// Templates come from tenants and data from their recipients: compiling and rendering never
// throw on bad input, and their work is bounded (template size, nesting, partial depth, output).
#pragma once

#include <cstddef>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace boost::json {
class value;
}

namespace petrel::mustache {

struct error {
  std::string message;  // "line 3, column 7: unclosed section \"items\""
};

struct node;  // the compiled form (mustache.cpp)

struct limits {
  std::size_t max_template_octets = 1024 * 1024;
  std::size_t max_nesting = 100;        // sections inside sections
  std::size_t max_partial_depth = 32;   // partials inside partials (recursion ends there)
  std::size_t max_output_octets = 16 * 1024 * 1024;
};

// A partial's template by name, or nothing (renders as empty, as the specification asks).
using partial_lookup = std::function<std::optional<std::string_view>(std::string_view name)>;

struct render_options {
  bool escape_html = false;  // {{name}} escapes & < > " ' (an HTML body); off for subject and text
  // A variable that resolves to nothing fails the rendering with its name, instead of
  // rendering empty (sections over missing names stay empty: that is what they are for).
  bool strict = false;
  partial_lookup partials;
  limits bounds;
};

class compiled_template {
 public:
  // Parses text; an error names the line and column and what is wrong (an unclosed tag or
  // section, a close that matches nothing, a bad delimiter change, a template too large or too
  // deeply nested).
  static std::optional<compiled_template> compile(std::string_view text, error& failure, const limits& bounds = {});

  // Renders with data as the root context. Fails (returns nothing, failure set) only in strict
  // mode for a missing variable, for a bad partial, or past the output limit.
  std::optional<std::string> render(const boost::json::value& data, const render_options& options,
                                    error& failure) const;

  // The variable names the template uses (dotted names whole, "." excluded), each once, in
  // order: for previews and for telling a caller what data a template expects.
  std::vector<std::string> variables() const;

 private:
  std::shared_ptr<const std::vector<node>> nodes_;
};

}  // namespace petrel::mustache
