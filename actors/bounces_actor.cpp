// The bounce processor: what comes back after delivery. An inbound message (from the SMTP
// listener or POST /v1/inbound) is parsed (net/bounce_parser.hpp); its recipient is found by
// the VERP token of the envelope recipient or of the returned message's Return-Path
// (authenticated by its HMAC: a forged or damaged token makes the whole message ignored).
// Only without VERP are recipients found by the Message-ID of the returned or reported message
// together with the failed address; with VERP on, a report without a token changes nothing.
// Then:
// - a failed recipient gets a "bounced" event (async) with its classification; a delivered
//   recipient becomes bounced; a hard failure of a suppressing category suppresses the
//   address, a soft one of a streak category counts toward its streak;
// - a feedback report gives "complained" and suppresses (reason complaint), except not-spam;
// - auto-replies, delay notices and ordinary mail record nothing.
// The answer comes after every write is committed, so the listener's 250 means stored.
#include <caf/all.hpp>
#include <spdlog/spdlog.h>

#include <memory>

#include "actors/activity.hpp"
#include "actors/actor_support.hpp"
#include "actors/policy/event_data.hpp"
#include "actors/metrics.hpp"
#include "actors/policy/attempt_outcome.hpp"
#include "net/mail/recipient_token.hpp"
#include "actors/services.hpp"
#include "actors/spawn.hpp"
#include "net/mail/bounce.hpp"
#include "net/mail/bounce_parser.hpp"

