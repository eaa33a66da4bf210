// SQLite implementation of the store interface (see store.hpp and sqlite_store.hpp).
#include "storage/sqlite_store.hpp"
#include "storage/backend_support.hpp"

#include <sqlite3.h>
#include <sys/statvfs.h>

#include <chrono>
#include <deque>
#include <filesystem>
#include <unordered_map>

#include "storage/pg_store.hpp"
#include "storage/schema.hpp"

namespace petrel {

namespace {

using storage_detail::now_ms;
using storage_detail::operation_error;

// A prepared statement borrowed from the cache; reset and unbound when the borrow ends.
class statement {
 public:
  statement(sqlite3* db, sqlite3_stmt* stmt) : db_(db), stmt_(stmt) {}
  statement(const statement&) = delete;
  ~statement() {
    sqlite3_reset(stmt_);
    sqlite3_clear_bindings(stmt_);
  }

  // Bound text and blobs must outlive step(): every caller steps before its arguments die.
  statement& bind(int index, std::string_view text) {
    check(sqlite3_bind_text(stmt_, index, text.data(), static_cast<int>(text.size()),
                            SQLITE_STATIC));
    return *this;
  }
  statement& bind(int index, const id128& id) {
    owned_.push_back(id.empty() ? std::string() : id.str());
    return bind(index, std::string_view(owned_.back()));
  }
  statement& bind(int index, std::int64_t value) {
    check(sqlite3_bind_int64(stmt_, index, value));
    return *this;
  }
  statement& bind(int index, double value) {
    check(sqlite3_bind_double(stmt_, index, value));
    return *this;
  }
  statement& bind_blob(int index, std::string_view bytes) {
    check(sqlite3_bind_blob(stmt_, index, bytes.data(), static_cast<int>(bytes.size()),
                            SQLITE_STATIC));
    return *this;
  }

  // true: a row is available; false: done.
  bool step() {
    int rc = sqlite3_step(stmt_);
    if (rc == SQLITE_ROW) return true;
    if (rc == SQLITE_DONE) return false;
    fail(rc);
    return false;
  }
  void run() {
    while (step()) {
    }
  }

  std::string text(int column) const {
    auto* p = reinterpret_cast<const char*>(sqlite3_column_text(stmt_, column));
    return p ? std::string(p, static_cast<std::size_t>(sqlite3_column_bytes(stmt_, column)))
             : std::string();
  }
  std::string blob(int column) const {
    auto* p = static_cast<const char*>(sqlite3_column_blob(stmt_, column));
    return p ? std::string(p, static_cast<std::size_t>(sqlite3_column_bytes(stmt_, column)))
             : std::string();
  }
  id128 id(int column) const {
    auto t = text(column);
    if (t.empty()) return {};
    auto parsed = id128::parse(t);
    if (!parsed) throw store_error("malformed id in the database: \"" + t + "\"");
    return *parsed;
  }
  std::int64_t integer(int column) const { return sqlite3_column_int64(stmt_, column); }
  double real(int column) const { return sqlite3_column_double(stmt_, column); }

 private:
  void check(int rc) {
    if (rc != SQLITE_OK) fail(rc);
  }
  [[noreturn]] void fail(int rc) {
    std::string message = sqlite3_errmsg(db_);
    if ((rc & 0xff) == SQLITE_CONSTRAINT) throw operation_error(message);
    throw store_error("sqlite: " + message + " (code " + std::to_string(rc) + ")");
  }

  sqlite3* db_;
  sqlite3_stmt* stmt_;
  std::deque<std::string> owned_;  // text of bound ids; a deque never moves its elements
};

class sqlite_store final : public store {
 public:
  sqlite_store(std::string path, const store_options& options) : path_(std::move(path)) {
    auto parent = std::filesystem::path(path_).parent_path();
    if (!parent.empty()) {
      std::error_code ec;
      std::filesystem::create_directories(parent, ec);
      if (ec)
        throw store_error("cannot create the data directory " + parent.string() + ": " +
                          ec.message());
    }
    directory_ = parent.empty() ? std::string(".") : parent.string();
    // SQLite itself would only say "unable to open database file" at the first write.
    struct statvfs fs {};
    if (::statvfs(parent.empty() ? "." : parent.c_str(), &fs) == 0 && (fs.f_flag & ST_RDONLY))
      throw store_error("cannot open SQLite database " + path_ + ": its file system (" +
                        (parent.empty() ? std::string(".") : parent.string()) +
                        ") is mounted read-only, and the store writes there (the database and its WAL)");
    // SQLite's memory statistics (on by default) make every allocation of every connection
    // take one process-wide mutex: the store's thread and the readers' threads contended on
    // it. Petrel reads none of them. Set once, before SQLite initializes itself.
    static const int configured = [] {
      sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
      return sqlite3_initialize();
    }();
    (void)configured;
    int rc = sqlite3_open_v2(path_.c_str(), &db_,
                             SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                             nullptr);
    if (rc != SQLITE_OK) {
      std::string message = db_ ? sqlite3_errmsg(db_) : "out of memory";
      sqlite3_close(db_);
      db_ = nullptr;
      throw store_error("cannot open SQLite database " + path_ + ": " + message);
    }
    sqlite3_extended_result_codes(db_, 1);
    sqlite3_busy_timeout(db_, options.busy_timeout_ms);
    try {
      // Pruned content and rows give their pages back to the file system (takes effect in a new
      // database: it must precede the first table).
      execute("PRAGMA auto_vacuum=INCREMENTAL");
      execute("PRAGMA journal_mode=WAL");
      execute(options.sqlite_synchronous == "normal" ? "PRAGMA synchronous=NORMAL"
                                                     : "PRAGMA synchronous=FULL");
      execute("PRAGMA foreign_keys=ON");
    } catch (const store_error& e) {
      sqlite3_close(db_);
      db_ = nullptr;
      throw store_error("cannot open SQLite database " + path_ + ": " + e.what());
    }
  }

  ~sqlite_store() override {
    for (auto& [sql, stmt] : cache_) sqlite3_finalize(stmt);
    if (db_) sqlite3_close(db_);
  }

  std::string describe() const override { return "sqlite:" + path_; }

  void migrate() override {
    execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, "
        "description TEXT NOT NULL, applied_at BIGINT NOT NULL)");
    // BEGIN IMMEDIATE takes the write lock: a second process migrating at the same time
    // waits for this one and then sees the new version.
    execute("BEGIN IMMEDIATE");
    try {
      int current = schema_version();
      for (const auto& m : schema_migrations()) {
        if (m.version <= current) continue;
        for (const char* sql : m.statements)
          if (auto text = render_sql(sql, sql_dialect::sqlite); !text.empty()) execute(text);
        auto ins = prepare(
            "INSERT INTO schema_migrations (version, description, applied_at) VALUES (?, ?, ?)");
        ins.bind(1, static_cast<std::int64_t>(m.version))
            .bind(2, std::string_view(m.description))
            .bind(3, now_ms());
        ins.run();
      }
      execute("COMMIT");
    } catch (...) {
      execute_noexcept("ROLLBACK");
      throw;
    }
  }

  int schema_version() override {
    auto q = prepare("SELECT COALESCE(MAX(version), 0) FROM schema_migrations");
    return q.step() ? static_cast<int>(q.integer(0)) : 0;
  }

  std::vector<std::string> apply(const std::vector<write_op>& ops) override {
    std::vector<std::string> results(ops.size());
    if (ops.empty()) return results;
    // Fast path: the whole batch in one transaction without savepoints. If one operation
    // fails on a constraint, roll back and replay with a savepoint per operation.
    execute("BEGIN IMMEDIATE");
    try {
      for (const auto& op : ops) apply_one(op);
      commit();
      give_space_back();
      return results;
    } catch (const operation_error&) {
      execute_noexcept("ROLLBACK");
    } catch (...) {
      execute_noexcept("ROLLBACK");
      throw;
    }
    execute("BEGIN IMMEDIATE");
    try {
      for (std::size_t i = 0; i < ops.size(); ++i) {
        execute("SAVEPOINT op");
        try {
          apply_one(ops[i]);
          execute("RELEASE op");
        } catch (const operation_error& e) {
          execute("ROLLBACK TO op");
          execute("RELEASE op");
          results[i] = e.what();
        }
      }
      commit();
    } catch (...) {
      execute_noexcept("ROLLBACK");
      throw;
    }
    return results;
  }

