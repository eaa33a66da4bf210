// POST /v1/messages validation: every error case names its field; valid bodies become
// message records with built content and queued recipients.
#include <catch2/catch.hpp>

#include "app/submission_request.hpp"

using namespace petrel;

namespace {

const std::int64_t now = 1'700'000'000'000;

submission_settings settings() {
  submission_settings s;
  s.max_recipients = 5;
  s.max_message_bytes = 64 * 1024;
  s.max_metadata_bytes = 100;
  s.max_tags = 3;
  s.max_tag_length = 10;
  s.max_headers = 2;
  return s;
}

message_record accept(const std::string& body, const submission_settings& s = settings()) {
  auto result = parse_submission(body, s, now);
  if (auto* r = std::get_if<submission_rejection>(&result)) {
    for (const auto& e : r->errors) UNSCOPED_INFO(e.field << ": " << e.detail);
    FAIL("rejected: " << body);
  }
  return std::get<message_record>(result);
}

submission_rejection reject(const std::string& body, const submission_settings& s = settings()) {
  auto result = parse_submission(body, s, now);
  REQUIRE(std::holds_alternative<submission_rejection>(result));
  return std::get<submission_rejection>(result);
}

// The rejection's only error is on `field` and mentions `words`.
void rejected_for(const std::string& body, const std::string& field, const std::string& words) {
  INFO(body);
  auto r = reject(body);
  CHECK(r.status == 400);
  REQUIRE(r.errors.size() >= 1);
  bool found = false;
  for (const auto& e : r.errors)
    if (e.field == field && e.detail.find(words) != std::string::npos) found = true;
  if (!found)
    for (const auto& e : r.errors) UNSCOPED_INFO("got " << e.field << ": " << e.detail);
  CHECK(found);
}

}  // namespace

TEST_CASE("a structured submission becomes a message with queued recipients") {
  auto m = accept(R"({"from":{"email":"app@example.com","name":"App"},
                     "to":["a@example.net","B <b@EXAMPLE.org>"],"cc":"c@example.net",
                     "bcc":[{"email":"d@example.net"}],"reply_to":"r@example.com",
                     "subject":"Hi","text":"Hello","html":"<p>Hello</p>",
                     "headers":{"X-Tag":"1"},"tags":["welcome","welcome","x"],
                     "metadata":{"user":42},"campaign":"spring"})");
  CHECK(!m.id.empty());
  CHECK(m.created_at_ms == now);
  CHECK(m.mail_from == "app@example.com");
  CHECK(m.subject == "Hi");
  CHECK(m.campaign == "spring");
  CHECK(m.tags_json == R"(["welcome","x"])");
  CHECK(m.metadata_json == R"({"user":42})");
  CHECK(m.message_id_header == "<" + m.id.str() + "@example.com>");
  CHECK(m.size == m.content.size());
  CHECK(m.content.find("multipart/alternative") != std::string::npos);
  CHECK(m.content.find("X-Tag: 1") != std::string::npos);
  CHECK(m.content.find("d@example.net") == std::string::npos);  // bcc stays out
  REQUIRE(m.recipients.size() == 4);
  CHECK(m.recipients[0].address == "a@example.net");
  CHECK(m.recipients[1].address == "b@example.org");
  CHECK(m.recipients[1].domain == "example.org");
  CHECK(m.recipients[2].kind == recipient_kind::cc);
  CHECK(m.recipients[3].kind == recipient_kind::bcc);
  for (const auto& r : m.recipients) {
    CHECK(r.state == recipient_state::queued);
    CHECK(r.next_attempt_at_ms == now);
    CHECK(!r.id.empty());
  }
}

TEST_CASE("the same address twice is one recipient") {
  auto m = accept(R"({"from":"a@example.com","to":["x@example.net","x@EXAMPLE.net"],
                     "cc":["x@example.net"],"text":"t"})");
  REQUIRE(m.recipients.size() == 1);
  CHECK(m.recipients[0].kind == recipient_kind::to);
}

TEST_CASE("the Message-ID domain can be configured") {
  auto s = settings();
  s.message_id_domain = "mail.example.io";
  auto m = accept(R"({"from":"a@example.com","to":"x@example.net","text":"t"})", s);
  CHECK(m.message_id_header == "<" + m.id.str() + "@mail.example.io>");
}

