// The SMTP client (see smtp_client.hpp).
#include "net/smtp_client.hpp"

#include "net/mail/base64.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read_until.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <stdexcept>

#include "net/smtp_data.hpp"

namespace petrel {

namespace asio = boost::asio;
namespace ssl = asio::ssl;
using tcp = asio::ip::tcp;
using error_code = boost::system::error_code;

namespace {

constexpr auto use_tuple = asio::as_tuple(asio::use_awaitable);
// A reply line longer than this ends the connection (see max_reply_line_octets).
constexpr std::size_t max_read_buffer = 64 * 1024;

std::string upper(std::string_view s) {
  std::string out(s);
  for (auto& c : out) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return out;
}

smtp_reply synthesized(int code, const std::string& enhanced, const std::string& text) {
  smtp_reply r;
  r.code = code;
  r.enhanced = enhanced;
  r.lines.push_back(text);
  return r;
}

}  // namespace

struct smtp_connection::impl {
  impl(asio::any_io_executor ex, std::shared_ptr<ssl::context> ctx, smtp_client_settings s)
      : tls_context(std::move(ctx)), stream(ex, *tls_context), timer(ex), settings(std::move(s)) {}

  std::shared_ptr<ssl::context> tls_context;
  ssl::stream<tcp::socket> stream;
  asio::steady_timer timer;
  smtp_client_settings settings;
  smtp_connection_info info;
  std::string buffer;
  bool usable = true;
  std::string dane_failure;  // see smtp_connect_failure
  bool timed_out = false;
  bool needs_rset = false;

  tcp::socket& socket() { return stream.next_layer(); }

  // A watchdog for one operation: on expiry it closes the socket, which fails the operation.
  void arm(std::chrono::milliseconds timeout) {
    timed_out = false;
    timer.expires_after(timeout);
    timer.async_wait([this](const error_code& ec) {
      if (ec) return;
      timed_out = true;
      error_code ignored;
      socket().close(ignored);
    });
  }
  void disarm() { timer.cancel(); }

  std::string describe(const error_code& ec, const char* during) {
    usable = false;
    if (timed_out) return std::string("timeout ") + during;
    if (ec == asio::error::not_found) return std::string("reply line too long ") + during;
    if (ec == asio::error::eof) return std::string("connection closed by the server ") + during;
    return ec.message() + " " + during;
  }

  asio::awaitable<std::optional<std::string>> read_line(std::chrono::milliseconds timeout,
                                                        const char* during, std::string& error) {
    arm(timeout);
    auto buf = asio::dynamic_buffer(buffer, max_read_buffer);
    error_code ec;
    std::size_t n = 0;
    if (info.tls)
      std::tie(ec, n) = co_await asio::async_read_until(stream, buf, '\n', use_tuple);
    else
      std::tie(ec, n) = co_await asio::async_read_until(socket(), buf, '\n', use_tuple);
    disarm();
    if (ec) {
      error = describe(ec, during);
      co_return std::nullopt;
    }
    std::string line = buffer.substr(0, n - 1);
    if (!line.empty() && line.back() == '\r') line.pop_back();
    buffer.erase(0, n);
    co_return line;
  }

  asio::awaitable<std::optional<smtp_reply>> read_reply(std::chrono::milliseconds timeout,
                                                        const char* during, std::string& error) {
    smtp_reply_parser parser;
    for (;;) {
      auto line = co_await read_line(timeout, during, error);
      if (!line) co_return std::nullopt;
      switch (parser.feed(*line)) {
        case smtp_reply_parser::status::more: continue;
        case smtp_reply_parser::status::error:
          usable = false;
          error = "malformed reply " + std::string(during) + ": " + parser.error();
          co_return std::nullopt;
        case smtp_reply_parser::status::done: {
          auto reply = parser.take();
          if (reply.code == 421) usable = false;  // the server is closing the channel
          co_return reply;
        }
      }
    }
  }

  asio::awaitable<bool> write(std::string_view data, std::chrono::milliseconds timeout,
                              const char* during, std::string& error) {
    arm(timeout);
    error_code ec;
    std::size_t n = 0;
    if (info.tls)
      std::tie(ec, n) = co_await asio::async_write(stream, asio::buffer(data), use_tuple);
    else
      std::tie(ec, n) = co_await asio::async_write(socket(), asio::buffer(data), use_tuple);
    disarm();
    if (ec) {
      error = describe(ec, during);
      co_return false;
    }
    co_return true;
  }