  std::vector<tenant_record> load_tenants() override {
    std::vector<tenant_record> out;
    auto q = prepare(
        "SELECT id, name, rate_per_second, burst, suspended, created_at, pool, weight, sandbox, tracking_opens, "
        "tracking_clicks, tracking_record_ip, tracking_domain, tracking_verified, tracking_checked_at, "
        "tracking_status FROM tenants ORDER BY id");
    while (q.step()) {
      tenant_record t;
      t.id = q.id(0);
      t.name = q.text(1);
      t.rate_per_second = q.real(2);
      t.burst = static_cast<std::uint32_t>(q.integer(3));
      t.suspended = q.integer(4) != 0;
      t.created_at_ms = q.integer(5);
      t.pool = q.text(6);
      t.weight = static_cast<std::uint32_t>(q.integer(7));
      t.sandbox = q.integer(8) != 0;
      t.tracking.opens = q.integer(9) != 0;
      t.tracking.clicks = q.integer(10) != 0;
      t.tracking.record_ip = q.integer(11) != 0;
      t.tracking.domain = q.text(12);
      t.tracking.verified = q.integer(13) != 0;
      t.tracking.checked_at_ms = q.integer(14);
      t.tracking.status = q.text(15);
      out.push_back(std::move(t));
    }
    return out;
  }

  std::vector<sender_domain_record> load_sender_domains() override {
    std::vector<sender_domain_record> out;
    std::unordered_map<id128, std::size_t, id128_hash> index;
    {
      auto q = prepare(
          "SELECT id, tenant_id, domain, created_at, verified, checked_at, status "
          "FROM sender_domains ORDER BY domain");
      while (q.step()) {
        sender_domain_record d;
        d.id = q.id(0);
        d.tenant_id = q.id(1);
        d.domain = q.text(2);
        d.created_at_ms = q.integer(3);
        d.verified = q.integer(4) != 0;
        d.checked_at_ms = q.integer(5);
        d.status_json = q.text(6);
        index[d.id] = out.size();
        out.push_back(std::move(d));
      }
    }
    auto q = prepare(
        "SELECT id, domain_id, selector, algorithm, private_key, public_key, created_at, state "
        "FROM dkim_keys ORDER BY created_at, id");
    while (q.step()) {
      dkim_key_record k;
      k.id = q.id(0);
      k.domain_id = q.id(1);
      k.selector = q.text(2);
      k.algorithm = q.text(3);
      k.private_key = q.text(4);
      k.public_key = q.text(5);
      k.created_at_ms = q.integer(6);
      k.state = q.text(7);
      auto it = index.find(k.domain_id);
      if (it != index.end()) out[it->second].keys.push_back(std::move(k));
    }
    return out;
  }

  std::vector<api_key_record> load_active_api_keys() override {
    std::vector<api_key_record> out;
    auto q = prepare(
        "SELECT id, tenant_id, key_hash, prefix, created_at, revoked_at FROM api_keys "
        "WHERE revoked_at = 0 ORDER BY id");
    while (q.step()) {
      api_key_record k;
      k.id = q.id(0);
      k.tenant_id = q.id(1);
      k.key_hash = q.text(2);
      k.prefix = q.text(3);
      k.created_at_ms = q.integer(4);
      k.revoked_at_ms = q.integer(5);
      out.push_back(std::move(k));
    }
    return out;
  }

  std::optional<message_details> find_message(const id128& tenant_id,
                                              const id128& message_id) override {
    message_details out;
    {
      auto q = prepare(
          "SELECT created_at, mail_from, subject, campaign, tags, metadata, message_id_header, "
          "size FROM messages WHERE id = ? AND tenant_id = ?");
      q.bind(1, message_id).bind(2, tenant_id);
      if (!q.step()) return std::nullopt;
      auto& m = out.message;
      m.id = message_id;
      m.tenant_id = tenant_id;
      m.created_at_ms = q.integer(0);
      m.mail_from = q.text(1);
      m.subject = q.text(2);
      m.campaign = q.text(3);
      m.tags_json = q.text(4);
      m.metadata_json = q.text(5);
      m.message_id_header = q.text(6);
      m.size = static_cast<std::uint64_t>(q.integer(7));
    }
    {
      auto q = prepare(
          "SELECT id, address, domain, kind, state, attempts, next_attempt_at, updated_at, "
          "last_reply FROM recipients WHERE message_id = ? ORDER BY id");
      q.bind(1, message_id);
      while (q.step()) {
        recipient_record r;
        r.id = q.id(0);
        r.address = q.text(1);
        r.domain = q.text(2);
        r.kind = parse_recipient_kind(q.text(3)).value_or(recipient_kind::to);
        r.state = parse_recipient_state(q.text(4)).value_or(recipient_state::queued);
        r.attempts = static_cast<std::uint32_t>(q.integer(5));
        r.next_attempt_at_ms = q.integer(6);
        r.updated_at_ms = q.integer(7);
        r.last_reply = q.text(8);
        out.message.recipients.push_back(std::move(r));
      }
    }
    {
      auto q = prepare(
          "SELECT id, recipient_id, type, created_at, data FROM events WHERE message_id = ? "
          "ORDER BY id");
      q.bind(1, message_id);
      while (q.step()) {
        event_record e;
        e.id = q.id(0);
        e.tenant_id = tenant_id;
        e.message_id = message_id;
        e.recipient_id = q.id(1);
        e.type = q.text(2);
        e.at_ms = q.integer(3);
        e.data_json = q.text(4);
        out.events.push_back(std::move(e));
      }
    }
    {
      auto q = prepare("SELECT url FROM tracking_links WHERE message_id = ? AND link > 0 ORDER BY link");
      q.bind(1, message_id);
      while (q.step()) out.message.tracking_links.push_back(q.text(0));
    }
    {
      auto q = prepare(
          "SELECT recipient_id, link, machine, hits, first_at, last_at FROM tracking_hits WHERE message_id = ? "
          "ORDER BY recipient_id, link, machine");
      q.bind(1, message_id);
      while (q.step())
        out.hits.push_back({q.id(0), static_cast<std::uint16_t>(q.integer(1)), q.integer(2) != 0,
                            static_cast<std::uint64_t>(q.integer(3)), q.integer(4), q.integer(5)});
    }
    return out;
  }

  std::optional<tracking_target> find_tracking_target(const tracking_query& t) override {
    auto q = prepare(
        "SELECT l.tenant_id, l.url, l.expires_at, COALESCE(tn.tracking_record_ip, 0), COALESCE(r.address, ''), "
        "CASE WHEN r.state = 'delivered' THEN r.updated_at ELSE 0 END FROM tracking_links l "
        "LEFT JOIN tenants tn ON tn.id = l.tenant_id "
        "LEFT JOIN recipients r ON r.id = ?2 AND r.message_id = l.message_id "
        "WHERE l.message_id = ?1 AND l.link = ?3");
    q.bind(1, t.message_id).bind(2, t.recipient_id).bind(3, static_cast<std::int64_t>(t.link));
    if (!q.step()) return std::nullopt;
    return tracking_target{q.id(0), q.text(1), q.integer(2), q.integer(3) != 0, q.text(4), q.integer(5)};
  }

  std::vector<std::string> pending_domains(const std::string& after,
                                           std::size_t limit) override {
    // A loose index scan: one index seek per domain, not a walk over every waiting recipient.
    auto q = prepare(
        "WITH RECURSIVE d(domain) AS ("
        "SELECT (SELECT MIN(domain) FROM recipients WHERE state IN ('queued', 'deferred') AND domain > ?1) "
        "UNION ALL SELECT (SELECT MIN(r.domain) FROM recipients r WHERE r.state IN ('queued', 'deferred') "
        "AND r.domain > d.domain) FROM d WHERE d.domain IS NOT NULL) "
        "SELECT domain FROM d WHERE domain IS NOT NULL LIMIT ?2");
    q.bind(1, std::string_view(after)).bind(2, static_cast<std::int64_t>(limit));
    std::vector<std::string> out;
    while (q.step()) out.push_back(q.text(0));
    return out;
  }

  std::vector<queue_class_summary> queue_summary(const std::string& domain) override {
    auto q = prepare(
        "SELECT tenant_id, priority, COUNT(*), SUM(state = 'deferred'), MIN(id), MIN(next_attempt_at), "
        "MAX(id) FROM recipients WHERE state IN ('queued', 'deferred') AND domain = ?1 "
        "GROUP BY tenant_id, priority");  // (in the index's order: no sort)
    q.bind(1, std::string_view(domain));
    std::vector<queue_class_summary> out;
    while (q.step()) {
      auto all = static_cast<std::uint64_t>(q.integer(2)), deferred = static_cast<std::uint64_t>(q.integer(3));
      out.push_back({q.id(0), static_cast<int>(q.integer(1)), all - deferred, deferred, q.id(4).time_ms(),
                     q.integer(5), q.id(6)});
    }
    return out;
  }

