// TLS credentials of Petrel's listeners (see tls_server.hpp).
#include "net/tls_server.hpp"

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <sys/stat.h>

#include <algorithm>
#include <boost/asio/ssl/context.hpp>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <stdexcept>

namespace petrel {

namespace asio = boost::asio;

namespace {

// Mozilla's "intermediate" TLS 1.2 suites: ECDHE only (forward secrecy), AEAD only. TLS 1.3's
// suites are OpenSSL's defaults, all of them AEAD.
constexpr const char* tls12_ciphers =
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:"
    "ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305";

std::string openssl_error() {
  auto code = ERR_get_error();
  ERR_clear_error();
  if (code == 0) return "unknown error";
  char text[256];
  ERR_error_string_n(code, text, sizeof text);
  return text;
}

struct file_stamp {
  std::string path;
  std::int64_t mtime_ns = -1, size = -1, inode = -1;
  bool operator==(const file_stamp&) const = default;
};

file_stamp stamp(const std::string& path) {
  file_stamp s{path};
  struct stat st {};
  if (::stat(path.c_str(), &st) == 0) {
    s.mtime_ns = static_cast<std::int64_t>(st.st_mtim.tv_sec) * 1'000'000'000 + st.st_mtim.tv_nsec;
    s.size = static_cast<std::int64_t>(st.st_size);
    s.inode = static_cast<std::int64_t>(st.st_ino);
  }
  return s;
}

std::int64_t not_after_of(const X509* cert) {
  std::tm tm{};
  if (!cert || ASN1_TIME_to_tm(X509_get0_notAfter(cert), &tm) != 1) return 0;
  return static_cast<std::int64_t>(::timegm(&tm));
}

std::vector<std::string> names_of(X509* cert) {
  std::vector<std::string> names;
  if (!cert) return names;
  auto* sans = static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(cert, NID_subject_alt_name, nullptr, nullptr));
  if (sans) {
    for (int i = 0; i < sk_GENERAL_NAME_num(sans); ++i) {
      const auto* name = sk_GENERAL_NAME_value(sans, i);
      if (name->type != GEN_DNS) continue;
      const auto* text = ASN1_STRING_get0_data(name->d.dNSName);
      std::string value(reinterpret_cast<const char*>(text), static_cast<std::size_t>(ASN1_STRING_length(name->d.dNSName)));
      for (auto& c : value) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      names.push_back(std::move(value));
    }
    GENERAL_NAMES_free(sans);
  }
  if (names.empty()) {
    char cn[256] = {};
    if (X509_NAME_get_text_by_NID(X509_get_subject_name(cert), NID_commonName, cn, sizeof cn) > 0) names.push_back(cn);
  }
  return names;
}

// RFC 6125 6.4.3: a wildcard stands for exactly one whole left-most label.
bool name_matches(const std::string& pattern, const std::string& host) {
  if (pattern == host) return true;
  if (pattern.size() < 3 || pattern[0] != '*' || pattern[1] != '.') return false;
  auto dot = host.find('.');
  return dot != std::string::npos && dot > 0 && host.compare(dot, std::string::npos, pattern, 1, std::string::npos) == 0;
}

int select_alpn(SSL*, const unsigned char** out, unsigned char* outlen, const unsigned char* in, unsigned int inlen,
                void* arg) {
  const auto* wanted = static_cast<const std::string*>(arg);  // length-prefixed, e.g. "\x08http/1.1"
  unsigned char* selected = nullptr;
  if (SSL_select_next_proto(&selected, outlen, reinterpret_cast<const unsigned char*>(wanted->data()),
                            static_cast<unsigned>(wanted->size()), in, inlen) != OPENSSL_NPN_NEGOTIATED)
    return SSL_TLSEXT_ERR_NOACK;  // the client offered only others: go on without ALPN
  *out = selected;
  return SSL_TLSEXT_ERR_OK;
}

}  // namespace

