// The command line client (docs/cli.md): parses a subcommand, sends its request, prints a
// table (or the JSON with --json) and maps the answer to an exit code.
#include "app/cli.hpp"

#include <unistd.h>

#include <boost/json.hpp>
#include <toml++/toml.h>

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <map>
#include <sstream>
#include <thread>

#include "net/mail/base64.hpp"

namespace petrel::cli {

namespace json = boost::json;

namespace {

struct usage_error : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// --name value options (repeatable), flags, and positional arguments.
struct command_line {
  std::vector<std::string> positional;
  std::multimap<std::string, std::string> options;
  std::vector<std::string> flags;

  bool flag(const std::string& name) const {
    return std::find(flags.begin(), flags.end(), name) != flags.end();
  }
  std::string option(const std::string& name, const std::string& fallback = {}) const {
    auto it = options.find(name);
    return it == options.end() ? fallback : it->second;
  }
  std::vector<std::string> all(const std::string& name) const {
    std::vector<std::string> out;
    for (auto [it, end] = options.equal_range(name); it != end; ++it) out.push_back(it->second);
    return out;
  }
  std::string arg(std::size_t i, const char* what) const {
    if (i >= positional.size()) throw usage_error(std::string("missing ") + what);
    return positional[i];
  }
};

const std::vector<std::string> known_flags = {"json", "follow", "help", "cluster"};

command_line parse(const std::vector<std::string>& args, std::size_t from) {
  command_line c;
  for (std::size_t i = from; i < args.size(); ++i) {
    const auto& a = args[i];
    if (a.rfind("--", 0) != 0 || a == "--") {
      c.positional.push_back(a);
      continue;
    }
    auto name = a.substr(2);
    auto eq = name.find('=');
    if (eq != std::string::npos) {
      c.options.emplace(name.substr(0, eq), name.substr(eq + 1));
    } else if (std::find(known_flags.begin(), known_flags.end(), name) != known_flags.end()) {
      c.flags.push_back(name);
    } else {
      if (i + 1 >= args.size()) throw usage_error("--" + name + " needs a value");
      c.options.emplace(name, args[++i]);
    }
  }
  return c;
}

// Where to connect and with what, from flags, then the environment, then the CLI config file.
struct connection {
  std::string url = "http://127.0.0.1:8080";
  std::string admin_url = "http://127.0.0.1:8081";
  std::string key;
  std::string admin_token;
  std::chrono::milliseconds timeout{30000};
};

std::string trim(std::string s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.pop_back();
  std::size_t start = 0;
  while (start < s.size() && std::isspace(static_cast<unsigned char>(s[start]))) ++start;
  return s.substr(start);
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw usage_error("cannot read " + path);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

connection connect_from(const command_line& c) {
  connection out;
  std::string file = c.option("cli-config");
  if (file.empty()) {
    if (const char* e = std::getenv("PETREL_CLI_CONFIG")) file = e;
    else if (const char* home = std::getenv("HOME"); home && access((std::string(home) + "/.config/petrel/cli.toml").c_str(), R_OK) == 0)
      file = std::string(home) + "/.config/petrel/cli.toml";
  }
  std::string token_file = "data/admin.token";
  bool explicit_token_file = false;
  if (!file.empty()) {
    toml::table t;
    try {
      t = toml::parse_file(file);
    } catch (const toml::parse_error& e) {
      throw usage_error(file + ": " + std::string(e.description()));
    }
    for (auto&& [k, v] : t) {
      std::string key(k.str());
      auto s = v.value<std::string>();
      if (!s) throw usage_error(file + ": " + key + " must be a string");
      if (key == "url") out.url = *s;
      else if (key == "admin_url") out.admin_url = *s;
      else if (key == "key") out.key = *s;
      else if (key == "admin_token") out.admin_token = *s;
      else if (key == "admin_token_file") token_file = *s, explicit_token_file = true;
      else throw usage_error(file + ": unknown key " + key + " (url, admin_url, key, admin_token, admin_token_file)");
    }
  }
  auto env = [](const char* name, std::string& target) {
    if (const char* e = std::getenv(name); e && *e) target = e;
  };
  env("PETREL_URL", out.url);
  env("PETREL_ADMIN_URL", out.admin_url);
  env("PETREL_API_KEY", out.key);
  env("PETREL_ADMIN_TOKEN", out.admin_token);
  out.url = c.option("url", out.url);
  out.admin_url = c.option("admin-url", out.admin_url);
  out.key = c.option("key", out.key);
  out.admin_token = c.option("admin-token", out.admin_token);
  if (c.options.count("admin-token-file")) token_file = c.option("admin-token-file"), explicit_token_file = true;
  if (out.admin_token.empty() && (explicit_token_file || access(token_file.c_str(), R_OK) == 0))
    out.admin_token = trim(read_file(token_file));
  return out;
}

std::string percent_encode(const std::string& s) {
  static const char* hex = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~' || c == '@') {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += hex[c >> 4];
      out += hex[c & 15];
    }
  }
  return out;
}

std::string read_stdin() {
  std::ostringstream s;
  s << std::cin.rdbuf();
  return s.str();
}

// -- output ---------------------------------------------------------------------------------

std::string text_of(const json::value& v) {
  if (v.is_null()) return "-";
  if (v.is_string()) return std::string(v.get_string());
  if (v.is_bool()) return v.get_bool() ? "yes" : "no";
  return json::serialize(v);
}

void print_table(const std::vector<std::string>& header, const std::vector<std::vector<std::string>>& rows) {
  std::vector<std::size_t> width(header.size());
  for (std::size_t i = 0; i < header.size(); ++i) width[i] = header[i].size();
  for (const auto& r : rows)
    for (std::size_t i = 0; i < r.size() && i < width.size(); ++i) width[i] = std::max(width[i], r[i].size());
  auto line = [&](const std::vector<std::string>& cells) {
    std::string out;
    for (std::size_t i = 0; i < cells.size(); ++i) {
      out += cells[i];
      if (i + 1 < cells.size()) out += std::string(width[i] - cells[i].size() + 2, ' ');
    }
    std::printf("%s\n", out.c_str());
  };
  std::vector<std::string> upper;
  for (auto h : header) {
    for (auto& ch : h) ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
    upper.push_back(h);
  }
  line(upper);
  for (const auto& r : rows) line(r);
}

// A table from an array of objects, one column per field.
void print_objects(const json::array& items, const std::vector<std::string>& fields) {
  std::vector<std::vector<std::string>> rows;
  for (const auto& item : items) {
    std::vector<std::string> row;
    for (const auto& f : fields) {
      const auto* v = item.is_object() ? item.get_object().if_contains(f) : nullptr;
      row.push_back(v ? text_of(*v) : "-");
    }
    rows.push_back(std::move(row));
  }
  print_table(fields, rows);
}

int exit_for(int status) {
  if (status >= 200 && status < 300) return ok;
  if (status == 401 || status == 403) return unauthorized;
  if (status == 404) return not_found;
  if (status >= 400 && status < 500) return rejected;
  return failure;
}

// Sends a request; on failure prints why and returns the exit code (else ok with `doc` set).
int request(const connection& conn, bool admin, const std::string& method, const std::string& path,
            const std::string& body, json::value& doc, std::string* raw = nullptr) {
  const auto& base = admin ? conn.admin_url : conn.url;
  const auto& token = admin ? conn.admin_token : conn.key;
  if (token.empty())
    throw usage_error(admin ? "no admin token: --admin-token, PETREL_ADMIN_TOKEN, or a token file"
                            : "no API key: --key or PETREL_API_KEY");
  auto r = call(base, method, path, token, body, conn.timeout);
  if (r.status == 0) {
    std::fprintf(stderr, "petrel: %s\n", r.error.c_str());
    return failure;
  }
  boost::system::error_code ec;
  doc = r.body.empty() ? json::value(nullptr) : json::parse(r.body, ec);
  if (raw) *raw = r.body;
  auto code = exit_for(r.status);
  if (code != ok) {
    std::string detail = r.body;
    if (!ec && doc.is_object())
      if (const auto* d = doc.get_object().if_contains("detail"); d && d->is_string()) detail = std::string(d->get_string());
    std::fprintf(stderr, "petrel: %d: %s\n", r.status, detail.c_str());
  }
  return code;
}

// Prints the JSON of an answer (--json) or calls `human`.
template <class F>
int answer(const command_line& c, int code, const std::string& raw, F&& human) {
  if (code != ok) return code;
  if (c.flag("json")) std::printf("%s\n", raw.c_str());
  else human();
  return ok;
}

// -- commands -------------------------------------------------------------------------------

int send(const command_line& c, const connection& conn) {
  json::object body;
  auto raw_path = c.option("raw");
  if (!raw_path.empty()) {
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
    auto text = c.option("text");
    if (text == "-") text = read_stdin();
    auto html = c.option("html");
    if (html == "-") html = read_stdin();
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
  if (auto v = c.option("metadata"); !v.empty()) {
    boost::system::error_code ec;
    auto m = json::parse(v, ec);
    if (ec || !m.is_object()) throw usage_error("--metadata must be a JSON object");
    body["metadata"] = m;
  }
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

int events(const command_line& c, const connection& conn) {
  std::string query;
  for (const char* name : {"type", "message", "recipient", "campaign", "since", "until", "limit"})
    if (auto v = c.option(name); !v.empty()) query += (query.empty() ? "?" : "&") + std::string(name) + "=" + percent_encode(v);
  bool follow = c.flag("follow");
  if (follow) std::signal(SIGINT, [](int) { interrupted = 1; });
  std::string after = c.option("after");
  bool header = !c.flag("json");
  while (true) {
    auto path = "/v1/events" + query + (after.empty() ? "" : std::string(query.empty() ? "?" : "&") + "after=" + after);
    json::value doc;
    auto code = request(conn, false, "GET", path, "", doc);
    if (code != ok) return code;
    const auto& o = doc.as_object();
    std::vector<std::vector<std::string>> rows;
    for (const auto& e : o.at("events").as_array()) {
      if (c.flag("json")) {
        std::printf("%s\n", json::serialize(e).c_str());  // JSON lines
        continue;
      }
      const auto& ev = e.as_object();
      rows.push_back({text_of(ev.at("at")), text_of(ev.at("type")), text_of(ev.at("email")), text_of(ev.at("message")),
                      event_summary(ev)});
    }
    if (!c.flag("json") && (header || !rows.empty())) {
      if (header) print_table({"at", "type", "email", "message", "detail"}, rows);
      else
        for (const auto& r : rows)
          std::printf("%s  %s  %s  %s  %s\n", r[0].c_str(), r[1].c_str(), r[2].c_str(), r[3].c_str(), r[4].c_str());
      header = false;
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

// A cluster's members and partitions as this node sees them; `drain` makes the node leave.
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
    if (cluster)
      for (const auto& n : o.at("nodes").as_array())
        if (!n.as_object().at("error").is_null())
          std::printf("node %s did not answer: %s\n", text_of(n.as_object().at("node")).c_str(),
                      text_of(n.as_object().at("error")).c_str());
    const auto& t = o.at("totals").as_object();
    std::printf("%s domains, %s queued, %s deferred, %s due, %s in flight\n", text_of(t.at("domains")).c_str(),
                text_of(t.at("queued")).c_str(), text_of(t.at("deferred")).c_str(), text_of(t.at("due")).c_str(),
                text_of(t.at("in_flight")).c_str());
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
    path = "/admin/" + kind + "/" + percent_encode(c.arg(1, "the name")) + "/" + action;
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

int suppressions(const command_line& c, const connection& conn) {
  auto sub = c.arg(0, "list, add or remove");
  json::value doc;
  std::string raw;
  if (sub == "list") {
    std::string query;
    for (const char* name : {"reason", "limit", "after"})
      if (auto v = c.option(name); !v.empty()) query += (query.empty() ? "?" : "&") + std::string(name) + "=" + percent_encode(v);
    auto code = request(conn, false, "GET", "/v1/suppressions" + query, "", doc, &raw);
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

int tenants(const command_line& c, const connection& conn) {
  auto sub = c.arg(0, "list, create or keys");
  json::value doc;
  std::string raw;
  if (sub == "list") {
    auto code = request(conn, true, "GET", "/admin/tenants", "", doc, &raw);
    return answer(c, code, raw, [&] {
      json::array rows;
      for (const auto& t : doc.at("tenants").as_array()) {
        auto o = t.as_object();
        o["keys"] = static_cast<std::int64_t>(o.at("keys").as_array().size());
        rows.push_back(std::move(o));
      }
      print_objects(rows, {"id", "name", "rate_per_second", "suspended", "pool", "weight", "keys", "created_at"});
    });
  }
  if (sub == "create") {
    json::object body{{"name", c.arg(1, "the tenant's name")}};
    if (auto v = c.option("rate"); !v.empty()) body["rate"] = v;
    if (auto v = c.option("burst"); !v.empty()) body["burst"] = std::stoll(v);
    auto code = request(conn, true, "POST", "/admin/tenants", json::serialize(body), doc, &raw);
    return answer(c, code, raw, [&] {
      std::printf("tenant %s (%s)\napi key %s\n", text_of(doc.at("tenant").at("id")).c_str(),
                  text_of(doc.at("tenant").at("name")).c_str(), text_of(doc.at("api_key")).c_str());
    });
  }
  if (sub == "keys") {
    auto action = c.arg(1, "list, add or revoke");
    auto tenant = c.arg(2, "the tenant id");
    if (action == "add") {
      auto code = request(conn, true, "POST", "/admin/tenants/" + percent_encode(tenant) + "/keys", "", doc, &raw);
      return answer(c, code, raw, [&] {
        std::printf("key %s\napi key %s\n", text_of(doc.at("key").at("id")).c_str(), text_of(doc.at("api_key")).c_str());
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
      std::fprintf(stderr, "petrel: no tenant %s\n", tenant.c_str());
      return not_found;
    }
  }
  throw usage_error("tenants list | create NAME | keys list|add TENANT | keys revoke TENANT KEY");
}

int domains(const command_line& c, const connection& conn) {
  auto sub = c.arg(0, "list, add or verify");
  json::value doc;
  std::string raw;
  auto show = [&] {
    const auto& d = doc.as_object();
    std::printf("%s: %s\n", text_of(d.at("domain")).c_str(), d.at("verified").as_bool() ? "verified" : "not verified");
    if (const auto* records = d.if_contains("records"); records && records->is_array())
      print_objects(records->as_array(), {"type", "name", "value"});
  };
  if (sub == "list") {
    auto code = request(conn, false, "GET", "/v1/domains", "", doc, &raw);
    return answer(c, code, raw, [&] { print_objects(doc.at("domains").as_array(), {"domain", "verified", "checked_at"}); });
  }
  if (sub == "add") {
    json::object body{{"domain", c.arg(1, "the domain")}};
    if (auto v = c.option("selector"); !v.empty()) body["selector"] = v;
    auto code = request(conn, false, "POST", "/v1/domains", json::serialize(body), doc, &raw);
    return answer(c, code, raw, show);
  }
  if (sub == "verify") {
    auto code = request(conn, false, "GET", "/v1/domains/" + percent_encode(c.arg(1, "the domain")), "", doc, &raw);
    return answer(c, code, raw, show);
  }
  throw usage_error("domains list | add DOMAIN | verify DOMAIN");
}

const char* help_text =
    "Client commands (talk to a running node):\n"
    "  petrel send --from A --to B [--to C] --subject S [--text T|-] [--html H|-]\n"
    "              [--cc X] [--bcc X] [--campaign C] [--tag T] [--priority high] [--metadata JSON]\n"
    "  petrel send --raw FILE|- --from ENVELOPE-FROM --to RCPT [--to RCPT]\n"
    "  petrel status MESSAGE-ID\n"
    "  petrel events [--type T,...] [--message ID] [--recipient EMAIL] [--campaign C]\n"
    "                [--since TIME] [--until TIME] [--limit N] [--follow]\n"
    "  petrel queues [DOMAIN] [--cluster]   --cluster: every member's domains (admin)\n"
    "  petrel suspend KIND NAME [--duration 30m] [--reason TEXT]   KIND: domain, site, tenant, source\n"
    "  petrel resume KIND NAME\n"
    "  petrel bounce domain|tenant NAME [--reason TEXT]\n"
    "  petrel flush [DOMAIN]\n"
    "  petrel suppressions list [--reason R] | add EMAIL... [--reason R] [--expires-in 30d] | remove EMAIL\n"
    "  petrel tenants list | create NAME [--rate 50/s] [--burst N] | keys list|add TENANT | keys revoke TENANT KEY\n"
    "  petrel domains list | add DOMAIN [--selector S] | verify DOMAIN\n"
    "  petrel cluster                 cluster members, leases and partitions (admin)\n"
    "  petrel drain                   this node hands its partitions over to the others (admin)\n"
    "\n"
    "Connection (flags, else environment, else the CLI config file, else defaults):\n"
    "  --url URL            tenant API (PETREL_URL; default http://127.0.0.1:8080)\n"
    "  --admin-url URL      admin API (PETREL_ADMIN_URL; default http://127.0.0.1:8081)\n"
    "  --key KEY            API key (PETREL_API_KEY)\n"
    "  --admin-token TOKEN  admin token (PETREL_ADMIN_TOKEN; else --admin-token-file, default data/admin.token)\n"
    "  --cli-config FILE    TOML with url, admin_url, key, admin_token, admin_token_file\n"
    "                       (PETREL_CLI_CONFIG; default ~/.config/petrel/cli.toml)\n"
    "  --json               print the API's JSON (events: one JSON object per line)\n"
    "\n"
    "Exit codes: 0 done, 1 server unreachable or 5xx, 2 usage, 3 refused (400/409/429),\n"
    "4 not found, 5 unauthorized (401/403).\n";

}  // namespace

bool is_command(const std::string& name) {
  static const std::vector<std::string> all = {"send",  "status", "events",       "queues",  "suspend", "resume",
                                               "bounce", "flush", "suppressions", "tenants", "domains",
                                               "cluster", "drain"};
  return std::find(all.begin(), all.end(), name) != all.end();
}

int run(const std::vector<std::string>& args) {
  const auto& name = args.at(0);
  try {
    auto c = parse(args, 1);
    if (c.flag("help")) {
      std::printf("%s", help_text);
      return ok;
    }
    auto conn = connect_from(c);
    if (name == "send") return send(c, conn);
    if (name == "status") return status(c, conn);
    if (name == "events") return events(c, conn);
    if (name == "queues") return queues(c, conn);
    if (name == "suspend" || name == "resume" || name == "bounce" || name == "flush") return control(name, c, conn);
    if (name == "suppressions") return suppressions(c, conn);
    if (name == "tenants") return tenants(c, conn);
    if (name == "domains") return domains(c, conn);
    if (name == "cluster") return cluster(c, conn);
    if (name == "drain") return drain(c, conn);
  } catch (const usage_error& e) {
    std::fprintf(stderr, "petrel %s: %s (see petrel %s --help)\n", name.c_str(), e.what(), name.c_str());
    return usage;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "petrel %s: unexpected answer: %s\n", name.c_str(), e.what());
    return failure;
  }
  return usage;
}

const char* client_help() { return help_text; }

}  // namespace petrel::cli
