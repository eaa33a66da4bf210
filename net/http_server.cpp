// The HTTP/1.1 server (see http.hpp): Boost.Beast with C++20 coroutines. The only translation
// unit that includes Beast's HTTP headers for serving.
#include <malloc.h>

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
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl/ssl_stream.hpp>
#include <spdlog/spdlog.h>

#include <random>

#include "net/client_limiter.hpp"
#include "net/http.hpp"
#include "net/timed_completion.hpp"
#include "net/tls_server.hpp"

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

const std::string& http_request::request_id() const {
  static const std::string none;
  return trace ? trace->request_id : none;
}

bool valid_request_id(std::string_view id) {
  if (id.empty() || id.size() > 128) return false;
  return std::all_of(id.begin(), id.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_' ||
           c == '.' || c == ':' || c == '+' || c == '/' || c == '=';
  });
}

namespace {

constexpr auto use_tuple = asio::as_tuple(asio::use_awaitable);
// Requests at least this large trim the allocator afterwards (see session()).
constexpr std::size_t large_body_bytes = 1024 * 1024;

// A parse error of the request itself (as opposed to the peer closing or a timeout).
bool is_malformed(const beast::error_code& ec) {
  static const auto& http_category = beast::error_code(http::error::bad_version).category();
  return ec.category() == http_category && ec != http::error::end_of_stream &&
         ec != http::error::partial_message;
}

std::int64_t steady_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

struct connection {
  connection(tcp::socket socket, std::string remote_address)
      : stream(std::move(socket)), remote(std::move(remote_address)), idle_since(steady_ms()) {}
  beast::tcp_stream stream;
  std::string remote;  // the client's address ("" if unknown)
  // Read from the accept loop too (shedding, stop): atomics.
  std::atomic<bool> busy{false};         // a request is being read, handled or answered
  std::atomic<std::int64_t> idle_since{0};  // steady ms when it began waiting for a request
  std::atomic<bool> shedding{false};     // chosen to be closed to make room
};

// RFC 9112 6.1: "chunked" is the only transfer coding a server must understand, and the only
// one Petrel does. "" when the field is acceptable, else the reason, with its status.
std::pair<int, std::string> check_transfer_encoding(std::string_view value, bool has_length) {
  if (has_length)
    return {400, "both Transfer-Encoding and Content-Length are present (RFC 9112 6.3)"};
  int chunked = 0;
  std::size_t start = 0;
  while (start <= value.size()) {
    auto end = value.find(',', start);
    if (end == std::string_view::npos) end = value.size();
    auto coding = value.substr(start, end - start);
    while (!coding.empty() && (coding.front() == ' ' || coding.front() == '\t')) coding.remove_prefix(1);
    while (!coding.empty() && (coding.back() == ' ' || coding.back() == '\t')) coding.remove_suffix(1);
    if (!coding.empty()) {
      if (!beast::iequals(coding, "chunked"))
        return {501, "the transfer coding \"" + std::string(coding.substr(0, 64)) +
                         "\" is not implemented (only chunked is)"};
      ++chunked;
    }
    start = end + 1;
  }
  if (chunked != 1) return {400, "Transfer-Encoding must name chunked once"};
  return {0, {}};
}

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
    case 501: slug = "not-implemented"; break;
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

http_response body_too_large(std::uint64_t max_body_bytes) {
  return problem(413, "Content Too Large",
                 "the request body exceeds " + std::to_string(max_body_bytes) + " bytes");
}

// 128 random bits in hex: unique enough to find one request in the logs of many nodes.
std::string make_request_id() {
  thread_local std::mt19937_64 random{std::random_device{}()};
  static constexpr char digits[] = "0123456789abcdef";
  std::string id(32, '0');
  for (int half = 0; half < 2; ++half) {
    auto bits = random();
    for (int i = 0; i < 16; ++i, bits >>= 4) id[static_cast<std::size_t>(half * 16 + i)] = digits[bits & 15];
  }
  return id;
}

// What one exchange leaves for the access log, filled in as the request is read.
struct exchange {
  std::chrono::steady_clock::time_point started = std::chrono::steady_clock::now();
  std::string method = "-";
  std::string path = "-";
  std::shared_ptr<http_trace> trace = std::make_shared<http_trace>();
};

// Completion of one handler call (net/timed_completion.hpp).
template <class Handler>
using dispatch_state = timed_completion<Handler>;

}  // namespace

