// Mustache (see mustache.hpp): a one-pass compiler to a flat node list (sections keep the index
// past their end), and a renderer that walks it with a stack of JSON contexts.
#include "net/template/mustache.hpp"

#include <boost/json/value.hpp>

#include <algorithm>
#include <charconv>
#include <map>

namespace petrel::mustache {

struct node {
  enum class kind : std::uint8_t { text, variable, unescaped, section, inverted, partial };
  kind type = kind::text;
  std::string text;               // literal text, or the tag's name as written (trimmed)
  std::vector<std::string> path;  // the name split at its dots; empty for "." (the current context)
  std::size_t end = 0;            // section and inverted: the index after the section's close
  std::string indent;             // a standalone partial's indentation
};

namespace {

bool is_blank(char c) { return c == ' ' || c == '\t'; }

std::string_view trim(std::string_view s) {
  while (!s.empty() && (is_blank(s.front()) || s.front() == '\r' || s.front() == '\n')) s.remove_prefix(1);
  while (!s.empty() && (is_blank(s.back()) || s.back() == '\r' || s.back() == '\n')) s.remove_suffix(1);
  return s;
}

std::string where(std::string_view text, std::size_t pos) {
  std::size_t line = 1, column = 1;
  for (std::size_t i = 0; i < pos && i < text.size(); ++i) {
    if (text[i] == '\n') {
      ++line;
      column = 1;
    } else {
      ++column;
    }
  }
  return "line " + std::to_string(line) + ", column " + std::to_string(column) + ": ";
}

std::vector<std::string> split_name(std::string_view name) {
  std::vector<std::string> out;
  if (name == ".") return out;
  std::size_t start = 0;
  while (true) {
    auto dot = name.find('.', start);
    out.emplace_back(name.substr(start, dot == std::string_view::npos ? std::string_view::npos : dot - start));
    if (dot == std::string_view::npos) break;
    start = dot + 1;
  }
  return out;
}

// Compiles text into nodes; false with failure set on an error.
bool compile_nodes(std::string_view text, const limits& bounds, std::vector<node>& nodes, error& failure) {
  if (text.size() > bounds.max_template_octets) {
    failure.message = "the template is larger than " + std::to_string(bounds.max_template_octets) + " octets";
    return false;
  }
  std::string open = "{{", close = "}}";
  std::vector<std::size_t> sections;  // indices of the open section nodes
  std::size_t pos = 0;                // where the text not yet emitted starts
  auto fail = [&](std::size_t at, std::string why) {
    failure.message = where(text, at) + std::move(why);
    return false;
  };
  auto emit_text = [&](std::size_t from, std::size_t to) {
    // Never appended to the node before: that may be the last one inside a closed section.
    if (to > from) nodes.push_back({node::kind::text, std::string(text.substr(from, to - from)), {}, 0, {}});
  };
  while (pos < text.size()) {
    auto start = text.find(open, pos);
    if (start == std::string_view::npos) break;
    auto inner = start + open.size();
    char sigil = inner < text.size() ? text[inner] : '\0';
    std::size_t content_begin = inner, content_end = 0, tag_end = 0;
    if (sigil == '{') {  // {{{name}}}: the closing brace comes before the close delimiter
      auto found = text.find("}" + close, inner + 1);
      if (found == std::string_view::npos) return fail(start, "unclosed tag \"" + open + "{\"");
      content_begin = inner + 1;
      content_end = found;
      tag_end = found + 1 + close.size();
    } else if (sigil == '=') {
      auto found = text.find("=" + close, inner + 1);
      if (found == std::string_view::npos) return fail(start, "unclosed delimiter change");
      content_begin = inner + 1;
      content_end = found;
      tag_end = found + 1 + close.size();
    } else {
      auto found = text.find(close, inner);
      if (found == std::string_view::npos) return fail(start, "unclosed tag \"" + open + "\"");
      content_end = found;
      tag_end = found + close.size();
      if (sigil == '#' || sigil == '^' || sigil == '/' || sigil == '!' || sigil == '>' || sigil == '&') ++content_begin;
    }
    auto name = trim(text.substr(content_begin, content_end - content_begin));

    // A section, inverted, close, comment, partial or delimiter tag alone on its line takes
    // the line's indentation and line break with it.
    bool may_stand_alone = sigil == '#' || sigil == '^' || sigil == '/' || sigil == '!' || sigil == '>' || sigil == '=';
    std::size_t line_start = 0;
    if (start > 0)
      if (auto newline = text.rfind('\n', start - 1); newline != std::string_view::npos) line_start = newline + 1;
    bool standalone = false;
    std::size_t after = tag_end;
    if (may_stand_alone && line_start >= pos &&
        std::all_of(text.begin() + static_cast<std::ptrdiff_t>(line_start), text.begin() + static_cast<std::ptrdiff_t>(start), is_blank)) {
      std::size_t j = tag_end;
      while (j < text.size() && is_blank(text[j])) ++j;
      if (j == text.size()) {
        standalone = true;
        after = j;
      } else if (text[j] == '\n') {
        standalone = true;
        after = j + 1;
      } else if (text[j] == '\r' && j + 1 < text.size() && text[j + 1] == '\n') {
        standalone = true;
        after = j + 2;
      }
    }
    emit_text(pos, standalone ? line_start : start);
    pos = standalone ? after : tag_end;

    switch (sigil) {
      case '!':
        break;
      case '=': {
        auto spec = trim(name);
        auto space = spec.find_first_of(" \t");
        if (space == std::string_view::npos) return fail(start, "a delimiter change needs two delimiters");
        auto first = spec.substr(0, space);
        auto second = trim(spec.substr(space));
        if (first.empty() || second.empty() || second.find_first_of(" \t=") != std::string_view::npos ||
            first.find('=') != std::string_view::npos)
          return fail(start, "bad delimiter change \"" + std::string(spec) + "\"");
        open = std::string(first);
        close = std::string(second);
        break;
      }
      case '#':
      case '^':
        if (name.empty()) return fail(start, "a section without a name");
        if (sections.size() >= bounds.max_nesting)
          return fail(start, "sections nest deeper than " + std::to_string(bounds.max_nesting));
        sections.push_back(nodes.size());
        nodes.push_back({sigil == '#' ? node::kind::section : node::kind::inverted, std::string(name), split_name(name), 0, {}});
        break;
      case '/': {
        if (sections.empty()) return fail(start, "\"" + std::string(name) + "\" closes no section");
        auto& opened = nodes[sections.back()];
        if (opened.text != name)
          return fail(start, "\"" + std::string(name) + "\" closes the section \"" + opened.text + "\"");
        opened.end = nodes.size();
        sections.pop_back();
        break;
      }
      case '>': {
        node n{node::kind::partial, std::string(name), {}, 0, {}};
        if (standalone) n.indent = std::string(text.substr(line_start, start - line_start));
        nodes.push_back(std::move(n));
        break;
      }
      default: {
        if (name.empty()) return fail(start, "a tag without a name");
        bool raw = sigil == '{' || sigil == '&';
        nodes.push_back({raw ? node::kind::unescaped : node::kind::variable, std::string(name), split_name(name), 0, {}});
      }
    }
  }
  emit_text(pos, text.size());
  if (!sections.empty()) {
    const auto& opened = nodes[sections.back()];
    failure.message = "unclosed section \"" + opened.text + "\"";
    return false;
  }
  return true;
}

// JavaScript's truthiness, as mustache.js (the reference most users know): false, null, "", 0
// and empty lists are false.
bool truthy(const boost::json::value& v) {
  switch (v.kind()) {
    case boost::json::kind::null: return false;
    case boost::json::kind::bool_: return v.get_bool();
    case boost::json::kind::string: return !v.get_string().empty();
    case boost::json::kind::int64: return v.get_int64() != 0;
    case boost::json::kind::uint64: return v.get_uint64() != 0;
    case boost::json::kind::double_: return v.get_double() != 0.0;
    case boost::json::kind::array: return !v.get_array().empty();
    case boost::json::kind::object: return true;
  }
  return false;
}

void append_value(const boost::json::value& v, std::string& out) {
  switch (v.kind()) {
    case boost::json::kind::string: out.append(v.get_string().data(), v.get_string().size()); return;
    case boost::json::kind::int64: out += std::to_string(v.get_int64()); return;
    case boost::json::kind::uint64: out += std::to_string(v.get_uint64()); return;
    case boost::json::kind::double_: {
      char buffer[64];
      auto [end, ec] = std::to_chars(buffer, buffer + sizeof buffer, v.get_double());
      if (ec == std::errc()) out.append(buffer, end);
      return;
    }
    case boost::json::kind::bool_: out += v.get_bool() ? "true" : "false"; return;
    default: return;  // null, objects and lists render as nothing
  }
}

void append_escaped(std::string_view s, std::string& out) {
  for (char c : s) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      case '\'': out += "&#39;"; break;
      default: out.push_back(c);
    }
  }
}

