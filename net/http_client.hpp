// A small HTTP/1.1 client (Boost.Beast) as a coroutine: one request on its own connection,
// plain TCP or verified TLS (SNI and host name checks), one timeout for the whole exchange, a
// bounded response body, no redirects. Used for MTA-STS policies and webhook deliveries.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/ssl/context.hpp>

namespace petrel {

struct http_client_request {
  std::string method = "GET";
  std::string host;     // Host header, SNI and certificate name
  std::string address;  // the IP to connect to (already resolved)
  std::uint16_t port = 443;
  std::string target = "/";
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  std::chrono::milliseconds timeout{10000};
  std::size_t max_body = 64 * 1024;
};

struct http_client_response {
  int status = 0;  // 0: no response (see error)
  std::string content_type;
  std::string body;
  std::string error;
};

// With `tls` null the request goes over plain TCP.
boost::asio::awaitable<http_client_response> http_call(boost::asio::any_io_executor executor,
                                                       boost::asio::ssl::context* tls,
                                                       http_client_request request);

}  // namespace petrel
