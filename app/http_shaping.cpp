// Admin routes of traffic shaping (docs/api.md, "Admin API"):
//   GET  /admin/queues                     by domain, tenant, site and source, with binding limits
//   GET  /admin/queues/{domain}            one domain: lanes, tenants, what it waits for
//   POST /admin/{domains|sites|tenants|sources}/{name}/suspend   {"duration"?, "reason"?}
//   POST /admin/{domains|sites|tenants|sources}/{name}/resume
//   POST /admin/{domains|tenants}/{name}/bounce                  {"reason"?}: cancel waiting
//   POST /admin/domains/{name}/flush, POST /admin/flush           retry now
//   GET  /admin/controls                   suspensions in force
//   GET  /admin/egress                     sources: warm-up day, budget used, rate, sites
#include <boost/json.hpp>
#include <caf/all.hpp>

#include "actors/actor_support.hpp"
#include "actors/policy/event_data.hpp"
#include "app/actor_bridge.hpp"
#include "app/http_api.hpp"
#include "app/http_common.hpp"
#include "app/problem.hpp"

namespace petrel {

namespace json = boost::json;

namespace {

json::value or_null(const std::string& s) { return s.empty() ? json::value(nullptr) : json::value(s); }

json::object control_json(const control_record& c) {
  return json::object{{"kind", c.kind},
                      {"target", c.target},
                      {"until", timestamp(c.until_ms)},
                      {"reason", or_null(c.reason)},
                      {"since", timestamp(c.created_at_ms)}};
}

json::object site_json(const site_stats& s) {
  return json::object{{"source", s.source},
                      {"site", s.site},
                      {"sessions", s.sessions},
                      {"connection_limit", s.connection_limit},
                      {"max_connection_limit", s.max_connection_limit},
                      {"ready", s.ready},
                      {"loading", s.loading},
                      {"credit_out", s.credit_out},
                      {"message_rate", s.message_rate > 0 ? json::value(s.message_rate) : json::value(nullptr)},
                      {"waiting_for", or_null(s.waiting_for)},
                      {"blocked_until", timestamp(s.blocked_until_ms)}};
}

// `node` (cluster views) is set on the source and on each of its sites.
json::object source_json(const source_stats& s, const std::string& node = {}) {
  json::object out{{"name", s.name},
                   {"address", or_null(s.address)},
                   {"message_rate", s.message_rate > 0 ? json::value(s.message_rate) : json::value(nullptr)}};
  if (s.warmup)
    out["warmup"] = json::object{{"day", s.warmup_day},
                                 {"started_at", timestamp(s.warmup_started_ms)},
                                 {"per_day", s.per_day ? json::value(s.per_day) : json::value(nullptr)},
                                 {"per_hour", s.per_hour ? json::value(s.per_hour) : json::value(nullptr)},
                                 {"used_today", s.used_today},
                                 {"used_this_hour", s.used_this_hour}};
  else
    out["warmup"] = nullptr;
  json::array sites;
  for (const auto& site : s.sites) {
    auto o = site_json(site);
    if (!node.empty()) o["node"] = node;
    sites.push_back(std::move(o));
  }
  out["sites"] = std::move(sites);
  json::array site_warmups;
  for (const auto& w : s.site_warmups)
    site_warmups.push_back(json::object{{"site", w.site},
                                        {"day", w.day},
                                        {"per_day", w.per_day ? json::value(w.per_day) : json::value(nullptr)},
                                        {"per_hour", w.per_hour ? json::value(w.per_hour) : json::value(nullptr)},
                                        {"used_today", w.used_today},
                                        {"used_this_hour", w.used_this_hour}});
  out["site_warmups"] = std::move(site_warmups);
  return out;
}

json::object domain_json(const domain_queue_stats& d, bool detail) {
  json::object out{{"domain", d.domain},
                   {"queued", d.queued},
                   {"deferred", d.deferred},
                   {"due", d.due},
                   {"in_flight", d.in_flight},
                   {"in_memory", d.in_memory},
                   {"oldest", timestamp(d.oldest_ms)},
                   {"next_attempt", timestamp(d.next_attempt_ms)},
                   {"waiting_for", or_null(d.waiting_for)}};
  if (detail) {
    json::array lanes;
    for (const auto& l : d.lanes)
      lanes.push_back(json::object{{"source", l.source},
                                   {"site", l.site},
                                   {"due", l.due},
                                   {"in_flight", l.in_flight},
                                   {"blocked", or_null(l.blocked)},
                                   {"blocked_until", timestamp(l.blocked_until_ms)}});
    out["lanes"] = std::move(lanes);
    json::array tenants;
    for (const auto& t : d.tenants) tenants.push_back(json::object{{"tenant", t.tenant}, {"waiting", t.waiting}});
    json::array replies;
    for (const auto& n : d.last_replies)
      replies.push_back(json::object{{"at", timestamp(n.at_ms)}, {"outcome", n.outcome}, {"reply", n.reply}, {"count", n.count}});
    out["last_replies"] = std::move(replies);
    out["tenants"] = std::move(tenants);
  }
  return out;
}

// "30m" etc. from an optional JSON body field; false with a problem on bad input.
bool read_action_body(const http_request& request, std::int64_t& until_ms, std::string& reason,
                      http_response& problem_out) {
  if (request.body.empty()) return true;
  json::value doc;
  if (auto bad = parse_json_body(request.body, doc)) {
    problem_out = std::move(*bad);
    return false;
  }
  std::vector<field_error> errors;
  for (const auto& kv : doc.get_object()) {
    std::string k(kv.key());
    const auto& v = kv.value();
    if (k == "duration") {
      if (!v.is_string()) {
        errors.push_back({"duration", "expects a duration string like \"30m\" (units ms, s, m, h, d)"});
        continue;
      }
      auto d = parse_duration(std::string_view(v.get_string()));
      if (!d) errors.push_back({"duration", d.error()});
      else if (d.value().count() <= 0) errors.push_back({"duration", "must be above zero, like \"30m\""});
      else until_ms = unix_now_ms() + d.value().count();
    } else if (k == "reason") {
      if (!v.is_string() || v.get_string().size() > 500) errors.push_back({"reason", "a string of at most 500 characters"});
      else reason = std::string(v.get_string());
    } else {
      errors.push_back({k, "unknown field (duration, reason)"});
    }
  }
  if (!errors.empty()) {
    problem_out = invalid_request(errors);
    return false;
  }
  return true;
}

}  // namespace

namespace {

// What /admin/queues shows, for one node or added up over several; `node` (cluster scope) is
// set on every domain, site and source.
struct queues_view {
  json::array domains, sites, sources;
  std::map<std::string, std::uint64_t> tenants;
  std::uint64_t domain_count = 0, queued = 0, deferred = 0, due = 0, in_flight = 0;
  std::uint64_t domain_actors = 0, restarting = 0;

