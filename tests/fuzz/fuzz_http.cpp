// libFuzzer entry point for HTTP requests as the listeners read them: any bytes through
// Boost.Beast's request parser with the listeners' limits (net/http_server.cpp: header and
// body bounds), then, for a JSON body, the strict JSON reader every handler uses
// (net/json_input.hpp). Built by bench/fuzz.sh.
#include <boost/beast/http.hpp>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "net/json_input.hpp"

namespace http = boost::beast::http;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  http::request_parser<http::string_body> parser;
  parser.header_limit(16 * 1024);
  parser.body_limit(1024 * 1024);
  parser.eager(true);
  boost::beast::error_code ec;
  std::size_t used = parser.put(boost::asio::buffer(data, size), ec);
  if (used > size) std::abort();
  if (!ec && parser.is_done()) {
    const auto& req = parser.get();
    (void)req.target();
    auto parsed = petrel::parse_json_input(req.body(), {});
    (void)parsed;
  }
  // The JSON reader on the raw bytes too (request bodies are any bytes).
  std::string_view text(reinterpret_cast<const char*>(data), size);
  auto direct = petrel::parse_json_input(text, {});
  if (!direct && direct.error.empty()) std::abort();
  return 0;
}
