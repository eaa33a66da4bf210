// How the actors are started, and the directory through which the HTTP layer finds them.
// The root supervisor publishes the current handles after every (re)start; HTTP handlers
// read a snapshot per request, so they never hold a handle of a dead actor for long.
#pragma once

#include <atomic>
#include <unordered_map>
#include <functional>
#include <memory>

#include "actors/protocol.hpp"
#include "actors/policy/partition_leases.hpp"
#include "actors/policy/reputation.hpp"
#include "actors/policy/restart_policy.hpp"
#include "actors/policy/routing.hpp"
#include "actors/policy/site_limits.hpp"
#include "actors/policy/shaping.hpp"
#include "config/config.hpp"
#include "net/mail/dkim.hpp"

namespace boost::asio {
class io_context;
namespace ssl {
class context;
}
}  // namespace boost::asio

namespace petrel {

class bounce_classifier;
class service_directory;
class response_rules;

// What the signers need to know of a sender domain: whose it is and its active keys.
struct signing_entry {
  id128 tenant_id;
  bool verified = false;
  std::vector<std::shared_ptr<const dkim_signer>> signers;
};
// Puts one DKIM-Signature per key of the entry (dual signing: RSA and Ed25519) in front of the
// message, each over the message's own bytes, which stay as they are; counted in
// petrel_dkim_signatures_total. Used at submission (signer pool) and, for bulk messages whose
// List-Unsubscribe is added per recipient, at delivery (site actor).
void add_dkim_signatures(const signing_entry& entry, std::string& message);

// By signing_key(domain, tenant): a tenant signs only with the keys of its own claim.
using signing_table = std::unordered_map<std::string, signing_entry>;
inline std::string signing_key(const std::string& domain, const id128& tenant) {
  return domain + " " + tenant.str();
}

// The table the senders actor publishes and the signer workers read without locking.
using signing_directory = published<signing_table>;

class delivery_log;

struct services {
  store_actor store;
  resolver_actor resolver;
  egress_actor egress;
  domains_actor domains;
  ingest_actor ingest;
  senders_actor senders;
  signer_actor signers;
  tenants_actor tenants;
  bounces_actor bounces;
  controls_actor controls;
  events_actor events;
  cluster_actor cluster;  // null without a cluster
  root_actor root;
};

class service_directory : public published<services> {};

// How a site wants its SMTP session run: where to connect, from where, with what limits.
struct session_target {
  std::string host;     // MX or relay host name
  std::string address;  // IP to connect to
  std::uint16_t port = 0;  // 0: the plan's port
  std::vector<tlsa_record> tlsa;  // DANE: the host's usable TLSA records (see mx_host)
};

struct session_plan {
  std::vector<session_target> targets;  // in order
  std::string source_name;
  std::string site_name;  // for the per-site session gauge
  std::string bind_address;
  std::string ehlo_name;
  std::uint16_t port = 25;
  tls_mode tls = tls_mode::opportunistic;
  bool verify_certificate = false;
  std::string auth_username;  // a relay's SMTP AUTH (empty: none)
  std::string auth_password;
  std::uint32_t max_deliveries = 100;
  std::chrono::milliseconds idle_timeout{5000};
  delivery_settings timeouts;  // the *_timeout fields
  // Cluster: the final dot of a job is sent only while its partition is held (null: always).
  std::shared_ptr<const partition_leases> leases;
};

struct delivery_runtime;
// Starts one SMTP session for a site actor, with its first job. The session reports back to the
// site by message (outcome, next, closed, connfail: the site_actor interface).
using session_entry = std::function<void(const std::shared_ptr<delivery_runtime>& runtime, site_actor site,
                                         std::uint64_t session_id, session_plan plan, delivery_work first)>;
// The real one: a session on the I/O threads (actors/site_session.cpp).
void start_smtp_session(const std::shared_ptr<delivery_runtime>& runtime, site_actor site,
                        std::uint64_t session_id, session_plan plan, delivery_work first);
// The sandbox's: answers by address at once, connects nowhere (actors/sandbox_session.cpp).
void start_sandbox_session(const std::shared_ptr<delivery_runtime>& runtime, site_actor site,
                           std::uint64_t session_id, session_plan plan, delivery_work first);

// What delivery runs on besides the actors: the I/O context (SMTP sessions), the DNS client
// and the TLS context. Made by the composition root, shared by the delivery actors.
struct delivery_runtime {
  boost::asio::io_context* io = nullptr;
  std::shared_ptr<dns_client> dns;
  std::shared_ptr<boost::asio::ssl::context> tls;        // SMTP sessions
  std::shared_ptr<boost::asio::ssl::context> https_tls;  // MTA-STS policy fetches (verified)
  std::shared_ptr<boost::asio::ssl::context> webhook_tls;  // webhook POSTs (verified; webhooks.ca_file)
  std::string hostname;  // default EHLO name
  // How sites start SMTP sessions: start_smtp_session, or a scripted session in component tests.
  session_entry start_session = start_smtp_session;
};

// The limits a site actor applies, for a route's MX hosts (actors/policy/site_limits.hpp).
inline std::vector<std::string> mx_host_names(const route& r) {
  std::vector<std::string> names;
  names.reserve(r.hosts.size());
  for (const auto& h : r.hosts) names.push_back(h.name);
  return names;
}
inline site_limits site_limits_for(const delivery_settings& d, const route& r) {
  return site_limits_for(d, mx_host_names(r), r.sts_enforced);
}
inline const site_policy* site_policy_for(const delivery_settings& d, const route& r) {
  return site_policy_for(d, mx_host_names(r));
}

// An egress source as the site actors use it.
struct egress_source {
  std::string name;
  std::string address;
  std::string ehlo_name;
};
// The sources this node sends from: those without a node and those of this node (a cluster's
// node_name); the implicit "default" when none is configured at all.
std::vector<egress_source> egress_sources_from(const config& cfg, const std::string& hostname);
// Every source name the pools may use, this node's and the other nodes'.
std::vector<std::string> egress_source_names(const config& cfg);
// The node that has a source, when it is another node's ("" when it is this node's or unknown).
std::string remote_node_of(const egress_settings& egress, const std::string& self_node, const std::string& source);

// Opens a store; called again when the store actor is restarted after a crash.
using store_factory = std::function<std::unique_ptr<store>()>;

// The node's configuration as the actors see it: built at start by the composition root
// (app/server.cpp), and built anew by each live reload (SIGHUP, POST /admin/reload). An
// instance never changes: a reload publishes another one (shared_components::live), which each
// actor takes up when told (refresh_config). Shared by every actor through node_settings::config
// (a pointer to const), not a copy per actor.
struct node_config {
  storage_settings storage;
  tenant_settings tenants;
  reputation_settings reputation;
  actor_settings actors;
  dns_config dns;
  delivery_settings delivery;
  std::vector<egress_source> sources;
  egress_settings egress;
  shaping_settings shaping;
  queue_settings queue;
  std::shared_ptr<const pool_table> pools = std::make_shared<pool_table>();
  // delivery.relays and delivery.routes, with the relays' passwords read at start.
  std::shared_ptr<const routing_table> routing = std::make_shared<routing_table>();
  dkim_config dkim;
  domains_config domains;
  mta_sts_config mta_sts;
  bounces_config bounces;
  events_config events;
  webhooks_config webhooks;
  cluster_settings cluster;
  // Classifies every failure (the operator's rules, then the shipped ones).
  std::shared_ptr<const bounce_classifier> classifier;
  std::string bounce_secret;  // HMAC key of VERP tokens and unsubscribe links; may be empty
  tracking_settings tracking;
  std::string tracking_secret;  // HMAC key of tracking tokens; empty when tracking is off
  // Response rules (compiled once; may be empty).
  std::shared_ptr<const response_rules> responses;
  std::string key_encryption_key;  // 32 bytes, or empty (keys stored as plain PEM)
  bool store_detached = true;  // false under CAF's deterministic test scheduler
  bool deliver = true;         // false: recipients stay queued (component tests without I/O)
};

// The configuration in force: the one given at start, then each reload's. Null until the
// composition root publishes one (component tests run without).
class config_directory {
 public:
  std::shared_ptr<const node_config> get() const { return current_.load(); }
  void set(std::shared_ptr<const node_config> c) { current_.store(std::move(c)); }

