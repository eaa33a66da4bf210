// PostgreSQL implementation of the store interface (see pg_store.hpp and store.hpp).
#include "storage/pg_store.hpp"
#include "storage/backend_support.hpp"

#include <libpq-fe.h>

#include <array>
#include <chrono>
#include <cstring>
#include <unordered_map>

#include "storage/schema.hpp"

namespace petrel {

namespace {

// An arbitrary constant naming Petrel's migration lock (pg_advisory_lock takes a bigint).
constexpr long long migration_lock_key = 7374657007LL;

using storage_detail::now_ms;
using storage_detail::operation_error;

// Every statement, prepared at connect under its index.
enum stmt : int {
  insert_message,
  insert_recipient,
  insert_event,
  insert_tenant,
  update_tenant,
  insert_key,
  revoke_key,
  update_recipient,
  select_tenants,
  select_keys,
  select_message,
  select_recipients,
  select_events,
  select_pending_domains,
  select_pending_of_domain,
  select_delivery_message,
  select_delivery_recipients,
  count_by_state,
  insert_sender_domain,
  update_sender_domain,
  insert_dkim_key,
  update_dkim_key,
  delete_dkim_keys,
  delete_sender_domain,
  select_sender_domains,
  select_dkim_keys,
  upsert_suppression,
  delete_suppression,
  delete_soft_bounce,
  upsert_soft_bounce,
  select_suppressions_page,
  select_suppression,
  select_tenant_suppressions,
  select_tenant_soft_bounces,
  select_recipient_by_id,
  select_recipients_by_message_id_header,
  upsert_control,
  delete_control,
  upsert_usage,
  insert_warmup_start,
  select_controls,
  select_warmup_starts,
  select_usage,
  select_events_page,
  select_all_events_page,
  count_events_after_seq,
  select_webhooks,
  prune_events,
  insert_webhook,
  update_webhook,
  delete_webhook,
  select_event_stats,
  rotate_webhook,
  upsert_node_value,
  select_node_value,
  update_recipient_fenced,
  insert_event_fenced,
  notify_change,
  resume_webhook,
  prune_content,
  prune_recipients,
  prune_messages,
  select_queue_summary,
  select_queue_page,
  select_queue_later,
  flush_recipients,
  delete_expired_idempotency_key,
  insert_idempotency_key,
  select_idempotency_key,
  prune_idempotency_keys,
  count_message_of_tenant,
  select_waiting_of_message,
  count_batch_messages,
  select_waiting_of_batch,
  select_templates,
  insert_template,
  delete_template,
  search_messages_by_recipient,
  search_messages_by_tenant,
  search_matching_recipients,
  insert_tracking_link,
  record_tracking_hit,
  select_tracking_target,
  select_tracking_links,
  select_tracking_hits,
  prune_tracking_links,
  prune_tracking_hits,
  stmt_count
};

constexpr std::array<const char*, stmt_count> statements = {
    "INSERT INTO messages (id, tenant_id, created_at, mail_from, subject, campaign, tags, "
    "metadata, message_id_header, size, content, bulk, from_domain, templated, batch_id) "
    "VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15)",
    "INSERT INTO recipients (id, message_id, tenant_id, address, domain, kind, state, attempts, "
    "next_attempt_at, updated_at, last_reply, pool, priority, personal, metadata) "
    "VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15)",
    "INSERT INTO events (id, tenant_id, message_id, recipient_id, type, created_at, data) "
    "VALUES ($1,$2,$3,$4,$5,$6,$7)",
    "INSERT INTO tenants (id, name, rate_per_second, burst, suspended, created_at, pool, weight, sandbox) "
    "VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9)",
    "UPDATE tenants SET rate_per_second = $1, burst = $2, suspended = $3, pool = $4, weight = $5, sandbox = $6, "
    "tracking_opens = $7, tracking_clicks = $8, tracking_record_ip = $9, tracking_domain = $10, "
    "tracking_verified = $11, tracking_checked_at = $12, tracking_status = $13 WHERE id = $14",
    "INSERT INTO api_keys (id, tenant_id, key_hash, prefix, created_at, revoked_at) "
    "VALUES ($1,$2,$3,$4,$5,$6)",
    "UPDATE api_keys SET revoked_at = $1 WHERE id = $2 AND tenant_id = $3 AND revoked_at = 0",
    "UPDATE recipients SET state = $1, attempts = $2, next_attempt_at = $3, updated_at = $4, "
    "last_reply = $5 WHERE id = $6",
    "SELECT id, name, rate_per_second, burst, suspended, created_at, pool, weight, sandbox, tracking_opens, "
    "tracking_clicks, tracking_record_ip, tracking_domain, tracking_verified, tracking_checked_at, tracking_status "
    "FROM tenants ORDER BY id",
    "SELECT id, tenant_id, key_hash, prefix, created_at, revoked_at FROM api_keys "
    "WHERE revoked_at = 0 ORDER BY id",
    "SELECT created_at, mail_from, subject, campaign, tags, metadata, message_id_header, size "
    "FROM messages WHERE id = $1 AND tenant_id = $2",
    "SELECT id, address, domain, kind, state, attempts, next_attempt_at, updated_at, last_reply "
    "FROM recipients WHERE message_id = $1 ORDER BY id",
    "SELECT id, recipient_id, type, created_at, data FROM events WHERE message_id = $1 ORDER BY id",
    // A loose index scan: one index seek per domain (PostgreSQL has no skip scan).
    "WITH RECURSIVE d(domain) AS ("
    "SELECT (SELECT MIN(domain) FROM recipients WHERE state IN ('queued', 'deferred') AND domain > $1) "
    "UNION ALL SELECT (SELECT MIN(r.domain) FROM recipients r WHERE r.state IN ('queued', 'deferred') "
    "AND r.domain > d.domain) FROM d WHERE d.domain IS NOT NULL) "
    "SELECT domain FROM d WHERE domain IS NOT NULL LIMIT $2",
    "SELECT id, message_id, tenant_id, domain, state, attempts, next_attempt_at, pool, priority, "
    "(personal <> '')::int "
    // (the first IN matches the partial index recipients_due)
    "FROM recipients WHERE state IN ('queued', 'deferred') AND state IN ('queued', $2) "
    "AND domain = $1 ORDER BY domain, id",
    "SELECT mail_from, content, tenant_id, bulk::text, from_domain, templated::text FROM messages WHERE id = $1",
    "SELECT address, domain, personal FROM recipients WHERE id = $1 AND message_id = $2",
    "SELECT COUNT(*) FROM recipients WHERE state = $1",
    "INSERT INTO sender_domains (id, tenant_id, domain, created_at, verified, checked_at, status) "
    "VALUES ($1,$2,$3,$4,$5,$6,$7)",
    "UPDATE sender_domains SET verified = $1, checked_at = $2, status = $3 WHERE id = $4",
    "INSERT INTO dkim_keys (id, domain_id, selector, algorithm, private_key, public_key, "
    "created_at, state) VALUES ($1,$2,$3,$4,$5,$6,$7,$8)",
    "UPDATE dkim_keys SET state = $1 WHERE id = $2",
    "DELETE FROM dkim_keys WHERE domain_id = $1",
    "DELETE FROM sender_domains WHERE id = $1",
    "SELECT id, tenant_id, domain, created_at, verified, checked_at, status FROM sender_domains "
    "ORDER BY domain",
    "SELECT id, domain_id, selector, algorithm, private_key, public_key, created_at, state "
    "FROM dkim_keys ORDER BY created_at, id",
    "INSERT INTO suppressions (tenant_id, address, reason, source_event, created_at, expires_at) "
    "VALUES ($1,$2,$3,$4,$5,$6) ON CONFLICT (tenant_id, address) DO UPDATE SET "
    "reason = excluded.reason, source_event = excluded.source_event, "
    "created_at = excluded.created_at, expires_at = excluded.expires_at",
    "DELETE FROM suppressions WHERE tenant_id = $1 AND address = $2",
    "DELETE FROM soft_bounces WHERE tenant_id = $1 AND address = $2",
    "INSERT INTO soft_bounces (tenant_id, address, count, first_at) VALUES ($1,$2,$3,$4) "
    "ON CONFLICT (tenant_id, address) DO UPDATE SET count = excluded.count, "
    "first_at = excluded.first_at",
    "SELECT address, reason, source_event, created_at, expires_at FROM suppressions "
    "WHERE tenant_id = $1 AND ($2 = '' OR reason = $2) AND address > $3 "
    "AND (expires_at = 0 OR expires_at > $4) ORDER BY address LIMIT $5",
    "SELECT address, reason, source_event, created_at, expires_at FROM suppressions "
    "WHERE tenant_id = $1 AND address = $2 AND (expires_at = 0 OR expires_at > $3)",
    "SELECT address, reason, source_event, created_at, expires_at FROM suppressions "
    "WHERE tenant_id = $1 AND (expires_at = 0 OR expires_at > $2)",
    "SELECT address, count, first_at FROM soft_bounces WHERE tenant_id = $1",
    "SELECT r.id, r.message_id, r.tenant_id, r.address, r.domain, r.state, r.attempts, "
    "COALESCE(m.from_domain, '') FROM recipients r LEFT JOIN messages m ON m.id = r.message_id WHERE r.id = $1",
    "SELECT r.id, r.message_id, r.tenant_id, r.address, r.domain, r.state, r.attempts, m.from_domain "
    "FROM messages m JOIN recipients r ON r.message_id = m.id "
    "WHERE m.message_id_header = $1 ORDER BY r.id LIMIT 1000",
    "INSERT INTO controls (kind, target, until_at, reason, created_at) VALUES ($1,$2,$3,$4,$5) "
    "ON CONFLICT (kind, target) DO UPDATE SET until_at = excluded.until_at, "
    "reason = excluded.reason, created_at = excluded.created_at",
    "DELETE FROM controls WHERE kind = $1 AND target = $2",
    "INSERT INTO egress_usage (source, period, period_start, count) VALUES ($1,$2,$3,$4) "
    "ON CONFLICT (source, period) DO UPDATE SET period_start = excluded.period_start, "
    "count = excluded.count",
    "INSERT INTO egress_sources (name, warmup_started_at) VALUES ($1, $2) "
    "ON CONFLICT (name) DO NOTHING",
    "SELECT kind, target, until_at, reason, created_at FROM controls "
    "WHERE until_at = 0 OR until_at > $1 ORDER BY kind, target",
    "SELECT name, warmup_started_at FROM egress_sources ORDER BY name",
    "SELECT source, period, period_start, count FROM egress_usage ORDER BY source, period",
    "SELECT e.seq, e.tenant_id, e.id, e.message_id, e.recipient_id, e.type, e.created_at, e.data, "
    "COALESCE(r.address, ''), COALESCE(m.campaign, ''), COALESCE(m.tags, '[]'), "
    "COALESCE(m.metadata, '{}'), COALESCE(r.metadata, '') FROM events e "
    "LEFT JOIN messages m ON m.id = e.message_id LEFT JOIN recipients r ON r.id = e.recipient_id "
    "WHERE e.tenant_id = $1 AND e.seq > $2 "
    "AND ($3 = '' OR e.type = ANY(string_to_array($3, ','))) "
    "AND ($4 = '' OR e.message_id = $4) AND ($5 = '' OR lower(r.address) = lower($5)) "
    "AND ($6 = '' OR m.campaign = $6) AND e.created_at >= $7::bigint AND ($8::bigint = 0 OR e.created_at < $8::bigint) "
    // The visibility horizon: sequence numbers are taken at insert, so an event of a transaction
    // still running may get a smaller one than an event already committed. Only events of
    // transactions older than every running one are returned; a cursor never passes a late one.
    "AND e.xid < pg_snapshot_xmin(pg_current_snapshot()) "
    "ORDER BY e.seq LIMIT $9",
    "SELECT e.seq, e.tenant_id, e.id, e.message_id, e.recipient_id, e.type, e.created_at, e.data, "
    "COALESCE(r.address, ''), COALESCE(m.campaign, ''), COALESCE(m.tags, '[]'), "
    "COALESCE(m.metadata, '{}'), COALESCE(r.metadata, '') FROM events e "
    "LEFT JOIN messages m ON m.id = e.message_id LEFT JOIN recipients r ON r.id = e.recipient_id "
    // Every tenant's (the admin tail); $1 stays in use for its type.
    "WHERE ($1 = $1) AND e.seq > $2 "
    "AND ($3 = '' OR e.type = ANY(string_to_array($3, ','))) "
    "AND ($4 = '' OR e.message_id = $4) AND ($5 = '' OR lower(r.address) = lower($5)) "
    "AND ($6 = '' OR m.campaign = $6) AND e.created_at >= $7::bigint AND ($8::bigint = 0 OR e.created_at < $8::bigint) "
    "AND e.xid < pg_snapshot_xmin(pg_current_snapshot()) "
    "ORDER BY e.seq LIMIT $9",
    "SELECT COUNT(*) FROM (SELECT 1 FROM events WHERE tenant_id = $1 AND seq > $2 "
    "AND ($3 = '' OR type = ANY(string_to_array($3, ','))) "
    "AND xid < pg_snapshot_xmin(pg_current_snapshot()) LIMIT $4) AS pending",
    "SELECT id, tenant_id, url, event_types, secret, created_at, state, paused_reason, cursor, "
    "last_success_at, last_error, last_error_at, failures, failing_since, delivered, previous_secret, "
    "previous_until FROM webhooks ORDER BY id",
    "DELETE FROM events WHERE seq IN (SELECT seq FROM events WHERE created_at < $1 "
    "AND seq < (SELECT MAX(seq) FROM events) ORDER BY created_at LIMIT $2)",
    "INSERT INTO webhooks (id, tenant_id, url, event_types, secret, created_at, state, "
    "paused_reason, cursor, last_success_at, last_error, last_error_at, failures, "
    "failing_since, delivered) VALUES ($1,$2,$3,$4,$5,$6,$7,'',"
    "(SELECT COALESCE(MAX(seq), 0) FROM events),0,'',0,0,0,0)",
    "UPDATE webhooks SET state = $1, paused_reason = $2, cursor = $3, last_success_at = $4, "
    "last_error = $5, last_error_at = $6, failures = $7, failing_since = $8, delivered = $9 "
    "WHERE id = $10",
    "DELETE FROM webhooks WHERE id = $1 AND tenant_id = $2",
    "SELECT (e.created_at / $4::bigint) * $4::bigint AS b, e.type, "
    "CASE WHEN e.type = 'bounced' AND (e.data::json->>'hard') = 'true' THEN 1 "
    "WHEN e.type IN ('opened', 'clicked') AND (e.data::json->>'machine') = 'true' THEN 1 ELSE 0 END AS hard, "
    "COUNT(*), COALESCE(SUM(CASE WHEN e.type = 'accepted' THEN COALESCE((e.data::json->>'recipients')::bigint, 0) "
    "ELSE 0 END), 0) FROM events e LEFT JOIN messages m ON m.id = e.message_id "
    "WHERE e.tenant_id = $1 AND e.created_at >= $2::bigint AND e.created_at < $3::bigint "
    "AND ($5 = '' OR m.campaign = $5) GROUP BY b, e.type, hard ORDER BY b",
    "UPDATE webhooks SET secret = $1, previous_secret = $2, previous_until = $3 WHERE id = $4",
    "INSERT INTO node_state (name, value, updated_at) VALUES ($1, $2, $3) "
    "ON CONFLICT (name) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
    "SELECT value FROM node_state WHERE name = $1",
    // Fenced (cluster): written only while the partition is in the writer's epoch. FOR KEY
    // SHARE holds the partition row until this transaction ends against a change of its epoch
    // (a key column: unique index partitions_epoch, migration 11), so a claim waits for it and
    // the new owner loads the recipients after these writes, never before; lease renewals
    // (no key column changes) do not wait, and cannot deadlock with a batch.
    "UPDATE recipients SET state = $1, attempts = $2, next_attempt_at = $3, updated_at = $4, "
    "last_reply = $5 WHERE id = $6 AND EXISTS (SELECT 1 FROM partitions "
    "WHERE id = $7::integer AND epoch = $8::bigint FOR KEY SHARE)",
    "INSERT INTO events (id, tenant_id, message_id, recipient_id, type, created_at, data) "
    "SELECT $1,$2,$3,$4,$5,$6,$7 WHERE EXISTS (SELECT 1 FROM partitions "
    "WHERE id = $8::integer AND epoch = $9::bigint FOR KEY SHARE)",
    // Tells every listening node (cluster) what kind of shared state changed; delivered when
    // the transaction commits, and not at all if it rolls back.
    "SELECT pg_notify('petrel_changes', $1)",
    "UPDATE webhooks SET state = 'active', paused_reason = '', failures = 0, failing_since = 0 "
    "WHERE id = $1",
    // Retention (prune_messages_op): oldest first, only messages none of whose recipients wait.
    "UPDATE messages SET content = ''::bytea, content_pruned_at = $3 WHERE id IN (SELECT m.id FROM messages m "
    "WHERE m.created_at < $1 AND m.content_pruned_at = 0 AND NOT EXISTS (SELECT 1 FROM recipients r "
    "WHERE r.message_id = m.id AND r.state IN ('queued', 'deferred')) ORDER BY m.created_at LIMIT $2)",
    "DELETE FROM recipients WHERE message_id IN (SELECT m.id FROM messages m WHERE m.created_at < $1 "
    "AND NOT EXISTS (SELECT 1 FROM recipients r WHERE r.message_id = m.id AND r.state IN "
    "('queued', 'deferred')) ORDER BY m.created_at LIMIT $2)",
    "DELETE FROM messages WHERE id IN (SELECT m.id FROM messages m WHERE m.created_at < $1 AND "
    "NOT EXISTS (SELECT 1 FROM recipients r WHERE r.message_id = m.id) ORDER BY m.created_at LIMIT $2)",
    "SELECT tenant_id, priority, COUNT(*), COUNT(*) FILTER (WHERE state = 'deferred'), MIN(id), "
    "MIN(next_attempt_at), MAX(id) FROM recipients WHERE state IN ('queued', 'deferred') AND domain = $1 "
    "GROUP BY tenant_id, priority",
    "SELECT id, message_id, tenant_id, domain, state, attempts, next_attempt_at, pool, priority, "
    "(personal <> '')::int "
    "FROM recipients WHERE state IN ('queued', 'deferred') AND domain = $1 AND tenant_id = $2 "
    "AND priority = $3 AND (next_attempt_at, id) > ($4, $5) AND next_attempt_at <= $6 "
    "ORDER BY next_attempt_at, id LIMIT $7",
    "SELECT next_attempt_at FROM recipients WHERE state IN ('queued', 'deferred') AND domain = $1 "
    "AND tenant_id = $2 AND priority = $3 AND next_attempt_at > $4 ORDER BY next_attempt_at LIMIT 1",
    "UPDATE recipients SET next_attempt_at = $2 WHERE state IN ('queued', 'deferred') "
    "AND domain = $1 AND next_attempt_at > $2",
    "DELETE FROM idempotency_keys WHERE tenant_id = $1 AND key = $2 AND expires_at <= $3",
    "INSERT INTO idempotency_keys (tenant_id, key, request_hash, message_id, status, response, created_at, "
    "expires_at) VALUES ($1,$2,$3,$4,$5,$6,$7,$8)",
    "SELECT request_hash, message_id, status, response, created_at, expires_at FROM idempotency_keys "
    "WHERE tenant_id = $1 AND key = $2 AND expires_at > $3",
    "DELETE FROM idempotency_keys WHERE ctid IN (SELECT ctid FROM idempotency_keys WHERE expires_at <= $1 "
    "LIMIT $2)",
    "SELECT COUNT(*) FROM messages WHERE id = $2 AND tenant_id = $1",
    "SELECT id, message_id, tenant_id, domain, state, attempts, next_attempt_at, pool, priority, "
    "(personal <> '')::int FROM recipients WHERE message_id = $2 AND tenant_id = $1 "
    "AND state IN ('queued', 'deferred') ORDER BY domain, id",
    "SELECT COUNT(*) FROM messages WHERE tenant_id = $1 AND batch_id = $2",
    "SELECT r.id, r.message_id, r.tenant_id, r.domain, r.state, r.attempts, r.next_attempt_at, r.pool, "
    "r.priority, (r.personal <> '')::int FROM messages m JOIN recipients r ON r.message_id = m.id "
    "WHERE m.tenant_id = $1 AND m.batch_id = $2 AND r.state IN ('queued', 'deferred') ORDER BY r.domain, r.id",
    "SELECT id, version, name, subject, parts, text_body, html_body, created_at FROM templates t "
    "WHERE tenant_id = $1 AND deleted_at = 0 AND ($2 = '' OR id = $2) "
    "AND (CASE WHEN $3::int = 0 THEN version = (SELECT MAX(version) FROM templates x WHERE x.id = t.id) "
    "ELSE version = $3::int END) ORDER BY id LIMIT 1000",
    "INSERT INTO templates (id, version, tenant_id, name, subject, parts, text_body, html_body, created_at) "
    "VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9)",
    "UPDATE templates SET deleted_at = $3 WHERE tenant_id = $1 AND id = $2 AND deleted_at = 0",
    "SELECT m.id, m.created_at, m.mail_from, m.subject, m.campaign, m.tags, m.batch_id, m.size, m.templated "
    "FROM messages m WHERE m.id IN (SELECT message_id FROM recipients WHERE tenant_id = $1 AND address = $2 "
    "AND ($3 = '' OR state = $3)) AND m.tenant_id = $1 "
    "AND ($4::bigint = 0 OR (m.created_at, m.id) < ($4::bigint, $5)) AND m.created_at >= $6::bigint "
    "AND ($7::bigint = 0 OR m.created_at < $7::bigint) AND ($8 = '' OR m.campaign = $8) "
    "AND ($9 = '' OR m.batch_id = $9) AND ($10 = '' OR m.tags::jsonb ? $10) "
    "ORDER BY m.created_at DESC, m.id DESC LIMIT $11",
    "SELECT m.id, m.created_at, m.mail_from, m.subject, m.campaign, m.tags, m.batch_id, m.size, m.templated "
    "FROM messages m WHERE m.tenant_id = $1 AND ($2 = '' OR $2 <> '') "
    "AND ($3 = '' OR EXISTS (SELECT 1 FROM recipients r WHERE r.message_id = m.id AND r.state = $3)) "
    "AND ($4::bigint = 0 OR (m.created_at, m.id) < ($4::bigint, $5)) AND m.created_at >= $6::bigint "
    "AND ($7::bigint = 0 OR m.created_at < $7::bigint) AND ($8 = '' OR m.campaign = $8) "
    "AND ($9 = '' OR m.batch_id = $9) AND ($10 = '' OR m.tags::jsonb ? $10) "
    "ORDER BY m.created_at DESC, m.id DESC LIMIT $11",
    "SELECT id, address, state FROM recipients WHERE message_id = $1 AND ($2 = '' OR address = $2) "
    "AND ($3 = '' OR state = $3) ORDER BY id LIMIT 100",
    "INSERT INTO tracking_links (message_id, link, tenant_id, url, expires_at) VALUES ($1,$2,$3,$4,$5)",
    // The hit counted; the first of (recipient, link, machine) also appends its event.
    "WITH h AS (INSERT INTO tracking_hits (recipient_id, link, machine, message_id, hits, first_at, last_at, "
    "expires_at) VALUES ($1, $2, $3, $4, 1, $5, $5, $6) ON CONFLICT (recipient_id, link, machine) DO UPDATE SET "
    "hits = tracking_hits.hits + 1, last_at = GREATEST(tracking_hits.last_at, EXCLUDED.last_at) RETURNING hits) "
    "INSERT INTO events (id, tenant_id, message_id, recipient_id, type, created_at, data) "
    "SELECT $7::text, $8::text, $4, $1, $9::text, $5, $10::text FROM h WHERE h.hits = 1",
    "SELECT l.tenant_id, l.url, l.expires_at, COALESCE(tn.tracking_record_ip, 0), COALESCE(r.address, ''), "
    "CASE WHEN r.state = 'delivered' THEN r.updated_at ELSE 0 END FROM tracking_links l "
    "LEFT JOIN tenants tn ON tn.id = l.tenant_id "
    "LEFT JOIN recipients r ON r.id = $2 AND r.message_id = l.message_id "
    "WHERE l.message_id = $1 AND l.link = $3",
    "SELECT url FROM tracking_links WHERE message_id = $1 AND link > 0 ORDER BY link",
    "SELECT recipient_id, link, machine, hits, first_at, last_at FROM tracking_hits WHERE message_id = $1 "
    "ORDER BY recipient_id, link, machine",
    "DELETE FROM tracking_links WHERE ctid IN (SELECT ctid FROM tracking_links WHERE expires_at <= $1 LIMIT $2)",
    "DELETE FROM tracking_hits WHERE ctid IN (SELECT ctid FROM tracking_hits WHERE expires_at <= $1 LIMIT $2)",
};

// Parameters of one statement: text values, except those marked binary (bytea).
class params {
 public:
  params& text(std::string v) {
    storage_.push_back(std::move(v));
    formats_.push_back(0);
    return *this;
  }
  params& id(const id128& v) { return text(v.empty() ? std::string() : v.str()); }
  params& integer(std::int64_t v) { return text(std::to_string(v)); }
  params& real(double v) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.17g", v);
    return text(buf);
  }
  params& binary(std::string v) {
    storage_.push_back(std::move(v));
    formats_.push_back(1);
    return *this;
  }
  int count() const { return static_cast<int>(storage_.size()); }
  // Pointers into the values, taken once they are all added (a vector may move its strings).
  void seal() {
    pointers_.clear();
    lengths_.clear();
    for (const auto& s : storage_) {
      pointers_.push_back(s.data());
      lengths_.push_back(static_cast<int>(s.size()));
    }
  }
  const char* const* values() const { return pointers_.data(); }
  const int* lengths() const { return lengths_.data(); }
  const int* formats() const { return formats_.data(); }

