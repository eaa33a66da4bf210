// MTA-STS (RFC 8461) parsing and MX pattern matching.
#include <catch2/catch.hpp>

#include "net/mail/mta_sts.hpp"

using namespace petrel;

TEST_CASE("MTA-STS TXT records give their id") {
  CHECK(parse_mta_sts_record("v=STSv1; id=20160831085700Z;").value() == "20160831085700Z");
  CHECK(parse_mta_sts_record("v=STSv1;id=abc").value() == "abc");
  CHECK_FALSE(parse_mta_sts_record("id=abc; v=STSv1"));  // v must come first
  CHECK_FALSE(parse_mta_sts_record("v=STSv2; id=abc"));
  CHECK_FALSE(parse_mta_sts_record("v=STSv1"));
  CHECK_FALSE(parse_mta_sts_record("v=STSv1; id=not-alnum!"));
}

TEST_CASE("MTA-STS policies parse, with their limits") {
  auto p = parse_mta_sts_policy("version: STSv1\r\nmode: enforce\r\nmx: mail.example.com\r\nmx: *.example.net\r\nmax_age: 604800\r\n");
  REQUIRE(p);
  CHECK(p->mode == "enforce");
  CHECK(p->mx == std::vector<std::string>{"mail.example.com", "*.example.net"});
  CHECK(p->max_age == 604800);
  CHECK(parse_mta_sts_policy("version: STSv1\nmode: testing\nmx: a.b\nmax_age: 99999999999\n")->max_age == 31557600);
  CHECK_FALSE(parse_mta_sts_policy("version: STSv1\nmode: enforce\nmax_age: 10\n"));      // no mx
  CHECK_FALSE(parse_mta_sts_policy("version: STSv1\nmode: sometimes\nmx: a.b\nmax_age: 10\n"));
  CHECK_FALSE(parse_mta_sts_policy("mode: enforce\nmx: a.b\nmax_age: 10\n"));             // no version
  CHECK_FALSE(parse_mta_sts_policy("version: STSv1\nmode: enforce\nmx: a.b\n"));          // no max_age
  CHECK_FALSE(parse_mta_sts_policy("<html>not a policy</html>"));
  CHECK(parse_mta_sts_policy("version: STSv1\nmode: none\nmax_age: 10\n"));
}

TEST_CASE("MTA-STS MX patterns match exactly or one leftmost label") {
  CHECK(mta_sts_mx_matches("mail.example.com", "MAIL.example.com."));
  CHECK_FALSE(mta_sts_mx_matches("mail.example.com", "mail2.example.com"));
  CHECK(mta_sts_mx_matches("*.example.net", "mx1.example.net"));
  CHECK_FALSE(mta_sts_mx_matches("*.example.net", "a.b.example.net"));  // one label only
  CHECK_FALSE(mta_sts_mx_matches("*.example.net", "example.net"));
  CHECK(mta_sts_any_matches({"x.test", "*.example.net"}, "mx.example.net"));
  CHECK_FALSE(mta_sts_any_matches({}, "mx.example.net"));
}
