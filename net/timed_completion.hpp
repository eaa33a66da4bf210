// Completion of one handler call from a session, guarded by a timer: whichever comes first,
// the handler's answer or the timeout, resumes the session; the other is ignored. Both run on
// the session's strand. Used by the HTTP and SMTP listeners (net/http_server.cpp,
// net/smtp_server.cpp); only those include Asio through it.
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/steady_timer.hpp>

#include <utility>

namespace petrel {

template <class Handler>
struct timed_completion {
  timed_completion(Handler h, boost::asio::any_io_executor ex) : handler(std::move(h)), timer(ex) {}
  template <class... Args>
  void complete(Args&&... args) {
    if (done) return;
    done = true;
    timer.cancel();
    auto h = std::move(handler);
    std::move(h)(std::forward<Args>(args)...);
  }
  Handler handler;
  boost::asio::steady_timer timer;
  bool done = false;
};

}  // namespace petrel
