// The signing pool: DKIM signing of accepted submissions, in parallel. The pool's front actor
// hands each submission to its workers in turn; a worker signs the message with every active
// key of its From domain when that domain belongs to the submitting tenant (the keys come from
// the signing table the senders actor publishes), refuses unverified domains when
// dkim.require_verified_domain is set, and delegates to ingest.
#include <caf/all.hpp>
#include <spdlog/spdlog.h>

#include "actors/actor_support.hpp"
#include "actors/metrics.hpp"
#include "actors/policy/message_preparation.hpp"
#include "actors/services.hpp"
#include "actors/spawn.hpp"

namespace petrel {

void add_dkim_signatures(const signing_entry& entry, std::string& message) {
  static auto& signed_messages = metrics().get_counter("petrel_dkim_signatures_total",
                                                       "DKIM signatures added to messages");
  if (entry.signers.empty()) return;
  std::string signatures;
  auto now = unix_now_ms() / 1000;
  for (const auto& signer : entry.signers) signatures += signer->sign(message, now);
  signed_messages.inc(entry.signers.size());
  message.insert(0, signatures);
}

namespace {

struct worker_state {
  worker_state() = default;
  ingest_actor ingest;
  std::shared_ptr<signing_directory> signing;
  bool require_verified = false;
  bool bulk_signed_at_delivery = false;
  std::int64_t token_lifetime_ms = 0;  // tracking.token_lifetime
  static inline const char* name = "signer";
};

using worker_pointer = signer_actor::stateful_pointer<worker_state>;

signer_actor::behavior_type worker_behavior(worker_pointer self, ingest_actor ingest,
                                            std::shared_ptr<signing_directory> signing,
                                            bool require_verified, bool bulk_signed_at_delivery,
                                            std::int64_t token_lifetime_ms) {
  auto& st = start_actor(self);
  st.token_lifetime_ms = token_lifetime_ms;
  st.bulk_signed_at_delivery = bulk_signed_at_delivery;
  st.ingest = std::move(ingest);
  st.signing = std::move(signing);
  st.require_verified = require_verified;
  return {
      [=](submit_atom, message_record& m) -> caf::result<submit_receipt> {
        auto& st = self->state;
        auto table = st.signing->get();
        auto it = table->find(signing_key(m.from_domain, m.tenant_id));
        bool ours = it != table->end();
        if (st.require_verified && !(ours && it->second.verified))
          return make_error(petrel_errc::forbidden,
                            "the From domain \"" + m.from_domain +
                                "\" is not a verified sender domain of this tenant "
                                "(POST /v1/domains, then publish its DNS records)");
        // Tracked messages become copies per recipient (their HTML's links and pixel marked).
        if (!m.tracking_base_url.empty()) {
          apply_tracking(m, {m.track_opens == 1, m.track_clicks == 1, m.tracking_base_url, {}},
                         m.created_at_ms + st.token_lifetime_ms);
          m.tracking_base_url.clear();
        }
        m.spec.reset();
        // Bulk messages get List-Unsubscribe per recipient at delivery, and their signature
        // there, over those fields too (RFC 8058).
        // A templated message is signed per copy, when each is rendered.
        bool at_delivery = (m.bulk && st.bulk_signed_at_delivery) || m.templated;
        if (ours && !it->second.signers.empty() && !at_delivery) {
          add_dkim_signatures(it->second, m.content);
          m.size = m.content.size();
        }
        return self->delegate(st.ingest, submit_atom::value, std::move(m));
      },
  };
}

struct pool_state {
  pool_state() = default;
  std::vector<signer_actor> workers;
  std::size_t next = 0;
  static inline const char* name = "signers";
};

using pool_pointer = signer_actor::stateful_pointer<pool_state>;

signer_actor::behavior_type pool_behavior(pool_pointer self, ingest_actor ingest,
                                          node_settings settings) {
  start_actor(self);
  auto n = settings.config->dkim.signers > 0
               ? settings.config->dkim.signers
               : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  for (int i = 0; i < n; ++i)
    self->state.workers.push_back(self->spawn<caf::linked>(
        worker_behavior, ingest, settings.shared.signing, settings.config->dkim.require_verified_domain,
        !settings.config->bounces.unsubscribe_base_url.empty() && !settings.config->bounce_secret.empty(),
        static_cast<std::int64_t>(settings.config->tracking.token_lifetime.count())));
  return {
      [=](submit_atom, message_record& m) -> caf::result<submit_receipt> {
        auto& st = self->state;
        return self->delegate(st.workers[st.next++ % st.workers.size()], submit_atom::value,
                              std::move(m));
      },
  };
}

}  // namespace

signer_actor spawn_signers(caf::actor_system& sys, caf::local_actor* parent, ingest_actor ingest,
                           const node_settings& settings) {
  return spawn_child(sys, parent, pool_behavior, std::move(ingest), settings);
}

}  // namespace petrel
