// SMTP wire details as plain code: reply parsing (multi-line, enhanced codes, garbage) and the
// DATA payload (dot-stuffing, line ending normalization against smuggling).
#include <catch2/catch.hpp>

#include "net/smtp_data.hpp"
#include "net/smtp_reply.hpp"

using namespace petrel;

namespace {
smtp_reply parse(const std::string& text) {
  smtp_reply r;
  std::string error;
  INFO(text);
  REQUIRE(parse_smtp_reply(text, r, error));
  return r;
}
std::string parse_error(const std::string& text) {
  smtp_reply r;
  std::string error;
  REQUIRE_FALSE(parse_smtp_reply(text, r, error));
  return error;
}
}  // namespace

TEST_CASE("single-line replies with and without enhanced codes") {
  auto ok = parse("250 2.1.5 Ok\r\n");
  CHECK(ok.code == 250);
  CHECK(ok.enhanced == "2.1.5");
  CHECK(ok.text() == "Ok");
  CHECK(ok.positive());
  auto plain = parse("451 Try later\r\n");
  CHECK(plain.enhanced.empty());
  CHECK(plain.text() == "Try later");
  CHECK(plain.transient());
  auto bare = parse("354\r\n");
  CHECK(bare.code == 354);
  CHECK(bare.text().empty());
  CHECK(parse("550 5.1.1 <x@y>: User unknown").to_string() == "550 5.1.1 <x@y>: User unknown");
}

TEST_CASE("multi-line replies keep every line") {
  auto r = parse("250-mx.example.com Hello\r\n250-PIPELINING\r\n250-SIZE 10240000\r\n250 SMTPUTF8\r\n");
  CHECK(r.code == 250);
  REQUIRE(r.lines.size() == 4);
  CHECK(r.lines[1] == "PIPELINING");
  CHECK(r.lines[3] == "SMTPUTF8");
  auto gmail = parse("421-4.7.0 Try again later, closing connection.\r\n421 4.7.0 For more information, go to\r\n");
  CHECK(gmail.enhanced == "4.7.0");
  CHECK(gmail.text() == "Try again later, closing connection. For more information, go to");
}

TEST_CASE("an enhanced code must match the reply class and shape") {
  CHECK(parse("250 5.1.1 odd").enhanced.empty());      // class differs from the reply
  CHECK(parse("550 5.1 short").enhanced.empty());
  CHECK(parse("550 5.1234.1 long").enhanced.empty());
  CHECK(parse("550 3.1.1 bad class").enhanced.empty());
  CHECK(parse("550 5.7.26 DMARC").enhanced == "5.7.26");
  std::string text = "4.2.2 mailbox full";
  CHECK(take_enhanced_code(text, 452) == "4.2.2");
  CHECK(text == "mailbox full");
}

TEST_CASE("garbage replies are errors, not guesses") {
  CHECK_THAT(parse_error("hello\r\n"), Catch::Contains("3-digit code"));
  CHECK_THAT(parse_error("25\r\n"), Catch::Contains("3-digit code"));
  CHECK_THAT(parse_error("999 nope\r\n"), Catch::Contains("out of range"));
  CHECK_THAT(parse_error("250-first\r\n251 second\r\n"), Catch::Contains("changes its code"));
  CHECK_THAT(parse_error("250_x\r\n"), Catch::Contains("space or hyphen"));
  CHECK_THAT(parse_error("250-only continuation\r\n"), Catch::Contains("without a last line"));
  CHECK_THAT(parse_error("250 a\x01z\r\n"), Catch::Contains("control character"));
  CHECK_THAT(parse_error("250 " + std::string(3000, 'x') + "\r\n"), Catch::Contains("2000 octets"));
  std::string many;
  for (int i = 0; i < 150; ++i) many += "250-line\r\n";
  CHECK_THAT(parse_error(many + "250 end\r\n"), Catch::Contains("100 lines"));
}

TEST_CASE("DATA is dot-stuffed and terminated") {
  CHECK(prepare_smtp_data("a\r\n.b\r\n..c\r\n.\r\n") == "a\r\n..b\r\n...c\r\n..\r\n.\r\n");
  CHECK(prepare_smtp_data(".first line") == "..first line\r\n.\r\n");
  CHECK(prepare_smtp_data("") == ".\r\n");
  CHECK(prepare_smtp_data("no final break") == "no final break\r\n.\r\n");
  CHECK(prepare_smtp_data("x\r\n") == "x\r\n.\r\n");
}

TEST_CASE("bare CR and bare LF never reach the wire (no SMTP smuggling)") {
  // The classic smuggling payloads: "\n.\n", "\n.\r\n", "\r.\r" must not end the data early.
  auto out = prepare_smtp_data("a\n.\nMAIL FROM:<x>\r\nb\n.\r\nc\r.\rd");
  CHECK(out == "a\r\n..\r\nMAIL FROM:<x>\r\nb\r\n..\r\nc\r\n..\r\nd\r\n.\r\n");
  for (std::size_t i = 0; i < out.size(); ++i) {
    if (out[i] == '\n') REQUIRE(out[i - 1] == '\r');
    if (out[i] == '\r') REQUIRE(out[i + 1] == '\n');
  }
  // Exactly one terminator, at the end.
  CHECK(out.find("\r\n.\r\n") == out.size() - 5);
}

TEST_CASE("8-bit content is detected") {
  CHECK_FALSE(has_8bit("plain ascii"));
  CHECK(has_8bit("caf\xC3\xA9"));
}
