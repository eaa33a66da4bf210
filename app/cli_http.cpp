// The command line's HTTP requests (see cli.hpp): one request per connection, run to the end
// on a private io_context (the CLI is a plain program, not an actor), over plain HTTP or
// verified HTTPS with the system trust store.
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/use_future.hpp>

#include "app/cli.hpp"
#include "net/http_client.hpp"

namespace petrel::cli {

namespace asio = boost::asio;

bool split_url(const std::string& url, url_parts& out, std::string& error) {
  std::string rest;
  if (url.rfind("http://", 0) == 0) {
    out.https = false;
    out.port = 80;
    rest = url.substr(7);
  } else if (url.rfind("https://", 0) == 0) {
    out.https = true;
    out.port = 443;
    rest = url.substr(8);
  } else {
    error = "\"" + url + "\" is not an http:// or https:// URL";
    return false;
  }
  auto slash = rest.find('/');
  auto authority = rest.substr(0, slash);
  out.base_path = slash == std::string::npos ? "" : rest.substr(slash);
  while (!out.base_path.empty() && out.base_path.back() == '/') out.base_path.pop_back();
  std::string host = authority;
  if (!authority.empty() && authority.front() == '[') {
    auto close = authority.find(']');
    host = authority.substr(1, close == std::string::npos ? std::string::npos : close - 1);
    if (close != std::string::npos && close + 1 < authority.size() && authority[close + 1] == ':')
      out.port = static_cast<std::uint16_t>(std::stoi(authority.substr(close + 2)));
  } else if (auto colon = authority.rfind(':'); colon != std::string::npos) {
    host = authority.substr(0, colon);
    try {
      out.port = static_cast<std::uint16_t>(std::stoi(authority.substr(colon + 1)));
    } catch (const std::exception&) {
      error = "bad port in \"" + url + "\"";
      return false;
    }
  }
  if (host.empty()) {
    error = "no host in \"" + url + "\"";
    return false;
  }
  out.host = host;
  return true;
}

response call(const std::string& base_url, const std::string& method, const std::string& path,
              const std::string& token, const std::string& body, std::chrono::milliseconds timeout) {
  response out;
  url_parts u;
  if (!split_url(base_url, u, out.error)) return out;
  asio::io_context io;
  boost::system::error_code ec;
  asio::ip::tcp::resolver resolver(io);
  auto found = resolver.resolve(u.host, std::to_string(u.port), ec);
  if (ec || found.empty()) {
    out.error = "cannot resolve " + u.host + ": " + ec.message();
    return out;
  }
  http_client_request r;
  r.method = method;
  r.host = u.host;
  r.address = found.begin()->endpoint().address().to_string();
  r.port = u.port;
  r.target = u.base_path + path;
  if (!token.empty()) r.headers.emplace_back("Authorization", "Bearer " + token);
  if (!body.empty()) r.headers.emplace_back("Content-Type", "application/json");
  r.headers.emplace_back("Accept", "application/json");
  r.body = body;
  r.timeout = timeout;
  r.max_body = 64 * 1024 * 1024;
  asio::ssl::context tls(asio::ssl::context::tls_client);
  tls.set_default_verify_paths();
  auto future = asio::co_spawn(io, http_call(io.get_executor(), u.https ? &tls : nullptr, std::move(r)),
                               asio::use_future);
  io.run();
  auto result = future.get();
  out.status = result.status;
  out.body = std::move(result.body);
  out.error = std::move(result.error);
  return out;
}

}  // namespace petrel::cli
