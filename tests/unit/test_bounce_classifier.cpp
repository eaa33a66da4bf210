// The bounce classifier: real-world reply texts against the shipped rules, the built-in fallback
// by RFC 3463 code, rule order, provider globs, and refusal of bad rules and rule files.
#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include "config/bounce_rules.hpp"
#include "net/mail/bounce.hpp"
#include "shipped_bounce_rules.hpp"
#include "net/mail/bounce_reading.hpp"

using namespace petrel;

namespace {

const bounce_classifier& shipped() { return testing::shipped_classifier(); }

// "550 5.1.1 text" as a reply: code, enhanced code (when there is one) and text.
classification reply(int code, std::string enhanced, std::string text, std::string provider = {},
                     std::string command = {}) {
  return shipped().classify(code, enhanced, text, provider, command);
}

bounce_rule rule(std::string category, std::string pattern = {}, int reply_code = 0,
                 std::string enhanced = {}, std::string provider = {}, std::string hardness = {}) {
  bounce_rule r;
  r.category = std::move(category);
  r.pattern = std::move(pattern);
  r.reply_code = reply_code;
  r.enhanced = std::move(enhanced);
  r.provider = std::move(provider);
  r.hardness = std::move(hardness);
  return r;
}

}  // namespace

TEST_CASE("category names round-trip", "[bounce][classifier]") {
  for (auto name : bounce_category_names) {
    auto category = parse_bounce_category(name);
    REQUIRE(category);
    CHECK(to_string(*category) == name);
  }
  CHECK_FALSE(parse_bounce_category("user_unknown"));
  CHECK(to_string(bounce_category::invalid_recipient) == "invalid_recipient");
}

TEST_CASE("the shipped rules file loads", "[bounce][classifier]") {
  auto rules = load_bounce_rules(std::string(PETREL_SOURCE_DIR) + "/config/bounce_rules.toml");
  INFO((rules ? "" : rules.error()));
  REQUIRE(rules);
  CHECK(rules->size() > 40);
  CHECK(shipped().size() == rules->size());
  // Every shipped rule says why it is there (which mail system says what it matches).
  for (std::size_t i = 0; i < rules->size(); ++i) {
    INFO("rule " << i << ": " << rules->at(i).pattern);
    CHECK_FALSE(rules->at(i).comment.empty());
  }
}

