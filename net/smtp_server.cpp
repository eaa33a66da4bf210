// The inbound SMTP listener (see smtp_server.hpp): one coroutine per connection on Asio.
#include "net/smtp_server.hpp"
#include "net/smtp_command.hpp"
#include "net/tls_server.hpp"

#include <atomic>
#include <mutex>
#include <optional>
#include <unordered_map>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/read_until.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/streambuf.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <spdlog/spdlog.h>

#include "net/client_limiter.hpp"
#include "net/mail/base64.hpp"
#include "net/timed_completion.hpp"

namespace petrel {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;

namespace {

constexpr auto use_tuple = asio::as_tuple(asio::use_awaitable);
// RFC 5321 4.5.3.1: command lines of at most 512 octets, text lines of 1000; we allow more
// for the text (long lines happen in the wild) but not without bound.
constexpr std::size_t max_command_line = 2048;
constexpr std::size_t max_text_line = 64 * 1024;
constexpr int max_errors = 10;  // bad commands before the session is closed

std::string lower(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

// A process-wide token bucket: messages per second over all peers.
class message_budget {
 public:
  explicit message_budget(double per_second)
      : rate_(per_second), tokens_(std::max(1.0, per_second)), capacity_(std::max(1.0, per_second)) {}
  bool take() {
    std::lock_guard<std::mutex> lock(mutex_);
    auto now = std::chrono::steady_clock::now();
    tokens_ = std::min(capacity_, tokens_ + std::chrono::duration<double>(now - last_).count() * rate_);
    last_ = now;
    if (tokens_ < 1) return false;
    tokens_ -= 1;
    return true;
  }

 private:
  std::mutex mutex_;
  double rate_;
  double tokens_;
  double capacity_;
  std::chrono::steady_clock::time_point last_ = std::chrono::steady_clock::now();
};

template <class Handler>
using reply_state = timed_completion<Handler>;

}  // namespace

struct smtp_server::impl : std::enable_shared_from_this<impl> {
  impl(asio::io_context& io_context, smtp_server_options o, smtp_mail_handler h)
      : io(io_context), options(std::move(o)), handler(std::move(h)), acceptor(io_context),
        budget(options.max_messages_per_second),
        per_client(options.max_connections_per_client, options.trusted_clients) {
    for (auto& d : options.accept_domains) d = lower(d);
  }

  asio::io_context& io;
  smtp_server_options options;
  smtp_mail_handler handler;
  tcp::acceptor acceptor;
  message_budget budget;
  client_limiter per_client;
  std::atomic<bool> stopping{false};
  std::atomic<std::size_t> connection_count{0};

  // Failed AUTH per client address, counted in one-minute windows.
  std::mutex auth_mutex;
  std::unordered_map<std::string, std::pair<std::uint32_t, std::chrono::steady_clock::time_point>> auth_failures;

