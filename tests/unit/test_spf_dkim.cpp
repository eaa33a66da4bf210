// SPF evaluation against an in-memory DNS (include chains, the lookup limit, qualifiers),
// DKIM canonicalization vectors, and the at-rest encryption of keys.
#include <catch2/catch.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_future.hpp>

#include <map>
#include <set>

#include "net/mail/dkim.hpp"
#include "net/secret_box.hpp"
#include "net/spf.hpp"

using namespace petrel;
namespace asio = boost::asio;

namespace {

class fake_dns : public spf_dns {
 public:
  std::map<std::string, std::vector<std::string>> txt_records, a_records;
  std::map<std::string, std::vector<mx_record>> mx_records;
  std::set<std::string> broken;
  int queries = 0;

  asio::awaitable<txt_lookup> txt(std::string name) override {
    ++queries;
    txt_lookup out;
    if (broken.count(name)) co_return out;  // temporary
    auto it = txt_records.find(name);
    out.outcome = it == txt_records.end() ? dns_outcome::no_domain : dns_outcome::found;
    if (it != txt_records.end()) out.records = it->second;
    co_return out;
  }
  asio::awaitable<address_lookup> addresses(std::string name) override {
    ++queries;
    address_lookup out;
    auto it = a_records.find(name);
    out.outcome = it == a_records.end() ? dns_outcome::no_domain : dns_outcome::found;
    if (it != a_records.end()) out.addresses = it->second;
    co_return out;
  }
  asio::awaitable<mx_lookup> mx(std::string name) override {
    ++queries;
    mx_lookup out;
    auto it = mx_records.find(name);
    out.outcome = it == mx_records.end() ? dns_outcome::no_domain : dns_outcome::found;
    if (it != mx_records.end()) out.records = it->second;
    co_return out;
  }
};

spf_evaluation check(fake_dns& dns, const std::string& ip, const std::string& domain) {
  asio::io_context io;
  auto f = asio::co_spawn(io, spf_check(dns, ip, domain), asio::use_future);
  io.run();
  return f.get();
}

}  // namespace

TEST_CASE("SPF: ip4, ip6, a, mx and the all qualifiers") {
  fake_dns dns;
  dns.txt_records["example.com"] = {"v=spf1 ip4:192.0.2.0/24 ip6:2001:db8::/32 a mx:mail.example.com -all"};
  dns.a_records["example.com"] = {"198.51.100.7"};
  dns.mx_records["mail.example.com"] = {{10, "mx.example.com"}};
  dns.a_records["mx.example.com"] = {"203.0.113.9"};
  CHECK(check(dns, "192.0.2.200", "example.com").result == spf_result::pass);
  CHECK(check(dns, "2001:db8::1", "example.com").result == spf_result::pass);
  CHECK(check(dns, "198.51.100.7", "example.com").result == spf_result::pass);
  CHECK(check(dns, "203.0.113.9", "example.com").result == spf_result::pass);
  auto miss = check(dns, "192.0.3.1", "example.com");
  CHECK(miss.result == spf_result::fail);
  CHECK_THAT(miss.explanation, Catch::Contains("-all"));
  dns.txt_records["soft.example"] = {"v=spf1 ip4:192.0.2.1 ~all"};
  CHECK(check(dns, "10.0.0.1", "soft.example").result == spf_result::softfail);
  dns.txt_records["neutral.example"] = {"v=spf1 ip4:192.0.2.1 ?all"};
  CHECK(check(dns, "10.0.0.1", "neutral.example").result == spf_result::neutral);
  dns.txt_records["nothing.example"] = {"v=spf1 ip4:192.0.2.1"};
  CHECK(check(dns, "10.0.0.1", "nothing.example").result == spf_result::neutral);
}

TEST_CASE("SPF: include chains pass through, and redirect") {
  fake_dns dns;
  dns.txt_records["example.com"] = {"unrelated text", "v=spf1 include:_spf.provider.test -all"};
  dns.txt_records["_spf.provider.test"] = {"v=spf1 include:_a.provider.test include:_b.provider.test ~all"};
  dns.txt_records["_a.provider.test"] = {"v=spf1 ip4:10.1.0.0/16 -all"};
  dns.txt_records["_b.provider.test"] = {"v=spf1 ip4:10.2.0.0/16 -all"};
  auto r = check(dns, "10.2.3.4", "example.com");
  CHECK(r.result == spf_result::pass);
  CHECK(r.lookups == 3);
  // An include that does not match is no match (its -all does not fail the outer record).
  CHECK(check(dns, "10.9.9.9", "example.com").result == spf_result::fail);
  dns.txt_records["redirected.example"] = {"v=spf1 redirect=_spf.provider.test"};
  CHECK(check(dns, "10.1.0.1", "redirected.example").result == spf_result::pass);
  CHECK(check(dns, "10.9.0.1", "redirected.example").result == spf_result::softfail);
}

TEST_CASE("SPF: more than 10 lookups is a permerror") {
  fake_dns dns;
  std::string chain = "v=spf1";
  for (int i = 0; i < 11; ++i) {
    chain += " include:i" + std::to_string(i) + ".test";
    dns.txt_records["i" + std::to_string(i) + ".test"] = {"v=spf1 ip4:10.0.0." + std::to_string(i) + " -all"};
  }
  dns.txt_records["many.test"] = {chain + " -all"};
  CHECK(check(dns, "10.0.0.9", "many.test").result == spf_result::pass);  // found by the 10th
  auto r = check(dns, "10.0.0.200", "many.test");
  CHECK(r.result == spf_result::permerror);
  CHECK_THAT(r.explanation, Catch::Contains("10 DNS lookups"));
  // A loop is bounded too.
  dns.txt_records["loop.test"] = {"v=spf1 include:loop.test -all"};
  CHECK(check(dns, "10.0.0.1", "loop.test").result == spf_result::permerror);
}

