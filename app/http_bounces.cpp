// Routes of suppressions, inbound reports and one-click unsubscribes:
//   GET    /v1/suppressions[?reason=&after=&limit=]   a page, in address order
//   POST   /v1/suppressions                            add one or many
//   GET    /v1/suppressions/{email}                    one
//   DELETE /v1/suppressions/{email}                    lift one
//   POST   /v1/inbound   (tenant key)  a raw bounce or feedback report, for that tenant
//   POST   /admin/inbound (admin token) the same for any tenant
//   GET|POST /u/{token}  the unsubscribe page; POST (RFC 8058 one-click) unsubscribes
#include <boost/json.hpp>
#include <caf/all.hpp>

#include "actors/api_key.hpp"
#include "net/mail/recipient_token.hpp"
#include "app/actor_bridge.hpp"
#include "app/http_api.hpp"
#include "app/http_common.hpp"
#include "app/problem.hpp"
#include "net/mail/email_address.hpp"

namespace petrel {

namespace json = boost::json;

namespace {

const std::vector<std::string> manual_reasons = {"manual", "hard_bounce", "complaint", "unsubscribe"};
constexpr std::size_t max_suppressions_per_request = 1000;
constexpr std::uint64_t max_page = 1000;

json::object suppression_json(const suppression_record& s) {
  return json::object{{"email", s.address},
                      {"reason", s.reason},
                      {"source_event", s.source_event.empty() ? json::value(nullptr) : json::value(s.source_event)},
                      {"created_at", timestamp(s.created_at_ms)},
                      {"expires_at", timestamp(s.expires_at_ms)}};
}

// The suppression key of an address as a client writes it, or the reason it is not one.
parsed<std::string> address_key(std::string_view text) {
  auto box = parse_address(text);
  if (!box) return parsed<std::string>::failure(box.error());
  return suppression_key(box.value().envelope_address(), box.value().ascii_domain);
}

// The body of POST /v1/suppressions: {"suppressions": [{...}, ...]} or one {...}. An error
// response when it is not valid.
std::optional<http_response> read_suppression_additions(const http_request& request,
                                                        std::vector<suppression_record>& additions) {
  json::value doc;
  if (auto bad = read_json_object(request, doc)) return bad;
  std::vector<field_error> errors;
  std::vector<const json::object*> items;
  const auto& o = doc.get_object();
  if (const auto* list_value = o.if_contains("suppressions")) {
    if (o.size() != 1 || !list_value->is_array())
      errors.push_back({"suppressions", "must be the only field, an array of objects"});
    else
      for (const auto& item : list_value->get_array()) {
        if (item.is_object()) items.push_back(&item.get_object());
        else errors.push_back({"suppressions", "each entry must be an object"});
      }
  } else {
    items.push_back(&o);
  }
  if (items.empty() && errors.empty()) errors.push_back({"suppressions", "at least one entry"});
  if (items.size() > max_suppressions_per_request)
    errors.push_back({"suppressions", "at most " + std::to_string(max_suppressions_per_request) +
                                          " per request"});
  auto now = now_ms();
  for (std::size_t i = 0; i < items.size() && errors.size() < 20; ++i) {
    auto prefix = items.size() == 1 && !o.if_contains("suppressions")
                      ? std::string()
                      : "suppressions[" + std::to_string(i) + "].";
    suppression_record r;
    r.reason = "manual";
    r.created_at_ms = now;
    bool has_email = false;
    for (const auto& kv : *items[i]) {
      std::string k(kv.key());
      const auto& v = kv.value();
      if (k == "email" && v.is_string()) {
        auto parsed_key = address_key(std::string_view(v.get_string()));
        if (!parsed_key) errors.push_back({prefix + "email", parsed_key.error()});
        else r.address = parsed_key.value();
        has_email = true;
      } else if (k == "reason" && v.is_string()) {
        r.reason = std::string(v.get_string());
        if (std::find(manual_reasons.begin(), manual_reasons.end(), r.reason) == manual_reasons.end())
          errors.push_back({prefix + "reason", "one of manual, hard_bounce, complaint, unsubscribe"});
      } else if (k == "expires_in") {
        auto d = v.is_string() ? parse_duration(std::string_view(v.get_string()))
                               : parsed<std::chrono::milliseconds>::failure(
                                     "expects a duration string like \"30d\" (units ms, s, m, h, d)");
        if (!d) errors.push_back({prefix + "expires_in", d.error()});
        else if (d.value().count() <= 0) errors.push_back({prefix + "expires_in", "must be above zero, like \"30d\""});
        else r.expires_at_ms = now + d.value().count();
      } else {
        errors.push_back({prefix + k, "unknown field, or not of its type (email, reason, expires_in)"});
      }
    }
    if (!has_email) errors.push_back({prefix + "email", "required, an address"});
    additions.push_back(std::move(r));
  }
  if (!errors.empty()) return invalid_request(errors);
  return std::nullopt;
}

// The query of GET /v1/suppressions (reason, after, limit). An error response when it is not valid.
std::optional<http_response> read_suppression_query(const http_request& request, suppression_query& query) {
  std::optional<http_response> invalid;
  query.reason = query_parameter(request.query, "reason");
  query.after = query_parameter(request.query, "after");
  auto limit = query_parameter(request.query, "limit");
  if (!limit.empty()) {
    auto n = parse_decimal(limit);
    if (!n || *n <= 0 || static_cast<std::uint64_t>(*n) > max_page)
      invalid = invalid_request({{"limit", "a number from 1 to " + std::to_string(max_page)}});
    else
      query.limit = static_cast<std::uint64_t>(*n);
  }
  if (!query.reason.empty() && query.reason != "soft_bounce_streak" &&
      std::find(manual_reasons.begin(), manual_reasons.end(), query.reason) == manual_reasons.end())
    invalid = invalid_request({{"reason", "one of manual, hard_bounce, complaint, unsubscribe, soft_bounce_streak"}});
  return invalid;
}

}  // namespace

void http_api::suppressions(http_request&& request, const std::vector<std::string>& parts,
                            http_responder respond) {
  const auto& method = request.method;
  enum { list, add, get_one, remove } op;
  std::string address;
  if (parts.size() == 2) {
    if (method == "GET") op = list;
    else if (method == "POST") op = add;
    else return respond(method_not_allowed("GET, POST"));
  } else if (parts.size() == 3) {
    if (method == "GET") op = get_one;
    else if (method == "DELETE") op = remove;
    else return respond(method_not_allowed("GET, DELETE"));
  } else {
    return respond(not_found());
  }

  // Validated now, answered after the key is checked (below): a request of an unknown key gets
  // 401 whatever else is wrong with it.
  std::vector<suppression_record> additions;
  std::optional<http_response> invalid;
  suppression_query query;
  if (op == add) {
    invalid = read_suppression_additions(request, additions);
  } else if (op == list) {
    invalid = read_suppression_query(request, query);
  } else {
    auto parsed_key = address_key(percent_decode(parts[2]));
    if (!parsed_key) invalid = invalid_request({{"email", parsed_key.error()}});
    else address = parsed_key.value();
  }

  auto s = directory_->get();
  auto& sys = sys_;
  auto timeout = cfg_.http.handler_timeout;
  auto fail = [respond, &sys](caf::error& e) { respond(problem_from_error(sys, e)); };
  as_tenant(request, respond, [=, &sys, additions = std::move(additions)](tenant_identity& who) mutable {
        if (invalid) return respond(*invalid);
        query.tenant_id = who.tenant_id;
        switch (op) {
          case list: {
            // One page shape for every paged list (as GET /v1/events): "next" is the cursor for
            // ?after= (the last item's, or the request's when the page is empty) and "more"
            // says whether a full page came back; "next_after" is the older name, kept.
            auto limit = query.limit;
            auto after = query.after;
            return ask<std::vector<suppression_record>>(
                sys, s->store, timeout,
                [respond, limit, after](std::vector<suppression_record>& page) {
                  json::array items;
                  for (const auto& r : page) items.push_back(suppression_json(r));
                  bool more = page.size() == limit && !page.empty();
                  auto next = page.empty() ? after : page.back().address;
                  respond(json_response(200, json::object{{"suppressions", std::move(items)},
                                                          {"next", next},
                                                          {"more", more},
                                                          {"next_after", more ? json::value(next) : json::value(nullptr)}}));
                },
                fail, load_atom::value, query);
          }
          case get_one:
            query.address = address;
            return ask<std::vector<suppression_record>>(
                sys, s->store, timeout,
                [respond](std::vector<suppression_record>& found) {
                  if (found.empty())
                    return respond(problem(404, "not-found", "Not Found", "the address is not suppressed"));
                  respond(json_response(200, suppression_json(found.front())));
                },
                fail, load_atom::value, query);
          case add: {
            json::array items;
            for (auto& r : additions) {
              r.tenant_id = who.tenant_id;
              items.push_back(suppression_json(r));
            }
            return ask<caf::ok_atom>(
                sys, s->tenants, timeout,
                [respond, items](caf::ok_atom) {
                  respond(json_response(200, json::object{{"suppressions", items}}));
                },
                fail, suppress_atom::value, who.tenant_id, std::move(additions));
          }
          case remove:
            return ask<caf::ok_atom>(
                sys, s->tenants, timeout,
                answered_empty(respond),
                fail, caf::delete_atom::value, suppress_atom::value, who.tenant_id, address);
        }
      });
}

void http_api::inbound(http_request&& request, bool admin, http_responder respond) {
  auto s = directory_->get();
  auto& sys = sys_;
  auto timeout = cfg_.http.handler_timeout;
  auto fail = [respond, &sys](caf::error& e) { respond(problem_from_error(sys, e)); };
  auto process = [=, &sys](inbound_message m) {
    ask<inbound_result>(
        sys, s->bounces, timeout,
        [respond](inbound_result& r) {
          json::array outcomes;
          for (const auto& o : r.outcomes) {
            json::object outcome{{"recipient_id", o.recipient_id.str()},
                                 {"message_id", o.message_id.str()},
                                 {"email", o.address},
                                 {"event", o.event},
                                 {"category", o.category},
                                 {"hard", o.hard},
                                 {"suppressed", o.suppressed}};
            if (!o.bounce_reason.empty()) outcome["bounce_reason"] = o.bounce_reason;
            outcomes.push_back(std::move(outcome));
          }
          json::object out{{"kind", r.kind}, {"outcomes", std::move(outcomes)}};
          out["note"] = r.note.empty() ? json::value(nullptr) : json::value(r.note);
          respond(json_response(200, out));
        },
        fail, inbound_atom::value, std::move(m));
  };
  if (request.body.empty())
    return respond(invalid_request({{"", "the body must be the raw message (message/rfc822)"}}));
  inbound_message m;
  m.content = std::move(request.body);
  m.origin = admin ? "api admin" : "api";
  if (auto to = query_parameter(request.query, "to"); !to.empty()) m.envelope_to.push_back(to);
  if (admin) return process(std::move(m));
  auto key = bearer_token(request);
  if (auto bad = api_key_problem(key)) return respond(std::move(*bad));
  ask<tenant_identity>(
      sys_, s->tenants, timeout,
      [process, m = std::move(m)](tenant_identity& who) mutable {
        m.tenant_id = who.tenant_id;
        process(std::move(m));
      },
      fail, auth_atom::value, hash_api_key(key));
}

void http_api::unsubscribe(http_request&& request, const std::string& token, http_responder respond) {
  auto recipient = bounce_secret_.empty()
                       ? std::nullopt
                       : read_recipient_token(bounce_secret_, token_purpose::unsubscribe, token);
  if (!recipient)
    return respond(html_page(404, "Link not valid",
                        "<p>This unsubscribe link is not valid. It may have been cut or changed.</p>"));
  if (request.method == "GET" || request.method == "HEAD") {
    // Never unsubscribe on GET: mail scanners fetch links. The page posts back (RFC 8058 3.2).
    return respond(html_page(200, "Unsubscribe",
                        "<p>Stop receiving these messages?</p><form method=\"post\">"
                        "<input type=\"hidden\" name=\"List-Unsubscribe\" value=\"One-Click\">"
                        "<button type=\"submit\">Unsubscribe</button></form>"));
  }
  if (request.method != "POST") return respond(method_not_allowed("GET, POST"));
  auto s = directory_->get();
  auto& sys = sys_;
  ask<caf::ok_atom>(
      sys_, s->bounces, cfg_.http.handler_timeout,
      [respond](caf::ok_atom) {
        respond(html_page(200, "Unsubscribed", "<p>You will not receive these messages any more.</p>"));
      },
      [respond, &sys](caf::error& e) {
        auto p = problem_from_error(sys, e);
        if (p.status == 404)
          return respond(html_page(404, "Link not valid", "<p>This unsubscribe link is no longer valid.</p>"));
        respond(html_page(503, "Try again", "<p>Unsubscribing failed for now; please try again.</p>"));
      },
      unsub_atom::value, *recipient);
}

}  // namespace petrel
