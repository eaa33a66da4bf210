// Actors under the deterministic scheduler: group commit, recovery and supervision of domain
// actors, the ingest bound, tenant rate limits and keys, and the root's rest-for-one restarts.
#include <catch2/catch.hpp>

#include <optional>
#include <string_view>

#include "actor_fixture.hpp"
#include "actors/api_key.hpp"
#include "actors/metrics.hpp"

using namespace petrel;
using namespace petrel::testing;
using namespace std::chrono_literals;

namespace {

std::uint64_t waiting_in(const queue_summary& q, const std::string& domain) {
  for (const auto& d : q.domains)
    if (d.domain == domain) return d.queued + d.deferred;
  return 0;
}

// The actors a submission passes through, started as the root would (without it).
struct submission_chain {
  store_actor store;
  domains_actor domains;
  ingest_actor ingest;
  signer_actor signers;
  tenants_actor tenants;

  explicit submission_chain(actor_fixture& f) {
    store = spawn_store(*f.sys, nullptr, f.factory(), nullptr, f.settings);
    domains = spawn_domains(*f.sys, nullptr, store, resolver_actor{}, egress_actor{}, f.settings);
    ingest = spawn_ingest(*f.sys, nullptr, store, domains, f.settings);
    signers = spawn_signers(*f.sys, nullptr, ingest, f.settings);
    tenants = spawn_tenants(*f.sys, nullptr, store, signers, f.settings);
    f.sched->run();
  }

  void stop() {
    for (auto h : {caf::actor_cast<caf::actor>(tenants), caf::actor_cast<caf::actor>(signers),
                   caf::actor_cast<caf::actor>(ingest), caf::actor_cast<caf::actor>(domains),
                   caf::actor_cast<caf::actor>(store)})
      anon_send_exit(h, caf::exit_reason::user_shutdown);
  }
};

}  // namespace

TEST_CASE_METHOD(actor_fixture, "the store commits concurrent writes in one transaction") {
  auto t = make_tenant("t");
  seed({insert_tenant_op{t, {}}});
  auto store = spawn_store(*sys, nullptr, factory(), nullptr, settings);
  auto commits_before = core().store_commits.value();
  auto results = std::make_shared<int>(0);
  for (int i = 0; i < 50; ++i) {
    auto m = make_message(t.id, {"a@group.example"});
    sys->spawn([=](caf::event_based_actor* self) {
      self->request(store, caf::infinite, persist_atom::value, m)
          .then([=](caf::ok_atom) { ++*results; }, [](caf::error&) {});
    });
  }
  sched->run();
  CHECK(*results == 50);
  CHECK(core().store_commits.value() == commits_before + 1);  // one batch, one fsync
  CHECK(open_store(url, {})->count_recipients(recipient_state::queued) == 50);
  anon_send_exit(store, caf::exit_reason::user_shutdown);
}

TEST_CASE_METHOD(actor_fixture, "domains are recovered from the store on start") {
  auto t = make_tenant("t");
  seed({insert_tenant_op{t, {}}, message_op(make_message(t.id, {"a@one.example", "b@one.example"})),
        message_op(make_message(t.id, {"c@two.example"}))});
  auto store = spawn_store(*sys, nullptr, factory(), nullptr, settings);
  auto domains = spawn_domains(*sys, nullptr, store, resolver_actor{}, egress_actor{}, settings);
  sched->run();
  CHECK(ask_ok<readiness>(domains, ready_atom::value).ready);
  auto q = ask_ok<queue_summary>(domains, stats_atom::value);
  CHECK(q.domain_actors == 2);
  CHECK(waiting_in(q, "one.example") == 2);
  CHECK(waiting_in(q, "two.example") == 1);
  anon_send_exit(domains, caf::exit_reason::user_shutdown);
  anon_send_exit(store, caf::exit_reason::user_shutdown);
}

