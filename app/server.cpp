// Wiring of a Petrel node (see server.hpp). Startup order: logging, store (open + migrate,
// fail fast), admin token, actor system and root supervisor, first tenant, HTTP listeners.
// Shutdown order: listeners stop accepting and drain, then the actors stop with the store
// last (its pending commits finish), then the I/O threads.
#include "app/server.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <caf/all.hpp>
#include <caf/io/all.hpp>
#include <caf/openssl/all.hpp>
#include <openssl/ssl.h>
#include <spdlog/spdlog.h>

#include <csignal>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <future>
#include <optional>
#include <thread>

#include "actors/actor_support.hpp"
#include "actors/api_key.hpp"
#include "actors/metrics.hpp"
#include "net/mail/recipient_token.hpp"
#include "actors/policy/response_rules.hpp"
#include "actors/delivery_log.hpp"
#include "actors/services.hpp"
#include "app/actor_bridge.hpp"
#include "actors/scheduler_policy.hpp"
#include "config/shipped_rules.hpp"
#include "net/mail/bounce.hpp"
#include "net/smtp_server.hpp"
#include "app/http_api.hpp"
#include "app/listener_support.hpp"
#include "app/logging.hpp"
#include "app/reload.hpp"
#include "app/submission_request.hpp"
#include "net/dns.hpp"
#include "net/http.hpp"
#include "net/mail/mime_message.hpp"
#include "net/secret_box.hpp"
#include "net/smtp_client.hpp"
#include "net/tls_server.hpp"
#include "storage/atomic_file.hpp"
#include "storage/pg_cluster.hpp"

