// The event log's keeper (events actor) and one actor per webhook endpoint.
//
// The outbox of every webhook is the events table itself: each endpoint keeps a cursor (the
// sequence number of the last event it delivered), reads what follows it from the store in
// batches, POSTs them signed, and moves its cursor (persisted) only after a 2xx answer. So
// delivery is at least once, survives restarts, and costs no extra write per event. A slow or
// dead endpoint holds nothing but its own actor and its one request in flight: mail delivery
// and other endpoints never wait for it. Past webhooks.max_pending events behind, or failing
// for webhooks.pause_after, an endpoint is paused; its events stay in GET /v1/events and it
// continues from its cursor when resumed.
//
// In a cluster each endpoint is posted by exactly one node: the owner of the partition its id
// hashes to (the same partitions as destination domains, so ownership, failover and handover
// come with them). Every node knows every endpoint (to list, rotate, resume or delete it); the
// owner runs its actor, and when the owner changes, the new one continues from the persisted
// cursor. A change made on another node (a new endpoint, a rotation, a resume, a deletion)
// reaches the owner as a notification, and it reloads.
#include <caf/all.hpp>
#include <spdlog/spdlog.h>

#include <set>

#include "actors/actor_start.hpp"
#include "actors/actor_support.hpp"
#include "actors/policy/partitions.hpp"
#include "actors/api_key.hpp"
#include "actors/metrics.hpp"
#include "actors/services.hpp"
#include "actors/webhook_support.hpp"
#include "actors/spawn.hpp"
#include "actors/supervision.hpp"
#include "net/secret_box.hpp"