TEST_CASE("a raw submission keeps the message and uses the envelope") {
  // "From: a@example.com\nSubject: raw\n\nbody\n"
  auto m = accept(R"({"raw":"RnJvbTogYUBleGFtcGxlLmNvbQpTdWJqZWN0OiByYXcKCmJvZHkK",
                     "envelope":{"from":"bounce@example.com","to":["x@example.net","y@example.org"]},
                     "tags":["r"],"campaign":"c"})");
  CHECK(m.mail_from == "bounce@example.com");
  CHECK(m.subject == "raw");
  REQUIRE(m.recipients.size() == 2);
  CHECK(m.recipients[0].kind == recipient_kind::envelope);
  CHECK(m.content.find("From: a@example.com\r\nSubject: raw\r\n\r\nbody\r\n") != std::string::npos);
  CHECK(m.content.rfind("Message-ID: <", 0) == 0);
}

TEST_CASE("bodies that are not JSON objects are refused") {
  rejected_for("", "", "not valid JSON");
  rejected_for("{", "", "not valid JSON");
  rejected_for("[1,2]", "", "must be a JSON object");
  rejected_for("\"text\"", "", "must be a JSON object");
  std::string deep(100, '[');
  rejected_for(R"({"metadata":)" + deep, "", "nested deeper than 32 levels");
}

TEST_CASE("each missing or malformed field is named") {
  rejected_for(R"({"to":"x@example.net","text":"t"})", "from", "required");
  rejected_for(R"({"from":"nope","to":"x@example.net","text":"t"})", "from", "has no @");
  rejected_for(R"({"from":"a@example.com","text":"t"})", "to", "at least one recipient");
  rejected_for(R"({"from":"a@example.com","to":["x@example.net","bad@"],"text":"t"})", "to[1]",
               "domain is empty");
  rejected_for(R"({"from":"a@example.com","to":[42],"text":"t"})", "to[0]",
               "must be an address string or an object");
  rejected_for(R"({"from":"a@example.com","to":[{"mail":"x@example.net"}],"text":"t"})",
               "to[0].mail", "unknown field");
  rejected_for(R"({"from":{"email":"a@example.com","name":7},"to":"x@example.net","text":"t"})",
               "from.name", "must be a string");
  rejected_for(R"({"from":"a@example.com","to":"x@example.net"})", "text", "body is required");
  rejected_for(R"({"from":"a@example.com","to":"x@example.net","text":5})", "text", "must be a string");
  rejected_for(R"({"from":"a@example.com","to":"x@example.net","text":"t","subject":"a\nb"})",
               "subject", "control characters");
  rejected_for(R"({"from":"a@example.com","to":"x@example.net","text":"t","bogus":1})", "bogus",
               "unknown field");
  rejected_for(R"({"from":"a@example.com","to":"x@example.net","text":"t\u0000"})", "text",
               "control characters");
}

TEST_CASE("recipient counts are bounded") {
  rejected_for(R"({"from":"a@example.com","to":["1@x.example","2@x.example","3@x.example"],
                  "cc":["4@x.example","5@x.example"],"bcc":"6@x.example","text":"t"})",
               "to", "at most 5 recipients");
}

TEST_CASE("header injection and structural headers are refused") {
  rejected_for(R"({"from":"a@example.com","to":"x@example.net","text":"t",
                  "headers":{"X-A":"v\r\nBcc: victim@example.org"}})",
               "headers.X-A", "CR or LF");
  rejected_for(R"({"from":"a@example.com","to":"x@example.net","text":"t",
                  "headers":{"X-A":"v\nBcc: victim@example.org"}})",
               "headers.X-A", "CR or LF");
  rejected_for(R"({"from":"a@example.com","to":"x@example.net","text":"t","headers":{"From":"x@y.example"}})",
               "headers.From", "cannot be given");
  rejected_for(R"({"from":"a@example.com","to":"x@example.net","text":"t","headers":{"content-type":"x"}})",
               "headers.content-type", "cannot be given");
  rejected_for(R"({"from":"a@example.com","to":"x@example.net","text":"t","headers":{"Bad Name":"x"}})",
               "headers.Bad Name", "not a valid header name");
  rejected_for(R"({"from":"a@example.com","to":"x@example.net","text":"t","headers":{"X-A":1}})",
               "headers.X-A", "must be a string");
  rejected_for(R"({"from":"a@example.com","to":"x@example.net","text":"t","headers":{"A":"1","B":"2","C":"3"}})",
               "headers", "at most 2 headers");
  rejected_for(R"({"from":"a@example.com","to":"x@example.net","text":"t","headers":["X-A: 1"]})",
               "headers", "must be an object");
}

