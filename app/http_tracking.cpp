// Open and click tracking over HTTP (docs/sending.md, "Tracking"):
//   the tracking listener ([tracking] listen):
//     GET|HEAD /o/{token}.gif   the open pixel: a 1x1 GIF; the open recorded
//     GET|HEAD /c/{token}       a click: 302 to the link's target as the stored message has it
//     GET      /healthz
//   the tenant API:
//     GET   /v1/tracking          the tenant's settings and the DNS record of its tracking domain
//     PATCH /v1/tracking          change them: opens, clicks, record_ip, domain
//     POST  /v1/tracking/verify   check the domain's CNAME
// A token that is not well formed, not signed with this node's key, expired, or names no stored
// link is a 404 without a redirect: the target never comes from the token.
#include <boost/json.hpp>
#include <caf/all.hpp>
#include <spdlog/spdlog.h>

#include "actors/metrics.hpp"
#include "actors/policy/engagement.hpp"
#include "actors/policy/event_data.hpp"
#include "app/actor_bridge.hpp"
#include "app/http_api.hpp"
#include "app/http_common.hpp"
#include "app/problem.hpp"
#include "net/mail/email_address.hpp"
#include "net/dns.hpp"
#include "net/mail/tracking.hpp"
#include "storage/store.hpp"

