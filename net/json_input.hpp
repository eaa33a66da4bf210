// JSON from clients, read strictly: a bounded number of values and nesting levels (enforced
// while parsing, so a hostile body costs at most that much memory), no duplicate keys in an
// object, and only numbers that survive a round trip (no 1e999 turning into infinity, no
// integer beyond 64 bits silently becoming an approximate double). Errors name the path of
// the offending value ("metadata.n", "to[3]").
#pragma once

#include <boost/json/value.hpp>

#include <cstddef>
#include <string>
#include <string_view>

namespace petrel {

struct json_limits {
  std::size_t max_depth = 32;        // nesting of arrays and objects
  std::size_t max_values = 10'000;   // every value counts: scalars, arrays, objects
};

struct json_input {
  boost::json::value value;  // null when error is set
  std::string field;         // where it went wrong: a JSON path, "" for the document
  std::string error;         // empty on success
  explicit operator bool() const { return error.empty(); }
};

// Parses text as one JSON document under the limits; the values are allocated from sp.
json_input parse_json_input(std::string_view text, const json_limits& limits,
                            boost::json::storage_ptr sp = {});

}  // namespace petrel
