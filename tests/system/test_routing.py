"""The routing table end to end (docs/configuration.md "Routing"): relays (smarthosts) with and
without SMTP AUTH, MX overrides per domain pattern, routes per tenant, the `delivery.relay`
shorthand, and shaping through a relay (the relay is the site). Real petrel, the test DNS
server and test SMTP servers on 127.0.0.x."""
import pathlib
import sys

import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "tools"))
from servers import DnsServer, SmtpServer  # noqa: E402

from conftest import delivery_config, recipients_of, settle_message, submit_ok, wait_for  # noqa: E402


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    work = tmp_path_factory.mktemp("routing")
    servers = []

    def smtp(ip, *args):
        s = SmtpServer(work, listen=[f"{ip}:0"], args=list(args)).start()
        servers.append(s)
        return s

    w = {
        "mx": smtp("127.0.0.2"),                                 # the MX of mx.test
        "partner": smtp("127.0.0.3"),                            # partner.test's fixed host
        "office": smtp("127.0.0.5", "--auth", "petrel:s3cret"),  # a relay that wants a login
        "plain": smtp("127.0.0.6"),                              # a relay without login
    }
    records = [
        {"name": "mx1.mx.test", "type": "A", "address": "127.0.0.2"},
        {"name": "mx.test", "type": "MX", "preference": 10, "exchange": "mx1.mx.test"},
        # partner.test's own MX points nowhere useful: the route's fixed host is used instead.
        {"name": "partner.test", "type": "MX", "preference": 10, "exchange": "mx1.mx.test"},
    ]
    # corp.test and nowhere.test have no DNS records at all (NXDOMAIN): only a relay reaches them.
    w["dns"] = DnsServer(work, {"records": records}).start()
    servers.append(w["dns"])
    yield w
    for s in servers:
        s.stop()


def messages_to(server, rcpt):
    return [m for m in server.messages() if rcpt in m["rcpt_to"]]


def routing_config(world, tmp_path, password="s3cret"):
    secret = tmp_path / "office.secret"
    secret.write_text(password + "\n")
    return f"""
[[delivery.relays]]
name = "office"
host = "127.0.0.5:{world['office'].port}"
username = "petrel"
password_file = "{secret}"

[[delivery.relays]]
name = "acme-relay"
host = "127.0.0.6:{world['plain'].port}"

[[delivery.routes]]
domains = ["corp.test", "*.corp.test"]
relay = "office"

[[delivery.routes]]
domains = ["partner.test"]
mx = ["127.0.0.3:{world['partner'].port}"]

[[delivery.routes]]
tenants = ["acme"]
relay = "acme-relay"
"""


def node_config(world, **overrides):
    return delivery_config(world["dns"].port, world["mx"].port,
                           **{"dns.temporary_failure_ttl": '"200ms"', "delivery.site_failure_delay": '"300ms"',
                              **overrides})


def test_routes_send_by_domain_and_tenant_through_relays_and_fixed_hosts(make_node, world, tmp_path):
    node = make_node(node_config(world), raw_config=routing_config(world, tmp_path))
    _, acme_key = node.create_tenant("acme")

    receipt = submit_ok(node, to=["a@corp.test", "b@sub.corp.test", "c@partner.test", "d@mx.test"])
    rs = settle_message(node, receipt["id"])
    assert {a: r["status"] for a, r in rs.items()} == {a: "delivered" for a in rs}, rs
    # corp.test has no DNS at all: the relay took it, after a login.
    for rcpt in ("a@corp.test", "b@sub.corp.test"):
        (m,) = messages_to(world["office"], rcpt)
        assert m["authenticated"] == "petrel"
    assert messages_to(world["partner"], "c@partner.test")  # the fixed host, not partner.test's MX
    assert not messages_to(world["mx"], "c@partner.test")
    assert messages_to(world["mx"], "d@mx.test")             # no route: the domain's MX

    # Tenant acme: its own relay for every domain, except where an earlier route matches first.
    r = node.submit(acme_key, {"from": "app@sender.test", "to": ["e@mx.test", "f@corp.test"],
                               "subject": "acme", "text": "hi"})
    assert r.status_code == 202, r.text
    acme = r.json()["id"]
    wait_for(lambda: all(x["status"] == "delivered"
                         for x in node.get_message(acme_key, acme).json()["recipients"]),
             what="acme's recipients delivered")
    assert messages_to(world["plain"], "e@mx.test") and not messages_to(world["mx"], "e@mx.test")
    assert messages_to(world["office"], "f@corp.test")

    # Events name the relay as the host delivered to.
    events = node.session.get(node.url(f"/v1/events?message={receipt['id']}&type=delivered"),
                              headers={"Authorization": f"Bearer {node.key}"}, timeout=10).json()["events"]
    hosts = {e["email"]: e["data"]["mx_host"] for e in events}
    assert hosts["a@corp.test"] == "127.0.0.5" and hosts["c@partner.test"] == "127.0.0.3", hosts


