// Logging handlers for actors (see actor_support.hpp).
#include "actors/actor_support.hpp"

#include <caf/all.hpp>
#include <ctime>
#include <spdlog/spdlog.h>

namespace petrel {

std::string json_string(std::string_view text) {
  std::string out = "\"";
  for (char c : text) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", c);
          out += buf;
        } else {
          out += c;  // UTF-8 passes through; invalid bytes were refused at the edges
        }
    }
  }
  return out + "\"";
}

std::string rfc3339(std::int64_t unix_ms) {
  std::time_t seconds = static_cast<std::time_t>(unix_ms / 1000);
  std::tm tm{};
  gmtime_r(&seconds, &tm);
  char buf[80];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
                tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                static_cast<int>(unix_ms % 1000));
  return buf;
}

void install_logging_handlers(caf::scheduled_actor* self, const char* actor_name) {
  self->set_default_handler(
      [actor_name](caf::scheduled_actor*, caf::message_view& x) -> caf::result<caf::message> {
        spdlog::warn("actor.unexpected_message actor={} message={}", actor_name,
                     caf::to_string(x.content()));
        return caf::sec::unexpected_message;
      });
  self->set_exception_handler(
      [actor_name](caf::scheduled_actor*, std::exception_ptr& ptr) -> caf::error {
        try {
          std::rethrow_exception(ptr);
        } catch (const std::exception& e) {
          spdlog::error("actor.crashed actor={} error=\"{}\"", actor_name, e.what());
          return caf::make_error(caf::sec::runtime_error, std::string(e.what()));
        } catch (...) {
          spdlog::error("actor.crashed actor={} error=\"unknown exception\"", actor_name);
          return caf::make_error(caf::sec::runtime_error, std::string("unknown exception"));
        }
      });
}

}  // namespace petrel
