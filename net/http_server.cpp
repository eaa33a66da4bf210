// The HTTP/1.1 server (see http.hpp): Boost.Beast with C++20 coroutines. The only translation
// unit that includes Beast's HTTP headers for serving.
#include <array>
#include <atomic>
#include <mutex>
#include <unordered_map>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <spdlog/spdlog.h>

#include "net/http.hpp"

namespace petrel {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

std::string_view http_request::header(std::string_view lower_name) const {
  for (const auto& [name, value] : headers)
    if (name == lower_name) return value;
  return {};
}

namespace {

constexpr auto use_tuple = asio::as_tuple(asio::use_awaitable);

// A parse error of the request itself (as opposed to the peer closing or a timeout).
bool is_malformed(const beast::error_code& ec) {
  static const auto& http_category = beast::error_code(http::error::bad_version).category();
  return ec.category() == http_category && ec != http::error::end_of_stream &&
         ec != http::error::partial_message;
}

struct connection {
  explicit connection(tcp::socket socket) : stream(std::move(socket)) {}
  beast::tcp_stream stream;
  bool busy = false;  // a request is being read, handled or answered
};

std::string problem_body(int status, std::string_view slug, std::string_view title,
                         std::string_view detail) {
  // Built by hand: the server must not depend on the JSON library the API uses.
  std::string out = "{\"type\":\"urn:petrel:problem:";
  out += slug;
  out += "\",\"title\":\"";
  out += title;
  out += "\",\"status\":" + std::to_string(status) + ",\"detail\":\"";
  for (char c : detail) {
    if (c == '"' || c == '\\') out.push_back('\\');
    if (static_cast<unsigned char>(c) >= 0x20) out.push_back(c);
  }
  out += "\"}";
  return out;
}

http_response problem(int status, std::string_view title, std::string_view detail) {
  std::string_view slug = "invalid-request";
  switch (status) {
    case 413: slug = "payload-too-large"; break;
    case 431: slug = "headers-too-large"; break;
    case 500: slug = "internal"; break;
    case 503: slug = "unavailable"; break;
    default: break;
  }
  http_response r;
  r.status = status;
  r.content_type = "application/problem+json";
  r.body = problem_body(status, slug, title, detail);
  if (status == 503) r.headers.emplace_back("Retry-After", "1");
  return r;
}

// Completion of one handler call: whichever comes first, the responder or the timeout,
// resumes the session; the other is ignored. Both run on the session's strand.
template <class Handler>
struct dispatch_state {
  dispatch_state(Handler h, asio::any_io_executor ex) : handler(std::move(h)), timer(ex) {}
  void complete(http_response response) {
    if (done) return;
    done = true;
    timer.cancel();
    auto h = std::move(handler);
    std::move(h)(std::move(response));
  }
  Handler handler;
  asio::steady_timer timer;
  bool done = false;
};

}  // namespace

struct http_server::impl : std::enable_shared_from_this<impl> {
  impl(asio::io_context& io_context, http_server_options o, http_handler h)
      : io(io_context), options(std::move(o)), handler(std::move(h)), acceptor(io_context) {}

  asio::io_context& io;
  http_server_options options;
  http_handler handler;
  tcp::acceptor acceptor;
  std::atomic<bool> stopping{false};
  std::atomic<std::size_t> connection_count{0};
  std::mutex mutex;  // guards connections
  std::unordered_map<std::uint64_t, std::weak_ptr<connection>> connections;
  std::uint64_t next_connection_id = 0;

  template <class Token>
  auto async_dispatch(http_request request, Token&& token) {
    return asio::async_initiate<Token, void(http_response)>(
        [this](auto completion, http_request request) {
          using state_type = dispatch_state<decltype(completion)>;
          auto ex = asio::get_associated_executor(completion);
          auto state = std::make_shared<state_type>(std::move(completion), ex);
          state->timer.expires_after(options.handler_timeout);
          state->timer.async_wait([state](beast::error_code ec) {
            if (!ec)
              state->complete(problem(503, "Service Unavailable",
                                      "the request was not answered in time; retry later"));
          });
          http_responder responder = [state, ex](http_response response) {
            asio::post(ex, [state, response = std::move(response)]() mutable {
              state->complete(std::move(response));
            });
          };
          try {
            handler(std::move(request), std::move(responder));
          } catch (const std::exception& e) {
            spdlog::error("http.handler_exception server={} error=\"{}\"", options.name, e.what());
            state->complete(problem(500, "Internal Server Error", "unexpected error"));
          }
        },
        token, std::move(request));
  }

