// The reputation guard's arithmetic and the sandbox's addresses (actors/policy).
#include <catch2/catch.hpp>

#include "actors/policy/reputation.hpp"
#include "actors/policy/sandbox.hpp"

using namespace petrel;
using namespace std::chrono_literals;

namespace {
const id128 tenant = *id128::parse("01M98HTGFSD77S1X3BQ8277TB4");
const id128 other = *id128::parse("01M98HTGFSD77S1X3BQ8277TB5");
}  // namespace

TEST_CASE("the reputation book counts per tenant over a rolling window", "[reputation]") {
  reputation_book book(48min);  // slices of one minute
  const std::int64_t t0 = 1'800'000'000'000 / 60'000 * 60'000;
  for (int i = 0; i < 90; ++i) book.record(tenant, reputation_outcome::delivered, t0 + i * 1000);
  book.record(tenant, reputation_outcome::hard_bounce, t0 + 5000);
  book.record(tenant, reputation_outcome::complaint, t0 + 6000);
  book.record(other, reputation_outcome::delivered, t0);
  auto c = book.counts(tenant, t0 + 90'000);
  CHECK(c.delivered == 90);
  CHECK(c.hard_bounces == 1);
  CHECK(c.complaints == 1);
  CHECK(c.volume() == 91);
  CHECK(c.hard_bounce_rate() == Approx(1.0 / 91));
  CHECK(c.complaint_rate() == Approx(1.0 / 90));
  CHECK(book.counts(other, t0).delivered == 1);
  // The first minute (60 deliveries, the bounce, the complaint) leaves the window 48 minutes on.
  auto later = book.counts(tenant, t0 + 48 * 60'000 + 1);
  CHECK(later.delivered == 30);
  CHECK(later.hard_bounces == 0);
  CHECK(book.counts(tenant, t0 + 50 * 60'000).volume() == 0);
  // A slice reused a window later starts from zero.
  book.record(tenant, reputation_outcome::delivered, t0 + 48 * 60'000);
  CHECK(book.counts(tenant, t0 + 48 * 60'000).delivered == 31);
  book.reset(tenant);
  CHECK(book.counts(tenant, t0 + 48 * 60'000).volume() == 0);
  CHECK(book.counts(other, t0).delivered == 1);
}

TEST_CASE("the reputation book counts each sender domain apart, within a bound", "[reputation]") {
  reputation_book book(std::chrono::hours(1));
  auto mixed = new_id();
  const std::int64_t t0 = 1'000'000'000'000;
  for (int i = 0; i < 40; ++i) book.record(mixed, "receipts.test", reputation_outcome::delivered, t0);
  for (int i = 0; i < 8; ++i) book.record(mixed, "news.test", reputation_outcome::delivered, t0);
  book.record(mixed, "news.test", reputation_outcome::hard_bounce, t0);
  book.record(mixed, "", reputation_outcome::complaint, t0);  // a sender domain not known
  CHECK(book.counts(mixed, t0).volume() == 49);
  CHECK(book.counts(mixed, t0).complaints == 1);
  auto domains = book.sender_domain_counts(mixed, t0);
  REQUIRE(domains.size() == 2);
  CHECK(domains[0].first == "news.test");
  CHECK((domains[0].second.delivered == 8 && domains[0].second.hard_bounces == 1));
  CHECK(domains[1].second.delivered == 40);
  // Any number of From domains: the first ones are counted apart, all count for the tenant.
  for (std::size_t i = 0; i < 2 * reputation_book::max_sender_domains; ++i)
    book.record(mixed, "d" + std::to_string(i) + ".test", reputation_outcome::delivered, t0);
  CHECK(book.sender_domain_counts(mixed, t0).size() == reputation_book::max_sender_domains);
  CHECK(book.counts(mixed, t0).delivered == 48 + 2 * reputation_book::max_sender_domains);
  book.reset(mixed);
  CHECK(book.sender_domain_counts(mixed, t0).empty());
}

TEST_CASE("the thresholds make a warning or a pause, complaints first", "[reputation]") {
  reputation_thresholds t;  // 500 minimum, complaints 0.1% / 0.3%, hard bounces 5% / 10%
  auto judge = [&](std::uint64_t delivered, std::uint64_t bounces, std::uint64_t complaints) {
    return judge_reputation({delivered, bounces, complaints}, t);
  };
  CHECK(judge(499, 0, 400).level == reputation_level::ok);  // under the minimum volume
  CHECK(judge(1000, 0, 0).level == reputation_level::ok);
  auto v = judge(1000, 0, 1);  // 0.1%
  CHECK(v.level == reputation_level::warning);
  CHECK(v.metric == "complaint_rate");
  CHECK(v.threshold == Approx(0.001));
  CHECK(judge(1000, 0, 2).level == reputation_level::warning);
  v = judge(1000, 0, 3);
  CHECK(v.level == reputation_level::pause);
  CHECK(v.rate == Approx(0.003));
  v = judge(950, 50, 0);  // 5% of 1,000
  CHECK(v.level == reputation_level::warning);
  CHECK(v.metric == "hard_bounce_rate");
  CHECK(judge(901, 99, 0).level == reputation_level::warning);
  CHECK(judge(900, 100, 0).level == reputation_level::pause);
  // A complaint pause outranks a bounce warning; at the same level complaints are named.
  v = judge(950, 50, 3);
  CHECK(v.level == reputation_level::pause);
  CHECK(v.metric == "complaint_rate");
  v = judge(900, 100, 3);
  CHECK(v.metric == "complaint_rate");
  CHECK(std::string(to_string(reputation_level::pause)) == "paused");
}

TEST_CASE("the simulator's addresses choose their outcome", "[sandbox]") {
  CHECK(simulated_outcome_for("bounce@simulator.petrel.test") == simulated_outcome::bounce);
  CHECK(simulated_outcome_for("Bounce+x@SIMULATOR.petrel.TEST") == simulated_outcome::bounce);
  CHECK(simulated_outcome_for("complaint@simulator.petrel.test") == simulated_outcome::complaint);
  CHECK(simulated_outcome_for("defer@simulator.petrel.test") == simulated_outcome::defer_once);
  CHECK(simulated_outcome_for("ooto@simulator.petrel.test") == simulated_outcome::out_of_office);
  CHECK(simulated_outcome_for("bounce@example.com") == simulated_outcome::delivered);
  CHECK(simulated_outcome_for("bounces@simulator.petrel.test") == simulated_outcome::delivered);
  CHECK(simulated_outcome_for("bounce@sub.simulator.petrel.test") == simulated_outcome::delivered);
  CHECK(simulated_outcome_for("no-at-sign") == simulated_outcome::delivered);
  CHECK(std::string(to_string(simulated_outcome::out_of_office)) == "out_of_office");
}
