// The domain actor: one per destination domain. It holds the domain's waiting recipients (ids
// and times; addresses and bodies stay in the store), and drives their delivery:
// - due recipients (next attempt reached) wait in `ready`; future ones in a time-ordered heap
//   with one timer for the earliest;
// - it resolves the domain's route (resolver actor); each due recipient goes to a lane, one
//   per egress source of its pool, chosen by weight among the sources that take work (not
//   suspended, warm-up budget left); each lane asks its site actor (egress) for credit and
//   answers each grant with jobs: recipients of one message grouped into one transaction (up
//   to max_recipients_per_transaction), tenants served in weighted rotation, high priority
//   first (fair_queue), within the domain's rate and each tenant's rate at the domain, and
//   not for suspended domains or tenants;
// - outcomes: 2xx delivered, 5xx bounced, 4xx / no reply deferred by the retry schedule, or
//   expired past max_age; each is committed with its event (retried if the store fails);
// - it rebuilds everything from the store when it starts, so a crash or restart loses
//   nothing; a recipient confirmed delivered is never loaded again;
// - it holds in memory only the recipients due soonest (queue_window: per tenant and priority,
//   within queue.horizon and queue.max_in_memory_per_domain); the rest it counts from the
//   store's summary and reads in pages by due time, one store read at a time.
#include <caf/all.hpp>

#include <algorithm>
#include <array>
#include <spdlog/spdlog.h>

#include <deque>
#include <queue>
#include <random>
#include <unordered_map>
#include <unordered_set>

#include <fnmatch.h>

#include <limits>
#include <map>

#include "actors/activity.hpp"
#include "actors/actor_support.hpp"
#include "actors/policy/event_data.hpp"
#include "actors/policy/sandbox.hpp"
#include "actors/delivery_log.hpp"
#include "actors/policy/fair_queue.hpp"
#include "actors/policy/queue_window.hpp"
#include "actors/metrics.hpp"
#include "actors/policy/rate_limiter.hpp"
#include "actors/policy/retry_schedule.hpp"
#include "actors/policy/attempt_outcome.hpp"
#include "actors/policy/source_choice.hpp"
#include "actors/services.hpp"
#include "actors/spawn.hpp"
#include "net/mail/bounce.hpp"
#include "net/mail/mta_sts.hpp"

