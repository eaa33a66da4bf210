// The store's semantics, as every backend must provide them: migrations, group-committed
// batches with per-operation failure, tenant isolation, waiting-recipient queries, durability.
#include <catch2/catch.hpp>

#include <algorithm>
#include <limits>
#include <thread>

#include "storage/schema.hpp"
#include "test_database.hpp"

using namespace petrel;
using namespace petrel::testing;

namespace {

// A query's events once at least n are visible. On PostgreSQL an event is listed once every
// older transaction of the server has ended, and other tests' databases share the server: poll,
// within a bound. (Once visible, an event stays visible.)
std::vector<event_view> events_when_visible(store& s, const event_query& q, std::size_t n) {
  std::vector<event_view> page;
  for (int i = 0; i < 500; ++i) {
    page = s.list_events(q);
    if (page.size() >= n) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return page;
}

std::unique_ptr<store> open_migrated(const std::string& url) {
  auto s = open_store(url, store_options{});
  s->migrate();
  return s;
}

}  // namespace

TEST_CASE("store: migrations run once and reach the newest version", "[store]") {
  test_database db(GENERATE(from_range(test_backends())));
  auto s = open_migrated(db.url());
  CHECK(s->schema_version() == schema_migrations().back().version);
  s->migrate();  // again: nothing to do, no error
  CHECK(s->schema_version() == schema_migrations().back().version);
}

TEST_CASE("store: tenants and keys are stored and loaded; revoked keys drop out", "[store]") {
  test_database db(GENERATE(from_range(test_backends())));
  auto s = open_migrated(db.url());
  auto t = make_tenant("acme");
  api_key_record k1{new_id(), t.id, "hash1", "pk_aaaaaa", 5, 0};
  api_key_record k2{new_id(), t.id, "hash2", "pk_bbbbbb", 6, 0};
  auto results = s->apply({insert_tenant_op{t, {k1}}, insert_api_key_op{k2}});
  CHECK(results == std::vector<std::string>{"", ""});
  auto tenants = s->load_tenants();
  REQUIRE(tenants.size() == 1);
  CHECK(tenants[0].name == "acme");
  CHECK(s->load_active_api_keys().size() == 2);
  CHECK(s->apply({revoke_api_key_op{k1.id, t.id, 99}}) == std::vector<std::string>{""});
  auto keys = s->load_active_api_keys();
  REQUIRE(keys.size() == 1);
  CHECK(keys[0].key_hash == "hash2");
  // Revoking again, or another tenant's key, fails alone.
  auto again = s->apply({revoke_api_key_op{k1.id, t.id, 100}});
  CHECK_FALSE(again[0].empty());
}

TEST_CASE("store: a failing operation fails alone; the rest of the batch commits", "[store]") {
  test_database db(GENERATE(from_range(test_backends())));
  auto s = open_migrated(db.url());
  auto a = make_tenant("a");
  auto duplicate = make_tenant("a");  // same name: UNIQUE violation
  auto b = make_tenant("b");
  auto m = make_message(a.id, {"x@example.net"});
  auto results = s->apply({insert_tenant_op{a, {}}, insert_tenant_op{duplicate, {}},
                           insert_tenant_op{b, {}}, message_op(m)});
  REQUIRE(results.size() == 4);
  CHECK(results[0].empty());
  CHECK_THAT(results[1], Catch::Contains("unique", Catch::CaseSensitive::No));
  CHECK(results[2].empty());
  CHECK(results[3].empty());
  CHECK(s->load_tenants().size() == 2);
  CHECK(s->find_message(a.id, m.id));
}

TEST_CASE("store: a message is found with recipients and events, only by its tenant", "[store]") {
  test_database db(GENERATE(from_range(test_backends())));
  auto s = open_migrated(db.url());
  auto a = make_tenant("a");
  auto b = make_tenant("b");
  auto m = make_message(a.id, {"x@example.net", "y@example.org"});
  s->apply({insert_tenant_op{a, {}}, insert_tenant_op{b, {}}, message_op(m)});
  auto found = s->find_message(a.id, m.id);
  REQUIRE(found);
  CHECK(found->message.subject == "s");
  CHECK(found->message.size == m.size);
  CHECK(found->message.content.empty());  // bodies are not read for views
  REQUIRE(found->message.recipients.size() == 2);
  CHECK(found->message.recipients[0].address == "x@example.net");
  CHECK(found->message.recipients[0].state == recipient_state::queued);
  REQUIRE(found->events.size() == 1);
  CHECK(found->events[0].type == "accepted");
  CHECK_FALSE(s->find_message(b.id, m.id));       // another tenant's message: not found
  CHECK_FALSE(s->find_message(a.id, new_id()));   // no such message
}

TEST_CASE("store: waiting recipients are listed by domain, in pages", "[store]") {
  test_database db(GENERATE(from_range(test_backends())));
  auto s = open_migrated(db.url());
  auto t = make_tenant("t");
  std::vector<write_op> ops{insert_tenant_op{t, {}}};
  for (int i = 0; i < 30; ++i)
    ops.push_back(message_op(make_message(t.id, {"r" + std::to_string(i) + "@d" +
                                                     std::to_string(i % 7) + ".example"})));
  s->apply(ops);
  std::vector<std::string> domains;
  std::string after;
  for (;;) {
    auto page = s->pending_domains(after, 3);
    domains.insert(domains.end(), page.begin(), page.end());
    if (page.size() < 3) break;
    after = page.back();
  }
  CHECK(domains == std::vector<std::string>{"d0.example", "d1.example", "d2.example", "d3.example",
                                            "d4.example", "d5.example", "d6.example"});
  auto d0 = s->pending_recipients_of_domain("d0.example");
  CHECK(d0.size() == 5);  // i = 0, 7, 14, 21, 28
  for (const auto& r : d0) {
    CHECK(r.domain == "d0.example");
    CHECK(r.tenant_id == t.id);
    CHECK(r.state == recipient_state::queued);
  }
  CHECK(s->count_recipients(recipient_state::queued) == 30);
}

TEST_CASE("store: a domain's queue is summed up per class and read in pages by due time", "[store]") {
  test_database db(GENERATE(from_range(test_backends())));
  auto s = open_migrated(db.url());
  auto a = make_tenant("a");
  auto b = make_tenant("b");
  std::vector<write_op> ops{insert_tenant_op{a, {}}, insert_tenant_op{b, {}}};
  std::vector<id128> a_ids;
  for (int i = 0; i < 10; ++i) {
    auto m = make_message(a.id, {"r" + std::to_string(i) + "@q.example"});
    m.recipients[0].next_attempt_at_ms = 1000 + (9 - i) * 100;  // the last accepted is due first
    a_ids.push_back(m.recipients[0].id);
    ops.push_back(message_op(m));
  }
  auto mb = make_message(b.id, {"x@q.example", "y@q.example", "z@other.example"});
  for (auto& r : mb.recipients) r.priority = 1;
  ops.push_back(message_op(mb));
  s->apply(ops);

  auto summary = s->queue_summary("q.example");
  REQUIRE(summary.size() == 2);
  std::sort(summary.begin(), summary.end(), [&](const auto& x, const auto& y) { return x.tenant_id == a.id && y.tenant_id != a.id; });
  CHECK(summary[0].tenant_id == a.id);
  CHECK(summary[0].priority == 0);
  CHECK(summary[0].queued == 10);
  CHECK(summary[0].deferred == 0);
  CHECK(summary[0].next_due_ms == 1000);
  CHECK(summary[0].max_id == *std::max_element(a_ids.begin(), a_ids.end()));
  CHECK(summary[1].tenant_id == b.id);
  CHECK(summary[1].priority == 1);
  CHECK(summary[1].queued == 2);

  // Pages of 4 in (due, id) order: a_ids from the last to the first.
  queue_page_query q{"q.example", a.id, 0, std::numeric_limits<std::int64_t>::min(), id128{}, 5000, 4};
  std::vector<id128> read;
  for (int pages = 0; pages < 5; ++pages) {
    auto page = s->read_queue_page(q);
    for (const auto& r : page.recipients) read.push_back(r.recipient_id);
    if (page.recipients.size() < q.limit) {
      CHECK_FALSE(page.has_later);
      break;
    }
    q.after_due_ms = page.recipients.back().next_attempt_at_ms;
    q.after_id = page.recipients.back().recipient_id;
  }
  CHECK(read == std::vector<id128>(a_ids.rbegin(), a_ids.rend()));
  // Up to a time only; the first due time after it is told.
  auto early = s->read_queue_page({"q.example", a.id, 0, std::numeric_limits<std::int64_t>::min(), id128{}, 1250, 100});
  CHECK(early.recipients.size() == 3);  // due 1000, 1100, 1200
  CHECK(early.has_later);
  CHECK(early.later_due_ms == 1300);
  // Another class, another priority: apart.
  CHECK(s->read_queue_page({"q.example", b.id, 0, std::numeric_limits<std::int64_t>::min(), id128{}, 5000, 100})
            .recipients.empty());
  CHECK(s->read_queue_page({"q.example", b.id, 1, std::numeric_limits<std::int64_t>::min(), id128{}, 5000, 100})
            .recipients.size() == 2);

  // A deferral moves a recipient in the order and between the counts; a final one leaves.
  auto update = [&](const id128& id, recipient_state state, std::int64_t next) {
    event_record e;
    e.id = new_id();
    e.tenant_id = a.id;
    e.message_id = id;
    e.recipient_id = id;
    e.type = std::string(to_string(state));
    e.at_ms = 3000;
    e.data_json = "{}";
    return recipient_update{id, state, 1, next, "451", e};
  };
  s->apply({update_recipients_op{{update(a_ids[9], recipient_state::deferred, 9000),
                                  update(a_ids[8], recipient_state::delivered, 0)}}});
  summary = s->queue_summary("q.example");
  for (const auto& c : summary)
    if (c.tenant_id == a.id) {
      CHECK(c.queued == 8);
      CHECK(c.deferred == 1);
      CHECK(c.next_due_ms == 1200);
    }
  auto last = s->read_queue_page({"q.example", a.id, 0, 1900, a_ids[0], 100000, 100});
  REQUIRE(last.recipients.size() == 1);
  CHECK(last.recipients[0].recipient_id == a_ids[9]);
  CHECK(last.recipients[0].state == recipient_state::deferred);

  // A flush makes everything waiting later than now due now; the order follows.
  CHECK(s->apply({flush_recipients_op{"q.example", 1500}}) == std::vector<std::string>{""});
  auto all = s->read_queue_page({"q.example", a.id, 0, std::numeric_limits<std::int64_t>::min(), id128{}, 100000, 100});
  REQUIRE(all.recipients.size() == 9);
  for (const auto& r : all.recipients) CHECK(r.next_attempt_at_ms <= 1500);
  CHECK(all.recipients.back().recipient_id == a_ids[9]);  // (1500, the highest id)
  CHECK(s->pending_domains("", 10) == std::vector<std::string>{"other.example", "q.example"});
}

TEST_CASE("store: what was committed is there after reopening", "[store]") {
  test_database db(GENERATE(from_range(test_backends())));
  auto t = make_tenant("t");
  auto m = make_message(t.id, {"x@example.net"});
  {
    auto s = open_migrated(db.url());
    s->apply({insert_tenant_op{t, {}}, message_op(m)});
  }
  auto s = open_migrated(db.url());
  auto found = s->find_message(t.id, m.id);
  REQUIRE(found);
  CHECK(found->message.recipients.size() == 1);
  CHECK(s->pending_recipients_of_domain("example.net").size() == 1);
}

TEST_CASE("store: a large batch commits as one", "[store]") {
  test_database db(GENERATE(from_range(test_backends())));
  auto s = open_migrated(db.url());
  auto t = make_tenant("t");
  std::vector<write_op> ops{insert_tenant_op{t, {}}};
  for (int i = 0; i < 5000; ++i) ops.push_back(message_op(make_message(t.id, {"a@big.example"})));
  auto results = s->apply(ops);
  CHECK(std::count(results.begin(), results.end(), std::string()) == 5001);
  CHECK(s->count_recipients(recipient_state::queued) == 5000);
}

TEST_CASE("store: concurrent writers on separate connections all commit", "[store]") {
  test_database db(GENERATE(from_range(test_backends())));
  auto url = db.url();
  auto t = make_tenant("t");
  open_migrated(url)->apply({insert_tenant_op{t, {}}});
  std::vector<std::thread> writers;
  for (int w = 0; w < 4; ++w)
    writers.emplace_back([&] {
      auto s = open_store(url, store_options{});
      for (int i = 0; i < 50; ++i) s->apply({message_op(make_message(t.id, {"a@c.example"}))});
    });
  for (auto& w : writers) w.join();
  CHECK(open_migrated(url)->count_recipients(recipient_state::queued) == 200);
}

TEST_CASE("store: unusable locations and URLs fail with a store_error", "[store]") {
  CHECK_THROWS_AS(open_store("mysql://x", store_options{}), store_error);
  CHECK_THROWS_AS(open_store("sqlite:", store_options{}), store_error);
  CHECK_THROWS_AS(open_store("sqlite:/proc/petrel/x.db", store_options{}), store_error);
  // Nothing listens on port 1: refused at once, reported as a store error.
  CHECK_THROWS_AS(open_store("postgresql://postgres@127.0.0.1:1/x", store_options{}), store_error);
}

TEST_CASE("store: updates of recipients commit with their events", "[store]") {
  test_database db(GENERATE(from_range(test_backends())));
  auto s = open_migrated(db.url());
  auto t = make_tenant("t");
  auto m = make_message(t.id, {"a@up.example", "b@up.example"});
  s->apply({insert_tenant_op{t, {}}, message_op(m)});
  auto event = [&](const recipient_record& r, const char* type) {
    event_record e;
    e.id = new_id();
    e.tenant_id = t.id;
    e.message_id = m.id;
    e.recipient_id = r.id;
    e.type = type;
    e.at_ms = 5000;
    e.data_json = "{\"attempt\":1}";
    return e;
  };
  recipient_update delivered{m.recipients[0].id, recipient_state::delivered, 1, 0, "250 ok",
                             event(m.recipients[0], "delivered")};
  recipient_update deferred{m.recipients[1].id, recipient_state::deferred, 1, 9000, "451 later",
                            event(m.recipients[1], "deferred")};
  recipient_update ghost{new_id(), recipient_state::delivered, 1, 0, "250", event(m.recipients[0], "delivered")};
  CHECK(s->apply({update_recipients_op{{delivered, deferred}}, update_recipients_op{{ghost}}}) ==
        std::vector<std::string>{"", ""});  // a recipient that is gone is skipped
  auto found = s->find_message(t.id, m.id);
  REQUIRE(found);
  CHECK(found->message.recipients[0].state == recipient_state::delivered);
  CHECK(found->message.recipients[0].last_reply == "250 ok");
  CHECK(found->message.recipients[1].state == recipient_state::deferred);
  CHECK(found->message.recipients[1].next_attempt_at_ms == 9000);
  CHECK(found->events.size() == 4);  // accepted + delivered + deferred + the ghost's event
  auto waiting = s->pending_recipients_of_domain("up.example");
  REQUIRE(waiting.size() == 1);
  CHECK(waiting[0].state == recipient_state::deferred);
  CHECK(waiting[0].attempts == 1);
}

TEST_CASE("store: delivery content is the exact message and the addresses in order", "[store]") {
  test_database db(GENERATE(from_range(test_backends())));
  auto s = open_migrated(db.url());
  auto t = make_tenant("t");
  auto m = make_message(t.id, {"a@c.example", "b@c.example"});
  m.content = "From: x@y.example\r\n\r\nbinary ";
  m.content += std::string{'\0', '\xff', '\xfe'};  // bytes the store must keep as they are
  m.content += " ok\r\n";
  s->apply({insert_tenant_op{t, {}}, message_op(m)});
  auto d = s->load_delivery(m.id, {m.recipients[1].id, m.recipients[0].id});
  REQUIRE(d);
  CHECK(d->content == m.content);
  CHECK(d->mail_from == "app@example.com");
  CHECK(d->addresses == std::vector<std::string>{"b@c.example", "a@c.example"});
  CHECK_FALSE(s->load_delivery(m.id, {new_id()}));
  CHECK_FALSE(s->load_delivery(new_id(), {}));
}

TEST_CASE("store: updating or revoking what does not exist fails alone", "[store]") {
  test_database db(GENERATE(from_range(test_backends())));
  auto s = open_migrated(db.url());
  auto t = make_tenant("t");
  auto ghost = make_tenant("ghost");
  auto results = s->apply({insert_tenant_op{t, {}}, update_tenant_op{ghost},
                           revoke_api_key_op{new_id(), t.id, 1}, insert_tenant_op{make_tenant("u"), {}}});
  CHECK(results[0].empty());
  CHECK_THAT(results[1], Catch::Contains("no such tenant"));
  CHECK_THAT(results[2], Catch::Contains("no such active key"));
  CHECK(results[3].empty());
  CHECK(s->load_tenants().size() == 2);
}

TEST_CASE("store: suppressions are per tenant, paged, replaced, expired and checked at delivery",
          "[store]") {
  test_database db(GENERATE(from_range(test_backends())));
  auto s = open_migrated(db.url());
  auto t = make_tenant("t");
  auto u = make_tenant("u");
  auto m = make_message(t.id, {"Gone@Dead.example", "fine@dead.example", "later@dead.example"});
  m.bulk = true;
  m.from_domain = "example.com";
  auto sup = [](const id128& tenant, std::string address, std::string reason, std::int64_t expires) {
    suppression_record r;
    r.tenant_id = tenant;
    r.address = std::move(address);
    r.reason = std::move(reason);
    r.source_event = "ev";
    r.created_at_ms = 1000;
    r.expires_at_ms = expires;
    return upsert_suppression_op{r};
  };
  auto results = s->apply({insert_tenant_op{t, {}}, insert_tenant_op{u, {}}, message_op(m),
                           sup(t.id, suppression_key("Gone@DEAD.example"), "hard_bounce", 0),
                           sup(t.id, "a@x.example", "complaint", 0),
                           sup(t.id, "b@x.example", "manual", 0),
                           sup(t.id, "old@x.example", "soft_bounce_streak", 1),  // expired
                           sup(u.id, "a@x.example", "manual", 0)});
  for (const auto& r : results) CHECK(r.empty());
  CHECK(suppression_key("Gone@DEAD.example") == "Gone@dead.example");

  auto page = s->list_suppressions(t.id, "", "", 2);
  REQUIRE(page.size() == 2);
  CHECK(page[0].address == "Gone@dead.example");  // address order, upper case first
  CHECK(page[1].address == "a@x.example");
  auto rest = s->list_suppressions(t.id, "", page.back().address, 10);
  REQUIRE(rest.size() == 1);
  CHECK(rest[0].address == "b@x.example");  // the expired one is not listed
  CHECK(s->list_suppressions(t.id, "complaint", "", 10).size() == 1);
  CHECK(s->list_suppressions(u.id, "", "", 10).size() == 1);
  CHECK(s->tenant_suppressions(t.id, 10'000).size() == 3);
  CHECK_FALSE(s->find_suppression(t.id, "old@x.example"));
  auto found = s->find_suppression(t.id, "a@x.example");
  REQUIRE(found);
  CHECK(found->reason == "complaint");
  CHECK(found->source_event == "ev");

  // Replaced, then lifted; lifting what is not there fails alone.
  CHECK(s->apply({sup(t.id, "a@x.example", "unsubscribe", 0)})[0].empty());
  CHECK(s->find_suppression(t.id, "a@x.example")->reason == "unsubscribe");
  auto lifted = s->apply({delete_suppression_op{t.id, "a@x.example"}, delete_suppression_op{t.id, "a@x.example"}});
  CHECK(lifted[0].empty());
  CHECK_THAT(lifted[1], Catch::Contains("no such suppression"));

  // The delivery check sees the tenant's list (domain case-insensitive), and the message flags.
  auto d = s->load_delivery(m.id, {m.recipients[0].id, m.recipients[1].id});
  REQUIRE(d);
  CHECK(d->suppressed == std::vector<std::uint8_t>{1, 0});
  CHECK(d->bulk);
  CHECK(d->tenant_id == t.id);
  CHECK(d->from_domain == "example.com");

  // Soft-bounce streaks are kept, replaced and removed.
  CHECK(s->apply({set_soft_bounce_op{t.id, "s@x.example", 1, 500}})[0].empty());
  CHECK(s->apply({set_soft_bounce_op{t.id, "s@x.example", 2, 500}})[0].empty());
  auto streaks = s->tenant_soft_bounces(t.id);
  REQUIRE(streaks.size() == 1);
  CHECK(streaks[0].count == 2);
  CHECK(streaks[0].first_at_ms == 500);
  CHECK(s->apply({set_soft_bounce_op{t.id, "s@x.example", 0, 0}})[0].empty());
  CHECK(s->tenant_soft_bounces(t.id).empty());
}

TEST_CASE("store: recipients are found by id and by their message's Message-ID", "[store]") {
  test_database db(GENERATE(from_range(test_backends())));
  auto s = open_migrated(db.url());
  auto t = make_tenant("t");
  auto m = make_message(t.id, {"a@f.example", "b@f.example"});
  s->apply({insert_tenant_op{t, {}}, message_op(m)});
  auto one = s->find_recipient(m.recipients[1].id);
  REQUIRE(one);
  CHECK(one->address == "b@f.example");
  CHECK(one->message_id == m.id);
  CHECK(one->tenant_id == t.id);
  CHECK(one->state == recipient_state::queued);
  CHECK_FALSE(s->find_recipient(new_id()));
  auto all = s->recipients_by_message_id_header(m.message_id_header);
  REQUIRE(all.size() == 2);
  CHECK(all[0].address == "a@f.example");
  CHECK(s->recipients_by_message_id_header("<nothing@here>").empty());
}

TEST_CASE("store: recipients suppressed at submission get their events", "[store]") {
  test_database db(GENERATE(from_range(test_backends())));
  auto s = open_migrated(db.url());
  auto t = make_tenant("t");
  auto m = make_message(t.id, {"a@g.example"});
  m.recipients[0].state = recipient_state::suppressed;
  auto op = message_op(m);  // with the accepted event and the recipient's suppressed event
  REQUIRE(op.events.size() == 1);
  CHECK(op.events[0].recipient_id == m.recipients[0].id);
  s->apply({insert_tenant_op{t, {}}, op});
  auto found = s->find_message(t.id, m.id);
  REQUIRE(found);
  CHECK(found->events.size() == 2);
  CHECK(found->message.recipients[0].state == recipient_state::suppressed);
  CHECK(s->pending_recipients_of_domain("g.example").empty());
}

TEST_CASE("store: events are paged in sequence order with filters, per tenant, and pruned", "[store]") {
  test_database db(GENERATE(from_range(test_backends())));
  auto s = open_migrated(db.url());
  auto t = make_tenant("t");
  auto other = make_tenant("other");
  auto m1 = make_message(t.id, {"a@ev.example", "b@ev.example"});
  m1.campaign = "spring";
  m1.tags_json = "[\"x\"]";
  auto m2 = make_message(t.id, {"c@ev.example"});
  auto m3 = make_message(other.id, {"d@ev.example"});
  s->apply({insert_tenant_op{t, {}}, insert_tenant_op{other, {}}, message_op(m1), message_op(m2),
            message_op(m3)});
  auto event = [&](const message_record& m, std::size_t r, const char* type, std::int64_t at) {
    event_record e;
    e.id = new_id();
    e.tenant_id = m.tenant_id;
    e.message_id = m.id;
    e.recipient_id = m.recipients[r].id;
    e.type = type;
    e.at_ms = at;
    e.data_json = "{}";
    return append_event_op{e};
  };
  s->apply({event(m1, 0, "delivered", 3000), event(m1, 1, "deferred", 3001), event(m2, 0, "bounced", 3002),
            event(m3, 0, "delivered", 3003)});
  event_query q;
  q.tenant_id = t.id;
  auto all = events_when_visible(*s, q, 5);
  REQUIRE(all.size() == 5);  // 2 accepted + 3 recipient events; none of the other tenant
  for (std::size_t i = 1; i < all.size(); ++i) CHECK(all[i].seq > all[i - 1].seq);
  CHECK(all[2].event.type == "delivered");
  CHECK(all[2].recipient == "a@ev.example");
  CHECK(all[2].campaign == "spring");
  CHECK(all[2].tags_json == "[\"x\"]");
  // Pages of two, continued from the last position, give each event once.
  q.limit = 2;
  std::vector<std::int64_t> seen;
  for (int page = 0; page < 5; ++page) {
    auto p = s->list_events(q);
    for (const auto& v : p) seen.push_back(v.seq);
    if (p.size() < 2) break;
    q.after_seq = p.back().seq;
  }
  CHECK(seen.size() == 5);
  q = event_query{};
  q.tenant_id = t.id;
  q.types = "delivered,bounced";
  CHECK(s->list_events(q).size() == 2);
  q.types.clear();
  q.recipient = "b@ev.example";
  REQUIRE(s->list_events(q).size() == 1);
  CHECK(s->list_events(q)[0].event.type == "deferred");
  q.recipient.clear();
  q.campaign = "spring";
  CHECK(s->list_events(q).size() == 3);  // m1's accepted + 2
  q.campaign.clear();
  q.message_id = m2.id;
  CHECK(s->list_events(q).size() == 2);
  q.message_id = id128{};
  q.since_ms = 3001;
  q.until_ms = 3002;
  CHECK(s->list_events(q).size() == 1);
  q.since_ms = 946684800000;  // real times are past 32 bits
  q.until_ms = 4102444800000;
  CHECK(s->list_events(q).empty());
  CHECK(s->count_events_after(t.id, "", 0, 100) == 5);
  CHECK(s->count_events_after(t.id, "", 0, 3) == 3);
  CHECK(s->count_events_after(t.id, "delivered", all[2].seq, 100) == 0);
  // Pruning deletes old events but never the newest one, so numbers are never reused.
  CHECK(s->apply({prune_events_op{5000, 1000}}) == std::vector<std::string>{""});
  event_query everything;
  everything.tenant_id = other.id;
  auto left = s->list_events(everything);
  REQUIRE(left.size() == 1);
  CHECK(left[0].event.type == "delivered");  // the newest event of all
  s->apply({event(m2, 0, "complained", 6000)});
  everything.tenant_id = t.id;
  auto after = events_when_visible(*s, everything, 1);  // (visible once older transactions end)
  REQUIRE(after.size() == 1);
  CHECK(after[0].seq > left[0].seq);
}

TEST_CASE("store: webhooks start at the newest event and keep their state", "[store]") {
  test_database db(GENERATE(from_range(test_backends())));
  auto s = open_migrated(db.url());
  auto t = make_tenant("t");
  auto m = make_message(t.id, {"a@wh.example"});
  s->apply({insert_tenant_op{t, {}}, message_op(m)});
  webhook_record w;
  w.id = new_id();
  w.tenant_id = t.id;
  w.url = "https://hooks.example/petrel";
  w.event_types = "delivered,bounced";
  w.secret = "s3cret";
  w.created_at_ms = 10;
  CHECK(s->apply({insert_webhook_op{w}}) == std::vector<std::string>{""});
  auto loaded = s->load_webhooks();
  REQUIRE(loaded.size() == 1);
  event_query q;
  q.tenant_id = t.id;
  CHECK(loaded[0].cursor == events_when_visible(*s, q, 1).back().seq);  // the accepted event is behind it
  CHECK(loaded[0].url == w.url);
  CHECK(loaded[0].state == "active");
  auto u = loaded[0];
  u.cursor += 5;
  u.state = "paused";
  u.paused_reason = "too many events waiting";
  u.failures = 3;
  u.last_error = "HTTP 500";
  u.delivered = 42;
  CHECK(s->apply({update_webhook_op{u}}) == std::vector<std::string>{""});
  auto again = s->load_webhooks();
  CHECK(again[0].cursor == u.cursor);
  CHECK(again[0].state == "paused");
  CHECK(again[0].failures == 3);
  CHECK(again[0].delivered == 42);
  CHECK(s->apply({rotate_webhook_op{w.id, "new-secret", "s3cret", 99}}) == std::vector<std::string>{""});
  auto rotated = s->load_webhooks();
  CHECK(rotated[0].secret == "new-secret");
  CHECK(rotated[0].previous_secret == "s3cret");
  CHECK(rotated[0].previous_until_ms == 99);
  // Only its own tenant deletes it.
  auto wrong = s->apply({delete_webhook_op{new_id(), w.id}});
  CHECK_FALSE(wrong[0].empty());
  CHECK(s->apply({delete_webhook_op{t.id, w.id}}) == std::vector<std::string>{""});
  CHECK(s->load_webhooks().empty());
}

TEST_CASE("store: node values are set, replaced and read back", "[store]") {
  test_database db(GENERATE(from_range(test_backends())));
  auto s = open_migrated(db.url());
  CHECK_FALSE(s->node_value("first_start_completed_at"));
  CHECK(s->apply({set_node_value_op{"first_start_completed_at", "1", 1}}) == std::vector<std::string>{""});
  CHECK(s->apply({set_node_value_op{"first_start_completed_at", "2", 2}}) == std::vector<std::string>{""});
  CHECK(s->node_value("first_start_completed_at") == std::optional<std::string>("2"));
}

TEST_CASE("store: several tenants may claim one sender domain, each tenant once", "[store]") {
  test_database db(GENERATE(from_range(test_backends())));
  auto s = open_migrated(db.url());
  auto a = make_tenant("a");
  auto b = make_tenant("b");
  REQUIRE(s->apply({insert_tenant_op{a, {}}, insert_tenant_op{b, {}}}) == std::vector<std::string>{"", ""});
  auto claim = [](const id128& tenant, const std::string& selector) {
    sender_domain_record d;
    d.id = new_id();
    d.tenant_id = tenant;
    d.domain = "shared.example";
    d.created_at_ms = 1;
    dkim_key_record k;
    k.id = new_id();
    k.domain_id = d.id;
    k.selector = selector;
    k.algorithm = "rsa-sha256";
    k.private_key = "pem";
    k.public_key = "pub";
    k.created_at_ms = 1;
    k.state = "active";
    d.keys.push_back(k);
    return insert_sender_domain_op{d};
  };
  auto results = s->apply({claim(a.id, "sa"), claim(b.id, "sb"), claim(a.id, "sa2")});
  CHECK(results[0].empty());
  CHECK(results[1].empty());
  CHECK_FALSE(results[2].empty());  // the same tenant twice
  auto domains = s->load_sender_domains();
  REQUIRE(domains.size() == 2);
  for (const auto& d : domains) {
    REQUIRE(d.keys.size() == 1);
    CHECK(d.keys[0].selector == (d.tenant_id == a.id ? "sa" : "sb"));
  }
}

TEST_CASE("store: retention empties old content and deletes old rows, never of a waiting recipient", "[store]") {
  test_database db(GENERATE(from_range(test_backends())));
  auto s = open_migrated(db.url());
  auto t = make_tenant("t");
  auto finished = [&](std::int64_t created, const char* address) {
    auto m = make_message(t.id, {address});
    m.created_at_ms = created;
    return m;
  };
  auto old_done = finished(1000, "a@ret.example");      // final long ago: row and content go
  auto recent_done = finished(5000, "b@ret.example");   // final: only its content goes
  auto old_waiting = finished(1000, "c@ret.example");   // still deferred: kept whole
  auto young = finished(9000, "d@ret.example");         // final but young: kept whole
  s->apply({insert_tenant_op{t, {}}, message_op(old_done), message_op(recent_done), message_op(old_waiting),
            message_op(young)});
  auto final_update = [&](const message_record& m, recipient_state state) {
    event_record e;
    e.id = new_id();
    e.tenant_id = t.id;
    e.message_id = m.id;
    e.recipient_id = m.recipients[0].id;
    e.type = state == recipient_state::deferred ? "deferred" : "delivered";
    e.at_ms = 9500;
    e.data_json = "{}";
    return recipient_update{m.recipients[0].id, state, 1, state == recipient_state::deferred ? 99'999 : 0,
                            "250 ok", e};
  };
  s->apply({update_recipients_op{{final_update(old_done, recipient_state::delivered),
                                  final_update(recent_done, recipient_state::delivered),
                                  final_update(old_waiting, recipient_state::deferred),
                                  final_update(young, recipient_state::delivered)}}});

  // Content older than 8000, rows older than 2000.
  CHECK(s->apply({prune_messages_op{8000, 2000, 10'000, 1000}}) == std::vector<std::string>{""});
  CHECK_FALSE(s->load_delivery(old_done.id, {}));          // deleted with its recipient
  CHECK_FALSE(s->find_message(t.id, old_done.id));
  auto recent = s->load_delivery(recent_done.id, {});
  REQUIRE(recent);
  CHECK(recent->content.empty());                          // content gone ...
  CHECK(s->find_message(t.id, recent_done.id));            // ... its history kept
  auto waiting = s->load_delivery(old_waiting.id, {old_waiting.recipients[0].id});
  REQUIRE(waiting);
  CHECK(waiting->content == old_waiting.content);          // a waiting recipient keeps it all
  auto kept = s->load_delivery(young.id, {});
  REQUIRE(kept);
  CHECK(kept->content == young.content);
  // Batches are bounded: a limit of 1 touches one message of each kind per pass.
  auto more = finished(1500, "e@ret.example");
  auto more2 = finished(1600, "f@ret.example");
  s->apply({message_op(more), message_op(more2)});
  s->apply({update_recipients_op{{final_update(more, recipient_state::delivered),
                                  final_update(more2, recipient_state::delivered)}}});
  s->apply({prune_messages_op{8000, 2000, 12'000, 1}});
  CHECK_FALSE(s->find_message(t.id, more.id));             // the oldest first
  CHECK(s->find_message(t.id, more2.id));
  s->apply({prune_messages_op{8000, 2000, 13'000, 1}});
  CHECK_FALSE(s->find_message(t.id, more2.id));
}

TEST_CASE("store: tracked links, hits counted with an event for the first, tenant tracking settings", "[store]") {
  test_database db(GENERATE(from_range(test_backends())));
  auto s = open_migrated(db.url());
  auto t = make_tenant("t");
  auto m = make_message(t.id, {"x@example.net"});
  m.templated = true;
  m.tracking_links = {"https://a.example/", "https://b.example/?q=1&r=2"};
  m.tracking_expires_ms = 9'000'000;
  auto plain = make_message(t.id, {"y@example.net"});
  auto r = m.recipients[0].id;
  s->apply({insert_tenant_op{t, {}}, message_op(m), message_op(plain)});

  // Where tokens lead: the pixel (link 0) and each link; nothing for unknown links or messages.
  auto pixel = s->find_tracking_target({m.id, r, 0});
  REQUIRE(pixel);
  CHECK(pixel->tenant_id == t.id);
  CHECK(pixel->url.empty());
  CHECK(pixel->expires_ms == 9'000'000);
  CHECK(pixel->address == "x@example.net");
  CHECK(pixel->delivered_at_ms == 0);
  CHECK_FALSE(pixel->record_ip);
  CHECK(s->find_tracking_target({m.id, r, 2})->url == "https://b.example/?q=1&r=2");
  CHECK_FALSE(s->find_tracking_target({m.id, r, 3}));
  CHECK_FALSE(s->find_tracking_target({plain.id, plain.recipients[0].id, 0}));
  // Another recipient id with this message's token: the link, without an address.
  CHECK(s->find_tracking_target({m.id, new_id(), 1})->address.empty());

  auto hit = [&](std::uint16_t link, bool machine, std::int64_t at) {
    record_tracking_hit_op op;
    op.hit = {r, link, machine, 1, at, at};
    op.expires_ms = 9'000'000;
    op.event = {new_id(), t.id, m.id, r, link == 0 ? "opened" : "clicked", at, R"({"first":true})"};
    return write_op{op};
  };
  auto results = s->apply({hit(1, false, 3000), hit(1, false, 3100), hit(0, false, 3200), hit(1, true, 3300),
                           hit(1, false, 3050)});
  CHECK(std::all_of(results.begin(), results.end(), [](const auto& e) { return e.empty(); }));
  auto found = s->find_message(t.id, m.id);
  REQUIRE(found);
  CHECK(found->message.tracking_links == m.tracking_links);
  REQUIRE(found->hits.size() == 3);
  auto h = found->hits;
  std::sort(h.begin(), h.end(), [](const auto& a, const auto& b) { return std::tie(a.link, a.machine) < std::tie(b.link, b.machine); });
  CHECK((h[0].link == 0 && h[0].count == 1));
  CHECK((h[1].link == 1 && !h[1].machine && h[1].count == 3 && h[1].first_at_ms == 3000 && h[1].last_at_ms == 3100));
  CHECK((h[2].link == 1 && h[2].machine && h[2].count == 1));
  // Events: accepted, then the first of each (recipient, link, machine) only.
  std::vector<std::string> types;
  for (const auto& e : found->events) types.push_back(e.type);
  CHECK(types == std::vector<std::string>{"accepted", "clicked", "opened", "clicked"});

  // Tenant settings round-trip.
  t.tracking = {true, false, true, "t.example.com", true, 1234, "CNAME found"};
  s->apply({update_tenant_op{t}});
  auto tenants = s->load_tenants();
  REQUIRE(tenants.size() == 1);
  CHECK(tenants[0].tracking == t.tracking);
  CHECK(s->find_tracking_target({m.id, r, 0})->record_ip);

  // Expired tracking rows go with retention, whatever the message's own age.
  prune_messages_op prune;
  prune.now_ms = 9'000'001;
  s->apply({prune});
  CHECK_FALSE(s->find_tracking_target({m.id, r, 1}));
  CHECK(s->find_message(t.id, m.id)->hits.empty());
}
