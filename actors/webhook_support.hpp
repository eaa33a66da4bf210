// Plain, testable pieces of webhook delivery (docs/webhooks.md): URL validation, the check
// that keeps endpoints off private networks, the signature, and the JSON of events.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "config/units.hpp"
#include "net/ip_policy.hpp"
#include "net/webhook_url.hpp"
#include "storage/records.hpp"

namespace petrel {



// "t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>", and a second v1 with the
// previous secret while a rotation overlaps.
std::string webhook_signature(std::string_view secret, std::int64_t unix_seconds, std::string_view body,
                              std::string_view previous_secret = {});

// One event as the API and webhooks show it (a JSON object).
std::string event_json(const event_view& v);
// {"webhook": id, "events": [...]}
std::string webhook_batch_json(const id128& webhook, const std::vector<event_view>& events);

// The event types a tenant can subscribe to and query.
const std::vector<std::string>& event_types();

// POST /v1/webhooks/{id}/test: a signed sample batch posted now, outside the endpoint's queue
// (actors/webhook_post.cpp); `done` gets the HTTP status (0: none) and the error, on an I/O
// thread. webhook_post and delivery_runtime are in actors/services.hpp.
struct delivery_runtime;
struct webhook_post;
void start_webhook_test(const std::shared_ptr<delivery_runtime>& runtime, webhook_post post,
                        std::function<void(int status, std::string error)> done);

}  // namespace petrel
