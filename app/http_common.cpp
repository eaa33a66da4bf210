// Shared pieces of the HTTP routes (see http_common.hpp).
#include "app/http_common.hpp"

#include "actors/actor_support.hpp"

#include <charconv>
#include <chrono>
#include <cmath>
#include <ctime>

#include "app/problem.hpp"

namespace petrel {

namespace json = boost::json;

std::int64_t now_ms() { return clock_ms(); }

// RFC 3339 UTC with milliseconds, e.g. 2026-11-29T01:09:39.123Z; null for 0.
json::value timestamp(std::int64_t ms) {
  if (ms <= 0) return nullptr;
  return json::value(rfc3339(ms));
}

http_response html_page(int status, const std::string& title, const std::string& body) {
  http_response r;
  r.status = status;
  r.content_type = "text/html; charset=utf-8";
  r.body = "<!doctype html><html><head><meta charset=\"utf-8\"><title>" + title +
           "</title></head><body><h1>" + title + "</h1>" + body + "</body></html>";
  r.headers.emplace_back("Cache-Control", "no-store");
  return r;
}

json::object tracking_settings_json(const tenant_record::tracking_settings& t) {
  return json::object{{"opens", t.opens},
                      {"clicks", t.clicks},
                      {"record_ip", t.record_ip},
                      {"domain", t.domain.empty() ? json::value(nullptr) : json::value(t.domain)},
                      {"verified", t.verified},
                      {"checked_at", timestamp(t.checked_at_ms)},
                      {"status", t.status.empty() ? json::value(nullptr) : json::value(t.status)}};
}

namespace {

// JSON text with numbers as people write them: Boost.JSON prints every double in exponent form
// ("5E0", "9.767441860465116E-1"); here a double is its shortest round-trip form ("5", "0.9767",
// "1e-07" only when tiny), the rest as Boost.JSON writes it.
void write_json(std::string& out, const json::value& v) {
  switch (v.kind()) {
    case json::kind::object: {
      out += '{';
      bool first = true;
      for (const auto& kv : v.get_object()) {
        if (!first) out += ',';
        first = false;
        out += json::serialize(json::string(kv.key()));
        out += ':';
        write_json(out, kv.value());
      }
      out += '}';
      return;
    }
    case json::kind::array: {
      out += '[';
      bool first = true;
      for (const auto& item : v.get_array()) {
        if (!first) out += ',';
        first = false;
        write_json(out, item);
      }
      out += ']';
      return;
    }
    case json::kind::double_: {
      auto d = v.get_double();
      if (!std::isfinite(d)) {
        out += "null";
        return;
      }
      char buffer[64];
      auto [end, ec] = std::to_chars(buffer, buffer + sizeof buffer, d);
      out.append(buffer, ec == std::errc{} ? end : buffer);
      return;
    }
    default:
      out += json::serialize(v);
  }
}

}  // namespace

std::string json_text(const json::value& v) {
  std::string out;
  write_json(out, v);
  return out;
}

http_response json_response(int status, const json::value& v) {
  http_response r;
  r.status = status;
  r.content_type = "application/json";
  r.body = json_text(v);
  return r;
}

http_response json_body(int status, std::string text) {
  http_response r;
  r.status = status;
  r.content_type = "application/json";
  r.body = std::move(text);
  return r;
}

http_response no_content() {
  http_response r;
  r.status = 204;
  return r;
}

json::value parse_or(const std::string& text, json::value fallback) {
  boost::system::error_code ec;
  auto v = json::parse(text, ec);
  return ec ? fallback : v;
}

std::vector<std::string> split_path(const std::string& path) {
  std::vector<std::string> out;
  std::size_t start = 1;
  while (start <= path.size()) {
    auto end = path.find('/', start);
    if (end == std::string::npos) end = path.size();
    if (end > start) out.push_back(path.substr(start, end - start));
    start = end + 1;
  }
  return out;
}

http_response method_not_allowed(const std::string& allowed) {
  auto r = problem(405, "method-not-allowed", "Method Not Allowed",
                   "this resource accepts " + allowed);
  r.headers.emplace_back("Allow", allowed);
  return r;
}

http_response not_found() {
  return problem(404, "not-found", "Not Found", "no such resource");
}

http_response not_a_cluster_member() {
  return problem(409, "conflict", "Conflict", "this node is not a cluster member ([cluster] enabled = false)");
}

std::optional<bool> cluster_scope(const std::string& query, http_response& problem_out) {
  auto scope = query_parameter(query, "scope");
  if (scope.empty() || scope == "node") return false;
  if (scope == "cluster") return true;
  problem_out = invalid_request({{"scope", "\"node\" (this node, the default) or \"cluster\" (every member)"}});
  return std::nullopt;
}

bool is_json(std::string_view content_type) {
  auto semicolon = content_type.find(';');
  auto base = content_type.substr(0, semicolon);
  while (!base.empty() && base.back() == ' ') base.remove_suffix(1);
  std::string lower(base);
  for (auto& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return lower == "application/json";
}

// The bearer token of the Authorization header, or empty.
std::string bearer_token(const http_request& request) {
  auto header = request.header("authorization");
  if (header.size() < 7) return {};
  std::string scheme(header.substr(0, 7));
  for (auto& c : scheme) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (scheme != "bearer ") return {};
  auto token = header.substr(7);
  while (!token.empty() && token.front() == ' ') token.remove_prefix(1);
  while (!token.empty() && token.back() == ' ') token.remove_suffix(1);
  return std::string(token);
}

http_response unauthorized(const std::string& detail) {
  auto r = problem(401, "unauthorized", "Unauthorized", detail);
  r.headers.emplace_back("WWW-Authenticate", "Bearer");
  return r;
}

std::string percent_decode(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  auto hex = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '%' && i + 2 < text.size() && hex(text[i + 1]) >= 0 && hex(text[i + 2]) >= 0) {
      out.push_back(static_cast<char>(hex(text[i + 1]) * 16 + hex(text[i + 2])));
      i += 2;
    } else {
      out.push_back(text[i]);
    }
  }
  return out;
}

std::optional<std::int64_t> parse_decimal(std::string_view text) {
  std::int64_t n = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), n);
  if (ec != std::errc() || end != text.data() + text.size()) return std::nullopt;
  return n;
}

std::string query_parameter(const std::string& query, std::string_view name) {
  std::size_t pos = 0;
  while (pos <= query.size()) {
    auto end = query.find('&', pos);
    if (end == std::string::npos) end = query.size();
    std::string_view pair(query.data() + pos, end - pos);
    auto eq = pair.find('=');
    if (pair.substr(0, eq) == name)
      return eq == std::string_view::npos ? std::string() : percent_decode(pair.substr(eq + 1));
    pos = end + 1;
  }
  return {};
}

}  // namespace petrel