struct tls_credentials::loaded {
  struct sni_entry {
    std::vector<std::string> names;
    std::unique_ptr<asio::ssl::context> context;
    tls_certificate_info info;
  };
  asio::ssl::context main{asio::ssl::context::tls_server};
  tls_certificate_info info;
  std::vector<sni_entry> sni;
  std::vector<file_stamp> stamps;
  std::string alpn_wire;  // the ALPN protocol as OpenSSL wants it (length-prefixed)
};

namespace {

// One context with the listener's settings and a certificate with its key.
void configure(asio::ssl::context& ctx, const std::string& section, const std::string& cert_file,
               const std::string& key_file, const std::string& client_ca_file, const std::string* alpn_wire,
               tls_certificate_info& info) {
  auto* native = ctx.native_handle();
  ctx.set_options(asio::ssl::context::default_workarounds | asio::ssl::context::no_sslv2 |
                  asio::ssl::context::no_sslv3 | asio::ssl::context::no_tlsv1 | asio::ssl::context::no_tlsv1_1 |
                  asio::ssl::context::single_dh_use | asio::ssl::context::no_compression);
  SSL_CTX_set_min_proto_version(native, TLS1_2_VERSION);
  SSL_CTX_set_options(native, SSL_OP_NO_RENEGOTIATION);
  SSL_CTX_set_cipher_list(native, tls12_ciphers);
  boost::system::error_code ec;
  ctx.use_certificate_chain_file(cert_file, ec);
  if (ec)
    throw std::runtime_error("[" + section + "] tls_cert_file \"" + cert_file + "\": " + ec.message() +
                             (std::filesystem::exists(cert_file) ? " (a PEM certificate chain is expected)" : ""));
  ctx.use_private_key_file(key_file, asio::ssl::context::pem, ec);
  if (ec && ec.message().find("key values mismatch") != std::string::npos)
    throw std::runtime_error("[" + section + "] tls_key_file \"" + key_file + "\" is not the key of tls_cert_file \"" +
                             cert_file + "\"");
  if (ec)
    throw std::runtime_error("[" + section + "] tls_key_file \"" + key_file + "\": " + ec.message() +
                             (std::filesystem::exists(key_file) ? " (a PEM private key is expected)" : ""));
  if (SSL_CTX_check_private_key(native) != 1) {
    ERR_clear_error();
    throw std::runtime_error("[" + section + "] tls_key_file \"" + key_file + "\" is not the key of tls_cert_file \"" +
                             cert_file + "\"");
  }
  if (!client_ca_file.empty()) {
    if (SSL_CTX_load_verify_locations(native, client_ca_file.c_str(), nullptr) != 1)
      throw std::runtime_error("[" + section + "] tls_client_ca_file \"" + client_ca_file + "\": " + openssl_error());
    if (auto* names = SSL_load_client_CA_file(client_ca_file.c_str())) SSL_CTX_set_client_CA_list(native, names);
    SSL_CTX_set_verify(native, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, nullptr);
  }
  if (alpn_wire && !alpn_wire->empty())
    SSL_CTX_set_alpn_select_cb(native, select_alpn, const_cast<std::string*>(alpn_wire));
  auto* cert = SSL_CTX_get0_certificate(native);
  info.file = cert_file;
  auto names = names_of(cert);
  info.subject.clear();
  for (const auto& n : names) info.subject += (info.subject.empty() ? "" : ",") + n;
  info.not_after = not_after_of(cert);
}

int pick_by_sni(SSL* ssl, int*, void* arg) {
  const auto* l = static_cast<const tls_credentials::loaded*>(arg);
  const char* name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
  if (!name) return SSL_TLSEXT_ERR_OK;  // no SNI: the main certificate
  std::string host(name);
  for (auto& c : host) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  for (const auto& entry : l->sni)
    for (const auto& pattern : entry.names)
      if (name_matches(pattern, host)) {
        SSL_set_SSL_CTX(ssl, entry.context->native_handle());
        return SSL_TLSEXT_ERR_OK;
      }
  return SSL_TLSEXT_ERR_OK;  // unknown name: the main certificate
}

std::shared_ptr<tls_credentials::loaded> load(const std::string& section, const tls_files& files,
                                              const std::string& alpn) {
  auto l = std::make_shared<tls_credentials::loaded>();
  if (!alpn.empty()) l->alpn_wire = std::string(1, static_cast<char>(alpn.size())) + alpn;
  // Stamps first: a file replaced while it is read is seen as changed at the next check.
  l->stamps.push_back(stamp(files.cert_file));
  l->stamps.push_back(stamp(files.key_file));
  if (!files.client_ca_file.empty()) l->stamps.push_back(stamp(files.client_ca_file));
  configure(l->main, section, files.cert_file, files.key_file, files.client_ca_file, &l->alpn_wire, l->info);
  if (!files.cert_dir.empty()) {
    std::error_code ec;
    std::vector<std::filesystem::path> certs;
    for (const auto& entry : std::filesystem::directory_iterator(files.cert_dir, ec))
      if (entry.path().extension() == ".crt") certs.push_back(entry.path());
    if (ec) throw std::runtime_error("[" + section + "] tls_cert_dir \"" + files.cert_dir + "\": " + ec.message());
    std::sort(certs.begin(), certs.end());
    l->stamps.push_back(stamp(files.cert_dir));
    for (const auto& cert : certs) {
      auto key = cert;
      key.replace_extension(".key");
      l->stamps.push_back(stamp(cert.string()));
      l->stamps.push_back(stamp(key.string()));
      tls_credentials::loaded::sni_entry entry;
      entry.context = std::make_unique<asio::ssl::context>(asio::ssl::context::tls_server);
      configure(*entry.context, section + "] [tls_cert_dir", cert.string(), key.string(), files.client_ca_file,
                &l->alpn_wire, entry.info);
      entry.names = names_of(SSL_CTX_get0_certificate(entry.context->native_handle()));
      l->sni.push_back(std::move(entry));
    }
    if (!l->sni.empty()) {
      SSL_CTX_set_tlsext_servername_callback(l->main.native_handle(), pick_by_sni);
      SSL_CTX_set_tlsext_servername_arg(l->main.native_handle(), l.get());
    }
  }
  return l;
}

}  // namespace

