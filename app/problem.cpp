// Problem details and error mapping (see problem.hpp).
#include "app/problem.hpp"

#include <cmath>

#include "actors/rate_limit_error.hpp"
#include "app/http_common.hpp"

#include <boost/json.hpp>
#include <caf/actor_system.hpp>
#include <caf/error.hpp>
#include <caf/sec.hpp>
#include <spdlog/spdlog.h>

#include "actors/protocol.hpp"
#include "net/json_input.hpp"

namespace petrel {

namespace json = boost::json;

http_response problem(int status, const std::string& slug, const std::string& title,
                      const std::string& detail, const std::vector<field_error>& errors,
                      std::int64_t retry_after_ms) {
  json::object o;
  o["type"] = "urn:petrel:problem:" + slug;
  o["title"] = title;
  o["status"] = status;
  o["detail"] = detail;
  if (!errors.empty()) {
    o["field"] = errors.front().field;
    json::array list;
    for (const auto& e : errors) list.push_back(json::object{{"field", e.field}, {"detail", e.detail}});
    o["errors"] = std::move(list);
  }
  http_response r;
  r.status = status;
  r.content_type = "application/problem+json";
  r.body = json::serialize(o);
  if (retry_after_ms > 0)
    r.headers.emplace_back("Retry-After", std::to_string((retry_after_ms + 999) / 1000));
  return r;
}

http_response problem_from_error(caf::actor_system& sys, const caf::error& e) {
  petrel_errc code;
  std::string detail;
  std::int64_t retry = 0;
  if (read_error(e, code, detail, retry)) {
    switch (code) {
      case petrel_errc::unauthorized: {
        auto r = problem(401, "unauthorized", "Unauthorized", detail);
        r.headers.emplace_back("WWW-Authenticate", "Bearer");
        return r;
      }
      case petrel_errc::not_found:
        return problem(404, "not-found", "Not Found", detail);
      case petrel_errc::rate_limited: {
        // The detail names the tenant's rate and burst; the headers say when to come back.
        auto r = problem(429, "rate-limited", "Too Many Requests", detail, {}, retry);
        auto reset = std::to_string((retry + 999) / 1000);
        if (auto limit = rate_limit_of(e); limit && limit->burst > 0 && limit->per_second > 0) {
          // The tenant's limit: a burst of N, refilled at the rate, i.e. N per N/rate seconds.
          auto window = static_cast<long long>(std::ceil(limit->burst / limit->per_second));
          r.headers.emplace_back("X-RateLimit-Limit", std::to_string(limit->burst));
          r.headers.emplace_back("RateLimit-Policy", std::to_string(limit->burst) + ";w=" + std::to_string(window));
          r.headers.emplace_back("RateLimit", "limit=" + std::to_string(limit->burst) + ", remaining=0, reset=" + reset);
        }
        r.headers.emplace_back("X-RateLimit-Remaining", "0");
        r.headers.emplace_back("X-RateLimit-Reset", reset);
        return r;
      }
      case petrel_errc::overloaded:
        return problem(503, "overloaded", "Service Unavailable", detail, {}, retry);
      case petrel_errc::store_failed:
        return problem(503, "store-unavailable", "Service Unavailable", detail, {}, retry);
      case petrel_errc::unavailable:
        return problem(503, "unavailable", "Service Unavailable", detail, {}, retry ? retry : 1000);
      case petrel_errc::conflict:
        return problem(409, "conflict", "Conflict", detail);
      case petrel_errc::suspended:
        return problem(403, "suspended", "Forbidden", detail);
      case petrel_errc::invalid:
        return invalid_request({{"", detail}});
      case petrel_errc::forbidden:
        return problem(403, "forbidden", "Forbidden", detail);
    }
  }
  // Timeouts, dead or restarting actors: the node is busy or recovering; try again.
  spdlog::warn("http.actor_error error=\"{}\"", sys.render(e));
  return problem(503, "unavailable", "Service Unavailable",
                 "the server could not complete the request now; retry", {}, 1000);
}

std::optional<http_response> parse_json_body(const std::string& body, boost::json::value& doc) {
  auto input = parse_json_input(body, json_limits{});
  if (!input)
    return invalid_request({{input.field, input.error}});
  if (!input.value.is_object())
    return invalid_request({{"", "the body must be a JSON object"}});
  doc = std::move(input.value);
  return std::nullopt;
}

std::optional<http_response> read_json_object(const http_request& request, boost::json::value& doc) {
  if (!is_json(request.header("content-type")))
    return problem(415, "unsupported-media-type", "Unsupported Media Type", "the body must be application/json");
  return parse_json_body(request.body, doc);
}

http_response invalid_request(const std::vector<field_error>& errors) {
  const auto& first = errors.front();
  auto detail = first.field.empty() ? first.detail : first.field + ": " + first.detail;
  return problem(400, "invalid-request", "Bad Request", detail, errors);
}

}  // namespace petrel
