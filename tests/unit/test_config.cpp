// Configuration loading: defaults, values, and errors that name file, line, key and reason.
#include <catch2/catch.hpp>

#include <fstream>
#include <regex>
#include <set>
#include <sstream>

#include "actors/services.hpp"
#include "config/config.hpp"
#include "config/config_keys.hpp"

using namespace petrel;
using namespace std::chrono_literals;

TEST_CASE("an empty configuration gives every default") {
  auto r = load_config_text("", "empty.toml");
  REQUIRE(r.errors.empty());
  CHECK(r.value.http.listen.port == 8080);
  CHECK(r.value.admin.listen.host == "127.0.0.1");
  CHECK(r.value.storage.sqlite_synchronous == "full");
  CHECK(r.value.storage_url() == "sqlite:./data/petrel.db");
  CHECK(r.value.tenants.default_rate.per_second == Approx(100));
}

TEST_CASE("values of every type are read") {
  auto r = load_config_text(R"(
[log]
level = "debug"
format = "json"
[http]
listen = "0.0.0.0:9000"
max_body_bytes = "1MiB"
read_timeout = "5s"
[io]
threads = 2
[storage]
data_dir = "/var/lib/petrel"
batch_max_operations = 64
commit_interval = "5ms"
[tenants]
default_rate = "600/min"
default_burst = 5
[bootstrap]
create_tenant = false
)",
                            "full.toml");
  REQUIRE(r.errors.empty());
  const auto& c = r.value;
  CHECK(c.log.level == "debug");
  CHECK(c.log.format == "json");
  CHECK(c.http.listen.host == "0.0.0.0");
  CHECK(c.http.listen.port == 9000);
  CHECK(c.http.max_body_bytes == 1024 * 1024);
  CHECK(c.http.read_timeout == 5s);
  CHECK(c.io.threads == 2);
  CHECK(c.storage_url() == "sqlite:/var/lib/petrel/petrel.db");
  CHECK(c.storage.batch_max_operations == 64);
  CHECK(c.storage.commit_interval == 5ms);
  CHECK(c.tenants.default_rate.per_second == Approx(10));
  CHECK(c.tenants.default_burst == 5);
  CHECK_FALSE(c.bootstrap.create_tenant);
}

TEST_CASE("errors name the file, line, column, key and reason") {
  auto r = load_config_text("[io]\nthreads = 0\n[http]\nlisten = 80\n", "bad.toml");
  REQUIRE(r.errors.size() == 2);
  CHECK(r.errors[0].to_string() == "bad.toml:2:11: io.threads: must be between 1 and 64, got 0");
  CHECK(r.errors[1].file == "bad.toml");
  CHECK(r.errors[1].line == 4);
  CHECK(r.errors[1].key == "http.listen");
  CHECK_THAT(r.errors[1].reason, Catch::Contains("expected a string"));
}

TEST_CASE("unknown keys and sections are errors, so typos do not pass silently") {
  auto r = load_config_text("[http]\nlisen = \"127.0.0.1:1\"\n[htp]\nx = 1\n", "typo.toml");
  REQUIRE(r.errors.size() == 2);
  CHECK(r.errors[0].key == "http.lisen");
  CHECK(r.errors[0].reason == "unknown key");
  CHECK(r.errors[1].key == "htp");
}

TEST_CASE("wrong types, ranges and choices are reported") {
  auto r = load_config_text(R"(
[log]
level = "loud"
[http]
read_timeout = 30
max_body_bytes = "lots"
[storage]
sqlite_synchronous = "off"
url = "mysql://x"
[tenants]
default_rate = "fast"
[bootstrap]
create_tenant = "yes"
)",
                            "types.toml");
  std::vector<std::string> keys;
  for (const auto& e : r.errors) keys.push_back(e.key);
  CHECK(keys == std::vector<std::string>{"log.level", "http.read_timeout", "http.max_body_bytes",
                                         "storage.sqlite_synchronous", "storage.url",
                                         "tenants.default_rate", "bootstrap.create_tenant"});
  CHECK_THAT(r.errors[0].reason, Catch::Contains("not one of"));
}