  // Sends a command (or a pipelined batch) and reads one reply; nothing when either failed
  // (`error` says why). The reply is read within `timeout` as well. A view, not a string: GCC 12
  // ends temporaries bound to a coroutine's reference parameters too early.
  asio::awaitable<std::optional<smtp_reply>> command(std::string_view text, std::chrono::milliseconds timeout,
                                                     const char* sending, const char* after, std::string& error) {
    if (!co_await write(text, timeout, sending, error)) co_return std::nullopt;
    auto reply = co_await read_reply(timeout, after, error);
    co_return reply;
  }

  void read_extensions(const smtp_reply& ehlo) {
    info.esmtp = true;
    info.pipelining = info.eightbitmime = info.smtputf8 = info.starttls = false;
    info.enhanced_status_codes = false;
    info.auth_plain = false;
    info.size_limit = 0;
    for (std::size_t i = 1; i < ehlo.lines.size(); ++i) {
      auto line = upper(ehlo.lines[i]);
      auto keyword = line.substr(0, line.find(' '));
      if (keyword == "PIPELINING") info.pipelining = true;
      else if (keyword == "8BITMIME") info.eightbitmime = true;
      else if (keyword == "SMTPUTF8") info.smtputf8 = true;
      else if (keyword == "STARTTLS") info.starttls = true;
      else if (keyword == "ENHANCEDSTATUSCODES") info.enhanced_status_codes = true;
      else if (keyword == "AUTH" || keyword.rfind("AUTH=", 0) == 0) {
        // "AUTH PLAIN LOGIN" (RFC 4954); "AUTH=PLAIN" is the pre-standard form some servers add.
        std::string mechanisms = " " + line.substr(std::min(line.size(), std::size_t(5))) + " ";
        for (auto& ch : mechanisms)
          if (ch == '=') ch = ' ';
        if (mechanisms.find(" PLAIN ") != std::string::npos) info.auth_plain = true;
      }
      else if (keyword == "SIZE" && line.size() > 5) {
        try {
          info.size_limit = std::stoull(line.substr(5));
        } catch (...) {
          info.size_limit = 0;
        }
      }
    }
  }

  // EHLO, falling back to HELO when the server does not know EHLO. Empty string: success.
  asio::awaitable<std::string> hello() {
    std::string error;
    if (!co_await write("EHLO " + settings.ehlo_name + "\r\n", settings.timeouts.command, "sending EHLO", error))
      co_return error;
    auto reply = co_await read_reply(settings.timeouts.command, "after EHLO", error);
    if (!reply) co_return error;
    if (reply->code == 250) {
      read_extensions(*reply);
      co_return std::string();
    }
    if (!reply->permanent()) co_return "EHLO refused: " + reply->to_string();
    info.esmtp = false;
    if (!co_await write("HELO " + settings.ehlo_name + "\r\n", settings.timeouts.command, "sending HELO", error))
      co_return error;
    reply = co_await read_reply(settings.timeouts.command, "after HELO", error);
    if (!reply) co_return error;
    if (reply->code != 250) co_return "HELO refused: " + reply->to_string();
    co_return std::string();
  }

  // STARTTLS and the handshake. Empty string: TLS is up (or was not to be tried).
  asio::awaitable<std::string> start_tls(const smtp_target& target, bool& handshake_failed) {
    std::string error;
    if (!co_await write("STARTTLS\r\n", settings.timeouts.command, "sending STARTTLS", error))
      co_return error;
    auto reply = co_await read_reply(settings.timeouts.command, "after STARTTLS", error);
    if (!reply) co_return error;
    if (reply->code != 220) co_return "STARTTLS refused: " + reply->to_string();
    if (!buffer.empty()) {
      // Plaintext after the 220 would be read as if it came over TLS (STARTTLS injection).
      usable = false;
      co_return "the server sent data after its STARTTLS reply";
    }
    SSL_set_tlsext_host_name(stream.native_handle(), target.host.c_str());
    if (!target.tlsa.empty()) {
      if (auto e = enable_dane(target); !e.empty()) {
        usable = false;
        handshake_failed = true;
        co_return e;
      }
    } else if (settings.verify_certificate) {
      stream.set_verify_mode(ssl::verify_peer);
      stream.set_verify_callback(ssl::host_name_verification(target.host));
    } else {
      stream.set_verify_mode(ssl::verify_none);
    }
    arm(settings.timeouts.command);
    auto [ec] = co_await stream.async_handshake(ssl::stream_base::client, use_tuple);
    disarm();
    if (ec) {
      handshake_failed = true;
      usable = false;
      if (!target.tlsa.empty() && !timed_out) {
        auto verify = SSL_get_verify_result(stream.native_handle());
        dane_failure = "validation-failure";
        co_return "DANE: the certificate of " + target.host + " matches none of its TLSA records (" +
                  (verify != X509_V_OK ? X509_verify_cert_error_string(verify) : ec.message()) + ")";
      }
      co_return "TLS handshake failed: " + (timed_out ? std::string("timeout") : ec.message());
    }
    info.dane = !target.tlsa.empty() && SSL_get0_dane_authority(stream.native_handle(), nullptr, nullptr) >= 0;
    info.tls = true;
    info.tls_version = SSL_get_version(stream.native_handle());
    info.tls_cipher = SSL_get_cipher_name(stream.native_handle());
    auto greeting_error = co_await hello();  // RFC 3207 4.2: forget what was learned before TLS
    co_return greeting_error;
  }