TEST_CASE_METHOD(actor_fixture, "the domains are not ready until every recovered domain has loaded") {
  auto t = make_tenant("t");
  seed({insert_tenant_op{t, {}}, message_op(make_message(t.id, {"a@one.example", "b@one.example"})),
        message_op(make_message(t.id, {"c@two.example"}))});
  auto store = spawn_store(*sys, nullptr, factory(), nullptr, settings);
  auto domains = spawn_domains(*sys, nullptr, store, resolver_actor{}, egress_actor{}, settings);
  // The store's reader answers the recovery's page of domains, but not yet the domains' loads.
  auto is_reader = [](caf::resumable* job) {
    auto* actor = dynamic_cast<caf::local_actor*>(job);
    return actor && std::string_view(actor->name()) == "store_reader";
  };
  auto not_reader = [&](caf::resumable* job) { return !is_reader(job); };
  sched->run_jobs_filtered(not_reader);
  REQUIRE(sched->run_jobs_filtered(is_reader) >= 1);  // the page of domains (and start-up)
  sched->run_jobs_filtered(not_reader);               // domain actors started, loads asked
  auto answer = std::make_shared<std::optional<readiness>>();
  sys->spawn([=](caf::event_based_actor* self) {
    self->request(domains, caf::infinite, ready_atom::value).then([=](readiness& r) { *answer = r; });
  });
  sched->run_jobs_filtered(not_reader);
  REQUIRE(answer->has_value());
  CHECK_FALSE((*answer)->ready);
  CHECK_THAT((*answer)->reason, Catch::Contains("0 domains loaded, 2 loading"));
  sched->run();
  CHECK(ask_ok<readiness>(domains, ready_atom::value).ready);
  anon_send_exit(domains, caf::exit_reason::user_shutdown);
  anon_send_exit(store, caf::exit_reason::user_shutdown);
}

TEST_CASE_METHOD(actor_fixture, "a crashed domain actor is restarted after its backoff and reloads its recipients") {
  auto t = make_tenant("t");
  seed({insert_tenant_op{t, {}},
        message_op(make_message(t.id, {"a@crash.example", "b@crash.example", "c@crash.example"}))});
  auto store = spawn_store(*sys, nullptr, factory(), nullptr, settings);
  auto domains = spawn_domains(*sys, nullptr, store, resolver_actor{}, egress_actor{}, settings);
  sched->run();
  REQUIRE(waiting_in(ask_ok<queue_summary>(domains, stats_atom::value), "crash.example") == 3);
  auto restarts_before = core().actor_restarts.value();

  CHECK(ask_ok<bool>(domains, crash_atom::value, std::string("crash.example")));
  auto during = ask_ok<queue_summary>(domains, stats_atom::value);
  CHECK(during.restarting == 1);  // waiting out its backoff
  CHECK(waiting_in(during, "crash.example") == 0);
  CHECK(core().actor_restarts.value() == restarts_before + 1);

  sched->advance_time(99ms);
  sched->run();
  CHECK(ask_ok<queue_summary>(domains, stats_atom::value).restarting == 1);
  sched->advance_time(1ms);  // the 100 ms backoff is over
  sched->run();
  auto after = ask_ok<queue_summary>(domains, stats_atom::value);
  CHECK(after.restarting == 0);
  CHECK(waiting_in(after, "crash.example") == 3);  // rebuilt from the store
  anon_send_exit(domains, caf::exit_reason::user_shutdown);
  anon_send_exit(store, caf::exit_reason::user_shutdown);
}

TEST_CASE_METHOD(actor_fixture, "past its restart intensity the domains supervisor fails") {
  config->actors.max_restarts = 2;
  auto t = make_tenant("t");
  seed({insert_tenant_op{t, {}}, message_op(make_message(t.id, {"a@flaky.example"}))});
  auto store = spawn_store(*sys, nullptr, factory(), nullptr, settings);
  auto domains = spawn_domains(*sys, nullptr, store, resolver_actor{}, egress_actor{}, settings);
  sched->run();
  auto down = watch(domains.address());
  for (int crash = 0; crash < 2; ++crash) {
    REQUIRE(ask_ok<bool>(domains, crash_atom::value, std::string("flaky.example")));
    sched->advance_time(1s);  // past any backoff: restarted
    sched->run();
    REQUIRE_FALSE(down->has_value());
  }
  ask<bool>(domains, crash_atom::value, std::string("flaky.example"));  // the third
  sched->run();
  REQUIRE(down->has_value());
  CHECK(error_code(**down) == petrel_errc::unavailable);
  anon_send_exit(store, caf::exit_reason::user_shutdown);
}

