"""/metrics end to end: the exposition parses with the Prometheus text-format parser, label
cardinality stays bounded, and the counters move exactly as a known workload predicts."""
import json
import pathlib
import re
import sys

import requests
from prometheus_client.parser import text_string_to_metric_families

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "tools"))
from servers import DnsServer, SmtpServer, WebhookServer  # noqa: E402

from conftest import delivery_config, settle_message, submit_ok, wait_for  # noqa: E402


def scrape(node):
    """{(name, frozenset(labels)): value} of every sample; fails if the text does not parse."""
    text = requests.get(node.admin_url("/metrics"), timeout=10).text
    samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            samples[(s.name, frozenset(s.labels.items()))] = s.value
    return samples


def value(samples, name, **labels):
    return samples.get((name, frozenset(labels.items())), 0.0)


def test_metrics_parse_and_move_as_the_workload_predicts(make_node, tmp_path):
    sink = SmtpServer(tmp_path, listen=["127.0.0.2:0"]).start()
    records = [{"name": "mx1.example.test", "type": "A", "address": "127.0.0.2"},
               {"name": "example.test", "type": "MX", "preference": 10, "exchange": "mx1.example.test"}]
    records += [{"name": f"d{i}.test", "type": "MX", "preference": 10, "exchange": "mx1.example.test"}
                for i in range(60)]
    dns = DnsServer(tmp_path, {"records": records}).start()
    hooks = WebhookServer(tmp_path).start()
    try:
        node = make_node(delivery_config(dns.port, sink.port, **{
            "delivery.idle_timeout": '"1s"', "webhooks.allow_private_networks": "true",
            "webhooks.require_https": "false", "webhooks.max_delay": '"100ms"'}))
        before = scrape(node)
        r = node.session.post(node.url("/v1/webhooks"), json={"url": f"http://127.0.0.1:{hooks.port}/"},
                              headers={"Authorization": f"Bearer {node.key}"})
        assert r.status_code == 201, r.text
        tenant = node.admin("GET", "/admin/tenants").json()["tenants"][0]["id"]
        ids = [submit_ok(node, to=[f"ok{i}@example.test"])["id"] for i in range(12)]
        ids.append(submit_ok(node, to=["tempfail-1-a@example.test"])["id"])
        ids.append(submit_ok(node, to=["permfail-b@example.test"])["id"])
        # 60 domains with one message each: more than the 50 domain labels allowed.
        ids += [submit_ok(node, to=[f"x@d{i}.test"])["id"] for i in range(60)]
        for i in ids:
            settle_message(node, i)
        wait_for(lambda: len(hooks.events()) >= 2 * len(ids) + 1, what="webhook events")
        # Sessions close after delivery.idle_timeout; their durations are observed then.
        after = wait_for(lambda: (lambda m: m if value(m, "petrel_smtp_sessions") == 0 else None)(scrape(node)),
                         what="idle sessions to close")

        def moved(name, **labels):
            return value(after, name, **labels) - value(before, name, **labels)

        assert moved("petrel_messages_accepted_total") == 74
        assert moved("petrel_recipients_accepted_total") == 74
        assert moved("petrel_recipient_outcomes_total", outcome="delivered") == 73
        assert moved("petrel_recipient_outcomes_total", outcome="deferred") == 1
        assert moved("petrel_recipient_outcomes_total", outcome="bounced") == 1
        # example.test earned its own series at its 10th attempt (those before count as "other");
        # the 60 one-message domains stay "other".
        own = moved("petrel_domain_outcomes_total", domain="example.test", outcome="delivered")
        assert own >= 1
        assert own + moved("petrel_domain_outcomes_total", domain="other", outcome="delivered") == 73
        assert moved("petrel_tenant_outcomes_total", tenant=tenant, outcome="delivered") == 73
        failures = {k: v for k, v in after.items() if k[0] == "petrel_failures_total"}
        assert sum(v for k, v in failures.items() if ("outcome", "bounced") in k[1]) == 1
        assert sum(v for k, v in failures.items() if ("outcome", "deferred") in k[1]) == 1
        assert value(after, "petrel_recipients_queue", state="queued") == 0
        assert value(after, "petrel_recipients_queue", state="deferred") == 0
        assert moved("petrel_webhook_events_total") == 2 * len(ids) + 1  # + the deferral
        assert moved("petrel_webhook_posts_total", outcome="ok") >= 1
        assert value(after, "petrel_webhook_lag_seconds_count") >= 1
        assert moved("petrel_smtp_session_seconds_count") >= 1
        assert moved("petrel_store_commits_total") >= 1
        assert value(after, "process_resident_memory_bytes") > 1e6
        assert value(after, "process_open_fds") > 3
        # Bounded labels: no family has more than its limit of series.
        domains = {dict(k[1]).get("domain") for k in after if k[0] == "petrel_domain_outcomes_total"}
        assert len(domains) <= 51 and "d0.test" not in domains
        assert value(after, "petrel_site_sessions", site="mx1.example.test") == 0  # the family exists
        # The Grafana dashboard only asks for series that exist.
        dashboard = json.loads((pathlib.Path(__file__).resolve().parents[2] / "docs/grafana-dashboard.json").read_text())
        names = {re.sub(r"_(bucket|sum|count)$", "", k[0]) for k in after} | {k[0] for k in after}
        wanted = {re.sub(r"_(bucket|sum|count)$", "", m) for panel in dashboard["panels"] for t in panel["targets"]
                  for m in re.findall(r"\b(?:petrel|process)_[a-z_]+", t["expr"])}
        assert wanted <= names, wanted - names
    finally:
        hooks.stop()
        dns.stop()
        sink.stop()


def test_the_delivery_log_has_a_line_per_attempt_and_reopens_on_sighup(make_node, tmp_path):
    import signal
    sink = SmtpServer(tmp_path, listen=["127.0.0.2:0"]).start()
    dns = DnsServer(tmp_path, {"records": [
        {"name": "mx1.example.test", "type": "A", "address": "127.0.0.2"},
        {"name": "example.test", "type": "MX", "preference": 10, "exchange": "mx1.example.test"}]}).start()
    log = tmp_path / "delivery.log"
    try:
        node = make_node(delivery_config(dns.port, sink.port, **{"log.delivery_log": f'"{log}"'}))
        first = submit_ok(node, to=["tempfail-1-a@example.test", "permfail-b@example.test"])["id"]
        settle_message(node, first)
        lines = [json.loads(x) for x in log.read_text().splitlines()]
        assert sorted(x["type"] for x in lines) == ["bounced", "deferred", "delivered"]
        for x in lines:
            assert x["message"] == first and x["domain"] == "example.test" and x["at"].endswith("Z")
            assert x["data"]["mx_host"] == "mx1.example.test" and x["data"]["attempt"] >= 1
        bounced = next(x for x in lines if x["type"] == "bounced")
        assert bounced["email"] == "permfail-b@example.test" and bounced["data"]["smtp_code"] == 550
        # The operator rotates: move the file away, then SIGHUP.
        rotated = tmp_path / "delivery.log.1"
        log.rename(rotated)
        node.proc.send_signal(signal.SIGHUP)
        wait_for(log.exists, what="the reopened log")
        second = submit_ok(node, to=["c@example.test"])["id"]
        settle_message(node, second)
        wait_for(lambda: log.read_text().strip(), what="a line in the new file")
        assert [json.loads(x)["message"] for x in log.read_text().splitlines()] == [second]
        assert len(rotated.read_text().splitlines()) == 3
        assert node.proc.poll() is None  # SIGHUP does not stop it
    finally:
        dns.stop()
        sink.stop()