  queue_page read_queue_page(const queue_page_query& p) override {
    queue_page out;
    {
      auto q = prepare(
          "SELECT id, message_id, tenant_id, domain, state, attempts, next_attempt_at, pool, priority, "
          "personal <> '' "
          "FROM recipients WHERE state IN ('queued', 'deferred') AND domain = ?1 AND tenant_id = ?2 "
          "AND priority = ?3 AND (next_attempt_at, id) > (?4, ?5) AND next_attempt_at <= ?6 "
          "ORDER BY next_attempt_at, id LIMIT ?7");
      q.bind(1, std::string_view(p.domain)).bind(2, p.tenant_id).bind(3, static_cast<std::int64_t>(p.priority))
          .bind(4, p.after_due_ms).bind(5, p.after_id).bind(6, p.until_ms)
          .bind(7, static_cast<std::int64_t>(p.limit));
      out.recipients = read_queued(q);
    }
    if (out.recipients.size() < p.limit) {
      auto q = prepare(
          "SELECT next_attempt_at FROM recipients WHERE state IN ('queued', 'deferred') AND domain = ?1 "
          "AND tenant_id = ?2 AND priority = ?3 AND next_attempt_at > ?4 "
          "ORDER BY next_attempt_at LIMIT 1");
      q.bind(1, std::string_view(p.domain)).bind(2, p.tenant_id).bind(3, static_cast<std::int64_t>(p.priority))
          .bind(4, p.until_ms);
      if (q.step()) {
        out.has_later = true;
        out.later_due_ms = q.integer(0);
      }
    }
    return out;
  }

  std::vector<queued_recipient> pending_recipients_of_domain(const std::string& domain,
                                                             bool queued_only) override {
    auto q = prepare(
        "SELECT id, message_id, tenant_id, domain, state, attempts, next_attempt_at, pool, priority, "
          "personal <> '' "
        "FROM recipients WHERE state IN ('queued', 'deferred') AND state IN ('queued', ?2) "
        "AND domain = ?1 ORDER BY domain, id");  // (the first IN matches the partial index)
    q.bind(1, std::string_view(domain));
    q.bind(2, std::string_view(queued_only ? "queued" : "deferred"));
    return read_queued(q);
  }

  std::optional<delivery_content> load_delivery(const id128& message_id,
                                                const std::vector<id128>& recipients) override {
    delivery_content out;
    {
      auto q = prepare(
          "SELECT mail_from, content, tenant_id, bulk, from_domain, templated FROM messages WHERE id = ?");
      q.bind(1, message_id);
      if (!q.step()) return std::nullopt;
      out.mail_from = q.text(0);
      out.content = q.blob(1);
      out.tenant_id = q.id(2);
      out.bulk = q.integer(3) != 0;
      out.from_domain = q.text(4);
      out.templated = q.integer(5) != 0;
    }
    auto now = now_ms();
    for (const auto& id : recipients) {
      // By key: a batch of 10,000 recipients is not read whole for each of its attempts.
      std::string address, domain;
      {
        auto q = prepare("SELECT address, domain, personal FROM recipients WHERE id = ? AND message_id = ?");
        q.bind(1, id).bind(2, message_id);
        if (!q.step()) return std::nullopt;
        address = q.text(0);
        domain = q.text(1);
        if (out.templated) out.personal.push_back(q.text(2));
      }
      // The suppression check before each attempt, against the tenant's current list.
      auto q = prepare(
          "SELECT 1 FROM suppressions WHERE tenant_id = ? AND address = ? "
          "AND (expires_at = 0 OR expires_at > ?)");
      auto key = suppression_key(address, domain);
      q.bind(1, out.tenant_id).bind(2, std::string_view(key)).bind(3, now);
      out.suppressed.push_back(q.step());
      out.addresses.push_back(std::move(address));
    }
    return out;
  }

  std::vector<message_record> search_messages(const message_search& f) override {
    // With a recipient: from the recipients index; else the tenant's messages newest first.
    static constexpr const char* by_recipient =
        "SELECT m.id, m.created_at, m.mail_from, m.subject, m.campaign, m.tags, m.batch_id, m.size, m.templated "
        "FROM messages m WHERE m.id IN (SELECT message_id FROM recipients WHERE tenant_id = ?1 AND address = ?2 "
        "AND (?3 = '' OR state = ?3)) AND m.tenant_id = ?1 "
        "AND (?4 = 0 OR (m.created_at, m.id) < (?4, ?5)) AND m.created_at >= ?6 AND (?7 = 0 OR m.created_at < ?7) "
        "AND (?8 = '' OR m.campaign = ?8) AND (?9 = '' OR m.batch_id = ?9) "
        "AND (?10 = '' OR EXISTS (SELECT 1 FROM json_each(m.tags) WHERE value = ?10)) "
        "ORDER BY m.created_at DESC, m.id DESC LIMIT ?11";
    static constexpr const char* by_tenant =
        "SELECT m.id, m.created_at, m.mail_from, m.subject, m.campaign, m.tags, m.batch_id, m.size, m.templated "
        "FROM messages m WHERE m.tenant_id = ?1 AND (?2 = '' OR ?2 <> '') "
        "AND (?3 = '' OR EXISTS (SELECT 1 FROM recipients r WHERE r.message_id = m.id AND r.state = ?3)) "
        "AND (?4 = 0 OR (m.created_at, m.id) < (?4, ?5)) AND m.created_at >= ?6 AND (?7 = 0 OR m.created_at < ?7) "
        "AND (?8 = '' OR m.campaign = ?8) AND (?9 = '' OR m.batch_id = ?9) "
        "AND (?10 = '' OR EXISTS (SELECT 1 FROM json_each(m.tags) WHERE value = ?10)) "
        "ORDER BY m.created_at DESC, m.id DESC LIMIT ?11";
    auto q = prepare(f.recipient.empty() ? by_tenant : by_recipient);
    q.bind(1, f.tenant_id)
        .bind(2, std::string_view(f.recipient))
        .bind(3, std::string_view(f.status))
        .bind(4, f.before_created_ms)
        .bind(5, f.before_id)
        .bind(6, f.since_ms)
        .bind(7, f.until_ms)
        .bind(8, std::string_view(f.campaign))
        .bind(9, std::string_view(f.batch_id))
        .bind(10, std::string_view(f.tag))
        .bind(11, static_cast<std::int64_t>(f.limit));
    std::vector<message_record> out;
    while (q.step()) {
      message_record m;
      m.id = q.id(0);
      m.tenant_id = f.tenant_id;
      m.created_at_ms = q.integer(1);
      m.mail_from = q.text(2);
      m.subject = q.text(3);
      m.campaign = q.text(4);
      m.tags_json = q.text(5);
      m.batch_id = q.text(6);
      m.size = static_cast<std::uint64_t>(q.integer(7));
      m.templated = q.integer(8) != 0;
      out.push_back(std::move(m));
    }
    if (f.recipient.empty() && f.status.empty()) return out;
    for (auto& m : out) {
      auto r = prepare(
          "SELECT id, address, state FROM recipients WHERE message_id = ?1 AND (?2 = '' OR address = ?2) "
          "AND (?3 = '' OR state = ?3) ORDER BY id LIMIT 100");
      r.bind(1, m.id).bind(2, std::string_view(f.recipient)).bind(3, std::string_view(f.status));
      while (r.step()) {
        recipient_record x;
        x.id = r.id(0);
        x.address = r.text(1);
        x.state = parse_recipient_state(r.text(2)).value_or(recipient_state::queued);
        m.recipients.push_back(std::move(x));
      }
    }
    return out;
  }

  std::vector<template_record> find_templates(const template_query& t) override {
    // parts: 1 text, 2 html.
    auto q = prepare(
        "SELECT id, version, name, subject, parts, text_body, html_body, created_at FROM templates t "
        "WHERE tenant_id = ?1 AND deleted_at = 0 AND (?2 = '' OR id = ?2) "
        "AND (CASE WHEN ?3 = 0 THEN version = (SELECT MAX(version) FROM templates x WHERE x.id = t.id) "
        "ELSE version = ?3 END) ORDER BY id LIMIT 1000");
    q.bind(1, t.tenant_id).bind(2, t.id).bind(3, static_cast<std::int64_t>(t.version));
    std::vector<template_record> out;
    while (q.step()) {
      template_record r;
      r.id = q.id(0);
      r.version = static_cast<std::uint32_t>(q.integer(1));
      r.tenant_id = t.tenant_id;
      r.name = q.text(2);
      r.subject = q.text(3);
      auto parts = q.integer(4);
      r.has_text = parts & 1;
      r.has_html = parts & 2;
      r.text = q.text(5);
      r.html = q.text(6);
      r.created_at_ms = q.integer(7);
      out.push_back(std::move(r));
    }
    return out;
  }

