// Logging handlers for actors (see actor_support.hpp).
#include "actors/actor_support.hpp"

#include "actors/protocol.hpp"

#include <boost/json.hpp>
#include <caf/all.hpp>
#include <ctime>
#include <spdlog/spdlog.h>

namespace petrel {

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

std::string receipt_json_text(const submit_receipt& receipt) {
  boost::json::array recipients;
  for (const auto& r : receipt.recipients)
    recipients.push_back(boost::json::object{{"email", r.email}, {"id", r.id.str()}, {"status", r.status}});
  return boost::json::serialize(
      boost::json::object{{"id", receipt.message_id.str()}, {"recipients", std::move(recipients)}});
}

}  // namespace petrel
