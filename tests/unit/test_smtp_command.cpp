// The command side of Petrel's SMTP listeners as plain code (net/smtp_command.hpp): verbs,
// MAIL and RCPT paths and parameters, AUTH, and the content after DATA.
#include <catch2/catch.hpp>

#include <limits>

#include "net/smtp_command.hpp"

using namespace petrel;

TEST_CASE("command lines: the verb in any case, the arguments as sent") {
  auto c = parse_smtp_command("mAiL FROM:<a@b.example> SIZE=10\r\n");
  CHECK(c.verb == smtp_verb::mail);
  CHECK(c.args == "FROM:<a@b.example> SIZE=10");
  CHECK(parse_smtp_command("QUIT\n").verb == smtp_verb::quit);
  CHECK(parse_smtp_command("QUIT").args.empty());
  CHECK(parse_smtp_command("EXPN list").verb == smtp_verb::unknown);
  CHECK(parse_smtp_command("").verb == smtp_verb::unknown);
  CHECK(parse_smtp_command("MAILX FROM:<>").verb == smtp_verb::unknown);
}

TEST_CASE("MAIL and RCPT paths") {
  auto p = parse_smtp_path("FROM:<a@b.example> SIZE=10 BODY=8BITMIME", "from:");
  REQUIRE(p);
  CHECK(p->address == "a@b.example");
  CHECK(p->params == " SIZE=10 BODY=8BITMIME");
  CHECK(parse_smtp_path("from: <a@b.example>", "from:")->address == "a@b.example");
  CHECK(parse_smtp_path("FROM:<>", "from:")->address.empty());  // the null reverse-path
  // A source route is accepted and dropped (RFC 5321 appendix C).
  CHECK(parse_smtp_path("TO:<@relay.example,@other.example:user@c.example>", "to:")->address == "user@c.example");
  CHECK_FALSE(parse_smtp_path("TO:<@relay.example>", "to:"));
  CHECK_FALSE(parse_smtp_path("FROM:a@b.example", "from:"));
  CHECK_FALSE(parse_smtp_path("FROM:<a@b.example", "from:"));
  CHECK_FALSE(parse_smtp_path("TO:<a@b.example>", "from:"));
  CHECK_FALSE(parse_smtp_path("FROM:x<a@b.example>", "from:"));
  CHECK_FALSE(parse_smtp_path("FROM:<a b@c.example>", "from:"));
  CHECK_FALSE(parse_smtp_path(std::string("FROM:<a\0b@c.example>", 20), "from:"));
  CHECK_FALSE(parse_smtp_path("FROM:<a\x7f@c.example>", "from:"));
  CHECK_FALSE(parse_smtp_path("FR", "from:"));
}

TEST_CASE("SIZE is a parameter of its own, and saturates") {
  CHECK(smtp_declared_size(" SIZE=1200 BODY=8BITMIME") == 1200u);
  CHECK(smtp_declared_size(" body=8bitmime size=7") == 7u);
  CHECK_FALSE(smtp_declared_size(" BODY=8BITMIME"));
  CHECK_FALSE(smtp_declared_size(" ORCPT=rfc822;size=5"));  // not the SIZE keyword
  CHECK(smtp_declared_size(" SIZE=") == 0u);
  CHECK(smtp_declared_size(" SIZE=12x") == 0u);
  CHECK(smtp_declared_size(" SIZE=99999999999999999999999") == std::numeric_limits<std::uint64_t>::max());
}

TEST_CASE("AUTH and SASL PLAIN") {
  auto a = parse_smtp_auth("PLAIN AHVzZXIAcGFzcw==");
  CHECK(a.mechanism == "plain");
  CHECK(a.initial == "AHVzZXIAcGFzcw==");
  CHECK(parse_smtp_auth("LOGIN").initial.empty());
  auto c = parse_sasl_plain(std::string("\0user\0pass", 10));
  REQUIRE(c);
  CHECK(c->user == "user");
  CHECK(c->password == "pass");
  CHECK(parse_sasl_plain(std::string("admin\0user\0p\0ss", 15))->password == std::string("p\0ss", 4));
  CHECK_FALSE(parse_sasl_plain("userpass"));
  CHECK_FALSE(parse_sasl_plain(std::string("\0userpass", 9)));
}

TEST_CASE("DATA content: only CRLF.CRLF ends it, dots unstuffed, bare LF made CRLF") {
  smtp_data_reader r(1000);
  CHECK_FALSE(r.line("Subject: x\r\n"));
  CHECK_FALSE(r.line("\r\n"));
  CHECK_FALSE(r.line("..starts with a dot\r\n"));
  CHECK_FALSE(r.line(".\n"));  // a bare-LF dot does not end the message (no smuggling)
  CHECK_FALSE(r.line("bare\n"));
  CHECK(r.line(".\r\n"));
  CHECK_FALSE(r.too_big());
  CHECK(r.take() == "Subject: x\r\n\r\n.starts with a dot\r\n\r\nbare\r\n");
}

TEST_CASE("DATA content past the limit is refused and not kept") {
  smtp_data_reader r(10);
  CHECK_FALSE(r.line("12345\r\n"));
  CHECK_FALSE(r.line("67890\r\n"));
  CHECK_FALSE(r.line("more\r\n"));
  CHECK(r.line(".\r\n"));
  CHECK(r.too_big());
  CHECK(r.take().empty());
  // A bare LF made CRLF counts its extra octet (found by fuzz_smtp_command).
  smtp_data_reader exact(10);
  CHECK_FALSE(exact.line("12345678\n"));
  CHECK(exact.line(".\r\n"));
  CHECK_FALSE(exact.too_big());
  CHECK(exact.take() == "12345678\r\n");
  smtp_data_reader one_over(10);
  CHECK_FALSE(one_over.line("123456789\n"));
  CHECK(one_over.line(".\r\n"));
  CHECK(one_over.too_big());
  smtp_data_reader long_line(1000);
  long_line.overlong_line();
  CHECK(long_line.line(".\r\n"));
  CHECK(long_line.too_big());
}
