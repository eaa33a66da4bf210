// The store interface: everything Petrel persists goes through it. Two backends implement it
// (SQLite embedded, PostgreSQL for production and clusters) with the same semantics; the SQL
// stays portable and dialect differences live in storage/schema.cpp. A store object is used
// by one thread at a time (the store actor's), so implementations need no locking.
#pragma once

#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <variant>
#include <vector>

#include "storage/records.hpp"

namespace petrel {

// Raised by backends for failures of the database itself (I/O errors, lost connection,
// corruption). The store actor turns it into error replies; it never escapes an actor.
class store_error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Writes, applied in batches: one transaction per batch (group commit).
struct insert_message_op {
  message_record message;   // with its recipients
  event_record accepted;    // the message's "accepted" event
  std::vector<event_record> events;  // more: e.g. "suppressed" of recipients not queued
};
struct insert_tenant_op {
  tenant_record tenant;
  std::vector<api_key_record> keys;  // created with the tenant, in the same operation
};
struct insert_api_key_op {
  api_key_record key;
};
struct update_tenant_op {
  tenant_record tenant;  // everything but the name and creation time is written
};
struct update_recipients_op {
  std::vector<recipient_update> updates;
};
struct insert_sender_domain_op {
  sender_domain_record domain;  // with its keys
};
struct update_sender_domain_op {
  id128 domain_id;
  bool verified = false;
  std::int64_t checked_at_ms = 0;
  std::string status_json;
};
struct insert_dkim_key_op {
  dkim_key_record key;
};
struct update_dkim_key_op {
  id128 key_id;
  std::string state;
};
struct delete_sender_domain_op {
  id128 domain_id;
};
struct upsert_suppression_op {
  suppression_record suppression;
};
struct delete_suppression_op {
  id128 tenant_id;
  std::string address;
};
// The soft-bounce streak of an address (see the tenant actor): count 0 deletes it.
struct set_soft_bounce_op {
  id128 tenant_id;
  std::string address;
  std::uint32_t count = 0;
  std::int64_t first_at_ms = 0;
};
struct upsert_control_op {
  control_record control;
};
struct delete_control_op {
  std::string kind;
  std::string target;
};
struct set_egress_usage_op {
  egress_usage_record usage;
};
struct set_warmup_start_op {
  std::string source;
  std::int64_t started_at_ms = 0;
};
struct append_event_op {
  event_record event;
};
// Deletes events created before a time, at most `limit` of them (the newest event stays).
// An operator's flush: every waiting recipient of the domain due later than now_ms is due at
// now_ms (the domain actor moves those it holds itself).
struct flush_recipients_op {
  std::string domain;
  std::int64_t now_ms = 0;
};
struct prune_events_op {
  std::int64_t before_ms = 0;
  std::uint64_t limit = 10000;
};
// Retention (storage.content_retention, storage.retention), oldest first, at most `limit`
// messages of each kind per pass: the content of messages older than content_before_ms whose
// recipients are all final is emptied (content_pruned_at = now_ms); messages older than
// rows_before_ms whose recipients are all final are deleted with their recipients.
// Tracking rows whose tokens expired before now_ms (tracking_links, tracking_hits) go too, at
// most `limit` of each.
struct prune_messages_op {
  std::int64_t content_before_ms = 0;
  std::int64_t rows_before_ms = 0;
  std::int64_t now_ms = 0;
  std::uint64_t limit = 1000;
};
// An open or a click: counted in tracking_hits (recipient, link, machine); the first of each
// also appends `event` (its id, type and data made by the caller).
struct record_tracking_hit_op {
  tracking_hit_record hit;  // count and last_at_ms are ignored: one more hit at first_at_ms
  std::int64_t expires_ms = 0;
  event_record event;
};
// A new webhook; its cursor starts at the newest event (it gets what happens from now on).
// A template's new version (its first, or an update).
struct insert_template_op {
  template_record templ;
};
// A template, every version of it (messages that used it keep their copy).
struct delete_template_op {
  id128 tenant_id;
  id128 id;
  std::int64_t now_ms = 0;
};
struct insert_webhook_op {
  webhook_record webhook;
};
// The webhook's state, cursor and health (url, types and secret stay).
struct update_webhook_op {
  webhook_record webhook;
};
// An operator resumes a paused endpoint (its state, not its cursor): written by whichever
// node took the request; the node that posts the endpoint follows (cluster).
struct resume_webhook_op {
  id128 webhook_id;
};
struct delete_webhook_op {
  id128 tenant_id;
  id128 webhook_id;
};
// A new secret; the previous one keeps signing until previous_until_ms.
struct rotate_webhook_op {
  id128 webhook_id;
  std::string secret;
  std::string previous_secret;
  std::int64_t previous_until_ms = 0;
};
// A named value of the node's own state (node_state table): written, or replaced.
struct set_node_value_op {
  std::string name;
  std::string value;
  std::int64_t at_ms = 0;
};
struct revoke_api_key_op {
  id128 key_id;
  id128 tenant_id;
  std::int64_t revoked_at_ms = 0;
};
using write_op = std::variant<insert_message_op, insert_tenant_op, update_tenant_op,
                              insert_api_key_op, revoke_api_key_op, update_recipients_op,
                              insert_sender_domain_op, update_sender_domain_op,
                              insert_dkim_key_op, update_dkim_key_op, delete_sender_domain_op,
                              append_event_op, upsert_suppression_op, delete_suppression_op,
                              set_soft_bounce_op, upsert_control_op, delete_control_op,
                              set_egress_usage_op, set_warmup_start_op, prune_events_op,
                              insert_webhook_op, update_webhook_op, delete_webhook_op,
                              rotate_webhook_op, set_node_value_op, resume_webhook_op,
                              prune_messages_op, flush_recipients_op, insert_template_op,
                              delete_template_op, record_tracking_hit_op>;

struct store_options {
  std::string sqlite_synchronous = "full";
  int busy_timeout_ms = 5000;
};

class store {
 public:
  virtual ~store() = default;

