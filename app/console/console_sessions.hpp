// The web console's logins: sessions (a random id in an HttpOnly cookie, only its SHA-256
// kept here) with a CSRF token each, ended by logout, by their lifetime or when unused; and a
// per-address brake on failed logins. In memory: a restart logs everyone out. Thread-safe.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

namespace petrel {

class console_sessions {
 public:
  console_sessions(std::chrono::milliseconds lifetime, std::chrono::milliseconds idle_timeout);

  struct created {
    std::string cookie;  // the session id: the cookie's value
    std::string csrf;    // sent back in X-CSRF-Token with every state-changing request
    std::int64_t expires_ms = 0;
  };
  struct session {
    std::string csrf;
    std::int64_t expires_ms = 0;  // the lifetime's end
  };

  created create(std::int64_t now_ms);
  // The live session of a cookie value (and marks it used), or nullopt.
  std::optional<session> find(std::string_view cookie, std::int64_t now_ms);
  void remove(std::string_view cookie);
  std::size_t size() const;

  // Failed logins: at most `max_failures` per address and minute; past that, login_blocked
  // says how many seconds are left of the minute.
  static constexpr int max_failures = 10;
  std::int64_t login_blocked(const std::string& address, std::int64_t now_ms) const;
  void login_failed(const std::string& address, std::int64_t now_ms);

  static constexpr std::size_t max_sessions = 10'000;

 private:
  struct entry {
    std::string csrf;
    std::int64_t expires_ms;
    std::int64_t last_used_ms;
  };
  struct failures {
    std::int64_t minute = 0;
    int count = 0;
  };
  void prune(std::int64_t now_ms);

  std::int64_t lifetime_ms_;
  std::int64_t idle_ms_;
  mutable std::mutex mutex_;
  std::unordered_map<std::string, entry> sessions_;  // by sha256_hex(cookie)
  std::map<std::string, failures> failed_;
};

}  // namespace petrel