// A partial's text with indent before each of its lines (the specification indents the
// template, not what its variables render to).
std::string indented(std::string_view text, const std::string& indent) {
  std::string out = indent;
  for (std::size_t i = 0; i < text.size(); ++i) {
    out.push_back(text[i]);
    if (text[i] == '\n' && i + 1 < text.size()) out += indent;
  }
  return out;
}

struct renderer {
  const render_options& options;
  error& failure;
  std::string out;
  std::vector<const boost::json::value*> stack;
  std::map<std::string, std::shared_ptr<const std::vector<node>>> partials;  // by name and indent
  std::size_t depth = 0;

  // The value a name stands for: its first part is looked up from the innermost context
  // outwards, the rest inside what that found (a broken chain is a miss, not a search further
  // out); "." is the innermost context.
  const boost::json::value* resolve(const std::vector<std::string>& path) const {
    if (path.empty()) return stack.back();
    const boost::json::value* found = nullptr;
    for (auto it = stack.rbegin(); it != stack.rend(); ++it) {
      if (const auto* object = (*it)->if_object())
        if (const auto* v = object->if_contains(path.front())) {
          found = v;
          break;
        }
    }
    for (std::size_t i = 1; found && i < path.size(); ++i) {
      const auto* object = found->if_object();
      found = object ? object->if_contains(path[i]) : nullptr;
    }
    return found;
  }

