// The domain actor: one per destination domain, holding its waiting recipients (ids and
// times only; addresses and bodies stay in the store). It rebuilds its state from the store
// when it starts, so a crash or a restart of the process loses nothing.
#include <caf/all.hpp>
#include <spdlog/spdlog.h>

#include <unordered_map>

#include "actors/actor_support.hpp"
#include "actors/metrics.hpp"
#include "actors/services.hpp"

namespace petrel {

namespace {

struct waiting_recipient {
  id128 message_id;
  id128 tenant_id;
  recipient_state state = recipient_state::queued;
  std::uint32_t attempts = 0;
  std::int64_t next_attempt_at_ms = 0;
};

struct domain_state {
  // Not an aggregate: CAF would otherwise try to build it from the actor pointer (C++20).
  domain_state() = default;
  std::string domain;
  store_actor store;
  domains_actor supervisor;
  std::chrono::milliseconds idle_timeout{600'000};
  std::unordered_map<id128, waiting_recipient, id128_hash> waiting;
  std::uint64_t last_batch = 0;       // highest batch number seen from the supervisor
  std::uint64_t idle_generation = 0;  // bumped by every change; stale idle timers are ignored
  bool loaded = false;
  // What this actor added to the recipients_waiting gauge; taken back when it exits.
  std::shared_ptr<std::int64_t> counted = std::make_shared<std::int64_t>(0);
  static inline const char* name = "domain";
};

using domain_pointer = domain_actor::stateful_pointer<domain_state>;

void add(domain_pointer self, const queued_recipient& r) {
  auto& st = self->state;
  auto [it, inserted] = st.waiting.try_emplace(r.recipient_id);
  if (!inserted) return;  // already known (recovery and enqueue can overlap)
  it->second = {r.message_id, r.tenant_id, r.state, r.attempts, r.next_attempt_at_ms};
  ++*st.counted;
  core().recipients_waiting.add(1);
}

void arm_idle_timer(domain_pointer self) {
  auto& st = self->state;
  ++st.idle_generation;
  if (st.waiting.empty() && st.loaded)
    self->delayed_send(self, st.idle_timeout, caf::tick_atom::value, st.idle_generation);
}

domain_actor::behavior_type domain_behavior(domain_pointer self, std::string domain,
                                            store_actor store, domains_actor supervisor,
                                            std::chrono::milliseconds idle_timeout,
                                            std::chrono::milliseconds store_timeout) {
  install_logging_handlers(self, "domain");
  auto& st = self->state;
  st.domain = std::move(domain);
  st.store = std::move(store);
  st.supervisor = std::move(supervisor);
  st.idle_timeout = idle_timeout;
  core().domain_actors.add(1);
  self->attach_functor([counted = st.counted](const caf::error&) {
    core().recipients_waiting.add(-*counted);
    core().domain_actors.add(-1);
  });
  // Recovery: everything the store holds as waiting for this domain.
  self->request(st.store, store_timeout, load_atom::value, st.domain)
      .then(
          [=](std::vector<queued_recipient>& recipients) {
            for (const auto& r : recipients) add(self, r);
            self->state.loaded = true;
            spdlog::debug("domain.loaded domain={} waiting={}", self->state.domain,
                          self->state.waiting.size());
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
        arm_idle_timer(self);
      },
      [=](stats_atom) {
        auto& s = self->state;
        domain_queue_stats out;
        out.domain = s.domain;
        for (const auto& [id, r] : s.waiting) {
          if (r.state == recipient_state::deferred)
            ++out.deferred;
          else
            ++out.queued;
          auto created = id.time_ms();
          if (out.oldest_ms == 0 || created < out.oldest_ms) out.oldest_ms = created;
          if (out.next_attempt_ms == 0 || r.next_attempt_at_ms < out.next_attempt_ms)
            out.next_attempt_ms = r.next_attempt_at_ms;
        }
        return out;
      },
      [=](caf::tick_atom, std::uint64_t generation) {
        auto& s = self->state;
        if (generation != s.idle_generation || !s.waiting.empty()) return;
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
  };
}

}  // namespace

domain_actor spawn_domain(caf::actor_system& sys, caf::local_actor* parent, std::string domain,
                          store_actor store, domains_actor supervisor,
                          const node_settings& settings) {
  auto idle = settings.actors.domain_idle_timeout;
  auto timeout = settings.storage.request_timeout;
  if (parent)
    return parent->spawn<caf::linked>(domain_behavior, std::move(domain), std::move(store),
                                      std::move(supervisor), idle, timeout);
  return sys.spawn(domain_behavior, std::move(domain), std::move(store), std::move(supervisor),
                   idle, timeout);
}

}  // namespace petrel
