// The schema, as one ordered list of versioned migrations shared by every backend. SQL is
// written once; the few dialect differences are placeholders that render() fills in.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace petrel {

enum class sql_dialect { sqlite, postgresql };

struct migration {
  int version;
  const char* description;
  std::vector<const char*> statements;
};

// All migrations, oldest first. Versions are consecutive from 1; never edit a released one.
const std::vector<migration>& schema_migrations();

// Replaces {blob} and {double} with the dialect's type names.
std::string render_sql(std::string_view sql, sql_dialect dialect);

}  // namespace petrel
