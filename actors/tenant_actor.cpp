// The tenant actor: one per sender account. It enforces the tenant's rate limit (GCRA, see
// rate_limiter.hpp) and suspension, stamps the tenant on the message, and hands it to the
// signers (DKIM), which pass it on to ingest. Its state is the tenant record (from the store) and the limiter (which may reset on
// restart: erring toward letting a burst through once is harmless).
#include <caf/all.hpp>
#include <spdlog/spdlog.h>

#include <cmath>

#include "actors/actor_support.hpp"
#include "actors/metrics.hpp"
#include "actors/rate_limiter.hpp"
#include "actors/services.hpp"

namespace petrel {

namespace {

struct tenant_state {
  // Not an aggregate: CAF would otherwise try to build it from the actor pointer (C++20).
  tenant_state() = default;
  tenant_record record;
  store_actor store;
  signer_actor signers;
  rate_limiter limiter;
  std::chrono::milliseconds store_timeout{20'000};
  static inline const char* name = "tenant";
};

using tenant_pointer = tenant_actor::stateful_pointer<tenant_state>;

void configure(tenant_pointer self, const tenant_settings& defaults) {
  auto& r = self->state.record;
  double rate = r.rate_per_second > 0 ? r.rate_per_second : defaults.default_rate.per_second;
  std::uint32_t burst = r.burst > 0 ? r.burst : defaults.default_burst;
  self->state.limiter.configure(rate, burst);
}

tenant_actor::behavior_type tenant_behavior(tenant_pointer self, tenant_record record,
                                            store_actor store, signer_actor signers,
                                            node_settings settings) {
  install_logging_handlers(self, "tenant");
  auto& st = self->state;
  st.record = std::move(record);
  st.store = std::move(store);
  st.signers = std::move(signers);
  st.store_timeout = settings.storage.request_timeout;
  configure(self, settings.tenants);
  return {
      [=](submit_atom, message_record& m) -> caf::result<submit_receipt> {
        auto& s = self->state;
        if (s.record.suspended)
          return make_error(petrel_errc::suspended, "tenant " + s.record.name + " is suspended");
        auto wait = s.limiter.try_acquire(std::chrono::steady_clock::now());
        if (wait.count() > 0) {
          core().submissions_rejected_rate.inc();
          auto wait_ms = std::chrono::duration_cast<std::chrono::milliseconds>(wait).count() + 1;
          return make_error(petrel_errc::rate_limited,
                            "tenant " + s.record.name + " is over its message rate", wait_ms);
        }
        m.tenant_id = s.record.id;
        return self->delegate(s.signers, submit_atom::value, std::move(m));
      },
      [=](message_atom, id128 message_id) -> caf::result<message_details> {
        return self->delegate(self->state.store, message_atom::value, self->state.record.id,
                              message_id);
      },
      [=](tenant_atom, tenant_record& updated) {
        self->state.record = std::move(updated);
        configure(self, settings.tenants);
      },
  };
}

}  // namespace

tenant_actor spawn_tenant(caf::actor_system& sys, caf::local_actor* parent, tenant_record record,
                          store_actor store, signer_actor signers, const node_settings& settings) {
  if (parent)
    return parent->spawn<caf::linked>(tenant_behavior, std::move(record), std::move(store),
                                      std::move(signers), settings);
  return sys.spawn(tenant_behavior, std::move(record), std::move(store), std::move(signers),
                   settings);
}

}  // namespace petrel
