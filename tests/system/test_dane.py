"""DANE for SMTP (RFC 7672) end to end: Debian's unbound on loopback validates DNSSEC over a
zone signed here (ldns), and serves an unsigned one beside it. TLSA records that match the
MX's certificate (DANE-EE by key, DANE-TA by the CA) deliver over TLS; a mismatch, a host
without STARTTLS and a bogus TLSA answer defer with a DANE reason; an insecure zone and
PKIX-only records leave opportunistic TLS as it was; a host with TLSA records stays under an
MTA-STS policy that does not name it, checked by DANE."""
import pathlib
import sys

import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "tools"))
from servers import SmtpServer, ValidatingResolver, make_ca, make_leaf, start_mta_sts_server, tlsa_digest  # noqa: E402

from conftest import wait_for  # noqa: E402


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    work = tmp_path_factory.mktemp("dane-world")
    make_ca(work)
    ee_cert, ee_key = make_leaf(work, "ee", ["whatever.example"])  # DANE-EE ignores the name
    ta_cert, ta_key = make_leaf(work, "ta", ["mx-ta.dane.test"])
    # An MTA-STS enforce policy for stsdane.dane.test that names no host of the domain: the
    # DANE host is kept all the same, and checked by DANE.
    https = start_mta_sts_server(work, "127.0.0.44", {
        "stsdane.dane.test": "version: STSv1\nmode: enforce\nmx: *.elsewhere.test\nmax_age: 86400\n"})
    chain = work / "ta-chain.pem"
    chain.write_text(ta_cert.read_text() + (work / "ca.pem").read_text())
    ee = SmtpServer(work, listen=["127.0.0.41:0"], args=["--tls-cert", str(ee_cert), "--tls-key", str(ee_key)]).start()
    port = ee.port
    ta = SmtpServer(work, listen=[f"127.0.0.42:{port}"], args=["--tls-cert", str(chain), "--tls-key", str(ta_key)]).start()
    notls = SmtpServer(work, listen=[f"127.0.0.43:{port}"], args=["--no-starttls"]).start()
    good_key = tlsa_digest(ee_cert, selector=1)
    ca_cert = tlsa_digest(work / "ca.pem", selector=0)
    wrong = "00" * 32
    signed = {"dane.test": [
        "ok IN MX 10 mx-ok", "mx-ok IN A 127.0.0.41", f"_{port}._tcp.mx-ok IN TLSA 3 1 1 {good_key}",
        "ta IN MX 10 mx-ta", "mx-ta IN A 127.0.0.42", f"_{port}._tcp.mx-ta IN TLSA 2 0 1 {ca_cert}",
        "bad IN MX 10 mx-bad", "mx-bad IN A 127.0.0.41", f"_{port}._tcp.mx-bad IN TLSA 3 1 1 {wrong}",
        "notls IN MX 10 mx-notls", "mx-notls IN A 127.0.0.43", f"_{port}._tcp.mx-notls IN TLSA 3 1 1 {good_key}",
        "bogus IN MX 10 mx-bogus", "mx-bogus IN A 127.0.0.41", f"_{port}._tcp.mx-bogus IN TLSA 3 1 1 {good_key}",
        "pkix IN MX 10 mx-pkix", "mx-pkix IN A 127.0.0.41", f"_{port}._tcp.mx-pkix IN TLSA 1 1 1 {wrong}",
        "none IN MX 10 mx-none", "mx-none IN A 127.0.0.41",
        "stsdane IN MX 10 mx-ok", '_mta-sts.stsdane IN TXT "v=STSv1; id=20261207"', "mta-sts.stsdane IN A 127.0.0.44",
    ]}
    unsigned = {"plain.test": ["@ IN MX 10 mx", "mx IN A 127.0.0.41", f"_{port}._tcp.mx IN TLSA 3 1 1 {wrong}"]}
    resolver = ValidatingResolver(work, signed, unsigned, tamper=[(f"_{port}._tcp.mx-bogus.dane.test", "TLSA")]).start()
    yield {"ee": ee, "ta": ta, "notls": notls, "resolver": resolver, "port": port,
           "https_port": https.server_address[1], "ca": work / "ca.pem"}
    for s in (ee, ta, notls):
        s.stop()
    resolver.stop()
    https.shutdown()


@pytest.fixture(scope="module")
def node(world, tmp_path_factory):
    # One node for the module: each test submits to its own domain.
    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
    from conftest import Node
    node = Node(tmp_path_factory.mktemp("dane-node"), "\n".join([
        f'dns.servers = ["127.0.0.1:{world["resolver"].port}"]',
        f'delivery.port = {world["port"]}',
        'delivery.retry_schedule = ["1h"]',
        "delivery.dane = true",
        f'mta_sts.port = {world["https_port"]}',
        f'mta_sts.ca_file = "{world["ca"]}"',
        'mta_sts.timeout = "5s"',
    ]))
    node.start()
    yield node
    assert node.stop() == 0


