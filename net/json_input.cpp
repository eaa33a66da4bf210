// Strict JSON reading (see json_input.hpp): Boost.JSON's incremental parser with a handler
// that builds the value like boost::json::parser does, and checks as it goes.
#include "net/json_input.hpp"

#include <boost/json/basic_parser_impl.hpp>
#include <boost/json/value_stack.hpp>

#include <algorithm>
#include <cmath>
#include <unordered_set>
#include <vector>

namespace petrel {

namespace json = boost::json;

namespace {

// Keys of one object are compared linearly up to this many, then through a hash set: small
// objects (the usual case) cost no allocation beyond the keys themselves.
constexpr std::size_t linear_key_search = 16;

struct frame {
  bool is_object = false;
  std::size_t index = 0;        // arrays: position of the current element
  std::string key;              // objects: the current member's key
  std::vector<std::string> keys;
  std::unordered_set<std::string> key_set;

  void reset(bool object) {
    is_object = object;
    index = 0;
    key.clear();
    keys.clear();
    key_set.clear();
  }
  // false when the key was seen before in this object.
  bool add_key(const std::string& k) {
    if (keys.size() < linear_key_search) {
      if (std::find(keys.begin(), keys.end(), k) != keys.end()) return false;
      keys.push_back(k);
      if (keys.size() == linear_key_search) key_set.insert(keys.begin(), keys.end());
      return true;
    }
    return key_set.insert(k).second;
  }
};

struct strict_handler {
  // No container or string limit of its own: the value count and the body size bound them.
  static constexpr std::size_t max_object_size = static_cast<std::size_t>(-1);
  static constexpr std::size_t max_array_size = static_cast<std::size_t>(-1);
  static constexpr std::size_t max_key_size = static_cast<std::size_t>(-1);
  static constexpr std::size_t max_string_size = static_cast<std::size_t>(-1);

  explicit strict_handler(std::size_t max_values_) : max_values(max_values_) {}

  json::value_stack st;
  std::size_t max_values;
  std::size_t values = 0;
  std::vector<frame> frames;  // reused across depth changes: frames[0..depth)
  std::size_t depth = 0;
  std::string key_part;     // a key arriving in pieces
  std::string number_part;  // a number arriving in pieces
  std::string field;        // set with detail when a check fails
  std::string detail;

  std::string path() const {
    std::string out;
    for (std::size_t i = 0; i < depth; ++i) {
      const auto& f = frames[i];
      if (f.is_object) {
        if (!out.empty()) out += '.';
        out += f.key;
      } else {
        out += '[' + std::to_string(f.index) + ']';
      }
    }
    return out;
  }

  bool fail(std::string why, json::error_code& ec) {
    field = path();
    detail = std::move(why);
    ec = json::error::exception;  // any code: the handler's detail says what happened
    return false;
  }

  // Every value passes here before it is built.
  bool count(json::error_code& ec) {
    if (++values > max_values)
      return fail("the document has more than " + std::to_string(max_values) + " values", ec);
    return true;
  }
  // After a complete value: the next array element gets the next index.
  void done() {
    if (depth > 0 && !frames[depth - 1].is_object) ++frames[depth - 1].index;
  }
  void open(bool object) {
    if (frames.size() <= depth) frames.emplace_back();
    frames[depth++].reset(object);
  }