 private:
  std::vector<std::string> storage_;
  std::vector<const char*> pointers_;
  std::vector<int> lengths_;
  std::vector<int> formats_;
};

struct result_deleter {
  void operator()(PGresult* r) const { PQclear(r); }
};
using result_ptr = std::unique_ptr<PGresult, result_deleter>;

bool is_constraint(const PGresult* r) {
  const char* state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
  return state && std::strncmp(state, "23", 2) == 0;  // class 23: integrity constraint violation
}

class pg_store final : public store {
 public:
  pg_store(std::string url, const store_options&) : url_(std::move(url)) {
    auto target = url_;
    if (target.find("connect_timeout") == std::string::npos)
      target += (target.find('?') == std::string::npos ? "?" : "&") + std::string("connect_timeout=5");
    conn_ = PQconnectdb(target.c_str());
    if (PQstatus(conn_) != CONNECTION_OK) {
      std::string error = PQerrorMessage(conn_);
      PQfinish(conn_);
      conn_ = nullptr;
      while (!error.empty() && (error.back() == '\n' || error.back() == ' ')) error.pop_back();
      throw store_error("cannot connect to PostgreSQL (" + redacted() + "): " + error);
    }
    exec_simple("SET client_min_messages = warning");
  }

  ~pg_store() override {
    if (conn_) PQfinish(conn_);
  }

