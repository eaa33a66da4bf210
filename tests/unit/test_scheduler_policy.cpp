// Petrel's scheduler policy (actors/scheduler_policy.hpp) under a real actor system: it is the
// one the system uses, chains of actors and fan-out both finish with every message handled,
// and the system stops cleanly.
#include <catch2/catch.hpp>

#include <chrono>
#include <future>
#include <vector>

#include <caf/all.hpp>
#include <caf/scheduler/coordinator.hpp>

#include "actors/scheduler_policy.hpp"

using namespace petrel;
using namespace std::chrono_literals;

namespace {

// Sends the count, less one, back to the other actor; at zero it reports to `done`.
caf::behavior ring_member(caf::event_based_actor* self) {
  return {
      [self](int left, caf::actor next, caf::actor done) {
        if (left == 0)
          self->send(done, left);
        else
          self->send(next, left - 1, caf::actor_cast<caf::actor>(self), done);
      },
  };
}

}  // namespace

TEST_CASE("scheduler policy: chains and fan-out finish", "[scheduler]") {
  caf::actor_system_config cfg;
  cfg.set("scheduler.max-threads", 2);
  use_next_slot_sharing(cfg);
  caf::actor_system sys{cfg};
  CHECK(dynamic_cast<caf::scheduler::coordinator<next_slot_sharing>*>(&sys.scheduler()) != nullptr);

  SECTION("two actors pass a message back and forth 20,000 times") {
    auto a = sys.spawn(ring_member);
    auto b = sys.spawn(ring_member);
    caf::scoped_actor self{sys};
    self->send(a, 20000, b, caf::actor_cast<caf::actor>(self));
    bool finished = false;
    self->receive([&](int left) { finished = left == 0; }, caf::after(10s) >> [] {});
    CHECK(finished);
    self->send_exit(a, caf::exit_reason::user_shutdown);
    self->send_exit(b, caf::exit_reason::user_shutdown);
  }

  SECTION("one actor asks 200 others; every answer comes") {
    std::vector<caf::actor> workers;
    for (int i = 0; i < 200; ++i)
      workers.push_back(sys.spawn([](caf::event_based_actor*) -> caf::behavior {
        return {[](int x) { return x + 1; }};
      }));
    std::promise<int> total;
    auto fut = total.get_future();
    sys.spawn([&workers, &total](caf::event_based_actor* self) {
      auto sum = std::make_shared<int>(0);
      auto left = std::make_shared<int>(static_cast<int>(workers.size()));
      for (auto& w : workers)
        self->request(w, caf::infinite, 1).then([sum, left, &total](int v) {
          *sum += v;
          if (--*left == 0) total.set_value(*sum);
        });
    });
    REQUIRE(fut.wait_for(10s) == std::future_status::ready);
    CHECK(fut.get() == 400);
    for (auto& w : workers) caf::anon_send_exit(w, caf::exit_reason::user_shutdown);
  }
}