  bool too_long() {
    if (out.size() <= options.bounds.max_output_octets) return false;
    failure.message = "the rendered text is longer than " + std::to_string(options.bounds.max_output_octets) + " octets";
    return true;
  }

  bool run(const std::vector<node>& nodes, std::size_t from, std::size_t to) {
    for (std::size_t i = from; i < to; ++i) {
      const auto& n = nodes[i];
      switch (n.type) {
        case node::kind::text:
          out += n.text;
          break;
        case node::kind::variable:
        case node::kind::unescaped: {
          const auto* v = resolve(n.path);
          if (!v) {
            if (options.strict) {
              failure.message = "the variable \"" + n.text + "\" has no value";
              return false;
            }
            break;
          }
          if (n.type == node::kind::variable && options.escape_html) {
            std::string plain;
            append_value(*v, plain);
            append_escaped(plain, out);
          } else {
            append_value(*v, out);
          }
          break;
        }
        case node::kind::section:
        case node::kind::inverted: {
          const auto* v = resolve(n.path);
          bool on = v && truthy(*v);
          if (n.type == node::kind::inverted) {
            if (!on && !run(nodes, i + 1, n.end)) return false;
          } else if (on) {
            if (const auto* list = v->if_array()) {
              for (const auto& item : *list) {
                stack.push_back(&item);
                bool ok = run(nodes, i + 1, n.end);
                stack.pop_back();
                if (!ok) return false;
              }
            } else {
              stack.push_back(v);
              bool ok = run(nodes, i + 1, n.end);
              stack.pop_back();
              if (!ok) return false;
            }
          }
          i = n.end - 1;
          break;
        }
        case node::kind::partial:
          if (!partial(n)) return false;
          break;
      }
      if (too_long()) return false;
    }
    return true;
  }

  bool partial(const node& n) {
    if (!options.partials) return true;
    auto text = options.partials(n.text);
    if (!text) return true;  // an unknown partial renders as nothing
    if (depth >= options.bounds.max_partial_depth) {
      failure.message = "partials nest deeper than " + std::to_string(options.bounds.max_partial_depth) +
                        " (\"" + n.text + "\")";
      return false;
    }
    auto key = n.text + '\0' + n.indent;
    auto& compiled = partials[key];
    if (!compiled) {
      auto nodes = std::make_shared<std::vector<node>>();
      error inner;
      auto source = n.indent.empty() ? std::string(*text) : indented(*text, n.indent);
      if (!compile_nodes(source, options.bounds, *nodes, inner)) {
        failure.message = "partial \"" + n.text + "\": " + inner.message;
        return false;
      }
      compiled = std::move(nodes);
    }
    auto keep = compiled;  // the map may grow while this one renders
    ++depth;
    bool ok = run(*keep, 0, keep->size());
    --depth;
    return ok;
  }
};

}  // namespace

std::optional<compiled_template> compiled_template::compile(std::string_view text, error& failure,
                                                             const limits& bounds) {
  auto nodes = std::make_shared<std::vector<node>>();
  if (!compile_nodes(text, bounds, *nodes, failure)) return std::nullopt;
  compiled_template out;
  out.nodes_ = std::move(nodes);
  return out;
}

std::optional<std::string> compiled_template::render(const boost::json::value& data, const render_options& options,
                                                     error& failure) const {
  renderer r{options, failure, {}, {&data}, {}, 0};
  if (!nodes_ || !r.run(*nodes_, 0, nodes_->size())) return std::nullopt;
  return std::move(r.out);
}

std::vector<std::string> compiled_template::variables() const {
  std::vector<std::string> out;
  if (!nodes_) return out;
  for (const auto& n : *nodes_)
    if ((n.type == node::kind::variable || n.type == node::kind::unescaped) && n.text != "." &&
        std::find(out.begin(), out.end(), n.text) == out.end())
      out.push_back(n.text);
  return out;
}

}  // namespace petrel::mustache