namespace petrel {

namespace {

using namespace std::chrono_literals;

struct webhook_metrics {
  counter& posts_ok = metrics().get_counter("petrel_webhook_posts_total", "Webhook POSTs by outcome",
                                            {{"outcome", "ok"}});
  counter& posts_failed = metrics().get_counter("petrel_webhook_posts_total", "Webhook POSTs by outcome",
                                                {{"outcome", "failed"}});
  counter& events = metrics().get_counter("petrel_webhook_events_total", "Events delivered to webhooks");
  histogram& lag = metrics().get_histogram("petrel_webhook_lag_seconds",
                                           "From an event to its delivery to a webhook (first of a batch)",
                                           {0.1, 0.5, 1, 2, 5, 10, 30, 60, 300, 3600});
  counter& pauses = metrics().get_counter("petrel_webhook_pauses_total", "Webhook endpoints paused");
};
webhook_metrics& wm() {
  static webhook_metrics m;
  return m;
}

std::string random_secret() { return "whsec_" + random_hex(24); }

// -- one endpoint --------------------------------------------------------------------------

// What the webhook actor is given when it starts (its spawn arguments).
struct webhook_start {
  webhook_record rec;  // the secret in clear
  store_actor store;
  std::shared_ptr<delivery_runtime> runtime;
  webhooks_config cfg;
  std::string key_encryption_key;  // seals secrets at rest, when set
};

struct webhook_state : webhook_start {
  webhook_state() = default;
  std::uint64_t generation = 0;  // of the one timer or POST that counts
  bool busy = false;             // a read or a POST is in flight
  std::vector<event_view> batch;
  std::int64_t next_attempt_ms = 0;
  std::uint64_t backlog = 0;
  static inline const char* name = "webhook";
};

using webhook_pointer = webhook_actor::stateful_pointer<webhook_state>;

webhook_status status_of(const webhook_state& st) {
  webhook_status out;
  out.record = st.rec;
  out.record.secret.clear();
  out.record.previous_secret.clear();
  out.next_attempt_ms = st.rec.state == "active" ? st.next_attempt_ms : 0;
  out.backlog = st.backlog;
  return out;
}

void schedule(webhook_pointer self, std::chrono::milliseconds delay) {
  auto& st = self->state;
  ++st.generation;
  st.next_attempt_ms = unix_now_ms() + delay.count();
  if (delay.count() <= 0)
    self->send(self, next_atom::value, st.generation);
  else
    self->delayed_send(self, delay, next_atom::value, st.generation);
}

void persist(webhook_pointer self) {
  auto& st = self->state;
  write_request w;
  w.op = update_webhook_op{st.rec};
  self->request(st.store, st.cfg.timeout + 20s, persist_atom::value, std::move(w))
      .then([](caf::ok_atom) {},
            [self](caf::error& e) {
              spdlog::warn("webhook.persist_failed webhook={} error=\"{}\"", self->state.rec.id.str(),
                           self->system().render(e));
            });
}

void pause(webhook_pointer self, const std::string& reason) {
  auto& st = self->state;
  st.rec.state = "paused";
  st.rec.paused_reason = reason;
  ++st.generation;  // no timer counts any more
  wm().pauses.inc();
  spdlog::warn("webhook.paused webhook={} tenant={} reason=\"{}\"", st.rec.id.str(), st.rec.tenant_id.str(),
               reason);
  persist(self);
}

std::chrono::milliseconds retry_delay(const webhook_state& st) {
  const auto& schedule = st.cfg.retry_schedule;
  if (schedule.empty()) return 30s;
  auto i = std::min<std::size_t>(st.rec.failures == 0 ? 0 : st.rec.failures - 1, schedule.size() - 1);
  return schedule[i];
}

void post(webhook_pointer self) {
  auto& st = self->state;
  auto body = webhook_batch_json(st.rec.id, st.batch);
  auto now = unix_now_ms();
  webhook_post p;
  p.url = st.rec.url;
  p.headers = {{"Content-Type", "application/json"},
               {"Petrel-Webhook", st.rec.id.str()},
               {"Petrel-Delivery", new_id().str()},
               {"Petrel-Signature",
                webhook_signature(st.rec.secret, now / 1000, body,
                                  now < st.rec.previous_until_ms ? st.rec.previous_secret : std::string())}};
  p.body = std::move(body);
  p.timeout = st.cfg.timeout;
  p.allow_private = st.cfg.allow_private_networks;
  p.allow_http = !st.cfg.require_https;
  st.busy = true;
  ++st.generation;
  st.next_attempt_ms = now;
  start_webhook_post(st.runtime, caf::actor_cast<webhook_actor>(self), st.generation, std::move(p));
}

// Reads what follows the cursor; posts it now, or when its first event has waited max_delay.
void poll(webhook_pointer self) {
  auto& st = self->state;
  if (st.busy || st.rec.state != "active") return;
  st.busy = true;
  event_query q;
  q.tenant_id = st.rec.tenant_id;
  q.after_seq = st.rec.cursor;
  q.types = st.rec.event_types;
  q.limit = st.cfg.batch_size;
  auto generation = st.generation;
  self->request(st.store, 30s, load_atom::value, std::move(q))
      .then(
          [self, generation](std::vector<event_view>& events) {
            auto& st = self->state;
            st.busy = false;
            if (generation != st.generation || st.rec.state != "active") return;
            if (events.empty()) {
              st.backlog = 0;
              return schedule(self, st.cfg.max_delay);
            }
            auto waited = unix_now_ms() - events.front().event.at_ms;
            if (events.size() < st.cfg.batch_size && waited < st.cfg.max_delay.count())
              return schedule(self, std::chrono::milliseconds(st.cfg.max_delay.count() - waited));
            st.backlog = std::max<std::uint64_t>(st.backlog, events.size());
            st.batch = std::move(events);
            post(self);
          },
          [self, generation](caf::error& e) {
            auto& st = self->state;
            st.busy = false;
            if (generation != st.generation) return;
            spdlog::warn("webhook.read_failed webhook={} error=\"{}\"", st.rec.id.str(), self->system().render(e));
            schedule(self, 1s);
          });
}

void on_failure(webhook_pointer self, const std::string& error) {
  auto& st = self->state;
  auto now = unix_now_ms();
  wm().posts_failed.inc();
  ++st.rec.failures;
  st.rec.last_error = error;
  st.rec.last_error_at_ms = now;
  if (st.rec.failing_since_ms == 0) st.rec.failing_since_ms = now;
  spdlog::info("webhook.failed webhook={} failures={} error=\"{}\"", st.rec.id.str(), st.rec.failures, error);
  if (now - st.rec.failing_since_ms >= st.cfg.pause_after.count())
    return pause(self, "failing since " + std::to_string(st.rec.failing_since_ms / 1000) + " (unix time): " + error);
  persist(self);
  // How far behind is it? (counted up to the bound, only while failing)
  st.busy = true;
  auto generation = st.generation;
  self->request(st.store, 30s, pending_atom::value, st.rec.tenant_id, st.rec.event_types, st.rec.cursor,
                st.cfg.max_pending + 1)
      .then(
          [self, generation](std::uint64_t n) {
            auto& st = self->state;
            st.busy = false;
            if (generation != st.generation || st.rec.state != "active") return;
            st.backlog = n;
            if (n > st.cfg.max_pending)
              return pause(self, "more than " + std::to_string(st.cfg.max_pending) + " events waiting");
            schedule(self, retry_delay(st));
          },
          [self, generation](caf::error&) {
            auto& st = self->state;
            st.busy = false;
            if (generation == st.generation) schedule(self, retry_delay(st));
          });
}

webhook_actor::behavior_type webhook_behavior(webhook_pointer self, webhook_start start) {
  auto& st = start_actor(self);
  static_cast<webhook_start&>(st) = std::move(start);
  if (st.rec.state == "active") schedule(self, 0ms);
  return {
      [=](stats_atom) -> webhook_status { return status_of(self->state); },
      [=](resume_atom) -> webhook_status {
        auto& st = self->state;
        st.rec.state = "active";
        st.rec.paused_reason.clear();
        st.rec.failures = 0;
        st.rec.failing_since_ms = 0;
        st.busy = false;
        persist(self);
        schedule(self, 0ms);
        return status_of(st);
      },
      [=](rotate_atom, std::string& secret) -> caf::result<webhook_status> {
        auto& st = self->state;
        auto until = unix_now_ms() + st.cfg.rotation_overlap.count();
        auto seal = [&](const std::string& s) {
          return st.key_encryption_key.empty() ? s : seal_secret(st.key_encryption_key, s);
        };
        write_request w;
        w.op = rotate_webhook_op{st.rec.id, seal(secret), seal(st.rec.secret), until};
        auto rp = self->make_response_promise<webhook_status>();
        // Stored first: a secret in use is always the stored one.
        self->request(st.store, 30s, persist_atom::value, std::move(w))
            .then(
                [self, rp, secret, until](caf::ok_atom) mutable {
                  auto& st = self->state;
                  st.rec.previous_secret = st.rec.secret;
                  st.rec.previous_until_ms = until;
                  st.rec.secret = secret;
                  spdlog::info("webhook.rotated webhook={} previous_until={}", st.rec.id.str(), until);
                  auto out = status_of(st);
                  out.record.secret = secret;
                  rp.deliver(std::move(out));
                },
                [rp](caf::error& e) mutable { rp.deliver(std::move(e)); });
        return rp;
      },
      [=](next_atom, std::uint64_t generation) {
        if (generation == self->state.generation) poll(self);
      },
      [=](post_atom, std::uint64_t generation, int status, std::string& error) {
        auto& st = self->state;
        if (generation != st.generation) return;
        st.busy = false;
        if (status >= 200 && status < 300) {
          auto now = unix_now_ms();
          wm().posts_ok.inc();
          wm().events.inc(st.batch.size());
          wm().lag.observe(static_cast<double>(now - st.batch.front().event.at_ms) / 1000.0);
          st.rec.cursor = st.batch.back().seq;
          st.rec.delivered += st.batch.size();
          st.rec.failures = 0;
          st.rec.failing_since_ms = 0;
          st.rec.last_success_at_ms = now;
          st.backlog = st.backlog > st.batch.size() ? st.backlog - st.batch.size() : 0;
          st.batch.clear();
          persist(self);
          return schedule(self, 0ms);  // more may be waiting
        }
        on_failure(self, status ? "HTTP " + std::to_string(status) : error);
      },
  };
}

// -- the keeper ----------------------------------------------------------------------------

// What the events actor is given when it starts (its spawn arguments).
using events_start = io_actor_start;

struct events_state : events_start {
  events_state() = default;
  std::map<id128, webhook_actor> endpoints;  // running here
  std::map<id128, id128> tenant_of;          // every endpoint (all nodes')
  std::map<id128, webhook_record> stored;    // as last read from the store (secrets sealed)
  std::map<id128, webhook_record> started_with;  // the stored record each running one started from
  // Restart intensity and backoff per endpoint, as every supervisor has (restart_policy.hpp).
  std::map<id128, restart_policy> restarts;
  static inline const char* name = "events";
};

using events_pointer = events_actor::stateful_pointer<events_state>;

// Whether this node posts the endpoint: always on a single node; in a cluster, when it holds
// the partition of the endpoint's id.
bool serves(const events_state& st, const id128& id) {
  const auto& leases = *st.settings.shared.leases;
  if (!leases.clustered()) return true;
  return leases.epoch(partition_of(id.str(), leases.count())) != 0;
}

void stop_endpoint(events_pointer self, const id128& id) {
  auto& st = self->state;
  auto e = st.endpoints.find(id);
  if (e == st.endpoints.end()) return;
  self->unlink_from(e->second);
  self->send_exit(e->second, caf::exit_reason::user_shutdown);
  st.endpoints.erase(e);
  st.started_with.erase(id);
}

bool same_delivery(const webhook_record& a, const webhook_record& b) {
  return a.url == b.url && a.event_types == b.event_types && a.secret == b.secret &&
         a.previous_secret == b.previous_secret && a.previous_until_ms == b.previous_until_ms;
}

void start_endpoint(events_pointer self, webhook_record rec) {
  auto& st = self->state;
  st.stored[rec.id] = rec;
  st.tenant_of[rec.id] = rec.tenant_id;
  if (!serves(st, rec.id)) return;  // another node posts it
  st.started_with[rec.id] = rec;
  for (auto* secret : {&rec.secret, &rec.previous_secret}) {
    if (secret->empty() || !is_sealed(*secret)) continue;
    auto open = open_secret(st.settings.config->key_encryption_key, *secret);
    if (!open) {
      spdlog::error("webhook.secret_unreadable webhook={} error=\"{}\"", rec.id.str(), open.error());
      return;
    }
    *secret = open.value();
  }
  auto id = rec.id;
  st.tenant_of[id] = rec.tenant_id;
  auto handle = self->spawn<caf::linked>(webhook_behavior,
                                         webhook_start{std::move(rec), st.store, st.runtime,
                                                       st.settings.config->webhooks,
                                                       st.settings.config->key_encryption_key});
  st.endpoints[id] = handle;
}

// Loads every webhook and starts those this node posts that are not running (at start, after
// an endpoint crashed, and in a cluster when partitions move or another node changed one):
// those it no longer posts, or that were deleted, stop; one whose URL, types or secrets
// changed starts again from the stored record; one resumed elsewhere is resumed.
void load_endpoints(events_pointer self) {
  self->request(self->state.store, 30s, load_atom::value, webhook_atom::value)
      .then(
          [self](std::vector<webhook_record>& all) {
            auto& st = self->state;
            std::set<id128> present;
            for (auto& w : all) {
              present.insert(w.id);
              auto running = st.endpoints.find(w.id);
              if (running != st.endpoints.end()) {
                if (!serves(st, w.id)) {
                  stop_endpoint(self, w.id);
                } else if (!same_delivery(st.started_with[w.id], w)) {
                  stop_endpoint(self, w.id);
                } else {
                  st.stored[w.id] = w;
                  if (w.state == "active") {
                    // Paused here but active in the store: resumed on another node.
                    auto handle = running->second;
                    self->request(handle, 10s, stats_atom::value)
                        .then(
                            [self, handle](webhook_status& s) {
                              if (s.record.state == "paused") caf::anon_send(handle, resume_atom::value);
                            },
                            [](caf::error&) {});
                  }
                  continue;
                }
              }
              start_endpoint(self, std::move(w));
            }
            for (auto it = st.tenant_of.begin(); it != st.tenant_of.end();) {
              if (present.count(it->first)) {
                ++it;
                continue;
              }
              stop_endpoint(self, it->first);  // deleted (on another node)
              st.stored.erase(it->first);
              it = st.tenant_of.erase(it);
            }
            spdlog::info("events.webhooks_loaded endpoints={} posted_here={}", st.tenant_of.size(),
                         st.endpoints.size());
          },
          [self](caf::error& e) {
            spdlog::warn("events.webhooks_load_failed error=\"{}\"; retrying", self->system().render(e));
            self->delayed_send(self, 1s, recover_atom::value);
          });
}

// Whether the endpoint exists and is the tenant's (another tenant's is "not found" too).
bool owns(const events_state& st, const id128& tenant, const id128& id) {
  auto t = st.tenant_of.find(id);
  return t != st.tenant_of.end() && t->second == tenant;
}

// A tenant's new endpoint: stored (with its secret sealed when a key is configured), read back for its cursor, then started.
caf::result<webhook_status> create_webhook(events_pointer self, webhook_record& rec) {
  auto& st = self->state;
  if (!st.settings.config->webhooks.enabled || !st.runtime)
    return make_error(petrel_errc::unavailable, "webhooks are disabled on this node");
  std::uint64_t mine = 0;
  for (const auto& [id, tenant] : st.tenant_of) mine += tenant == rec.tenant_id;
  if (mine >= st.settings.config->webhooks.max_per_tenant)
    return make_error(petrel_errc::conflict, "a tenant has at most " +
                                                 std::to_string(st.settings.config->webhooks.max_per_tenant) +
                                                 " webhooks");
  rec.id = new_id();
  rec.created_at_ms = unix_now_ms();
  rec.state = "active";
  if (rec.secret.empty()) rec.secret = random_secret();
  auto clear_secret = rec.secret;
  auto stored = rec;
  if (!st.settings.config->key_encryption_key.empty())
    stored.secret = seal_secret(st.settings.config->key_encryption_key, rec.secret);
  auto rp = self->make_response_promise<webhook_status>();
  write_request w;
  w.op = insert_webhook_op{stored};
  self->request(st.store, 30s, persist_atom::value, std::move(w))
      .then(
          [self, rp, id = rec.id, clear_secret](caf::ok_atom) mutable {
            // Read back: the store set its cursor to the newest event.
            self->request(self->state.store, 30s, load_atom::value, webhook_atom::value)
                .then(
                    [self, rp, id, clear_secret](std::vector<webhook_record>& all) mutable {
                      for (auto& w : all) {
                        if (w.id != id) continue;
                        spdlog::info("webhook.created webhook={} tenant={} url=\"{}\"", id.str(),
                                     w.tenant_id.str(), w.url);
                        webhook_status out;
                        out.record = w;
                        out.record.secret = clear_secret;
                        out.next_attempt_ms = unix_now_ms();
                        start_endpoint(self, std::move(w));
                        rp.deliver(std::move(out));
                        return;
                      }
                      rp.deliver(make_error(petrel_errc::store_failed, "the new webhook was not found"));
                    },
                    [rp](caf::error& e) mutable { rp.deliver(std::move(e)); });
          },
          [rp](caf::error& e) mutable { rp.deliver(std::move(e)); });
  return rp;
}

// The status of each of a tenant's endpoints, asked of the endpoint actors.
// An endpoint another node posts, as the store last showed it (no live schedule or backlog).
webhook_status stored_status(const events_state& st, const id128& id) {
  webhook_status out;
  if (auto it = st.stored.find(id); it != st.stored.end()) out.record = it->second;
  out.record.secret.clear();
  out.record.previous_secret.clear();
  return out;
}

caf::result<std::vector<webhook_status>> list_webhooks(events_pointer self, id128 tenant) {
  auto& st = self->state;
  std::vector<webhook_actor> mine;
  auto collected = std::make_shared<std::vector<webhook_status>>();
  for (const auto& [id, t] : st.tenant_of) {
    if (t != tenant) continue;
    if (auto e = st.endpoints.find(id); e != st.endpoints.end())
      mine.push_back(e->second);
    else
      collected->push_back(stored_status(st, id));
  }
  auto rp = self->make_response_promise<std::vector<webhook_status>>();
  if (mine.empty()) {
    std::sort(collected->begin(), collected->end(),
              [](const auto& a, const auto& b) { return a.record.id < b.record.id; });
    rp.deliver(std::move(*collected));
    return rp;
  }
  auto left = std::make_shared<std::size_t>(mine.size());
  for (const auto& h : mine)
    self->request(h, 10s, stats_atom::value)
        .then(
            [rp, collected, left](webhook_status& s) mutable {
              collected->push_back(std::move(s));
              if (--*left == 0) {
                std::sort(collected->begin(), collected->end(),
                          [](const auto& a, const auto& b) { return a.record.id < b.record.id; });
                rp.deliver(std::move(*collected));
              }
            },
            [rp, left](caf::error& e) mutable {
              if (*left != 0) {
                *left = 0;
                rp.deliver(std::move(e));
              }
            });
  return rp;
}

// An endpoint is deleted from the store, then stopped.
caf::result<caf::ok_atom> delete_webhook(events_pointer self, id128 tenant, id128 id) {
  auto& st = self->state;
  if (!owns(st, tenant, id)) return make_error(petrel_errc::not_found, "no such webhook");
  auto rp = self->make_response_promise<caf::ok_atom>();
  write_request w;
  w.op = delete_webhook_op{tenant, id};
  self->request(st.store, 30s, persist_atom::value, std::move(w))
      .then(
          [self, rp, id](caf::ok_atom) mutable {
            auto& st = self->state;
            stop_endpoint(self, id);
            st.tenant_of.erase(id);
            st.stored.erase(id);
            st.restarts.erase(id);
            spdlog::info("webhook.deleted webhook={}", id.str());
            rp.deliver(caf::ok_atom::value);
          },
          [rp](caf::error& e) mutable { rp.deliver(std::move(e)); });
  return rp;
}

// Cluster: an endpoint another node posts is changed in the store; its node follows (the
// store notifies it) and restarts or resumes its actor.
caf::result<webhook_status> resume_elsewhere(events_pointer self, id128 id) {
  auto rp = self->make_response_promise<webhook_status>();
  write_request w;
  w.op = resume_webhook_op{id};
  self->request(self->state.store, 30s, persist_atom::value, std::move(w))
      .then(
          [self, rp, id](caf::ok_atom) mutable {
            auto out = stored_status(self->state, id);
            out.record.state = "active";
            out.record.paused_reason.clear();
            out.record.failures = 0;
            out.record.failing_since_ms = 0;
            rp.deliver(std::move(out));
          },
          [rp](caf::error& e) mutable { rp.deliver(std::move(e)); });
  return rp;
}

caf::result<webhook_status> rotate_elsewhere(events_pointer self, id128 id, std::string secret) {
  auto& st = self->state;
  auto rp = self->make_response_promise<webhook_status>();
  auto stored = st.stored.find(id);
  if (stored == st.stored.end()) return make_error(petrel_errc::not_found, "no such webhook");
  const auto& kek = st.settings.config->key_encryption_key;
  auto seal = [&](const std::string& s) { return kek.empty() || s.empty() || is_sealed(s) ? s : seal_secret(kek, s); };
  auto until = unix_now_ms() + st.settings.config->webhooks.rotation_overlap.count();
  write_request w;
  w.op = rotate_webhook_op{id, seal(secret), stored->second.secret, until};  // stored: already sealed
  self->request(st.store, 30s, persist_atom::value, std::move(w))
      .then(
          [self, rp, id, secret, until](caf::ok_atom) mutable {
            auto out = stored_status(self->state, id);
            out.record.secret = secret;
            out.record.previous_until_ms = until;
            spdlog::info("webhook.rotated webhook={} previous_until={} (posted by another node)", id.str(), until);
            rp.deliver(std::move(out));
          },
          [rp](caf::error& e) mutable { rp.deliver(std::move(e)); });
  return rp;
}

events_actor::behavior_type events_behavior(events_pointer self, events_start start) {
  auto& st = start_actor(self);
  static_cast<events_start&>(st) = std::move(start);
  // An endpoint that crashed is started again from its stored state, after its backoff.
  self->set_exit_handler([self](caf::exit_msg& msg) {
    auto& st = self->state;
    for (auto it = st.endpoints.begin(); it != st.endpoints.end(); ++it)
      if (it->second.address() == msg.source) {
        auto id = it->first;
        st.tenant_of.erase(id);
        st.endpoints.erase(it);
        if (!msg.reason) return;  // deleted
        auto& policy = st.restarts.try_emplace(id, restart_limits_from(st.settings.config->actors)).first->second;
        restart_child(self, policy, "events", "webhook", id.str(), msg.reason, recover_atom::value);
        return;
      }
    if (msg.reason) self->quit(msg.reason);  // from the parent
  });
  if (st.settings.config->webhooks.enabled && st.runtime) load_endpoints(self);
  self->send(self, caf::tick_atom::value);
  self->delayed_send(self, st.settings.config->storage.prune_interval, prune_atom::value);
  return {
      [=](create_atom, webhook_record& rec) -> caf::result<webhook_status> {
        return create_webhook(self, rec);
      },
      [=](list_atom, id128 tenant) -> caf::result<std::vector<webhook_status>> {
        return list_webhooks(self, tenant);
      },
      [=](caf::delete_atom, id128 tenant, id128 id) -> caf::result<caf::ok_atom> {
        return delete_webhook(self, tenant, id);
      },
      [=](resume_atom, id128 tenant, id128 id) -> caf::result<webhook_status> {
        auto& st = self->state;
        if (!owns(st, tenant, id)) return make_error(petrel_errc::not_found, "no such webhook");
        if (auto e = st.endpoints.find(id); e != st.endpoints.end())
          return self->delegate(e->second, resume_atom::value);
        return resume_elsewhere(self, id);
      },
      [=](rotate_atom, id128 tenant, id128 id, std::string& secret) -> caf::result<webhook_status> {
        auto& st = self->state;
        if (!owns(st, tenant, id)) return make_error(petrel_errc::not_found, "no such webhook");
        if (secret.empty()) secret = random_secret();
        if (auto e = st.endpoints.find(id); e != st.endpoints.end())
          return self->delegate(e->second, rotate_atom::value, std::move(secret));
        return rotate_elsewhere(self, id, std::move(secret));
      },
      [=](recover_atom) {
        // Endpoints that are not running (crashed, or the first load failed) start again.
        if (self->state.settings.config->webhooks.enabled && self->state.runtime) load_endpoints(self);
      },
      [=](caf::tick_atom) {
        auto& st = self->state;
        write_request w;
        w.op = prune_events_op{unix_now_ms() - st.settings.config->events.retention.count(), st.settings.config->events.prune_batch};
        self->request(st.store, 60s, persist_atom::value, std::move(w))
            .then([](caf::ok_atom) {},
                  [self](caf::error& e) {
                    spdlog::warn("events.prune_failed error=\"{}\"", self->system().render(e));
                  });
        self->delayed_send(self, st.settings.config->events.prune_interval, caf::tick_atom::value);
      },
      [=](prune_atom) {
        // Retention of messages: content first (storage.content_retention), then rows
        // (storage.retention), in bounded batches between other writes. In a cluster the node
        // that holds partition 0 does it for everyone.
        auto& st = self->state;
        const auto& k = st.settings.config->storage;
        const auto& leases = *st.settings.shared.leases;
        auto next = [self] { self->delayed_send(self, self->state.settings.config->storage.prune_interval, prune_atom::value); };
        if (leases.clustered() && leases.epoch(0) == 0) return next();
        auto now = unix_now_ms();
        write_request w;
        w.op = prune_messages_op{now - k.content_retention.count(), now - k.retention.count(), now, k.prune_batch};
        self->request(st.store, 60s, persist_atom::value, std::move(w))
            .then([next](caf::ok_atom) { next(); },
                  [self, next](caf::error& e) {
                    spdlog::warn("storage.prune_failed error=\"{}\"", self->system().render(e));
                    next();
                  });
      },
  };
}

}  // namespace

events_actor spawn_events(caf::actor_system& sys, caf::local_actor* parent, store_actor store,
                          std::shared_ptr<delivery_runtime> runtime, const node_settings& settings) {
  return spawn_child(sys, parent, events_behavior,
                     events_start{std::move(store), std::move(runtime), settings});
}

}  // namespace petrel