 private:
  std::atomic<std::shared_ptr<const node_config>> current_;
};

// The state that more than one actor (or an actor and another thread) shares. Everything else
// an actor knows is its own and changes only by messages. Each component has one writer; readers
// take a snapshot or an atomic count and never wait on the writer. docs/architecture.md
// ("Shared runtime components") says for each why it is shared and what it becomes in a cluster.
struct shared_components {
  // The suspensions in force. Writer: the controls actor, after the change is stored.
  // Readers: domain and site actors (before each hand-out and connection), HTTP handlers.
  std::shared_ptr<control_directory> controls = std::make_shared<control_directory>();
  // Each tenant's weight in the fair rotation, and its name (the routing table may name
  // tenants). Writer: the tenants supervisor (on load and on tenant changes). Readers: domain
  // actors, when they enqueue a recipient.
  std::shared_ptr<weight_directory> weights = std::make_shared<weight_directory>();
  // Recipients waiting, per tenant and in total. Writers: domain actors (+1 on enqueue, -1 when
  // final or handed to another node). Readers: tenant actors (shaping.max_waiting_* admission).
  std::shared_ptr<backlog_counter> backlog = std::make_shared<backlog_counter>();
  // Sender domains' DKIM keys by signing_key(domain, tenant). Writer: the senders actor.
  // Readers: signer workers (at submission) and site actors (per-recipient List-Unsubscribe).
  std::shared_ptr<signing_directory> signing = std::make_shared<signing_directory>();
  // log.delivery_log, or null. Writers: domain actors (one line per attempt, serialized by its
  // mutex) and the signal handler (reopen on SIGHUP).
  std::shared_ptr<delivery_log> attempts_log;
  // The current actor handles. Writer: the root supervisor, after every (re)start. Readers: the
  // actors that must reach a service started after them (domain actors -> tenants, sites ->
  // controls) and the HTTP handlers.
  std::shared_ptr<const service_directory> directory;
  // Cluster: the partitions this node holds, in which epoch and until when (empty without a
  // cluster). Writer: the cluster actor. Readers: domain actors (before handing out jobs) and
  // SMTP sessions (before the final dot).
  std::shared_ptr<partition_leases> leases = std::make_shared<partition_leases>();
  // Cluster: this node's own node actor (published on cluster.listen), which the cluster actor
  // introduces to the nodes it dials. Writer: the composition root, before the actors start.
  std::shared_ptr<const caf::actor> endpoint;
  // Cluster: how many nodes are live (1 without a cluster). Writer: the cluster actor, every
  // round. Readers: tenant actors, which admit their share of a tenant's rate (rate / live).
  std::shared_ptr<std::atomic<std::uint32_t>> live_nodes = std::make_shared<std::atomic<std::uint32_t>>(1);
  // Each tenant's delivered, hard-bounced and complained counts over reputation.window. Writers:
  // domain actors (attempt outcomes) and the bounces actor (complaints, asynchronous bounces),
  // never for the sandbox. Reader: the tenants supervisor's reputation guard.
  std::shared_ptr<reputation_book> reputation = std::make_shared<reputation_book>();
  // The configuration in force. Writer: the composition root (at start and at each reload,
  // followed by controls_atom to the domains and egress supervisors and load_atom to the
  // tenants). Readers: every actor, through refresh_config when told or before a decision.
  std::shared_ptr<config_directory> live = std::make_shared<config_directory>();
};

// What every actor is given: the configuration (shared, immutable) and the shared components.
// Copying it copies pointers only.
struct node_settings {
  std::shared_ptr<const node_config> config = std::make_shared<const node_config>();
  shared_components shared;
};

// Takes up a reloaded configuration: true when `s.config` changed (the caller then derives
// again what it derived from the old one). Work already started keeps what it has.
inline bool refresh_config(node_settings& s) {
  auto now = s.shared.live ? s.shared.live->get() : nullptr;
  if (!now || now == s.config) return false;
  s.config = std::move(now);
  return true;
}

restart_limits restart_limits_from(const actor_settings& a);

// Each spawns the actor linked to `parent` when given, else unlinked from `sys`.
store_actor spawn_store(caf::actor_system& sys, caf::local_actor* parent, store_factory open,
                        std::unique_ptr<store> opened, const node_settings& settings);
resolver_actor spawn_resolver(caf::actor_system& sys, caf::local_actor* parent,
                              std::shared_ptr<delivery_runtime> runtime, const dns_config& dns,
                              const mta_sts_config& sts, const delivery_settings& delivery,
                              std::shared_ptr<const routing_table> routing,
                              std::shared_ptr<config_directory> live = nullptr);
// Looks up a domain's MTA-STS record and, when its id is not `cached_id`, fetches the policy;
// reports (sts_atom, domain, sts_result) to the resolver (actors/mta_sts_discovery.cpp).
void start_mta_sts_discovery(const std::shared_ptr<delivery_runtime>& runtime,
                             resolver_actor resolver, std::string domain, std::string cached_id,
                             mta_sts_config config);
egress_actor spawn_egress(caf::actor_system& sys, caf::local_actor* parent,
                          std::shared_ptr<delivery_runtime> runtime, store_actor store,
                          const node_settings& settings);
site_actor spawn_site(caf::actor_system& sys, caf::local_actor* parent,
                      std::shared_ptr<delivery_runtime> runtime, store_actor store,
                      egress_source source, std::shared_ptr<source_gate> gate, route initial,
                      site_limits limits, const node_settings& settings);
domains_actor spawn_domains(caf::actor_system& sys, caf::local_actor* parent, store_actor store,
                            resolver_actor resolver, egress_actor egress,
                            const node_settings& settings);
// Cluster mode only: leases and partitions on PostgreSQL (actors/cluster_actor.cpp).
// The node actor the other nodes announce recipients to (published on cluster.listen by the
// composition root; actors/cluster_actor.cpp).
node_actor spawn_node_endpoint(caf::actor_system& sys, std::shared_ptr<const service_directory> directory,
                               std::shared_ptr<const node_config> config);
// Changes that other nodes make reach this node's controls, tenants and events actors.
cluster_actor spawn_cluster(caf::actor_system& sys, caf::local_actor* parent, domains_actor domains,
                            egress_actor egress, controls_actor controls, tenants_actor tenants,
                            events_actor events, const node_settings& settings);
ingest_actor spawn_ingest(caf::actor_system& sys, caf::local_actor* parent, store_actor store,
                          domains_actor domains, const node_settings& settings);
tenants_actor spawn_tenants(caf::actor_system& sys, caf::local_actor* parent, store_actor store,
                            signer_actor signers, const node_settings& settings);
tenant_actor spawn_tenant(caf::actor_system& sys, caf::local_actor* parent, tenant_record record,
                          store_actor store, signer_actor signers, const node_settings& settings);
senders_actor spawn_senders(caf::actor_system& sys, caf::local_actor* parent, store_actor store,
                            std::shared_ptr<delivery_runtime> runtime, const node_settings& settings);
// The controls (actors/controls_actor.cpp).
controls_actor spawn_controls(caf::actor_system& sys, caf::local_actor* parent, store_actor store,
                              domains_actor domains, egress_actor egress,
                              const node_settings& settings);
// The event log's keeper: webhook endpoints and retention (actors/webhooks_actor.cpp).
events_actor spawn_events(caf::actor_system& sys, caf::local_actor* parent, store_actor store,
                          std::shared_ptr<delivery_runtime> runtime, const node_settings& settings);
// POSTs a signed webhook batch on the I/O threads (actors/webhook_post.cpp): resolves the
// host, refuses non-public addresses unless allowed, and answers `to` with
// (post_atom, generation, HTTP status or 0, error).
struct webhook_post {
  std::string url;  // as configured; parsed again here
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;
  std::chrono::milliseconds timeout{10000};
  bool allow_private = false;
  bool allow_http = false;
};
void start_webhook_post(const std::shared_ptr<delivery_runtime>& runtime, webhook_actor to,
                        std::uint64_t generation, webhook_post post);

// The bounce processor (actors/bounces_actor.cpp).
bounces_actor spawn_bounces(caf::actor_system& sys, caf::local_actor* parent, store_actor store,
                            tenants_actor tenants, const node_settings& settings);
// The signing pool: one front actor that hands each submission to its workers in turn.
signer_actor spawn_signers(caf::actor_system& sys, caf::local_actor* parent, ingest_actor ingest,
                           const node_settings& settings);

// Runs a sender domain's DNS verification on the I/O threads and reports it to the senders
// actor as (verify_atom, name, domain_check) (actors/domain_verification.cpp).
void start_domain_verification(const std::shared_ptr<delivery_runtime>& runtime,
                               senders_actor senders, sender_domain_record domain, std::string name,
                               std::vector<std::string> egress_addresses, domains_config config);
domain_actor spawn_domain(caf::actor_system& sys, caf::local_actor* parent, std::string domain,
                          store_actor store, resolver_actor resolver, egress_actor egress,
                          domains_actor supervisor, const node_settings& settings,
                          partition_grant claim = {});

// The root: starts store, domains, ingest and tenants in that order, keeps the directory
// current. `opened` is the store main() already opened and migrated (fail fast at start).
root_actor spawn_root(caf::actor_system& sys, store_factory open, std::unique_ptr<store> opened,
                      node_settings settings, std::shared_ptr<service_directory> directory,
                      std::shared_ptr<delivery_runtime> runtime);

}  // namespace petrel
