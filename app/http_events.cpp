// Tenant routes of the event log and webhooks (docs/api.md, docs/webhooks.md):
//   GET    /v1/events                 filters: type, message, recipient, campaign, since, until;
//                                     cursor pagination: limit, after (the previous page's next)
//   POST   /v1/webhooks               {"url", "events"?: [types], "secret"?}
//   GET    /v1/webhooks               the tenant's endpoints with their health
//   GET    /v1/webhooks/{id}
//   DELETE /v1/webhooks/{id}
//   POST   /v1/webhooks/{id}/resume   a paused endpoint continues from its cursor
//   POST   /v1/webhooks/{id}/rotate   {"secret"?}: a new secret; the old one signs too for a while
#include <boost/json.hpp>
#include <caf/all.hpp>

#include <algorithm>
#include <map>
#include <ctime>
#include <limits>

#include "actors/actor_support.hpp"
#include "actors/api_key.hpp"
#include "actors/webhook_support.hpp"
#include "net/mail/email_address.hpp"
#include "app/actor_bridge.hpp"
#include "app/http_api.hpp"
#include "app/http_common.hpp"
#include "app/problem.hpp"
#include "app/tenant_fan_out.hpp"

namespace petrel {

namespace json = boost::json;

namespace {

constexpr std::uint64_t max_events_page = 1000;

// RFC 3339 (config/units.hpp) or unix seconds.
std::optional<std::int64_t> parse_time_ms(const std::string& text) {
  if (!text.empty() && text.find_first_not_of("0123456789") == std::string::npos && text.size() <= 12)
    return std::stoll(text) * 1000;
  return parse_rfc3339_ms(text);
}

// since= and until= of a request, when given (RFC 3339 or unix seconds).
void read_window(const http_request& request, std::int64_t& since, std::int64_t& until,
                 std::vector<field_error>& errors) {
  for (auto [name, target] : {std::pair{"since", &since}, std::pair{"until", &until}}) {
    auto text = query_parameter(request.query, name);
    if (text.empty()) continue;
    auto t = parse_time_ms(text);
    if (!t) errors.push_back({name, "an RFC 3339 time like 2026-11-29T04:00:00Z, or unix seconds"});
    else *target = *t;
  }
}

// recipient= as recipients are stored (the domain as its lower-case A-label: what submission
// made of it).
void read_recipient(const http_request& request, std::string& out, std::vector<field_error>& errors) {
  auto r = query_parameter(request.query, "recipient");
  if (r.empty()) return;
  auto box = parse_address(r);
  if (!box) errors.push_back({"recipient", box.error()});
  else out = box.value().envelope_address();
}

// limit=, from 1 to max.
void read_limit(const http_request& request, std::uint64_t max, std::uint64_t& out, std::vector<field_error>& errors) {
  auto limit = query_parameter(request.query, "limit");
  if (limit.empty()) return;
  auto n = parse_decimal(limit);
  if (!n || *n <= 0 || static_cast<std::uint64_t>(*n) > max)
    errors.push_back({"limit", "a number from 1 to " + std::to_string(max)});
  else out = static_cast<std::uint64_t>(*n);
}

// "a,b" -> {"a", "b"}; "" -> {}.
std::vector<std::string> split_commas(const std::string& text) {
  std::vector<std::string> out;
  if (text.empty()) return out;
  std::size_t start = 0;
  while (start <= text.size()) {
    auto comma = text.find(',', start);
    if (comma == std::string::npos) comma = text.size();
    out.push_back(text.substr(start, comma - start));
    start = comma + 1;
  }
  return out;
}

bool known_type(std::string_view t) {
  const auto& all = event_types();
  return std::find(all.begin(), all.end(), t) != all.end();
}

// "a,b" (each a known type) -> normalized list; error text on failure.
std::string check_types(const std::vector<std::string>& types, std::string& error) {
  std::vector<std::string> out;
  for (const auto& t : types) {
    if (!known_type(t)) {
      error = "unknown event type \"" + t + "\"; the types are";
      for (const auto& known : event_types()) error += " " + known;
      return {};
    }
    if (std::find(out.begin(), out.end(), t) == out.end()) out.push_back(t);
  }
  std::string joined;
  for (const auto& t : out) joined += (joined.empty() ? "" : ",") + t;
  return joined;
}

json::value webhook_json(const webhook_status& s, bool with_secret) {
  const auto& w = s.record;
  json::array types;
  for (const auto& t : split_commas(w.event_types)) types.push_back(json::string(t));
  json::object o{{"id", w.id.str()},
                 {"url", w.url},
                 {"events", w.event_types.empty() ? json::value(nullptr) : json::value(std::move(types))},
                 {"state", w.state},
                 {"paused_reason", w.paused_reason.empty() ? json::value(nullptr) : json::value(w.paused_reason)},
                 {"created_at", timestamp(w.created_at_ms)},
                 {"delivered", w.delivered},
                 {"last_success_at", timestamp(w.last_success_at_ms)},
                 {"last_error", w.last_error.empty() ? json::value(nullptr) : json::value(w.last_error)},
                 {"last_error_at", timestamp(w.last_error_at_ms)},
                 {"failures", w.failures},
                 {"failing_since", timestamp(w.failing_since_ms)},
                 {"next_attempt_at", timestamp(s.next_attempt_ms)},
                 {"backlog", s.backlog},
                 {"previous_secret_until", w.previous_until_ms > now_ms() ? timestamp(w.previous_until_ms)
                                                                          : json::value(nullptr)}};
  if (with_secret) o["secret"] = w.secret;
  return o;
}

// A webhook secret given by the client: 16 to 200 characters.
void check_secret(const std::string& secret, std::vector<field_error>& errors) {
  if (secret.size() < 16 || secret.size() > 200)
    errors.push_back({"secret", "16 to 200 characters (leave it out and Petrel makes one)"});
}

// The body of POST /v1/webhooks/{id}/rotate: an optional {"secret": ...}.
std::optional<http_response> read_webhook_rotation(const http_request& request, webhook_record& out) {
  json::value doc;
  if (auto bad = read_json_object(request, doc)) return bad;
  std::vector<field_error> errors;
  for (const auto& kv : doc.get_object()) {
    if (kv.key() == "secret" && kv.value().is_string()) {
      out.secret = std::string(kv.value().get_string());
      check_secret(out.secret, errors);
    } else {
      errors.push_back({std::string(kv.key()), "unknown field, or not of its type (secret)"});
    }
  }
  if (!errors.empty()) return invalid_request(errors);
  return std::nullopt;
}

// Where a webhook may post: a valid URL (https unless allowed otherwise) on the public internet
// unless private networks are allowed. Names are checked again when they are resolved.
void check_webhook_url(std::string_view text, const webhooks_config& cfg, std::vector<field_error>& errors) {
  auto url = parse_webhook_url(text, !cfg.require_https);
  const char* private_hint = " (this node sends webhooks to the public internet only: webhooks.allow_private_networks)";
  if (!url)
    errors.push_back({"url", url.error() + (cfg.require_https && text.rfind("http://", 0) == 0
                                                ? std::string(" (this node requires HTTPS: webhooks.require_https)")
                                                : std::string())});
  else if (!cfg.allow_private_networks && is_ip_literal(url->host) && !is_public_address(url->host))
    errors.push_back({"url", std::string("the address is not on the public internet") + private_hint});
  else if (!cfg.allow_private_networks && (url->host == "localhost" || url->host.ends_with(".localhost")))
    errors.push_back({"url", std::string("localhost is not on the public internet") + private_hint});
}

// The body of POST /v1/webhooks: url, events, secret.
std::optional<http_response> read_webhook_creation(const http_request& request, const webhooks_config& cfg,
                                                   webhook_record& out) {
  json::value doc;
  if (auto bad = read_json_object(request, doc)) return bad;
  std::vector<field_error> errors;
  bool has_url = false;
  for (const auto& kv : doc.get_object()) {
    std::string k(kv.key());
    const auto& v = kv.value();
    if (k == "url" && v.is_string()) {
      has_url = true;
      check_webhook_url(std::string_view(v.get_string()), cfg, errors);
      out.url = std::string(v.get_string());
    } else if (k == "events" && v.is_array()) {
      std::vector<std::string> list;
      for (const auto& t : v.get_array())
        if (t.is_string()) list.emplace_back(t.get_string());
        else errors.push_back({"events", "must be an array of event type names"});
      std::string error;
      out.event_types = check_types(list, error);
      if (!error.empty()) errors.push_back({"events", error});
      else if (list.empty()) errors.push_back({"events", "leave it out for every type, or name at least one"});
    } else if (k == "secret" && v.is_string()) {
      out.secret = std::string(v.get_string());
      check_secret(out.secret, errors);
    } else {
      errors.push_back({k, "unknown field, or not of its type (url, events, secret)"});
    }
  }
  if (!has_url) errors.push_back({"url", "required, an https:// URL"});
  if (!errors.empty()) return invalid_request(errors);
  return std::nullopt;
}

}  // namespace

namespace {

// GET /v1/messages's filters and cursor.
void read_message_search(const http_request& request, message_search& q, std::vector<field_error>& errors) {
  read_recipient(request, q.recipient, errors);
  if (auto st = query_parameter(request.query, "status"); !st.empty()) {
    if (!parse_recipient_state(st)) errors.push_back({"status", "one of queued, deferred, delivered, bounced, expired, "
                                                                "suppressed, cancelled"});
    else q.status = st;
  }
  q.campaign = query_parameter(request.query, "campaign");
  q.tag = query_parameter(request.query, "tag");
  q.batch_id = query_parameter(request.query, "batch_id");
  read_window(request, q.since_ms, q.until_ms, errors);
  read_limit(request, 500, q.limit, errors);
  // The cursor: "<created_at ms>-<id>" of the last message of the previous page.
  if (auto before = query_parameter(request.query, "before"); !before.empty()) {
    auto dash = before.find('-');
    auto id = dash == std::string::npos ? std::nullopt : id128::parse(before.substr(dash + 1));
    auto ms = dash == std::string::npos ? std::nullopt : parse_decimal(std::string_view(before).substr(0, dash));
    if (!id || !ms || *ms <= 0) errors.push_back({"before", "the \"next\" value of a previous page"});
    else q.before_created_ms = *ms, q.before_id = *id;
  }
}

json::object message_summary_json(const message_record& m, bool with_recipients) {
  json::object o{{"id", m.id.str()},
                 {"created_at", timestamp(m.created_at_ms)},
                 {"from", m.mail_from},
                 {"subject", m.subject},
                 {"campaign", m.campaign.empty() ? json::value(nullptr) : json::value(m.campaign)},
                 {"tags", json::parse(m.tags_json.empty() ? "[]" : m.tags_json)},
                 {"batch_id", m.batch_id.empty() ? json::value(nullptr) : json::value(m.batch_id)},
                 {"templated", m.templated},
                 {"size", m.size}};
  if (with_recipients) {
    json::array rs;
    for (const auto& r : m.recipients)
      rs.push_back(json::object{{"id", r.id.str()}, {"email", r.address}, {"status", to_string(r.state)}});
    o["recipients"] = std::move(rs);
  }
  return o;
}

std::string message_cursor(const message_record& m) { return std::to_string(m.created_at_ms) + "-" + m.id.str(); }

}  // namespace

void http_api::search_messages(http_request&& request, http_responder respond) {
  message_search q;
  std::vector<field_error> errors;
  read_message_search(request, q, errors);
  auto s = directory_->get();
  auto& sys = sys_;
  auto timeout = cfg_.http.handler_timeout;
  auto fail = [respond, &sys](caf::error& e) { respond(problem_from_error(sys, e)); };
  as_tenant(request, respond, [=, &sys](tenant_identity& who) mutable {
    if (!errors.empty()) return respond(invalid_request(errors));
    q.tenant_id = who.tenant_id;
    auto limit = q.limit;
    bool filtered = !q.recipient.empty() || !q.status.empty();
    ask<std::vector<message_record>>(
        sys, s->store, timeout,
        [respond, limit, filtered](std::vector<message_record>& page) {
          json::array out;
          for (const auto& m : page) out.push_back(message_summary_json(m, filtered));
          json::value next = nullptr;
          if (page.size() == limit && !page.empty()) next = message_cursor(page.back());
          respond(json_response(200, json::object{{"messages", std::move(out)}, {"next", std::move(next)}}));
        },
        fail, load_atom::value, std::move(q));
  });
}

// GET /admin/messages: GET /v1/messages over every tenant, newest first; each message names
// its tenant. Every tenant's page is the newest `limit` before the cursor, so the newest
// `limit` of them all is the true page.
void http_api::admin_search_messages(http_request&& request, http_responder respond) {
  message_search q;
  std::vector<field_error> errors;
  read_message_search(request, q, errors);
  if (!errors.empty()) return respond(invalid_request(errors));
  auto s = directory_->get();
  auto& sys = sys_;
  auto timeout = cfg_.http.handler_timeout;
  auto limit = q.limit;
  bool filtered = !q.recipient.empty() || !q.status.empty();
  using page = std::vector<message_record>;
  query_each_tenant<page>(
      sys_, s->tenants, s->store, timeout, q,
      [respond, limit, filtered, &sys](tenant_answers<page>& answers) {
        if (answers.error) return respond(problem_from_error(sys, *answers.error));
        std::vector<std::pair<const tenant_record*, const message_record*>> all;
        for (const auto& [tenant, p] : answers.results)
          for (const auto& m : p) all.emplace_back(&tenant, &m);
        std::sort(all.begin(), all.end(), [](const auto& a, const auto& b) {
          return std::tie(a.second->created_at_ms, a.second->id) > std::tie(b.second->created_at_ms, b.second->id);
        });
        bool more = all.size() > limit;
        if (more) all.resize(limit);
        json::array out;
        for (const auto& [tenant, m] : all) {
          auto o = message_summary_json(*m, filtered);
          o["tenant"] = tenant->id.str();
          o["tenant_name"] = tenant->name;
          out.push_back(std::move(o));
        }
        json::value next = nullptr;
        if (more || (all.size() == limit && !all.empty())) next = message_cursor(*all.back().second);
        respond(json_response(200, json::object{{"messages", std::move(out)}, {"next", std::move(next)}}));
      },
      [respond, &sys](caf::error& e) { respond(problem_from_error(sys, e)); });
}

namespace {

// GET /v1/events's filters and cursor.
void read_event_query(const http_request& request, event_query& q, std::vector<field_error>& errors) {
  auto type = query_parameter(request.query, "type");
  if (!type.empty()) {
    std::string error;
    q.types = check_types(split_commas(type), error);
    if (!error.empty()) errors.push_back({"type", error});
  }
  if (auto m = query_parameter(request.query, "message"); !m.empty()) {
    auto id = id128::parse(m);
    if (!id) errors.push_back({"message", "not a message id"});
    else q.message_id = *id;
  }
  // (The store compares it without regard to ASCII case.)
  read_recipient(request, q.recipient, errors);
  q.campaign = query_parameter(request.query, "campaign");
  read_window(request, q.since_ms, q.until_ms, errors);
  q.limit = 100;
  read_limit(request, max_events_page, q.limit, errors);
  if (auto after = query_parameter(request.query, "after"); !after.empty()) {
    auto n = parse_decimal(after);
    if (!n || *n < 0) errors.push_back({"after", "the \"next\" value of a previous page"});
    else q.after_seq = *n;
  }
}

// A page of events: {"events": [...], "next": "<seq>", "more": bool}.
http_response events_page(const std::vector<const event_view*>& page, std::int64_t next, bool more,
                          const std::map<id128, std::string>* tenant_names = nullptr) {
  std::string body = "{\"events\":[";
  for (std::size_t i = 0; i < page.size(); ++i) {
    if (i) body += ',';
    if (tenant_names) {
      // The admin tail also names the tenant.
      auto it = tenant_names->find(page[i]->event.tenant_id);
      auto o = json::parse(event_json(*page[i])).as_object();
      o["tenant_name"] = it == tenant_names->end() ? std::string() : it->second;
      body += json::serialize(o);
    } else {
      body += event_json(*page[i]);
    }
  }
  body += "],\"next\":\"" + std::to_string(next) + "\",\"more\":" + (more ? "true" : "false") + "}";
  http_response r;
  r.body = std::move(body);
  return r;
}

}  // namespace

void http_api::events(http_request&& request, http_responder respond) {
  event_query q;
  std::vector<field_error> errors;
  read_event_query(request, q, errors);
  auto s = directory_->get();
  auto& sys = sys_;
  auto timeout = cfg_.http.handler_timeout;
  auto fail = [respond, &sys](caf::error& e) { respond(problem_from_error(sys, e)); };
  as_tenant(request, respond, [=, &sys](tenant_identity& who) mutable {
        if (!errors.empty()) return respond(invalid_request(errors));
        q.tenant_id = who.tenant_id;
        auto limit = q.limit;
        auto after = q.after_seq;
        ask<std::vector<event_view>>(
            sys, s->store, timeout,
            [respond, limit, after](std::vector<event_view>& page) {
              // "next" continues after this page, also when it was short: events written later
              // show up there (poll with it to follow the log).
              std::vector<const event_view*> items;
              for (const auto& e : page) items.push_back(&e);
              respond(events_page(items, page.empty() ? after : page.back().seq, page.size() == limit));
            },
            fail, load_atom::value, q);
      });
}

// GET /admin/events: GET /v1/events over every tenant, in the store's order (sequence numbers
// are the node's, not a tenant's).
void http_api::admin_events(http_request&& request, http_responder respond) {
  event_query q;
  std::vector<field_error> errors;
  read_event_query(request, q, errors);
  if (!errors.empty()) return respond(invalid_request(errors));
  q.all_tenants = true;
  auto s = directory_->get();
  auto& sys = sys_;
  auto timeout = cfg_.http.handler_timeout;
  auto store = s->store;
  auto fail = [respond, &sys](caf::error& e) { respond(problem_from_error(sys, e)); };
  // The tenants' names first, then one query of the store for every tenant's events: one
  // snapshot, so that the cursor passes no event (PostgreSQL: behind the visibility horizon).
  ask<std::vector<tenant_summary>>(
      sys_, s->tenants, timeout,
      [=, &sys](std::vector<tenant_summary>& tenants) {
        std::map<id128, std::string> names;
        for (const auto& t : tenants) names[t.tenant.id] = t.tenant.name;
        ask<std::vector<event_view>>(
            sys, store, timeout,
            [respond, q, names](std::vector<event_view>& page) {
              std::vector<const event_view*> items;
              for (const auto& e : page) items.push_back(&e);
              respond(events_page(items, page.empty() ? q.after_seq : page.back().seq, page.size() == q.limit, &names));
            },
            fail, load_atom::value, q);
      },
      fail, list_atom::value);
}

// GET /admin/webhooks: every tenant's webhook endpoints with their health.
void http_api::admin_webhooks(http_responder respond) {
  auto s = directory_->get();
  auto& sys = sys_;
  auto timeout = cfg_.http.handler_timeout;
  auto events_actor = s->events;
  using list = std::vector<webhook_status>;
  ask_each_tenant<list>(
      sys_, s->tenants, timeout,
      [=, &sys](const tenant_record& t, std::function<void(std::optional<list>, caf::error*)> reply) {
        ask<list>(
            sys, events_actor, timeout, [reply](list& l) { reply(std::move(l), nullptr); },
            [reply](caf::error& e) { reply(std::nullopt, &e); }, list_atom::value, t.id);
      },
      [respond, &sys](tenant_answers<list>& answers) {
        if (answers.error) return respond(problem_from_error(sys, *answers.error));
        json::array out;
        for (const auto& [tenant, l] : answers.results)
          for (const auto& w : l) {
            auto o = webhook_json(w, false).as_object();
            o["tenant"] = tenant.id.str();
            o["tenant_name"] = tenant.name;
            out.push_back(std::move(o));
          }
        respond(json_response(200, json::object{{"webhooks", std::move(out)}}));
      },
      [respond, &sys](caf::error& e) { respond(problem_from_error(sys, e)); });
}

void http_api::stats(http_request&& request, http_responder respond) {
  stats_query q;
  std::vector<field_error> errors;
  auto bucket = query_parameter(request.query, "bucket");
  if (bucket.empty() || bucket == "hour") {
    bucket = "hour";
    q.bucket_ms = 3600 * 1000;
  } else if (bucket == "day") {
    q.bucket_ms = 24 * 3600 * 1000;
  } else {
    errors.push_back({"bucket", "hour or day"});
  }
  // Default window: the last 24 hours (hour) or 30 days (day), in whole buckets.
  auto now = now_ms();
  q.until_ms = (now / q.bucket_ms + 1) * q.bucket_ms;
  q.since_ms = q.until_ms - (bucket == "day" ? 30 : 24) * q.bucket_ms;
  read_window(request, q.since_ms, q.until_ms, errors);
  q.since_ms = q.since_ms / q.bucket_ms * q.bucket_ms;  // whole buckets
  if (q.until_ms <= q.since_ms) errors.push_back({"until", "must be after since"});
  else if ((q.until_ms - q.since_ms) / q.bucket_ms > 1000) errors.push_back({"since", "at most 1,000 buckets"});
  q.campaign = query_parameter(request.query, "campaign");
  auto s = directory_->get();
  auto& sys = sys_;
  auto timeout = cfg_.http.handler_timeout;
  auto fail = [respond, &sys](caf::error& e) { respond(problem_from_error(sys, e)); };
  as_tenant(request, respond, [=, &sys](tenant_identity& who) mutable {
    if (!errors.empty()) return respond(invalid_request(errors));
    q.tenant_id = who.tenant_id;
    ask<std::vector<stats_row>>(
        sys, s->store, timeout,
        [respond, q, bucket](std::vector<stats_row>& rows) {
          // Every bucket of the window, also the empty ones, so that graphs need no gaps filled.
          static const char* counted[] = {"messages",   "recipients", "delivered",    "deferred",
                                          "bounced",    "bounced_hard", "bounced_soft", "expired",
                                          "suppressed", "complained", "unsubscribed", "cancelled",
                                          "opened",     "opened_machine", "clicked",  "clicked_machine"};
          auto empty = [] {
            json::object o;
            for (const char* k : counted) o[k] = 0;
            return o;
          };
          std::map<std::int64_t, json::object> buckets;
          for (auto t = q.since_ms; t < q.until_ms; t += q.bucket_ms) buckets[t] = empty();
          auto totals = empty();
          auto add = [&](json::object& o, const char* key, std::uint64_t n) {
            o[key] = o[key].as_int64() + static_cast<std::int64_t>(n);
          };
          for (const auto& r : rows) {
            auto& b = buckets.try_emplace(r.bucket_start_ms, empty()).first->second;
            for (auto* o : {&b, &totals}) {
              if (r.type == "accepted") {
                add(*o, "messages", r.count);
                add(*o, "recipients", r.recipients);
              } else if (r.type == "bounced") {
                add(*o, "bounced", r.count);
                add(*o, r.hard ? "bounced_hard" : "bounced_soft", r.count);
              } else if (r.type == "opened" || r.type == "clicked") {
                // Machines apart: "opened" counts people (the first open of each recipient).
                add(*o, r.hard ? (r.type == "opened" ? "opened_machine" : "clicked_machine") : r.type.c_str(), r.count);
              } else if (o->contains(r.type)) {
                add(*o, r.type.c_str(), r.count);
              }
            }
          }
          auto rate = [](json::object& o) {
            auto delivered = o["delivered"].as_int64();
            auto final_failures = o["bounced"].as_int64() + o["expired"].as_int64();
            o["delivery_rate"] = delivered + final_failures > 0
                                     ? json::value(static_cast<double>(delivered) / (delivered + final_failures))
                                     : json::value(nullptr);
          };
          json::array list;
          for (auto& [start, o] : buckets) {
            rate(o);
            o["start"] = timestamp(start);
            list.push_back(std::move(o));
          }
          rate(totals);
          respond(json_response(200, json::object{{"bucket", bucket},
                                                  {"since", timestamp(q.since_ms)},
                                                  {"until", timestamp(q.until_ms)},
                                                  {"campaign", q.campaign.empty() ? json::value(nullptr)
                                                                                  : json::value(q.campaign)},
                                                  {"buckets", std::move(list)},
                                                  {"totals", std::move(totals)}}));
        },
        fail, load_atom::value, q);
  });
}

namespace {

// POST /v1/webhooks/{id}/test: one sample event of type "test", signed with the endpoint's
// secret(s) as a real batch is, posted now; the answer says what the endpoint replied. The
// endpoint's queue, cursor and state are not touched.
void post_test_batch(const std::shared_ptr<delivery_runtime>& runtime, const webhooks_config& settings,
                     const webhook_record& w, const http_responder& respond) {
  if (!runtime) return respond(problem(503, "unavailable", "Service Unavailable", "the node is starting"));
  event_view sample;
  sample.event.id = new_id();
  sample.event.tenant_id = w.tenant_id;
  sample.event.type = "test";
  sample.event.at_ms = now_ms();
  sample.event.data_json = R"({"note":"a test from POST /v1/webhooks/{id}/test; no message is involved"})";
  sample.recipient = "test@example.com";
  sample.tags_json = "[]";
  sample.metadata_json = "{}";
  auto body = webhook_batch_json(w.id, {sample});
  auto now = now_ms();
  webhook_post p;
  p.url = w.url;
  p.headers = {{"Content-Type", "application/json"},
               {"Petrel-Webhook", w.id.str()},
               {"Petrel-Delivery", new_id().str()},
               {"Petrel-Test", "true"},
               {"Petrel-Signature", webhook_signature(w.secret, now / 1000, body,
                                                      now < w.previous_until_ms ? w.previous_secret : std::string())}};
  p.body = std::move(body);
  p.timeout = settings.timeout;
  p.allow_private = settings.allow_private_networks;
  p.allow_http = !settings.require_https;
  start_webhook_test(runtime, std::move(p), [respond](int status, std::string error) {
    bool delivered = status >= 200 && status < 300;
    if (error.empty() && !delivered) error = "the endpoint answered HTTP " + std::to_string(status);
    respond(json_response(200, json::object{{"delivered", delivered},
                                            {"status", status ? json::value(status) : json::value(nullptr)},
                                            {"error", error.empty() ? json::value(nullptr) : json::value(error)}}));
  });
}

}  // namespace

void http_api::webhooks(http_request&& request, const std::vector<std::string>& parts,
                        http_responder respond) {
  const auto& method = request.method;
  enum { list, create, get_one, remove, resume, rotate, test } op;
  id128 id;
  if (parts.size() == 2) {
    if (method == "GET") op = list;
    else if (method == "POST") op = create;
    else return respond(method_not_allowed("GET, POST"));
  } else if (parts.size() == 3 ||
             (parts.size() == 4 && (parts[3] == "resume" || parts[3] == "rotate" || parts[3] == "test"))) {
    // (A malformed id is answered after the key is checked: a stranger learns nothing.)
    if (auto parsed = id128::parse(parts[2])) id = *parsed;
    if (parts.size() == 4) {
      if (method != "POST") return respond(method_not_allowed("POST"));
      op = parts[3] == "resume" ? resume : parts[3] == "rotate" ? rotate : test;
    } else if (method == "GET") {
      op = get_one;
    } else if (method == "DELETE") {
      op = remove;
    } else {
      return respond(method_not_allowed("GET, DELETE"));
    }
  } else {
    return respond(not_found());
  }
  webhook_record creation;
  std::optional<http_response> invalid;
  if (op == rotate && !request.body.empty())
    invalid = read_webhook_rotation(request, creation);
  else if (op == create)
    invalid = read_webhook_creation(request, cfg_.webhooks, creation);
  auto s = directory_->get();
  auto& sys = sys_;
  auto timeout = cfg_.http.handler_timeout;
  auto runtime = runtime_;
  auto webhook_settings = cfg_.webhooks;
  auto fail = [respond, &sys](caf::error& e) { respond(problem_from_error(sys, e)); };
  bool unknown_id = parts.size() >= 3 && id.empty();
  as_tenant(request, respond, [=, &sys](tenant_identity& who) mutable {
        if (unknown_id) return respond(problem(404, "not-found", "Not Found", "no such webhook"));
        if (invalid) return respond(*invalid);
        auto tenant = who.tenant_id;
        switch (op) {
          case create:
            creation.tenant_id = tenant;
            return ask<webhook_status>(
                sys, s->events, timeout,
                [respond](webhook_status& w) { respond(json_response(201, webhook_json(w, true))); }, fail,
                create_atom::value, creation);
          case list:
            return ask<std::vector<webhook_status>>(
                sys, s->events, timeout,
                [respond](std::vector<webhook_status>& all) {
                  json::array out;
                  for (const auto& w : all) out.push_back(webhook_json(w, false));
                  respond(json_response(200, json::object{{"webhooks", std::move(out)}}));
                },
                fail, list_atom::value, tenant);
          case get_one:
            return ask<std::vector<webhook_status>>(
                sys, s->events, timeout,
                [respond, id](std::vector<webhook_status>& all) {
                  for (const auto& w : all)
                    if (w.record.id == id) return respond(json_response(200, webhook_json(w, false)));
                  respond(problem(404, "not-found", "Not Found", "no such webhook"));
                },
                fail, list_atom::value, tenant);
          case remove:
            return ask<caf::ok_atom>(
                sys, s->events, timeout,
                answered_empty(respond),
                fail, caf::delete_atom::value, tenant, id);
          case resume:
            return ask<webhook_status>(
                sys, s->events, timeout,
                [respond](webhook_status& w) { respond(json_response(200, webhook_json(w, false))); }, fail,
                resume_atom::value, tenant, id);
          case rotate:
            return ask<webhook_status>(
                sys, s->events, timeout,
                [respond](webhook_status& w) { respond(json_response(200, webhook_json(w, true))); }, fail,
                rotate_atom::value, tenant, id, creation.secret);
          case test:
            return ask<std::vector<webhook_status>>(
                sys, s->events, timeout,
                [respond, id, runtime, settings = webhook_settings](std::vector<webhook_status>& all) {
                  for (const auto& w : all)
                    if (w.record.id == id) return post_test_batch(runtime, settings, w.record, respond);
                  respond(problem(404, "not-found", "Not Found", "no such webhook"));
                },
                fail, list_atom::value, tenant);
        }
      });
}

void http_api::as_tenant(const http_request& request, const http_responder& respond,
                         std::function<void(tenant_identity&)> then) {
  if (!request.acting_tenant.empty()) {
    // An admin request for a tenant (admin_as_tenant): that tenant, if it exists.
    auto id = id128::parse(request.acting_tenant);
    auto& sys = sys_;
    return ask<std::vector<tenant_summary>>(
        sys_, directory_->get()->tenants, cfg_.http.handler_timeout,
        [then = std::move(then), respond, id, request_trace = request.trace](std::vector<tenant_summary>& all) {
          for (const auto& t : all)
            if (id && t.tenant.id == *id) {
              tenant_identity who{t.tenant.id, t.tenant.name};
              if (request_trace) request_trace->tenant = who.tenant_id.str();
              return then(who);
            }
          respond(problem(404, "not-found", "Not Found", "no such tenant"));
        },
        [respond, &sys](caf::error& e) { respond(problem_from_error(sys, e)); }, list_atom::value);
  }
  auto key = bearer_token(request);
  if (auto bad = api_key_problem(key)) return respond(std::move(*bad));
  auto& sys = sys_;
  ask<tenant_identity>(
      sys_, directory_->get()->tenants, cfg_.http.handler_timeout,
      [then = std::move(then), trace = request.trace](tenant_identity& who) {
        if (trace) trace->tenant = who.tenant_id.str();
        then(who);
      },
      [respond, &sys](caf::error& e) { respond(problem_from_error(sys, e)); }, auth_atom::value,
      hash_api_key(key));
}

}  // namespace petrel