  virtual std::string describe() const = 0;  // backend and location, for logs

  // Brings the schema to the newest version; safe to call on every start.
  virtual void migrate() = 0;
  virtual int schema_version() = 0;

  // Applies all operations in one transaction. Each operation runs under its own savepoint,
  // so one that violates a constraint fails alone: the result holds, per operation, an empty
  // string (applied) or the reason it was not. Throws store_error when the transaction as a
  // whole could not be committed; then nothing of the batch is applied.
  virtual std::vector<std::string> apply(const std::vector<write_op>& ops) = 0;

  virtual std::vector<tenant_record> load_tenants() = 0;
  // Every sender domain with its keys (retired keys included).
  virtual std::vector<sender_domain_record> load_sender_domains() = 0;
  virtual std::vector<api_key_record> load_active_api_keys() = 0;

  // The message, its recipients and events, only if it belongs to the tenant.
  virtual std::optional<message_details> find_message(const id128& tenant_id,
                                                      const id128& message_id) = 0;

  // Domains that have waiting recipients, sorted, after `after`, at most limit of them.
  virtual std::vector<std::string> pending_domains(const std::string& after,
                                                   std::size_t limit) = 0;
  // With queued_only, only those never attempted (what another node may have added since).
  virtual std::vector<queued_recipient> pending_recipients_of_domain(const std::string& domain,
                                                                     bool queued_only = false) = 0;
  // A domain's waiting recipients summed up per class (tenant, priority), and one page of a
  // class in (next attempt, id) order: the paged queues (actors/policy/queue_window.hpp).
  virtual std::vector<queue_class_summary> queue_summary(const std::string& domain) = 0;
  virtual queue_page read_queue_page(const queue_page_query& q) = 0;

  // The envelope sender, content and addresses for delivering these recipients of a message;
  // nullopt when the message or one of the recipients does not exist.
  virtual std::optional<delivery_content> load_delivery(const id128& message_id,
                                                        const std::vector<id128>& recipients) = 0;

