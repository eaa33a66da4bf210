// The store actor: owns the database connection on its own thread and group-commits writes.
//
// Group commit: a write request is appended to the pending batch and, if none is scheduled,
// the actor sends itself a commit message. That message queues behind every request already
// in the mailbox, so one transaction (one fsync) takes all writes that arrived meanwhile.
// Each writer is answered only after the commit that made its write durable.
#include <caf/all.hpp>
#include <thread>
#include <spdlog/spdlog.h>

#include "actors/actor_support.hpp"
#include "actors/policy/event_data.hpp"
#include "actors/metrics.hpp"
#include "actors/services.hpp"
#include "actors/spawn.hpp"

namespace petrel {

namespace {

gauge& store_connected() {
  return metrics().get_gauge("petrel_store_connected", "1 when the store's database connection is up");
}

// A database connection that reopens itself after a failure, but not more often than its
// backoff allows (100 ms doubling to 5 s): a database that is down costs a fast error, not a
// stall. Used by the store actor (writes) and by each reader.
class connection {
 public:
  connection() = default;
  connection(store_factory open, std::unique_ptr<store> opened, bool reports)
      : open_(std::move(open)), db_(std::move(opened)), reports_(reports) {
    if (reports_) store_connected().set(db_ ? 1 : 0);
  }

  store& get() {
    if (db_) return *db_;
    auto now = std::chrono::steady_clock::now();
    if (now < next_open_) throw store_error("the store is unavailable; reconnecting");
    try {
      db_ = open_();
      backoff_ = std::chrono::milliseconds(100);
      if (reports_) store_connected().set(1);
      spdlog::info("store.connected store={}", db_->describe());
    } catch (const store_error& e) {
      next_open_ = now + backoff_;
      spdlog::warn("store.connect_failed retry_in_ms={} error=\"{}\"", backoff_.count(), e.what());
      backoff_ = std::min(backoff_ * 2, std::chrono::milliseconds(5000));
      throw;
    }
    return *db_;
  }

  // After a failure: keep the connection if it still works, else drop it (reopened later).
  void check_after_failure() {
    if (!db_) return;
    try {
      db_->check();
    } catch (const store_error&) {
      db_.reset();
      if (reports_) store_connected().set(0);
    }
  }

  bool open() const { return static_cast<bool>(db_); }
  void close() { db_.reset(); }
  std::string describe() const { return db_ ? db_->describe() : "(closed)"; }

