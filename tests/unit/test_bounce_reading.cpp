// Reading bounces by principle, on messages written for each principle: which addresses a
// report names (Original-Recipient, source routes, type prefixes, the failed list over the
// returned message's To), which reports are not failures, every declared charset decoded
// before phrases are matched, and sender-side failures that never suppress the recipient.
#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "config/bounce_rules.hpp"
#include "net/mail/bounce.hpp"
#include "shipped_bounce_rules.hpp"
#include "net/mail/bounce_parser.hpp"

using namespace petrel;
namespace fs = std::filesystem;

namespace {

const bounce_classifier& shipped() { return testing::shipped_classifier(); }

std::string read_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

// An RFC 3464 report with one per-recipient block (given whole) and the returned headers.
std::string dsn(const std::string& recipient_block, const std::string& returned_to = "list@example.com") {
  return "From: MAILER-DAEMON@mx.example.net\n"
         "To: bounces@petrel.example\n"
         "Subject: Delivery Status Notification\n"
         "MIME-Version: 1.0\n"
         "Content-Type: multipart/report; report-type=delivery-status; boundary=\"B\"\n"
         "\n"
         "--B\n"
         "Content-Type: text/plain\n"
         "\n"
         "This is the mail system at host mx.example.net.\n"
         "\n"
         "--B\n"
         "Content-Type: message/delivery-status\n"
         "\n"
         "Reporting-MTA: dns; mx.example.net\n"
         "\n" +
         recipient_block +
         "\n"
         "--B\n"
         "Content-Type: text/rfc822-headers\n"
         "\n"
         "From: sender@petrel.example\n"
         "To: " + returned_to + "\n"
         "Subject: Hello\n"
         "Message-ID: <m1@petrel.example>\n"
         "\n"
         "--B--\n";
}

classification classify(const bounce_recipient& r) {
  return shipped().classify(r.reply_code, r.status, r.diagnostic, r.remote_mta, r.command);
}

}  // namespace

TEST_CASE("recipients: Original-Recipient, source routes and type prefixes", "[bounce][reading]") {
  SECTION("the Original-Recipient is kept beside the Final-Recipient") {
    auto report = parse_bounce(dsn("Original-Recipient: rfc822;alias@example.org\n"
                                   "Final-Recipient: rfc822;person@mail.example.net\n"
                                   "Action: failed\nStatus: 5.1.1\n"
                                   "Diagnostic-Code: smtp; 550 5.1.1 <person@mail.example.net>: User unknown\n"));
    REQUIRE(report.kind == report_kind::delivery_failure);
    REQUIRE(report.recipients.size() == 1);
    CHECK(report.recipients[0].address == "person@mail.example.net");
    CHECK(report.recipients[0].original == "alias@example.org");
  }
  SECTION("the same address twice is not an original") {
    auto report = parse_bounce(dsn("Original-Recipient: rfc822;Person@Example.net\n"
                                   "Final-Recipient: rfc822;person@example.net\nAction: failed\nStatus: 5.1.1\n"));
    REQUIRE(report.recipients.size() == 1);
    CHECK(report.recipients[0].original.empty());
  }
  SECTION("an Original-Recipient alone names the recipient") {
    auto report = parse_bounce(dsn("Original-Recipient: rfc822;only@example.org\nAction: failed\nStatus: 5.1.1\n"));
    REQUIRE(report.recipients.size() == 1);
    CHECK(report.recipients[0].address == "only@example.org");
  }
  SECTION("source routes and repeated or odd type prefixes are stripped") {
    for (const char* field : {"Final-Recipient: rfc822;@relay1.example,@relay2.example:user@example.net\n",
                              "Final-Recipient: RFC822; <user@EXAMPLE.net>\n",
                              "Final-Recipient: rfc822; rfc822;user@example.net\n",
                              "Final-Recipient: rfc822;<@relay.example:user@example.net>\n"}) {
      INFO(field);
      auto report = parse_bounce(dsn(std::string(field) + "Action: failed\nStatus: 5.1.1\n"));
      REQUIRE(report.recipients.size() == 1);
      CHECK(report.recipients[0].address == "user@example.net");
    }
  }
  SECTION("the failed addresses, not the returned message's To") {
    auto report = parse_bounce(dsn("Final-Recipient: rfc822;member@example.net\nAction: failed\nStatus: 5.1.1\n",
                                   "everyone@lists.example.com"));
    REQUIRE(report.recipients.size() == 1);
    CHECK(report.recipients[0].address == "member@example.net");
  }
}

