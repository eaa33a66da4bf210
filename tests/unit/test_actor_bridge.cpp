// The bridge from non-actor threads to actors (app/actor_bridge.hpp): answers and errors reach
// their callbacks once; a request nobody answers ends at its deadline and a late answer is
// dropped; a callback that throws does not end the bridge; without a pool, or after it
// stopped, each ask spawns its own actor.
#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <future>
#include <stdexcept>
#include <thread>

#include <caf/all.hpp>

#include "app/actor_bridge.hpp"

using namespace petrel;
using namespace std::chrono_literals;

namespace {

using hold_atom = caf::atom_constant<caf::atom("hold")>;
using release_atom = caf::atom_constant<caf::atom("release")>;

// Doubles an int; holds a `hold` request's promise until told to release it.
struct holder_state {
  std::vector<caf::response_promise> held;
};

caf::behavior holder(caf::stateful_actor<holder_state>* self) {
  return {
      [](int x) { return x * 2; },
      [self](hold_atom) -> caf::result<int> {
        self->state.held.push_back(self->make_response_promise());
        return self->state.held.back();
      },
      [self](release_atom) {
        for (auto& p : self->state.held) p.deliver(7);
        self->state.held.clear();
      },
  };
}

struct outcome {
  std::atomic<int> replies{0};
  std::atomic<int> errors{0};
  std::promise<std::string> first;
  std::atomic<bool> said{false};
  void say(std::string s) {
    if (!said.exchange(true)) first.set_value(std::move(s));
  }
};

std::string wait_first(outcome& o) {
  auto f = o.first.get_future();
  if (f.wait_for(10s) != std::future_status::ready) return "nothing within 10 s";
  return f.get();
}

}  // namespace

TEST_CASE("bridge: answers, deadlines and late answers", "[bridge]") {
  caf::actor_system_config cfg;
  caf::actor_system sys{cfg};
  auto h = sys.spawn(holder);
  {
    bridge_pool pool(sys, 1);

    SECTION("an answer reaches the reply callback") {
      outcome o;
      ask<int>(
          sys, h, 5s, [&](int& v) { ++o.replies; o.say("reply " + std::to_string(v)); },
          [&](caf::error& e) { ++o.errors; o.say("error " + sys.render(e)); }, 21);
      CHECK(wait_first(o) == "reply 42");
    }

    SECTION("a request nobody answers ends at its deadline; the late answer is dropped") {
      outcome o;
      caf::error seen;
      ask<int>(
          sys, h, 200ms, [&](int&) { ++o.replies; o.say("reply"); },
          [&](caf::error& e) { seen = e; ++o.errors; o.say("error"); }, hold_atom::value);
      CHECK(wait_first(o) == "error");
      CHECK(seen == caf::sec::request_timeout);
      caf::anon_send(h, release_atom::value);
      // The bridge still works after the late answer, and handled it before this one.
      outcome next;
      ask<int>(
          sys, h, 5s, [&](int& v) { next.say("reply " + std::to_string(v)); },
          [&](caf::error& e) { next.say("error " + sys.render(e)); }, 2);
      CHECK(wait_first(next) == "reply 4");
      CHECK(o.replies == 0);
      CHECK(o.errors == 1);
    }

    SECTION("a callback that throws does not end the bridge") {
      outcome o;
      ask<int>(sys, h, 5s, [&](int&) -> void { o.say("threw"); throw std::runtime_error("boom"); },
               [&](caf::error&) { o.say("error"); }, 1);
      CHECK(wait_first(o) == "threw");
      outcome next;
      ask<int>(
          sys, h, 5s, [&](int& v) { next.say("reply " + std::to_string(v)); },
          [&](caf::error& e) { next.say("error " + sys.render(e)); }, 3);
      CHECK(wait_first(next) == "reply 6");
    }

    SECTION("after the pool stops, an ask spawns its own actor") {
      pool.stop();
      outcome o;
      ask<int>(
          sys, h, 5s, [&](int& v) { o.say("reply " + std::to_string(v)); },
          [&](caf::error& e) { o.say("error " + sys.render(e)); }, 5);
      CHECK(wait_first(o) == "reply 10");
      outcome late;
      ask<int>(
          sys, h, 200ms, [&](int&) { late.say("reply"); }, [&](caf::error& e) { late.say(sys.render(e)); },
          hold_atom::value);
      CHECK(wait_first(late).find("request_timeout") != std::string::npos);
    }

    SECTION("a handle of no actor is an error at once") {
      outcome o;
      caf::actor none;
      ask<int>(
          sys, none, 5s, [&](int&) { o.say("reply"); }, [&](caf::error&) { o.say("error"); }, 1);
      CHECK(wait_first(o) == "error");
    }
  }
  caf::anon_send(h, release_atom::value);
  caf::anon_send_exit(h, caf::exit_reason::user_shutdown);
}
