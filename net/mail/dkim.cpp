// DKIM signing (see dkim.hpp).
#include "net/mail/dkim.hpp"
#include "net/mail/sha256.hpp"

#include "net/mail/base64.hpp"

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include <algorithm>
#include <map>

namespace petrel {

struct dkim_signer::key {
  EVP_PKEY* pkey = nullptr;
  ~key() { EVP_PKEY_free(pkey); }
};

namespace {

std::string base64(const unsigned char* data, std::size_t n) {
  return base64_encode(std::string_view(reinterpret_cast<const char*>(data), n));
}

std::string sha256(std::string_view data) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  EVP_Digest(data.data(), data.size(), digest, &n, sha256_md(), nullptr);
  return std::string(reinterpret_cast<char*>(digest), n);
}

bool is_wsp(char c) { return c == ' ' || c == '\t'; }

std::string lower(std::string_view s) {
  std::string out(s);
  for (auto& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

struct header_field {
  std::string name;   // as written
  std::string value;  // everything after the colon, folding (CRLF) kept
};

// The header fields of a message, in order; `body` gets what follows the empty line.
std::vector<header_field> split_message(std::string_view message, std::string_view& body) {
  std::vector<header_field> fields;
  std::size_t pos = 0;
  body = {};
  while (pos < message.size()) {
    auto eol = message.find("\r\n", pos);
    if (eol == std::string_view::npos) eol = message.size();
    auto line = message.substr(pos, eol - pos);
    auto next = std::min(eol + 2, message.size());
    if (line.empty()) {
      body = message.substr(next);
      return fields;
    }
    if (is_wsp(line.front()) && !fields.empty()) {
      fields.back().value += "\r\n";
      fields.back().value += line;
    } else {
      auto colon = line.find(':');
      if (colon != std::string_view::npos)
        fields.push_back({std::string(line.substr(0, colon)), std::string(line.substr(colon + 1))});
    }
    pos = next;
  }
  return fields;
}

// Folds "tag=value; tag=value" at the semicolons and b=/bh= values so lines stay short.
void append_folded(std::string& out, std::size_t& column, std::string_view piece) {
  if (column + piece.size() > 76 && column > 1) {
    out += "\r\n\t";
    column = 1;
  }
  out += piece;
  column += piece.size();
}

}  // namespace

std::string_view to_string(dkim_algorithm a) {
  return a == dkim_algorithm::rsa_sha256 ? "rsa-sha256" : "ed25519-sha256";
}

const std::vector<std::string>& dkim_signed_headers() {
  static const std::vector<std::string> list = {
      "from", "sender", "reply-to", "to", "cc", "subject", "date", "message-id", "in-reply-to",
      "references", "mime-version", "content-type", "content-transfer-encoding",
      "list-unsubscribe", "list-unsubscribe-post", "list-id", "feedback-id"};
  return list;
}

const std::vector<std::string>& dkim_oversigned_headers() {
  static const std::vector<std::string> list = {"from",       "to",         "subject", "date",
                                                "message-id", "list-unsubscribe"};
  return list;
}

std::string dkim_relaxed_header(std::string_view name, std::string_view value) {
  // RFC 6376 3.4.2: lower-case name; unfold; runs of WSP to one SP; no WSP at the ends of the
  // value; no WSP around the colon.
  std::string out = lower(name);
  while (!out.empty() && is_wsp(out.back())) out.pop_back();
  out += ':';
  std::string v;
  bool space = false;
  for (char c : value) {
    if (c == '\r' || c == '\n') continue;
    if (is_wsp(c)) {
      space = true;
      continue;
    }
    if (space && !v.empty()) v += ' ';
    space = false;
    v += c;
  }
  return out + v;
}

std::string dkim_relaxed_body(std::string_view body) {
  // RFC 6376 3.4.4: WSP at line ends removed, runs of WSP to one SP, empty lines at the end
  // removed, a non-empty body ends with CRLF.
  std::string out;
  out.reserve(body.size());
  std::size_t pos = 0;
  std::size_t kept = 0;  // length of out up to the last non-empty line
  while (pos < body.size()) {
    auto eol = body.find("\r\n", pos);
    bool last = eol == std::string_view::npos;
    auto line = body.substr(pos, last ? std::string_view::npos : eol - pos);
    std::string canon;
    bool space = false;
    for (char c : line) {
      if (is_wsp(c)) {
        space = true;
        continue;
      }
      if (space) canon += ' ';
      space = false;
      canon += c;
    }
    out += canon;
    out += "\r\n";
    if (!canon.empty()) kept = out.size();
    if (last) break;
    pos = eol + 2;
  }
  out.resize(kept);  // drop trailing empty lines (and an empty body stays empty)
  return out;
}

parsed<std::shared_ptr<const dkim_signer>> dkim_signer::from_pem(const std::string& domain,
                                                                 const std::string& selector,
                                                                 const std::string& pem) {
  using result = parsed<std::shared_ptr<const dkim_signer>>;
  BIO* bio = BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size()));
  EVP_PKEY* pkey = PEM_read_bio_PrivateKey(bio, nullptr, nullptr, nullptr);
  BIO_free(bio);
  if (!pkey) return result::failure("not a PEM private key");
  std::shared_ptr<dkim_signer> s(new dkim_signer());
  s->key_ = std::make_unique<key>();
  s->key_->pkey = pkey;
  s->domain_ = domain;
  s->selector_ = selector;
  switch (EVP_PKEY_get_base_id(pkey)) {
    case EVP_PKEY_RSA: {
      if (EVP_PKEY_get_bits(pkey) < 1024)
        return result::failure("RSA keys shorter than 1024 bits are not allowed (RFC 8301)");
      s->algorithm_ = dkim_algorithm::rsa_sha256;
      unsigned char* der = nullptr;
      int len = i2d_PUBKEY(pkey, &der);
      s->public_key_ = base64(der, static_cast<std::size_t>(len));
      OPENSSL_free(der);
      break;
    }
    case EVP_PKEY_ED25519: {
      s->algorithm_ = dkim_algorithm::ed25519_sha256;
      unsigned char raw[32];
      std::size_t len = sizeof raw;
      EVP_PKEY_get_raw_public_key(pkey, raw, &len);
      s->public_key_ = base64(raw, len);
      break;
    }
    default:
      return result::failure("only RSA and Ed25519 keys can sign DKIM");
  }
  return std::shared_ptr<const dkim_signer>(std::move(s));
}