  std::optional<idempotency_record> find_idempotency_key(const id128& tenant_id, const std::string& key,
                                                         std::int64_t now_ms) override {
    auto q = prepare(
        "SELECT request_hash, message_id, status, response, created_at, expires_at FROM idempotency_keys "
        "WHERE tenant_id = ? AND key = ? AND expires_at > ?");
    q.bind(1, tenant_id).bind(2, std::string_view(key)).bind(3, now_ms);
    if (!q.step()) return std::nullopt;
    idempotency_record r;
    r.key = key;
    r.request_hash = q.text(0);
    r.message_id = q.id(1);
    r.status = static_cast<int>(q.integer(2));
    r.response = q.text(3);
    r.created_at_ms = q.integer(4);
    r.expires_at_ms = q.integer(5);
    return r;
  }

  std::vector<queued_recipient> waiting_recipients_of(const id128& tenant_id, const id128& message_id,
                                                      const std::string& batch_id, std::uint64_t& messages) override {
    if (!message_id.empty()) {
      auto c = prepare("SELECT COUNT(*) FROM messages WHERE id = ?2 AND tenant_id = ?1");
      c.bind(1, tenant_id).bind(2, message_id);
      messages = c.step() ? static_cast<std::uint64_t>(c.integer(0)) : 0;
      auto q = prepare(
          "SELECT id, message_id, tenant_id, domain, state, attempts, next_attempt_at, pool, priority, "
          "personal <> '' FROM recipients WHERE message_id = ?2 AND tenant_id = ?1 "
          "AND state IN ('queued', 'deferred') ORDER BY domain, id");
      q.bind(1, tenant_id).bind(2, message_id);
      return read_queued(q);
    }
    auto c = prepare("SELECT COUNT(*) FROM messages WHERE tenant_id = ?1 AND batch_id = ?2");
    c.bind(1, tenant_id).bind(2, std::string_view(batch_id));
    messages = c.step() ? static_cast<std::uint64_t>(c.integer(0)) : 0;
    auto q = prepare(
        "SELECT r.id, r.message_id, r.tenant_id, r.domain, r.state, r.attempts, r.next_attempt_at, r.pool, "
        "r.priority, r.personal <> '' FROM messages m JOIN recipients r ON r.message_id = m.id "
        "WHERE m.tenant_id = ?1 AND m.batch_id = ?2 AND r.state IN ('queued', 'deferred') ORDER BY r.domain, r.id");
    q.bind(1, tenant_id).bind(2, std::string_view(batch_id));
    return read_queued(q);
  }

  std::vector<suppression_record> list_suppressions(const id128& tenant_id,
                                                    const std::string& reason,
                                                    const std::string& after,
                                                    std::size_t limit) override {
    auto q = prepare(
        "SELECT address, reason, source_event, created_at, expires_at FROM suppressions "
        "WHERE tenant_id = ?1 AND (?2 = '' OR reason = ?2) AND address > ?3 "
        "AND (expires_at = 0 OR expires_at > ?4) ORDER BY address LIMIT ?5");
    q.bind(1, tenant_id)
        .bind(2, std::string_view(reason))
        .bind(3, std::string_view(after))
        .bind(4, now_ms())
        .bind(5, static_cast<std::int64_t>(limit));
    return read_suppressions(q, tenant_id);
  }

  std::optional<suppression_record> find_suppression(const id128& tenant_id,
                                                     const std::string& address) override {
    auto q = prepare(
        "SELECT address, reason, source_event, created_at, expires_at FROM suppressions "
        "WHERE tenant_id = ?1 AND address = ?2 AND (expires_at = 0 OR expires_at > ?3)");
    q.bind(1, tenant_id).bind(2, std::string_view(address)).bind(3, now_ms());
    auto found = read_suppressions(q, tenant_id);
    if (found.empty()) return std::nullopt;
    return std::move(found.front());
  }

  std::vector<suppression_record> tenant_suppressions(const id128& tenant_id,
                                                      std::int64_t now) override {
    auto q = prepare(
        "SELECT address, reason, source_event, created_at, expires_at FROM suppressions "
        "WHERE tenant_id = ?1 AND (expires_at = 0 OR expires_at > ?2)");
    q.bind(1, tenant_id).bind(2, now);
    return read_suppressions(q, tenant_id);
  }

  std::vector<soft_bounce_streak> tenant_soft_bounces(const id128& tenant_id) override {
    auto q = prepare("SELECT address, count, first_at FROM soft_bounces WHERE tenant_id = ?");
    q.bind(1, tenant_id);
    std::vector<soft_bounce_streak> out;
    while (q.step())
      out.push_back({q.text(0), static_cast<std::uint32_t>(q.integer(1)), q.integer(2)});
    return out;
  }

  std::optional<recipient_lookup> find_recipient(const id128& recipient_id) override {
    auto q = prepare(
        "SELECT r.id, r.message_id, r.tenant_id, r.address, r.domain, r.state, r.attempts, "
        "COALESCE(m.from_domain, '') FROM recipients r LEFT JOIN messages m ON m.id = r.message_id WHERE r.id = ?");
    q.bind(1, recipient_id);
    auto found = read_lookups(q);
    if (found.empty()) return std::nullopt;
    return std::move(found.front());
  }

  std::vector<recipient_lookup> recipients_by_message_id_header(const std::string& header) override {
    auto q = prepare(
        "SELECT r.id, r.message_id, r.tenant_id, r.address, r.domain, r.state, r.attempts, m.from_domain "
        "FROM messages m JOIN recipients r ON r.message_id = m.id "
        "WHERE m.message_id_header = ? ORDER BY r.id LIMIT 1000");
    q.bind(1, std::string_view(header));
    return read_lookups(q);
  }

  std::vector<event_view> list_events(const event_query& f) override {
#define PETREL_EVENTS_PAGE(TENANT)                                                                     \
  "SELECT e.seq, e.tenant_id, e.id, e.message_id, e.recipient_id, e.type, e.created_at, e.data, "      \
  "COALESCE(r.address, ''), COALESCE(m.campaign, ''), COALESCE(m.tags, '[]'), "                       \
  "COALESCE(m.metadata, '{}'), COALESCE(r.metadata, '') FROM events e "                               \
  "LEFT JOIN messages m ON m.id = e.message_id LEFT JOIN recipients r ON r.id = e.recipient_id "      \
  "WHERE " TENANT " AND e.seq > ?2 "                                                                  \
  "AND (?3 = '' OR instr(',' || ?3 || ',', ',' || e.type || ',') > 0) "                              \
  "AND (?4 = '' OR e.message_id = ?4) AND (?5 = '' OR lower(r.address) = lower(?5)) "                \
  "AND (?6 = '' OR m.campaign = ?6) AND e.created_at >= ?7 AND (?8 = 0 OR e.created_at < ?8) "       \
  "ORDER BY e.seq LIMIT ?9"
    // One tenant's (by its index), or every tenant's (the admin tail: by sequence alone).
    static constexpr const char* one = PETREL_EVENTS_PAGE("e.tenant_id = ?1");
    static constexpr const char* all = PETREL_EVENTS_PAGE("?1 = ?1");
#undef PETREL_EVENTS_PAGE
    auto q = prepare(f.all_tenants ? all : one);
    q.bind(1, f.tenant_id)
        .bind(2, f.after_seq)
        .bind(3, std::string_view(f.types))
        .bind(4, f.message_id)
        .bind(5, std::string_view(f.recipient))
        .bind(6, std::string_view(f.campaign))
        .bind(7, f.since_ms)
        .bind(8, f.until_ms)
        .bind(9, static_cast<std::int64_t>(f.limit));
    std::vector<event_view> out;
    while (q.step()) {
      event_view v;
      v.seq = q.integer(0);
      v.event.tenant_id = q.id(1);
      v.event.id = q.id(2);
      v.event.message_id = q.id(3);
      v.event.recipient_id = q.id(4);
      v.event.type = q.text(5);
      v.event.at_ms = q.integer(6);
      v.event.data_json = q.text(7);
      v.recipient = q.text(8);
      v.campaign = q.text(9);
      v.tags_json = q.text(10);
      v.metadata_json = q.text(11);
      v.recipient_metadata_json = q.text(12);
      out.push_back(std::move(v));
    }
    return out;
  }

