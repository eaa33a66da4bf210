// The command line client's commands (docs/cli.md): each one's flags and help (the spec table
// at the end) and what it asks of which API.
#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <ctime>
#include <thread>

#include "app/cli_support.hpp"
#include "net/mail/base64.hpp"

namespace petrel::cli {

namespace {

json::value parse_json_flag(const std::string& flag, const std::string& text) {
  boost::system::error_code ec;
  auto v = json::parse(text, ec);
  if (ec || !v.is_object()) throw usage_error("--" + flag + " must be a JSON object");
  return v;
}

std::string query_of(const command_line& c, std::initializer_list<const char*> names) {
  std::string query;
  for (const char* name : names)
    if (auto v = c.option(name); !v.empty()) query += (query.empty() ? "?" : "&") + std::string(name) + "=" + percent_encode(v);
  return query;
}

// -- messages -------------------------------------------------------------------------------

int send(const command_line& c, const connection& conn) {
  json::object body;
  if (c.has("raw")) {
    auto raw_path = c.option("raw");
    auto content = raw_path == "-" ? read_stdin() : read_file(raw_path);
    body["raw"] = base64_encode(content);
    auto to = c.all("to");
    auto from = c.option("from");
    if (to.empty() || from.empty()) throw usage_error("send --raw needs the envelope: --from and --to");
    body["envelope"] = json::object{{"from", from}, {"to", json::value_from(to)}};
  } else {
    auto from = c.option("from");
    auto to = c.all("to");
    if (from.empty() || to.empty()) throw usage_error("send needs --from and --to (or --raw FILE)");
    body["from"] = from;
    body["to"] = json::value_from(to);
    if (auto cc = c.all("cc"); !cc.empty()) body["cc"] = json::value_from(cc);
    if (auto bcc = c.all("bcc"); !bcc.empty()) body["bcc"] = json::value_from(bcc);
    body["subject"] = c.option("subject");
    auto text = value_or_file(c.option("text"));
    auto html = value_or_file(c.option("html"));
    if (text.empty() && html.empty()) {
      if (isatty(STDIN_FILENO)) throw usage_error("send needs --text, --html, or the text on standard input");
      text = read_stdin();
    }
    if (!text.empty()) body["text"] = text;
    if (!html.empty()) body["html"] = html;
  }
  if (auto v = c.option("campaign"); !v.empty()) body["campaign"] = v;
  if (auto tags = c.all("tag"); !tags.empty()) body["tags"] = json::value_from(tags);
  if (auto v = c.option("priority"); !v.empty()) body["priority"] = v;
  if (c.has("metadata")) body["metadata"] = parse_json_flag("metadata", value_or_file(c.option("metadata")));
  json::value doc;
  std::string raw;
  auto code = request(conn, false, "POST", "/v1/messages", json::serialize(body), doc, &raw);
  return answer(c, code, raw, [&] {
    std::printf("accepted %s\n", text_of(doc.at("id")).c_str());
    print_objects(doc.at("recipients").as_array(), {"email", "id", "status"});
  });
}

int status(const command_line& c, const connection& conn) {
  auto id = c.arg(0, "the message id");
  json::value doc;
  std::string raw;
  auto code = request(conn, false, "GET", "/v1/messages/" + percent_encode(id), "", doc, &raw);
  return answer(c, code, raw, [&] {
    const auto& m = doc.as_object();
    std::printf("message %s  from %s  subject %s  created %s\n", text_of(m.at("id")).c_str(),
                text_of(m.at("from")).c_str(), text_of(m.at("subject")).c_str(), text_of(m.at("created_at")).c_str());
    print_objects(m.at("recipients").as_array(), {"email", "status", "attempts", "next_attempt_at", "last_reply"});
  });
}

std::string event_summary(const json::object& e) {
  const auto* d = e.if_contains("data");
  if (!d || !d->is_object()) return "";
  const auto& data = d->get_object();
  std::string out;
  if (const auto* code = data.if_contains("smtp_code")) out += text_of(*code) + " ";
  if (const auto* reply = data.if_contains("reply")) out += text_of(*reply);
  else if (const auto* error = data.if_contains("error")) out += text_of(*error);
  else if (const auto* action = data.if_contains("action")) out += text_of(*action) + " " + text_of(data.at("target"));
  return out;
}

volatile std::sig_atomic_t interrupted = 0;

std::string utc_now() {
  std::time_t t = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buffer[32];
  std::strftime(buffer, sizeof buffer, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buffer;
}

int events(const command_line& c, const connection& conn) {
  bool follow = c.flag("follow");
  auto options = c;
  // Following starts at the end: new events from now on, unless --since or --after says where.
  if (follow && !c.has("since") && !c.has("after")) options.options.emplace("since", utc_now());
  auto query = query_of(options, {"type", "message", "recipient", "campaign", "since", "until", "limit"});
  if (follow) std::signal(SIGINT, [](int) { interrupted = 1; });
  std::string after = c.option("after");
  bool json_lines = c.flag("json");
  bool header = true;
  // Fixed columns, so that a table that grows while following stays aligned.
  auto row = [](const std::vector<std::string>& r) {
    std::printf("%-24s  %-12s  %-32s  %-26s  %s\n", r[0].c_str(), r[1].c_str(), r[2].c_str(), r[3].c_str(),
                r[4].c_str());
  };
  while (true) {
    auto path = "/v1/events" + query + (after.empty() ? "" : std::string(query.empty() ? "?" : "&") + "after=" + after);
    json::value doc;
    auto code = request(conn, false, "GET", path, "", doc);
    if (code != ok) return code;
    const auto& o = doc.as_object();
    if (!json_lines && header) {
      row({"AT", "TYPE", "EMAIL", "MESSAGE", "DETAIL"});
      header = false;
    }
    for (const auto& e : o.at("events").as_array()) {
      if (json_lines) {
        std::printf("%s\n", json::serialize(e).c_str());
        continue;
      }
      const auto& ev = e.as_object();
      row({text_of(ev.at("at")), text_of(ev.at("type")), text_of(ev.at("email")), text_of(ev.at("message")),
           event_summary(ev)});
    }
    std::fflush(stdout);
    after = text_of(o.at("next"));
    bool more = o.at("more").as_bool();
    if (!follow && !more) return ok;
    if (!more)
      for (int i = 0; i < 10 && !interrupted; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(100));
    if (interrupted) return ok;
  }
}

int stats(const command_line& c, const connection& conn) {
  json::value doc;
  std::string raw;
  auto code = request(conn, false, "GET", "/v1/stats" + query_of(c, {"bucket", "since", "until", "campaign"}), "", doc, &raw);
  return answer(c, code, raw, [&] {
    json::array rows;
    for (const auto& b : doc.at("buckets").as_array()) rows.push_back(b);
    print_objects(rows, {"start", "messages", "recipients", "delivered", "deferred", "bounced", "complained",
                         "delivery_rate"});
    const auto& t = doc.at("totals").as_object();
    std::printf("total: %s messages, %s delivered, %s bounced, %s complained, delivery rate %s\n",
                text_of(t.at("messages")).c_str(), text_of(t.at("delivered")).c_str(), text_of(t.at("bounced")).c_str(),
                text_of(t.at("complained")).c_str(), text_of(t.at("delivery_rate")).c_str());
  });
}

// -- cluster --------------------------------------------------------------------------------

int cluster(const command_line& c, const connection& conn) {
  json::value doc;
  std::string raw;
  auto code = request(conn, true, "GET", "/admin/cluster", "", doc, &raw);
  return answer(c, code, raw, [&] {
    const auto& o = doc.as_object();
    if (!o.at("enabled").as_bool()) {
      std::printf("not a cluster member ([cluster] enabled = false)\n");
      return;
    }
    print_objects(o.at("members").as_array(), {"name", "advertise", "live", "lease_left_ms", "partitions"});
    std::printf("node %s%s: %s partitions, last round %s (%s ms)%s%s\n", text_of(o.at("node")).c_str(),
                o.at("draining").as_bool() ? " (draining)" : "", text_of(o.at("partition_count")).c_str(),
                text_of(o.at("last_round_at")).c_str(), text_of(o.at("round_duration_ms")).c_str(),
                o.at("error").is_null() ? "" : ", error: ", o.at("error").is_null() ? "" : text_of(o.at("error")).c_str());
  });
}

int drain(const command_line& c, const connection& conn) {
  json::value doc;
  std::string raw;
  auto code = request(conn, true, "POST", "/admin/cluster/drain", "", doc, &raw);
  return answer(c, code, raw, [&] {
    std::printf("node %s is handing its partitions over (see petrel cluster)\n", text_of(doc.at("node")).c_str());
  });
}

void print_unanswered(const json::object& o) {
  if (const auto* nodes = o.if_contains("nodes"))
    for (const auto& n : nodes->as_array())
      if (!n.as_object().at("error").is_null())
        std::printf("node %s did not answer: %s\n", text_of(n.as_object().at("node")).c_str(),
                    text_of(n.as_object().at("error")).c_str());
}

// -- queues, egress, controls ---------------------------------------------------------------

int queues(const command_line& c, const connection& conn) {
  json::value doc;
  std::string raw;
  if (!c.positional.empty()) {
    auto code = request(conn, true, "GET", "/admin/queues/" + percent_encode(c.positional[0]), "", doc, &raw);
    return answer(c, code, raw, [&] {
      const auto& d = doc.as_object();
      std::printf("%s: queued %s, deferred %s, due %s, in flight %s, waiting for %s\n", text_of(d.at("domain")).c_str(),
                  text_of(d.at("queued")).c_str(), text_of(d.at("deferred")).c_str(), text_of(d.at("due")).c_str(),
                  text_of(d.at("in_flight")).c_str(), text_of(d.at("waiting_for")).c_str());
      print_objects(d.at("lanes").as_array(), {"source", "site", "due", "in_flight", "blocked", "blocked_until"});
    });
  }
  bool cluster = c.flag("cluster");
  auto code = request(conn, true, "GET", cluster ? "/admin/queues?scope=cluster" : "/admin/queues", "", doc, &raw);
  return answer(c, code, raw, [&] {
    const auto& o = doc.as_object();
    std::vector<std::string> columns = {"domain", "queued", "deferred", "due", "in_flight", "oldest", "next_attempt", "waiting_for"};
    if (cluster) columns.insert(columns.begin(), "node");
    print_objects(o.at("domains").as_array(), columns);
    print_unanswered(o);
    const auto& t = o.at("totals").as_object();
    std::printf("%s domains, %s queued, %s deferred, %s due, %s in flight\n", text_of(t.at("domains")).c_str(),
                text_of(t.at("queued")).c_str(), text_of(t.at("deferred")).c_str(), text_of(t.at("due")).c_str(),
                text_of(t.at("in_flight")).c_str());
  });
}

int egress(const command_line& c, const connection& conn) {
  json::value doc;
  std::string raw;
  bool cluster = c.flag("cluster");
  auto code = request(conn, true, "GET", cluster ? "/admin/egress?scope=cluster" : "/admin/egress", "", doc, &raw);
  return answer(c, code, raw, [&] {
    json::array sources, sites;
    for (const auto& s : doc.at("sources").as_array()) {
      auto o = s.as_object();
      const json::value w = o.at("warmup");  // a copy: the insertions below move o's elements
      o["warmup_day"] = w.is_null() ? json::value(nullptr) : w.at("day");
      o["used_today"] = w.is_null() ? json::value(nullptr) : w.at("used_today");
      o["per_day"] = w.is_null() ? json::value(nullptr) : w.at("per_day");
      for (const auto& site : o.at("sites").as_array()) {
        auto so = site.as_object();
        if (cluster) so["node"] = o.at("node");
        sites.push_back(std::move(so));
      }
      sources.push_back(std::move(o));
    }
    std::vector<std::string> source_columns = {"name", "address", "message_rate", "warmup_day", "used_today", "per_day"};
    std::vector<std::string> site_columns = {"source", "site", "sessions", "connection_limit", "ready", "message_rate", "waiting_for"};
    if (cluster) {
      source_columns.insert(source_columns.begin(), "node");
      site_columns.insert(site_columns.begin(), "node");
    }
    print_objects(sources, source_columns);
    if (!sites.empty()) {
      std::printf("\n");
      print_objects(sites, site_columns);
    }
    print_unanswered(doc.as_object());
  });
}

int controls(const command_line& c, const connection& conn) {
  json::value doc;
  std::string raw;
  auto code = request(conn, true, "GET", "/admin/controls", "", doc, &raw);
  return answer(c, code, raw, [&] {
    print_objects(doc.at("controls").as_array(), {"kind", "target", "until", "reason", "since"});
  });
}

std::string plural_kind(const std::string& kind) {
  for (const char* k : {"domain", "site", "tenant", "source"})
    if (kind == k || kind == std::string(k) + "s") return std::string(k) + "s";
  throw usage_error("the kind must be domain, site, tenant or source");
}

int control(const std::string& action, const command_line& c, const connection& conn) {
  std::string path;
  if (action == "flush" && c.positional.empty()) {
    path = "/admin/flush";
  } else if (action == "flush") {
    path = "/admin/domains/" + percent_encode(c.positional[0]) + "/flush";
  } else {
    auto kind = plural_kind(c.arg(0, "the kind (domain, site, tenant, source)"));
    auto target = c.arg(1, "the name");
    if (kind == "tenants") target = tenant_id_of(conn, target);  // a name or an id
    path = "/admin/" + kind + "/" + percent_encode(target) + "/" + action;
  }
  json::object body;
  if (auto v = c.option("duration"); !v.empty()) body["duration"] = v;
  if (auto v = c.option("reason"); !v.empty()) body["reason"] = v;
  json::value doc;
  std::string raw;
  auto code = request(conn, true, "POST", path, body.empty() ? "" : json::serialize(body), doc, &raw);
  return answer(c, code, raw, [&] {
    if (action == "resume") return (void)std::printf("resumed\n");
    const auto& o = doc.as_object();
    if (const auto* n = o.if_contains("cancelled")) return (void)std::printf("cancelled %s recipients\n", text_of(*n).c_str());
    if (const auto* n = o.if_contains("flushed")) return (void)std::printf("flushed %s recipients\n", text_of(*n).c_str());
    std::printf("suspended %s %s until %s\n", text_of(o.at("kind")).c_str(), text_of(o.at("target")).c_str(),
                o.at("until").is_null() ? "resumed" : text_of(o.at("until")).c_str());
  });
}

int suspend(const command_line& c, const connection& conn) { return control("suspend", c, conn); }
int resume(const command_line& c, const connection& conn) { return control("resume", c, conn); }
int bounce(const command_line& c, const connection& conn) { return control("bounce", c, conn); }
int flush(const command_line& c, const connection& conn) { return control("flush", c, conn); }

// -- suppressions, tenants, domains, webhooks -----------------------------------------------

int suppressions(const command_line& c, const connection& conn) {
  auto sub = c.arg(0, "list, add or remove");
  json::value doc;
  std::string raw;
  if (sub == "list") {
    auto code = request(conn, false, "GET", "/v1/suppressions" + query_of(c, {"reason", "limit", "after"}), "", doc, &raw);
    return answer(c, code, raw, [&] {
      print_objects(doc.at("suppressions").as_array(), {"email", "reason", "created_at", "expires_at"});
    });
  }
  if (sub == "add") {
    json::array items;
    for (std::size_t i = 1; i < c.positional.size(); ++i) {
      json::object o{{"email", c.positional[i]}};
      if (auto v = c.option("reason"); !v.empty()) o["reason"] = v;
      if (auto v = c.option("expires-in"); !v.empty()) o["expires_in"] = v;
      items.push_back(std::move(o));
    }
    if (items.empty()) throw usage_error("suppressions add needs at least one address");
    auto code = request(conn, false, "POST", "/v1/suppressions",
                        json::serialize(json::object{{"suppressions", std::move(items)}}), doc, &raw);
    return answer(c, code, raw, [&] {
      print_objects(doc.at("suppressions").as_array(), {"email", "reason", "expires_at"});
    });
  }
  if (sub == "remove") {
    auto code = request(conn, false, "DELETE", "/v1/suppressions/" + percent_encode(c.arg(1, "the address")), "", doc, &raw);
    return answer(c, code, raw, [] { std::printf("removed\n"); });
  }
  throw usage_error("suppressions list | add EMAIL... | remove EMAIL");
}

std::int64_t integer_flag(const command_line& c, const std::string& name) {
  auto v = c.option(name);
  try {
    std::size_t used = 0;
    auto n = std::stoll(v, &used);
    if (used == v.size()) return n;
  } catch (const std::exception&) {
  }
  throw usage_error("--" + name + " must be a whole number, got \"" + v + "\"");
}

void print_tenants(const json::value& doc) {
  json::array rows;
  for (const auto& t : doc.at("tenants").as_array()) {
    auto o = t.as_object();
    if (const auto* keys = o.if_contains("keys"); keys && keys->is_array())
      o["keys"] = static_cast<std::int64_t>(keys->as_array().size());
    rows.push_back(std::move(o));
  }
  print_objects(rows, {"id", "name", "rate", "burst", "suspended", "pool", "weight", "keys", "created_at"});
}

int tenants(const command_line& c, const connection& conn) {
  auto sub = c.arg(0, "list, create, update or keys");
  json::value doc;
  std::string raw;
  if (sub == "list") {
    auto code = request(conn, true, "GET", "/admin/tenants", "", doc, &raw);
    return answer(c, code, raw, [&] { print_tenants(doc); });
  }
  if (sub == "create") {
    json::object body{{"name", c.arg(1, "the tenant's name")}};
    if (auto v = c.option("rate"); !v.empty()) body["rate"] = v;
    if (c.has("burst")) body["burst"] = integer_flag(c, "burst");
    auto code = request(conn, true, "POST", "/admin/tenants", json::serialize(body), doc, &raw);
    return answer(c, code, raw, [&] {
      std::printf("tenant %s (%s)\napi key %s   (shown only now)\n", text_of(doc.at("tenant").at("id")).c_str(),
                  text_of(doc.at("tenant").at("name")).c_str(), text_of(doc.at("api_key")).c_str());
    });
  }
  if (sub == "update") {
    auto tenant = tenant_id_of(conn, c.arg(1, "the tenant (id or name)"));
    json::object body;
    auto nullable = [&](const char* flag, const char* field, bool integer) {
      if (!c.has(flag)) return;
      auto v = c.option(flag);
      if (v == "default") body[field] = nullptr;
      else if (integer) body[field] = integer_flag(c, flag);
      else body[field] = v;
    };
    nullable("rate", "rate", false);
    nullable("burst", "burst", true);
    nullable("pool", "pool", false);
    if (c.has("weight")) body["weight"] = integer_flag(c, "weight");
    if (c.has("suspended")) {
      auto v = c.option("suspended");
      if (v != "yes" && v != "no") throw usage_error("--suspended takes yes or no");
      body["suspended"] = v == "yes";
    }
    if (body.empty()) throw usage_error("tenants update needs --rate, --burst, --pool, --weight or --suspended");
    auto code = request(conn, true, "PATCH", "/admin/tenants/" + percent_encode(tenant), json::serialize(body), doc, &raw);
    return answer(c, code, raw, [&] {
      print_tenants(json::object{{"tenants", json::array{doc.at("tenant")}}});
    });
  }
  if (sub == "keys") {
    auto action = c.arg(1, "list, add or revoke");
    auto tenant = tenant_id_of(conn, c.arg(2, "the tenant (id or name)"));
    if (action == "add") {
      auto code = request(conn, true, "POST", "/admin/tenants/" + percent_encode(tenant) + "/keys", "", doc, &raw);
      return answer(c, code, raw, [&] {
        std::printf("key %s\napi key %s   (shown only now)\n", text_of(doc.at("key").at("id")).c_str(),
                    text_of(doc.at("api_key")).c_str());
      });
    }
    if (action == "revoke") {
      auto code = request(conn, true, "DELETE",
                          "/admin/tenants/" + percent_encode(tenant) + "/keys/" + percent_encode(c.arg(3, "the key id")),
                          "", doc, &raw);
      return answer(c, code, raw, [] { std::printf("revoked\n"); });
    }
    if (action == "list") {
      auto code = request(conn, true, "GET", "/admin/tenants", "", doc, &raw);
      if (code != ok) return code;
      for (const auto& t : doc.at("tenants").as_array())
        if (text_of(t.at("id")) == tenant) {
          if (c.flag("json")) std::printf("%s\n", json::serialize(t.at("keys")).c_str());
          else print_objects(t.at("keys").as_array(), {"id", "prefix", "created_at"});
          return ok;
        }
      return not_found;
    }
  }
  throw usage_error("tenants list | create NAME | update TENANT ... | keys list|add TENANT | keys revoke TENANT KEY");
}

// A sender domain: its state, what each check found, and the records to publish.
int show_domain(const command_line& c, const json::value& doc, const std::string& raw, bool verify) {
  if (c.flag("json")) {
    std::printf("%s\n", raw.c_str());
  } else {
    const auto& d = doc.as_object();
    std::printf("%s: %s\n", text_of(d.at("domain")).c_str(), d.at("verified").as_bool() ? "verified" : "not verified");
    if (const auto* s = d.if_contains("status"); s && s->is_object() && !s->as_object().empty()) {
      const auto& st = s->as_object();
      if (const auto* dkim = st.if_contains("dkim"))
        for (const auto& k : dkim->as_array())
          std::printf("  dkim %s: %s\n", text_of(k.at("name")).c_str(), text_of(k.at("status")).c_str());
      if (const auto* spf = st.if_contains("spf")) {
        const auto& o = spf->as_object();
        std::printf("  spf: %s%s%s\n", text_of(o.at("status")).c_str(), o.contains("detail") ? " - " : "",
                    o.contains("detail") ? text_of(o.at("detail")).c_str() : "");
      }
      if (const auto* dmarc = st.if_contains("dmarc"))
        std::printf("  dmarc: %s\n", text_of(dmarc->at("status")).c_str());
      if (const auto* rp = st.if_contains("return_path"))
        std::printf("  return path: %s\n", text_of(rp->at("status")).c_str());
    }
    if (const auto* records = d.if_contains("records"); records && records->is_array()) {
      std::printf("\nDNS records to publish:\n");
      json::array rows;
      for (const auto& r : records->as_array()) {
        auto o = r.as_object();
        if (const auto* zone = o.if_contains("zone_file")) o["value"] = *zone;  // as 255-byte strings
        rows.push_back(std::move(o));
      }
      print_objects(rows, {"purpose", "type", "name", "value"});
    }
    if (const auto* notes = d.if_contains("notes"); notes && notes->is_array())
      for (const auto& n : notes->as_array()) std::printf("note: %s\n", text_of(n).c_str());
  }
  if (verify && !doc.at("verified").as_bool()) return not_verified;
  return ok;
}

int domains(const command_line& c, const connection& conn) {
  auto sub = c.arg(0, "list, add or verify");
  json::value doc;
  std::string raw;
  if (sub == "list") {
    auto code = request(conn, false, "GET", "/v1/domains", "", doc, &raw);
    return answer(c, code, raw, [&] { print_objects(doc.at("domains").as_array(), {"domain", "verified", "checked_at"}); });
  }
  if (sub == "add") {
    json::object body{{"domain", c.arg(1, "the domain")}};
    if (auto v = c.option("selector"); !v.empty()) body["selector"] = v;
    auto code = request(conn, false, "POST", "/v1/domains", json::serialize(body), doc, &raw);
    if (code != ok) return code;
    return show_domain(c, doc, raw, false);
  }
  if (sub == "verify") {
    auto code = request(conn, false, "GET", "/v1/domains/" + percent_encode(c.arg(1, "the domain")), "", doc, &raw);
    if (code != ok) return code;
    return show_domain(c, doc, raw, true);
  }
  throw usage_error("domains list | add DOMAIN | verify DOMAIN");
}

int webhooks(const command_line& c, const connection& conn) {
  auto sub = c.arg(0, "list, create, delete, resume, rotate or test");
  json::value doc;
  std::string raw;
  auto columns = std::vector<std::string>{"id", "url", "state", "backlog", "delivered", "last_error", "last_success_at"};
  auto one = [&] { print_objects(json::array{doc}, columns); };
  if (sub == "list") {
    auto code = request(conn, false, "GET", "/v1/webhooks", "", doc, &raw);
    return answer(c, code, raw, [&] { print_objects(doc.at("webhooks").as_array(), columns); });
  }
  if (sub == "create") {
    json::object body{{"url", c.arg(1, "the endpoint's URL")}};
    if (auto types = c.option("events"); !types.empty()) {
      json::array list;
      std::size_t pos = 0;
      while (pos <= types.size()) {
        auto comma = types.find(',', pos);
        if (comma == std::string::npos) comma = types.size();
        if (comma > pos) list.push_back(json::string(types.substr(pos, comma - pos)));
        pos = comma + 1;
      }
      body["events"] = std::move(list);
    }
    if (auto v = c.option("secret"); !v.empty()) body["secret"] = v;
    auto code = request(conn, false, "POST", "/v1/webhooks", json::serialize(body), doc, &raw);
    return answer(c, code, raw, [&] {
      one();
      std::printf("secret %s   (shown only now: verify signatures with it, docs/webhooks.md)\n",
                  text_of(doc.at("secret")).c_str());
    });
  }
  auto id = c.arg(1, "the webhook id");
  auto path = "/v1/webhooks/" + percent_encode(id);
  if (sub == "delete") {
    auto code = request(conn, false, "DELETE", path, "", doc, &raw);
    return answer(c, code, raw, [] { std::printf("deleted\n"); });
  }
  if (sub == "resume") {
    auto code = request(conn, false, "POST", path + "/resume", "", doc, &raw);
    return answer(c, code, raw, one);
  }
  if (sub == "rotate") {
    json::object body;
    if (auto v = c.option("secret"); !v.empty()) body["secret"] = v;
    auto code = request(conn, false, "POST", path + "/rotate", body.empty() ? "" : json::serialize(body), doc, &raw);
    return answer(c, code, raw, [&] {
      one();
      std::printf("new secret %s   (the old one keeps signing too until %s)\n", text_of(doc.at("secret")).c_str(),
                  text_of(doc.at("previous_secret_until")).c_str());
    });
  }
  if (sub == "test") {
    auto code = request(conn, false, "POST", path + "/test", "", doc, &raw);
    if (code != ok) return code;
    if (c.flag("json")) std::printf("%s\n", raw.c_str());
    const auto& o = doc.as_object();
    bool delivered = o.at("delivered").as_bool();
    if (!c.flag("json"))
      std::printf("%s: %s\n", delivered ? "delivered" : "not delivered",
                  o.at("error").is_null() ? ("HTTP " + text_of(o.at("status"))).c_str() : text_of(o.at("error")).c_str());
    return delivered ? ok : failure;
  }
  throw usage_error("webhooks list | create URL | delete ID | resume ID | rotate ID | test ID");
}

}  // namespace

const std::vector<command_spec>& command_specs() {
  static const std::vector<command_spec> all = {
      {"send",
       {"send --from A --to B [--to C] --subject S [--text T|@FILE|-] [--html H|@FILE|-] [...]",
        "send --raw FILE|- --from ENVELOPE-FROM --to RCPT [--to RCPT]"},
       "Submit a message (tenant API).",
       "Without --text and --html the text is read from standard input. Prints the message id and "
       "each recipient's id.",
       {{"from", "ADDRESS", "From, e.g. \"App <app@example.com>\" (with --raw: the envelope sender)"},
        {"to", "ADDRESS", "a recipient", true},
        {"cc", "ADDRESS", "a Cc recipient", true},
        {"bcc", "ADDRESS", "a Bcc recipient (not in the headers)", true},
        {"subject", "TEXT", "the subject"},
        {"text", "TEXT", "the plain text part; @FILE reads a file, - standard input"},
        {"html", "HTML", "the HTML part; @FILE reads a file, - standard input"},
        {"raw", "FILE", "send this RFC 5322 file as it is (- reads standard input); needs --from and --to"},
        {"campaign", "NAME", "a campaign name (events, stats and pools use it)"},
        {"tag", "TAG", "a tag", true},
        {"priority", "LEVEL", "high or normal"},
        {"metadata", "JSON", "a JSON object kept with the message and its events (@FILE reads a file)"}},
       false, send},
      {"status", {"status MESSAGE-ID"}, "Show a message's recipients: state, attempts, last reply (tenant API).", "", {}, false, status},
      {"events",
       {"events [--type T,...] [--message ID] [--recipient EMAIL] [--campaign C] [--since TIME] [--until TIME] [--follow]"},
       "List events, oldest first, or follow new ones (tenant API).",
       "--follow starts at the end (events from now on) unless --since or --after says where, and "
       "prints new events as they come until Ctrl-C.",
       {{"type", "T,...", "only these types (delivered, deferred, bounced, complained, ...)"},
        {"message", "ID", "only this message's"},
        {"recipient", "EMAIL", "only this recipient's"},
        {"campaign", "NAME", "only this campaign's"},
        {"since", "TIME", "from this time (RFC 3339, e.g. 2026-12-01T00:00:00Z)"},
        {"until", "TIME", "up to this time"},
        {"after", "CURSOR", "after this cursor (the \"next\" of an earlier page)"},
        {"limit", "N", "events per page (1-1000)"},
        {"follow", "", "keep printing new events until Ctrl-C"}},
       false, events},
      {"stats",
       {"stats [--bucket hour|day] [--since TIME] [--until TIME] [--campaign C]"},
       "Counts per hour or day: messages, delivered, bounced, complained, delivery rate (tenant API).",
       "",
       {{"bucket", "hour|day", "the bucket size (default hour: the last 24 hours; day: the last 30 days)"},
        {"since", "TIME", "from this time (RFC 3339)"},
        {"until", "TIME", "up to this time"},
        {"campaign", "NAME", "only this campaign"}},
       false, stats},
      {"suppressions",
       {"suppressions list [--reason R] [--limit N] [--after CURSOR]",
        "suppressions add EMAIL... [--reason R] [--expires-in 30d]", "suppressions remove EMAIL"},
       "List, add or remove suppressed addresses (tenant API).",
       "",
       {{"reason", "REASON", "list: only this reason; add: the reason recorded (default manual)"},
        {"expires-in", "DURATION", "add: lift the suppression after this long, e.g. 30d"},
        {"limit", "N", "list: entries per page"},
        {"after", "CURSOR", "list: after this cursor (the \"next\" of an earlier page)"}},
       false, suppressions},
      {"domains",
       {"domains list", "domains add DOMAIN [--selector S]", "domains verify DOMAIN"},
       "Sender domains: add one (DKIM keys made), verify its DNS live, list them (tenant API).",
       "add and verify print what each check found and the DNS records to publish; verify exits "
       "with 6 while the domain is not verified.",
       {{"selector", "NAME", "add: the DKIM selector (default: one is made)"}},
       false, domains},
      {"webhooks",
       {"webhooks list", "webhooks create URL [--events T,...] [--secret S]", "webhooks delete ID",
        "webhooks resume ID", "webhooks rotate ID [--secret S]", "webhooks test ID"},
       "Webhook endpoints: create, list, delete, resume a paused one, rotate its secret, send a test (tenant API).",
       "test posts a signed sample batch to the endpoint now and says what it answered (exit 1 when "
       "it did not take it).",
       {{"events", "T,...", "create: only these event types (default: every type)"},
        {"secret", "SECRET", "create, rotate: this signing secret instead of a new random one"}},
       false, webhooks},
      {"queues",
       {"queues [--cluster]", "queues DOMAIN"},
       "Domains waiting, with counts and what each waits for; one domain's lanes.",
       "",
       {{"cluster", "", "every cluster member's domains, with their node"}},
       true, queues},
      {"egress",
       {"egress [--cluster]"},
       "Outbound sources and their sites: warm-up day and budget, rates, sessions, limits.",
       "",
       {{"cluster", "", "every cluster member's sources"}},
       true, egress},
      {"controls", {"controls"}, "The suspensions in force (by operators and response rules).", "", {}, true, controls},
      {"suspend",
       {"suspend KIND NAME [--duration 30m] [--reason TEXT]"},
       "Suspend a domain, site, tenant (name or id) or source: nothing is sent for it until resumed.",
       "",
       {{"duration", "DURATION", "resume by itself after this long (e.g. 30m, 2h); default: until resumed"},
        {"reason", "TEXT", "why, shown in the admin views and the event"}},
       true, suspend},
      {"resume", {"resume KIND NAME"}, "Lift a suspension.", "", {}, true, resume},
      {"bounce",
       {"bounce domain|tenant NAME [--reason TEXT]"},
       "Cancel every waiting recipient of a domain or tenant (each gets a cancelled event).",
       "",
       {{"reason", "TEXT", "why, in each event"}},
       true, bounce},
      {"flush", {"flush [DOMAIN]"}, "Make deferred recipients (of one domain, or all) due now.", "", {}, true, flush},
      {"tenants",
       {"tenants list", "tenants create NAME [--rate 50/s] [--burst N]",
        "tenants update TENANT [--rate R|default] [--burst N|default] [--pool P|default] [--weight N] [--suspended yes|no]",
        "tenants keys list|add TENANT", "tenants keys revoke TENANT KEY-ID"},
       "Tenants and their API keys; TENANT is a name or an id.",
       "create and keys add print the new API key once.",
       {{"rate", "RATE", "submissions per second/minute/hour, e.g. 50/s; update: default restores the default"},
        {"burst", "N", "how many may come at once above the rate; update: default restores it"},
        {"pool", "POOL", "update: the egress pool of its mail ([[egress.pools]]); default: the default pool"},
        {"weight", "N", "update: its share in the fair rotation of tenants (1-1000)"},
        {"suspended", "yes|no", "update: refuse its submissions (yes) or take them again (no)"}},
       true, tenants},
      {"cluster", {"cluster"}, "Cluster members, leases and partitions as this node sees them.", "", {}, true, cluster},
      {"drain", {"drain"}, "This node hands its partitions over to the others (maintenance; restart to rejoin).", "", {}, true, drain},
  };
  return all;
}

}  // namespace petrel::cli
