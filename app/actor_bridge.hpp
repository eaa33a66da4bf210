// Asking an actor from a thread that must not block (an Asio thread): a short-lived actor
// sends the request and hands the answer, or the error, to a callback. The callback runs on
// a CAF worker; HTTP responders hop back to their connection by themselves.
#pragma once

#include <functional>
#include <tuple>

#include <caf/actor_system.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/expected.hpp>

namespace petrel {

template <class... Replies, class Handle, class OnReply, class OnError, class... Ts>
void ask(caf::actor_system& sys, const Handle& handle, std::chrono::milliseconds timeout,
         OnReply on_reply, OnError on_error, Ts&&... args) {
  if (!handle) {
    caf::error e = caf::make_error(caf::sec::invalid_argument, "actor not running");
    on_error(e);
    return;
  }
  sys.spawn([handle, timeout, on_reply = std::move(on_reply), on_error = std::move(on_error),
             request = std::make_tuple(std::forward<Ts>(args)...)](
                caf::event_based_actor* self) mutable {
    std::apply(
        [&](auto&... xs) {
          self->request(handle, timeout, std::move(xs)...)
              .then([on_reply](Replies&... replies) mutable { on_reply(replies...); },
                    [on_error](caf::error& e) mutable { on_error(e); });
        },
        request);
  });
}

}  // namespace petrel