TEST_CASE("unknown recipients are hard on strong evidence only", "[bounce][classifier]") {
  auto gmail = reply(550, "5.1.1", "The email account that you tried to reach does not exist. Please try double-checking the recipient's email address for typos");
  CHECK(gmail.category == bounce_category::invalid_recipient);
  CHECK(gmail.hard);
  CHECK(gmail.enhanced == "5.1.1");
  CHECK(gmail.reason == "userunknown");
  CHECK(gmail.rule >= 0);

  const std::vector<const char*> phrases = {
      "<kijitora@example.jp>: Recipient address rejected: User unknown in local recipient table",
      "no such user here", "RCPT TO:<neko@example.org> does not exist",
      "Message was not accepted -- invalid mailbox.  Local mailbox x@mail.ru is unavailable: user not found",
      "No such user!", "User unknown"};
  SECTION("the reply answered RCPT TO") {
    for (const char* text : phrases) {
      INFO(text);
      auto verdict = reply(550, "", text, "", "RCPT");
      CHECK(verdict.category == bounce_category::invalid_recipient);
      CHECK(verdict.hard);
      CHECK(verdict.reason == "userunknown");
    }
  }
  SECTION("an address status (5.1.1, 5.1.0, 5.1.3, 5.1.6)") {
    for (const char* status : {"5.1.1", "5.1.0", "5.1.3"}) {
      INFO(status);
      auto verdict = reply(550, status, "User unknown");
      CHECK(verdict.category == bounce_category::invalid_recipient);
      CHECK(verdict.hard);
    }
    auto moved = reply(550, "5.1.6", "Mailbox has moved");
    CHECK(moved.hard);
    CHECK(moved.reason == "hasmoved");
    auto bare = reply(550, "5.1.1", "");  // no rule: the code alone
    CHECK(bare.rule == -1);
    CHECK(bare.category == bounce_category::invalid_recipient);
    CHECK(bare.hard);
  }
  SECTION("a phrase alone is soft: content filters say it too") {
    for (const char* text : phrases) {
      INFO(text);
      auto verdict = reply(550, "", text);
      CHECK(verdict.category == bounce_category::invalid_recipient);
      CHECK_FALSE(verdict.hard);
      CHECK(verdict.reason == "filtered");
      CHECK_FALSE(reply(550, "5.0.0", text).hard);  // "other or undefined" adds nothing
    }
  }
  SECTION("a mail system's own unambiguous text, or a reply naming the refused address") {
    for (const char* text : {"5.1.1 RESOLVER.ADR.RecipNotFound; not found", "Sorry, no mailbox here by that name. (#5.1.1)",
                             "The recipient name is not recognized", "550 <kijitora@example.jp>: User unknown",
                             "550 Unknown user kijitora@example.co.jp", "kijitora@example.org... No such user",
                             "Unknown user: kijitora@example.com",
                             "** Address not found ** Your message wasn't delivered to a@example.it because the address couldn't be found.",
                             "Requested action not taken: mailbox unavailable (-1234567:890:-12)"}) {
      INFO(text);
      auto verdict = reply(550, "", text);
      CHECK(verdict.category == bounce_category::invalid_recipient);
      CHECK(verdict.hard);
    }
  }
  SECTION("never hard after DATA, at MAIL FROM, or transient") {
    for (const char* text : {"550 <kijitora@example.jp>: User unknown", "User unknown"}) {
      INFO(text);
      CHECK_FALSE(reply(550, "5.1.1", text, "", "DATA").hard);
      CHECK_FALSE(reply(550, "", text, "", "MAIL").hard);
      auto transient = reply(450, "4.1.1", text, "", "RCPT");
      CHECK(transient.category == bounce_category::invalid_recipient);
      CHECK_FALSE(transient.hard);
      CHECK_FALSE(reply(0, "4.1.1", text).hard);  // a 4.x.x status without a reply code
    }
  }
  SECTION("signals that disagree make it soft") {
    // The status says policy, the text says unknown recipient.
    CHECK_FALSE(reply(553, "5.7.1", "Invalid recipient kijitora@example.org (Mode: normal)", "", "RCPT").hard);
    // A relay's summary status over the remote's own reply.
    CHECK_FALSE(reply(550, "5.1.0", "5.1.0 - Unknown address error 550-'5.7.1 <x@example.com>... Access denied'").hard);
    CHECK_FALSE(reply(552, "5.2.2", "<a@example.jp>... User unknown", "", "RCPT").hard);
    // X.2.1 (mailbox disabled) with "User Unknown" is how several MTAs refuse unknown users.
    CHECK(reply(550, "5.2.1", "<kijitora@example.jp>... User Unknown", "", "RCPT").hard);
  }
  SECTION("a rule's own hardness is still never hard for a transient reply") {
    bounce_classifier c({rule("spam_block", "listed", 0, "", "", "hard")});
    CHECK(c.classify(550, "", "listed at example").hard);
    CHECK_FALSE(c.classify(450, "", "listed at example").hard);
  }
}

TEST_CASE("a disabled or locked account is not hard; a closed one at RCPT is", "[bounce][classifier]") {
  for (const char* text : {"The email account that you tried to reach is disabled.",
                           "This account has been disabled or discontinued [#102].",
                           "vdelivermail: account is locked email bounced", "550 Mailbox is frozen.",
                           "The user(s) account is disabled.", "Recipient rejected: temporarily inactive",
                           "this mailbox is disabled (554.30)"}) {
    INFO(text);
    auto verdict = reply(550, "5.2.1", text, "", "RCPT");
    CHECK(verdict.category == bounce_category::invalid_recipient);
    CHECK_FALSE(verdict.hard);
    CHECK(verdict.reason == "suspend");
  }
  auto closed = reply(550, "", "The account has been closed", "", "RCPT");
  CHECK(closed.category == bounce_category::invalid_recipient);
  CHECK(closed.hard);
}

