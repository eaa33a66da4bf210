// The site actor: the path from one egress source to one MX site. It owns the bounded ready
// queue and the SMTP sessions of that path:
// - credit: domains say how many jobs they have due (demand); the site grants credit only for
//   the room left in ready queue + loading + credit out, so nothing piles up unbounded here;
// - sessions: at most connection_limit, each taking at most max_deliveries_per_connection jobs
//   and waiting idle_timeout for more before QUIT;
// - when every MX host of the site fails to connect, the site is "down" for
//   delivery.site_failure_delay: its jobs are deferred at once instead of connecting again;
// - expiry is checked when a job arrives and again before a session takes it;
// - shaping (docs/shaping.md): a job goes to a session only within the site's message rate,
//   the source's rate and warm-up budget (shared by the source's sites), and when no control
//   suspends its site, source, domain or tenant; new connections within the connection rate
//   and the connection limit, which halves on 421s and refused connections and grows back by
//   one per `limit` deliveries (AIMD); response rules turn replies into suspensions,
//   throttling or bounces. Work a site cannot take for a while (suspended, warm-up spent) goes
//   back to its domains unattempted, with a notice so they send it through other sources.
#include <caf/all.hpp>
#include <spdlog/spdlog.h>

#include <deque>
#include <map>
#include <unordered_map>

#include "actors/actor_start.hpp"
#include "actors/actor_support.hpp"
#include "actors/policy/message_preparation.hpp"
#include "actors/policy/concurrency_control.hpp"
#include "actors/metrics.hpp"
#include "actors/policy/rate_limiter.hpp"
#include "actors/policy/response_rules.hpp"
#include "actors/services.hpp"
#include "actors/spawn.hpp"
#include "net/mail/template_message.hpp"

