// Webhook helpers: URL validation, the public-address check that keeps endpoints off private
// networks, the signature (a known vector, computed independently with Python's hmac), the
// event JSON.
#include <catch2/catch.hpp>

#include "actors/webhook_support.hpp"

using namespace petrel;

TEST_CASE("webhook URLs: https with a host, a port, a path; nothing else", "[webhooks]") {
  auto u = parse_webhook_url("https://Hooks.Example.com:8443/petrel/in?x=1", false);
  REQUIRE(u);
  CHECK(u->https);
  CHECK(u->host == "hooks.example.com");
  CHECK(u->port == 8443);
  CHECK(u->target == "/petrel/in?x=1");
  auto plain = parse_webhook_url("https://hooks.example.com", false);
  REQUIRE(plain);
  CHECK(plain->port == 443);
  CHECK(plain->target == "/");
  auto v6 = parse_webhook_url("https://[2001:db8::1]:9000/x", false);
  REQUIRE(v6);
  CHECK(v6->host == "2001:db8::1");
  CHECK(v6->port == 9000);
  CHECK_FALSE(parse_webhook_url("http://hooks.example.com/", false));
  CHECK(parse_webhook_url("http://hooks.example.com/", true));
  for (const char* bad : {"ftp://x.example/", "https://user:pw@x.example/", "https://x.example/#frag",
                          "https:///path", "https://x.example:0/", "https://x.example:99999/", "https://x.example:ab/",
                          "https://x .example/", "https://[::1/", "https://ex\\ample.com/", "hooks.example.com"})
    CHECK_FALSE(parse_webhook_url(bad, true));
  CHECK_FALSE(parse_webhook_url("https://x.example/" + std::string(2000, 'a'), false));
  // Numeric spellings a permissive resolver turns into 127.0.0.1 are refused at registration.
  for (const char* numeric : {"https://2130706433/", "https://0x7f000001/", "https://127.1/",
                              "https://0177.0.0.1/", "https://127.0.1/", "https://1.0x7f/",
                              "https://017700000001:8443/x"}) {
    auto u = parse_webhook_url(numeric, false);
    CHECK_FALSE(u);
    if (!u) CHECK_THAT(u.error(), Catch::Contains("numeric"));
  }
  CHECK(parse_webhook_url("https://127.0.0.1/", false));  // a real literal: the address check decides
  CHECK(parse_webhook_url("https://1password.example/", false));
  CHECK(parse_webhook_url("https://0x.example/", false));
}

TEST_CASE("webhook addresses: only the public internet", "[webhooks]") {
  for (const char* ok : {"93.184.216.34", "8.8.8.8", "2606:2800:220:1:248:1893:25c8:1946", "::ffff:8.8.8.8"})
    CHECK(is_public_address(ok));
  for (const char* no : {"127.0.0.1", "10.1.2.3", "172.16.0.1", "172.31.255.255", "192.168.1.1", "169.254.169.254",
                         "100.64.0.1", "0.0.0.0", "224.0.0.1", "255.255.255.255", "192.0.2.1", "198.18.0.1",
                         "::1", "::", "fe80::1", "fd00::1", "fc00::1", "ff02::1", "2001:db8::1", "::ffff:127.0.0.1",
                         "::ffff:10.0.0.1", "64:ff9b::a00:1", "not an ip", ""})
    CHECK_FALSE(is_public_address(no));
  CHECK(is_public_address("172.32.0.1"));  // just outside 172.16/12
}

TEST_CASE("webhook signature: HMAC-SHA256 over timestamp, dot, body", "[webhooks]") {
  // python3 -c 'import hmac,hashlib; print(hmac.new(b"whsec_test", b"1764392462.{\"a\":1}", hashlib.sha256).hexdigest())'
  CHECK(webhook_signature("whsec_test", 1764392462, "{\"a\":1}") ==
        "t=1764392462,v1=064cb77f47fca7ee529775aa8991cd7c961a7f9300eb663cfa7243189a5d4d62");
  CHECK(webhook_signature("whsec_other", 1764392462, "{\"a\":1}") !=
        webhook_signature("whsec_test", 1764392462, "{\"a\":1}"));
  // While a rotation overlaps, the previous secret's signature follows the new one's.
  auto both = webhook_signature("whsec_new", 1764392462, "{\"a\":1}", "whsec_test");
  CHECK(both.rfind(webhook_signature("whsec_new", 1764392462, "{\"a\":1}") + ",v1=", 0) == 0);
  CHECK(both.substr(both.rfind(",v1=") + 4) == "064cb77f47fca7ee529775aa8991cd7c961a7f9300eb663cfa7243189a5d4d62");
}

TEST_CASE("event JSON: ids, message fields and data; broken stored JSON degrades", "[webhooks]") {
  event_view v;
  v.seq = 7;
  v.event.id = new_id();
  v.event.type = "delivered";
  v.event.at_ms = 1764392462123;
  v.event.message_id = new_id();
  v.recipient = "a@example.net";
  v.campaign = "c";
  v.tags_json = "[\"t\"]";
  v.metadata_json = "{\"k\":1}";
  v.event.data_json = "{\"smtp_code\":250}";
  auto text = event_json(v);
  CHECK_THAT(text, Catch::Contains("\"type\":\"delivered\""));
  CHECK_THAT(text, Catch::Contains("\"at\":\"2025-11-29T05:01:02.123Z\""));
  CHECK_THAT(text, Catch::Contains("\"email\":\"a@example.net\""));
  CHECK_THAT(text, Catch::Contains("\"tenant\":null"));
  CHECK_THAT(text, Catch::Contains("\"data\":{\"smtp_code\":250}"));
  v.metadata_json = "{broken";
  CHECK_THAT(event_json(v), Catch::Contains("\"metadata\":{}"));
  auto batch = webhook_batch_json(v.event.id, {v, v});
  CHECK(batch.rfind("{\"webhook\":\"" + v.event.id.str() + "\",\"events\":[{", 0) == 0);
}