namespace petrel {

namespace {

// The node_state entry written once the first start has finished (token file written,
// first tenant created, listeners up).
constexpr const char* first_start_key = "first_start_completed_at";

// The admin token: from the config, else from the token file, created on first start. The file
// is written atomically, so a crash leaves it whole or absent; an empty file (left by an older
// version's crash, or a disk fault) is taken as absent only if the node never finished its
// first start, since otherwise clients may hold the lost token.
std::string load_admin_token(const config& cfg, store& db) {
  if (!cfg.admin.token.empty()) return cfg.admin.token;
  auto path = cfg.admin_token_path();
  std::ifstream in(path);
  if (in) {
    std::string token;
    std::getline(in, token);
    while (!token.empty() && std::isspace(static_cast<unsigned char>(token.back()))) token.pop_back();
    if (!token.empty() || db.node_value(first_start_key)) {
      if (token.size() < 16)
        throw std::runtime_error(
            "the admin token file " + path + " holds no token of 16+ characters" +
            (token.empty() ? " (it is empty, and this node finished its first start before: a "
                             "crash or disk fault emptied it; restore it from a backup, or delete "
                             "it to have a new token made and give that to the admin clients)"
                           : ""));
      return token;
    }
    spdlog::warn("admin.token_file_empty file={} action=recreate reason=\"first start never finished\"", path);
  }
  auto token = random_hex(32);
  write_file_atomically(path, token + "\n", 0600);
  spdlog::info("admin.token_created file={}", path);
  return token;
}

// The key of tracking tokens: tracking.secret_file, else <data_dir>/tracking.key, made on the
// first start with tracking on. (Every node of a cluster needs the same one: set secret_file.)
std::string load_tracking_secret(const config& cfg) {
  if (!cfg.tracking.secret_file.empty()) {
    try {
      return read_secret_file(cfg.tracking.secret_file);
    } catch (const std::exception& e) {
      throw std::runtime_error(std::string("tracking.secret_file: ") + e.what());
    }
  }
  auto path = (std::filesystem::path(cfg.storage.data_dir) / "tracking.key").string();
  if (std::filesystem::exists(path)) return read_secret_file(path);
  auto secret = random_hex(32);
  write_file_atomically(path, secret + "\n", 0600);
  spdlog::info("tracking.key_created file={}", path);
  return secret;
}

std::string local_hostname() {
  char name[256] = {};
  if (gethostname(name, sizeof name - 1) != 0 || !name[0]) return "localhost";
  return name;
}

void print_first_tenant(const created_tenant& t, const config& cfg, std::uint16_t api_port) {
  auto listen = cfg.http.listen;
  listen.port = api_port;  // the bound port (the configured one may be 0)
  if (listen.host == "0.0.0.0") listen.host = "127.0.0.1";
  auto url = (cfg.http.tls.enabled() ? "https://" : "http://") + listen.to_string();
  std::printf(
      "\n"
      "  Petrel created the first tenant \"%s\". Its API key (shown only this once):\n"
      "\n"
      "      %s\n"
      "\n"
      "  Submit a message:\n"
      "      curl -s %s/v1/messages -H 'Authorization: Bearer %s' \\\n"
      "           -H 'Content-Type: application/json' \\\n"
      "           -d '{\"from\":\"app@example.com\",\"to\":[\"someone@example.net\"],"
      "\"subject\":\"Hello\",\"text\":\"Hi!\"}'\n"
      "\n"
      "  More keys: petrel tenants keys add %s (the admin token is in %s).\n\n",
      t.tenant.name.c_str(), t.key.api_key.c_str(), url.c_str(), t.key.api_key.c_str(),
      t.tenant.name.c_str(), cfg.admin.token.empty() ? cfg.admin_token_path().c_str() : "the config");
  std::fflush(stdout);
}

// The store, opened and migrated before anything else starts (fail fast), with the admin token.
struct opened_store {
  store_factory open;
  std::unique_ptr<store> first;
  std::string admin_token;
  bool first_start_done = false;
};

// Cluster mode: the partitions exist, and the cluster agrees with this node on their number
// (a domain's partition is a hash modulo that number: every node must use the same).
void check_cluster(const config& cfg) {
  cluster_store cluster(cfg.storage_url());
  auto count = cluster.ensure_partitions(cfg.cluster.partitions);
  if (count != cfg.cluster.partitions)
    throw std::runtime_error("cluster.partitions is " + std::to_string(cfg.cluster.partitions) +
                             " but the cluster in this database has " + std::to_string(count) +
                             " partitions: every node must use the same number");
  for (const auto& m : cluster.members())
    if (m.name == cfg.cluster.node_name && m.lease_left_ms > 0)
      spdlog::warn("cluster.name_in_use node={} lease_left_ms={}: another process with this "
                   "node name may still run; its partitions are renewed by this one from now on",
                   m.name, m.lease_left_ms);
  spdlog::info("cluster.joining node={} advertise={} partitions={}", cfg.cluster.node_name,
               cfg.cluster.advertise, count);
}

// Cluster TLS: the node's certificate, its key and the cluster CA load and match (checked at
// start, since CAF only loads them when the first link is made).
void check_cluster_tls(const cluster_settings& k) {
  if (k.tls_cert_file.empty()) return;
  std::unique_ptr<SSL_CTX, decltype(&SSL_CTX_free)> ctx(SSL_CTX_new(TLS_method()), &SSL_CTX_free);
  if (!ctx) throw std::runtime_error("cluster TLS: cannot create an OpenSSL context");
  if (SSL_CTX_use_certificate_chain_file(ctx.get(), k.tls_cert_file.c_str()) != 1)
    throw std::runtime_error("cluster.tls_cert_file: cannot load a PEM certificate from " + k.tls_cert_file);
  if (SSL_CTX_use_PrivateKey_file(ctx.get(), k.tls_key_file.c_str(), SSL_FILETYPE_PEM) != 1)
    throw std::runtime_error("cluster.tls_key_file: cannot load a PEM private key from " + k.tls_key_file);
  if (SSL_CTX_check_private_key(ctx.get()) != 1)
    throw std::runtime_error("cluster.tls_key_file: the key does not match the certificate in " + k.tls_cert_file);
  if (SSL_CTX_load_verify_locations(ctx.get(), k.tls_ca_file.c_str(), nullptr) != 1)
    throw std::runtime_error("cluster.tls_ca_file: cannot load CA certificates from " + k.tls_ca_file);
}

// Cluster: CAF's middleman carries the node links, with heartbeats so that a hung peer is
// noticed, and TLS with mutual certificate checks unless the network is declared private.
void configure_node_links(caf::actor_system_config& caf_cfg, const cluster_settings& k) {
  caf_cfg.load<caf::io::middleman>();
  caf_cfg.set("middleman.heartbeat-interval", caf::timespan{std::chrono::milliseconds(500)});
  caf_cfg.set("middleman.connection-timeout", caf::timespan{k.lease});
  if (k.tls_cert_file.empty()) return;
  caf_cfg.load<caf::openssl::manager>();
  caf_cfg.openssl_certificate = k.tls_cert_file;
  caf_cfg.openssl_key = k.tls_key_file;
  caf_cfg.openssl_cafile = k.tls_ca_file;
}

// Publishes this node's endpoint on cluster.listen; returns the advertised address (the bound
// port when listen asked for port 0 and advertise was not set).
std::string publish_node_endpoint(caf::actor_system& sys, const node_actor& endpoint, const cluster_settings& k) {
  auto host = k.listen.host;
  auto bound = k.tls_cert_file.empty() ? sys.middleman().publish(endpoint, k.listen.port, host.c_str(), true)
                                       : caf::openssl::publish(endpoint, k.listen.port, host.c_str(), true);
  if (!bound)
    throw std::runtime_error("cluster.listen: cannot listen on " + k.listen.to_string() + ": " + sys.render(bound.error()));
  spdlog::info("cluster.listening address={}:{} tls={}", host, *bound, !k.tls_cert_file.empty());
  if (k.advertise == k.listen.to_string() && k.listen.port == 0) return host + ":" + std::to_string(*bound);
  return k.advertise;
}

opened_store open_node_store(const config& cfg) {
  store_options options;
  options.sqlite_synchronous = cfg.storage.sqlite_synchronous;
  options.busy_timeout_ms = static_cast<int>(cfg.storage.busy_timeout.count());
  auto url = cfg.storage_url();
  opened_store s;
  s.open = [url, options] { return open_store(url, options); };
  s.first = s.open();
  s.first->migrate();
  spdlog::info("store.ready store={} schema_version={}", s.first->describe(), s.first->schema_version());
  s.admin_token = load_admin_token(cfg, *s.first);
  s.first_start_done = s.first->node_value(first_start_key).has_value();
  if (cfg.cluster.enabled) {
    check_cluster_tls(cfg.cluster);
    check_cluster(cfg);
  }
  return s;
}

// What delivery runs on besides the actors: DNS and the TLS contexts on the I/O context.
std::shared_ptr<delivery_runtime> make_delivery_runtime(const config& cfg, boost::asio::io_context& io) {
  auto runtime = std::make_shared<delivery_runtime>();
  runtime->io = &io;
  runtime->hostname = local_hostname();
  dns_settings dns;
  dns.servers = cfg.dns.servers;
  dns.timeout = cfg.dns.timeout;
  dns.tries = cfg.dns.tries;
  dns.ipv6 = cfg.dns.ipv6;
  dns.prefer_ipv6 = cfg.dns.prefer_ipv6;
  dns.dnssec_trusted = cfg.dns.dnssec_trusted;
  dns.require_dnssec = cfg.delivery.dane;
  runtime->dns = std::make_shared<dns_client>(io, dns);
  runtime->tls = make_smtp_tls_context(cfg.delivery.ca_file);
  runtime->https_tls = make_smtp_tls_context(cfg.mta_sts.ca_file);
  runtime->webhook_tls = make_smtp_tls_context(cfg.webhooks.ca_file);
  return runtime;
}

// The actors' view of the configuration (immutable from here on) and the shared components
// the composition root creates (the delivery log; the others start empty).
node_settings node_settings_from(const config& cfg, const delivery_runtime& runtime) {
  auto c = std::make_shared<node_config>();
  c->storage = cfg.storage;
  c->tenants = cfg.tenants;
  c->reputation = cfg.reputation;
  c->actors = cfg.actors;
  c->dns = cfg.dns;
  c->delivery = cfg.delivery;
  c->sources = egress_sources_from(cfg, runtime.hostname);
  c->egress = cfg.egress;
  c->shaping = cfg.shaping;
  c->queue = cfg.queue;
  c->pools = std::make_shared<const pool_table>(pools_from(cfg.egress, egress_source_names(cfg)));
  c->dkim = cfg.dkim;
  c->mta_sts = cfg.mta_sts;
  c->domains = cfg.domains;
  if (!cfg.dkim.key_encryption_key_file.empty()) {
    auto key = load_secret_key(cfg.dkim.key_encryption_key_file);
    if (!key) throw std::runtime_error("dkim.key_encryption_key_file: " + key.error());
    c->key_encryption_key = key.value();
  }
  // Relays: each password read once, here (a missing or empty file is a start-up error).
  auto passwords = read_relay_passwords(cfg);
  c->routing = std::make_shared<const routing_table>(cfg.delivery, std::move(passwords));
  c->bounces = cfg.bounces;
  c->events = cfg.events;
  c->webhooks = cfg.webhooks;
  c->cluster = cfg.cluster;
  // Bounce classification: the operator's rules first, then the shipped ones.
  c->classifier = make_classifier(cfg);
  c->responses = std::make_shared<const response_rules>(cfg.shaping.rules);
  if (!cfg.bounces.secret_file.empty()) c->bounce_secret = read_secret_file(cfg.bounces.secret_file);
  c->tracking = cfg.tracking;
  if (cfg.tracking.enabled) c->tracking_secret = load_tracking_secret(cfg);
  node_settings settings;
  settings.config = std::move(c);
  if (cfg.cluster.enabled) settings.shared.leases = std::make_shared<partition_leases>(cfg.cluster.partitions);
  settings.shared.reputation = std::make_shared<reputation_book>(cfg.reputation.window);
  if (!cfg.log.delivery_log.empty()) {
    try {
      settings.shared.attempts_log = std::make_shared<delivery_log>(cfg.log.delivery_log);
    } catch (const std::exception& e) {
      throw std::runtime_error(std::string("log.delivery_log: ") + e.what());
    }
  }
  return settings;
}

// bootstrap.create_tenant: tenants load asynchronously; ask until they have (a few seconds at most).
// Called once every listener is bound: a node that cannot start makes no tenant and prints no
// key that would point at another process.
void create_first_tenant(caf::scoped_actor& self, const service_directory& directory, const config& cfg,
                         std::uint16_t api_port) {
  for (int attempt = 0; attempt < 100; ++attempt) {
    bool done = false;
    self->request(directory.get()->tenants, std::chrono::seconds(5), bootstrap_atom::value,
                  cfg.bootstrap.tenant_name)
        .receive(
            [&](created_tenant& t) {
              done = true;
              if (!t.tenant.id.empty())
                print_first_tenant(t, cfg, api_port);
              else
                spdlog::info("bootstrap.tenants_exist hint=\"another API key: petrel tenants keys add <tenant> "
                             "(petrel tenants list names them)\"");
            },
            [&](caf::error&) {});
    if (done) return;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  spdlog::warn("bootstrap.not_done reason=\"the tenants did not answer in time\" hint=\"petrel tenants create NAME\"");
}

// The HTTPS credentials of every listener and the access log, made before anything starts (a
// file that cannot be used stops the start with the reason).
struct listener_extras {
  std::shared_ptr<tls_credentials> api, admin, tracking, submission;
  std::shared_ptr<delivery_log> access;
  tls_watch watch;
};

listener_extras make_listener_extras(const config& cfg) {
  listener_extras x;
  x.api = listener_credentials(cfg.http.tls, "api", "http", "http/1.1");
  x.admin = listener_credentials(cfg.admin.tls, "admin", "admin", "http/1.1");
  if (cfg.tracking.enabled) x.tracking = listener_credentials(cfg.tracking.tls, "tracking", "tracking", "http/1.1");
  const auto& m = cfg.submission_smtp;
  if (m.listen_enabled || m.tls_listen_enabled)
    x.submission = std::make_shared<tls_credentials>("submission", "submission_smtp",
                                                     tls_files{m.tls_cert_file, m.tls_key_file, "", ""});
  for (const auto& c : {x.api, x.admin, x.tracking, x.submission}) x.watch.add(c);
  if (!cfg.log.access_log.empty()) {
    try {
      x.access = std::make_shared<delivery_log>(cfg.log.access_log, "access");
    } catch (const std::exception& e) {
      throw std::runtime_error(std::string("log.access_log: ") + e.what());
    }
  }
  return x;
}

http_server_options http_options(const config& cfg, const std::string& name, const listen_address& listen,
                                 const listener_extras& extras, std::shared_ptr<tls_credentials> tls) {
  http_server_options o;
  o.name = name;
  o.listen = listen;
  o.tls = std::move(tls);
  o.on_access = access_logger(extras.access);
  o.max_body_bytes = cfg.http.max_body_bytes;
  o.max_header_bytes = cfg.http.max_header_bytes;
  o.read_timeout = cfg.http.read_timeout;
  o.idle_timeout = cfg.http.idle_timeout;
  o.handler_timeout = cfg.http.handler_timeout;
  o.max_connections = cfg.http.max_connections;
  o.max_connections_per_client = cfg.http.max_connections_per_client;
  o.trusted_clients = cfg.http.trusted_clients;
  o.on_response = [name](int status) { core().http_requests(name, status).inc(); };
  o.on_connection_refused = [name](const char* reason) {
    metrics()
        .get_counter("petrel_http_connections_refused_total",
                     "Connections closed or refused to protect the others, by listener and "
                     "reason (shed: idle one closed to make room; over_limit; per_client; "
                     "tls_handshake: a failed TLS handshake)",
                     {{"listener", name}, {"reason", reason}})
        .inc();
  };
  return o;
}

// The inbound SMTP listener for bounces and feedback reports: each mail goes to the bounces actor.
std::unique_ptr<smtp_server> make_bounce_server(boost::asio::io_context& io, caf::actor_system& sys,
                                                const config& cfg, const std::string& hostname,
                                                const std::shared_ptr<service_directory>& directory) {
  smtp_server_options o;
  o.listen = cfg.bounces.listen;
  o.hostname = cfg.bounces.hostname.empty() ? hostname : cfg.bounces.hostname;
  o.accept_domains = cfg.bounces.accept_domains;
  if (!cfg.bounces.verp_domain.empty()) o.accept_domains.push_back(cfg.bounces.verp_domain);
  o.max_message_bytes = cfg.bounces.max_message_bytes;
  o.max_recipients = cfg.bounces.max_recipients;
  o.max_connections = cfg.bounces.max_connections;
  o.max_connections_per_client = cfg.bounces.max_connections_per_client;
  o.trusted_clients = cfg.bounces.trusted_clients;
  o.max_messages_per_second = cfg.bounces.max_rate.per_second;
  o.command_timeout = cfg.bounces.command_timeout;
  o.handler_timeout = cfg.storage.request_timeout * 2;
  auto timeout = o.handler_timeout;
  return std::make_unique<smtp_server>(
      // A weak reference: handlers the I/O context still holds at exit must not keep actors.
      io, o, [&sys, weak = std::weak_ptr<service_directory>(directory), timeout](
                 received_mail&& mail, smtp_reply_fn reply) {
        auto directory = weak.lock();
        if (!directory) return reply(421, "4.3.0 shutting down");
        inbound_message m;
        m.envelope_from = std::move(mail.mail_from);
        m.envelope_to = std::move(mail.rcpt_to);
        m.content = std::move(mail.content);
        m.origin = "smtp " + mail.peer;
        ask<inbound_result>(
            sys, directory->get()->bounces, timeout,
            [reply](inbound_result& r) {
              std::string text = "2.0.0 ok: " + r.kind;
              if (!r.outcomes.empty()) text += ", " + std::to_string(r.outcomes.size()) + " recorded";
              reply(250, text);
            },
            [reply](caf::error&) { reply(451, "4.3.0 could not be processed now; try again later"); },
            inbound_atom::value, std::move(m));
      });
}

// The SMTP reply for a submission the tenant actor refused.
std::pair<int, std::string> smtp_reply_for(caf::actor_system& sys, const caf::error& e) {
  petrel_errc code{};
  std::string detail;
  std::int64_t retry = 0;
  if (!read_error(e, code, detail, retry)) return {451, "4.3.0 not stored now; try again later"};
  switch (code) {
    case petrel_errc::rate_limited: return {451, "4.7.1 " + detail};
    case petrel_errc::overloaded:
    case petrel_errc::store_failed:
    case petrel_errc::unavailable: return {451, "4.3.0 " + detail};
    case petrel_errc::suspended:
    case petrel_errc::forbidden: return {550, "5.7.1 " + detail};
    case petrel_errc::unauthorized: return {530, "5.7.0 " + detail};
    case petrel_errc::invalid: return {550, "5.6.0 " + detail};
    default: return {451, "4.3.0 " + sys.render(e)};
  }
}

// An SMTP submission listener (587 with STARTTLS, or 465 with TLS from the first byte): a
// tenant authenticates with an API key; each message is submitted like a raw one over the API.
std::unique_ptr<smtp_server> make_submission_server(boost::asio::io_context& io, caf::actor_system& sys,
                                                    const config& cfg, const std::string& hostname,
                                                    const std::shared_ptr<service_directory>& directory,
                                                    std::shared_ptr<tls_credentials> tls, bool implicit) {
  const auto& c = cfg.submission_smtp;
  smtp_server_options o;
  o.listener_name = implicit ? "submission_tls" : "submission";
  o.listen = implicit ? c.tls_listen : c.listen;
  o.hostname = c.hostname.empty() ? hostname : c.hostname;
  o.max_message_bytes = cfg.submission.max_message_bytes;
  o.max_recipients = static_cast<std::uint32_t>(std::min<std::uint64_t>(cfg.submission.max_recipients, 100'000));
  o.max_connections = c.max_connections;
  o.max_connections_per_client = c.max_connections_per_client;
  o.trusted_clients = c.trusted_clients;
  o.max_messages_per_second = c.max_rate.per_second;
  o.command_timeout = c.command_timeout;
  o.handler_timeout = cfg.storage.request_timeout * 2;
  o.submission = true;
  o.tls = std::move(tls);
  o.implicit_tls = implicit;
  o.max_auth_failures = c.max_auth_failures;
  auto timeout = cfg.http.handler_timeout;
  auto weak = std::weak_ptr<service_directory>(directory);
  o.authenticate = [&sys, weak, timeout](std::string, std::string password, std::function<void(std::string)> done) {
    auto directory = weak.lock();
    // The password is an API key (the user name is not looked at: a key names its tenant).
    if (!directory || password.rfind("pk_", 0) != 0 || password.size() > 200) return done(std::string());
    auto key_hash = hash_api_key(password);
    ask<tenant_identity>(
        sys, directory->get()->tenants, timeout, [done, key_hash](tenant_identity&) { done(key_hash); },
        [done](caf::error&) { done(std::string()); }, auth_atom::value, key_hash);
  };
  auto settings = cfg.submission;
  return std::make_unique<smtp_server>(
      io, o, [&sys, weak, timeout, settings](received_mail&& mail, smtp_reply_fn reply) {
        auto directory = weak.lock();
        if (!directory) return reply(421, "4.3.0 shutting down");
        auto result = parse_smtp_submission(mail.mail_from, mail.rcpt_to, mail.content, settings, unix_now_ms());
        if (auto* rejection = std::get_if<submission_rejection>(&result)) {
          const auto& e = rejection->errors.front();
          auto text = (e.field.empty() ? std::string() : e.field + ": ") + e.detail;
          for (auto& ch : text)
            if (ch == '\r' || ch == '\n') ch = ' ';
          return reply(rejection->status == 413 ? 552 : 550,
                       (rejection->status == 413 ? "5.3.4 " : "5.6.0 ") + text.substr(0, 400));
        }
        auto message = std::move(std::get<message_record>(result));
        ask<submit_receipt>(
            sys, directory->get()->tenants, timeout,
            [reply](submit_receipt& r) { reply(250, "2.0.0 queued as " + r.message_id.str()); },
            [reply, &sys](caf::error& e) {
              auto [code, text] = smtp_reply_for(sys, e);
              for (auto& ch : text)
                if (ch == '\r' || ch == '\n') ch = ' ';
              reply(code, text.substr(0, 400));
            },
            submit_atom::value, std::move(mail.identity), std::move(message));
      });
}

// The node's listeners: the API, the admin API and (when configured) the bounce SMTP listener.
struct listeners {
  std::unique_ptr<http_server> api;
  std::unique_ptr<http_server> admin;
  std::unique_ptr<http_server> tracking;  // [tracking] enabled
  std::unique_ptr<smtp_server> bounces;
  std::unique_ptr<smtp_server> submission, submission_tls;

  void start(const config& cfg) {
    api->start();
    admin->start();
    if (tracking) {
      tracking->start();
      spdlog::info("http.listening listener=tracking address={}:{} tls={}", cfg.tracking.listen.host, tracking->port(),
                   cfg.tracking.tls.enabled());
    }
    if (bounces) {
      bounces->start();
      spdlog::info("smtp.listening listener=bounces address={}:{}", cfg.bounces.listen.host, bounces->port());
    }
    if (submission) {
      submission->start();
      spdlog::info("smtp.listening listener=submission address={}:{}", cfg.submission_smtp.listen.host,
                   submission->port());
    }
    if (submission_tls) {
      submission_tls->start();
      spdlog::info("smtp.listening listener=submission_tls address={}:{}", cfg.submission_smtp.tls_listen.host,
                   submission_tls->port());
    }
    spdlog::info("http.listening listener=api address={}:{} tls={}", cfg.http.listen.host, api->port(),
                 cfg.http.tls.enabled());
    spdlog::info("http.listening listener=admin address={}:{} tls={}", cfg.admin.listen.host, admin->port(),
                 cfg.admin.tls.enabled());
  }

  // Stops accepting; lets requests in progress finish within the grace period.
  void stop_and_drain(std::chrono::milliseconds grace) {
    api->stop();
    admin->stop();
    if (tracking) tracking->stop();
    if (bounces) bounces->stop();
    if (submission) submission->stop();
    if (submission_tls) submission_tls->stop();
    auto deadline = std::chrono::steady_clock::now() + grace;
    while ((api->open_connections() > 0 || admin->open_connections() > 0 ||
            (tracking && tracking->open_connections() > 0)) &&
           std::chrono::steady_clock::now() < deadline)
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }

  void reset() {
    bounces.reset();
    submission.reset();
    submission_tls.reset();
    api.reset();
    admin.reset();
    tracking.reset();
  }
};

listeners make_listeners(boost::asio::io_context& io, caf::actor_system& sys, const config& cfg,
                         http_api& api, const delivery_runtime& runtime,
                         const std::shared_ptr<service_directory>& directory, const listener_extras& extras) {
  listeners l;
  const auto& submission_tls = extras.submission;
  l.api = std::make_unique<http_server>(
      io, http_options(cfg, "api", cfg.http.listen, extras, extras.api),
      [&api](http_request&& r, http_responder respond) { api.public_request(std::move(r), std::move(respond)); });
  l.admin = std::make_unique<http_server>(
      io, http_options(cfg, "admin", cfg.admin.listen, extras, extras.admin),
      [&api](http_request&& r, http_responder respond) { api.admin_request(std::move(r), std::move(respond)); });
  if (cfg.tracking.enabled)
    l.tracking = std::make_unique<http_server>(
        io, http_options(cfg, "tracking", cfg.tracking.listen, extras, extras.tracking),
        [&api](http_request&& r, http_responder respond) { api.tracking_request(std::move(r), std::move(respond)); });
  if (cfg.bounces.listen_enabled) l.bounces = make_bounce_server(io, sys, cfg, runtime.hostname, directory);
  const auto& m = cfg.submission_smtp;
  if (m.listen_enabled)
    l.submission = make_submission_server(io, sys, cfg, runtime.hostname, directory, submission_tls, false);
  if (m.tls_listen_enabled)
    l.submission_tls = make_submission_server(io, sys, cfg, runtime.hostname, directory, submission_tls, true);
  return l;
}

// From now on an empty token file is an error, not a first start (load_admin_token).
void record_first_start(caf::scoped_actor& self, const service_directory& directory, const config& cfg) {
  // The root publishes the store's handle once it has started its children: wait for it (it
  // takes milliseconds; a request to a null handle fails with invalid_argument).
  for (int i = 0; i < 200 && !directory.get()->store; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  auto now = unix_now_ms();
  self->request(directory.get()->store, cfg.storage.request_timeout, persist_atom::value,
                write_request{set_node_value_op{first_start_key, std::to_string(now), now}})
      .receive([](caf::ok_atom) { spdlog::info("petrel.first_start_completed"); },
               [&self](caf::error& e) {
                 spdlog::warn("petrel.first_start_unrecorded error=\"{}\"", self->system().render(e));
               });
}

// SIGHUP: reopen the delivery or access log (after the operator moved it away to rotate it).
void reopen_log(const std::shared_ptr<delivery_log>& log) {
  if (!log) return;
  auto error = log->reopen();
  if (error.empty())
    spdlog::info("log.reopened file={}", log->path());
  else
    spdlog::error("log.reopen_failed file={} error=\"{}\" action=\"writing to the old file\"", log->path(), error);
}

// Waits until every actor has ended (they no longer touch the runtime after that); a shutdown
// that does not finish within 10 s is reported and cut short.
void await_actors_or_exit(caf::actor_system& sys, int exit_code) {
  std::promise<void> done;
  auto all_done = done.get_future();
  std::thread waiter([&sys, &done] {
    sys.await_all_actors_done();
    done.set_value();
  });
  if (all_done.wait_for(std::chrono::seconds(10)) != std::future_status::ready) {
    spdlog::error("petrel.shutdown_stuck running_actors={}", sys.registry().running());
    spdlog::default_logger()->flush();
    std::_Exit(exit_code == 0 ? 1 : exit_code);
  }
  waiter.join();
}

}  // namespace

int run_server(const config& cfg) {
  setup_logging(cfg.log);
  spdlog::info("petrel.starting config={} store={}", cfg.source, cfg.storage_url());
  mime_init();

  // 1. Settings and the runtime: the store (fail fast), DNS, TLS, the actors' configuration.
  //    The I/O context carries the HTTP listeners, DNS and the SMTP sessions; it is held by
  //    pointer so that it can be torn down before the actor system (see the end).
  auto io_holder = std::make_unique<boost::asio::io_context>(cfg.io.threads);
  auto& io = *io_holder;
  opened_store db;
  std::shared_ptr<delivery_runtime> runtime;
  node_settings settings;
  listener_extras extras;
  try {
    extras = make_listener_extras(cfg);
    db = open_node_store(cfg);
    runtime = make_delivery_runtime(cfg, io);
    settings = node_settings_from(cfg, *runtime);
  } catch (const std::exception& e) {
    spdlog::critical("petrel.start_failed error=\"{}\"", e.what());
    return 1;
  }

  caf::actor_system_config caf_cfg;
  auto workers = cfg.actors.threads > 0 ? cfg.actors.threads
                                        : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  caf_cfg.set("scheduler.max-threads", workers);
  // Work sharing: a job for an idle worker wakes it at once. CAF's default work stealing let
  // idle workers poll with sleeps of up to 10 ms, which showed as submission latency tails and
  // as CPU spent polling (docs/performance.md).
  if (cfg.actors.scheduler == "stealing") {
    caf_cfg.set("scheduler.policy", caf::atom("stealing"));
  } else {
    caf_cfg.set("scheduler.policy", caf::atom("sharing"));
    if (cfg.actors.scheduler == "sharing") use_next_slot_sharing(caf_cfg);  // else CAF's own
  }
  register_types(caf_cfg);
  if (cfg.cluster.enabled) configure_node_links(caf_cfg, cfg.cluster);
  caf::actor_system sys{caf_cfg};

  // The process ends on a signal (exit 0) or when the actor tree gives up (exit 1).
  std::promise<int> stop_promise;
  auto stop_future = stop_promise.get_future();
  auto stop_once = std::make_shared<std::once_flag>();
  auto request_stop = [&stop_promise, stop_once](int code) {
    std::call_once(*stop_once, [&] { stop_promise.set_value(code); });
  };

  // 2. The actors.
  auto directory = std::make_shared<service_directory>();
  node_actor endpoint;
  if (cfg.cluster.enabled) {
    endpoint = spawn_node_endpoint(sys, directory, settings.config);
    settings.shared.endpoint = std::make_shared<const caf::actor>(caf::actor_cast<caf::actor>(endpoint));
    try {
      auto advertise = publish_node_endpoint(sys, endpoint, cfg.cluster);
      if (advertise != cfg.cluster.advertise) {
        auto c = std::make_shared<node_config>(*settings.config);
        c->cluster.advertise = advertise;
        settings.config = std::move(c);
      }
    } catch (const std::exception& e) {
      spdlog::critical("petrel.start_failed error=\"{}\"", e.what());
      caf::anon_send_exit(endpoint, caf::exit_reason::user_shutdown);
      return 1;
    }
  }
  settings.shared.live->set(settings.config);  // a reload publishes the next one here
  auto root = spawn_root(sys, db.open, std::move(db.first), settings, directory, runtime);
  caf::actor_cast<caf::strong_actor_ptr>(root)->get()->attach_functor(
      [request_stop](const caf::error& reason) {
        if (reason) {
          spdlog::critical("petrel.actor_tree_failed reason=\"{}\"", caf::to_string(reason));
          request_stop(1);
        }
      });
  std::optional<caf::scoped_actor> self_holder;  // reset before waiting for the actors
  self_holder.emplace(sys);
  auto& self = *self_holder;
  // The actors that carry the listeners' requests to the actor tree (app/actor_bridge.hpp).
  bridge_pool bridges(sys, 4);

  // 3. The listeners.
  http_api api(sys, directory, cfg, db.admin_token, settings.config->bounce_secret);
  api.set_runtime(runtime);
  api.set_tracking_secret(settings.config->tracking_secret);
  config_reloader reloader(cfg, settings.shared.live, directory, runtime, sys);
  api.set_reloader([&reloader, &api](const std::string& by) {
    auto report = reloader.reload(by);
    if (report.ok()) api.set_pool_names(reloader.running().egress);
    return report;
  });
  auto servers = make_listeners(io, sys, cfg, api, *runtime, directory, extras);
  extras.watch.report();
  int exit_code = 0;
  try {
    servers.start(cfg);
    if (cfg.bootstrap.create_tenant) create_first_tenant(self, *directory, cfg, servers.api->port());
    if (!db.first_start_done) record_first_start(self, *directory, cfg);
  } catch (const std::exception& e) {
    spdlog::critical("petrel.start_failed error=\"{}\"", e.what());
    exit_code = 1;
    request_stop(1);
  }
  auto signals = std::make_unique<boost::asio::signal_set>(io, SIGINT, SIGTERM);
  signals->async_wait([&](const boost::system::error_code& ec, int signal) {
    if (!ec) {
      spdlog::info("petrel.stopping signal={}", signal == SIGTERM ? "SIGTERM" : "SIGINT");
      request_stop(0);
    }
  });
  auto hangups = std::make_unique<boost::asio::signal_set>(io, SIGHUP);
  std::function<void(const boost::system::error_code&, int)> on_hangup =
      [&](const boost::system::error_code& ec, int) {
        if (ec) return;
        reopen_log(settings.shared.attempts_log);
        reopen_log(extras.access);
        extras.watch.check(true);
        // Started without a file (the defaults): SIGHUP only rotates the logs.
        if (cfg.source != "(defaults)") api.reload_configuration("sighup");
        hangups->async_wait(on_hangup);
      };
  hangups->async_wait(on_hangup);
  // Certificate files replaced on disk (an ACME client renewing them) are taken up by themselves.
  auto tls_timer = std::make_unique<boost::asio::steady_timer>(io);
  std::function<void(const boost::system::error_code&)> on_tls_timer = [&](const boost::system::error_code& ec) {
    if (ec) return;
    extras.watch.check(false);
    tls_timer->expires_after(cfg.http.tls_check_interval);
    tls_timer->async_wait(on_tls_timer);
  };
  if (!extras.watch.empty() && cfg.http.tls_check_interval.count() > 0) {
    tls_timer->expires_after(cfg.http.tls_check_interval);
    tls_timer->async_wait(on_tls_timer);
  }
  std::vector<std::thread> threads;
  for (int i = 0; i < cfg.io.threads; ++i) threads.emplace_back([&io] { io.run(); });

  exit_code = stop_future.get();

  // 4. Shutdown. Listeners stop accepting and drain; then the actors stop, the store
  //    committing what is pending before it closes.
  servers.stop_and_drain(cfg.http.shutdown_grace);
  if (auto cluster = directory->get()->cluster) {
    // Cluster: hand every partition over once its attempts in flight have finished, so the
    // other nodes go on from what this one committed.
    auto wait = cfg.cluster.drain_timeout + cfg.cluster.lease + std::chrono::seconds(5);
    self->request(cluster, wait, drain_atom::value)
        .receive([](caf::ok_atom) { spdlog::info("cluster.drained"); },
                 [&self](caf::error& e) {
                   spdlog::warn("cluster.drain_incomplete error=\"{}\"", self->system().render(e));
                 });
  }
  self->request(root, cfg.storage.request_timeout + std::chrono::seconds(5), shutdown_atom::value)
      .receive([](caf::ok_atom) {},
               [](caf::error& e) {
                 spdlog::error("petrel.shutdown_incomplete error=\"{}\"", caf::to_string(e));
               });
  self->send_exit(root, caf::exit_reason::user_shutdown);
  bridges.stop();
  if (endpoint) self->send_exit(endpoint, caf::exit_reason::user_shutdown);
  // DNS and the I/O threads stop (SMTP sessions still open are cut; their recipients stay
  // waiting in the store and are tried again after the next start).
  runtime->dns->shutdown();
  signals->cancel();
  hangups->cancel();
  tls_timer->cancel();
  io.stop();
  for (auto& t : threads) t.join();
  self_holder.reset();
  await_actors_or_exit(sys, exit_code);
  // No handle may outlive the actor system: ~actor_system waits for every detached actor (the
  // store, the cluster actor) to be destroyed, and the directory, the node endpoint (whose
  // behaviour holds the directory) and the settings (which outlive `sys`) hold handles.
  directory->set(std::make_shared<services>());
  endpoint = node_actor{};
  settings.shared.endpoint.reset();
  // The I/O side is torn down while the actor system still exists: the handlers the I/O
  // context still holds (SMTP sessions cut by the stop, with their actor handles) must not drop
  // the last reference to an actor after ~actor_system. Everything that owns Asio objects goes
  // before the context itself.
  signals.reset();
  hangups.reset();
  on_hangup = nullptr;
  tls_timer.reset();
  on_tls_timer = nullptr;
  servers.reset();
  runtime->dns.reset();
  io_holder.reset();
  spdlog::info("petrel.stopped exit_code={}", exit_code);
  spdlog::default_logger()->flush();
  // ~actor_system (when `sys` goes out of scope) waits for the thread of every detached actor
  // until its actor is destroyed. Everything is stopped, committed and flushed by now; should a
  // reference still keep one alive (CAF's middleman may hold a local actor it has seen on a
  // node link), the process ends after 10 s anyway, like the rest of the shutdown.
  std::thread([exit_code] {
    std::this_thread::sleep_for(std::chrono::seconds(10));
    std::fprintf(stderr, "petrel: the actor system did not finish within 10 s after stopping; exiting\n");
    std::_Exit(exit_code);
  }).detach();
  return exit_code;
}

}  // namespace petrel