  std::string describe() const override { return redacted(); }

  void migrate() override {
    exec_simple(
        "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, "
        "description TEXT NOT NULL, applied_at BIGINT NOT NULL)");
    exec_simple("SELECT pg_advisory_lock(" + std::to_string(migration_lock_key) + ")");
    try {
      int current = schema_version();
      for (const auto& m : schema_migrations()) {
        if (m.version <= current) continue;
        exec_simple("BEGIN");
        try {
          for (const char* sql : m.statements)
            if (auto text = render_sql(sql, sql_dialect::postgresql); !text.empty()) exec_simple(text);
          params p;
          p.integer(m.version).text(m.description).integer(now_ms());
          exec("INSERT INTO schema_migrations (version, description, applied_at) VALUES ($1, $2, $3)", p);
          exec_simple("COMMIT");
        } catch (...) {
          exec_noexcept("ROLLBACK");
          throw;
        }
      }
    } catch (...) {
      exec_noexcept("SELECT pg_advisory_unlock(" + std::to_string(migration_lock_key) + ")");
      throw;
    }
    exec_simple("SELECT pg_advisory_unlock(" + std::to_string(migration_lock_key) + ")");
    // Statements prepared before a migration may plan against the old schema: prepare anew.
    exec_simple("DEALLOCATE ALL");
    prepare_all();
  }

  int schema_version() override {
    params none;
    auto r = exec("SELECT COALESCE(MAX(version), 0) FROM schema_migrations", none);
    return std::atoi(PQgetvalue(r.get(), 0, 0));
  }

  // Event order with several writers (a cluster): positions come from a sequence at insert,
  // so two transactions could commit them out of order, and a reader that passed a position
  // would never see the smaller one that commits later. Every write transaction takes this
  // lock first and holds it to its end: write transactions (and so their positions) are
  // serialized across nodes, a position is visible only after every smaller one has committed
  // or rolled back, and a cursor never passes an event. (One writer per node batches its
  // writes, so the lock costs a node nothing and a cluster one batch at a time.)
  static constexpr const char* event_order_lock = "SELECT pg_advisory_xact_lock(4242424201)";