TEST_CASE("a TOML syntax error gives its position") {
  auto r = load_config_text("[http]\nlisten = \"unterminated\n", "syntax.toml");
  REQUIRE(r.errors.size() == 1);
  CHECK(r.errors[0].line == 2);
  CHECK_THAT(r.errors[0].reason, Catch::StartsWith("TOML syntax error"));
}

TEST_CASE("a missing file is an error naming it") {
  auto r = load_config("/nonexistent/petrel.toml");
  REQUIRE(r.errors.size() == 1);
  CHECK_THAT(r.errors[0].to_string(), Catch::StartsWith("/nonexistent/petrel.toml: cannot open"));
}

TEST_CASE("the shipped example configuration is valid") {
  auto r = load_config(PETREL_SOURCE_DIR "/config/petrel.toml");
  for (const auto& e : r.errors) FAIL(e.to_string());
  CHECK(r.errors.empty());
  CHECK(r.value.delivery.routes.empty());  // to the MX hosts
}

TEST_CASE("the README's try-it-locally configuration relays everything to the local sink") {
  auto r = load_config(PETREL_SOURCE_DIR "/config/local-sink.toml");
  for (const auto& e : r.errors) FAIL(e.to_string());
  CHECK(r.value.delivery.relay == "127.0.0.1:2525");
  REQUIRE(r.value.delivery.routes.size() == 1);
  CHECK(r.value.delivery.routes[0].domains.empty());
  CHECK(r.value.delivery.routes[0].tenants.empty());
  CHECK(r.value.http.listen.port == 8080);  // as config/petrel.toml
}

TEST_CASE("the bounces section: listener, VERP, categories and what they need") {
  auto ok = load_config_text(R"(
[bounces]
verp_domain = "Bounces.Example.com"
secret_file = "/etc/petrel/bounce.key"
listen = "0.0.0.0:25"
accept_domains = ["FBL.example.com"]
suppress_categories = ["invalid_recipient"]
soft_bounce_streak = 3
soft_bounce_window = "3d"
unsubscribe_base_url = "https://mail.example.com/"
)",
                             "b.toml");
  REQUIRE(ok.errors.empty());
  const auto& b = ok.value.bounces;
  CHECK(b.verp_domain == "bounces.example.com");
  CHECK(b.listen_enabled);
  CHECK(b.listen.port == 25);
  CHECK(b.accept_domains == std::vector<std::string>{"fbl.example.com"});
  CHECK(b.soft_bounce_window == 72h);
  CHECK(b.unsubscribe_base_url == "https://mail.example.com");
  CHECK_FALSE(load_config_text("", "empty.toml").value.bounces.listen_enabled);

  auto bad = load_config_text(R"(
[bounces]
verp_domain = "bounces.example.com"
listen = "nowhere"
suppress_categories = ["invalid_recipient", "grumpy"]
unsubscribe_base_url = "ftp://x"
)",
                              "bad.toml");
  std::string all;
  for (const auto& e : bad.errors) all += e.to_string() + "\n";
  CHECK_THAT(all, Catch::Contains("bounces.listen"));
  CHECK_THAT(all, Catch::Contains("\"grumpy\" is not a bounce category"));
  CHECK_THAT(all, Catch::Contains("bounces.unsubscribe_base_url"));
  CHECK_THAT(all, Catch::Contains("needs secret_file"));

  auto lonely = load_config_text("[bounces]\nlisten = \"127.0.0.1:2525\"\n", "l.toml");
  REQUIRE(lonely.errors.size() == 1);
  CHECK_THAT(lonely.errors[0].reason, Catch::Contains("verp_domain or accept_domains"));
}

TEST_CASE("warm-up schedules: the source's and per site pattern, each in day order") {
  auto ok = load_config_text(R"([[egress.sources]]
name = "ip1"
address = "192.0.2.1"
warmup = [{day = 1, per_day = 100}, {day = 5, per_day = 1000},
          {site = "*.google.com", day = 1, per_day = 10}, {site = "*.google.com", day = 3, per_day = 50}]
)", "warm.toml");
  REQUIRE(ok.errors.empty());
  const auto& steps = ok.value.egress.sources.at(0).warmup;
  REQUIRE(steps.size() == 4);
  CHECK(steps[2].site == "*.google.com");
  CHECK(steps[3].per_day == 50);
  auto bad = load_config_text(R"([[egress.sources]]
name = "ip1"
warmup = [{site = "*.google.com", day = 3, per_day = 50}, {site = "*.google.com", day = 2, per_day = 10}]
)", "warm.toml");
  REQUIRE(bad.errors.size() == 1);
  CHECK_THAT(bad.errors[0].reason, Catch::Contains("increasing day order"));
}

