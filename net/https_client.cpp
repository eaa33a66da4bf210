// The HTTP client (see http_client.hpp) and the HTTPS GET of https_client.hpp.
#include "net/https_client.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>

#include "net/http_client.hpp"

namespace petrel {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;

namespace {

constexpr auto tuple = asio::as_tuple(asio::use_awaitable);

// Writes the request and reads the response on a connected (and, for TLS, handshaken) stream.
template <class Stream>
asio::awaitable<void> exchange(Stream& stream, const http_client_request& in, http_client_response& out) {
  beast::error_code ec;
  auto verb = http::string_to_verb(in.method);
  http::request<http::string_body> request{verb == http::verb::unknown ? http::verb::get : verb, in.target, 11};
  request.set(http::field::host, in.host);
  request.set(http::field::user_agent, "petrel");
  for (const auto& [name, value] : in.headers) request.set(name, value);
  if (!in.body.empty() || verb == http::verb::post) {
    request.body() = in.body;
    request.prepare_payload();
  }
  std::size_t n = 0;
  std::tie(ec, n) = co_await http::async_write(stream, request, tuple);
  if (ec) {
    out.error = "request to " + in.host + ": " + ec.message();
    co_return;
  }
  beast::flat_buffer buffer;
  http::response_parser<http::string_body> parser;
  parser.body_limit(in.max_body);
  std::tie(ec, n) = co_await http::async_read(stream, buffer, parser, tuple);
  if (ec) {
    out.error = "response from " + in.host + ": " + ec.message();
    co_return;
  }
  auto& response = parser.get();
  out.status = static_cast<int>(response.result_int());
  out.content_type = std::string(response[http::field::content_type]);
  out.body = std::move(response.body());
}

}  // namespace

asio::awaitable<http_client_response> http_call(asio::any_io_executor executor, asio::ssl::context* tls,
                                                http_client_request in) {
  http_client_response out;
  beast::error_code ec;
  auto ip = asio::ip::make_address(in.address, ec);
  if (ec) {
    out.error = "invalid address " + in.address;
    co_return out;
  }
  asio::ip::tcp::endpoint endpoint(ip, in.port);
  if (!tls) {
    beast::tcp_stream stream(executor);
    stream.expires_after(in.timeout);
    std::tie(ec) = co_await stream.async_connect(endpoint, tuple);
    if (ec) {
      out.error = "connect to " + in.address + ": " + ec.message();
      co_return out;
    }
    co_await exchange(stream, in, out);
    stream.socket().shutdown(asio::ip::tcp::socket::shutdown_both, ec);
    co_return out;
  }
  beast::ssl_stream<beast::tcp_stream> stream(executor, *tls);
  SSL_set_tlsext_host_name(stream.native_handle(), in.host.c_str());
  stream.set_verify_mode(asio::ssl::verify_peer);
  stream.set_verify_callback(asio::ssl::host_name_verification(in.host));
  auto& tcp = beast::get_lowest_layer(stream);
  tcp.expires_after(in.timeout);
  std::tie(ec) = co_await tcp.async_connect(endpoint, tuple);
  if (ec) {
    out.error = "connect to " + in.address + ": " + ec.message();
    co_return out;
  }
  std::tie(ec) = co_await stream.async_handshake(asio::ssl::stream_base::client, tuple);
  if (ec) {
    out.error = "TLS with " + in.host + ": " + ec.message();
    co_return out;
  }
  co_await exchange(stream, in, out);
  if (out.status) {
    tcp.expires_after(std::chrono::seconds(1));
    co_await stream.async_shutdown(tuple);  // best effort
  }
  co_return out;
}

asio::awaitable<https_response> https_get(asio::any_io_executor executor, asio::ssl::context& tls,
                                          std::string host, std::string address,
                                          std::uint16_t port, std::string target,
                                          std::chrono::milliseconds timeout,
                                          std::size_t max_body) {
  http_client_request in;
  in.host = std::move(host);
  in.address = std::move(address);
  in.port = port;
  in.target = std::move(target);
  in.timeout = timeout;
  in.max_body = max_body;
  auto result = co_await http_call(executor, &tls, std::move(in));
  co_return result;
}

}  // namespace petrel
