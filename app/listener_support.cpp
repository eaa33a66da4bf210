// HTTPS credentials of the listeners and the access log (see listener_support.hpp).
#include "app/listener_support.hpp"

#include <spdlog/spdlog.h>

#include <cstdio>

#include "actors/delivery_log.hpp"
#include "actors/metrics.hpp"
#include "actors/policy/event_data.hpp"
#include "net/tls_server.hpp"
#include "storage/ids.hpp"

namespace petrel {

std::shared_ptr<tls_credentials> listener_credentials(const listener_tls& tls, const std::string& listener,
                                                      const std::string& section, const std::string& alpn) {
  if (!tls.enabled()) return nullptr;
  return std::make_shared<tls_credentials>(listener, section,
                                           tls_files{tls.cert_file, tls.key_file, tls.client_ca_file, tls.cert_dir},
                                           alpn);
}

void tls_watch::add(std::shared_ptr<tls_credentials> credentials) {
  if (credentials) all_.push_back(std::move(credentials));
}

void tls_watch::report() const {
  auto now = clock_ms() / 1000;
  for (const auto& c : all_) {
    for (const auto& cert : c->certificates()) {
      metrics()
          .get_gauge("petrel_tls_certificate_expiry_timestamp_seconds",
                     "When a listener's certificate expires (unix time), by listener and file",
                     {{"listener", c->listener()}, {"file", cert.file}})
          .set(cert.not_after);
      if (cert.not_after <= now)
        spdlog::warn("tls.certificate_expired listener={} file={} names=\"{}\" not_after={}", c->listener(),
                     cert.file, cert.subject, rfc3339(cert.not_after * 1000));
      else if (cert.not_after - now < 14 * 24 * 3600)
        spdlog::warn("tls.certificate_expires_soon listener={} file={} names=\"{}\" not_after={}", c->listener(),
                     cert.file, cert.subject, rfc3339(cert.not_after * 1000));
    }
  }
}

void tls_watch::check(bool force) {
  for (const auto& c : all_) {
    if (!force && !c->changed_on_disk()) continue;
    auto error = c->reload();
    auto result = error.empty() ? "ok" : "failed";
    metrics()
        .get_counter("petrel_tls_reloads_total", "Reloads of a listener's certificate files, by result",
                     {{"listener", c->listener()}, {"result", result}})
        .inc();
    if (error.empty())
      spdlog::info("tls.reloaded listener={} file={} names=\"{}\" not_after={}", c->listener(), c->files().cert_file,
                   c->certificates().front().subject, rfc3339(c->certificates().front().not_after * 1000));
    else
      spdlog::error("tls.reload_failed listener={} error=\"{}\" action=\"the previous certificate stays in use\"",
                    c->listener(), error);
  }
  report();
}

namespace {

void append_json_string(std::string& out, std::string_view text) {
  out.push_back('"');
  for (char ch : text) {
    auto c = static_cast<unsigned char>(ch);
    if (ch == '"' || ch == '\\') {
      out.push_back('\\');
      out.push_back(ch);
    } else if (c < 0x20) {
      char escaped[8];
      std::snprintf(escaped, sizeof escaped, "\\u%04x", c);
      out += escaped;
    } else {
      out.push_back(ch);
    }
  }
  out.push_back('"');
}

// Tokens in paths are capabilities (a click or an unsubscribe on someone's behalf): logged as "-".
std::string_view loggable_path(std::string_view path, std::string& scratch) {
  for (std::string_view prefix : {"/o/", "/c/", "/u/"}) {
    if (path.size() > prefix.size() && path.substr(0, prefix.size()) == prefix) {
      scratch = std::string(prefix) + "-";
      return scratch;
    }
  }
  return path;
}

}  // namespace

std::string access_log_line(const http_access& a, std::int64_t unix_ms) {
  std::string out;
  out.reserve(256);
  out += "{\"time\":\"" + rfc3339(unix_ms) + "\",\"listener\":";
  append_json_string(out, a.listener);
  out += ",\"method\":";
  append_json_string(out, a.method);
  std::string scratch;
  out += ",\"path\":";
  append_json_string(out, loggable_path(a.path, scratch));
  out += ",\"status\":" + std::to_string(a.status) + ",\"bytes\":" + std::to_string(a.bytes);
  char duration[32];
  std::snprintf(duration, sizeof duration, "%.3f", a.duration_ms);
  out += ",\"duration_ms\":";
  out += duration;
  out += ",\"tenant\":";
  if (a.tenant.empty())
    out += "null";
  else
    append_json_string(out, a.tenant);
  out += ",\"request_id\":";
  append_json_string(out, a.request_id);
  out += ",\"remote\":";
  append_json_string(out, a.remote);
  out += a.tls ? ",\"tls\":true}" : ",\"tls\":false}";
  return out;
}

std::function<void(const http_access&)> access_logger(std::shared_ptr<delivery_log> log) {
  if (!log) return {};
  return [log](const http_access& a) { log->write(access_log_line(a, clock_ms())); };
}

}  // namespace petrel
