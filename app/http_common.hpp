// Pieces the HTTP route files share: JSON answers, timestamps, paths, bearer tokens.
#pragma once

#include <boost/json.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "net/http.hpp"
#include "storage/records.hpp"

namespace petrel {

std::int64_t now_ms();
// RFC 3339 UTC with milliseconds, e.g. 2026-11-29T01:09:39.123Z; null for 0.
boost::json::value timestamp(std::int64_t ms);
http_response json_response(int status, const boost::json::value& v);
// A tenant's tracking settings as the APIs show them (GET /v1/tracking, the admin's tenants).
boost::json::object tracking_settings_json(const tenant_record::tracking_settings& t);
// 204 No Content; `answered_empty(respond)` is the handler of a request whose success says
// nothing more (an ok_atom).
// A JSON document's text, with doubles in plain decimal form ("0.5", never "5E-1").
std::string json_text(const boost::json::value& v);
// A JSON answer whose body is already serialized.
http_response json_body(int status, std::string text);
http_response no_content();
// A small HTML page (title as heading, body as given: trusted markup), not cached.
http_response html_page(int status, const std::string& title, const std::string& body);
inline auto answered_empty(http_responder respond) {
  return [respond](auto&&...) { respond(no_content()); };
}
boost::json::value parse_or(const std::string& text, boost::json::value fallback);
std::vector<std::string> split_path(const std::string& path);
http_response method_not_allowed(const std::string& allowed);
http_response not_found();
// 409 for a cluster-only request on a node without [cluster].
http_response not_a_cluster_member();
// The `scope` query parameter of the admin views: "node" (or absent) -> false, "cluster" ->
// true; anything else -> a 400 naming it.
std::optional<bool> cluster_scope(const std::string& query, http_response& problem_out);
bool is_json(std::string_view content_type);
// The bearer token of the Authorization header, or empty.
std::string bearer_token(const http_request& request);
http_response unauthorized(const std::string& detail);
// A query parameter's value, percent-decoded; empty when absent.
std::string query_parameter(const std::string& query, std::string_view name);
// A query parameter's text as a whole decimal integer (digits, an optional leading minus);
// nothing for anything else, an empty text included.
std::optional<std::int64_t> parse_decimal(std::string_view text);
// Percent-decoding of a path segment or query value ('+' stays '+'); nullopt-free: invalid
// escapes are kept as written.
std::string percent_decode(std::string_view text);

}  // namespace petrel
