// Routing policies as plain code: MX ordering and null MX, site names, DNS TTLs read from raw
// answers, the expiring cache, retry schedules and site limits by pattern.
#include <catch2/catch.hpp>

#include <set>

#include "actors/policy/retry_schedule.hpp"
#include "actors/policy/route_cache.hpp"
#include "actors/services.hpp"
#include "net/dns.hpp"
#include "net/mx.hpp"

using namespace petrel;
using namespace std::chrono_literals;

TEST_CASE("MX records are ordered by preference, equal ones shuffled") {
  std::vector<mx_record> records{{20, "b.example."}, {10, "A.example"}, {20, "c.example"},
                                 {30, "d.example"}, {20, "b.example"}};
  std::set<std::string> middle_orders;
  for (std::uint64_t seed = 0; seed < 200; ++seed) {
    std::mt19937_64 rng(seed);
    auto ordered = order_mx(records, rng);
    REQUIRE(ordered.size() == 4);  // the duplicate b.example is dropped
    CHECK(ordered.front().host == "a.example");
    CHECK(ordered.back().host == "d.example");
    middle_orders.insert(ordered[1].host + "," + ordered[2].host);
  }
  CHECK(middle_orders == std::set<std::string>{"b.example,c.example", "c.example,b.example"});
}

TEST_CASE("a null MX is recognized (RFC 7505)") {
  CHECK(is_null_mx({{0, ""}}));
  CHECK(is_null_mx({{0, "."}}));
  CHECK_FALSE(is_null_mx({{0, "mx.example"}}));
  CHECK_FALSE(is_null_mx({{0, ""}, {10, "mx.example"}}));
}

TEST_CASE("site names depend on the host set only") {
  auto a = site_name({{10, "alt1.gmail-smtp-in.l.google.com."}, {5, "gmail-smtp-in.l.google.com"}});
  auto b = site_name({{1, "GMAIL-SMTP-IN.L.GOOGLE.COM"}, {2, "alt1.gmail-smtp-in.l.google.com"}});
  CHECK(a == b);
  CHECK(a == "alt1.gmail-smtp-in.l.google.com,gmail-smtp-in.l.google.com");
  CHECK(site_name({{10, "mx.other.example"}}) != a);
}

namespace {
// A DNS message: header, one question, then records as (type, ttl, rdata) in the given section.
struct record {
  int type;
  std::uint32_t ttl;
  std::vector<unsigned char> rdata;
};
std::vector<unsigned char> message(std::vector<record> answers, std::vector<record> authority) {
  std::vector<unsigned char> m = {0, 1, 0x81, 0x80, 0, 1, 0, static_cast<unsigned char>(answers.size()),
                                  0, static_cast<unsigned char>(authority.size()), 0, 0};
  // question: example.test MX IN
  for (unsigned char c : std::string("\x07" "example" "\x04" "test")) m.push_back(c);
  m.insert(m.end(), {0, 0, 15, 0, 1});
  auto add = [&](const record& r) {
    m.insert(m.end(), {0xC0, 12});  // compressed owner name -> the question's name
    m.insert(m.end(), {static_cast<unsigned char>(r.type >> 8), static_cast<unsigned char>(r.type), 0, 1});
    for (int shift = 24; shift >= 0; shift -= 8) m.push_back(static_cast<unsigned char>(r.ttl >> shift));
    m.insert(m.end(), {static_cast<unsigned char>(r.rdata.size() >> 8), static_cast<unsigned char>(r.rdata.size())});
    m.insert(m.end(), r.rdata.begin(), r.rdata.end());
  };
  for (const auto& r : answers) add(r);
  for (const auto& r : authority) add(r);
  return m;
}
std::vector<unsigned char> soa_rdata(std::uint32_t minimum) {
  std::vector<unsigned char> r = {0xC0, 12, 0xC0, 12};  // mname, rname
  for (int i = 0; i < 4; ++i) r.insert(r.end(), {0, 0, 0, 1});
  for (int shift = 24; shift >= 0; shift -= 8) r.push_back(static_cast<unsigned char>(minimum >> shift));
  return r;
}
}  // namespace

