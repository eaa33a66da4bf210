// One SMTP session of a site actor, as a coroutine on the I/O threads: connect (first MX
// target that works), then run jobs until the site has none for idle_timeout, the connection
// has carried max_deliveries_per_connection, or it breaks; then QUIT. It talks to its site
// only by message: outcomes and endings with anon_send, and "next job" with a continuation
// the site calls back, guarded by a timer so that a dead site cannot strand the session.
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <caf/all.hpp>
#include <spdlog/spdlog.h>

#include "actors/metrics.hpp"
#include "actors/services.hpp"
#include "net/smtp_client.hpp"

namespace petrel {

namespace asio = boost::asio;

namespace {

// A continuation that may be called from any thread (the site actor's worker) and resumes
// the coroutine on its strand; a timer gives up waiting if the site never answers.
template <class Handler>
struct next_state {
  next_state(Handler h, asio::any_io_executor ex) : handler(std::move(h)), timer(ex) {}
  void complete(std::optional<delivery_work> work) {
    if (done) return;
    done = true;
    timer.cancel();
    auto h = std::move(handler);
    std::move(h)(std::move(work));
  }
  Handler handler;
  asio::steady_timer timer;
  bool done = false;
};

template <class Token>
auto async_next_work(site_actor site, std::uint64_t session, std::chrono::milliseconds guard,
                     Token&& token) {
  return asio::async_initiate<Token, void(std::optional<delivery_work>)>(
      [site, session, guard](auto handler) {
        auto ex = asio::get_associated_executor(handler);
        auto state = std::make_shared<next_state<decltype(handler)>>(std::move(handler), ex);
        state->timer.expires_after(guard);
        state->timer.async_wait([state](const boost::system::error_code& ec) {
          if (!ec) state->complete(std::nullopt);
        });
        work_completion completion{[state, ex](std::optional<delivery_work> work) {
          asio::post(ex, [state, work = std::move(work)]() mutable { state->complete(std::move(work)); });
        }};
        caf::anon_send(site, next_atom::value, session, std::move(completion));
      },
      token);
}

smtp_client_settings client_settings(const session_plan& plan) {
  smtp_client_settings s;
  s.ehlo_name = plan.ehlo_name;
  s.bind_address = plan.bind_address;
  s.port = plan.port;
  s.tls = plan.tls;
  s.verify_certificate = plan.verify_certificate;
  s.auth_username = plan.auth_username;
  s.auth_password = plan.auth_password;
  s.timeouts.connect = plan.timeouts.connect_timeout;
  s.timeouts.greeting = plan.timeouts.greeting_timeout;
  s.timeouts.command = plan.timeouts.command_timeout;
  s.timeouts.data_init = plan.timeouts.data_timeout;
  s.timeouts.data_block = plan.timeouts.data_block_timeout;
  s.timeouts.data_done = plan.timeouts.data_done_timeout;
  return s;
}

job_outcome make_outcome(const delivery_work& work, const smtp_transaction_result& result,
                         const smtp_connection_info& info) {
  job_outcome out;
  out.job_id = work.job.job_id;
  out.attempt.mx_host = info.mx_host;
  out.attempt.mx_address = info.mx_address;
  out.attempt.source_address = info.local_address;
  out.attempt.tls = info.tls;
  out.attempt.tls_version = info.tls_version;
  out.attempt.tls_cipher = info.tls_cipher;
  out.attempt.dane = info.dane;
  for (std::size_t i = 0; i < work.job.recipient_ids.size(); ++i) {
    recipient_result r;
    r.recipient_id = work.job.recipient_ids[i];
    if (i < result.recipients.size() && result.recipients[i]) {
      const auto& reply = *result.recipients[i];
      r.code = reply.code;
      r.enhanced = reply.enhanced;
      r.reply = reply.text();
      if (i < result.commands.size()) r.command = result.commands[i];
    } else {
      r.reply = result.error.empty() ? "no reply from the server" : result.error;
    }
    if (i < work.addresses.size()) r.address = work.addresses[i];
    out.recipients.push_back(std::move(r));
  }
  for (const auto& skipped : work.skipped) out.recipients.push_back(skipped);
  return out;
}

histogram& session_seconds() {
  return metrics().get_histogram("petrel_smtp_session_seconds", "Duration of SMTP sessions",
                                 {0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300});
}

asio::awaitable<void> run_session(std::shared_ptr<delivery_runtime> runtime, site_actor site,
                                  std::uint64_t id, session_plan plan, delivery_work first) {
  auto started = std::chrono::steady_clock::now();
  auto executor = co_await asio::this_coro::executor;
  std::vector<smtp_target> targets;
  for (const auto& t : plan.targets) targets.push_back({t.host, t.address, t.port, t.tlsa});
  std::vector<smtp_connect_failure> failures;
  auto connection = co_await smtp_connection::open(executor, runtime->tls, targets,
                                                   client_settings(plan), failures);
  for (const auto& f : failures)
    if (!f.dane_failure.empty()) {
      core().dane(f.dane_failure).inc();
      spdlog::warn("dane.failure host={} address={} result={} error=\"{}\"", f.host, f.address, f.dane_failure, f.error);
    }
  if (connection && connection->info().dane) core().dane("success").inc();
  if (!connection) {
    std::string reason = "could not connect to any MX host:";
    for (const auto& f : failures) reason += " " + f.host + "[" + f.address + "]: " + f.error + ";";
    if (failures.empty()) reason += " the route has no address";
    if (!reason.empty() && reason.back() == ';') reason.pop_back();
    caf::anon_send(site, connfail_atom::value, id, reason);
    co_return;
  }
  const auto& info = connection->info();
  spdlog::debug("smtp.connected session={} mx={} address={} tls={} version={}", id, info.mx_host,
                info.mx_address, info.tls, info.tls_version);
  std::optional<delivery_work> work(std::move(first));
  std::uint32_t count = 0;
  std::string reason = "done";
  // The site answers "next" within its idle timeout; the guard only covers a dead site.
  auto guard = plan.idle_timeout + std::chrono::seconds(10);
  while (work) {
    smtp_transaction t;
    t.mail_from = work->mail_from;
    t.rcpt_to = work->addresses;
    t.content = work->content;
    t.needs_smtputf8 = work->needs_smtputf8;
    if (plan.leases && work->job.epoch != 0) {
      t.may_finish = [leases = plan.leases, p = work->job.partition, e = work->job.epoch] {
        return leases->in_force(p, e, partition_leases::now_ms());
      };
      t.abort_reason = "this node lost the domain's partition before the final dot (cluster fencing)";
    }
    // Cluster: a job whose partition this node no longer holds is not started at all.
    smtp_transaction_result result;
    if (t.may_finish && !t.may_finish()) {
      result.recipients.resize(t.rcpt_to.size());
      result.error = t.abort_reason;
    } else {
      result = co_await connection->send(t);
    }
    caf::anon_send(site, outcome_atom::value, id, make_outcome(*work, result, info));
    ++count;
    if (!connection->usable()) {
      reason = result.error.empty() ? "connection no longer usable" : result.error;
      break;
    }
    if (count >= plan.max_deliveries) {
      reason = "max_deliveries_per_connection reached";
      break;
    }
    work = co_await async_next_work(site, id, guard, asio::use_awaitable);
  }
  co_await connection->quit();
  session_seconds().observe(
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count());
  caf::anon_send(site, closed_atom::value, id, reason);
}

}  // namespace

void start_smtp_session(const std::shared_ptr<delivery_runtime>& runtime, site_actor site,
                        std::uint64_t session_id, session_plan plan, delivery_work first) {
  static label_limiter sites(100, 1);
  auto& sessions = metrics().get_gauge("petrel_smtp_sessions", "Open SMTP sessions");
  auto& at_site = metrics().get_gauge("petrel_site_sessions", "Open SMTP sessions by MX site (100 at most)",
                                      {{"site", sites.label(plan.site_name)}});
  sessions.add(1);
  at_site.add(1);
  asio::co_spawn(asio::make_strand(*runtime->io),
                 run_session(runtime, std::move(site), session_id, std::move(plan), std::move(first)),
                 [&sessions, &at_site, site, session_id](std::exception_ptr e) {
                   sessions.add(-1);
                   at_site.add(-1);
                   if (!e) return;
                   std::string what = "unknown exception";
                   try {
                     std::rethrow_exception(e);
                   } catch (const std::exception& ex) {
                     what = ex.what();
                   } catch (...) {
                   }
                   spdlog::error("smtp.session_failed session={} error=\"{}\"", session_id, what);
                   // The site must learn that the slot is free (and the job's fate unknown).
                   caf::anon_send(site, closed_atom::value, session_id, "internal error: " + what);
                 });
}

}  // namespace petrel
