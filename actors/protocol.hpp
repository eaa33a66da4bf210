// The map of Petrel's actors: every actor interface, every message type and atom, and the one
// register_types() every binary calls. Read this file to know who talks to whom.
//
//   root ─┬─ store     (detached) group-commits writes, answers reads
//         ├─ domains   supervisor → domain[name]: each waiting recipient's schedule
//         ├─ ingest    bounds in-flight writes, persists submissions, routes recipients
//         └─ tenants   supervisor + API-key directory → tenant[id]: rate limit, suspension
//
// The root restarts a crashed child and every child started after it (rest-for-one), since
// later children hold handles of earlier ones. The domains and tenants supervisors restart
// their own children one by one. Restarted actors rebuild their state from the store.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <caf/fwd.hpp>
#include <caf/atom.hpp>
#include <caf/error.hpp>
#include <caf/meta/type_name.hpp>
#include <caf/replies_to.hpp>
#include <caf/typed_actor.hpp>

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
};

// Changes to a tenant's settings; only the fields marked set are applied.
struct tenant_patch {
  bool set_rate = false;
  double rate_per_second = 0;  // 0: back to the configured default
  bool set_burst = false;
  std::uint32_t burst = 0;
  bool set_suspended = false;
  bool suspended = false;
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
struct tenant_summary {
  tenant_record tenant;
  std::vector<api_key_record> keys;  // active keys (hash omitted)
};

// The waiting recipients of one destination domain.
struct domain_queue_stats {
  std::string domain;
  std::uint64_t queued = 0;    // never attempted
  std::uint64_t deferred = 0;  // attempted, waiting for a retry
  std::int64_t oldest_ms = 0;  // creation time of the oldest waiting recipient
  std::int64_t next_attempt_ms = 0;
};

struct queue_summary {
  std::vector<domain_queue_stats> domains;  // sorted by domain
  std::uint64_t domain_actors = 0;
  std::uint64_t restarting = 0;  // domain actors waiting to be restarted
};

// Whether the node can take traffic, and if not, why.
struct readiness {
  bool ready = false;
  std::string reason;
};

// -- actor interfaces ----------------------------------------------------------------------

// The store: owns the database connection on its own thread; batches concurrent writes into
// one transaction and answers each writer after the commit (nothing is acknowledged before it
// is durable).
using store_actor = caf::typed_actor<
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
    // All tenants and their active keys.
    caf::replies_to<load_atom, tenant_atom>::with<std::vector<tenant_record>,
                                                  std::vector<api_key_record>>,
    // (tenant id, message id) -> the message with recipients and events, or not_found.
    caf::replies_to<message_atom, id128, id128>::with<message_details>,
    // Domains with waiting recipients, after the given one, at most n. -> sorted names
    caf::replies_to<domains_atom, std::string, std::uint64_t>::with<std::vector<std::string>>,
    // The waiting recipients of one domain.
    caf::replies_to<load_atom, std::string>::with<std::vector<queued_recipient>>,
    // Is the database usable? (a trivial query)
    caf::replies_to<ready_atom>::with<bool>,
    // Commits what has been batched (sent to itself behind queued writes).
    caf::reacts_to<commit_atom>,
    // Commits what is pending, closes the database and quits.
    caf::replies_to<shutdown_atom>::with<caf::ok_atom>,
    // Fault injection: the next n commits fail as if the disk had failed.
    caf::reacts_to<crash_atom, std::uint64_t>>;

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
    caf::reacts_to<crash_atom>>;

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
    // Recovery finished?
    caf::replies_to<ready_atom>::with<readiness>,
    // Timer: restart a crashed domain actor.
    caf::reacts_to<restart_atom, std::string>,
    // A domain actor is empty and has seen every batch up to this number: it may retire.
    caf::reacts_to<retire_atom, std::string, std::uint64_t>>;

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
    caf::reacts_to<tenant_atom, tenant_record>>;

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
    // Timer: restart a crashed tenant actor.
    caf::reacts_to<restart_atom, id128>>;

// The root supervisor (see the top of this file).
using root_actor = caf::typed_actor<
    // Every service up, the store usable, recovery done?
    caf::replies_to<ready_atom>::with<readiness>,
    // Timer: restart the children from the given position on.
    caf::reacts_to<restart_atom, std::uint64_t>,
    // Orderly stop: children in reverse order, the store's pending commits last.
    caf::replies_to<shutdown_atom>::with<caf::ok_atom>>;

// -- inspection (serialization for CAF) ---------------------------------------------------

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, id128& x) {
  return f(caf::meta::type_name("id128"), x.hi, x.lo);
}
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, tenant_record& x) {
  return f(caf::meta::type_name("tenant_record"), x.id, x.name, x.rate_per_second, x.burst,
           x.suspended, x.created_at_ms);
}
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, api_key_record& x) {
  return f(caf::meta::type_name("api_key_record"), x.id, x.tenant_id, x.key_hash, x.prefix,
           x.created_at_ms, x.revoked_at_ms);
}
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, recipient_record& x) {
  return f(caf::meta::type_name("recipient_record"), x.id, x.address, x.domain, x.kind, x.state,
           x.attempts, x.next_attempt_at_ms, x.updated_at_ms, x.last_reply);
}
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, message_record& x) {
  return f(caf::meta::type_name("message_record"), x.id, x.tenant_id, x.created_at_ms,
           x.mail_from, x.subject, x.campaign, x.tags_json, x.metadata_json, x.message_id_header,
           x.size, x.content, x.recipients);
}
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, event_record& x) {
  return f(caf::meta::type_name("event_record"), x.id, x.tenant_id, x.message_id, x.recipient_id,
           x.type, x.at_ms, x.data_json);
}
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, queued_recipient& x) {
  return f(caf::meta::type_name("queued_recipient"), x.recipient_id, x.message_id, x.tenant_id,
           x.domain, x.state, x.attempts, x.next_attempt_at_ms);
}
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, message_details& x) {
  return f(caf::meta::type_name("message_details"), x.message, x.events);
}
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, receipt_recipient& x) {
  return f(caf::meta::type_name("receipt_recipient"), x.email, x.id, x.status);
}
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, submit_receipt& x) {
  return f(caf::meta::type_name("submit_receipt"), x.message_id, x.recipients);
}
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, tenant_identity& x) {
  return f(caf::meta::type_name("tenant_identity"), x.tenant_id, x.name);
}
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, new_tenant& x) {
  return f(caf::meta::type_name("new_tenant"), x.name, x.rate_per_second, x.burst);
}
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, tenant_patch& x) {
  return f(caf::meta::type_name("tenant_patch"), x.set_rate, x.rate_per_second, x.set_burst,
           x.burst, x.set_suspended, x.suspended);
}
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, issued_key& x) {
  return f(caf::meta::type_name("issued_key"), x.key, x.api_key);
}
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, created_tenant& x) {
  return f(caf::meta::type_name("created_tenant"), x.tenant, x.key);
}
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, tenant_summary& x) {
  return f(caf::meta::type_name("tenant_summary"), x.tenant, x.keys);
}
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, domain_queue_stats& x) {
  return f(caf::meta::type_name("domain_queue_stats"), x.domain, x.queued, x.deferred,
           x.oldest_ms, x.next_attempt_ms);
}
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, queue_summary& x) {
  return f(caf::meta::type_name("queue_summary"), x.domains, x.domain_actors, x.restarting);
}
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, readiness& x) {
  return f(caf::meta::type_name("readiness"), x.ready, x.reason);
}

// Registers every message type and the error category with CAF. Call before constructing
// the actor_system, in every binary (server, tests, tools).
void register_types(caf::actor_system_config& cfg);

}  // namespace petrel
