// Address parsing: RFC 5321 mailboxes, display names, IDN domains and the limits.
#include <catch2/catch.hpp>

#include "net/mail/email_address.hpp"

using namespace petrel;

TEST_CASE("plain addresses parse and the domain is lower-cased") {
  auto a = parse_address("John.Smith+tag@Example.COM");
  REQUIRE(a);
  CHECK(a->local_part == "John.Smith+tag");
  CHECK(a->domain == "example.com");
  CHECK(a->ascii_domain == "example.com");
  CHECK(a->address() == "John.Smith+tag@example.com");
  CHECK_FALSE(a->needs_smtputf8());
}

TEST_CASE("display-name forms parse") {
  auto a = parse_mailbox("Jane Doe <jane@example.org>");
  REQUIRE(a);
  CHECK(a->display_name == "Jane Doe");
  CHECK(a->address() == "jane@example.org");
  auto q = parse_mailbox("\"Doe, Jane \\\"JD\\\"\" <jane@example.org>");
  REQUIRE(q);
  CHECK(q->display_name == "Doe, Jane \"JD\"");
  auto bare = parse_mailbox("  <jane@example.org> ");
  REQUIRE(bare);
  CHECK(bare->display_name.empty());
}

TEST_CASE("quoted local parts are accepted") {
  auto a = parse_address("\"john smith\"@example.com");
  REQUIRE(a);
  CHECK(a->local_part == "\"john smith\"");
  auto at = parse_address("\"a@b\"@example.com");
  REQUIRE(at);
  CHECK(at->domain == "example.com");
}

TEST_CASE("internationalized domains become A-labels; UTF-8 local parts need SMTPUTF8") {
  auto a = parse_address("info@bücher.example");
  REQUIRE(a);
  CHECK(a->domain == "bücher.example");
  CHECK(a->ascii_domain == "xn--bcher-kva.example");
  CHECK(a->envelope_address() == "info@xn--bcher-kva.example");
  auto u = parse_address("用户@example.com");
  REQUIRE(u);
  CHECK(u->needs_smtputf8());
}

TEST_CASE("address literals are accepted when valid") {
  CHECK(parse_address("postmaster@[192.0.2.1]"));
  CHECK(parse_address("postmaster@[IPv6:2001:db8::1]"));
  CHECK_FALSE(parse_address("postmaster@[300.1.1.1]"));
  CHECK_FALSE(parse_address("postmaster@[IPv6:zz::1]"));
}

TEST_CASE("malformed addresses are rejected with a reason") {
  struct example {
    const char* text;
    const char* reason;
  };
  for (auto [text, reason] : std::initializer_list<example>{
           {"", "empty"},
           {"no-at-sign", "has no @"},
           {"@example.com", "local part (before @) is empty"},
           {"a..b@example.com", "two dots"},
           {".a@example.com", "starts or ends with a dot"},
           {"a b@example.com", "needs quoting"},
           {"a@localhost", "has no dot"},
           {"a@-bad.example", "hyphen"},
           {"a@bad_domain.example", "invalid character"},
           {"a@example..com", "empty label"},
           {"a@example.123", "numeric"},
           {"a\r\nbcc@example.com", "control characters"},
           {"\"unterminated@example.com", "quoted"},
       }) {
    INFO(text);
    auto r = parse_address(text);
    REQUIRE_FALSE(r);
    CHECK_THAT(r.error(), Catch::Contains(reason));
  }
}

TEST_CASE("length limits of RFC 5321 hold") {
  std::string local(64, 'a');
  CHECK(parse_address(local + "@example.com"));
  CHECK_FALSE(parse_address(local + "a@example.com"));
  std::string label(63, 'b');
  CHECK(parse_address("a@" + label + ".com"));
  CHECK_FALSE(parse_address("a@" + label + "b.com"));
  std::string long_domain;
  for (int i = 0; i < 5; ++i) long_domain += std::string(50, 'c') + ".";
  long_domain += "com";
  CHECK_FALSE(parse_address("a@" + long_domain));
}

TEST_CASE("display names refuse control characters and invalid UTF-8") {
  CHECK(check_display_name("Zoë Ångström"));
  CHECK_FALSE(check_display_name("Evil\r\nBcc: x@y.z"));
  CHECK_FALSE(check_display_name(std::string("bad \xC3\x28 utf8")));
  CHECK_FALSE(check_display_name(std::string(300, 'n')));
  CHECK_FALSE(parse_mailbox("Evil\nName <a@example.com>"));
}