TEST_CASE("SPF: none, permerror and temperror cases") {
  fake_dns dns;
  CHECK(check(dns, "10.0.0.1", "nospf.test").result == spf_result::none);
  dns.txt_records["two.test"] = {"v=spf1 -all", "v=spf1 +all"};
  CHECK(check(dns, "10.0.0.1", "two.test").result == spf_result::permerror);
  dns.txt_records["bad.test"] = {"v=spf1 frobnicate -all"};
  CHECK(check(dns, "10.0.0.1", "bad.test").result == spf_result::permerror);
  dns.txt_records["macro.test"] = {"v=spf1 exists:%{i}.spf.test -all"};
  CHECK(check(dns, "10.0.0.1", "macro.test").result == spf_result::permerror);
  dns.txt_records["dangling.test"] = {"v=spf1 include:nowhere.test -all"};
  CHECK(check(dns, "10.0.0.1", "dangling.test").result == spf_result::permerror);
  dns.broken.insert("flaky.test");
  CHECK(check(dns, "10.0.0.1", "flaky.test").result == spf_result::temperror);
  CHECK(check(dns, "not-an-ip", "two.test").result == spf_result::permerror);
}

TEST_CASE("DKIM relaxed canonicalization (RFC 6376 3.4.2, 3.4.4)") {
  CHECK(dkim_relaxed_header("SubJect", " Hello   \t world \r\n\t again  ") == "subject:Hello world again");
  CHECK(dkim_relaxed_header("X", "") == "x:");
  // The RFC 6376 3.4.5 example, relaxed body.
  CHECK(dkim_relaxed_body(" C \r\nD \t E\r\n\r\n\r\n") == " C\r\nD E\r\n");
  CHECK(dkim_relaxed_body("") == "");
  CHECK(dkim_relaxed_body("\r\n\r\n") == "");
  CHECK(dkim_relaxed_body("no final break") == "no final break\r\n");
  CHECK(dkim_relaxed_body("a  \r\n\r\nb\r\n") == "a\r\n\r\nb\r\n");
}

TEST_CASE("DKIM signatures carry the expected tags and over-sign") {
  auto pem = generate_dkim_key(dkim_algorithm::ed25519_sha256);
  auto signer = dkim_signer::from_pem("example.com", "s1", pem);
  REQUIRE(signer);
  CHECK(signer.value()->algorithm() == dkim_algorithm::ed25519_sha256);
  CHECK(signer.value()->public_key_base64().size() == 44);  // 32 bytes
  CHECK(signer.value()->dns_record().rfind("v=DKIM1; k=ed25519; p=", 0) == 0);
  std::string message = "From: a@example.com\r\nTo: b@example.net\r\nTo: c@example.net\r\nSubject: x\r\n\r\nbody\r\n";
  auto header = signer.value()->sign(message, 1700000000);
  std::string unfolded;
  for (char c : header)
    if (c != '\r' && c != '\n' && c != '\t') unfolded += c;
  CHECK_THAT(unfolded, Catch::Contains("a=ed25519-sha256;"));
  CHECK_THAT(unfolded, Catch::Contains("c=relaxed/relaxed;"));
  CHECK_THAT(unfolded, Catch::Contains("d=example.com;"));
  CHECK_THAT(unfolded, Catch::Contains("t=1700000000;"));
  CHECK_THAT(unfolded, Catch::Contains("h=from:from:to:to:to:subject:subject:date:message-id:list-unsubscribe;"));
  CHECK(unfolded.find(" l=") == std::string::npos);
  for (std::size_t i = 0, start = 0; i < header.size(); ++i)
    if (header[i] == '\n') {
      CHECK(i - start <= 80);  // folded
      start = i + 1;
    }
  CHECK_FALSE(dkim_signer::from_pem("example.com", "s", "not a key"));
  auto rsa = dkim_signer::from_pem("example.com", "r", generate_dkim_key(dkim_algorithm::rsa_sha256, 1024));
  REQUIRE(rsa);
  CHECK(rsa.value()->dns_record().rfind("v=DKIM1; k=rsa; p=MIGf", 0) == 0);
}

TEST_CASE("secrets sealed at rest open only with their key") {
  std::string key(32, 'k'), other(32, 'o');
  auto sealed = seal_secret(key, "-----BEGIN PRIVATE KEY-----\nabc\n");
  CHECK(is_sealed(sealed));
  CHECK(sealed.find("BEGIN") == std::string::npos);
  CHECK(open_secret(key, sealed).value() == "-----BEGIN PRIVATE KEY-----\nabc\n");
  CHECK_FALSE(open_secret(other, sealed));
  auto tampered = sealed;
  tampered[tampered.size() - 5] = tampered[tampered.size() - 5] == 'A' ? 'B' : 'A';
  CHECK_FALSE(open_secret(key, tampered));
  CHECK(open_secret(key, "plain pem").value() == "plain pem");  // stored before encryption
}
