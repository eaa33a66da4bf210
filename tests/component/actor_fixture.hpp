// A CAF actor system on the deterministic "testing" scheduler (virtual time, actors run only
// when the test says so) with a real SQLite store in a temporary directory.
#pragma once

#include <caf/all.hpp>

#include <optional>
#include <variant>

#include "actors/services.hpp"
#include "../unit/store_fixture.hpp"

namespace petrel::testing {

struct actor_fixture {
  temp_dir dir;
  std::string url = "sqlite:" + (dir.path / "petrel.db").string();
  caf::actor_system_config cfg;
  std::unique_ptr<caf::actor_system> sys;
  caf::scheduler::test_coordinator* sched = nullptr;
  // The configuration the actors get (tests change it before they spawn an actor).
  std::shared_ptr<node_config> config = std::make_shared<node_config>();
  node_settings settings;
  std::vector<caf::actor> watchers;

  actor_fixture() {
    cfg.set("scheduler.policy", caf::atom("testing"));
    register_types(cfg);
    sys = std::make_unique<caf::actor_system>(cfg);
    sched = &dynamic_cast<caf::scheduler::test_coordinator&>(sys->scheduler());
    settings.config = config;
    config->store_detached = false;
    config->storage.commit_interval = std::chrono::milliseconds(0);  // no delayed commits to drive
    config->deliver = false;  // no DNS or SMTP here: recipients stay queued
    config->actors.restart_backoff = std::chrono::milliseconds(100);
    config->actors.restart_backoff_max = std::chrono::milliseconds(1000);
    config->actors.restart_window = std::chrono::seconds(60);
    auto s = open_store(url, store_options{});
    s->migrate();
  }

  ~actor_fixture() {
    for (auto& w : watchers) caf::anon_send_exit(w, caf::exit_reason::user_shutdown);
    sched->run();
    sys->await_actors_before_shutdown(false);
  }

  store_factory factory() {
    auto u = url;
    return [u] { return open_store(u, store_options{}); };
  }

  // Writes directly to the database, as a previous run of the node would have.
  void seed(std::vector<write_op> ops) {
    auto s = open_store(url, store_options{});
    for (const auto& result : s->apply(ops)) REQUIRE(result.empty());
  }

  // Sends a request from a helper actor, runs the system until quiet, returns the outcome.
  template <class T, class Handle, class... Ts>
  std::variant<T, caf::error> ask(const Handle& handle, Ts... xs) {
    auto result = std::make_shared<std::optional<std::variant<T, caf::error>>>();
    sys->spawn([=](caf::event_based_actor* self) {
      self->request(handle, caf::infinite, xs...)
          .then([=](T& value) { *result = std::move(value); },
                [=](caf::error& e) { *result = std::move(e); });
    });
    sched->run();
    REQUIRE(result->has_value());
    return std::move(**result);
  }

  template <class T, class Handle, class... Ts>
  T ask_ok(const Handle& handle, Ts... xs) {
    auto r = ask<T>(handle, xs...);
    if (auto* e = std::get_if<caf::error>(&r)) FAIL("request failed: " << sys->render(*e));
    return std::get<T>(std::move(r));
  }

  // Watches an actor; the returned value holds its exit reason once it is down.
  std::shared_ptr<std::optional<caf::error>> watch(const caf::actor_addr& who) {
    auto reason = std::make_shared<std::optional<caf::error>>();
    auto handle = caf::actor_cast<caf::actor>(who);
    // Kept: CAF destroys an actor nobody references, and a monitor does not count.
    watchers.push_back(sys->spawn([=](caf::event_based_actor* self) -> caf::behavior {
      self->monitor(handle);
      self->set_down_handler([=](caf::down_msg& dm) {
        *reason = dm.reason;
        self->quit();
      });
      return {[](int) {}};
    }));
    sched->run();
    return reason;
  }
};

inline petrel_errc error_code(const caf::error& e) {
  petrel_errc code{};
  std::string detail;
  std::int64_t retry = 0;
  if (!read_error(e, code, detail, retry)) return petrel_errc{};
  return code;
}

}  // namespace petrel::testing