  // OpenSSL's DANE verification (RFC 6698/7671 matching, as Postfix uses it) for this
  // connection: the TLSA records, the host name as the reference identifier for DANE-TA, no name
  // checks for DANE-EE (RFC 7672 3.1.1). Empty string: enabled.
  std::string enable_dane(const smtp_target& target) {
    SSL* ssl = stream.native_handle();
    if (SSL_dane_enable(ssl, target.host.c_str()) <= 0) return "DANE: OpenSSL could not enable DANE for " + target.host;
    SSL_dane_set_flags(ssl, DANE_FLAG_NO_DANE_EE_NAMECHECKS);
    int added = 0;
    for (const auto& r : target.tlsa) {
      auto* data = reinterpret_cast<const unsigned char*>(r.data.data());
      if (SSL_dane_tlsa_add(ssl, r.usage, r.selector, r.matching, data, r.data.size()) > 0) ++added;
    }
    if (added == 0) return "DANE: none of the TLSA records of " + target.host + " is usable";
    stream.set_verify_mode(ssl::verify_peer);
    stream.set_verify_callback([](bool preverified, ssl::verify_context&) { return preverified; });
    return {};
  }

  // Connect, greeting, EHLO, STARTTLS. Empty string: ready for transactions.
  asio::awaitable<std::string> establish(const smtp_target& target, tls_mode mode,
                                         bool& handshake_failed) {
    error_code ec;
    auto address = asio::ip::make_address(target.address, ec);
    if (ec) co_return "invalid address " + target.address;
    tcp::endpoint endpoint(address, target.port ? target.port : settings.port);
    socket().open(endpoint.protocol(), ec);
    if (ec) co_return "cannot open a socket: " + ec.message();
    if (!settings.bind_address.empty()) {
      auto source = asio::ip::make_address(settings.bind_address, ec);
      if (!ec) socket().bind(tcp::endpoint(source, 0), ec);
      if (ec) co_return "cannot bind to source address " + settings.bind_address + ": " + ec.message();
    }
    arm(settings.timeouts.connect);
    std::tie(ec) = co_await socket().async_connect(endpoint, use_tuple);
    disarm();
    if (ec) co_return describe(ec, "connecting");
    info.mx_host = target.host;
    info.mx_address = target.address;
    info.local_address = socket().local_endpoint(ec).address().to_string();

    std::string error;
    auto greeting = co_await read_reply(settings.timeouts.greeting, "waiting for the greeting", error);
    if (!greeting) co_return error;
    info.greeting = greeting->to_string();
    if (greeting->code != 220) co_return "greeting: " + greeting->to_string();
    if (auto e = co_await hello(); !e.empty()) co_return e;
    if (!target.tlsa.empty()) mode = tls_mode::required;  // DANE: TLS or nothing
    if (mode != tls_mode::disabled && info.starttls) {
      auto e = co_await start_tls(target, handshake_failed);
      if (!e.empty() && (mode == tls_mode::required || !usable)) co_return e;
      // opportunistic: a refused STARTTLS leaves a usable plaintext session
    }
    if (mode == tls_mode::required && !info.tls) {
      if (!target.tlsa.empty()) {
        dane_failure = "starttls-not-supported";
        co_return "DANE: " + target.host + " has TLSA records but does not offer STARTTLS";
      }
      co_return "TLS is required but the server does not offer STARTTLS";
    }
    if (!settings.auth_username.empty()) {
      auto e = co_await authenticate();
      co_return e;
    }
    co_return std::string();
  }

