// The PostgreSQL backend of the store (libpq, no ORM): the production and cluster store.
// Writes of a batch go out pipelined in one transaction (one round trip, one WAL flush with
// synchronous_commit on); statements are prepared once per connection; migrations run under
// an advisory lock so that nodes starting together do not race.
#pragma once

#include <memory>
#include <string>

#include "storage/store.hpp"

namespace petrel {

// url: "postgresql://user@host:port/db?..." (libpq's URI syntax). Throws store_error.
std::unique_ptr<store> open_pg_store(const std::string& url, const store_options& options);

}  // namespace petrel