TEST_CASE("bounce_reason speaks Sisimai's vocabulary", "[bounce][classifier]") {
  struct example {
    int code;
    const char* enhanced;
    const char* text;
    const char* reason;
    bool hard;
  };
  for (const auto& e : std::vector<example>{
           {552, "5.2.2", "Mailbox full", "mailboxfull", false},
           {550, "5.7.1", "Service unavailable; Client host [192.0.2.1] blocked using zen.spamhaus.org", "blocked", false},
           {550, "5.7.1", "Message rejected as spam by Content Filtering", "spamdetected", false},
           {554, "5.7.1", "<a@example.net>: Relay access denied", "norelaying", false},
           {553, "5.1.8", "<s@example.org>: Sender address rejected: Domain not found", "rejected", false},
           {550, "5.1.2", "Host or domain name not found. Name service error for name=example.invalid type=A: Host not found", "hostunknown", true},
           {556, "5.1.10", "Recipient address has null MX", "notaccept", true},
           {552, "5.3.4", "Message size exceeds fixed maximum message size", "mesgtoobig", false},
           {421, "4.7.0", "Too many connections from your IP", "toomanyconn", false},
           {554, "5.7.1", "Virus found: Eicar-Test-Signature", "virusdetected", false},
           {0, "", "retry timeout exceeded", "expired", false},
           {0, "", "Connection timed out", "networkerror", false},
           {550, "5.7.26", "Unauthenticated email from example.com is not accepted due to domain's DMARC policy", "securityerror", false},
           {550, "", "Something else went wrong", "onhold", false},
       }) {
    INFO(e.code << " " << e.enhanced << " " << e.text);
    auto verdict = reply(e.code, e.enhanced, e.text, "", "RCPT");
    CHECK(verdict.reason == e.reason);
    CHECK(verdict.hard == e.hard);
  }
  CHECK(reply(250, "2.0.0", "OK").reason.empty());
}

TEST_CASE("spam blocks and policy rejections are never invalid_recipient", "[bounce][classifier]") {
  struct example {
    int code;
    const char* enhanced;
    const char* text;
    bounce_category expected;
  };
  const std::vector<example> examples = {
      {550, "5.7.1", "Service unavailable, Client host [192.0.2.1] blocked using Spamhaus. To request removal from this list see https://www.spamhaus.org/query/ip/192.0.2.1", bounce_category::spam_block},
      {550, "5.7.1", "Our system has detected that this message is likely unsolicited mail.", bounce_category::spam_block},
      {550, "5.7.1", "Unfortunately, messages from [192.0.2.1] weren't sent. Please contact your Internet service provider since part of their network is on our block list (S3150).", bounce_category::spam_block},
      {553, "5.7.1", "[BL21] Connections will not be accepted from 192.0.2.1, because the ip is in Spamhaus's list", bounce_category::spam_block},
      {554, "5.7.1", "Requested action not taken: mailbox unavailable (blocked)", bounce_category::policy},
      {550, "", "Requested action not taken: mailbox unavailable", bounce_category::other},
      {554, "5.7.9", "Message not accepted for policy reasons. See https://postmaster.yahooinc.com/error-codes", bounce_category::policy},
      {554, "5.7.1", "<x@example.com>: Relay access denied", bounce_category::policy},
      {550, "5.7.1", "Access denied", bounce_category::policy},
      {550, "5.1.8", "<root@host.example.com>... Domain of sender address root@host.example.com does not exist", bounce_category::policy},
      {550, "5.1.7", "No such domain example.com.", bounce_category::policy},
      {550, "5.1.1", "RCP-P2 http://postmaster.facebook.com/response_codes#rcp Refused due to recipient preferences", bounce_category::policy},
  };
  for (const auto& e : examples) {
    INFO(e.code << " " << e.enhanced << " " << e.text);
    auto verdict = reply(e.code, e.enhanced, e.text);
    CHECK(verdict.category == e.expected);
    CHECK(verdict.category != bounce_category::invalid_recipient);
    CHECK_FALSE(verdict.hard);
  }
}

