// Live reload of the configuration file (SIGHUP, POST /admin/reload; docs/operations.md, "Live
// reload"). The new file is read and validated whole first: an invalid one changes nothing. Of
// a valid one, the settings that can change live are applied: egress sources, pools and warm-up
// schedules, [delivery] (its rules for sites and domains, relays and routes, timeouts, retries,
// TLS), response rules, the bounce rules file, tenant defaults, the log level. Every other key
// that changed is named as needing a restart and keeps its running value. Work already started
// keeps its settings; the actors take up the new ones for their next decisions.
#pragma once

#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "config/config.hpp"

namespace caf {
class actor_system;
}

namespace petrel {

struct delivery_runtime;
struct node_config;
class service_directory;
class config_directory;
class bounce_classifier;

struct reload_report {
  std::string file;
  // An invalid file (nothing changed): "file:line:column: key: reason" each.
  std::vector<std::string> errors;
  std::vector<config_error> config_errors;
  std::vector<std::string> changed;           // keys applied live
  std::vector<std::string> restart_required;  // keys that changed and take a restart
  bool ok() const { return errors.empty(); }
  std::string summary() const;  // one line, for the log and the admin_action event
};

// Relay passwords, each read from its file (a missing or empty file throws, naming it).
std::vector<std::string> read_relay_passwords(const config& cfg);
// The operator's bounce rules (bounces.rules_file) followed by the shipped ones; throws naming
// the file.
std::shared_ptr<const bounce_classifier> make_classifier(const config& cfg);

class config_reloader {
 public:
  // `running`: the configuration the node started with (its file is read again each time).
  config_reloader(const config& running, std::shared_ptr<config_directory> live,
                  std::shared_ptr<service_directory> directory, std::shared_ptr<delivery_runtime> runtime,
                  caf::actor_system& sys);
  ~config_reloader();

  // Reads, validates and applies the file; `by` ("sighup", "admin") is recorded in the
  // admin_action event. Thread-safe; reads files, never waits for an actor.
  reload_report reload(const std::string& by);
  // The configuration as last applied (live keys new, the others as at start); call it only
  // from the thread that called reload().
  const config& running() const;

 private:
  struct state;
  std::mutex mutex_;
  std::unique_ptr<state> state_;
};

}  // namespace petrel
