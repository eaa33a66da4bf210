// The delivery actors under the deterministic scheduler, driven end to end without sockets: the
// domains supervisor, domain actors, the egress supervisor, egress and site actors and the real
// store, with a resolver that answers one fixed route and the sites' session entry point
// replaced by a scripted SMTP session (the real sessions are covered by the system tests).
// What is checked: the credit protocol between domain and site (demand -> credit -> jobs ->
// outcomes), retry timing, expiry while waiting, and suspension.
#include <catch2/catch.hpp>

#include <thread>

#include "actor_fixture.hpp"
#include "actors/actor_support.hpp"

using namespace petrel;
using namespace petrel::testing;
using namespace std::chrono_literals;

namespace {

// Every domain is reached through one MX host; the route says so without DNS.
resolver_actor::behavior_type fixed_route(resolver_actor::pointer) {
  return {
      [](resolve_atom, const std::string& domain) {
        route r;
        r.status = route_status::ok;
        r.site = "mx." + domain;
        r.hosts = {mx_host{"mx." + domain, {"192.0.2.1"}, 0, {}}};
        r.expires_at_ms = unix_now_ms() + 3'600'000;
        return r;
      },
      [](mx_atom, const std::string&, const mx_lookup&) {},
      [](address_atom, const std::string&, const address_lookup&) {},
      [](address_atom, const std::string&, const tlsa_lookup&) {},
      [](sts_atom, const std::string&, const sts_result&) {},
  };
}

// An SMTP server as the sites see it through their sessions: a reply code per address, and a
// record of what was sent.
struct scripted_server {
  std::function<int(const std::string&)> code_for = [](const std::string&) { return 250; };
  std::vector<std::vector<std::string>> transactions;  // the addresses of each transaction
  int sessions = 0;
  int open = 0;
  int max_open = 0;
  std::size_t max_recipients_per_transaction = 0;
};

// Runs one job as a session would: the outcome, then "next" until the site has no more work.
void run_job(std::shared_ptr<scripted_server> server, site_actor site, std::uint64_t id, delivery_work work) {
  server->transactions.push_back(work.addresses);
  server->max_recipients_per_transaction = std::max(server->max_recipients_per_transaction, work.addresses.size());
  job_outcome out;
  out.job_id = work.job.job_id;
  for (std::size_t i = 0; i < work.addresses.size(); ++i) {
    recipient_result r;
    r.recipient_id = work.job.recipient_ids[i];
    r.address = work.addresses[i];
    r.code = server->code_for(r.address);
    r.enhanced = r.code == 250 ? "2.0.0" : r.code < 500 ? "4.2.0" : "5.1.1";
    r.reply = r.code == 250 ? "ok" : "not now";
    out.recipients.push_back(std::move(r));
  }
  for (const auto& skipped : work.skipped) out.recipients.push_back(skipped);
  out.attempt.mx_host = "mx.scripted";
  out.attempt.mx_address = "192.0.2.1";
  caf::anon_send(site, outcome_atom::value, id, std::move(out));
  caf::anon_send(site, next_atom::value, id, work_completion{[=](std::optional<delivery_work> next) {
                   if (next) return run_job(server, site, id, std::move(*next));
                   --server->open;
                   caf::anon_send(site, closed_atom::value, id, std::string("QUIT"));
                 }});
}

session_entry scripted_sessions(std::shared_ptr<scripted_server> server) {
  return [server](const std::shared_ptr<delivery_runtime>&, site_actor site, std::uint64_t id, session_plan,
                  delivery_work first) {
    ++server->sessions;
    server->max_open = std::max(server->max_open, ++server->open);
    run_job(server, site, id, std::move(first));
  };
}

// The delivery side of a node, started as the root would.
struct delivery_chain {
  actor_fixture& f;
  std::shared_ptr<scripted_server> server = std::make_shared<scripted_server>();
  std::shared_ptr<delivery_runtime> runtime = std::make_shared<delivery_runtime>();
  store_actor store;
  resolver_actor resolver;
  egress_actor egress;
  domains_actor domains;