TEST_CASE("TTLs are read from answers, SOA minimum for negative ones") {
  std::vector<unsigned char> mx_rdata = {0, 10, 0xC0, 12};
  auto positive = message({{15, 300, mx_rdata}, {15, 120, mx_rdata}, {5, 10, {0xC0, 12}}}, {});
  CHECK(dns_answer_ttl(positive.data(), positive.size(), 15, 99) == 120);  // CNAME's 10 not MX
  auto negative = message({}, {{6, 3600, soa_rdata(60)}});
  CHECK(dns_answer_ttl(negative.data(), negative.size(), 15, 99) == 60);
  auto short_soa = message({}, {{6, 30, soa_rdata(600)}});
  CHECK(dns_answer_ttl(short_soa.data(), short_soa.size(), 15, 99) == 30);
}

TEST_CASE("TLSA answers are read, and only DANE-TA/DANE-EE records are usable for SMTP (RFC 7672)") {
  auto rdata = [](int usage, int selector, int matching, std::size_t length) {
    std::vector<unsigned char> r = {static_cast<unsigned char>(usage), static_cast<unsigned char>(selector),
                                    static_cast<unsigned char>(matching)};
    for (std::size_t i = 0; i < length; ++i) r.push_back(static_cast<unsigned char>(i));
    return r;
  };
  auto m = message({{52, 300, rdata(3, 1, 1, 32)}, {52, 300, rdata(2, 0, 2, 64)}, {52, 300, rdata(1, 1, 1, 32)},
                    {52, 300, rdata(3, 1, 1, 20)}, {52, 300, rdata(3, 2, 1, 32)}, {5, 300, {0xC0, 12}}},
                   {});
  std::vector<tlsa_record> records;
  REQUIRE(parse_tlsa_answer(m.data(), m.size(), records));
  REQUIRE(records.size() == 5);  // the CNAME is not a TLSA record
  CHECK(records[0].usage == 3);
  CHECK(records[0].selector == 1);
  CHECK(records[0].matching == 1);
  CHECK(records[0].data.size() == 32);
  CHECK(records[0].data[1] == '\x01');
  auto usable = usable_for_smtp(records);
  REQUIRE(usable.size() == 2);  // not PKIX-EE, not a SHA-256 of 20 octets, not selector 2
  CHECK(usable[0].usage == 3);
  CHECK(usable[1].usage == 2);
  for (std::size_t cut = 0; cut < m.size(); ++cut) {
    std::vector<tlsa_record> partial;
    CHECK_FALSE(parse_tlsa_answer(m.data(), cut, partial));
  }
}

TEST_CASE("malformed DNS messages give the fallback TTL, never a crash") {
  auto good = message({{15, 300, {0, 10, 0xC0, 12}}}, {});
  for (std::size_t cut = 0; cut < good.size(); ++cut)
    CHECK(dns_answer_ttl(good.data(), cut, 15, 77) == (cut == good.size() ? 300u : 77u));
  std::vector<unsigned char> loop = good;
  loop[12] = 0xC0;  // the question name points at itself
  loop[13] = 12;
  CHECK(dns_answer_ttl(loop.data(), loop.size(), 15, 77) == 77);
  CHECK(dns_answer_ttl(nullptr, 0, 15, 5) == 5);
}

TEST_CASE("the expiring cache drops expired entries and evicts the least recently used") {
  expiring_cache<int> cache(2);
  cache.put("a", 1, 1000);
  cache.put("b", 2, 1000);
  REQUIRE(cache.find("a", 500));  // a is now the most recently used
  cache.put("c", 3, 1000);        // evicts b
  CHECK(cache.find("b", 500) == nullptr);
  CHECK(*cache.find("a", 500) == 1);
  CHECK(*cache.find("c", 500) == 3);
  CHECK(cache.find("a", 1000) == nullptr);  // expired
  CHECK(cache.size() == 1);
}