  static http_request convert(http::request<http::string_body>&& req, const std::string& remote) {
    http_request out;
    out.method = std::string(req.method_string());
    out.target = std::string(req.target());
    auto q = out.target.find('?');
    out.path = out.target.substr(0, q);
    if (q != std::string::npos) out.query = out.target.substr(q + 1);
    for (const auto& field : req) {
      std::string name(field.name_string());
      for (auto& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      out.headers.emplace_back(std::move(name), std::string(field.value()));
    }
    out.body = std::move(req.body());
    out.remote_address = remote;
    return out;
  }

  asio::awaitable<void> write_response(connection& conn, const http_response& r, unsigned version,
                                       bool keep_alive) {
    http::response<http::string_body> res{static_cast<http::status>(r.status), version};
    res.set(http::field::content_type, r.content_type);
    for (const auto& [name, value] : r.headers) res.set(name, value);
    res.body() = r.body;
    res.keep_alive(keep_alive);
    res.prepare_payload();
    conn.stream.expires_after(options.read_timeout);
    auto [ec, n] = co_await http::async_write(conn.stream, res, use_tuple);
    (void)n;
    if (!ec && options.on_response) options.on_response(r.status);
  }

  // Closes like nginx's lingering close: after our FIN, read and drop what the client still
  // sends (a body we refused) for a moment, so that closing does not reset the connection
  // before the client has read our answer.
  asio::awaitable<void> linger_close(connection& conn) {
    beast::error_code ignored;
    conn.stream.socket().shutdown(tcp::socket::shutdown_send, ignored);
    conn.stream.expires_after(std::chrono::seconds(1));
    std::array<char, 16 * 1024> sink;
    std::size_t drained = 0;
    while (drained < 4 * 1024 * 1024) {
      auto [ec, n] = co_await conn.stream.async_read_some(asio::buffer(sink), use_tuple);
      if (ec) break;
      drained += n;
    }
    conn.stream.close();
  }

  asio::awaitable<void> session(std::shared_ptr<connection> conn, std::uint64_t id) {
    std::string remote;
    {
      beast::error_code ec;
      auto ep = conn->stream.socket().remote_endpoint(ec);
      if (!ec) remote = ep.address().to_string();
    }
    beast::flat_buffer buffer;
    for (;;) {
      if (stopping) break;
      http::request_parser<http::string_body> parser;
      parser.header_limit(static_cast<std::uint32_t>(options.max_header_bytes));
      parser.body_limit(options.max_body_bytes);
      conn->busy = false;
      conn->stream.expires_after(options.idle_timeout);
      auto [ec, n] = co_await http::async_read_header(conn->stream, buffer, parser, use_tuple);
      (void)n;
      conn->busy = true;
      if (ec) {
        if (ec == http::error::body_limit) {  // a Content-Length over the limit
          co_await write_response(*conn, problem(413, "Content Too Large",
                                                 "the request body exceeds " +
                                                     std::to_string(options.max_body_bytes) +
                                                     " bytes"),
                                  11, false);
        } else if (ec == http::error::header_limit) {
          co_await write_response(*conn, problem(431, "Request Header Fields Too Large",
                                                 "the request header exceeds " +
                                                     std::to_string(options.max_header_bytes) +
                                                     " bytes"),
                                  11, false);
        } else if (is_malformed(ec)) {
          co_await write_response(*conn, problem(400, "Bad Request",
                                                 "malformed HTTP request: " + ec.message()),
                                  11, false);
        }
        break;  // closed by the peer, timed out, or answered and closing
      }
      auto& header = parser.get();
      auto version = header.version();
      if (auto length = parser.content_length(); length && *length > options.max_body_bytes) {
        co_await write_response(*conn, problem(413, "Content Too Large",
                                               "the request body exceeds " +
                                                   std::to_string(options.max_body_bytes) +
                                                   " bytes"),
                                version, false);
        break;
      }
      if (beast::iequals(header[http::field::expect], "100-continue")) {
        http::response<http::empty_body> go_on{http::status::continue_, version};
        auto [wec, wn] = co_await http::async_write(conn->stream, go_on, use_tuple);
        (void)wn;
        if (wec) break;
      }
      if (!parser.is_done()) {
        conn->stream.expires_after(options.read_timeout);
        auto [rec, rn] = co_await http::async_read(conn->stream, buffer, parser, use_tuple);
        (void)rn;
        if (rec == http::error::body_limit) {
          co_await write_response(*conn, problem(413, "Content Too Large",
                                                 "the request body exceeds " +
                                                     std::to_string(options.max_body_bytes) +
                                                     " bytes"),
                                  version, false);
          break;
        }
        if (rec) {
          if (is_malformed(rec))
            co_await write_response(*conn, problem(400, "Bad Request",
                                                   "malformed HTTP request body: " + rec.message()),
                                    version, false);
          break;
        }
      }
      bool keep_alive = parser.get().keep_alive();
      auto request = convert(parser.release(), remote);
      auto response = co_await async_dispatch(std::move(request), asio::use_awaitable);
      keep_alive = keep_alive && !stopping;
      co_await write_response(*conn, response, version, keep_alive);
      if (!keep_alive) break;
    }
    co_await linger_close(*conn);
    {
      std::lock_guard<std::mutex> lock(mutex);
      connections.erase(id);
    }
    --connection_count;
  }

  asio::awaitable<void> accept_loop() {
    for (;;) {
      auto [ec, socket] = co_await acceptor.async_accept(asio::make_strand(io), use_tuple);
      if (ec) {
        if (ec == asio::error::operation_aborted || !acceptor.is_open()) co_return;
        spdlog::warn("http.accept_failed server={} error=\"{}\"", options.name, ec.message());
        continue;
      }
      if (connection_count >= options.max_connections) {
        // Over the bound: refuse politely and close, rather than queueing without limit.
        auto conn = std::make_shared<connection>(std::move(socket));
        auto self = shared_from_this();
        asio::co_spawn(
            conn->stream.get_executor(),
            [self, conn]() -> asio::awaitable<void> {
              co_await self->write_response(*conn, problem(503, "Service Unavailable",
                                                           "too many open connections"),
                                            11, false);
              co_await self->linger_close(*conn);
            },
            asio::detached);
        continue;
      }
      auto conn = std::make_shared<connection>(std::move(socket));
      std::uint64_t id;
      {
        std::lock_guard<std::mutex> lock(mutex);
        id = next_connection_id++;
        connections.emplace(id, conn);
      }
      ++connection_count;
      asio::co_spawn(conn->stream.get_executor(), session(conn, id), asio::detached);
    }
  }
};

http_server::http_server(asio::io_context& io, http_server_options options, http_handler handler)
    : impl_(std::make_shared<impl>(io, std::move(options), std::move(handler))) {}

http_server::~http_server() { stop(); }

void http_server::start() {
  auto& o = impl_->options;
  beast::error_code ec;
  auto host = o.listen.host == "localhost" ? std::string("127.0.0.1") : o.listen.host;
  auto address = asio::ip::make_address(host, ec);
  if (ec)
    throw std::runtime_error(o.name + ".listen: \"" + o.listen.host + "\" is not an IP address");
  tcp::endpoint endpoint(address, o.listen.port);
  auto& acceptor = impl_->acceptor;
  acceptor.open(endpoint.protocol(), ec);
  if (!ec) acceptor.set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec) acceptor.bind(endpoint, ec);
  if (!ec) acceptor.listen(asio::socket_base::max_listen_connections, ec);
  if (ec)
    throw std::runtime_error("cannot listen on " + o.listen.to_string() + " (" + o.name +
                             "): " + ec.message());
  asio::co_spawn(acceptor.get_executor(), impl_->accept_loop(), asio::detached);
}

std::uint16_t http_server::port() const {
  beast::error_code ec;
  auto ep = impl_->acceptor.local_endpoint(ec);
  return ec ? 0 : ep.port();
}

void http_server::stop() {
  auto self = impl_;
  if (self->stopping.exchange(true)) return;
  asio::post(self->acceptor.get_executor(), [self] {
    beast::error_code ec;
    self->acceptor.close(ec);
  });
  std::vector<std::shared_ptr<connection>> open;
  {
    std::lock_guard<std::mutex> lock(self->mutex);
    for (auto& [id, weak] : self->connections)
      if (auto c = weak.lock()) open.push_back(std::move(c));
  }
  for (auto& c : open) {
    asio::post(c->stream.get_executor(), [c] {
      if (!c->busy) c->stream.socket().close();  // idle keep-alive: wake its read and end it
    });
  }
}

std::size_t http_server::open_connections() const { return impl_->connection_count; }

}  // namespace petrel