TEST_CASE("connection limits per client: trusted networks are checked addresses") {
  auto ok = load_config_text(R"(
[http]
max_connections_per_client = 16
trusted_clients = ["10.0.0.0/8", "::1", "192.0.2.7"]
[bounces]
max_connections_per_client = 3
[delivery]
allow_private_destinations = true
)",
                             "limits.toml");
  REQUIRE(ok.errors.empty());
  CHECK(ok.value.http.max_connections_per_client == 16);
  CHECK(ok.value.http.trusted_clients.size() == 3);
  CHECK(ok.value.bounces.max_connections_per_client == 3);
  CHECK(ok.value.delivery.allow_private_destinations);
  CHECK_FALSE(config{}.delivery.allow_private_destinations);  // refused unless asked for
  auto bad = load_config_text("[http]\ntrusted_clients = [\"10.0.0.0/40\", \"lb.example\"]\n", "bad.toml");
  REQUIRE(bad.errors.size() == 1);
  CHECK(bad.errors[0].key == "http.trusted_clients");
  CHECK_THAT(bad.errors[0].reason, Catch::Contains("prefix length"));
}

TEST_CASE("the cluster section: PostgreSQL, a node name, TLS or an explicit insecure network") {
  auto ok = load_config_text(R"(
[storage]
url = "postgresql://petrel@db:5432/petrel"
[cluster]
enabled = true
node_name = "mta-1"
listen = "10.0.0.11:7946"
lease = "4s"
renew_interval = "1s"
safe_margin = "1s"
partitions = 128
tls_cert_file = "/etc/petrel/node.pem"
tls_key_file = "/etc/petrel/node.key"
tls_ca_file = "/etc/petrel/ca.pem"
)",
                             "c.toml");
  for (const auto& e : ok.errors) FAIL(e.to_string());
  const auto& k = ok.value.cluster;
  CHECK(k.enabled);
  CHECK(k.partitions == 128);
  CHECK(k.lease == 4s);
  CHECK(k.advertise == "10.0.0.11:7946");  // defaults to listen
  CHECK_FALSE(load_config_text("", "empty.toml").value.cluster.enabled);

  auto errors_of = [](const char* text) {
    std::string all;
    for (const auto& e : load_config_text(text, "bad.toml").errors) all += e.to_string() + "\n";
    return all;
  };
  // SQLite (the default store) cannot carry a cluster.
  CHECK_THAT(errors_of("[cluster]\nenabled = true\nnode_name = \"a\"\ninsecure_private_network = true\n"),
             Catch::Contains("cluster.enabled: a cluster needs the PostgreSQL store"));
  auto pg = std::string("[storage]\nurl = \"postgresql://x@h/db\"\n[cluster]\nenabled = true\n");
  CHECK_THAT(errors_of((pg + "insecure_private_network = true\n").c_str()),
             Catch::Contains("cluster.node_name: required"));
  CHECK_THAT(errors_of((pg + "node_name = \"a b\"\ninsecure_private_network = true\n").c_str()),
             Catch::Contains("letters, digits"));
  CHECK_THAT(errors_of((pg + "node_name = \"a\"\n").c_str()),
             Catch::Contains("cluster.tls_cert_file: node links carry mail"));
  CHECK_THAT(errors_of((pg + "node_name = \"a\"\ntls_cert_file = \"/x.pem\"\n").c_str()),
             Catch::Contains("mutual TLS needs"));
  CHECK_THAT(errors_of((pg + "node_name = \"a\"\ninsecure_private_network = true\nlease = \"2s\"\n"
                             "renew_interval = \"1500ms\"\n").c_str()),
             Catch::Contains("at most half of lease"));
  CHECK_THAT(errors_of((pg + "node_name = \"a\"\ninsecure_private_network = true\nlease = \"3s\"\n"
                             "renew_interval = \"1s\"\nsafe_margin = \"2s\"\n").c_str()),
             Catch::Contains("safe_margin + renew_interval must be less than lease"));
  CHECK_THAT(errors_of((pg + "node_name = \"a\"\ninsecure_private_network = true\nadvertise = \"nowhere\"\n").c_str()),
             Catch::Contains("cluster.advertise"));
  // A source that warms up is counted by one node: it must say which.
  CHECK_THAT(errors_of((pg + "node_name = \"a\"\ninsecure_private_network = true\n"
                             "[[egress.sources]]\nname = \"ip\"\nwarmup = [{day = 1, per_day = 100}]\n").c_str()),
             Catch::Contains("egress source \"ip\" warms up"));
}

