// What a site does to a loaded message before sending it (actors/policy/message_preparation):
// suppressed recipients out, VERP, List-Unsubscribe for bulk mail, SMTPUTF8 detection.
#include <catch2/catch.hpp>

#include "actors/policy/message_preparation.hpp"
#include "net/mail/recipient_token.hpp"

using namespace petrel;

namespace {

const std::string secret = "0123456789abcdef0123456789abcdef";
const std::string message = "From: a@example.com\r\nSubject: hi\r\n\r\nList-Unsubscribe: in the body\r\n";

preparation_settings all_on() {
  return {"bounces.example.com", secret, "https://mail.example.com"};
}

delivery_content content_for(std::vector<std::string> addresses, bool bulk = false) {
  delivery_content c;
  c.mail_from = "app@example.com";
  c.addresses = std::move(addresses);
  c.suppressed.assign(c.addresses.size(), 0);
  c.content = message;
  c.bulk = bulk;
  return c;
}

}  // namespace

TEST_CASE("a single recipient gets a VERP envelope sender that names it") {
  auto id = new_id();
  auto p = prepare_message(all_on(), {id}, content_for({"user@example.net"}));
  REQUIRE(p.recipient_ids == std::vector<id128>{id});
  CHECK(p.mail_from != "app@example.com");
  auto read = read_verp_address(secret, p.mail_from, "bounces.example.com");
  REQUIRE(read);
  CHECK(*read == id);
  CHECK_FALSE(p.unsubscribe_added);  // not bulk
  CHECK(p.content == message);
}

TEST_CASE("no VERP for several recipients, without a domain, or without a secret") {
  auto two = prepare_message(all_on(), {new_id(), new_id()}, content_for({"a@x.test", "b@x.test"}));
  CHECK(two.mail_from == "app@example.com");
  auto settings = all_on();
  settings.verp_domain.clear();
  CHECK(prepare_message(settings, {new_id()}, content_for({"a@x.test"})).mail_from == "app@example.com");
  settings = all_on();
  settings.bounce_secret.clear();
  CHECK(prepare_message(settings, {new_id()}, content_for({"a@x.test"})).mail_from == "app@example.com");
}

TEST_CASE("suppressed recipients are taken out and reported with their address") {
  auto a = new_id(), b = new_id(), c = new_id();
  auto content = content_for({"a@x.test", "b@x.test", "c@x.test"});
  content.suppressed = {0, 1, 0};
  auto p = prepare_message(all_on(), {a, b, c}, content);
  CHECK(p.recipient_ids == std::vector<id128>{a, c});
  CHECK(p.addresses == std::vector<std::string>{"a@x.test", "c@x.test"});
  REQUIRE(p.suppressed.size() == 1);
  CHECK(p.suppressed[0].recipient_id == b);
  CHECK(p.suppressed[0].address == "b@x.test");
  content.suppressed = {1, 1, 1};
  auto none = prepare_message(all_on(), {a, b, c}, content);
  CHECK(none.recipient_ids.empty());
  CHECK(none.suppressed.size() == 3);
}

TEST_CASE("bulk mail to one recipient gets its own one-click List-Unsubscribe") {
  auto id = new_id();
  auto p = prepare_message(all_on(), {id}, content_for({"user@example.net"}, true));
  CHECK(p.unsubscribe_added);
  auto token = make_recipient_token(secret, token_purpose::unsubscribe, id);
  CHECK(p.content.rfind("List-Unsubscribe: <https://mail.example.com/u/" + token + ">\r\n"
                        "List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n", 0) == 0);
  CHECK(p.content.substr(p.content.size() - message.size()) == message);
}

TEST_CASE("List-Unsubscribe is not added twice, nor for several recipients or without a URL") {
  auto own = content_for({"user@example.net"}, true);
  own.content = "list-UNSUBSCRIBE: <mailto:u@example.com>\r\n" + message;
  CHECK_FALSE(prepare_message(all_on(), {new_id()}, own).unsubscribe_added);
  CHECK_FALSE(prepare_message(all_on(), {new_id(), new_id()}, content_for({"a@x.test", "b@x.test"}, true))
                  .unsubscribe_added);
  auto settings = all_on();
  settings.unsubscribe_base_url.clear();
  CHECK_FALSE(prepare_message(settings, {new_id()}, content_for({"a@x.test"}, true)).unsubscribe_added);
}

TEST_CASE("the header check looks at the header block only, case-insensitively") {
  CHECK(has_header("Subject: x\r\nLIST-UNSUBSCRIBE: <x>\r\n\r\nbody", "list-unsubscribe:"));
  CHECK_FALSE(has_header(message, "list-unsubscribe:"));  // only in the body
  CHECK_FALSE(has_header("List-Unsubscribe-Post: x\r\n\r\n", "list-unsubscribe:"));
  CHECK_FALSE(has_header("", "list-unsubscribe:"));
  CHECK(has_header("List-Unsubscribe: <x>", "list-unsubscribe:"));  // no CRLF at all
}

TEST_CASE("SMTPUTF8 is needed for a non-ASCII local part or sender, not for an IDN domain") {
  CHECK_FALSE(prepare_message(all_on(), {new_id()}, content_for({"user@bücher.example"})).needs_smtputf8);
  CHECK(prepare_message(all_on(), {new_id()}, content_for({"jörg@example.net"})).needs_smtputf8);
  auto sender = content_for({"a@x.test", "b@x.test"});
  sender.mail_from = "rené@example.com";
  CHECK(prepare_message(all_on(), {new_id(), new_id()}, sender).needs_smtputf8);
}