TEST_CASE("each category is recognized from real reply texts", "[bounce][classifier]") {
  struct example {
    int code;
    const char* enhanced;
    const char* text;
    bounce_category expected;
    bool hard;
  };
  const std::vector<example> examples = {
      {550, "5.1.2", "Host or domain name not found. Name service error for name=example.invalid type=A: Host not found", bounce_category::bad_domain, true},
      {0, "", "Unrouteable address", bounce_category::bad_domain, true},
      {556, "5.1.10", "Recipient address has null MX", bounce_category::bad_domain, true},
      {452, "4.2.2", "The email account that you tried to reach is over quota.", bounce_category::mailbox_full, false},
      {552, "5.2.2", "<x@example.com>: user is over quota", bounce_category::mailbox_full, false},
      {452, "4.2.2", "Mailbox full / quota exceeded", bounce_category::mailbox_full, false},
      {552, "5.3.4", "Message size exceeds fixed maximum message size", bounce_category::message_too_big, false},
      {550, "5.7.26", "This message does not pass authentication checks (SPF and DKIM both do not pass).", bounce_category::auth_failure, false},
      {550, "5.7.26", "Unauthenticated email from example.jp is not accepted due to domain's DMARC policy.", bounce_category::auth_failure, false},
      {550, "5.7.25", "The IP address sending this message does not have a PTR record setup", bounce_category::auth_failure, false},
      {421, "4.7.28", "Our system has detected an unusual rate of unsolicited mail originating from your IP address.", bounce_category::rate_limited, false},
      {421, "4.7.0", "[TSS04] Messages from 192.0.2.1 temporarily deferred due to unexpected volume or user complaints", bounce_category::rate_limited, false},
      {421, "", "Too many connections from your IP", bounce_category::rate_limited, false},
      {550, "", "Ip frequency limited", bounce_category::rate_limited, false},
      {451, "4.7.1", "Greylisted, please try again later", bounce_category::policy, false},
      {552, "5.7.0", "This message was blocked because its content presents a potential security issue.", bounce_category::content, false},
      {554, "5.6.0", "Message rejected: virus found (Eicar-Test-Signature)", bounce_category::content, false},
      {0, "", "retry timeout exceeded", bounce_category::expired, false},
      {0, "", "I'm not going to try again; this message has been in the queue too long.", bounce_category::expired, false},
      {0, "", "connect to mx.example.com[192.0.2.1]:25: Connection refused", bounce_category::network, false},
      {0, "", "conversation with mx.example.com[192.0.2.1] timed out while receiving the initial server greeting", bounce_category::network, false},
      {0, "", "Network is unreachable", bounce_category::network, false},
  };
  for (const auto& e : examples) {
    INFO(e.code << " " << e.enhanced << " " << e.text);
    auto verdict = reply(e.code, e.enhanced, e.text);
    CHECK(to_string(verdict.category) == to_string(e.expected));
    CHECK(verdict.hard == e.hard);
  }
}

TEST_CASE("without a matching rule the enhanced code decides", "[bounce][classifier]") {
  bounce_classifier none({});
  auto check = [&](int code, const char* enhanced, bounce_category expected, bool hard) {
    INFO(code << " " << enhanced);
    auto verdict = none.classify(code, enhanced, "text no rule knows");
    CHECK(verdict.rule == -1);
    CHECK(to_string(verdict.category) == to_string(expected));
    CHECK(verdict.hard == hard);
  };
  check(550, "5.1.1", bounce_category::invalid_recipient, true);
  check(550, "5.1.0", bounce_category::invalid_recipient, true);
  check(550, "5.1.10", bounce_category::bad_domain, true);
  check(550, "5.1.2", bounce_category::bad_domain, true);
  check(550, "5.4.4", bounce_category::bad_domain, true);
  check(450, "4.1.1", bounce_category::invalid_recipient, false);  // transient: never hard alone
  check(552, "5.2.2", bounce_category::mailbox_full, false);
  check(552, "5.3.4", bounce_category::message_too_big, false);
  check(552, "5.2.3", bounce_category::message_too_big, false);
  check(421, "4.4.7", bounce_category::expired, false);
  check(421, "4.4.1", bounce_category::network, false);
  check(550, "5.7.1", bounce_category::policy, false);
  check(550, "5.7.26", bounce_category::auth_failure, false);
  check(550, "5.7.27", bounce_category::auth_failure, false);
  check(550, "5.6.1", bounce_category::content, false);
  check(550, "5.5.0", bounce_category::other, false);
  check(554, "5.0.0", bounce_category::other, false);
  check(550, "", bounce_category::other, false);
  check(0, "", bounce_category::other, false);
}

