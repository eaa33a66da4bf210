// Loads config/*.toml into petrel::config: reads with toml++, checks every key's type and
// range, rejects unknown keys (typos must not pass silently), and reports each error with
// file, line, column and the dotted key.
#include <algorithm>
#include <cctype>
#include <filesystem>
#include <map>
#include <tuple>
#include <cstring>
#include <fstream>
#include <regex>
#include <set>
#include <sstream>

#include <toml++/toml.h>

#include "config/config.hpp"
#include "config/config_keys.hpp"
#include "config/bounce_rules.hpp"

namespace petrel {

std::string config::storage_url() const {
  if (!storage.url.empty()) return storage.url;
  return "sqlite:" + (std::filesystem::path(storage.data_dir) / "petrel.db").string();
}

std::string config::admin_token_path() const {
  if (!admin.token_file.empty()) return admin.token_file;
  return (std::filesystem::path(storage.data_dir) / "admin.token").string();
}

std::string config_error::to_string() const {
  std::ostringstream out;
  out << file;
  if (line > 0) out << ":" << line << ":" << column;
  out << ": ";
  if (!key.empty()) out << key << ": ";
  out << reason;
  return out.str();
}

namespace {

using std::chrono::milliseconds;

class reader;

// Reads the keys of one table ("section") and remembers which ones it knew.
class section {
 public:
  section(reader& r, const toml::table* table, std::string prefix, int line, int column)
      : reader_(r), table_(table), prefix_(std::move(prefix)), line_(line), column_(column) {}

  void string(const char* key, std::string& out, std::size_t max_length = 4096);
  void choice(const char* key, std::string& out, std::initializer_list<const char*> allowed);
  void boolean(const char* key, bool& out);
  template <class Int>
  void integer(const char* key, Int& out, std::int64_t min, std::int64_t max);
  void size(const char* key, std::uint64_t& out, std::uint64_t min, std::uint64_t max);
  void duration(const char* key, milliseconds& out, milliseconds min, milliseconds max);
  void rate_value(const char* key, rate& out);
  void listen(const char* key, listen_address& out);
  void real(const char* key, double& out, double min, double max);
  void string_list(const char* key, std::vector<std::string>& out);
  // IP addresses or networks ("10.0.0.0/8", "::1").
  void network_list(const char* key, std::vector<std::string>& out);
  void duration_list(const char* key, std::vector<milliseconds>& out, milliseconds min,
                     milliseconds max);
  // The tables of an array of tables ([[section.key]]), each read as a section of its own.
  std::vector<section> tables(const char* key);
  void finish();  // reports keys nobody asked for
  bool has(const char* key) const { return table_ && table_->get(key); }
  // Reports a problem found by a check across keys, at that key's position.
  void problem(const char* key, std::string reason) {
    fail(table_ ? table_->get(key) : nullptr, key, std::move(reason));
  }

 private:
  const toml::node* get(const char* key);
  void fail(const toml::node* node, const char* key, std::string reason);

  reader& reader_;
  const toml::table* table_;
  std::string prefix_;
  int line_, column_;
  std::set<std::string> known_;
};

class reader {
 public:
  reader(const toml::table& root, std::string file) : root_(root), file_(std::move(file)) {}

  section open(const char* name) {
    known_sections_.insert(name);
    auto* node = root_.get(name);
    if (node && !node->is_table()) {
      error(node, name, "expected a table ([" + std::string(name) + "])");
      return section(*this, nullptr, name, 0, 0);
    }
    auto* table = node ? node->as_table() : nullptr;
    int line = node ? static_cast<int>(node->source().begin.line) : 0;
    int column = node ? static_cast<int>(node->source().begin.column) : 0;
    return section(*this, table, name, line, column);
  }

  void finish() {
    for (auto&& [key, node] : root_) {
      if (!known_sections_.count(std::string(key.str())))
        error(&node, std::string(key.str()), "unknown section or key");
    }
  }

  void error(const toml::node* node, std::string key, std::string reason) {
    config_error e;
    e.file = file_;
    if (node) {
      e.line = static_cast<int>(node->source().begin.line);
      e.column = static_cast<int>(node->source().begin.column);
    }
    e.key = std::move(key);
    e.reason = std::move(reason);
    errors.push_back(std::move(e));
  }

  std::vector<config_error> errors;