  // AUTH PLAIN with the initial response (RFC 4954 4, RFC 4616). Empty string: authenticated.
  asio::awaitable<std::string> authenticate() {
    if (!info.auth_plain) co_return "the server does not offer AUTH PLAIN (SMTP AUTH is configured for it)";
    std::string credentials;
    credentials.push_back('\0');
    credentials += settings.auth_username;
    credentials.push_back('\0');
    credentials += settings.auth_password;
    std::string error;
    auto reply = co_await command("AUTH PLAIN " + base64_encode(credentials) + "\r\n", settings.timeouts.command,
                                  "sending AUTH", "after AUTH", error);
    if (!reply) co_return error;
    if (reply->code != 235) co_return "SMTP AUTH refused for " + settings.auth_username + ": " + reply->to_string();
    info.authenticated = true;
    co_return std::string();
  }

  void close() {
    error_code ignored;
    timer.cancel();
    socket().close(ignored);
  }
};

smtp_connection::smtp_connection(std::unique_ptr<impl> i) : impl_(std::move(i)) {}

smtp_connection::~smtp_connection() {
  if (impl_) impl_->close();
}

const smtp_connection_info& smtp_connection::info() const { return impl_->info; }
bool smtp_connection::usable() const { return impl_->usable; }

asio::awaitable<std::unique_ptr<smtp_connection>> smtp_connection::open(
    asio::any_io_executor executor, std::shared_ptr<ssl::context> tls,
    std::vector<smtp_target> targets, smtp_client_settings settings,
    std::vector<smtp_connect_failure>& failures) {
  for (const auto& target : targets) {
    auto mode = settings.tls;
    for (int attempt = 0; attempt < 2; ++attempt) {
      auto conn = std::make_unique<impl>(executor, tls, settings);
      bool handshake_failed = false;
      auto error = co_await conn->establish(target, mode, handshake_failed);
      if (error.empty()) co_return std::unique_ptr<smtp_connection>(new smtp_connection(std::move(conn)));
      conn->close();
      failures.push_back({target.host, target.address, error, conn->dane_failure});
      // Opportunistic TLS that fails in the handshake: the same host once more in plaintext
      // (never for a host with TLSA records).
      if (!(handshake_failed && mode == tls_mode::opportunistic) || !target.tlsa.empty()) break;
      mode = tls_mode::disabled;
    }
  }
  co_return nullptr;
}

namespace {

// Recipients accepted by RCPT, in a transaction that then did not complete: their outcome is
// unknown to the server's side, so none is reported (they are tried again).
void forget_accepted(smtp_transaction_result& result) {
  for (auto& r : result.recipients)
    if (r && r->positive()) r.reset();
}

// A reply that answers for every recipient: MAIL's, or a refusal of the message before it.
void answer_all(smtp_transaction_result& result, const smtp_reply& reply) {
  for (auto& r : result.recipients) r = reply;
  for (auto& c : result.commands) c = "MAIL";
}

void answer(smtp_transaction_result& result, std::size_t i, const smtp_reply& reply, const char* command) {
  result.recipients[i] = reply;
  result.commands[i] = command;
}

}  // namespace

// What the envelope phase ended with: MAIL's and DATA's replies and how many RCPTs were taken.
// `done`: the transaction is over already (result says how).
struct smtp_connection::envelope_outcome {
  std::optional<smtp_reply> mail;
  std::optional<smtp_reply> data;
  std::size_t accepted = 0;
  bool done = false;
};

// RFC 2920: MAIL, every RCPT and DATA in one write, then the replies in order.
asio::awaitable<smtp_connection::envelope_outcome> smtp_connection::send_envelope_pipelined(
    const std::string& mail, const std::vector<std::string>& rcpts, smtp_transaction_result& result) {
  auto& c = *impl_;
  const auto& timeouts = c.settings.timeouts;
  envelope_outcome out;
  std::string error;
  std::string batch = mail;
  for (const auto& r : rcpts) batch += r;
  batch += "DATA\r\n";
  out.done = true;
  out.mail = co_await c.command(batch, timeouts.command, "sending the envelope", "after MAIL FROM", error);
  if (!out.mail) {
    result.error = error;
    co_return out;
  }
  for (std::size_t i = 0; i < rcpts.size(); ++i) {
    auto reply = co_await c.read_reply(timeouts.command, "after RCPT TO", error);
    if (!reply) {
      result.error = error;
      if (!out.mail->positive()) answer_all(result, *out.mail);
      co_return out;
    }
    if (out.mail->positive())
      answer(result, i, *reply, "RCPT");
    else
      answer(result, i, *out.mail, "MAIL");
    if (out.mail->positive() && reply->positive()) ++out.accepted;
  }
  out.data = co_await c.read_reply(timeouts.data_init, "after DATA", error);
  if (!out.data) {
    result.error = error;
    forget_accepted(result);  // accepted, but the transaction did not complete
    co_return out;
  }
  if (out.data->code == 354 && out.accepted == 0) {
    // No recipient, yet the server wants the body: end it empty and forget the transaction.
    if (co_await c.write(".\r\n", timeouts.data_block, "ending an empty DATA", error))
      co_await c.read_reply(timeouts.data_done, "after an empty DATA", error);
    c.needs_rset = true;
    co_return out;
  }
  out.done = false;
  co_return out;
}

// One command at a time, each reply awaited (servers without PIPELINING).
asio::awaitable<smtp_connection::envelope_outcome> smtp_connection::send_envelope_serial(
    const std::string& mail, const std::vector<std::string>& rcpts, smtp_transaction_result& result) {
  auto& c = *impl_;
  const auto& timeouts = c.settings.timeouts;
  envelope_outcome out;
  std::string error;
  out.done = true;
  out.mail = co_await c.command(mail, timeouts.command, "sending MAIL FROM", "after MAIL FROM", error);
  if (!out.mail) {
    result.error = error;
    co_return out;
  }
  if (!out.mail->positive()) {
    answer_all(result, *out.mail);
    c.needs_rset = true;
    co_return out;
  }
  for (std::size_t i = 0; i < rcpts.size(); ++i) {
    auto reply = co_await c.command(rcpts[i], timeouts.command, "sending RCPT TO", "after RCPT TO", error);
    if (!reply) {
      result.error = error;
      co_return out;
    }
    answer(result, i, *reply, "RCPT");
    if (reply->positive()) ++out.accepted;
    if (!c.usable) break;  // 421: the server is leaving
  }
  if (out.accepted == 0 || !c.usable) {
    c.needs_rset = true;
    forget_accepted(result);
    if (!c.usable && result.error.empty()) result.error = "the server closed the transaction (421)";
    co_return out;
  }
  out.data = co_await c.command("DATA\r\n", timeouts.data_init, "sending DATA", "after DATA", error);
  if (!out.data) {
    result.error = error;
    forget_accepted(result);
    co_return out;
  }
  out.done = false;
  co_return out;
}

// RSET after an earlier transaction that did not complete. False: the connection cannot go on.
asio::awaitable<bool> smtp_connection::reset_if_needed(smtp_transaction_result& result) {
  auto& c = *impl_;
  if (!c.needs_rset) co_return true;
  std::string error;
  auto reply = co_await c.command("RSET\r\n", c.settings.timeouts.command, "sending RSET", "after RSET", error);
  if (!reply || !reply->positive()) {
    c.usable = false;
    result.error = reply ? "RSET refused: " + reply->to_string() : error;
    co_return false;
  }
  c.needs_rset = false;
  co_return true;
}

// The message after a 354, and the final reply: it is every accepted recipient's outcome.
// With t.may_finish, the payload goes out without its final dot, which is sent only if the
// check still passes once the rest is written; if not, the connection is closed instead (a
// server discards a message whose DATA never ended, RFC 5321 4.1.1.4).
asio::awaitable<void> smtp_connection::send_content(const smtp_transaction& t, smtp_transaction_result& result) {
  auto& c = *impl_;
  const auto& timeouts = c.settings.timeouts;
  std::string error;
  auto payload = prepare_smtp_data(*t.content);
  if (t.may_finish) {
    payload.resize(payload.size() - 3);  // ".\r\n"
    bool written = co_await c.write(payload, timeouts.data_block, "sending the message", error);
    if (written && !t.may_finish()) {
      c.usable = false;
      c.close();
      result.error = t.abort_reason;
      forget_accepted(result);
      co_return;
    }
    if (written) written = co_await c.write(".\r\n", timeouts.data_block, "ending the message", error);
    if (!written) {
      result.error = error;
      forget_accepted(result);
      co_return;
    }
  } else if (!co_await c.write(payload, timeouts.data_block, "sending the message", error)) {
    result.error = error;
    forget_accepted(result);
    co_return;
  }
  auto final_reply = co_await c.read_reply(timeouts.data_done, "after the message", error);
  for (std::size_t i = 0; i < result.recipients.size(); ++i) {
    auto& r = result.recipients[i];
    if (!r || !r->positive()) continue;
    if (final_reply)
      answer(result, i, *final_reply, "DATA");
    else
      r.reset();  // unknown whether it was taken: deferred, may be delivered twice (RFC 1047)
  }
  if (!final_reply) result.error = error;
}

asio::awaitable<smtp_transaction_result> smtp_connection::send(const smtp_transaction& t) {
  auto& c = *impl_;
  smtp_transaction_result result;
  result.recipients.resize(t.rcpt_to.size());
  result.commands.resize(t.rcpt_to.size());
  auto finish = [&]() -> smtp_transaction_result {
    result.connection_usable = c.usable;
    return std::move(result);
  };
  if (!c.usable) {
    result.error = "the connection is no longer usable";
    co_return finish();
  }
  if (!co_await reset_if_needed(result)) co_return finish();
  const auto& content = *t.content;
  if (c.info.size_limit > 0 && content.size() > c.info.size_limit) {
    answer_all(result, synthesized(552, "5.3.4",
                                   "message of " + std::to_string(content.size()) +
                                       " octets exceeds the server's SIZE limit of " +
                                       std::to_string(c.info.size_limit)));
    co_return finish();
  }
  if (t.needs_smtputf8 && !c.info.smtputf8) {
    answer_all(result, synthesized(553, "5.6.7", "the recipient's server does not support SMTPUTF8 (RFC 6531 3.5)"));
    co_return finish();
  }

  std::string mail = "MAIL FROM:<" + t.mail_from + ">";
  if (c.info.esmtp && c.info.size_limit > 0) mail += " SIZE=" + std::to_string(content.size());
  if (c.info.eightbitmime && has_8bit(content)) mail += " BODY=8BITMIME";
  if (t.needs_smtputf8) mail += " SMTPUTF8";
  mail += "\r\n";
  std::vector<std::string> rcpts;
  for (const auto& r : t.rcpt_to) rcpts.push_back("RCPT TO:<" + r + ">\r\n");

  // (Not a conditional expression: GCC 12 miscompiles co_await inside ?:.)
  envelope_outcome envelope;
  if (c.info.pipelining)
    envelope = co_await send_envelope_pipelined(mail, rcpts, result);
  else
    envelope = co_await send_envelope_serial(mail, rcpts, result);
  if (envelope.done) co_return finish();
  if (!envelope.mail->positive()) {
    answer_all(result, *envelope.mail);
    c.needs_rset = true;
    co_return finish();
  }
  if (envelope.accepted == 0) {
    c.needs_rset = true;
    co_return finish();
  }
  if (envelope.data->code != 354) {
    for (std::size_t i = 0; i < result.recipients.size(); ++i)
      if (result.recipients[i] && result.recipients[i]->positive()) answer(result, i, *envelope.data, "DATA");
    c.needs_rset = true;
    co_return finish();
  }
  co_await send_content(t, result);
  co_return finish();
}

asio::awaitable<void> smtp_connection::quit() {
  auto& c = *impl_;
  if (c.usable) {
    std::string error;
    auto timeout = std::min(c.settings.timeouts.command, std::chrono::milliseconds(10'000));
    if (co_await c.write("QUIT\r\n", timeout, "sending QUIT", error))
      co_await c.read_reply(timeout, "after QUIT", error);
  }
  c.usable = false;
  c.close();
}

std::shared_ptr<ssl::context> make_smtp_tls_context(const std::string& ca_file) {
  auto ctx = std::make_shared<ssl::context>(ssl::context::tls_client);
  ctx->set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 |
                   ssl::context::no_sslv3 | ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1 |
                   ssl::context::no_compression);
  SSL_CTX_set_options(ctx->native_handle(), SSL_OP_NO_RENEGOTIATION);
  // DANE's digest algorithms (SHA-256, SHA-512) for connections that enable it (enable_dane).
  if (SSL_CTX_dane_enable(ctx->native_handle()) <= 0) throw std::runtime_error("OpenSSL: DANE support is unavailable");
  if (ca_file.empty())
    ctx->set_default_verify_paths();
  else
    ctx->load_verify_file(ca_file);
  return ctx;
}

}  // namespace petrel
