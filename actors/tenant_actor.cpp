// The tenant actor: one per sender account. It enforces the tenant's rate limit (GCRA, see
// rate_limiter.hpp) and suspension, stamps the tenant on the message, marks recipients the
// tenant has suppressed, and hands the message to the signers (DKIM), which pass it on to
// ingest.
//
// It keeps the tenant's suppression list and soft-bounce streaks in memory, loaded from the
// store when it starts; submissions that arrive before the list is loaded wait for it. Every
// change is written to the store first and applied here after the commit. The list here is
// the submission-time check; the site checks the store again before each attempt, which also
// covers suppressions added by other nodes of a cluster.
//
// The limiter may reset on restart: erring toward letting a burst through once is harmless.
#include <caf/all.hpp>
#include <spdlog/spdlog.h>

#include <cmath>
#include <deque>
#include <unordered_map>

#include "actors/actor_support.hpp"
#include "actors/policy/message_preparation.hpp"
#include "actors/policy/sandbox.hpp"
#include "actors/metrics.hpp"
#include "actors/policy/rate_limiter.hpp"
#include "actors/rate_limit_error.hpp"
#include "actors/services.hpp"
#include "actors/spawn.hpp"

namespace petrel {

namespace {

struct suppression_entry {
  std::string reason;
  std::int64_t expires_at_ms = 0;  // 0: never
};

struct streak_entry {
  std::uint32_t count = 0;
  std::int64_t first_at_ms = 0;
};

struct pending_submission {
  message_record message;
  caf::typed_response_promise<submit_receipt> promise;
};

// Submissions held while the suppression list loads; past this, 503 at once.
constexpr std::size_t max_pending_submissions = 10'000;

// What the tenant actor is given when it starts (its spawn arguments).
struct tenant_start {
  tenant_record record;
  store_actor store;
  signer_actor signers;
  node_settings settings;
};

struct tenant_state : tenant_start {
  // Not an aggregate: CAF would otherwise try to build it from the actor pointer (C++20).
  tenant_state() = default;
  rate_limiter limiter;
  std::uint32_t share_of = 1;  // the live nodes the rate is shared with (cluster)
  bool loaded = false;
  std::chrono::milliseconds load_backoff{500};
  std::unordered_map<std::string, suppression_entry> suppressions;  // by suppression_key
  std::unordered_map<std::string, streak_entry> streaks;
  std::deque<pending_submission> pending;
  static inline const char* name = "tenant";
};

using tenant_pointer = tenant_actor::stateful_pointer<tenant_state>;

counter& suppressed_counter(const char* stage) {
  return metrics().get_counter("petrel_recipients_suppressed_total",
                               "Recipients not sent to because they are suppressed",
                               {{"stage", stage}});
}

counter& suppressions_added(const std::string& reason) {
  return metrics().get_counter("petrel_suppressions_added_total",
                               "Addresses suppressed, by reason", {{"reason", reason}});
}

// The tenant's rate and burst; in a cluster this node's share of them (rate / live nodes): the
// shares add up to the tenant's rate across the cluster when its requests are spread over the
// nodes, as a load balancer spreads them (docs/cluster.md, "A tenant's rate").
void configure(tenant_pointer self, const tenant_settings& defaults) {
  auto& st = self->state;
  auto& r = st.record;
  double rate = r.rate_per_second > 0 ? r.rate_per_second : defaults.default_rate.per_second;
  std::uint32_t burst = r.burst > 0 ? r.burst : defaults.default_burst;
  st.share_of = std::max<std::uint32_t>(1, st.settings.shared.live_nodes->load());
  if (st.share_of > 1) {
    rate /= st.share_of;
    burst = std::max<std::uint32_t>(1, (burst + st.share_of - 1) / st.share_of);
  }
  st.limiter.configure(rate, burst);
}

// The reason an address is suppressed now, or null.
const suppression_entry* suppressed(tenant_pointer self, const std::string& key, std::int64_t now) {
  auto& st = self->state;
  auto it = st.suppressions.find(key);
  if (it == st.suppressions.end()) return nullptr;
  if (it->second.expires_at_ms != 0 && it->second.expires_at_ms <= now) {
    st.suppressions.erase(it);
    return nullptr;
  }
  return &it->second;
}

// Recipients on the list are final at once: state suppressed, the reason in last_reply.
void mark_suppressed(tenant_pointer self, message_record& m) {
  if (self->state.suppressions.empty()) return;
  auto now = unix_now_ms();
  for (auto& r : m.recipients) {
    if (auto* entry = suppressed(self, suppression_key(r.address, r.domain), now)) {
      r.state = recipient_state::suppressed;
      r.last_reply = entry->reason;
      suppressed_counter("submission").inc();
    }
  }
}

void load(tenant_pointer self) {
  auto& st = self->state;
  self->request(st.store, st.settings.config->storage.request_timeout, load_atom::value,
                suppress_atom::value, st.record.id)
      .then(
          [=](suppression_snapshot& snapshot) {
            auto& s = self->state;
            for (auto& r : snapshot.suppressions)
              s.suppressions[std::move(r.address)] = {std::move(r.reason), r.expires_at_ms};
            for (auto& k : snapshot.streaks)
              s.streaks[std::move(k.address)] = {k.count, k.first_at_ms};
            s.loaded = true;
            spdlog::debug("tenant.loaded tenant={} suppressions={} streaks={}", s.record.name,
                          s.suppressions.size(), s.streaks.size());
            auto pending = std::move(s.pending);
            s.pending.clear();
            for (auto& p : pending) {
              mark_suppressed(self, p.message);
              p.promise.delegate(s.signers, submit_atom::value, std::move(p.message));
            }
          },
          [=](caf::error& e) {
            auto& s = self->state;
            spdlog::warn("tenant.load_failed tenant={} retry_in_ms={} error=\"{}\"", s.record.name,
                         s.load_backoff.count(), self->system().render(e));
            // Waiting submissions learn it now rather than at their HTTP timeout.
            for (auto& p : s.pending)
              p.promise.deliver(make_error(petrel_errc::unavailable,
                                           "the tenant's suppression list could not be loaded",
                                           1000));
            s.pending.clear();
            self->delayed_send(self, s.load_backoff, load_atom::value);
            s.load_backoff = std::min(s.load_backoff * 2, std::chrono::milliseconds(10'000));
          });
}

// Writes one operation; `done(ok)` runs after the commit (or its failure).
template <class Done>
void write(tenant_pointer self, write_op op, Done done) {
  auto& st = self->state;
  self->request(st.store, st.settings.config->storage.request_timeout, persist_atom::value,
                write_request{std::move(op)})
      .then([=](caf::ok_atom) mutable { done(caf::error{}); },
            [=](caf::error& e) mutable { done(e); });
}

caf::result<caf::ok_atom> add_suppressions(tenant_pointer self,
                                           std::vector<suppression_record> records) {
  auto rp = self->make_response_promise<caf::ok_atom>();
  if (records.empty()) {
    rp.deliver(caf::ok_atom::value);
    return rp;
  }
  struct progress {
    std::size_t left = 0;
    caf::error failure;
  };
  auto state = std::make_shared<progress>();
  state->left = records.size();
  for (auto& r : records) {
    r.tenant_id = self->state.record.id;
    if (r.created_at_ms == 0) r.created_at_ms = unix_now_ms();
    auto copy = r;
    write(self, upsert_suppression_op{std::move(r)}, [=](const caf::error& e) mutable {
      if (e) {
        state->failure = e;
      } else {
        auto& s = self->state;
        suppressions_added(copy.reason).inc();
        s.suppressions[copy.address] = {copy.reason, copy.expires_at_ms};
        s.streaks.erase(copy.address);
        spdlog::info("tenant.suppressed tenant={} address={} reason={} expires_at={}",
                     s.record.name, copy.address, copy.reason, copy.expires_at_ms);
      }
      if (--state->left > 0) return;
      if (state->failure)
        rp.deliver(state->failure);
      else
        rp.deliver(caf::ok_atom::value);
    });
  }
  return rp;
}

// A final soft failure: counted within the window; at the threshold, a suppression for a time.
void soft_bounce(tenant_pointer self, const std::string& key, const std::string& event_id) {
  auto& st = self->state;
  const auto& b = st.settings.config->bounces;
  if (b.soft_bounce_streak == 0) return;
  auto now = unix_now_ms();
  if (suppressed(self, key, now)) return;
  auto& streak = st.streaks[key];
  if (streak.count == 0 || now - streak.first_at_ms > b.soft_bounce_window.count()) {
    streak.count = 0;
    streak.first_at_ms = now;
  }
  ++streak.count;
  if (streak.count >= b.soft_bounce_streak) {
    suppression_record r;
    r.address = key;
    r.reason = "soft_bounce_streak";
    r.source_event = event_id;
    r.created_at_ms = now;
    r.expires_at_ms = now + b.soft_bounce_suppress_for.count();
    st.streaks.erase(key);
    write(self, set_soft_bounce_op{st.record.id, key, 0, 0}, [](const caf::error&) {});
    add_suppressions(self, {std::move(r)});
    return;
  }
  write(self, set_soft_bounce_op{st.record.id, key, streak.count, streak.first_at_ms},
        [=](const caf::error& e) {
          if (e)
            spdlog::warn("tenant.streak_not_stored tenant={} address={} error=\"{}\"",
                         self->state.record.name, key, self->system().render(e));
        });
}

tenant_actor::behavior_type tenant_behavior(tenant_pointer self, tenant_start start) {
  auto& st = start_actor(self);
  static_cast<tenant_start&>(st) = std::move(start);
  configure(self, st.settings.config->tenants);
  load(self);
  return {
      [=](submit_atom, message_record& m) -> caf::result<submit_receipt> {
        auto& s = self->state;
        if (s.record.suspended)
          return make_error(petrel_errc::suspended, "tenant " + s.record.name + " is suspended");
        if (s.settings.shared.live_nodes->load() != s.share_of) configure(self, s.settings.config->tenants);
        auto wait = s.limiter.try_acquire(std::chrono::steady_clock::now());
        if (wait.count() > 0) {
          core().submissions_rejected_rate.inc();
          auto wait_ms = std::chrono::duration_cast<std::chrono::milliseconds>(wait).count() + 1;
          const auto& d = s.settings.config->tenants;
          double rate = s.record.rate_per_second > 0 ? s.record.rate_per_second : d.default_rate.per_second;
          auto burst = s.record.burst > 0 ? s.record.burst : d.default_burst;
          return make_rate_limited(
              "tenant " + s.record.name + " is over its message rate of " + format_rate(rate) + " (burst " +
                  std::to_string(burst) +
                  (s.share_of > 1 ? ", shared by " + std::to_string(s.share_of) + " nodes" : std::string()) +
                  "); retry in " + std::to_string((wait_ms + 999) / 1000) + " s",
              wait_ms, rate_limit_facts{burst, rate});
        }
        m.tenant_id = s.record.id;
        // Backpressure: past the bounds of waiting recipients, refuse now rather than grow.
        const auto& sh = s.settings.config->shaping;
        auto n = static_cast<std::int64_t>(m.recipients.size());
        if (s.settings.shared.backlog->total() + n > static_cast<std::int64_t>(sh.max_waiting_recipients)) {
          core().submissions_rejected_overload.inc();
          return make_error(petrel_errc::overloaded,
                            "too many recipients are waiting for delivery; retry later", 5000);
        }
        if (s.settings.shared.backlog->of(s.record.id) + n > static_cast<std::int64_t>(sh.max_waiting_per_tenant)) {
          core().submissions_rejected_rate.inc();
          return make_error(petrel_errc::rate_limited,
                            "tenant " + s.record.name + " has too many recipients waiting for delivery",
                            5000);
        }
        // The pool: the campaign's, else the tenant's, else the default; the simulator's in
        // the sandbox.
        std::string pool = s.record.pool;
        if (!m.campaign.empty())
          for (const auto& [campaign, p] : s.settings.config->egress.campaign_pools)
            if (campaign == m.campaign) pool = p;
        if (s.record.sandbox || m.sandbox) pool = std::string(sandbox_pool);
        // Tracking: what the message asked for over the tenant's defaults; the signer makes the
        // tracked copies (actors/policy/message_preparation.hpp).
        if (m.templated || m.spec) {
          const auto& tc = s.settings.config->tracking;
          auto d = decide_tracking({tc.enabled, tc.base_url, tc.scheme}, s.record.tracking, m.track_opens,
                                   m.track_clicks);
          if (!d.refusal.empty()) return make_error(petrel_errc::invalid, "tracking: " + d.refusal);
          m.track_opens = d.opens ? 1 : 0;
          m.track_clicks = d.clicks ? 1 : 0;
          m.tracking_base_url = std::move(d.base_url);
        } else if (m.track_opens == 1 || m.track_clicks == 1) {
          // Raw messages were refused at parsing; a structured one without HTML has nothing to track.
          m.track_opens = m.track_clicks = 0;
        }
        for (auto& r : m.recipients) {
          r.pool = pool;
          r.priority = m.priority;
        }
        if (!s.loaded) {
          if (s.pending.size() >= max_pending_submissions)
            return make_error(petrel_errc::unavailable,
                              "the tenant's suppression list is still loading", 1000);
          auto rp = self->make_response_promise<submit_receipt>();
          s.pending.push_back({std::move(m), rp});
          return rp;
        }
        mark_suppressed(self, m);
        return self->delegate(s.signers, submit_atom::value, std::move(m));
      },
      [=](message_atom, id128 message_id) -> caf::result<message_details> {
        return self->delegate(self->state.store, message_atom::value, self->state.record.id,
                              message_id);
      },
      [=](tenant_atom, tenant_record& updated) {
        self->state.record = std::move(updated);
        refresh_config(self->state.settings);
        configure(self, self->state.settings.config->tenants);
      },
      [=](suppress_atom, std::vector<suppression_record>& records) -> caf::result<caf::ok_atom> {
        return add_suppressions(self, std::move(records));
      },
      [=](caf::delete_atom, suppress_atom, const std::string& key) -> caf::result<caf::ok_atom> {
        auto rp = self->make_response_promise<caf::ok_atom>();
        write(self, delete_suppression_op{self->state.record.id, key},
              [=](const caf::error& e) mutable -> void {
                petrel_errc code;
                std::string detail;
                std::int64_t retry = 0;
                if (e && read_error(e, code, detail, retry) && code == petrel_errc::conflict) {
                  rp.deliver(make_error(petrel_errc::not_found, "no such suppression"));
                  return;
                }
                if (e) {
                  rp.deliver(e);
                  return;
                }
                self->state.suppressions.erase(key);
                spdlog::info("tenant.unsuppressed tenant={} address={}", self->state.record.name, key);
                rp.deliver(caf::ok_atom::value);
              });
        return rp;
      },
      [=](bounce_atom, id128 recipient, const std::string& key, const std::string& event_id) {
        if (!key.empty()) return soft_bounce(self, key, event_id);
        // Not known where the failure happened (expiry): the store knows the address.
        auto& s = self->state;
        self->request(s.store, s.settings.config->storage.request_timeout, load_atom::value,
                      recipient_query{recipient, {}})
            .then(
                [=](std::vector<recipient_lookup>& found) {
                  if (found.empty()) return;
                  soft_bounce(self, suppression_key(found.front().address, found.front().domain),
                              event_id);
                },
                [](caf::error&) {});
      },
      [=](load_atom) {
        if (!self->state.loaded) load(self);
      },
  };
}

}  // namespace

tenant_actor spawn_tenant(caf::actor_system& sys, caf::local_actor* parent, tenant_record record,
                          store_actor store, signer_actor signers, const node_settings& settings) {
  return spawn_child(sys, parent, tenant_behavior,
                     tenant_start{std::move(record), std::move(store), std::move(signers),
                                  settings});
}

}  // namespace petrel
