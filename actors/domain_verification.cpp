// A sender domain's DNS verification, as a coroutine on the I/O threads: each DKIM key's TXT
// record present with its public key, SPF authorizing every egress address (evaluated, with
// includes, by net/spf.cpp), DMARC present (its policy reported), and the return-path domain's
// MX pointing at the bounce listener. The report goes back to the senders actor.
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/json.hpp>
#include <caf/all.hpp>
#include <spdlog/spdlog.h>

#include "actors/actor_support.hpp"
#include "actors/services.hpp"
#include "net/spf.hpp"

namespace petrel {

namespace asio = boost::asio;
namespace json = boost::json;

namespace {

// Turns a dns_client lookup into something a coroutine can co_await. Not a coroutine itself:
// GCC 12 mishandles lambdas passed as coroutine parameters (it destroys them twice).
template <class Result, class Lookup>
asio::awaitable<Result> await_dns(std::shared_ptr<dns_client> dns, std::string name, Lookup lookup) {
  return asio::async_initiate<decltype(asio::use_awaitable), void(Result)>(
      [dns, name, lookup](auto handler) {
        auto executor = asio::get_associated_executor(handler);
        auto shared = std::make_shared<decltype(handler)>(std::move(handler));
        ((*dns).*lookup)(name, [executor, shared](Result r) {
          asio::post(executor, [shared, r = std::move(r)]() mutable { (*shared)(std::move(r)); });
        });
      },
      asio::use_awaitable);
}

class client_dns : public spf_dns {
 public:
  explicit client_dns(std::shared_ptr<dns_client> dns) : dns_(std::move(dns)) {}
  asio::awaitable<txt_lookup> txt(std::string name) override {
    return await_dns<txt_lookup>(dns_, std::move(name), &dns_client::lookup_txt);
  }
  asio::awaitable<address_lookup> addresses(std::string name) override {
    return await_dns<address_lookup>(dns_, std::move(name), &dns_client::lookup_addresses);
  }
  asio::awaitable<mx_lookup> mx(std::string name) override {
    return await_dns<mx_lookup>(dns_, std::move(name), &dns_client::lookup_mx);
  }

 private:
  std::shared_ptr<dns_client> dns_;
};

// The value of tag `name` in a "k=v; k=v" record, white space removed; empty when absent.
std::string tag_value(const std::string& record, const std::string& name) {
  std::size_t pos = 0;
  while (pos < record.size()) {
    auto end = record.find(';', pos);
    if (end == std::string::npos) end = record.size();
    auto item = record.substr(pos, end - pos);
    auto eq = item.find('=');
    if (eq != std::string::npos) {
      std::string key, value;
      for (char c : item.substr(0, eq))
        if (!std::isspace(static_cast<unsigned char>(c))) key += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      for (char c : item.substr(eq + 1))
        if (!std::isspace(static_cast<unsigned char>(c))) value += c;
      if (key == name) return value;
    }
    pos = end + 1;
  }
  return {};
}

// What the lookups found, as plain values (the JSON is made outside the coroutine).
struct check_findings {
  struct key {
    std::string selector, name, state, status;
  };
  std::vector<key> dkim;
  std::string spf_status, spf_detail;
  std::string dmarc_policy;  // "" when there is no DMARC record
  std::string return_path_status, return_path_domain;
  bool verified = true;
};

domain_check report_of(const check_findings& f) {
  json::array dkim;
  for (const auto& k : f.dkim)
    dkim.push_back(json::object{{"selector", k.selector}, {"name", k.name}, {"state", k.state}, {"status", k.status}});
  json::object spf{{"status", f.spf_status}};
  if (!f.spf_detail.empty()) spf["detail"] = f.spf_detail;
  json::object dmarc{{"status", f.dmarc_policy.empty() ? "missing" : "present"}};
  if (!f.dmarc_policy.empty()) dmarc["policy"] = f.dmarc_policy;
  json::object return_path{{"status", f.return_path_status}};
  if (!f.return_path_domain.empty()) return_path["domain"] = f.return_path_domain;
  return domain_check{f.verified, json::serialize(json::object{{"dkim", std::move(dkim)},
                                                               {"spf", std::move(spf)},
                                                               {"dmarc", std::move(dmarc)},
                                                               {"return_path", std::move(return_path)},
                                                               {"verified", f.verified}})};
}

// GCC 12 reports a mismatched operator delete at the end of this coroutine: Asio's awaitable
// frames are allocated and freed by its own operator new/delete, which the warning does not see
// through once the frame holds these findings (a false positive of GCC 12).
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
asio::awaitable<domain_check> run_checks(std::shared_ptr<dns_client> dns, sender_domain_record d,
                                         std::vector<std::string> ips, domains_config cfg) {
  client_dns resolver(dns);
  check_findings f;
  for (const auto& k : d.keys) {
    if (k.state == "retired") continue;
    auto name = k.selector + "._domainkey." + d.domain;
    auto txt = co_await resolver.txt(name);
    std::string status = "missing";
    if (txt.outcome == dns_outcome::temporary) {
      status = "dns_error";
    } else {
      for (const auto& r : txt.records) {
        auto p = tag_value(r, "p");
        if (p.empty()) continue;
        status = p == k.public_key ? "ok" : "mismatch";
        if (status == "ok") break;
      }
    }
    if (k.state == "active" && status != "ok") f.verified = false;
    f.dkim.push_back({k.selector, name, k.state, status});
  }
  if (ips.empty()) {
    f.spf_status = "not_checked";
    f.spf_detail = "no egress source address is configured";
  } else {
    f.spf_status = "pass";
    for (const auto& ip : ips) {
      auto e = co_await spf_check(resolver, ip, d.domain);
      if (e.result != spf_result::pass) {
        f.spf_status = std::string(to_string(e.result));
        f.spf_detail = ip + ": " + e.explanation;
        f.verified = false;
      }
    }
  }
  auto dmarc = co_await resolver.txt("_dmarc." + d.domain);
  for (const auto& r : dmarc.records)
    if (r.rfind("v=DMARC1", 0) == 0) f.dmarc_policy = tag_value(r, "p");
  if (cfg.bounce_mx_host.empty()) {
    f.return_path_status = "not_configured";
  } else {
    f.return_path_domain = cfg.return_path_label + "." + d.domain;
    auto mx = co_await resolver.mx(f.return_path_domain);
    bool aligned = false;
    for (const auto& r : mx.records)
      if (normalize_host(r.host) == normalize_host(cfg.bounce_mx_host)) aligned = true;
    f.return_path_status = aligned ? "aligned" : "missing";
  }
  co_return report_of(f);
}
#pragma GCC diagnostic pop

}  // namespace

void start_domain_verification(const std::shared_ptr<delivery_runtime>& runtime,
                               senders_actor senders, sender_domain_record domain, std::string name,
                               std::vector<std::string> egress_addresses, domains_config config) {
  asio::co_spawn(asio::make_strand(*runtime->io),
                 run_checks(runtime->dns, std::move(domain), std::move(egress_addresses), std::move(config)),
                 [senders, name](std::exception_ptr e, domain_check result) {
                   if (e) {
                     result.verified = false;
                     result.status_json = "{\"error\":\"the verification failed unexpectedly\"}";
                   }
                   caf::anon_send(senders, verify_atom::value, name, std::move(result));
                 });
}

}  // namespace petrel
