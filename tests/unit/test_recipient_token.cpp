// Signed recipient tokens: VERP envelope senders and unsubscribe links.
#include <catch2/catch.hpp>

#include "net/mail/recipient_token.hpp"

using namespace petrel;

namespace {
const std::string secret = "an-example-secret-of-32-bytes-or-more";
}

TEST_CASE("tokens: a token names its recipient and reads back", "[tokens]") {
  auto id = new_id();
  auto token = make_recipient_token(secret, token_purpose::verp, id);
  CHECK(token.size() == 42);
  CHECK(token.find_first_not_of("abcdefghijklmnopqrstuvwxyz234567") == std::string::npos);
  auto back = read_recipient_token(secret, token_purpose::verp, token);
  REQUIRE(back);
  CHECK(*back == id);
  // MTAs may change the case of a local part.
  std::string upper = token;
  for (auto& c : upper) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  CHECK(read_recipient_token(secret, token_purpose::verp, upper) == id);
}

TEST_CASE("tokens: forged, altered, truncated or foreign tokens are refused", "[tokens]") {
  auto id = new_id();
  auto token = make_recipient_token(secret, token_purpose::verp, id);
  for (std::size_t i = 0; i < token.size(); ++i) {
    auto altered = token;
    altered[i] = altered[i] == 'a' ? 'b' : 'a';
    CHECK_FALSE(read_recipient_token(secret, token_purpose::verp, altered));
  }
  CHECK_FALSE(read_recipient_token(secret, token_purpose::verp, token.substr(0, 41)));
  CHECK_FALSE(read_recipient_token(secret, token_purpose::verp, token + "a"));
  CHECK_FALSE(read_recipient_token(secret, token_purpose::verp, ""));
  CHECK_FALSE(read_recipient_token(secret, token_purpose::verp, std::string(42, '!')));
  CHECK_FALSE(read_recipient_token("another-secret-another-secret-xx", token_purpose::verp, token));
  // A VERP token is no unsubscribe link, and the reverse.
  CHECK_FALSE(read_recipient_token(secret, token_purpose::unsubscribe, token));
  CHECK_FALSE(read_recipient_token("", token_purpose::verp, token));
}

TEST_CASE("tokens: VERP addresses", "[tokens]") {
  auto id = new_id();
  auto address = verp_address(secret, id, "bounces.example.com");
  CHECK(address.rfind("b-", 0) == 0);
  CHECK(address.size() == 2 + 42 + 1 + 19);
  CHECK(address.find('@') < 64);  // a local part within RFC 5321's limit
  CHECK(read_verp_address(secret, address, "bounces.example.com") == id);
  CHECK(read_verp_address(secret, address, "BOUNCES.example.COM") == id);
  CHECK_FALSE(read_verp_address(secret, address, "other.example.com"));
  CHECK_FALSE(read_verp_address(secret, "x-" + address.substr(2), "bounces.example.com"));
  CHECK_FALSE(read_verp_address(secret, "postmaster@bounces.example.com", "bounces.example.com"));
  CHECK_FALSE(read_verp_address(secret, "no-at-sign", "bounces.example.com"));
}