  std::uint64_t count_events_after(const id128& tenant_id, const std::string& types,
                                   std::int64_t after_seq, std::uint64_t cap) override {
    auto q = prepare(
        "SELECT COUNT(*) FROM (SELECT 1 FROM events WHERE tenant_id = ?1 AND seq > ?2 "
        "AND (?3 = '' OR instr(',' || ?3 || ',', ',' || type || ',') > 0) LIMIT ?4)");
    q.bind(1, tenant_id).bind(2, after_seq).bind(3, std::string_view(types)).bind(4, static_cast<std::int64_t>(cap));
    return q.step() ? static_cast<std::uint64_t>(q.integer(0)) : 0;
  }

  std::vector<stats_row> event_stats(const stats_query& f) override {
    auto q = prepare(
        "SELECT (e.created_at / ?4) * ?4 AS b, e.type, "
        "CASE WHEN e.type = 'bounced' THEN COALESCE(json_extract(e.data, '$.hard'), 0) "
        "WHEN e.type IN ('opened', 'clicked') THEN COALESCE(json_extract(e.data, '$.machine'), 0) ELSE 0 END AS hard, "
        "COUNT(*), SUM(CASE WHEN e.type = 'accepted' THEN COALESCE(json_extract(e.data, '$.recipients'), 0) "
        "ELSE 0 END) FROM events e LEFT JOIN messages m ON m.id = e.message_id "
        "WHERE e.tenant_id = ?1 AND e.created_at >= ?2 AND e.created_at < ?3 AND (?5 = '' OR m.campaign = ?5) "
        "GROUP BY b, e.type, hard ORDER BY b");
    q.bind(1, f.tenant_id).bind(2, f.since_ms).bind(3, f.until_ms).bind(4, f.bucket_ms).bind(5, std::string_view(f.campaign));
    std::vector<stats_row> out;
    while (q.step())
      out.push_back({q.integer(0), q.text(1), q.integer(2) != 0, static_cast<std::uint64_t>(q.integer(3)),
                     static_cast<std::uint64_t>(q.integer(4))});
    return out;
  }

  std::vector<webhook_record> load_webhooks() override {
    auto q = prepare(
        "SELECT id, tenant_id, url, event_types, secret, created_at, state, paused_reason, cursor, "
        "last_success_at, last_error, last_error_at, failures, failing_since, delivered, previous_secret, "
        "previous_until FROM webhooks ORDER BY id");
    std::vector<webhook_record> out;
    while (q.step()) {
      webhook_record w;
      w.id = q.id(0);
      w.tenant_id = q.id(1);
      w.url = q.text(2);
      w.event_types = q.text(3);
      w.secret = q.text(4);
      w.created_at_ms = q.integer(5);
      w.state = q.text(6);
      w.paused_reason = q.text(7);
      w.cursor = q.integer(8);
      w.last_success_at_ms = q.integer(9);
      w.last_error = q.text(10);
      w.last_error_at_ms = q.integer(11);
      w.failures = static_cast<std::uint32_t>(q.integer(12));
      w.failing_since_ms = q.integer(13);
      w.delivered = static_cast<std::uint64_t>(q.integer(14));
      w.previous_secret = q.text(15);
      w.previous_until_ms = q.integer(16);
      out.push_back(std::move(w));
    }
    return out;
  }

  std::vector<control_record> load_controls(std::int64_t now) override {
    auto q = prepare(
        "SELECT kind, target, until_at, reason, created_at FROM controls "
        "WHERE until_at = 0 OR until_at > ? ORDER BY kind, target");
    q.bind(1, now);
    std::vector<control_record> out;
    while (q.step()) out.push_back({q.text(0), q.text(1), q.integer(2), q.text(3), q.integer(4)});
    return out;
  }

  std::optional<std::string> node_value(const std::string& name) override {
    auto q = prepare("SELECT value FROM node_state WHERE name = ?");
    q.bind(1, std::string_view(name));
    if (!q.step()) return std::nullopt;
    return q.text(0);
  }

  std::vector<std::pair<std::string, std::int64_t>> load_warmup_starts() override {
    auto q = prepare("SELECT name, warmup_started_at FROM egress_sources ORDER BY name");
    std::vector<std::pair<std::string, std::int64_t>> out;
    while (q.step()) out.emplace_back(q.text(0), q.integer(1));
    return out;
  }

  std::vector<egress_usage_record> load_egress_usage() override {
    auto q = prepare("SELECT source, period, period_start, count FROM egress_usage ORDER BY source, period");
    std::vector<egress_usage_record> out;
    while (q.step())
      out.push_back({q.text(0), q.text(1), q.integer(2), static_cast<std::uint64_t>(q.integer(3))});
    return out;
  }

  std::uint64_t count_recipients(recipient_state state) override {
    auto q = prepare("SELECT COUNT(*) FROM recipients WHERE state = ?");
    q.bind(1, to_string(state));
    return q.step() ? static_cast<std::uint64_t>(q.integer(0)) : 0;
  }

  void check() override {
    auto q = prepare("SELECT 1");
    q.step();
  }

  std::optional<std::uint64_t> free_bytes() override {
    struct statvfs fs {};
    if (::statvfs(path_.c_str(), &fs) != 0) return std::nullopt;
    return static_cast<std::uint64_t>(fs.f_bavail) * fs.f_frsize;
  }

 private:
  std::vector<queued_recipient> read_queued(statement& q) {
    std::vector<queued_recipient> out;
    while (q.step()) {
      queued_recipient r;
      r.recipient_id = q.id(0);
      r.message_id = q.id(1);
      r.tenant_id = q.id(2);
      r.domain = q.text(3);
      r.state = parse_recipient_state(q.text(4)).value_or(recipient_state::queued);
      r.attempts = static_cast<std::uint32_t>(q.integer(5));
      r.next_attempt_at_ms = q.integer(6);
      r.pool = q.text(7);
      r.priority = static_cast<int>(q.integer(8));
      r.alone = q.integer(9) != 0;
      out.push_back(std::move(r));
    }
    return out;
  }

  std::vector<suppression_record> read_suppressions(statement& q, const id128& tenant_id) {
    std::vector<suppression_record> out;
    while (q.step()) {
      suppression_record r;
      r.tenant_id = tenant_id;
      r.address = q.text(0);
      r.reason = q.text(1);
      r.source_event = q.text(2);
      r.created_at_ms = q.integer(3);
      r.expires_at_ms = q.integer(4);
      out.push_back(std::move(r));
    }
    return out;
  }

  std::vector<recipient_lookup> read_lookups(statement& q) {
    std::vector<recipient_lookup> out;
    while (q.step()) {
      recipient_lookup r;
      r.recipient_id = q.id(0);
      r.message_id = q.id(1);
      r.tenant_id = q.id(2);
      r.address = q.text(3);
      r.domain = q.text(4);
      r.state = parse_recipient_state(q.text(5)).value_or(recipient_state::queued);
      r.attempts = static_cast<std::uint32_t>(q.integer(6));
      r.sender_domain = q.text(7);
      out.push_back(std::move(r));
    }
    return out;
  }

  void apply_one(const write_op& op) {
    std::visit([this](const auto& o) { apply_op(o); }, op);
  }

