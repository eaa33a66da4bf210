// The map of Petrel's actors: every actor interface, every message type and atom, and the one
// register_types() every binary calls. Read this file to know who talks to whom.
//
//   root (rest-for-one) ─┬─ store     (detached) group-commits writes ─ reader[n] (detached)
//                        ├─ resolver  MX and address lookups (c-ares on the I/O threads), caches
//                        ├─ egress    supervisor ─ egress[source] ─ site[source, MX site]
//                        ├─ domains   supervisor ─ domain[name]: each waiting recipient's schedule
//                        ├─ ingest    bounds in-flight writes, persists submissions, routes them
//                        ├─ senders   (detached) sender domains, DKIM keys, DNS verification
//                        ├─ signers   pool ─ signer[n]: DKIM signatures at submission
//                        ├─ tenants   supervisor + API-key directory ─ tenant[id]
//                        ├─ bounces   inbound bounces and feedback reports, unsubscribes
//                        ├─ controls  suspensions (operators, response rules), published
//                        ├─ events    event retention ─ webhook[endpoint]: signed batches
//                        └─ cluster   (cluster mode, detached) leases and partitions on
//                                     PostgreSQL; tells domains which partitions are held
//
// The root restarts a crashed child and every child started after it (rest-for-one), since
// later children hold handles of earlier ones. The domains, tenants, egress and events
// supervisors restart their own children one by one (restart_policy: backoff and intensity).
// Restarted actors rebuild their state from the store.
//
// Delivery flows by credit: a domain actor with due recipients asks its site actor for
// credit (demand), the site grants as much as its bounded ready queue can take (credit), the
// domain answers with that many jobs (jobs), the site's SMTP sessions run them, and each
// outcome goes back to the domain (outcome), which commits it and schedules retries.
//
// Work on the I/O threads (coroutines, actors/services.hpp) reports back by message:
// start_smtp_session (a site's SMTP session), start_mta_sts_discovery (the resolver's policy
// fetch), start_domain_verification (the senders' DNS checks), start_webhook_post (one
// webhook batch); the HTTP and SMTP listeners reach actors through app/actor_bridge.hpp.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <caf/fwd.hpp>
#include <caf/allowed_unsafe_message_type.hpp>
#include <caf/atom.hpp>
#include <caf/actor_addr.hpp>
#include <caf/error.hpp>
#include <caf/meta/type_name.hpp>
#include <caf/replies_to.hpp>
#include <caf/typed_actor.hpp>

#include "actors/policy/reputation.hpp"
#include "net/dns.hpp"
#include "net/tls_mode.hpp"
#include "storage/records.hpp"
#include "storage/store.hpp"