  void add(const queue_summary& q, const std::vector<source_stats>& egress, const std::string& node) {
    auto tagged = [&](json::object o) {
      if (!node.empty()) o["node"] = node;
      return o;
    };
    for (const auto& d : q.domains) {
      queued += d.queued;
      deferred += d.deferred;
      due += d.due;
      in_flight += d.in_flight;
      for (const auto& t : d.tenants) tenants[t.tenant] += t.waiting;
      domains.push_back(tagged(domain_json(d, false)));
    }
    domain_count += q.domains.size();
    domain_actors += q.domain_actors;
    restarting += q.restarting;
    for (const auto& src : egress) {
      for (const auto& site : src.sites) sites.push_back(tagged(site_json(site)));
      sources.push_back(tagged(source_json(src, node)));
    }
  }

  json::object totals() const {
    return json::object{{"domains", domain_count}, {"queued", queued}, {"deferred", deferred},
                        {"due", due}, {"in_flight", in_flight}};
  }

  json::object to_json() && {
    json::array tenant_list;
    for (const auto& [t, n] : tenants) tenant_list.push_back(json::object{{"tenant", t}, {"waiting", n}});
    auto t = totals();
    return json::object{{"domains", std::move(domains)},   {"tenants", std::move(tenant_list)},
                        {"sites", std::move(sites)},       {"sources", std::move(sources)},
                        {"totals", std::move(t)},          {"domain_actors", domain_actors},
                        {"restarting", restarting}};
  }
};

// The members' answers as "nodes": [{node, error}], for a cluster-scope view.
json::array nodes_json(const std::vector<node_report>& reports) {
  json::array out;
  for (const auto& r : reports)
    out.push_back(json::object{{"node", r.node}, {"error", or_null(r.error)}});
  return out;
}

}  // namespace

void http_api::admin_queues(http_responder respond, bool cluster_scope) {
  auto s = directory_->get();
  auto& sys = sys_;
  auto timeout = cfg_.http.handler_timeout;
  auto fail = [respond, &sys](caf::error& e) { respond(problem_from_error(sys, e)); };
  if (cluster_scope) {
    if (!s->cluster) return respond(not_a_cluster_member());
    auto cluster = s->cluster;
    // Queues and egress of every member, asked one after the other (each a fan-out).
    return ask<std::vector<node_report>>(
        sys_, cluster, timeout,
        [=, &sys](std::vector<node_report>& queues) {
          ask<std::vector<node_report>>(
              sys, cluster, timeout,
              [respond, queues](std::vector<node_report>& egress) {
                queues_view view;
                for (const auto& q : queues) {
                  const std::vector<source_stats>* sources = nullptr;
                  for (const auto& e : egress)
                    if (e.node == q.node) sources = &e.sources;
                  view.add(q.queues, sources ? *sources : std::vector<source_stats>{}, q.node);
                }
                auto nodes = nodes_json(queues);
                auto body = std::move(view).to_json();
                body["scope"] = "cluster";
                body["nodes"] = std::move(nodes);
                respond(json_response(200, std::move(body)));
              },
              fail, egress_atom::value);
        },
        fail, stats_atom::value);
  }
  auto egress = s->egress;
  ask<queue_summary>(
      sys_, s->domains, timeout,
      [=, &sys](queue_summary& q) {
        ask<std::vector<source_stats>>(
            sys, egress, timeout,
            [respond, q](std::vector<source_stats>& sources) {
              queues_view view;
              view.add(q, sources, "");
              respond(json_response(200, std::move(view).to_json()));
            },
            fail, egress_atom::value);
      },
      fail, stats_atom::value);
}

void http_api::admin_domain_queue(const std::string& domain, http_responder respond) {
  auto s = directory_->get();
  auto& sys = sys_;
  std::string lower = domain;
  for (auto& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  ask<domain_queue_stats>(
      sys_, s->domains, cfg_.http.handler_timeout,
      [respond](domain_queue_stats& d) { respond(json_response(200, domain_json(d, true))); },
      [respond, &sys](caf::error& e) { respond(problem_from_error(sys, e)); }, stats_atom::value,
      lower);
}

namespace {

// Asks `whom` for a list and answers {key: [to_json(item)...]}.
template <class T, class Handle, class ToJson, class... Ts>
void answer_list(caf::actor_system& sys, const Handle& whom, std::chrono::milliseconds timeout, const char* key,
                 ToJson to_json, http_responder respond, Ts&&... request) {
  ask<std::vector<T>>(
      sys, whom, timeout,
      [respond, key, to_json](std::vector<T>& all) {
        json::array out;
        for (const auto& item : all) out.push_back(to_json(item));
        respond(json_response(200, json::object{{key, std::move(out)}}));
      },
      [respond, &sys](caf::error& e) { respond(problem_from_error(sys, e)); }, std::forward<Ts>(request)...);
}

}  // namespace

void http_api::admin_controls(http_responder respond) {
  answer_list<control_record>(sys_, directory_->get()->controls, cfg_.http.handler_timeout, "controls",
                              [](const control_record& c) { return control_json(c); }, std::move(respond),
                              list_atom::value);
}

namespace {

// The configured pools and their members (the "default" pool of every source when none is).
json::array pools_json(const egress_settings& e) {
  json::array out;
  auto pool = [&](const std::string& name, json::array members) {
    out.push_back(json::object{{"name", name}, {"default", name == e.default_pool}, {"sources", std::move(members)}});
  };
  if (e.pools.empty()) {
    json::array members;
    for (const auto& src : e.sources) members.push_back(json::object{{"source", src.name}, {"weight", 1}});
    if (e.sources.empty()) members.push_back(json::object{{"source", "default"}, {"weight", 1}});
    pool("default", std::move(members));
  }
  for (const auto& p : e.pools) {
    json::array members;
    for (const auto& m : p.sources) members.push_back(json::object{{"source", m.source}, {"weight", m.weight}});
    pool(p.name, std::move(members));
  }
  return out;
}

}  // namespace

void http_api::admin_egress(http_responder respond, bool cluster_scope) {
  auto s = directory_->get();
  auto& sys = sys_;
  auto pools = pools_json(cfg_.egress);
  if (!cluster_scope)
    return ask<std::vector<source_stats>>(
        sys_, s->egress, cfg_.http.handler_timeout,
        [respond, pools](std::vector<source_stats>& all) {
          json::array sources;
          for (const auto& x : all) sources.push_back(source_json(x));
          respond(json_response(200, json::object{{"sources", std::move(sources)}, {"pools", pools}}));
        },
        [respond, &sys](caf::error& e) { respond(problem_from_error(sys, e)); }, egress_atom::value);
  if (!s->cluster) return respond(not_a_cluster_member());
  ask<std::vector<node_report>>(
      sys_, s->cluster, cfg_.http.handler_timeout,
      [respond, pools](std::vector<node_report>& reports) {
        json::array sources;
        for (const auto& r : reports)
          for (const auto& src : r.sources) {
            auto o = source_json(src, r.node);
            o["node"] = r.node;
            sources.push_back(std::move(o));
          }
        respond(json_response(200, json::object{{"scope", "cluster"},
                                                 {"sources", std::move(sources)},
                                                 {"pools", pools},
                                                 {"nodes", nodes_json(reports)}}));
      },
      [respond, &sys](caf::error& e) { respond(problem_from_error(sys, e)); }, egress_atom::value);
}

void http_api::admin_shaping_action(const std::string& kind_path, const std::string& target,
                                    const std::string& action, const http_request& request,
                                    http_responder respond) {
  std::int64_t until_ms = 0;
  std::string reason;
  http_response bad;
  if (!read_action_body(request, until_ms, reason, bad)) return respond(std::move(bad));
  // "domains" -> "domain", ...
  std::string kind = kind_path.substr(0, kind_path.size() - 1);
  std::string key = target;
  if (kind == "domain" || kind == "site")
    for (auto& c : key) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  id128 tenant;
  if (kind == "tenant") {
    auto id = id128::parse(target);
    if (!id) return respond(problem(404, "not-found", "Not Found", "no such tenant"));
    tenant = *id;
    key = id->str();
  }
  auto s = directory_->get();
  auto& sys = sys_;
  auto timeout = cfg_.http.handler_timeout;
  auto fail = [respond, &sys](caf::error& e) { respond(problem_from_error(sys, e)); };
  if (action == "suspend") {
    control_record c;
    c.kind = kind;
    c.target = key;
    c.until_ms = until_ms;
    c.reason = reason;
    return ask<control_record>(
        sys_, s->controls, timeout,
        [respond](control_record& c) { respond(json_response(200, control_json(c))); }, fail,
        suspend_atom::value, c);
  }
  if (action == "resume") {
    return ask<caf::ok_atom>(
        sys_, s->controls, timeout,
        answered_empty(respond),
        fail, resume_atom::value, kind, key);
  }
  if ((action == "bounce" && kind != "domain" && kind != "tenant") ||
      (action == "flush" && kind != "domain"))
    return respond(not_found());
  // Bounce (cancel) and flush work on the domain actors; the action itself is an event.
  event_record e;
  e.id = new_id();
  e.tenant_id = tenant;
  e.type = "admin_action";
  e.at_ms = unix_now_ms();
  e.data_json = event_data::admin_action(action, kind, key.empty() ? "*" : key, 0, reason, "admin");
  auto store = s->store;
  auto done = [=, &sys](std::uint64_t& n) {
    ask<caf::ok_atom>(
        sys, store, timeout,
        [respond, n, action](caf::ok_atom) {
          respond(json_response(200, json::object{{action == "flush" ? "flushed" : "cancelled", n}}));
        },
        [respond, &sys](caf::error& e) { respond(problem_from_error(sys, e)); }, record_atom::value, e);
  };
  if (action == "flush")
    return ask<std::uint64_t>(sys_, s->domains, timeout, done, fail, flush_atom::value, key);
  ask<std::uint64_t>(sys_, s->domains, timeout, done, fail, cancel_atom::value,
                     kind == "domain" ? key : std::string(), tenant, reason);
}

}  // namespace petrel
