// Routes of the public and admin listeners (see http_api.hpp).
#include "app/http_api.hpp"

#include "app/console/console_sessions.hpp"
#include "app/tenant_fan_out.hpp"

#include <boost/json.hpp>
#include <caf/all.hpp>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <ctime>

#include "actors/actor_support.hpp"
#include "actors/api_key.hpp"
#include "actors/metrics.hpp"
#include "app/actor_bridge.hpp"
#include "app/http_common.hpp"
#include "app/problem.hpp"
#include "app/submission_request.hpp"
#include "net/mail/template_message.hpp"

namespace petrel {

namespace json = boost::json;

namespace {

json::object event_json(const event_record& e) {
  return json::object{{"id", e.id.str()},
                      {"type", e.type},
                      {"at", timestamp(e.at_ms)},
                      {"data", parse_or(e.data_json, json::object{})}};
}

json::object message_json(const message_details& d) {
  const auto& m = d.message;
  json::array message_events;
  for (const auto& e : d.events)
    if (e.recipient_id.empty()) message_events.push_back(event_json(e));
  json::array recipients;
  bool tracked = !m.tracking_links.empty() || !d.hits.empty();
  for (const auto& r : m.recipients) {
    json::array history;
    for (const auto& e : d.events)
      if (e.recipient_id.empty() || e.recipient_id == r.id) history.push_back(event_json(e));
    // Opens and clicks, every hit counted (events record only the first of each).
    json::object engagement{{"opens", 0}, {"machine_opens", 0}, {"clicks", 0}, {"machine_clicks", 0}};
    json::array links;
    for (const auto& h : d.hits) {
      if (h.recipient_id != r.id) continue;
      const char* key = h.link == 0 ? (h.machine ? "machine_opens" : "opens") : (h.machine ? "machine_clicks" : "clicks");
      engagement[key] = engagement[key].as_int64() + static_cast<std::int64_t>(h.count);
      if (h.link > 0)
        links.push_back(json::object{{"link", h.link},
                                     {"url", h.link <= m.tracking_links.size() ? json::value(m.tracking_links[h.link - 1])
                                                                               : json::value(nullptr)},
                                     {"machine", h.machine},
                                     {"count", h.count},
                                     {"first_at", timestamp(h.first_at_ms)},
                                     {"last_at", timestamp(h.last_at_ms)}});
      else
        engagement[h.machine ? "machine_opened_first_at" : "opened_first_at"] = timestamp(h.first_at_ms);
    }
    engagement["links"] = std::move(links);
    recipients.push_back(json::object{
        {"id", r.id.str()},
        {"email", r.address},
        {"domain", r.domain},
        {"kind", std::string(to_string(r.kind))},
        {"status", std::string(to_string(r.state))},
        {"attempts", r.attempts},
        {"next_attempt_at", is_final(r.state) ? json::value(nullptr) : timestamp(r.next_attempt_at_ms)},
        {"updated_at", timestamp(r.updated_at_ms)},
        {"last_reply", r.last_reply.empty() ? json::value(nullptr) : json::value(r.last_reply)},
        {"history", std::move(history)},
        {"engagement", tracked ? json::value(std::move(engagement)) : json::value(nullptr)},
    });
  }
  return json::object{
      {"id", m.id.str()},
      {"created_at", timestamp(m.created_at_ms)},
      {"from", m.mail_from},
      {"subject", m.subject},
      {"campaign", m.campaign.empty() ? json::value(nullptr) : json::value(m.campaign)},
      {"tags", parse_or(m.tags_json, json::array{})},
      {"metadata", parse_or(m.metadata_json, json::object{})},
      {"message_id", m.message_id_header},
      {"size", m.size},
      {"recipients", std::move(recipients)},
      {"events", std::move(message_events)},
      {"tracked_links", [&] {
         json::array out;
         for (const auto& l : m.tracking_links) out.emplace_back(l);
         return out;
       }()},
  };
}

json::object key_json(const api_key_record& k) {
  return json::object{{"id", k.id.str()}, {"prefix", k.prefix}, {"created_at", timestamp(k.created_at_ms)}};
}

json::object tenant_json(const tenant_record& t) {
  return json::object{{"id", t.id.str()},
                      {"name", t.name},
                      {"rate", t.rate_per_second > 0 ? json::value(format_rate(t.rate_per_second)) : json::value(nullptr)},
                      {"rate_per_second", t.rate_per_second > 0 ? json::value(t.rate_per_second) : json::value(nullptr)},
                      {"burst", t.burst > 0 ? json::value(t.burst) : json::value(nullptr)},
                      {"suspended", t.suspended},
                      {"pool", t.pool.empty() ? json::value(nullptr) : json::value(t.pool)},
                      {"weight", t.weight},
                      {"sandbox", t.sandbox},
                      {"tracking", tracking_settings_json(t.tracking)},
                      {"created_at", timestamp(t.created_at_ms)}};
}

}  // namespace

http_api::http_api(caf::actor_system& sys, std::shared_ptr<service_directory> directory,
                   config cfg, std::string admin_token, std::string bounce_secret)
    : sys_(sys),
      directory_(std::move(directory)),
      cfg_(std::move(cfg)),
      admin_token_(std::move(admin_token)),
      bounce_secret_(std::move(bounce_secret)) {
  for (const auto& text : cfg_.tracking.trusted_proxies) {
    ip_network n;
    std::string error;
    if (parse_ip_network(text, n, error)) tracking_proxies_.push_back(n);  // checked by the config loader
  }
  set_pool_names(cfg_.egress);
  sessions_ = std::make_shared<console_sessions>(cfg_.admin.console_session_lifetime,
                                                 cfg_.admin.console_idle_timeout);
}

std::optional<http_response> http_api::api_key_problem(const std::string& key) const {
  if (key.empty())
    return unauthorized("an API key is required: Authorization: Bearer pk_... (petrel tenants create, "
                        "or the key printed at the first start)");
  if (!admin_token_.empty() && constant_time_equal(key, admin_token_))
    return unauthorized("this is the admin token; the tenant API (/v1/...) needs a tenant's API key (pk_...)");
  if (key.rfind("pk_", 0) != 0) return unauthorized("this is not an API key: API keys start with pk_");
  return std::nullopt;
}

void http_api::public_request(http_request&& request, http_responder respond) {
  auto parts = split_path(request.path);
  const auto& method = request.method;
  if ((!parts.empty() && parts[0] == "admin") || request.path == "/metrics")
    return respond(problem(404, "not-found", "Not Found",
                           request.path + " is on the admin listener (admin.listen, " +
                               cfg_.admin.listen.to_string() + "), not on the tenant API's"));
  if (request.path == "/healthz") {
    if (method != "GET" && method != "HEAD") return respond(method_not_allowed("GET"));
    return respond(json_response(200, json::object{{"status", "ok"}}));
  }
  if (request.path == "/readyz") {
    if (method != "GET" && method != "HEAD") return respond(method_not_allowed("GET"));
    return readiness(std::move(respond));
  }
  if (parts.size() >= 2 && parts[0] == "v1" && parts[1] == "domains")
    return sender_domains(std::move(request), parts, std::move(respond));
  if (parts.size() == 2 && parts[0] == "v1" && parts[1] == "events") {
    if (method != "GET") return respond(method_not_allowed("GET"));
    return events(std::move(request), std::move(respond));
  }
  if (parts.size() == 2 && parts[0] == "v1" && parts[1] == "stats") {
    if (method != "GET") return respond(method_not_allowed("GET"));
    return stats(std::move(request), std::move(respond));
  }
  if (parts.size() >= 2 && parts[0] == "v1" && parts[1] == "webhooks")
    return webhooks(std::move(request), parts, std::move(respond));
  if (parts.size() >= 2 && parts[0] == "v1" && parts[1] == "suppressions")
    return suppressions(std::move(request), parts, std::move(respond));
  if (parts.size() == 2 && parts[0] == "v1" && parts[1] == "inbound") {
    if (method != "POST") return respond(method_not_allowed("POST"));
    return inbound(std::move(request), false, std::move(respond));
  }
  if (parts.size() == 2 && parts[0] == "u") return unsubscribe(std::move(request), parts[1], std::move(respond));
  if (parts.size() >= 2 && parts[0] == "v1" && parts[1] == "tracking")
    return tracking_settings(std::move(request), parts, std::move(respond));
  if (parts.size() >= 2 && parts[0] == "v1" && parts[1] == "messages") {
    if (parts.size() == 2) {
      if (method == "GET") return search_messages(std::move(request), std::move(respond));
      if (method != "POST") return respond(method_not_allowed("GET, POST"));
      return submit_message(std::move(request), std::move(respond));
    }
    if (parts.size() == 3) {
      if (method != "GET") return respond(method_not_allowed("GET"));
      return get_message(request, parts[2], std::move(respond));
    }
    if (parts.size() == 4 && parts[3] == "content") {
      if (method != "GET") return respond(method_not_allowed("GET"));
      return get_message_content(request, parts[2], std::move(respond));
    }
    if (parts.size() == 4 && parts[3] == "cancel") {
      if (method != "POST") return respond(method_not_allowed("POST"));
      return cancel_messages(request, parts[2], "", std::move(respond));
    }
  }
  if (parts.size() >= 2 && parts[0] == "v1" && parts[1] == "templates")
    return templates(std::move(request), parts, std::move(respond));
  if (parts.size() == 4 && parts[0] == "v1" && parts[1] == "batches" && parts[3] == "cancel") {
    if (method != "POST") return respond(method_not_allowed("POST"));
    return cancel_messages(request, "", parts[2], std::move(respond));
  }
  respond(not_found());
}

namespace {

json::object domain_json(const sender_domain_view& v) {
  const auto& d = v.domain;
  json::array keys;
  for (const auto& k : d.keys)
    keys.push_back(json::object{{"selector", k.selector},
                                {"algorithm", k.algorithm},
                                {"state", k.state},
                                {"created_at", timestamp(k.created_at_ms)},
                                {"public_key", k.public_key}});
  json::array records;
  bool spf = false;
  for (const auto& r : v.records) {
    json::object o{{"type", r.type}, {"name", r.name}, {"value", r.value}, {"purpose", r.purpose}};
    if (r.type == "TXT" && r.value.size() > 255) {
      // A TXT string holds at most 255 bytes (RFC 1035 3.3.14): longer values (DKIM RSA keys)
      // are published as several strings, which resolvers join.
      json::array strings;
      std::string zone;
      for (std::size_t i = 0; i < r.value.size(); i += 255) {
        auto part = r.value.substr(i, 255);
        strings.push_back(json::string(part));
        zone += (zone.empty() ? "\"" : " \"") + part + "\"";
      }
      o["strings"] = std::move(strings);
      o["zone_file"] = zone;
    }
    if (r.purpose == "spf") spf = true;
    records.push_back(std::move(o));
  }
  json::array notes;
  if (!spf)
    notes.push_back(json::string(
        "no SPF record is suggested: no egress source has an address (egress.sources address) and "
        "domains.spf_include is empty; publish one naming the addresses this node sends from"));
  return json::object{{"domain", d.domain},
                      {"notes", std::move(notes)},
                      {"created_at", timestamp(d.created_at_ms)},
                      {"verified", d.verified},
                      {"checked_at", timestamp(d.checked_at_ms)},
                      {"status", parse_or(d.status_json, json::object{})},
                      {"keys", std::move(keys)},
                      {"records", std::move(records)}};
}

}  // namespace

// /v1/domains[/{domain}[/rotate | /keys/{selector}]]: authenticate, then ask the senders actor.
void http_api::sender_domains(http_request&& request, const std::vector<std::string>& parts,
                              http_responder respond) {
  const auto& method = request.method;
  enum { list, create, verify, rotate, retire, remove } op;
  std::string domain, selector;
  if (parts.size() >= 3) {
    domain = parts[2];
    for (auto& c : domain) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  }
  if (parts.size() == 2) {
    if (method == "GET") op = list;
    else if (method == "POST") op = create;
    else return respond(method_not_allowed("GET, POST"));
  } else if (parts.size() == 3) {
    if (method == "GET") op = verify;
    else if (method == "DELETE") op = remove;
    else return respond(method_not_allowed("GET, DELETE"));
  } else if (parts.size() == 4 && parts[3] == "rotate") {
    if (method != "POST") return respond(method_not_allowed("POST"));
    op = rotate;
  } else if (parts.size() == 5 && parts[3] == "keys") {
    if (method != "DELETE") return respond(method_not_allowed("DELETE"));
    op = retire;
    selector = parts[4];
  } else {
    return respond(not_found());
  }
  new_sender_domain creation;
  if (op == create) {
    json::value doc;
    if (auto bad = read_json_object(request, doc)) return respond(std::move(*bad));
    std::vector<field_error> errors;
    for (const auto& kv : doc.get_object()) {
      std::string k(kv.key());
      const auto& v = kv.value();
      if (k == "domain" && v.is_string()) {
        creation.domain = std::string(v.get_string());
      } else if (k == "algorithms" && v.is_array()) {
        for (const auto& a : v.get_array()) {
          if (a.is_string() && (a.get_string() == "rsa-sha256" || a.get_string() == "ed25519-sha256"))
            creation.algorithms.emplace_back(a.get_string());
          else
            errors.push_back({"algorithms", "each must be \"rsa-sha256\" or \"ed25519-sha256\""});
        }
      } else if (k == "selector" && v.is_string()) {
        creation.selector = std::string(v.get_string());
      } else if (k == "private_key" && v.is_string()) {
        creation.private_key_pem = std::string(v.get_string());
      } else {
        errors.push_back({k, "unknown field, or not of its type (domain, algorithms, selector, private_key)"});
      }
    }
    if (creation.domain.empty()) errors.push_back({"domain", "required, a domain name"});
    auto& s = creation.selector;
    if (!s.empty() && (s.size() > 63 || s.find_first_not_of("abcdefghijklmnopqrstuvwxyz0123456789-") != std::string::npos))
      errors.push_back({"selector", "lower-case letters, digits and '-', at most 63"});
    if (!errors.empty())
      return respond(invalid_request(errors));
  }
  auto s = directory_->get();
  auto& sys = sys_;
  auto timeout = cfg_.http.handler_timeout;
  auto senders = s->senders;
  auto fail = [respond, &sys](caf::error& e) { respond(problem_from_error(sys, e)); };
  as_tenant(request, respond, [=, &sys](tenant_identity& who) {
        auto tenant = who.tenant_id;
        auto one = [respond](int status) {
          return [respond, status](sender_domain_view& v) { respond(json_response(status, domain_json(v))); };
        };
        switch (op) {
          case list:
            return ask<std::vector<sender_domain_view>>(
                sys, senders, timeout,
                [respond](std::vector<sender_domain_view>& all) {
                  json::array out;
                  for (const auto& v : all) out.push_back(domain_json(v));
                  respond(json_response(200, json::object{{"domains", std::move(out)}}));
                },
                fail, list_atom::value, tenant);
          case create:
            return ask<sender_domain_view>(sys, senders, timeout, one(201), fail, create_atom::value,
                                           tenant, creation);
          case verify:
            return ask<sender_domain_view>(sys, senders, timeout, one(200), fail, verify_atom::value,
                                           tenant, domain);
          case rotate:
            return ask<sender_domain_view>(sys, senders, timeout, one(200), fail, rotate_atom::value,
                                           tenant, domain);
          case retire:
            return ask<sender_domain_view>(sys, senders, timeout, one(200), fail, retire_atom::value,
                                           tenant, domain, selector);
          case remove:
            return ask<caf::ok_atom>(
                sys, senders, timeout,
                answered_empty(respond),
                fail, caf::delete_atom::value, tenant, domain);
        }
      });
}

void http_api::readiness(http_responder respond) {
  auto s = directory_->get();
  ask<petrel::readiness>(
      sys_, s->root, std::chrono::milliseconds(3000),
      [respond](petrel::readiness& r) {
        if (r.ready) return respond(json_response(200, json::object{{"ready", true}}));
        respond(json_response(503, json::object{{"ready", false}, {"reason", r.reason}}));
      },
      [respond](caf::error&) {
        respond(json_response(503, json::object{{"ready", false}, {"reason", "not answering"}}));
      },
      ready_atom::value);
}

void http_api::submit_message(http_request&& request, http_responder respond) {
  auto key = bearer_token(request);
  if (auto bad = api_key_problem(key)) return respond(std::move(*bad));
  if (!is_json(request.header("content-type")))
    return respond(problem(415, "unsupported-media-type", "Unsupported Media Type",
                           "the body must be application/json"));
  auto key_hash = hash_api_key(key);
  // Idempotency-Key (printable ASCII, at most 255): checked before the body.
  std::string idempotency_key(request.header("idempotency-key"));
  bool idempotent = !request.header("idempotency-key").empty() ||
                    std::any_of(request.headers.begin(), request.headers.end(),
                                [](const auto& h) { return h.first == "idempotency-key"; });
  if (idempotent && (idempotency_key.empty() || idempotency_key.size() > 255 ||
                     !std::all_of(idempotency_key.begin(), idempotency_key.end(),
                                  [](char c) { return c > 32 && c < 127; })))
    return respond(invalid_request({{"Idempotency-Key", "must be 1 to 255 printable ASCII characters without spaces"}}));
  auto result = parse_submission(request.body, cfg_.submission, now_ms());
  auto body_hash = idempotent ? sha256_hex(request.body) : std::string();
  if (auto* needed = std::get_if<template_needed>(&result)) {
    // A stored template: who asks, then the template, then the body again with it.
    auto s = directory_->get();
    auto& sys = sys_;
    auto timeout = cfg_.http.handler_timeout;
    auto store = s->store;
    auto body = std::make_shared<std::string>(std::move(request.body));
    auto fail = [respond, &sys](caf::error& e) { respond(problem_from_error(sys, e)); };
    auto wanted = *needed;
    auto request_id = request.request_id();
    auto trace = request.trace;
    ask<tenant_identity>(
        sys, s->tenants, timeout,
        [=, this, &sys](tenant_identity& who) {
          ask<std::vector<template_record>>(
              sys, store, timeout,
              [=, this](std::vector<template_record>& found) {
                auto again = parse_submission(*body, cfg_.submission, now_ms(), found.empty() ? nullptr : &found.front(),
                                              true);
                if (auto* m = std::get_if<message_record>(&again)) m->request_id = request_id;
                accept_submission(key_hash, std::move(again), idempotent ? idempotency_key : std::string(), body_hash,
                                  trace, respond);
              },
              fail, load_atom::value, template_query{who.tenant_id, wanted.id, wanted.version});
        },
        fail, auth_atom::value, key_hash);
    return;
  }
  if (auto* m = std::get_if<message_record>(&result)) m->request_id = request.request_id();
  accept_submission(std::move(key_hash), std::move(result), idempotent ? std::move(idempotency_key) : std::string(),
                    std::move(body_hash), request.trace, std::move(respond));
}

void http_api::accept_submission(std::string key_hash, submission_result result, std::string idempotency_key,
                                 std::string body_hash, std::shared_ptr<http_trace> trace, http_responder respond) {
  auto s = directory_->get();
  auto timeout = cfg_.http.handler_timeout;
  if (auto* rejection = std::get_if<submission_rejection>(&result)) {
    // Invalid, but answer 401 rather than 400 to a caller without a valid key.
    auto detail = rejection->errors.front().detail;
    auto status = rejection->status;
    http_response answer =
        status == 413 ? problem(413, "payload-too-large", "Content Too Large", detail, rejection->errors)
                      : problem(400, "invalid-request", "Bad Request",
                                rejection->errors.size() == 1
                                    ? (rejection->errors.front().field.empty()
                                           ? detail
                                           : rejection->errors.front().field + ": " + detail)
                                    : std::to_string(rejection->errors.size()) +
                                          " fields are invalid; see errors",
                                rejection->errors);
    auto& sys = sys_;
    ask<tenant_identity>(
        sys_, s->tenants, timeout,
        [respond, answer](tenant_identity&) { respond(answer); },
        [respond, &sys](caf::error& e) { respond(problem_from_error(sys, e)); }, auth_atom::value,
        std::move(key_hash));
    return;
  }
  auto* message = std::get_if<message_record>(&result);
  if (!message) return respond(problem(500, "internal", "Internal Server Error", "the template was not looked up"));
  auto& sys = sys_;
  if (!idempotency_key.empty())
    return submit_idempotent(std::move(key_hash), std::move(*message), std::move(idempotency_key),
                             std::move(body_hash), std::move(trace), std::move(respond));
  ask<submit_receipt>(
      sys_, s->tenants, timeout,
      [respond, trace](submit_receipt& receipt) {
        if (trace) trace->tenant = receipt.tenant_id.str();
        respond(json_body(202, receipt_json_text(receipt)));
      },
      [respond, &sys](caf::error& e) { respond(problem_from_error(sys, e)); }, submit_atom::value,
      std::move(key_hash), std::move(*message));
}

namespace {

// The stored answer of an Idempotency-Key for the same request, or 422 for another body.
http_response replay(const idempotency_record& r, const std::string& request_hash) {
  if (r.request_hash != request_hash)
    return problem(422, "idempotency-key-reused", "Unprocessable Content",
                   "this Idempotency-Key was used with a different request body (message " + r.message_id.str() +
                       "); use a new key for a new request");
  auto out = json_body(r.status, r.response);
  out.headers.emplace_back("Idempotent-Replayed", "true");
  return out;
}

}  // namespace

void http_api::submit_idempotent(std::string key_hash, message_record message, std::string idempotency_key,
                                 std::string request_hash, std::shared_ptr<http_trace> trace, http_responder respond) {
  auto s = directory_->get();
  auto& sys = sys_;
  auto timeout = cfg_.http.handler_timeout;
  auto window = cfg_.submission.idempotency_window;
  auto store = s->store;
  auto tenants = s->tenants;
  auto fail = [respond, &sys](caf::error& e) { respond(problem_from_error(sys, e)); };
  // Who it is, then whether the key answered before, then the submission.
  ask<tenant_identity>(
      sys, tenants, timeout,
      [=, &sys, message = std::move(message)](tenant_identity& who) mutable {
        auto tenant = who.tenant_id;
        if (trace) trace->tenant = tenant.str();
        idempotency_query q{tenant, idempotency_key, now_ms()};
        ask<std::vector<idempotency_record>>(
            sys, store, timeout,
            [=, &sys, message = std::move(message)](std::vector<idempotency_record>& found) mutable {
              if (!found.empty()) return respond(replay(found.front(), request_hash));
              auto now = now_ms();
              message.idempotency = {idempotency_key, request_hash, {}, 202, {}, now, now + window.count()};
              ask<submit_receipt>(
                  sys, tenants, timeout,
                  [respond](submit_receipt& receipt) { respond(json_body(202, receipt_json_text(receipt))); },
                  [=, &sys](caf::error& e) {
                    petrel_errc code{};
                    std::string detail;
                    std::int64_t retry = 0;
                    if (!read_error(e, code, detail, retry) || code != petrel_errc::conflict ||
                        detail != idempotency_conflict)
                      return respond(problem_from_error(sys, e));
                    // A concurrent request with the key was stored first: its answer.
                    ask<std::vector<idempotency_record>>(
                        sys, store, timeout,
                        [=](std::vector<idempotency_record>& again) {
                          if (again.empty())
                            return respond(problem(409, "conflict", "Conflict",
                                                   "another request with this Idempotency-Key is being processed"));
                          respond(replay(again.front(), request_hash));
                        },
                        fail, load_atom::value, idempotency_query{tenant, idempotency_key, now_ms()});
                  },
                  submit_atom::value, key_hash, std::move(message));
            },
            fail, load_atom::value, std::move(q));
      },
      fail, auth_atom::value, key_hash);
}

// POST /v1/messages/{id}/cancel, POST /v1/batches/{batch}/cancel: every waiting recipient of
// the tenant's message (or batch) is cancelled; one in an attempt now is cancelled if that
// attempt does not deliver it.
void http_api::cancel_messages(const http_request& request, const std::string& message, const std::string& batch,
                               http_responder respond) {
  auto s = directory_->get();
  auto& sys = sys_;
  auto timeout = cfg_.http.handler_timeout;
  auto store = s->store;
  auto domains = s->domains;
  auto parsed_id = id128::parse(message);
  as_tenant(request, respond, [=, &sys](tenant_identity& who) {
    auto fail = [respond, &sys](caf::error& e) { respond(problem_from_error(sys, e)); };
    if (batch.empty() && !parsed_id) return respond(problem(404, "not-found", "Not Found", "no such message"));
    cancel_query q{who.tenant_id, batch.empty() ? *parsed_id : id128{}, batch};
    ask<cancel_targets>(
        sys, store, timeout,
        [=, &sys](cancel_targets& t) {
          if (t.messages == 0)
            return respond(problem(404, "not-found", "Not Found", batch.empty() ? "no such message" : "no such batch"));
          auto waiting = t.waiting.size();
          auto messages = t.messages;
          auto answer = [=](std::uint64_t cancelled) {
            json::object o{{"messages", messages}, {"waiting", waiting}, {"cancelled", cancelled}};
            if (batch.empty())
              o["id"] = message;
            else
              o["batch_id"] = batch;
            respond(json_response(200, o));
          };
          if (waiting == 0) return answer(0);
          ask<std::uint64_t>(sys, domains, timeout, answer, fail, cancel_atom::value, std::move(t.waiting),
                             std::string("cancelled by its sender"));
        },
        fail, load_atom::value, std::move(q));
  });
}

void http_api::get_message(const http_request& request, const std::string& id,
                           http_responder respond) {
  if (!request.acting_tenant.empty()) {
    auto parsed = id128::parse(id);
    auto store = directory_->get()->store;
    auto& sys = sys_;
    auto timeout = cfg_.http.handler_timeout;
    return as_tenant(request, respond, [=, &sys](tenant_identity& who) {
      if (!parsed) return respond(problem(404, "not-found", "Not Found", "no such message"));
      ask<message_details>(
          sys, store, timeout, [respond](message_details& d) { respond(json_response(200, message_json(d))); },
          [respond, &sys](caf::error& e) { respond(problem_from_error(sys, e)); }, message_atom::value,
          who.tenant_id, *parsed);
    });
  }
  auto key = bearer_token(request);
  if (auto bad = api_key_problem(key)) return respond(std::move(*bad));
  auto parsed_id = id128::parse(id);
  auto s = directory_->get();
  auto& sys = sys_;
  if (!parsed_id) {
    // Still authenticate first, so unknown keys learn nothing about id formats.
    ask<tenant_identity>(
        sys_, s->tenants, cfg_.http.handler_timeout,
        [respond](tenant_identity&) {
          respond(problem(404, "not-found", "Not Found", "no such message"));
        },
        [respond, &sys](caf::error& e) { respond(problem_from_error(sys, e)); }, auth_atom::value,
        hash_api_key(key));
    return;
  }
  ask<message_details>(
      sys_, s->tenants, cfg_.http.handler_timeout,
      [respond](message_details& d) { respond(json_response(200, message_json(d))); },
      [respond, &sys](caf::error& e) { respond(problem_from_error(sys, e)); },
      message_atom::value, hash_api_key(key), *parsed_id);
}

// GET /admin/messages/{id}: a message of any tenant (ids are unique across tenants), with its
// tenant named.
void http_api::admin_get_message(const std::string& id, http_responder respond) {
  auto parsed = id128::parse(id);
  if (!parsed) return respond(problem(404, "not-found", "Not Found", "no such message"));
  auto s = directory_->get();
  auto& sys = sys_;
  auto timeout = cfg_.http.handler_timeout;
  auto store = s->store;
  ask_each_tenant<message_details>(
      sys_, s->tenants, timeout,
      [=, &sys](const tenant_record& t, std::function<void(std::optional<message_details>, caf::error*)> reply) {
        ask<message_details>(
            sys, store, timeout, [reply](message_details& d) { reply(std::move(d), nullptr); },
            [reply](caf::error& e) {
              // Another tenant's message, or none: not an error.
              petrel_errc code{};
              std::string detail;
              std::int64_t retry = 0;
              if (read_error(e, code, detail, retry) && code == petrel_errc::not_found) return reply(std::nullopt, nullptr);
              reply(std::nullopt, &e);
            },
            message_atom::value, t.id, *parsed);
      },
      [respond, &sys](tenant_answers<message_details>& answers) {
        if (!answers.results.empty()) {
          auto& [tenant, d] = answers.results.front();
          auto o = message_json(d);
          o["tenant"] = tenant.id.str();
          o["tenant_name"] = tenant.name;
          return respond(json_response(200, o));
        }
        if (answers.error) return respond(problem_from_error(sys, *answers.error));
        respond(problem(404, "not-found", "Not Found", "no such message"));
      },
      [respond, &sys](caf::error& e) { respond(problem_from_error(sys, e)); });
}

// GET /v1/messages/{id}/content: the stored RFC 5322 message, to its tenant only, while it is
// retained (storage.content_retention); 410 after.
void http_api::get_message_content(const http_request& request, const std::string& id,
                                   http_responder respond) {
  auto parsed_id = id128::parse(id);
  auto store = directory_->get()->store;
  auto& sys = sys_;
  auto timeout = cfg_.http.handler_timeout;
  auto content_retention = cfg_.storage.content_retention;
  auto gone = [] {
    return problem(410, "gone", "Gone",
                   "the message's content is no longer kept (storage.content_retention); its recipients' "
                   "history stays at GET /v1/messages/{id} until storage.retention");
  };
  // A templated message has a copy per recipient: ?recipient=<id> names which.
  auto recipient_text = query_parameter(request.query, "recipient");
  auto recipient = id128::parse(recipient_text);
  // The key is checked first (as_tenant), so unknown keys learn nothing about ids.
  as_tenant(request, respond, [=, &sys](tenant_identity& who) {
    if (!parsed_id) return respond(problem(404, "not-found", "Not Found", "no such message"));
    if (!recipient_text.empty() && !recipient)
      return respond(invalid_request({{"recipient", "not a recipient id"}}));
    auto message = *parsed_id;
    auto tenant = who.tenant_id;
    ask<delivery_content>(
        sys, store, timeout,
        [respond, tenant, gone, recipient](delivery_content& c) {
          if (c.tenant_id != tenant) return respond(problem(404, "not-found", "Not Found", "no such message"));
          if (c.content.empty()) return respond(gone());
          http_response r;
          r.content_type = "message/rfc822";
          if (c.templated) {
            if (!recipient)
              return respond(invalid_request({{"recipient", "a templated message has a copy per recipient: "
                                                        "name one with ?recipient=<recipient id>"}}));
            auto copy = render_template_copy(c.content, c.personal.front());
            if (!copy) return respond(problem(500, "internal", "Internal Server Error", copy.error()));
            r.body = std::move(copy.value().content);
          } else {
            r.body = std::move(c.content);
          }
          respond(std::move(r));
        },
        [=, &sys](caf::error& e) {
          petrel_errc code{};
          std::string detail;
          std::int64_t retry = 0;
          // Deleted with its rows (storage.retention) or never there: an id old enough to
          // have been pruned is gone, any other is not found.
          if (read_error(e, code, detail, retry) && code == petrel_errc::not_found && recipient)
            return respond(problem(404, "not-found", "Not Found", "no such message, or no such recipient of it"));
          if (code == petrel_errc::not_found)
            return respond(message.time_ms() < now_ms() - content_retention.count()
                               ? gone()
                               : problem(404, "not-found", "Not Found", "no such message"));
          respond(problem_from_error(sys, e));
        },
        load_atom::value, message, recipient ? std::vector<id128>{*recipient} : std::vector<id128>{});
  });
}

reload_report http_api::reload_configuration(const std::string& by) {
  if (!reloader_) {
    reload_report r;
    r.errors.push_back("this node cannot reload its configuration");
    return r;
  }
  return reloader_(by);
}

void http_api::set_pool_names(const egress_settings& egress) {
  auto names = std::make_shared<std::set<std::string>>();
  names->insert("default");
  for (const auto& p : egress.pools) names->insert(p.name);
  pool_names_.store(std::move(names));
}

void http_api::admin_request(http_request&& request, http_responder respond) {
  const auto& method = request.method;
  if (request.path == "/healthz" || request.path == "/readyz")
    return public_request(std::move(request), std::move(respond));
  if (request.path == "/metrics") {
    if (method != "GET") return respond(method_not_allowed("GET"));
    http_response bad;
    auto scope = cluster_scope(request.query, bad);
    if (!scope) return respond(std::move(bad));
    if (*scope) {
      // This node's own series need no token (a scraper's default); asking every member does.
      auto token = bearer_token(request);
      if (token.empty() || !constant_time_equal(token, admin_token_))
        return respond(unauthorized("/metrics?scope=cluster asks every member: it needs the admin token "
                                    "(Authorization: Bearer <token>)"));
      return cluster_metrics(std::move(respond));
    }
    http_response r;
    r.content_type = "text/plain; version=0.0.4; charset=utf-8";
    r.body = metrics().render() + render_process_metrics();
    return respond(std::move(r));
  }
  auto parts = split_path(request.path);
  if (!parts.empty() && parts[0] == "v1")
    return respond(problem(404, "not-found", "Not Found",
                           request.path + " is on the tenant API's listener (http.listen, " +
                               cfg_.http.listen.to_string() + "), not on the admin listener"));
  if (cfg_.admin.console && (parts.empty() || parts[0] == "ui" || request.path == "/favicon.ico"))
    return console_request(std::move(request), std::move(respond));
  if (parts.empty() || parts[0] != "admin") return respond(not_found());
  bool console = false;
  if (auto refused = admin_authentication(request, console)) return respond(std::move(*refused));
  if (console) {
    // What the console reads is not kept by browsers or proxies.
    respond = [respond = std::move(respond)](http_response r) {
      bool marked = false;
      for (const auto& [name, value] : r.headers) marked = marked || name == "Cache-Control";
      if (!marked) r.headers.emplace_back("Cache-Control", "no-store");
      respond(std::move(r));
    };
  }
  if (parts.size() == 2 && (parts[1] == "queues" || parts[1] == "egress")) {
    if (method != "GET") return respond(method_not_allowed("GET"));
    http_response bad;
    auto scope = cluster_scope(request.query, bad);
    if (!scope) return respond(std::move(bad));
    if (parts[1] == "queues") return admin_queues(std::move(respond), *scope);
    return admin_egress(std::move(respond), *scope);
  }
  if (parts.size() == 2 && parts[1] == "inbound") {
    if (method != "POST") return respond(method_not_allowed("POST"));
    return inbound(std::move(request), true, std::move(respond));
  }
  if (parts.size() == 2 && parts[1] == "reload") {
    if (method != "POST") return respond(method_not_allowed("POST"));
    auto report = reload_configuration(console ? "console" : "admin");
    if (!report.ok()) {
      std::vector<field_error> errors;
      for (const auto& e : report.config_errors) errors.push_back({e.key, e.to_string()});
      if (errors.empty())
        for (const auto& e : report.errors) errors.push_back({"", e});
      return respond(problem(400, "invalid-request", "Bad Request",
                             "the configuration file " + report.file + " is not valid; nothing was changed: " +
                                 report.errors.front(),
                             errors));
    }
    json::array changed, restart;
    for (const auto& k : report.changed) changed.emplace_back(k);
    for (const auto& k : report.restart_required) restart.emplace_back(k);
    return respond(json_response(200, json::object{{"file", report.file},
                                                   {"changed", std::move(changed)},
                                                   {"restart_required", std::move(restart)},
                                                   {"summary", report.summary()}}));
  }
  if (parts.size() >= 3 && parts[1] == "tenants" && !id128::parse(parts[2])) {
    // A tenant named by its name (names are unique): the same request with its id.
    auto name = percent_decode(parts[2]);
    auto rest = request.path.substr(std::string("/admin/tenants/").size() + parts[2].size());
    auto& sys = sys_;
    return ask<std::vector<tenant_summary>>(
        sys_, directory_->get()->tenants, cfg_.http.handler_timeout,
        [this, request = std::move(request), respond, name, rest](std::vector<tenant_summary>& all) mutable {
          for (const auto& t : all)
            if (t.tenant.name == name) {
              request.path = "/admin/tenants/" + t.tenant.id.str() + rest;
              return admin_request(std::move(request), respond);
            }
          respond(problem(404, "not-found", "Not Found", "no tenant has the id or name \"" + name + "\""));
        },
        [respond, &sys](caf::error& e) { respond(problem_from_error(sys, e)); }, list_atom::value);
  }
  if (parts.size() == 4 && (parts[3] == "suspend" || parts[3] == "resume" || parts[3] == "bounce" ||
                            parts[3] == "flush") &&
      (parts[1] == "domains" || parts[1] == "sites" || parts[1] == "tenants" || parts[1] == "sources")) {
    if (method != "POST") return respond(method_not_allowed("POST"));
    return admin_shaping_action(parts[1], percent_decode(parts[2]), parts[3], request, std::move(respond));
  }
  if (parts.size() == 2 && parts[1] == "flush") {
    if (method != "POST") return respond(method_not_allowed("POST"));
    return admin_shaping_action("domains", "", "flush", request, std::move(respond));
  }
  if (parts.size() == 2 && parts[1] == "controls") {
    if (method != "GET") return respond(method_not_allowed("GET"));
    return admin_controls(std::move(respond));
  }
  if (parts.size() == 2 && parts[1] == "cluster") {
    if (method != "GET") return respond(method_not_allowed("GET"));
    return admin_cluster(std::move(respond));
  }
  if (parts.size() == 3 && parts[1] == "cluster" && parts[2] == "drain") {
    if (method != "POST") return respond(method_not_allowed("POST"));
    return admin_cluster_drain(std::move(respond));
  }
  if (parts.size() == 3 && parts[1] == "queues") {
    if (method != "GET") return respond(method_not_allowed("GET"));
    return admin_domain_queue(percent_decode(parts[2]), std::move(respond));
  }
  if (parts.size() >= 4 && parts[1] == "tenants" && parts[3] != "keys")
    return admin_as_tenant(std::move(request), parts, std::move(respond));
  if (parts.size() == 2 && parts[1] == "activity") {
    if (method != "GET") return respond(method_not_allowed("GET"));
    return admin_activity(request, std::move(respond));
  }
  if (parts.size() == 2 && parts[1] == "messages") {
    if (method != "GET") return respond(method_not_allowed("GET"));
    return admin_search_messages(std::move(request), std::move(respond));
  }
  if (parts.size() == 3 && parts[1] == "messages") {
    if (method != "GET") return respond(method_not_allowed("GET"));
    return admin_get_message(parts[2], std::move(respond));
  }
  if (parts.size() == 2 && parts[1] == "events") {
    if (method != "GET") return respond(method_not_allowed("GET"));
    return admin_events(std::move(request), std::move(respond));
  }
  if (parts.size() == 2 && parts[1] == "webhooks") {
    if (method != "GET") return respond(method_not_allowed("GET"));
    return admin_webhooks(std::move(respond));
  }
  if (parts.size() >= 2 && parts[1] == "tenants") {
    if (parts.size() == 2) {
      if (method == "GET") return admin_list_tenants(std::move(respond));
      if (method == "POST") return admin_create_tenant(request, std::move(respond));
      return respond(method_not_allowed("GET, POST"));
    }
    if (parts.size() == 3) {
      if (method != "PATCH") return respond(method_not_allowed("PATCH"));
      return admin_update_tenant(parts[2], request, std::move(respond));
    }
    if (parts.size() == 4 && parts[3] == "keys") {
      if (method != "POST") return respond(method_not_allowed("POST"));
      return admin_create_key(parts[2], std::move(respond));
    }
    if (parts.size() == 5 && parts[3] == "keys") {
      if (method != "DELETE") return respond(method_not_allowed("DELETE"));
      return admin_revoke_key(parts[2], parts[4], std::move(respond));
    }
  }
  if (parts.size() == 3 && parts[1] == "debug" && cfg_.debug.fault_injection) {
    if (method != "POST") return respond(method_not_allowed("POST"));
    if (parts[2] == "crash") return admin_crash(request, std::move(respond));
    if (parts[2] == "store") return admin_store_fault(request, std::move(respond));
  }
  respond(not_found());
}

void http_api::admin_list_tenants(http_responder respond) {
  auto s = directory_->get();
  auto& sys = sys_;
  ask<std::vector<tenant_summary>>(
      sys_, s->tenants, cfg_.http.handler_timeout,
      [respond](std::vector<tenant_summary>& list) {
        json::array tenants;
        for (const auto& t : list) {
          auto o = tenant_json(t.tenant);
          json::array keys;
          for (const auto& k : t.keys) keys.push_back(key_json(k));
          o["keys"] = std::move(keys);
          auto ppm = [](double x) { return static_cast<std::int64_t>(x * 1e6 + 0.5); };
          auto view = [&](const std::string& state, const reputation_counts& r) {
            return json::object{{"state", state},
                                {"delivered", r.delivered},
                                {"hard_bounces", r.hard_bounces},
                                {"complaints", r.complaints},
                                {"complaint_rate_ppm", ppm(r.complaint_rate())},
                                {"hard_bounce_rate_ppm", ppm(r.hard_bounce_rate())}};
          };
          auto reputation = view(t.reputation_state, t.reputation);
          json::array domains;
          for (const auto& d : t.sender_domains) {
            auto one = view(d.state, d.counts);
            one["domain"] = d.domain;
            domains.push_back(std::move(one));
          }
          reputation["sender_domains"] = std::move(domains);
          o["reputation"] = std::move(reputation);
          tenants.push_back(std::move(o));
        }
        respond(json_response(200, json::object{{"tenants", std::move(tenants)}}));
      },
      [respond, &sys](caf::error& e) { respond(problem_from_error(sys, e)); }, list_atom::value);
}

void http_api::admin_create_tenant(const http_request& request, http_responder respond) {
  json::value doc;
  if (auto bad = parse_json_body(request.body, doc)) return respond(std::move(*bad));
  const auto& o = doc.get_object();
  std::vector<field_error> errors;
  new_tenant t;
  for (const auto& kv : o)
    if (kv.key() != "name" && kv.key() != "rate" && kv.key() != "burst" && kv.key() != "sandbox")
      errors.push_back({std::string(kv.key()), "unknown field (name, rate, burst, sandbox)"});
  if (auto* name = o.if_contains("name"); name && name->is_string())
    t.name = std::string(name->get_string());
  else
    errors.push_back({"name", "required, a string"});
  if (auto* rate = o.if_contains("rate")) {
    auto value = rate->is_string() ? parse_rate(std::string_view(rate->get_string()))
                                   : parsed<petrel::rate>::failure("must be a string like \"100/s\"");
    if (value && value.value().per_second > 0)
      t.rate_per_second = value.value().per_second;
    else
      errors.push_back({"rate", value ? std::string("must be above zero") : value.error()});
  }
  if (auto* burst = o.if_contains("burst")) {
    if (burst->is_int64() && burst->get_int64() > 0 && burst->get_int64() <= 10'000'000)
      t.burst = static_cast<std::uint32_t>(burst->get_int64());
    else
      errors.push_back({"burst", "must be an integer from 1 to 10000000"});
  }
  if (auto* sandbox = o.if_contains("sandbox")) {
    if (sandbox->is_bool()) t.sandbox = sandbox->get_bool();
    else errors.push_back({"sandbox", "must be true or false"});
  }
  if (!errors.empty())
    return respond(invalid_request(errors));
  auto s = directory_->get();
  auto& sys = sys_;
  ask<created_tenant>(
      sys_, s->tenants, cfg_.http.handler_timeout,
      [respond](created_tenant& c) {
        respond(json_response(201, json::object{{"tenant", tenant_json(c.tenant)},
                                                {"key", key_json(c.key.key)},
                                                {"api_key", c.key.api_key}}));
      },
      [respond, &sys](caf::error& e) { respond(problem_from_error(sys, e)); }, create_atom::value,
      std::move(t));
}

void http_api::admin_update_tenant(const std::string& tenant_id, const http_request& request,
                                   http_responder respond) {
  auto id = id128::parse(tenant_id);
  if (!id) return respond(problem(404, "not-found", "Not Found", "no such tenant"));
  json::value doc;
  if (auto bad = parse_json_body(request.body, doc)) return respond(std::move(*bad));
  std::vector<field_error> errors;
  tenant_patch patch;
  for (const auto& kv : doc.get_object()) {
    std::string key(kv.key());
    const auto& v = kv.value();
    if (key == "rate") {
      patch.set_rate = true;
      if (v.is_null()) continue;  // back to the default
      auto value = v.is_string() ? parse_rate(std::string_view(v.get_string()))
                                 : parsed<petrel::rate>::failure("must be a string like \"100/s\" or null");
      if (value && value.value().per_second > 0)
        patch.rate_per_second = value.value().per_second;
      else
        errors.push_back({"rate", value ? std::string("must be above zero") : value.error()});
    } else if (key == "burst") {
      patch.set_burst = true;
      if (v.is_null()) continue;
      if (v.is_int64() && v.get_int64() > 0 && v.get_int64() <= 10'000'000)
        patch.burst = static_cast<std::uint32_t>(v.get_int64());
      else
        errors.push_back({"burst", "must be an integer from 1 to 10000000, or null"});
    } else if (key == "suspended") {
      patch.set_suspended = true;
      if (v.is_bool())
        patch.suspended = v.get_bool();
      else
        errors.push_back({"suspended", "must be true or false"});
    } else if (key == "pool") {
      patch.set_pool = true;
      if (v.is_null()) continue;  // the default pool
      if (v.is_string() && pool_names_.load()->count(std::string(v.get_string())))
        patch.pool = std::string(v.get_string());
      else
        errors.push_back({"pool", "must name a pool of [[egress.pools]] (or null for the default)"});
    } else if (key == "weight") {
      patch.set_weight = true;
      if (v.is_int64() && v.get_int64() >= 1 && v.get_int64() <= 1000)
        patch.weight = static_cast<std::uint32_t>(v.get_int64());
      else
        errors.push_back({"weight", "must be an integer from 1 to 1000"});
    } else if (key == "sandbox") {
      patch.set_sandbox = true;
      if (v.is_bool())
        patch.sandbox = v.get_bool();
      else
        errors.push_back({"sandbox", "must be true or false"});
    } else {
      errors.push_back({key, "unknown field (rate, burst, suspended, pool, weight, sandbox)"});
    }
  }
  if (!errors.empty())
    return respond(invalid_request(errors));
  auto s = directory_->get();
  auto& sys = sys_;
  ask<tenant_record>(
      sys_, s->tenants, cfg_.http.handler_timeout,
      [respond](tenant_record& t) { respond(json_response(200, json::object{{"tenant", tenant_json(t)}})); },
      [respond, &sys](caf::error& e) { respond(problem_from_error(sys, e)); }, caf::update_atom::value,
      *id, patch);
}

void http_api::admin_store_fault(const http_request& request, http_responder respond) {
  json::value doc;
  const json::value* n = nullptr;
  if (!parse_json_body(request.body, doc)) n = doc.get_object().if_contains("fail_commits");
  if (!n || !n->is_int64() || n->get_int64() < 0)
    return respond(problem(400, "invalid-request", "Bad Request",
                           "fail_commits: required, how many commits should fail",
                           {{"fail_commits", "required, a non-negative integer"}}));
  auto s = directory_->get();
  caf::anon_send(s->store, crash_atom::value, static_cast<std::uint64_t>(n->get_int64()));
  respond(json_response(202, json::object{{"failing_commits", n->get_int64()}}));
}

void http_api::admin_create_key(const std::string& tenant_id, http_responder respond) {
  auto id = id128::parse(tenant_id);
  if (!id) return respond(problem(404, "not-found", "Not Found", "no such tenant"));
  auto s = directory_->get();
  auto& sys = sys_;
  ask<issued_key>(
      sys_, s->tenants, cfg_.http.handler_timeout,
      [respond](issued_key& k) {
        respond(json_response(201, json::object{{"key", key_json(k.key)}, {"api_key", k.api_key}}));
      },
      [respond, &sys](caf::error& e) { respond(problem_from_error(sys, e)); }, create_atom::value,
      key_atom::value, *id);
}

void http_api::admin_revoke_key(const std::string& tenant_id, const std::string& key_id,
                                http_responder respond) {
  auto tenant = id128::parse(tenant_id);
  auto key = id128::parse(key_id);
  if (!tenant || !key) return respond(problem(404, "not-found", "Not Found", "no such key"));
  auto s = directory_->get();
  auto& sys = sys_;
  ask<caf::ok_atom>(
      sys_, s->tenants, cfg_.http.handler_timeout,
      answered_empty(respond),
      [respond, &sys](caf::error& e) { respond(problem_from_error(sys, e)); }, revoke_atom::value,
      *tenant, *key);
}

void http_api::admin_crash(const http_request& request, http_responder respond) {
  json::value doc;
  const json::value* domain = nullptr;
  if (!parse_json_body(request.body, doc)) domain = doc.get_object().if_contains("domain");
  if (!domain || !domain->is_string())
    return respond(problem(400, "invalid-request", "Bad Request",
                           "domain: required, the domain whose actor should crash",
                           {{"domain", "required"}}));
  auto s = directory_->get();
  auto& sys = sys_;
  spdlog::warn("admin.fault_injection actor=domain domain={}", std::string(domain->get_string()));
  ask<bool>(
      sys_, s->domains, cfg_.http.handler_timeout,
      [respond](bool found) {
        if (!found) return respond(problem(404, "not-found", "Not Found", "no live actor for that domain"));
        respond(json_response(202, json::object{{"crashed", true}}));
      },
      [respond, &sys](caf::error& e) { respond(problem_from_error(sys, e)); }, crash_atom::value,
      std::string(domain->get_string()));
}

}  // namespace petrel
