// A small HTTPS GET client (Boost.Beast over OpenSSL) as a coroutine: verified TLS with SNI
// and host name checks, one timeout for the whole exchange, a bounded body, no redirects.
// Used for MTA-STS policies (RFC 8461 3.3 forbids following redirects).
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/ssl/context.hpp>

#include "net/http_client.hpp"

namespace petrel {

using https_response = http_client_response;

// GET https://host:port/target, connecting to `address` (already resolved).
boost::asio::awaitable<https_response> https_get(boost::asio::any_io_executor executor,
                                                 boost::asio::ssl::context& tls, std::string host,
                                                 std::string address, std::uint16_t port,
                                                 std::string target,
                                                 std::chrono::milliseconds timeout,
                                                 std::size_t max_body);

}  // namespace petrel
