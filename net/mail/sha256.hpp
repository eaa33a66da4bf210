// SHA-256 as an OpenSSL method fetched once. EVP_sha256() makes OpenSSL 3 look the algorithm up
// in its providers at every use; the hot paths (each request's API key hash, DKIM's body hash
// and signature, token and webhook MACs) take this one instead.
#pragma once

#include <openssl/evp.h>

namespace petrel {

const EVP_MD* sha256_md();

}  // namespace petrel