namespace petrel {

namespace {

// What the bounces actor is given when it starts (its spawn arguments).
struct bounces_start {
  store_actor store;
  tenants_actor tenants;
  node_settings settings;
};

struct bounces_state : bounces_start {
  bounces_state() = default;
  static inline const char* name = "bounces";
};

using bounces_pointer = bounces_actor::stateful_pointer<bounces_state>;

counter& inbound_counter(const std::string& kind) {
  return metrics().get_counter("petrel_inbound_reports_total",
                               "Inbound messages by what they were", {{"kind", kind}});
}

std::string lower(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

std::string trim(std::string s) {
  auto first = s.find_first_not_of(" \t\r\n");
  auto last = s.find_last_not_of(" \t\r\n");
  return first == std::string::npos ? std::string() : s.substr(first, last - first + 1);
}

bool same_address(const std::string& a, const std::string& b) { return lower(a) == lower(b); }

// Everything one inbound message leads to, committed before the answer.
struct processing {
  inbound_result result;
  std::function<void(processing&)> finish;  // called once, after the last write
  std::size_t writes_left = 0;
  caf::error failure;
  bool sealed = false;  // every write has been started

  void finish_if_done() {
    if (!sealed || writes_left > 0 || !finish) return;
    auto f = std::move(finish);
    finish = nullptr;
    f(*this);
  }
};
using processing_ptr = std::shared_ptr<processing>;

template <class Handle, class... Ts>
void tracked(bounces_pointer self, processing_ptr p, const Handle& to, Ts&&... xs) {
  ++p->writes_left;
  self->request(to, self->state.settings.config->storage.request_timeout, std::forward<Ts>(xs)...)
      .then(
          [p](caf::ok_atom) {
            --p->writes_left;
            p->finish_if_done();
          },
          [p](caf::error& e) {
            p->failure = e;
            --p->writes_left;
            p->finish_if_done();
          });
}

event_record make_event(const recipient_lookup& r, std::string type, std::string data) {
  event_record e;
  e.id = new_id();
  e.tenant_id = r.tenant_id;
  e.message_id = r.message_id;
  e.recipient_id = r.recipient_id;
  e.type = std::move(type);
  e.at_ms = unix_now_ms();
  e.data_json = std::move(data);
  return e;
}

void suppress(bounces_pointer self, processing_ptr p, const recipient_lookup& r,
              const std::string& reason, const event_record& cause) {
  suppression_record s;
  s.tenant_id = r.tenant_id;
  s.address = suppression_key(r.address, r.domain);
  s.reason = reason;
  s.source_event = cause.id.str();
  s.created_at_ms = cause.at_ms;
  tracked(self, p, self->state.tenants, suppress_atom::value, r.tenant_id,
          std::vector<suppression_record>{std::move(s)});
}

// One failed recipient of a bounce.
void record_bounce(bounces_pointer self, processing_ptr p, const recipient_lookup& r,
                   const bounce_recipient& failed, const bounce_report& report,
                   const std::string& origin) {
  auto& st = self->state;
  classification c{bounce_category::other, failed.status.rfind('5', 0) == 0, failed.status, -1, "onhold"};
  if (st.settings.config->classifier)
    c = st.settings.config->classifier->classify(failed.reply_code, failed.status, failed.diagnostic,
                                         failed.remote_mta, failed.command);
  // A failure notice is final for that message whatever its class: its MTA gave up.
  auto event = make_event(r, "bounced",
                          event_data::async_bounce({&c, failed.reply_code, failed.diagnostic,
                                                    failed.remote_mta, report.reporting_mta, origin}));
  if (r.state == recipient_state::delivered) {
    // Accepted downstream, failed later: the recipient is bounced after all.
    recipient_update u;
    u.recipient_id = r.recipient_id;
    u.state = recipient_state::bounced;
    u.attempts = r.attempts;
    u.last_reply = (failed.status.empty() ? std::string() : failed.status + " ") + failed.diagnostic;
    u.event = event;
    tracked(self, p, st.store, record_atom::value, std::vector<recipient_update>{std::move(u)});
  } else {
    tracked(self, p, st.store, record_atom::value, event);
  }
  // (A second notice about a recipient bounced already counts once only.)
  if (c.hard && r.state != recipient_state::bounced)
    st.settings.shared.reputation->record(r.tenant_id, r.sender_domain, reputation_outcome::hard_bounce,
                                          unix_now_ms());
  inbound_outcome o{r.recipient_id, r.message_id, r.address, "bounced",
                    std::string(to_string(c.category)), c.hard, false, c.reason};
  const auto& b = st.settings.config->bounces;
  if (c.hard && category_listed(b.suppress_categories, c.category)) {
    suppress(self, p, r, "hard_bounce", event);
    o.suppressed = true;
  } else if (!c.hard && category_listed(b.streak_categories, c.category)) {
    self->send(st.tenants, bounce_atom::value, r.tenant_id, r.recipient_id,
               suppression_key(r.address, r.domain), event.id.str());
  }
  metrics()
      .get_counter("petrel_async_bounces_total", "Asynchronous bounces recorded, by category",
                   {{"category", std::string(to_string(c.category))}})
      .inc();
  p->result.outcomes.push_back(std::move(o));
}

void record_complaint(bounces_pointer self, processing_ptr p, const recipient_lookup& r,
                      const bounce_report& report, const std::string& origin) {
  auto type = report.feedback_type.empty() ? std::string("abuse") : lower(report.feedback_type);
  auto event = make_event(r, "complained", event_data::complained(type, report.reporting_mta, origin));
  tracked(self, p, self->state.store, record_atom::value, event);
  inbound_outcome o{r.recipient_id, r.message_id, r.address, "complained", type, false, false, {}};
  if (type != "not-spam") {
    suppress(self, p, r, type == "opt-out" ? "unsubscribe" : "complaint", event);
    o.suppressed = true;
  }
  metrics()
      .get_counter("petrel_complaints_total", "Feedback reports recorded, by type",
                   {{"type", type}})
      .inc();
  record_activity(activity::complained);
  if (type != "not-spam")
    self->state.settings.shared.reputation->record(r.tenant_id, r.sender_domain, reputation_outcome::complaint,
                                                   unix_now_ms());
  p->result.outcomes.push_back(std::move(o));
}

// The report's recipients matched against the candidates, then recorded.
void apply(bounces_pointer self, processing_ptr p, const bounce_report& report,
           std::vector<recipient_lookup> candidates, bool by_verp, const inbound_message& m) {
  // A tenant's own POST /v1/inbound only reaches its own recipients.
  if (!m.tenant_id.empty())
    candidates.erase(std::remove_if(candidates.begin(), candidates.end(),
                                    [&](const auto& c) { return c.tenant_id != m.tenant_id; }),
                     candidates.end());
  auto named = [&](const std::string& address) -> const recipient_lookup* {
    for (const auto& c : candidates)
      if (!address.empty() && same_address(c.address, address)) return &c;
    return nullptr;
  };
  auto pick = [&](const std::string& address) -> const recipient_lookup* {
    if (by_verp) return candidates.empty() ? nullptr : &candidates.front();
    if (const auto* c = named(address)) return c;
    // One recipient only, and the report names nobody else we know: that one.
    if (candidates.size() == 1 && (address.empty() || report.recipients.size() <= 1))
      return &candidates.front();
    return nullptr;
  };
  if (report.kind == report_kind::feedback) {
    std::string address = report.recipients.empty() ? report.original_to : report.recipients.front().address;
    if (auto* r = pick(address)) record_complaint(self, p, *r, report, m.origin);
  } else {
    bool delayed_only = true;
    for (const auto& failed : report.recipients) {
      if (!is_failure_action(failed.action)) continue;
      delayed_only = false;
      // The Original-Recipient is the address as we sent it; the Final-Recipient may be where a
      // forward or an alias led.
      const recipient_lookup* r = by_verp ? nullptr : named(failed.original);
      if (!r) r = pick(failed.address);
      if (r) record_bounce(self, p, *r, failed, report, m.origin);
      if (by_verp) break;  // a VERP bounce is about its one recipient
    }
    if (delayed_only && !report.recipients.empty()) {
      p->result.kind = "delivery_delayed";
      p->result.note = "a delay or success notice: nothing to record";
    }
  }
  if (p->result.outcomes.empty() && p->result.note.empty())
    p->result.note = candidates.empty() ? "no message of ours matches the report"
                                        : "no recipient of the message matches the report";
  p->sealed = true;
  p->finish_if_done();
}

caf::result<inbound_result> on_inbound(bounces_pointer self, inbound_message& m) {
  auto& st = self->state;
  auto report = std::make_shared<bounce_report>(parse_bounce(m.content));
  auto p = std::make_shared<processing>();
  auto promise = self->make_response_promise<inbound_result>();
  p->finish = [promise](processing& done) mutable {
    if (done.failure)
      promise.deliver(done.failure);
    else
      promise.deliver(std::move(done.result));
  };
  p->result.kind = std::string(to_string(report->kind));
  auto done = [&](std::string note) {
    p->result.note = std::move(note);
    p->sealed = true;
    p->finish_if_done();
    return promise;
  };
  if (report->kind == report_kind::not_a_report) {
    inbound_counter("not_a_report").inc();
    return done("not a bounce or feedback report");
  }
  if (report->kind == report_kind::auto_reply) {
    inbound_counter("auto_reply").inc();
    return done("an automatic reply, not a failure");
  }
  inbound_counter(p->result.kind).inc();
  // With VERP on, only a token authenticates a report (docs/bounces.md, "Trust"): the envelope
  // recipient the report was sent to, else the Return-Path of the returned message. The HMAC
  // says we made the name, and it names one recipient: whoever received a message can at most
  // report on their own delivery.
  const auto& domain = st.settings.config->bounces.verp_domain;
  if (!domain.empty() && !st.settings.config->bounce_secret.empty()) {
    std::vector<std::string> candidates = m.envelope_to;
    if (auto rp = report->original_headers.find("return-path"); rp != report->original_headers.end()) {
      auto path = trim(rp->second);
      if (path.size() >= 2 && path.front() == '<' && path.back() == '>')
        path = path.substr(1, path.size() - 2);
      candidates.push_back(std::move(path));
    }
    for (const auto& to : candidates) {
      auto at = to.rfind('@');
      if (at == std::string::npos || lower(to.substr(at + 1)) != domain) continue;
      auto local = lower(to.substr(0, at));
      if (local.rfind("b-", 0) != 0) continue;
      auto recipient = read_verp_address(st.settings.config->bounce_secret, to, domain);
      if (!recipient) {
        spdlog::warn("bounces.forged_verp to={} origin=\"{}\"", to, m.origin);
        metrics().get_counter("petrel_inbound_forged_total", "Inbound reports with a forged VERP token").inc();
        return done("the VERP token is forged or damaged: ignored");
      }
      self->request(st.store, st.settings.config->storage.request_timeout, load_atom::value,
                    recipient_query{*recipient, {}})
          .then([=](std::vector<recipient_lookup>& found) mutable {
                  apply(self, p, *report, std::move(found), true, m);
                },
                [=](caf::error& e) mutable {
                  p->failure = e;
                  p->sealed = true;
                  p->finish_if_done();
                });
      return promise;
    }
  }
  if (!domain.empty() && !st.settings.config->bounce_secret.empty()) {
    // A Message-ID and an address are known to every recipient of the message: not enough to
    // bounce or suppress anyone. Counted and logged, nothing changes.
    spdlog::info("bounces.unverified kind={} message_id=\"{}\" origin=\"{}\"", p->result.kind,
                 report->original_message_id, m.origin);
    metrics()
        .get_counter("petrel_inbound_unverified_total",
                     "Inbound reports without a VERP token while VERP is on: nothing recorded")
        .inc();
    return done("VERP is on and the report carries no VERP token: not trusted, nothing recorded");
  }
  auto message_id = trim(report->original_message_id);
  if (message_id.empty()) return done("the report names no message (no VERP token, no Message-ID)");
  self->request(st.store, st.settings.config->storage.request_timeout, load_atom::value,
                recipient_query{{}, message_id})
      .then([=](std::vector<recipient_lookup>& found) mutable {
              apply(self, p, *report, std::move(found), false, m);
            },
            [=](caf::error& e) mutable {
              p->failure = e;
              p->sealed = true;
              p->finish_if_done();
            });
  return promise;
}

caf::result<caf::ok_atom> on_unsubscribe(bounces_pointer self, id128 recipient) {
  auto& st = self->state;
  auto rp = self->make_response_promise<caf::ok_atom>();
  self->request(st.store, st.settings.config->storage.request_timeout, load_atom::value,
                recipient_query{recipient, {}})
      .then(
          [=](std::vector<recipient_lookup>& found) mutable {
            if (found.empty()) {
              rp.deliver(make_error(petrel_errc::not_found, "no such recipient"));
              return;
            }
            auto p = std::make_shared<processing>();
            p->finish = [rp](processing& done) mutable {
              if (done.failure)
                rp.deliver(done.failure);
              else
                rp.deliver(caf::ok_atom::value);
            };
            auto event = make_event(found.front(), "unsubscribed", event_data::unsubscribed_one_click());
            tracked(self, p, self->state.store, record_atom::value, event);
            suppress(self, p, found.front(), "unsubscribe", event);
            metrics().get_counter("petrel_unsubscribes_total", "One-click unsubscribes").inc();
            p->sealed = true;
            p->finish_if_done();
          },
          [=](caf::error& e) mutable { rp.deliver(e); });
  return rp;
}

bounces_actor::behavior_type bounces_behavior(bounces_pointer self, bounces_start start) {
  auto& st = start_actor(self);
  static_cast<bounces_start&>(st) = std::move(start);
  return {
      [=](inbound_atom, inbound_message& m) -> caf::result<inbound_result> {
        refresh_config(self->state.settings);  // the bounce rules of a reload
        return on_inbound(self, m);
      },
      [=](unsub_atom, id128 recipient) -> caf::result<caf::ok_atom> {
        return on_unsubscribe(self, recipient);
      },
  };
}

}  // namespace

bounces_actor spawn_bounces(caf::actor_system& sys, caf::local_actor* parent, store_actor store,
                            tenants_actor tenants, const node_settings& settings) {
  return spawn_child(sys, parent, bounces_behavior,
                     bounces_start{std::move(store), std::move(tenants), settings});
}

}  // namespace petrel
