// The event payload builders (actors/policy/event_data): every event type's data, with hostile
// texts inside, is valid JSON, keeps the texts exactly, and — wrapped as GET /v1/events serves
// it — passes docs/schemas/event.schema.json (checked by the jsonschema reference validator).
#include <catch2/catch.hpp>

#include <boost/json.hpp>
#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "actors/policy/event_data.hpp"

using namespace petrel;
namespace json = boost::json;

namespace {

// Quotes, backslashes, control characters, a NUL, UTF-8 and something that looks like JSON.
const std::string hostile = std::string("550 \"no\" \\ such\r\n\t\x01user ") + '\0' +
                            " ü 例 \",\"hard\":false}";

json::object as_object(const std::string& text) {
  auto v = json::parse(text);
  REQUIRE(v.is_object());
  return v.as_object();
}

// An event as the events API and webhooks serve it around a data object.
json::object wrap(std::string type, const std::string& data, bool per_recipient = true) {
  json::object e{{"id", "01JDX3Q7W5R8M2N4P6T8V0Y2Z4"}, {"type", type},
                 {"at", rfc3339(1764379553426)}, {"tenant", "01JDX3Q7W5R8M2N4P6T8V0Y2Z5"},
                 {"message", "01JDX3Q7W5R8M2N4P6T8V0Y2Z6"}, {"recipient", nullptr},
                 {"email", nullptr}, {"campaign", nullptr}, {"tags", json::array{}},
                 {"metadata", json::object{}}, {"data", as_object(data)}};
  if (per_recipient) {
    e["recipient"] = "01JDX3Q7W5R8M2N4P6T8V0Y2Z7";
    e["email"] = "user@example.com";
  }
  return e;
}

std::vector<json::object> samples() {
  classification hard{bounce_category::invalid_recipient, true, "5.1.1", 0};
  classification soft{bounce_category::rate_limited, false, "4.7.0", 3};
  std::vector<json::object> out;
  event_data::attempt_facts delivered;
  delivered.attempt = 1;
  delivered.smtp_code = 250;
  delivered.enhanced_code = "2.0.0";
  delivered.reply = hostile;
  delivered.mx_host = "mx.example.com";
  delivered.mx_ip = "192.0.2.1";
  delivered.source = "ip-1";
  delivered.source_ip = "198.51.100.1";
  delivered.tls = true;
  delivered.tls_version = "TLSv1.3";
  delivered.tls_cipher = "TLS_AES_256_GCM_SHA384";
  out.push_back(wrap("delivered", event_data::attempt(delivered)));
  event_data::attempt_facts deferred;
  deferred.attempt = 2;
  deferred.failure = &soft;
  deferred.error = hostile;  // no reply: a network error
  deferred.next_attempt_at_ms = 1764379999000;
  out.push_back(wrap("deferred", event_data::attempt(deferred)));
  event_data::attempt_facts bounced = delivered;
  bounced.smtp_code = 550;
  bounced.enhanced_code = "";
  bounced.failure = &hard;
  bounced.tls = false;
  out.push_back(wrap("bounced", event_data::attempt(bounced)));
  event_data::attempt_facts expired;
  expired.attempt = 9;
  expired.failure = &soft;
  expired.error = "past max_age after: 421 try later";
  out.push_back(wrap("expired", event_data::attempt(expired)));
  out.push_back(wrap("bounced", event_data::async_bounce({&hard, 550, hostile, "mx.example.com",
                                                          "reporter.example.com", "dsn"})));
  out.push_back(wrap("bounced", event_data::async_bounce({nullptr, 0, "", "", "", "ses"})));
  out.push_back(wrap("accepted", event_data::accepted(3), false));
  out.push_back(wrap("suppressed", event_data::suppressed_at_submission(hostile)));
  out.push_back(wrap("suppressed", event_data::suppressed_at_submission("")));
  out.push_back(wrap("suppressed", event_data::suppressed_at_delivery(4)));
  out.push_back(wrap("complained", event_data::complained("abuse", hostile, "arf")));
  out.push_back(wrap("complained", event_data::complained("not-spam", "", "arf")));
  out.push_back(wrap("unsubscribed", event_data::unsubscribed_one_click()));
  out.push_back(wrap("cancelled", event_data::cancelled("admin", hostile)));
  out.push_back(wrap("cancelled", event_data::cancelled("admin", "")));
  for (const char* action : {"suspend", "resume", "bounce", "flush"})
    out.push_back(wrap("admin_action",
                       event_data::admin_action(action, "domain", "example.com",
                                                std::string(action) == "suspend" ? 1764379999000 : 0,
                                                hostile, "admin"),
                       false));
  out.push_back(wrap("domain_verification_failed",
                     event_data::domain_verification_failed(
                         "example.com", R"({"dkim":[],"spf":{"status":"fail"},"verified":false})"),
                     false));
  out.push_back(wrap("domain_verification_failed",
                     event_data::domain_verification_failed("example.com", hostile), false));
  return out;
}

}  // namespace

