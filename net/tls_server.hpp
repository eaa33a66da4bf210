// TLS credentials of Petrel's own listeners (HTTP API, admin, tracking, SMTP submission): a
// certificate chain and its key, optionally a CA for client certificates (mutual TLS) and a
// directory of further certificates chosen by SNI. TLS 1.2 and 1.3 only, forward-secret AEAD
// ciphers for TLS 1.2, ALPN when asked for.
//
// The credentials can be loaded again (SIGHUP, or when the files change: ACME renewals) without
// dropping anything: each connection keeps the context it started with, new connections take the
// new one. A reload that fails keeps the old credentials and says why. Asio stays in the .cpp.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace boost::asio::ssl {
class context;
}

namespace petrel {

struct tls_files {
  std::string cert_file;       // PEM: the certificate, then its chain
  std::string key_file;        // PEM: its private key
  std::string client_ca_file;  // PEM CAs; when set, clients must present a certificate they issued
  std::string cert_dir;        // further "<name>.crt" + "<name>.key" pairs, picked by SNI
  bool enabled() const { return !cert_file.empty(); }
};

struct tls_certificate_info {
  std::string file;
  std::string subject;           // the certificate's names (SANs), comma-separated
  std::int64_t not_after = 0;    // unix seconds
};

class tls_credentials {
 public:
  // Loads the files; throws std::runtime_error naming the config section's key and the file and
  // what is wrong (missing, unreadable, not PEM, the key not the certificate's). `listener` names
  // it in logs and metrics ("api"), `section` in errors ("http").
  tls_credentials(std::string listener, std::string section, tls_files files, std::string alpn = "");
  ~tls_credentials();
  tls_credentials(const tls_credentials&) = delete;
  tls_credentials& operator=(const tls_credentials&) = delete;

  // The context new connections use now. Thread-safe.
  std::shared_ptr<boost::asio::ssl::context> current() const;

  // Reads the files again: "" when the new credentials are in use, else the reason (and the
  // old ones stay). Thread-safe.
  std::string reload();
  // True when a file's modification time, size or inode differs from what was loaded.
  bool changed_on_disk() const;

  const std::string& listener() const { return listener_; }
  const tls_files& files() const { return files_; }
  // The certificates in use: the main one first, then the SNI ones.
  std::vector<tls_certificate_info> certificates() const;

  struct loaded;

 private:
  std::string listener_;
  std::string section_;
  tls_files files_;
  std::string alpn_;
  mutable std::mutex mutex_;
  std::shared_ptr<loaded> loaded_;
};

}  // namespace petrel
