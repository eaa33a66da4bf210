// The web console's side of the admin listener (docs/console.md): its embedded files under
// /ui/, login and logout with a session cookie, the admin API's authentication by token or
// session (with CSRF and same-origin checks), and the admin endpoints the console reads beyond
// the others: /admin/activity and the tenant API's handlers acting for a tenant.
#include <boost/json.hpp>
#include <caf/all.hpp>
#include <spdlog/spdlog.h>

#include "actors/activity.hpp"
#include "actors/api_key.hpp"
#include "app/console/console_assets.hpp"
#include "app/console/console_sessions.hpp"
#include "app/http_api.hpp"
#include "app/http_common.hpp"
#include "app/problem.hpp"

namespace petrel {

namespace json = boost::json;

namespace {

constexpr const char* cookie_name = "petrel_session";

// The console's pages run only the console's own files: no inline code, no other origin, not
// framed by anyone.
void secure_headers(http_response& r) {
  r.headers.emplace_back("Content-Security-Policy",
                         "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                         "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'");
  r.headers.emplace_back("X-Content-Type-Options", "nosniff");
  r.headers.emplace_back("X-Frame-Options", "DENY");
  r.headers.emplace_back("Referrer-Policy", "no-referrer");
  r.headers.emplace_back("Cross-Origin-Opener-Policy", "same-origin");
  r.headers.emplace_back("Cross-Origin-Resource-Policy", "same-origin");
}

std::string session_cookie(const http_request& request) {
  auto header = request.header("cookie");
  // name=value pairs separated by "; " (RFC 6265 4.2.1).
  std::size_t i = 0;
  while (i < header.size()) {
    auto end = header.find(';', i);
    if (end == std::string_view::npos) end = header.size();
    auto pair = header.substr(i, end - i);
    while (!pair.empty() && pair.front() == ' ') pair.remove_prefix(1);
    auto eq = pair.find('=');
    if (eq != std::string_view::npos && pair.substr(0, eq) == cookie_name) return std::string(pair.substr(eq + 1));
    i = end + 1;
  }
  return {};
}

std::string set_cookie(const http_request& request, const std::string& value, std::int64_t max_age_s) {
  auto c = std::string(cookie_name) + "=" + value + "; Path=/; HttpOnly; SameSite=Strict; Max-Age=" +
           std::to_string(max_age_s);
  if (request.secure) c += "; Secure";
  return c;
}

// A request the browser made for a page of this origin: an Origin header, when sent, names this
// host, and Sec-Fetch-Site, when sent, says same-origin.
bool same_origin(const http_request& request) {
  auto origin = request.header("origin");
  if (!origin.empty()) {
    auto host = std::string(request.header("host"));
    if (host.empty() || (origin != "http://" + host && origin != "https://" + host)) return false;
  }
  auto site = request.header("sec-fetch-site");
  return site.empty() || site == "same-origin" || site == "none";
}

http_response forbidden(const std::string& detail) {
  return problem(403, "forbidden", "Forbidden", detail);
}

}  // namespace

std::optional<http_response> http_api::admin_authentication(const http_request& request, bool& console) {
  auto token = bearer_token(request);
  const char* where = "admin.token, or the file admin.token_file (default <storage.data_dir>/admin.token)";
  if (!token.empty()) {
    if (constant_time_equal(token, admin_token_)) return std::nullopt;
    return unauthorized(token.rfind("pk_", 0) == 0
                            ? std::string("this is an API key; the admin API needs the admin token (") + where + ")"
                            : std::string("the admin token is wrong: it is the one in ") + where);
  }
  auto cookie = cfg_.admin.console ? session_cookie(request) : std::string();
  if (cookie.empty())
    return unauthorized(std::string("the admin token is required: Authorization: Bearer <token>, from ") + where);
  auto session = sessions_->find(cookie, now_ms());
  if (!session) return unauthorized("the console session has ended (logged out or expired): log in again at /ui/");
  const auto& m = request.method;
  if (m != "GET" && m != "HEAD") {
    if (!same_origin(request)) return forbidden("a console action must come from the console's own pages");
    if (!constant_time_equal(request.header("x-csrf-token"), session->csrf))
      return forbidden("the X-CSRF-Token header is missing or does not match the session");
  }
  console = true;
  return std::nullopt;
}

void http_api::console_request(http_request&& request, http_responder respond) {
  const auto& method = request.method;
  auto secured = [respond](http_response r) {
    secure_headers(r);
    respond(std::move(r));
  };
  if (request.path == "/" || request.path == "/ui") {
    if (method != "GET" && method != "HEAD") return secured(method_not_allowed("GET"));
    http_response r;
    r.status = 302;
    r.content_type = "text/plain; charset=utf-8";
    r.headers.emplace_back("Location", "/ui/");
    r.body = "the console is at /ui/\n";
    return secured(std::move(r));
  }
  if (request.path != "/favicon.ico" && request.path.rfind("/ui/", 0) != 0) return secured(not_found());
  auto asset_name = [&]() -> std::string {
    if (request.path == "/favicon.ico") return "favicon.svg";
    if (request.path == "/ui/") return "index.html";
    auto name = request.path.substr(4);
    return name == "login" || name == "logout" || name == "session" ? std::string() : name;
  }();
  if (!asset_name.empty()) {
    if (method != "GET" && method != "HEAD") return secured(method_not_allowed("GET"));
    const auto* a = find_console_asset(asset_name);
    if (!a) return secured(not_found());
    http_response r;
    r.content_type = std::string(a->content_type);
    r.headers.emplace_back("ETag", std::string(a->etag));
    // Pages are checked again on every visit (the binary may have changed); the rest too, but
    // an unchanged file costs a 304.
    r.headers.emplace_back("Cache-Control", "no-cache");
    if (request.header("if-none-match") == a->etag) {
      r.status = 304;
    } else {
      r.body = std::string(a->body);
    }
    return secured(std::move(r));
  }
  auto now = now_ms();
  if (request.path == "/ui/login") {
    if (method != "POST") return secured(method_not_allowed("POST"));
    if (!same_origin(request)) return secured(forbidden("a login must come from the console's own page"));
    if (auto wait = sessions_->login_blocked(request.remote_address, now)) {
      auto r = problem(429, "rate-limited", "Too Many Requests",
                       "too many failed logins from this address; try again in " + std::to_string(wait) + " s");
      r.headers.emplace_back("Retry-After", std::to_string(wait));
      return secured(std::move(r));
    }
    json::value doc;
    if (auto bad = read_json_object(request, doc)) return secured(std::move(*bad));
    const auto* token = doc.get_object().if_contains("token");
    if (!token || !token->is_string() || token->get_string().empty())
      return secured(invalid_request({{"token", "required: the admin token"}}));
    if (!constant_time_equal(std::string_view(token->get_string()), admin_token_)) {
      sessions_->login_failed(request.remote_address, now);
      spdlog::warn("console.login_failed client={}", request.remote_address);
      return secured(unauthorized(std::string(token->get_string()).rfind("pk_", 0) == 0
                                      ? "this is a tenant's API key; the console needs the admin token"
                                      : "the admin token is wrong (admin.token or the file admin.token_file)"));
    }
    auto created = sessions_->create(now);
    spdlog::info("console.login client={}", request.remote_address);
    auto r = json_response(200, json::object{{"csrf", created.csrf}, {"expires_at", timestamp(created.expires_ms)}});
    r.headers.emplace_back("Set-Cookie", set_cookie(request, created.cookie, (created.expires_ms - now) / 1000));
    r.headers.emplace_back("Cache-Control", "no-store");
    return secured(std::move(r));
  }
  auto cookie = session_cookie(request);
  auto session = cookie.empty() ? std::nullopt : sessions_->find(cookie, now);
  if (request.path == "/ui/logout") {
    if (method != "POST") return secured(method_not_allowed("POST"));
    if (session) {
      if (!same_origin(request) || !constant_time_equal(request.header("x-csrf-token"), session->csrf))
        return secured(forbidden("the X-CSRF-Token header is missing or does not match the session"));
      sessions_->remove(cookie);
      spdlog::info("console.logout client={}", request.remote_address);
    }
    auto r = no_content();
    r.headers.emplace_back("Set-Cookie", set_cookie(request, "", 0));
    return secured(std::move(r));
  }
  if (request.path == "/ui/session") {
    if (method != "GET") return secured(method_not_allowed("GET"));
    // (Not logged in is a 200 too: the page asks before it knows, and a browser reports every
    // 4xx as an error.)
    if (!session) {
      auto r = json_response(200, json::object{{"logged_in", false}});
      r.headers.emplace_back("Cache-Control", "no-store");
      return secured(std::move(r));
    }
    auto r = json_response(
        200, json::object{{"logged_in", true},
                          {"csrf", session->csrf},
                          {"expires_at", timestamp(session->expires_ms)},
                          {"node", cfg_.cluster.enabled ? json::value(cfg_.cluster.node_name) : json::value(nullptr)},
                          {"cluster", cfg_.cluster.enabled},
                          {"warn_deferred", cfg_.admin.console_warn_deferred},
                          {"api_listen", cfg_.http.listen.to_string()}});
    r.headers.emplace_back("Cache-Control", "no-store");
    return secured(std::move(r));
  }
  secured(not_found());
}

void http_api::admin_as_tenant(http_request&& request, const std::vector<std::string>& parts,
                               http_responder respond) {
  const auto& method = request.method;
  std::vector<std::string> v1{"v1"};
  v1.insert(v1.end(), parts.begin() + 3, parts.end());
  request.acting_tenant = parts[2];
  const auto& what = parts[3];
  if (what == "suppressions") return suppressions(std::move(request), v1, std::move(respond));
  if (what == "webhooks") return webhooks(std::move(request), v1, std::move(respond));
  if (what == "domains") return sender_domains(std::move(request), v1, std::move(respond));
  if (what == "templates") return templates(std::move(request), v1, std::move(respond));
  if (what == "tracking") return tracking_settings(std::move(request), v1, std::move(respond));
  if (what == "events" && v1.size() == 2) {
    if (method != "GET") return respond(method_not_allowed("GET"));
    return events(std::move(request), std::move(respond));
  }
  if (what == "stats" && v1.size() == 2) {
    if (method != "GET") return respond(method_not_allowed("GET"));
    return stats(std::move(request), std::move(respond));
  }
  if (what == "messages") {
    if (v1.size() == 2) {
      if (method != "GET") return respond(method_not_allowed("GET"));
      return search_messages(std::move(request), std::move(respond));
    }
    if (v1.size() == 3) {
      if (method != "GET") return respond(method_not_allowed("GET"));
      return get_message(request, v1[2], std::move(respond));
    }
    if (v1.size() == 4 && v1[3] == "content") {
      if (method != "GET") return respond(method_not_allowed("GET"));
      return get_message_content(request, v1[2], std::move(respond));
    }
    if (v1.size() == 4 && v1[3] == "cancel") {
      if (method != "POST") return respond(method_not_allowed("POST"));
      return cancel_messages(request, v1[2], "", std::move(respond));
    }
  }
  respond(not_found());
}

// GET /admin/activity?minutes=N: this node's recipients accepted and outcomes per minute over
// the last N minutes (default 180, at most 1,440), oldest first; kept in memory since the start.
void http_api::admin_activity(const http_request& request, http_responder respond) {
  int minutes = 180;
  if (auto m = query_parameter(request.query, "minutes"); !m.empty()) {
    auto n = parse_decimal(m);
    if (!n || *n < 1 || *n > 1440) return respond(invalid_request({{"minutes", "an integer from 1 to 1440"}}));
    minutes = static_cast<int>(*n);
  }
  json::array rows;
  json::object totals;
  for (unsigned k = 0; k < activity_kinds; ++k) totals[activity_name(static_cast<activity>(k))] = std::uint64_t{0};
  for (const auto& row : activity_history(now_ms(), minutes)) {
    json::object o{{"start", timestamp(row.start_ms)}};
    for (unsigned k = 0; k < activity_kinds; ++k) {
      const char* name = activity_name(static_cast<activity>(k));
      o[name] = row.counts[k];
      totals[name] = totals[name].as_uint64() + row.counts[k];
    }
    rows.push_back(std::move(o));
  }
  respond(json_response(200, json::object{{"minutes", std::move(rows)}, {"totals", std::move(totals)}}));
}

}  // namespace petrel