TEST_CASE_METHOD(actor_fixture, "ingest refuses submissions past its bound on writes in flight") {
  config->storage.max_pending_writes = 2;
  auto t = make_tenant("t");
  seed({insert_tenant_op{t, {}}});
  auto store = spawn_store(*sys, nullptr, factory(), nullptr, settings);
  auto domains = spawn_domains(*sys, nullptr, store, resolver_actor{}, egress_actor{}, settings);
  auto ingest = spawn_ingest(*sys, nullptr, store, domains, settings);
  sched->run();
  auto outcomes = std::make_shared<std::vector<std::string>>();
  for (int i = 0; i < 3; ++i) {
    auto m = make_message(t.id, {"x@bound.example"});
    sys->spawn([=](caf::event_based_actor* self) {
      self->request(ingest, caf::infinite, submit_atom::value, m)
          .then([=](submit_receipt&) { outcomes->push_back("accepted"); },
                [=](caf::error& e) { outcomes->push_back(to_string(error_code(e))); });
    });
  }
  sched->run();
  // All three reach ingest before the store runs: two go to the store, the third is refused.
  std::sort(outcomes->begin(), outcomes->end());
  CHECK(*outcomes == std::vector<std::string>{"accepted", "accepted", "overloaded"});
  auto q = ask_ok<queue_summary>(domains, stats_atom::value);
  CHECK(waiting_in(q, "bound.example") == 2);  // accepted recipients were routed
  for (auto h : {caf::actor_cast<caf::actor>(ingest), caf::actor_cast<caf::actor>(domains),
                 caf::actor_cast<caf::actor>(store)})
    anon_send_exit(h, caf::exit_reason::user_shutdown);
}

TEST_CASE_METHOD(actor_fixture, "tenants: keys authenticate, rates limit, revoked keys stop working") {
  config->tenants.default_rate = rate{1, "1/s"};
  config->tenants.default_burst = 2;
  submission_chain chain(*this);
  auto& tenants = chain.tenants;

  auto unknown = ask<tenant_identity>(tenants, auth_atom::value, hash_api_key("pk_nope"));
  REQUIRE(std::holds_alternative<caf::error>(unknown));
  CHECK(error_code(std::get<caf::error>(unknown)) == petrel_errc::unauthorized);

  auto created = ask_ok<created_tenant>(tenants, create_atom::value, new_tenant{"acme", 0, 0});
  CHECK(created.key.api_key.rfind("pk_", 0) == 0);
  auto hash = hash_api_key(created.key.api_key);
  CHECK(ask_ok<tenant_identity>(tenants, auth_atom::value, hash).name == "acme");
  auto duplicate = ask<created_tenant>(tenants, create_atom::value, new_tenant{"acme", 0, 0});
  CHECK(error_code(std::get<caf::error>(duplicate)) == petrel_errc::conflict);

  auto submit = [&] {
    return ask<submit_receipt>(tenants, submit_atom::value, hash,
                               make_message(id128{}, {"x@rate.example"}));
  };
  CHECK(std::holds_alternative<submit_receipt>(submit()));
  CHECK(std::holds_alternative<submit_receipt>(submit()));
  auto third = submit();  // burst of 2 at 1/s: the third is over the rate
  REQUIRE(std::holds_alternative<caf::error>(third));
  petrel_errc code;
  std::string detail;
  std::int64_t retry_ms = 0;
  REQUIRE(read_error(std::get<caf::error>(third), code, detail, retry_ms));
  CHECK(code == petrel_errc::rate_limited);
  CHECK(retry_ms > 0);
  CHECK(retry_ms <= 1001);

  // The stored message belongs to the tenant the key named.
  CHECK(open_store(url, {})->count_recipients(recipient_state::queued) == 2);

  auto key_id = created.key.key.id;
  CHECK(std::holds_alternative<caf::ok_atom>(
      ask<caf::ok_atom>(tenants, revoke_atom::value, created.tenant.id, key_id)));
  auto revoked = ask<tenant_identity>(tenants, auth_atom::value, hash);
  CHECK(error_code(std::get<caf::error>(revoked)) == petrel_errc::unauthorized);
  CHECK(open_store(url, {})->load_active_api_keys().empty());
  chain.stop();
}