struct http_server::impl : std::enable_shared_from_this<impl> {
  impl(asio::io_context& io_context, http_server_options o, http_handler h)
      : io(io_context), options(std::move(o)), handler(std::move(h)), acceptor(io_context),
        per_client(options.max_connections_per_client, options.trusted_clients) {}

  asio::io_context& io;
  http_server_options options;
  http_handler handler;
  tcp::acceptor acceptor;
  std::atomic<bool> stopping{false};
  std::atomic<std::size_t> connection_count{0};
  std::mutex mutex;  // guards connections
  std::unordered_map<std::uint64_t, std::weak_ptr<connection>> connections;
  std::uint64_t next_connection_id = 0;
  client_limiter per_client;

  // Near the connection limit (the last 1/16 of it), each new connection closes the longest
  // idle keep-alive connection: clients that hold a slot without using it go first.
  std::size_t shed_threshold() const {
    auto max = options.max_connections;
    return static_cast<std::size_t>(max - max / 16);
  }
  // Closes the connection idle the longest; false when none is idle.
  bool shed_oldest_idle() {
    std::shared_ptr<connection> victim;
    {
      std::lock_guard<std::mutex> lock(mutex);
      std::int64_t oldest = 0;
      for (auto& [id, weak] : connections) {
        auto c = weak.lock();
        if (!c || c->busy || c->shedding) continue;
        auto since = c->idle_since.load();
        if (!victim || since < oldest) {
          victim = std::move(c);
          oldest = since;
        }
      }
      if (!victim) return false;
      victim->shedding = true;
    }
    asio::post(victim->stream.get_executor(), [victim] {
      if (!victim->busy) victim->stream.socket().close();  // wakes its read, which ends it
    });
    return true;
  }

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
          auto trace = request.trace;
          try {
            handler(std::move(request), std::move(responder));
          } catch (const std::exception& e) {
            spdlog::error("http.handler_exception listener={} request_id={} error=\"{}\"", options.name,
                          trace ? trace->request_id : std::string(), e.what());
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

  // Writes a response with its X-Request-Id (also inside a problem+json body), then reports it.
  template <class Stream>
  asio::awaitable<void> write_response(connection& conn, Stream& stream, http_response r, unsigned version,
                                       bool keep_alive, exchange& x) {
    const auto& id = x.trace->request_id;
    if (id.empty()) x.trace->request_id = make_request_id();
    http::response<http::string_body> res{static_cast<http::status>(r.status), version};
    res.set(http::field::content_type, r.content_type);
    for (const auto& [name, value] : r.headers) res.set(name, value);
    res.set("X-Request-Id", id);
    if (r.content_type == "application/problem+json" && r.body.size() >= 2 && r.body.back() == '}')
      r.body.insert(r.body.size() - 1, std::string(r.body.size() > 2 ? "," : "") + "\"request_id\":\"" + id + "\"");
    auto bytes = r.body.size();
    res.body() = std::move(r.body);
    res.keep_alive(keep_alive);
    res.prepare_payload();
    // A response has its own deadline (a client must read it in time).
    conn.stream.expires_after(options.read_timeout);
    auto [ec, n] = co_await http::async_write(stream, res, use_tuple);
    (void)n;
    // A failed request, findable by its id (a connection refused before any request is only
    // counted: petrel_http_connections_refused_total).
    if (r.status >= 500 && x.method != "-")
      spdlog::warn("http.server_error listener={} method={} path=\"{}\" status={} request_id={}", options.name, x.method,
                   x.path, r.status, id);
    if (ec) co_return;
    if (options.on_response) options.on_response(r.status);
    if (options.on_access) {
      http_access a;
      a.listener = options.name;
      a.method = x.method;
      a.path = x.path;
      a.status = r.status;
      a.bytes = bytes;
      a.duration_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - x.started).count();
      a.tenant = x.trace->tenant;
      a.request_id = id;
      a.remote = conn.remote;
      a.tls = static_cast<bool>(options.tls);
      options.on_access(a);
    }
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
    if (options.tls) {
      // HTTPS: the handshake within read_timeout, with the credentials current now (a reload
      // meanwhile changes only later connections).
      auto context = options.tls->current();
      beast::ssl_stream<beast::tcp_stream&> stream(conn->stream, *context);
      conn->busy = true;
      conn->stream.expires_after(options.read_timeout);
      auto [ec] = co_await stream.async_handshake(asio::ssl::stream_base::server, use_tuple);
      if (ec) {
        spdlog::debug("http.tls_failed listener={} peer={} error=\"{}\"", options.name, conn->remote, ec.message());
        if (options.on_connection_refused) options.on_connection_refused("tls_handshake");
      } else {
        co_await serve(conn, stream, true);
        // close_notify, bounded: a client may never answer it.
        conn->stream.expires_after(std::chrono::seconds(1));
        co_await stream.async_shutdown(use_tuple);
      }
      conn->stream.close();
    } else {
      co_await serve(conn, conn->stream, false);
      co_await linger_close(*conn);
    }
    {
      std::lock_guard<std::mutex> lock(mutex);
      connections.erase(id);
    }
    per_client.release(conn->remote);
    --connection_count;
  }