namespace petrel {

namespace {

// At most this many addresses are tried per connection attempt (Postfix: smtp_mx_address_limit).
constexpr std::size_t max_targets = 10;

struct session_entry {
  std::optional<delivery_job> current;  // the job the session is running
  std::optional<work_completion> parked;  // waiting for work
  std::chrono::steady_clock::time_point parked_at{};
};

// What a site actor is given when it starts (its spawn arguments).
struct site_start : source_path {
  route current_route;
  site_limits limits;
  node_settings settings;
};

struct site_state : site_start {
  // Templated messages read once (parsed, attachments decoded, templates compiled), by message:
  // a batch's copies render from one entry. Bounded: cleared when it holds 64.
  std::unordered_map<id128, std::shared_ptr<const template_copies>, id128_hash> template_sources;
  site_state() = default;
  rate_limiter message_limiter;
  rate_limiter connection_limiter;
  concurrency_control concurrency;
  std::optional<response_tracker> responses;
  // One idle sweep at a time closes sessions parked past delivery.idle_timeout: a timer per
  // park (one per delivered job under load) kept CAF's clock thread busy.
  bool idle_sweep_pending = false;
  double throttle = 1;  // response rule "throttle": rates and connections times this ...
  std::int64_t throttle_until_ms = 0;  // ... until then
  std::string blocked;  // why the site takes no work ("" none): suspended, warm-up budget
  std::int64_t blocked_until_ms = 0;
  std::string waiting_for;  // what held the last dispatch back (admin view)
  std::uint64_t wake_generation = 0;
  std::int64_t wake_at_ms = 0;
  preparation_settings preparation;  // from settings: VERP, unsubscribe links
  std::deque<delivery_work> ready;
  std::unordered_map<std::uint64_t, delivery_job> loading;
  std::uint64_t next_load = 0;
  // Loads finish in any order (the store has several readers), but jobs are sent in the order
  // the domains handed them out (priority, fair rotation): a load that finished early waits here
  // for the ones before it (nothing: that load's job was dropped or failed).
  std::map<std::uint64_t, std::optional<delivery_work>> finished_loads;
  std::uint64_t next_in_order = 1;
  std::uint64_t credit_out = 0;
  std::deque<caf::actor_addr> demand_order;
  std::unordered_map<caf::actor_addr, std::uint64_t> wanted;
  // Credit each domain holds; monitored so that a domain that dies gives its credit back.
  std::unordered_map<caf::actor_addr, std::uint64_t> credit_held;
  std::unordered_map<std::uint64_t, session_entry> sessions;
  std::uint64_t next_session = 0;
  std::int64_t down_until_ms = 0;
  std::string down_reason;
  static inline const char* name = "site";
};

using site_pointer = site_actor::stateful_pointer<site_state>;

counter& site_counter(const char* what) {
  return metrics().get_counter("petrel_site_events_total", "Site actor events", {{"event", what}});
}

// TLS-RPT style counts (RFC 8460's success/failure per policy) for MTA-STS enforced sites.
counter& sts_tls_counter(const char* result) {
  return metrics().get_counter("petrel_mta_sts_tls_sessions_total",
                               "TLS sessions to MTA-STS enforced MX hosts, by result",
                               {{"result", result}});
}

void send_outcome(site_pointer self, const delivery_job& job, job_outcome outcome) {
  outcome.job_id = job.job_id;
  outcome.attempt.source = self->state.source.name;
  outcome.attempt.sender_domain = job.sender_domain;
  auto owner = caf::actor_cast<domain_actor>(job.owner);
  if (owner) self->send(owner, outcome_atom::value, std::move(outcome));
}

// An outcome for every recipient of a job that was not attempted.
void fail_job(site_pointer self, const delivery_job& job, const std::string& reason, bool expired) {
  job_outcome outcome;
  for (const auto& id : job.recipient_ids) {
    recipient_result r;
    r.recipient_id = id;
    r.reply = reason;
    r.expired = expired;
    outcome.recipients.push_back(std::move(r));
  }
  send_outcome(self, job, std::move(outcome));
}

// A job that was not attempted and should be again soon (suspension, budget): its domain puts
// its recipients back as due, without counting an attempt.
void give_back(site_pointer self, const delivery_job& job) {
  send_outcome(self, job, job_outcome{});
}

bool is_down(site_pointer self) { return self->state.down_until_ms > unix_now_ms(); }

// The control that stops this site now, whatever the job: site, source, or source at site.
const control_record* site_control(site_pointer self, const control_snapshot& c, std::int64_t now) {
  auto& st = self->state;
  if (c.empty()) return nullptr;
  auto base = st.current_route.site;
  if (auto hash = base.find('#'); hash != std::string::npos) base.resize(hash);  // "#mta-sts"
  if (auto* x = c.find("site", base, now)) return x;
  if (auto* x = c.find("source", st.source.name, now)) return x;
  return c.find("source_site", st.source.name + "/" + base, now);
}

// The control that stops one job: its domain, its tenant, or its tenant at this site.
const control_record* job_control(site_pointer self, const control_snapshot& c,
                                  const delivery_job& job, std::int64_t now) {
  if (c.empty()) return nullptr;
  if (auto* x = c.find("domain", job.domain, now)) return x;
  auto tenant = job.tenant_id.str();
  if (auto* x = c.find("tenant", tenant, now)) return x;
  auto base = self->state.current_route.site;
  if (auto hash = base.find('#'); hash != std::string::npos) base.resize(hash);
  return c.find("tenant_site", tenant + "/" + base, now);
}

// Tells the domains that feed this site whether it takes work (reason "" = it does again).
void announce(site_pointer self, const std::string& reason, std::int64_t until_ms) {
  auto& st = self->state;
  if (st.blocked == reason && st.blocked_until_ms == until_ms) return;
  st.blocked = reason;
  st.blocked_until_ms = until_ms;
  if (!reason.empty())
    spdlog::info("site.blocked source={} site={} reason=\"{}\" until_ms={}", st.source.name,
                 st.current_route.site, reason, until_ms);
  for (const auto& [domain, held] : st.credit_held)
    if (auto handle = caf::actor_cast<domain_actor>(domain))
      self->send(handle, blocked_atom::value, reason, until_ms);
}

double throttle(site_pointer self, std::int64_t now) {
  auto& st = self->state;
  if (st.throttle_until_ms <= now) st.throttle = 1;
  return st.throttle;
}

std::uint32_t connection_limit_now(site_pointer self, std::int64_t now) {
  auto& st = self->state;
  auto limit = std::min(st.limits.connection_limit, st.concurrency.limit());
  return std::max<std::uint32_t>(1, static_cast<std::uint32_t>(limit * throttle(self, now)));
}

void configure_rates(site_pointer self, double factor) {
  auto& st = self->state;
  auto scale = [&](double r) { return r > 0 ? r * factor : 0; };
  auto burst = [](double r) { return std::max<std::uint32_t>(1, static_cast<std::uint32_t>(r)); };
  st.message_limiter.configure(scale(st.limits.message_rate), burst(scale(st.limits.message_rate)));
  st.connection_limiter.configure(scale(st.limits.connection_rate), burst(scale(st.limits.connection_rate)));
}

// A timer to look again when a wait is over.
void wake_at(site_pointer self, std::int64_t at_ms) {
  auto& st = self->state;
  if (st.wake_at_ms != 0 && st.wake_at_ms <= at_ms && st.wake_at_ms > unix_now_ms()) return;
  st.wake_at_ms = at_ms;
  auto delay = std::max<std::int64_t>(at_ms - unix_now_ms(), 1);
  self->delayed_send(self, std::chrono::milliseconds(delay), wake_atom::value, ++st.wake_generation);
}

void grant(site_pointer self) {
  auto& st = self->state;
  if (!st.blocked.empty()) return;  // suspended or out of budget: no new work
  auto capacity = std::max<std::uint64_t>(st.limits.ready_queue, 1);
  auto in_system = st.ready.size() + st.loading.size() + st.finished_loads.size() + st.credit_out;
  while (in_system < capacity && !st.demand_order.empty()) {
    auto domain = st.demand_order.front();
    st.demand_order.pop_front();
    auto it = st.wanted.find(domain);
    if (it == st.wanted.end()) continue;
    auto give = std::min<std::uint64_t>(it->second, capacity - in_system);
    st.wanted.erase(it);  // the domain asks again when it still has work after this grant
    if (give == 0) continue;
    auto handle = caf::actor_cast<domain_actor>(domain);
    if (!handle) continue;
    st.credit_out += give;
    st.credit_held[domain] += give;
    in_system += give;
    self->send(handle, credit_atom::value, give);
  }
}

session_plan plan_for(site_pointer self) {
  auto& st = self->state;
  const auto& d = st.settings.config->delivery;
  session_plan plan;
  for (const auto& host : st.current_route.hosts)
    for (const auto& address : host.addresses)
      if (plan.targets.size() < max_targets) plan.targets.push_back({host.name, address, host.port, host.tlsa});
  plan.source_name = st.source.name;
  plan.site_name = st.current_route.site;
  plan.bind_address = st.source.address;
  plan.ehlo_name = st.source.ehlo_name;
  plan.port = d.port;
  plan.tls = st.limits.tls;
  plan.verify_certificate = st.limits.verify_certificate;
  if (!st.current_route.relay.empty()) {
    // A relay of the routing table: its TLS mode and login, as this node configures it.
    if (const auto* relay = st.settings.config->routing->relay(st.current_route.relay)) {
      plan.tls = relay->tls;
      plan.verify_certificate = relay->verify_certificate;
      plan.auth_username = relay->username;
      plan.auth_password = relay->password;
    }
  }
  plan.max_deliveries = st.limits.max_deliveries_per_connection;
  plan.idle_timeout = d.idle_timeout;
  plan.timeouts = d;
  if (st.settings.shared.leases->clustered()) plan.leases = st.settings.shared.leases;
  return plan;
}

// Takes the next job that may go now: not expired (else its outcome), not held by a control
// (else back to its domain), within the rates and the warm-up budget (else it waits here, or
// for a spent budget goes back).
std::optional<delivery_work> take_ready(site_pointer self) {
  auto& st = self->state;
  auto now = unix_now_ms();
  auto controls = st.settings.shared.controls->get();
  if (auto* c = site_control(self, *controls, now)) {
    // Suspended: nothing leaves; what waits here goes back to be sent another way or later.
    announce(self, "suspended (" + c->kind + ")" + (c->reason.empty() ? "" : ": " + c->reason), c->until_ms);
    while (!st.ready.empty()) {
      give_back(self, st.ready.front().job);
      st.ready.pop_front();
    }
    st.waiting_for = "suspended";
    return std::nullopt;
  }
  if (st.blocked.rfind("suspended", 0) == 0) announce(self, "", 0);
  while (!st.ready.empty()) {
    auto& front = st.ready.front();
    if (front.job.expires_at_ms <= now) {
      fail_job(self, front.job, "expired while waiting for a connection", true);
      st.ready.pop_front();
      continue;
    }
    if (job_control(self, *controls, front.job, now)) {
      give_back(self, front.job);
      st.ready.pop_front();
      continue;
    }
    auto wait = st.message_limiter.try_acquire(std::chrono::steady_clock::now());
    if (wait.count() > 0) {
      st.waiting_for = "site rate";
      wake_at(self, now + std::chrono::duration_cast<std::chrono::milliseconds>(wait).count() + 1);
      return std::nullopt;
    }
    std::int64_t retry_at = 0;
    std::vector<std::string> mx_hosts;  // only for per-site warm-up budgets
    if (st.gate && !st.gate->site_warmups().empty())
      for (const auto& h : st.current_route.hosts) mx_hosts.push_back(h.name);
    switch (st.gate ? st.gate->try_take(now, retry_at, mx_hosts) : source_gate::verdict::go) {
      case source_gate::verdict::go:
        break;
      case source_gate::verdict::rate:
        st.waiting_for = "source rate";
        wake_at(self, retry_at);
        return std::nullopt;
      case source_gate::verdict::warmup:
        st.waiting_for = "warm-up budget";
        announce(self, "warm-up budget of " + st.source.name + " spent", retry_at);
        while (!st.ready.empty()) {
          give_back(self, st.ready.front().job);
          st.ready.pop_front();
        }
        wake_at(self, retry_at);
        return std::nullopt;
    }
    if (st.blocked.rfind("warm-up", 0) == 0) announce(self, "", 0);
    auto work = std::move(front);
    st.ready.pop_front();
    st.waiting_for.clear();
    return work;
  }
  return std::nullopt;
}

void dispatch(site_pointer self) {
  auto& st = self->state;
  if (is_down(self)) {
    while (!st.ready.empty()) {
      fail_job(self, st.ready.front().job, st.down_reason, false);
      st.ready.pop_front();
    }
  }
  // Parked sessions first: their connections are open already.
  for (auto& [id, s] : st.sessions) {
    if (st.ready.empty()) break;
    if (!s.parked) continue;
    auto work = take_ready(self);
    if (!work) break;
    s.current = work->job;
    auto completion = std::move(*s.parked);
    s.parked.reset();
    completion.fn(std::move(work));
  }
  auto now = unix_now_ms();
  while (!st.ready.empty()) {
    if (st.sessions.size() >= connection_limit_now(self, now)) {
      st.waiting_for = "connections";
      break;
    }
    auto wait = st.connection_limiter.try_acquire(std::chrono::steady_clock::now());
    if (wait.count() > 0) {
      st.waiting_for = "connection rate";
      wake_at(self, now + std::chrono::duration_cast<std::chrono::milliseconds>(wait).count() + 1);
      break;
    }
    auto work = take_ready(self);
    if (!work) break;
    auto id = ++st.next_session;
    st.sessions[id].current = work->job;
    st.runtime->start_session(st.runtime, caf::actor_cast<site_actor>(self), id, plan_for(self),
                       std::move(*work));
  }
  grant(self);
}

// Response rules and adaptive concurrency, from one job's outcome.
void learn_from(site_pointer self, const delivery_job& job, job_outcome& outcome) {
  auto& st = self->state;
  auto now = unix_now_ms();
  bool overload = false, success = false;
  for (auto& r : outcome.recipients) {
    if (r.code == 421) overload = true;
    if (r.code >= 200 && r.code < 300) success = true;
    if (!st.responses || r.code == 0 || (r.code >= 200 && r.code < 300)) continue;
    for (auto& d : st.responses->observe(r.code, r.enhanced, r.reply, outcome.attempt.mx_host,
                                         job.tenant_id.str(), now)) {
      auto base = st.current_route.site;
      if (auto hash = base.find('#'); hash != std::string::npos) base.resize(hash);
      switch (d.action) {
        case response_action::bounce:
          r.force_bounce = true;
          break;
        case response_action::throttle:
          st.throttle = std::min(st.throttle, d.factor);
          st.throttle_until_ms = std::max(st.throttle_until_ms, d.until_ms);
          configure_rates(self, st.throttle);
          self->delayed_send(self, std::chrono::milliseconds(d.until_ms - now + 1), wake_atom::value,
                             ++st.wake_generation);
          metrics().get_counter("petrel_response_rule_actions_total", "Response rules that fired",
                                {{"action", "throttle"}}).inc();
          spdlog::warn("site.throttled source={} site={} rule=\"{}\" factor={} until_ms={}",
                       st.source.name, st.current_route.site, d.rule, st.throttle, d.until_ms);
          break;
        case response_action::suspend_site:
        case response_action::suspend_tenant: {
          control_record c;
          if (d.action == response_action::suspend_site) {
            c.kind = "source_site";
            c.target = st.source.name + "/" + base;
          } else {
            c.kind = "tenant_site";
            c.target = job.tenant_id.str() + "/" + base;
          }
          c.until_ms = d.until_ms;
          c.reason = "response rule " + d.rule + ": " + std::to_string(r.code) + " " +
                     r.reply.substr(0, 200);
          if (st.settings.shared.directory)
            if (auto controls = st.settings.shared.directory->get()->controls)
              self->send(controls, suspend_atom::value, std::move(c), d.rule);
          break;
        }
      }
    }
  }
  if (st.settings.config->delivery.adaptive_concurrency) {
    if (overload) {
      st.concurrency.on_overload();
      metrics().get_counter("petrel_site_concurrency_decreases_total",
                            "Connection limits halved after 421s or refused connections").inc();
    } else if (success) {
      st.concurrency.on_success();
    }
  }
}

// Turns loaded content into work (actors/policy/message_preparation): recipients suppressed
// since they were queued travel with the job's outcome; VERP; List-Unsubscribe, then signed
// (DKIM) for this recipient. False when no recipient is left to send to (the outcome is sent).
bool prepare(site_pointer self, delivery_work& work, delivery_content content) {
  auto& st = self->state;
  auto tenant = content.tenant_id;
  auto from_domain = std::move(content.from_domain);
  work.job.sender_domain = from_domain;
  bool templated = content.templated;
  if (templated) {
    // The recipient's own copy (jobs of templated messages have one recipient each), from the
    // message's source read once.
    auto& cached = st.template_sources[work.job.message_id];
    std::string unreadable;
    if (!cached) {
      auto read = template_copies::read(content.content);
      if (read) cached = std::make_shared<const template_copies>(std::move(read.value()));
      else unreadable = read.error();
    }
    auto copies = cached;
    if (!copies) st.template_sources.erase(work.job.message_id);
    else if (st.template_sources.size() > 64) st.template_sources.clear();
    // A tracked copy gets the recipient's tracking URLs (with tracking off now: its links as
    // they were, no pixel).
    const auto& secret = st.settings.config->tracking_secret;
    std::optional<copy_tracking> keys;
    if (copies && copies->tracked() && !secret.empty() && !work.job.recipient_ids.empty())
      keys = copy_tracking{secret, work.job.message_id, work.job.recipient_ids.front()};
    auto copy = !copies ? parsed<built_message>::failure(unreadable)
                : content.personal.size() == 1
                    ? copies->render(content.personal.front(), keys ? &*keys : nullptr)
                    : parsed<built_message>::failure("a templated message's job has " +
                                                     std::to_string(content.personal.size()) + " recipients, not one");
    if (!copy) {
      // Not a passing condition: the same source and data render the same way next time.
      job_outcome outcome;
      for (const auto& id : work.job.recipient_ids) {
        recipient_result r;
        r.recipient_id = id;
        r.reply = "the message could not be rendered: " + copy.error();
        r.force_bounce = true;
        outcome.recipients.push_back(std::move(r));
      }
      send_outcome(self, work.job, std::move(outcome));
      return false;
    }
    content.content = std::move(copy.value().content);
  }
  auto p = prepare_message(st.preparation, std::move(work.job.recipient_ids), std::move(content));
  for (auto& s : p.suppressed) {
    recipient_result r;
    r.recipient_id = s.recipient_id;
    r.suppressed = true;
    r.address = std::move(s.address);
    r.reply = "the address is suppressed";
    work.skipped.push_back(std::move(r));
    site_counter("suppressed").inc();
  }
  if (p.recipient_ids.empty()) {
    job_outcome outcome;
    outcome.recipients = std::move(work.skipped);
    send_outcome(self, work.job, std::move(outcome));
    return false;
  }
  work.job.recipient_ids = std::move(p.recipient_ids);
  work.addresses = std::move(p.addresses);
  work.needs_smtputf8 = p.needs_smtputf8;
  work.mail_from = std::move(p.mail_from);
  if (p.unsubscribe_added || templated) {
    // RFC 8058: the signature must cover both fields; the message was left unsigned at
    // submission for that reason (see signer_pool.cpp). A templated copy is signed as made.
    auto table = st.settings.shared.signing->get();
    auto it = table->find(signing_key(from_domain, tenant));
    if (it != table->end()) add_dkim_signatures(it->second, p.content);
  }
  work.content = std::make_shared<const std::string>(std::move(p.content));
  return true;
}

// A load has finished: its work (or nothing) takes its place in hand-out order, and what is
// complete from the front moves to the ready queue.
void finish_load(site_pointer self, std::uint64_t local, std::optional<delivery_work> work) {
  auto& st = self->state;
  if (local == st.next_in_order && st.finished_loads.empty()) {  // the usual case: in order
    if (work) st.ready.push_back(std::move(*work));
    ++st.next_in_order;
    return;
  }
  st.finished_loads.emplace(local, std::move(work));
  while (!st.finished_loads.empty() && st.finished_loads.begin()->first == st.next_in_order) {
    auto front = st.finished_loads.extract(st.finished_loads.begin());
    if (front.mapped()) st.ready.push_back(std::move(*front.mapped()));
    ++st.next_in_order;
  }
}

void load(site_pointer self, delivery_job job) {
  auto& st = self->state;
  auto local = ++st.next_load;
  auto message_id = job.message_id;
  auto recipients = job.recipient_ids;
  st.loading.emplace(local, std::move(job));
  self->request(st.store, store_answers, load_atom::value, message_id,
                recipients)
      .then(
          [=](delivery_content& content) {
            auto& s = self->state;
            auto it = s.loading.find(local);
            if (it == s.loading.end()) return;
            delivery_work work;
            work.job = std::move(it->second);
            s.loading.erase(it);
            if (!prepare(self, work, std::move(content))) {
              finish_load(self, local, std::nullopt);
              dispatch(self);
              grant(self);
              return;
            }
            finish_load(self, local, std::move(work));
            dispatch(self);
          },
          [=](caf::error& e) {
            auto& s = self->state;
            auto it = s.loading.find(local);
            if (it == s.loading.end()) return;
            auto job = std::move(it->second);
            s.loading.erase(it);
            fail_job(self, job, "the message could not be loaded: " + self->system().render(e), false);
            finish_load(self, local, std::nullopt);
            dispatch(self);
            grant(self);
          });
}

// A domain wants this many jobs: remembered in arrival order, credit granted as the site can send.
void on_demand(site_pointer self, std::uint64_t count) {
  auto& s = self->state;
  auto sender = self->current_sender();
  if (!sender) return;
  auto addr = caf::actor_cast<caf::actor_addr>(sender);
  if (!s.credit_held.count(addr)) {
    s.credit_held[addr] = 0;
    self->monitor(addr);
  }
  if (!s.wanted.count(addr)) s.demand_order.push_back(addr);
  s.wanted[addr] = count;
  grant(self);
}

// Jobs against granted credit: expired, failed while the site is down, given back while blocked, else loaded.
void on_jobs(site_pointer self, std::uint64_t granted, std::vector<delivery_job>& jobs) {
  auto& s = self->state;
  s.credit_out -= std::min(s.credit_out, granted);
  if (auto sender = self->current_sender()) {
    auto& held = s.credit_held[caf::actor_cast<caf::actor_addr>(sender)];
    held -= std::min(held, granted);
  }
  auto now = unix_now_ms();
  for (auto& job : jobs) {
    if (job.expires_at_ms <= now)
      fail_job(self, job, "expired before a connection was available", true);
    else if (is_down(self))
      fail_job(self, job, s.down_reason, false);
    else if (!s.blocked.empty())
      give_back(self, job);
    else
      load(self, std::move(job));
  }
  grant(self);
}

// A session could not connect: its job fails (retried later), concurrency backs off, and the site may go down for site_failure_delay.
void on_connect_failed(site_pointer self, std::uint64_t session, const std::string& reason) {
  auto& s = self->state;
  auto it = s.sessions.find(session);
  if (it == s.sessions.end()) return;
  site_counter("connect_failed").inc();
  if (s.settings.config->delivery.adaptive_concurrency) s.concurrency.on_overload();
  if (s.current_route.sts_enforced) sts_tls_counter("failure").inc();
  if (it->second.current) fail_job(self, *it->second.current, reason, false);
  s.sessions.erase(it);
  const auto delay = s.settings.config->delivery.site_failure_delay;
  if (delay.count() > 0) {
    s.down_until_ms = unix_now_ms() + delay.count();
    s.down_reason = reason;
    spdlog::warn("site.down source={} site={} for_ms={} reason=\"{}\"", s.source.name,
                 s.current_route.site, delay.count(), reason);
  }
  dispatch(self);
}

// A session asks for its next job: given one ready, else parked until one is (or until idle_timeout).
void on_next(site_pointer self, std::uint64_t session, work_completion& completion) {
  auto& s = self->state;
  auto it = s.sessions.find(session);
  if (it == s.sessions.end() || is_down(self)) {
    completion.fn(std::nullopt);
    return;
  }
  if (auto work = take_ready(self)) {
    it->second.current = work->job;
    completion.fn(std::move(work));
    grant(self);
    return;
  }
  it->second.parked = std::move(completion);
  it->second.parked_at = self->clock().now();
  if (!s.idle_sweep_pending) {
    s.idle_sweep_pending = true;
    self->delayed_send(self, s.settings.config->delivery.idle_timeout, caf::tick_atom::value, std::uint64_t{0});
  }
}

// Sessions parked for idle_timeout say QUIT; the sweep comes again when the next one is due.
void sweep_idle_sessions(site_pointer self) {
  auto& s = self->state;
  s.idle_sweep_pending = false;
  auto now = self->clock().now();
  auto timeout = s.settings.config->delivery.idle_timeout;
  std::optional<std::chrono::steady_clock::duration> next;
  for (auto& [id, session] : s.sessions) {
    if (!session.parked) continue;
    auto idle = now - session.parked_at;
    if (idle >= timeout) {
      auto completion = std::move(*session.parked);
      session.parked.reset();
      completion.fn(std::nullopt);  // idle too long: the session says QUIT
    } else if (!next || timeout - idle < *next) {
      next = timeout - idle;
    }
  }
  if (next) {
    s.idle_sweep_pending = true;
    self->delayed_send(self, std::chrono::duration_cast<std::chrono::milliseconds>(*next) + std::chrono::milliseconds(1),
                       caf::tick_atom::value, std::uint64_t{0});
  }
}

site_stats stats_of(site_pointer self) {
  auto& s = self->state;
  auto now = unix_now_ms();
  site_stats out;
  out.source = s.source.name;
  out.site = s.current_route.site;
  out.sessions = s.sessions.size();
  out.connection_limit = connection_limit_now(self, now);
  out.max_connection_limit = s.limits.connection_limit;
  out.ready = s.ready.size();
  out.loading = s.loading.size() + s.finished_loads.size();
  out.credit_out = s.credit_out;
  out.waiting_for = is_down(self) ? "down: " + s.down_reason
                    : !s.blocked.empty() ? s.blocked
                                         : (s.ready.empty() ? std::string() : s.waiting_for);
  out.blocked_until_ms = s.blocked_until_ms;
  out.message_rate = s.limits.message_rate * throttle(self, now);
  return out;
}

// A reload: the site's limits ([[delivery.sites]]) and response rules from the new
// configuration. Sessions already open keep their plan; throttles and halved concurrency stay.
void reconfigure_site(site_pointer self, const node_config& before) {
  auto& st = self->state;
  const auto& cfg = *st.settings.config;
  st.limits = site_limits_for(cfg.delivery, st.current_route);
  st.concurrency.configure(st.limits.connection_limit);
  configure_rates(self, throttle(self, unix_now_ms()));  // a response rule's throttle stays
  if (cfg.responses != before.responses) {
    st.responses.reset();
    if (cfg.responses && !cfg.responses->empty()) st.responses.emplace(cfg.responses);
  }
  spdlog::debug("site.reconfigured source={} site={} connection_limit={} message_rate={}", st.source.name,
                st.current_route.site, st.limits.connection_limit, st.limits.message_rate);
}

site_actor::behavior_type site_behavior(site_pointer self, site_start start) {
  auto& st = start_actor(self);
  static_cast<site_start&>(st) = std::move(start);
  refresh_config(st.settings);
  const auto& cfg = *st.settings.config;
  st.preparation = {cfg.bounces.verp_domain, cfg.bounce_secret, cfg.bounces.unsubscribe_base_url};
  st.concurrency.configure(st.limits.connection_limit);
  configure_rates(self, 1);
  if (st.settings.config->responses && !st.settings.config->responses->empty()) st.responses.emplace(st.settings.config->responses);
  spdlog::debug("site.started source={} site={} connection_limit={}", st.source.name,
                st.current_route.site, st.limits.connection_limit);
  self->set_down_handler([=](caf::down_msg& msg) {
    // A domain actor ended (retired or crashed): its unused credit returns to the pool.
    auto& s = self->state;
    auto it = s.credit_held.find(msg.source);
    if (it == s.credit_held.end()) return;
    s.credit_out -= std::min(s.credit_out, it->second);
    s.credit_held.erase(it);
    s.wanted.erase(msg.source);
    grant(self);
  });
  return {
      [=](demand_atom, std::uint64_t count) { on_demand(self, count); },
      [=](jobs_atom, std::uint64_t granted, std::vector<delivery_job>& jobs) {
        on_jobs(self, granted, jobs);
      },
      [=](route_atom, route& r) {
        if (r.status == route_status::ok && !r.hosts.empty()) self->state.current_route = std::move(r);
      },
      [=](outcome_atom, std::uint64_t session, job_outcome& outcome) {
        auto& s = self->state;
        auto it = s.sessions.find(session);
        if (it == s.sessions.end() || !it->second.current) return;
        auto job = std::move(*it->second.current);
        it->second.current.reset();
        if (s.current_route.sts_enforced && outcome.attempt.tls) sts_tls_counter("success").inc();
        learn_from(self, job, outcome);
        send_outcome(self, job, std::move(outcome));
      },
      [=](closed_atom, std::uint64_t session, const std::string& reason) {
        auto& s = self->state;
        auto it = s.sessions.find(session);
        if (it == s.sessions.end()) return;
        if (it->second.current)  // ended in the middle of a job: outcome unknown, try again
          fail_job(self, *it->second.current, "the SMTP session ended: " + reason, false);
        s.sessions.erase(it);
        dispatch(self);
      },
      [=](connfail_atom, std::uint64_t session, const std::string& reason) {
        on_connect_failed(self, session, reason);
      },
      [=](next_atom, std::uint64_t session, work_completion& completion) {
        on_next(self, session, completion);
      },
      [=](caf::tick_atom, std::uint64_t) { sweep_idle_sessions(self); },
      [=](stats_atom) { return stats_of(self); },
      [=](controls_atom) {
        // Controls changed, or the configuration was reloaded: its limits, then look again.
        auto& s = self->state;
        auto before = s.settings.config;
        if (refresh_config(s.settings)) reconfigure_site(self, *before);
        dispatch(self);
      },
      [=](wake_atom, std::uint64_t generation) {
        auto& s = self->state;
        if (generation != s.wake_generation) return;
        s.wake_at_ms = 0;
        auto now = unix_now_ms();
        if (s.throttle < 1 && s.throttle_until_ms <= now) {
          s.throttle = 1;
          configure_rates(self, 1);
        }
        if (!s.blocked.empty() && s.blocked_until_ms != 0 && s.blocked_until_ms <= now)
          announce(self, "", 0);
        dispatch(self);
      },
  };
}

}  // namespace

site_actor spawn_site(caf::actor_system& sys, caf::local_actor* parent,
                      std::shared_ptr<delivery_runtime> runtime, store_actor store,
                      egress_source source, std::shared_ptr<source_gate> gate, route initial,
                      site_limits limits, const node_settings& settings) {
  return spawn_child(sys, parent, site_behavior,
                     site_start{{std::move(runtime), std::move(store), std::move(source), std::move(gate)},
                                std::move(initial), limits, settings});
}

}  // namespace petrel