tls_credentials::tls_credentials(std::string listener, std::string section, tls_files files, std::string alpn)
    : listener_(std::move(listener)), section_(std::move(section)), files_(std::move(files)), alpn_(std::move(alpn)),
      loaded_(load(section_, files_, alpn_)) {}

tls_credentials::~tls_credentials() = default;

std::shared_ptr<asio::ssl::context> tls_credentials::current() const {
  std::lock_guard lock(mutex_);
  // The context lives inside `loaded`, which this pointer keeps alive (with its SNI contexts).
  return std::shared_ptr<asio::ssl::context>(loaded_, &loaded_->main);
}

std::string tls_credentials::reload() {
  std::shared_ptr<loaded> fresh;
  try {
    fresh = load(section_, files_, alpn_);
  } catch (const std::exception& e) {
    return e.what();
  }
  std::lock_guard lock(mutex_);
  loaded_ = std::move(fresh);
  return {};
}

bool tls_credentials::changed_on_disk() const {
  std::shared_ptr<loaded> l;
  {
    std::lock_guard lock(mutex_);
    l = loaded_;
  }
  for (const auto& s : l->stamps)
    if (!(stamp(s.path) == s)) return true;
  if (!files_.cert_dir.empty()) {  // a new pair in the directory
    std::error_code ec;
    std::size_t certs = 0;
    for (const auto& entry : std::filesystem::directory_iterator(files_.cert_dir, ec))
      if (entry.path().extension() == ".crt") ++certs;
    if (!ec && certs != l->sni.size()) return true;
  }
  return false;
}

std::vector<tls_certificate_info> tls_credentials::certificates() const {
  std::lock_guard lock(mutex_);
  std::vector<tls_certificate_info> out{loaded_->info};
  for (const auto& e : loaded_->sni) out.push_back(e.info);
  return out;
}

}  // namespace petrel
