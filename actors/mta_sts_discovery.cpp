// MTA-STS discovery (RFC 8461 3) as a coroutine on the I/O threads: the _mta-sts TXT record,
// then, if its id differs from the cached policy's, the policy from
// https://mta-sts.<domain>/.well-known/mta-sts.txt over verified TLS (no redirects, 200 and
// text/plain only, bounded size). The result goes back to the resolver actor, which caches it.
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <caf/all.hpp>

#include "actors/services.hpp"
#include "net/https_client.hpp"
#include "net/mail/mta_sts.hpp"

namespace petrel {

namespace asio = boost::asio;

namespace {

// RFC 8461 3.3: a policy is small; anything larger is refused.
constexpr std::size_t max_policy_bytes = 64 * 1024;

template <class Result, class Lookup>
asio::awaitable<Result> lookup(std::shared_ptr<dns_client> dns, std::string name, Lookup method) {
  return asio::async_initiate<decltype(asio::use_awaitable), void(Result)>(
      [dns, name, method](auto handler) {
        auto executor = asio::get_associated_executor(handler);
        auto shared = std::make_shared<decltype(handler)>(std::move(handler));
        ((*dns).*method)(name, [executor, shared](Result r) {
          asio::post(executor, [shared, r = std::move(r)]() mutable { (*shared)(std::move(r)); });
        });
      },
      asio::use_awaitable);
}

asio::awaitable<sts_result> discover(std::shared_ptr<delivery_runtime> runtime, std::string domain,
                                     std::string cached_id, mta_sts_config cfg) {
  sts_result out;
  auto txt = co_await lookup<txt_lookup>(runtime->dns, "_mta-sts." + domain, &dns_client::lookup_txt);
  if (txt.outcome == dns_outcome::temporary) {
    out.error = "the _mta-sts record could not be looked up: " + txt.error;
    co_return out;
  }
  std::vector<std::string> records;
  for (const auto& r : txt.records)
    if (r.rfind("v=STSv1", 0) == 0) records.push_back(r);
  if (records.empty()) co_return out;  // no policy
  out.found = true;
  if (records.size() > 1) {
    out.error = "more than one _mta-sts record";  // RFC 8461 3.1: as if none
    out.found = false;
    co_return out;
  }
  auto id = parse_mta_sts_record(records.front());
  if (!id) {
    out.error = id.error();
    co_return out;
  }
  out.id = id.value();
  if (out.id == cached_id) {
    out.unchanged = true;
    co_return out;
  }
  auto host = "mta-sts." + domain;
  auto addresses = co_await lookup<address_lookup>(runtime->dns, host, &dns_client::lookup_addresses);
  if (addresses.addresses.empty()) {
    out.error = "the policy host " + host + " has no address";
    co_return out;
  }
  auto executor = co_await asio::this_coro::executor;
  auto response = co_await https_get(executor, *runtime->https_tls, host, addresses.addresses.front(),
                                     cfg.port, "/.well-known/mta-sts.txt", cfg.timeout,
                                     max_policy_bytes);
  if (response.status != 200) {
    out.error = response.status ? "the policy host answered " + std::to_string(response.status)
                                : response.error;
    co_return out;
  }
  if (response.content_type.rfind("text/plain", 0) != 0) {
    out.error = "the policy is not text/plain";
    co_return out;
  }
  auto policy = parse_mta_sts_policy(response.body);
  if (!policy) {
    out.error = policy.error();
    co_return out;
  }
  out.mode = policy->mode;
  out.mx = policy->mx;
  out.max_age = policy->max_age;
  co_return out;
}

}  // namespace

void start_mta_sts_discovery(const std::shared_ptr<delivery_runtime>& runtime,
                             resolver_actor resolver, std::string domain, std::string cached_id,
                             mta_sts_config config) {
  auto name = domain;
  asio::co_spawn(asio::make_strand(*runtime->io),
                 discover(runtime, std::move(domain), std::move(cached_id), std::move(config)),
                 [resolver, name](std::exception_ptr e, sts_result result) {
                   if (e) result.error = "MTA-STS discovery failed unexpectedly";
                   caf::anon_send(resolver, sts_atom::value, name, std::move(result));
                 });
}

}  // namespace petrel
