// Admin views over every tenant (the console's message lookup, event tail, webhook health):
// one request per tenant, side by side, and one callback with all the answers.
#pragma once

#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <utility>
#include <vector>

#include <caf/error.hpp>

#include "actors/protocol.hpp"
#include "app/actor_bridge.hpp"

namespace petrel {

template <class Result>
struct tenant_answers {
  std::vector<std::pair<tenant_record, Result>> results;  // the tenants that answered
  std::optional<caf::error> error;                          // the first error, if any
};

// ask_one(tenant, reply) asks something about one tenant and calls reply(result) or
// reply(error) exactly once; done gets every answer when the last one is in. A failure to list
// the tenants goes to fail.
template <class Result>
void ask_each_tenant(caf::actor_system& sys, const tenants_actor& tenants, std::chrono::milliseconds timeout,
                     std::function<void(const tenant_record&, std::function<void(std::optional<Result>, caf::error*)>)> ask_one,
                     std::function<void(tenant_answers<Result>&)> done, std::function<void(caf::error&)> fail) {
  ask<std::vector<tenant_summary>>(
      sys, tenants, timeout,
      [ask_one, done](std::vector<tenant_summary>& all) {
        struct shared {
          std::mutex mutex;
          std::size_t remaining = 0;
          tenant_answers<Result> answers;
        };
        auto state = std::make_shared<shared>();
        state->remaining = all.size();
        if (all.empty()) return done(state->answers);
        for (const auto& t : all) {
          ask_one(t.tenant, [state, done, tenant = t.tenant](std::optional<Result> r, caf::error* e) {
            std::unique_lock lock(state->mutex);
            if (r) state->answers.results.emplace_back(tenant, std::move(*r));
            else if (e && !state->answers.error) state->answers.error = *e;
            if (--state->remaining == 0) {
              lock.unlock();
              done(state->answers);
            }
          });
        }
      },
      fail, list_atom::value);
}

// A store query (message_search, event_query, ...) once per tenant, with its tenant_id set.
template <class Result, class Store, class Query>
void query_each_tenant(caf::actor_system& sys, const tenants_actor& tenants, const Store& store,
                       std::chrono::milliseconds timeout, const Query& query,
                       std::function<void(tenant_answers<Result>&)> done, std::function<void(caf::error&)> fail) {
  ask_each_tenant<Result>(
      sys, tenants, timeout,
      [&sys, store, timeout, query](const tenant_record& t, std::function<void(std::optional<Result>, caf::error*)> reply) {
        auto mine = query;
        mine.tenant_id = t.id;
        ask<Result>(
            sys, store, timeout, [reply](Result& r) { reply(std::move(r), nullptr); },
            [reply](caf::error& e) { reply(std::nullopt, &e); }, load_atom::value, std::move(mine));
      },
      std::move(done), std::move(fail));
}

}  // namespace petrel