TEST_CASE("the retry schedule follows its list, repeats the last step, and jitters within bounds") {
  retry_schedule s({60s, 300s, 900s}, 0.2, 72h);
  CHECK(s.delay_after(1, 0.5) == 60s);
  CHECK(s.delay_after(2, 0.5) == 300s);
  CHECK(s.delay_after(3, 0.5) == 900s);
  CHECK(s.delay_after(10, 0.5) == 900s);
  CHECK(s.delay_after(1, 0.0) == 48s);   // -20 %
  CHECK(s.delay_after(1, 0.999) > 71s);  // almost +20 %
  CHECK(s.delay_after(1, 0.999) < 72s);
}

TEST_CASE("a recipient expires instead of waiting past max_age") {
  retry_schedule s({std::chrono::milliseconds(60'000)}, 0, std::chrono::milliseconds(100'000));
  const std::int64_t created = 1'000'000;
  CHECK(s.next_attempt_ms(created, created + 10'000, 1, 0.5) == created + 70'000);
  CHECK(s.next_attempt_ms(created, created + 40'000, 2, 0.5) == 0);  // would be past 100 s
  CHECK_FALSE(s.expired(created, created + 99'999));
  CHECK(s.expired(created, created + 100'000));
}

TEST_CASE("site limits come from the first policy whose glob matches an MX host") {
  delivery_settings d;
  d.connection_limit = 10;
  site_policy google;
  google.match = "*.google.com";
  google.connection_limit = 3;
  google.tls = "required";
  site_policy all;
  all.match = "*";
  all.max_deliveries_per_connection = 7;
  d.sites = {google, all};
  route gmail;
  gmail.hosts = {{"ALT1.GMAIL-SMTP-IN.L.GOOGLE.COM", {"192.0.2.1"}}};
  auto g = site_limits_for(d, gmail);
  CHECK(g.connection_limit == 3);
  CHECK(g.tls == tls_mode::required);
  CHECK(g.max_deliveries_per_connection == 100);  // the first match wins alone
  CHECK(g.ready_queue == 6);
  route other;
  other.hosts = {{"mx.example.org", {"192.0.2.2"}}};
  auto o = site_limits_for(d, other);
  CHECK(o.connection_limit == 10);
  CHECK(o.max_deliveries_per_connection == 7);
}

TEST_CASE("A and AAAA answers combine: addresses of both, the shorter TTL, negatives remembered") {
  address_lookup v4{dns_outcome::found, {"192.0.2.1"}, 300, ""};
  address_lookup v6{dns_outcome::found, {"2001:db8::1"}, 60, ""};
  auto both = combine_address_lookups(v4, v6, false);
  CHECK(both.outcome == dns_outcome::found);
  CHECK(both.addresses == std::vector<std::string>{"192.0.2.1", "2001:db8::1"});
  CHECK(both.ttl == 60);
  CHECK(combine_address_lookups(v4, v6, true).addresses.front() == "2001:db8::1");
  // A negative AAAA answer does not shorten a found A's TTL.
  address_lookup no_v6{dns_outcome::no_records, {}, 30, ""};
  CHECK(combine_address_lookups(v4, no_v6, false).ttl == 300);
  // Both negative: remembered for the shorter negative TTL, whichever family gave it (the AAAA
  // branch's TTL was left at 0 before, and only the A branch's counted).
  address_lookup no_v4{dns_outcome::no_records, {}, 900, ""};
  auto none = combine_address_lookups(no_v4, no_v6, false);
  CHECK(none.outcome == dns_outcome::no_records);
  CHECK(none.ttl == 30);
  address_lookup nx{dns_outcome::no_domain, {}, 120, ""};
  CHECK(combine_address_lookups(nx, no_v6, false).outcome == dns_outcome::no_domain);
  address_lookup later{dns_outcome::temporary, {}, 0, "timeout"};
  auto temporary = combine_address_lookups(no_v4, later, false);
  CHECK(temporary.outcome == dns_outcome::temporary);
  CHECK(temporary.error == "timeout");
}