 private:
  store_factory open_;
  std::unique_ptr<store> db_;
  bool reports_ = false;
  std::chrono::steady_clock::time_point next_open_{};
  std::chrono::milliseconds backoff_{100};
};

// Runs a read; store failures become error replies instead of ending the actor.
template <class F>
auto guarded_read(connection& db, const char* what, F&& f) -> decltype(f(db.get())) {
  try {
    return f(db.get());
  } catch (const store_error& e) {
    spdlog::error("store.read_failed query={} error=\"{}\"", what, e.what());
    db.check_after_failure();
    return make_error(petrel_errc::store_failed, "the store could not read", 1000);
  }
}

// -- readers -------------------------------------------------------------------------------

struct reader_state {
  reader_state() = default;
  connection db;
  static inline const char* name = "store_reader";
};

using reader_pointer = store_reader_actor::stateful_pointer<reader_state>;

store_reader_actor::behavior_type reader_behavior(reader_pointer self, store_factory open) {
  auto& st = start_actor(self);
  st.db = connection(std::move(open), nullptr, false);
  return {
      [=](load_atom, tenant_atom)
          -> caf::result<std::vector<tenant_record>, std::vector<api_key_record>> {
        try {
          auto& db = self->state.db.get();
          return caf::result<std::vector<tenant_record>, std::vector<api_key_record>>(
              db.load_tenants(), db.load_active_api_keys());
        } catch (const store_error& e) {
          spdlog::error("store.read_failed query=tenants error=\"{}\"", e.what());
          self->state.db.check_after_failure();
          return make_error(petrel_errc::store_failed, "the store could not read", 1000);
        }
      },
      [=](message_atom, id128 tenant_id, id128 message_id) -> caf::result<message_details> {
        return guarded_read(self->state.db, "message", [&](store& db) -> caf::result<message_details> {
          auto found = db.find_message(tenant_id, message_id);
          if (!found) return make_error(petrel_errc::not_found, "no such message");
          return std::move(*found);
        });
      },
      [=](domains_atom, const std::string& after,
          std::uint64_t limit) -> caf::result<std::vector<std::string>> {
        return guarded_read(self->state.db, "pending_domains",
                            [&](store& db) -> caf::result<std::vector<std::string>> {
                              return db.pending_domains(after, limit);
                            });
      },
      [=](load_atom, const std::string& domain,
          stats_atom) -> caf::result<std::vector<queue_class_summary>> {
        return guarded_read(self->state.db, "queue_summary",
                            [&](store& db) -> caf::result<std::vector<queue_class_summary>> {
                              return db.queue_summary(domain);
                            });
      },
      [=](load_atom, const queue_page_query& q) -> caf::result<queue_page> {
        return guarded_read(self->state.db, "queue_page",
                            [&](store& db) -> caf::result<queue_page> { return db.read_queue_page(q); });
      },
      [=](load_atom, sender_atom) -> caf::result<std::vector<sender_domain_record>> {
        return guarded_read(self->state.db, "sender_domains",
                            [&](store& db) -> caf::result<std::vector<sender_domain_record>> {
                              return db.load_sender_domains();
                            });
      },
      [=](load_atom, const suppression_query& q) -> caf::result<std::vector<suppression_record>> {
        return guarded_read(self->state.db, "suppressions",
                            [&](store& db) -> caf::result<std::vector<suppression_record>> {
                              if (!q.address.empty()) {
                                std::vector<suppression_record> out;
                                if (auto one = db.find_suppression(q.tenant_id, q.address))
                                  out.push_back(std::move(*one));
                                return out;
                              }
                              return db.list_suppressions(q.tenant_id, q.reason, q.after, q.limit);
                            });
      },
      [=](load_atom, suppress_atom, id128 tenant_id) -> caf::result<suppression_snapshot> {
        return guarded_read(self->state.db, "tenant_suppressions",
                            [&](store& db) -> caf::result<suppression_snapshot> {
                              suppression_snapshot out;
                              out.suppressions = db.tenant_suppressions(tenant_id, unix_now_ms());
                              out.streaks = db.tenant_soft_bounces(tenant_id);
                              return out;
                            });
      },
      [=](load_atom, const recipient_query& q) -> caf::result<std::vector<recipient_lookup>> {
        return guarded_read(self->state.db, "recipients",
                            [&](store& db) -> caf::result<std::vector<recipient_lookup>> {
                              if (!q.recipient_id.empty()) {
                                std::vector<recipient_lookup> out;
                                if (auto one = db.find_recipient(q.recipient_id))
                                  out.push_back(std::move(*one));
                                return out;
                              }
                              return db.recipients_by_message_id_header(q.message_id_header);
                            });
      },
      [=](load_atom, const idempotency_query& q) -> caf::result<std::vector<idempotency_record>> {
        return guarded_read(self->state.db, "idempotency_key",
                            [&](store& db) -> caf::result<std::vector<idempotency_record>> {
                              std::vector<idempotency_record> out;
                              if (auto found = db.find_idempotency_key(q.tenant_id, q.key, q.now_ms))
                                out.push_back(std::move(*found));
                              return out;
                            });
      },
      [=](load_atom, const message_search& q) -> caf::result<std::vector<message_record>> {
        return guarded_read(self->state.db, "message_search",
                            [&](store& db) -> caf::result<std::vector<message_record>> { return db.search_messages(q); });
      },
      [=](load_atom, const template_query& q) -> caf::result<std::vector<template_record>> {
        return guarded_read(self->state.db, "templates",
                            [&](store& db) -> caf::result<std::vector<template_record>> { return db.find_templates(q); });
      },
      [=](load_atom, const tracking_query& q) -> caf::result<std::vector<tracking_target>> {
        return guarded_read(self->state.db, "tracking_target",
                            [&](store& db) -> caf::result<std::vector<tracking_target>> {
                              std::vector<tracking_target> out;
                              if (auto found = db.find_tracking_target(q)) out.push_back(std::move(*found));
                              return out;
                            });
      },
      [=](load_atom, const cancel_query& q) -> caf::result<cancel_targets> {
        return guarded_read(self->state.db, "cancel_targets", [&](store& db) -> caf::result<cancel_targets> {
          cancel_targets out;
          out.waiting = db.waiting_recipients_of(q.tenant_id, q.message_id, q.batch_id, out.messages);
          return out;
        });
      },
      [=](load_atom, controls_atom) -> caf::result<std::vector<control_record>> {
        return guarded_read(self->state.db, "controls",
                            [&](store& db) -> caf::result<std::vector<control_record>> {
                              return db.load_controls(unix_now_ms());
                            });
      },
      [=](load_atom, egress_atom) -> caf::result<egress_state> {
        return guarded_read(self->state.db, "egress", [&](store& db) -> caf::result<egress_state> {
          egress_state out;
          for (auto& [source, started] : db.load_warmup_starts()) {
            out.sources.push_back(source);
            out.warmup_started.push_back(started);
          }
          out.usage = db.load_egress_usage();
          return out;
        });
      },
      [=](load_atom, const event_query& q) -> caf::result<std::vector<event_view>> {
        return guarded_read(self->state.db, "events",
                            [&](store& db) -> caf::result<std::vector<event_view>> { return db.list_events(q); });
      },
      [=](load_atom, const stats_query& q) -> caf::result<std::vector<stats_row>> {
        return guarded_read(self->state.db, "event_stats",
                            [&](store& db) -> caf::result<std::vector<stats_row>> { return db.event_stats(q); });
      },
      [=](load_atom, webhook_atom) -> caf::result<std::vector<webhook_record>> {
        return guarded_read(self->state.db, "webhooks",
                            [&](store& db) -> caf::result<std::vector<webhook_record>> { return db.load_webhooks(); });
      },
      [=](pending_atom, id128 tenant, const std::string& types, std::int64_t after,
          std::uint64_t cap) -> caf::result<std::uint64_t> {
        return guarded_read(self->state.db, "pending_events", [&](store& db) -> caf::result<std::uint64_t> {
          return db.count_events_after(tenant, types, after, cap);
        });
      },
      [=](load_atom, id128 message_id,
          const std::vector<id128>& recipients) -> caf::result<delivery_content> {
        return guarded_read(self->state.db, "delivery", [&](store& db) -> caf::result<delivery_content> {
          auto found = db.load_delivery(message_id, recipients);
          if (!found) return make_error(petrel_errc::not_found, "message or recipient not found");
          return std::move(*found);
        });
      },
  };
}

// -- the store actor (writes) --------------------------------------------------------------

// Readiness trusts a commit this recent; past it, a probe write is made (one small
// transaction per readiness check of an idle node at most).
constexpr auto readiness_probe_interval = std::chrono::seconds(5);

struct store_state {
  store_state() = default;
  connection db;
  std::vector<store_reader_actor> readers;
  std::size_t next_reader = 0;
  std::uint64_t batch_max = 2048;
  std::chrono::steady_clock::duration commit_interval{};
  bool may_pause = false;  // detached: the commit interval is waited out on the store's thread
  bool paused = false;     // the interval was waited out for the commit message now queued
  std::vector<write_op> ops;
  std::vector<caf::typed_response_promise<caf::ok_atom>> promises;
  bool commit_scheduled = false;
  std::uint64_t injected_failures = 0;  // fault injection: commits still to fail
  std::uint64_t min_free_bytes = 0;  // storage.min_free_space
  std::string low_space;  // why new messages are refused now ("" when there is room)
  // The outcome of the latest commit, for readiness: its error ("" = it worked) and when.
  std::string last_commit_error;
  std::chrono::steady_clock::time_point last_commit_at{};
  static inline const char* name = "store";
};

using store_pointer = store_actor::stateful_pointer<store_state>;

const store_reader_actor& reader(store_pointer self) {
  auto& st = self->state;
  return st.readers[st.next_reader++ % st.readers.size()];
}

// Checks the free space of the store's file system; "" when there is enough (or the backend
// cannot tell), else why new messages are refused.
std::string check_space(store_state& st, store& db) {
  if (st.min_free_bytes == 0) return {};
  auto free = db.free_bytes();
  if (!free || *free >= st.min_free_bytes) return {};
  constexpr std::uint64_t mib = 1024 * 1024;
  return "the store's file system has " + std::to_string(*free / mib) +
         " MiB free, below storage.min_free_space (" + std::to_string(st.min_free_bytes / mib) +
         " MiB): new messages are refused until space is freed";
}

void commit_pending(store_pointer self) {
  auto& st = self->state;
  st.commit_scheduled = false;
  if (st.ops.empty()) return;
  auto ops = std::move(st.ops);
  auto promises = std::move(st.promises);
  st.ops.clear();
  st.promises.clear();
  auto started = std::chrono::steady_clock::now();
  try {
    // Low on space: new messages wait (503), so that what is already accepted can still record
    // its deliveries.
    auto low = check_space(st, st.db.get());
    if (low != st.low_space) {
      if (low.empty()) spdlog::info("store.space_recovered");
      else spdlog::error("store.low_space reason=\"{}\"", low);
      st.low_space = low;
    }
    if (!low.empty()) {
      std::size_t kept = 0;
      for (std::size_t i = 0; i < ops.size(); ++i) {
        if (std::holds_alternative<insert_message_op>(ops[i])) {
          promises[i].deliver(make_error(petrel_errc::overloaded, low, 5000));
          continue;
        }
        if (kept != i) {
          ops[kept] = std::move(ops[i]);
          promises[kept] = std::move(promises[i]);
        }
        ++kept;
      }
      ops.resize(kept);
      promises.erase(promises.begin() + static_cast<std::ptrdiff_t>(kept), promises.end());
      if (ops.empty()) return;
    }
    if (st.injected_failures > 0) {
      --st.injected_failures;
      throw store_error("fault injection: commit failed on purpose");
    }
    auto results = st.db.get().apply(ops);
    auto seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    core().store_commit_seconds.observe(seconds);
    core().store_batch_operations.observe(static_cast<double>(ops.size()));
    core().store_commits.inc();
    st.last_commit_error.clear();
    st.last_commit_at = std::chrono::steady_clock::now();
    for (std::size_t i = 0; i < promises.size(); ++i) {
      if (results[i].empty())
        promises[i].deliver(caf::ok_atom::value);
      else
        promises[i].deliver(make_error(petrel_errc::conflict, results[i]));
    }
  } catch (const store_error& e) {
    core().store_commit_failures.inc();
    spdlog::error("store.commit_failed operations={} error=\"{}\"", ops.size(), e.what());
    st.last_commit_error = e.what();
    st.last_commit_at = std::chrono::steady_clock::now();
    // Nothing of the batch is durable: every writer learns it and may retry.
    for (auto& p : promises)
      p.deliver(make_error(petrel_errc::store_failed, "the store could not commit", 1000));
    st.db.check_after_failure();  // reopened on next use if it is gone
  }
}

caf::typed_response_promise<caf::ok_atom> enqueue_write(store_pointer self, write_op op) {
  auto& st = self->state;
  auto rp = self->make_response_promise<caf::ok_atom>();
  st.ops.push_back(std::move(op));
  st.promises.push_back(rp);
  if (st.ops.size() >= st.batch_max) {
    commit_pending(self);
  } else if (!st.commit_scheduled) {
    st.commit_scheduled = true;
    self->send(self, commit_atom::value);
  }
  return rp;
}

// A new message with its accepted event, and a suppressed event for each recipient suppressed at submission (final at once).
caf::result<caf::ok_atom> persist_message(store_pointer self, message_record& m) {
  return enqueue_write(self, event_data::submission(std::move(m)));
}

// Ready means commits work now: there is room for new messages, and the last commit (within a
// few seconds) worked, else a probe write does (a read alone succeeds on a full disk or a
// read-only file system).
caf::result<readiness> readiness_of(store_pointer self) {
  auto& s = self->state;
  auto now = std::chrono::steady_clock::now();
  try {
    s.low_space = check_space(s, s.db.get());
  } catch (const store_error&) {
    // reported by the probe below
  }
  if (!s.low_space.empty()) return readiness{false, s.low_space};
  if (s.injected_failures > 0) {
    s.last_commit_error = "fault injection: commits fail on purpose";
    s.last_commit_at = now;
  } else if (now - s.last_commit_at > readiness_probe_interval) {
    try {
      s.db.get().apply({set_node_value_op{"ready_probe", std::to_string(unix_now_ms()),
                                          unix_now_ms()}});
      s.last_commit_error.clear();
    } catch (const store_error& e) {
      s.last_commit_error = e.what();
      s.db.check_after_failure();
    }
    s.last_commit_at = now;
  }
  if (s.last_commit_error.empty()) return readiness{true, ""};
  return readiness{false, "the store cannot commit: " + s.last_commit_error};
}

store_actor::behavior_type store_behavior(store_pointer self, store_factory open,
                                          std::shared_ptr<std::unique_ptr<store>> opened,
                                          std::uint64_t batch_max, std::chrono::milliseconds commit_interval,
                                          std::uint64_t readers,
                                          std::uint64_t min_free_bytes, bool detached) {
  auto& st = start_actor(self);
  st.db = connection(open, std::move(*opened), true);
  st.batch_max = batch_max;
  st.commit_interval = commit_interval;
  st.may_pause = detached && commit_interval.count() > 0;
  st.min_free_bytes = min_free_bytes;
  for (std::uint64_t i = 0; i < std::max<std::uint64_t>(readers, 1); ++i)
    st.readers.push_back(spawn_child(self->system(), self,
                                     detached ? runs_on::own_thread : runs_on::scheduler,
                                     reader_behavior, open));
  return {
      [=](persist_atom, message_record& m) -> caf::result<caf::ok_atom> {
        return persist_message(self, m);
      },
      [=](persist_atom, tenant_record& t, api_key_record& k) -> caf::result<caf::ok_atom> {
        return enqueue_write(self, insert_tenant_op{std::move(t), {std::move(k)}});
      },
      [=](persist_atom, api_key_record& k) -> caf::result<caf::ok_atom> {
        return enqueue_write(self, insert_api_key_op{std::move(k)});
      },
      [=](revoke_atom, id128 key_id, id128 tenant_id) -> caf::result<caf::ok_atom> {
        return enqueue_write(self, revoke_api_key_op{key_id, tenant_id, unix_now_ms()});
      },
      [=](record_atom, std::vector<recipient_update>& updates) -> caf::result<caf::ok_atom> {
        return enqueue_write(self, update_recipients_op{std::move(updates)});
      },
      [=](caf::update_atom, tenant_record& t) -> caf::result<caf::ok_atom> {
        return enqueue_write(self, update_tenant_op{std::move(t)});
      },
      [=](crash_atom, std::uint64_t commits) {
        spdlog::warn("store.fault_injection failing_commits={}", commits);
        self->state.injected_failures = commits;
      },
      [=](persist_atom, sender_domain_record& d) -> caf::result<caf::ok_atom> {
        return enqueue_write(self, insert_sender_domain_op{std::move(d)});
      },
      [=](persist_atom, dkim_key_record& k) -> caf::result<caf::ok_atom> {
        return enqueue_write(self, insert_dkim_key_op{std::move(k)});
      },
      [=](record_atom, id128 key_id, std::string& state) -> caf::result<caf::ok_atom> {
        return enqueue_write(self, update_dkim_key_op{key_id, std::move(state)});
      },
      [=](verify_atom, id128 domain_id, bool verified, std::int64_t checked_at,
          std::string& status) -> caf::result<caf::ok_atom> {
        return enqueue_write(self, update_sender_domain_op{domain_id, verified, checked_at, std::move(status)});
      },
      [=](caf::delete_atom, id128 domain_id) -> caf::result<caf::ok_atom> {
        return enqueue_write(self, delete_sender_domain_op{domain_id});
      },
      [=](record_atom, event_record& e) -> caf::result<caf::ok_atom> {
        return enqueue_write(self, append_event_op{std::move(e)});
      },
      [=](load_atom, sender_atom) -> caf::result<std::vector<sender_domain_record>> {
        return self->delegate(reader(self), load_atom::value, sender_atom::value);
      },
      [=](persist_atom, write_request& w) -> caf::result<caf::ok_atom> {
        return enqueue_write(self, std::move(w.op));
      },
      [=](load_atom, suppression_query& q) -> caf::result<std::vector<suppression_record>> {
        return self->delegate(reader(self), load_atom::value, std::move(q));
      },
      [=](load_atom, suppress_atom, id128 tenant_id) -> caf::result<suppression_snapshot> {
        return self->delegate(reader(self), load_atom::value, suppress_atom::value, tenant_id);
      },
      [=](load_atom, recipient_query& q) -> caf::result<std::vector<recipient_lookup>> {
        return self->delegate(reader(self), load_atom::value, std::move(q));
      },
      [=](load_atom, idempotency_query& q) -> caf::result<std::vector<idempotency_record>> {
        return self->delegate(reader(self), load_atom::value, std::move(q));
      },
      [=](load_atom, cancel_query& q) -> caf::result<cancel_targets> {
        return self->delegate(reader(self), load_atom::value, std::move(q));
      },
      [=](load_atom, template_query& q) -> caf::result<std::vector<template_record>> {
        return self->delegate(reader(self), load_atom::value, std::move(q));
      },
      [=](load_atom, tracking_query& q) -> caf::result<std::vector<tracking_target>> {
        return self->delegate(reader(self), load_atom::value, std::move(q));
      },
      [=](load_atom, message_search& q) -> caf::result<std::vector<message_record>> {
        return self->delegate(reader(self), load_atom::value, std::move(q));
      },
      [=](load_atom, controls_atom) -> caf::result<std::vector<control_record>> {
        return self->delegate(reader(self), load_atom::value, controls_atom::value);
      },
      [=](load_atom, egress_atom) -> caf::result<egress_state> {
        return self->delegate(reader(self), load_atom::value, egress_atom::value);
      },
      [=](load_atom, event_query& q) -> caf::result<std::vector<event_view>> {
        return self->delegate(reader(self), load_atom::value, std::move(q));
      },
      [=](load_atom, stats_query& q) -> caf::result<std::vector<stats_row>> {
        return self->delegate(reader(self), load_atom::value, std::move(q));
      },
      [=](load_atom, webhook_atom) -> caf::result<std::vector<webhook_record>> {
        return self->delegate(reader(self), load_atom::value, webhook_atom::value);
      },
      [=](pending_atom, id128 tenant, std::string& types, std::int64_t after,
          std::uint64_t cap) -> caf::result<std::uint64_t> {
        return self->delegate(reader(self), pending_atom::value, tenant, std::move(types), after, cap);
      },
      // Reads go to the readers, in turn: they never wait behind a commit.
      [=](load_atom, id128 message_id,
          std::vector<id128>& recipients) -> caf::result<delivery_content> {
        return self->delegate(reader(self), load_atom::value, message_id, std::move(recipients));
      },
      [=](load_atom, tenant_atom)
          -> caf::result<std::vector<tenant_record>, std::vector<api_key_record>> {
        return self->delegate(reader(self), load_atom::value, tenant_atom::value);
      },
      [=](message_atom, id128 tenant_id, id128 message_id) -> caf::result<message_details> {
        return self->delegate(reader(self), message_atom::value, tenant_id, message_id);
      },
      [=](domains_atom, std::string& after,
          std::uint64_t limit) -> caf::result<std::vector<std::string>> {
        return self->delegate(reader(self), domains_atom::value, std::move(after), limit);
      },
      [=](load_atom, std::string& domain,
          stats_atom) -> caf::result<std::vector<queue_class_summary>> {
        return self->delegate(reader(self), load_atom::value, std::move(domain), stats_atom::value);
      },
      [=](load_atom, queue_page_query& q) -> caf::result<queue_page> {
        return self->delegate(reader(self), load_atom::value, std::move(q));
      },
      [=](ready_atom) -> caf::result<readiness> { return readiness_of(self); },
      [=](commit_atom) {
        // Under load the previous commit ended moments ago: wait out storage.commit_interval,
        // then look again behind the writes that arrived meanwhile, so that they share the next
        // fsync. The store has its own thread (detached), so the pause holds up no other
        // actor, and it costs no timer (a delayed message per commit kept CAF's clock thread
        // waking up). An idle store commits at once.
        auto& st = self->state;
        auto since = std::chrono::steady_clock::now() - st.last_commit_at;
        if (st.may_pause && !st.paused && since < st.commit_interval) {
          std::this_thread::sleep_for(st.commit_interval - since);
          st.paused = true;
          self->send(self, commit_atom::value);
          return;
        }
        st.paused = false;
        commit_pending(self);
      },
      [=](shutdown_atom) -> caf::result<caf::ok_atom> {
        commit_pending(self);
        spdlog::info("store.closed store={}", self->state.db.describe());
        self->state.db.close();
        for (auto& r : self->state.readers) self->send_exit(r, caf::exit_reason::user_shutdown);
        auto rp = self->make_response_promise<caf::ok_atom>();
        rp.deliver(caf::ok_atom::value);
        self->quit();
        return rp;
      },
  };
}

}  // namespace

store_actor spawn_store(caf::actor_system& sys, caf::local_actor* parent, store_factory open,
                        std::unique_ptr<store> opened, const node_settings& settings) {
  // The connection travels in a shared_ptr: CAF copies spawn arguments.
  // An empty holder makes the actor open the store itself, on its own thread (restarts).
  auto holder = std::make_shared<std::unique_ptr<store>>(std::move(opened));
  auto batch_max = settings.config->storage.batch_max_operations;
  auto readers = settings.config->storage.read_connections;
  auto detached = settings.config->store_detached;
  auto min_free = settings.config->storage.min_free_space;
  return spawn_child(sys, parent, detached ? runs_on::own_thread : runs_on::scheduler,
                     store_behavior, std::move(open), holder, batch_max,
                     settings.config->storage.commit_interval, readers, min_free,
                     detached);
}

}  // namespace petrel
