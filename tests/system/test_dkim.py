"""DKIM and sender domains end to end: domains created through the API, records published in a
scripted DNS server, messages delivered to a scripted SMTP server and their signatures checked
by two independent verifiers, dkimpy and libopendkim."""
import base64
import os
import pathlib
import subprocess
import sys

import dkim
import pytest
from dnslib import DNSRecord, QTYPE

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "tools"))
from servers import DnsServer, SmtpServer  # noqa: E402

from conftest import delivery_config, wait_for  # noqa: E402

OPENDKIM_VERIFY = str(pathlib.Path(os.environ.get("PETREL_BIN", "build/app/petrel")).resolve()
                      .parents[1] / "tests" / "opendkim_verify")
BASE_RECORDS = [
    {"name": "mx1.example.test", "type": "A", "address": "127.0.0.2"},
    {"name": "rcpt.test", "type": "MX", "preference": 10, "exchange": "mx1.example.test"},
]
FINAL = {"delivered", "bounced", "expired"}


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    work = tmp_path_factory.mktemp("dkim-world")
    smtp = SmtpServer(work, listen=["127.0.0.2:0"]).start()
    dns = DnsServer(work, {"records": list(BASE_RECORDS)}).start()
    yield {"smtp": smtp, "dns": dns}
    smtp.stop()
    dns.stop()


def config(world, **extra):
    values = {"domains.bounce_mx_host": '"bounce.petrel.test"', "domains.dmarc_rua": '"dmarc@petrel.test"', **extra}
    return delivery_config(world["dns"].port, world["smtp"].port, **values)


EGRESS = """
[[egress.sources]]
name = "out"
address = "127.0.0.5"
"""


@pytest.fixture
def node(make_node, world):
    return make_node(config(world), raw_config=EGRESS)


def api(node, method, path, **kw):
    return node.session.request(method, node.url(path), headers={"Authorization": f"Bearer {node.key}"},
                                timeout=60, **kw)


def publish(world, domain_view, extra=()):
    """Serves the records Petrel asked for (plus the base zone) from the test DNS server."""
    records = list(BASE_RECORDS) + list(extra)
    for r in domain_view["records"]:
        if r["type"] == "TXT":
            records.append({"name": r["name"], "type": "TXT", "text": r["value"]})
        elif r["type"] == "MX":
            pref, host = r["value"].split()
            records.append({"name": r["name"], "type": "MX", "preference": int(pref), "exchange": host})
    world["dns"].set_zone({"records": records})


def dnsfunc(world):
    """dkimpy's DNS lookups, answered by the test DNS server."""
    def lookup(name, timeout=5):
        q = DNSRecord.question(name.decode().rstrip("."), "TXT")
        answer = DNSRecord.parse(q.send("127.0.0.1", world["dns"].port, timeout=timeout))
        texts = [b"".join(rr.rdata.data) for rr in answer.rr if rr.rtype == QTYPE.TXT]
        return texts[0] if texts else None
    return lookup


def submit_and_deliver(node, world, body):
    r = node.submit(node.key, body)
    assert r.status_code == 202, r.text
    message_id = r.json()["id"]
    rcpt = r.json()["recipients"][0]["email"]
    wait_for(lambda: all(x["status"] in FINAL for x in node.get_message(node.key, message_id).json()["recipients"]),
             what="delivery")
    got = [m for m in world["smtp"].messages() if rcpt in m["rcpt_to"]]
    assert len(got) == 1, got
    return base64.b64decode(got[0]["data_b64"])


def verify_all(world, message):
    """Every DKIM-Signature of the message, checked by dkimpy; returns the selectors."""
    d = dkim.DKIM(message)
    count = message.count(b"DKIM-Signature:")
    selectors = []
    for i in range(count):
        assert d.verify(idx=i, dnsfunc=dnsfunc(world)), f"signature {i} failed"
        selectors.append(d.signature_fields[b"s"].decode())
    return selectors