  bool auth_blocked(const std::string& peer) {
    std::lock_guard<std::mutex> lock(auth_mutex);
    auto it = auth_failures.find(peer);
    if (it == auth_failures.end()) return false;
    if (std::chrono::steady_clock::now() - it->second.second > std::chrono::minutes(1)) {
      auth_failures.erase(it);
      return false;
    }
    return it->second.first >= options.max_auth_failures;
  }
  void auth_failed(const std::string& peer) {
    std::lock_guard<std::mutex> lock(auth_mutex);
    auto now = std::chrono::steady_clock::now();
    if (auth_failures.size() > 100'000) auth_failures.clear();  // bounded under a flood
    auto [it, added] = auth_failures.try_emplace(peer, 0, now);
    if (now - it->second.second > std::chrono::minutes(1)) it->second = {0, now};
    ++it->second.first;
  }

  template <class Token>
  auto async_authenticate(std::string user, std::string password, Token&& token) {
    return asio::async_initiate<Token, void(int, std::string)>(
        [this](auto completion, std::string user, std::string password) {
          using state_type = reply_state<decltype(completion)>;
          auto ex = asio::get_associated_executor(completion);
          auto state = std::make_shared<state_type>(std::move(completion), ex);
          state->timer.expires_after(options.handler_timeout);
          state->timer.async_wait([state](const boost::system::error_code& ec) {
            if (!ec) state->complete(454, std::string());
          });
          auto done = [state, ex](std::string identity) {
            asio::post(ex, [state, identity = std::move(identity)]() mutable {
              state->complete(identity.empty() ? 535 : 235, std::move(identity));
            });
          };
          try {
            options.authenticate(std::move(user), std::move(password), std::move(done));
          } catch (const std::exception& e) {
            spdlog::error("smtp_in.auth_exception error=\"{}\"", e.what());
            state->complete(454, std::string());
          }
        },
        token, std::move(user), std::move(password));
  }

  bool accepts(const std::string& address) const {
    auto at = address.rfind('@');
    if (at == std::string::npos) return false;
    auto domain = lower(address.substr(at + 1));
    for (const auto& d : options.accept_domains)
      if (domain == d) return true;
    return false;
  }

  template <class Token>
  auto async_handle(received_mail mail, Token&& token) {
    return asio::async_initiate<Token, void(int, std::string)>(
        [this](auto completion, received_mail mail) {
          using state_type = reply_state<decltype(completion)>;
          auto ex = asio::get_associated_executor(completion);
          auto state = std::make_shared<state_type>(std::move(completion), ex);
          state->timer.expires_after(options.handler_timeout);
          state->timer.async_wait([state](const boost::system::error_code& ec) {
            if (!ec) state->complete(451, "4.3.0 not processed in time; try again later");
          });
          smtp_reply_fn reply = [state, ex](int code, std::string text) {
            asio::post(ex, [state, code, text = std::move(text)]() mutable {
              state->complete(code, std::move(text));
            });
          };
          try {
            handler(std::move(mail), std::move(reply));
          } catch (const std::exception& e) {
            spdlog::error("smtp_in.handler_exception error=\"{}\"", e.what());
            state->complete(451, "4.3.0 internal error; try again later");
          }
        },
        token, std::move(mail));
  }

  asio::awaitable<void> session(tcp::socket socket) {
    std::string peer;
    {
      boost::system::error_code ec;
      auto ep = socket.remote_endpoint(ec);
      if (!ec) peer = ep.address().to_string();
    }
    // The connection, in clear or (after STARTTLS, or from the start) over TLS.
    std::shared_ptr<asio::ssl::context> tls_context;  // kept while the stream uses it
    std::unique_ptr<asio::ssl::stream<tcp::socket&>> tls;
    asio::steady_timer deadline(socket.get_executor());
    auto arm = [&] {
      deadline.expires_after(options.command_timeout);
      deadline.async_wait([&socket](const boost::system::error_code& ec) {
        if (!ec) {
          boost::system::error_code ignored;
          socket.shutdown(tcp::socket::shutdown_both, ignored);
          socket.close(ignored);
        }
      });
    };
    auto send = [&](std::string text) -> asio::awaitable<bool> {
      auto [ec, n] = tls ? co_await asio::async_write(*tls, asio::buffer(text), use_tuple)
                         : co_await asio::async_write(socket, asio::buffer(text), use_tuple);
      (void)n;
      co_return !ec;
    };
    asio::streambuf buffer(max_text_line);
    auto read_line = [&](std::string& line, std::size_t limit) -> asio::awaitable<int> {
      // 1: a line; 0: closed or timed out; -1: too long.
      arm();
      auto [ec, n] = tls ? co_await asio::async_read_until(*tls, buffer, '\n', use_tuple)
                         : co_await asio::async_read_until(socket, buffer, '\n', use_tuple);
      deadline.cancel();
      if (ec == asio::error::not_found) co_return -1;
      if (ec) co_return 0;
      line.assign(asio::buffers_begin(buffer.data()), asio::buffers_begin(buffer.data()) + n);
      buffer.consume(n);
      if (line.size() > limit) co_return -1;
      co_return 1;
    };
    auto handshake = [&]() -> asio::awaitable<bool> {
      tls_context = options.tls->current();
      tls = std::make_unique<asio::ssl::stream<tcp::socket&>>(socket, *tls_context);
      arm();
      auto [ec] = co_await tls->async_handshake(asio::ssl::stream_base::server, use_tuple);
      deadline.cancel();
      if (ec) spdlog::info("smtp_in.tls_failed listener={} peer={} error=\"{}\"", options.listener_name, peer, ec.message());
      co_return !ec;
    };

    if (options.implicit_tls && !co_await handshake()) co_return;
    if (!co_await send("220 " + options.hostname +
                       (options.submission ? " ESMTP Petrel submission\r\n"
                                           : " ESMTP Petrel (bounces and feedback only)\r\n")))
      co_return;
    std::string helo, identity;
    std::optional<std::string> mail_from;
    std::vector<std::string> rcpts;
    int errors = 0;
    std::string line;
    auto auth_offered = [&] { return options.submission && (tls || options.allow_plain_auth); };
    while (!stopping) {
      auto got = co_await read_line(line, max_command_line);
      if (got == 0) break;
      if (got < 0) {
        co_await send("500 5.5.2 line too long\r\n");
        break;
      }
      auto command = parse_smtp_command(line);
      auto verb = command.verb;
      std::string args(command.args);
      std::string answer;
      bool close_after = false;
      if (verb == smtp_verb::ehlo || verb == smtp_verb::helo) {
        helo = args;
        mail_from.reset();
        rcpts.clear();
        if (verb == smtp_verb::helo) {
          answer = "250 " + options.hostname + "\r\n";
        } else {
          answer = "250-" + options.hostname + "\r\n250-PIPELINING\r\n250-SIZE " +
                   std::to_string(options.max_message_bytes) + "\r\n250-8BITMIME\r\n250-SMTPUTF8\r\n";
          if (options.tls && !tls) answer += "250-STARTTLS\r\n";
          if (auth_offered()) answer += "250-AUTH PLAIN LOGIN\r\n";
          answer += "250 ENHANCEDSTATUSCODES\r\n";
        }
      } else if (verb == smtp_verb::starttls) {
        if (!options.tls) {
          answer = "502 5.5.1 STARTTLS is not offered here\r\n";
        } else if (tls) {
          answer = "503 5.5.1 TLS is on already\r\n";
        } else if (!args.empty()) {
          answer = "501 5.5.4 STARTTLS takes no arguments\r\n";
        } else {
          if (!co_await send("220 2.0.0 ready to start TLS\r\n")) break;
          // Commands pipelined after STARTTLS in clear are not taken over into TLS (the
          // injection of CVE-2011-0411): whatever was read ahead is dropped.
          if (buffer.size() > 0) {
            spdlog::warn("smtp_in.starttls_injection listener={} peer={} bytes={}", options.listener_name, peer,
                         buffer.size());
            buffer.consume(buffer.size());
          }
          if (!co_await handshake()) break;
          helo.clear();
          identity.clear();
          mail_from.reset();
          rcpts.clear();
          continue;  // (no answer: the client starts over with EHLO)
        }
      } else if (verb == smtp_verb::auth) {
        auto auth = parse_smtp_auth(args);
        const auto& mechanism = auth.mechanism;
        const auto& initial = auth.initial;
        if (!options.submission) {
          answer = "502 5.5.1 AUTH is not offered here\r\n";
        } else if (helo.empty()) {
          answer = "503 5.5.1 EHLO first\r\n";
        } else if (!identity.empty()) {
          answer = "503 5.5.1 already authenticated\r\n";
        } else if (mail_from) {
          answer = "503 5.5.1 AUTH is not allowed during a mail transaction\r\n";
        } else if (!auth_offered()) {
          answer = "538 5.7.11 encryption required: STARTTLS first\r\n";
        } else if (auth_blocked(peer)) {
          answer = "421 4.7.0 too many failed authentications from your address; try again later\r\n";
          close_after = true;
        } else if (mechanism != "plain" && mechanism != "login") {
          answer = "504 5.5.4 unrecognized authentication mechanism (PLAIN and LOGIN are offered)\r\n";
        } else {
          // Continuation lines: base64, "*" cancels (RFC 4954 4).
          auto ask = [&](const char* prompt, std::string& decoded) -> asio::awaitable<int> {
            if (!co_await send(std::string("334 ") + prompt + "\r\n")) co_return 0;
            std::string reply;
            auto r = co_await read_line(reply, max_command_line);
            if (r <= 0) co_return r;
            while (!reply.empty() && (reply.back() == '\n' || reply.back() == '\r')) reply.pop_back();
            if (reply == "*") co_return -2;
            co_return decode_base64(reply, decoded) ? 1 : -3;
          };
          std::string user, password, decoded;
          int step = 1;
          if (mechanism == "plain") {
            if (initial.empty() || initial == "=") {
              step = co_await ask("", decoded);
            } else if (!decode_base64(initial, decoded)) {
              step = -3;
            }
            if (step == 1) {
              if (auto credentials = parse_sasl_plain(decoded))
                user = std::move(credentials->user), password = std::move(credentials->password);
              else
                step = -3;
            }
          } else {
            if (!initial.empty()) {
              if (!decode_base64(initial, user)) step = -3;
            } else {
              step = co_await ask("VXNlcm5hbWU6", user);
            }
            if (step == 1) step = co_await ask("UGFzc3dvcmQ6", password);
          }
          if (step == 0) break;
          if (step == -1) {
            answer = "500 5.5.2 line too long\r\n";
          } else if (step == -2) {
            answer = "501 5.0.0 authentication cancelled\r\n";
          } else if (step == -3) {
            answer = "501 5.5.2 cannot decode the credentials (base64)\r\n";
          } else {
            auto [code, who] = co_await async_authenticate(std::move(user), std::move(password), use_tuple);
            if (code == 235) {
              identity = std::move(who);
              answer = "235 2.7.0 authentication successful\r\n";
            } else if (code == 454) {
              answer = "454 4.7.0 temporary authentication failure; try again later\r\n";
            } else {
              auth_failed(peer);
              spdlog::info("smtp_in.auth_failed listener={} peer={}", options.listener_name, peer);
              answer = "535 5.7.8 authentication credentials invalid (the password is an API key)\r\n";
            }
          }
        }
      } else if (verb == smtp_verb::mail) {
        auto path = parse_smtp_path(args, "from:");
        if (helo.empty()) {
          answer = "503 5.5.1 EHLO first\r\n";
        } else if (options.submission && identity.empty()) {
          answer = "530 5.7.0 authentication required\r\n";
        } else if (mail_from) {
          answer = "503 5.5.1 nested MAIL command\r\n";
        } else if (!path) {
          answer = "501 5.5.4 syntax: MAIL FROM:<address>\r\n";
        } else if (smtp_declared_size(path->params).value_or(0) > options.max_message_bytes) {
          answer = "552 5.3.4 the message exceeds the size limit of " +
                   std::to_string(options.max_message_bytes) + " octets\r\n";
        } else if (!budget.take()) {
          answer = "451 4.7.1 too many messages right now; try again later\r\n";
        } else {
          mail_from = std::move(path->address);
          answer = "250 2.1.0 ok\r\n";
        }
      } else if (verb == smtp_verb::rcpt) {
        auto path = parse_smtp_path(args, "to:");
        if (!mail_from) {
          answer = "503 5.5.1 MAIL first\r\n";
        } else if (!path || path->address.empty()) {
          answer = "501 5.5.4 syntax: RCPT TO:<address>\r\n";
        } else if (!options.submission && !accepts(path->address)) {
          // Not an open relay: mail for anything but our bounce/feedback domains is refused.
          spdlog::info("smtp_in.relay_denied peer={} rcpt=\"{}\"", peer, path->address);
          answer = "550 5.7.1 relaying denied: this server accepts only bounces and feedback reports\r\n";
        } else if (rcpts.size() >= options.max_recipients) {
          answer = "452 4.5.3 too many recipients\r\n";
        } else {
          rcpts.push_back(std::move(path->address));
          answer = "250 2.1.5 ok\r\n";
        }
      } else if (verb == smtp_verb::data) {
        if (!mail_from || rcpts.empty()) {
          answer = "503 5.5.1 no valid recipients\r\n";
        } else {
          if (!co_await send("354 end data with <CR><LF>.<CR><LF>\r\n")) break;
          smtp_data_reader reader(options.max_message_bytes);
          bool closed = false;
          for (;;) {
            auto r = co_await read_line(line, max_text_line);
            if (r == 0) {
              closed = true;
              break;
            }
            if (r < 0) {  // an overlong line: keep reading to the end, refuse the message
              reader.overlong_line();
              buffer.consume(buffer.size());
              continue;
            }
            if (reader.line(line)) break;
          }
          if (closed) break;
          if (reader.too_big()) {
            answer = "552 5.3.4 the message exceeds the size limit of " +
                     std::to_string(options.max_message_bytes) + " octets\r\n";
          } else {
            received_mail mail{peer, helo, *mail_from, rcpts, reader.take(), identity, tls != nullptr};
            auto [code, text] = co_await async_handle(std::move(mail), use_tuple);
            answer = std::to_string(code) + " " + text + "\r\n";
          }
          mail_from.reset();
          rcpts.clear();
        }
      } else if (verb == smtp_verb::rset) {
        mail_from.reset();
        rcpts.clear();
        answer = "250 2.0.0 ok\r\n";
      } else if (verb == smtp_verb::noop) {
        answer = "250 2.0.0 ok\r\n";
      } else if (verb == smtp_verb::vrfy) {
        answer = "252 2.5.0 cannot verify\r\n";
      } else if (verb == smtp_verb::quit) {
        co_await send("221 2.0.0 bye\r\n");
        break;
      } else {
        answer = "502 5.5.2 command not implemented\r\n";
      }
      if (close_after) {
        co_await send(answer);
        break;
      }
      if (answer[0] == '5' && ++errors > max_errors) {
        co_await send(answer);
        co_await send("421 4.7.0 too many errors; closing\r\n");
        break;
      }
      if (!co_await send(answer)) break;
    }
    if (tls) {
      // A TLS close_notify, bounded by the command timeout (a peer may never answer it).
      arm();
      co_await tls->async_shutdown(use_tuple);
      deadline.cancel();
    }
    boost::system::error_code ignored;
    socket.shutdown(tcp::socket::shutdown_both, ignored);
    socket.close(ignored);
  }

  asio::awaitable<void> accept_loop() {
    for (;;) {
      auto [ec, socket] = co_await acceptor.async_accept(asio::make_strand(io), use_tuple);
      if (ec) {
        if (ec == asio::error::operation_aborted || !acceptor.is_open()) co_return;
        spdlog::warn("smtp_in.accept_failed error=\"{}\"", ec.message());
        continue;
      }
      std::string peer;
      {
        boost::system::error_code pec;
        auto ep = socket.remote_endpoint(pec);
        if (!pec) peer = ep.address().to_string();
      }
      auto refuse = [&](std::string text) {
        auto s = std::make_shared<tcp::socket>(std::move(socket));
        auto answer = std::make_shared<std::string>(std::move(text));
        asio::async_write(*s, asio::buffer(*answer),
                          [s, answer](const boost::system::error_code&, std::size_t) {
                            boost::system::error_code ignored;
                            s->close(ignored);
                          });
      };
      if (connection_count >= options.max_connections) {
        refuse("421 4.3.2 too many connections; try again later\r\n");
        continue;
      }
      // One peer cannot hold every slot (RFC 5321 4.5.3.2 lets a server limit what it serves).
      if (!per_client.acquire(peer)) {
        spdlog::warn("smtp_in.refused peer={} reason=per_client_limit limit={}", peer,
                     options.max_connections_per_client);
        refuse("421 4.7.0 too many connections from your address; try again later\r\n");
        continue;
      }
      ++connection_count;
      auto self = shared_from_this();
      auto ex = socket.get_executor();
      asio::co_spawn(ex, session(std::move(socket)),
                     [self, peer](std::exception_ptr e) {
                       self->per_client.release(peer);
                       --self->connection_count;
                       if (!e) return;
                       try {
                         std::rethrow_exception(e);
                       } catch (const std::exception& ex) {
                         spdlog::error("smtp_in.session_failed error=\"{}\"", ex.what());
                       } catch (...) {
                       }
                     });
    }
  }
};

smtp_server::smtp_server(asio::io_context& io, smtp_server_options options, smtp_mail_handler handler)
    : impl_(std::make_shared<impl>(io, std::move(options), std::move(handler))) {}

smtp_server::~smtp_server() { stop(); }

void smtp_server::start() {
  auto& o = impl_->options;
  boost::system::error_code ec;
  auto host = o.listen.host == "localhost" ? std::string("127.0.0.1") : o.listen.host;
  auto address = asio::ip::make_address(host, ec);
  if (ec) throw std::runtime_error(o.listener_name + ": \"" + o.listen.host + "\" is not an IP address");
  tcp::endpoint endpoint(address, o.listen.port);
  auto& acceptor = impl_->acceptor;
  acceptor.open(endpoint.protocol(), ec);
  if (!ec) acceptor.set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec) acceptor.bind(endpoint, ec);
  if (!ec) acceptor.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) throw std::runtime_error("cannot listen on " + o.listen.to_string() + " (" + o.listener_name + "): " + ec.message());
  asio::co_spawn(acceptor.get_executor(), impl_->accept_loop(), asio::detached);
}

std::uint16_t smtp_server::port() const {
  boost::system::error_code ec;
  auto ep = impl_->acceptor.local_endpoint(ec);
  return ec ? 0 : ep.port();
}

void smtp_server::stop() {
  auto self = impl_;
  if (self->stopping.exchange(true)) return;
  asio::post(self->acceptor.get_executor(), [self] {
    boost::system::error_code ec;
    self->acceptor.close(ec);
  });
}

}  // namespace petrel
