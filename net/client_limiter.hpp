// Connections per client address, for the listeners (HTTP API and admin, inbound SMTP): one
// address may hold at most a set number of a listener's connections, so a single client --
// slow, broken or hostile -- cannot take every slot. Trusted networks (a load balancer, the
// benchmarks on loopback) are exempt. Thread-safe; plain code without Asio.
#pragma once

#include <cstddef>
#include <cstdint>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "config/units.hpp"

namespace petrel {

class client_limiter {
 public:
  // Throws std::invalid_argument naming a trusted entry that is no address or network.
  client_limiter(std::size_t per_client, const std::vector<std::string>& trusted);

  // Counts one more connection of `address`; false (not counted) when it is at its limit.
  bool acquire(const std::string& address);
  // Ends a connection counted by acquire.
  void release(const std::string& address);
  std::size_t per_client() const { return per_client_; }

 private:
  bool trusted(const std::string& address) const;

  std::size_t per_client_;
  std::vector<ip_network> trusted_;
  std::mutex mutex_;
  std::unordered_map<std::string, std::size_t> open_;  // untrusted addresses only
};

}  // namespace petrel
