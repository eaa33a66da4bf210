// Petrel's SMTP listeners, in two modes.
// - Bounces and feedback reports (the default): not a mail server and never an open relay. It
//   accepts mail only for its configured domains (the VERP domain and the feedback-loop
//   domains) and answers every other recipient with 550 5.7.1.
// - Submission (RFC 6409) for applications: STARTTLS (or TLS from the first byte), then AUTH
//   PLAIN or LOGIN (RFC 4954) with a tenant's API key; no MAIL before AUTH (530), any
//   recipient after it.
// Both bound what a peer can make them do (message size, recipients, connections, messages per
// second, command timeouts, malformed commands, failed AUTH per client address). Each accepted
// message goes to the handler, and the 250 is sent only after the handler has answered (after
// the message is stored). Asio stays in the .cpp file.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "config/units.hpp"

namespace boost::asio {
class io_context;
}  // namespace boost::asio

namespace petrel {

class tls_credentials;

struct smtp_server_options {
  listen_address listen;
  std::string hostname = "localhost";       // in the greeting and EHLO reply
  std::vector<std::string> accept_domains;  // lower case; RCPT TO for other domains: 550
  std::uint64_t max_message_bytes = 10 * 1024 * 1024;
  std::uint32_t max_recipients = 50;
  std::uint32_t max_connections = 200;
  std::uint32_t max_connections_per_client = 20;  // per peer address; 0: no limit
  std::vector<std::string> trusted_clients;       // addresses or networks exempt from it
  double max_messages_per_second = 100;  // all peers together; over it: 451 4.7.1
  std::chrono::milliseconds command_timeout{300'000};
  std::chrono::milliseconds handler_timeout{60'000};  // past it: 451, the peer retries
  std::string listener_name = "bounces";  // in logs

  // Submission mode: AUTH required before MAIL; recipients of any domain.
  bool submission = false;
  // TLS: STARTTLS is offered when set (or, with implicit_tls, every connection starts with the
  // handshake: port 465, RFC 8314). AUTH only over TLS unless allow_plain_auth.
  // Each connection takes the credentials current when its handshake starts (net/tls_server.hpp).
  std::shared_ptr<tls_credentials> tls;
  bool implicit_tls = false;
  bool allow_plain_auth = false;
  // Failed AUTH attempts per client address in a minute before it is refused (421).
  std::uint32_t max_auth_failures = 5;
  // Checks credentials: calls done with the identity the handler will see ("" refused).
  std::function<void(std::string user, std::string password, std::function<void(std::string identity)> done)>
      authenticate;
};

struct received_mail {
  std::string peer;  // the client's IP address
  std::string helo;
  std::string mail_from;  // without the angle brackets; "" for the null sender
  std::vector<std::string> rcpt_to;
  std::string content;  // dot-unstuffed, CRLF line endings
  std::string identity;  // submission: what authenticate answered for the session
  bool tls = false;      // the session was encrypted
};

// The answer to one message: an SMTP code (250 stored, 451 try later, 550/554 refused) and
// its text. Call it once, from any thread.
using smtp_reply_fn = std::function<void(int code, std::string text)>;
using smtp_mail_handler = std::function<void(received_mail&&, smtp_reply_fn)>;

class smtp_server {
 public:
  smtp_server(boost::asio::io_context& io, smtp_server_options options, smtp_mail_handler handler);
  ~smtp_server();
  smtp_server(const smtp_server&) = delete;
  smtp_server& operator=(const smtp_server&) = delete;

  // Binds and listens; throws std::runtime_error naming the address when it cannot.
  void start();
  std::uint16_t port() const;
  // Stops accepting and closes the sessions at their next command. Thread-safe.
  void stop();

  struct impl;

 private:
  std::shared_ptr<impl> impl_;
};

}  // namespace petrel
