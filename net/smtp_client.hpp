// The SMTP client (RFC 5321) as C++20 coroutines on Asio and OpenSSL: connect to the first
// MX target that answers (bound to the egress source's address), greeting, EHLO with HELO
// fallback, STARTTLS (disabled, opportunistic, required; verification optional), PIPELINING,
// SIZE, 8BITMIME, SMTPUTF8, AUTH PLAIN (for relays), several recipients per transaction with a reply for each, DATA
// with dot-stuffing, RSET and reuse of the connection, QUIT. Every read and write has a
// timeout (RFC 5321 4.5.3.2). Included only by the translation units that run sessions.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/ssl/context.hpp>

#include "net/dane.hpp"
#include "net/smtp_reply.hpp"
#include "net/tls_mode.hpp"

namespace petrel {


struct smtp_timeouts {
  // RFC 5321 4.5.3.2: initial 220 5 min, MAIL 5 min, RCPT 5 min, DATA 2 min, data block 3 min,
  // final "." 10 min. Connect has no RFC value; 30 s is common practice.
  std::chrono::milliseconds connect{30'000};
  std::chrono::milliseconds greeting{300'000};
  std::chrono::milliseconds command{300'000};  // EHLO, MAIL, RCPT, RSET, STARTTLS, QUIT
  std::chrono::milliseconds data_init{120'000};
  std::chrono::milliseconds data_block{180'000};
  std::chrono::milliseconds data_done{600'000};
};

struct smtp_client_settings {
  std::string ehlo_name = "localhost";
  std::string bind_address;  // source IP; empty: the kernel picks
  std::uint16_t port = 25;
  tls_mode tls = tls_mode::opportunistic;
  bool verify_certificate = false;
  // SMTP AUTH PLAIN (RFC 4954) after EHLO (and STARTTLS) when set: relays that want a login.
  std::string auth_username;
  std::string auth_password;
  smtp_timeouts timeouts;
};

struct smtp_target {
  std::string host;     // MX host name (for SNI, certificate checks, events)
  std::string address;  // IP to connect to
  std::uint16_t port = 0;  // 0: the settings' port
  // DANE (RFC 7672): the host's DNSSEC-validated, usable TLSA records. When there are any, TLS
  // is required and the certificate must match one of them (DANE-EE: the server's own
  // certificate or key, names and dates not checked; DANE-TA: a trust anchor of its chain, the
  // name checked against host), whatever the settings say: DANE comes before MTA-STS and
  // verify_certificate, and never falls back to plaintext.
  std::vector<tlsa_record> tlsa;
};

// What the connected server is and offers.
struct smtp_connection_info {
  std::string mx_host;
  std::string mx_address;
  std::string local_address;
  std::string greeting;
  bool esmtp = false;
  bool pipelining = false;
  bool eightbitmime = false;
  bool smtputf8 = false;
  bool starttls = false;
  bool enhanced_status_codes = false;
  bool auth_plain = false;       // AUTH with the PLAIN mechanism offered
  bool authenticated = false;    // AUTH succeeded
  std::uint64_t size_limit = 0;  // 0: none announced
  bool tls = false;
  std::string tls_version;
  std::string tls_cipher;
  bool dane = false;  // the certificate matched the host's TLSA records
};

struct smtp_transaction {
  std::string mail_from;
  std::vector<std::string> rcpt_to;
  std::shared_ptr<const std::string> content;  // RFC 5322 message
  bool needs_smtputf8 = false;
  // Asked right before the final dot (cluster fencing): false ends the connection without
  // it, so the server discards the message, and every recipient gets `abort_reason`.
  std::function<bool()> may_finish;
  std::string abort_reason = "the transaction was abandoned before the final dot";
};

// The outcome of one transaction. A reply for every recipient that got one; recipients after
// a transport failure have none (the caller defers them with `error`).
struct smtp_transaction_result {
  std::vector<std::optional<smtp_reply>> recipients;  // same order as rcpt_to
  // The command each reply answered: "MAIL" (the sender or the message was refused before any
  // recipient), "RCPT", or "DATA" (after the content, or DATA itself refused).
  std::vector<std::string> commands;
  std::string error;      // transport failure or local refusal, when some reply is missing
  bool connection_usable = true;
};

struct smtp_connect_failure {
  std::string host;
  std::string address;
  std::string error;
  // For a host with TLSA records, how DANE failed (TLS-RPT's result types): "starttls-not-
  // supported", "validation-failure"; "" when it was not DANE that failed.
  std::string dane_failure;
};

class smtp_connection {
 public:
  ~smtp_connection();

  // Tries the targets in order; connection errors, timeouts, a non-220 greeting (e.g. 421)
  // and a refused EHLO/HELO move on to the next one. Returns null when none worked; then
  // `failures` says why for each.
  static boost::asio::awaitable<std::unique_ptr<smtp_connection>> open(
      boost::asio::any_io_executor executor, std::shared_ptr<boost::asio::ssl::context> tls,
      std::vector<smtp_target> targets, smtp_client_settings settings,
      std::vector<smtp_connect_failure>& failures);

  boost::asio::awaitable<smtp_transaction_result> send(const smtp_transaction& transaction);
  boost::asio::awaitable<void> quit();

  const smtp_connection_info& info() const;
  bool usable() const;

  struct impl;

 private:
  explicit smtp_connection(std::unique_ptr<impl> i);

  // The phases of send(): RSET after an unfinished transaction, the envelope (pipelined or
  // one command at a time) up to DATA's reply, and the content with its final reply.
  struct envelope_outcome;
  boost::asio::awaitable<bool> reset_if_needed(smtp_transaction_result& result);
  boost::asio::awaitable<envelope_outcome> send_envelope_pipelined(const std::string& mail,
                                                                   const std::vector<std::string>& rcpts,
                                                                   smtp_transaction_result& result);
  boost::asio::awaitable<envelope_outcome> send_envelope_serial(const std::string& mail,
                                                                const std::vector<std::string>& rcpts,
                                                                smtp_transaction_result& result);
  boost::asio::awaitable<void> send_content(const smtp_transaction& t, smtp_transaction_result& result);

  std::unique_ptr<impl> impl_;
};

// A client TLS context: system trust store, TLS 1.2 or later, no compression or renegotiation.
std::shared_ptr<boost::asio::ssl::context> make_smtp_tls_context(const std::string& ca_file = {});

}  // namespace petrel