TEST_CASE("reports that are not failures", "[bounce][reading]") {
  for (const char* action : {"delayed", "delivered", "relayed", "expanded", "deliverable", "Delayed (will retry)",
                             "relayed (to non-DSN-aware mailer)"}) {
    INFO(action);
    auto report = parse_bounce(dsn(std::string("Final-Recipient: rfc822;user@example.net\nAction: ") + action +
                                   "\nStatus: 4.4.7\n"));
    REQUIRE(report.recipients.size() == 1);
    CHECK_FALSE(is_failure_action(report.recipients[0].action));
  }
  for (const char* action : {"failed", "Failed", "failure", "expired"}) {
    INFO(action);
    auto report = parse_bounce(dsn(std::string("Final-Recipient: rfc822;user@example.net\nAction: ") + action +
                                   "\nStatus: 5.1.1\n"));
    REQUIRE(report.recipients.size() == 1);
    CHECK(is_failure_action(report.recipients[0].action));
  }
  SECTION("a mailing list's answer to a post is not a failure") {
    auto held = parse_bounce(
        "From: announce-bounces@lists.example.org\nTo: b-token@bounces.petrel.example\n"
        "Subject: Your message to Announce awaits moderator approval\nList-Id: <announce.lists.example.org>\n"
        "X-Mailman-Version: 2.1.39\nPrecedence: bulk\n\n"
        "Your mail to 'Announce' with the subject\n\n    Hello\n\nIs being held until the list moderator can "
        "review it for approval.\n\nThe reason it is being held:\n\n    Post by non-member to a members-only list\n");
    CHECK(held.kind == report_kind::auto_reply);
    auto member = parse_bounce(
        "From: neko-admin@example.org\nTo: sender@petrel.example\nSubject: You sender@petrel.example are not member (neko ML)\n"
        "X-MLServer: fml [fml 4.0.3 release]\nX-ML-Name: neko\n\nYou are not a member of this mailing list.\n");
    CHECK(member.kind == report_kind::auto_reply);
    // A DSN that a list relays to its owner is still the DSN it is.
    auto relayed = parse_bounce("List-Id: <announce.lists.example.org>\nX-Mailman-Version: 2.1.39\n" +
                                dsn("Final-Recipient: rfc822;gone@example.net\nAction: failed\nStatus: 5.1.1\n"));
    CHECK(relayed.kind == report_kind::delivery_failure);
  }
  SECTION("an auto-reply is not a failure") {
    auto report = parse_bounce("From: someone@example.net\nTo: sender@petrel.example\nSubject: Out of office\n"
                               "Auto-Submitted: auto-replied\n\nI am away until Monday.\n");
    CHECK(report.kind == report_kind::auto_reply);
  }
}