TEST_CASE("tags, metadata and campaign are validated") {
  rejected_for(R"({"from":"a@example.com","to":"x@example.net","text":"t","tags":"one"})", "tags",
               "array of strings");
  rejected_for(R"({"from":"a@example.com","to":"x@example.net","text":"t","tags":["a","b","c","d"]})",
               "tags", "at most 3 tags");
  rejected_for(R"({"from":"a@example.com","to":"x@example.net","text":"t","tags":["0123456789X"]})",
               "tags[0]", "longer than 10");
  rejected_for(R"({"from":"a@example.com","to":"x@example.net","text":"t","tags":[""]})", "tags[0]",
               "must not be empty");
  rejected_for(R"({"from":"a@example.com","to":"x@example.net","text":"t","metadata":[1]})",
               "metadata", "JSON object");
  rejected_for(R"({"from":"a@example.com","to":"x@example.net","text":"t","metadata":{"k":")" +
                   std::string(200, 'v') + R"("}})",
               "metadata", "larger than 100 bytes");
  rejected_for(R"({"from":"a@example.com","to":"x@example.net","text":"t","campaign":{}})",
               "campaign", "must be a string");
}

TEST_CASE("raw submissions are validated") {
  rejected_for(R"({"raw":"!!!","envelope":{"from":"a@example.com","to":["x@example.net"]}})", "raw",
               "not valid base64");
  rejected_for(R"({"raw":"RnJvbTogYUBiLmM=","envelope":{"to":["x@example.net"]}})", "envelope.from",
               "required");
  rejected_for(R"({"raw":"RnJvbTogYUBiLmM=","envelope":{"from":"a@example.com","to":[]}})",
               "envelope.to", "at least one");
  rejected_for(R"({"raw":"RnJvbTogYUBiLmM=","envelope":{"from":"a@example.com","to":["x"]}})",
               "envelope.to[0]", "no @");
  rejected_for(R"({"raw":"RnJvbTogYUBiLmM="})", "envelope", "required with raw");
  rejected_for(R"({"raw":"RnJvbTogYUBiLmM=","envelope":{"from":"a@example.com","to":["x@example.net"]},
                  "subject":"s"})",
               "subject", "not allowed together with raw");
  // "Subject: no from\n\nbody\n"
  rejected_for(R"({"raw":"U3ViamVjdDogbm8gZnJvbQoKYm9keQo=","envelope":{"from":"a@example.com","to":["x@example.net"]}})",
               "raw", "no From");
}

TEST_CASE("oversized messages are 413, not 400") {
  auto s = settings();
  s.max_message_bytes = 2000;
  std::string body = R"({"from":"a@example.com","to":"x@example.net","text":")" +
                     std::string(1500, 'a') + std::string(1500, 'b') + R"("})";
  auto r = reject(body, s);
  CHECK(r.status == 413);
}

