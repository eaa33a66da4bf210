"""The HTTP listeners as operators run them (docs/operations.md, "HTTPS", "Request ids and the
access log"): HTTPS on the API, admin and tracking listeners with certificates made here (TLS
1.2+ only, ALPN http/1.1, SNI for tracking domains, client certificates for the admin API),
rotated under load without a failed request, reloaded when the files change, an expired
certificate reported, a bad one refused at start; and X-Request-Id on every answer, in
problem+json bodies, in the accepted event, and in the access log."""
import datetime
import ipaddress
import json
import signal
import socket
import ssl
import threading
import time

import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from conftest import ADMIN_TOKEN, wait_for


# -- certificates -----------------------------------------------------------------------------

class Ca:
    """A throwaway CA that issues server and client certificates into `work`."""

    def __init__(self, work, name="Petrel Test CA"):
        self.work = work
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        now = datetime.datetime.now(datetime.timezone.utc)
        self.cert = (x509.CertificateBuilder().subject_name(self.name).issuer_name(self.name)
                     .public_key(self.key.public_key()).serial_number(x509.random_serial_number())
                     .not_valid_before(now - datetime.timedelta(days=1)).not_valid_after(now + datetime.timedelta(days=30))
                     .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
                     .sign(self.key, hashes.SHA256()))
        self.file = work / f"{name.replace(' ', '-')}.pem"
        self.file.write_bytes(self.cert.public_bytes(serialization.Encoding.PEM))

    def issue(self, stem, names, days=2, expired=False, client=False):
        """A certificate for `names` (DNS names or IP addresses) and its key, written as
        <stem>.crt and <stem>.key; returns (cert path, key path, serial)."""
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.timezone.utc)
        start, end = ((now - datetime.timedelta(days=10), now - datetime.timedelta(days=1)) if expired
                      else (now - datetime.timedelta(minutes=5), now + datetime.timedelta(days=days)))
        sans = []
        for n in names:
            try:
                sans.append(x509.IPAddress(ipaddress.ip_address(n)))
            except ValueError:
                sans.append(x509.DNSName(n))
        serial = x509.random_serial_number()
        builder = (x509.CertificateBuilder()
                   .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
                   .issuer_name(self.name).public_key(key.public_key()).serial_number(serial)
                   .not_valid_before(start).not_valid_after(end)
                   .add_extension(x509.SubjectAlternativeName(sans), critical=False)
                   .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH if client
                                                         else ExtendedKeyUsageOID.SERVER_AUTH]), critical=False))
        cert = builder.sign(self.key, hashes.SHA256())
        cert_path, key_path = self.work / f"{stem}.crt", self.work / f"{stem}.key"
        write_atomically(cert_path, cert.public_bytes(serialization.Encoding.PEM))
        write_atomically(key_path, key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                     serialization.NoEncryption()))
        return cert_path, key_path, serial