  template <class Stream>
  asio::awaitable<void> serve(std::shared_ptr<connection> conn, Stream& stream, bool secure) {
    const auto& remote = conn->remote;
    beast::flat_buffer buffer;
    for (;;) {
      if (stopping) break;
      http::request_parser<http::string_body> parser;
      parser.header_limit(static_cast<std::uint32_t>(options.max_header_bytes));
      parser.body_limit(options.max_body_bytes);
      // Idle: waiting for the first byte of a request, at most idle_timeout.
      if (buffer.size() == 0) {
        conn->idle_since = steady_ms();
        conn->busy = false;
        if (conn->shedding) break;
        conn->stream.expires_after(options.idle_timeout);
        auto [ec, n] = co_await stream.async_read_some(buffer.prepare(4096), use_tuple);
        if (ec) break;  // closed by the peer, idle too long, or shed
        buffer.commit(n);
      }
      // From the first byte on, the whole request (header and body) has read_timeout: a client
      // trickling a byte at a time cannot hold the connection longer.
      exchange x;
      conn->busy = true;
      conn->stream.expires_after(options.read_timeout);
      auto [ec, n] = co_await http::async_read_header(stream, buffer, parser, use_tuple);
      (void)n;
      if (ec) {
        if (ec == http::error::body_limit) {  // a Content-Length over the limit
          co_await write_response(*conn, stream,
                                  problem(413, "Content Too Large",
                                          "the request body exceeds " + std::to_string(options.max_body_bytes) +
                                              " bytes"),
                                  11, false, x);
        } else if (ec == http::error::header_limit) {
          co_await write_response(*conn, stream,
                                  problem(431, "Request Header Fields Too Large",
                                          "the request header exceeds " + std::to_string(options.max_header_bytes) +
                                              " bytes"),
                                  11, false, x);
        } else if (is_malformed(ec)) {
          co_await write_response(*conn, stream, problem(400, "Bad Request", "malformed HTTP request: " + ec.message()),
                                  11, false, x);
        }
        break;  // closed by the peer, timed out, or answered and closing
      }
      auto& header = parser.get();
      auto version = header.version();
      x.method = std::string(header.method_string());
      x.path = std::string(header.target().substr(0, header.target().find('?')));
      if (auto given = header["X-Request-Id"]; valid_request_id(std::string_view(given.data(), given.size())))
        x.trace->request_id = std::string(given);
      if (auto length = parser.content_length(); length && *length > options.max_body_bytes) {
        co_await write_response(*conn, stream, body_too_large(options.max_body_bytes), version, false, x);
        break;
      }
      if (auto te = header.find(http::field::transfer_encoding); te != header.end()) {
        auto [status, reason] = check_transfer_encoding(
            te->value(), header.find(http::field::content_length) != header.end());
        if (status != 0) {
          co_await write_response(*conn, stream,
                                  problem(status, status == 501 ? "Not Implemented" : "Bad Request", reason), version,
                                  false, x);
          break;
        }
      }
      if (beast::iequals(header[http::field::expect], "100-continue")) {
        http::response<http::empty_body> go_on{http::status::continue_, version};
        auto [wec, wn] = co_await http::async_write(stream, go_on, use_tuple);
        (void)wn;
        if (wec) break;
      }
      if (!parser.is_done()) {
        auto [rec, rn] = co_await http::async_read(stream, buffer, parser, use_tuple);
        (void)rn;
        if (rec == http::error::body_limit) {
          co_await write_response(*conn, stream, body_too_large(options.max_body_bytes), version, false, x);
          break;
        }
        if (rec) {
          if (is_malformed(rec))
            co_await write_response(*conn, stream,
                                    problem(400, "Bad Request", "malformed HTTP request body: " + rec.message()),
                                    version, false, x);
          break;
        }
      }
      bool keep_alive = parser.get().keep_alive();
      auto request = convert(parser.release(), remote);
      request.secure = secure;
      if (x.trace->request_id.empty()) x.trace->request_id = make_request_id();
      request.trace = x.trace;
      bool large = request.body.size() >= large_body_bytes;
      auto response = co_await async_dispatch(std::move(request), asio::use_awaitable);
      keep_alive = keep_alive && !stopping;
      co_await write_response(*conn, stream, std::move(response), version, keep_alive, x);
      // A large body (and what parsing it cost) is freed by now; hand the memory back to the
      // system instead of leaving it in the allocator's arenas (glibc keeps freed memory of
      // each thread's arena).
      if (large) ::malloc_trim(0);
      if (!keep_alive) break;
    }
  }