TEST_CASE("egress sources on cluster nodes: each node sends from its own, pools see them all") {
  auto loaded = load_config_text(R"(
[storage]
url = "postgresql://petrel@db:5432/petrel"
[cluster]
enabled = true
node_name = "mta-1"
insecure_private_network = true
[[egress.sources]]
name = "ip1"
address = "192.0.2.1"
node = "mta-1"
[[egress.sources]]
name = "ip2"
address = "192.0.2.2"
node = "mta-2"
[[egress.sources]]
name = "any"
[[egress.pools]]
name = "spread"
sources = [{source = "ip1", weight = 1}, {source = "ip2", weight = 3}]
)",
                                 "c.toml");
  for (const auto& e : loaded.errors) FAIL(e.to_string());
  const auto& cfg = loaded.value;
  std::vector<std::string> local;
  for (const auto& s : egress_sources_from(cfg, "host.example")) local.push_back(s.name);
  CHECK(local == std::vector<std::string>{"ip1", "any"});  // not mta-2's
  CHECK(egress_source_names(cfg) == std::vector<std::string>{"ip1", "ip2", "any"});
  CHECK(remote_node_of(cfg.egress, "mta-1", "ip2") == "mta-2");
  CHECK(remote_node_of(cfg.egress, "mta-1", "ip1").empty());   // this node's
  CHECK(remote_node_of(cfg.egress, "mta-1", "any").empty());   // every node's
  CHECK(remote_node_of(cfg.egress, "mta-1", "nope").empty());  // unknown

  // A node with none of its own sends only through the others' (no implicit default).
  auto other = cfg;
  other.cluster.node_name = "mta-3";
  other.egress.sources.pop_back();
  CHECK(egress_sources_from(other, "host.example").empty());
  // Without any source configured, the implicit default remains.
  CHECK(egress_sources_from(config{}, "host.example").size() == 1);

  auto errors_of = [](const std::string& text) {
    std::string all;
    for (const auto& e : load_config_text(text, "bad.toml").errors) all += e.to_string() + "\n";
    return all;
  };
  // A node name on a source needs a cluster, and is a node name.
  CHECK_THAT(errors_of("[[egress.sources]]\nname = \"ip2\"\nnode = \"mta-2\"\n"),
             Catch::Contains("cluster.enabled: egress source \"ip2\" names node \"mta-2\""));
  CHECK_THAT(errors_of("[[egress.sources]]\nname = \"ip2\"\nnode = \"mta 2\"\n"),
             Catch::Contains("letters, digits"));
}