  explicit delivery_chain(actor_fixture& fixture) : f(fixture) {
    f.config->deliver = true;
    f.config->sources = {egress_source{"default", "", "petrel.test"}};
    f.config->delivery.retry_jitter = 0;
    runtime->start_session = scripted_sessions(server);
  }

  void start() {
    store = spawn_store(*f.sys, nullptr, f.factory(), nullptr, f.settings);
    resolver = f.sys->spawn(fixed_route);
    egress = spawn_egress(*f.sys, nullptr, runtime, store, f.settings);
    domains = spawn_domains(*f.sys, nullptr, store, resolver, egress, f.settings);
    f.sched->run();
  }

  // Runs until quiet, firing timers that are due by the wall clock (recipients' due times are
  // wall-clock times), for at most `limit` of real time.
  void run_for(std::chrono::milliseconds limit) {
    auto end = std::chrono::steady_clock::now() + limit;
    do {
      f.sched->run();
      f.sched->trigger_timeouts();
      f.sched->run();
      std::this_thread::sleep_for(10ms);
    } while (std::chrono::steady_clock::now() < end);
  }

  std::uint64_t count(recipient_state s) { return open_store(f.url, {})->count_recipients(s); }

  domain_queue_stats stats_of(const std::string& domain) {
    for (auto& d : f.ask_ok<queue_summary>(domains, stats_atom::value).domains)
      if (d.domain == domain) return d;
    return {};
  }

  void stop() {
    for (auto h : {caf::actor_cast<caf::actor>(domains), caf::actor_cast<caf::actor>(egress),
                   caf::actor_cast<caf::actor>(resolver), caf::actor_cast<caf::actor>(store)})
      anon_send_exit(h, caf::exit_reason::user_shutdown);
    f.sched->run();
  }
};

std::vector<std::string> addresses(const std::string& prefix, int n, const std::string& domain) {
  std::vector<std::string> out;
  for (int i = 0; i < n; ++i) out.push_back(prefix + std::to_string(i) + "@" + domain);
  return out;
}

}  // namespace

TEST_CASE_METHOD(actor_fixture, "domain and site trade demand, credit, jobs and outcomes until all is delivered") {
  delivery_chain chain(*this);
  config->delivery.connection_limit = 2;
  config->delivery.ready_queue = 3;
  config->delivery.max_recipients_per_transaction = 1;
  auto t = make_tenant("t");
  seed({insert_tenant_op{t, {}}});
  std::vector<write_op> messages;
  for (int i = 0; i < 20; ++i) messages.push_back(message_op(make_message(t.id, {"r" + std::to_string(i) + "@credit.test"})));
  seed(messages);
  chain.start();  // recovery enqueues the 20 waiting recipients
  chain.run_for(200ms);
  CHECK(chain.count(recipient_state::delivered) == 20);
  CHECK(chain.count(recipient_state::queued) == 0);
  CHECK(chain.server->transactions.size() == 20);  // each exactly once
  CHECK(chain.server->max_open <= 2);               // connection_limit
  CHECK(chain.server->max_open >= 1);
  CHECK(chain.server->open == 0);                   // every session ended
  // Nothing left in flight: the credit came back with the outcomes.
  auto d = chain.stats_of("credit.test");
  CHECK(d.in_flight == 0);
  CHECK(d.queued + d.deferred == 0);
  auto sources = ask_ok<std::vector<source_stats>>(chain.egress, egress_atom::value);
  REQUIRE(sources.size() == 1);
  for (const auto& site : sources[0].sites) {
    CHECK(site.credit_out == 0);
    CHECK(site.ready == 0);
  }
  chain.stop();
}

TEST_CASE_METHOD(actor_fixture, "recipients of one message to one domain share a transaction up to the limit") {
  delivery_chain chain(*this);
  config->delivery.max_recipients_per_transaction = 3;
  auto t = make_tenant("t");
  seed({insert_tenant_op{t, {}}, message_op(make_message(t.id, addresses("u", 7, "batch.test")))});
  chain.start();
  chain.run_for(200ms);
  CHECK(chain.count(recipient_state::delivered) == 7);
  CHECK(chain.server->max_recipients_per_transaction == 3);
  CHECK(chain.server->transactions.size() == 3);  // 3 + 3 + 1
  chain.stop();
}