def submit(node, to):
    r = node.submit(node.key, {"from": "a@sender.test", "to": [to], "text": "dane"})
    assert r.status_code == 202, r.text
    return r.json()["id"]


def settled(node, message_id, email, want):
    def check():
        (r,) = [x for x in node.get_message(node.key, message_id).json()["recipients"] if x["email"] == email]
        return r if r["status"] == want else None
    return wait_for(check, what=f"{email} {want}")


def received(sink, email):
    return [m for m in sink.messages() if email in m["rcpt_to"]]


def test_matching_dane_ee_record_delivers_over_tls(node, world):
    r = settled(node, submit(node, "a@ok.dane.test"), "a@ok.dane.test", "delivered")
    data = r["history"][-1]["data"]
    assert data["tls"] is True and data["dane"] is True and data["mx_host"] == "mx-ok.dane.test"
    (got,) = received(world["ee"], "a@ok.dane.test")
    assert got["tls"] is True
    assert node.metric("petrel_dane_total", {"result": "success"}) >= 1


def test_matching_dane_ta_record_delivers_over_tls(node, world):
    r = settled(node, submit(node, "a@ta.dane.test"), "a@ta.dane.test", "delivered")
    data = r["history"][-1]["data"]
    assert data["tls"] is True and data["dane"] is True
    assert received(world["ta"], "a@ta.dane.test")


def test_dane_comes_before_mta_sts_for_a_host_with_tlsa_records(node, world):
    # The enforced policy names no MX of the domain; without DANE this would be deferred
    # ("no matching MX"). The host has TLSA records: kept, and its certificate (valid for no
    # name the WebPKI would accept here) is checked by DANE.
    r = settled(node, submit(node, "a@stsdane.dane.test"), "a@stsdane.dane.test", "delivered")
    data = r["history"][-1]["data"]
    assert data["tls"] is True and data["dane"] is True and data["mx_host"] == "mx-ok.dane.test"
    assert node.metric("petrel_mta_sts_total", {"event": "policy_fetched"}) >= 1
    assert node.metric("petrel_mta_sts_total", {"event": "enforced"}) >= 1


def test_a_certificate_matching_no_tlsa_record_defers_and_never_falls_back(node, world):
    r = settled(node, submit(node, "a@bad.dane.test"), "a@bad.dane.test", "deferred")
    assert "DANE" in r["last_reply"] and "matches none of its TLSA records" in r["last_reply"], r["last_reply"]
    assert received(world["ee"], "a@bad.dane.test") == []  # no plaintext retry
    assert node.metric("petrel_dane_total", {"result": "validation-failure"}) >= 1


def test_a_dane_host_without_starttls_defers(node, world):
    r = settled(node, submit(node, "a@notls.dane.test"), "a@notls.dane.test", "deferred")
    assert "does not offer STARTTLS" in r["last_reply"], r["last_reply"]
    assert received(world["notls"], "a@notls.dane.test") == []
    assert node.metric("petrel_dane_total", {"result": "starttls-not-supported"}) >= 1


def test_a_bogus_tlsa_answer_defers_without_connecting(node, world):
    before = world["ee"].stats()["connections_total"]
    r = settled(node, submit(node, "a@bogus.dane.test"), "a@bogus.dane.test", "deferred")
    assert "DANE" in r["last_reply"] and "TLSA" in r["last_reply"], r["last_reply"]
    assert received(world["ee"], "a@bogus.dane.test") == []
    assert node.metric("petrel_dane_total", {"result": "dnssec-invalid"}) >= 1
    assert world["ee"].stats()["connections_total"] == before


def test_an_insecure_zone_is_opportunistic_as_before(node, world):
    # plain.test is unsigned: its (mismatching) TLSA record is not believed.
    r = settled(node, submit(node, "a@plain.test"), "a@plain.test", "delivered")
    data = r["history"][-1]["data"]
    assert data["tls"] is True and "dane" not in data


def test_pkix_only_or_no_tlsa_records_are_opportunistic(node, world):
    for email in ("a@pkix.dane.test", "a@none.dane.test"):
        r = settled(node, submit(node, email), email, "delivered")
        data = r["history"][-1]["data"]
        assert data["tls"] is True and "dane" not in data, (email, data)


def test_dane_refuses_to_start_with_a_resolver_it_cannot_trust(tmp_path):
    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
    from conftest import Node
    node = Node(tmp_path / "untrusted", "\n".join([
        'dns.servers = ["192.0.2.53:53"]',
        "delivery.dane = true",
    ]))
    node.write_config()
    import subprocess
    from conftest import PETREL_BIN
    result = subprocess.run([PETREL_BIN, "serve", "--config", str(node.config_path)], capture_output=True,
                            text=True, timeout=30)
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert "delivery.dane needs a DNSSEC-validating resolver" in output and "192.0.2.53" in output, output
