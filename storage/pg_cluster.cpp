// Cluster coordination on PostgreSQL (see pg_cluster.hpp). Statements after the project's notes
// on leases and fencing: one statement per decision, the database's clock in every comparison.
#include "storage/pg_cluster.hpp"

#include <libpq-fe.h>

#include <algorithm>
#include <memory>
#include <sstream>

#include "storage/store.hpp"

namespace petrel {

namespace {

using result_ptr = std::unique_ptr<PGresult, decltype(&PQclear)>;

std::string interval(std::chrono::milliseconds lease) { return std::to_string(lease.count()) + " milliseconds"; }

// A PostgreSQL int[] / bigint[] literal.
template <class T>
std::string array_literal(const std::vector<T>& values) {
  std::ostringstream out;
  out << '{';
  for (std::size_t i = 0; i < values.size(); ++i) out << (i ? "," : "") << values[i];
  out << '}';
  return out.str();
}

// Every statement of this connection gives up after this long: a lease round must end (and
// fail) rather than hang on a lock or a server that stopped answering.
constexpr const char* statement_timeout = "SET statement_timeout = '3s'";

result_ptr run(PGconn* conn, const char* sql, const std::vector<std::string>& values) {
  // A connection lost since the last round is opened again first (blocking, connect_timeout).
  if (PQstatus(conn) != CONNECTION_OK) {
    PQreset(conn);
    if (PQstatus(conn) != CONNECTION_OK)
      throw store_error(std::string("cluster store: cannot reconnect: ") + PQerrorMessage(conn));
    result_ptr set(PQexec(conn, statement_timeout), &PQclear);
  }
  std::vector<const char*> params;
  for (const auto& v : values) params.push_back(v.c_str());
  result_ptr r(PQexecParams(conn, sql, static_cast<int>(params.size()), nullptr, params.data(), nullptr, nullptr, 0),
               &PQclear);
  auto status = PQresultStatus(r.get());
  if (status != PGRES_COMMAND_OK && status != PGRES_TUPLES_OK)
    throw store_error(std::string("cluster store: ") + PQresultErrorMessage(r.get()));
  return r;
}

}  // namespace

cluster_store::cluster_store(const std::string& url) {
  if (url.rfind("postgresql://", 0) != 0 && url.rfind("postgres://", 0) != 0)
    throw store_error("a cluster needs the PostgreSQL store (storage.url = \"postgresql://...\"); got " +
                      url.substr(0, url.find(':')));
  auto target = url + (url.find('?') == std::string::npos ? "?" : "&") + "connect_timeout=5";
  auto* c = PQconnectdb(target.c_str());
  if (PQstatus(c) != CONNECTION_OK) {
    std::string error = PQerrorMessage(c);
    PQfinish(c);
    throw store_error("cluster store: cannot connect to PostgreSQL: " + error);
  }
  conn_ = c;
  result_ptr set(PQexec(conn_, statement_timeout), &PQclear);
}

cluster_store::~cluster_store() {
  if (conn_) PQfinish(conn_);
}

void cluster_store::renew_node(const std::string& name, const std::string& advertise,
                               std::chrono::milliseconds lease) {
  run(conn_,
      "INSERT INTO nodes (name, advertise, lease_until) VALUES ($1, $2, clock_timestamp() + $3::interval) "
      "ON CONFLICT (name) DO UPDATE SET advertise = EXCLUDED.advertise, lease_until = EXCLUDED.lease_until",
      {name, advertise, interval(lease)});
}

std::vector<std::string> cluster_store::live_nodes() {
  auto r = run(conn_,
               "SELECT name FROM nodes WHERE lease_until > clock_timestamp() ORDER BY name", {});
  std::vector<std::string> out;
  for (int i = 0; i < PQntuples(r.get()); ++i) out.emplace_back(PQgetvalue(r.get(), i, 0));
  return out;
}

std::vector<cluster_store::member> cluster_store::members() {
  auto r = run(conn_,
               "SELECT name, advertise, CASE WHEN lease_until = '-infinity' THEN -1 ELSE "
               "(extract(epoch FROM (lease_until - clock_timestamp())) * 1000)::bigint END "
               "FROM nodes ORDER BY name",
               {});
  std::vector<member> out;
  for (int i = 0; i < PQntuples(r.get()); ++i)
    out.push_back({PQgetvalue(r.get(), i, 0), PQgetvalue(r.get(), i, 1), std::stoll(PQgetvalue(r.get(), i, 2))});
  return out;
}

std::uint32_t cluster_store::ensure_partitions(std::uint32_t count) {
  run(conn_,
      "INSERT INTO partitions (id) SELECT generate_series(0, $1::int - 1) ON CONFLICT (id) DO NOTHING",
      {std::to_string(count)});
  auto r = run(conn_, "SELECT count(*) FROM partitions", {});
  return static_cast<std::uint32_t>(std::stoul(PQgetvalue(r.get(), 0, 0)));
}

void cluster_store::listen() {
  run(conn_, "LISTEN petrel_changes", {});
  listen_pid_ = PQbackendPID(conn_);
}

std::vector<std::string> cluster_store::changes() {
  std::vector<std::string> out;
  if (listen_pid_ == 0 || PQstatus(conn_) != CONNECTION_OK || PQbackendPID(conn_) != listen_pid_) {
    listen();  // (re)connects first when the connection was lost
    return {"controls", "tenants", "webhooks"};
  }
  if (PQconsumeInput(conn_) != 1) {
    listen_pid_ = 0;  // the connection broke: the next call starts over
    return {};
  }
  while (PGnotify* n = PQnotifies(conn_)) {
    std::string kind = n->extra ? n->extra : "";
    PQfreemem(n);
    if (std::find(out.begin(), out.end(), kind) == out.end()) out.push_back(std::move(kind));
  }
  return out;
}

void cluster_store::leave(const std::string& name) {
  run(conn_, "UPDATE nodes SET lease_until = '-infinity' WHERE name = $1", {name});
}

std::vector<cluster_partition> cluster_store::partitions() {
  auto r = run(conn_,
               "SELECT id, coalesce(owner, ''), epoch, lease_until > clock_timestamp(), "
               "CASE WHEN lease_until > clock_timestamp() "
               "THEN floor(extract(epoch FROM lease_until - clock_timestamp()) * 1000)::bigint ELSE 0 END "
               "FROM partitions ORDER BY id",
               {});
  std::vector<cluster_partition> out;
  for (int i = 0; i < PQntuples(r.get()); ++i)
    out.push_back({static_cast<std::uint32_t>(std::stoul(PQgetvalue(r.get(), i, 0))), PQgetvalue(r.get(), i, 1),
                   std::stoll(PQgetvalue(r.get(), i, 2)), PQgetvalue(r.get(), i, 3)[0] == 't',
                   std::stoll(PQgetvalue(r.get(), i, 4))});
  return out;
}

std::optional<std::int64_t> cluster_store::claim(std::uint32_t id, const std::string& node,
                                                 std::chrono::milliseconds lease) {
  auto r = run(conn_,
               "UPDATE partitions SET owner = $2, epoch = epoch + 1, lease_until = clock_timestamp() + $3::interval "
               "WHERE id = $1 AND (owner IS NULL OR lease_until < clock_timestamp()) RETURNING epoch",
               {std::to_string(id), node, interval(lease)});
  if (PQntuples(r.get()) != 1) return std::nullopt;
  return std::stoll(PQgetvalue(r.get(), 0, 0));
}

std::vector<std::pair<std::uint32_t, std::int64_t>> cluster_store::renew(
    const std::string& node, const std::vector<std::pair<std::uint32_t, std::int64_t>>& held,
    std::chrono::milliseconds lease) {
  std::vector<std::uint32_t> ids;
  std::vector<std::int64_t> epochs;
  for (const auto& [id, epoch] : held) {
    ids.push_back(id);
    epochs.push_back(epoch);
  }
  // Only what is still ours in the epoch we know, and not yet expired: a paused node that woke
  // up after its lease must not take a partition back by renewing it.
  auto r = run(conn_,
               "UPDATE partitions p SET lease_until = clock_timestamp() + $2::interval "
               "FROM unnest($3::int[], $4::bigint[]) AS h(id, epoch) "
               "WHERE p.id = h.id AND p.epoch = h.epoch AND p.owner = $1 AND p.lease_until > clock_timestamp() "
               "RETURNING p.id, p.epoch",
               {node, interval(lease), array_literal(ids), array_literal(epochs)});
  std::vector<std::pair<std::uint32_t, std::int64_t>> out;
  for (int i = 0; i < PQntuples(r.get()); ++i)
    out.emplace_back(static_cast<std::uint32_t>(std::stoul(PQgetvalue(r.get(), i, 0))),
                     std::stoll(PQgetvalue(r.get(), i, 1)));
  return out;
}

bool cluster_store::release(std::uint32_t id, const std::string& node, std::int64_t epoch) {
  auto r = run(conn_,
               "UPDATE partitions SET owner = NULL, lease_until = '-infinity' "
               "WHERE id = $1 AND owner = $2 AND epoch = $3 RETURNING id",
               {std::to_string(id), node, std::to_string(epoch)});
  return PQntuples(r.get()) == 1;
}

}  // namespace petrel
