// The sandbox's sessions (actors/policy/sandbox.hpp): what the simulator's site hands out is
// answered at once by address, as an SMTP session would report it, without any connection.
// The message was rendered and signed by the site like any other.
#include <caf/all.hpp>

#include <mutex>
#include <unordered_set>

#include "actors/metrics.hpp"
#include "actors/policy/sandbox.hpp"
#include "actors/services.hpp"

namespace petrel {

namespace {

// defer@ answers 451 once per recipient: the recipients deferred so far (bounded; a restart
// forgets them, and such a recipient is deferred once more).
class deferred_once {
 public:
  bool first(const id128& id) {
    std::lock_guard lock(mutex_);
    if (seen_.size() > 100'000) seen_.clear();
    return seen_.insert(id).second;
  }

 private:
  std::mutex mutex_;
  std::unordered_set<id128, id128_hash> seen_;
};

deferred_once& deferrals() {
  static deferred_once d;
  return d;
}

void run_sandbox_job(site_actor site, std::uint64_t session, delivery_work work) {
  job_outcome out;
  out.job_id = work.job.job_id;
  std::string simulated;
  for (std::size_t i = 0; i < work.addresses.size() && i < work.job.recipient_ids.size(); ++i) {
    recipient_result r;
    r.recipient_id = work.job.recipient_ids[i];
    r.address = work.addresses[i];
    auto outcome = simulated_outcome_for(r.address);
    if (outcome == simulated_outcome::defer_once && !deferrals().first(r.recipient_id))
      outcome = simulated_outcome::delivered;
    switch (outcome) {
      case simulated_outcome::bounce:
        r.code = 550;
        r.enhanced = "5.1.1";
        r.reply = "<" + r.address + ">: the mailbox does not exist (sandbox: simulated)";
        r.command = "RCPT";
        break;
      case simulated_outcome::defer_once:
        r.code = 451;
        r.enhanced = "4.2.0";
        r.reply = "try again later (sandbox: simulated, delivered on the next attempt)";
        r.command = "RCPT";
        break;
      case simulated_outcome::out_of_office:
        // The automatic reply that would come back to the envelope sender, counted as one is.
        metrics()
            .get_counter("petrel_inbound_reports_total", "Inbound messages by what they were",
                         {{"kind", "auto_reply"}})
            .inc();
        [[fallthrough]];
      default:
        r.code = 250;
        r.enhanced = "2.0.0";
        r.reply = "accepted (sandbox: simulated, delivered nowhere; " +
                  std::to_string(work.content ? work.content->size() : 0) + " bytes)";
        r.command = "DATA";
        break;
    }
    // (A job of several recipients reports the first unusual outcome; each recipient's own
    // outcome is in its reply.)
    if (simulated.empty() || simulated == "delivered") simulated = to_string(outcome);
    out.recipients.push_back(std::move(r));
  }
  for (auto& skipped : work.skipped) out.recipients.push_back(std::move(skipped));
  out.attempt.mx_host = std::string(sandbox_site);
  out.attempt.source = std::string(sandbox_site);
  out.attempt.simulated = simulated.empty() ? "delivered" : simulated;
  caf::anon_send(site, outcome_atom::value, session, std::move(out));
  caf::anon_send(site, next_atom::value, session, work_completion{[site, session](std::optional<delivery_work> next) {
                   if (next) return run_sandbox_job(site, session, std::move(*next));
                   caf::anon_send(site, closed_atom::value, session, std::string("sandbox: no more work"));
                 }});
}

}  // namespace

void start_sandbox_session(const std::shared_ptr<delivery_runtime>&, site_actor site, std::uint64_t session,
                           session_plan, delivery_work first) {
  run_sandbox_job(std::move(site), session, std::move(first));
}

}  // namespace petrel
