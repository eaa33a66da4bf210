#include "app/console/console_sessions.hpp"

#include "actors/api_key.hpp"

namespace petrel {

console_sessions::console_sessions(std::chrono::milliseconds lifetime, std::chrono::milliseconds idle_timeout)
    : lifetime_ms_(lifetime.count()), idle_ms_(idle_timeout.count()) {}

void console_sessions::prune(std::int64_t now_ms) {
  for (auto it = sessions_.begin(); it != sessions_.end();) {
    if (it->second.expires_ms <= now_ms || it->second.last_used_ms + idle_ms_ <= now_ms)
      it = sessions_.erase(it);
    else
      ++it;
  }
}

console_sessions::created console_sessions::create(std::int64_t now_ms) {
  created c{random_hex(32), random_hex(32), now_ms + lifetime_ms_};
  std::lock_guard lock(mutex_);
  if (sessions_.size() >= max_sessions) prune(now_ms);
  if (sessions_.size() >= max_sessions) {
    // Still full of live sessions: the least recently used one makes room.
    auto oldest = sessions_.begin();
    for (auto it = sessions_.begin(); it != sessions_.end(); ++it)
      if (it->second.last_used_ms < oldest->second.last_used_ms) oldest = it;
    sessions_.erase(oldest);
  }
  sessions_[sha256_hex(c.cookie)] = {c.csrf, c.expires_ms, now_ms};
  return c;
}

std::optional<console_sessions::session> console_sessions::find(std::string_view cookie, std::int64_t now_ms) {
  if (cookie.size() != 64) return std::nullopt;
  auto key = sha256_hex(cookie);
  std::lock_guard lock(mutex_);
  auto it = sessions_.find(key);
  if (it == sessions_.end()) return std::nullopt;
  if (it->second.expires_ms <= now_ms || it->second.last_used_ms + idle_ms_ <= now_ms) {
    sessions_.erase(it);
    return std::nullopt;
  }
  it->second.last_used_ms = now_ms;
  return session{it->second.csrf, it->second.expires_ms};
}

void console_sessions::remove(std::string_view cookie) {
  auto key = sha256_hex(cookie);
  std::lock_guard lock(mutex_);
  sessions_.erase(key);
}

std::size_t console_sessions::size() const {
  std::lock_guard lock(mutex_);
  return sessions_.size();
}

std::int64_t console_sessions::login_blocked(const std::string& address, std::int64_t now_ms) const {
  std::lock_guard lock(mutex_);
  auto it = failed_.find(address);
  auto minute = now_ms / 60'000;
  if (it == failed_.end() || it->second.minute != minute || it->second.count < max_failures) return 0;
  return (minute + 1) * 60 - now_ms / 1000;
}

void console_sessions::login_failed(const std::string& address, std::int64_t now_ms) {
  auto minute = now_ms / 60'000;
  std::lock_guard lock(mutex_);
  if (failed_.size() > 100'000) failed_.clear();  // bounded, whatever the number of addresses
  auto& f = failed_[address];
  if (f.minute != minute) f = {minute, 0};
  ++f.count;
}

}  // namespace petrel
