// Ingest: the path of an accepted submission into the store and on to the domains. It bounds
// the writes in flight: past storage.max_pending_writes a submission gets "overloaded" (503
// with Retry-After) at once instead of growing the store's mailbox without limit.
#include <caf/all.hpp>
#include <spdlog/spdlog.h>

#include "actors/activity.hpp"
#include "actors/actor_support.hpp"
#include "actors/metrics.hpp"
#include "actors/services.hpp"
#include "actors/spawn.hpp"

namespace petrel {

namespace {

struct ingest_state {
  // Not an aggregate: CAF would otherwise try to build it from the actor pointer (C++20).
  ingest_state() = default;
  store_actor store;
  domains_actor domains;
  std::uint64_t in_flight = 0;
  std::uint64_t max_in_flight = 20000;
  static inline const char* name = "ingest";
};

using ingest_pointer = ingest_actor::stateful_pointer<ingest_state>;

ingest_actor::behavior_type ingest_behavior(ingest_pointer self, store_actor store,
                                            domains_actor domains, node_settings settings) {
  auto& st = start_actor(self);
  st.store = std::move(store);
  st.domains = std::move(domains);
  st.max_in_flight = settings.config->storage.max_pending_writes;
  return {
      [=](submit_atom, message_record& m) -> caf::result<submit_receipt> {
        auto& s = self->state;
        if (s.in_flight >= s.max_in_flight) {
          core().submissions_rejected_overload.inc();
          return make_error(petrel_errc::overloaded,
                            "too many submissions are waiting for the store", 1000);
        }
        // What to answer and what to route, taken before the record moves to the store.
        submit_receipt receipt;
        receipt.message_id = m.id;
        receipt.tenant_id = m.tenant_id;
        std::vector<queued_recipient> queued;
        queued.reserve(m.recipients.size());
        for (const auto& r : m.recipients) {
          receipt.recipients.push_back({r.address, r.id, std::string(to_string(r.state))});
          if (!is_final(r.state))
            queued.push_back({r.id, m.id, m.tenant_id, r.domain, r.state, r.attempts,
                              r.next_attempt_at_ms, r.pool, r.priority, !r.personal_json.empty()});
        }
        // An Idempotency-Key keeps the answer with the message, in its transaction.
        bool idempotent = !m.idempotency.key.empty();
        if (idempotent) {
          m.idempotency.message_id = m.id;
          m.idempotency.status = 202;
          m.idempotency.response = receipt_json_text(receipt);
        }
        ++s.in_flight;
        auto rp = self->make_response_promise<submit_receipt>();
        self->request(s.store, store_answers, persist_atom::value, std::move(m))
            .then(
                [=](caf::ok_atom) mutable {
                  --self->state.in_flight;
                  core().messages_accepted.inc();
                  core().recipients_accepted.inc(receipt.recipients.size());
                  record_activity(activity::accepted, receipt.recipients.size());
                  if (!queued.empty())
                    self->send(self->state.domains, enqueue_atom::value, std::move(queued));
                  rp.deliver(std::move(receipt));
                },
                [=](caf::error& e) mutable {
                  --self->state.in_flight;
                  petrel_errc code;
                  std::string detail;
                  std::int64_t retry = 0;
                  if (read_error(e, code, detail, retry) && code == petrel_errc::conflict && idempotent) {
                    // Another request with the same Idempotency-Key committed first.
                    rp.deliver(make_error(petrel_errc::conflict, std::string(idempotency_conflict)));
                    return;
                  }
                  if (code == petrel_errc::conflict) {
                    // A duplicate id: never expected with ULIDs; report, don't retry.
                    rp.deliver(make_error(petrel_errc::invalid, detail));
                    return;
                  }
                  if (code == petrel_errc::overloaded) {  // the store refuses for now (low space)
                    core().submissions_rejected_overload.inc();
                    rp.deliver(std::move(e));
                    return;
                  }
                  spdlog::warn("ingest.store_failed message={} error=\"{}\"",
                               receipt.message_id.str(), self->system().render(e));
                  rp.deliver(make_error(petrel_errc::store_failed,
                                        "the message could not be stored; retry", 1000));
                });
        return rp;
      },
  };
}

}  // namespace

ingest_actor spawn_ingest(caf::actor_system& sys, caf::local_actor* parent, store_actor store,
                          domains_actor domains, const node_settings& settings) {
  return spawn_child(sys, parent, ingest_behavior, std::move(store), std::move(domains), settings);
}

}  // namespace petrel
