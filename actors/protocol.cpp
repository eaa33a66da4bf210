// Petrel's CAF error category and type registration (see protocol.hpp).
#include "actors/protocol.hpp"
#include "actors/rate_limit_error.hpp"

#include <caf/actor_system_config.hpp>
#include <caf/message.hpp>

namespace petrel {

namespace {
const caf::atom_value petrel_category = caf::atom("petrel");
}

std::string to_string(petrel_errc code) {
  switch (code) {
    case petrel_errc::unauthorized: return "unauthorized";
    case petrel_errc::not_found: return "not_found";
    case petrel_errc::rate_limited: return "rate_limited";
    case petrel_errc::overloaded: return "overloaded";
    case petrel_errc::store_failed: return "store_failed";
    case petrel_errc::unavailable: return "unavailable";
    case petrel_errc::conflict: return "conflict";
    case petrel_errc::suspended: return "suspended";
    case petrel_errc::invalid: return "invalid";
    case petrel_errc::forbidden: return "forbidden";
  }
  return "unknown";
}

caf::error make_error(petrel_errc code, std::string detail, std::int64_t retry_after_ms) {
  return caf::error(static_cast<std::uint8_t>(code), petrel_category,
                    caf::make_message(std::move(detail), retry_after_ms));
}

bool read_error(const caf::error& e, petrel_errc& code, std::string& detail,
                std::int64_t& retry_after_ms) {
  if (!e || e.category() != petrel_category) return false;
  code = static_cast<petrel_errc>(e.code());
  detail.clear();
  retry_after_ms = 0;
  const auto& ctx = e.context();
  // (detail, retry) and, for rate limits, (detail, retry, burst, per second).
  if (ctx.size() >= 2 && ctx.match_element<std::string>(0) && ctx.match_element<std::int64_t>(1)) {
    detail = ctx.get_as<std::string>(0);
    retry_after_ms = ctx.get_as<std::int64_t>(1);
  }
  return true;
}

caf::error make_rate_limited(std::string detail, std::int64_t retry_after_ms, rate_limit_facts limit) {
  return caf::error(static_cast<std::uint8_t>(petrel_errc::rate_limited), petrel_category,
                    caf::make_message(std::move(detail), retry_after_ms, limit.burst, limit.per_second));
}

std::optional<rate_limit_facts> rate_limit_of(const caf::error& e) {
  if (!e || e.category() != petrel_category) return std::nullopt;
  const auto& ctx = e.context();
  if (!ctx.match_elements<std::string, std::int64_t, std::uint32_t, double>()) return std::nullopt;
  return rate_limit_facts{ctx.get_as<std::uint32_t>(2), ctx.get_as<double>(3)};
}

void register_types(caf::actor_system_config& cfg) {
  cfg.add_message_type<id128>("petrel::id128");
  cfg.add_message_type<tenant_record>("petrel::tenant_record");
  cfg.add_message_type<std::vector<tenant_record>>("std::vector<petrel::tenant_record>");
  cfg.add_message_type<api_key_record>("petrel::api_key_record");
  cfg.add_message_type<std::vector<api_key_record>>("std::vector<petrel::api_key_record>");
  cfg.add_message_type<recipient_record>("petrel::recipient_record");
  cfg.add_message_type<message_record>("petrel::message_record");
  cfg.add_message_type<std::vector<message_record>>("std::vector<petrel::message_record>");
  cfg.add_message_type<event_record>("petrel::event_record");
  cfg.add_message_type<queued_recipient>("petrel::queued_recipient");
  cfg.add_message_type<std::vector<queued_recipient>>("std::vector<petrel::queued_recipient>");
  cfg.add_message_type<queue_class_summary>("petrel::queue_class_summary");
  cfg.add_message_type<std::vector<queue_class_summary>>("std::vector<petrel::queue_class_summary>");
  cfg.add_message_type<queue_page_query>("petrel::queue_page_query");
  cfg.add_message_type<queue_page>("petrel::queue_page");
  cfg.add_message_type<message_details>("petrel::message_details");
  cfg.add_message_type<receipt_recipient>("petrel::receipt_recipient");
  cfg.add_message_type<submit_receipt>("petrel::submit_receipt");
  cfg.add_message_type<tenant_identity>("petrel::tenant_identity");
  cfg.add_message_type<new_tenant>("petrel::new_tenant");
  cfg.add_message_type<tenant_patch>("petrel::tenant_patch");
  cfg.add_message_type<issued_key>("petrel::issued_key");
  cfg.add_message_type<created_tenant>("petrel::created_tenant");
  cfg.add_message_type<tenant_summary>("petrel::tenant_summary");
  cfg.add_message_type<std::vector<tenant_summary>>("std::vector<petrel::tenant_summary>");
  cfg.add_message_type<domain_queue_stats>("petrel::domain_queue_stats");
  cfg.add_message_type<queue_summary>("petrel::queue_summary");
  cfg.add_message_type<readiness>("petrel::readiness");
  cfg.add_message_type<dkim_key_record>("petrel::dkim_key_record");
  cfg.add_message_type<sender_domain_record>("petrel::sender_domain_record");
  cfg.add_message_type<std::vector<sender_domain_record>>("std::vector<petrel::sender_domain_record>");
  cfg.add_message_type<mx_lookup>("petrel::mx_lookup");
  cfg.add_message_type<address_lookup>("petrel::address_lookup");
  cfg.add_message_type<tlsa_lookup>("petrel::tlsa_lookup");
  cfg.add_message_type<route>("petrel::route");
  cfg.add_message_type<sts_result>("petrel::sts_result");
  cfg.add_message_type<recipient_update>("petrel::recipient_update");
  cfg.add_message_type<std::vector<recipient_update>>("std::vector<petrel::recipient_update>");
  cfg.add_message_type<delivery_content>("petrel::delivery_content");
  cfg.add_message_type<delivery_job>("petrel::delivery_job");
  cfg.add_message_type<std::vector<delivery_job>>("std::vector<petrel::delivery_job>");
  cfg.add_message_type<job_outcome>("petrel::job_outcome");
  cfg.add_message_type<new_sender_domain>("petrel::new_sender_domain");
  cfg.add_message_type<sender_domain_view>("petrel::sender_domain_view");
  cfg.add_message_type<std::vector<sender_domain_view>>("std::vector<petrel::sender_domain_view>");
  cfg.add_message_type<domain_check>("petrel::domain_check");
  cfg.add_message_type<suppression_record>("petrel::suppression_record");
  cfg.add_message_type<std::vector<suppression_record>>("std::vector<petrel::suppression_record>");
  cfg.add_message_type<suppression_query>("petrel::suppression_query");
  cfg.add_message_type<suppression_snapshot>("petrel::suppression_snapshot");
  cfg.add_message_type<recipient_query>("petrel::recipient_query");
  cfg.add_message_type<idempotency_record>("petrel::idempotency_record");
  cfg.add_message_type<std::vector<idempotency_record>>("std::vector<petrel::idempotency_record>");
  cfg.add_message_type<idempotency_query>("petrel::idempotency_query");
  cfg.add_message_type<cancel_query>("petrel::cancel_query");
  cfg.add_message_type<cancel_targets>("petrel::cancel_targets");
  cfg.add_message_type<template_query>("petrel::template_query");
  cfg.add_message_type<tracking_query>("petrel::tracking_query");
  cfg.add_message_type<tracking_target>("petrel::tracking_target");
  cfg.add_message_type<std::vector<tracking_target>>("std::vector<petrel::tracking_target>");
  cfg.add_message_type<tracking_hit_record>("petrel::tracking_hit_record");
  cfg.add_message_type<message_search>("petrel::message_search");
  cfg.add_message_type<template_record>("petrel::template_record");
  cfg.add_message_type<std::vector<template_record>>("std::vector<petrel::template_record>");
  cfg.add_message_type<recipient_lookup>("petrel::recipient_lookup");
  cfg.add_message_type<std::vector<recipient_lookup>>("std::vector<petrel::recipient_lookup>");
  cfg.add_message_type<inbound_message>("petrel::inbound_message");
  cfg.add_message_type<inbound_result>("petrel::inbound_result");
  cfg.add_message_type<site_stats>("petrel::site_stats");
  cfg.add_message_type<source_stats>("petrel::source_stats");
  cfg.add_message_type<site_warmup_stats>("petrel::site_warmup_stats");
  cfg.add_message_type<std::vector<source_stats>>("std::vector<petrel::source_stats>");
  cfg.add_message_type<control_record>("petrel::control_record");
  cfg.add_message_type<egress_state>("petrel::egress_state");
  cfg.add_message_type<std::vector<control_record>>("std::vector<petrel::control_record>");
  cfg.add_message_type<event_query>("petrel::event_query");
  cfg.add_message_type<stats_query>("petrel::stats_query");
  cfg.add_message_type<stats_row>("petrel::stats_row");
  cfg.add_message_type<std::vector<stats_row>>("std::vector<petrel::stats_row>");
  cfg.add_message_type<event_view>("petrel::event_view");
  cfg.add_message_type<std::vector<event_view>>("std::vector<petrel::event_view>");
  cfg.add_message_type<webhook_record>("petrel::webhook_record");
  cfg.add_message_type<std::vector<webhook_record>>("std::vector<petrel::webhook_record>");
  cfg.add_message_type<webhook_status>("petrel::webhook_status");
  cfg.add_message_type<std::vector<webhook_status>>("std::vector<petrel::webhook_status>");
  cfg.add_message_type<partition_grant>("petrel::partition_grant");
  cfg.add_message_type<std::vector<partition_grant>>("std::vector<petrel::partition_grant>");
  cfg.add_message_type<cluster_member>("petrel::cluster_member");
  cfg.add_message_type<std::vector<cluster_member>>("std::vector<petrel::cluster_member>");
  cfg.add_message_type<cluster_partition_view>("petrel::cluster_partition_view");
  cfg.add_message_type<std::vector<cluster_partition_view>>("std::vector<petrel::cluster_partition_view>");
  cfg.add_message_type<cluster_view>("petrel::cluster_view");
  // A site actor's handle crosses node links (node_actor: a remote source's site).
  cfg.add_message_type<site_actor>("petrel::site_actor");
  cfg.add_error_category(petrel_category,
                         [](std::uint8_t code, caf::atom_value, const caf::message& ctx) {
                           std::string out = "petrel: " + to_string(static_cast<petrel_errc>(code));
                           if (ctx.match_elements<std::string, std::int64_t>())
                             out += " (" + ctx.get_as<std::string>(0) + ")";
                           return out;
                         });
}

}  // namespace petrel