  void apply_op(const insert_message_op& op) {
    const auto& m = op.message;
    {
      auto q = prepare(
          "INSERT INTO messages (id, tenant_id, created_at, mail_from, subject, campaign, tags, "
          "metadata, message_id_header, size, content, bulk, from_domain, templated, batch_id) "
          "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)");
      q.bind(1, m.id)
          .bind(2, m.tenant_id)
          .bind(3, m.created_at_ms)
          .bind(4, std::string_view(m.mail_from))
          .bind(5, std::string_view(m.subject))
          .bind(6, std::string_view(m.campaign))
          .bind(7, std::string_view(m.tags_json))
          .bind(8, std::string_view(m.metadata_json))
          .bind(9, std::string_view(m.message_id_header))
          .bind(10, static_cast<std::int64_t>(m.size))
          .bind_blob(11, m.content)
          .bind(12, static_cast<std::int64_t>(m.bulk ? 1 : 0))
          .bind(13, std::string_view(m.from_domain))
          .bind(14, static_cast<std::int64_t>(m.templated ? 1 : 0))
          .bind(15, std::string_view(m.batch_id));
      q.run();
    }
    for (const auto& r : m.recipients) {
      auto q = prepare(
          "INSERT INTO recipients (id, message_id, tenant_id, address, domain, kind, state, "
          "attempts, next_attempt_at, updated_at, last_reply, pool, priority, personal, metadata) "
          "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)");
      q.bind(1, r.id)
          .bind(2, m.id)
          .bind(3, m.tenant_id)
          .bind(4, std::string_view(r.address))
          .bind(5, std::string_view(r.domain))
          .bind(6, to_string(r.kind))
          .bind(7, to_string(r.state))
          .bind(8, static_cast<std::int64_t>(r.attempts))
          .bind(9, r.next_attempt_at_ms)
          .bind(10, r.updated_at_ms)
          .bind(11, std::string_view(r.last_reply))
          .bind(12, std::string_view(r.pool))
          .bind(13, static_cast<std::int64_t>(r.priority))
          .bind(14, std::string_view(r.personal_json))
          .bind(15, std::string_view(r.metadata_json));
      q.run();
    }
    if (!m.idempotency.key.empty()) {
      // An expired row of the same key makes way; a live one makes this insert fail (the
      // primary key), and with it the whole message: a concurrent duplicate stores nothing.
      const auto& k = m.idempotency;
      auto old = prepare("DELETE FROM idempotency_keys WHERE tenant_id = ? AND key = ? AND expires_at <= ?");
      old.bind(1, m.tenant_id).bind(2, std::string_view(k.key)).bind(3, k.created_at_ms);
      old.run();
      auto q = prepare(
          "INSERT INTO idempotency_keys (tenant_id, key, request_hash, message_id, status, response, created_at, "
          "expires_at) VALUES (?,?,?,?,?,?,?,?)");
      q.bind(1, m.tenant_id)
          .bind(2, std::string_view(k.key))
          .bind(3, std::string_view(k.request_hash))
          .bind(4, m.id)
          .bind(5, static_cast<std::int64_t>(k.status))
          .bind(6, std::string_view(k.response))
          .bind(7, k.created_at_ms)
          .bind(8, k.expires_at_ms);
      q.run();
    }
    if (m.tracking_expires_ms > 0)
      for (std::size_t i = 0; i <= m.tracking_links.size(); ++i) {
        auto q = prepare(
            "INSERT INTO tracking_links (message_id, link, tenant_id, url, expires_at) VALUES (?,?,?,?,?)");
        q.bind(1, m.id)
            .bind(2, static_cast<std::int64_t>(i))
            .bind(3, m.tenant_id)
            .bind(4, i == 0 ? std::string_view("") : std::string_view(m.tracking_links[i - 1]))
            .bind(5, m.tracking_expires_ms);
        q.run();
      }
    insert_event(op.accepted);
    for (const auto& e : op.events) insert_event(e);
  }

  void apply_op(const record_tracking_hit_op& op) {
    const auto& h = op.hit;
    auto q = prepare(
        "INSERT INTO tracking_hits (recipient_id, link, machine, message_id, hits, first_at, last_at, expires_at) "
        "VALUES (?1, ?2, ?3, ?4, 1, ?5, ?5, ?6) ON CONFLICT (recipient_id, link, machine) DO UPDATE SET "
        "hits = hits + 1, last_at = MAX(last_at, excluded.last_at) RETURNING hits");
    q.bind(1, h.recipient_id)
        .bind(2, static_cast<std::int64_t>(h.link))
        .bind(3, static_cast<std::int64_t>(h.machine ? 1 : 0))
        .bind(4, op.event.message_id)
        .bind(5, h.first_at_ms)
        .bind(6, op.expires_ms);
    bool first = false;
    while (q.step()) first = q.integer(0) == 1;
    if (first) insert_event(op.event);
  }

  void insert_event(const event_record& e) {
    auto q = prepare(
        "INSERT INTO events (id, tenant_id, message_id, recipient_id, type, created_at, data) "
        "VALUES (?,?,?,?,?,?,?)");
    q.bind(1, e.id)
        .bind(2, e.tenant_id)
        .bind(3, e.message_id)
        .bind(4, e.recipient_id)
        .bind(5, std::string_view(e.type))
        .bind(6, e.at_ms)
        .bind(7, std::string_view(e.data_json));
    q.run();
  }

  void apply_op(const insert_tenant_op& op) {
    const auto& t = op.tenant;
    auto q = prepare(
        "INSERT INTO tenants (id, name, rate_per_second, burst, suspended, created_at, pool, weight, sandbox) "
        "VALUES (?,?,?,?,?,?,?,?,?)");
    q.bind(1, t.id)
        .bind(2, std::string_view(t.name))
        .bind(3, t.rate_per_second)
        .bind(4, static_cast<std::int64_t>(t.burst))
        .bind(5, static_cast<std::int64_t>(t.suspended ? 1 : 0))
        .bind(6, t.created_at_ms)
        .bind(7, std::string_view(t.pool))
        .bind(8, static_cast<std::int64_t>(t.weight))
        .bind(9, static_cast<std::int64_t>(t.sandbox ? 1 : 0));
    q.run();
    for (const auto& key : op.keys) apply_op(insert_api_key_op{key});
  }

  void apply_op(const update_tenant_op& op) {
    const auto& t = op.tenant;
    auto q = prepare(
        "UPDATE tenants SET rate_per_second = ?, burst = ?, suspended = ?, pool = ?, weight = ?, sandbox = ?, "
        "tracking_opens = ?, tracking_clicks = ?, tracking_record_ip = ?, tracking_domain = ?, tracking_verified = ?, "
        "tracking_checked_at = ?, tracking_status = ? WHERE id = ?");
    q.bind(1, t.rate_per_second)
        .bind(2, static_cast<std::int64_t>(t.burst))
        .bind(3, static_cast<std::int64_t>(t.suspended ? 1 : 0))
        .bind(4, std::string_view(t.pool))
        .bind(5, static_cast<std::int64_t>(t.weight))
        .bind(6, static_cast<std::int64_t>(t.sandbox ? 1 : 0))
        .bind(7, static_cast<std::int64_t>(t.tracking.opens ? 1 : 0))
        .bind(8, static_cast<std::int64_t>(t.tracking.clicks ? 1 : 0))
        .bind(9, static_cast<std::int64_t>(t.tracking.record_ip ? 1 : 0))
        .bind(10, std::string_view(t.tracking.domain))
        .bind(11, static_cast<std::int64_t>(t.tracking.verified ? 1 : 0))
        .bind(12, t.tracking.checked_at_ms)
        .bind(13, std::string_view(t.tracking.status))
        .bind(14, t.id);
    q.run();
    if (sqlite3_changes(db_) == 0) throw operation_error("no such tenant");
  }

  void apply_op(const insert_api_key_op& op) {
    const auto& k = op.key;
    auto q = prepare(
        "INSERT INTO api_keys (id, tenant_id, key_hash, prefix, created_at, revoked_at) "
        "VALUES (?,?,?,?,?,?)");
    q.bind(1, k.id)
        .bind(2, k.tenant_id)
        .bind(3, std::string_view(k.key_hash))
        .bind(4, std::string_view(k.prefix))
        .bind(5, k.created_at_ms)
        .bind(6, k.revoked_at_ms);
    q.run();
  }

  void apply_op(const update_recipients_op& op) {
    for (const auto& u : op.updates) {
      auto q = prepare(
          "UPDATE recipients SET state = ?, attempts = ?, next_attempt_at = ?, updated_at = ?, "
          "last_reply = ? WHERE id = ?");
      q.bind(1, to_string(u.state))
          .bind(2, static_cast<std::int64_t>(u.attempts))
          .bind(3, u.next_attempt_at_ms)
          .bind(4, u.event.at_ms)
          .bind(5, std::string_view(u.last_reply))
          .bind(6, u.recipient_id);
      q.run();  // a recipient that no longer exists is skipped (both backends)
      insert_event(u.event);
    }
  }

  void apply_op(const insert_sender_domain_op& op) {
    const auto& d = op.domain;
    auto q = prepare(
        "INSERT INTO sender_domains (id, tenant_id, domain, created_at, verified, checked_at, status) "
        "VALUES (?,?,?,?,?,?,?)");
    q.bind(1, d.id)
        .bind(2, d.tenant_id)
        .bind(3, std::string_view(d.domain))
        .bind(4, d.created_at_ms)
        .bind(5, static_cast<std::int64_t>(d.verified ? 1 : 0))
        .bind(6, d.checked_at_ms)
        .bind(7, std::string_view(d.status_json));
    q.run();
    for (const auto& k : d.keys) apply_op(insert_dkim_key_op{k});
  }