TEST_CASE("every declared charset is decoded before phrases are matched", "[bounce][reading]") {
  struct example {
    const char* file;
    const char* address;
    const char* phrase;  // UTF-8
  };
  const fs::path dir = fs::path(PETREL_TESTDATA_DIR) / "charsets";
  for (const auto& e : std::vector<example>{
           {"iso-2022-jp.eml", "taro@example.jp", "そのようなユーザーはいません"},
           {"iso-2022-jp-undeclared.eml", "saburo@example.jp", "そのようなユーザーはいません"},
           {"shift_jis.eml", "hanako@example.jp", "メールボックスが一杯です"},
           {"euc-jp.eml", "jiro@example.jp", "宛先のユーザーは存在しません"},
           {"koi8-r.eml", "ivan@example.ru", "Пользователь не найден"},
           {"windows-1251.eml", "olga@example.ru", "Почтовый ящик переполнен"},
           {"windows-1252.eml", "zoe@example.fr", "Adresse électronique inconnue"},
           {"iso-8859-2.eml", "lukasz@example.pl", "Użytkownik nie istnieje"},
           {"gb2312.eml", "wang@example.cn", "收件人不存在"},
           {"big5.eml", "chen@example.tw", "收件人不存在"},
       }) {
    INFO(e.file);
    auto report = parse_bounce(read_file(dir / e.file));
    REQUIRE(report.kind == report_kind::delivery_failure);
    REQUIRE(report.recipients.size() == 1);
    const auto& r = report.recipients[0];
    CHECK(r.address == e.address);
    CHECK_THAT(r.diagnostic, Catch::Contains(e.phrase));
  }
  SECTION("phrases in other languages are matched once decoded") {
    auto full = parse_bounce(read_file(dir / "windows-1251.eml"));
    REQUIRE(full.recipients.size() == 1);
    CHECK(classify(full.recipients[0]).category == bounce_category::mailbox_full);
    auto unknown = parse_bounce(read_file(dir / "koi8-r.eml"));
    REQUIRE(unknown.recipients.size() == 1);
    CHECK(classify(unknown.recipients[0]).category == bounce_category::invalid_recipient);
  }
}

TEST_CASE("failures about the sender's side never suppress the recipient", "[bounce][reading]") {
  struct example {
    int code;
    const char* enhanced;
    const char* text;
  };
  for (const auto& e : std::vector<example>{
           {553, "5.1.8", "<bounces@petrel.example>: Sender address rejected: Domain not found"},
           {550, "5.1.7", "Invalid sender address syntax"},
           {550, "5.7.1", "Sender verify failed"},
           {550, "5.7.23", "The message was rejected because of Sender Policy Framework violation"},
           {550, "5.7.26", "This message does not pass authentication checks (SPF and DKIM both do not pass)"},
           {550, "5.7.1", "Unauthenticated email from petrel.example is not accepted due to domain's DMARC policy"},
           {550, "5.7.1", "DKIM signature verification failed"},
           {550, "5.7.1", "Service unavailable, Client host [192.0.2.1] blocked using Spamhaus"},
           {554, "5.7.1", "Your IP address has been blacklisted"},
           {550, "5.2.1", "The user you are trying to contact is receiving mail at a rate that prevents additional messages from being delivered"},
           {550, "5.7.1", "Our system has detected an unusual rate of unsolicited mail originating from your IP address"},
           {421, "4.7.0", "Too many connections from your host"},
           {550, "5.4.6", "Too many concurrent SMTP connections"},
           {554, "5.7.1", "<user@example.net>: Relay access denied"},
           {550, "", "Relaying denied. Proper authentication required"},
           {552, "5.3.4", "Message size exceeds fixed maximum message size"},
           {552, "5.2.3", "Message length exceeds administrative limit"},
           {554, "5.6.0", "Message rejected: content rejected"},
           {550, "5.7.1", "Message rejected due to virus: Eicar-Test-Signature"},
           {550, "5.7.1", "Message rejected as spam by Content Filtering"},
           {554, "5.7.1", "Mail from petrel.example rejected for policy reasons"},
       }) {
    for (const char* command : {"RCPT", "DATA", ""}) {
      INFO(e.code << " " << e.enhanced << " " << e.text << " at " << command);
      auto verdict = shipped().classify(e.code, e.enhanced, e.text, "", command);
      CHECK_FALSE(verdict.hard);
      CHECK(verdict.category != bounce_category::invalid_recipient);
      CHECK(verdict.category != bounce_category::bad_domain);
    }
  }
}