  bool on_document_begin(json::error_code&) { return true; }
  bool on_document_end(json::error_code&) { return true; }
  bool on_object_begin(json::error_code& ec) {
    if (!count(ec)) return false;
    open(true);
    return true;
  }
  bool on_object_end(std::size_t n, json::error_code&) {
    st.push_object(n);
    --depth;
    done();
    return true;
  }
  bool on_array_begin(json::error_code& ec) {
    if (!count(ec)) return false;
    open(false);
    return true;
  }
  bool on_array_end(std::size_t n, json::error_code&) {
    st.push_array(n);
    --depth;
    done();
    return true;
  }
  bool on_key_part(json::string_view s, std::size_t, json::error_code&) {
    st.push_chars(s);
    key_part.append(s.data(), s.size());
    return true;
  }
  bool on_key(json::string_view s, std::size_t, json::error_code& ec) {
    st.push_key(s);
    auto& f = frames[depth - 1];
    f.key = std::move(key_part);
    key_part.clear();
    f.key.append(s.data(), s.size());
    if (!f.add_key(f.key)) return fail("the key appears twice in the same object", ec);
    return true;
  }
  bool on_string_part(json::string_view s, std::size_t, json::error_code&) {
    st.push_chars(s);
    return true;
  }
  bool on_string(json::string_view s, std::size_t, json::error_code& ec) {
    if (!count(ec)) return false;
    st.push_string(s);
    done();
    return true;
  }
  bool on_number_part(json::string_view s, json::error_code&) {
    number_part.append(s.data(), s.size());
    return true;
  }
  bool on_int64(std::int64_t i, json::string_view, json::error_code& ec) {
    number_part.clear();
    if (!count(ec)) return false;
    st.push_int64(i);
    done();
    return true;
  }
  bool on_uint64(std::uint64_t u, json::string_view, json::error_code& ec) {
    number_part.clear();
    if (!count(ec)) return false;
    st.push_uint64(u);
    done();
    return true;
  }
  bool on_double(double d, json::string_view s, json::error_code& ec) {
    number_part.append(s.data(), s.size());
    bool integer_text = number_part.find_first_of(".eE") == std::string::npos;
    number_part.clear();
    if (!count(ec)) return false;
    // JSON has no infinity: 1e999 would be stored as a value no JSON reader takes back.
    if (!std::isfinite(d)) return fail("the number is out of range (not a finite double)", ec);
    // An integer past 64 bits parses as an approximate double: refused rather than changed.
    if (integer_text)
      return fail("the integer is out of range (beyond 64 bits; send it as a string)", ec);
    st.push_double(d);
    done();
    return true;
  }
  bool on_bool(bool b, json::error_code& ec) {
    if (!count(ec)) return false;
    st.push_bool(b);
    done();
    return true;
  }
  bool on_null(json::error_code& ec) {
    if (!count(ec)) return false;
    st.push_null();
    done();
    return true;
  }
  bool on_comment_part(json::string_view, json::error_code&) { return true; }
  bool on_comment(json::string_view, json::error_code&) { return true; }
};

}  // namespace

json_input parse_json_input(std::string_view text, const json_limits& limits,
                            json::storage_ptr sp) {
  json_input out;
  json::parse_options options;
  options.max_depth = limits.max_depth;
  json::basic_parser<strict_handler> parser(options, limits.max_values);
  parser.handler().st.reset(std::move(sp));
  json::error_code ec;
  auto used = parser.write_some(false, text.data(), text.size(), ec);
  if (!ec && used < text.size()) ec = json::error::extra_data;
  if (ec) {
    auto& h = parser.handler();
    if (!h.detail.empty()) {
      out.field = std::move(h.field);
      out.error = std::move(h.detail);
    } else if (ec == json::error::too_deep) {
      out.error = "the document is nested deeper than " + std::to_string(limits.max_depth) +
                  " levels";
    } else {
      // Where, as an editor shows it: line and column (1-based, in bytes) of the failing byte.
      std::size_t line = 1, column = 1;
      for (std::size_t i = 0; i < used && i < text.size(); ++i) {
        if (text[i] == '\n') {
          ++line;
          column = 1;
        } else {
          ++column;
        }
      }
      out.error = "not valid JSON: " + ec.message() + " at line " + std::to_string(line) + ", column " +
                  std::to_string(column) + " (byte " + std::to_string(used) + ")";
    }
    return out;
  }
  out.value = parser.handler().st.release();
  return out;
}

}  // namespace petrel
