// The inspect overloads of the message types in actors/protocol.hpp: how CAF reads and writes
// them (names and fields, in order). Included by protocol.hpp only; add one here with each new
// message type.
#pragma once

#include <caf/meta/type_name.hpp>

namespace petrel {

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, id128& x) {
  return f(caf::meta::type_name("id128"), x.hi, x.lo);
}
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, partition_grant& x) {
  return f(caf::meta::type_name("partition_grant"), x.partition, x.epoch);
}
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, cluster_member& x) {
  return f(caf::meta::type_name("cluster_member"), x.name, x.advertise, x.live, x.lease_left_ms,
           x.partitions);
}
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, cluster_partition_view& x) {
  return f(caf::meta::type_name("cluster_partition_view"), x.id, x.owner, x.epoch, x.lease_valid);
}
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, cluster_view& x) {
  return f(caf::meta::type_name("cluster_view"), x.enabled, x.node, x.draining, x.partition_count,
           x.members, x.partitions, x.last_round_at_ms, x.round_duration_ms, x.error);
}
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, tenant_record& x) {
  return f(caf::meta::type_name("tenant_record"), x.id, x.name, x.rate_per_second, x.burst,
           x.suspended, x.created_at_ms, x.pool, x.weight, x.sandbox, x.tracking.opens, x.tracking.clicks,
           x.tracking.record_ip, x.tracking.domain, x.tracking.verified, x.tracking.checked_at_ms,
           x.tracking.status);
}
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, api_key_record& x) {
  return f(caf::meta::type_name("api_key_record"), x.id, x.tenant_id, x.key_hash, x.prefix,
           x.created_at_ms, x.revoked_at_ms);
}
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, recipient_record& x) {
  return f(caf::meta::type_name("recipient_record"), x.id, x.address, x.domain, x.kind, x.state,
           x.attempts, x.next_attempt_at_ms, x.updated_at_ms, x.last_reply, x.pool, x.priority,
           x.personal_json, x.metadata_json);
}
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, message_record& x) {
  return f(caf::meta::type_name("message_record"), x.id, x.tenant_id, x.created_at_ms,
           x.mail_from, x.subject, x.campaign, x.tags_json, x.metadata_json, x.message_id_header,
           x.size, x.content, x.recipients, x.from_domain, x.bulk, x.priority, x.templated, x.batch_id,
           x.idempotency, x.sandbox, x.track_opens, x.track_clicks, x.request_id, x.tracking_links,
           x.tracking_expires_ms);
}
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, event_record& x) {
  return f(caf::meta::type_name("event_record"), x.id, x.tenant_id, x.message_id, x.recipient_id,
           x.type, x.at_ms, x.data_json);
}
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, queued_recipient& x) {
  return f(caf::meta::type_name("queued_recipient"), x.recipient_id, x.message_id, x.tenant_id,
           x.domain, x.state, x.attempts, x.next_attempt_at_ms, x.pool, x.priority, x.alone);
}
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, queue_class_summary& x) {
  return f(caf::meta::type_name("queue_class_summary"), x.tenant_id, x.priority, x.queued, x.deferred,
           x.oldest_ms, x.next_due_ms, x.max_id);
}
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, queue_page_query& x) {
  return f(caf::meta::type_name("queue_page_query"), x.domain, x.tenant_id, x.priority, x.after_due_ms,
           x.after_id, x.until_ms, x.limit);
}
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, queue_page& x) {
  return f(caf::meta::type_name("queue_page"), x.recipients, x.has_later, x.later_due_ms);
}
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, message_details& x) {
  return f(caf::meta::type_name("message_details"), x.message, x.events, x.hits);
}
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, tracking_hit_record& x) {
  return f(caf::meta::type_name("tracking_hit_record"), x.recipient_id, x.link, x.machine, x.count,
           x.first_at_ms, x.last_at_ms);
}
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, tracking_query& x) {
  return f(caf::meta::type_name("tracking_query"), x.message_id, x.recipient_id, x.link);
}
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, tracking_target& x) {
  return f(caf::meta::type_name("tracking_target"), x.tenant_id, x.url, x.expires_ms, x.record_ip, x.address,
           x.delivered_at_ms);
}
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, receipt_recipient& x) {
  return f(caf::meta::type_name("receipt_recipient"), x.email, x.id, x.status);
}
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, submit_receipt& x) {
  return f(caf::meta::type_name("submit_receipt"), x.message_id, x.tenant_id, x.recipients);
}
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, tenant_identity& x) {
  return f(caf::meta::type_name("tenant_identity"), x.tenant_id, x.name);
}
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, new_tenant& x) {
  return f(caf::meta::type_name("new_tenant"), x.name, x.rate_per_second, x.burst, x.sandbox);
}
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, tenant_patch& x) {
  return f(caf::meta::type_name("tenant_patch"), x.set_rate, x.rate_per_second, x.set_burst,
           x.burst, x.set_suspended, x.suspended, x.set_pool, x.pool, x.set_weight, x.weight,
           x.set_sandbox, x.sandbox, x.set_tracking_opens, x.tracking_opens, x.set_tracking_clicks,
           x.tracking_clicks, x.set_tracking_record_ip, x.tracking_record_ip, x.set_tracking_domain,
           x.tracking_domain, x.set_tracking_check, x.tracking_verified, x.tracking_checked_at_ms,
           x.tracking_status);
}
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, issued_key& x) {
  return f(caf::meta::type_name("issued_key"), x.key, x.api_key);
}
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, created_tenant& x) {
  return f(caf::meta::type_name("created_tenant"), x.tenant, x.key);
}
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, tenant_summary& x) {
  return f(caf::meta::type_name("tenant_summary"), x.tenant, x.keys, x.reputation, x.reputation_state,
           x.sender_domains);
}
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, sender_domain_reputation& x) {
  return f(caf::meta::type_name("sender_domain_reputation"), x.domain, x.counts, x.state);
}
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, reputation_counts& x) {
  return f(caf::meta::type_name("reputation_counts"), x.delivered, x.hard_bounces, x.complaints);
}
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, domain_queue_stats& x) {
  return f(caf::meta::type_name("domain_queue_stats"), x.domain, x.queued, x.deferred,
           x.oldest_ms, x.next_attempt_ms, x.due, x.in_flight, x.waiting_for, x.lanes, x.tenants,
           x.in_memory, x.last_replies);
}
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, reply_note& x) {
  return f(caf::meta::type_name("reply_note"), x.at_ms, x.outcome, x.reply, x.count);
}
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, queue_summary& x) {
  return f(caf::meta::type_name("queue_summary"), x.domains, x.domain_actors, x.restarting);
}
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, mx_record& x) {
  return f(caf::meta::type_name("mx_record"), x.preference, x.host);
}
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, mx_lookup& x) {
  return f(caf::meta::type_name("mx_lookup"), x.outcome, x.records, x.ttl, x.error, x.secure);
}
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, address_lookup& x) {
  return f(caf::meta::type_name("address_lookup"), x.outcome, x.addresses, x.ttl, x.error, x.secure);
}
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, tlsa_lookup& x) {
  return f(caf::meta::type_name("tlsa_lookup"), x.outcome, x.records, x.ttl, x.error, x.secure);
}
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, tlsa_record& x) {
  return f(caf::meta::type_name("tlsa_record"), x.usage, x.selector, x.matching, x.data);
}
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, mx_host& x) {
  return f(caf::meta::type_name("mx_host"), x.name, x.addresses, x.port, x.tlsa);
}
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, route& x) {
  return f(caf::meta::type_name("route"), x.status, x.error, x.site, x.hosts, x.expires_at_ms,
           x.sts_mode, x.sts_mx, x.sts_enforced, x.relay);
}
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, sts_result& x) {
  return f(caf::meta::type_name("sts_result"), x.found, x.unchanged, x.id, x.mode, x.mx, x.max_age,
           x.error);
}
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, recipient_update& x) {
  return f(caf::meta::type_name("recipient_update"), x.recipient_id, x.state, x.attempts,
           x.next_attempt_at_ms, x.last_reply, x.event, x.partition, x.epoch);
}
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, delivery_content& x) {
  return f(caf::meta::type_name("delivery_content"), x.mail_from, x.addresses, x.content,
           x.suppressed, x.bulk, x.tenant_id, x.from_domain, x.templated, x.personal);
}
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, suppression_record& x) {
  return f(caf::meta::type_name("suppression_record"), x.tenant_id, x.address, x.reason,
           x.source_event, x.created_at_ms, x.expires_at_ms);
}
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, soft_bounce_streak& x) {
  return f(caf::meta::type_name("soft_bounce_streak"), x.address, x.count, x.first_at_ms);
}
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, suppression_query& x) {
  return f(caf::meta::type_name("suppression_query"), x.tenant_id, x.address, x.reason, x.after,
           x.limit);
}
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, suppression_snapshot& x) {
  return f(caf::meta::type_name("suppression_snapshot"), x.suppressions, x.streaks);
}
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, idempotency_record& x) {
  return f(caf::meta::type_name("idempotency_record"), x.key, x.request_hash, x.message_id, x.status,
           x.response, x.created_at_ms, x.expires_at_ms);
}
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, template_record& x) {
  return f(caf::meta::type_name("template_record"), x.id, x.version, x.tenant_id, x.name, x.subject, x.has_text,
           x.text, x.has_html, x.html, x.created_at_ms);
}
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, message_search& x) {
  return f(caf::meta::type_name("message_search"), x.tenant_id, x.recipient, x.status, x.campaign, x.tag, x.batch_id,
           x.since_ms, x.until_ms, x.before_created_ms, x.before_id, x.limit);
}
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, template_query& x) {
  return f(caf::meta::type_name("template_query"), x.tenant_id, x.id, x.version);
}
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, idempotency_query& x) {
  return f(caf::meta::type_name("idempotency_query"), x.tenant_id, x.key, x.now_ms);
}
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, cancel_query& x) {
  return f(caf::meta::type_name("cancel_query"), x.tenant_id, x.message_id, x.batch_id);
}
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, cancel_targets& x) {
  return f(caf::meta::type_name("cancel_targets"), x.messages, x.waiting);
}
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, recipient_query& x) {
  return f(caf::meta::type_name("recipient_query"), x.recipient_id, x.message_id_header);
}
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, recipient_lookup& x) {
  return f(caf::meta::type_name("recipient_lookup"), x.recipient_id, x.message_id, x.tenant_id,
           x.address, x.domain, x.state, x.attempts, x.sender_domain);
}
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, inbound_message& x) {
  return f(caf::meta::type_name("inbound_message"), x.envelope_from, x.envelope_to, x.content,
           x.tenant_id, x.origin);
}
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, inbound_outcome& x) {
  return f(caf::meta::type_name("inbound_outcome"), x.recipient_id, x.message_id, x.address,
           x.event, x.category, x.hard, x.suppressed, x.bounce_reason);
}
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, inbound_result& x) {
  return f(caf::meta::type_name("inbound_result"), x.kind, x.note, x.outcomes);
}
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, delivery_job& x) {
  return f(caf::meta::type_name("delivery_job"), x.job_id, x.message_id, x.tenant_id, x.domain,
           x.recipient_ids, x.expires_at_ms, x.owner, x.partition, x.epoch, x.sender_domain);
}
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, recipient_result& x) {
  return f(caf::meta::type_name("recipient_result"), x.recipient_id, x.code, x.enhanced, x.reply,
           x.expired, x.suppressed, x.force_bounce, x.address, x.command);
}
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, attempt_details& x) {
  return f(caf::meta::type_name("attempt_details"), x.mx_host, x.mx_address, x.source,
           x.source_address, x.tls, x.tls_version, x.tls_cipher, x.dane, x.simulated, x.sender_domain);
}
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, job_outcome& x) {
  return f(caf::meta::type_name("job_outcome"), x.job_id, x.recipients, x.attempt);
}
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, dkim_key_record& x) {
  return f(caf::meta::type_name("dkim_key_record"), x.id, x.domain_id, x.selector, x.algorithm,
           x.private_key, x.public_key, x.created_at_ms, x.state);
}
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, sender_domain_record& x) {
  return f(caf::meta::type_name("sender_domain_record"), x.id, x.tenant_id, x.domain,
           x.created_at_ms, x.verified, x.checked_at_ms, x.status_json, x.keys);
}
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, new_sender_domain& x) {
  return f(caf::meta::type_name("new_sender_domain"), x.domain, x.algorithms, x.selector,
           x.private_key_pem);
}
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, dns_record_view& x) {
  return f(caf::meta::type_name("dns_record_view"), x.type, x.name, x.value, x.purpose);
}
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, sender_domain_view& x) {
  return f(caf::meta::type_name("sender_domain_view"), x.domain, x.records);
}
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, domain_check& x) {
  return f(caf::meta::type_name("domain_check"), x.verified, x.status_json);
}
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, egress_usage_record& x) {
  return f(caf::meta::type_name("egress_usage_record"), x.source, x.period, x.period_start_ms, x.count);
}
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, egress_state& x) {
  return f(caf::meta::type_name("egress_state"), x.sources, x.warmup_started, x.usage);
}
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, event_query& x) {
  return f(caf::meta::type_name("event_query"), x.tenant_id, x.all_tenants, x.after_seq, x.types, x.message_id,
           x.recipient, x.campaign, x.since_ms, x.until_ms, x.limit);
}
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, event_view& x) {
  return f(caf::meta::type_name("event_view"), x.seq, x.event, x.recipient, x.campaign, x.tags_json,
           x.metadata_json, x.recipient_metadata_json);
}
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, webhook_record& x) {
  return f(caf::meta::type_name("webhook_record"), x.id, x.tenant_id, x.url, x.event_types, x.secret,
           x.created_at_ms, x.state, x.paused_reason, x.cursor, x.last_success_at_ms, x.last_error,
           x.last_error_at_ms, x.failures, x.failing_since_ms, x.delivered, x.previous_secret,
           x.previous_until_ms);
}
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, stats_query& x) {
  return f(caf::meta::type_name("stats_query"), x.tenant_id, x.campaign, x.bucket_ms, x.since_ms, x.until_ms);
}
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, stats_row& x) {
  return f(caf::meta::type_name("stats_row"), x.bucket_start_ms, x.type, x.hard, x.count, x.recipients);
}
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, webhook_status& x) {
  return f(caf::meta::type_name("webhook_status"), x.record, x.next_attempt_ms, x.backlog);
}
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, tenant_count& x) {
  return f(caf::meta::type_name("tenant_count"), x.tenant, x.waiting);
}
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, lane_stats& x) {
  return f(caf::meta::type_name("lane_stats"), x.source, x.site, x.due, x.in_flight, x.blocked,
           x.blocked_until_ms);
}
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, site_stats& x) {
  return f(caf::meta::type_name("site_stats"), x.source, x.site, x.sessions, x.connection_limit,
           x.max_connection_limit, x.ready, x.loading, x.credit_out, x.waiting_for,
           x.blocked_until_ms, x.message_rate);
}
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, site_warmup_stats& x) {
  return f(caf::meta::type_name("site_warmup_stats"), x.site, x.day, x.per_day, x.per_hour, x.used_today,
           x.used_this_hour);
}
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, source_stats& x) {
  return f(caf::meta::type_name("source_stats"), x.name, x.address, x.message_rate, x.warmup,
           x.warmup_day, x.per_day, x.per_hour, x.used_today, x.used_this_hour,
           x.warmup_started_ms, x.sent_last_minute, x.sites, x.site_warmups);
}
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, control_record& x) {
  return f(caf::meta::type_name("control_record"), x.kind, x.target, x.until_ms, x.reason,
           x.created_at_ms);
}
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, readiness& x) {
  return f(caf::meta::type_name("readiness"), x.ready, x.reason);
}

}  // namespace petrel