  void notify(const char* what) {
    if (options.on_connection_refused) options.on_connection_refused(what);
  }

  // Answers a connection that is not admitted, and closes it.
  void refuse(tcp::socket socket, std::string detail) {
    if (options.tls) {  // no handshake for a connection that is not admitted: closed
      beast::error_code ignored;
      socket.close(ignored);
      return;
    }
    auto conn = std::make_shared<connection>(std::move(socket), std::string());
    auto self = shared_from_this();
    asio::co_spawn(
        conn->stream.get_executor(),
        [self, conn, detail = std::move(detail)]() -> asio::awaitable<void> {
          exchange x;
          co_await self->write_response(*conn, conn->stream, problem(503, "Service Unavailable", detail), 11, false,
                                        x);
          co_await self->linger_close(*conn);
        },
        asio::detached);
  }

  asio::awaitable<void> accept_loop() {
    for (;;) {
      auto [ec, socket] = co_await acceptor.async_accept(asio::make_strand(io), use_tuple);
      if (ec) {
        if (ec == asio::error::operation_aborted || !acceptor.is_open()) co_return;
        spdlog::warn("http.accept_failed server={} error=\"{}\"", options.name, ec.message());
        continue;
      }
      std::string remote;
      {
        beast::error_code rec;
        auto ep = socket.remote_endpoint(rec);
        if (!rec) remote = ep.address().to_string();
      }
      bool room = connection_count < options.max_connections;
      if (connection_count >= shed_threshold()) {
        // Near the bound: make room by closing the longest idle connection; over it with no
        // idle one to close, refuse politely rather than queue without limit.
        if (shed_oldest_idle()) {
          room = true;
          notify("shed");
        }
      }
      if (!room) {
        notify("over_limit");
        refuse(std::move(socket), "too many open connections");
        continue;
      }
      if (!per_client.acquire(remote)) {
        notify("per_client");
        refuse(std::move(socket), "too many open connections from " + remote + " (at most " +
                                      std::to_string(per_client.per_client()) + ")");
        continue;
      }
      auto conn = std::make_shared<connection>(std::move(socket), remote);
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