  std::vector<std::string> apply(const std::vector<write_op>& ops) override {
    std::vector<std::string> results(ops.size());
    if (ops.empty()) return results;
    ensure_prepared();
    // Fast path: every statement of the batch pipelined in one transaction, one round trip.
    std::vector<std::size_t> owner;  // statement index -> operation index
    int failed_op = -1;
    {
      if (PQenterPipelineMode(conn_) != 1) throw connection_error("cannot enter pipeline mode");
      send_plain("BEGIN");
      owner.push_back(SIZE_MAX);
      send_plain(event_order_lock);
      owner.push_back(SIZE_MAX);
      for (std::size_t i = 0; i < ops.size(); ++i) {
        auto before = owner.size();
        std::visit([this](const auto& o) { send_op(o); }, ops[i]);
        owner.resize(before + pending_sends_, i);
        pending_sends_ = 0;
      }
      send_plain("COMMIT");
      owner.push_back(SIZE_MAX);
      if (PQpipelineSync(conn_) != 1) throw connection_error("pipeline sync failed");
      for (std::size_t q = 0; q < owner.size(); ++q) {
        result_ptr r(PQgetResult(conn_));
        if (!r) throw connection_error("the pipeline ended early");
        auto status = PQresultStatus(r.get());
        if (status == PGRES_FATAL_ERROR && failed_op < 0) {
          if (owner[q] == SIZE_MAX || !is_constraint(r.get())) {
            drain_pipeline();
            throw_for(r.get(), "batch");
          }
          failed_op = static_cast<int>(owner[q]);
        } else if (status == PGRES_COMMAND_OK && owner[q] != SIZE_MAX && expects_row_[q] &&
                   std::strcmp(PQcmdTuples(r.get()), "0") == 0) {
          // An update that found nothing changed nothing: that operation fails alone, and
          // the rest of the batch commits as sent.
          results[owner[q]] = expects_row_message_[q];
        }
        result_ptr end(PQgetResult(conn_));  // each query's results end with NULL
      }
      result_ptr sync(PQgetResult(conn_));
      if (!sync || PQresultStatus(sync.get()) != PGRES_PIPELINE_SYNC)
        throw connection_error("the pipeline did not end with a sync");
      PQexitPipelineMode(conn_);
      expects_row_.clear();
      expects_row_message_.clear();
      if (failed_op < 0) return results;
      std::fill(results.begin(), results.end(), std::string());
    }
    // One operation failed (a constraint, or an update that found no row): the transaction is
    // void. Replay without the pipeline, one savepoint per operation, so it fails alone.
    exec_noexcept("ROLLBACK");
    exec_simple("BEGIN");
    try {
      exec_simple(event_order_lock);
      for (std::size_t i = 0; i < ops.size(); ++i) {
        exec_simple("SAVEPOINT op");
        try {
          std::visit([this](const auto& o) { run_op(o); }, ops[i]);
          exec_simple("RELEASE SAVEPOINT op");
        } catch (const operation_error& e) {
          exec_simple("ROLLBACK TO SAVEPOINT op");
          exec_simple("RELEASE SAVEPOINT op");
          results[i] = e.what();
        }
      }
      exec_simple("COMMIT");
    } catch (...) {
      exec_noexcept("ROLLBACK");
      throw;
    }
    return results;
  }

  std::vector<tenant_record> load_tenants() override {
    params none;
    auto r = run(select_tenants, none);
    std::vector<tenant_record> out;
    for (int i = 0; i < PQntuples(r.get()); ++i) {
      tenant_record t;
      t.id = id_at(r, i, 0);
      t.name = text_at(r, i, 1);
      t.rate_per_second = std::strtod(PQgetvalue(r.get(), i, 2), nullptr);
      t.burst = static_cast<std::uint32_t>(int_at(r, i, 3));
      t.suspended = int_at(r, i, 4) != 0;
      t.created_at_ms = int_at(r, i, 5);
      t.pool = text_at(r, i, 6);
      t.weight = static_cast<std::uint32_t>(int_at(r, i, 7));
      t.sandbox = int_at(r, i, 8) != 0;
      t.tracking.opens = int_at(r, i, 9) != 0;
      t.tracking.clicks = int_at(r, i, 10) != 0;
      t.tracking.record_ip = int_at(r, i, 11) != 0;
      t.tracking.domain = text_at(r, i, 12);
      t.tracking.verified = int_at(r, i, 13) != 0;
      t.tracking.checked_at_ms = int_at(r, i, 14);
      t.tracking.status = text_at(r, i, 15);
      out.push_back(std::move(t));
    }
    return out;
  }

  std::vector<sender_domain_record> load_sender_domains() override {
    std::vector<sender_domain_record> out;
    std::unordered_map<std::string, std::size_t> index;
    params none;
    {
      auto r = run(select_sender_domains, none);
      for (int i = 0; i < PQntuples(r.get()); ++i) {
        sender_domain_record d;
        d.id = id_at(r, i, 0);
        d.tenant_id = id_at(r, i, 1);
        d.domain = text_at(r, i, 2);
        d.created_at_ms = int_at(r, i, 3);
        d.verified = int_at(r, i, 4) != 0;
        d.checked_at_ms = int_at(r, i, 5);
        d.status_json = text_at(r, i, 6);
        index[d.id.str()] = out.size();
        out.push_back(std::move(d));
      }
    }
    params none2;
    auto r = run(select_dkim_keys, none2);
    for (int i = 0; i < PQntuples(r.get()); ++i) {
      dkim_key_record k;
      k.id = id_at(r, i, 0);
      k.domain_id = id_at(r, i, 1);
      k.selector = text_at(r, i, 2);
      k.algorithm = text_at(r, i, 3);
      k.private_key = text_at(r, i, 4);
      k.public_key = text_at(r, i, 5);
      k.created_at_ms = int_at(r, i, 6);
      k.state = text_at(r, i, 7);
      auto it = index.find(k.domain_id.str());
      if (it != index.end()) out[it->second].keys.push_back(std::move(k));
    }
    return out;
  }

  std::vector<api_key_record> load_active_api_keys() override {
    params none;
    auto r = run(select_keys, none);
    std::vector<api_key_record> out;
    for (int i = 0; i < PQntuples(r.get()); ++i) {
      api_key_record k;
      k.id = id_at(r, i, 0);
      k.tenant_id = id_at(r, i, 1);
      k.key_hash = text_at(r, i, 2);
      k.prefix = text_at(r, i, 3);
      k.created_at_ms = int_at(r, i, 4);
      k.revoked_at_ms = int_at(r, i, 5);
      out.push_back(std::move(k));
    }
    return out;
  }

  std::optional<message_details> find_message(const id128& tenant_id,
                                              const id128& message_id) override {
    message_details out;
    {
      params p;
      p.id(message_id).id(tenant_id);
      auto r = run(select_message, p);
      if (PQntuples(r.get()) == 0) return std::nullopt;
      auto& m = out.message;
      m.id = message_id;
      m.tenant_id = tenant_id;
      m.created_at_ms = int_at(r, 0, 0);
      m.mail_from = text_at(r, 0, 1);
      m.subject = text_at(r, 0, 2);
      m.campaign = text_at(r, 0, 3);
      m.tags_json = text_at(r, 0, 4);
      m.metadata_json = text_at(r, 0, 5);
      m.message_id_header = text_at(r, 0, 6);
      m.size = static_cast<std::uint64_t>(int_at(r, 0, 7));
    }
    {
      params p;
      p.id(message_id);
      auto r = run(select_recipients, p);
      for (int i = 0; i < PQntuples(r.get()); ++i) {
        recipient_record rr;
        rr.id = id_at(r, i, 0);
        rr.address = text_at(r, i, 1);
        rr.domain = text_at(r, i, 2);
        rr.kind = parse_recipient_kind(text_at(r, i, 3)).value_or(recipient_kind::to);
        rr.state = parse_recipient_state(text_at(r, i, 4)).value_or(recipient_state::queued);
        rr.attempts = static_cast<std::uint32_t>(int_at(r, i, 5));
        rr.next_attempt_at_ms = int_at(r, i, 6);
        rr.updated_at_ms = int_at(r, i, 7);
        rr.last_reply = text_at(r, i, 8);
        out.message.recipients.push_back(std::move(rr));
      }
    }
    {
      params p;
      p.id(message_id);
      auto r = run(select_events, p);
      for (int i = 0; i < PQntuples(r.get()); ++i) {
        event_record e;
        e.id = id_at(r, i, 0);
        e.tenant_id = tenant_id;
        e.message_id = message_id;
        e.recipient_id = id_at(r, i, 1);
        e.type = text_at(r, i, 2);
        e.at_ms = int_at(r, i, 3);
        e.data_json = text_at(r, i, 4);
        out.events.push_back(std::move(e));
      }
    }
    {
      params p;
      p.id(message_id);
      auto r = run(select_tracking_links, p);
      for (int i = 0; i < PQntuples(r.get()); ++i) out.message.tracking_links.push_back(text_at(r, i, 0));
    }
    {
      params p;
      p.id(message_id);
      auto r = run(select_tracking_hits, p);
      for (int i = 0; i < PQntuples(r.get()); ++i)
        out.hits.push_back({id_at(r, i, 0), static_cast<std::uint16_t>(int_at(r, i, 1)), int_at(r, i, 2) != 0,
                            static_cast<std::uint64_t>(int_at(r, i, 3)), int_at(r, i, 4), int_at(r, i, 5)});
    }
    return out;
  }

  std::optional<tracking_target> find_tracking_target(const tracking_query& t) override {
    params p;
    p.id(t.message_id).id(t.recipient_id).integer(t.link);
    auto r = run(select_tracking_target, p);
    if (PQntuples(r.get()) == 0) return std::nullopt;
    return tracking_target{id_at(r, 0, 0), text_at(r, 0, 1), int_at(r, 0, 2), int_at(r, 0, 3) != 0,
                           text_at(r, 0, 4), int_at(r, 0, 5)};
  }

