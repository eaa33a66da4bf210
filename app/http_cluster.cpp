// Admin routes of a cluster (docs/cluster.md, docs/api.md "Admin API"):
//   GET  /admin/cluster         members, leases, partitions per node, epochs, the last round
//   POST /admin/cluster/drain   this node leaves: hands its partitions over, keeps serving the API
//   GET  /metrics?scope=cluster every member's series, each with a node label
// (GET /admin/queues and /admin/egress take ?scope=cluster too: app/http_shaping.cpp.)
#include <boost/json.hpp>
#include <caf/all.hpp>

#include "actors/actor_support.hpp"
#include "actors/metrics.hpp"
#include "app/actor_bridge.hpp"
#include "app/http_api.hpp"
#include "app/http_common.hpp"
#include "app/problem.hpp"

namespace petrel {

namespace json = boost::json;

namespace {

json::object cluster_json(const cluster_view& v) {
  json::array members;
  for (const auto& m : v.members)
    members.push_back(json::object{{"name", m.name},
                                   {"advertise", m.advertise},
                                   {"live", m.live},
                                   {"lease_left_ms", m.lease_left_ms},
                                   {"partitions", m.partitions}});
  json::array partitions;
  for (const auto& p : v.partitions)
    partitions.push_back(json::object{{"id", p.id},
                                      {"owner", p.owner.empty() ? json::value(nullptr) : json::value(p.owner)},
                                      {"epoch", p.epoch},
                                      {"lease_valid", p.lease_valid}});
  return json::object{{"enabled", v.enabled},
                      {"node", v.node},
                      {"draining", v.draining},
                      {"partition_count", v.partition_count},
                      {"members", std::move(members)},
                      {"partitions", std::move(partitions)},
                      {"last_round_at", timestamp(v.last_round_at_ms)},
                      {"round_duration_ms", v.round_duration_ms},
                      {"error", v.error.empty() ? json::value(nullptr) : json::value(v.error)}};
}

}  // namespace

void http_api::admin_cluster(http_responder respond) {
  auto cluster = directory_->get()->cluster;
  if (!cluster) return respond(json_response(200, json::object{{"enabled", false}}));
  auto& sys = sys_;
  ask<cluster_view>(
      sys_, cluster, cfg_.http.handler_timeout,
      [respond](cluster_view& v) { respond(json_response(200, cluster_json(v))); },
      [respond, &sys](caf::error& e) { respond(problem_from_error(sys, e)); }, cluster_atom::value);
}

void http_api::cluster_metrics(http_responder respond) {
  auto cluster = directory_->get()->cluster;
  if (!cluster) return respond(not_a_cluster_member());
  auto& sys = sys_;
  ask<std::vector<node_report>>(
      sys_, cluster, cfg_.http.handler_timeout,
      [respond](std::vector<node_report>& reports) {
        std::vector<std::pair<std::string, std::string>> texts;
        std::string missing;
        for (auto& r : reports) {
          if (r.error.empty()) texts.emplace_back(r.node, std::move(r.metrics));
          else missing += "# node " + r.node + " did not answer: " + r.error + "\n";
        }
        http_response out;
        out.content_type = "text/plain; version=0.0.4; charset=utf-8";
        out.body = missing + merge_expositions(texts);
        respond(std::move(out));
      },
      [respond, &sys](caf::error& e) { respond(problem_from_error(sys, e)); }, metrics_atom::value);
}

void http_api::admin_cluster_drain(http_responder respond) {
  auto cluster = directory_->get()->cluster;
  if (!cluster) return respond(not_a_cluster_member());
  // The handover takes up to cluster.drain_timeout: it goes on after this answer, and
  // GET /admin/cluster shows it ("draining", partitions held).
  caf::anon_send(cluster, drain_atom::value);
  respond(json_response(202, json::object{{"draining", true}, {"node", cfg_.cluster.node_name}}));
}

}  // namespace petrel
