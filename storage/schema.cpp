// Petrel's schema migrations (see schema.hpp).
#include "storage/schema.hpp"

namespace petrel {

const std::vector<migration>& schema_migrations() {
  static const std::vector<migration> all = {
      {1,
       "tenants, api keys, messages, recipients, events",
       {
           R"(CREATE TABLE tenants (
                id TEXT PRIMARY KEY,
                name TEXT NOT NULL UNIQUE,
                rate_per_second {double} NOT NULL DEFAULT 0,
                burst INTEGER NOT NULL DEFAULT 0,
                suspended INTEGER NOT NULL DEFAULT 0,
                created_at BIGINT NOT NULL))",
           R"(CREATE TABLE api_keys (
                id TEXT PRIMARY KEY,
                tenant_id TEXT NOT NULL REFERENCES tenants(id),
                key_hash TEXT NOT NULL UNIQUE,
                prefix TEXT NOT NULL,
                created_at BIGINT NOT NULL,
                revoked_at BIGINT NOT NULL DEFAULT 0))",
           R"(CREATE TABLE messages (
                id TEXT PRIMARY KEY,
                tenant_id TEXT NOT NULL REFERENCES tenants(id),
                created_at BIGINT NOT NULL,
                mail_from TEXT NOT NULL,
                subject TEXT NOT NULL,
                campaign TEXT NOT NULL,
                tags TEXT NOT NULL,
                metadata TEXT NOT NULL,
                message_id_header TEXT NOT NULL,
                size BIGINT NOT NULL,
                content {blob} NOT NULL))",
           "CREATE INDEX messages_tenant ON messages(tenant_id, created_at)",
           R"(CREATE TABLE recipients (
                id TEXT PRIMARY KEY,
                message_id TEXT NOT NULL REFERENCES messages(id),
                tenant_id TEXT NOT NULL,
                address TEXT NOT NULL,
                domain TEXT NOT NULL,
                kind TEXT NOT NULL,
                state TEXT NOT NULL,
                attempts INTEGER NOT NULL DEFAULT 0,
                next_attempt_at BIGINT NOT NULL,
                updated_at BIGINT NOT NULL,
                last_reply TEXT NOT NULL DEFAULT ''))",
           "CREATE INDEX recipients_message ON recipients(message_id)",
           // Only waiting recipients are indexed for recovery; final ones drop out of it.
           R"(CREATE INDEX recipients_waiting ON recipients(domain, id)
                WHERE state IN ('queued', 'deferred'))",
           R"(CREATE TABLE events (
                id TEXT PRIMARY KEY,
                tenant_id TEXT NOT NULL,
                message_id TEXT NOT NULL,
                recipient_id TEXT NOT NULL,
                type TEXT NOT NULL,
                created_at BIGINT NOT NULL,
                data TEXT NOT NULL))",
           "CREATE INDEX events_message ON events(message_id)",
           "CREATE INDEX events_tenant ON events(tenant_id, id)",
       }},
      {2,
       "sender domains and their DKIM keys",
       {
           // A domain belongs to one tenant on the whole node (no tenant signs for another).
           R"(CREATE TABLE sender_domains (
                id TEXT PRIMARY KEY,
                tenant_id TEXT NOT NULL REFERENCES tenants(id),
                domain TEXT NOT NULL UNIQUE,
                created_at BIGINT NOT NULL,
                verified INTEGER NOT NULL DEFAULT 0,
                checked_at BIGINT NOT NULL DEFAULT 0,
                status TEXT NOT NULL DEFAULT '{}'))",
           // state: active (signs), published (rotated out, kept in DNS), retired.
           R"(CREATE TABLE dkim_keys (
                id TEXT PRIMARY KEY,
                domain_id TEXT NOT NULL REFERENCES sender_domains(id),
                selector TEXT NOT NULL,
                algorithm TEXT NOT NULL,
                private_key TEXT NOT NULL,
                public_key TEXT NOT NULL,
                created_at BIGINT NOT NULL,
                state TEXT NOT NULL))",
           "CREATE UNIQUE INDEX dkim_keys_selector ON dkim_keys(domain_id, selector)",
       }},
      {3,
       "suppressions, soft-bounce streaks, bulk messages, lookup by Message-ID",
       {
           // address: the local part as stored, the domain lower-cased (see suppression_key).
           R"(CREATE TABLE suppressions (
                tenant_id TEXT NOT NULL,
                address TEXT NOT NULL,
                reason TEXT NOT NULL,
                source_event TEXT NOT NULL DEFAULT '',
                created_at BIGINT NOT NULL,
                expires_at BIGINT NOT NULL DEFAULT 0,
                PRIMARY KEY (tenant_id, address)))",
           "CREATE INDEX suppressions_reason ON suppressions(tenant_id, reason, address)",
           R"(CREATE TABLE soft_bounces (
                tenant_id TEXT NOT NULL,
                address TEXT NOT NULL,
                count INTEGER NOT NULL,
                first_at BIGINT NOT NULL,
                PRIMARY KEY (tenant_id, address)))",
           "ALTER TABLE messages ADD COLUMN bulk INTEGER NOT NULL DEFAULT 0",
           "ALTER TABLE messages ADD COLUMN from_domain TEXT NOT NULL DEFAULT ''",
           "CREATE INDEX messages_message_id_header ON messages(message_id_header)",
       }},
      {4,
       "traffic shaping: pools, priorities, tenant weights, admin controls, egress usage",
       {
           "ALTER TABLE tenants ADD COLUMN pool TEXT NOT NULL DEFAULT ''",
           "ALTER TABLE tenants ADD COLUMN weight INTEGER NOT NULL DEFAULT 1",
           "ALTER TABLE recipients ADD COLUMN pool TEXT NOT NULL DEFAULT ''",
           "ALTER TABLE recipients ADD COLUMN priority INTEGER NOT NULL DEFAULT 0",
           // Suspensions by an operator or a response rule, until a time (0: until resumed).
           R"(CREATE TABLE controls (
                kind TEXT NOT NULL,
                target TEXT NOT NULL,
                until_at BIGINT NOT NULL,
                reason TEXT NOT NULL,
                created_at BIGINT NOT NULL,
                PRIMARY KEY (kind, target)))",
           // Messages sent per source and period (warm-up budgets survive restarts).
           R"(CREATE TABLE egress_usage (
                source TEXT NOT NULL,
                period TEXT NOT NULL,
                period_start BIGINT NOT NULL,
                count BIGINT NOT NULL,
                PRIMARY KEY (source, period)))",
           R"(CREATE TABLE egress_sources (
                name TEXT PRIMARY KEY,
                warmup_started_at BIGINT NOT NULL))",
       }},
      {5,
       "event sequence numbers (GET /v1/events cursors, webhook outbox), webhooks",
       {
           // Events get a sequence number in commit order: cursors of the events API and of
           // webhooks. SQLite: a rebuilt table whose INTEGER PRIMARY KEY AUTOINCREMENT never
           // reuses a number; PostgreSQL: a bigserial column.
           R"({sqlite}CREATE TABLE events_v5 (
                seq INTEGER PRIMARY KEY AUTOINCREMENT,
                id TEXT NOT NULL UNIQUE,
                tenant_id TEXT NOT NULL,
                message_id TEXT NOT NULL,
                recipient_id TEXT NOT NULL,
                type TEXT NOT NULL,
                created_at BIGINT NOT NULL,
                data TEXT NOT NULL))",
           "{sqlite}INSERT INTO events_v5 (id, tenant_id, message_id, recipient_id, type, created_at, data) "
           "SELECT id, tenant_id, message_id, recipient_id, type, created_at, data FROM events ORDER BY created_at, id",
           "{sqlite}DROP TABLE events",
           "{sqlite}ALTER TABLE events_v5 RENAME TO events",
           "{sqlite}CREATE INDEX events_message ON events(message_id)",
           "{postgresql}ALTER TABLE events ADD COLUMN seq BIGSERIAL",
           "{postgresql}CREATE UNIQUE INDEX events_seq ON events(seq)",
           "{postgresql}DROP INDEX events_tenant",
           "CREATE INDEX events_tenant_seq ON events(tenant_id, seq)",
           "CREATE INDEX events_created ON events(created_at)",
           R"(CREATE TABLE webhooks (
                id TEXT PRIMARY KEY,
                tenant_id TEXT NOT NULL,
                url TEXT NOT NULL,
                event_types TEXT NOT NULL,
                secret TEXT NOT NULL,
                created_at BIGINT NOT NULL,
                state TEXT NOT NULL,
                paused_reason TEXT NOT NULL,
                cursor BIGINT NOT NULL,
                last_success_at BIGINT NOT NULL,
                last_error TEXT NOT NULL,
                last_error_at BIGINT NOT NULL,
                failures INTEGER NOT NULL,
                failing_since BIGINT NOT NULL,
                delivered BIGINT NOT NULL))",
           "CREATE INDEX webhooks_tenant ON webhooks(tenant_id)",
       }},
      {6,
       "webhook secret rotation: the previous secret signs too for a while",
       {
           "ALTER TABLE webhooks ADD COLUMN previous_secret TEXT NOT NULL DEFAULT ''",
           "ALTER TABLE webhooks ADD COLUMN previous_until BIGINT NOT NULL DEFAULT 0",
       }},
      {7,
       "node state: small named values of a node's life (first start completed, ...)",
       {
           R"(CREATE TABLE node_state (
                name TEXT PRIMARY KEY,
                value TEXT NOT NULL,
                updated_at BIGINT NOT NULL))",
       }},
      {8,
       "sender domains: a claim per tenant (the first to verify owns the domain)",
       {
           // SQLite cannot drop a column's UNIQUE: rebuild both tables (dkim_keys refers to
           // sender_domains); RENAME rewrites the reference to the new table's name.
           R"({sqlite}CREATE TABLE sender_domains_v8 (
                id TEXT PRIMARY KEY,
                tenant_id TEXT NOT NULL REFERENCES tenants(id),
                domain TEXT NOT NULL,
                created_at BIGINT NOT NULL,
                verified INTEGER NOT NULL DEFAULT 0,
                checked_at BIGINT NOT NULL DEFAULT 0,
                status TEXT NOT NULL DEFAULT '{}'))",
           "{sqlite}INSERT INTO sender_domains_v8 SELECT id, tenant_id, domain, created_at, verified, "
           "checked_at, status FROM sender_domains",
           R"({sqlite}CREATE TABLE dkim_keys_v8 (
                id TEXT PRIMARY KEY,
                domain_id TEXT NOT NULL REFERENCES sender_domains_v8(id),
                selector TEXT NOT NULL,
                algorithm TEXT NOT NULL,
                private_key TEXT NOT NULL,
                public_key TEXT NOT NULL,
                created_at BIGINT NOT NULL,
                state TEXT NOT NULL))",
           "{sqlite}INSERT INTO dkim_keys_v8 SELECT id, domain_id, selector, algorithm, private_key, "
           "public_key, created_at, state FROM dkim_keys",
           "{sqlite}DROP TABLE dkim_keys",
           "{sqlite}DROP TABLE sender_domains",
           "{sqlite}ALTER TABLE sender_domains_v8 RENAME TO sender_domains",
           "{sqlite}ALTER TABLE dkim_keys_v8 RENAME TO dkim_keys",
           "{sqlite}CREATE UNIQUE INDEX dkim_keys_selector ON dkim_keys(domain_id, selector)",
           "{postgresql}ALTER TABLE sender_domains DROP CONSTRAINT IF EXISTS sender_domains_domain_key",
           "CREATE UNIQUE INDEX sender_domains_claim ON sender_domains(tenant_id, domain)",
       }},
      {9,
       "cluster coordination (PostgreSQL only): node leases, partition owners with epochs",
       {
           R"({postgresql}CREATE TABLE nodes (
                name TEXT PRIMARY KEY,
                advertise TEXT NOT NULL,
                started_at TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp(),
                lease_until TIMESTAMPTZ NOT NULL))",
           R"({postgresql}CREATE TABLE partitions (
                id INTEGER PRIMARY KEY,
                owner TEXT,
                epoch BIGINT NOT NULL DEFAULT 0,
                lease_until TIMESTAMPTZ NOT NULL DEFAULT '-infinity'))",
       }},
      {10,
       "events: the writing transaction (PostgreSQL), so that readers never pass an event that "
       "commits late",
       {
           "{postgresql}ALTER TABLE events ADD COLUMN xid xid8 NOT NULL DEFAULT pg_current_xact_id()",
       }},
      {11,
       "partitions: the epoch is a key column, so that fenced writes (FOR KEY SHARE) hold off "
       "claims but not lease renewals",
       {
           "{postgresql}CREATE UNIQUE INDEX partitions_epoch ON partitions (id, epoch)",
       }},
      {12,
       "retention: a message's content can be pruned (its row stays until storage.retention); "
       "messages by age for the pruning passes",
       {
           "ALTER TABLE messages ADD COLUMN content_pruned_at BIGINT NOT NULL DEFAULT 0",
           "CREATE INDEX messages_created ON messages (created_at)",
           // The content pass reads only what still has content: it does not walk over weeks of
           // pruned messages on every pass.
           "CREATE INDEX messages_unpruned ON messages (created_at) WHERE content_pruned_at = 0",
       }},
      {13,
       "paged queues: waiting recipients by domain, class (tenant, priority) and due time, so "
       "that a domain's queue is summed up from the index and read in pages by due time",
       {
           "DROP INDEX recipients_waiting",
           // state last: the summary counts queued and deferred from the index alone.
           R"(CREATE INDEX recipients_due ON recipients (domain, tenant_id, priority, next_attempt_at, id, state)
                WHERE state IN ('queued', 'deferred'))",
       }},
      {14,
       "sending: messages rendered per recipient from templates (the message keeps the templates, "
       "each recipient its data and metadata), the client's batch of a message, idempotency keys",
       {
           "ALTER TABLE messages ADD COLUMN templated INTEGER NOT NULL DEFAULT 0",
           "ALTER TABLE messages ADD COLUMN batch_id TEXT NOT NULL DEFAULT ''",
           "CREATE INDEX messages_batch ON messages (tenant_id, batch_id) WHERE batch_id <> ''",
           "ALTER TABLE recipients ADD COLUMN personal TEXT NOT NULL DEFAULT ''",
           "ALTER TABLE recipients ADD COLUMN metadata TEXT NOT NULL DEFAULT ''",
           // A request's Idempotency-Key, what the request was (a hash of its body) and what it
           // answered; written in the message's transaction, kept until expires_at.
           R"(CREATE TABLE idempotency_keys (
                tenant_id TEXT NOT NULL,
                key TEXT NOT NULL,
                request_hash TEXT NOT NULL,
                message_id TEXT NOT NULL,
                status INTEGER NOT NULL,
                response TEXT NOT NULL,
                created_at BIGINT NOT NULL,
                expires_at BIGINT NOT NULL,
                PRIMARY KEY (tenant_id, key)))",
           "CREATE INDEX idempotency_keys_expiry ON idempotency_keys (expires_at)",
       }},
      {15,
       "stored templates (POST /v1/templates): a row per version",
       {
           R"(CREATE TABLE templates (
                id TEXT NOT NULL,
                version INTEGER NOT NULL,
                tenant_id TEXT NOT NULL,
                name TEXT NOT NULL,
                subject TEXT NOT NULL,
                parts INTEGER NOT NULL,
                text_body TEXT NOT NULL,
                html_body TEXT NOT NULL,
                created_at BIGINT NOT NULL,
                deleted_at BIGINT NOT NULL DEFAULT 0,
                PRIMARY KEY (id, version)))",
           "CREATE INDEX templates_tenant ON templates (tenant_id, id)",
       }},
      {16,
       "message search (GET /v1/messages): recipients by address",
       {
           "CREATE INDEX recipients_address ON recipients (tenant_id, address)",
       }},
      {17,
       "the sandbox: tenants whose mail is delivered nowhere",
       {
           "ALTER TABLE tenants ADD COLUMN sandbox INTEGER NOT NULL DEFAULT 0",
       }},
      {18,
       "open and click tracking: tenant settings, tracked links, hits",
       {
           "ALTER TABLE tenants ADD COLUMN tracking_opens INTEGER NOT NULL DEFAULT 0",
           "ALTER TABLE tenants ADD COLUMN tracking_clicks INTEGER NOT NULL DEFAULT 0",
           "ALTER TABLE tenants ADD COLUMN tracking_record_ip INTEGER NOT NULL DEFAULT 0",
           "ALTER TABLE tenants ADD COLUMN tracking_domain TEXT NOT NULL DEFAULT ''",
           "ALTER TABLE tenants ADD COLUMN tracking_verified INTEGER NOT NULL DEFAULT 0",
           "ALTER TABLE tenants ADD COLUMN tracking_checked_at BIGINT NOT NULL DEFAULT 0",
           "ALTER TABLE tenants ADD COLUMN tracking_status TEXT NOT NULL DEFAULT ''",
           // A tracked message's links (link 0: its open pixel, url ''), kept until their
           // tokens expire, whatever the retention of the message itself.
           R"(CREATE TABLE tracking_links (
                message_id TEXT NOT NULL,
                link INTEGER NOT NULL,
                tenant_id TEXT NOT NULL,
                url TEXT NOT NULL,
                expires_at BIGINT NOT NULL,
                PRIMARY KEY (message_id, link)))",
           "CREATE INDEX tracking_links_expiry ON tracking_links (expires_at)",
           R"(CREATE TABLE tracking_hits (
                recipient_id TEXT NOT NULL,
                link INTEGER NOT NULL,
                machine INTEGER NOT NULL,
                message_id TEXT NOT NULL,
                hits BIGINT NOT NULL,
                first_at BIGINT NOT NULL,
                last_at BIGINT NOT NULL,
                expires_at BIGINT NOT NULL,
                PRIMARY KEY (recipient_id, link, machine)))",
           "CREATE INDEX tracking_hits_message ON tracking_hits (message_id)",
           "CREATE INDEX tracking_hits_expiry ON tracking_hits (expires_at)",
       }},
  };
  return all;
}

std::string render_sql(std::string_view sql, sql_dialect dialect) {
  // "{sqlite}..." and "{postgresql}..." statements run on that backend only (else: empty).
  for (auto [tag, only] : {std::pair{std::string_view("{sqlite}"), sql_dialect::sqlite},
                           std::pair{std::string_view("{postgresql}"), sql_dialect::postgresql}})
    if (sql.substr(0, tag.size()) == tag) {
      if (dialect != only) return {};
      sql.remove_prefix(tag.size());
    }
  std::string out(sql);
  auto replace = [&](std::string_view from, std::string_view to) {
    for (auto pos = out.find(from); pos != std::string::npos; pos = out.find(from, pos + to.size()))
      out.replace(pos, from.size(), to);
  };
  replace("{blob}", dialect == sql_dialect::sqlite ? "BLOB" : "BYTEA");
  replace("{double}", dialect == sql_dialect::sqlite ? "REAL" : "DOUBLE PRECISION");
  return out;
}

}  // namespace petrel