  std::vector<std::string> pending_domains(const std::string& after, std::size_t limit) override {
    params p;
    p.text(after).integer(static_cast<std::int64_t>(limit));
    auto r = run(select_pending_domains, p);
    std::vector<std::string> out;
    for (int i = 0; i < PQntuples(r.get()); ++i) out.push_back(text_at(r, i, 0));
    return out;
  }

  std::vector<queued_recipient> pending_recipients_of_domain(const std::string& domain,
                                                             bool queued_only) override {
    params p;
    p.text(domain).text(queued_only ? "queued" : "deferred");
    return read_queued(run(select_pending_of_domain, p));
  }

  std::vector<queue_class_summary> queue_summary(const std::string& domain) override {
    params p;
    p.text(domain);
    auto r = run(select_queue_summary, p);
    std::vector<queue_class_summary> out;
    for (int i = 0; i < PQntuples(r.get()); ++i) {
      auto all = static_cast<std::uint64_t>(int_at(r, i, 2)), deferred = static_cast<std::uint64_t>(int_at(r, i, 3));
      out.push_back({id_at(r, i, 0), static_cast<int>(int_at(r, i, 1)), all - deferred, deferred,
                     id_at(r, i, 4).time_ms(), int_at(r, i, 5), id_at(r, i, 6)});
    }
    return out;
  }

  queue_page read_queue_page(const queue_page_query& q) override {
    queue_page out;
    {
      params p;
      p.text(q.domain).id(q.tenant_id).integer(q.priority).integer(q.after_due_ms).id(q.after_id)
          .integer(q.until_ms).integer(static_cast<std::int64_t>(q.limit));
      out.recipients = read_queued(run(select_queue_page, p));
    }
    if (out.recipients.size() < q.limit) {
      params p;
      p.text(q.domain).id(q.tenant_id).integer(q.priority).integer(q.until_ms);
      auto r = run(select_queue_later, p);
      if (PQntuples(r.get()) > 0) {
        out.has_later = true;
        out.later_due_ms = int_at(r, 0, 0);
      }
    }
    return out;
  }

  template <class Result>
  std::vector<queued_recipient> read_queued(const Result& r) {
    std::vector<queued_recipient> out;
    for (int i = 0; i < PQntuples(r.get()); ++i) {
      queued_recipient q;
      q.recipient_id = id_at(r, i, 0);
      q.message_id = id_at(r, i, 1);
      q.tenant_id = id_at(r, i, 2);
      q.domain = text_at(r, i, 3);
      q.state = parse_recipient_state(text_at(r, i, 4)).value_or(recipient_state::queued);
      q.attempts = static_cast<std::uint32_t>(int_at(r, i, 5));
      q.next_attempt_at_ms = int_at(r, i, 6);
      q.pool = text_at(r, i, 7);
      q.priority = static_cast<int>(int_at(r, i, 8));
      q.alone = int_at(r, i, 9) != 0;
      out.push_back(std::move(q));
    }
    return out;
  }

  std::optional<delivery_content> load_delivery(const id128& message_id,
                                                const std::vector<id128>& recipients) override {
    delivery_content out;
    {
      params p;
      p.id(message_id);
      auto r = run(select_delivery_message, p, /*binary_result=*/true);
      if (PQntuples(r.get()) == 0) return std::nullopt;
      out.mail_from.assign(PQgetvalue(r.get(), 0, 0), static_cast<std::size_t>(PQgetlength(r.get(), 0, 0)));
      out.content.assign(PQgetvalue(r.get(), 0, 1), static_cast<std::size_t>(PQgetlength(r.get(), 0, 1)));
      auto tenant = text_at(r, 0, 2);
      if (auto parsed = id128::parse(tenant)) out.tenant_id = *parsed;
      out.bulk = text_at(r, 0, 3) != "0";
      out.from_domain = text_at(r, 0, 4);
      out.templated = text_at(r, 0, 5) != "0";
    }
    auto now = now_ms();
    for (const auto& id : recipients) {
      // By key: a batch of 10,000 recipients is not read whole for each of its attempts.
      std::string address, domain;
      {
        params p;
        p.id(id).id(message_id);
        auto r = run(select_delivery_recipients, p);
        if (PQntuples(r.get()) == 0) return std::nullopt;
        address = text_at(r, 0, 0);
        domain = text_at(r, 0, 1);
        if (out.templated) out.personal.push_back(text_at(r, 0, 2));
      }
      // The suppression check before each attempt, against the tenant's current list.
      params p;
      p.id(out.tenant_id).text(suppression_key(address, domain)).integer(now);
      auto r = run(select_suppression, p);
      out.suppressed.push_back(PQntuples(r.get()) > 0);
      out.addresses.push_back(std::move(address));
    }
    return out;
  }

  std::vector<message_record> search_messages(const message_search& f) override {
    params p;
    p.id(f.tenant_id).text(f.recipient).text(f.status).integer(f.before_created_ms).id(f.before_id)
        .integer(f.since_ms).integer(f.until_ms).text(f.campaign).text(f.batch_id).text(f.tag)
        .integer(static_cast<std::int64_t>(f.limit));
    auto r = run(f.recipient.empty() ? search_messages_by_tenant : search_messages_by_recipient, p);
    std::vector<message_record> out;
    for (int i = 0; i < PQntuples(r.get()); ++i) {
      message_record m;
      m.id = id_at(r, i, 0);
      m.tenant_id = f.tenant_id;
      m.created_at_ms = int_at(r, i, 1);
      m.mail_from = text_at(r, i, 2);
      m.subject = text_at(r, i, 3);
      m.campaign = text_at(r, i, 4);
      m.tags_json = text_at(r, i, 5);
      m.batch_id = text_at(r, i, 6);
      m.size = static_cast<std::uint64_t>(int_at(r, i, 7));
      m.templated = int_at(r, i, 8) != 0;
      out.push_back(std::move(m));
    }
    if (f.recipient.empty() && f.status.empty()) return out;
    for (auto& m : out) {
      params q;
      q.id(m.id).text(f.recipient).text(f.status);
      auto rs = run(search_matching_recipients, q);
      for (int i = 0; i < PQntuples(rs.get()); ++i) {
        recipient_record x;
        x.id = id_at(rs, i, 0);
        x.address = text_at(rs, i, 1);
        x.state = parse_recipient_state(text_at(rs, i, 2)).value_or(recipient_state::queued);
        m.recipients.push_back(std::move(x));
      }
    }
    return out;
  }

  std::vector<template_record> find_templates(const template_query& t) override {
    params p;
    p.id(t.tenant_id).id(t.id).integer(t.version);
    auto r = run(select_templates, p);
    std::vector<template_record> out;
    for (int i = 0; i < PQntuples(r.get()); ++i) {
      template_record x;
      x.id = id_at(r, i, 0);
      x.version = static_cast<std::uint32_t>(int_at(r, i, 1));
      x.tenant_id = t.tenant_id;
      x.name = text_at(r, i, 2);
      x.subject = text_at(r, i, 3);
      auto parts = int_at(r, i, 4);
      x.has_text = parts & 1;
      x.has_html = parts & 2;
      x.text = text_at(r, i, 5);
      x.html = text_at(r, i, 6);
      x.created_at_ms = int_at(r, i, 7);
      out.push_back(std::move(x));
    }
    return out;
  }

  std::optional<idempotency_record> find_idempotency_key(const id128& tenant_id, const std::string& key,
                                                         std::int64_t now_ms) override {
    params p;
    p.id(tenant_id).text(key).integer(now_ms);
    auto r = run(select_idempotency_key, p);
    if (PQntuples(r.get()) == 0) return std::nullopt;
    idempotency_record out;
    out.key = key;
    out.request_hash = text_at(r, 0, 0);
    out.message_id = id_at(r, 0, 1);
    out.status = static_cast<int>(int_at(r, 0, 2));
    out.response = text_at(r, 0, 3);
    out.created_at_ms = int_at(r, 0, 4);
    out.expires_at_ms = int_at(r, 0, 5);
    return out;
  }

  std::vector<queued_recipient> waiting_recipients_of(const id128& tenant_id, const id128& message_id,
                                                      const std::string& batch_id, std::uint64_t& messages) override {
    params p;
    if (!message_id.empty()) {
      p.id(tenant_id).id(message_id);
      messages = static_cast<std::uint64_t>(int_at(run(count_message_of_tenant, p), 0, 0));
      return read_queued(run(select_waiting_of_message, p));
    }
    p.id(tenant_id).text(batch_id);
    messages = static_cast<std::uint64_t>(int_at(run(count_batch_messages, p), 0, 0));
    return read_queued(run(select_waiting_of_batch, p));
  }

  std::vector<suppression_record> list_suppressions(const id128& tenant_id,
                                                    const std::string& reason,
                                                    const std::string& after,
                                                    std::size_t limit) override {
    params p;
    p.id(tenant_id).text(reason).text(after).integer(now_ms()).integer(static_cast<std::int64_t>(limit));
    return read_suppressions(run(select_suppressions_page, p), tenant_id);
  }

  std::optional<suppression_record> find_suppression(const id128& tenant_id,
                                                     const std::string& address) override {
    params p;
    p.id(tenant_id).text(address).integer(now_ms());
    auto found = read_suppressions(run(select_suppression, p), tenant_id);
    if (found.empty()) return std::nullopt;
    return std::move(found.front());
  }

  std::vector<suppression_record> tenant_suppressions(const id128& tenant_id,
                                                      std::int64_t now) override {
    params p;
    p.id(tenant_id).integer(now);
    return read_suppressions(run(select_tenant_suppressions, p), tenant_id);
  }