TEST_CASE("a success is category none", "[bounce][classifier]") {
  auto verdict = reply(250, "2.0.0", "OK queued as 12345");
  CHECK(verdict.category == bounce_category::none);
  CHECK_FALSE(verdict.hard);
  CHECK(reply(0, "2.6.0", "Message received").category == bounce_category::none);
}

TEST_CASE("the enhanced code is taken from the text or inferred", "[bounce][classifier]") {
  CHECK(reply(550, "", "5.1.1 <x@example.com>: Recipient address rejected: User unknown").enhanced == "5.1.1");
  CHECK(reply(0, "", "Sorry, no mailbox here by that name. (#5.1.1)").enhanced == "5.1.1");
  CHECK(reply(550, "", "User unknown").enhanced == "5.1.1");          // inferred
  CHECK(reply(452, "", "mailbox full").enhanced == "4.2.2");           // inferred, class from the reply
  CHECK(reply(0, "", "retry timeout exceeded").enhanced == "4.4.7");   // no class: transient for soft
  CHECK(find_enhanced_code("host 192.0.2.1 said 550") == "");           // an IP address is no code
  CHECK(find_enhanced_code("550-5.7.26 Unauthenticated", 550) == "5.7.26");
  CHECK(find_enhanced_code("4.2.2 full", 550) == "");                   // class must match the reply
}

TEST_CASE("an unknown recipient said after DATA is not hard", "[bounce][classifier]") {
  auto at_rcpt = shipped().classify(550, "", "User unknown", {}, "RCPT");
  CHECK(at_rcpt.hard);
  auto at_data = shipped().classify(550, "", "User unknown", {}, "DATA");
  CHECK(at_data.category == bounce_category::invalid_recipient);
  CHECK_FALSE(at_data.hard);
}

TEST_CASE("the first matching rule wins", "[bounce][classifier]") {
  bounce_classifier classifier({rule("mailbox_full", "over quota"), rule("invalid_recipient", "quota|unknown")});
  auto first = classifier.classify(552, "", "user is over quota");
  CHECK(first.category == bounce_category::mailbox_full);
  CHECK(first.rule == 0);
  auto second = classifier.classify(550, "", "quota unknown");
  CHECK(second.category == bounce_category::invalid_recipient);
  CHECK(second.rule == 1);

  // A user rule placed before the shipped ones overrides them.
  auto rules = *load_bounce_rules(std::string(PETREL_SOURCE_DIR) + "/config/bounce_rules.toml");
  rules.insert(rules.begin(), rule("policy", "user unknown", 550, "", "mx.strict.example"));
  bounce_classifier with_user_rule(rules);
  CHECK(with_user_rule.classify(550, "", "User unknown", "mx.strict.example").category == bounce_category::policy);
  CHECK(with_user_rule.classify(550, "", "User unknown", "mx.other.example").category == bounce_category::invalid_recipient);
}

TEST_CASE("rule conditions: reply code, class, enhanced prefix, provider glob, hardness", "[bounce][classifier]") {
  bounce_classifier classifier({
      rule("rate_limited", "", 421),
      rule("spam_block", "", 0, "5.7.", "*.mail.example.net"),
      rule("auth_failure", "", 0, "x.7.26"),
      rule("content", "bad", 5),
      rule("mailbox_full", "full", 0, "", "", "hard"),
  });
  CHECK(classifier.classify(421, "", "anything").category == bounce_category::rate_limited);
  CHECK(classifier.classify(450, "", "anything").category == bounce_category::other);
  CHECK(classifier.classify(550, "5.7.1", "x", "MX1.Mail.Example.NET").category == bounce_category::spam_block);
  CHECK(classifier.classify(550, "5.7.1", "x", "mx1.example.org").category == bounce_category::policy);  // fallback
  CHECK(classifier.classify(550, "5.7.1", "x").category == bounce_category::policy);  // no provider given
  CHECK(classifier.classify(550, "5.7.26", "x").category == bounce_category::auth_failure);
  CHECK(classifier.classify(450, "4.7.26", "x").category == bounce_category::auth_failure);
  CHECK(classifier.classify(550, "5.7.261", "x").category == bounce_category::policy);  // prefix is by part
  CHECK(classifier.classify(554, "", "BAD content").category == bounce_category::content);
  CHECK(classifier.classify(454, "", "bad content").category == bounce_category::other);
  CHECK(classifier.classify(0, "5.6.0", "bad content").category == bounce_category::content);  // class from the code
  auto full = classifier.classify(552, "", "mailbox full");
  CHECK(full.category == bounce_category::mailbox_full);
  CHECK(full.hard);  // the rule's hardness wins over the category's default
}

