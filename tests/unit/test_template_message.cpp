// Templated messages as plain code: the stored source and personal data round-trip into a
// recipient's copy; data merges key by key; HTML escaping only in HTML; strict mode names the
// variable; data cannot inject header lines.
#include <catch2/catch.hpp>

#include "app/submission_request.hpp"
#include "net/mail/template_message.hpp"

using namespace petrel;

namespace {

mailbox box(const std::string& text) {
  auto p = parse_mailbox(text);
  REQUIRE(p);
  return p.value();
}

message_spec spec() {
  message_spec s;
  s.from = box("Shop <shop@example.com>");
  s.reply_to.push_back(box("help@example.com"));
  s.subject = "Hi {{name}}";
  s.text = "Code {{code}}";
  s.html = "<p>{{name}}</p>";
  s.headers.emplace_back("X-Campaign", "spring");
  attachment_spec a;
  a.filename = "a.txt";
  a.content_type = "text/plain";
  a.data = std::string("bytes\0and more", 14);
  s.attachments.push_back(a);
  s.message_id = "01ABC@example.com";
  s.date_ms = 1'700'000'000'000;
  return s;
}

}  // namespace

TEST_CASE("template messages: a copy is rendered from the stored source and the recipient's data") {
  auto source = template_source(spec(), R"({"code":"none","name":"nobody"})");
  auto personal = template_personal(box("Ann <ann@example.net>"), R"({"name":"A<n>"})");
  auto copy = render_template_copy(source, personal);
  REQUIRE(copy);
  const auto& c = copy.value().content;
  CHECK(c.find("Subject: Hi A<n>\r\n") != std::string::npos);
  CHECK(c.find("To: Ann <ann@example.net>\r\n") != std::string::npos);
  CHECK(c.find("Reply-To: help@example.com\r\n") != std::string::npos);
  CHECK(c.find("X-Campaign: spring\r\n") != std::string::npos);
  CHECK(c.find("Code none") != std::string::npos);          // the message's value
  CHECK(c.find("<p>A&lt;n&gt;</p>") != std::string::npos);  // escaped in HTML only
  CHECK(c.find("filename=a.txt") != std::string::npos);
  CHECK(copy.value().message_id_header == "<01ABC@example.com>");
}

TEST_CASE("template messages: data merges key by key, the recipient's over the message's") {
  CHECK(template_data(R"({"a":1,"b":{"x":1}})", R"({"b":{"y":2},"c":3})") == R"({"a":1,"b":{"y":2},"c":3})");
  CHECK(template_data("", "") == "{}");
  CHECK(template_data(R"({"a":1})", "") == R"({"a":1})");
}

TEST_CASE("template messages: strict mode names the missing variable; data cannot inject headers") {
  auto t = message_templates::compile("Hi {{name}}", std::string("{{#list}}{{.}}{{/list}}"), std::nullopt);
  REQUIRE(t);
  message_spec out;
  auto missing = t.value().render(R"({})", true, out);
  REQUIRE(missing);
  CHECK(missing->find("\"name\"") != std::string::npos);
  CHECK_FALSE(t.value().render(R"({"name":"x"})", true, out));  // a section over nothing is fine
  CHECK(out.subject == "Hi x");
  auto injected = t.value().render(R"({"name":"x\r\nBcc: a@b.c"})", false, out);
  REQUIRE(injected);
  CHECK(injected->find("subject") == 0);
  CHECK(t.value().variables().front() == "name");
}

TEST_CASE("template messages: a bad template or a damaged source is an error, not a crash") {
  auto bad = message_templates::compile("ok", std::nullopt, std::string("<p>{{#x}}"));
  REQUIRE_FALSE(bad);
  CHECK(bad.error().rfind("html: ", 0) == 0);
  CHECK_FALSE(render_template_copy("not json", R"({"email":"a@b.c"})"));
  CHECK_FALSE(render_template_copy(template_source(spec(), "{}"), "[]"));
  CHECK_FALSE(render_template_copy(template_source(spec(), "{}"), R"({"email":"not an address"})"));
}

TEST_CASE("submissions with substitutions become one templated message with personal data") {
  submission_settings s;
  s.max_recipients = 5;
  auto result = parse_submission(
      R"({"from":"a@example.com","subject":"S {{n}}","text":"t","substitutions":{"n":0},
          "to":[{"email":"x@example.net","substitutions":{"n":1},"metadata":{"k":1}},"y@example.net","x@example.net"]})",
      s, 1'700'000'000'000);
  REQUIRE(std::holds_alternative<message_record>(result));
  const auto& m = std::get<message_record>(result);
  CHECK(m.templated);
  REQUIRE(m.recipients.size() == 2);  // the same address twice is one recipient
  CHECK(m.recipients[0].personal_json.find("\"n\":1") != std::string::npos);
  CHECK(m.recipients[0].metadata_json == R"({"k":1})");
  CHECK(m.recipients[1].metadata_json.empty());
  CHECK(m.content.find("\"substitutions\":{\"n\":0}") != std::string::npos);
  auto copy = render_template_copy(m.content, m.recipients[1].personal_json);
  REQUIRE(copy);
  CHECK(copy.value().content.find("Subject: S 0\r\n") != std::string::npos);
}

TEST_CASE("submissions naming a stored template are parsed twice: the id first, then with it") {
  submission_settings s;
  auto id = new_id();
  auto body = R"({"from":"a@example.com","template_id":")" + id.str() +
              R"(","template_version":2,"to":[{"email":"x@example.net","substitutions":{"n":"N"}}]})";
  auto first = parse_submission(body, s, 1'700'000'000'000);
  REQUIRE(std::holds_alternative<template_needed>(first));
  CHECK(std::get<template_needed>(first).id == id);
  CHECK(std::get<template_needed>(first).version == 2);
  template_record t;
  t.id = id;
  t.subject = "S {{n}}";
  t.has_html = true;
  t.html = "<b>{{n}}</b>";
  auto second = parse_submission(body, s, 1'700'000'000'000, &t, true);
  REQUIRE(std::holds_alternative<message_record>(second));
  auto copy = render_template_copy(std::get<message_record>(second).content,
                                   std::get<message_record>(second).recipients.front().personal_json);
  REQUIRE(copy);
  CHECK(copy.value().content.find("Subject: S N\r\n") != std::string::npos);
  auto missing = parse_submission(body, s, 1'700'000'000'000, nullptr, true);
  REQUIRE(std::holds_alternative<submission_rejection>(missing));
  CHECK(std::get<submission_rejection>(missing).errors.front().field == "template_id");
}
