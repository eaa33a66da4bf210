"""Live reload of the configuration (docs/operations.md, "Live reload"): the file is edited and
SIGHUP or POST /admin/reload applies it without a restart. A source and a pool added live carry
the next messages; a site rate tightened live holds; an invalid file changes nothing and says
where it is wrong; keys that need a restart are named and keep their running value; each reload
is an admin_action event."""
import signal
import time

import requests

from conftest import delivery_config, settle_message, wait_for
from servers import SmtpServer

SITE = """
[[delivery.sites]]
match = "mx1.example.test"
message_rate = "{rate}"
"""

SOURCES = """
[[egress.sources]]
name = "a"
address = "127.0.0.1"
"""

MORE_SOURCES = SOURCES + """
[[egress.sources]]
name = "b"
address = "127.0.0.3"

[[egress.pools]]
name = "p2"
sources = [{source = "b", weight = 1}]
"""


def submit(node, address, subject="reload"):
    r = node.submit(node.key, {"from": "app@example.com", "to": [address], "subject": subject, "text": "x"})
    assert r.status_code == 202, r.text
    return r.json()["id"]


def delivered(node, sink, address):
    message = submit(node, address)
    assert settle_message(node, message, timeout=30)[address]["status"] == "delivered"
    (got,) = [m for m in sink.messages() if address in m["rcpt_to"]]
    return got


def reload(node, how):
    if how == "sighup":
        before = node.log().count("config.reload")
        node.proc.send_signal(signal.SIGHUP)
        wait_for(lambda: node.log().count("config.reload") > before, what="the reload logged")
        return None
    return node.admin("POST", "/admin/reload")


def edit(node, extra=None, raw=None):
    if extra is not None:
        node.extra_config = extra
    if raw is not None:
        node.raw_config = raw
    node.write_config()


def test_a_source_and_a_pool_added_live_carry_the_next_messages(make_node, mx_world):
    sink, dns = mx_world
    base = delivery_config(dns.port, sink.port)
    node = make_node(base, raw_config=SOURCES)
    assert delivered(node, sink, "before@example.test")["peer"] == "127.0.0.1"
    edit(node, base + '\negress.default_pool = "p2"', MORE_SOURCES)
    r = reload(node, "admin")
    assert r.status_code == 200, r.text
    body = r.json()
    assert {"egress.sources", "egress.pools", "egress.default_pool"} <= set(body["changed"]), body
    assert body["restart_required"] == [], body
    wait_for(lambda: "egress.source_added name=b address=127.0.0.3" in node.log(), what="source b started")
    for i in range(3):
        assert delivered(node, sink, f"after{i}@example.test")["peer"] == "127.0.0.3"
    sources = {s["name"] for s in node.admin("GET", "/admin/egress").json()["sources"]}
    assert sources >= {"a", "b"}, sources
    # The reload is an admin_action event with what changed.
    events = node.admin("GET", "/admin/events", params={"type": "admin_action"}).json()["events"]
    reloads = [e for e in events if e["data"]["action"] == "reload"]
    assert reloads and "egress.sources" in reloads[-1]["data"]["reason"] and reloads[-1]["data"]["by"] == "admin"

def test_a_route_added_live_takes_the_next_messages_elsewhere(make_node, mx_world, tmp_path):
    # Routing keys (relays, routes, delivery.relay) are live too: a route to a partner's host.
    sink, dns = mx_world
    partner = SmtpServer(tmp_path / "partner", listen=["127.0.0.5:0"]).start()
    try:
        base = delivery_config(dns.port, sink.port)
        node = make_node(base)
        assert delivered(node, sink, "mx@example.test")["listen"].startswith("127.0.0.2")
        edit(node, raw=f'[[delivery.routes]]\ndomains = ["example.test"]\nmx = ["127.0.0.5:{partner.port}"]\n')
        r = reload(node, "admin")
        assert r.status_code == 200 and "delivery.routes" in r.json()["changed"], r.text
        message = submit(node, "routed@example.test")
        assert settle_message(node, message, timeout=30)["routed@example.test"]["status"] == "delivered"
        assert [m["rcpt_to"] for m in partner.messages()] == [["routed@example.test"]]
    finally:
        partner.stop()