TEST_CASE("regex rules are case-insensitive ECMAScript, prefilters keep them exact", "[bounce][classifier]") {
  bounce_classifier classifier({
      rule("spam_block", "\\bspam\\b"),
      rule("network", "time(d)? ?out"),
      rule("other", "a{2,3}b"),
      rule("content", "(virus|malware) (found|detected)"),
      rule("policy", "x(?!yz)"),
  });
  CHECK(classifier.classify(550, "", "SPAM detected").category == bounce_category::spam_block);
  CHECK(classifier.classify(550, "", "antispam").category == bounce_category::other);
  CHECK(classifier.classify(421, "", "Connection Timed Out").category == bounce_category::network);
  CHECK(classifier.classify(421, "", "timeout").category == bounce_category::network);
  CHECK(classifier.classify(550, "", "aab").rule == 2);
  CHECK(classifier.classify(550, "", "ab").rule == -1);
  CHECK(classifier.classify(550, "", "Malware Found").category == bounce_category::content);
  CHECK(classifier.classify(550, "", "malware suspected").rule == -1);
  CHECK(classifier.classify(550, "", "xyz").rule == -1);
  CHECK(classifier.classify(550, "", "xya").rule == 4);
}

TEST_CASE("bad rules are refused with their index and reason", "[bounce][classifier]") {
  auto refuses = [](std::vector<bounce_rule> rules, const char* needle) {
    try {
      bounce_classifier classifier(std::move(rules));
      FAIL("accepted");
    } catch (const std::invalid_argument& e) {
      CHECK_THAT(e.what(), Catch::Contains(needle));
    }
  };
  refuses({rule("policy"), rule("policy", "(unclosed")}, "bounce rule 1");
  refuses({rule("policy", "(unclosed")}, "invalid pattern");
  refuses({rule("user_unknown")}, "not a bounce category");
  refuses({rule("none")}, "not a bounce category");
  refuses({rule("policy", "", 0, "", "", "permanent")}, "hardness");
  refuses({rule("policy", "", 0, "5.x.1")}, "enhanced code prefix");
  refuses({rule("policy", "", 250)}, "reply_code");
}