def opendkim_check(world, domain_view, message):
    keys = pathlib.Path(world["dns"].work_dir) / "opendkim-keys.txt"
    keys.write_text("".join(f'{r["name"]} {r["value"]}\n' for r in domain_view["records"] if r["purpose"] == "dkim"))
    return subprocess.run([OPENDKIM_VERIFY, str(keys)], input=message, capture_output=True, timeout=30)


def test_domain_records_verify_once_published(node, world):
    r = api(node, "POST", "/v1/domains", json={"domain": "Verify.Test", "algorithms": ["rsa-sha256", "ed25519-sha256"]})
    assert r.status_code == 201, r.text
    view = r.json()
    assert view["domain"] == "verify.test" and view["verified"] is False
    assert "PRIVATE" not in r.text
    by_purpose = {}
    for rec in view["records"]:
        by_purpose.setdefault(rec["purpose"], []).append(rec)
    dkim_records = by_purpose["dkim"]
    assert len(dkim_records) == 2
    assert {rec["value"].split(";")[1].strip() for rec in dkim_records} == {"k=rsa", "k=ed25519"}
    assert all(rec["name"].endswith("._domainkey.verify.test") for rec in dkim_records)
    # The RSA key's record is over 255 bytes: also given as DNS strings of at most 255.
    (rsa,) = [rec for rec in dkim_records if "k=rsa" in rec["value"]]
    assert len(rsa["value"]) > 255 and "".join(rsa["strings"]) == rsa["value"]
    assert all(len(part) <= 255 for part in rsa["strings"]) and rsa["zone_file"].count('" "') == len(rsa["strings"]) - 1
    (ed,) = [rec for rec in dkim_records if "k=ed25519" in rec["value"]]
    assert "strings" not in ed
    assert view["notes"] == []  # an SPF record is suggested (the node has a source address)
    assert by_purpose["spf"][0]["value"] == "v=spf1 ip4:127.0.0.5 ~all"
    assert by_purpose["dmarc"][0] == {"type": "TXT", "name": "_dmarc.verify.test",
                                      "value": "v=DMARC1; p=none; adkim=r; aspf=r; rua=mailto:dmarc@petrel.test",
                                      "purpose": "dmarc"}
    assert {"type": "MX", "name": "bounces.verify.test", "value": "10 bounce.petrel.test",
            "purpose": "return_path"} in by_purpose["return_path"]

    unpublished = api(node, "GET", "/v1/domains/verify.test").json()
    assert unpublished["verified"] is False
    assert {k["status"] for k in unpublished["status"]["dkim"]} == {"missing"}
    assert unpublished["status"]["dmarc"]["status"] == "missing"

    publish(world, view)
    published = api(node, "GET", "/v1/domains/verify.test").json()
    assert published["verified"] is True, published["status"]
    status = published["status"]
    assert {k["status"] for k in status["dkim"]} == {"ok"}
    assert status["spf"]["status"] == "pass"
    assert status["dmarc"] == {"status": "present", "policy": "none"}
    assert status["return_path"]["status"] == "aligned"

    # A wrong key in DNS is a mismatch, and SPF without our address fails.
    wrong = dict(view)
    wrong["records"] = [dict(rec) for rec in view["records"]]
    for rec in wrong["records"]:
        if rec["purpose"] == "dkim":
            rec["value"] = rec["value"][:-8] + "AAAAAAA="
        if rec["purpose"] == "spf":
            rec["value"] = "v=spf1 ip4:192.0.2.1 -all"
    publish(world, wrong)
    broken = api(node, "GET", "/v1/domains/verify.test").json()
    assert broken["verified"] is False
    assert {k["status"] for k in broken["status"]["dkim"]} == {"mismatch"}
    assert broken["status"]["spf"]["status"] == "fail"


