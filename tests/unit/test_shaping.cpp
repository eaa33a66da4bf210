// Traffic shaping as plain code, with exact counts and explicit (virtual) times: fair rotation
// of tenants, warm-up budgets, adaptive concurrency, response rules, controls and pools.
#include <catch2/catch.hpp>

#include "actors/policy/concurrency_control.hpp"
#include "actors/policy/fair_queue.hpp"
#include "actors/policy/response_rules.hpp"
#include "actors/policy/shaping.hpp"
#include "actors/policy/source_choice.hpp"
#include "actors/policy/warmup.hpp"

using namespace petrel;

namespace {

id128 make(std::uint64_t n) { return id128{n, n}; }

// Who each of the next n jobs belongs to.
std::vector<id128> order(fair_queue& q, std::size_t n, std::size_t max = 100) {
  std::vector<id128> out;
  for (std::size_t i = 0; i < n; ++i) {
    auto job = q.pop(max);
    if (!job) break;
    out.push_back(job->tenant);
  }
  return out;
}

}  // namespace

TEST_CASE("fair queue: tenants take turns, so a big campaign does not starve a small sender", "[shaping]") {
  fair_queue q;
  auto big = make(1), small = make(2);
  for (std::uint64_t i = 0; i < 1000; ++i) q.push(make(100 + i), make(10'000 + i), big, 0, 1);
  for (std::uint64_t i = 0; i < 3; ++i) q.push(make(5000 + i), make(20'000 + i), small, 0, 1);
  CHECK(q.recipients() == 1003);
  auto first = order(q, 6);
  CHECK(first == std::vector<id128>{big, small, big, small, big, small});
  CHECK(q.recipients() == 997);
  CHECK(order(q, 3) == std::vector<id128>{big, big, big});
}

TEST_CASE("fair queue: weights give a tenant that many jobs per turn", "[shaping]") {
  fair_queue q;
  auto a = make(1), b = make(2);
  for (std::uint64_t i = 0; i < 30; ++i) q.push(make(100 + i), make(1000 + i), a, 0, 3);
  for (std::uint64_t i = 0; i < 30; ++i) q.push(make(200 + i), make(2000 + i), b, 0, 1);
  auto got = order(q, 8);
  CHECK(got == std::vector<id128>{a, a, a, b, a, a, a, b});
}

TEST_CASE("fair queue: high priority goes first, then the rotation resumes", "[shaping]") {
  fair_queue q;
  auto bulk = make(1), tx = make(2);
  for (std::uint64_t i = 0; i < 5; ++i) q.push(make(100 + i), make(1000 + i), bulk, 0, 1);
  q.push(make(900), make(9000), tx, 1, 1);
  q.push(make(901), make(9001), tx, 1, 1);
  CHECK(order(q, 4) == std::vector<id128>{tx, tx, bulk, bulk});
}

TEST_CASE("fair queue: recipients of one message travel together, split at the job size", "[shaping]") {
  fair_queue q;
  auto t = make(1), message = make(50);
  for (std::uint64_t i = 0; i < 5; ++i) q.push(make(100 + i), message, t, 0, 1);
  CHECK(q.jobs(2) == 3);
  auto job = q.pop(2);
  REQUIRE(job);
  CHECK(job->recipients == std::vector<id128>{make(100), make(101)});
  CHECK(q.pop(2)->recipients.size() == 2);
  CHECK(q.pop(2)->recipients == std::vector<id128>{make(104)});
  CHECK(q.empty());
  CHECK_FALSE(q.pop(2));
}

TEST_CASE("fair queue: ineligible tenants are skipped without losing their place", "[shaping]") {
  fair_queue q;
  auto a = make(1), b = make(2);
  for (std::uint64_t i = 0; i < 3; ++i) q.push(make(100 + i), make(1000 + i), a, 0, 1);
  for (std::uint64_t i = 0; i < 3; ++i) q.push(make(200 + i), make(2000 + i), b, 0, 1);
  auto not_a = [&](const id128& t) { return t != a; };
  CHECK(q.pop(10, not_a)->tenant == b);
  CHECK(q.pop(10, not_a)->tenant == b);
  CHECK(q.pop(10, not_a)->tenant == b);
  CHECK_FALSE(q.pop(10, not_a));  // only a is left, and a may not go
  CHECK(q.recipients() == 3);
  CHECK(q.pop(10)->tenant == a);
}

TEST_CASE("fair queue: drain takes one tenant's recipients out", "[shaping]") {
  fair_queue q;
  auto a = make(1), b = make(2);
  q.push(make(100), make(1000), a, 0, 1);
  q.push(make(101), make(1000), a, 0, 1);
  q.push(make(200), make(2000), b, 1, 1);
  auto taken = q.drain([&](const id128& t) { return t == a; });
  REQUIRE(taken.size() == 1);
  CHECK(taken[0].recipients.size() == 2);
  CHECK(q.recipients() == 1);
  CHECK(q.per_tenant().at(b) == 1);
  CHECK(q.pop(10)->tenant == b);
}

TEST_CASE("warm-up: the budget grows by day number and resets each day and hour", "[shaping]") {
  const std::int64_t day = 86'400'000, hour = 3'600'000;
  std::int64_t start = 20'000 * day + 5 * hour;  // day 1 starts in the middle of a UTC day
  std::vector<warmup_step> schedule = {{1, 3, 0}, {2, 5, 2}, {4, 0, 0}};
  CHECK(warmup_day(start, start) == 1);
  CHECK(warmup_day(start, start + 19 * hour) == 2);  // the next UTC day
  CHECK(warmup_limits(schedule, 1).per_day == 3);
  CHECK(warmup_limits(schedule, 3).per_day == 5);  // a step holds until the next
  CHECK(warmup_limits(schedule, 9).per_day == 0);  // the 0/0 step ends the warm-up
  warmup_budget budget(schedule, start);
  std::int64_t retry = 0;
  auto now = start + hour;
  for (int i = 0; i < 3; ++i) CHECK(budget.try_take(now, retry));
  CHECK_FALSE(budget.try_take(now, retry));
  CHECK(retry == 20'001 * day);  // tomorrow, 00:00 UTC
  // Day 2: 5 a day, 2 an hour.
  now = 20'001 * day + 10;
  CHECK(budget.try_take(now, retry));
  CHECK(budget.try_take(now, retry));
  CHECK_FALSE(budget.try_take(now, retry));
  CHECK(retry == 20'001 * day + hour);
  now += hour;
  CHECK(budget.try_take(now, retry));
  auto view = budget.view(now);
  CHECK(view.day == 2);
  CHECK(view.used_today == 3);
  CHECK(view.used_this_hour == 1);
  // After a restart the counts come back.
  warmup_budget again(schedule, start);
  again.restore(now, 3, 1);
  CHECK(again.try_take(now, retry));
  CHECK_FALSE(again.try_take(now, retry));  // hour limit 2
  warmup_budget none;
  CHECK(none.try_take(now, retry));
}

TEST_CASE("warm-up: day 1 is the day of the source's first message, not the day it was configured", "[shaping]") {
  const std::int64_t day = 86'400'000;
  std::vector<warmup_step> schedule = {{1, 2, 0}, {2, 10, 0}};
  warmup_budget budget(schedule, 0);  // configured, never sent
  auto configured = 30'000 * day;
  CHECK(budget.view(configured).day == 1);
  CHECK(budget.started_ms() == 0);
  // Ten days later it sends for the first time: day 1, with day 1's budget.
  auto first = configured + 10 * day + 3600'000;
  std::int64_t retry = 0;
  CHECK(budget.try_take(first, retry));
  CHECK(budget.started_ms() == first);
  CHECK(budget.try_take(first, retry));
  CHECK_FALSE(budget.try_take(first, retry));  // 2 on day 1
  CHECK(budget.view(first + day).day == 2);
  // A gate starts its site budgets with the source's day 1.
  source_gate gate(0, schedule, 0);
  gate.add_site_warmup("*.example.com", {{1, 1, 0}}, 0);
  CHECK(gate.try_take(first, retry, {"mx.example.com"}) == source_gate::verdict::go);
  CHECK(gate.site_warmups().at(0).budget->started_ms() == first);
  CHECK(gate.warmup().started_ms() == first);
}

TEST_CASE("warm-up per site: a site pattern has its own budget on top of the source's", "[shaping]") {
  const std::int64_t day = 86'400'000;
  std::int64_t start = 20'000 * day, now = start + 1000, retry = 0;
  source_gate gate(0, {{1, 5, 0}}, start);  // the source: 5 a day
  gate.add_site_warmup("*.google.com", {{1, 2, 0}}, start);  // of which 2 at Google
  std::vector<std::string> google = {"alt1.gmail-smtp-in.l.google.com", "gmail-smtp-in.l.google.com"};
  std::vector<std::string> other = {"mx.example.net"};
  CHECK(gate.try_take(now, retry, google) == source_gate::verdict::go);
  CHECK(gate.try_take(now, retry, google) == source_gate::verdict::go);
  CHECK(gate.try_take(now, retry, google) == source_gate::verdict::warmup);  // Google's 2 are spent
  CHECK(retry == start + day);
  // Refused at the site: not counted against the source, which still has 3 for elsewhere.
  CHECK(gate.try_take(now, retry, other) == source_gate::verdict::go);
  CHECK(gate.try_take(now, retry, other) == source_gate::verdict::go);
  CHECK(gate.try_take(now, retry, other) == source_gate::verdict::go);
  CHECK(gate.try_take(now, retry, other) == source_gate::verdict::warmup);
  CHECK(gate.warmup().view(now).used_today == 5);
  CHECK(gate.site_warmups().front().budget->view(now).used_today == 2);
  // The next day both budgets are fresh.
  CHECK(gate.try_take(start + day + 1, retry, google) == source_gate::verdict::go);
}

TEST_CASE("adaptive concurrency: overload halves, deliveries add one back per window", "[shaping]") {
  concurrency_control c(10);
  CHECK(c.limit() == 10);
  c.on_overload();
  CHECK(c.limit() == 5);
  c.on_overload();
  c.on_overload();
  c.on_overload();
  CHECK(c.limit() == 1);
  c.on_overload();
  CHECK(c.limit() == 1);  // never below one
  c.on_success();
  CHECK(c.limit() == 2);  // one success per connection allowed
  c.on_success();
  CHECK(c.limit() == 2);
  c.on_success();
  CHECK(c.limit() == 3);
  for (int i = 0; i < 100; ++i) c.on_success();
  CHECK(c.limit() == 10);  // back to the configured limit, never above
}

TEST_CASE("response rules: thresholds within a window, per tenant where it applies", "[shaping]") {
  response_rule_config throttle;
  throttle.name = "yahoo deferrals";
  throttle.reply_code = 421;
  throttle.enhanced = "4.7.";
  throttle.pattern = "temporarily deferred";
  throttle.provider = "*.yahoodns.net";
  throttle.threshold = 3;
  throttle.window = std::chrono::seconds(60);
  throttle.action = "throttle";
  throttle.factor = 0.5;
  response_rule_config tenant_block;
  tenant_block.name = "spam block";
  tenant_block.reply_code = 5;
  tenant_block.pattern = "spam";
  tenant_block.threshold = 2;
  tenant_block.action = "suspend_tenant";
  response_rule_config bounce;
  bounce.name = "no such user, as 4xx";
  bounce.pattern = "user unknown";
  bounce.action = "bounce";
  auto rules = std::make_shared<const response_rules>(std::vector<response_rule_config>{throttle, tenant_block, bounce});
  response_tracker tracker(rules);
  const std::string mx = "mta5.am0.yahoodns.net";
  const std::string text = "[TSS04] Messages from 192.0.2.1 temporarily deferred due to unexpected volume";
  CHECK(tracker.observe(421, "4.7.0", text, mx, "t1", 1000).empty());
  CHECK(tracker.observe(421, "4.7.0", text, "mx.other.example", "t1", 1001).empty());  // not this provider
  CHECK(tracker.observe(421, "4.7.0", text, mx, "t1", 2000).empty());
  auto fired = tracker.observe(421, "4.7.0", text, mx, "t1", 3000);
  REQUIRE(fired.size() == 1);
  CHECK(fired[0].action == response_action::throttle);
  CHECK(fired[0].until_ms == 3000 + 10 * 60 * 1000);
  CHECK(fired[0].factor == 0.5);
  // Counting starts afresh; matches older than the window do not count.
  CHECK(tracker.observe(421, "4.7.0", text, mx, "t1", 4000).empty());
  CHECK(tracker.observe(421, "4.7.0", text, mx, "t1", 5000).empty());
  CHECK(tracker.observe(421, "4.7.0", text, mx, "t1", 70'000).empty());  // 4000 and 5000 expired
  // Per tenant: one hit each for two tenants does not fire; a second for one does.
  CHECK(tracker.observe(554, "5.7.1", "rejected as spam", "mx.example", "a", 100).empty());
  CHECK(tracker.observe(554, "5.7.1", "rejected as spam", "mx.example", "b", 101).empty());
  auto blocked = tracker.observe(554, "5.7.1", "rejected as spam", "mx.example", "a", 102);
  REQUIRE(blocked.size() == 1);
  CHECK(blocked[0].action == response_action::suspend_tenant);
  // Bounce acts at once.
  auto b = tracker.observe(450, "4.1.1", "450 User unknown in virtual table", "mx.example", "a", 200);
  REQUIRE(b.size() == 1);
  CHECK(b[0].action == response_action::bounce);
  response_rule_config bad = bounce;
  bad.pattern = "(";
  CHECK_THROWS_AS(response_rules({bad}), std::invalid_argument);
}

TEST_CASE("controls and pools", "[shaping]") {
  control_snapshot none;
  CHECK_FALSE(none.active("domain", "example.com", 0));
  control_snapshot c({{"domain", "example.com", 0, "maintenance", 1},
                      {"source", "ip2", 5000, "", 1}});
  CHECK(c.active("domain", "example.com", 999'999));
  CHECK(c.find("domain", "example.com", 1)->reason == "maintenance");
  CHECK_FALSE(c.active("domain", "example.org", 1));
  CHECK(c.active("source", "ip2", 4999));
  CHECK_FALSE(c.active("source", "ip2", 5000));  // expired
  egress_settings egress;
  auto pools = pools_from(egress, {"a", "b"});
  REQUIRE(pools.count("default"));
  CHECK(pools.at("default").size() == 2);
  egress.pools.push_back({"bulk", {{"b", 3}}});
  pools = pools_from(egress, {"a", "b"});
  CHECK(pools.at("bulk").at(0).weight == 3);
  CHECK(pools.at("default").size() == 2);
}

TEST_CASE("a lane takes work unless its site blocked it or a control suspends it") {
  control_snapshot none;
  CHECK(lane_takes_work("a", false, 0, "mx.example", none, 1000));
  CHECK_FALSE(lane_takes_work("a", true, 0, "mx.example", none, 1000));   // until unblocked
  CHECK_FALSE(lane_takes_work("a", true, 2000, "mx.example", none, 1000));
  CHECK(lane_takes_work("a", true, 900, "mx.example", none, 1000));       // the block is over
  control_snapshot controls({{"source", "a", 0, "ops", 1}, {"site", "mx.example", 0, "ops", 1},
                             {"source_site", "b/other.example", 0, "ops", 1}});
  CHECK_FALSE(lane_takes_work("a", false, 0, "", controls, 1000));
  CHECK_FALSE(lane_takes_work("b", false, 0, "mx.example#mta-sts", controls, 1000));  // suffix ignored
  CHECK_FALSE(lane_takes_work("b", false, 0, "other.example", controls, 1000));
  CHECK(lane_takes_work("c", false, 0, "other.example", controls, 1000));
  CHECK(lane_takes_work("b", false, 0, "", controls, 1000));  // no route yet: no site controls
}

TEST_CASE("a source is chosen by weight among the open ones, else the avoided one waits") {
  std::vector<pool_source> pool = {{"a", 1}, {"b", 3}};
  auto all_open = [](const std::string&) { return true; };
  CHECK(choose_source(pool, all_open, "", 0.0) == "a");
  CHECK(choose_source(pool, all_open, "", 0.24) == "a");
  CHECK(choose_source(pool, all_open, "", 0.25) == "b");
  CHECK(choose_source(pool, all_open, "", 0.99) == "b");
  CHECK(choose_source(pool, all_open, "b", 0.99) == "a");  // the source that just failed is left out
  auto only_a = [](const std::string& s) { return s == "a"; };
  CHECK(choose_source(pool, only_a, "", 0.9) == "a");
  auto none = [](const std::string&) { return false; };
  CHECK(choose_source(pool, none, "b", 0.1) == "b");       // nothing open: keep waiting in its lane
  CHECK(choose_source(pool, none, "", 0.9) == "b");        // by weight among all
  CHECK(choose_source({}, all_open, "", 0.5).empty());
}

TEST_CASE("fair queue: a recipient that must travel alone gets a job of its own", "[shaping]") {
  fair_queue q;
  auto t = make(1), m = make(50);
  for (std::uint64_t i = 0; i < 3; ++i) q.push(make(100 + i), m, t, 0, 1, /*alone=*/true);
  q.push(make(200), make(60), t, 0, 1);
  q.push(make(201), make(60), t, 0, 1);
  CHECK(q.jobs(10) == 4);
  std::vector<std::size_t> sizes;
  while (auto job = q.pop(10)) sizes.push_back(job->recipients.size());
  CHECK(sizes == std::vector<std::size_t>{1, 1, 1, 2});
  CHECK(q.empty());
}