  void apply_op(const update_sender_domain_op& op) {
    auto q = prepare("UPDATE sender_domains SET verified = ?, checked_at = ?, status = ? WHERE id = ?");
    q.bind(1, static_cast<std::int64_t>(op.verified ? 1 : 0))
        .bind(2, op.checked_at_ms)
        .bind(3, std::string_view(op.status_json))
        .bind(4, op.domain_id);
    q.run();
    if (sqlite3_changes(db_) == 0) throw operation_error("no such sender domain");
  }

  void apply_op(const insert_dkim_key_op& op) {
    const auto& k = op.key;
    auto q = prepare(
        "INSERT INTO dkim_keys (id, domain_id, selector, algorithm, private_key, public_key, "
        "created_at, state) VALUES (?,?,?,?,?,?,?,?)");
    q.bind(1, k.id)
        .bind(2, k.domain_id)
        .bind(3, std::string_view(k.selector))
        .bind(4, std::string_view(k.algorithm))
        .bind(5, std::string_view(k.private_key))
        .bind(6, std::string_view(k.public_key))
        .bind(7, k.created_at_ms)
        .bind(8, std::string_view(k.state));
    q.run();
  }

  void apply_op(const update_dkim_key_op& op) {
    auto q = prepare("UPDATE dkim_keys SET state = ? WHERE id = ?");
    q.bind(1, std::string_view(op.state)).bind(2, op.key_id);
    q.run();
    if (sqlite3_changes(db_) == 0) throw operation_error("no such key");
  }

  void apply_op(const delete_sender_domain_op& op) {
    {
      auto q = prepare("DELETE FROM dkim_keys WHERE domain_id = ?");
      q.bind(1, op.domain_id);
      q.run();
    }
    auto q = prepare("DELETE FROM sender_domains WHERE id = ?");
    q.bind(1, op.domain_id);
    q.run();
    if (sqlite3_changes(db_) == 0) throw operation_error("no such sender domain");
  }

  void apply_op(const append_event_op& op) { insert_event(op.event); }

  void apply_op(const flush_recipients_op& op) {
    auto q = prepare(
        "UPDATE recipients SET next_attempt_at = ?2 WHERE state IN ('queued', 'deferred') "
        "AND domain = ?1 AND next_attempt_at > ?2");
    q.bind(1, std::string_view(op.domain)).bind(2, op.now_ms);
    q.run();
  }

  void apply_op(const prune_events_op& op) {
    auto q = prepare(
        "DELETE FROM events WHERE seq IN (SELECT seq FROM events WHERE created_at < ?1 "
        "AND seq < (SELECT MAX(seq) FROM events) ORDER BY created_at LIMIT ?2)");
    q.bind(1, op.before_ms).bind(2, static_cast<std::int64_t>(op.limit));
    q.run();
  }

  // Recipients that still wait keep their message whole, whatever its age.
  void apply_op(const prune_messages_op& op) {
    auto content = prepare(
        "UPDATE messages SET content = X'', content_pruned_at = ?3 WHERE id IN (SELECT m.id FROM messages m "
        "WHERE m.created_at < ?1 AND m.content_pruned_at = 0 AND NOT EXISTS (SELECT 1 FROM recipients r "
        "WHERE r.message_id = m.id AND r.state IN ('queued', 'deferred')) ORDER BY m.created_at LIMIT ?2)");
    content.bind(1, op.content_before_ms).bind(2, static_cast<std::int64_t>(op.limit)).bind(3, op.now_ms);
    content.run();
    auto recipients = prepare(
        "DELETE FROM recipients WHERE message_id IN (SELECT m.id FROM messages m WHERE m.created_at < ?1 "
        "AND NOT EXISTS (SELECT 1 FROM recipients r WHERE r.message_id = m.id AND r.state IN "
        "('queued', 'deferred')) ORDER BY m.created_at LIMIT ?2)");
    recipients.bind(1, op.rows_before_ms).bind(2, static_cast<std::int64_t>(op.limit));
    recipients.run();
    auto messages = prepare(
        "DELETE FROM messages WHERE id IN (SELECT m.id FROM messages m WHERE m.created_at < ?1 AND "
        "NOT EXISTS (SELECT 1 FROM recipients r WHERE r.message_id = m.id) ORDER BY m.created_at LIMIT ?2)");
    messages.bind(1, op.rows_before_ms).bind(2, static_cast<std::int64_t>(op.limit));
    messages.run();
    // Rows that expire by themselves, whatever the age of their message.
    static const char* const expired[] = {
        "DELETE FROM idempotency_keys WHERE rowid IN (SELECT rowid FROM idempotency_keys WHERE expires_at <= ?1 "
        "LIMIT ?2)",
        "DELETE FROM tracking_links WHERE rowid IN (SELECT rowid FROM tracking_links WHERE expires_at <= ?1 "
        "LIMIT ?2)",
        "DELETE FROM tracking_hits WHERE rowid IN (SELECT rowid FROM tracking_hits WHERE expires_at <= ?1 "
        "LIMIT ?2)"};
    for (const char* sql : expired) {
      auto q = prepare(sql);
      q.bind(1, op.now_ms).bind(2, static_cast<std::int64_t>(op.limit));
      q.run();
    }
    pruned_ = true;
  }

  void apply_op(const insert_template_op& op) {
    const auto& t = op.templ;
    auto q = prepare(
        "INSERT INTO templates (id, version, tenant_id, name, subject, parts, text_body, html_body, created_at) "
        "VALUES (?,?,?,?,?,?,?,?,?)");
    q.bind(1, t.id)
        .bind(2, static_cast<std::int64_t>(t.version))
        .bind(3, t.tenant_id)
        .bind(4, std::string_view(t.name))
        .bind(5, std::string_view(t.subject))
        .bind(6, static_cast<std::int64_t>((t.has_text ? 1 : 0) | (t.has_html ? 2 : 0)))
        .bind(7, std::string_view(t.text))
        .bind(8, std::string_view(t.html))
        .bind(9, t.created_at_ms);
    q.run();
  }

  void apply_op(const delete_template_op& op) {
    auto q = prepare("UPDATE templates SET deleted_at = ?3 WHERE tenant_id = ?1 AND id = ?2 AND deleted_at = 0");
    q.bind(1, op.tenant_id).bind(2, op.id).bind(3, op.now_ms);
    q.run();
  }

  void apply_op(const insert_webhook_op& op) {
    const auto& w = op.webhook;
    auto q = prepare(
        "INSERT INTO webhooks (id, tenant_id, url, event_types, secret, created_at, state, "
        "paused_reason, cursor, last_success_at, last_error, last_error_at, failures, "
        "failing_since, delivered) VALUES (?1,?2,?3,?4,?5,?6,?7,'',"
        "(SELECT COALESCE(MAX(seq), 0) FROM events),0,'',0,0,0,0)");
    q.bind(1, w.id)
        .bind(2, w.tenant_id)
        .bind(3, std::string_view(w.url))
        .bind(4, std::string_view(w.event_types))
        .bind(5, std::string_view(w.secret))
        .bind(6, w.created_at_ms)
        .bind(7, std::string_view(w.state));
    q.run();
  }

  void apply_op(const update_webhook_op& op) {
    const auto& w = op.webhook;
    auto q = prepare(
        "UPDATE webhooks SET state = ?1, paused_reason = ?2, cursor = ?3, last_success_at = ?4, "
        "last_error = ?5, last_error_at = ?6, failures = ?7, failing_since = ?8, delivered = ?9 "
        "WHERE id = ?10");
    q.bind(1, std::string_view(w.state))
        .bind(2, std::string_view(w.paused_reason))
        .bind(3, w.cursor)
        .bind(4, w.last_success_at_ms)
        .bind(5, std::string_view(w.last_error))
        .bind(6, w.last_error_at_ms)
        .bind(7, static_cast<std::int64_t>(w.failures))
        .bind(8, w.failing_since_ms)
        .bind(9, static_cast<std::int64_t>(w.delivered))
        .bind(10, w.id);
    q.run();
    if (sqlite3_changes(db_) == 0) throw operation_error("no such webhook");
  }

  void apply_op(const rotate_webhook_op& op) {
    auto q = prepare("UPDATE webhooks SET secret = ?1, previous_secret = ?2, previous_until = ?3 WHERE id = ?4");
    q.bind(1, std::string_view(op.secret))
        .bind(2, std::string_view(op.previous_secret))
        .bind(3, op.previous_until_ms)
        .bind(4, op.webhook_id);
    q.run();
    if (sqlite3_changes(db_) == 0) throw operation_error("no such webhook");
  }

