// Live reload of the configuration file (see reload.hpp).
#include "app/reload.hpp"

#include <caf/all.hpp>
#include <spdlog/spdlog.h>
#include <toml++/toml.h>

#include <fstream>
#include <set>
#include <sstream>

#include "actors/actor_support.hpp"
#include "actors/policy/event_data.hpp"
#include "actors/policy/response_rules.hpp"
#include "actors/services.hpp"
#include "config/config_keys.hpp"
#include "config/shipped_rules.hpp"
#include "net/mail/bounce.hpp"
#include "storage/ids.hpp"

namespace petrel {

namespace {

// The keys a reload applies; every other key that changed waits for a restart. Of [delivery],
// what the resolver and the DNS runtime took at start stays: the port, private destinations,
// DANE, the CA file and the EHLO name.
bool live_key(const std::string& key) {
  static const std::set<std::string> delivery_at_start = {"delivery.port", "delivery.allow_private_destinations",
                                                          "delivery.dane", "delivery.ca_file", "delivery.ehlo_name"};
  if (key.rfind("delivery.", 0) == 0) return !delivery_at_start.count(key);
  return key.rfind("egress.", 0) == 0 || key.rfind("shaping.", 0) == 0 || key.rfind("tenants.", 0) == 0 ||
         key == "log.level" || key == "bounces.rules_file";
}

bool changed_in(const std::vector<std::string>& keys, std::string_view prefix) {
  for (const auto& k : keys)
    if (k.rfind(prefix, 0) == 0) return true;
  return false;
}

std::optional<std::string> read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return std::nullopt;
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

std::string join(const std::vector<std::string>& items) {
  std::string out;
  for (const auto& i : items) out += (out.empty() ? "" : ", ") + i;
  return out;
}

}  // namespace

std::string reload_report::summary() const {
  if (!ok()) return "invalid, nothing changed: " + join(errors);
  std::string out = changed.empty() ? "nothing to change" : "changed " + join(changed);
  if (!restart_required.empty()) out += "; after a restart only: " + join(restart_required);
  return out;
}

std::vector<std::string> read_relay_passwords(const config& cfg) {
  std::vector<std::string> passwords;
  for (std::size_t i = 0; i < cfg.delivery.relays.size(); ++i) {
    const auto& relay = cfg.delivery.relays[i];
    std::string password;
    if (!relay.password_file.empty()) {
      std::ifstream in(relay.password_file);
      if (!in || !std::getline(in, password) || password.empty())
        throw std::runtime_error("delivery.relays[" + std::to_string(i) + "].password_file: " + relay.password_file +
                                 " cannot be read or its first line is empty");
      if (!password.empty() && password.back() == '\r') password.pop_back();
    }
    passwords.push_back(std::move(password));
  }
  return passwords;
}

std::shared_ptr<const bounce_classifier> make_classifier(const config& cfg) {
  std::vector<bounce_rule> rules;
  if (!cfg.bounces.rules_file.empty()) {
    auto own = load_bounce_rules(cfg.bounces.rules_file);
    if (!own) throw std::runtime_error("bounces.rules_file: " + own.error());
    rules = std::move(own.value());
  }
  auto shipped = load_bounce_rules_text(shipped_bounce_rules_text(), "(shipped bounce rules)");
  if (!shipped) throw std::runtime_error(shipped.error());
  rules.insert(rules.end(), shipped.value().begin(), shipped.value().end());
  return std::make_shared<const bounce_classifier>(std::move(rules));
}

struct config_reloader::state {
  std::string path;
  bool from_file = false;
  toml::table started;  // the file at start: restart-only keys are compared with it
  toml::table applied;  // the file last applied: live keys are compared with it
  config running;       // as applied last
  std::string rules_text;
  std::shared_ptr<config_directory> live;
  std::shared_ptr<service_directory> directory;
  std::shared_ptr<delivery_runtime> runtime;
  caf::actor_system* sys = nullptr;
};

config_reloader::config_reloader(const config& running, std::shared_ptr<config_directory> live,
                                 std::shared_ptr<service_directory> directory, std::shared_ptr<delivery_runtime> runtime,
                                 caf::actor_system& sys)
    : state_(std::make_unique<state>()) {
  auto& st = *state_;
  st.path = running.source;
  st.running = running;
  st.live = std::move(live);
  st.directory = std::move(directory);
  st.runtime = std::move(runtime);
  st.sys = &sys;
  if (auto text = read_file(st.path)) {
    try {
      st.started = toml::parse(*text, st.path);
      st.applied = st.started;
      st.from_file = true;
    } catch (const toml::parse_error&) {
    }
  }
  if (!running.bounces.rules_file.empty()) st.rules_text = read_file(running.bounces.rules_file).value_or("");
}

config_reloader::~config_reloader() = default;

reload_report config_reloader::reload(const std::string& by) {
  std::lock_guard lock(mutex_);
  auto& st = *state_;
  reload_report report;
  report.file = st.path;
  auto failed = [&] {
    spdlog::error("config.reload_failed file={} by={} errors=\"{}\" action=\"nothing changed\"", st.path, by,
                  join(report.errors));
    return report;
  };
  if (!st.from_file) {
    report.errors.push_back(st.path + ": the node was not started from a readable configuration file (--config)");
    return failed();
  }
  auto text = read_file(st.path);
  if (!text) {
    report.errors.push_back(st.path + ": cannot read the file");
    return failed();
  }
  // 1. The whole file, validated as at start.
  auto loaded = load_config_text(*text, st.path);
  if (!loaded.errors.empty()) {
    report.config_errors = loaded.errors;
    for (const auto& e : loaded.errors) report.errors.push_back(e.to_string());
    return failed();
  }
  const config& next = loaded.value;
  toml::table parsed = toml::parse(*text, st.path);  // valid: it just loaded

  // 2. What changed: live keys against the last applied file, the others against the start.
  std::vector<std::string> live_changes;
  for (const auto& key : config_keys()) {
    bool live = live_key(key);
    const toml::table& before = live ? st.applied : st.started;
    const toml::table& after = parsed;
    if (before.at_path(key) == after.at_path(key)) continue;
    (live ? live_changes : report.restart_required).push_back(key);
  }
  auto rules_text = next.bounces.rules_file.empty() ? std::string() : read_file(next.bounces.rules_file).value_or("");
  bool rules_changed = rules_text != st.rules_text;
  if (rules_changed && !changed_in(live_changes, "bounces.rules_file")) live_changes.push_back("bounces.rules_file");

  // 3. The actors' configuration: the running one with the live parts of the new file. Every
  //    file these need (relay passwords, bounce rules) is read now: a failure changes nothing.
  auto current = st.live->get();
  if (!current) {
    report.errors.push_back("the node has not started yet");
    return failed();
  }
  auto c = std::make_shared<node_config>(*current);
  try {
    if (changed_in(live_changes, "tenants.")) c->tenants = next.tenants;
    if (changed_in(live_changes, "delivery.")) {
      auto d = next.delivery;
      const auto& was = current->delivery;
      d.port = was.port;
      d.allow_private_destinations = was.allow_private_destinations;
      d.dane = was.dane;
      d.ca_file = was.ca_file;
      d.ehlo_name = was.ehlo_name;
      c->delivery = std::move(d);
      if (changed_in(live_changes, "delivery.relay") || changed_in(live_changes, "delivery.routes"))
        c->routing = std::make_shared<const routing_table>(c->delivery, read_relay_passwords(next));
    }
    if (changed_in(live_changes, "egress.")) {
      c->egress = next.egress;
      c->sources = egress_sources_from(next, st.runtime ? st.runtime->hostname : std::string());
      c->pools = std::make_shared<const pool_table>(pools_from(next.egress, egress_source_names(next)));
    }
    if (changed_in(live_changes, "shaping.")) {
      c->shaping = next.shaping;
      if (changed_in(live_changes, "shaping.rules")) c->responses = std::make_shared<const response_rules>(next.shaping.rules);
    }
    if (changed_in(live_changes, "bounces.rules_file")) {
      c->classifier = make_classifier(next);
      c->bounces.rules_file = next.bounces.rules_file;
    }
  } catch (const std::exception& e) {
    report.errors.push_back(e.what());
    report.restart_required.clear();
    return failed();
  }
  report.changed = live_changes;

  // 4. In force: published, then each part of the tree told to take it up.
  if (!live_changes.empty()) {
    st.live->set(c);
    auto services = st.directory->get();
    if (services->domains) caf::anon_send(services->domains, controls_atom::value);
    if (services->egress) caf::anon_send(services->egress, controls_atom::value);
    if (services->tenants) caf::anon_send(services->tenants, load_atom::value);
  }
  st.applied = std::move(parsed);
  st.rules_text = std::move(rules_text);
  st.running = next;
  // The log level: a more verbose one before this reload's line, a quieter one after it.
  auto level = spdlog::level::from_str(next.log.level);
  bool louder = level < spdlog::default_logger()->level();
  if (louder) spdlog::default_logger()->set_level(level);
  spdlog::info("config.reloaded file={} by={} changed=\"{}\" restart_required=\"{}\"", st.path, by,
               join(report.changed), join(report.restart_required));
  if (!louder) spdlog::default_logger()->set_level(level);
  // 5. An admin_action event, as for the operator's other actions.
  if (auto store = st.directory->get()->store) {
    event_record e;
    e.id = new_id();
    e.type = "admin_action";
    e.at_ms = unix_now_ms();
    e.data_json = event_data::admin_action("reload", "config", st.path, 0, report.summary(), by);
    caf::anon_send(store, record_atom::value, std::move(e));
  }
  return report;
}

const config& config_reloader::running() const { return state_->running; }

}  // namespace petrel