def test_messages_are_signed_and_verify_with_dkimpy_and_opendkim(node, world):
    view = api(node, "POST", "/v1/domains", json={"domain": "signed.test", "algorithms": ["rsa-sha256", "ed25519-sha256"]}).json()
    publish(world, view)
    subject = "Grüße aus Köln – " + "ein sehr langer Betreff " * 12
    text = "Hello,\n.leading dot\n..two dots\ntrailing space   \n\n\n\n"
    structured = submit_and_deliver(node, world, {
        "from": "Zoë <news@signed.test>", "to": ["a@rcpt.test"], "subject": subject, "text": text,
        "html": "<p>Grüße</p>", "headers": {"List-Unsubscribe": "<mailto:u@signed.test>", "X-Long": "x" * 600}})
    assert structured.count(b"DKIM-Signature:") == 2
    assert sorted(s[-1] for s in verify_all(world, structured)) == ["e", "r"]
    result = opendkim_check(world, view, structured)
    assert result.returncode == 0, result.stdout.decode() + result.stderr.decode()

    raw = (b"From: Raw Sender <raw@signed.test>\r\nTo: b@rcpt.test\r\nSubject:   spaced\t out  \r\n"
           b"Date: Sun, 29 Nov 2026 01:00:00 +0000\r\nMessage-ID: <raw-1@signed.test>\r\n\r\n"
           b".\r\n..\r\nbody with trailing blank lines\r\n\r\n\r\n")
    delivered = submit_and_deliver(node, world, {"raw": base64.b64encode(raw).decode(),
                                                 "envelope": {"from": "raw@signed.test", "to": ["b@rcpt.test"]}})
    assert delivered.endswith(raw)  # the raw bytes are kept; only signatures were put before them
    verify_all(world, delivered)
    assert opendkim_check(world, view, delivered).returncode == 0

    # Tampering breaks both verifiers: this test can fail.
    tampered = delivered.replace(b"body with trailing", b"body with trailinG")
    with pytest.raises(dkim.ValidationError):
        dkim.DKIM(tampered).verify(idx=0, dnsfunc=dnsfunc(world))
    assert opendkim_check(world, view, tampered).returncode == 1
    resigned_header = structured.replace(b"Subject: ", b"Subject: [changed] ", 1)
    assert not all(dkim.DKIM(resigned_header).verify(idx=i, dnsfunc=dnsfunc(world)) for i in range(2))


def deliver_as(node, world, key, sender, rcpt):
    """Submits with a tenant's key and returns the copy the SMTP server received."""
    r = node.session.post(node.url("/v1/messages"), json={"from": sender, "to": [rcpt], "text": "t"},
                          headers={"Authorization": f"Bearer {key}"}, timeout=30)
    assert r.status_code == 202, r.text
    message_id = r.json()["id"]
    wait_for(lambda: node.session.get(node.url(f"/v1/messages/{message_id}"), timeout=30,
                                      headers={"Authorization": f"Bearer {key}"}).json()["recipients"][0]["status"] in FINAL,
             what="delivery")
    (got,) = [m for m in world["smtp"].messages() if rcpt in m["rcpt_to"]]
    return base64.b64decode(got["data_b64"])


def selectors_of(message):
    return sorted(line.split(b"s=", 1)[1].split(b";", 1)[0].decode()
                  for line in message.replace(b"\r\n\t", b" ").replace(b"\r\n ", b" ").split(b"\r\n")
                  if line.startswith(b"DKIM-Signature:"))