TEST_CASE("the UTF-8 check rejects overlong forms, surrogates and truncation") {
  CHECK(is_clean_utf8("plain ascii\twith tab"));
  CHECK(is_clean_utf8("€ and 😀"));
  CHECK_FALSE(is_clean_utf8("tab\t", false));
  CHECK_FALSE(is_clean_utf8(std::string("\xC0\xAF")));          // overlong '/'
  CHECK_FALSE(is_clean_utf8(std::string("\xED\xA0\x80")));      // surrogate
  CHECK_FALSE(is_clean_utf8(std::string("\xE2\x82")));          // truncated
  CHECK_FALSE(is_clean_utf8(std::string("\xF4\x90\x80\x80")));  // past U+10FFFF
  CHECK_FALSE(is_clean_utf8(std::string("\x7F")));
}

TEST_CASE("one mailbox has one canonical spelling: quotes, escapes, domain case and U-labels") {
  auto canonical = [](const char* text) {
    auto c = canonical_address(text);
    REQUIRE(c);
    return c.value();
  };
  CHECK(canonical("\"victim\"@Example.NET") == "victim@example.net");
  CHECK(canonical("victim@example.net") == "victim@example.net");
  CHECK(canonical("\"first.last\"@example.net") == "first.last@example.net");
  CHECK(canonical("\"a\\b\"@example.net") == "ab@example.net");  // a quoted-pair is its character
  // Content that needs quoting stays quoted, with only the escapes it needs.
  CHECK(canonical("\"john smith\"@example.net") == "\"john smith\"@example.net");
  CHECK(canonical("\"a\\ b\"@example.net") == "\"a b\"@example.net");
  CHECK(canonical("\"a..b\"@example.net") == "\"a..b\"@example.net");
  CHECK(canonical("\"a\\\"b\"@example.net") == "\"a\\\"b\"@example.net");
  // The domain in its A-label form; a UTS #46 ignored character (U+200B) disappears.
  CHECK(canonical("User@Bücher.Example") == "User@xn--bcher-kva.example");
  CHECK(canonical("user@bücher.example\xE2\x80\x8B") == "user@xn--bcher-kva.example");
  // The local part keeps its case (RFC 5321 2.4) and its UTF-8 (it needs SMTPUTF8).
  CHECK(canonical("Jürgen@example.net") == "Jürgen@example.net");
  CHECK_FALSE(canonical_address("nobody"));
}

TEST_CASE("internationalized domains that IDNA 2008 does not allow are refused") {
  for (const char* bad : {"a@\xE2\x99\xA5.example",            // U+2665 BLACK HEART SUIT
                          "a@xn--zz.example",                   // not valid Punycode
                          "a@b\xC3\xBC\xE2\x80\x8D" "cher.example"})  // U+200D outside its context
    CHECK_FALSE(parse_address(bad));
}

TEST_CASE("clean UTF-8: a control character or DEL is found at any offset, line breaks only when allowed") {
  const std::string base = "The quick brown fox jumps over the lazy dog, and Zoë reads.";
  REQUIRE(is_clean_utf8(base));
  for (std::size_t at = 0; at < base.size(); ++at) {
    for (char bad : {'\x00', '\x01', '\x1f', '\x7f', '\r', '\n'}) {
      auto s = base;
      if ((static_cast<unsigned char>(s[at]) & 0xC0) == 0x80 || static_cast<unsigned char>(s[at]) >= 0x80)
        continue;  // keep the UTF-8 sequence whole
      s[at] = bad;
      INFO("offset " << at << " octet " << static_cast<int>(bad));
      CHECK_FALSE(is_clean_utf8(s));
      CHECK(is_clean_utf8(s, true, true) == (bad == '\r' || bad == '\n'));
    }
  }
  CHECK(is_clean_utf8("tab\there"));
  CHECK_FALSE(is_clean_utf8("tab\there", false));
  // A broken sequence after a long ASCII run (the eight-octet path) is still refused.
  CHECK_FALSE(is_clean_utf8(std::string(64, 'a') + "\xC3"));
  CHECK_FALSE(is_clean_utf8(std::string(64, 'a') + "\xC0\xAF"));
  CHECK(is_clean_utf8(std::string(64, 'a') + "\xC3\xA9" + std::string(17, 'b')));
}