namespace petrel {

// -- atoms (CAF 0.17: at most 10 characters) ---------------------------------------------

using submit_atom = caf::atom_constant<caf::atom("submit")>;
using auth_atom = caf::atom_constant<caf::atom("auth")>;
using message_atom = caf::atom_constant<caf::atom("message")>;
using persist_atom = caf::atom_constant<caf::atom("persist")>;
using commit_atom = caf::atom_constant<caf::atom("commit")>;
using enqueue_atom = caf::atom_constant<caf::atom("enqueue")>;
using load_atom = caf::atom_constant<caf::atom("load")>;
using domains_atom = caf::atom_constant<caf::atom("domains")>;
using stats_atom = caf::atom_constant<caf::atom("stats")>;
using crash_atom = caf::atom_constant<caf::atom("crash")>;
using restart_atom = caf::atom_constant<caf::atom("restart")>;
using ready_atom = caf::atom_constant<caf::atom("ready")>;
using shutdown_atom = caf::atom_constant<caf::atom("shutdown")>;
using tenant_atom = caf::atom_constant<caf::atom("tenant")>;
using key_atom = caf::atom_constant<caf::atom("key")>;
using create_atom = caf::atom_constant<caf::atom("create")>;
using list_atom = caf::atom_constant<caf::atom("list")>;
using revoke_atom = caf::atom_constant<caf::atom("revoke")>;
using bootstrap_atom = caf::atom_constant<caf::atom("bootstrap")>;
using retire_atom = caf::atom_constant<caf::atom("retire")>;
using recover_atom = caf::atom_constant<caf::atom("recover")>;
using resolve_atom = caf::atom_constant<caf::atom("resolve")>;
using mx_atom = caf::atom_constant<caf::atom("mx")>;
using sts_atom = caf::atom_constant<caf::atom("sts")>;
using address_atom = caf::atom_constant<caf::atom("address")>;
using site_atom = caf::atom_constant<caf::atom("site")>;
using demand_atom = caf::atom_constant<caf::atom("demand")>;
using credit_atom = caf::atom_constant<caf::atom("credit")>;
using jobs_atom = caf::atom_constant<caf::atom("jobs")>;
using outcome_atom = caf::atom_constant<caf::atom("outcome")>;
using next_atom = caf::atom_constant<caf::atom("next")>;
using closed_atom = caf::atom_constant<caf::atom("closed")>;
using connfail_atom = caf::atom_constant<caf::atom("connfail")>;
using record_atom = caf::atom_constant<caf::atom("record")>;
using route_atom = caf::atom_constant<caf::atom("route")>;
using wake_atom = caf::atom_constant<caf::atom("wake")>;
using rotate_atom = caf::atom_constant<caf::atom("rotate")>;
using verify_atom = caf::atom_constant<caf::atom("verify")>;
using sender_atom = caf::atom_constant<caf::atom("sender")>;
using suppress_atom = caf::atom_constant<caf::atom("suppress")>;
using bounce_atom = caf::atom_constant<caf::atom("bounce")>;
using inbound_atom = caf::atom_constant<caf::atom("inbound")>;
using unsub_atom = caf::atom_constant<caf::atom("unsub")>;
using suspend_atom = caf::atom_constant<caf::atom("suspend")>;
using resume_atom = caf::atom_constant<caf::atom("resume")>;
using controls_atom = caf::atom_constant<caf::atom("controls")>;
using cancel_atom = caf::atom_constant<caf::atom("cancel")>;
using flush_atom = caf::atom_constant<caf::atom("flush")>;
using blocked_atom = caf::atom_constant<caf::atom("blocked")>;
using egress_atom = caf::atom_constant<caf::atom("egress")>;
using webhook_atom = caf::atom_constant<caf::atom("webhook")>;
using pending_atom = caf::atom_constant<caf::atom("pending")>;
using post_atom = caf::atom_constant<caf::atom("post")>;
using partition_atom = caf::atom_constant<caf::atom("partition")>;
using drain_atom = caf::atom_constant<caf::atom("drain")>;
using cluster_atom = caf::atom_constant<caf::atom("cluster")>;
using announce_atom = caf::atom_constant<caf::atom("announce")>;
using metrics_atom = caf::atom_constant<caf::atom("metrics")>;
using prune_atom = caf::atom_constant<caf::atom("prune")>;
using guard_atom = caf::atom_constant<caf::atom("guard")>;

// -- errors ------------------------------------------------------------------------------

// Petrel's error category. The HTTP layer maps each code to a status; the context carries a
// human-readable detail and, where it applies, how long a client should wait (Retry-After).
enum class petrel_errc : std::uint8_t {
  unauthorized = 1,   // unknown or revoked API key           -> 401
  not_found = 2,      // no such object for this tenant        -> 404
  rate_limited = 3,   // over the tenant's rate                 -> 429
  overloaded = 4,     // too many writes waiting for the store  -> 503
  store_failed = 5,   // the store could not commit             -> 503
  unavailable = 6,    // an actor is restarting or not ready    -> 503
  conflict = 7,       // a unique name or key already exists    -> 409
  suspended = 8,      // the tenant is suspended                -> 403
  invalid = 9,        // a request the actor rejects            -> 400
  forbidden = 10,     // not allowed for this tenant            -> 403
};
std::string to_string(petrel_errc code);
caf::error make_error(petrel_errc code, std::string detail, std::int64_t retry_after_ms = 0);
// Reads back what make_error() put in; false when the error is not Petrel's.
bool read_error(const caf::error& e, petrel_errc& code, std::string& detail,
                std::int64_t& retry_after_ms);

// -- message types -------------------------------------------------------------------------

// One recipient in the answer to a submission.
struct receipt_recipient {
  std::string email;
  id128 id;
  std::string status;  // "queued"
};

// The answer to an accepted (durably stored) submission.
struct submit_receipt {
  id128 message_id;
  id128 tenant_id;
  std::vector<receipt_recipient> recipients;
};

// Who an API key belongs to.
struct tenant_identity {
  id128 tenant_id;
  std::string name;
};

// A tenant to create through the admin API.
struct new_tenant {
  std::string name;
  double rate_per_second = 0;  // 0: configured default
  std::uint32_t burst = 0;     // 0: configured default
  bool sandbox = false;
};

// Changes to a tenant's settings; only the fields marked set are applied.
struct tenant_patch {
  bool set_rate = false;
  double rate_per_second = 0;  // 0: back to the configured default
  bool set_burst = false;
  std::uint32_t burst = 0;
  bool set_suspended = false;
  bool suspended = false;
  bool set_pool = false;
  std::string pool;  // "" the default pool
  bool set_weight = false;
  std::uint32_t weight = 1;
  bool set_sandbox = false;
  bool sandbox = false;
  // Tracking (PUT /v1/tracking); a new tracking domain starts unverified.
  bool set_tracking_opens = false;
  bool tracking_opens = false;
  bool set_tracking_clicks = false;
  bool tracking_clicks = false;
  bool set_tracking_record_ip = false;
  bool tracking_record_ip = false;
  bool set_tracking_domain = false;
  std::string tracking_domain;  // "" none
  // A check's result (POST /v1/tracking/verify) for the domain it checked (tracking_domain):
  // refused (conflict) when the tenant's domain changed meanwhile.
  bool set_tracking_check = false;
  bool tracking_verified = false;
  std::int64_t tracking_checked_at_ms = 0;
  std::string tracking_status;
};

// A newly issued API key: the secret is in api_key and is never shown again.
struct issued_key {
  api_key_record key;
  std::string api_key;
};

struct created_tenant {
  tenant_record tenant;
  issued_key key;
};

// A tenant as the admin API lists it.
// The reputation guard's view of one sender domain of a tenant.
struct sender_domain_reputation {
  std::string domain;
  reputation_counts counts;
  std::string state = "ok";  // "ok", "warning", or "paused" (it paused the tenant)
};

struct tenant_summary {
  tenant_record tenant;
  std::vector<api_key_record> keys;  // active keys (hash omitted)
  // The reputation guard's view: counts over reputation.window, and "ok", "warning" or "paused".
  reputation_counts reputation;
  std::string reputation_state = "ok";
  std::vector<sender_domain_reputation> sender_domains;  // by name
};

// The waiting recipients of one destination domain.
// The persisted warm-up state of the egress sources.
struct egress_state {
  std::vector<std::string> sources;           // with a warm-up start ...
  std::vector<std::int64_t> warmup_started;   // ... at this time
  std::vector<egress_usage_record> usage;
};

// A webhook endpoint as the API shows it: the record (secret only in the answer to its
// creation), when it is tried next, and how many events were waiting when last counted.
struct webhook_status {
  webhook_record record;
  std::int64_t next_attempt_ms = 0;
  std::uint64_t backlog = 0;
};

struct tenant_count {
  std::string tenant;  // id
  std::uint64_t waiting = 0;
};

// One egress path of a domain: its due recipients for one source and where they stand.
struct lane_stats {
  std::string source;
  std::string site;
  std::uint64_t due = 0;        // ready, waiting for credit
  std::uint64_t in_flight = 0;  // in jobs at the site
  std::string blocked;          // why the lane takes no work ("" when it does)
  std::int64_t blocked_until_ms = 0;
};

// A reply a domain's attempts got lately (the same reply in a row counts up).
struct reply_note {
  std::int64_t at_ms = 0;  // the latest time
  std::string outcome;     // delivered, deferred, bounced, ...
  std::string reply;
  std::uint64_t count = 0;
};

struct domain_queue_stats {
  std::string domain;
  std::uint64_t queued = 0;    // never attempted
  std::uint64_t deferred = 0;  // attempted, waiting for a retry
  std::int64_t oldest_ms = 0;  // creation time of the oldest waiting recipient
  std::int64_t next_attempt_ms = 0;
  std::uint64_t due = 0;        // ready now
  std::uint64_t in_flight = 0;  // at a site
  std::string waiting_for;      // the limit that binds now ("" when nothing waits)
  std::vector<lane_stats> lanes;
  std::vector<tenant_count> tenants;  // waiting per tenant
  std::uint64_t in_memory = 0;  // of those waiting, held in memory (the rest is in the store)
  std::vector<reply_note> last_replies;  // newest first, at most 5
};

// What a site actor reports for the admin views.
struct site_stats {
  std::string source;
  std::string site;
  std::uint64_t sessions = 0;
  std::uint32_t connection_limit = 0;      // in force now (adaptive, throttled)
  std::uint32_t max_connection_limit = 0;  // configured
  std::uint64_t ready = 0;
  std::uint64_t loading = 0;
  std::uint64_t credit_out = 0;
  std::string waiting_for;  // rate, connections, suspended, warm-up, down, ""
  std::int64_t blocked_until_ms = 0;
  double message_rate = 0;  // configured messages/s in force (0: unlimited)
};

// What the egress view shows of a source.
// A warm-up budget of a source at the sites matching a pattern.
struct site_warmup_stats {
  std::string site;
  std::uint32_t day = 0;
  std::uint64_t per_day = 0, per_hour = 0, used_today = 0, used_this_hour = 0;
};

struct source_stats {
  std::string name;
  std::string address;
  double message_rate = 0;
  bool warmup = false;
  std::uint32_t warmup_day = 0;
  std::uint64_t per_day = 0, per_hour = 0, used_today = 0, used_this_hour = 0;
  std::int64_t warmup_started_ms = 0;
  std::uint64_t sent_last_minute = 0;
  std::vector<site_stats> sites;
  std::vector<site_warmup_stats> site_warmups;
};

struct queue_summary {
  std::vector<domain_queue_stats> domains;  // sorted by domain
  std::uint64_t domain_actors = 0;
  std::uint64_t restarting = 0;  // domain actors waiting to be restarted
};

// -- cluster -------------------------------------------------------------------------------

// A partition this node holds, in the epoch it claimed it with.
struct partition_grant {
  std::uint32_t partition = 0;
  std::int64_t epoch = 0;
};

// A member of the cluster as the partitions table and the nodes table show it.
struct cluster_member {
  std::string name;
  std::string advertise;
  bool live = false;
  std::int64_t lease_left_ms = 0;  // negative: expired that long ago
  std::uint64_t partitions = 0;    // held with a valid lease
};

struct cluster_partition_view {
  std::uint32_t id = 0;
  std::string owner;
  std::int64_t epoch = 0;
  bool lease_valid = false;
};

// One node's part of a cluster-wide admin view (local only: from the cluster actor to the
// admin API): what the node answered over its link, or why it did not.
struct node_report {
  std::string node;
  std::string error;  // "" when it answered
  queue_summary queues;
  std::vector<source_stats> sources;
  std::string metrics;  // Prometheus text
};

// GET /admin/cluster: what this node's cluster actor saw in its last round.
struct cluster_view {
  bool enabled = false;
  std::string node;
  bool draining = false;
  std::uint32_t partition_count = 0;
  std::vector<cluster_member> members;
  std::vector<cluster_partition_view> partitions;
  std::int64_t last_round_at_ms = 0;   // unix ms
  std::int64_t round_duration_ms = 0;  // the last round's time in PostgreSQL
  std::string error;                   // the last round's failure ("" when it worked)
};

// -- delivery ------------------------------------------------------------------------------

// One MX host of a route, with its addresses in the order to try.
struct mx_host {
  std::string name;
  std::vector<std::string> addresses;
  std::uint16_t port = 0;  // 0: delivery.port (a route of the routing table may name one)
  // DANE (delivery.dane): the host's usable TLSA records when DNSSEC validated the MX, the
  // host's addresses and the TLSA records; then TLS must match them (net/smtp_client.hpp).
  std::vector<tlsa_record> tlsa;
};

enum class route_status : std::uint8_t {
  ok = 0,         // hosts to deliver to
  temporary = 1,  // DNS failed for now: defer
  permanent = 2,  // NXDOMAIN, null MX, no mail host: bounce
};

// How to reach a destination domain: its MX hosts (RFC 5321 5.1) and site; or, for a route of
// the routing table, its relay or fixed hosts.
struct route {
  route_status status = route_status::temporary;
  std::string error;  // why, when not ok
  std::string site;   // site name (see net/mx.hpp)
  std::vector<mx_host> hosts;
  std::int64_t expires_at_ms = 0;
  // MTA-STS (RFC 8461): the domain's policy mode ("" when none) and MX patterns; enforced
  // when the domain actor applies an enforce policy (then only TLS with a valid certificate).
  std::string sts_mode;
  std::vector<std::string> sts_mx;
  bool sts_enforced = false;
  // The routing table's relay this route goes to ("" none): its TLS mode and SMTP AUTH come
  // from the relay's configuration on the node that sends (the password never travels).
  std::string relay;
};

// What MTA-STS discovery found for a domain (computed on the I/O threads).
struct sts_result {
  bool found = false;      // a _mta-sts record exists
  bool unchanged = false;  // its id is the cached policy's: no fetch was needed
  std::string id;
  std::string mode;
  std::vector<std::string> mx;
  std::uint32_t max_age = 0;
  std::string error;       // the record or policy could not be had
};

// One SMTP transaction's worth of work: recipients of one message in one domain.
struct delivery_job {
  std::uint64_t job_id = 0;  // unique within its domain actor
  id128 message_id;
  id128 tenant_id;
  std::string domain;
  std::vector<id128> recipient_ids;
  std::int64_t expires_at_ms = 0;  // created + max_age: past it, the job expires unsent
  caf::actor_addr owner;           // the domain actor that gets the outcome
  // Cluster: the domain's partition and the epoch its owner holds (0: no cluster). The session
  // sends the final dot only while this node still holds it (partition_leases).
  std::uint32_t partition = 0;
  std::int64_t epoch = 0;
  std::string sender_domain;  // the message's From domain, once the site loaded it (reputation)
};

// What happened to one recipient in one attempt.
struct recipient_result {
  id128 recipient_id;
  int code = 0;              // SMTP reply code; 0 when there was no reply
  std::string enhanced;      // RFC 3463 code from the reply
  std::string reply;         // the reply text, or the transport error
  bool expired = false;      // not attempted: past its expiry while waiting
  bool suppressed = false;   // not attempted: the address is suppressed by now
  bool force_bounce = false; // a response rule says: final, whatever the reply class
  std::string address;       // the recipient's address, when the site knew it
  std::string command;       // the command the reply answered: MAIL, RCPT, DATA ("" no reply)
};

// Where and how an attempt was made (for events).
struct attempt_details {
  std::string mx_host;
  std::string mx_address;
  std::string source;          // egress source name
  std::string source_address;  // local address of the connection
  bool tls = false;
  std::string tls_version;
  std::string tls_cipher;
  bool dane = false;  // the certificate matched the host's DNSSEC-validated TLSA records
  std::string simulated;  // the sandbox's simulated outcome ("" a real attempt; actors/policy/sandbox.hpp)
  std::string sender_domain;  // the message's From domain (set by the site; reputation per sender domain)
};

struct job_outcome {
  std::uint64_t job_id = 0;
  std::vector<recipient_result> recipients;
  attempt_details attempt;
};

// A job with what the SMTP session needs to run it. Travels only inside this process.
struct delivery_work {
  delivery_job job;
  std::string mail_from;
  std::vector<std::string> addresses;
  std::shared_ptr<const std::string> content;
  bool needs_smtputf8 = false;
  std::vector<recipient_result> skipped;  // suppressed: reported with the job's outcome
};

// How a site hands the next job to a waiting SMTP session: the session's own continuation,
// called once (from the site actor) with the work or with nothing. Local only.
struct work_completion {
  std::function<void(std::optional<delivery_work>)> fn;
};

// -- bounces and suppressions --------------------------------------------------------------

// Any write to the store (local only): one operation, committed with the next batch.
struct write_request {
  write_op op;
};

// Suppressions of a tenant: one address (a suppression_key) or, when address is empty, a page
// in address order after `after`, optionally of one reason.
struct suppression_query {
  id128 tenant_id;
  std::string address;
  std::string reason;
  std::string after;
  std::uint64_t limit = 100;
};

// A tenant's suppressions and soft-bounce streaks, as its actor loads them at start.
struct suppression_snapshot {
  std::vector<suppression_record> suppressions;
  std::vector<soft_bounce_streak> streaks;
};

// Recipients to find for an asynchronous bounce: by id (VERP), else by the Message-ID header
// of their message.
struct recipient_query {
  id128 recipient_id;
  std::string message_id_header;
};

// A tenant's Idempotency-Key: its stored answer, while it has not expired (now_ms).
struct idempotency_query {
  id128 tenant_id;
  std::string key;
  std::int64_t now_ms = 0;
};

// The waiting recipients of a tenant's message, or of its messages with a batch id (the
// sender cancels them).
struct cancel_query {
  id128 tenant_id;
  id128 message_id;      // empty: by batch_id
  std::string batch_id;
};
struct cancel_targets {
  std::uint64_t messages = 0;  // messages found (0: no such message or batch of the tenant)
  std::vector<queued_recipient> waiting;
};

// A message to the bounce processor: from the inbound SMTP listener or POST /v1/inbound.
struct inbound_message {
  std::string envelope_from;
  std::vector<std::string> envelope_to;  // the accepted RCPT TO addresses (VERP tokens)
  std::string content;
  id128 tenant_id;     // a tenant's POST /v1/inbound: only its messages match; else any
  std::string origin;  // "smtp <peer address>" or "api"
};

// What the bounce processor made of one recipient of an inbound message.
struct inbound_outcome {
  id128 recipient_id;
  id128 message_id;
  std::string address;
  std::string event;     // bounced or complained
  std::string category;  // of a bounce; the feedback type of a complaint
  bool hard = false;
  bool suppressed = false;
  std::string bounce_reason;  // of a bounce: Sisimai's reason name (net/mail/bounce.hpp)
};

struct inbound_result {
  std::string kind;  // delivery_failure, delivery_delayed, feedback, auto_reply, not_a_report
  std::string note;  // why nothing was recorded, if nothing was
  std::vector<inbound_outcome> outcomes;
};

// -- sender domains ------------------------------------------------------------------------

// A sender domain to add: new keys of the given algorithms, or an imported key.
struct new_sender_domain {
  std::string domain;                   // ASCII, lower case
  std::vector<std::string> algorithms;  // rsa-sha256, ed25519-sha256; empty: configured default
  std::string selector;                 // empty: generated
  std::string private_key_pem;          // import instead of generating (needs selector)
};

// A DNS record the sender should publish.
struct dns_record_view {
  std::string type;     // TXT, MX
  std::string name;
  std::string value;
  std::string purpose;  // dkim, spf, dmarc, return_path
};

// A sender domain as the API shows it: never with private keys.
struct sender_domain_view {
  sender_domain_record domain;  // keys' private_key emptied
  std::vector<dns_record_view> records;
};

// What a verification run found (computed on the I/O threads).
struct domain_check {
  bool verified = false;
  std::string status_json;  // the report: dkim per selector, spf, dmarc, return_path
};

// Whether the node can take traffic, and if not, why.
struct readiness {
  bool ready = false;
  std::string reason;
};

// -- actor interfaces ----------------------------------------------------------------------

// A store reader: one more database connection for reads, so that reads never wait behind a
// commit. The store actor hands its reads to its readers in turn.
using store_reader_actor = caf::typed_actor<
    // All tenants and their active keys.
    caf::replies_to<load_atom, tenant_atom>::with<std::vector<tenant_record>,
                                                  std::vector<api_key_record>>,
    // (tenant id, message id) -> the message with recipients and events, or not_found.
    caf::replies_to<message_atom, id128, id128>::with<message_details>,
    // Domains with waiting recipients, after the given one, at most n. -> sorted names
    caf::replies_to<domains_atom, std::string, std::uint64_t>::with<std::vector<std::string>>,
    // A domain's waiting recipients summed up per class (tenant, priority); a page of one
    // class in due order (the paged queues).
    caf::replies_to<load_atom, std::string, stats_atom>::with<std::vector<queue_class_summary>>,
    caf::replies_to<load_atom, queue_page_query>::with<queue_page>,
    // (message id, recipient ids) -> what their delivery needs, or not_found.
    caf::replies_to<load_atom, id128, std::vector<id128>>::with<delivery_content>,
    // Every sender domain with its keys.
    caf::replies_to<load_atom, sender_atom>::with<std::vector<sender_domain_record>>,
    // Suppressions: one address or a page; a tenant's unexpired suppressions and soft-bounce
    // streaks; the recipients of an asynchronous bounce; the controls in force; warm-up starts
    // and usage counters of the egress sources.
    caf::replies_to<load_atom, suppression_query>::with<std::vector<suppression_record>>,
    caf::replies_to<load_atom, suppress_atom, id128>::with<suppression_snapshot>,
    caf::replies_to<load_atom, recipient_query>::with<std::vector<recipient_lookup>>,
    caf::replies_to<load_atom, idempotency_query>::with<std::vector<idempotency_record>>,
    caf::replies_to<load_atom, cancel_query>::with<cancel_targets>,
    caf::replies_to<load_atom, template_query>::with<std::vector<template_record>>,
    // Where a tracking token leads: none or one target.
    caf::replies_to<load_atom, tracking_query>::with<std::vector<tracking_target>>,
    caf::replies_to<load_atom, message_search>::with<std::vector<message_record>>,
    caf::replies_to<load_atom, controls_atom>::with<std::vector<control_record>>,
    caf::replies_to<load_atom, egress_atom>::with<egress_state>,
    // A page of a tenant's events; every webhook; how many events follow a position
    // (tenant, types, after, cap).
    caf::replies_to<load_atom, event_query>::with<std::vector<event_view>>,
    caf::replies_to<load_atom, webhook_atom>::with<std::vector<webhook_record>>,
    caf::replies_to<pending_atom, id128, std::string, std::int64_t, std::uint64_t>::with<std::uint64_t>,
    caf::replies_to<load_atom, stats_query>::with<std::vector<stats_row>>>;

// The store: owns the write connection on its own thread; batches concurrent writes into one
// transaction and answers each writer after the commit (nothing is acknowledged before it is
// durable). It answers every read of a reader too, by handing it to one of its readers.
using store_actor = store_reader_actor::extend<
    // Stores a message, its recipients and its accepted event. -> ok after commit
    caf::replies_to<persist_atom, message_record>::with<caf::ok_atom>,
    // Creates a tenant together with its first API key. -> ok after commit
    caf::replies_to<persist_atom, tenant_record, api_key_record>::with<caf::ok_atom>,
    // Adds an API key to an existing tenant. -> ok after commit
    caf::replies_to<persist_atom, api_key_record>::with<caf::ok_atom>,
    // Revokes (key id, tenant id). -> ok, or not_found
    caf::replies_to<revoke_atom, id128, id128>::with<caf::ok_atom>,
    // Writes a tenant's rate, burst and suspension. -> ok after commit
    caf::replies_to<caf::update_atom, tenant_record>::with<caf::ok_atom>,
    // Does the store accept commits now? (the last commit's outcome, or a probe write when
    // nothing was committed for a few seconds) -> readiness with the store's error when not
    caf::replies_to<ready_atom>::with<readiness>,
    // Commits what has been batched (sent to itself behind queued writes).
    caf::reacts_to<commit_atom>,
    // Recipient state changes with their events. -> ok after commit
    caf::replies_to<record_atom, std::vector<recipient_update>>::with<caf::ok_atom>,
    // Commits what is pending, closes the database and quits.
    caf::replies_to<shutdown_atom>::with<caf::ok_atom>,
    // Fault injection: the next n commits fail as if the disk had failed.
    caf::reacts_to<crash_atom, std::uint64_t>,
    // Sender domains: add one with its keys; add a key; a key's new state; a verification
    // result (id, verified, checked at, report); remove one. -> ok after commit
    caf::replies_to<persist_atom, sender_domain_record>::with<caf::ok_atom>,
    caf::replies_to<persist_atom, dkim_key_record>::with<caf::ok_atom>,
    caf::replies_to<record_atom, id128, std::string>::with<caf::ok_atom>,
    caf::replies_to<verify_atom, id128, bool, std::int64_t, std::string>::with<caf::ok_atom>,
    caf::replies_to<caf::delete_atom, id128>::with<caf::ok_atom>,
    // An event that belongs to no delivery attempt (domain verification, ...). -> ok
    caf::replies_to<record_atom, event_record>::with<caf::ok_atom>,
    // Any other write (suppressions, soft-bounce streaks). -> ok after commit, or conflict
    caf::replies_to<persist_atom, write_request>::with<caf::ok_atom>>;

// A site: the path from one egress source to one set of MX hosts. It runs at most
// connection_limit SMTP sessions, hands each at most max_deliveries_per_connection jobs, and
// grants credit so that no more jobs wait than its bounded ready queue holds.
using site_actor = caf::typed_actor<
    // A domain actor has n jobs due and wants credit for them.
    caf::reacts_to<demand_atom, std::uint64_t>,
    // A domain actor's jobs, sent against credit (fewer than granted returns the rest).
    caf::reacts_to<jobs_atom, std::uint64_t, std::vector<delivery_job>>,
    // The latest route (hosts may change with DNS).
    caf::reacts_to<route_atom, route>,
    // From sessions: a finished job; a session that ended; a session that could not connect.
    caf::reacts_to<outcome_atom, std::uint64_t, job_outcome>,
    caf::reacts_to<closed_atom, std::uint64_t, std::string>,
    caf::reacts_to<connfail_atom, std::uint64_t, std::string>,
    // From a session: give me the next job (or none, after the idle timeout).
    caf::reacts_to<next_atom, std::uint64_t, work_completion>,
    // Timers.
    caf::reacts_to<caf::tick_atom, std::uint64_t>,
    // Counts for the admin API.
    caf::replies_to<stats_atom>::with<site_stats>,
    // Controls changed: hold back or release work.
    caf::reacts_to<controls_atom>,
    // Timer: a rate or budget wait is over (generation).
    caf::reacts_to<wake_atom, std::uint64_t>>;

// A node's endpoint for the other nodes, published on cluster.listen through CAF's middleman
// (TLS with mutual certificates unless the network is declared private). Every message type
// here is registered on both sides (register_types).
// One link per pair of nodes: the node whose name sorts first dials, then introduces itself
// (its name and its own node actor) over that connection, so both sides can send.
using node_actor = caf::typed_actor<
    // Recipients another node accepted, announced to the owner of their partition. Nothing
    // depends on an announcement arriving: the owner's repair scan finds what was lost.
    caf::reacts_to<announce_atom, std::vector<queued_recipient>>,
    // The dialling node introduces itself: its name and node actor.
    caf::reacts_to<cluster_atom, std::string, caf::actor>,
    // (source of this node, route) -> its site actor, for a domain owned by another node whose
    // pool has this node's source: the owner then runs the demand/credit protocol with it.
    caf::replies_to<site_atom, std::string, route>::with<site_actor>,
    // Admin, cluster-wide views: this node's queues, egress and metrics (Prometheus text).
    caf::replies_to<stats_atom>::with<queue_summary>,
    caf::replies_to<egress_atom>::with<std::vector<source_stats>>,
    caf::replies_to<metrics_atom>::with<std::string>>;

// The other members as the cluster actor sees them (local only: from the cluster actor to the
// domains supervisor and the egress supervisor): the owner's node actor by partition, for
// announcements, and every linked node's by name, for remote sources (null / missing: not
// known or not linked now).
struct partition_routes {
  std::vector<node_actor> owners;
  std::map<std::string, node_actor> nodes;
};

// A destination domain: holds the schedule of its waiting recipients. Started on demand,
// it loads its recipients from the store first, so a restart loses nothing.
using domain_actor = caf::typed_actor<
    // (batch number, new durable recipients) from the domains supervisor.
    caf::reacts_to<enqueue_atom, std::uint64_t, std::vector<queued_recipient>>,
    // Counts for the admin API.
    caf::replies_to<stats_atom>::with<domain_queue_stats>,
    // Timer: idle check (the generation number makes stale timers harmless).
    caf::reacts_to<caf::tick_atom, std::uint64_t>,
    // From the supervisor, after an idle report it accepted: quit now.
    caf::reacts_to<retire_atom>,
    // Fault injection: throw, so that the supervisor restarts the actor.
    caf::reacts_to<crash_atom>,
    // Timer: recipients may be due (generation number as for tick).
    caf::reacts_to<wake_atom, std::uint64_t>,
    // From the site: send up to n jobs now.
    caf::reacts_to<credit_atom, std::uint64_t>,
    // From the site: the result of one job.
    caf::reacts_to<outcome_atom, job_outcome>,
    // Timer: commit these outcomes again, the store failed (attempt number).
    caf::reacts_to<record_atom, std::vector<recipient_update>, std::int32_t>,
    // Controls changed: look again at what may be sent.
    caf::reacts_to<controls_atom>,
    // From a site: it takes no work until then (reason, until unix ms; "" = free again).
    caf::reacts_to<blocked_atom, std::string, std::int64_t>,
    // Admin: cancel waiting recipients (of this tenant; empty: all) -> how many
    caf::replies_to<cancel_atom, id128, std::string>::with<std::uint64_t>,
    // The sender: cancel these waiting recipients (reason) -> how many; one in flight is
    // cancelled if its attempt defers
    caf::replies_to<cancel_atom, std::vector<queued_recipient>, std::string>::with<std::uint64_t>,
    // Admin: make every deferred recipient due now -> how many
    caf::replies_to<flush_atom>::with<std::uint64_t>,
    // Cluster repair: sum up the domain's queue in the store again and read the classes that
    // hold recipients this actor was not told about (another node accepted them).
    caf::reacts_to<recover_atom>,
    // Timer: a stored recipient's due time enters the horizon; read a page (generation).
    caf::reacts_to<load_atom, std::uint64_t>,
    // Cluster handover: start no more attempts; quit once every job in flight is back and
    // every outcome committed.
    caf::reacts_to<drain_atom>>;

// The domains supervisor: routes recipients to domain actors (spawning them on demand),
// restarts crashed ones with backoff, retires idle ones, and on start recovers every domain
// that has waiting recipients.
using domains_actor = caf::typed_actor<
    // Durable recipients of one or more domains.
    caf::reacts_to<enqueue_atom, std::vector<queued_recipient>>,
    // Per-domain counts from every live domain actor.
    caf::replies_to<stats_atom>::with<queue_summary>,
    // Fault injection: crash that domain's actor. -> true if it existed
    caf::replies_to<crash_atom, std::string>::with<bool>,
    // Recovery finished? (every recovered domain actor has loaded its recipients)
    caf::replies_to<ready_atom>::with<readiness>,
    // A domain actor has loaded its waiting recipients from the store.
    caf::reacts_to<ready_atom, std::string>,
    // Timer: restart a crashed domain actor.
    caf::reacts_to<restart_atom, std::string>,
    // A domain actor is empty and has seen every batch up to this number: it may retire.
    caf::reacts_to<retire_atom, std::string, std::uint64_t>,
    // Controls changed: tell every domain actor.
    caf::reacts_to<controls_atom>,
    // Admin: the stats of one domain (not_found when it has no actor).
    caf::replies_to<stats_atom, std::string>::with<domain_queue_stats>,
    // Admin: cancel waiting recipients of a domain ("" all domains) and/or a tenant -> count
    caf::replies_to<cancel_atom, std::string, id128, std::string>::with<std::uint64_t>,
    // The sender: cancel these waiting recipients (of any domains; reason) -> how many
    caf::replies_to<cancel_atom, std::vector<queued_recipient>, std::string>::with<std::uint64_t>,
    // Admin: flush a domain ("" all) -> count made due
    caf::replies_to<flush_atom, std::string>::with<std::uint64_t>,
    // Cluster: every partition this node holds now (from the cluster actor after each round).
    // Domains of partitions no longer held stop at once; those of new ones are recovered.
    caf::reacts_to<partition_atom, std::vector<partition_grant>>,
    // Timer (cluster): look for waiting recipients of held partitions nobody announced.
    caf::reacts_to<recover_atom, std::uint64_t>,
    // Cluster: where to announce recipients of partitions held by other nodes.
    caf::reacts_to<route_atom, partition_routes>,
    // Cluster handover of a partition: its domain actors drain (see domain_actor). -> ok once
    // every one has finished
    caf::replies_to<drain_atom, std::uint32_t>::with<caf::ok_atom>>;

// The resolver: MX and address lookups with TTL caches (positive and negative, bounded), and
// concurrent lookups of one domain merged into one.
using resolver_actor = caf::typed_actor<
    // Domain (ASCII, lower case) -> how to reach it.
    caf::replies_to<resolve_atom, std::string>::with<route>,
    // DNS answers coming back from the I/O threads (internal).
    caf::reacts_to<mx_atom, std::string, mx_lookup>,
    caf::reacts_to<address_atom, std::string, address_lookup>,
    caf::reacts_to<address_atom, std::string, tlsa_lookup>,
    caf::reacts_to<sts_atom, std::string, sts_result>>;

// One egress source (IP + EHLO name), under the egress supervisor: parent of its site actors.
using egress_source_actor = caf::typed_actor<
    // (source name, route) -> the site actor for that route, started on demand.
    caf::replies_to<site_atom, std::string, route>::with<site_actor>,
    // Controls changed: tell every site.
    caf::reacts_to<controls_atom>,
    // Admin: this source with its warm-up, budget, rate and sites.
    caf::replies_to<egress_atom>::with<std::vector<source_stats>>>;

// The egress supervisor: one egress actor per configured source (IP + EHLO name), each the
// parent of its site actors.
using egress_actor = caf::typed_actor<
    // (source name or "" for the default, route) -> the site actor for it, started on demand.
    caf::replies_to<site_atom, std::string, route>::with<site_actor>,
    // Timer of the supervisor: restart the egress actor of that source.
    caf::reacts_to<restart_atom, std::string>,
    // Controls changed: tell every site.
    caf::reacts_to<controls_atom>,
    // Cluster: the linked nodes (a source of another node is asked for there).
    caf::reacts_to<route_atom, partition_routes>,
    // Admin: the sources with their warm-up, budget, rate and sites.
    caf::replies_to<egress_atom>::with<std::vector<source_stats>>,
    // Timer: store the warm-up counters.
    caf::reacts_to<caf::tick_atom>,
    // Clean stop: store the warm-up counters now. -> ok once they are committed
    caf::replies_to<shutdown_atom>::with<caf::ok_atom>>;

// The sender domains: each tenant's domains, their DKIM keys (generated or imported, parsed
// once) and DNS verification. Publishes the signing table the signers read, and re-verifies
// every domain periodically.
using senders_actor = caf::typed_actor<
    // (tenant, what) -> the new domain with the records to publish.
    caf::replies_to<create_atom, id128, new_sender_domain>::with<sender_domain_view>,
    // tenant -> its domains.
    caf::replies_to<list_atom, id128>::with<std::vector<sender_domain_view>>,
    // (tenant, domain) -> the domain, verified live through DNS now.
    caf::replies_to<verify_atom, id128, std::string>::with<sender_domain_view>,
    // (tenant, domain) -> a new key signs; the old one stays published.
    caf::replies_to<rotate_atom, id128, std::string>::with<sender_domain_view>,
    // (tenant, domain, selector) -> that key is retired (no longer signs nor needs DNS).
    caf::replies_to<retire_atom, id128, std::string, std::string>::with<sender_domain_view>,
    // (tenant, domain) -> removed with its keys.
    caf::replies_to<caf::delete_atom, id128, std::string>::with<caf::ok_atom>,
    // A verification run finished (internal, from the I/O threads).
    caf::reacts_to<verify_atom, std::string, domain_check>,
    // Timer: re-verify every domain.
    caf::reacts_to<caf::tick_atom>>;

// A DKIM signer of the pool: signs a tenant's message with the keys of its From domain, then
// hands it to ingest. Signing (RSA is ~1 ms) runs in parallel across the pool's workers.
using signer_actor = caf::typed_actor<
    caf::replies_to<submit_atom, message_record>::with<submit_receipt>>;

// Ingest: persists accepted submissions through the store (bounding the writes in flight),
// then routes their recipients to the domains supervisor.
using ingest_actor = caf::typed_actor<
    // A validated message of an authenticated tenant. -> receipt once durable
    caf::replies_to<submit_atom, message_record>::with<submit_receipt>>;

// A tenant: enforces the tenant's rate limit and suspension before ingest.
using tenant_actor = caf::typed_actor<
    caf::replies_to<submit_atom, message_record>::with<submit_receipt>,
    // A message of this tenant. -> details, or not_found
    caf::replies_to<message_atom, id128>::with<message_details>,
    // New settings (rate, burst, suspension).
    caf::reacts_to<tenant_atom, tenant_record>,
    // Suppress addresses (added or replaced). -> ok after commit
    caf::replies_to<suppress_atom, std::vector<suppression_record>>::with<caf::ok_atom>,
    // Lift a suppression (address as suppression_key forms it). -> ok, or not_found
    caf::replies_to<caf::delete_atom, suppress_atom, std::string>::with<caf::ok_atom>,
    // A final soft failure (recipient, address key or "" to look it up, source event id):
    // counts toward the address's soft-bounce streak.
    caf::reacts_to<bounce_atom, id128, std::string, std::string>,
    // Timer: load the suppression list again (after a failure).
    caf::reacts_to<load_atom>>;

// The tenants supervisor: the API-key directory (SHA-256 hex of the key -> tenant) and the
// parent of the tenant actors.
using tenants_actor = caf::typed_actor<
    // key hash -> who it is, or unauthorized
    caf::replies_to<auth_atom, std::string>::with<tenant_identity>,
    // (key hash, message) -> receipt, via the tenant actor
    caf::replies_to<submit_atom, std::string, message_record>::with<submit_receipt>,
    // (key hash, message id) -> details, via the tenant actor
    caf::replies_to<message_atom, std::string, id128>::with<message_details>,
    // Admin: create a tenant with its first key.
    caf::replies_to<create_atom, new_tenant>::with<created_tenant>,
    // Admin: another key for a tenant.
    caf::replies_to<create_atom, key_atom, id128>::with<issued_key>,
    // Admin: revoke (tenant id, key id).
    caf::replies_to<revoke_atom, id128, id128>::with<caf::ok_atom>,
    // Admin: change a tenant's rate, burst or suspension. -> the updated tenant
    caf::replies_to<caf::update_atom, id128, tenant_patch>::with<tenant_record>,
    // Admin: every tenant with its active keys.
    caf::replies_to<list_atom>::with<std::vector<tenant_summary>>,
    // First start: create the named tenant if no tenant exists. -> it, or an empty record
    caf::replies_to<bootstrap_atom, std::string>::with<created_tenant>,
    // Tenants loaded?
    caf::replies_to<ready_atom>::with<readiness>,
    // Cluster: another node changed tenants or keys; load them again from the store (a key
    // revoked there is refused here from then on).
    caf::reacts_to<load_atom>,
    // Timer: restart a crashed tenant actor.
    caf::reacts_to<restart_atom, id128>,
    // To a tenant by id: suppress addresses; lift one; a soft bounce (see tenant_actor).
    caf::replies_to<suppress_atom, id128, std::vector<suppression_record>>::with<caf::ok_atom>,
    caf::replies_to<caf::delete_atom, suppress_atom, id128, std::string>::with<caf::ok_atom>,
    caf::reacts_to<bounce_atom, id128, id128, std::string, std::string>,
    // Timer: the reputation guard looks at every tenant's rates.
    caf::reacts_to<guard_atom>>;

// The controls: suspensions of domains, sites, tenants and sources, by operators (admin API)
// and response rules (sites). Persisted, published to every delivery actor at once, expired on
// time; each operator action is also an admin_action event.
using controls_actor = caf::typed_actor<
    // Admin: suspend (kind, target, until 0 = until resumed, reason) -> the control in force
    caf::replies_to<suspend_atom, control_record>::with<control_record>,
    // Admin: resume (kind, target) -> ok, or not_found
    caf::replies_to<resume_atom, std::string, std::string>::with<caf::ok_atom>,
    // From a site's response rule (no answer): suspend, naming the rule.
    caf::reacts_to<suspend_atom, control_record, std::string>,
    // From the reputation guard: suspend a tenant's sending (one in force already stays as it
    // is). -> the control in force, once stored
    caf::replies_to<guard_atom, suspend_atom, control_record>::with<control_record>,
    // The controls in force.
    caf::replies_to<list_atom>::with<std::vector<control_record>>,
    // Cluster: another node changed the controls; load them again from the store.
    caf::reacts_to<load_atom>,
    // Timer: drop what has expired.
    caf::reacts_to<caf::tick_atom>>;

// The bounce processor: parses inbound bounces and feedback reports, finds their recipients
// (VERP token, trace header, Message-ID), records bounced / complained events and suppresses
// through the tenants. Also serves one-click unsubscribes.
using bounces_actor = caf::typed_actor<
    caf::replies_to<inbound_atom, inbound_message>::with<inbound_result>,
    // A verified unsubscribe token's recipient. -> ok once suppressed
    caf::replies_to<unsub_atom, id128>::with<caf::ok_atom>>;

// One webhook endpoint: reads its events from the store after its cursor, posts them in
// signed batches, retries with backoff, pauses when too far behind.
using webhook_actor = caf::typed_actor<
    caf::replies_to<stats_atom>::with<webhook_status>,
    caf::replies_to<resume_atom>::with<webhook_status>,
    // A new secret (given); the old one signs too for webhooks.rotation_overlap.
    caf::replies_to<rotate_atom, std::string>::with<webhook_status>,
    // Timer: poll or retry now (generation number: stale timers are ignored).
    caf::reacts_to<next_atom, std::uint64_t>,
    // The outcome of a POST (generation, HTTP status or 0, error).
    caf::reacts_to<post_atom, std::uint64_t, int, std::string>>;

// The event log's keeper: webhook endpoints (one actor each) and retention pruning.
using events_actor = caf::typed_actor<
    // A new endpoint (tenant, url, types, secret set; the secret is made when empty).
    caf::replies_to<create_atom, webhook_record>::with<webhook_status>,
    caf::replies_to<list_atom, id128>::with<std::vector<webhook_status>>,
    caf::replies_to<caf::delete_atom, id128, id128>::with<caf::ok_atom>,
    caf::replies_to<resume_atom, id128, id128>::with<webhook_status>,
    // A new secret for (tenant, webhook); "" makes one. The answer carries it.
    caf::replies_to<rotate_atom, id128, id128, std::string>::with<webhook_status>,
    // Timer: prune events past the retention.
    caf::reacts_to<caf::tick_atom>,
    // Timer: one retention pass over messages (content, then rows; storage.prune_interval).
    caf::reacts_to<prune_atom>,
    // Timer: start the endpoints that are not running (after a crash or a failed load).
    caf::reacts_to<recover_atom>>;

// The cluster actor (cluster mode only; detached: it talks to PostgreSQL): renews this node's
// lease and its partitions', balances partitions with the other live nodes, publishes what it
// holds (partition_leases) and tells the domains supervisor.
using cluster_actor = caf::typed_actor<
    // Timer: one lease round.
    caf::reacts_to<caf::tick_atom>,
    // Timer: look for changes other nodes made (controls, tenants, webhooks) and pass them on.
    caf::reacts_to<load_atom>,
    // Another node dialled this one and introduced itself: its name and node actor.
    caf::reacts_to<cluster_atom, std::string, caf::actor>,
    // Admin: the last round's view.
    caf::replies_to<cluster_atom>::with<cluster_view>,
    // Admin, cluster-wide: every live member's queues, egress or metrics (this node's too),
    // asked over the node links at once.
    caf::replies_to<stats_atom>::with<std::vector<node_report>>,
    caf::replies_to<egress_atom>::with<std::vector<node_report>>,
    caf::replies_to<metrics_atom>::with<std::vector<node_report>>,
    // Drain (SIGTERM, POST /admin/cluster/drain): leave the membership, hand every partition
    // over after its attempts in flight finish. -> ok once none is held
    caf::replies_to<drain_atom>::with<caf::ok_atom>>;

// The root supervisor (see the top of this file).
using root_actor = caf::typed_actor<
    // Every service up, the store usable, recovery done?
    caf::replies_to<ready_atom>::with<readiness>,
    // Timer: restart the children from the given position on.
    caf::reacts_to<restart_atom, std::uint64_t>,
    // Orderly stop: children in reverse order, the store's pending commits last.
    caf::replies_to<shutdown_atom>::with<caf::ok_atom>>;

// How CAF reads and writes each message type (inspect overloads): kept apart so that this file
// reads as the map.
}  // namespace petrel
#include "actors/protocol_inspect.hpp"
namespace petrel {

// Registers every message type and the error category with CAF. Call before constructing
// the actor_system, in every binary (server, tests, tools).
void register_types(caf::actor_system_config& cfg);

}  // namespace petrel

CAF_ALLOW_UNSAFE_MESSAGE_TYPE(petrel::work_completion)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(petrel::write_request)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(petrel::partition_routes)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(std::vector<petrel::node_report>)
