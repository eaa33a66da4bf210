#include "app/actor_bridge.hpp"

#include <atomic>
#include <functional>
#include <queue>
#include <vector>

#include <caf/all.hpp>
#include <spdlog/spdlog.h>

namespace petrel {
namespace {

using bridge_sweep_atom = caf::atom_constant<caf::atom("bsweep")>;

// How often a bridge with jobs in flight looks for deadlines that passed. A job ends at most
// this much after its deadline.
constexpr auto sweep_interval = std::chrono::milliseconds(100);

struct bridge_state : bridge_ledger {
  using clock = std::chrono::steady_clock;
  std::uint64_t next_id = 1;
  // Deadlines in order (earliest first), each with its job's id; entries of jobs that ended
  // earlier are skipped when they come up.
  std::priority_queue<std::pair<clock::time_point, std::uint64_t>,
                      std::vector<std::pair<clock::time_point, std::uint64_t>>, std::greater<>>
      deadlines;
  bool sweep_armed = false;
  static inline const char* name = "http_bridge";
};

using bridge_actor_type = caf::stateful_actor<bridge_state>;

void arm_sweep(bridge_actor_type* self) {
  if (self->state.sweep_armed || self->state.deadlines.empty()) return;
  self->state.sweep_armed = true;
  self->delayed_send(self, sweep_interval, bridge_sweep_atom::value);
}

caf::behavior bridge_actor(bridge_actor_type* self) {
  return {
      [self](bridge_job_ptr& p) {
        auto& st = self->state;
        auto job = std::move(p.job);
        if (!job) return;
        auto id = st.next_id++;
        st.pending.emplace(id, job);
        st.deadlines.emplace(bridge_state::clock::now() + job->timeout, id);
        bool started = false;
        bridge_guard("request", [&] {
          job->start(self, &st, id, job);
          started = true;
        });
        if (!started && st.take(id)) {
          caf::error e = caf::make_error(caf::sec::runtime_error, "request could not be sent");
          job->fail(e);
        }
        arm_sweep(self);
      },
      [self](bridge_sweep_atom) {
        auto& st = self->state;
        st.sweep_armed = false;
        auto now = bridge_state::clock::now();
        while (!st.deadlines.empty() && st.deadlines.top().first <= now) {
          auto id = st.deadlines.top().second;
          st.deadlines.pop();
          auto it = st.pending.find(id);
          if (it == st.pending.end()) continue;
          auto job = std::move(it->second);
          st.pending.erase(it);
          caf::error e = caf::make_error(caf::sec::request_timeout);
          job->fail(e);
        }
        // Ended jobs leave their deadline behind: all go when nothing is in flight, else while
        // they are at the front (and the timer stops once nothing is left).
        if (st.pending.empty()) st.deadlines = {};
        while (!st.deadlines.empty() && !st.pending.count(st.deadlines.top().second))
          st.deadlines.pop();
        arm_sweep(self);
      },
  };
}

struct installed_pool {
  caf::actor_system* sys = nullptr;
  std::vector<caf::actor> bridges;
  std::atomic<std::size_t> next{0};
};

std::atomic<installed_pool*> current_pool{nullptr};

}  // namespace

struct bridge_pool::impl {
  installed_pool pool;
};

bridge_pool::bridge_pool(caf::actor_system& sys, std::size_t count) : impl_(std::make_unique<impl>()) {
  impl_->pool.sys = &sys;
  for (std::size_t i = 0; i < std::max<std::size_t>(count, 1); ++i)
    impl_->pool.bridges.push_back(sys.spawn(bridge_actor));
  installed_pool* expected = nullptr;
  if (!current_pool.compare_exchange_strong(expected, &impl_->pool))
    spdlog::warn("http.bridge_pool_exists: a second pool of bridges is not used");
}

bridge_pool::~bridge_pool() { stop(); }

void bridge_pool::stop() {
  installed_pool* mine = &impl_->pool;
  current_pool.compare_exchange_strong(mine, nullptr);
  for (auto& b : impl_->pool.bridges) caf::anon_send_exit(b, caf::exit_reason::user_shutdown);
  // The handles stay: a thread that found the pool before it was taken down may still send
  // to it (the job is then dropped, as at any actor that has ended).
}

bool send_to_bridge(caf::actor_system& sys, std::shared_ptr<bridge_job> job) {
  auto* pool = current_pool.load(std::memory_order_acquire);
  if (!pool || pool->sys != &sys) return false;
  auto i = pool->next.fetch_add(1, std::memory_order_relaxed) % pool->bridges.size();
  caf::anon_send(pool->bridges[i], bridge_job_ptr{std::move(job)});
  return true;
}

void log_bridge_exception(const char* what, const char* detail) {
  spdlog::error("http.bridge_exception in={} error=\"{}\"", what, detail);
}

}  // namespace petrel
