// The HTTPS GET client (see https_client.hpp).
#include "net/https_client.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>

namespace petrel {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;

asio::awaitable<https_response> https_get(asio::any_io_executor executor, asio::ssl::context& tls,
                                          std::string host, std::string address,
                                          std::uint16_t port, std::string target,
                                          std::chrono::milliseconds timeout,
                                          std::size_t max_body) {
  constexpr auto tuple = asio::as_tuple(asio::use_awaitable);
  https_response out;
  beast::error_code ec;
  auto ip = asio::ip::make_address(address, ec);
  if (ec) {
    out.error = "invalid address " + address;
    co_return out;
  }
  beast::ssl_stream<beast::tcp_stream> stream(executor, tls);
  SSL_set_tlsext_host_name(stream.native_handle(), host.c_str());
  stream.set_verify_mode(asio::ssl::verify_peer);
  stream.set_verify_callback(asio::ssl::host_name_verification(host));
  auto& tcp = beast::get_lowest_layer(stream);
  tcp.expires_after(timeout);
  std::tie(ec) = co_await tcp.async_connect(asio::ip::tcp::endpoint(ip, port), tuple);
  if (ec) {
    out.error = "connect to " + address + ": " + ec.message();
    co_return out;
  }
  std::tie(ec) = co_await stream.async_handshake(asio::ssl::stream_base::client, tuple);
  if (ec) {
    out.error = "TLS with " + host + ": " + ec.message();
    co_return out;
  }
  http::request<http::empty_body> request{http::verb::get, target, 11};
  request.set(http::field::host, host);
  request.set(http::field::user_agent, "petrel");
  std::size_t n = 0;
  std::tie(ec, n) = co_await http::async_write(stream, request, tuple);
  if (ec) {
    out.error = "request to " + host + ": " + ec.message();
    co_return out;
  }
  beast::flat_buffer buffer;
  http::response_parser<http::string_body> parser;
  parser.body_limit(max_body);
  std::tie(ec, n) = co_await http::async_read(stream, buffer, parser, tuple);
  if (ec) {
    out.error = "response from " + host + ": " + ec.message();
    co_return out;
  }
  auto& response = parser.get();
  out.status = static_cast<int>(response.result_int());
  out.content_type = std::string(response[http::field::content_type]);
  out.body = std::move(response.body());
  tcp.expires_after(std::chrono::seconds(1));
  co_await stream.async_shutdown(tuple);  // best effort
  co_return out;
}

}  // namespace petrel
