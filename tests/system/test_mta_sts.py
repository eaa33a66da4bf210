"""MTA-STS end to end: a local CA, an HTTPS server serving policies for mta-sts.<domain>,
TLS SMTP servers with certificates from that CA (and one with a wrong name), and a scripted
DNS server. Enforce delivers only over verified TLS to MX hosts in the policy; testing
delivers and reports."""
import pathlib
import sys

import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "tools"))
from servers import DnsServer, SmtpServer, make_ca, make_leaf, start_mta_sts_server  # noqa: E402

from conftest import wait_for  # noqa: E402

POLICIES = {
    "sts.test": "version: STSv1\nmode: enforce\nmx: mxsts.test\nmax_age: 86400\n",
    "mismatch.test": "version: STSv1\nmode: enforce\nmx: *.elsewhere.test\nmax_age: 86400\n",
    "badcert.test": "version: STSv1\nmode: enforce\nmx: mxbad.test\nmax_age: 86400\n",
    "testing.test": "version: STSv1\nmode: testing\nmx: *.elsewhere.test\nmax_age: 86400\n",
}


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    work = tmp_path_factory.mktemp("sts-world")
    make_ca(work)
    mx_cert, mx_key = make_leaf(work, "mxsts", ["mxsts.test"])
    wrong_cert, wrong_key = make_leaf(work, "wrong", ["wrong.test"])
    server = start_mta_sts_server(work, "127.0.0.30", POLICIES)
    good = SmtpServer(work, listen=["127.0.0.31:0"], args=["--tls-cert", str(mx_cert), "--tls-key", str(mx_key)]).start()
    port = good.port
    bad = SmtpServer(work, listen=[f"127.0.0.32:{port}"], args=["--tls-cert", str(wrong_cert), "--tls-key", str(wrong_key)]).start()
    plain = SmtpServer(work, listen=[f"127.0.0.33:{port}"]).start()
    records = [
        {"name": "mxsts.test", "type": "A", "address": "127.0.0.31"},
        {"name": "mxbad.test", "type": "A", "address": "127.0.0.32"},
        {"name": "mxplain.test", "type": "A", "address": "127.0.0.33"},
        {"name": "sts.test", "type": "MX", "preference": 10, "exchange": "mxsts.test"},
        {"name": "mismatch.test", "type": "MX", "preference": 10, "exchange": "mxsts.test"},
        {"name": "badcert.test", "type": "MX", "preference": 10, "exchange": "mxbad.test"},
        {"name": "testing.test", "type": "MX", "preference": 10, "exchange": "mxplain.test"},
        {"name": "nopolicy.test", "type": "MX", "preference": 10, "exchange": "mxplain.test"},
    ]
    for domain in POLICIES:
        records.append({"name": f"_mta-sts.{domain}", "type": "TXT", "text": "v=STSv1; id=20261129"})
        records.append({"name": f"mta-sts.{domain}", "type": "A", "address": "127.0.0.30"})
    dns = DnsServer(work, {"records": records}).start()
    yield {"good": good, "bad": bad, "plain": plain, "dns": dns, "port": port,
           "https_port": server.server_address[1], "ca": work / "ca.pem"}
    for s in (good, bad, plain, dns):
        s.stop()
    server.shutdown()


@pytest.fixture
def node(make_node, world):
    return make_node("\n".join([
        f'dns.servers = ["127.0.0.1:{world["dns"].port}"]',
        f'delivery.port = {world["port"]}',
        'delivery.retry_schedule = ["1h"]',
        f'delivery.ca_file = "{world["ca"]}"',
        f'mta_sts.port = {world["https_port"]}',
        f'mta_sts.ca_file = "{world["ca"]}"',
        'mta_sts.timeout = "5s"',
    ]))


def status_of(node, message_id, email):
    return {x["email"]: x for x in node.get_message(node.key, message_id).json()["recipients"]}[email]


def submit(node, to):
    r = node.submit(node.key, {"from": "a@sender.test", "to": [to], "text": "sts"})
    assert r.status_code == 202, r.text
    return r.json()["id"]


def settled(node, message_id, email, want):
    return wait_for(lambda: (lambda x: x if x["status"] == want else None)(status_of(node, message_id, email)),
                    what=f"{email} {want}")


def test_enforce_delivers_over_verified_tls_to_a_policy_mx(node, world):
    r = settled(node, submit(node, "ok@sts.test"), "ok@sts.test", "delivered")
    data = r["history"][-1]["data"]
    assert data["tls"] is True and data["mx_host"] == "mxsts.test"
    (got,) = [m for m in world["good"].messages() if "ok@sts.test" in m["rcpt_to"]]
    assert got["tls"] is True
    assert node.metric("petrel_mta_sts_total", {"event": "policy_fetched"}) >= 1
    assert node.metric("petrel_mta_sts_total", {"event": "enforced"}) >= 1
    assert node.metric("petrel_mta_sts_tls_sessions_total", {"result": "success"}) >= 1


def test_enforce_refuses_an_mx_outside_the_policy_and_defers(node, world):
    before = world["good"].stats()["connections_total"]
    r = settled(node, submit(node, "no@mismatch.test"), "no@mismatch.test", "deferred")
    assert "MTA-STS" in r["last_reply"]
    assert world["good"].stats()["connections_total"] == before  # no connection was made
    assert node.metric("petrel_mta_sts_total", {"event": "no_matching_mx"}) >= 1


def test_enforce_refuses_an_invalid_certificate_and_defers(node, world):
    r = settled(node, submit(node, "cert@badcert.test"), "cert@badcert.test", "deferred")
    assert "TLS handshake failed" in r["last_reply"] or "certificate" in r["last_reply"], r["last_reply"]
    assert [m for m in world["bad"].messages() if "cert@badcert.test" in m["rcpt_to"]] == []
    assert node.metric("petrel_mta_sts_tls_sessions_total", {"result": "failure"}) >= 1


def test_testing_mode_delivers_and_reports(node, world):
    settled(node, submit(node, "t@testing.test"), "t@testing.test", "delivered")
    assert "mta_sts.testing_violation domain=testing.test" in node.log()
    assert node.metric("petrel_mta_sts_total", {"event": "testing_violation"}) >= 1


def test_a_domain_without_a_policy_is_delivered_as_usual(node, world):
    settled(node, submit(node, "n@nopolicy.test"), "n@nopolicy.test", "delivered")


def test_mta_sts_can_be_turned_off_per_site(make_node, world):
    node = make_node("\n".join([
        f'dns.servers = ["127.0.0.1:{world["dns"].port}"]',
        f'delivery.port = {world["port"]}',
        'delivery.retry_schedule = ["1h"]',
        f'mta_sts.port = {world["https_port"]}',
        f'mta_sts.ca_file = "{world["ca"]}"',
    ]), raw_config='\n[[delivery.sites]]\nmatch = "mxsts.test"\nmta_sts = false\n')
    # The policy names no MX of mismatch.test, but the site ignores MTA-STS: delivered.
    settled(node, submit(node, "off@mismatch.test"), "off@mismatch.test", "delivered")