dkim_signer::~dkim_signer() = default;

std::string dkim_signer::dns_record() const {
  return std::string("v=DKIM1; k=") +
         (algorithm_ == dkim_algorithm::rsa_sha256 ? "rsa" : "ed25519") + "; p=" + public_key_;
}

std::string dkim_signer::sign(std::string_view message, std::int64_t unix_time) const {
  std::string_view body;
  auto fields = split_message(message, body);
  auto body_hash = base64(reinterpret_cast<const unsigned char*>(sha256(dkim_relaxed_body(body)).data()), 32);

  // Which fields to sign: each present name as many times as it occurs, from the bottom up
  // (RFC 6376 5.4.2), plus once more for over-signed names, which signs their absence.
  std::map<std::string, int> counts;
  for (const auto& f : fields) ++counts[lower(f.name)];
  const auto& oversigned = dkim_oversigned_headers();
  std::vector<std::string> h;
  for (const auto& name : dkim_signed_headers()) {
    auto found = counts.find(name);
    int times = (found == counts.end() ? 0 : found->second) +
                (std::find(oversigned.begin(), oversigned.end(), name) != oversigned.end() ? 1 : 0);
    for (int i = 0; i < times; ++i) h.push_back(name);
  }
  std::string data;
  std::map<std::string, int> used;  // per name, how many instances taken from the bottom
  for (const auto& name : h) {
    int& taken = used[name];
    int seen = 0;
    for (auto it = fields.rbegin(); it != fields.rend(); ++it) {
      if (lower(it->name) != name) continue;
      if (seen++ == taken) {
        data += dkim_relaxed_header(it->name, it->value) + "\r\n";
        break;
      }
    }
    ++taken;  // past the last instance: a null field, which signs its absence
  }

  std::string header = "DKIM-Signature:";
  std::size_t column = header.size();
  for (const auto& tag : {"v=1;", "c=relaxed/relaxed;"}) append_folded(header, column, std::string(" ") + tag);
  append_folded(header, column, " a=" + std::string(to_string(algorithm_)) + ";");
  append_folded(header, column, " d=" + domain_ + ";");
  append_folded(header, column, " s=" + selector_ + ";");
  append_folded(header, column, " t=" + std::to_string(unix_time) + ";");
  append_folded(header, column, " bh=" + body_hash + ";");
  // h= may fold before any colon (RFC 6376 3.5 allows FWS there).
  for (std::size_t i = 0; i < h.size(); ++i)
    append_folded(header, column, (i == 0 ? " h=" : ":") + h[i]);
  append_folded(header, column, "; b=");
  // The signature covers the signed fields and this header with an empty b= (RFC 6376 3.7).
  auto colon = header.find(':');
  data += dkim_relaxed_header(header.substr(0, colon), header.substr(colon + 1));

  std::string signature;
  if (algorithm_ == dkim_algorithm::rsa_sha256) {
    EVP_MD_CTX* ctx = EVP_MD_CTX_new();
    std::size_t len = 0;
    EVP_DigestSignInit(ctx, nullptr, sha256_md(), nullptr, key_->pkey);
    EVP_DigestSignUpdate(ctx, data.data(), data.size());
    EVP_DigestSignFinal(ctx, nullptr, &len);
    std::string sig(len, '\0');
    EVP_DigestSignFinal(ctx, reinterpret_cast<unsigned char*>(sig.data()), &len);
    sig.resize(len);
    EVP_MD_CTX_free(ctx);
    signature = base64(reinterpret_cast<const unsigned char*>(sig.data()), sig.size());
  } else {
    // RFC 8463 3: Ed25519 (PureEdDSA) over the SHA-256 hash of the data.
    auto digest = sha256(data);
    EVP_MD_CTX* ctx = EVP_MD_CTX_new();
    unsigned char sig[64];
    std::size_t len = sizeof sig;
    EVP_DigestSignInit(ctx, nullptr, nullptr, nullptr, key_->pkey);
    EVP_DigestSign(ctx, sig, &len, reinterpret_cast<const unsigned char*>(digest.data()), digest.size());
    EVP_MD_CTX_free(ctx);
    signature = base64(sig, len);
  }
  // b= in chunks, folded; white space inside b= is ignored by verifiers (RFC 6376 3.5).
  for (std::size_t i = 0; i < signature.size(); i += 64) append_folded(header, column, signature.substr(i, 64));
  return header + "\r\n";
}

std::string generate_dkim_key(dkim_algorithm algorithm, int rsa_bits) {
  EVP_PKEY* pkey = algorithm == dkim_algorithm::rsa_sha256
                       ? EVP_RSA_gen(static_cast<unsigned>(rsa_bits))
                       : EVP_PKEY_Q_keygen(nullptr, nullptr, "ED25519");
  if (!pkey) throw std::runtime_error("key generation failed");
  BIO* bio = BIO_new(BIO_s_mem());
  PEM_write_bio_PrivateKey(bio, pkey, nullptr, nullptr, 0, nullptr, nullptr);
  char* data = nullptr;
  long len = BIO_get_mem_data(bio, &data);
  std::string pem(data, static_cast<std::size_t>(len));
  BIO_free(bio);
  EVP_PKEY_free(pkey);
  return pem;
}

}  // namespace petrel