def test_domain_claims_reveal_no_other_tenant_and_the_first_verified_claim_owns_the_domain(node, world):
    mine = api(node, "POST", "/v1/domains", json={"domain": "mine.test", "selector": "mine"}).json()
    other_key = node.create_tenant("other")[1]
    other_auth = {"Authorization": f"Bearer {other_key}"}
    # A second tenant's claim is answered like any claim: no 409 that tells the domain is taken.
    r = node.session.post(node.url("/v1/domains"), json={"domain": "mine.test", "selector": "theirs"},
                          headers=other_auth, timeout=30)
    assert r.status_code == 201, r.text
    theirs = r.json()
    assert theirs["verified"] is False
    assert [k["selector"] for k in theirs["keys"]] == ["theirs"]
    # Each tenant sees its own claim and signs only with its own keys.
    assert node.session.get(node.url("/v1/domains/mine.test"), headers=other_auth,
                            timeout=30).json()["keys"][0]["selector"] == "theirs"
    assert selectors_of(deliver_as(node, world, other_key, "x@mine.test", "c1@rcpt.test")) == ["theirs"]
    # Registering twice within one tenant is a conflict about its own claim only.
    assert api(node, "POST", "/v1/domains", json={"domain": "mine.test"}).status_code == 409

    # The first tenant publishes its records and verifies: it owns mine.test now.
    publish(world, mine)
    assert api(node, "GET", "/v1/domains/mine.test").json()["verified"] is True
    # The other tenant, even with its own records in DNS too, cannot verify the domain any
    # more, and its mail from mine.test is no longer signed.
    publish(world, mine, extra=[{"name": rec["name"], "type": "TXT", "text": rec["value"]}
                                for rec in theirs["records"] if rec["purpose"] == "dkim"])
    checked = node.session.get(node.url("/v1/domains/mine.test"), headers=other_auth, timeout=30).json()
    assert checked["verified"] is False
    assert "another account" in checked["status"]["conflict"]
    assert selectors_of(deliver_as(node, world, other_key, "x@mine.test", "c2@rcpt.test")) == []
    assert selectors_of(deliver_as(node, world, node.key, "x@mine.test", "c3@rcpt.test")) == ["mine"]


@pytest.mark.parametrize("domain", ["gmail.com", "Outlook.com", "mail.yahoo.com", "unclaimable.test"])
def test_public_mailbox_domains_cannot_be_claimed(make_node, world, domain):
    node = make_node(config(world, **{"domains.unclaimable": '["unclaimable.test"]'}), raw_config=EGRESS)
    r = api(node, "POST", "/v1/domains", json={"domain": domain})
    assert r.status_code == 400, r.text
    assert "public mailbox" in r.json()["detail"]


def test_rotation_signs_with_the_new_key_and_keeps_the_old_published(node, world):
    first = api(node, "POST", "/v1/domains", json={"domain": "rotate.test", "selector": "first"}).json()
    assert [k["selector"] for k in first["keys"]] == ["first"]
    rotated = api(node, "POST", "/v1/domains/rotate.test/rotate").json()
    states = {k["selector"]: k["state"] for k in rotated["keys"]}
    assert states.pop("first") == "published"
    (new_selector, state), = states.items()
    assert state == "active"
    assert {r["name"] for r in rotated["records"] if r["purpose"] == "dkim"} == {
        "first._domainkey.rotate.test", f"{new_selector}._domainkey.rotate.test"}
    publish(world, rotated)
    message = submit_and_deliver(node, world, {"from": "r@rotate.test", "to": ["d@rcpt.test"], "text": "rotated"})
    assert verify_all(world, message) == [new_selector]
    retired = api(node, "DELETE", "/v1/domains/rotate.test/keys/first").json()
    assert {k["selector"]: k["state"] for k in retired["keys"]}["first"] == "retired"
    assert "first._domainkey.rotate.test" not in {r["name"] for r in retired["records"]}


def test_an_imported_key_signs(node, world, tmp_path):
    pem = subprocess.run(["openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"],
                         capture_output=True, check=True, text=True).stdout
    view = api(node, "POST", "/v1/domains", json={"domain": "imported.test", "selector": "legacy",
                                                  "private_key": pem})
    assert view.status_code == 201, view.text
    assert "PRIVATE" not in view.text
    publish(world, view.json())
    message = submit_and_deliver(node, world, {"from": "i@imported.test", "to": ["e@rcpt.test"], "text": "imported"})
    assert verify_all(world, message) == ["legacy"]
    bad = api(node, "POST", "/v1/domains", json={"domain": "bad-import.test", "selector": "x", "private_key": "nope"})
    assert bad.status_code == 400


def test_only_verified_domains_may_send_when_required(make_node, world):
    node = make_node(config(world, **{"dkim.require_verified_domain": "true"}), raw_config=EGRESS)
    r = node.submit(node.key, {"from": "a@strict.test", "to": ["f@rcpt.test"], "text": "t"})
    assert r.status_code == 403 and "not a verified sender domain" in r.json()["detail"]
    view = api(node, "POST", "/v1/domains", json={"domain": "strict.test"}).json()
    assert node.submit(node.key, {"from": "a@strict.test", "to": ["f@rcpt.test"], "text": "t"}).status_code == 403
    publish(world, view)
    assert api(node, "GET", "/v1/domains/strict.test").json()["verified"] is True
    assert node.submit(node.key, {"from": "a@strict.test", "to": ["f@rcpt.test"], "text": "t"}).status_code == 202