namespace petrel {

namespace json = boost::json;

namespace {

// A transparent 1x1 GIF (43 bytes).
const std::string pixel_gif(
    "GIF89a\x01\x00\x01\x00\x80\x00\x00\x00\x00\x00\x00\x00\x00!\xf9\x04\x01\x00\x00\x00\x00,"
    "\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02\x44\x01\x00;",
    43);

http_response no_store(http_response r) {
  r.headers.emplace_back("Cache-Control", "no-store, no-cache, must-revalidate, private");
  r.headers.emplace_back("Referrer-Policy", "no-referrer");
  r.headers.emplace_back("X-Content-Type-Options", "nosniff");
  return r;
}

http_response link_not_valid(bool expired) {
  return no_store(html_page(404, "Link not valid",
                            expired ? "<p>This link has expired.</p>"
                                    : "<p>This link is not valid. It may have been cut or changed.</p>"));
}

void count_refused(const char* reason) {
  metrics()
      .get_counter("petrel_tracking_refused_total", "Tracking requests refused, by reason", {{"reason", reason}})
      .inc();
}

}  // namespace

void http_api::tracking_request(http_request&& request, http_responder respond) {
  const auto& path = request.path;
  const auto& method = request.method;
  if (path == "/healthz") {
    if (method != "GET" && method != "HEAD") return respond(method_not_allowed("GET"));
    return respond(json_response(200, json::object{{"status", "ok"}}));
  }
  bool open = path.rfind("/o/", 0) == 0 && path.size() > 7 && path.compare(path.size() - 4, 4, ".gif") == 0;
  bool click = path.rfind("/c/", 0) == 0;
  if (!open && !click) return respond(not_found());
  if (method != "GET" && method != "HEAD") return respond(method_not_allowed("GET, HEAD"));
  auto token_text = open ? path.substr(3, path.size() - 7) : path.substr(3);
  auto token = read_tracking_token(tracking_secret_, token_text);
  if (!token || (open && token->link != 0) || (click && token->link == 0)) {
    count_refused("invalid");
    return respond(link_not_valid(false));
  }
  auto now = now_ms();
  if (static_cast<std::int64_t>(token->expires_s) * 1000 <= now) {
    count_refused("expired");
    return respond(link_not_valid(true));
  }
  auto peer = request.remote_address;
  auto ip = client_address(peer, request.header("x-forwarded-for"), tracking_proxies_);
  std::string agent(request.header("user-agent"));
  auto s = directory_->get();
  auto store = s->store;
  auto& sys = sys_;
  auto timeout = cfg_.http.handler_timeout;
  auto window = cfg_.tracking.machine_window;
  auto t = *token;
  ask<std::vector<tracking_target>>(
      sys, store, timeout,
      [=, &sys](std::vector<tracking_target>& found) {
        if (found.empty() || found.front().expires_ms <= now) {
          count_refused(found.empty() ? "unknown" : "expired");
          return respond(link_not_valid(!found.empty()));
        }
        const auto& target = found.front();
        auto verdict = judge_hit({method, agent, ip, now, target.delivered_at_ms, window.count()});
        // Recorded while the client is answered: a click does not wait for a commit.
        record_tracking_hit_op op;
        op.hit = {t.recipient, t.link, verdict.machine, 1, now, now};
        op.expires_ms = target.expires_ms;
        op.event.id = new_id();
        op.event.tenant_id = target.tenant_id;
        op.event.message_id = t.message;
        op.event.recipient_id = t.recipient;
        op.event.type = open ? "opened" : "clicked";
        op.event.at_ms = now;
        op.event.data_json = event_data::tracking_hit(
            {t.link, target.url, agent, target.record_ip ? std::string_view(ip) : std::string_view(), verdict.machine,
             verdict.reason});
        ask<caf::ok_atom>(
            sys, store, timeout, [](caf::ok_atom) {},
            [&sys](caf::error& e) { spdlog::warn("tracking.hit_unrecorded error=\"{}\"", sys.render(e)); },
            persist_atom::value, write_request{std::move(op)});
        metrics()
            .get_counter("petrel_tracking_hits_total", "Opens and clicks, by kind and by people or machines",
                         {{"kind", open ? "open" : "click"}, {"machine", verdict.machine ? "true" : "false"}})
            .inc();
        if (open) {
          http_response r;
          r.content_type = "image/gif";
          r.body = pixel_gif;
          return respond(no_store(std::move(r)));
        }
        http_response r;
        r.status = 302;
        r.content_type = "text/html; charset=utf-8";
        r.headers.emplace_back("Location", target.url);
        return respond(no_store(std::move(r)));
      },
      [respond, &sys](caf::error& e) {
        spdlog::warn("tracking.lookup_failed error=\"{}\"", sys.render(e));
        respond(no_store(html_page(503, "Try again", "<p>This link cannot be followed right now; please try again.</p>")));
      },
      load_atom::value, tracking_query{t.message, t.recipient, t.link});
}

void http_api::tracking_settings(http_request&& request, const std::vector<std::string>& parts,
                                 http_responder respond) {
  const auto& method = request.method;
  bool verify = parts.size() == 3 && parts[2] == "verify";
  if (parts.size() > 3 || (parts.size() == 3 && !verify)) return respond(not_found());
  if (verify && method != "POST") return respond(method_not_allowed("POST"));
  if (!verify && method != "GET" && method != "PATCH") return respond(method_not_allowed("GET, PATCH"));
  tenant_patch patch;
  if (method == "PATCH") {
    json::value doc;
    if (auto bad = read_json_object(request, doc)) return respond(std::move(*bad));
    std::vector<field_error> errors;
    for (const auto& kv : doc.get_object()) {
      std::string key(kv.key());
      const auto& v = kv.value();
      auto flag = [&](bool& set, bool& value) {
        if (!v.is_bool()) return errors.push_back({key, "must be true or false"});
        set = true;
        value = v.get_bool();
      };
      if (key == "opens") {
        flag(patch.set_tracking_opens, patch.tracking_opens);
      } else if (key == "clicks") {
        flag(patch.set_tracking_clicks, patch.tracking_clicks);
      } else if (key == "record_ip") {
        flag(patch.set_tracking_record_ip, patch.tracking_record_ip);
      } else if (key == "domain") {
        patch.set_tracking_domain = true;
        if (v.is_null()) continue;
        std::string domain = v.is_string() ? std::string(v.get_string()) : std::string();
        for (auto& ch : domain) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
        while (!domain.empty() && domain.back() == '.') domain.pop_back();
        auto why = !v.is_string() ? std::string("must be a string") : domain.empty() ? std::string() : check_ascii_domain(domain);
        if (!why.empty())
          errors.push_back({key, why + ": a host name such as \"t.example.com\" (ASCII; an IDN as its A-label), or null"});
        patch.tracking_domain = std::move(domain);
      } else {
        errors.push_back({key, "unknown field (opens, clicks, record_ip, domain)"});
      }
    }
    if (!errors.empty()) return respond(invalid_request(errors));
  }
  auto s = directory_->get();
  auto& sys = sys_;
  auto timeout = cfg_.http.handler_timeout;
  auto tenants = s->tenants;
  auto fail = [respond, &sys](caf::error& e) { respond(problem_from_error(sys, e)); };
  const auto& tc = cfg_.tracking;
  // The settings with what they mean on this server.
  auto answer = [tc](const tenant_record& t) {
    auto o = tracking_settings_json(t.tracking);
    o["enabled"] = tc.enabled;
    std::string base = t.tracking.verified && !t.tracking.domain.empty() ? tc.scheme + "://" + t.tracking.domain
                                                                        : tc.base_url;
    o["base_url"] = tc.enabled && !base.empty() ? json::value(base) : json::value(nullptr);
    json::array records;
    if (!t.tracking.domain.empty() && !tc.cname_target.empty())
      records.push_back(json::object{{"type", "CNAME"}, {"name", t.tracking.domain}, {"value", tc.cname_target}});
    o["records"] = std::move(records);
    return json_response(200, o);
  };
  as_tenant(request, respond, [=, this, &sys](tenant_identity& who) {
    auto id = who.tenant_id;
    if (method == "PATCH")
      return ask<tenant_record>(
          sys, tenants, timeout, [respond, answer](tenant_record& t) { respond(answer(t)); }, fail,
          caf::update_atom::value, id, patch);
    ask<std::vector<tenant_summary>>(
        sys, tenants, timeout,
        [=, this, &sys](std::vector<tenant_summary>& all) {
          auto it = std::find_if(all.begin(), all.end(), [&](const auto& t) { return t.tenant.id == id; });
          if (it == all.end()) return respond(problem(404, "not-found", "Not Found", "no such tenant"));
          auto record = it->tenant;
          if (!verify) return respond(answer(record));
          const auto& domain = record.tracking.domain;
          if (domain.empty())
            return respond(invalid_request({{"domain", "no tracking domain is set (PATCH /v1/tracking {\"domain\": ...})"}}));
          if (tc.cname_target.empty())
            return respond(problem(409, "conflict", "Conflict",
                                   "this server has no tracking.cname_target: tracking domains cannot be verified"));
          if (!runtime_ || !runtime_->dns)
            return respond(problem(503, "unavailable", "Service Unavailable", "DNS is not available"));
          runtime_->dns->lookup_cname(domain, [=, &sys](cname_lookup found) {
            if (found.outcome == dns_outcome::temporary)
              return respond(problem(503, "unavailable", "Service Unavailable",
                                     "the DNS lookup of " + domain + " failed for now (" + found.error +
                                         "); nothing was changed, try again"));
            tenant_patch check;
            check.set_tracking_check = true;
            check.tracking_domain = domain;
            check.tracking_checked_at_ms = now_ms();
            check.tracking_verified = found.outcome == dns_outcome::found && found.target == tc.cname_target;
            check.tracking_status =
                check.tracking_verified ? "CNAME " + domain + " -> " + tc.cname_target + " found"
                : found.outcome == dns_outcome::found
                    ? "CNAME " + domain + " -> " + found.target + " points elsewhere; publish CNAME " + domain +
                          " -> " + tc.cname_target
                    : "no CNAME record at " + domain + "; publish CNAME " + domain + " -> " + tc.cname_target;
            ask<tenant_record>(
                sys, tenants, timeout, [respond, answer](tenant_record& t) { respond(answer(t)); },
                [respond, &sys](caf::error& e) { respond(problem_from_error(sys, e)); }, caf::update_atom::value, id,
                check);
          });
        },
        fail, list_atom::value);
  });
}

}  // namespace petrel
