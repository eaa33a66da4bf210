// The configuration of a Petrel node: every setting with its default. Loaded from TOML by
// load_config(); docs/configuration.md describes each key and config/petrel.toml shows them.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "config/units.hpp"

namespace petrel {

using namespace std::chrono_literals;

struct log_settings {
  std::string level = "info";   // trace, debug, info, warn, error, critical, off
  std::string format = "text";  // text (key=value) or json (one object per line)
  std::string delivery_log;     // a JSON line per attempt to this file; "" none (SIGHUP reopens)
  std::string access_log;       // a JSON line per HTTP request to this file; "" none (SIGHUP reopens)
};

// HTTPS on a listener: a PEM certificate chain and its key (both, or neither: plain HTTP).
struct listener_tls {
  std::string cert_file;
  std::string key_file;
  std::string cert_dir;        // [tracking]: further <name>.crt/<name>.key pairs, chosen by SNI
  std::string client_ca_file;  // [admin]: clients must present a certificate from these CAs
  bool enabled() const { return !cert_file.empty(); }
};

struct http_settings {
  listen_address listen{"127.0.0.1", 8080};
  std::uint64_t max_body_bytes = 10 * 1024 * 1024;  // a submission's JSON, raw base64 included
  std::uint64_t max_header_bytes = 16 * 1024;
  std::chrono::milliseconds read_timeout = 30s;     // to receive one whole request
  std::chrono::milliseconds idle_timeout = 60s;     // keep-alive connection without a request
  std::chrono::milliseconds handler_timeout = 30s;  // request accepted, answer not yet ready -> 503
  std::uint64_t max_connections = 4096;
  // Connections one client address may hold on each listener (0: no limit), and the
  // addresses or networks exempt from it (a load balancer in front, say).
  std::uint64_t max_connections_per_client = 1024;
  std::vector<std::string> trusted_clients;
  std::chrono::milliseconds shutdown_grace = 10s;  // in-flight requests get this long on stop
  listener_tls tls;
  // How often every listener's certificate files are checked for changes (reloaded when they
  // changed: ACME renewals); 0: only on SIGHUP.
  std::chrono::milliseconds tls_check_interval = 10s;
};

struct io_settings {
  int threads = 1;  // Asio threads: HTTP listeners, DNS, SMTP sessions
};

struct dns_config {
  std::vector<std::string> servers;  // "ip" or "ip:port"; empty: /etc/resolv.conf
  std::chrono::milliseconds timeout = 5s;
  int tries = 2;
  bool ipv6 = true;
  bool prefer_ipv6 = false;
  // Believe the resolvers' DNSSEC verdict (the AD bit) although they are not on loopback: the
  // path to them is trusted (see net/dns.hpp). Resolvers on loopback are always believed.
  bool dnssec_trusted = false;
  std::uint64_t cache_size = 100000;          // positive answers kept
  std::uint64_t negative_cache_size = 10000;  // NXDOMAIN / no-MX answers kept
  std::chrono::milliseconds min_ttl = 5s;     // answers are cached at least ...
  std::chrono::milliseconds max_ttl = 24h;    // ... and at most this long
  std::chrono::milliseconds temporary_failure_ttl = 30s;  // SERVFAIL, timeouts
};

// Overrides for sites whose MX hosts match a glob ("*.mx.example.com"); 0 / "" keep the default.
struct site_policy {
  std::string match;
  std::uint32_t connection_limit = 0;
  std::uint32_t max_deliveries_per_connection = 0;
  rate message_rate;     // messages per second to the site per source; unset: the default
  rate connection_rate;  // new connections per second per source; unset: the default
  std::string tls;  // disabled, opportunistic, required
  int verify_certificate = -1;  // -1 default, 0 no, 1 yes
  int mta_sts = -1;             // 0: ignore MTA-STS policies for this site
};

// Limits of destination domains (first matching glob wins).
struct domain_policy {
  std::string match;  // glob on the domain, e.g. "yahoo.*"
  rate message_rate;  // all tenants together
  rate tenant_rate;   // each tenant
};

// A relay host (smarthost): the routes that name it deliver there instead of to MX hosts.
struct relay_config {
  std::string name;
  std::string host;  // name or IP address
  std::uint16_t port = 25;
  std::string tls = "opportunistic";  // disabled | opportunistic | required
  bool verify_certificate = false;
  std::string username;       // SMTP AUTH PLAIN (RFC 4954) when set ...
  std::string password_file;  // ... with the password from this file (its first line)
};

// One entry of the routing table: the recipients it matches leave through a relay, or through
// fixed hosts instead of their domain's MX records. The first matching entry applies.
struct route_config {
  std::vector<std::string> domains;  // globs on the destination domain; empty: every domain
  std::vector<std::string> tenants;  // tenant names or ids; empty: every tenant
  std::string relay;                 // a [[delivery.relays]] name, or ...
  std::vector<listen_address> mx;    // ... these hosts, in order of preference
};

struct delivery_settings {
  std::string ehlo_name;  // empty: this host's name
  std::uint16_t port = 25;  // destination port (tests and sinks override it)
  std::uint32_t connection_limit = 10;
  std::uint32_t max_deliveries_per_connection = 100;
  std::uint32_t max_recipients_per_transaction = 100;
  std::uint32_t ready_queue = 0;  // jobs a site holds ready; 0: 2 x connection_limit
  std::string tls = "opportunistic";
  bool verify_certificate = false;
  // DANE (RFC 7672): MX hosts with DNSSEC-validated TLSA records get TLS that must match them,
  // before MTA-STS and the settings above. Needs a validating resolver on loopback (or
  // dns.dnssec_trusted).
  bool dane = false;
  std::string ca_file;  // empty: the system's trust store
  std::chrono::milliseconds connect_timeout = 30s;
  std::chrono::milliseconds greeting_timeout = 5min;
  std::chrono::milliseconds command_timeout = 5min;
  std::chrono::milliseconds data_timeout = 2min;
  std::chrono::milliseconds data_block_timeout = 3min;
  std::chrono::milliseconds data_done_timeout = 10min;
  std::chrono::milliseconds idle_timeout = 5s;  // an SMTP connection without work is closed
  std::vector<std::chrono::milliseconds> retry_schedule = {1min, 5min, 15min, 30min, 1h, 2h};
  double retry_jitter = 0.2;
  std::chrono::milliseconds max_age = 72h;
  std::chrono::milliseconds site_failure_delay = 1min;  // all MX hosts failed: defer new work
  rate message_rate;     // default per (source x site); per_second 0: unlimited
  rate connection_rate;  // default new connections per second per (source x site)
  bool adaptive_concurrency = true;  // 421s and refused connections halve the connection limit
  // MX hosts and address literals on loopback, private or link-local networks are refused
  // (a hard bad_domain failure) unless this is set: for test setups and private relays.
  bool allow_private_destinations = false;
  std::vector<site_policy> sites;
  std::vector<domain_policy> domains;
  // Relays and the routing table (docs/configuration.md "[delivery] routing"). `relay`, the
  // shorthand "host:port" for one relay of everything, becomes the relay "relay" and a last
  // route that matches every recipient.
  std::string relay;
  std::vector<relay_config> relays;
  std::vector<route_config> routes;
};

struct warmup_step_config {
  std::string site;  // glob on MX host names: a budget of its own at those sites; "" the source's
  std::uint32_t day = 1;
  std::uint64_t per_day = 0;   // 0: no day limit
  std::uint64_t per_hour = 0;  // 0: no hour limit
};

struct egress_source_config {
  std::string name;
  std::string address;  // source IP to bind; empty: the kernel's choice
  std::string ehlo_name;  // empty: delivery.ehlo_name
  rate message_rate;      // all sites of this source together; unset: unlimited
  std::vector<warmup_step_config> warmup;  // by day number; empty: no warm-up
  // Cluster: the node that has this address ("" every node that lists the source). Domains
  // owned elsewhere send through it over the node link (docs/cluster.md "Sources on nodes").
  std::string node;
};

struct pool_member {
  std::string source;
  std::uint32_t weight = 1;
};

struct egress_pool_config {
  std::string name;
  std::vector<pool_member> sources;
};

struct egress_settings {
  std::vector<egress_source_config> sources;  // empty: one "default" source
  std::vector<egress_pool_config> pools;      // "default" (all sources, weight 1) if not given
  std::string default_pool = "default";
  std::vector<std::pair<std::string, std::string>> campaign_pools;  // campaign -> pool
};

// A rule on SMTP replies that shapes traffic (docs/shaping.md).
struct response_rule_config {
  std::string name;
  int reply_code = 0;        // 0 any; 4 or 5 a class; else exact
  std::string enhanced;      // prefix, e.g. "4.7."
  std::string pattern;       // regex, case-insensitive, searched in the reply text
  std::string provider;      // glob on the MX host
  std::uint32_t threshold = 1;  // act after this many matches ...
  std::chrono::milliseconds window = std::chrono::minutes(1);  // ... within this window
  std::string action;        // suspend_site, suspend_tenant, throttle, bounce
  std::chrono::milliseconds duration = std::chrono::minutes(10);
  double factor = 0.5;       // throttle: rate and connections multiplied by this
};

struct shaping_settings {
  std::vector<response_rule_config> rules;
  // Backpressure: past these, submissions get 503 (all) or 429 (that tenant) with Retry-After.
  // Waiting recipients cost disk (about 1 KB each with their events), not memory: the domains
  // hold only windows of them (queue_settings).
  std::uint64_t max_waiting_recipients = 10'000'000;
  std::uint64_t max_waiting_per_tenant = 5'000'000;
};

// Queues larger than memory (docs/architecture.md): each domain holds in memory the recipients
// due soonest, the rest stay in the store and are read in pages by due time.
struct queue_settings {
  std::chrono::milliseconds horizon = std::chrono::minutes(15);  // later ones stay in the store
  std::uint64_t max_in_memory_per_domain = 20'000;  // about 150 bytes each
  std::uint64_t page = 1'000;                       // rows per store read
};

struct admin_settings {
  listen_address listen{"127.0.0.1", 8081};
  std::string token;       // bearer token for /admin; empty -> read or create token_file
  std::string token_file;  // default <data_dir>/admin.token
  // The web console at /ui/ on this listener (docs/console.md).
  bool console = true;
  std::chrono::milliseconds console_session_lifetime = 12h;  // a login lasts at most this long
  std::chrono::milliseconds console_idle_timeout = 1h;       // ... and ends unused this long
  std::uint64_t console_warn_deferred = 100;  // the overview warns of a domain with this many deferred
  listener_tls tls;
};

struct storage_settings {
  std::string data_dir = "./data";
  std::string url;                          // empty -> sqlite:<data_dir>/petrel.db
  std::string sqlite_synchronous = "full";  // full or normal (see docs/operations.md)
  std::chrono::milliseconds busy_timeout = 5s;
  std::uint64_t batch_max_operations = 2048;  // writes per group-committed transaction
  // A commit starts at least this long after the previous one: under load more writes share
  // one fsync (fewer, larger transactions); an idle store commits at once. 0: no wait.
  std::chrono::milliseconds commit_interval{2};
  std::uint64_t read_connections = 2;  // reader actors, each with its own connection
  std::uint64_t max_pending_writes = 20000;   // beyond this, submissions get 503 + Retry-After
  std::chrono::milliseconds request_timeout = 20s;  // an actor's wait for the store
  // Below this much free space on the SQLite file system, new messages are refused (503)
  // while deliveries' state changes go on, and the node is not ready (Postfix: queue_minfree).
  std::uint64_t min_free_space = 64ull * 1024 * 1024;
  // Retention: a message's content is emptied this long after it was accepted, once none of
  // its recipients waits (GET /v1/messages/{id}/content answers 410 from then on) ...
  std::chrono::milliseconds content_retention = 72h;
  // ... and the message and its recipients are deleted this long after (events: events.retention).
  std::chrono::milliseconds retention = 30 * 24h;
  std::chrono::milliseconds prune_interval = 2s;  // one pruning pass this often ...
  std::uint64_t prune_batch = 2000;                // ... of at most this many messages of each kind
};

struct submission_settings {
  std::uint64_t max_recipients = 1000;  // to + cc + bcc (or envelope.to) per message
  std::uint64_t max_message_bytes = 10 * 1024 * 1024;  // the built or raw RFC 5322 message
  std::uint64_t max_metadata_bytes = 4096;             // metadata, serialized as JSON
  std::uint64_t max_tags = 10;
  std::uint64_t max_tag_length = 128;
  std::uint64_t max_headers = 50;
  std::uint64_t max_subject_length = 998;
  // Values in a submission's JSON (every scalar, array and object), counted while parsing:
  // a hostile body is refused after this many, so its memory is bounded (~64 B a value).
  std::uint64_t max_json_values = 100'000;
  std::string message_id_domain;  // right side of generated Message-IDs; empty -> the From domain
  bool campaigns_are_bulk = true;  // a message with a campaign is bulk unless "bulk": false
  // How far ahead "send_at" may schedule a message.
  std::chrono::milliseconds max_schedule_ahead = std::chrono::hours(72);
  // How long an Idempotency-Key's answer is kept (the same key and body answer it again).
  std::chrono::milliseconds idempotency_window = std::chrono::hours(24);
};

struct tenant_settings {
  rate default_rate{100, "100/s"};  // messages per second, when a tenant has no own rate
  std::uint32_t default_burst = 200;
};

// [reputation]: the guard that warns of and pauses a tenant whose complaint or hard-bounce rate
// over a rolling window passes a threshold (docs/sending.md, "Reputation guard").
struct reputation_settings {
  bool enabled = true;
  std::chrono::milliseconds window = 24h;
  std::uint64_t min_volume = 500;  // final attempts in the window before the rates count
  double complaint_warn = 0.001;
  double complaint_pause = 0.003;
  double bounce_warn = 0.05;
  double bounce_pause = 0.10;
  std::chrono::milliseconds check_interval = 30s;
};

// [tracking]: open and click tracking (docs/sending.md, "Tracking"). The listener serves the
// pixel (/o/{token}.gif) and the click redirects (/c/{token}); tenants' tracking domains are
// CNAMEs to cname_target, and their URLs use `scheme`.
struct tracking_settings {
  bool enabled = false;
  listen_address listen{"127.0.0.1", 8082};
  // The tracking URL of tenants without a verified tracking domain ("https://t.example.com";
  // empty: those tenants' messages are not tracked).
  std::string base_url;
  std::string cname_target;     // what a tenant's tracking domain must be a CNAME to
  std::string scheme = "https";  // of the URLs on tenants' tracking domains
  std::string secret_file;      // HMAC key of the tokens; empty: <data_dir>/tracking.key, made once
  std::chrono::milliseconds token_lifetime = 365 * 24h;  // links work, and are kept, this long
  // Hits this soon after the delivery are machine hits (security scanners, prefetching).
  std::chrono::milliseconds machine_window = 2s;
  // Peers whose X-Forwarded-For names the client (a proxy in front of the listener).
  std::vector<std::string> trusted_proxies;
  listener_tls tls;
};

struct bootstrap_settings {
  // On first start with an empty store: create this tenant and print its API key once.
  bool create_tenant = true;
  std::string tenant_name = "default";
};

struct actor_settings {
  int threads = 0;  // CAF scheduler workers; 0 -> one per core
  // "sharing": one job queue, idle workers sleep on a condition variable (woken at once), and
  // an actor made ready by another runs next on the same worker (actors/scheduler_policy.hpp);
  // "caf-sharing": CAF's own work sharing (no next slot);
  // "stealing": a queue per worker, idle workers poll with growing sleeps (up to 10 ms).
  std::string scheduler = "sharing";
  int max_restarts = 5;  // restart intensity: at most this many restarts of a child ...
  std::chrono::milliseconds restart_window = 60s;  // ... within this window, else escalate
  std::chrono::milliseconds restart_backoff = 100ms;  // first restart delay, doubled each time
  std::chrono::milliseconds restart_backoff_max = 10s;
  std::chrono::milliseconds domain_idle_timeout = 10min;  // an empty domain actor retires
};

struct dkim_config {
  std::vector<std::string> algorithms = {"rsa-sha256"};  // keys of new domains; two: dual signing
  int rsa_bits = 2048;
  std::string key_encryption_key_file;  // 64 hex chars; private keys encrypted at rest
  bool require_verified_domain = false;  // submissions from other From domains get 403
  int signers = 0;  // signing workers; 0: one per core
};

struct domains_config {
  std::chrono::milliseconds verify_interval = 1h;  // every domain is checked again this often
  std::string spf_include;       // recommended include: in SPF records (besides ip4/ip6)
  std::string dmarc_rua;         // rua= of the suggested DMARC record
  std::string bounce_mx_host;    // MX host of the bounce listener (return-path records)
  std::string return_path_label = "bounces";  // return path: <label>.<domain>
  // Domains (and their subdomains) no tenant may register, besides the built-in list of
  // public mailbox providers (gmail.com, outlook.com, ...).
  std::vector<std::string> unclaimable;
};

struct mta_sts_config {
  bool enabled = true;  // look up and apply MTA-STS policies of destination domains
  std::uint16_t port = 443;  // of the policy hosts (tests use another)
  std::string ca_file;  // trust store for policy hosts; empty: the system's
  std::chrono::milliseconds timeout = 20s;  // to fetch a policy
  std::uint64_t cache_size = 100000;  // policies kept (each for its max_age)
};

// Bounces, complaints and suppressions (docs/bounces.md).
struct bounces_config {
  std::string rules_file;  // operator rules, evaluated before the shipped ones; "" none
  // Hard failures of these categories suppress the address (reason hard_bounce).
  std::vector<std::string> suppress_categories = {"invalid_recipient", "bad_domain"};
  // 5xx replies of these categories are retried like 4xx (throttling sent as 5xx).
  std::vector<std::string> retry_5xx_categories = {"rate_limited"};
  // Final soft failures of these categories count toward the soft-bounce streak ...
  std::vector<std::string> streak_categories = {"mailbox_full", "expired"};
  std::uint32_t soft_bounce_streak = 5;          // ... this many (0: off) ...
  std::chrono::milliseconds soft_bounce_window = 7 * 24h;        // ... within this window ...
  std::chrono::milliseconds soft_bounce_suppress_for = 14 * 24h;  // ... suppress this long.
  // VERP: each delivery's envelope sender is b-<token>@verp_domain; "" keeps the sender's.
  std::string verp_domain;
  std::string secret_file;  // the HMAC key of VERP tokens and unsubscribe links (>= 32 bytes)
  // The inbound SMTP listener for bounces and feedback reports; off unless listen is set.
  bool listen_enabled = false;
  listen_address listen{"127.0.0.1", 2525};
  std::vector<std::string> accept_domains;  // besides verp_domain (e.g. the FBL address's domain)
  std::string hostname;                     // in the greeting; "" the node's host name
  std::uint64_t max_message_bytes = 10 * 1024 * 1024;
  std::uint32_t max_connections = 200;
  std::uint32_t max_connections_per_client = 20;  // per peer address (0: no limit)
  std::vector<std::string> trusted_clients;       // addresses or networks exempt from it
  std::uint32_t max_recipients = 50;
  rate max_rate{100, "100/s"};  // messages per second accepted by the listener, all peers
  std::chrono::milliseconds command_timeout = 5min;
  // List-Unsubscribe (RFC 2369 / RFC 8058) for bulk messages: links <base>/u/<token>.
  std::string unsubscribe_base_url;  // e.g. "https://mail.example.com"; "" no header
};

// SMTP submission for applications (RFC 6409; docs/api.md, "SMTP submission"): off unless a
// listen address is set. AUTH PLAIN or LOGIN with an API key as the password, over TLS only.
struct submission_smtp_config {
  bool listen_enabled = false;
  listen_address listen{"127.0.0.1", 587};      // STARTTLS required before AUTH
  bool tls_listen_enabled = false;
  listen_address tls_listen{"127.0.0.1", 465};  // TLS from the first byte (RFC 8314)
  std::string tls_cert_file;                    // PEM, chain allowed
  std::string tls_key_file;
  std::string hostname;                         // in the greeting; "" the node's host name
  std::uint32_t max_connections = 500;
  std::uint32_t max_connections_per_client = 50;  // per client address (0: no limit)
  std::vector<std::string> trusted_clients;       // exempt from it
  rate max_rate{1000, "1000/s"};  // messages per second over all clients (tenants have their own rates)
  std::chrono::milliseconds command_timeout = 5min;
  std::uint32_t max_auth_failures = 5;  // failed AUTH per client address per minute, then refused
};

// The event log (GET /v1/events, webhooks' source).
struct events_config {
  std::chrono::milliseconds retention = 30 * 24h;  // older events are pruned
  std::chrono::milliseconds prune_interval = 1h;
  std::uint64_t prune_batch = 10000;  // events deleted per transaction
};

// Webhooks (docs/webhooks.md).
struct webhooks_config {
  bool enabled = true;
  std::uint64_t batch_size = 100;                       // events per POST, at most
  std::chrono::milliseconds max_delay = 1s;             // an event waits at most this long to be batched
  std::chrono::milliseconds timeout = 10s;              // per POST
  std::vector<std::chrono::milliseconds> retry_schedule = {5s, 30s, 2min, 10min, 30min, 1h};  // last repeats
  std::uint64_t max_pending = 100000;  // events waiting for an endpoint beyond which it is paused
  std::chrono::milliseconds pause_after = 24h;  // failing this long pauses an endpoint too
  std::uint64_t max_per_tenant = 10;   // endpoints per tenant
  std::chrono::milliseconds rotation_overlap = 24h;  // after a rotation the old secret signs too
  bool allow_private_networks = false;  // URLs on loopback/private addresses (tests, intranets)
  bool require_https = true;            // http:// URLs only when false
  std::string ca_file;                  // trust store for https endpoints; "" the system's
};

// A cluster of nodes on one PostgreSQL (docs/cluster.md). Off: the node works alone.
struct cluster_settings {
  bool enabled = false;
  std::string node_name;                       // unique in the cluster; required when enabled
  listen_address listen{"127.0.0.1", 7946};   // node-to-node traffic
  std::string advertise;                       // host:port the others connect to; "" = listen
  std::chrono::milliseconds lease = 5s;        // a node or partition lease lasts this long ...
  std::chrono::milliseconds renew_interval = 1s;  // ... and is renewed this often
  // No attempt starts, and no final dot is sent, with less than this left of the lease.
  std::chrono::milliseconds safe_margin = 1500ms;
  std::uint32_t partitions = 64;  // fixed for the life of the cluster (all nodes the same)
  std::uint64_t max_claims_per_round = 8;    // partitions moved per renewal, at most
  std::uint64_t max_releases_per_round = 4;
  // The owner of a partition looks for waiting recipients it was not told about this often.
  std::chrono::milliseconds repair_interval = 10s;
  std::chrono::milliseconds drain_timeout = 30s;  // in-flight attempts get this long to finish
  // Mutual TLS between nodes: this node's certificate and key, and the CA that signs every
  // node's certificate. Required unless insecure_private_network is set.
  std::string tls_cert_file;
  std::string tls_key_file;
  std::string tls_ca_file;
  bool insecure_private_network = false;
};

struct debug_settings {
  // Enables /admin/debug/crash, which crashes an actor on purpose (supervision tests).
  bool fault_injection = false;
};

struct config {
  std::string source;  // the file it came from, or "(defaults)"
  log_settings log;
  http_settings http;
  io_settings io;
  admin_settings admin;
  storage_settings storage;
  submission_settings submission;
  tenant_settings tenants;
  reputation_settings reputation;
  tracking_settings tracking;
  bootstrap_settings bootstrap;
  actor_settings actors;
  dns_config dns;
  delivery_settings delivery;
  egress_settings egress;
  dkim_config dkim;
  domains_config domains;
  mta_sts_config mta_sts;
  bounces_config bounces;
  submission_smtp_config submission_smtp;
  shaping_settings shaping;
  queue_settings queue;
  events_config events;
  webhooks_config webhooks;
  cluster_settings cluster;
  debug_settings debug;

  // The effective store URL (storage.url, or the SQLite file under data_dir).
  std::string storage_url() const;
  std::string admin_token_path() const;
};

struct config_error {
  std::string file;
  int line = 0;
  int column = 0;
  std::string key;  // dotted, e.g. "http.listen"
  std::string reason;
  std::string to_string() const;  // "file:line:col: key: reason"
};

struct config_result {
  config value;
  std::vector<config_error> errors;  // empty when the file is valid
};

// Reads and validates a TOML file; every error found is reported, not just the first.
config_result load_config(const std::string& path);
config_result load_config_text(std::string_view toml_text, const std::string& source_name);

}  // namespace petrel
