// Connections per client address, and the trusted networks exempt from the limit.
#include <catch2/catch.hpp>

#include <stdexcept>

#include "net/client_limiter.hpp"
#include "net/ip_policy.hpp"

using namespace petrel;

TEST_CASE("client limiter: one address holds at most its share; others are unaffected") {
  client_limiter limiter(2, {});
  CHECK(limiter.acquire("192.0.2.1"));
  CHECK(limiter.acquire("192.0.2.1"));
  CHECK_FALSE(limiter.acquire("192.0.2.1"));
  CHECK(limiter.acquire("192.0.2.2"));
  limiter.release("192.0.2.1");
  CHECK(limiter.acquire("192.0.2.1"));
  CHECK_FALSE(limiter.acquire("192.0.2.1"));
}

TEST_CASE("client limiter: trusted addresses and networks are exempt; 0 means no limit") {
  client_limiter limiter(1, {"10.0.0.0/8", "2001:db8::/32", "127.0.0.5"});
  for (int i = 0; i < 5; ++i) {
    CHECK(limiter.acquire("10.1.2.3"));
    CHECK(limiter.acquire("2001:db8::7"));
    CHECK(limiter.acquire("127.0.0.5"));
  }
  CHECK(limiter.acquire("127.0.0.6"));
  CHECK_FALSE(limiter.acquire("127.0.0.6"));
  CHECK(limiter.acquire("11.0.0.1"));
  CHECK_FALSE(limiter.acquire("11.0.0.1"));
  client_limiter unlimited(0, {});
  for (int i = 0; i < 5; ++i) CHECK(unlimited.acquire("192.0.2.9"));
  CHECK_THROWS_AS(client_limiter(1, {"10.0.0.0/33"}), std::invalid_argument);
  CHECK_THROWS_AS(client_limiter(1, {"not-an-address"}), std::invalid_argument);
}

TEST_CASE("ip networks: prefixes match bit by bit, IPv4 inside IPv6 mapped") {
  ip_network n;
  std::string error;
  REQUIRE(parse_ip_network("172.16.0.0/12", n, error));
  std::array<std::uint8_t, 16> a;
  REQUIRE(parse_ip_address("172.31.255.255", a));
  CHECK(n.contains(a));
  REQUIRE(parse_ip_address("172.32.0.1", a));
  CHECK_FALSE(n.contains(a));
  REQUIRE(parse_ip_address("::ffff:172.20.0.1", a));
  CHECK(n.contains(a));
  CHECK_FALSE(parse_ip_network("172.16.0.0/x", n, error));
  CHECK_THAT(error, Catch::Contains("prefix"));
}

TEST_CASE("numeric host forms other than strict literals are recognized") {
  for (const char* numeric : {"2130706433", "0x7f000001", "127.1", "127.0.1", "0177.0.0.1", "1.0x7f", "host.123"})
    CHECK(is_numeric_host_form(numeric));
  for (const char* name : {"127.0.0.1", "::1", "example.com", "1password.example", "0x.example", "a.b-1", ""})
    CHECK_FALSE(is_numeric_host_form(name));
}