TEST_CASE("event data keeps hostile texts exactly and stays one JSON object") {
  event_data::attempt_facts a;
  a.attempt = 1;
  a.smtp_code = 550;
  a.reply = hostile;
  auto o = as_object(event_data::attempt(a));
  CHECK(o.at("reply").as_string() == hostile);
  CHECK(o.at("smtp_code").as_int64() == 550);
  CHECK_FALSE(o.contains("hard"));  // the injected text did not become a key
  CHECK_FALSE(o.contains("mx_host"));  // no connection: no connection details
  auto c = as_object(event_data::cancelled("admin", hostile));
  CHECK(c.at("reason").as_string() == hostile);
  CHECK(c.size() == 2);
  auto v = as_object(event_data::domain_verification_failed("example.com", "not json"));
  CHECK(v.at("status").as_object().at("raw").as_string() == "not json");
}

TEST_CASE("an attempt reports the inferred enhanced code only when the reply had none") {
  classification c{bounce_category::invalid_recipient, true, "5.1.1", 0};
  event_data::attempt_facts a;
  a.failure = &c;
  a.smtp_code = 550;
  a.reply = "no such user";
  CHECK(as_object(event_data::attempt(a)).at("inferred_enhanced_code").as_string() == "5.1.1");
  a.enhanced_code = "5.1.1";
  auto o = as_object(event_data::attempt(a));
  CHECK_FALSE(o.contains("inferred_enhanced_code"));
  CHECK(o.at("enhanced_code").as_string() == "5.1.1");
  CHECK(o.at("category").as_string() == "invalid_recipient");
  CHECK(o.at("hard").as_bool());
}

TEST_CASE("the delivery log line embeds the event's data as an object") {
  event_record e;
  e.type = "delivered";
  e.at_ms = 1764379553426;
  e.data_json = event_data::accepted(2);
  auto line = as_object(event_data::delivery_log_line(e, "example.com", hostile));
  CHECK(line.at("email").as_string() == hostile);
  CHECK(line.at("at").as_string() == "2025-11-29T01:25:53.426Z");
  CHECK(line.at("data").as_object().at("recipients").as_int64() == 2);
  CHECK(as_object(event_data::delivery_log_line(e, "example.com", "")).at("email").is_null());
}

TEST_CASE("every event payload passes the published event schema", "[schema]") {
  auto dir = std::filesystem::temp_directory_path() / ("petrel-event-data-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  auto file = dir / "events.jsonl";
  {
    std::ofstream out(file);
    for (const auto& e : samples()) out << json::serialize(e) << "\n";
  }
  std::string command = "python3 " PETREL_SOURCE_DIR "/tests/unit/validate_events.py " PETREL_SOURCE_DIR
                        "/docs/schemas/event.schema.json " + file.string() + " > " +
                        (dir / "report.txt").string() + " 2>&1";
  int status = std::system(command.c_str());
  std::ifstream report(dir / "report.txt");
  std::string text((std::istreambuf_iterator<char>(report)), std::istreambuf_iterator<char>());
  INFO(text);
  CHECK(status == 0);
  CHECK(text.find(" 0 errors") != std::string::npos);
  std::filesystem::remove_all(dir);
}
