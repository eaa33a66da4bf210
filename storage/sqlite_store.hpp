// The embedded SQLite backend of the store: one file under the data directory, WAL journal,
// synchronous=FULL unless configured otherwise. Nothing to install or start.
#pragma once

#include <memory>
#include <string>

#include "storage/store.hpp"

namespace petrel {

std::unique_ptr<store> open_sqlite_store(const std::string& path, const store_options& options);

}  // namespace petrel