  std::vector<soft_bounce_streak> tenant_soft_bounces(const id128& tenant_id) override {
    params p;
    p.id(tenant_id);
    auto r = run(select_tenant_soft_bounces, p);
    std::vector<soft_bounce_streak> out;
    for (int i = 0; i < PQntuples(r.get()); ++i)
      out.push_back({text_at(r, i, 0), static_cast<std::uint32_t>(int_at(r, i, 1)), int_at(r, i, 2)});
    return out;
  }

  std::optional<recipient_lookup> find_recipient(const id128& recipient_id) override {
    params p;
    p.id(recipient_id);
    auto found = read_lookups(run(select_recipient_by_id, p));
    if (found.empty()) return std::nullopt;
    return std::move(found.front());
  }

  std::vector<recipient_lookup> recipients_by_message_id_header(const std::string& header) override {
    params p;
    p.text(header);
    return read_lookups(run(select_recipients_by_message_id_header, p));
  }

  std::vector<event_view> list_events(const event_query& f) override {
    params p;
    p.id(f.tenant_id).integer(f.after_seq).text(f.types).id(f.message_id).text(f.recipient)
        .text(f.campaign).integer(f.since_ms).integer(f.until_ms).integer(static_cast<std::int64_t>(f.limit));
    auto r = run(f.all_tenants ? select_all_events_page : select_events_page, p);
    std::vector<event_view> out;
    for (int i = 0; i < PQntuples(r.get()); ++i) {
      event_view v;
      v.seq = int_at(r, i, 0);
      v.event.tenant_id = id_at(r, i, 1);
      v.event.id = id_at(r, i, 2);
      v.event.message_id = id_at(r, i, 3);
      v.event.recipient_id = id_at(r, i, 4);
      v.event.type = text_at(r, i, 5);
      v.event.at_ms = int_at(r, i, 6);
      v.event.data_json = text_at(r, i, 7);
      v.recipient = text_at(r, i, 8);
      v.campaign = text_at(r, i, 9);
      v.tags_json = text_at(r, i, 10);
      v.metadata_json = text_at(r, i, 11);
      v.recipient_metadata_json = text_at(r, i, 12);
      out.push_back(std::move(v));
    }
    return out;
  }

  std::uint64_t count_events_after(const id128& tenant_id, const std::string& types,
                                   std::int64_t after_seq, std::uint64_t cap) override {
    params p;
    p.id(tenant_id).integer(after_seq).text(types).integer(static_cast<std::int64_t>(cap));
    auto r = run(count_events_after_seq, p);
    return PQntuples(r.get()) ? static_cast<std::uint64_t>(int_at(r, 0, 0)) : 0;
  }

  std::vector<stats_row> event_stats(const stats_query& f) override {
    params p;
    p.id(f.tenant_id).integer(f.since_ms).integer(f.until_ms).integer(f.bucket_ms).text(f.campaign);
    auto r = run(select_event_stats, p);
    std::vector<stats_row> out;
    for (int i = 0; i < PQntuples(r.get()); ++i)
      out.push_back({int_at(r, i, 0), text_at(r, i, 1), int_at(r, i, 2) != 0,
                     static_cast<std::uint64_t>(int_at(r, i, 3)), static_cast<std::uint64_t>(int_at(r, i, 4))});
    return out;
  }

  std::vector<webhook_record> load_webhooks() override {
    params none;
    auto r = run(select_webhooks, none);
    std::vector<webhook_record> out;
    for (int i = 0; i < PQntuples(r.get()); ++i) {
      webhook_record w;
      w.id = id_at(r, i, 0);
      w.tenant_id = id_at(r, i, 1);
      w.url = text_at(r, i, 2);
      w.event_types = text_at(r, i, 3);
      w.secret = text_at(r, i, 4);
      w.created_at_ms = int_at(r, i, 5);
      w.state = text_at(r, i, 6);
      w.paused_reason = text_at(r, i, 7);
      w.cursor = int_at(r, i, 8);
      w.last_success_at_ms = int_at(r, i, 9);
      w.last_error = text_at(r, i, 10);
      w.last_error_at_ms = int_at(r, i, 11);
      w.failures = static_cast<std::uint32_t>(int_at(r, i, 12));
      w.failing_since_ms = int_at(r, i, 13);
      w.delivered = static_cast<std::uint64_t>(int_at(r, i, 14));
      w.previous_secret = text_at(r, i, 15);
      w.previous_until_ms = int_at(r, i, 16);
      out.push_back(std::move(w));
    }
    return out;
  }

  std::vector<control_record> load_controls(std::int64_t now) override {
    params p;
    p.integer(now);
    auto r = run(select_controls, p);
    std::vector<control_record> out;
    for (int i = 0; i < PQntuples(r.get()); ++i)
      out.push_back({text_at(r, i, 0), text_at(r, i, 1), int_at(r, i, 2), text_at(r, i, 3), int_at(r, i, 4)});
    return out;
  }

  std::optional<std::string> node_value(const std::string& name) override {
    params p;
    p.text(name);
    auto r = run(select_node_value, p);
    if (PQntuples(r.get()) == 0) return std::nullopt;
    return text_at(r, 0, 0);
  }

  std::vector<std::pair<std::string, std::int64_t>> load_warmup_starts() override {
    params none;
    auto r = run(select_warmup_starts, none);
    std::vector<std::pair<std::string, std::int64_t>> out;
    for (int i = 0; i < PQntuples(r.get()); ++i) out.emplace_back(text_at(r, i, 0), int_at(r, i, 1));
    return out;
  }

  std::vector<egress_usage_record> load_egress_usage() override {
    params none;
    auto r = run(select_usage, none);
    std::vector<egress_usage_record> out;
    for (int i = 0; i < PQntuples(r.get()); ++i)
      out.push_back({text_at(r, i, 0), text_at(r, i, 1), int_at(r, i, 2),
                     static_cast<std::uint64_t>(int_at(r, i, 3))});
    return out;
  }

  std::uint64_t count_recipients(recipient_state state) override {
    params p;
    p.text(std::string(to_string(state)));
    auto r = run(count_by_state, p);
    return static_cast<std::uint64_t>(int_at(r, 0, 0));
  }

  void check() override {
    if (!conn_ || PQstatus(conn_) != CONNECTION_OK) throw connection_error("the connection is lost");
    exec_simple("SELECT 1");
  }

 private:
  // A failure of the connection or server: the whole batch fails; the caller reconnects.
  store_error connection_error(const std::string& what) const {
    std::string detail = conn_ ? PQerrorMessage(conn_) : "";
    while (!detail.empty() && (detail.back() == '\n' || detail.back() == ' ')) detail.pop_back();
    return store_error("postgresql: " + what + (detail.empty() ? "" : ": " + detail));
  }

  [[noreturn]] void throw_for(const PGresult* r, const std::string& what) {
    std::string message = r ? PQresultErrorMessage(r) : PQerrorMessage(conn_);
    while (!message.empty() && (message.back() == '\n' || message.back() == ' ')) message.pop_back();
    if (r && is_constraint(r)) throw operation_error(message);
    throw store_error("postgresql: " + what + ": " + message);
  }

  std::string redacted() const {
    // postgresql://user:secret@host/db -> postgresql://user:***@host/db
    auto out = url_;
    auto scheme = out.find("://");
    auto at = out.find('@');
    if (scheme != std::string::npos && at != std::string::npos) {
      auto colon = out.find(':', scheme + 3);
      if (colon != std::string::npos && colon < at) out.replace(colon + 1, at - colon - 1, "***");
    }
    return out;
  }

  void exec_simple(const std::string& sql) {
    result_ptr r(PQexec(conn_, sql.c_str()));
    auto status = r ? PQresultStatus(r.get()) : PGRES_FATAL_ERROR;
    if (status != PGRES_COMMAND_OK && status != PGRES_TUPLES_OK) throw_for(r.get(), sql.substr(0, 60));
  }
  void exec_noexcept(const std::string& sql) noexcept {
    if (conn_) PQclear(PQexec(conn_, sql.c_str()));
  }

  result_ptr exec(const char* sql, params& p) {
    p.seal();
    result_ptr r(PQexecParams(conn_, sql, p.count(), nullptr, p.values(), p.lengths(), p.formats(), 0));
    auto status = r ? PQresultStatus(r.get()) : PGRES_FATAL_ERROR;
    if (status != PGRES_COMMAND_OK && status != PGRES_TUPLES_OK) throw_for(r.get(), sql);
    return r;
  }

  void prepare_all() {
    for (int i = 0; i < stmt_count; ++i) {
      result_ptr r(PQprepare(conn_, name(i).c_str(), statements[static_cast<std::size_t>(i)], 0, nullptr));
      if (!r || PQresultStatus(r.get()) != PGRES_COMMAND_OK) throw_for(r.get(), "prepare");
    }
    prepared_ = true;
  }
  void ensure_prepared() {
    if (!prepared_) prepare_all();
  }
  static std::string name(int i) { return "petrel_" + std::to_string(i); }

  result_ptr run(stmt s, params& p, bool binary_result = false) {
    ensure_prepared();
    p.seal();
    result_ptr r(PQexecPrepared(conn_, name(s).c_str(), p.count(), p.values(), p.lengths(),
                                p.formats(), binary_result ? 1 : 0));
    auto status = r ? PQresultStatus(r.get()) : PGRES_FATAL_ERROR;
    if (status != PGRES_COMMAND_OK && status != PGRES_TUPLES_OK) throw_for(r.get(), statements[s]);
    return r;
  }

  // -- pipelined sends (fast path) ----------------------------------------------------------