TEST_CASE("relays and the routing table: by domain, by tenant, fixed hosts, the shorthand") {
  auto loaded = load_config_text(R"(
[delivery]
relay = "127.0.0.1:2525"
[[delivery.relays]]
name = "office"
host = "smtp.office.example:587"
tls = "required"
username = "petrel"
password_file = "/etc/petrel/office.secret"
[[delivery.routes]]
domains = ["Corp.Example", "*.corp.example"]
relay = "office"
[[delivery.routes]]
domains = ["partner.example"]
mx = ["10.0.0.5:2525", "backup.partner.example"]
[[delivery.routes]]
tenants = ["acme"]
relay = "office"
)",
                                 "r.toml");
  for (const auto& e : loaded.errors) FAIL(e.to_string());
  const auto& d = loaded.value.delivery;
  REQUIRE(d.relays.size() == 2);
  CHECK(d.relays[0].host == "smtp.office.example");
  CHECK(d.relays[0].port == 587);
  CHECK(d.relays[1].name == "relay");  // the shorthand
  CHECK(d.relays[1].port == 2525);
  REQUIRE(d.routes.size() == 4);       // the shorthand's catch-all comes last
  CHECK(d.routes[0].domains[0] == "corp.example");
  CHECK(d.routes[1].mx.size() == 2);
  CHECK(d.routes[1].mx[0].port == 2525);
  CHECK(d.routes[1].mx[1].port == 0);  // the delivery port
  CHECK(d.routes[3].relay == "relay");
  CHECK(d.routes[3].domains.empty());

  routing_table table(d, {"secret", ""});
  CHECK(table.key_for("corp.example", "01T", "someone") == "#0");
  CHECK(table.key_for("a.corp.example", "01T", "acme") == "#0");  // the first match wins
  CHECK(table.key_for("partner.example", "01T", "") == "#1");
  CHECK(table.key_for("gmail.com", "01T", "acme") == "#2");        // by tenant name
  CHECK(table.key_for("gmail.com", "01T", "other") == "#3");       // the catch-all relay
  auto office = table.resolve_key("#0");
  REQUIRE(office);
  REQUIRE(office->relay);
  CHECK(office->relay->password == "secret");
  CHECK(office->relay->tls == tls_mode::required);
  CHECK(office->site == "relay:office");
  CHECK(office->hosts.at(0).host == "smtp.office.example");
  auto partner = table.resolve_key("#1");
  REQUIRE(partner);
  CHECK_FALSE(partner->relay);
  CHECK(partner->hosts.size() == 2);
  CHECK_FALSE(table.resolve_key("#9"));
  CHECK_FALSE(table.resolve_key("gmail.com"));
  CHECK(routing_table{}.key_for("gmail.com", "01T", "acme").empty());  // no table: the MX

  auto errors_of = [](const std::string& text) {
    std::string all;
    for (const auto& e : load_config_text(text, "bad.toml").errors) all += e.to_string() + "\n";
    return all;
  };
  CHECK_THAT(errors_of("[[delivery.routes]]\ndomains = [\"x.example\"]\nrelay = \"nope\"\n"),
             Catch::Contains("no [[delivery.relays]] is named \"nope\""));
  CHECK_THAT(errors_of("[[delivery.routes]]\ndomains = [\"x.example\"]\n"),
             Catch::Contains("give either relay"));
  CHECK_THAT(errors_of("[[delivery.relays]]\nname = \"r\"\nhost = \"a:b:c:99999\"\n[[delivery.relays]]\nname = \"r\"\nhost = \"x\"\n"),
             Catch::Contains("\"r\" is used twice"));
  CHECK_THAT(errors_of("[[delivery.relays]]\nname = \"r\"\nhost = \"smtp.example.net\"\nusername = \"u\"\npassword_file = \"/p\"\n"),
             Catch::Contains("SMTP AUTH sends the password"));
  // To a loopback address AUTH may go in plain text (a local relay).
  CHECK(errors_of("[[delivery.relays]]\nname = \"r\"\nhost = \"127.0.0.1:2525\"\nusername = \"u\"\npassword_file = \"/p\"\n").empty());
  CHECK_THAT(errors_of("[[delivery.relays]]\nname = \"r\"\nhost = \"x\"\nusername = \"u\"\ntls = \"required\"\n"),
             Catch::Contains("delivery.relays[0].password_file: required with username"));
  CHECK_THAT(errors_of("[delivery]\nrelay = \"host:0\"\n"), Catch::Contains("delivery.relay: port must be"));
}

TEST_CASE("the SMTP submission listener needs a certificate and its key") {
  auto off = load_config_text("", "off.toml");
  REQUIRE(off.errors.empty());
  CHECK_FALSE(off.value.submission_smtp.listen_enabled);
  auto missing = load_config_text("[submission_smtp]\nlisten = \"127.0.0.1:587\"\n", "smtp.toml");
  REQUIRE(missing.errors.size() == 1);
  CHECK(missing.errors[0].key == "submission_smtp.tls_cert_file");
  auto on = load_config_text(
      "[submission_smtp]\nlisten = \"127.0.0.1:587\"\ntls_listen = \"127.0.0.1:465\"\n"
      "tls_cert_file = \"c.pem\"\ntls_key_file = \"k.pem\"\nmax_auth_failures = 3\n", "smtp.toml");
  REQUIRE(on.errors.empty());
  CHECK(on.value.submission_smtp.listen.port == 587);
  CHECK(on.value.submission_smtp.tls_listen_enabled);
  CHECK(on.value.submission_smtp.max_auth_failures == 3);
}

