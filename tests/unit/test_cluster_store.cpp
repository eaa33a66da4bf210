// Cluster coordination on a real PostgreSQL (storage/pg_cluster): node leases and partition
// claims judged by the database's clock, epochs that fence an owner whose lease expired.
// Runs in the PostgreSQL store suite (PETREL_TEST_BACKENDS=postgresql); SQLite has no cluster.
#include <catch2/catch.hpp>

#include <algorithm>
#include <thread>

#include "storage/pg_cluster.hpp"
#include "test_database.hpp"

using namespace petrel;
using namespace petrel::testing;
using namespace std::chrono_literals;

TEST_CASE("a cluster needs the PostgreSQL store") {
  CHECK_THROWS_WITH(cluster_store("sqlite:/tmp/x.db"), Catch::Contains("needs the PostgreSQL store"));
}

TEST_CASE("store: node leases and partition claims with fencing epochs", "[store]") {
  auto backend = GENERATE(from_range(test_backends()));
  if (backend != "postgresql") return;  // cluster coordination exists on PostgreSQL only
  test_database db(backend);
  open_store(db.url(), store_options{})->migrate();
  cluster_store a(db.url()), b(db.url());

  a.renew_node("node-a", "127.0.0.1:7001", 10s);
  b.renew_node("node-b", "127.0.0.1:7002", 1500ms);
  CHECK(a.live_nodes() == std::vector<std::string>{"node-a", "node-b"});

  a.ensure_partitions(4);
  a.ensure_partitions(4);  // idempotent
  auto parts = a.partitions();
  REQUIRE(parts.size() == 4);
  CHECK(parts[0].owner.empty());
  CHECK_FALSE(parts[0].lease_valid);

  // A free partition: claimed once, epoch 1; the other node's claim is refused meanwhile.
  auto epoch = b.claim(0, "node-b", 1500ms);
  REQUIRE(epoch);
  CHECK(*epoch == 1);
  CHECK_FALSE(a.claim(0, "node-a", 10s));
  CHECK(b.renew("node-b", {{0, 1}}, 1500ms) == std::vector<std::pair<std::uint32_t, std::int64_t>>{{0, 1}});

  // node-b stops renewing: its node lease and its partition's lease expire by the database's clock.
  std::this_thread::sleep_for(1700ms);
  CHECK(a.live_nodes() == std::vector<std::string>{"node-a"});
  auto taken = a.claim(0, "node-a", 10s);
  REQUIRE(taken);
  CHECK(*taken == 2);  // a new epoch fences the old owner
  // node-b wakes up: its renewal in epoch 1 returns nothing (lost), and so does a release.
  CHECK(b.renew("node-b", {{0, 1}}, 1500ms).empty());
  CHECK_FALSE(b.release(0, "node-b", 1));
  auto now = a.partitions();
  CHECK(now[0].owner == "node-a");
  CHECK(now[0].epoch == 2);
  CHECK(now[0].lease_valid);

  // A handover: released by its owner, claimable at once by another, in a new epoch.
  CHECK(a.release(0, "node-a", 2));
  b.renew_node("node-b", "127.0.0.1:7002", 10s);
  auto again = b.claim(0, "node-b", 10s);
  REQUIRE(again);
  CHECK(*again == 3);
}

TEST_CASE("store: a recipient write in a stale epoch is refused, with its event", "[store]") {
  auto backend = GENERATE(from_range(test_backends()));
  if (backend != "postgresql") return;  // fencing needs the partitions table (PostgreSQL)
  test_database db(backend);
  auto s = open_store(db.url(), store_options{});
  s->migrate();
  cluster_store c(db.url());
  c.ensure_partitions(2);
  auto t = make_tenant("t");
  auto m = make_message(t.id, {"a@fence.example", "b@fence.example"});
  s->apply({insert_tenant_op{t, {}}, message_op(m)});
  auto epoch = c.claim(1, "node-a", 10s);
  REQUIRE(epoch);
  auto update = [&](const recipient_record& r, recipient_state state, std::int64_t e) {
    recipient_update u;
    u.recipient_id = r.id;
    u.state = state;
    u.attempts = 1;
    u.last_reply = "250 ok";
    u.event.id = new_id();
    u.event.tenant_id = t.id;
    u.event.message_id = m.id;
    u.event.recipient_id = r.id;
    u.event.type = "delivered";
    u.event.at_ms = 5000;
    u.event.data_json = "{}";
    u.partition = 1;
    u.epoch = e;
    return u;
  };
  // In the epoch held: written. Another node claims the partition (a new epoch): the old
  // owner's next write fails alone, and neither the state nor its event is written; the other
  // operation of the batch (unfenced) commits.
  CHECK(s->apply({update_recipients_op{{update(m.recipients[0], recipient_state::delivered, *epoch)}}}) ==
        std::vector<std::string>{""});
  REQUIRE(c.release(1, "node-a", *epoch));
  auto taken = c.claim(1, "node-b", 10s);
  REQUIRE(taken);
  auto results = s->apply({update_recipients_op{{update(m.recipients[1], recipient_state::delivered, *epoch)}},
                           update_recipients_op{{update(m.recipients[1], recipient_state::deferred, 0)}}});
  REQUIRE(results.size() == 2);
  CHECK(results[0] == fenced_write);
  CHECK(results[1].empty());
  auto found = s->find_message(t.id, m.id);
  REQUIRE(found);
  CHECK(found->message.recipients[0].state == recipient_state::delivered);
  CHECK(found->message.recipients[1].state == recipient_state::deferred);
  CHECK(found->events.size() == 3);  // accepted, the first delivered, the unfenced one
  // The new owner writes in its epoch.
  CHECK(s->apply({update_recipients_op{{update(m.recipients[1], recipient_state::delivered, *taken)}}}) ==
        std::vector<std::string>{""});
}

