// Every key of the configuration's sections (not those inside arrays of tables), as the loader
// reads them: "http.listen", "log.access_log", ... For the test that keeps config/petrel.toml
// and docs/configuration.md complete.
#pragma once

#include <string>
#include <vector>

namespace petrel {

std::vector<std::string> config_keys();

}  // namespace petrel