TEST_CASE_METHOD(actor_fixture, "a temporary failure is retried when its schedule says, not before") {
  delivery_chain chain(*this);
  config->delivery.retry_schedule = {1500ms};
  auto attempts = std::make_shared<int>(0);
  chain.server->code_for = [attempts](const std::string&) { return ++*attempts == 1 ? 451 : 250; };
  auto t = make_tenant("t");
  seed({insert_tenant_op{t, {}}, message_op(make_message(t.id, {"later@retry.test"}))});
  auto before = unix_now_ms();
  chain.start();
  chain.run_for(100ms);
  REQUIRE(*attempts == 1);
  CHECK(chain.count(recipient_state::deferred) == 1);
  auto d = chain.stats_of("retry.test");
  CHECK(d.deferred == 1);
  // The next attempt is one schedule step (1.5 s, no jitter) after the failure.
  CHECK(d.next_attempt_ms >= before + 1500);
  CHECK(d.next_attempt_ms <= unix_now_ms() + 1500);
  chain.run_for(200ms);  // timers fire, but the recipient is not due yet
  CHECK(*attempts == 1);
  while (unix_now_ms() < d.next_attempt_ms) std::this_thread::sleep_for(10ms);
  chain.run_for(100ms);
  CHECK(*attempts == 2);
  CHECK(chain.count(recipient_state::delivered) == 1);
  chain.stop();
}

TEST_CASE_METHOD(actor_fixture, "a recipient past max_age while it waits expires without another attempt") {
  delivery_chain chain(*this);
  config->delivery.retry_schedule = {300ms};
  config->delivery.max_age = 500ms;
  auto attempts = std::make_shared<int>(0);
  chain.server->code_for = [attempts](const std::string&) {
    ++*attempts;
    return 451;
  };
  auto t = make_tenant("t");
  seed({insert_tenant_op{t, {}}, message_op(make_message(t.id, {"slow@expire.test"}))});
  chain.start();
  chain.run_for(100ms);
  REQUIRE(*attempts == 1);
  chain.run_for(900ms);  // the retry at ~300 ms fails again; past 500 ms it expires
  CHECK(chain.count(recipient_state::expired) == 1);
  CHECK(chain.count(recipient_state::deferred) == 0);
  CHECK(*attempts <= 2);  // never tried after max_age
  chain.stop();
}

TEST_CASE_METHOD(actor_fixture, "a suspended domain keeps its recipients until it is resumed") {
  delivery_chain chain(*this);
  control_record hold{"domain", "hold.test", 0, "maintenance", unix_now_ms()};
  settings.shared.controls->set(std::make_shared<const control_snapshot>(std::vector<control_record>{hold}));
  auto t = make_tenant("t");
  seed({insert_tenant_op{t, {}}, message_op(make_message(t.id, addresses("h", 3, "hold.test"))),
        message_op(make_message(t.id, {"free@open.test"}))});
  chain.start();
  chain.run_for(200ms);
  CHECK(chain.server->transactions.size() == 1);  // only open.test
  CHECK(chain.count(recipient_state::delivered) == 1);
  CHECK(chain.count(recipient_state::queued) == 3);
  auto d = chain.stats_of("hold.test");
  CHECK(d.queued == 3);
  CHECK(d.in_flight == 0);
  CHECK_THAT(d.waiting_for, Catch::Contains("suspended"));
  // Resumed: the controls actor would publish the new snapshot and tell domains and egress.
  settings.shared.controls->set(std::make_shared<const control_snapshot>());
  caf::anon_send(chain.domains, controls_atom::value);
  caf::anon_send(chain.egress, controls_atom::value);
  chain.run_for(200ms);
  CHECK(chain.count(recipient_state::delivered) == 4);
  REQUIRE(chain.server->transactions.size() == 2);  // the held message's 3 recipients in one
  CHECK(chain.server->transactions[1].size() == 3);
  chain.stop();
}
