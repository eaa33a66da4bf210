// Petrel's CAF scheduler policy ("sharing", the default of actors.scheduler): one job queue for
// all workers, like CAF's work_sharing, with three differences that save context switches:
//
// - An actor made ready by another actor running on a worker (a message from actor to actor)
//   goes to that worker's "next" slot and runs there as soon as the current actor yields,
//   without waking another worker. A newer one takes the slot and the older one goes to the
//   shared queue (where an idle worker picks it up), so fan-out still spreads over the
//   workers. A worker runs at most `slot_runs_max` jobs in a row from its slot before it takes
//   one from the shared queue, so nothing waits behind a chain of actors for long.
// - A sleeping worker is woken only when there is one not already being woken (counts kept
//   under the lock), and after the lock is released, so that it does not wake only to wait for
//   the lock.
// - The shared queue is a ring buffer (no allocation per job).
//
// Detached actors and other threads (Asio, the store) enqueue through the coordinator, into the
// shared queue, as before.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <deque>
#include <mutex>

#include <caf/actor_system_config.hpp>
#include <caf/policy/unprofiled.hpp>
#include <caf/resumable.hpp>

namespace petrel {

class next_slot_sharing : public caf::policy::unprofiled {
 public:
  static constexpr unsigned slot_runs_max = 8;

  struct coordinator_data {
    explicit coordinator_data(caf::scheduler::abstract_coordinator*) {}
    std::mutex lock;
    std::condition_variable cv;
    std::deque<caf::resumable*> queue;
    std::size_t sleepers = 0;  // workers waiting on cv
    std::size_t waking = 0;    // of them, signalled and not yet up
  };

  struct worker_data {
    explicit worker_data(caf::scheduler::abstract_coordinator*) {}
    worker_data(const worker_data&) : next(nullptr), slot_runs(0) {}
    caf::resumable* next = nullptr;
    unsigned slot_runs = 0;
  };

  template <class Coordinator>
  void central_enqueue(Coordinator* self, caf::resumable* job) {
    push(d(self), job);
  }

  template <class Worker>
  void external_enqueue(Worker* self, caf::resumable* job) {
    push(d(self->parent()), job);
  }

  template <class Worker>
  void internal_enqueue(Worker* self, caf::resumable* job) {
    auto& w = d(self);
    auto* older = w.next;
    w.next = job;
    if (older != nullptr) push(d(self->parent()), older);
  }

  template <class Worker>
  void resume_job_later(Worker* self, caf::resumable* job) {
    // The job used up its throughput: to the back of the shared queue, behind the others.
    push(d(self->parent()), job);
  }

  template <class Worker>
  caf::resumable* dequeue(Worker* self) {
    auto& w = d(self);
    if (w.next != nullptr) {
      if (w.slot_runs < slot_runs_max) {
        ++w.slot_runs;
        auto* job = w.next;
        w.next = nullptr;
        return job;
      }
      // Enough from the slot: the job there goes behind the shared queue's.
      push(d(self->parent()), w.next);
      w.next = nullptr;
    }
    w.slot_runs = 0;
    auto& c = d(self->parent());
    std::unique_lock<std::mutex> guard(c.lock);
    while (c.queue.empty()) {
      ++c.sleepers;
      c.cv.wait(guard);
      --c.sleepers;
      if (c.waking > 0) --c.waking;  // a spurious wake-up may take one: at worst a spare signal
    }
    auto* job = c.queue.front();
    c.queue.pop_front();
    return job;
  }

  template <class Worker, class UnaryFunction>
  void foreach_resumable(Worker* self, UnaryFunction f) {
    auto& w = d(self);
    if (w.next != nullptr) {
      auto* job = w.next;
      w.next = nullptr;
      f(job);
    }
  }

  template <class Coordinator, class UnaryFunction>
  void foreach_central_resumable(Coordinator* self, UnaryFunction f) {
    auto& c = d(self);
    std::unique_lock<std::mutex> guard(c.lock);
    while (!c.queue.empty()) {
      auto* job = c.queue.front();
      c.queue.pop_front();
      f(job);
    }
  }

 private:
  static void push(coordinator_data& c, caf::resumable* job) {
    bool wake = false;
    {
      std::lock_guard<std::mutex> guard(c.lock);
      c.queue.push_back(job);
      // One signal per sleeper: a burst of jobs (the store answering a whole commit) wakes a
      // sleeping worker once, not once per job.
      if (c.sleepers > c.waking) {
        ++c.waking;
        wake = true;
      }
    }
    if (wake) c.cv.notify_one();
  }
};

// Makes `cfg`'s actor system schedule with next_slot_sharing (before the system is made).
void use_next_slot_sharing(caf::actor_system_config& cfg);

}  // namespace petrel
