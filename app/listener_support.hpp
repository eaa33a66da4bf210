// What Petrel's HTTP listeners share beyond the HTTP server itself: HTTPS credentials that are
// watched and reloaded (SIGHUP, or when the files change), with each certificate's expiry in
// /metrics; and the access log, one JSON line per answered request. No Asio here.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "config/config.hpp"
#include "net/http.hpp"

namespace petrel {

class delivery_log;
class tls_credentials;

// The credentials of one listener from its section's keys; null for plain HTTP. Throws
// std::runtime_error naming the section, key and file when they cannot be used.
std::shared_ptr<tls_credentials> listener_credentials(const listener_tls& tls, const std::string& listener,
                                                      const std::string& section, const std::string& alpn);

// Every listener's credentials, checked for changes on disk and reloaded.
class tls_watch {
 public:
  void add(std::shared_ptr<tls_credentials> credentials);
  bool empty() const { return all_.empty(); }
  // Reloads the credentials whose files changed (every one when `force`: SIGHUP), logging and
  // counting each reload (petrel_tls_reloads_total{listener,result}); then sets each
  // certificate's expiry gauge and warns of expired ones. Reads files: call it off the actors.
  void check(bool force);
  // The expiry gauges and warnings alone (at start).
  void report() const;

 private:
  std::vector<std::shared_ptr<tls_credentials>> all_;
};

// The access log's line for one request (JSON, no newline). Secret path segments (tracking and
// unsubscribe tokens) are left out.
std::string access_log_line(const http_access& a, std::int64_t unix_ms);
// An http_server_options::on_access that writes to `log`.
std::function<void(const http_access&)> access_logger(std::shared_ptr<delivery_log> log);

}  // namespace petrel