TEST_CASE_METHOD(actor_fixture, "backpressure: past the waiting bounds submissions are refused until the backlog shrinks") {
  config->shaping.max_waiting_recipients = 3;
  config->shaping.max_waiting_per_tenant = 2;
  submission_chain chain(*this);
  auto& domains = chain.domains;
  auto& tenants = chain.tenants;
  auto a = ask_ok<created_tenant>(tenants, create_atom::value, new_tenant{"a", 0, 0});
  auto b = ask_ok<created_tenant>(tenants, create_atom::value, new_tenant{"b", 0, 0});
  auto submit = [&](const created_tenant& t, const std::string& to) {
    return ask<submit_receipt>(tenants, submit_atom::value, hash_api_key(t.key.api_key),
                               make_message(id128{}, {to}));
  };
  auto refused_with = [&](std::variant<submit_receipt, caf::error> r) {
    REQUIRE(std::holds_alternative<caf::error>(r));
    petrel_errc code{};
    std::string detail;
    std::int64_t retry_ms = 0;
    REQUIRE(read_error(std::get<caf::error>(r), code, detail, retry_ms));
    CHECK(retry_ms == 5000);  // answered as Retry-After
    return code;
  };
  CHECK(std::holds_alternative<submit_receipt>(submit(a, "x1@one.example")));
  CHECK(std::holds_alternative<submit_receipt>(submit(a, "x2@two.example")));
  // Tenant a holds its own bound of 2 waiting recipients: a alone is refused (429) ...
  CHECK(refused_with(submit(a, "x3@one.example")) == petrel_errc::rate_limited);
  // ... while b still gets in, up to the node's bound of 3; then everyone gets 503.
  CHECK(std::holds_alternative<submit_receipt>(submit(b, "y1@one.example")));
  CHECK(refused_with(submit(b, "y2@two.example")) == petrel_errc::overloaded);
  CHECK(settings.shared.backlog->total() == 3);
  CHECK(settings.shared.backlog->of(a.tenant.id) == 2);
  // Refused submissions left nothing behind.
  CHECK(open_store(url, {})->count_recipients(recipient_state::queued) == 3);
  // The backlog shrinks (here: an operator cancels one.example's queue) and credit returns.
  CHECK(ask_ok<std::uint64_t>(domains, cancel_atom::value, std::string("one.example"), id128{},
                              std::string("test")) == 2);
  CHECK(settings.shared.backlog->total() == 1);
  CHECK(std::holds_alternative<submit_receipt>(submit(a, "x3@one.example")));
  CHECK(std::holds_alternative<submit_receipt>(submit(b, "y2@two.example")));
  CHECK(settings.shared.backlog->total() == 3);
  chain.stop();
}

TEST_CASE_METHOD(actor_fixture, "the first tenant is created only in an empty store") {
  submission_chain chain(*this);
  auto& tenants = chain.tenants;
  auto first = ask_ok<created_tenant>(tenants, bootstrap_atom::value, std::string("default"));
  CHECK(first.tenant.name == "default");
  auto second = ask_ok<created_tenant>(tenants, bootstrap_atom::value, std::string("default"));
  CHECK(second.tenant.id.empty());
  CHECK(ask_ok<std::vector<tenant_summary>>(tenants, list_atom::value).size() == 1);
  chain.stop();
}

TEST_CASE_METHOD(actor_fixture, "the root restarts a crashed child and the children after it") {
  auto directory = std::make_shared<service_directory>();
  auto root = spawn_root(*sys, factory(), nullptr, settings, directory, nullptr);
  sched->run();
  auto before = directory->get();
  REQUIRE(before->domains);
  CHECK(ask_ok<readiness>(root, ready_atom::value).ready);

  // Crash the domains supervisor: domains, ingest and tenants start anew; the store stays.
  // (Not exit_reason::kill: that one cannot be trapped and takes every linked actor along.)
  auto target = caf::actor_cast<caf::actor>(before->domains);
  sys->spawn([=](caf::event_based_actor* self) {
    self->send_exit(target, caf::make_error(caf::sec::runtime_error, "injected crash"));
  });
  sched->run();
  sched->advance_time(100ms);
  sched->run();
  auto after = directory->get();
  CHECK(after->store == before->store);
  CHECK(after->domains != before->domains);
  CHECK(after->ingest != before->ingest);
  CHECK(after->tenants != before->tenants);
  CHECK(ask_ok<readiness>(root, ready_atom::value).ready);

  auto created = ask_ok<created_tenant>(after->tenants, create_atom::value, new_tenant{"n", 0, 0});
  auto receipt = ask_ok<submit_receipt>(after->tenants, submit_atom::value,
                                        hash_api_key(created.key.api_key),
                                        make_message(id128{}, {"x@after.example"}));
  CHECK(receipt.recipients.size() == 1);
  CHECK(ask_ok<caf::ok_atom>(root, shutdown_atom::value) == caf::ok_atom::value);
}