TEST_CASE("store: changes other nodes keep in memory are announced when they commit", "[store]") {
  auto backend = GENERATE(from_range(test_backends()));
  if (backend != "postgresql") return;  // notifications are PostgreSQL's (a cluster needs it)
  test_database db(backend);
  auto s = open_store(db.url(), store_options{});
  s->migrate();
  cluster_store listener(db.url());
  // The first call starts listening and reports every kind (anything may have been missed).
  CHECK(listener.changes() == std::vector<std::string>{"controls", "tenants", "webhooks"});
  auto wait_changes = [&] {
    std::vector<std::string> got;
    for (int i = 0; i < 200 && got.empty(); ++i) {
      got = listener.changes();
      if (got.empty()) std::this_thread::sleep_for(10ms);
    }
    return got;
  };
  CHECK(listener.changes().empty());
  control_record c;
  c.kind = "domain";
  c.target = "example.net";
  c.created_at_ms = 1;
  CHECK(s->apply({upsert_control_op{c}}) == std::vector<std::string>{""});
  CHECK(wait_changes() == std::vector<std::string>{"controls"});
  auto t = make_tenant("n");
  CHECK(s->apply({insert_tenant_op{t, {}}, delete_control_op{"domain", "example.net"}}) ==
        std::vector<std::string>{"", ""});
  auto both = wait_changes();
  std::sort(both.begin(), both.end());
  CHECK(both == std::vector<std::string>{"controls", "tenants"});  // one each, however many writes
  // A message changes nothing other nodes hold: no notification.
  s->apply({message_op(make_message(t.id, {"a@quiet.example"}))});
  std::this_thread::sleep_for(100ms);
  CHECK(listener.changes().empty());
}

TEST_CASE("store: a reader never passes an event whose transaction commits late", "[store]") {
  auto backend = GENERATE(from_range(test_backends()));
  if (backend != "postgresql") return;  // one writer connection on SQLite: commits are in order
  test_database db(backend);
  auto s = open_store(db.url(), store_options{});
  s->migrate();
  auto t = make_tenant("t");
  s->apply({insert_tenant_op{t, {}}, message_op(make_message(t.id, {"a@late.example"}))});
  event_query q;
  q.tenant_id = t.id;
  // Events become visible once every older transaction of the server has ended (other tests'
  // databases share the server): poll, within a bound.
  auto visible = [&](std::size_t n) {
    std::vector<event_view> page;
    for (int i = 0; i < 500 && page.size() < n; ++i) {
      page = s->list_events(q);
      if (page.size() < n) std::this_thread::sleep_for(10ms);
    }
    return page;
  };
  auto first = visible(1);
  REQUIRE(first.size() == 1);  // accepted
  auto cursor = first.back().seq;

  // Another writer (another node) inserts an event and keeps its transaction open: its
  // sequence number is taken now, smaller than the next one.
  PGconn* other = PQconnectdb(db.url().c_str());
  REQUIRE(PQstatus(other) == CONNECTION_OK);
  auto exec = [&](const std::string& sql) {
    PGresult* r = PQexec(other, sql.c_str());
    auto status = PQresultStatus(r);
    std::string error = PQresultErrorMessage(r);
    PQclear(r);
    INFO(error);
    REQUIRE((status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK));
  };
  auto late_id = new_id();
  exec("BEGIN");
  exec("INSERT INTO events (id, tenant_id, message_id, recipient_id, type, created_at, data) VALUES ('" +
       late_id.str() + "', '" + t.id.str() + "', '', '', 'complained', 1, '{}')");
  // This node commits a later event meanwhile.
  event_record later;
  later.id = new_id();
  later.tenant_id = t.id;
  later.type = "unsubscribed";
  later.at_ms = 2;
  later.data_json = "{}";
  s->apply({append_event_op{later}});

  q.after_seq = cursor;
  CHECK(s->list_events(q).empty());  // the later event waits behind the open transaction
  exec("COMMIT");
  PQfinish(other);
  auto page = visible(2);
  REQUIRE(page.size() == 2);  // both, in sequence order: nothing was skipped
  CHECK(page[0].event.id == late_id);
  CHECK(page[1].event.id == later.id);
}
