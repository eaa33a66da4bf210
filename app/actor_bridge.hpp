// Asking an actor from a thread that must not block (an Asio thread): the request goes out
// from a bridge actor, and the answer, or the error, is handed to a callback. The callback runs
// on a CAF worker; HTTP responders hop back to their connection by themselves.
//
// A running node has a few long-lived bridge actors (bridge_pool); each request is a job sent
// to one of them. A bridge keeps the deadlines of its jobs itself (one timer per bridge, not one
// entry in CAF's clock per request) and asks actors of its own node without a CAF timeout: a
// job whose deadline passes gets a request_timeout error, and a late answer is dropped. Asks of
// actors on other nodes keep CAF's timeout as well, so that nothing waits on a lost link.
// Without a pool (tests that make their own actor system, or a node stopping), each request
// spawns a short-lived actor that asks with CAF's timeout.
#pragma once

#include <chrono>
#include <cstdint>
#include <exception>
#include <memory>
#include <optional>
#include <tuple>
#include <unordered_map>
#include <utility>

#include <caf/actor_system.hpp>
#include <caf/allowed_unsafe_message_type.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/expected.hpp>
#include <caf/sec.hpp>

namespace petrel {

class bridge_job;

// What a bridge knows of its jobs in flight.
struct bridge_ledger {
  std::unordered_map<std::uint64_t, std::shared_ptr<bridge_job>> pending;
  // True once for a job still in flight; false when its deadline already ended it.
  bool take(std::uint64_t id) { return pending.erase(id) > 0; }
};

// One request through a bridge. Touched only by the actor that sends it.
class bridge_job {
 public:
  virtual ~bridge_job() = default;
  // Sends the request from `self`. With a ledger, the answer counts only while `id` is in it.
  virtual void start(caf::event_based_actor* self, bridge_ledger* ledger, std::uint64_t id,
                     std::shared_ptr<bridge_job> me) = 0;
  // Calls the error callback and lets go of both callbacks.
  virtual void fail(caf::error& e) = 0;
  std::chrono::milliseconds timeout{0};
};

struct bridge_job_ptr {
  std::shared_ptr<bridge_job> job;
};

// The bridges of a node's actor system, from construction until stop().
class bridge_pool {
 public:
  bridge_pool(caf::actor_system& sys, std::size_t count);
  ~bridge_pool();
  bridge_pool(const bridge_pool&) = delete;
  bridge_pool& operator=(const bridge_pool&) = delete;
  // Stops the bridges (jobs still in flight are dropped without a callback); later asks
  // spawn an actor each. The pool object itself must outlive every thread that may ask.
  void stop();

 private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

// Hands a job to a bridge of `sys`; false when `sys` has no running pool.
bool send_to_bridge(caf::actor_system& sys, std::shared_ptr<bridge_job> job);
void log_bridge_exception(const char* what, const char* detail);

// Runs a callback of a job: an exception is logged and never ends the bridge.
template <class F>
void bridge_guard(const char* what, F&& fn) {
  try {
    fn();
  } catch (const std::exception& e) {
    log_bridge_exception(what, e.what());
  } catch (...) {
    log_bridge_exception(what, "unknown exception");
  }
}

namespace detail {

template <class Handle, class OnReply, class OnError, class Request, class... Replies>
class typed_bridge_job final : public bridge_job {
 public:
  typed_bridge_job(Handle handle, OnReply on_reply, OnError on_error, Request request)
      : handle_(std::move(handle)),
        on_reply_(std::move(on_reply)),
        on_error_(std::move(on_error)),
        request_(std::move(request)) {}

  void start(caf::event_based_actor* self, bridge_ledger* ledger, std::uint64_t id,
             std::shared_ptr<bridge_job> me) override {
    caf::duration wait{timeout};
    if (ledger && handle_.node() == self->node()) wait = caf::infinite;
    std::apply(
        [&](auto&... xs) {
          self->request(handle_, wait, std::move(xs)...)
              .then(
                  [this, ledger, id, me](Replies&... replies) {
                    if (ledger && !ledger->take(id)) return;
                    if (on_reply_) bridge_guard("reply", [&] { (*on_reply_)(replies...); });
                    release();
                  },
                  [this, ledger, id, me](caf::error& e) {
                    if (ledger && !ledger->take(id)) return;
                    fail(e);
                  });
        },
        request_);
  }

  void fail(caf::error& e) override {
    if (on_error_) bridge_guard("error", [&] { (*on_error_)(e); });
    release();
  }

 private:
  // The callbacks may hold a connection's state: it goes as soon as the job ends, even while
  // CAF keeps the response handler of a request that is answered late or never.
  void release() {
    on_reply_.reset();
    on_error_.reset();
  }

  Handle handle_;
  std::optional<OnReply> on_reply_;
  std::optional<OnError> on_error_;
  Request request_;
};

}  // namespace detail

template <class... Replies, class Handle, class OnReply, class OnError, class... Ts>
void ask(caf::actor_system& sys, const Handle& handle, std::chrono::milliseconds timeout,
         OnReply on_reply, OnError on_error, Ts&&... args) {
  if (!handle) {
    caf::error e = caf::make_error(caf::sec::invalid_argument, "actor not running");
    on_error(e);
    return;
  }
  using request_type = std::tuple<std::decay_t<Ts>...>;
  using job_type = detail::typed_bridge_job<Handle, OnReply, OnError, request_type, Replies...>;
  auto job = std::make_shared<job_type>(handle, std::move(on_reply), std::move(on_error),
                                        request_type(std::forward<Ts>(args)...));
  job->timeout = timeout;
  if (send_to_bridge(sys, job)) return;
  sys.spawn([job](caf::event_based_actor* self) {
    job->start(self, nullptr, 0, job);
  });
}

}  // namespace petrel

CAF_ALLOW_UNSAFE_MESSAGE_TYPE(petrel::bridge_job_ptr)
