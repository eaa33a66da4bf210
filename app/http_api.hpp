// The HTTP API: routes of the public listener (tenant API: /v1/..., health) and of the
// admin listener (/admin/..., /metrics, health). Handlers validate on the HTTP thread and
// ask the actors without blocking (app/actor_bridge.hpp).
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <optional>
#include <set>
#include <string>

#include "actors/services.hpp"
#include "app/reload.hpp"
#include "app/submission_request.hpp"
#include "config/config.hpp"
#include "net/http.hpp"

namespace caf {
class actor_system;
}

namespace petrel {

struct tenant_identity;
class console_sessions;

class http_api {
 public:
  // bounce_secret: the key of unsubscribe tokens (bounces.secret_file), or empty.
  http_api(caf::actor_system& sys, std::shared_ptr<service_directory> directory, config cfg,
           std::string admin_token, std::string bounce_secret = {});

  // The node's I/O runtime, for what the API itself sends (webhook tests) and looks up (DNS).
  void set_runtime(std::shared_ptr<delivery_runtime> runtime) { runtime_ = std::move(runtime); }
  // The key of tracking tokens (tracking.enabled); the tracking listener refuses every token
  // without it.
  void set_tracking_secret(std::string secret) { tracking_secret_ = std::move(secret); }
  // Live reload (app/reload.hpp): what POST /admin/reload and SIGHUP run.
  void set_reloader(std::function<reload_report(const std::string& by)> reloader) { reloader_ = std::move(reloader); }
  reload_report reload_configuration(const std::string& by);
  // The pools a tenant may be given, after a reload changed them. Thread-safe.
  void set_pool_names(const egress_settings& egress);

  // Why a tenant API request's key cannot be right before anyone looks it up: none, the
  // admin token by mistake, or not an API key at all (they start with pk_).
  std::optional<http_response> api_key_problem(const std::string& key) const;

  void public_request(http_request&& request, http_responder respond);
  // The tracking listener ([tracking]): GET|HEAD /o/{token}.gif, /c/{token} (app/http_tracking.cpp).
  void tracking_request(http_request&& request, http_responder respond);
  void admin_request(http_request&& request, http_responder respond);

 private:
  void submit_message(http_request&& request, http_responder respond);
  void get_message(const http_request& request, const std::string& id, http_responder respond);
  void get_message_content(const http_request& request, const std::string& id, http_responder respond);
  // POST /v1/messages/{id}/cancel (batch empty) and POST /v1/batches/{batch}/cancel.
  void cancel_messages(const http_request& request, const std::string& message, const std::string& batch,
                       http_responder respond);
  // /v1/templates: create, list, get, update (a new version), delete, render (http_templates.cpp).
  void templates(http_request&& request, const std::vector<std::string>& parts, http_responder respond);
  // A parsed submission: its 400/413, or the message submitted (with its Idempotency-Key, if
  // any: idempotency_key non-empty).
  void accept_submission(std::string key_hash, submission_result result, std::string idempotency_key,
                         std::string body_hash, std::shared_ptr<http_trace> trace, http_responder respond);
  // A valid submission with an Idempotency-Key: the stored answer, a 422, or a new message.
  void submit_idempotent(std::string key_hash, message_record message, std::string idempotency_key,
                         std::string request_hash, std::shared_ptr<http_trace> trace, http_responder respond);
  void readiness(http_responder respond);
  void sender_domains(http_request&& request, const std::vector<std::string>& parts,
                      http_responder respond);
  void admin_list_tenants(http_responder respond);
  void admin_create_tenant(const http_request& request, http_responder respond);
  void admin_update_tenant(const std::string& tenant_id, const http_request& request,
                           http_responder respond);
  void admin_store_fault(const http_request& request, http_responder respond);
  void admin_create_key(const std::string& tenant_id, http_responder respond);
  void admin_revoke_key(const std::string& tenant_id, const std::string& key_id,
                        http_responder respond);
  void admin_crash(const http_request& request, http_responder respond);
  // app/http_console.cpp: the web console (/ui/...), its logins, and the admin endpoints it
  // reads beyond the others.
  void console_request(http_request&& request, http_responder respond);
  // Whether an admin request may proceed: the admin token (Bearer), or a console session's
  // cookie with, for methods that change something, its CSRF token and a same-origin request.
  // Sets `console` when the session authenticated it.
  std::optional<http_response> admin_authentication(const http_request& request, bool& console);
  // /admin/tenants/{id}/{suppressions,webhooks,domains,templates,messages,events,stats}...:
  // the tenant API's handlers, acting for that tenant.
  void admin_as_tenant(http_request&& request, const std::vector<std::string>& parts,
                       http_responder respond);
  void admin_activity(const http_request& request, http_responder respond);
  void admin_search_messages(http_request&& request, http_responder respond);
  void admin_get_message(const std::string& id, http_responder respond);
  void admin_events(http_request&& request, http_responder respond);
  void admin_webhooks(http_responder respond);
  // app/http_shaping.cpp
  void admin_shaping_action(const std::string& kind, const std::string& target,
                            const std::string& action, const http_request& request,
                            http_responder respond);
  void admin_controls(http_responder respond);
  // cluster_scope: every member's, asked over the node links (?scope=cluster).
  void admin_queues(http_responder respond, bool cluster_scope);
  void admin_egress(http_responder respond, bool cluster_scope);
  void admin_domain_queue(const std::string& domain, http_responder respond);
  // app/http_cluster.cpp
  void admin_cluster(http_responder respond);
  // GET /metrics?scope=cluster: every member's series with a node label.
  void cluster_metrics(http_responder respond);
  void admin_cluster_drain(http_responder respond);
  // app/http_bounces.cpp
  // Authenticates the request's API key, then calls `then` with the tenant; answers 401 (no or
  // unknown key) or 503 itself.
  void as_tenant(const http_request& request, const http_responder& respond,
                 std::function<void(tenant_identity&)> then);
  void events(http_request&& request, http_responder respond);
  // GET /v1/messages: a tenant's messages by recipient, status, campaign, tag, batch, time.
  void search_messages(http_request&& request, http_responder respond);
  void stats(http_request&& request, http_responder respond);
  void webhooks(http_request&& request, const std::vector<std::string>& parts, http_responder respond);
  void suppressions(http_request&& request, const std::vector<std::string>& parts,
                    http_responder respond);
  void inbound(http_request&& request, bool admin, http_responder respond);
  void unsubscribe(http_request&& request, const std::string& token, http_responder respond);
  // app/http_tracking.cpp: GET|PATCH /v1/tracking, POST /v1/tracking/verify.
  void tracking_settings(http_request&& request, const std::vector<std::string>& parts, http_responder respond);

  caf::actor_system& sys_;
  std::shared_ptr<service_directory> directory_;
  config cfg_;
  std::string admin_token_;
  std::shared_ptr<delivery_runtime> runtime_;
  std::string bounce_secret_;
  std::string tracking_secret_;
  std::vector<ip_network> tracking_proxies_;  // tracking.trusted_proxies
  // Pool names a tenant may be given (replaced whole by a reload).
  std::atomic<std::shared_ptr<const std::set<std::string>>> pool_names_;
  std::function<reload_report(const std::string&)> reloader_;
  std::shared_ptr<console_sessions> sessions_;
};

}  // namespace petrel
