// Error answers as RFC 9457 problem details (application/problem+json), and the mapping from
// actor errors to HTTP statuses.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "app/submission_request.hpp"
#include "net/http.hpp"

namespace caf {
class error;
class actor_system;
}  // namespace caf

namespace boost::json {
class value;
}

namespace petrel {

// slug names the problem type: "urn:petrel:problem:<slug>" (listed in docs/api.md).
http_response problem(int status, const std::string& slug, const std::string& title,
                      const std::string& detail, const std::vector<field_error>& errors = {},
                      std::int64_t retry_after_ms = 0);

// 400 invalid-request naming the first field in detail and listing them all.
http_response invalid_request(const std::vector<field_error>& errors);

// A body as a JSON object in `doc`, read strictly (net/json_input.hpp: bounded, no duplicate
// keys, finite numbers); else the 400 answer naming what is wrong.
std::optional<http_response> parse_json_body(const std::string& body, boost::json::value& doc);
// The request's body as a JSON object in `doc`; else the 415 / 400 answer to give.
std::optional<http_response> read_json_object(const http_request& request, boost::json::value& doc);

// An actor's error reply as an HTTP answer (401, 404, 409, 429, 503, ...).
http_response problem_from_error(caf::actor_system& sys, const caf::error& e);

}  // namespace petrel