TEST_CASE("rules files: every error names file, line and key", "[bounce][classifier]") {
  auto good = load_bounce_rules_text(R"(
[[rule]]
category = "invalid_recipient"
pattern = "user unknown"
comment = "the classic"

[[rule]]
category = "rate_limited"
hardness = "soft"
reason = "toomanyconn"
reply_code = 421
enhanced = "4.7."
provider = "*.example.com"
)", "rules.toml");
  REQUIRE(good);
  CHECK(good->at(1).reason == "toomanyconn");
  REQUIRE(good->size() == 2);
  CHECK(good->at(0).pattern == "user unknown");
  CHECK(good->at(1).reply_code == 421);
  CHECK(good->at(1).enhanced == "4.7.");
  CHECK(good->at(1).provider == "*.example.com");

  auto bad = load_bounce_rules_text(R"(
[[rule]]
category = "invalid_recipient"
patern = "typo"

[[rule]]
category = "spam"
reply_code = "550"
enhanced = "5.7.1.2"

[[rule]]
pattern = "(open"
hardness = "very"

[options]
x = 1
)", "rules.toml");
  REQUIRE_FALSE(bad);
  const auto& error = bad.error();
  INFO(error);
  CHECK_THAT(error, Catch::Contains("rules.toml:4:10: rule[0].patern: unknown key"));
  CHECK_THAT(error, Catch::Contains("rule[1].category: \"spam\" is not one of"));
  CHECK_THAT(error, Catch::Contains("rules.toml:8:14: rule[1].reply_code: expected an integer"));
  CHECK_THAT(error, Catch::Contains("rule[1].enhanced"));
  CHECK_THAT(error, Catch::Contains("rule[2].category: required"));
  CHECK_THAT(error, Catch::Contains("rule[2].pattern: invalid regular expression"));
  CHECK_THAT(error, Catch::Contains("rule[2].hardness"));
  CHECK_THAT(error, Catch::Contains("rules.toml:15:1: options: unknown key"));
  CHECK(error.find("rule[0]") < error.find("options"));  // in file order

  auto reason = load_bounce_rules_text("[[rule]]\ncategory = \"policy\"\nreason = \"nope\"\n", "reason.toml");
  REQUIRE_FALSE(reason);
  CHECK_THAT(reason.error(), Catch::Contains("reason.toml:3:10: rule[0].reason: \"nope\" is not one of: userunknown"));

  auto syntax = load_bounce_rules_text("[[rule]\ncategory = ", "broken.toml");
  REQUIRE_FALSE(syntax);
  CHECK_THAT(syntax.error(), Catch::Contains("broken.toml:1:"));
  CHECK_THAT(syntax.error(), Catch::Contains("TOML syntax error"));

  auto missing = load_bounce_rules("/nonexistent/rules.toml");
  REQUIRE_FALSE(missing);
  CHECK_THAT(missing.error(), Catch::Contains("/nonexistent/rules.toml: cannot open"));
}

TEST_CASE("the SMTP command a failure answered is read from the report's prose") {
  using bounce_reading::find_smtp_command;
  CHECK(find_smtp_command("550 5.1.1 <a@b.example>: User unknown (in reply to RCPT TO command)") == "RCPT");
  CHECK(find_smtp_command("said: 554 rejected (in reply to end of DATA command)") == "DATA");
  CHECK(find_smtp_command(">>> DATA\n<<< 550 5.7.1 spam") == "DATA");
  // qmail: "most progress was RCPT TO response"; X3: "SMTP:RCPT host ..."; Yahoo: "[RCPT_TO]".
  CHECK(find_smtp_command("Sorry, no SMTP connection got far enough; most progress was RCPT TO response; "
                          "remote host 192.0.2.32 said: 550 Unknown user") == "RCPT");
  CHECK(find_smtp_command("Technical details: SMTP:RCPT host 192.0.2.8: 553 5.3.0 No such user here") == "RCPT");
  CHECK(find_smtp_command("Remote host said: 550 5.2.1 <a@b.example>... User Unknown [RCPT_TO]") == "RCPT");
  CHECK(find_smtp_command("Remote host said: 554 Message rejected [DATA]") == "DATA");
  // Brackets and "SMTP:" that name no command tell nothing.
  CHECK(find_smtp_command("host mx.example[192.0.2.1] said: 550 User unknown") == "");
  CHECK(find_smtp_command("SMTP: 550 User unknown") == "");
}

TEST_CASE("an unknown-user reply is hard only when it answered RCPT TO, not DATA or MAIL FROM") {
  auto rules = load_bounce_rules(std::string(PETREL_SOURCE_DIR) + "/config/bounce_rules.toml");
  REQUIRE(rules);
  bounce_classifier c(*rules);
  CHECK(c.classify(550, "5.1.1", "5.1.1 <a@b.example>: User unknown", "", "RCPT").hard);
  CHECK(c.classify(550, "5.1.1", "5.1.1 <a@b.example>: User unknown", "", "").hard);
  auto after_data = c.classify(550, "5.1.1", "5.1.1 <a@b.example>: User unknown", "", "DATA");
  CHECK(after_data.category == bounce_category::invalid_recipient);
  CHECK_FALSE(after_data.hard);
  CHECK_FALSE(c.classify(550, "5.1.0", "5.1.0 sender <x@y.example> unknown user", "", "MAIL").hard);
}