def test_a_site_rate_tightened_live_holds(make_node, mx_world):
    sink, dns = mx_world
    base = delivery_config(dns.port, sink.port)
    node = make_node(base, raw_config=SITE.format(rate="1000/s"))

    def span_of(prefix, n):
        ids = [submit(node, f"{prefix}{i}@example.test") for i in range(n)]
        for m in ids:
            settle_message(node, m, timeout=60)
        times = sorted(m["received_at"] for m in sink.messages() if m["rcpt_to"][0].startswith(prefix))
        assert len(times) == n
        return times[-1] - times[0]

    fast = span_of("fast", 12)
    edit(node, raw=SITE.format(rate="2/s"))
    reload(node, "sighup")
    assert "config.reloaded" in node.log() and "delivery.sites" in node.log()
    slow = span_of("slow", 12)
    print(f"\n12 messages: {fast:.2f} s at 1000/s, {slow:.2f} s after the reload to 2/s")
    assert fast < 3, fast
    assert slow >= 4, slow  # 2 at once (the burst), then 10 more at 2 per second

def test_an_invalid_file_changes_nothing_and_says_where(make_node, mx_world):
    sink, dns = mx_world
    base = delivery_config(dns.port, sink.port)
    node = make_node(base, raw_config=SOURCES)
    # Valid TOML with a mistake, and with what would otherwise move mail to another source.
    edit(node, base + '\negress.default_pool = "p2"\ndelivery.retry_schedule = ["soon"]', MORE_SOURCES)
    r = reload(node, "admin")
    assert r.status_code == 400, r.text
    problem = r.json()
    assert "nothing was changed" in problem["detail"], problem
    assert any(e["field"] == "delivery.retry_schedule" and ":" in e["detail"] for e in problem["errors"]), problem
    reload(node, "sighup")
    assert "config.reload_failed" in node.log() and "delivery.retry_schedule" in node.log()
    assert delivered(node, sink, "still@example.test")["peer"] == "127.0.0.1"
    assert "egress.source_added" not in node.log()
    # A TOML syntax error: the line and column.
    node.config_path.write_text(node.config_path.read_text() + "\n[broken\n")
    r = reload(node, "admin")
    assert r.status_code == 400 and "TOML syntax error" in r.text, r.text
    assert delivered(node, sink, "still2@example.test")["peer"] == "127.0.0.1"

def test_keys_that_need_a_restart_are_named_and_the_log_level_changes_live(make_node, tmp_path):
    node = make_node("")
    port = node.api_port
    edit(node, f'http.listen = "127.0.0.1:{port + 1 if port < 65535 else port - 1}"\n'
               'tenants.default_rate = "7/s"\nlog.level = "warn"')
    r = reload(node, "admin")
    assert r.status_code == 200, r.text
    body = r.json()
    assert "http.listen" in body["restart_required"], body
    assert {"tenants.default_rate", "log.level"} <= set(body["changed"]), body
    # Still on the old address.
    assert requests.get(f"http://127.0.0.1:{port}/healthz", timeout=5).status_code == 200
    # warn: the next reload's info line is not logged; back to info, it is.
    before = node.log().count("config.reloaded")
    assert reload(node, "admin").status_code == 200
    time.sleep(0.5)
    assert node.log().count("config.reloaded") == before
    edit(node, 'tenants.default_rate = "7/s"\nlog.level = "info"')
    assert reload(node, "admin").status_code == 200
    wait_for(lambda: node.log().count("config.reloaded") > before, what="info logged again")
    # Tenant defaults: the bootstrap tenant has no rate of its own, so the default holds it.
    body = {"from": "app@example.com", "to": ["x@example.net"], "subject": "s", "text": "t"}
    assert all(node.submit(node.key, body).status_code == 202 for _ in range(10))
    edit(node, 'tenants.default_rate = "1/s"\ntenants.default_burst = 2\nlog.level = "info"')
    assert "tenants.default_burst" in reload(node, "admin").json()["changed"]
    codes = wait_for(lambda: (lambda c: c if c.count(429) >= 5 else None)(
        [node.submit(node.key, body).status_code for _ in range(10)]), what="the new default rate in force")
    assert set(codes) <= {202, 429}, codes
