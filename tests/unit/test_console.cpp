// The console's sessions and the per-minute activity (app/console, actors/activity).
#include <catch2/catch.hpp>

#include "actors/activity.hpp"
#include "app/console/console_sessions.hpp"

using namespace petrel;
using namespace std::chrono_literals;

TEST_CASE("console sessions end at logout, when idle and at their lifetime", "[console]") {
  console_sessions s(12h, 1h);
  const std::int64_t t = 1'800'000'000'000;
  auto a = s.create(t);
  CHECK(a.cookie.size() == 64);
  CHECK(a.csrf.size() == 64);
  CHECK(a.cookie != a.csrf);
  CHECK(a.expires_ms == t + 12 * 3600'000);
  auto found = s.find(a.cookie, t + 1000);
  REQUIRE(found);
  CHECK(found->csrf == a.csrf);
  // Each use restarts the idle clock; an hour unused ends it.
  CHECK(s.find(a.cookie, t + 3599'000));
  CHECK(s.find(a.cookie, t + 2 * 3598'000));
  CHECK_FALSE(s.find(a.cookie, t + 2 * 3598'000 + 3600'000));
  CHECK_FALSE(s.find(a.cookie, t + 1000));  // gone for good

  // Used all along, a session still ends at its lifetime.
  auto b = s.create(t);
  for (std::int64_t at = t; at < t + 12 * 3600'000; at += 1800'000) CHECK(s.find(b.cookie, at));
  CHECK_FALSE(s.find(b.cookie, t + 12 * 3600'000));

  auto c = s.create(t);
  s.remove(c.cookie);
  CHECK_FALSE(s.find(c.cookie, t));
  CHECK_FALSE(s.find("", t));
  CHECK_FALSE(s.find(std::string(64, '0'), t));
  CHECK_FALSE(s.find(c.csrf, t));  // the CSRF token is no cookie
}

TEST_CASE("failed console logins are braked per address and minute", "[console]") {
  console_sessions s(12h, 1h);
  const std::int64_t minute = 1'800'000'000'000 / 60'000 * 60'000;
  for (int i = 0; i < console_sessions::max_failures; ++i) {
    CHECK(s.login_blocked("192.0.2.1", minute + 10'000) == 0);
    s.login_failed("192.0.2.1", minute + 10'000);
  }
  CHECK(s.login_blocked("192.0.2.1", minute + 20'000) == 40);
  CHECK(s.login_blocked("192.0.2.2", minute + 20'000) == 0);
  CHECK(s.login_blocked("192.0.2.1", minute + 60'000) == 0);  // the next minute
}

TEST_CASE("activity counts per minute and forgets a minute a day later", "[console]") {
  using namespace std::chrono;
  auto now = duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count();
  auto before = activity_history(now, 1).front().counts;
  record_activity(activity::delivered, 3);
  record_activity(activity::dns_failed);
  // (A minute boundary between the two reads would move the counts: read again then.)
  auto after = activity_history(now, 1).front();
  if (after.start_ms / 60'000 != now / 60'000) return;
  CHECK(after.counts[static_cast<unsigned>(activity::delivered)] - before[static_cast<unsigned>(activity::delivered)] == 3);
  CHECK(after.counts[static_cast<unsigned>(activity::dns_failed)] - before[static_cast<unsigned>(activity::dns_failed)] == 1);
  auto day = activity_history(now, 5000);
  CHECK(day.size() == 1440);
  CHECK(day.back().start_ms == now / 60'000 * 60'000);
  // The same slot a day later is another minute: it reads as empty.
  auto tomorrow = activity_history(now + 24 * 3600'000, 1).front();
  CHECK(tomorrow.counts[static_cast<unsigned>(activity::delivered)] == 0);
  CHECK(activity_of("deferred") == activity::deferred);
  CHECK_FALSE(activity_of("opened"));
}