  void apply_op(const resume_webhook_op& op) {
    auto q = prepare("UPDATE webhooks SET state = 'active', paused_reason = '', failures = 0, "
                     "failing_since = 0 WHERE id = ?1");
    q.bind(1, op.webhook_id);
    q.run();
    if (sqlite3_changes(db_) == 0) throw operation_error("no such webhook");
  }

  void apply_op(const delete_webhook_op& op) {
    auto q = prepare("DELETE FROM webhooks WHERE id = ?1 AND tenant_id = ?2");
    q.bind(1, op.webhook_id).bind(2, op.tenant_id);
    q.run();
    if (sqlite3_changes(db_) == 0) throw operation_error("no such webhook");
  }

  void apply_op(const upsert_suppression_op& op) {
    const auto& r = op.suppression;
    auto q = prepare(
        "INSERT INTO suppressions (tenant_id, address, reason, source_event, created_at, "
        "expires_at) VALUES (?1,?2,?3,?4,?5,?6) ON CONFLICT (tenant_id, address) DO UPDATE SET "
        "reason = excluded.reason, source_event = excluded.source_event, "
        "created_at = excluded.created_at, expires_at = excluded.expires_at");
    q.bind(1, r.tenant_id)
        .bind(2, std::string_view(r.address))
        .bind(3, std::string_view(r.reason))
        .bind(4, std::string_view(r.source_event))
        .bind(5, r.created_at_ms)
        .bind(6, r.expires_at_ms);
    q.run();
  }

  void apply_op(const delete_suppression_op& op) {
    auto q = prepare("DELETE FROM suppressions WHERE tenant_id = ? AND address = ?");
    q.bind(1, op.tenant_id).bind(2, std::string_view(op.address));
    q.run();
    if (sqlite3_changes(db_) == 0) throw operation_error("no such suppression");
  }

  void apply_op(const upsert_control_op& op) {
    const auto& c = op.control;
    auto q = prepare(
        "INSERT INTO controls (kind, target, until_at, reason, created_at) VALUES (?1,?2,?3,?4,?5) "
        "ON CONFLICT (kind, target) DO UPDATE SET until_at = excluded.until_at, "
        "reason = excluded.reason, created_at = excluded.created_at");
    q.bind(1, std::string_view(c.kind))
        .bind(2, std::string_view(c.target))
        .bind(3, c.until_ms)
        .bind(4, std::string_view(c.reason))
        .bind(5, c.created_at_ms);
    q.run();
  }

  void apply_op(const delete_control_op& op) {
    auto q = prepare("DELETE FROM controls WHERE kind = ? AND target = ?");
    q.bind(1, std::string_view(op.kind)).bind(2, std::string_view(op.target));
    q.run();
    if (sqlite3_changes(db_) == 0) throw operation_error("no such suspension");
  }

  void apply_op(const set_egress_usage_op& op) {
    const auto& u = op.usage;
    auto q = prepare(
        "INSERT INTO egress_usage (source, period, period_start, count) VALUES (?1,?2,?3,?4) "
        "ON CONFLICT (source, period) DO UPDATE SET period_start = excluded.period_start, "
        "count = excluded.count");
    q.bind(1, std::string_view(u.source))
        .bind(2, std::string_view(u.period))
        .bind(3, u.period_start_ms)
        .bind(4, static_cast<std::int64_t>(u.count));
    q.run();
  }

  void apply_op(const set_node_value_op& op) {
    auto q = prepare(
        "INSERT INTO node_state (name, value, updated_at) VALUES (?1, ?2, ?3) "
        "ON CONFLICT (name) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at");
    q.bind(1, std::string_view(op.name)).bind(2, std::string_view(op.value)).bind(3, op.at_ms);
    q.run();
  }

  void apply_op(const set_warmup_start_op& op) {
    // The first start stays: a source warms up once.
    auto q = prepare(
        "INSERT INTO egress_sources (name, warmup_started_at) VALUES (?1, ?2) "
        "ON CONFLICT (name) DO NOTHING");
    q.bind(1, std::string_view(op.source)).bind(2, op.started_at_ms);
    q.run();
  }

  void apply_op(const set_soft_bounce_op& op) {
    if (op.count == 0) {
      auto q = prepare("DELETE FROM soft_bounces WHERE tenant_id = ? AND address = ?");
      q.bind(1, op.tenant_id).bind(2, std::string_view(op.address));
      q.run();
      return;
    }
    auto q = prepare(
        "INSERT INTO soft_bounces (tenant_id, address, count, first_at) VALUES (?1,?2,?3,?4) "
        "ON CONFLICT (tenant_id, address) DO UPDATE SET count = excluded.count, "
        "first_at = excluded.first_at");
    q.bind(1, op.tenant_id)
        .bind(2, std::string_view(op.address))
        .bind(3, static_cast<std::int64_t>(op.count))
        .bind(4, op.first_at_ms);
    q.run();
  }

  void apply_op(const revoke_api_key_op& op) {
    auto q = prepare(
        "UPDATE api_keys SET revoked_at = ? WHERE id = ? AND tenant_id = ? AND revoked_at = 0");
    q.bind(1, op.revoked_at_ms).bind(2, op.key_id).bind(3, op.tenant_id);
    q.run();
    if (sqlite3_changes(db_) == 0) throw operation_error("no such active key for this tenant");
  }

  // After a retention pass: free pages go back to the file system, a bounded number at a time
  // (incremental auto-vacuum; databases created before it keep their free pages for reuse).
  void give_space_back() {
    if (!pruned_) return;
    pruned_ = false;
    execute_noexcept("PRAGMA incremental_vacuum(4096)");
  }

  void commit() {
    int rc = sqlite3_exec(db_, "COMMIT", nullptr, nullptr, nullptr);
    if (rc != SQLITE_OK)
      throw store_error("sqlite: commit failed: " + std::string(sqlite3_errmsg(db_)));
    // A file system the kernel has remounted read-only after an error (ext4, errors=remount-ro)
    // answers fsync with success without writing anything, so a commit written just before the
    // remount and synced just after it may be lost: such a commit is not acknowledged. (A
    // commit both written and synced in the few milliseconds between the error and the remount
    // is not caught here; docs/reliability.md, "Not guaranteed".)
    struct statvfs fs {};
    if (::statvfs(directory_.c_str(), &fs) == 0 && (fs.f_flag & ST_RDONLY))
      throw store_error("sqlite: the file system of " + directory_ +
                        " went read-only during the commit; it may not be on disk");
  }

  statement prepare(const char* sql) {
    auto it = cache_.find(sql);
    if (it == cache_.end()) {
      sqlite3_stmt* stmt = nullptr;
      if (sqlite3_prepare_v3(db_, sql, -1, SQLITE_PREPARE_PERSISTENT, &stmt, nullptr) !=
          SQLITE_OK)
        throw store_error("sqlite: cannot prepare \"" + std::string(sql) +
                          "\": " + sqlite3_errmsg(db_));
      it = cache_.emplace(sql, stmt).first;
    }
    return statement(db_, it->second);
  }

  void execute(const std::string& sql) {
    char* error = nullptr;
    if (sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, &error) != SQLITE_OK) {
      std::string message = error ? error : sqlite3_errmsg(db_);
      sqlite3_free(error);
      throw store_error("sqlite: " + message + " (in: " + sql.substr(0, 80) + ")");
    }
  }
  void execute_noexcept(const char* sql) noexcept {
    sqlite3_exec(db_, sql, nullptr, nullptr, nullptr);
  }

  std::string path_;
  std::string directory_ = ".";  // the database's directory: its file system's state
  sqlite3* db_ = nullptr;
  // Keyed by the SQL literal's address: every query is a string literal in this file.
  std::unordered_map<const char*, sqlite3_stmt*> cache_;
  bool pruned_ = false;  // a retention pass ran since the file last gave pages back
};

}  // namespace

std::unique_ptr<store> open_sqlite_store(const std::string& path, const store_options& options) {
  return std::make_unique<sqlite_store>(path, options);
}

std::unique_ptr<store> open_store(const std::string& url, const store_options& options) {
  if (url.rfind("sqlite:", 0) == 0) {
    auto path = url.substr(7);
    if (path.rfind("//", 0) == 0) path = path.substr(2);  // sqlite:///abs/path
    if (path.empty()) throw store_error("storage url \"" + url + "\" names no file");
    return open_sqlite_store(path, options);
  }
  if (url.rfind("postgresql://", 0) == 0 || url.rfind("postgres://", 0) == 0)
    return open_pg_store(url, options);
  throw store_error("unsupported storage url \"" + url + "\" (use sqlite:<path> or postgresql://...)");
}

}  // namespace petrel
