// Plain policies the actors apply: the outcome of an attempt, GCRA rate limiting, restart
// intensity and backoff, API keys.
#include <catch2/catch.hpp>

#include <set>

#include "actors/api_key.hpp"
#include "actors/policy/attempt_outcome.hpp"
#include "actors/policy/rate_limiter.hpp"
#include "actors/policy/restart_policy.hpp"

using namespace petrel;
using namespace std::chrono_literals;

TEST_CASE("the rate limiter lets a burst through, then one per interval") {
  rate_limiter limiter(10, 3);  // 10/s, burst 3
  rate_limiter::clock::time_point t{std::chrono::seconds(1000)};
  CHECK(limiter.try_acquire(t) == 0ns);
  CHECK(limiter.try_acquire(t) == 0ns);
  CHECK(limiter.try_acquire(t) == 0ns);
  auto wait = limiter.try_acquire(t);
  CHECK(wait == 100ms);  // the 4th must wait one emission interval
  CHECK(limiter.try_acquire(t + 99ms) > 0ns);
  CHECK(limiter.try_acquire(t + 100ms) == 0ns);
  CHECK(limiter.try_acquire(t + 100ms) > 0ns);
}

TEST_CASE("the rate limiter admits exactly rate x time over a long run") {
  rate_limiter limiter(50, 1);
  rate_limiter::clock::time_point t{std::chrono::seconds(1)};
  int admitted = 0;
  for (int ms = 0; ms < 10000; ++ms)  // ask every millisecond for 10 s
    if (limiter.try_acquire(t + std::chrono::milliseconds(ms)) == 0ns) ++admitted;
  CHECK(admitted == 500);
}

TEST_CASE("a refill after idleness never exceeds the burst") {
  rate_limiter limiter(1, 5);
  rate_limiter::clock::time_point t{std::chrono::seconds(1)};
  int admitted = 0;
  for (int i = 0; i < 20; ++i)
    if (limiter.try_acquire(t + 1h) == 0ns) ++admitted;
  CHECK(admitted == 5);
}

TEST_CASE("a zero rate means unlimited") {
  rate_limiter limiter(0, 1);
  rate_limiter::clock::time_point t{};
  for (int i = 0; i < 1000; ++i) REQUIRE(limiter.try_acquire(t) == 0ns);
}

TEST_CASE("restarts back off exponentially and stop past the intensity") {
  restart_policy policy({3, 10s, 100ms, 350ms});
  restart_policy::clock::time_point t{std::chrono::seconds(100)};
  CHECK(policy.on_failure(t) == 100ms);
  CHECK(policy.on_failure(t + 1s) == 200ms);
  CHECK(policy.on_failure(t + 2s) == 350ms);  // capped
  CHECK(policy.on_failure(t + 3s).count() < 0);  // 4 within 10 s: give up
}

TEST_CASE("failures outside the window are forgotten") {
  restart_policy policy({2, 10s, 100ms, 10s});
  restart_policy::clock::time_point t{std::chrono::seconds(100)};
  CHECK(policy.on_failure(t) == 100ms);
  CHECK(policy.on_failure(t + 5s) == 200ms);
  CHECK(policy.on_failure(t + 12s) == 200ms);  // the first one left the window
  CHECK(policy.recent_failures() == 2);
}

TEST_CASE("API keys are random, well-formed, and hashed") {
  std::set<std::string> keys;
  for (int i = 0; i < 1000; ++i) {
    auto key = generate_api_key();
    REQUIRE(key.size() == 43);
    REQUIRE(key.rfind("pk_", 0) == 0);
    for (char c : key.substr(3)) REQUIRE(std::isalnum(static_cast<unsigned char>(c)));
    keys.insert(key);
  }
  CHECK(keys.size() == 1000);
  // SHA-256 of "abc" (FIPS 180-2 test vector).
  CHECK(hash_api_key("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  CHECK(api_key_prefix("pk_ABCDEFGHIJ") == "pk_ABCDEF");
  CHECK(constant_time_equal("same", "same"));
  CHECK_FALSE(constant_time_equal("same", "sane"));
  CHECK_FALSE(constant_time_equal("same", "samey"));
  CHECK(random_hex(32).size() == 64);
}

TEST_CASE("an attempt's result decides the recipient's state") {
  const std::vector<std::string> retried = {"rate_limited"};
  auto classified = [](bounce_category c, bool hard) {
    return [=] { return classification{c, hard, hard ? "5.1.1" : "4.2.1", -1, {}}; };
  };
  auto schedule = [](std::uint32_t attempts) -> std::int64_t { return attempts < 3 ? 1000 * attempts : 0; };
  auto never = []() -> classification { FAIL("a delivered or unattempted recipient is not classified"); return {}; };

  auto delivered = decide_attempt_outcome({250, false, false, false, 0}, never, schedule, retried);
  CHECK(delivered.state == recipient_state::delivered);
  CHECK(delivered.attempts == 1);
  CHECK_FALSE(delivered.failure);

  auto deferred = decide_attempt_outcome({451, false, false, false, 1},
                                         classified(bounce_category::rate_limited, false), schedule, retried);
  CHECK(deferred.state == recipient_state::deferred);
  CHECK(deferred.attempts == 2);
  CHECK(deferred.next_attempt_at_ms == 2000);
  CHECK(deferred.failure->category == bounce_category::rate_limited);

  // The schedule's max_age is past: expired, with 4.4.7.
  auto late = decide_attempt_outcome({451, false, false, false, 2},
                                     classified(bounce_category::other, false), schedule, retried);
  CHECK(late.state == recipient_state::expired);
  CHECK(late.failure->enhanced == "4.4.7");

  auto bounced = decide_attempt_outcome({550, false, false, false, 0},
                                        classified(bounce_category::invalid_recipient, true), schedule, retried);
  CHECK(bounced.state == recipient_state::bounced);
  CHECK(bounced.failure->hard);

  // Throttling sent as 5xx is retried when operators list its category.
  auto throttled = decide_attempt_outcome({550, false, false, false, 0},
                                          classified(bounce_category::rate_limited, false), schedule, retried);
  CHECK(throttled.state == recipient_state::deferred);

  // A response rule makes a 4xx final; no reply at all (network) is retried.
  CHECK(decide_attempt_outcome({421, false, false, true, 0}, classified(bounce_category::spam_block, false),
                               schedule, retried)
            .state == recipient_state::bounced);
  CHECK(decide_attempt_outcome({0, false, false, false, 0}, classified(bounce_category::network, false),
                               schedule, retried)
            .state == recipient_state::deferred);

  // Not attempted: suppressed meanwhile, or past max_age before it could be; attempts unchanged.
  auto suppressed = decide_attempt_outcome({0, true, false, false, 2}, never, schedule, retried);
  CHECK(suppressed.state == recipient_state::suppressed);
  CHECK(suppressed.attempts == 2);
  auto expired = decide_attempt_outcome({0, false, true, false, 2}, never, schedule, retried);
  CHECK(expired.state == recipient_state::expired);
  CHECK(expired.attempts == 2);
  CHECK(expired.failure->category == bounce_category::expired);
}