 private:
  const toml::table& root_;
  std::string file_;
  std::set<std::string> known_sections_;
};

// While config_keys() runs: every "section.key" a reader asks for.
thread_local std::set<std::string>* asked_keys = nullptr;

const toml::node* section::get(const char* key) {
  known_.insert(key);
  if (asked_keys) asked_keys->insert(prefix_ + "." + key);
  return table_ ? table_->get(key) : nullptr;
}

void section::fail(const toml::node* node, const char* key, std::string reason) {
  reader_.error(node, prefix_ + "." + key, std::move(reason));
}

void section::string(const char* key, std::string& out, std::size_t max_length) {
  auto* node = get(key);
  if (!node) return;
  auto value = node->value<std::string>();
  if (!node->is_string() || !value) return fail(node, key, "expected a string");
  if (value->size() > max_length)
    return fail(node, key, "longer than " + std::to_string(max_length) + " characters");
  out = *value;
}

void section::choice(const char* key, std::string& out,
                     std::initializer_list<const char*> allowed) {
  auto* node = get(key);
  if (!node) return;
  if (!node->is_string()) return fail(node, key, "expected a string");
  auto value = *node->value<std::string>();
  std::string list;
  for (auto* option : allowed) {
    if (value == option) {
      out = value;
      return;
    }
    list += list.empty() ? "" : ", ";
    list += option;
  }
  fail(node, key, "\"" + value + "\" is not one of: " + list);
}

void section::boolean(const char* key, bool& out) {
  auto* node = get(key);
  if (!node) return;
  if (!node->is_boolean()) return fail(node, key, "expected true or false");
  out = *node->value<bool>();
}

template <class Int>
void section::integer(const char* key, Int& out, std::int64_t min, std::int64_t max) {
  auto* node = get(key);
  if (!node) return;
  if (!node->is_integer()) return fail(node, key, "expected an integer");
  auto value = *node->value<std::int64_t>();
  if (value < min || value > max)
    return fail(node, key,
                "must be between " + std::to_string(min) + " and " + std::to_string(max) +
                    ", got " + std::to_string(value));
  out = static_cast<Int>(value);
}

void section::size(const char* key, std::uint64_t& out, std::uint64_t min, std::uint64_t max) {
  auto* node = get(key);
  if (!node) return;
  std::uint64_t value = 0;
  if (node->is_integer()) {
    auto v = *node->value<std::int64_t>();
    if (v < 0) return fail(node, key, "must not be negative");
    value = static_cast<std::uint64_t>(v);
  } else if (node->is_string()) {
    auto p = parse_size(*node->value<std::string>());
    if (!p) return fail(node, key, p.error());
    value = *p;
  } else {
    return fail(node, key, "expected a size (an integer or a string like \"10MiB\")");
  }
  if (value < min || value > max)
    return fail(node, key,
                "must be between " + std::to_string(min) + " and " + std::to_string(max) +
                    ", got " + std::to_string(value));
  out = value;
}

void section::duration(const char* key, milliseconds& out, milliseconds min, milliseconds max) {
  auto* node = get(key);
  if (!node) return;
  if (!node->is_string())
    return fail(node, key, "expected a duration string like \"30s\", \"5m\" or \"250ms\"");
  auto p = parse_duration(*node->value<std::string>());
  if (!p) return fail(node, key, p.error());
  if (*p < min || *p > max)
    return fail(node, key,
                "must be between " + format_duration(min) + " and " + format_duration(max));
  out = *p;
}

void section::rate_value(const char* key, rate& out) {
  auto* node = get(key);
  if (!node) return;
  if (!node->is_string()) return fail(node, key, "expected a rate string like \"100/s\"");
  auto p = parse_rate(*node->value<std::string>());
  if (!p) return fail(node, key, p.error());
  out = *p;
}

void section::listen(const char* key, listen_address& out) {
  auto* node = get(key);
  if (!node) return;
  if (!node->is_string()) return fail(node, key, "expected a string like \"127.0.0.1:8080\"");
  auto p = parse_listen_address(*node->value<std::string>());
  if (!p) return fail(node, key, p.error());
  out = *p;
}

void section::real(const char* key, double& out, double min, double max) {
  auto* node = get(key);
  if (!node) return;
  if (!node->is_number()) return fail(node, key, "expected a number");
  auto value = *node->value<double>();
  if (value < min || value > max)
    return fail(node, key, "must be between " + std::to_string(min) + " and " + std::to_string(max));
  out = value;
}

void section::network_list(const char* key, std::vector<std::string>& out) {
  std::vector<std::string> values;
  string_list(key, values);
  for (const auto& v : values) {
    ip_network network;
    std::string error;
    if (!parse_ip_network(v, network, error)) return problem(key, error);
  }
  out = std::move(values);
}

void section::string_list(const char* key, std::vector<std::string>& out) {
  auto* node = get(key);
  if (!node) return;
  auto* array = node->as_array();
  if (!array) return fail(node, key, "expected an array of strings");
  std::vector<std::string> values;
  for (auto&& item : *array) {
    if (!item.is_string()) return fail(&item, key, "expected an array of strings");
    values.push_back(*item.value<std::string>());
  }
  out = std::move(values);
}

void section::duration_list(const char* key, std::vector<milliseconds>& out, milliseconds min,
                            milliseconds max) {
  auto* node = get(key);
  if (!node) return;
  auto* array = node->as_array();
  if (!array || array->empty())
    return fail(node, key, "expected a non-empty array of durations like [\"1m\", \"5m\"]");
  std::vector<milliseconds> values;
  for (auto&& item : *array) {
    if (!item.is_string()) return fail(&item, key, "expected duration strings like \"5m\"");
    auto p = parse_duration(*item.value<std::string>());
    if (!p) return fail(&item, key, p.error());
    if (*p < min || *p > max)
      return fail(&item, key, "must be between " + format_duration(min) + " and " + format_duration(max));
    values.push_back(*p);
  }
  out = std::move(values);
}

std::vector<section> section::tables(const char* key) {
  std::vector<section> out;
  auto* node = get(key);
  if (!node) return out;
  auto* array = node->as_array();
  if (!array || !array->is_array_of_tables()) {
    fail(node, key, "expected tables ([[" + prefix_ + "." + key + "]])");
    return out;
  }
  for (std::size_t i = 0; i < array->size(); ++i) {
    auto& item = *array->get(i);
    out.emplace_back(reader_, item.as_table(), prefix_ + "." + key + "[" + std::to_string(i) + "]",
                     static_cast<int>(item.source().begin.line),
                     static_cast<int>(item.source().begin.column));
  }
  return out;
}

void section::finish() {
  if (!table_) return;
  for (auto&& [key, node] : *table_) {
    if (!known_.count(std::string(key.str())))
      reader_.error(&node, prefix_ + "." + std::string(key.str()), "unknown key");
  }
}

constexpr std::uint64_t kib = 1024, mib = 1024 * kib, gib = 1024 * mib;

// [log]
void read_log(reader& r, config& c) {
  auto s = r.open("log");
  s.choice("level", c.log.level, {"trace", "debug", "info", "warn", "error", "critical", "off"});
  s.choice("format", c.log.format, {"text", "json"});
  s.string("delivery_log", c.log.delivery_log);
  s.string("access_log", c.log.access_log);
  s.finish();
}

// tls_cert_file and tls_key_file of an HTTP listener's section; tls_cert_dir and
// tls_client_ca_file where that listener has them. The files are read at start (and reload).
void read_listener_tls(section& s, listener_tls& t, bool with_dir, bool with_client_ca) {
  s.string("tls_cert_file", t.cert_file);
  s.string("tls_key_file", t.key_file);
  if (with_dir) s.string("tls_cert_dir", t.cert_dir);
  if (with_client_ca) s.string("tls_client_ca_file", t.client_ca_file);
  if (t.cert_file.empty() != t.key_file.empty())
    s.problem(t.cert_file.empty() ? "tls_cert_file" : "tls_key_file",
              "tls_cert_file and tls_key_file go together (HTTPS needs both; neither: plain HTTP)");
  if (!t.cert_file.empty() || !t.key_file.empty()) return;
  if (!t.cert_dir.empty()) s.problem("tls_cert_dir", "needs tls_cert_file and tls_key_file (the default certificate)");
  if (!t.client_ca_file.empty()) s.problem("tls_client_ca_file", "needs tls_cert_file and tls_key_file (HTTPS)");
}

// [http]
void read_http(reader& r, config& c) {
  auto s = r.open("http");
  s.listen("listen", c.http.listen);
  s.size("max_body_bytes", c.http.max_body_bytes, 1 * kib, 1 * gib);
  s.size("max_header_bytes", c.http.max_header_bytes, 1 * kib, 1 * mib);
  s.duration("read_timeout", c.http.read_timeout, 100ms, 1h);
  s.duration("idle_timeout", c.http.idle_timeout, 100ms, 1h);
  s.duration("handler_timeout", c.http.handler_timeout, 100ms, 10min);
  s.size("max_connections", c.http.max_connections, 1, 1'000'000);
  s.size("max_connections_per_client", c.http.max_connections_per_client, 0, 1'000'000);
  s.network_list("trusted_clients", c.http.trusted_clients);
  s.duration("shutdown_grace", c.http.shutdown_grace, 0ms, 10min);
  read_listener_tls(s, c.http.tls, false, false);
  s.duration("tls_check_interval", c.http.tls_check_interval, 0ms, 24h);
  s.finish();
}

// [io]
void read_io(reader& r, config& c) {
  auto s = r.open("io");
  s.integer("threads", c.io.threads, 1, 64);
  s.finish();
}

// [dns]
void read_dns(reader& r, config& c) {
  auto s = r.open("dns");
  s.string_list("servers", c.dns.servers);
  s.duration("timeout", c.dns.timeout, 10ms, 60s);
  s.integer("tries", c.dns.tries, 1, 10);
  s.boolean("ipv6", c.dns.ipv6);
  s.boolean("prefer_ipv6", c.dns.prefer_ipv6);
  s.boolean("dnssec_trusted", c.dns.dnssec_trusted);
  s.size("cache_size", c.dns.cache_size, 1, 100'000'000);
  s.size("negative_cache_size", c.dns.negative_cache_size, 1, 100'000'000);
  s.duration("min_ttl", c.dns.min_ttl, 0ms, 24h);
  s.duration("max_ttl", c.dns.max_ttl, 1s, 7 * 24h);
  s.duration("temporary_failure_ttl", c.dns.temporary_failure_ttl, 0ms, 1h);
  for (std::size_t i = 0; i < c.dns.servers.size(); ++i) {
    const auto& server = c.dns.servers[i];
    auto colon = server.rfind(':');
    auto host = server.find('.') != std::string::npos && colon != std::string::npos
                    ? server.substr(0, colon)
                    : server;
    if (host.empty() || host.find_first_not_of("0123456789abcdefABCDEF.:[]") != std::string::npos)
      s.problem("servers", "\"" + server + "\" is not an IP address with an optional :port");
  }
  s.finish();
}

// Whether a host is a loopback address literal (SMTP AUTH without TLS is allowed only there).
bool is_loopback_literal(const std::string& host) {
  return host == "::1" || host.rfind("127.", 0) == 0;
}

// [delivery] relay, [[delivery.relays]], [[delivery.routes]]: the routing table.
void read_routing(section& s, delivery_settings& d) {
  std::set<std::string> names;
  bool shorthand = false;
  for (auto& t : s.tables("relays")) {
    relay_config relay;
    std::string host;
    t.string("name", relay.name, 64);
    t.string("host", host, 300);
    t.choice("tls", relay.tls, {"disabled", "opportunistic", "required"});
    t.boolean("verify_certificate", relay.verify_certificate);
    t.string("username", relay.username, 256);
    t.string("password_file", relay.password_file);
    if (relay.name.empty()) t.problem("name", "required");
    else if (!names.insert(relay.name).second) t.problem("name", "\"" + relay.name + "\" is used twice");
    if (host.empty()) {
      t.problem("host", "required: \"host\" or \"host:port\" (port 25 when not given)");
    } else if (auto hp = parse_host_port(host, 25); !hp) {
      t.problem("host", hp.error());
    } else {
      relay.host = hp.value().host;
      relay.port = hp.value().port;
    }
    if (!relay.username.empty() && relay.password_file.empty())
      t.problem("password_file", "required with username: a file whose first line is the password");
    if (relay.username.empty() && !relay.password_file.empty())
      t.problem("username", "required with password_file");
    if (!relay.username.empty() && relay.tls != "required" && !is_loopback_literal(relay.host))
      t.problem("tls", "SMTP AUTH sends the password: set tls = \"required\" (plain text is allowed "
                       "only to a loopback address)");
    t.finish();
    d.relays.push_back(std::move(relay));
  }
  s.string("relay", d.relay, 300);
  if (!d.relay.empty()) {
    if (auto hp = parse_host_port(d.relay, 25); !hp) {
      s.problem("relay", hp.error());
    } else if (names.count("relay")) {
      s.problem("relay", "a [[delivery.relays]] entry is named \"relay\" already: add a route to it instead");
    } else {
      relay_config relay;
      relay.name = "relay";
      relay.host = hp.value().host;
      relay.port = hp.value().port;
      d.relays.push_back(std::move(relay));
      names.insert("relay");
      shorthand = true;
    }
  }
  for (auto& t : s.tables("routes")) {
    route_config route;
    std::vector<std::string> mx;
    t.string_list("domains", route.domains);
    t.string_list("tenants", route.tenants);
    t.string("relay", route.relay, 64);
    t.string_list("mx", mx);
    for (auto& pattern : route.domains) {
      for (auto& ch : pattern) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
      if (pattern.empty()) t.problem("domains", "an empty pattern matches nothing");
    }
    if (route.relay.empty() == mx.empty())
      t.problem("relay", "give either relay = \"<name of a [[delivery.relays]]>\" or mx = [\"host[:port]\", ...]");
    else if (!route.relay.empty() && !names.count(route.relay))
      t.problem("relay", "no [[delivery.relays]] is named \"" + route.relay + "\"");
    for (const auto& m : mx) {
      if (auto hp = parse_host_port(m, 0); !hp) t.problem("mx", hp.error());
      else route.mx.push_back(hp.value());
    }
    t.finish();
    d.routes.push_back(std::move(route));
  }
  if (shorthand) {
    route_config everything;
    everything.relay = "relay";
    d.routes.push_back(std::move(everything));
  }
}

// [delivery]
void read_delivery(reader& r, config& c) {
  auto s = r.open("delivery");
  auto& d = c.delivery;
  s.string("ehlo_name", d.ehlo_name, 253);
  s.integer("port", d.port, 1, 65535);
  s.integer("connection_limit", d.connection_limit, 1, 10000);
  s.integer("max_deliveries_per_connection", d.max_deliveries_per_connection, 1, 1'000'000);
  s.integer("max_recipients_per_transaction", d.max_recipients_per_transaction, 1, 1000);
  s.integer("ready_queue", d.ready_queue, 0, 1'000'000);
  s.choice("tls", d.tls, {"disabled", "opportunistic", "required"});
  s.boolean("allow_private_destinations", d.allow_private_destinations);
  s.boolean("verify_certificate", d.verify_certificate);
  s.boolean("dane", d.dane);
  s.string("ca_file", d.ca_file);
  s.duration("connect_timeout", d.connect_timeout, 10ms, 10min);
  s.duration("greeting_timeout", d.greeting_timeout, 10ms, 30min);
  s.duration("command_timeout", d.command_timeout, 10ms, 30min);
  s.duration("data_timeout", d.data_timeout, 10ms, 30min);
  s.duration("data_block_timeout", d.data_block_timeout, 10ms, 30min);
  s.duration("data_done_timeout", d.data_done_timeout, 10ms, 60min);
  s.duration("idle_timeout", d.idle_timeout, 0ms, 10min);
  s.duration_list("retry_schedule", d.retry_schedule, 100ms, 7 * 24h);
  s.real("retry_jitter", d.retry_jitter, 0, 1);
  s.duration("max_age", d.max_age, 1s, 30 * 24h);
  s.duration("site_failure_delay", d.site_failure_delay, 0ms, 24h);
  s.rate_value("message_rate", d.message_rate);
  s.rate_value("connection_rate", d.connection_rate);
  s.boolean("adaptive_concurrency", d.adaptive_concurrency);
  for (auto& t : s.tables("domains")) {
    domain_policy p;
    t.string("match", p.match, 253);
    t.rate_value("message_rate", p.message_rate);
    t.rate_value("tenant_rate", p.tenant_rate);
    if (p.match.empty()) t.problem("match", "required: a glob on domain names, e.g. \"yahoo.*\"");
    t.finish();
    d.domains.push_back(std::move(p));
  }
  for (auto& t : s.tables("sites")) {
    site_policy p;
    t.string("match", p.match, 253);
    t.integer("connection_limit", p.connection_limit, 1, 10000);
    t.integer("max_deliveries_per_connection", p.max_deliveries_per_connection, 1, 1'000'000);
    t.rate_value("message_rate", p.message_rate);
    t.rate_value("connection_rate", p.connection_rate);
    t.choice("tls", p.tls, {"disabled", "opportunistic", "required"});
    if (t.has("mta_sts")) {
      bool sts = true;
      t.boolean("mta_sts", sts);
      p.mta_sts = sts ? 1 : 0;
    }
    if (t.has("verify_certificate")) {
      bool verify = false;
      t.boolean("verify_certificate", verify);
      p.verify_certificate = verify ? 1 : 0;
    }
    if (p.match.empty()) t.problem("match", "required: a glob on MX host names, e.g. \"*.example.com\"");
    t.finish();
    d.sites.push_back(std::move(p));
  }
  read_routing(s, d);
  s.finish();
}

// [egress]
void read_egress(reader& r, config& c) {
  auto s = r.open("egress");
  std::set<std::string> names;
  for (auto& t : s.tables("sources")) {
    egress_source_config e;
    t.string("name", e.name, 64);
    t.string("address", e.address, 64);
    t.string("ehlo_name", e.ehlo_name, 253);
    t.string("node", e.node, 64);
    if (e.node.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.") !=
        std::string::npos)
      t.problem("node", "a cluster.node_name: letters, digits, '-', '_' and '.' only");
    if (e.name.empty()) t.problem("name", "required");
    else if (e.name[0] == '~') t.problem("name", "cannot start with '~' (reserved: ~sandbox is the sandbox's simulator)");
    else if (!names.insert(e.name).second) t.problem("name", "\"" + e.name + "\" is used twice");
    if (!e.address.empty() && e.address.find_first_not_of("0123456789abcdefABCDEF.:") != std::string::npos)
      t.problem("address", "\"" + e.address + "\" is not an IP address");
    t.rate_value("message_rate", e.message_rate);
    std::map<std::string, std::uint32_t> last_day;  // per site pattern ("" the source's own)
    for (auto& w : t.tables("warmup")) {
      warmup_step_config step;
      w.string("site", step.site, 253);
      w.integer("day", step.day, 1, 3650);
      w.size("per_day", step.per_day, 0, 1'000'000'000);
      w.size("per_hour", step.per_hour, 0, 1'000'000'000);
      if (step.day <= last_day[step.site])
        w.problem("day", "steps must be in increasing day order (per site)");
      last_day[step.site] = step.day;
      w.finish();
      e.warmup.push_back(step);
    }
    t.finish();
    c.egress.sources.push_back(std::move(e));
  }
  if (c.egress.sources.empty()) names.insert("default");  // the implicit source
  std::set<std::string> pool_names;
  for (auto& t : s.tables("pools")) {
    egress_pool_config pool;
    t.string("name", pool.name, 64);
    if (pool.name.empty()) t.problem("name", "required");
    else if (pool.name[0] == '~') t.problem("name", "cannot start with '~' (reserved: ~sandbox is the sandbox's simulator)");
    else if (!pool_names.insert(pool.name).second) t.problem("name", "\"" + pool.name + "\" is used twice");
    for (auto& m : t.tables("sources")) {
      pool_member member;
      m.string("source", member.source, 64);
      m.integer("weight", member.weight, 1, 1000);
      if (!names.count(member.source))
        m.problem("source", "\"" + member.source + "\" is not a source of [[egress.sources]]");
      m.finish();
      pool.sources.push_back(std::move(member));
    }
    if (pool.sources.empty()) t.problem("sources", "at least one {source = \"...\", weight = n}");
    t.finish();
    c.egress.pools.push_back(std::move(pool));
  }
  s.string("default_pool", c.egress.default_pool, 64);
  if (c.egress.default_pool != "default" && !pool_names.count(c.egress.default_pool))
    s.problem("default_pool", "no pool named \"" + c.egress.default_pool + "\"");
  for (auto& t : s.tables("campaign_pools")) {
    std::string campaign, pool;
    t.string("campaign", campaign, 128);
    t.string("pool", pool, 64);
    if (campaign.empty()) t.problem("campaign", "required");
    if (pool != "default" && !pool_names.count(pool)) t.problem("pool", "no pool named \"" + pool + "\"");
    t.finish();
    c.egress.campaign_pools.emplace_back(campaign, pool);
  }
  s.finish();
}

// [shaping]
void read_shaping(reader& r, config& c) {
  auto s = r.open("shaping");
  auto& sh = c.shaping;
  s.size("max_waiting_recipients", sh.max_waiting_recipients, 1, 1'000'000'000);
  s.size("max_waiting_per_tenant", sh.max_waiting_per_tenant, 1, 1'000'000'000);
  for (auto& t : s.tables("rules")) {
    response_rule_config rule;
    t.string("name", rule.name, 128);
    t.integer("reply_code", rule.reply_code, 0, 599);
    t.string("enhanced", rule.enhanced, 16);
    t.string("pattern", rule.pattern, 1000);
    t.string("provider", rule.provider, 253);
    t.integer("threshold", rule.threshold, 1, 100000);
    t.duration("window", rule.window, 1s, 24h);
    t.choice("action", rule.action, {"suspend_site", "suspend_tenant", "throttle", "bounce"});
    t.duration("duration", rule.duration, 1s, 7 * 24h);
    t.real("factor", rule.factor, 0.01, 1);
    if (rule.action.empty()) t.problem("action", "required: suspend_site, suspend_tenant, throttle or bounce");
    if (rule.reply_code != 0 && rule.reply_code != 4 && rule.reply_code != 5 &&
        (rule.reply_code < 200 || rule.reply_code > 599))
      t.problem("reply_code", "0 (any), 4 or 5 (a class), or a reply code like 421");
    if (!rule.pattern.empty()) {
      try {
        std::regex check(rule.pattern, std::regex::ECMAScript | std::regex::icase);
      } catch (const std::regex_error& e) {
        t.problem("pattern", std::string("not a valid regular expression: ") + e.what());
      }
    }
    if (rule.name.empty()) rule.name = "rule " + std::to_string(sh.rules.size() + 1);
    t.finish();
    sh.rules.push_back(std::move(rule));
  }
  s.finish();
}

// [events]
void read_events(reader& r, config& c) {
  auto s = r.open("events");
  s.duration("retention", c.events.retention, 1s, 3650 * 24h);
  s.duration("prune_interval", c.events.prune_interval, 1s, 24h);
  s.size("prune_batch", c.events.prune_batch, 1, 1'000'000);
  s.finish();
}

// [webhooks]
void read_webhooks(reader& r, config& c) {
  auto s = r.open("webhooks");
  auto& w = c.webhooks;
  s.boolean("enabled", w.enabled);
  s.size("batch_size", w.batch_size, 1, 1000);
  s.duration("max_delay", w.max_delay, 10ms, 10min);
  s.duration("timeout", w.timeout, 100ms, 5min);
  s.duration_list("retry_schedule", w.retry_schedule, 100ms, 7 * 24h);
  s.size("max_pending", w.max_pending, 1, 1'000'000'000);
  s.duration("pause_after", w.pause_after, 1s, 30 * 24h);
  s.size("max_per_tenant", w.max_per_tenant, 1, 1000);
  s.duration("rotation_overlap", w.rotation_overlap, 0ms, 30 * 24h);
  s.boolean("allow_private_networks", w.allow_private_networks);
  s.boolean("require_https", w.require_https);
  s.string("ca_file", w.ca_file);
  s.finish();
}

// [admin]
void read_admin(reader& r, config& c) {
  auto s = r.open("admin");
  s.listen("listen", c.admin.listen);
  s.string("token", c.admin.token, 512);
  s.string("token_file", c.admin.token_file);
  s.boolean("console", c.admin.console);
  s.duration("console_session_lifetime", c.admin.console_session_lifetime, 1min, 30 * 24h);
  s.duration("console_idle_timeout", c.admin.console_idle_timeout, 1min, 30 * 24h);
  s.integer("console_warn_deferred", c.admin.console_warn_deferred, 1, 1'000'000'000);
  if (!c.admin.token.empty() && c.admin.token.size() < 16)
    s.problem("token", "must be at least 16 characters long");
  read_listener_tls(s, c.admin.tls, false, true);
  s.finish();
}

// [storage]
void read_storage(reader& r, config& c) {
  auto s = r.open("storage");
  s.string("data_dir", c.storage.data_dir);
  s.string("url", c.storage.url);
  s.choice("sqlite_synchronous", c.storage.sqlite_synchronous, {"full", "normal"});
  s.duration("busy_timeout", c.storage.busy_timeout, 0ms, 10min);
  s.size("batch_max_operations", c.storage.batch_max_operations, 1, 1'000'000);
  s.duration("commit_interval", c.storage.commit_interval, 0ms, 1s);
  s.size("read_connections", c.storage.read_connections, 1, 64);
  s.size("max_pending_writes", c.storage.max_pending_writes, 1, 100'000'000);
  s.duration("request_timeout", c.storage.request_timeout, 100ms, 10min);
  s.size("min_free_space", c.storage.min_free_space, 0, 1000 * 1000 * gib);
  s.duration("content_retention", c.storage.content_retention, 1s, 3650 * 24h);
  s.duration("retention", c.storage.retention, 1s, 3650 * 24h);
  s.duration("prune_interval", c.storage.prune_interval, 100ms, 1h);
  s.size("prune_batch", c.storage.prune_batch, 1, 1'000'000);
  if (c.storage.retention < c.storage.content_retention)
    s.problem("retention", "must be at least content_retention (rows outlive the content they describe)");
  auto& url = c.storage.url;
  if (!url.empty() && url.rfind("sqlite:", 0) != 0 && url.rfind("postgresql://", 0) != 0 &&
      url.rfind("postgres://", 0) != 0)
    s.problem("url", "unsupported store \"" + url +
                         "\" (use sqlite:<path> or postgresql://user@host:port/database)");
  if (c.storage.data_dir.empty()) s.problem("data_dir", "must not be empty");
  s.finish();
}

// [submission]
void read_submission(reader& r, config& c) {
  auto s = r.open("submission");
  s.size("max_recipients", c.submission.max_recipients, 1, 100'000);
  s.size("max_message_bytes", c.submission.max_message_bytes, 1 * kib, 1 * gib);
  s.size("max_metadata_bytes", c.submission.max_metadata_bytes, 0, 1 * mib);
  s.size("max_tags", c.submission.max_tags, 0, 1000);
  s.size("max_tag_length", c.submission.max_tag_length, 1, 1024);
  s.size("max_headers", c.submission.max_headers, 0, 1000);
  s.size("max_subject_length", c.submission.max_subject_length, 1, 100'000);
  s.size("max_json_values", c.submission.max_json_values, 100, 10'000'000);
  s.string("message_id_domain", c.submission.message_id_domain, 253);
  s.boolean("campaigns_are_bulk", c.submission.campaigns_are_bulk);
  s.duration("max_schedule_ahead", c.submission.max_schedule_ahead, 1s, 24h * 30);
  s.duration("idempotency_window", c.submission.idempotency_window, 1min, 24h * 30);
  s.finish();
}

// [tenants]
void read_tenants(reader& r, config& c) {
  auto s = r.open("tenants");
  s.rate_value("default_rate", c.tenants.default_rate);
  s.integer("default_burst", c.tenants.default_burst, 1, 10'000'000);
  s.finish();
}

// [bootstrap]
// [reputation]
void read_reputation(reader& r, config& c) {
  auto s = r.open("reputation");
  auto& p = c.reputation;
  s.boolean("enabled", p.enabled);
  s.duration("window", p.window, 1s, 90 * 24h);
  s.integer("min_volume", p.min_volume, 1, 1'000'000'000);
  s.real("complaint_warn", p.complaint_warn, 0, 1);
  s.real("complaint_pause", p.complaint_pause, 0, 1);
  s.real("bounce_warn", p.bounce_warn, 0, 1);
  s.real("bounce_pause", p.bounce_pause, 0, 1);
  s.duration("check_interval", p.check_interval, 100ms, 1h);
  if (p.complaint_warn > p.complaint_pause)
    s.problem("complaint_warn", "must not be above complaint_pause");
  if (p.bounce_warn > p.bounce_pause) s.problem("bounce_warn", "must not be above bounce_pause");
  s.finish();
}

// [tracking]
void read_tracking(reader& r, config& c) {
  auto s = r.open("tracking");
  auto& t = c.tracking;
  s.boolean("enabled", t.enabled);
  s.listen("listen", t.listen);
  s.string("base_url", t.base_url, 200);
  while (!t.base_url.empty() && t.base_url.back() == '/') t.base_url.pop_back();
  if (!t.base_url.empty()) {
    auto scheme_end = t.base_url.find("://");
    auto scheme = scheme_end == std::string::npos ? std::string() : t.base_url.substr(0, scheme_end);
    bool clean = std::all_of(t.base_url.begin(), t.base_url.end(), [](char ch) {
      return std::isalnum(static_cast<unsigned char>(ch)) || std::string_view(":/.-_[]").find(ch) != std::string_view::npos;
    });
    if ((scheme != "http" && scheme != "https") || scheme_end + 3 >= t.base_url.size() || !clean)
      s.problem("base_url", "must be an http or https URL of a host and optional port and path "
                            "(letters, digits, \":/.-_[]\"), e.g. \"https://t.example.com\"");
  }
  s.string("cname_target", t.cname_target, 253);
  for (auto& ch : t.cname_target) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  while (!t.cname_target.empty() && t.cname_target.back() == '.') t.cname_target.pop_back();
  s.choice("scheme", t.scheme, {"https", "http"});
  s.string("secret_file", t.secret_file);
  s.duration("token_lifetime", t.token_lifetime, 1h, 3650 * 24h);
  s.duration("machine_window", t.machine_window, 0ms, 1h);
  s.network_list("trusted_proxies", t.trusted_proxies);
  read_listener_tls(s, t.tls, true, false);
  s.finish();
}

void read_bootstrap(reader& r, config& c) {
  auto s = r.open("bootstrap");
  s.boolean("create_tenant", c.bootstrap.create_tenant);
  s.string("tenant_name", c.bootstrap.tenant_name, 128);
  if (c.bootstrap.tenant_name.empty()) s.problem("tenant_name", "must not be empty");
  s.finish();
}

// [actors]
void read_actors(reader& r, config& c) {
  auto s = r.open("actors");
  s.integer("threads", c.actors.threads, 0, 256);
  s.choice("scheduler", c.actors.scheduler, {"sharing", "caf-sharing", "stealing"});
  s.integer("max_restarts", c.actors.max_restarts, 0, 1000);
  s.duration("restart_window", c.actors.restart_window, 1ms, 24h);
  s.duration("restart_backoff", c.actors.restart_backoff, 0ms, 10min);
  s.duration("restart_backoff_max", c.actors.restart_backoff_max, 0ms, 1h);
  s.duration("domain_idle_timeout", c.actors.domain_idle_timeout, 1s, 24h);
  s.finish();
}

// [dkim]
void read_dkim(reader& r, config& c) {
  auto s = r.open("dkim");
  s.string_list("algorithms", c.dkim.algorithms);
  s.integer("rsa_bits", c.dkim.rsa_bits, 1024, 4096);
  s.string("key_encryption_key_file", c.dkim.key_encryption_key_file);
  s.boolean("require_verified_domain", c.dkim.require_verified_domain);
  s.integer("signers", c.dkim.signers, 0, 64);
  if (c.dkim.algorithms.empty()) s.problem("algorithms", "at least one of rsa-sha256, ed25519-sha256");
  for (const auto& a : c.dkim.algorithms)
    if (a != "rsa-sha256" && a != "ed25519-sha256")
      s.problem("algorithms", "\"" + a + "\" is not one of rsa-sha256, ed25519-sha256");
  s.finish();
}

// [domains]
void read_domains(reader& r, config& c) {
  auto s = r.open("domains");
  s.duration("verify_interval", c.domains.verify_interval, 1s, 7 * 24h);
  s.string("spf_include", c.domains.spf_include, 253);
  s.string("dmarc_rua", c.domains.dmarc_rua, 253);
  s.string("bounce_mx_host", c.domains.bounce_mx_host, 253);
  s.string("return_path_label", c.domains.return_path_label, 63);
  s.string_list("unclaimable", c.domains.unclaimable);
  for (auto& d : c.domains.unclaimable)
    for (auto& ch : d) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  s.finish();
}

// [mta_sts]
void read_mta_sts(reader& r, config& c) {
  auto s = r.open("mta_sts");
  s.boolean("enabled", c.mta_sts.enabled);
  s.integer("port", c.mta_sts.port, 1, 65535);
  s.string("ca_file", c.mta_sts.ca_file);
  s.duration("timeout", c.mta_sts.timeout, 100ms, 5min);
  s.size("cache_size", c.mta_sts.cache_size, 1, 100'000'000);
  s.finish();
}

// [bounces]
void read_bounces(reader& r, config& c) {
  auto s = r.open("bounces");
  auto& b = c.bounces;
  s.string("rules_file", b.rules_file);
  s.string_list("suppress_categories", b.suppress_categories);
  s.string_list("retry_5xx_categories", b.retry_5xx_categories);
  s.string_list("streak_categories", b.streak_categories);
  for (auto* list : {&b.suppress_categories, &b.retry_5xx_categories, &b.streak_categories}) {
    const char* key = list == &b.suppress_categories     ? "suppress_categories"
                      : list == &b.retry_5xx_categories ? "retry_5xx_categories"
                                                        : "streak_categories";
    for (const auto& name : *list)
      if (name == "none" || std::find(bounce_category_names.begin(), bounce_category_names.end(),
                                      name) == bounce_category_names.end())
        s.problem(key, "\"" + name + "\" is not a bounce category (see docs/bounces.md)");
  }
  s.integer("soft_bounce_streak", b.soft_bounce_streak, 0, 1000);
  s.duration("soft_bounce_window", b.soft_bounce_window, 1min, 365 * 24h);
  s.duration("soft_bounce_suppress_for", b.soft_bounce_suppress_for, 1min, 3650 * 24h);
  s.string("verp_domain", b.verp_domain, 253);
  for (auto& ch : b.verp_domain) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  s.string("secret_file", b.secret_file);
  std::string listen;
  s.string("listen", listen, 300);
  if (!listen.empty()) {
    auto p = parse_listen_address(listen);
    if (!p) {
      s.problem("listen", p.error());
    } else {
      b.listen = *p;
      b.listen_enabled = true;
    }
  }
  s.string_list("accept_domains", b.accept_domains);
  for (auto& d : b.accept_domains)
    for (auto& ch : d) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  s.string("hostname", b.hostname, 253);
  s.size("max_message_bytes", b.max_message_bytes, 1 * kib, 1 * gib);
  s.integer("max_connections", b.max_connections, 1, 100'000);
  s.integer("max_connections_per_client", b.max_connections_per_client, 0, 100'000);
  s.network_list("trusted_clients", b.trusted_clients);
  s.integer("max_recipients", b.max_recipients, 1, 10'000);
  s.rate_value("max_rate", b.max_rate);
  s.duration("command_timeout", b.command_timeout, 1s, 1h);
  s.string("unsubscribe_base_url", b.unsubscribe_base_url, 2000);
  while (!b.unsubscribe_base_url.empty() && b.unsubscribe_base_url.back() == '/')
    b.unsubscribe_base_url.pop_back();
  if (!b.unsubscribe_base_url.empty() && b.unsubscribe_base_url.rfind("https://", 0) != 0 &&
      b.unsubscribe_base_url.rfind("http://", 0) != 0)
    s.problem("unsubscribe_base_url", "must start with https:// (or http://)");
  if ((!b.verp_domain.empty() || !b.unsubscribe_base_url.empty()) && b.secret_file.empty())
    s.problem(b.verp_domain.empty() ? "unsubscribe_base_url" : "verp_domain",
              "needs secret_file: the key that signs VERP tokens and unsubscribe links");
  if (b.listen_enabled && b.verp_domain.empty() && b.accept_domains.empty())
    s.problem("listen", "the listener needs verp_domain or accept_domains to accept mail for");
  s.finish();
}

// [submission_smtp]
void read_submission_smtp(reader& r, config& c) {
  auto s = r.open("submission_smtp");
  auto& m = c.submission_smtp;
  for (auto [key, out, enabled] : {std::tuple{"listen", &m.listen, &m.listen_enabled},
                                   std::tuple{"tls_listen", &m.tls_listen, &m.tls_listen_enabled}}) {
    std::string text;
    s.string(key, text, 300);
    if (text.empty()) continue;
    auto p = parse_listen_address(text);
    if (!p) {
      s.problem(key, p.error());
    } else {
      *out = *p;
      *enabled = true;
    }
  }
  s.string("tls_cert_file", m.tls_cert_file);
  s.string("tls_key_file", m.tls_key_file);
  s.string("hostname", m.hostname, 253);
  s.integer("max_connections", m.max_connections, 1, 100'000);
  s.integer("max_connections_per_client", m.max_connections_per_client, 0, 100'000);
  s.network_list("trusted_clients", m.trusted_clients);
  s.rate_value("max_rate", m.max_rate);
  s.duration("command_timeout", m.command_timeout, 1s, 1h);
  s.integer("max_auth_failures", m.max_auth_failures, 1, 1000);
  if ((m.listen_enabled || m.tls_listen_enabled) && (m.tls_cert_file.empty() || m.tls_key_file.empty()))
    s.problem(m.tls_cert_file.empty() ? "tls_cert_file" : "tls_key_file",
              "required with listen or tls_listen: API keys are only taken over TLS");
  s.finish();
}

// [cluster]
void read_cluster(reader& r, config& c) {
  auto s = r.open("cluster");
  auto& k = c.cluster;
  s.boolean("enabled", k.enabled);
  s.string("node_name", k.node_name, 64);
  s.listen("listen", k.listen);
  s.string("advertise", k.advertise, 300);
  s.duration("lease", k.lease, 1s, 10min);
  s.duration("renew_interval", k.renew_interval, 100ms, 1min);
  s.duration("safe_margin", k.safe_margin, 100ms, 5min);
  s.integer("partitions", k.partitions, 1, 65536);
  s.size("max_claims_per_round", k.max_claims_per_round, 1, 65536);
  s.size("max_releases_per_round", k.max_releases_per_round, 1, 65536);
  s.duration("repair_interval", k.repair_interval, 100ms, 1h);
  s.duration("drain_timeout", k.drain_timeout, 0ms, 1h);
  s.string("tls_cert_file", k.tls_cert_file);
  s.string("tls_key_file", k.tls_key_file);
  s.string("tls_ca_file", k.tls_ca_file);
  s.boolean("insecure_private_network", k.insecure_private_network);
  if (k.enabled) {
    if (k.node_name.empty())
      s.problem("node_name", "required with enabled = true: a name unique in the cluster");
    for (char ch : k.node_name)
      if (!std::isalnum(static_cast<unsigned char>(ch)) && ch != '-' && ch != '_' && ch != '.') {
        s.problem("node_name", "letters, digits, '-', '_' and '.' only");
        break;
      }
    auto url = c.storage_url();
    if (url.rfind("postgresql://", 0) != 0 && url.rfind("postgres://", 0) != 0)
      s.problem("enabled", "a cluster needs the PostgreSQL store: set storage.url to "
                           "postgresql://... (this node uses " + url + ")");
    if (k.renew_interval * 2 > k.lease)
      s.problem("renew_interval", "at most half of lease, so that one late renewal does not lose it");
    if (k.safe_margin + k.renew_interval >= k.lease)
      s.problem("safe_margin", "safe_margin + renew_interval must be less than lease");
    bool tls = !k.tls_cert_file.empty() || !k.tls_key_file.empty() || !k.tls_ca_file.empty();
    if (tls && (k.tls_cert_file.empty() || k.tls_key_file.empty() || k.tls_ca_file.empty()))
      s.problem("tls_ca_file", "mutual TLS needs tls_cert_file, tls_key_file and tls_ca_file");
    if (!tls && !k.insecure_private_network)
      s.problem("tls_cert_file", "node links carry mail: set tls_cert_file, tls_key_file and "
                                 "tls_ca_file, or insecure_private_network = true on a trusted "
                                 "network");
    for (const auto& src : c.egress.sources)
      if (src.node.empty() && !src.warmup.empty())
        s.problem("enabled", "egress source \"" + src.name + "\" warms up: give it the node that has its "
                             "address (node = \"...\"), or every node would count its budget");
    if (k.advertise.empty())
      k.advertise = k.listen.to_string();
    else if (auto a = parse_listen_address(k.advertise); !a || a->port == 0)
      s.problem("advertise", "host:port that the other nodes can connect to");
  } else {
    for (const auto& src : c.egress.sources)
      if (!src.node.empty()) {
        s.problem("enabled", "egress source \"" + src.name + "\" names node \"" + src.node +
                                 "\": sources on other nodes need a cluster (enabled = true)");
        break;
      }
  }
  s.finish();
}

// [debug]
// [queue]
void read_queue(reader& r, config& c) {
  auto s = r.open("queue");
  s.duration("horizon", c.queue.horizon, 1s, 7 * 24h);
  s.size("max_in_memory_per_domain", c.queue.max_in_memory_per_domain, 100, 100'000'000);
  s.size("page", c.queue.page, 10, 100'000);
  s.finish();
}

void read_debug(reader& r, config& c) {
  auto s = r.open("debug");
  s.boolean("fault_injection", c.debug.fault_injection);
  s.finish();
}

// Every section in turn, then the keys and sections nobody knows.
void read_all(reader& r, config& c) {
  read_log(r, c);
  read_http(r, c);
  read_io(r, c);
  read_dns(r, c);
  read_delivery(r, c);
  read_egress(r, c);
  read_shaping(r, c);
  read_queue(r, c);
  read_events(r, c);
  read_webhooks(r, c);
  read_admin(r, c);
  read_storage(r, c);
  read_submission(r, c);
  read_tenants(r, c);
  read_reputation(r, c);
  read_tracking(r, c);
  read_bootstrap(r, c);
  read_actors(r, c);
  read_dkim(r, c);
  read_domains(r, c);
  read_mta_sts(r, c);
  read_bounces(r, c);
  read_submission_smtp(r, c);
  read_cluster(r, c);
  read_debug(r, c);
  r.finish();
}

}  // namespace

config_result load_config_text(std::string_view toml_text, const std::string& source_name) {
  config_result result;
  result.value.source = source_name;
  toml::table root;
  try {
    root = toml::parse(toml_text, source_name);
  } catch (const toml::parse_error& e) {
    config_error err;
    err.file = source_name;
    err.line = static_cast<int>(e.source().begin.line);
    err.column = static_cast<int>(e.source().begin.column);
    err.reason = "TOML syntax error: " + std::string(e.description());
    result.errors.push_back(std::move(err));
    return result;
  }
  reader r(root, source_name);
  read_all(r, result.value);
  result.errors = std::move(r.errors);
  // In file order, as an editor would walk them.
  std::stable_sort(result.errors.begin(), result.errors.end(), [](const auto& a, const auto& b) {
    return std::tie(a.line, a.column) < std::tie(b.line, b.column);
  });
  return result;
}

std::vector<std::string> config_keys() {
  std::set<std::string> keys;
  asked_keys = &keys;
  toml::table empty;
  reader r(empty, "(keys)");
  config c;
  read_all(r, c);
  asked_keys = nullptr;
  return {keys.begin(), keys.end()};
}

config_result load_config(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    config_result result;
    result.errors.push_back({path, 0, 0, "", "cannot open the file: " +
                                                 std::string(std::strerror(errno))});
    return result;
  }
  std::stringstream text;
  text << in.rdbuf();
  return load_config_text(text.str(), path);
}

}  // namespace petrel