  void send_plain(const char* sql) {
    if (PQsendQueryParams(conn_, sql, 0, nullptr, nullptr, nullptr, nullptr, 0) != 1)
      throw connection_error(std::string("cannot send ") + sql);
    expects_row_.push_back(false);
    expects_row_message_.emplace_back();
  }
  void send(stmt s, params& p, const char* expects_row = nullptr) {
    p.seal();
    if (PQsendQueryPrepared(conn_, name(s).c_str(), p.count(), p.values(), p.lengths(), p.formats(), 0) != 1)
      throw connection_error("cannot send a statement");
    ++pending_sends_;
    expects_row_.push_back(expects_row != nullptr);
    expects_row_message_.emplace_back(expects_row ? expects_row : "");
  }
  void drain_pipeline() {
    // After a fatal error: read what is left up to the sync, then leave pipeline mode.
    for (int guard = 0; guard < 1'000'000; ++guard) {
      result_ptr r(PQgetResult(conn_));
      if (r && PQresultStatus(r.get()) == PGRES_PIPELINE_SYNC) break;
      if (!r && PQstatus(conn_) != CONNECTION_OK) break;
    }
    PQexitPipelineMode(conn_);
    expects_row_.clear();
    expects_row_message_.clear();
  }

  params message_params(const message_record& m) {
    params p;
    p.id(m.id).id(m.tenant_id).integer(m.created_at_ms).text(m.mail_from).text(m.subject)
        .text(m.campaign).text(m.tags_json).text(m.metadata_json).text(m.message_id_header)
        .integer(static_cast<std::int64_t>(m.size)).binary(m.content).integer(m.bulk ? 1 : 0)
        .text(m.from_domain).integer(m.templated ? 1 : 0).text(m.batch_id);
    return p;
  }
  params recipient_params(const message_record& m, const recipient_record& r) {
    params p;
    p.id(r.id).id(m.id).id(m.tenant_id).text(r.address).text(r.domain)
        .text(std::string(to_string(r.kind))).text(std::string(to_string(r.state)))
        .integer(r.attempts).integer(r.next_attempt_at_ms).integer(r.updated_at_ms).text(r.last_reply)
        .text(r.pool).integer(r.priority).text(r.personal_json).text(r.metadata_json);
    return p;
  }
  params event_params(const event_record& e) {
    params p;
    p.id(e.id).id(e.tenant_id).id(e.message_id).id(e.recipient_id).text(e.type).integer(e.at_ms)
        .text(e.data_json);
    return p;
  }
  params tenant_params(const tenant_record& t) {
    params p;
    p.id(t.id).text(t.name).real(t.rate_per_second).integer(t.burst).integer(t.suspended ? 1 : 0)
        .integer(t.created_at_ms).text(t.pool).integer(t.weight).integer(t.sandbox ? 1 : 0);
    return p;
  }
  params tenant_update_params(const tenant_record& t) {
    params p;
    p.real(t.rate_per_second).integer(t.burst).integer(t.suspended ? 1 : 0).text(t.pool)
        .integer(t.weight).integer(t.sandbox ? 1 : 0).integer(t.tracking.opens ? 1 : 0)
        .integer(t.tracking.clicks ? 1 : 0).integer(t.tracking.record_ip ? 1 : 0).text(t.tracking.domain)
        .integer(t.tracking.verified ? 1 : 0).integer(t.tracking.checked_at_ms).text(t.tracking.status).id(t.id);
    return p;
  }
  params key_params(const api_key_record& k) {
    params p;
    p.id(k.id).id(k.tenant_id).text(k.key_hash).text(k.prefix).integer(k.created_at_ms)
        .integer(k.revoked_at_ms);
    return p;
  }
  params revoke_params(const revoke_api_key_op& op) {
    params p;
    p.integer(op.revoked_at_ms).id(op.key_id).id(op.tenant_id);
    return p;
  }
  params update_params(const recipient_update& u) {
    params p;
    p.text(std::string(to_string(u.state))).integer(u.attempts).integer(u.next_attempt_at_ms)
        .integer(u.event.at_ms).text(u.last_reply).id(u.recipient_id);
    return p;
  }

  // Each write operation is written once, as emit(op, out): out(statement, params, expects_row)
  // either pipelines the statement (send: the fast path, one round trip per batch) or runs it
  // alone (run_checked: the replay, one savepoint per operation, after a batch failed).
  template <class Op>
  void send_op(const Op& op) {
    emit(op, [this](stmt s, params& p, const char* expects_row = nullptr) { send(s, p, expects_row); });
  }
  template <class Op>
  void run_op(const Op& op) {
    emit(op, [this](stmt s, params& p, const char* expects_row = nullptr) {
      run_checked(s, p, expects_row);
    });
  }

  // Shared state other nodes keep in memory changed (see notify_change).
  template <class Out>
  void notify(const char* kind, Out& out) {
    params p;
    p.text(kind);
    out(notify_change, p);
  }

  template <class Out>
  void emit(const insert_message_op& op, Out&& out) {
    auto p = message_params(op.message);
    out(insert_message, p);
    for (const auto& r : op.message.recipients) {
      auto rp = recipient_params(op.message, r);
      out(insert_recipient, rp);
    }
    if (const auto& k = op.message.idempotency; !k.key.empty()) {
      // An expired row of the same key makes way; a live one fails the insert (the primary
      // key), and with it the whole message: a concurrent duplicate stores nothing.
      params old;
      old.id(op.message.tenant_id).text(k.key).integer(k.created_at_ms);
      out(delete_expired_idempotency_key, old);
      params kp;
      kp.id(op.message.tenant_id).text(k.key).text(k.request_hash).id(op.message.id).integer(k.status)
          .text(k.response).integer(k.created_at_ms).integer(k.expires_at_ms);
      out(insert_idempotency_key, kp);
    }
    const auto& m = op.message;
    if (m.tracking_expires_ms > 0)
      for (std::size_t i = 0; i <= m.tracking_links.size(); ++i) {
        params lp;
        lp.id(m.id).integer(static_cast<std::int64_t>(i)).id(m.tenant_id)
            .text(i == 0 ? std::string() : m.tracking_links[i - 1]).integer(m.tracking_expires_ms);
        out(insert_tracking_link, lp);
      }
    auto ep = event_params(op.accepted);
    out(insert_event, ep);
    for (const auto& e : op.events) {
      auto xp = event_params(e);
      out(insert_event, xp);
    }
  }
  template <class Out>
  void emit(const insert_tenant_op& op, Out&& out) {
    auto p = tenant_params(op.tenant);
    out(insert_tenant, p);
    for (const auto& k : op.keys) {
      auto kp = key_params(k);
      out(insert_key, kp);
    }
    notify("tenants", out);
  }
  template <class Out>
  void emit(const update_tenant_op& op, Out&& out) {
    auto p = tenant_update_params(op.tenant);
    out(update_tenant, p, "no such tenant");
    notify("tenants", out);
  }
  template <class Out>
  void emit(const insert_api_key_op& op, Out&& out) {
    auto p = key_params(op.key);
    out(insert_key, p);
    notify("tenants", out);
  }
  template <class Out>
  void emit(const revoke_api_key_op& op, Out&& out) {
    auto p = revoke_params(op);
    out(revoke_key, p, "no such active key for this tenant");
    notify("tenants", out);
  }
  params domain_params(const sender_domain_record& d) {
    params p;
    p.id(d.id).id(d.tenant_id).text(d.domain).integer(d.created_at_ms).integer(d.verified ? 1 : 0)
        .integer(d.checked_at_ms).text(d.status_json);
    return p;
  }
  params dkim_key_params(const dkim_key_record& k) {
    params p;
    p.id(k.id).id(k.domain_id).text(k.selector).text(k.algorithm).text(k.private_key)
        .text(k.public_key).integer(k.created_at_ms).text(k.state);
    return p;
  }
  params domain_update_params(const update_sender_domain_op& op) {
    params p;
    p.integer(op.verified ? 1 : 0).integer(op.checked_at_ms).text(op.status_json).id(op.domain_id);
    return p;
  }
  params key_state_params(const update_dkim_key_op& op) {
    params p;
    p.text(op.state).id(op.key_id);
    return p;
  }
  params id_param(const id128& id) {
    params p;
    p.id(id);
    return p;
  }

  template <class Out>
  void emit(const insert_sender_domain_op& op, Out&& out) {
    auto p = domain_params(op.domain);
    out(insert_sender_domain, p);
    for (const auto& k : op.domain.keys) {
      auto kp = dkim_key_params(k);
      out(insert_dkim_key, kp);
    }
  }
  template <class Out>
  void emit(const update_sender_domain_op& op, Out&& out) {
    auto p = domain_update_params(op);
    out(update_sender_domain, p, "no such sender domain");
  }
  template <class Out>
  void emit(const insert_dkim_key_op& op, Out&& out) {
    auto p = dkim_key_params(op.key);
    out(insert_dkim_key, p);
  }
  template <class Out>
  void emit(const update_dkim_key_op& op, Out&& out) {
    auto p = key_state_params(op);
    out(update_dkim_key, p, "no such key");
  }
  template <class Out>
  void emit(const delete_sender_domain_op& op, Out&& out) {
    auto k = id_param(op.domain_id);
    out(delete_dkim_keys, k);
    auto p = id_param(op.domain_id);
    out(delete_sender_domain, p, "no such sender domain");
  }

  template <class Out>
  void emit(const append_event_op& op, Out&& out) {
    auto p = event_params(op.event);
    out(insert_event, p);
  }

  params suppression_params(const suppression_record& r) {
    params p;
    p.id(r.tenant_id).text(r.address).text(r.reason).text(r.source_event).integer(r.created_at_ms)
        .integer(r.expires_at_ms);
    return p;
  }
  params address_params(const id128& tenant_id, const std::string& address) {
    params p;
    p.id(tenant_id).text(address);
    return p;
  }
  params soft_bounce_params(const set_soft_bounce_op& op) {
    params p;
    p.id(op.tenant_id).text(op.address).integer(op.count).integer(op.first_at_ms);
    return p;
  }
  template <class Out>
  void emit(const upsert_suppression_op& op, Out&& out) {
    auto p = suppression_params(op.suppression);
    out(upsert_suppression, p);
  }
  template <class Out>
  void emit(const delete_suppression_op& op, Out&& out) {
    auto p = address_params(op.tenant_id, op.address);
    out(delete_suppression, p, "no such suppression");
  }
  template <class Out>
  void emit(const set_soft_bounce_op& op, Out&& out) {
    if (op.count == 0) {
      auto p = address_params(op.tenant_id, op.address);
      out(delete_soft_bounce, p);
    } else {
      auto p = soft_bounce_params(op);
      out(upsert_soft_bounce, p);
    }
  }

