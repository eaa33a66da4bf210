// Per-client connection limits (see client_limiter.hpp).
#include "net/client_limiter.hpp"

#include <stdexcept>

namespace petrel {

client_limiter::client_limiter(std::size_t per_client, const std::vector<std::string>& trusted)
    : per_client_(per_client) {
  for (const auto& t : trusted) {
    ip_network n;
    std::string error;
    if (!parse_ip_network(t, n, error)) throw std::invalid_argument(error);
    trusted_.push_back(n);
  }
}

bool client_limiter::trusted(const std::string& address) const {
  if (trusted_.empty()) return false;
  std::array<std::uint8_t, 16> bytes;
  if (!parse_ip_address(address, bytes)) return false;
  for (const auto& n : trusted_)
    if (n.contains(bytes)) return true;
  return false;
}

bool client_limiter::acquire(const std::string& address) {
  if (per_client_ == 0 || trusted(address)) return true;
  std::lock_guard lock(mutex_);
  auto& n = open_[address];
  if (n >= per_client_) {
    if (n == 0) open_.erase(address);
    return false;
  }
  ++n;
  return true;
}

void client_limiter::release(const std::string& address) {
  if (per_client_ == 0 || trusted(address)) return;
  std::lock_guard lock(mutex_);
  auto it = open_.find(address);
  if (it == open_.end()) return;
  if (--it->second == 0) open_.erase(it);
}

}  // namespace petrel
