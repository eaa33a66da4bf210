// Plain HTTP request/response values and the server's interface. Handlers see these structs,
// never Beast types, so the API code compiles without Beast and Asio headers.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "config/units.hpp"

namespace boost::asio {
class io_context;
}

namespace petrel {

class tls_credentials;

// What the server and the handler share about one exchange: its request id (X-Request-Id: the
// client's when well-formed, else made here) and, once a handler knows it, the tenant; both go
// to the access log.
struct http_trace {
  std::string request_id;
  std::string tenant;
};

struct http_request {
  std::string method;  // "GET", "POST", ...
  std::string target;  // as sent: path and query
  std::string path;    // the target up to '?'
  std::string query;   // after '?', not decoded
  std::vector<std::pair<std::string, std::string>> headers;  // names in lower case
  std::string body;
  std::string remote_address;
  bool secure = false;  // arrived over TLS
  // Set by the admin API only, never from the wire: the tenant an admin request acts for
  // (/admin/tenants/{id}/... served by the tenant API's handlers).
  std::string acting_tenant;
  std::shared_ptr<http_trace> trace;  // always set by the server

  // The first header of that (lower-case) name, or empty.
  std::string_view header(std::string_view lower_name) const;
  const std::string& request_id() const;
  // Records the tenant the request acts for (thread-safe until the response is given).
  void set_tenant(std::string tenant) const {
    if (trace) trace->tenant = std::move(tenant);
  }
};

// One answered request, for the access log.
struct http_access {
  std::string_view listener;
  std::string_view method;   // "-" when the request line could not be read
  std::string_view path;     // without the query
  int status = 0;
  std::uint64_t bytes = 0;   // of the response body
  double duration_ms = 0;    // from the request's first byte to the response written
  std::string_view tenant;
  std::string_view request_id;
  std::string_view remote;
  bool tls = false;
};

// A well-formed client X-Request-Id: 1 to 128 characters of A-Z a-z 0-9 - _ . : + / =.
bool valid_request_id(std::string_view id);

struct http_response {
  int status = 200;
  std::string content_type = "application/json";
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;
};

// Completes one request. Call it exactly once, from any thread; it hops back to the
// connection's own executor by itself.
using http_responder = std::function<void(http_response)>;
// Receives every request. It must not block: it answers now or later through the responder.
using http_handler = std::function<void(http_request&&, http_responder)>;

struct http_server_options {
  std::string name = "http";  // for logs
  listen_address listen;
  std::uint64_t max_body_bytes = 10 * 1024 * 1024;
  std::uint64_t max_header_bytes = 16 * 1024;
  std::chrono::milliseconds read_timeout{30'000};
  std::chrono::milliseconds idle_timeout{60'000};
  std::chrono::milliseconds handler_timeout{30'000};
  std::uint64_t max_connections = 4096;
  // Connections one client address may hold (0: no limit); addresses or networks exempt.
  std::uint64_t max_connections_per_client = 1024;
  std::vector<std::string> trusted_clients;
  // HTTPS when set: every connection starts with a TLS handshake, with the credentials current
  // at its start (they can be reloaded meanwhile).
  std::shared_ptr<tls_credentials> tls;
  // Called after each response is written (status code); for metrics.
  std::function<void(int)> on_response;
  // Called after each response is written, with what an access log line needs.
  std::function<void(const http_access&)> on_access;
  // Called when the server closes or refuses a connection to protect the others: "shed" (an
  // idle one closed to make room), "over_limit" (max_connections), "per_client".
  std::function<void(const char*)> on_connection_refused;
};

// An HTTP/1.1 server on Boost.Beast: one coroutine per connection, keep-alive, bounded header
// and body sizes, "Expect: 100-continue", and answers it writes itself for malformed requests
// (400), oversized ones (413, 431), transfer codings other than chunked (501) and handlers that
// never answer (503). Slow clients are bounded: a connection waits for a request at most
// idle_timeout, and a request must arrive whole within read_timeout of its first byte. One
// client address holds at most max_connections_per_client connections; near max_connections
// the oldest idle keep-alive connections are closed first to make room.
class http_server {
 public:
  http_server(boost::asio::io_context& io, http_server_options options, http_handler handler);
  ~http_server();
  http_server(const http_server&) = delete;
  http_server& operator=(const http_server&) = delete;

  // Binds and listens; throws std::runtime_error naming the address when it cannot.
  void start();
  std::uint16_t port() const;

  // Stops accepting, closes idle keep-alive connections and lets requests in progress finish
  // (their connections close after the response). Thread-safe.
  void stop();
  std::size_t open_connections() const;

  struct impl;

 private:
  std::shared_ptr<impl> impl_;
};

}  // namespace petrel
