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
//   nothing; a recipient confirmed delivered is never loaded again.
#include <caf/all.hpp>

#include <array>
#include <spdlog/spdlog.h>

#include <queue>
#include <random>
#include <unordered_map>
#include <unordered_set>

#include <fnmatch.h>

#include <map>

#include "actors/actor_support.hpp"
#include "actors/policy/event_data.hpp"
#include "actors/delivery_log.hpp"
#include "actors/policy/fair_queue.hpp"
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

struct waiting_recipient {
  id128 message_id;
  id128 tenant_id;
  recipient_state state = recipient_state::queued;
  std::uint32_t attempts = 0;
  std::int64_t next_attempt_at_ms = 0;
  bool in_flight = false;  // in a job at the site
  bool ready = false;      // in a lane's queue
  std::string pool;
  int priority = 0;
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

// How many times a failed commit of outcomes is retried, one second apart.
constexpr std::int32_t store_retries = 60;

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
  std::uint64_t idle_generation = 0;  // bumped by every change; stale idle timers are ignored
  bool loaded = false;
  // Recipients settled (final) whose commit is not confirmed yet, and, while a repair load
  // is out, every recipient settled since it was sent: that load may have read them before
  // their commit, as still waiting, and must not bring them back.
  std::unordered_set<id128, id128_hash> unconfirmed;
  std::optional<std::unordered_set<id128, id128_hash>> repair_excluded;
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

void add(domain_pointer self, const queued_recipient& r) {
  auto& st = self->state;
  auto [it, inserted] = st.waiting.try_emplace(r.recipient_id);
  if (!inserted) return;  // already known (recovery and enqueue can overlap)
  it->second.message_id = r.message_id;
  it->second.tenant_id = r.tenant_id;
  it->second.state = r.state;
  it->second.attempts = r.attempts;
  it->second.next_attempt_at_ms = r.next_attempt_at_ms;
  it->second.pool = r.pool;
  it->second.priority = r.priority;
  st.heap.emplace(r.next_attempt_at_ms, r.recipient_id);
  count_waiting(st, r.state, 1);
  ++(*st.backlog)[r.tenant_id];
  st.settings.shared.backlog->add(r.tenant_id, 1);
}

void forget(domain_pointer self, const id128& id) {
  auto& st = self->state;
  auto it = st.waiting.find(id);
  if (it == st.waiting.end()) return;
  auto tenant = it->second.tenant_id;
  count_waiting(st, it->second.state, -1);
  st.waiting.erase(it);
  auto b = st.backlog->find(tenant);
  if (b != st.backlog->end() && --b->second == 0) st.backlog->erase(b);
  st.settings.shared.backlog->add(tenant, -1);
}

void arm_idle_timer(domain_pointer self) {
  auto& st = self->state;
  ++st.idle_generation;
  if (st.waiting.empty() && st.loaded)
    self->delayed_send(self, st.settings.config->actors.domain_idle_timeout, caf::tick_atom::value,
                       st.idle_generation);
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

// In a cluster every update carries the partition's epoch: the store refuses it once another
// node has claimed the partition, and then this actor stops (the new owner has the domain).
void commit(domain_pointer self, std::vector<recipient_update> updates, std::int32_t attempt = 0) {
  if (updates.empty()) return;
  auto& st = self->state;
  for (auto& u : updates) {
    u.partition = st.claim.partition;
    u.epoch = st.claim.epoch;
    if (is_final(u.state)) {
      st.unconfirmed.insert(u.recipient_id);
      if (st.repair_excluded) st.repair_excluded->insert(u.recipient_id);
    }
  }
  ++st.commits_in_flight;
  self->request(st.store, st.settings.config->storage.request_timeout, record_atom::value, updates)
      .then([=](caf::ok_atom) {
              --self->state.commits_in_flight;
              for (const auto& u : updates) self->state.unconfirmed.erase(u.recipient_id);
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
              if (attempt >= store_retries) {
                for (const auto& u : updates) self->state.unconfirmed.erase(u.recipient_id);
                finish_drain_if_done(self);
                spdlog::error("domain.outcomes_lost domain={} count={} error=\"{}\"",
                              self->state.domain, updates.size(), self->system().render(e));
                return;
              }
              spdlog::warn("domain.commit_failed domain={} count={} retry_in_ms=1000 error=\"{}\"",
                           self->state.domain, updates.size(), self->system().render(e));
              ++self->state.commits_in_flight;  // until the retry sends them again
              self->delayed_send(self, std::chrono::seconds(1), record_atom::value,
                                 std::move(updates), attempt + 1);
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
  if (!classifier) return classification{bounce_category::other, r.code >= 500, r.enhanced, -1};
  return classifier->classify(r.code, r.enhanced, r.reply, where ? where->mx_host : std::string());
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

recipient_update settle(domain_pointer self, const id128& id, waiting_recipient& w,
                        const recipient_result& r, const attempt_details* where) {
  auto& st = self->state;
  auto now = unix_now_ms();
  recipient_update u;
  u.recipient_id = id;
  u.event.id = new_id();
  u.event.tenant_id = w.tenant_id;
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
  if (u.state == recipient_state::suppressed) {
    // Suppressed after it was queued: final, not attempted.
    u.event.type = "suppressed";
    u.event.data_json = event_data::suppressed_at_delivery(w.attempts);
    outcome_counter("suppressed").inc();
    core().count_outcome("suppressed", st.domain, w.tenant_id.str(), nullptr);
    return u;
  }
  auto next = decided.next_attempt_at_ms;
  const auto& failure = decided.failure;
  u.next_attempt_at_ms = next;
  u.event.type = std::string(to_string(u.state));
  u.event.data_json = attempt_data(u.attempts, &r, where, next,
                                 u.state == recipient_state::expired && !r.expired
                                     ? "past max_age after: " + u.last_reply
                                     : (r.code ? std::string() : r.reply),
                                 failure ? &*failure : nullptr);
  outcome_counter(u.event.type.c_str()).inc();
  core().count_outcome(u.event.type, st.domain, w.tenant_id.str(),
                       failure ? std::string(to_string(failure->category)).c_str() : nullptr);
  if (failure && u.state != recipient_state::deferred) learn(self, u, r, *failure);
  if (u.state == recipient_state::deferred) {
    if (w.state != recipient_state::deferred) {
      count_waiting(st, w.state, -1);
      count_waiting(st, recipient_state::deferred, 1);
    }
    w.state = recipient_state::deferred;
    w.attempts = u.attempts;
    w.next_attempt_at_ms = next;
    w.in_flight = false;
    st.heap.emplace(next, id);
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
  const auto& key = route_key_of(self, w.tenant_id);
  auto source = choose_source(self, w.pool, key, avoid);
  w.ready = true;
  lane_for(st, source, key).queue.push(id, w.message_id, w.tenant_id, w.priority,
                                       st.settings.shared.weights->weight(w.tenant_id));
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
// reports hosts outside the policy. False when an enforced policy leaves no host.
bool apply_mta_sts(domain_pointer self, route& r) {
  auto& st = self->state;
  if (r.sts_mode.empty()) return true;
  if (const auto* policy = site_policy_for(st.settings.config->delivery, r); policy && policy->mta_sts == 0)
    return true;  // turned off for this site
  std::vector<mx_host> matching;
  for (const auto& h : r.hosts)
    if (mta_sts_any_matches(r.sts_mx, h.name)) matching.push_back(h);
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
    if (!w.in_flight && (tenant.empty() || w.tenant_id == tenant)) ids.push_back(id);
  for (auto& [source, l] : st.lanes)
    l.queue.drain([&](const id128& t) { return tenant.empty() || t == tenant; });
  std::vector<recipient_update> updates;
  for (const auto& id : ids) {
    auto& w = st.waiting[id];
    recipient_update u;
    u.recipient_id = id;
    u.state = recipient_state::cancelled;
    u.attempts = w.attempts;
    u.last_reply = "cancelled by an operator" + (reason.empty() ? std::string() : ": " + reason);
    u.event.id = new_id();
    u.event.tenant_id = w.tenant_id;
    u.event.message_id = w.message_id;
    u.event.recipient_id = id;
    u.event.type = "cancelled";
    u.event.at_ms = now;
    u.event.data_json = event_data::cancelled("admin", reason);
    core().count_outcome("cancelled", st.domain, w.tenant_id.str(), nullptr);
    updates.push_back(std::move(u));
    forget(self, id);
  }
  if (!ids.empty())
    spdlog::info("domain.cancelled domain={} tenant={} recipients={}", st.domain,
                 tenant.empty() ? "(all)" : tenant.str(), ids.size());
  commit(self, std::move(updates));
  arm_idle_timer(self);
  return ids.size();
}

domain_queue_stats domain_stats(domain_pointer self) {
  auto& s = self->state;
  auto now = unix_now_ms();
  domain_queue_stats out;
  out.domain = s.domain;
  std::unordered_map<id128, std::uint64_t, id128_hash> tenants;
  for (const auto& [id, r] : s.waiting) {
    if (r.state == recipient_state::deferred)
      ++out.deferred;
    else
      ++out.queued;
    if (r.in_flight) ++out.in_flight;
    if (r.ready) ++out.due;
    ++tenants[r.tenant_id];
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

domain_actor::behavior_type domain_behavior(domain_pointer self, domain_start start) {
  auto& st = start_actor(self);
  static_cast<domain_start&>(st) = std::move(start);
  const auto& d = st.settings.config->delivery;
  st.schedule = retry_schedule(d.retry_schedule, d.retry_jitter, d.max_age);
  for (const auto& policy : d.domains)  // the first matching [[delivery.domains]] applies
    if (fnmatch(policy.match.c_str(), st.domain.c_str(), FNM_CASEFOLD) == 0) {
      auto r = policy.message_rate.per_second;
      st.limiter.configure(r, std::max<std::uint32_t>(1, static_cast<std::uint32_t>(r)));
      st.tenant_rate = policy.tenant_rate.per_second;
      break;
    }
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
  // Recovery: everything the store holds as waiting for this domain.
  self->request(st.store, st.settings.config->storage.request_timeout, load_atom::value, st.domain, false)
      .then(
          [=](std::vector<queued_recipient>& recipients) {
            for (const auto& r : recipients) add(self, r);
            self->state.loaded = true;
            self->send(self->state.supervisor, ready_atom::value, self->state.domain);
            spdlog::debug("domain.loaded domain={} waiting={}", self->state.domain,
                          self->state.waiting.size());
            process(self);
            arm_idle_timer(self);
          },
          [=](caf::error& e) {
            // Without its recipients this actor must not run; the supervisor retries.
            spdlog::error("domain.load_failed domain={} error=\"{}\"", self->state.domain,
                          self->system().render(e));
            self->quit(e);
          });
  return {
      [=](enqueue_atom, std::uint64_t batch, const std::vector<queued_recipient>& recipients) {
        auto& s = self->state;
        s.last_batch = std::max(s.last_batch, batch);
        for (const auto& r : recipients) add(self, r);
        process(self);
      },
      [=](stats_atom) { return domain_stats(self); },
      [=](caf::tick_atom, std::uint64_t generation) {
        auto& s = self->state;
        if (generation != s.idle_generation || !s.waiting.empty() || !s.jobs.empty()) return;
        self->send(s.supervisor, retire_atom::value, s.domain, s.last_batch);
      },
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
      [=](controls_atom) { process(self); },
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
      [=](flush_atom) -> std::uint64_t {
        auto& s = self->state;
        auto now = unix_now_ms();
        std::uint64_t n = 0;
        for (auto& [id, w] : s.waiting) {
          if (w.in_flight || w.ready || w.next_attempt_at_ms <= now) continue;
          w.next_attempt_at_ms = now;
          s.heap.emplace(now, id);
          ++n;
        }
        if (n) spdlog::info("domain.flushed domain={} recipients={}", s.domain, n);
        process(self);
        return n;
      },
      [=](drain_atom) {
        self->state.draining = true;
        finish_drain_if_done(self);
      },
      [=](recover_atom) {
        auto& s = self->state;
        if (!s.loaded || s.repair_excluded) return;  // the first load, or a repair, is out
        s.repair_excluded.emplace(s.unconfirmed);
        self->request(s.store, s.settings.config->storage.request_timeout, load_atom::value,
                      s.domain, true)
            .then(
                [=](std::vector<queued_recipient>& recipients) {
                  auto& s = self->state;
                  std::size_t added = 0;
                  for (const auto& r : recipients) {
                    if (s.repair_excluded->count(r.recipient_id) || s.unconfirmed.count(r.recipient_id) ||
                        s.waiting.count(r.recipient_id))
                      continue;
                    add(self, r);
                    ++added;
                  }
                  s.repair_excluded.reset();
                  if (added == 0) return;
                  spdlog::info("domain.repaired domain={} recipients={}", s.domain, added);
                  process(self);
                },
                [=](caf::error& e) {
                  self->state.repair_excluded.reset();
                  spdlog::warn("domain.repair_failed domain={} error=\"{}\"", self->state.domain,
                               self->system().render(e));
                });
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
