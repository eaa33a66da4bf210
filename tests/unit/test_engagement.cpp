// Opens and clicks as plain code: the machine heuristics, the client's address behind proxies
// (actors/policy/engagement.hpp), and whether and how a submission is tracked
// (actors/policy/message_preparation.hpp).
#include <catch2/catch.hpp>

#include <cstring>

#include "actors/policy/engagement.hpp"
#include "actors/policy/message_preparation.hpp"
#include "net/dns.hpp"
#include "net/mail/mime_message.hpp"

using namespace petrel;

namespace {
const char* browser = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 Chrome/131.0 Safari/537.36";

std::vector<ip_network> networks(std::initializer_list<const char*> texts) {
  std::vector<ip_network> out;
  for (const char* t : texts) {
    ip_network n;
    std::string error;
    REQUIRE(parse_ip_network(t, n, error));
    out.push_back(n);
  }
  return out;
}
}  // namespace

TEST_CASE("engagement: machine hits are told by method, network, user agent and timing", "[engagement]") {
  hit_facts f{"GET", browser, "203.0.113.9", 100'000, 10'000, 2'000};
  CHECK_FALSE(judge_hit(f).machine);
  CHECK(judge_hit(f).reason.empty());
  auto with = [&](auto change) {
    auto g = f;
    change(g);
    return judge_hit(g).reason;
  };
  CHECK(with([](hit_facts& g) { g.method = "HEAD"; }) == "head_request");
  CHECK(with([](hit_facts& g) { g.client_ip = "17.58.100.1"; }) == "apple_privacy_proxy");
  CHECK(with([](hit_facts& g) { g.client_ip = "::ffff:17.0.0.1"; }) == "apple_privacy_proxy");
  CHECK(with([](hit_facts& g) { g.client_ip = "18.0.0.1"; }).empty());
  CHECK(with([](hit_facts& g) { g.user_agent = "  "; }) == "no_user_agent");
  for (const char* agent : {"python-requests/2.28", "curl/7.88.1", "Barracuda Sentinel (EE)", "Mozilla/5.0 (compatible; bingbot/2.0)",
                            "Go-http-client/1.1", "Mozilla/5.0 HeadlessChrome/120"})
    CHECK(with([&](hit_facts& g) { g.user_agent = agent; }) == "scanner_user_agent");
  // Gmail's and Yahoo's image proxies fetch when a person opens the message: a person's open.
  CHECK(with([](hit_facts& g) { g.user_agent = "Mozilla/5.0 (Windows NT 5.1) (via ggpht.com GoogleImageProxy)"; }).empty());
  CHECK(with([](hit_facts& g) { g.at_ms = 11'999; }) == "soon_after_delivery");
  CHECK(with([](hit_facts& g) { g.at_ms = 12'000; }).empty());
  CHECK(with([](hit_facts& g) { g.delivered_at_ms = 0; g.at_ms = 10'001; }).empty());  // delivery unknown
  CHECK(with([](hit_facts& g) { g.machine_window_ms = 0; g.at_ms = 10'001; }).empty());
}

TEST_CASE("engagement: the client behind trusted proxies is the last untrusted forwarded address", "[engagement]") {
  auto proxies = networks({"10.0.0.0/8", "127.0.0.1"});
  CHECK(client_address("198.51.100.7", "1.2.3.4", proxies) == "198.51.100.7");  // not a proxy: ignored
  CHECK(client_address("10.1.1.1", "", proxies) == "10.1.1.1");
  CHECK(client_address("10.1.1.1", "1.2.3.4", proxies) == "1.2.3.4");
  CHECK(client_address("10.1.1.1", "6.6.6.6, 1.2.3.4, 10.2.2.2", proxies) == "1.2.3.4");
  CHECK(client_address("127.0.0.1", " 10.3.3.3 ,10.2.2.2", proxies) == "10.3.3.3");
  CHECK(client_address("10.1.1.1", "1.2.3.4, not-an-ip", proxies) == "10.1.1.1");
  CHECK(client_address("10.1.1.1", "1.2.3.4", {}) == "10.1.1.1");
}

TEST_CASE("tracking decisions: the message's wish over the tenant's defaults, where URLs can be made", "[engagement]") {
  tracking_environment env{true, "https://t.node.example", "https"};
  tenant_record::tracking_settings tenant;
  auto d = decide_tracking(env, tenant, -1, -1);
  CHECK((!d.opens && !d.clicks && d.refusal.empty()));
  d = decide_tracking(env, tenant, 1, -1);
  CHECK((d.opens && !d.clicks && d.base_url == "https://t.node.example"));
  tenant.opens = tenant.clicks = true;
  d = decide_tracking(env, tenant, 0, -1);
  CHECK((!d.opens && d.clicks));
  tenant.domain = "links.example.com";
  CHECK(decide_tracking(env, tenant, -1, -1).base_url == "https://t.node.example");  // not verified yet
  tenant.verified = true;
  CHECK(decide_tracking(env, tenant, -1, -1).base_url == "https://links.example.com");
  // Nowhere to point: the defaults do nothing, an explicit wish is refused.
  env.node_base_url.clear();
  tenant.verified = false;
  d = decide_tracking(env, tenant, -1, -1);
  CHECK((!d.opens && !d.clicks && d.refusal.empty()));
  CHECK_FALSE(decide_tracking(env, tenant, -1, 1).refusal.empty());
  env.enabled = false;
  CHECK(decide_tracking(env, tenant, -1, -1).refusal.empty());
  CHECK(decide_tracking(env, tenant, 1, 0).refusal.find("not enabled") != std::string::npos);
}

TEST_CASE("tracking a message: copies per recipient only when there is something to track", "[engagement]") {
  auto spec = std::make_shared<message_spec>();
  spec->from = parse_mailbox("a@example.com").value();
  spec->to = {parse_mailbox("x@example.net").value()};
  spec->subject = "s";
  spec->html = "<p>no links</p>";
  message_record m;
  m.content = "built";
  recipient_record r;
  r.address = "x@example.net";
  m.recipients.push_back(r);
  m.spec = spec;
  tracking_decision clicks_only{false, true, "https://t.example", ""};
  CHECK_FALSE(apply_tracking(m, clicks_only, 5));  // no link: nothing to track
  CHECK(m.content == "built");
  CHECK_FALSE(m.templated);
  tracking_decision opens{true, false, "https://t.example", ""};
  REQUIRE(apply_tracking(m, opens, 5));
  CHECK(m.templated);
  CHECK(m.tracking_expires_ms == 5);
  CHECK(m.tracking_links.empty());
  CHECK(m.recipients[0].personal_json == R"({"email":"x@example.net"})");
  CHECK_FALSE(m.spec);
  message_record raw;
  raw.content = "raw";
  CHECK_FALSE(apply_tracking(raw, opens, 5));  // no spec, no source: a raw message
}

TEST_CASE("dns: a CNAME answer is read for its owner; malformed answers are refused", "[engagement]") {
  // Header, question links.example.com CNAME IN, answer: links.example.com (pointer) CNAME
  // Track.Petrel.Example.
  std::vector<unsigned char> m = {0x12, 0x34, 0x81, 0x80, 0, 1, 0, 1, 0, 0, 0, 0};
  auto name = [&](std::initializer_list<const char*> labels) {
    for (const char* l : labels) {
      m.push_back(static_cast<unsigned char>(std::strlen(l)));
      m.insert(m.end(), l, l + std::strlen(l));
    }
    m.push_back(0);
  };
  name({"links", "example", "com"});
  m.insert(m.end(), {0, 5, 0, 1});
  m.insert(m.end(), {0xc0, 12, 0, 5, 0, 1, 0, 0, 1, 0x2c});
  std::vector<unsigned char> target;
  std::swap(m, target);
  name({"Track", "Petrel", "Example"});
  std::swap(m, target);
  m.push_back(0);
  m.push_back(static_cast<unsigned char>(target.size()));
  m.insert(m.end(), target.begin(), target.end());
  std::string out;
  REQUIRE(parse_cname_answer(m.data(), m.size(), "Links.Example.com.", out));
  CHECK(out == "track.petrel.example");
  REQUIRE(parse_cname_answer(m.data(), m.size(), "other.example.com", out));
  CHECK(out.empty());
  CHECK_FALSE(parse_cname_answer(m.data(), m.size() - 3, "links.example.com", out));
}