def write_atomically(path, data):
    """As a renewing ACME client does: a new file renamed over the old one."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    tmp.rename(path)


def served_serial(port, server_name=None, ca=None):
    """The serial of the certificate a listener presents (to a client sending server_name)."""
    ctx = ssl.create_default_context(cafile=str(ca)) if ca else ssl._create_unverified_context()
    if not ca:
        ctx.check_hostname = False
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
        with ctx.wrap_socket(raw, server_hostname=server_name or "127.0.0.1") as tls:
            return x509.load_der_x509_certificate(tls.getpeercert(binary_form=True)).serial_number


def tls_config(section, cert, key, **extra):
    lines = {f"{section}.tls_cert_file": f'"{cert}"', f"{section}.tls_key_file": f'"{key}"'}
    lines.update({f"{section}.{k}": v for k, v in extra.items()})
    return "\n".join(f"{k} = {v}" for k, v in lines.items())


@pytest.fixture
def ca(tmp_path):
    return Ca(tmp_path)


# -- HTTPS ------------------------------------------------------------------------------------

def test_every_http_listener_speaks_https_with_tls_12_or_later_and_alpn(make_node, ca, tmp_path):
    cert, key, serial = ca.issue("server", ["localhost", "127.0.0.1"])
    node = make_node("\n".join([tls_config("http", cert, key), tls_config("admin", cert, key),
                                tls_config("tracking", cert, key), "tracking.enabled = true",
                                'tracking.base_url = "https://localhost"']), start=False)
    node.use_https(ca.file)
    node.start()
    assert "tls=true" in node.log()
    assert node.session.get(node.url("/healthz"), timeout=10).status_code == 200
    r = node.admin("GET", "/admin/tenants")
    assert r.status_code == 200 and r.url.startswith("https://"), r.text
    tracking = node.ports["tracking"]
    assert requests.get(f"https://127.0.0.1:{tracking}/o/nothing.gif", verify=str(ca.file), timeout=10).status_code == 404
    for port in (node.api_port, node.admin_port, tracking):
        assert served_serial(port, ca=ca.file) == serial
    # ALPN: http/1.1 is chosen among what the client offers; TLS 1.2 uses an ECDHE AEAD suite.
    ctx = ssl.create_default_context(cafile=str(ca.file))
    ctx.set_alpn_protocols(["h2", "http/1.1"])
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    with socket.create_connection(("127.0.0.1", node.api_port), timeout=5) as raw:
        with ctx.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
            assert tls.selected_alpn_protocol() == "http/1.1"
            assert tls.version() == "TLSv1.2"
            assert tls.cipher()[0].startswith("ECDHE-") and ("GCM" in tls.cipher()[0] or "CHACHA" in tls.cipher()[0])
    # TLS 1.1 and older are refused.
    old = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    old.check_hostname, old.verify_mode = False, ssl.CERT_NONE
    old.minimum_version = old.maximum_version = ssl.TLSVersion.TLSv1_1
    try:
        old.set_ciphers("DEFAULT@SECLEVEL=0")
    except ssl.SSLError:
        pass
    with socket.create_connection(("127.0.0.1", node.api_port), timeout=5) as raw:
        with pytest.raises((ssl.SSLError, ConnectionError)):
            old.wrap_socket(raw, server_hostname="127.0.0.1")
    # Plain HTTP to an HTTPS listener gets no answer in clear.
    with socket.create_connection(("127.0.0.1", node.api_port), timeout=5) as raw:
        raw.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        raw.settimeout(5)
        answer = b""
        try:
            while chunk := raw.recv(4096):
                answer += chunk
        except (ConnectionError, socket.timeout):
            pass
        assert b"HTTP/1.1 200" not in answer


@pytest.mark.parametrize("fault", ["missing", "mismatch", "not-pem", "half"])
def test_unusable_certificate_files_are_a_clear_start_up_error(make_node, ca, tmp_path, fault):
    cert, key, _ = ca.issue("server", ["127.0.0.1"])
    _, other_key, _ = ca.issue("other", ["127.0.0.1"])
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("this is not PEM\n")
    config, expected = {
        "missing": (tls_config("http", tmp_path / "nope.crt", key), ["tls_cert_file", "nope.crt"]),
        "mismatch": (tls_config("http", cert, other_key), ["tls_key_file", "is not the key of"]),
        "not-pem": (tls_config("http", garbage, key), ["tls_cert_file", "garbage.pem", "PEM"]),
        "half": (f'http.tls_cert_file = "{cert}"', ["tls_key_file", "go together"]),
    }[fault]
    node = make_node(config, start=False)
    with pytest.raises(RuntimeError) as failed:
        node.start()
    for text in expected:
        assert text in str(failed.value), str(failed.value)[-2000:]


def test_certificates_rotate_under_load_without_a_failed_request(make_node, ca):
    cert, key, first = ca.issue("server", ["127.0.0.1"])
    node = make_node(tls_config("http", cert, key) + '\nhttp.tls_check_interval = "300ms"', start=False)
    node.use_https(ca.file, admin=False)
    node.start()
    failures, answered, stop = [], [0], threading.Event()

    def client(fresh_connections):
        session = requests.Session()
        while not stop.is_set():
            try:
                if fresh_connections:
                    r = requests.get(node.url("/healthz"), verify=str(ca.file), timeout=10)
                else:
                    r = session.get(node.url("/healthz"), verify=str(ca.file), timeout=10)
                if r.status_code != 200:
                    failures.append(r.status_code)
                answered[0] += 1
            except requests.RequestException as e:
                failures.append(repr(e))

    threads = [threading.Thread(target=client, args=(i % 2 == 0,), daemon=True) for i in range(4)]
    for t in threads:
        t.start()
    wait_for(lambda: answered[0] > 50, what="requests over HTTPS")
    # 1. New files and SIGHUP.
    _, _, second = ca.issue("server", ["127.0.0.1"])
    node.proc.send_signal(signal.SIGHUP)
    wait_for(lambda: served_serial(node.api_port, ca=ca.file) == second, what="the second certificate served")
    # 2. New files only: noticed by themselves (tls_check_interval).
    seen = answered[0]
    _, _, third = ca.issue("server", ["127.0.0.1"])
    wait_for(lambda: served_serial(node.api_port, ca=ca.file) == third, what="the third certificate served")
    wait_for(lambda: answered[0] > seen + 300, what="more requests after the rotations")
    stop.set()
    for t in threads:
        t.join()
    assert not failures, failures[:5]
    assert first != second != third
    assert node.metric("petrel_tls_reloads_total", {"listener": "api", "result": "ok"}) >= 2
    print(f"\nrotation: {answered[0]} requests over HTTPS during two certificate rotations, 0 failed")


def test_a_reload_that_fails_keeps_the_previous_certificate(make_node, ca):
    cert, key, serial = ca.issue("server", ["127.0.0.1"])
    node = make_node(tls_config("http", cert, key) + '\nhttp.tls_check_interval = "0s"', start=False)
    node.use_https(ca.file, admin=False)
    node.start()
    _, other_key, _ = ca.issue("other", ["127.0.0.1"])
    key.write_bytes(other_key.read_bytes())  # a key that does not fit the certificate
    node.proc.send_signal(signal.SIGHUP)
    wait_for(lambda: "tls.reload_failed" in node.log(), what="the failed reload logged")
    assert "is not the key of" in node.log()
    assert served_serial(node.api_port, ca=ca.file) == serial
    assert node.session.get(node.url("/healthz"), timeout=10).status_code == 200
    assert node.metric("petrel_tls_reloads_total", {"listener": "api", "result": "failed"}) == 1


def test_an_expired_certificate_is_reported_in_the_log_and_metrics(make_node, ca):
    cert, key, _ = ca.issue("server", ["127.0.0.1"], expired=True)
    node = make_node(tls_config("http", cert, key), start=False)
    node.use_https(ca.file, admin=False)
    node.verify = False  # the node is not ready to a verifying client: it serves an expired certificate
    node.start()
    assert "tls.certificate_expired listener=api" in node.log()
    expiry = node.metric("petrel_tls_certificate_expiry_timestamp_seconds", {"listener": "api", "file": str(cert)})
    assert 0 < expiry < time.time(), expiry
    with pytest.raises(requests.exceptions.SSLError):
        requests.get(node.url("/healthz"), verify=str(ca.file), timeout=10)


def test_the_admin_listener_can_require_client_certificates(make_node, ca, tmp_path):
    cert, key, _ = ca.issue("server", ["127.0.0.1"])
    client_cert, client_key, _ = ca.issue("operator", ["operator"], client=True)
    stranger_ca = Ca(tmp_path, "Stranger CA")
    stranger_cert, stranger_key, _ = stranger_ca.issue("stranger", ["stranger"], client=True)
    node = make_node(tls_config("admin", cert, key, tls_client_ca_file=f'"{ca.file}"'), start=False)
    node.use_https(ca.file, api=False, admin=True)
    node.start()
    headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    ok = requests.get(node.admin_url("/admin/tenants"), headers=headers, verify=str(ca.file),
                      cert=(str(client_cert), str(client_key)), timeout=10)
    assert ok.status_code == 200, ok.text
    for credentials in (None, (str(stranger_cert), str(stranger_key))):
        with pytest.raises((requests.exceptions.SSLError, requests.exceptions.ConnectionError)):
            requests.get(node.admin_url("/admin/tenants"), headers=headers, verify=str(ca.file), cert=credentials,
                         timeout=10)
    # The API listener is not affected (plain HTTP here).
    assert requests.get(node.url("/healthz"), timeout=10).status_code == 200


def test_tracking_domains_get_their_certificate_by_sni(make_node, ca, tmp_path):
    cert, key, default_serial = ca.issue("server", ["t.example.com"])
    sni = tmp_path / "sni"
    sni.mkdir()
    _, _, click_serial = ca.issue("click", ["click.brand.example", "*.brand2.example"])
    for suffix in ("crt", "key"):
        (tmp_path / f"click.{suffix}").rename(sni / f"click.{suffix}")
    node = make_node("\n".join([tls_config("tracking", cert, key, tls_cert_dir=f'"{sni}"'), "tracking.enabled = true",
                                'tracking.base_url = "https://t.example.com"']))
    port = node.ports["tracking"]
    assert served_serial(port, "click.brand.example", ca.file) == click_serial
    assert served_serial(port, "links.brand2.example", ca.file) == click_serial
    assert served_serial(port, "t.example.com", ca.file) == default_serial
    assert served_serial(port, "unknown.example", None) == default_serial


# -- request ids and the access log ------------------------------------------------------------

def test_every_answer_carries_a_request_id_also_in_problem_bodies(make_node):
    node = make_node('tracking.enabled = true\ntracking.base_url = "http://127.0.0.1"')
    answers = [
        node.session.get(node.url("/healthz")),
        node.session.get(node.url("/v1/nothing")),
        node.submit(None, {"from": "a@b.example"}),
        node.submit(node.key, "{not json"),
        node.admin("GET", "/admin/tenants"),
        node.session.get(f"http://127.0.0.1:{node.ports['tracking']}/c/forged"),
        node.session.post(node.url("/v1/messages"), data=b"x" * 20, headers={"Content-Length": "999999999999"}),
    ]
    ids = set()
    for r in answers:
        rid = r.headers.get("X-Request-Id", "")
        assert len(rid) == 32 and all(c in "0123456789abcdef" for c in rid), (r.status_code, r.headers)
        ids.add(rid)
        if r.headers.get("Content-Type") == "application/problem+json":
            assert r.json()["request_id"] == rid, r.text
    assert len(ids) == len(answers)
    # A client's own id is kept when well-formed, replaced when not.
    mine = "client-7f3a:req/42+x="
    r = node.session.get(node.url("/v1/nothing"), headers={"X-Request-Id": mine})
    assert r.headers["X-Request-Id"] == mine and r.json()["request_id"] == mine
    for bad in ("has space", "x" * 129, "quote\"d", "é"):
        r = node.session.get(node.url("/healthz"), headers={"X-Request-Id": bad.encode()})
        assert r.headers["X-Request-Id"] != bad and len(r.headers["X-Request-Id"]) == 32


def test_the_accepted_event_and_the_access_log_carry_the_request_id(make_node, tmp_path):
    logs = tmp_path / "logs"
    logs.mkdir()
    node = make_node(f'log.access_log = "{logs / "access.log"}"\ntracking.enabled = true\n'
                     'tracking.base_url = "http://127.0.0.1"')
    r = node.submit(node.key, {"from": "app@example.com", "to": ["someone@example.net"], "subject": "s", "text": "t"},
                    headers={"X-Request-Id": "order-1234"})
    assert r.status_code == 202 and r.headers["X-Request-Id"] == "order-1234"
    message = r.json()["id"]

    def accepted():
        events = node.session.get(node.url("/v1/events"), params={"message": message, "type": "accepted"},
                                  headers={"Authorization": f"Bearer {node.key}"}).json()["events"]
        return events[0] if events else None
    assert wait_for(accepted, what="the accepted event")["data"]["request_id"] == "order-1234"
    node.session.get(f"http://127.0.0.1:{node.ports['tracking']}/c/AAAAsecretTOKEN")
    node.session.get(node.url("/u/secret-unsubscribe-token?x=1"))
    node.admin("GET", "/admin/tenants")
    lines = wait_for(lambda: (lambda ls: ls if len(ls) >= 4 else None)(
        [json.loads(line) for line in (logs / "access.log").read_text().splitlines()]), what="access log lines")
    submission = next(x for x in lines if x["path"] == "/v1/messages")
    assert submission["method"] == "POST" and submission["status"] == 202 and submission["listener"] == "api"
    assert submission["request_id"] == "order-1234" and submission["tenant"] and submission["bytes"] > 0
    assert submission["duration_ms"] >= 0 and submission["remote"] == "127.0.0.1" and submission["tls"] is False
    assert submission["tenant"] in node.admin("GET", "/admin/tenants").text, submission
    assert {"time", "listener", "method", "path", "status", "bytes", "duration_ms", "tenant", "request_id"} <= set(submission)
    text = (logs / "access.log").read_text()
    lines = [json.loads(line) for line in text.splitlines()]
    assert "secretTOKEN" not in text and "secret-unsubscribe-token" not in text
    assert any(x["path"] == "/c/-" and x["listener"] == "tracking" for x in lines)
    assert any(x["path"] == "/u/-" for x in lines)
    assert any(x["listener"] == "admin" and x["tenant"] is None for x in lines)
    # Rotated like the delivery log: moved away, SIGHUP, a new file.
    (logs / "access.log").rename(logs / "access.log.1")
    node.proc.send_signal(signal.SIGHUP)
    wait_for(lambda: "log.reopened file=" + str(logs / "access.log") in node.log(), what="the access log reopened")
    node.session.get(node.url("/healthz"))
    wait_for(lambda: (logs / "access.log").exists() and "/healthz" in (logs / "access.log").read_text(),
             what="a line in the new file")