  params control_params(const control_record& c) {
    params p;
    p.text(c.kind).text(c.target).integer(c.until_ms).text(c.reason).integer(c.created_at_ms);
    return p;
  }
  params pair_params(const std::string& a, const std::string& b) {
    params p;
    p.text(a).text(b);
    return p;
  }
  params usage_params(const egress_usage_record& u) {
    params p;
    p.text(u.source).text(u.period).integer(u.period_start_ms).integer(static_cast<std::int64_t>(u.count));
    return p;
  }
  params warmup_params(const set_warmup_start_op& op) {
    params p;
    p.text(op.source).integer(op.started_at_ms);
    return p;
  }
  template <class Out>
  void emit(const upsert_control_op& op, Out&& out) {
    auto p = control_params(op.control);
    out(upsert_control, p);
    notify("controls", out);
  }
  template <class Out>
  void emit(const delete_control_op& op, Out&& out) {
    auto p = pair_params(op.kind, op.target);
    out(delete_control, p, "no such suspension");
    notify("controls", out);
  }
  template <class Out>
  void emit(const set_egress_usage_op& op, Out&& out) {
    auto p = usage_params(op.usage);
    out(upsert_usage, p);
  }
  params node_value_params(const set_node_value_op& op) {
    params p;
    p.text(op.name).text(op.value).integer(op.at_ms);
    return p;
  }
  template <class Out>
  void emit(const set_node_value_op& op, Out&& out) {
    auto p = node_value_params(op);
    out(upsert_node_value, p);
  }
  template <class Out>
  void emit(const set_warmup_start_op& op, Out&& out) {
    auto p = warmup_params(op);
    out(insert_warmup_start, p);
  }

  params prune_params(const prune_events_op& op) {
    params p;
    p.integer(op.before_ms).integer(static_cast<std::int64_t>(op.limit));
    return p;
  }
  params webhook_insert_params(const webhook_record& w) {
    params p;
    p.id(w.id).id(w.tenant_id).text(w.url).text(w.event_types).text(w.secret).integer(w.created_at_ms)
        .text(w.state);
    return p;
  }
  params webhook_update_params(const webhook_record& w) {
    params p;
    p.text(w.state).text(w.paused_reason).integer(w.cursor).integer(w.last_success_at_ms).text(w.last_error)
        .integer(w.last_error_at_ms).integer(w.failures).integer(w.failing_since_ms)
        .integer(static_cast<std::int64_t>(w.delivered)).id(w.id);
    return p;
  }
  params webhook_delete_params(const delete_webhook_op& op) {
    params p;
    p.id(op.webhook_id).id(op.tenant_id);
    return p;
  }
  template <class Out>
  void emit(const flush_recipients_op& op, Out&& out) {
    params p;
    p.text(op.domain).integer(op.now_ms);
    out(flush_recipients, p);
  }
  template <class Out>
  void emit(const prune_events_op& op, Out&& out) {
    auto p = prune_params(op);
    out(prune_events, p);
  }
  template <class Out>
  void emit(const prune_messages_op& op, Out&& out) {
    params content;
    content.integer(op.content_before_ms).integer(static_cast<std::int64_t>(op.limit)).integer(op.now_ms);
    out(prune_content, content);
    params rows;
    rows.integer(op.rows_before_ms).integer(static_cast<std::int64_t>(op.limit));
    out(prune_recipients, rows);
    params messages;
    messages.integer(op.rows_before_ms).integer(static_cast<std::int64_t>(op.limit));
    out(prune_messages, messages);
    // Rows that expire by themselves, whatever the age of their message.
    for (auto expired : {prune_idempotency_keys, prune_tracking_links, prune_tracking_hits}) {
      params p;
      p.integer(op.now_ms).integer(static_cast<std::int64_t>(op.limit));
      out(expired, p);
    }
  }
  template <class Out>
  void emit(const record_tracking_hit_op& op, Out&& out) {
    const auto& h = op.hit;
    const auto& e = op.event;
    params p;
    p.id(h.recipient_id).integer(h.link).integer(h.machine ? 1 : 0).id(e.message_id).integer(h.first_at_ms)
        .integer(op.expires_ms).id(e.id).id(e.tenant_id).text(e.type).text(e.data_json);
    out(record_tracking_hit, p);
  }
  template <class Out>
  void emit(const insert_template_op& op, Out&& out) {
    const auto& t = op.templ;
    params p;
    p.id(t.id).integer(t.version).id(t.tenant_id).text(t.name).text(t.subject)
        .integer((t.has_text ? 1 : 0) | (t.has_html ? 2 : 0)).text(t.text).text(t.html).integer(t.created_at_ms);
    out(insert_template, p);
  }
  template <class Out>
  void emit(const delete_template_op& op, Out&& out) {
    params p;
    p.id(op.tenant_id).id(op.id).integer(op.now_ms);
    out(delete_template, p);
  }
  template <class Out>
  void emit(const insert_webhook_op& op, Out&& out) {
    auto p = webhook_insert_params(op.webhook);
    out(insert_webhook, p);
    notify("webhooks", out);
  }
  template <class Out>
  void emit(const update_webhook_op& op, Out&& out) {
    auto p = webhook_update_params(op.webhook);
    out(update_webhook, p, "no such webhook");
  }
  params rotate_params(const rotate_webhook_op& op) {
    params p;
    p.text(op.secret).text(op.previous_secret).integer(op.previous_until_ms).id(op.webhook_id);
    return p;
  }
  template <class Out>
  void emit(const rotate_webhook_op& op, Out&& out) {
    auto p = rotate_params(op);
    out(rotate_webhook, p, "no such webhook");
    notify("webhooks", out);
  }
  template <class Out>
  void emit(const resume_webhook_op& op, Out&& out) {
    params p;
    p.id(op.webhook_id);
    out(resume_webhook, p, "no such webhook");
    notify("webhooks", out);
  }
  template <class Out>
  void emit(const delete_webhook_op& op, Out&& out) {
    auto p = webhook_delete_params(op);
    out(delete_webhook, p, "no such webhook");
    notify("webhooks", out);
  }

  template <class Out>
  void emit(const update_recipients_op& op, Out&& out) {
    for (const auto& u : op.updates) {
      auto p = update_params(u);
      auto ep = event_params(u.event);
      if (u.epoch == 0) {
        out(update_recipient, p);
        out(insert_event, ep);
        continue;
      }
      // A fenced update that finds no row was refused: this operation fails alone (its event
      // is not written either), and its writer learns that the partition is lost.
      p.integer(u.partition).integer(u.epoch);
      ep.integer(u.partition).integer(u.epoch);
      out(update_recipient_fenced, p, fenced_write);
      out(insert_event_fenced, ep);
    }
  }

  // -- one at a time (slow path after a failed batch) ---------------------------------------

  void run_checked(stmt s, params& p, const char* expects_row = nullptr) {
    auto r = run(s, p);
    if (expects_row && std::strcmp(PQcmdTuples(r.get()), "0") == 0) throw operation_error(expects_row);
  }

  static std::vector<suppression_record> read_suppressions(const result_ptr& r,
                                                          const id128& tenant_id) {
    std::vector<suppression_record> out;
    for (int i = 0; i < PQntuples(r.get()); ++i) {
      suppression_record s;
      s.tenant_id = tenant_id;
      s.address = text_at(r, i, 0);
      s.reason = text_at(r, i, 1);
      s.source_event = text_at(r, i, 2);
      s.created_at_ms = int_at(r, i, 3);
      s.expires_at_ms = int_at(r, i, 4);
      out.push_back(std::move(s));
    }
    return out;
  }
  static std::vector<recipient_lookup> read_lookups(const result_ptr& r) {
    std::vector<recipient_lookup> out;
    for (int i = 0; i < PQntuples(r.get()); ++i) {
      recipient_lookup l;
      l.recipient_id = id_at(r, i, 0);
      l.message_id = id_at(r, i, 1);
      l.tenant_id = id_at(r, i, 2);
      l.address = text_at(r, i, 3);
      l.domain = text_at(r, i, 4);
      l.state = parse_recipient_state(text_at(r, i, 5)).value_or(recipient_state::queued);
      l.attempts = static_cast<std::uint32_t>(int_at(r, i, 6));
      l.sender_domain = text_at(r, i, 7);
      out.push_back(std::move(l));
    }
    return out;
  }

  static std::string text_at(const result_ptr& r, int row, int column) {
    return std::string(PQgetvalue(r.get(), row, column),
                       static_cast<std::size_t>(PQgetlength(r.get(), row, column)));
  }
  static std::int64_t int_at(const result_ptr& r, int row, int column) {
    return std::strtoll(PQgetvalue(r.get(), row, column), nullptr, 10);
  }
  static id128 id_at(const result_ptr& r, int row, int column) {
    auto t = text_at(r, row, column);
    if (t.empty()) return {};
    auto parsed = id128::parse(t);
    if (!parsed) throw store_error("malformed id in the database: \"" + t + "\"");
    return *parsed;
  }

  std::string url_;
  PGconn* conn_ = nullptr;
  bool prepared_ = false;
  std::size_t pending_sends_ = 0;
  std::vector<bool> expects_row_;                 // per pipelined statement
  std::vector<std::string> expects_row_message_;  // its failure text
};

}  // namespace

std::unique_ptr<store> open_pg_store(const std::string& url, const store_options& options) {
  return std::make_unique<pg_store>(url, options);
}

}  // namespace petrel