def test_keys_can_be_encrypted_at_rest(make_node, world, tmp_path):
    key_file = tmp_path / "kek"
    key_file.write_text("ab" * 32 + "\n")
    node = make_node(config(world, **{"dkim.key_encryption_key_file": f'"{key_file}"'}), raw_config=EGRESS)
    view = api(node, "POST", "/v1/domains", json={"domain": "sealed.test"}).json()
    stored = node.sql("SELECT private_key FROM dkim_keys")
    assert stored and all(row[0].startswith("enc:v1:") for row in stored)
    assert all("PRIVATE" not in row[0] for row in stored)
    node.stop()
    node.start()  # keys are read back and decrypted after a restart
    publish(world, view)
    message = submit_and_deliver(node, world, {"from": "s@sealed.test", "to": ["g@rcpt.test"], "text": "sealed"})
    assert len(verify_all(world, message)) == 1


def test_a_domain_that_stops_verifying_raises_an_event(make_node, world):
    node = make_node(config(world, **{"domains.verify_interval": '"1s"'}), raw_config=EGRESS)
    view = api(node, "POST", "/v1/domains", json={"domain": "periodic.test"}).json()
    publish(world, view)
    assert api(node, "GET", "/v1/domains/periodic.test").json()["verified"] is True
    publish(world, {"records": []})  # the records disappear from DNS
    wait_for(lambda: node.sql("SELECT type FROM events WHERE type = 'domain_verification_failed'"),
             timeout=15, what="the periodic check to notice")
    listed = api(node, "GET", "/v1/domains").json()["domains"]
    assert [d["verified"] for d in listed if d["domain"] == "periodic.test"] == [False]
    assert "senders.verification_failed domain=periodic.test" in node.log()


def test_a_templated_batch_is_signed_per_copy(node, world):
    """Each recipient's copy is rendered at delivery and signed as rendered: both verifiers
    pass on every copy, and the copies differ."""
    view = api(node, "POST", "/v1/domains", json={"domain": "tmpl.test", "algorithms": ["rsa-sha256"]}).json()
    publish(world, view)
    r = node.submit(node.key, {"from": "news@tmpl.test", "subject": "Hello {{name}}",
                               "text": "Dear {{name}},\n{{#items}}- {{.}}\n{{/items}}",
                               "to": [{"email": "t1@rcpt.test", "substitutions": {"name": "Ann", "items": ["a", "b"]}},
                                      {"email": "t2@rcpt.test", "substitutions": {"name": "Bo"}}]})
    assert r.status_code == 202, r.text
    message_id = r.json()["id"]
    wait_for(lambda: all(x["status"] in FINAL for x in node.get_message(node.key, message_id).json()["recipients"]),
             what="delivery")
    copies = {}
    for m in world["smtp"].messages():
        for rcpt in m["rcpt_to"]:
            if rcpt in ("t1@rcpt.test", "t2@rcpt.test"):
                assert m["rcpt_to"] == [rcpt]  # a transaction per copy
                copies[rcpt] = base64.b64decode(m["data_b64"])
    assert set(copies) == {"t1@rcpt.test", "t2@rcpt.test"}
    assert b"Subject: Hello Ann" in copies["t1@rcpt.test"] and b"- a\r\n- b\r\n" in copies["t1@rcpt.test"]
    assert b"Subject: Hello Bo" in copies["t2@rcpt.test"] and b"- a" not in copies["t2@rcpt.test"]
    for copy in copies.values():
        assert copy.count(b"DKIM-Signature:") == 1
        verify_all(world, copy)
        result = opendkim_check(world, view, copy)
        assert result.returncode == 0, result.stdout.decode() + result.stderr.decode()