def test_the_relay_is_the_site_suspend_it_and_its_mail_waits(make_node, world, tmp_path):
    node = make_node(node_config(world), raw_config=routing_config(world, tmp_path))
    r = node.admin("POST", "/admin/sites/relay:office/suspend", json={"reason": "maintenance"})
    assert r.status_code == 200, r.text
    receipt = submit_ok(node, to=["held@corp.test", "free@mx.test"])
    wait_for(lambda: recipients_of(node, receipt["id"])["free@mx.test"]["status"] == "delivered",
             what="the unrouted recipient delivered")
    queue = wait_for(lambda: (lambda q: q if q["due"] else None)(node.admin("GET", "/admin/queues/corp.test").json()),
                     what="corp.test waiting")
    assert queue["waiting_for"] == "suspended (site)" or "suspend" in queue["waiting_for"], queue
    assert [lane["site"] for lane in queue["lanes"]] == ["relay:office"], queue
    assert recipients_of(node, receipt["id"])["held@corp.test"]["status"] == "queued"
    assert not messages_to(world["office"], "held@corp.test")
    assert node.admin("POST", "/admin/sites/relay:office/resume").status_code == 204
    assert settle_message(node, receipt["id"])["held@corp.test"]["status"] == "delivered"


def test_a_relay_that_refuses_the_login_defers_with_the_reason(make_node, world, tmp_path):
    node = make_node(node_config(world), raw_config=routing_config(world, tmp_path, password="wrong"))
    receipt = submit_ok(node, to=["x@corp.test"])
    rcpt = wait_for(lambda: (lambda x: x if x["status"] == "deferred" else None)(
        recipients_of(node, receipt["id"])["x@corp.test"]), what="a deferral")
    assert "SMTP AUTH refused for petrel: 535" in rcpt["last_reply"], rcpt
    assert not messages_to(world["office"], "x@corp.test")


def test_the_relay_shorthand_sends_everything_without_dns(make_node, world):
    node = make_node(node_config(world, **{"delivery.relay": f'"127.0.0.6:{world["plain"].port}"'}))
    receipt = submit_ok(node, to=["someone@nowhere.test", "other@mx.test"])
    rs = settle_message(node, receipt["id"])
    assert all(r["status"] == "delivered" for r in rs.values()), rs
    assert messages_to(world["plain"], "someone@nowhere.test")
    assert messages_to(world["plain"], "other@mx.test")  # everything, MX or not


def test_a_missing_password_file_is_a_start_up_error(make_node, world, tmp_path):
    config = routing_config(world, tmp_path).replace(str(tmp_path / "office.secret"), str(tmp_path / "missing"))
    node = make_node(node_config(world), raw_config=config, start=False)
    with pytest.raises(RuntimeError) as failed:
        node.start()
    assert "delivery.relays[0].password_file" in str(failed.value), failed.value


def test_the_readme_sink_receives_and_prints_what_petrel_relays(make_node, world, tmp_path):
    """scripts/mail-sink.py, as the README's quickstart starts it (scripts/dev sink), on a free port."""
    import socket
    import subprocess
    import threading
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    sink = subprocess.Popen([sys.executable, str(pathlib.Path(__file__).resolve().parents[2] / "scripts" / "mail-sink.py"),
                             "--listen", f"127.0.0.1:{port}"], stdout=subprocess.PIPE, text=True)
    lines = []
    threading.Thread(target=lambda: [lines.append(line) for line in sink.stdout], daemon=True).start()
    try:
        wait_for(lambda: any("listening on 127.0.0.1" in line for line in lines), what="the sink listening")
        node = make_node(node_config(world, **{"delivery.relay": f'"127.0.0.1:{port}"'}))
        receipt = submit_ok(node, to=["someone@example.net"], subject="Hello sink")
        assert settle_message(node, receipt["id"])["someone@example.net"]["status"] == "delivered"
        wait_for(lambda: any("to <someone@example.net>: Hello sink" in line for line in lines),
                 what="the sink's line")
    finally:
        sink.terminate()
        sink.wait(timeout=10)