TEST_CASE("attachments are validated field by field") {
  const std::string head = R"({"from":"a@example.com","to":"x@example.net","html":"<img src=cid:l>","attachments":)";
  auto with = [&](const std::string& list) { return head + list + "}"; };
  auto m = accept(with(R"([{"filename":"a.pdf","content_type":"Application/PDF","content":"JVBERi0="},
                           {"filename":"l.png","content_type":"image/png","content":"iVBORw==","disposition":"inline","content_id":"<l>"}])"));
  CHECK(m.content.find("Content-Type: application/pdf; name=a.pdf") != std::string::npos);
  CHECK(m.content.find("Content-ID: <l>") != std::string::npos);
  CHECK(m.content.find("multipart/related") != std::string::npos);
  rejected_for(with(R"({"filename":"a"})"), "attachments", "must be a list");
  rejected_for(with(R"([{"content":"YQ=="}])"), "attachments[0].filename", "required");
  rejected_for(with(R"([{"filename":"a\u0001b","content":"YQ=="}])"), "attachments[0].filename", "control characters");
  rejected_for(with(R"([{"filename":"a","content":"not base64!"}])"), "attachments[0].content", "not valid base64");
  rejected_for(with(R"([{"filename":"a"}])"), "attachments[0].content", "required");
  rejected_for(with(R"([{"filename":"a","content":"YQ==","content_id":"x@y"}])"), "attachments[0].content_id",
               "only an inline part");
  rejected_for(with(R"([{"filename":"a","content":"YQ==","disposition":"inline","content_id":"a b"}])"),
               "attachments[0].content_id", "without spaces");
  rejected_for(with(R"([{"filename":"a","content":"YQ==","disposition":"inline","content_id":"x"},
                        {"filename":"b","content":"YQ==","disposition":"inline","content_id":"x"}])"),
               "attachments[1].content_id", "used by another attachment");
  rejected_for(with(R"([{"filename":"a","content":"YQ==","disposition":"sideways"}])"), "attachments[0].disposition",
               "\"attachment\" or \"inline\"");
  rejected_for(with(R"([{"filename":"a","content":"YQ==","content_type":"text/plain; charset=utf-8"}])"),
               "attachments[0].content_type", "without parameters");
  rejected_for(with(R"([{"filename":"a","content":"YQ==","content_type":"multipart/mixed"}])"),
               "attachments[0].content_type", "cannot be attached");
  rejected_for(with(R"([{"filename":"a","content":"YQ==","size":1}])"), "attachments[0].size", "unknown field");
  rejected_for(R"({"raw":"From: a@b\r\n\r\nx","envelope":{"from":"a@b.example","to":["x@example.net"]},"attachments":[]})",
               "attachments", "not allowed together with raw");
  // Their size counts against the message limit, as base64 weighs on the wire: 413.
  auto small = settings();
  small.max_message_bytes = 3000;
  auto r = reject(with(R"([{"filename":"big.bin","content":")" + std::string(4000, 'A') + R"("}])"), small);
  CHECK(r.status == 413);
  REQUIRE_FALSE(r.errors.empty());
  CHECK(r.errors.front().field == "attachments");
}

TEST_CASE("send_at schedules the recipients, and their ids carry the time max_age counts from") {
  // now is 2023-11-14T22:13:20Z
  auto m = accept(R"({"from":"a@example.com","to":["x@example.net","y@example.net"],"text":"t",
                      "send_at":"2023-11-14T23:13:20.500+01:00"})");
  auto at = now + 500;  // 23:13:20.5 in UTC+1 is now (22:13:20Z) plus half a second
  CHECK(m.id.time_ms() == at);
  REQUIRE(m.recipients.size() == 2);
  for (const auto& r : m.recipients) {
    CHECK(r.next_attempt_at_ms == at);
    CHECK(r.id.time_ms() == at);
    CHECK(r.state == recipient_state::queued);
  }
  CHECK(m.recipients[0].id != m.recipients[1].id);
  auto raw = accept(R"({"raw":"RnJvbTogYUBleGFtcGxlLmNvbQ0KDQp4","envelope":{"from":"a@example.com","to":["x@example.net"]},
                        "send_at":"2023-11-15T22:13:20Z"})");
  CHECK(raw.recipients.at(0).next_attempt_at_ms == now + 24 * 3600 * 1000);
  auto past = accept(R"({"from":"a@example.com","to":"x@example.net","text":"t","send_at":"2020-01-01T00:00:00Z"})");
  CHECK(past.recipients.at(0).next_attempt_at_ms == now);  // past means now
  rejected_for(R"({"from":"a@example.com","to":"x@example.net","text":"t","send_at":"2023-11-18T22:13:21Z"})",
               "send_at", "more than 3d ahead");
  rejected_for(R"({"from":"a@example.com","to":"x@example.net","text":"t","send_at":"soon"})", "send_at", "RFC 3339");
  rejected_for(R"({"from":"a@example.com","to":"x@example.net","text":"t","send_at":1700000000})", "send_at", "RFC 3339");
}

TEST_CASE("base64 decoding accepts both alphabets and line breaks") {
  std::string out;
  CHECK(decode_base64("aGVsbG8gd29ybGQ=", out));
  CHECK(out == "hello world");
  CHECK(decode_base64("aGVs\r\nbG8g\nd29y bGQ", out));
  CHECK(out == "hello world");
  CHECK(decode_base64("-_8=", out));
  CHECK(out == "\xfb\xff");
  CHECK_FALSE(decode_base64("aGVsbG8*", out));
  CHECK_FALSE(decode_base64("aGV=sbG8", out));
  CHECK_FALSE(decode_base64("a", out));
}