  // A tenant's messages (message_search), without content; recipients: those the filter
  // matched (with a recipient or status filter), else none.
  virtual std::vector<message_record> search_messages(const message_search& q) = 0;
  // A tenant's templates: one version, or the newest version of each (template_query).
  virtual std::vector<template_record> find_templates(const template_query& q) = 0;
  // Where a tracking token leads: nullopt when the message has no such tracked link (or the
  // rows expired and were pruned).
  virtual std::optional<tracking_target> find_tracking_target(const tracking_query& q) = 0;
  // A tenant's Idempotency-Key while it has not expired at now_ms.
  virtual std::optional<idempotency_record> find_idempotency_key(const id128& tenant_id, const std::string& key,
                                                                 std::int64_t now_ms) = 0;
  // The waiting recipients of a tenant's message (message_id), or of its messages with this
  // batch id (message_id empty); messages: how many messages matched.
  virtual std::vector<queued_recipient> waiting_recipients_of(const id128& tenant_id, const id128& message_id,
                                                              const std::string& batch_id,
                                                              std::uint64_t& messages) = 0;

  // Suppressions of a tenant, by address after `after`, optionally of one reason, at most limit.
  virtual std::vector<suppression_record> list_suppressions(const id128& tenant_id,
                                                            const std::string& reason,
                                                            const std::string& after,
                                                            std::size_t limit) = 0;
  virtual std::optional<suppression_record> find_suppression(const id128& tenant_id,
                                                             const std::string& address) = 0;
  // Every unexpired suppression of a tenant (its actor keeps them in memory).
  virtual std::vector<suppression_record> tenant_suppressions(const id128& tenant_id,
                                                              std::int64_t now_ms) = 0;
  // Every soft-bounce streak of a tenant: (address, count, first_at_ms).
  virtual std::vector<soft_bounce_streak> tenant_soft_bounces(const id128& tenant_id) = 0;
  // A recipient by id, and the recipients of the message with this Message-ID header value.
  virtual std::optional<recipient_lookup> find_recipient(const id128& recipient_id) = 0;
  virtual std::vector<recipient_lookup> recipients_by_message_id_header(const std::string& header) = 0;

  // Controls in force (until 0 or after now).
  virtual std::vector<control_record> load_controls(std::int64_t now_ms) = 0;
  // Warm-up starts by source, and the last usage counts of every source.
  virtual std::vector<std::pair<std::string, std::int64_t>> load_warmup_starts() = 0;
  virtual std::vector<egress_usage_record> load_egress_usage() = 0;

  // A tenant's events in sequence order after q.after_seq, filtered (see event_query).
  virtual std::vector<event_view> list_events(const event_query& q) = 0;
  // How many of a tenant's events of these types (comma-separated, empty all) follow a
  // position, counting at most `cap`.
  virtual std::uint64_t count_events_after(const id128& tenant_id, const std::string& types,
                                           std::int64_t after_seq, std::uint64_t cap) = 0;
  virtual std::vector<webhook_record> load_webhooks() = 0;
  // Events counted by time bucket, type and (bounces) hardness, oldest bucket first.
  virtual std::vector<stats_row> event_stats(const stats_query& q) = 0;

  // Counts recipients per state, for readiness checks and tests.
  virtual std::uint64_t count_recipients(recipient_state state) = 0;

  // A value of the node's state (set_node_value_op), if it was ever set.
  virtual std::optional<std::string> node_value(const std::string& name) = 0;

  // Free bytes on the file system holding the database, when the backend can tell (SQLite);
  // nullopt otherwise (a PostgreSQL server's disk is its operator's to watch).
  virtual std::optional<std::uint64_t> free_bytes() { return std::nullopt; }

  // A trivial query: throws store_error when the database is not usable.
  virtual void check() = 0;
};

// Opens the store a URL names: "sqlite:<path>". Throws store_error when it cannot.
std::unique_ptr<store> open_store(const std::string& url, const store_options& options);

}  // namespace petrel