TEST_CASE("the actor scheduler is work sharing unless stealing is asked for") {
  auto defaults = load_config_text("", "empty.toml");
  REQUIRE(defaults.errors.empty());
  CHECK(defaults.value.actors.scheduler == "sharing");
  auto stealing = load_config_text("[actors]\nscheduler = \"stealing\"\n", "s.toml");
  REQUIRE(stealing.errors.empty());
  CHECK(stealing.value.actors.scheduler == "stealing");
  auto caf_sharing = load_config_text("[actors]\nscheduler = \"caf-sharing\"\n", "c.toml");
  REQUIRE(caf_sharing.errors.empty());
  CHECK(caf_sharing.value.actors.scheduler == "caf-sharing");
  auto bad = load_config_text("[actors]\nscheduler = \"fastest\"\n", "b.toml");
  REQUIRE_FALSE(bad.errors.empty());
  CHECK(bad.errors.front().key == "actors.scheduler");
}

namespace {

// "section.key" of every key a text names: in config/petrel.toml lines "key = ..." or
// "# key = ..." under "[section]" (or "# [section]"); in docs/configuration.md table rows
// "| key |" or "| key_a, key_b |" under a "## [section]" heading.
std::set<std::string> keys_named(const std::string& path, bool markdown) {
  std::ifstream in(path);
  REQUIRE(in);
  std::set<std::string> out;
  std::string section, line;
  static const std::regex toml_section(R"(^\s*#?\s*\[([a-z_]+)\])");
  static const std::regex toml_key(R"(^\s*#?\s*([a-z_0-9]+)\s*=)");
  static const std::regex md_section(R"(^##\s.*\[([a-z_]+)\])");
  static const std::regex md_row(R"(^\|\s*([a-z_0-9, ]+?)\s*\|)");
  // Arrays of tables and keys named in prose: "[[delivery.sites]]", "`delivery.relay`".
  static const std::regex mention(R"((?:\[\[|`)([a-z_]+\.[a-z_]+)(?:\]\]|`))");
  bool in_table_of_section = false;
  std::smatch m;
  while (std::getline(in, line)) {
    for (auto it = std::sregex_iterator(line.begin(), line.end(), mention); it != std::sregex_iterator(); ++it)
      out.insert((*it)[1].str());
    if (markdown) {
      if (std::regex_search(line, m, md_section)) {
        section = m[1];
        in_table_of_section = true;
      } else if (line.rfind("### ", 0) == 0) {
        in_table_of_section = false;  // tables of sub-tables ([[delivery.relays]] and so on)
      } else if (in_table_of_section && std::regex_search(line, m, md_row)) {
        std::stringstream names(m[1].str());
        std::string name;
        while (std::getline(names, name, ',')) {
          name.erase(0, name.find_first_not_of(' '));
          if (!name.empty() && name != "key") out.insert(section + "." + name);
        }
      }
    } else if (line.find("[[") != std::string::npos) {
      section = "(array)";
    } else if (std::regex_search(line, m, toml_section)) {
      section = m[1];
    } else if (std::regex_search(line, m, toml_key)) {
      out.insert(section + "." + m[1].str());
    }
  }
  return out;
}

}  // namespace

TEST_CASE("every configuration key is in config/petrel.toml and in docs/configuration.md") {
  auto example = keys_named(PETREL_SOURCE_DIR "/config/petrel.toml", false);
  auto documented = keys_named(PETREL_SOURCE_DIR "/docs/configuration.md", true);
  auto keys = config_keys();
  CHECK(keys.size() > 150);
  for (const auto& key : keys) {
    INFO(key);
    CHECK(example.count(key) == 1);
    CHECK(documented.count(key) == 1);
  }
}
