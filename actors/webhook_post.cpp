// Webhook POSTs on the I/O threads (see start_webhook_post in services.hpp): the endpoint's
// host is resolved with the node's DNS client, addresses off the public internet are refused
// unless webhooks.allow_private_networks, and the outcome goes back to the endpoint's actor.
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <caf/all.hpp>

#include "actors/services.hpp"
#include "actors/webhook_support.hpp"
#include "net/dns.hpp"
#include "net/http_client.hpp"

namespace petrel {

namespace asio = boost::asio;

namespace {

struct post_outcome {
  int status = 0;
  std::string error;
};

asio::awaitable<address_lookup> resolve(std::shared_ptr<dns_client> dns, std::string host) {
  return asio::async_initiate<decltype(asio::use_awaitable), void(address_lookup)>(
      [dns, host](auto handler) {
        auto executor = asio::get_associated_executor(handler);
        auto shared = std::make_shared<decltype(handler)>(std::move(handler));
        dns->lookup_addresses(host, [executor, shared](address_lookup r) {
          asio::post(executor, [shared, r = std::move(r)]() mutable { (*shared)(std::move(r)); });
        });
      },
      asio::use_awaitable);
}

// GCC 12 reports a mismatched operator delete at the end of this coroutine (Asio's awaitable
// frames use their own operator new/delete; a false positive, as in domain_verification.cpp).
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
asio::awaitable<post_outcome> deliver(std::shared_ptr<delivery_runtime> runtime, webhook_post post) {
  post_outcome out;
  auto url = parse_webhook_url(post.url, post.allow_http);
  if (!url) {
    out.error = "invalid URL: " + url.error();
    co_return out;
  }
  std::string address = url->host;
  if (!is_ip_literal(address)) {
    auto found = co_await resolve(runtime->dns, url->host);
    if (found.addresses.empty()) {
      out.error = "cannot resolve " + url->host + (found.error.empty() ? "" : ": " + found.error);
      co_return out;
    }
    address = found.addresses.front();
  }
  if (!post.allow_private && !is_public_address(address)) {
    out.error = url->host + " resolves to " + address + ", which is not a public address";
    co_return out;
  }
  http_client_request request;
  request.method = "POST";
  request.host = url->host;
  request.address = address;
  request.port = url->port;
  request.target = url->target;
  request.headers = std::move(post.headers);
  request.body = std::move(post.body);
  request.timeout = post.timeout;
  request.max_body = 16 * 1024;  // the answer is not used; a bound all the same
  auto executor = co_await asio::this_coro::executor;
  auto response = co_await http_call(executor, url->https ? runtime->webhook_tls.get() : nullptr,
                                     std::move(request));
  out.status = response.status;
  out.error = response.error;
  co_return out;
}
#pragma GCC diagnostic pop

}  // namespace

void start_webhook_test(const std::shared_ptr<delivery_runtime>& runtime, webhook_post post,
                        std::function<void(int status, std::string error)> done) {
  asio::co_spawn(asio::make_strand(*runtime->io), deliver(runtime, std::move(post)),
                 [done = std::move(done)](std::exception_ptr e, post_outcome result) {
                   if (e) result = {0, "the webhook POST failed unexpectedly"};
                   done(result.status, std::move(result.error));
                 });
}

void start_webhook_post(const std::shared_ptr<delivery_runtime>& runtime, webhook_actor to,
                        std::uint64_t generation, webhook_post post) {
  asio::co_spawn(asio::make_strand(*runtime->io), deliver(runtime, std::move(post)),
                 [to, generation](std::exception_ptr e, post_outcome result) {
                   if (e) result = {0, "the webhook POST failed unexpectedly"};
                   caf::anon_send(to, post_atom::value, generation, result.status, std::move(result.error));
                 });
}

}  // namespace petrel