TEST_CASE("a body of a million bad recipients gets one error, found before any is validated") {
  std::string body = R"({"from":"app@example.com","text":"t","to":[)";
  for (int i = 0; i < 1'000'000; ++i) body += i ? ",1" : "1";
  body += "]}";
  auto s = settings();
  s.max_json_values = 2'000'000;
  auto r = reject(body, s);
  REQUIRE(r.errors.size() == 1);
  CHECK(r.errors[0].field == "to");
  CHECK_THAT(r.errors[0].detail, Catch::Contains("got 1000000"));
}

TEST_CASE("a body past the value bound is refused while parsing") {
  std::string body = R"({"from":"app@example.com","text":"t","to":"a@example.net","metadata":{"a":[)";
  for (int i = 0; i < 5000; ++i) body += i ? ",0" : "0";
  body += "]}}";
  auto s = settings();
  s.max_json_values = 1000;
  auto r = reject(body, s);
  REQUIRE(r.errors.size() == 1);
  CHECK_THAT(r.errors[0].detail, Catch::Contains("more than 1000 values"));
  CHECK(r.errors[0].field.rfind("metadata.a[", 0) == 0);
}

TEST_CASE("the error list is bounded: the first 20 and a count of the rest") {
  auto s = settings();
  s.max_recipients = 100;
  std::string body = R"({"from":"app@example.com","text":"t","to":[)";
  for (int i = 0; i < 50; ++i) body += std::string(i ? "," : "") + "\"bad" + std::to_string(i) + "\"";
  body += "]}";
  auto r = reject(body, s);
  REQUIRE(r.errors.size() == 21);
  CHECK(r.errors[0].field == "to[0]");
  CHECK(r.errors[19].field == "to[19]");
  CHECK(r.errors[20].field == "");
  CHECK(r.errors[20].detail == "and 30 more errors not listed");
}

TEST_CASE("numbers that do not round-trip and duplicate keys are refused, naming where") {
  rejected_for(R"({"from":"a@example.com","to":"b@example.net","text":"t","metadata":{"n":1e999}})",
               "metadata.n", "not a finite");
  rejected_for(R"({"from":"a@example.com","to":"b@example.net","text":"t","metadata":{"n":-1e400}})",
               "metadata.n", "not a finite");
  rejected_for(R"({"from":"a@example.com","to":"b@example.net","text":"t","metadata":{"big":123456789012345678901234}})",
               "metadata.big", "beyond 64 bits");
  rejected_for(R"({"from":"a@example.com","to":"b@example.net","text":"t","metadata":{"k":1,"k":2}})",
               "metadata.k", "appears twice");
  rejected_for(R"({"from":"a@example.com","from":"b@example.com","to":"b@example.net","text":"t"})",
               "from", "appears twice");
  rejected_for(R"({"from":"a@example.com","to":["b@example.net",{"email":"c@example.net","email":"d@example.net"}],"text":"t"})",
               "to[1].email", "appears twice");
  // Keys that differ only by an escape are the same key.
  rejected_for(R"({"from":"a@example.com","to":"b@example.net","text":"t","metadata":{"k":1,"\u006b":2}})",
               "metadata.k", "appears twice");
  // Ordinary numbers are kept as given.
  auto m = accept(R"({"from":"a@example.com","to":"b@example.net","text":"t",
                      "metadata":{"i":-9223372036854775808,"u":18446744073709551615,"d":0.1,"e":1e300}})");
  CHECK(m.metadata_json == R"({"i":-9223372036854775808,"u":18446744073709551615,"d":1E-1,"e":1E300})");
}

TEST_CASE("recipients are stored in canonical form: A-label domains, unquoted where allowed") {
  auto m = accept(R"({"from":"app@bücher.example","to":["user@bücher.example","\"victim\"@Example.net",
                      "victim@example.net","x@xn--bcher-kva.example","x@BÜCHER.example"],"text":"t"})");
  REQUIRE(m.recipients.size() == 3);
  CHECK(m.recipients[0].address == "user@xn--bcher-kva.example");
  CHECK(m.recipients[0].domain == "xn--bcher-kva.example");
  CHECK(m.recipients[1].address == "victim@example.net");
  CHECK(m.recipients[2].address == "x@xn--bcher-kva.example");
  CHECK(m.mail_from == "app@xn--bcher-kva.example");
  rejected_for(R"({"from":"a@example.com","to":"a@\u2665.example","text":"t"})", "to",
               "internationalized domain is invalid");
}