namespace petrel {

namespace {

// A recipient held in memory: 40 bytes (its tenant and priority are its class's, its pool an
// index into the actor's list of pool names).
struct waiting_recipient {
  id128 message_id;
  std::int64_t next_attempt_at_ms = 0;
  std::uint32_t attempts = 0;
  queue_window::class_index cls = 0;
  std::uint16_t pool = 0;
  recipient_state state = recipient_state::queued;
  bool in_flight = false;  // in a job at the site
  bool ready = false;      // in a lane's queue
  bool evicting = false;   // deferred past what memory holds: leaves once its commit is confirmed
  bool flush_asked = false;  // in flight when an operator flushed: a deferral is due again at once
  bool alone = false;        // a transaction of its own (a templated message's copy for it)
  bool cancel_asked = false;  // in flight when its sender cancelled: a deferral cancels it
};

// A class read from its start page by page, apart from the window's pages: to cancel what is
// stored (an operator's bounce), or to find recipients this actor was not told about (a
// cluster repair: another node accepted them).
struct class_scan {
  queue_window::class_index cls = 0;
  queue_key after;
  bool cancel = false;         // else: repair
  std::int64_t cutoff_ms = 0;  // cancel: recipients accepted after the cancellation stay
  std::string reason;
};

// The way out through one egress source on one route: its site actor, and the due recipients
// for it. Most domains have one route (their MX hosts); the routing table may send some
// tenants' recipients through a relay or fixed hosts instead (a route key per tenant).
struct lane {
  std::string source;
  std::string route_key;  // "" the domain's own route, else "#<routing table entry>"
  site_actor site;
  bool asking = false;       // the egress actor is asked for the site
  bool demand_sent = false;  // waiting for credit
  std::string blocked;       // the site takes no work now (reason), until:
  std::int64_t blocked_until_ms = 0;
  fair_queue queue;
  std::uint64_t in_flight = 0;  // recipients in jobs at the site
};

// A route of this domain: the domain's own (key "") or one of the routing table.
struct route_slot {
  std::optional<route> current;
  bool resolving = false;
};

using heap_entry = std::pair<std::int64_t, id128>;

// The lanes map's key: the source name, and the route key after a separator when not "".
std::string lane_key(const std::string& source, const std::string& route_key) {
  return route_key.empty() ? source : source + '\x1f' + route_key;
}

// A failed commit of outcomes is retried until it works (the store is full or gone for a
// while): once a second at first, then every retry_pause_max.
constexpr std::int32_t fast_retries = 5;
constexpr std::chrono::seconds retry_pause_max{5};

// What the domain actor is given when it starts (its spawn arguments).
struct domain_start {
  std::string domain;
  store_actor store;
  resolver_actor resolver;
  egress_actor egress;
  domains_actor supervisor;
  node_settings settings;
  partition_grant claim;  // cluster: the domain's partition in the epoch held (epoch 0: none)
};

struct domain_state : domain_start {
  domain_state() = default;
  retry_schedule schedule{{}, 0, std::chrono::hours(72)};
  std::unordered_map<id128, waiting_recipient, id128_hash> waiting;
  std::deque<reply_note> last_replies;  // for the admin views, newest first
  // Updates that follow the next batch's in its own write (a sandbox complaint after its delivery).
  std::vector<recipient_update> after_commit;
  std::priority_queue<heap_entry, std::vector<heap_entry>, std::greater<heap_entry>> heap;
  std::map<std::string, lane> lanes;  // by lane_key(source, route key)
  std::unordered_map<std::uint64_t, delivery_job> jobs;  // at a site
  std::unordered_map<std::uint64_t, caf::actor_addr> job_site;  // which site has the job
  std::unordered_map<std::uint64_t, std::string> job_lane;      // and through which lane
  std::uint64_t next_job = 0;
  std::map<std::string, route_slot> routes;  // by route key
  std::unordered_map<id128, std::string, id128_hash> tenant_routes;  // tenant -> route key
  rate_limiter limiter;  // the domain's rate (delivery.domains)
  double tenant_rate = 0;
  std::unordered_map<id128, rate_limiter, id128_hash> tenant_limiters;
  std::string waiting_for;  // what held the last job back (admin view)
  // Per tenant, what this actor added to the backlog counter; taken back when it exits.
  std::shared_ptr<std::unordered_map<id128, std::int64_t, id128_hash>> backlog =
      std::make_shared<std::unordered_map<id128, std::int64_t, id128_hash>>();
  std::uint64_t wake_generation = 0;
  std::int64_t wake_at_ms = 0;
  std::uint64_t last_batch = 0;       // highest batch number seen from the supervisor
  // The last time the domain may have become idle, and whether a retirement check is
  // scheduled: one timer per idle period, not one per change (under load, one per message).
  std::chrono::steady_clock::time_point idle_since{};
  bool idle_timer_pending = false;
  bool loaded = false;  // the store's summary is in: what waits is known (counts, classes)
  queue_window window;
  std::vector<queued_recipient> early;  // enqueued before the summary came
  // Sender cancellations asked before the summary came: applied once it has.
  std::vector<std::pair<std::vector<queued_recipient>, std::string>> early_cancels;
  // Recipients settled (final) whose commit is not confirmed yet, and, while a read of the
  // store is out, every recipient settled since it was sent: that read may have seen them
  // before their commit, as still waiting, and must not bring them back.
  std::unordered_set<id128, id128_hash> unconfirmed;
  std::optional<std::unordered_set<id128, id128_hash>> read_excluded;
  bool reading = false;         // one read of the store at a time (a page, a summary, a cancel scan)
  bool repair_wanted = false;   // cluster repair: summarize again
  bool flushing = false;        // a flush is being written: no page until it is
  std::int64_t flush_retry_ms = 0;  // a flush's write failed: written again (its time) on the next check
  std::uint32_t flush_attempts = 0;
  bool store_failing = false;   // outcomes could not be committed: no new attempt until they are
  std::deque<class_scan> scans;
  std::vector<id128> evict_later;  // confirmed deferrals to release once the read is back
  std::unordered_set<id128, id128_hash> evicting;  // waiting_recipient::evicting, for reads
  // Per class, the highest recipient id seen (accepted here or read): a repair reads a class
  // again when the store has a higher one.
  std::vector<id128> seen_max;
  std::vector<std::string> pools;  // the pool names waiting_recipient::pool indexes
  std::uint64_t page_check_generation = 0;
  std::int64_t page_check_at_ms = 0;
  std::uint32_t commits_in_flight = 0;  // sent to the store, or waiting to be sent again
  bool draining = false;  // cluster handover: no new attempts; quit when nothing is in flight
  std::mt19937_64 rng{std::random_device{}()};
  // What this actor added to the recipients_waiting gauge; taken back when it exits.
  std::shared_ptr<std::array<std::int64_t, 2>> counted = std::make_shared<std::array<std::int64_t, 2>>();  // queued, deferred
  static inline const char* name = "domain";
};

using domain_pointer = domain_actor::stateful_pointer<domain_state>;

// Keeps the waiting gauges (total and by state) and what this actor added to them.
void count_waiting(domain_state& st, recipient_state state, std::int64_t delta) {
  bool deferred = state == recipient_state::deferred;
  (*st.counted)[deferred ? 1 : 0] += delta;
  (deferred ? core().recipients_deferred : core().recipients_queued).add(delta);
  core().recipients_waiting.add(delta);
}

counter& outcome_counter(const char* outcome) {
  return metrics().get_counter("petrel_recipient_outcomes_total",
                               "Delivery attempts by outcome", {{"outcome", outcome}});
}

double random01(domain_pointer self) {
  return std::uniform_real_distribution<double>(0.0, 1.0)(self->state.rng);
}

// Counts a change of what waits (memory and store) in the recipient's class, the gauges and
// the node's backlog: +1 accepted, -1 final. A count never goes below zero (a summary read
// while recipients were accepted may have missed one of them).
void count(domain_pointer self, queue_window::class_index cls, recipient_state state, std::int64_t delta) {
  auto& st = self->state;
  auto& c = st.window.at(cls);
  auto& n = state == recipient_state::deferred ? c.deferred : c.queued;
  if (delta < 0 && static_cast<std::uint64_t>(-delta) > n) delta = -static_cast<std::int64_t>(n);
  if (delta == 0) return;
  n = static_cast<std::uint64_t>(static_cast<std::int64_t>(n) + delta);
  count_waiting(st, state, delta);
  auto& b = (*st.backlog)[c.tenant];
  b += delta;
  if (b == 0) st.backlog->erase(c.tenant);
  st.settings.shared.backlog->add(c.tenant, delta);
}

// Holds a recipient in memory (its key is due for the heap).
void hold(domain_pointer self, const queued_recipient& r, queue_window::class_index cls) {
  auto& st = self->state;
  auto [it, inserted] = st.waiting.try_emplace(r.recipient_id);
  if (!inserted) return;
  auto& w = it->second;
  w.message_id = r.message_id;
  w.state = r.state;
  w.attempts = r.attempts;
  w.next_attempt_at_ms = r.next_attempt_at_ms;
  w.alone = r.alone;
  auto pool = std::find(st.pools.begin(), st.pools.end(), r.pool);
  if (pool == st.pools.end()) pool = st.pools.insert(st.pools.end(), r.pool);
  w.pool = static_cast<std::uint16_t>(pool - st.pools.begin());
  w.cls = cls;
  st.heap.emplace(r.next_attempt_at_ms, r.recipient_id);
  st.window.held(cls);
}

void seen(domain_state& st, queue_window::class_index cls, const id128& id) {
  if (st.seen_max.size() <= cls) st.seen_max.resize(cls + 1);
  st.seen_max[cls] = std::max(st.seen_max[cls], id);
}

// A recipient accepted for this domain (enqueued): counted, and held when the window has it.
void add(domain_pointer self, const queued_recipient& r) {
  auto& st = self->state;
  if (!st.loaded) {
    st.early.push_back(r);  // counted once the summary is in
    return;
  }
  auto cls = st.window.class_of(r.tenant_id, r.priority);
  seen(st, cls, r.recipient_id);
  if (st.waiting.count(r.recipient_id)) return;  // read from the store already (and counted)
  if (st.window.counts_new(cls, r.recipient_id)) count(self, cls, r.state, 1);
  if (st.window.hold(cls, {r.next_attempt_at_ms, r.recipient_id}, unix_now_ms())) hold(self, r, cls);
}

// Out of memory, still waiting in the store.
void release(domain_pointer self, const id128& id) {
  auto& st = self->state;
  auto it = st.waiting.find(id);
  if (it == st.waiting.end()) return;
  st.window.released(it->second.cls);
  if (it->second.evicting) st.evicting.erase(id);
  st.waiting.erase(it);
}

// Final: no longer waiting anywhere.
void forget(domain_pointer self, const id128& id) {
  auto& st = self->state;
  auto it = st.waiting.find(id);
  if (it == st.waiting.end()) return;
  count(self, it->second.cls, it->second.state, -1);
  release(self, id);
}

// A class found complete (nothing of it left in the store only): its counts are what memory
// holds of it.
void recount(domain_pointer self, queue_window::class_index cls) {
  auto& st = self->state;
  std::int64_t queued = 0, deferred = 0;
  for (const auto& [id, w] : st.waiting)
    if (w.cls == cls) ++(w.state == recipient_state::deferred ? deferred : queued);
  const auto& c = st.window.at(cls);
  count(self, cls, recipient_state::queued, queued - static_cast<std::int64_t>(c.queued));
  count(self, cls, recipient_state::deferred, deferred - static_cast<std::int64_t>(c.deferred));
}

void arm_idle_timer(domain_pointer self) {
  auto& st = self->state;
  st.idle_since = self->clock().now();
  if (st.waiting.empty() && st.loaded && st.window.waiting() == 0 && !st.reading && !st.idle_timer_pending) {
    st.idle_timer_pending = true;
    self->delayed_send(self, st.settings.config->actors.domain_idle_timeout, caf::tick_atom::value, std::uint64_t{0});
  }
}

// Retires the domain once it has been idle for domain_idle_timeout since the last change.
void check_idle(domain_pointer self) {
  auto& s = self->state;
  s.idle_timer_pending = false;
  if (!s.waiting.empty() || !s.jobs.empty() || s.window.waiting() > 0 || s.reading || !s.scans.empty() ||
      !s.loaded)
    return;  // busy again: the change that makes it idle arms the timer anew
  auto timeout = s.settings.config->actors.domain_idle_timeout;
  auto idle = self->clock().now() - s.idle_since;
  if (idle < timeout) {
    s.idle_timer_pending = true;
    self->delayed_send(self, std::chrono::duration_cast<std::chrono::milliseconds>(timeout - idle) + std::chrono::milliseconds(1),
                       caf::tick_atom::value, std::uint64_t{0});
    return;
  }
  self->send(s.supervisor, retire_atom::value, s.domain, s.last_batch);
}

// Commits updates; a failing store is retried (once a second) rather than the outcome dropped.
// A draining actor (cluster handover) quits once its jobs are back and its outcomes durable:
// then the next owner loads exactly what this one left.
void finish_drain_if_done(domain_pointer self) {
  auto& st = self->state;
  if (!st.draining || !st.jobs.empty() || st.commits_in_flight > 0) return;
  spdlog::info("domain.handed_over domain={} partition={} waiting={}", st.domain, st.claim.partition,
               st.waiting.size());
  self->quit();
}

// Deferred recipients whose next attempt lies past what memory holds leave memory once their
// new due time is durable (a page read after that finds them in their new place); while a
// read is out they wait for it (it may have been read before the commit).
void start_read(domain_pointer self);
void process(domain_pointer self);

void evict_confirmed(domain_pointer self, const std::vector<recipient_update>& updates) {
  auto& st = self->state;
  bool released = false;
  for (const auto& u : updates) {
    if (u.state != recipient_state::deferred) continue;
    auto it = st.waiting.find(u.recipient_id);
    if (it == st.waiting.end() || !it->second.evicting) continue;
    if (st.reading) {
      st.evict_later.push_back(u.recipient_id);
    } else {
      release(self, u.recipient_id);
      released = true;
    }
  }
  if (released) start_read(self);  // room in memory: the next page may be due
  arm_idle_timer(self);
}

// In a cluster every update carries the partition's epoch: the store refuses it once another
// node has claimed the partition, and then this actor stops (the new owner has the domain).
void commit(domain_pointer self, std::vector<recipient_update> updates, std::int32_t attempt = 0) {
  auto& st = self->state;
  // In the same write, after the updates they follow, and retried with them.
  for (auto& u : st.after_commit) updates.push_back(std::move(u));
  st.after_commit.clear();
  if (updates.empty()) return;
  for (auto& u : updates) {
    u.partition = st.claim.partition;
    u.epoch = st.claim.epoch;
    if (is_final(u.state)) {
      st.unconfirmed.insert(u.recipient_id);
      if (st.read_excluded) st.read_excluded->insert(u.recipient_id);
    }
  }
  ++st.commits_in_flight;
  self->request(st.store, store_answers, record_atom::value, updates)
      .then([=](caf::ok_atom) {
              --self->state.commits_in_flight;
              for (const auto& u : updates) self->state.unconfirmed.erase(u.recipient_id);
              evict_confirmed(self, updates);
              if (self->state.store_failing) {
                self->state.store_failing = false;
                spdlog::info("domain.commits_recovered domain={}", self->state.domain);
                process(self);
              }
              finish_drain_if_done(self);
            },
            [=](caf::error& e) mutable {
              --self->state.commits_in_flight;
              petrel_errc code{};
              std::string detail;
              std::int64_t retry_after = 0;
              if (read_error(e, code, detail, retry_after) && detail == fenced_write) {
                spdlog::warn("domain.fenced domain={} partition={} epoch={}: another node holds "
                             "the partition now; stopping",
                             self->state.domain, self->state.claim.partition, self->state.claim.epoch);
                self->quit();
                return;
              }
              if (code == petrel_errc::conflict) {
                // The store refused the write itself (not its availability): retrying cannot help.
                for (const auto& u : updates) self->state.unconfirmed.erase(u.recipient_id);
                evict_confirmed(self, updates);
                finish_drain_if_done(self);
                spdlog::error("domain.outcomes_refused domain={} count={} error=\"{}\"",
                              self->state.domain, updates.size(), self->system().render(e));
                return;
              }
              // Kept and retried until the store takes them; meanwhile no new attempt starts
              // (on_credit), so that nothing is delivered whose outcome cannot be recorded.
              self->state.store_failing = true;
              auto pause = attempt < fast_retries ? std::chrono::milliseconds(1000)
                                                  : std::chrono::milliseconds(retry_pause_max);
              spdlog::warn("domain.commit_failed domain={} count={} attempt={} retry_in_ms={} error=\"{}\"",
                           self->state.domain, updates.size(), attempt + 1, pause.count(),
                           self->system().render(e));
              ++self->state.commits_in_flight;  // until the retry sends them again
              self->delayed_send(self, pause, record_atom::value, std::move(updates), attempt + 1);
            });
}

std::string attempt_data(std::uint32_t attempt, const recipient_result* r,
                         const attempt_details* where, std::int64_t next_attempt_ms,
                         const std::string& reason, const classification* failure) {
  event_data::attempt_facts a;
  a.attempt = attempt;
  a.failure = failure;
  if (r && r->code) {
    a.smtp_code = r->code;
    a.enhanced_code = r->enhanced;
    a.reply = r->reply;
  } else {
    a.error = reason;
  }
  if (where) {
    a.mx_host = where->mx_host;
    a.mx_ip = where->mx_address;
    a.source = where->source;
    a.source_ip = where->source_address;
    a.tls = where->tls;
    a.tls_version = where->tls_version;
    a.tls_cipher = where->tls_cipher;
    a.dane = where->dane;
    a.simulated = where->simulated;
  }
  a.next_attempt_at_ms = next_attempt_ms;
  return event_data::attempt(a);
}

std::string reply_line(const recipient_result& r) {
  if (!r.code) return r.reply;
  std::string out = std::to_string(r.code);
  if (!r.enhanced.empty()) out += " " + r.enhanced;
  if (!r.reply.empty()) out += " " + r.reply;
  return out;
}

// The classification of a failed attempt (network errors have no reply code).
classification classify_failure(domain_pointer self, const recipient_result& r,
                                const attempt_details* where) {
  const auto& classifier = self->state.settings.config->classifier;
  if (!classifier) return classification{bounce_category::other, r.code >= 500, r.enhanced, -1, "undefined"};
  return classifier->classify(r.code, r.enhanced, r.reply, where ? where->mx_host : std::string(), r.command);
}

// What a final failure means for the address: a hard failure of a suppressing category
// suppresses it; a soft one of a streak category counts toward its soft-bounce streak. Both
// go to the tenant (the owner of the list), found through the directory.
void learn(domain_pointer self, const recipient_update& u, const recipient_result& r,
           const classification& c) {
  auto& st = self->state;
  const auto& b = st.settings.config->bounces;
  bool suppress = u.state == recipient_state::bounced && c.hard && category_listed(b.suppress_categories, c.category);
  bool streak = !c.hard && (u.state == recipient_state::bounced || u.state == recipient_state::expired) &&
                category_listed(b.streak_categories, c.category);
  if ((!suppress && !streak) || !st.settings.shared.directory) return;
  auto tenants = st.settings.shared.directory->get()->tenants;
  if (!tenants) return;
  auto key = r.address.empty() ? std::string() : suppression_key(r.address, st.domain);
  if (suppress) {
    if (key.empty()) return;
    suppression_record rec;
    rec.tenant_id = u.event.tenant_id;
    rec.address = key;
    rec.reason = "hard_bounce";
    rec.source_event = u.event.id.str();
    rec.created_at_ms = u.event.at_ms;
    self->request(tenants, st.settings.config->storage.request_timeout, suppress_atom::value,
                  u.event.tenant_id, std::vector<suppression_record>{std::move(rec)})
        .then([](caf::ok_atom) {},
              [=](caf::error& e) {
                spdlog::warn("domain.suppress_failed domain={} address={} error=\"{}\"",
                             self->state.domain, key, self->system().render(e));
              });
  } else {
    self->send(tenants, bounce_atom::value, u.event.tenant_id, u.recipient_id, key,
               u.event.id.str());
  }
}

// Applies one attempt's result to a recipient: the update to commit, and the memory change.
// One line of the delivery log (log.delivery_log): the attempt's event with its domain and address.
void log_attempt(domain_pointer self, const recipient_update& u, const std::string& address) {
  const auto& log = self->state.settings.shared.attempts_log;
  if (!log) return;
  log->write(event_data::delivery_log_line(u.event, self->state.domain, address));
}

recipient_update cancelled(domain_pointer self, const id128& id, const id128& tenant, const id128& message,
                           std::uint32_t attempts, const std::string& reason, std::int64_t now, const char* by);

// A recipient of the sandbox (actors/policy/sandbox.hpp): delivered by the simulator.
bool sandboxed(const domain_state& st, const waiting_recipient& w) { return st.pools[w.pool] == sandbox_pool; }

// Keeps the last few replies for the admin views: the same reply and outcome in a row counts
// up instead of taking another place.
void note_reply(std::deque<reply_note>& notes, std::int64_t now, const std::string& outcome,
                const std::string& reply) {
  if (!notes.empty() && notes.front().outcome == outcome && notes.front().reply == reply) {
    notes.front().at_ms = now;
    ++notes.front().count;
    return;
  }
  notes.push_front({now, outcome, reply, 1});
  if (notes.size() > 5) notes.pop_back();
}

recipient_update settle(domain_pointer self, const id128& id, waiting_recipient& w,
                        const recipient_result& r, const attempt_details* where) {
  auto& st = self->state;
  auto now = unix_now_ms();
  recipient_update u;
  u.recipient_id = id;
  u.event.id = new_id();
  u.event.tenant_id = st.window.at(w.cls).tenant;
  u.event.message_id = w.message_id;
  u.event.recipient_id = id;
  u.event.at_ms = now;
  u.last_reply = reply_line(r);
  auto decided = decide_attempt_outcome(
      attempt_facts{r.code, r.suppressed, r.expired, r.force_bounce, w.attempts},
      [&] { return classify_failure(self, r, where); },
      [&](std::uint32_t attempts) {
        return st.schedule.next_attempt_ms(id.time_ms(), now, attempts, random01(self));
      },
      st.settings.config->bounces.retry_5xx_categories);
  u.state = decided.state;
  u.attempts = decided.attempts;
  if (w.cancel_asked && u.state == recipient_state::deferred)
    // Its sender cancelled it while this attempt was out: no retry.
    return cancelled(self, id, u.event.tenant_id, w.message_id, decided.attempts,
                     "cancelled while an attempt was in flight", now, "sender");
  if (u.state == recipient_state::suppressed) {
    // Suppressed after it was queued: final, not attempted.
    u.event.type = "suppressed";
    u.event.data_json = event_data::suppressed_at_delivery(w.attempts);
    outcome_counter("suppressed").inc();
    core().count_outcome("suppressed", st.domain, u.event.tenant_id.str(), nullptr);
    return u;
  }
  auto next = decided.next_attempt_at_ms;
  // An operator flushed while this attempt was out: the flush covers it too.
  if (w.flush_asked && u.state == recipient_state::deferred) next = now;
  w.flush_asked = false;
  const auto& failure = decided.failure;
  u.next_attempt_at_ms = next;
  u.event.type = std::string(to_string(u.state));
  u.event.data_json = attempt_data(u.attempts, &r, where, next,
                                 u.state == recipient_state::expired && !r.expired
                                     ? "past max_age after: " + u.last_reply
                                     : (r.code ? std::string() : r.reply),
                                 failure ? &*failure : nullptr);
  outcome_counter(u.event.type.c_str()).inc();
  note_reply(st.last_replies, now, u.event.type, u.last_reply);
  if (!sandboxed(st, w)) {
    const std::string& sender = where ? where->sender_domain : std::string();
    if (u.state == recipient_state::delivered)
      st.settings.shared.reputation->record(u.event.tenant_id, sender, reputation_outcome::delivered, now);
    else if (u.state == recipient_state::bounced && failure && failure->hard)
      st.settings.shared.reputation->record(u.event.tenant_id, sender, reputation_outcome::hard_bounce, now);
  }
  core().count_outcome(u.event.type, st.domain, u.event.tenant_id.str(),
                       failure ? std::string(to_string(failure->category)).c_str() : nullptr);
  if (sandboxed(st, w)) {
    // Simulated outcomes count toward no suppression; a simulated complaint is recorded as
    // a feedback report's would be.
    if (u.state == recipient_state::delivered && where && where->simulated == "complaint") {
      // The same state again, with the complaint as its event: written after the delivery.
      auto complaint = u;
      complaint.event.id = new_id();
      complaint.event.type = "complained";
      complaint.event.data_json = event_data::complained("abuse", "sandbox", "sandbox");
      st.after_commit.push_back(std::move(complaint));
      record_activity(activity::complained);
    }
  } else if (failure && u.state != recipient_state::deferred) {
    learn(self, u, r, *failure);
  }
  if (u.state == recipient_state::deferred) {
    if (w.state != recipient_state::deferred) {
      // Still waiting: the class's counts and the gauges move between states; the tenant's
      // backlog stays as it is.
      auto& c = st.window.at(w.cls);
      if (c.queued > 0) --c.queued;
      ++c.deferred;
      count_waiting(st, w.state, -1);
      count_waiting(st, recipient_state::deferred, 1);
    }
    w.state = recipient_state::deferred;
    w.attempts = u.attempts;
    w.next_attempt_at_ms = next;
    w.in_flight = false;
    if (st.window.hold(w.cls, {next, id}, now))
      st.heap.emplace(next, id);
    else {
      w.evicting = true;  // released once the commit is confirmed (evict_confirmed)
      st.evicting.insert(id);
    }
  }
  return u;
}

void process(domain_pointer self);

// Settles recipients without an attempt (route failures, expiry), committing the result.
void settle_all(domain_pointer self, std::vector<id128> ids, int code, const std::string& text,
                bool expired) {
  auto& st = self->state;
  std::vector<recipient_update> updates;
  for (const auto& id : ids) {
    auto it = st.waiting.find(id);
    if (it == st.waiting.end()) continue;
    recipient_result r;
    r.recipient_id = id;
    r.code = code;
    r.reply = text;
    r.expired = expired;
    if (code >= 500) r.enhanced = "5.1.2";  // bad destination system address (RFC 3463)
    updates.push_back(settle(self, id, it->second, r, nullptr));
    log_attempt(self, updates.back(), r.address);
    if (updates.back().state != recipient_state::deferred) forget(self, id);
  }
  commit(self, std::move(updates));
}

void schedule_wake(domain_pointer self) {
  auto& st = self->state;
  while (!st.heap.empty()) {
    auto [at, id] = st.heap.top();
    auto it = st.waiting.find(id);
    if (it == st.waiting.end() || it->second.in_flight || it->second.ready ||
        it->second.next_attempt_at_ms != at) {
      st.heap.pop();  // stale entry
      continue;
    }
    if (st.wake_at_ms != 0 && st.wake_at_ms <= at) return;  // an earlier timer is set
    st.wake_at_ms = at;
    auto delay = std::max<std::int64_t>(at - unix_now_ms(), 0);
    self->delayed_send(self, std::chrono::milliseconds(delay), wake_atom::value,
                       ++st.wake_generation);
    return;
  }
}

std::size_t max_per_job(domain_pointer self) {
  auto& st = self->state;
  auto max = std::max<std::uint32_t>(st.settings.config->delivery.max_recipients_per_transaction, 1);
  // VERP and per-recipient unsubscribe links need one recipient per transaction.
  const auto& b = st.settings.config->bounces;
  if (!st.settings.config->bounce_secret.empty() && (!b.verp_domain.empty() || !b.unsubscribe_base_url.empty()))
    max = 1;
  return max;
}

// The route a lane's recipients take, when known.
const route* route_of(const domain_state& st, const std::string& route_key) {
  auto it = st.routes.find(route_key);
  return it != st.routes.end() && it->second.current ? &*it->second.current : nullptr;
}

std::string site_of(const domain_state& st, const std::string& route_key) {
  const auto* r = route_of(st, route_key);
  return r ? r->site : std::string();
}

// Whether a lane takes work now: not blocked by its site, not suspended by a control.
bool lane_open(domain_pointer self, const lane& l, std::int64_t now, const control_snapshot& controls) {
  return lane_takes_work(l.source, !l.blocked.empty(), l.blocked_until_ms, site_of(self->state, l.route_key),
                         controls, now);
}

// The route key of a tenant's recipients here (the routing table's first matching entry),
// looked up once per tenant.
const std::string& route_key_of(domain_pointer self, const id128& tenant) {
  auto& st = self->state;
  auto it = st.tenant_routes.find(tenant);
  if (it != st.tenant_routes.end()) return it->second;
  const auto& table = *st.settings.config->routing;
  auto key = table.empty() ? std::string()
                           : table.key_for(st.domain, tenant.str(), st.settings.shared.weights->name(tenant));
  return st.tenant_routes.emplace(tenant, std::move(key)).first->second;
}

// The lane of (source, route key), made when new.
lane& lane_for(domain_state& st, const std::string& source, const std::string& route_key) {
  auto [it, added] = st.lanes.try_emplace(lane_key(source, route_key));
  if (added) {
    it->second.source = source;
    it->second.route_key = route_key;
  }
  return it->second;
}

// The source for a recipient of `pool`: by weight among those that take work now; when none
// does, by weight among all (it waits in that lane).
std::string choose_source(domain_pointer self, const std::string& pool, const std::string& route_key,
                          const std::string& avoid = {}) {
  auto& st = self->state;
  const auto& pools = *st.settings.config->pools;
  auto it = pools.find(pool.empty() ? st.settings.config->egress.default_pool : pool);
  if (it == pools.end()) it = pools.find("default");
  if (it == pools.end() || it->second.empty()) return std::string();
  auto now = unix_now_ms();
  auto controls = st.settings.shared.controls->get();
  auto open = [&](const std::string& source) {
    auto l = st.lanes.find(lane_key(source, route_key));
    if (l == st.lanes.end()) return !controls->active("source", source, now);
    return lane_open(self, l->second, now, *controls);
  };
  return petrel::choose_source(it->second, open, avoid, random01(self));
}

void make_ready(domain_pointer self, const id128& id, waiting_recipient& w,
                const std::string& avoid = {}) {
  auto& st = self->state;
  const auto& c = st.window.at(w.cls);
  if (sandboxed(st, w)) {
    // The simulator's lane: its own route (no DNS), one recipient per job so that each
    // gets its own simulated outcome.
    std::string key(sandbox_route_key);
    auto& slot = st.routes[key];
    if (!slot.current) {
      route r;
      r.status = route_status::ok;
      r.site = std::string(sandbox_site);
      r.expires_at_ms = std::numeric_limits<std::int64_t>::max();
      slot.current = std::move(r);
    }
    w.ready = true;
    lane_for(st, std::string(sandbox_pool), key)
        .queue.push(id, w.message_id, c.tenant, c.priority, st.settings.shared.weights->weight(c.tenant), true);
    return;
  }
  const auto& key = route_key_of(self, c.tenant);
  auto source = choose_source(self, st.pools[w.pool], key, avoid);
  w.ready = true;
  lane_for(st, source, key).queue.push(id, w.message_id, c.tenant, c.priority,
                                       st.settings.shared.weights->weight(c.tenant), w.alone);
}

// Empties one lane: its recipients are no longer ready; appended to ids for settling.
void take_ready(domain_state& st, lane& l, std::vector<id128>& ids) {
  for (auto& job : l.queue.drain())
    for (auto& id : job.recipients) {
      auto it = st.waiting.find(id);
      if (it != st.waiting.end()) it->second.ready = false;
      ids.push_back(id);
    }
}

// Unready recipients for settling without an attempt (a route's failure): every lane of that
// route emptied.
std::vector<id128> take_all_ready(domain_pointer self, const std::string& route_key) {
  std::vector<id128> ids;
  for (auto& [name, l] : self->state.lanes)
    if (l.route_key == route_key) take_ready(self->state, l, ids);
  return ids;
}

std::size_t ready_count(domain_pointer self) {
  std::size_t n = 0;
  for (const auto& [source, l] : self->state.lanes) n += l.queue.recipients();
  return n;
}

// How long a lane whose site could not be had takes no work before it asks again.
constexpr std::chrono::milliseconds no_site_pause{5000};
constexpr std::string_view no_site_reason = "no egress path: ";

void ask_site(domain_pointer self, const std::string& name) {
  auto& st = self->state;
  auto& l = st.lanes[name];
  const auto* r = route_of(st, l.route_key);
  if (l.asking || !r) return;
  l.asking = true;
  auto source = l.source;
  self->request(st.egress, st.settings.config->storage.request_timeout, site_atom::value, l.source, *r)
      .then(
          [=](site_actor& site) {
            auto& s = self->state;
            auto& l = s.lanes[name];
            l.asking = false;
            if (l.blocked.rfind(no_site_reason, 0) == 0) {
              l.blocked.clear();
              l.blocked_until_ms = 0;
            }
            if (l.site != site) {
              // The old site stays monitored while it still runs jobs of ours.
              l.site = site;
              l.demand_sent = false;
              self->monitor(site);
            }
            process(self);
          },
          [=](caf::error& e) {
            auto& s = self->state;
            auto& l = s.lanes[name];
            l.asking = false;
            spdlog::warn("domain.no_site domain={} source={} error=\"{}\"", s.domain, source,
                         self->system().render(e));
            // The lane takes no work for a while (a restarting egress actor, another node's
            // source while its node is not linked): its recipients go to the pool's other
            // sources, or wait in it (not an attempt: nothing was tried), and it asks again.
            l.blocked = std::string(no_site_reason) + self->system().render(e);
            l.blocked_until_ms = unix_now_ms() + no_site_pause.count();
            process(self);
          });
}

counter& sts_counter(const char* event) {
  return metrics().get_counter("petrel_mta_sts_total", "MTA-STS events", {{"event", event}});
}

// Applies the route's MTA-STS policy: enforce keeps only the MX hosts the policy names and
// sends through a site of its own that requires TLS with a valid certificate; testing only
// reports hosts outside the policy. False when an enforced policy leaves no host. A host with
// DANE TLSA records is kept either way: DANE comes first for it (RFC 8461 2), and the session
// checks its certificate against the TLSA records instead of the WebPKI.
bool apply_mta_sts(domain_pointer self, route& r) {
  auto& st = self->state;
  if (r.sts_mode.empty()) return true;
  if (const auto* policy = site_policy_for(st.settings.config->delivery, r); policy && policy->mta_sts == 0)
    return true;  // turned off for this site
  std::vector<mx_host> matching;
  for (const auto& h : r.hosts)
    if (!h.tlsa.empty() || mta_sts_any_matches(r.sts_mx, h.name)) matching.push_back(h);
  if (r.sts_mode == "testing") {
    if (matching.size() != r.hosts.size()) {
      sts_counter("testing_violation").inc();
      spdlog::warn("mta_sts.testing_violation domain={} hosts_outside_policy={}", st.domain,
                   r.hosts.size() - matching.size());
    }
    return true;
  }
  if (matching.empty()) {
    sts_counter("no_matching_mx").inc();
    spdlog::warn("mta_sts.no_matching_mx domain={}", st.domain);
    return false;
  }
  sts_counter("enforced").inc();
  r.hosts = std::move(matching);
  r.site += "#mta-sts";
  r.sts_enforced = true;
  return true;
}

// Looks up a route: the domain's own (key "", its MX hosts) or a routing table entry's (the
// resolver knows "#<entry>" keys).
void resolve(domain_pointer self, const std::string& key) {
  auto& st = self->state;
  auto& slot = st.routes[key];
  if (slot.resolving) return;
  slot.resolving = true;
  self->request(st.resolver, st.settings.config->storage.request_timeout, resolve_atom::value,
                key.empty() ? st.domain : key)
      .then(
          [=](route& r) {
            auto& s = self->state;
            auto& slot = s.routes[key];
            slot.resolving = false;
            if (r.status == route_status::ok && !apply_mta_sts(self, r)) {
              auto ids = take_all_ready(self, key);
              settle_all(self, ids, 0,
                         "MTA-STS: the enforced policy of " + s.domain + " names none of its MX hosts",
                         false);
              slot.current.reset();
              schedule_wake(self);
              return;
            }
            if (r.status == route_status::ok) {
              bool new_site = !slot.current || slot.current->site != r.site;
              slot.current = std::move(r);
              if (new_site)
                for (auto& [name, l] : s.lanes)
                  if (l.route_key == key) {
                    l.site = nullptr;  // each lane of the route asks for the site of the new route
                    l.demand_sent = false;
                  }
              process(self);
              return;
            }
            // Every ready recipient of the route shares the failure: bounce (permanent) or defer.
            auto ids = take_all_ready(self, key);
            auto code = r.status == route_status::permanent ? 550 : 0;
            settle_all(self, ids, code, r.error, false);
            slot.current.reset();
            schedule_wake(self);
            arm_idle_timer(self);
          },
          [=](caf::error& e) {
            auto& s = self->state;
            s.routes[key].resolving = false;
            auto ids = take_all_ready(self, key);
            settle_all(self, ids, 0, "DNS lookup failed: " + self->system().render(e), false);
            schedule_wake(self);
          });
}


// An operator's cancellation of one recipient: the update and its event.
// by: "admin" (an operator) or "sender" (the tenant, POST /v1/messages/{id}/cancel).
recipient_update cancelled(domain_pointer self, const id128& id, const id128& tenant, const id128& message,
                           std::uint32_t attempts, const std::string& reason, std::int64_t now,
                           const char* by) {
  recipient_update u;
  u.recipient_id = id;
  u.state = recipient_state::cancelled;
  u.attempts = attempts;
  u.last_reply = std::string(std::string_view(by) == "admin" ? "cancelled by an operator" : "cancelled by its sender") +
                 (reason.empty() ? std::string() : ": " + reason);
  u.event.id = new_id();
  u.event.tenant_id = tenant;
  u.event.message_id = message;
  u.event.recipient_id = id;
  u.event.type = "cancelled";
  u.event.at_ms = now;
  u.event.data_json = event_data::cancelled(by, reason);
  core().count_outcome("cancelled", self->state.domain, tenant.str(), nullptr);
  return u;
}

// -- reading the store: one read at a time (a summary, a cancel scan's page, a window page) --

void start_read(domain_pointer self);
void flush_store(domain_pointer self, std::int64_t now_ms);

void begin_read(domain_pointer self) {
  auto& st = self->state;
  st.reading = true;
  st.read_excluded.emplace(st.unconfirmed);
}

void end_read(domain_pointer self) {
  auto& st = self->state;
  st.reading = false;
  st.read_excluded.reset();
  auto later = std::move(st.evict_later);
  st.evict_later.clear();
  for (const auto& id : later) {
    auto it = st.waiting.find(id);
    if (it != st.waiting.end() && it->second.evicting) release(self, id);
  }
}

// Whether a row read from the store is not to be taken: settled meanwhile, or held already.
bool skip_read(const domain_state& st, const id128& id) {
  return st.waiting.count(id) || st.unconfirmed.count(id) || (st.read_excluded && st.read_excluded->count(id));
}

// Looks at the store again at `at` (a stored recipient's due time enters the horizon, or a
// failed read is retried).
void check_store_at(domain_pointer self, std::int64_t at) {
  auto& st = self->state;
  if (st.page_check_at_ms != 0 && st.page_check_at_ms <= at) return;
  st.page_check_at_ms = at;
  self->delayed_send(self, std::chrono::milliseconds(std::max<std::int64_t>(at - unix_now_ms(), 0) + 1),
                     load_atom::value, ++st.page_check_generation);
}

void read_failed(domain_pointer self, const char* what, const caf::error& e) {
  spdlog::warn("domain.read_failed domain={} read={} retry_in_ms=1000 error=\"{}\"", self->state.domain,
               what, self->system().render(e));
  end_read(self);
  check_store_at(self, unix_now_ms() + 1000);
}

// The summary of the domain's queue: counts per class (at start, the index of what waits).
// A repair takes it again and reads from their start the classes that have recipients this
// actor has not seen.
std::uint64_t cancel_listed(domain_pointer self, const std::vector<queued_recipient>& list,
                            const std::string& reason);

void read_summary(domain_pointer self, bool repair) {
  auto& st = self->state;
  begin_read(self);
  self->request(st.store, store_answers, load_atom::value, st.domain,
                stats_atom::value)
      .then(
          [=](std::vector<queue_class_summary>& classes) {
            auto& st = self->state;
            std::uint64_t again = 0;
            for (const auto& k : classes) {
              auto cls = st.window.class_of(k.tenant_id, k.priority);
              auto& c = st.window.at(cls);
              if (repair) {
                // Recipients not seen here: the class is read up to its boundary (a scan), and
                // its counts become the store's.
                bool unseen = st.seen_max.size() <= cls || k.max_id > st.seen_max[cls];
                if (!unseen && k.queued + k.deferred <= c.waiting()) continue;
                bool scanning = std::any_of(st.scans.begin(), st.scans.end(),
                                            [&](const auto& x) { return x.cls == cls && !x.cancel; });
                if (!scanning)
                  st.scans.push_back({cls, queue_key{std::numeric_limits<std::int64_t>::min(), id128{}}, false, 0, {}});
                ++again;
              }
              count(self, cls, recipient_state::queued, static_cast<std::int64_t>(k.queued) - static_cast<std::int64_t>(c.queued));
              count(self, cls, recipient_state::deferred,
                    static_cast<std::int64_t>(k.deferred) - static_cast<std::int64_t>(c.deferred));
              if (!repair) st.window.summarized(cls, k.queued, k.deferred, k.oldest_ms, k.next_due_ms, k.max_id);
              seen(st, cls, k.max_id);
            }
            end_read(self);
            if (repair) {
              if (again) spdlog::info("domain.repair domain={} classes={}", st.domain, again);
            } else {
              st.loaded = true;
              auto early = std::move(st.early);
              st.early.clear();
              for (const auto& r : early) add(self, r);
              auto cancels = std::move(st.early_cancels);
              st.early_cancels.clear();
              for (const auto& [list, reason] : cancels) cancel_listed(self, list, reason);
              self->send(st.supervisor, ready_atom::value, st.domain);
              spdlog::debug("domain.summarized domain={} waiting={} classes={}", st.domain,
                            st.window.waiting(), classes.size());
            }
            process(self);
            arm_idle_timer(self);
          },
          [=](caf::error& e) {
            if (repair) return read_failed(self, "summary", e);
            // Without knowing what waits this actor must not run; the supervisor retries.
            spdlog::error("domain.load_failed domain={} error=\"{}\"", self->state.domain,
                          self->system().render(e));
            self->quit(e);
          });
}

queue_page_query page_query(const domain_state& st, queue_window::class_index cls, const queue_key& after,
                            std::int64_t until_ms, std::uint64_t limit) {
  const auto& c = st.window.at(cls);
  return queue_page_query{st.domain, c.tenant, c.priority, after.due_ms, after.id, until_ms, limit};
}

// A page of one class, in due order, into memory.
void read_page(domain_pointer self, const queue_window::page_request& r) {
  auto& st = self->state;
  st.window.page_sent(r);
  // Deferrals not yet durable may be read at their old place: the page must not pass them.
  auto& c = st.window.at(r.cls);
  for (const auto& id : st.evicting) {
    auto it = st.waiting.find(id);
    if (it == st.waiting.end() || it->second.cls != r.cls) continue;
    queue_key k{it->second.next_attempt_at_ms, id};
    if (!c.refused_while_paging || k < *c.refused_while_paging) c.refused_while_paging = k;
  }
  begin_read(self);
  self->request(st.store, store_answers, load_atom::value,
                page_query(st, r.cls, r.after, r.until_ms, r.limit))
      .then(
          [=](queue_page& page) {
            auto& st = self->state;
            for (const auto& rec : page.recipients) {
              seen(st, r.cls, rec.recipient_id);
              if (!skip_read(st, rec.recipient_id)) hold(self, rec, r.cls);
            }
            queue_window::page_result result;
            result.rows = page.recipients.size();
            if (!page.recipients.empty())
              result.last = queue_key{page.recipients.back().next_attempt_at_ms, page.recipients.back().recipient_id};
            if (page.has_later) result.next_due_ms = page.later_due_ms;
            if (st.window.page_loaded(r, result)) recount(self, r.cls);
            end_read(self);
            process(self);
          },
          [=](caf::error& e) {
            self->state.window.page_failed(r);
            read_failed(self, "page", e);
          });
}

// A scan's page: a cancel cancels the class's recipients in the store (those in memory were
// cancelled when the operator asked), and keeps the class from being paged meanwhile; a repair
// holds the recipients it was not told about that the window has (up to the boundary).
void read_scan(domain_pointer self) {
  auto& st = self->state;
  auto& scan = st.scans.front();
  auto limit = st.settings.config->queue.page;
  auto until = std::numeric_limits<std::int64_t>::max();
  if (scan.cancel && !st.window.at(scan.cls).page_out)
    st.window.page_sent({scan.cls, scan.after, until, limit});
  if (!scan.cancel && !st.window.at(scan.cls).complete()) until = st.window.at(scan.cls).boundary->due_ms;
  begin_read(self);
  self->request(st.store, store_answers, load_atom::value,
                page_query(st, scan.cls, scan.after, until, limit))
      .then(
          [=](queue_page& page) {
            auto& st = self->state;
            auto& scan = st.scans.front();
            auto now = unix_now_ms();
            std::vector<recipient_update> updates;
            std::size_t found = 0;
            for (const auto& rec : page.recipients) {
              seen(st, scan.cls, rec.recipient_id);
              if (skip_read(st, rec.recipient_id)) continue;
              if (!scan.cancel) {
                if (st.window.hold(scan.cls, {rec.next_attempt_at_ms, rec.recipient_id}, now)) {
                  hold(self, rec, scan.cls);
                  ++found;
                }
                continue;
              }
              if (rec.recipient_id.time_ms() > scan.cutoff_ms) continue;
              updates.push_back(cancelled(self, rec.recipient_id, rec.tenant_id, rec.message_id,
                                          rec.attempts, scan.reason, now, "admin"));
              count(self, scan.cls, rec.state, -1);
            }
            if (found) spdlog::info("domain.repaired domain={} recipients={}", st.domain, found);
            if (!page.recipients.empty())
              scan.after = queue_key{page.recipients.back().next_attempt_at_ms, page.recipients.back().recipient_id};
            if (page.recipients.size() < limit) {
              auto cls = scan.cls;
              if (scan.cancel) {
                spdlog::info("domain.cancel_scanned domain={} tenant={}", st.domain, st.window.at(cls).tenant.str());
                st.window.page_failed({cls, {}, 0, 0});  // paged again from where it was
              }
              st.scans.pop_front();
            }
            commit(self, std::move(updates));
            end_read(self);
            process(self);
          },
          [=](caf::error& e) { read_failed(self, "scan", e); });
}

void start_read(domain_pointer self) {
  auto& st = self->state;
  if (!st.loaded || st.reading || st.draining) return;
  if (st.repair_wanted) {
    st.repair_wanted = false;
    return read_summary(self, true);
  }
  if (!st.scans.empty()) return read_scan(self);
  if (st.flushing) {
    if (st.flush_retry_ms) flush_store(self, st.flush_retry_ms);
    return;
  }
  auto now = unix_now_ms();
  if (auto r = st.window.next_page(now)) return read_page(self, *r);
  if (auto at = st.window.next_check_ms(now)) check_store_at(self, *at);
}

void process(domain_pointer self) {
  auto& st = self->state;
  if (!st.settings.config->deliver || !st.loaded) return;
  auto now = unix_now_ms();
  // Move what is due from the heap into the lanes; expire what is past max_age.
  std::vector<id128> expired;
  while (!st.heap.empty() && st.heap.top().first <= now) {
    auto [at, id] = st.heap.top();
    st.heap.pop();
    auto it = st.waiting.find(id);
    if (it == st.waiting.end() || it->second.in_flight || it->second.ready ||
        it->second.next_attempt_at_ms != at)
      continue;
    if (st.schedule.expired(id.time_ms(), now)) {
      expired.push_back(id);
      continue;
    }
    make_ready(self, id, it->second);
  }
  if (!expired.empty()) settle_all(self, expired, 0, "not delivered within max_age", true);
  auto controls = st.settings.shared.controls->get();
  if (auto* c = controls->find("domain", st.domain, now)) {
    st.waiting_for = "suspended";
    if (c->until_ms) {
      // Look again when the suspension ends (the controls actor also announces it).
      self->delayed_send(self, std::chrono::milliseconds(c->until_ms - now + 1), wake_atom::value,
                         ++st.wake_generation);
      st.wake_at_ms = c->until_ms;
    }
  } else if (st.store_failing) {
    st.waiting_for = "store (outcomes waiting to be recorded)";  // no demand until they are
  } else if (ready_count(self) > 0) {
    auto max = max_per_job(self);
    for (auto& [name, l] : st.lanes) {
      if (l.queue.empty()) continue;
      const auto* r = route_of(st, l.route_key);
      if (!r || r->expires_at_ms <= now) {
        resolve(self, l.route_key);
        continue;
      }
      if (!lane_open(self, l, now, *controls)) {
        // Blocked: move its work to a lane that takes it, if the pool has one.
        auto source = l.source;
        for (auto& job : l.queue.drain())
          for (auto& id : job.recipients) {
            auto it = st.waiting.find(id);
            if (it == st.waiting.end()) continue;
            it->second.ready = false;
            make_ready(self, id, it->second, source);
          }
        if (l.blocked_until_ms > now) {
          self->delayed_send(self, std::chrono::milliseconds(l.blocked_until_ms - now + 1),
                             wake_atom::value, ++st.wake_generation);
          st.wake_at_ms = l.blocked_until_ms;
        }
        continue;
      }
      if (!l.site) {
        ask_site(self, name);
      } else if (!l.demand_sent) {
        l.demand_sent = true;
        self->send(l.site, demand_atom::value, static_cast<std::uint64_t>(l.queue.jobs(max)));
      }
    }
  }
  schedule_wake(self);
  start_read(self);
  arm_idle_timer(self);
}

void on_credit(domain_pointer self, std::uint64_t credit) {
  auto& st = self->state;
  auto granting = caf::actor_cast<site_actor>(self->current_sender());
  if (!granting) return;
  // The lane of that site ("" is a valid source name: the default source).
  std::optional<std::string> found;
  for (auto& [name, l] : st.lanes)
    if (l.site == granting) found = name;
  if (!found) {
    // Credit from a site this domain no longer uses (its route changed): give it back.
    self->send(granting, jobs_atom::value, credit, std::vector<delivery_job>{});
    return;
  }
  const auto& lane_name = *found;
  auto& l = st.lanes[lane_name];
  l.demand_sent = false;
  std::vector<delivery_job> jobs;
  auto max = max_per_job(self);
  auto owner = caf::actor_cast<caf::actor_addr>(self);
  auto max_age = st.schedule.max_age().count();
  auto now = unix_now_ms();
  auto steady = std::chrono::steady_clock::now();
  auto controls = st.settings.shared.controls->get();
  std::string base = site_of(st, l.route_key);
  if (auto hash = base.find('#'); hash != std::string::npos) base.resize(hash);
  std::chrono::nanoseconds tenant_wait{0};
  auto eligible = [&](const id128& tenant) {
    if (!controls->empty()) {
      auto t = tenant.str();
      if (controls->active("tenant", t, now) || controls->active("tenant_site", t + "/" + base, now))
        return false;
    }
    if (st.tenant_rate <= 0) return true;
    auto [it, added] = st.tenant_limiters.try_emplace(tenant);
    if (added) it->second.configure(st.tenant_rate, std::max<std::uint32_t>(1, static_cast<std::uint32_t>(st.tenant_rate)));
    auto wait = it->second.try_acquire(steady);
    if (wait.count() > 0) {
      if (tenant_wait.count() == 0 || wait < tenant_wait) tenant_wait = wait;
      return false;
    }
    return true;
  };
  st.waiting_for.clear();
  if (controls->active("domain", st.domain, now)) {
    st.waiting_for = "suspended";
    credit = 0;
  } else if (st.draining) {
    st.waiting_for = "handing over to another node";
    credit = 0;
  } else if (st.store_failing) {
    st.waiting_for = "store (outcomes waiting to be recorded)";
    credit = 0;
  } else if (!st.settings.shared.leases->holds(st.claim.partition, st.claim.epoch,
                                                partition_leases::now_ms())) {
    // Cluster: no attempt starts without a safe margin left on the partition's lease.
    st.waiting_for = "partition lease";
    credit = 0;
  }
  while (jobs.size() < credit && !l.queue.empty()) {
    auto wait = st.limiter.try_acquire(steady);
    if (wait.count() > 0) {
      st.waiting_for = "domain rate";
      auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(wait).count() + 1;
      self->delayed_send(self, std::chrono::milliseconds(ms), wake_atom::value, ++st.wake_generation);
      st.wake_at_ms = now + ms;
      break;
    }
    auto next = l.queue.pop(max, eligible);
    if (!next) {
      // (The domain's cell taken above goes unused: a rate may run one message slow.)
      if (tenant_wait.count() > 0) {
        st.waiting_for = "tenant rate";
        auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(tenant_wait).count() + 1;
        self->delayed_send(self, std::chrono::milliseconds(ms), wake_atom::value, ++st.wake_generation);
        st.wake_at_ms = now + ms;
      } else {
        st.waiting_for = "tenant suspended";
      }
      break;
    }
    delivery_job job;
    job.job_id = ++st.next_job;
    job.message_id = next->message;
    job.tenant_id = next->tenant;
    job.domain = st.domain;
    job.expires_at_ms = next->message.time_ms() + max_age;
    job.owner = owner;
    job.partition = st.claim.partition;
    job.epoch = st.claim.epoch;
    for (const auto& id : next->recipients) {
      auto it = st.waiting.find(id);
      if (it == st.waiting.end() || !it->second.ready) continue;  // settled meanwhile
      it->second.ready = false;
      it->second.in_flight = true;
      job.recipient_ids.push_back(id);
    }
    if (job.recipient_ids.empty()) continue;
    // Expiry counts from the recipient's creation, which is its message's (same ULID time).
    job.expires_at_ms = job.recipient_ids.front().time_ms() + max_age;
    l.in_flight += job.recipient_ids.size();
    jobs.push_back(std::move(job));
  }
  for (const auto& job : jobs) {
    st.jobs.emplace(job.job_id, job);
    st.job_site.emplace(job.job_id, granting.address());
    st.job_lane.emplace(job.job_id, lane_name);
  }
  self->send(granting, jobs_atom::value, credit, std::move(jobs));
  process(self);
}

void on_outcome(domain_pointer self, job_outcome& outcome) {
  auto& st = self->state;
  auto job = st.jobs.find(outcome.job_id);
  if (job == st.jobs.end()) return;
  std::vector<recipient_update> updates;
  for (const auto& r : outcome.recipients) {
    auto it = st.waiting.find(r.recipient_id);
    if (it == st.waiting.end() || !it->second.in_flight) continue;
    it->second.in_flight = false;
    updates.push_back(settle(self, r.recipient_id, it->second, r, &outcome.attempt));
    log_attempt(self, updates.back(), r.address);
    if (updates.back().state != recipient_state::deferred) forget(self, r.recipient_id);
  }
  // A recipient of the job the outcome does not mention has no result: due again now.
  auto now = unix_now_ms();
  for (const auto& id : job->second.recipient_ids) {
    auto it = st.waiting.find(id);
    if (it == st.waiting.end() || !it->second.in_flight) continue;
    it->second.in_flight = false;
    it->second.next_attempt_at_ms = now;
    st.heap.emplace(now, id);
  }
  if (auto jl = st.job_lane.find(outcome.job_id); jl != st.job_lane.end()) {
    auto& l = st.lanes[jl->second];
    l.in_flight -= std::min<std::uint64_t>(l.in_flight, job->second.recipient_ids.size());
    st.job_lane.erase(jl);
  }
  st.jobs.erase(job);
  st.job_site.erase(outcome.job_id);
  commit(self, std::move(updates));
  process(self);
  finish_drain_if_done(self);
}

// An operator's flush of the recipients only the store holds. The window has moved its
// boundary already (they are due now), so the write is retried until it lands: until then no
// page is read, and a page read before it would find them at their old due times.
void flush_store(domain_pointer self, std::int64_t now_ms) {
  auto& st = self->state;
  st.flush_retry_ms = 0;
  write_request w;
  w.op = flush_recipients_op{st.domain, now_ms};
  self->request(st.store, store_answers, persist_atom::value, std::move(w))
      .then(
          [=](caf::ok_atom) {
            self->state.flushing = false;
            self->state.flush_attempts = 0;
            process(self);
          },
          [=](caf::error& e) {
            auto& s = self->state;
            auto delay = std::min<std::int64_t>(std::int64_t{100} << std::min<std::uint32_t>(s.flush_attempts, 6), 5000);
            ++s.flush_attempts;
            spdlog::warn("domain.flush_failed domain={} attempt={} retry_in_ms={} error=\"{}\"", s.domain,
                         s.flush_attempts, delay, self->system().render(e));
            s.flush_retry_ms = now_ms;
            check_store_at(self, unix_now_ms() + delay);  // start_read writes it again
          });
}

// A site went away: the fate of its jobs is unknown; they are due again (at-least-once).
void on_site_down(domain_pointer self, const caf::actor_addr& site) {
  auto& st = self->state;
  for (auto& [source, l] : st.lanes)
    if (l.site && l.site.address() == site) {
      l.site = nullptr;
      l.demand_sent = false;
    }
  auto now = unix_now_ms();
  for (auto it = st.job_site.begin(); it != st.job_site.end();) {
    if (it->second != site) {
      ++it;
      continue;
    }
    auto job = st.jobs.find(it->first);
    if (job != st.jobs.end()) {
      for (const auto& id : job->second.recipient_ids) {
        auto w = st.waiting.find(id);
        if (w == st.waiting.end()) continue;
        w->second.in_flight = false;
        w->second.next_attempt_at_ms = now;
        st.heap.emplace(now, id);
      }
      if (auto jl = st.job_lane.find(it->first); jl != st.job_lane.end()) {
        auto& l = st.lanes[jl->second];
        l.in_flight -= std::min<std::uint64_t>(l.in_flight, job->second.recipient_ids.size());
        st.job_lane.erase(jl);
      }
      st.jobs.erase(job);
    }
    it = st.job_site.erase(it);
  }
  process(self);
}

// Admin: waiting recipients (of one tenant, or all) end as cancelled, each with its event;
// those in flight at a site finish their attempt.
std::uint64_t cancel(domain_pointer self, const id128& tenant, const std::string& reason) {
  auto& st = self->state;
  auto now = unix_now_ms();
  std::vector<id128> ids;
  for (const auto& [id, w] : st.waiting)
    if (!w.in_flight && (tenant.empty() || st.window.at(w.cls).tenant == tenant)) ids.push_back(id);
  for (auto& [source, l] : st.lanes)
    l.queue.drain([&](const id128& t) { return tenant.empty() || t == tenant; });
  std::vector<recipient_update> updates;
  for (const auto& id : ids) {
    auto& w = st.waiting[id];
    updates.push_back(cancelled(self, id, st.window.at(w.cls).tenant, w.message_id, w.attempts, reason, now, "admin"));
    forget(self, id);
  }
  // Those only in the store are cancelled page by page (read_scan).
  std::uint64_t stored = 0;
  const auto& classes = st.window.classes();
  for (std::size_t i = 0; i < classes.size(); ++i) {
    const auto& c = classes[i];
    if (c.complete() || (!tenant.empty() && c.tenant != tenant)) continue;
    stored += c.waiting() - std::min(c.waiting(), c.in_memory);
    st.scans.push_back({static_cast<queue_window::class_index>(i),
                        queue_key{std::numeric_limits<std::int64_t>::min(), id128{}}, true, now, reason});
  }
  if (!ids.empty() || stored)
    spdlog::info("domain.cancelled domain={} tenant={} recipients={} in_store={}", st.domain,
                 tenant.empty() ? "(all)" : tenant.str(), ids.size(), stored);
  commit(self, std::move(updates));
  start_read(self);
  arm_idle_timer(self);
  return ids.size() + stored;
}

// Its sender cancels these recipients (POST /v1/messages/{id}/cancel, POST
// /v1/batches/{id}/cancel): those held and not in flight now; one in flight if its attempt
// defers; one only in the store by writing its cancellation (pages skip it: it is unconfirmed
// until the write commits, then no longer waiting).
std::uint64_t cancel_listed(domain_pointer self, const std::vector<queued_recipient>& list,
                            const std::string& reason) {
  auto& st = self->state;
  if (!st.loaded) {
    st.early_cancels.emplace_back(list, reason);
    return std::count_if(list.begin(), list.end(), [&](const auto& r) { return r.domain == st.domain; });
  }
  auto now = unix_now_ms();
  std::vector<recipient_update> updates;
  std::uint64_t n = 0, stored = 0;
  for (const auto& r : list) {
    if (r.domain != st.domain || st.unconfirmed.count(r.recipient_id)) continue;
    auto it = st.waiting.find(r.recipient_id);
    if (it != st.waiting.end()) {
      auto& w = it->second;
      ++n;
      if (w.in_flight) {
        w.cancel_asked = true;
        continue;
      }
      updates.push_back(cancelled(self, r.recipient_id, st.window.at(w.cls).tenant, w.message_id, w.attempts,
                                  reason, now, "sender"));
      forget(self, r.recipient_id);  // a lane's queue skips it (no longer waiting)
      continue;
    }
    // Not in memory: in the store only when its class is partial (else it is settled, or on
    // its way here and the class's next page or enqueue brings it; nothing to do).
    auto cls = st.window.class_of(r.tenant_id, r.priority);
    if (st.window.at(cls).complete()) continue;
    updates.push_back(cancelled(self, r.recipient_id, r.tenant_id, r.message_id, r.attempts, reason, now, "sender"));
    count(self, cls, r.state, -1);
    ++n, ++stored;
  }
  if (n)
    spdlog::info("domain.sender_cancelled domain={} recipients={} in_store={}", st.domain, n, stored);
  commit(self, std::move(updates));
  process(self);
  arm_idle_timer(self);
  return n;
}

domain_queue_stats domain_stats(domain_pointer self) {
  auto& s = self->state;
  auto now = unix_now_ms();
  domain_queue_stats out;
  out.domain = s.domain;
  std::unordered_map<id128, std::uint64_t, id128_hash> tenants;
  // Counts cover memory and store (the window's classes); times, memory, and for recipients
  // only in the store what the summary and pages told.
  for (const auto& c : s.window.classes()) {
    out.queued += c.queued;
    out.deferred += c.deferred;
    if (c.waiting()) tenants[c.tenant] += c.waiting();
    if (c.complete()) continue;
    if (c.stored_oldest_ms && (out.oldest_ms == 0 || c.stored_oldest_ms < out.oldest_ms))
      out.oldest_ms = c.stored_oldest_ms;
    if (c.stored_next_due_ms && (out.next_attempt_ms == 0 || *c.stored_next_due_ms < out.next_attempt_ms))
      out.next_attempt_ms = *c.stored_next_due_ms;
  }
  out.in_memory = s.waiting.size();
  out.last_replies.assign(s.last_replies.begin(), s.last_replies.end());
  for (const auto& [id, r] : s.waiting) {
    if (r.in_flight) ++out.in_flight;
    if (r.ready) ++out.due;
    auto created = id.time_ms();
    if (out.oldest_ms == 0 || created < out.oldest_ms) out.oldest_ms = created;
    if (!r.in_flight && (out.next_attempt_ms == 0 || r.next_attempt_at_ms < out.next_attempt_ms))
      out.next_attempt_ms = r.next_attempt_at_ms;
  }
  for (const auto& [t, n] : tenants) out.tenants.push_back({t.str(), n});
  std::sort(out.tenants.begin(), out.tenants.end(),
            [](const auto& a, const auto& b) { return a.waiting > b.waiting; });
  auto controls = s.settings.shared.controls->get();
  std::string binding;
  bool unrouted = false;  // recipients due on a route not known yet
  for (const auto& [name, l] : s.lanes) {
    lane_stats ls;
    ls.source = l.source;
    ls.site = site_of(s, l.route_key);
    ls.due = l.queue.recipients();
    ls.in_flight = l.in_flight;
    if (ls.due > 0 && ls.site.empty()) unrouted = true;
    if (!lane_open(self, l, now, *controls))
      ls.blocked = l.blocked.empty() ? "suspended" : l.blocked;
    ls.blocked_until_ms = l.blocked_until_ms;
    if (ls.due > 0 && binding.empty())
      binding = !ls.blocked.empty() ? ls.blocked : (l.demand_sent ? "site credit" : std::string());
    out.lanes.push_back(std::move(ls));
  }
  if (controls->active("domain", s.domain, now))
    out.waiting_for = "suspended";
  else if (out.due == 0)
    out.waiting_for = out.queued + out.deferred > out.in_flight ? "next attempt" : "";
  else if (!s.waiting_for.empty())
    out.waiting_for = s.waiting_for;
  else if (unrouted)
    out.waiting_for = "route (DNS)";
  else
    out.waiting_for = binding.empty() ? "site" : binding;
  return out;
}

// What the domain takes from the configuration: its retry schedule, its rates (the first
// matching [[delivery.domains]]), its routes. Again after a reload.
void configure_domain(domain_state& st) {
  const auto& d = st.settings.config->delivery;
  st.schedule = retry_schedule(d.retry_schedule, d.retry_jitter, d.max_age);
  double rate = 0, tenant_rate = 0;
  for (const auto& policy : d.domains)
    if (fnmatch(policy.match.c_str(), st.domain.c_str(), FNM_CASEFOLD) == 0) {
      rate = policy.message_rate.per_second;
      tenant_rate = policy.tenant_rate.per_second;
      break;
    }
  st.limiter.configure(rate, std::max<std::uint32_t>(1, static_cast<std::uint32_t>(rate)));
  if (tenant_rate != st.tenant_rate) st.tenant_limiters.clear();
  st.tenant_rate = tenant_rate;
  st.tenant_routes.clear();  // looked up again in the (new) routing table
}

domain_actor::behavior_type domain_behavior(domain_pointer self, domain_start start) {
  auto& st = start_actor(self);
  static_cast<domain_start&>(st) = std::move(start);
  refresh_config(st.settings);
  configure_domain(st);
  core().domain_actors.add(1);
  self->attach_functor([counted = st.counted, backlog = st.backlog,
                        shared = st.settings.shared.backlog](const caf::error&) {
    core().recipients_queued.add(-(*counted)[0]);
    core().recipients_deferred.add(-(*counted)[1]);
    core().recipients_waiting.add(-((*counted)[0] + (*counted)[1]));
    core().domain_actors.add(-1);
    for (const auto& [tenant, n] : *backlog) shared->add(tenant, -n);
  });
  self->set_down_handler([=](caf::down_msg& msg) { on_site_down(self, msg.source); });
  st.window.set_limits({st.settings.config->queue.horizon.count(),
                         st.settings.config->queue.max_in_memory_per_domain,
                         st.settings.config->queue.page});
  // Recovery: what the store holds as waiting for this domain, summed up; then pages of it.
  read_summary(self, false);
  return {
      [=](enqueue_atom, std::uint64_t batch, const std::vector<queued_recipient>& recipients) {
        auto& s = self->state;
        s.last_batch = std::max(s.last_batch, batch);
        for (const auto& r : recipients) add(self, r);
        process(self);
      },
      [=](stats_atom) { return domain_stats(self); },
      [=](caf::tick_atom, std::uint64_t) { check_idle(self); },
      [=](retire_atom) {
        spdlog::debug("domain.retired domain={}", self->state.domain);
        self->quit();
      },
      [=](crash_atom) {
        throw std::runtime_error("fault injection: crash requested for domain " +
                                 self->state.domain);
      },
      [=](wake_atom, std::uint64_t generation) {
        auto& s = self->state;
        if (generation != s.wake_generation) return;
        s.wake_at_ms = 0;
        process(self);
      },
      [=](credit_atom, std::uint64_t credit) { on_credit(self, credit); },
      [=](outcome_atom, job_outcome& outcome) { on_outcome(self, outcome); },
      [=](record_atom, std::vector<recipient_update>& updates, std::int32_t attempt) {
        --self->state.commits_in_flight;
        commit(self, std::move(updates), attempt);
      },
      [=](controls_atom) {
        // Controls changed, or the configuration was reloaded: look again.
        if (refresh_config(self->state.settings)) configure_domain(self->state);
        process(self);
      },
      [=](blocked_atom, const std::string& reason, std::int64_t until_ms) {
        auto& s = self->state;
        auto sender = caf::actor_cast<site_actor>(self->current_sender());
        for (auto& [source, l] : s.lanes) {
          if (l.site != sender) continue;
          l.blocked = reason;
          l.blocked_until_ms = until_ms;
          if (reason.empty()) l.demand_sent = false;
        }
        process(self);
      },
      [=](cancel_atom, id128 tenant, const std::string& reason) -> std::uint64_t {
        return cancel(self, tenant, reason);
      },
      [=](cancel_atom, const std::vector<queued_recipient>& list, const std::string& reason) -> std::uint64_t {
        return cancel_listed(self, list, reason);
      },
      [=](flush_atom) -> std::uint64_t {
        auto& s = self->state;
        auto now = unix_now_ms();
        std::uint64_t n = 0;
        for (auto& [id, w] : s.waiting) {
          if (w.in_flight) {
            // Its attempt is out: should it defer, it is due again at once, not by the schedule.
            w.flush_asked = true;
            continue;
          }
          if (w.ready || (w.next_attempt_at_ms <= now && !w.evicting)) continue;
          if (w.evicting) {
            w.evicting = false;
            s.evicting.erase(id);
          }
          w.next_attempt_at_ms = now;
          s.heap.emplace(now, id);
          ++n;
        }
        // Those only in the store: made due in the store; no page is read until that is written.
        std::uint64_t stored = 0;
        for (const auto& c : s.window.classes())
          if (!c.complete()) stored += c.waiting() - std::min(c.waiting(), c.in_memory);
        if (s.window.any_stored()) {
          s.window.flushed(now);
          s.flushing = true;
          flush_store(self, now);
        }
        if (n || stored) spdlog::info("domain.flushed domain={} recipients={} in_store={}", s.domain, n, stored);
        process(self);
        return n + stored;
      },
      [=](drain_atom) {
        self->state.draining = true;
        finish_drain_if_done(self);
      },
      [=](recover_atom) {
        auto& s = self->state;
        if (!s.loaded) return;  // the first summary is still out
        s.repair_wanted = true;
        start_read(self);
      },
      [=](load_atom, std::uint64_t generation) {
        auto& s = self->state;
        if (generation != s.page_check_generation) return;
        s.page_check_at_ms = 0;
        process(self);
      },
  };
}

}  // namespace

domain_actor spawn_domain(caf::actor_system& sys, caf::local_actor* parent, std::string domain,
                          store_actor store, resolver_actor resolver, egress_actor egress,
                          domains_actor supervisor, const node_settings& settings,
                          partition_grant claim) {
  return spawn_child(sys, parent, domain_behavior,
                     domain_start{std::move(domain), std::move(store), std::move(resolver),
                                  std::move(egress), std::move(supervisor), settings, claim});
}

}  // namespace petrel
