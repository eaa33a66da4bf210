"""Delivery end to end: the real petrel binary, a scripted DNS server and scripted SMTP
servers on 127.0.0.x, driven through the HTTP API."""
import base64
import calendar
import email
import email.policy
import pathlib
import sys
import time

import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "tools"))
from servers import DnsServer, SmtpServer, make_self_signed_cert  # noqa: E402

from conftest import delivery_config as shared_delivery_config  # noqa: E402
from conftest import recipients_of, settle_message, submit_ok, wait_for  # noqa: E402



@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """DNS and SMTP servers shared by the tests of this module (each test has its own petrel)."""
    work = tmp_path_factory.mktemp("world")
    servers = []

    def smtp(ip, *args, port=0):
        s = SmtpServer(work, listen=[f"{ip}:{port}"], args=list(args)).start()
        servers.append(s)
        return s

    main = smtp("127.0.0.2")
    port = main.port
    cert, key = make_self_signed_cert(work, "mxtls.test")
    w = {
        "port": port,
        "main": main,
        "greet421": smtp("127.0.0.3", "--greeting", "421 4.3.2 Not now", port=port),
        "tls": smtp("127.0.0.4", "--tls-cert", str(cert), "--tls-key", str(key), port=port),
        "slow": smtp("127.0.0.6", "--stall-greeting", "0.3", port=port),
        "small": smtp("127.0.0.7", "--size", "2000", port=port),
        "helo": smtp("127.0.0.8", "--no-ehlo", port=port),
    }
    records = []

    def mx(domain, *hosts):
        for pref, host in hosts:
            records.append({"name": domain, "type": "MX", "preference": pref, "exchange": host})

    def a(name, ip):
        records.append({"name": name, "type": "A", "address": ip})

    a("mx1.example.test", "127.0.0.2")
    a("mx421.test", "127.0.0.3")
    a("mxtls.test", "127.0.0.4")
    a("mxdead.test", "127.0.0.9")  # nothing listens there: connection refused
    a("mxslow.test", "127.0.0.6")
    a("mxsmall.test", "127.0.0.7")
    a("mxhelo.test", "127.0.0.8")
    a("mxplain.test", "127.0.0.2")
    a("implicit.test", "127.0.0.2")  # no MX: the domain's own address (RFC 5321 5.1)
    mx("example.test", (10, "mx1.example.test"))
    mx("other.test", (10, "mx1.example.test"))
    mx("fallback.test", (10, "mxdead.test"), (20, "mx1.example.test"))
    mx("greet.test", (10, "mx421.test"), (20, "mx1.example.test"))
    mx("tls.test", (10, "mxtls.test"))
    mx("plain.test", (10, "mxplain.test"))
    mx("slow.test", (10, "mxslow.test"))
    mx("small.test", (10, "mxsmall.test"))
    mx("helo.test", (10, "mxhelo.test"))
    mx("xn--bcher-kva.test", (10, "mx1.example.test"))  # bücher.test
    records.append({"name": "nullmx.test", "type": "MX", "preference": 0, "exchange": "."})
    dns = DnsServer(work, {"records": records, "servfail": ["servfail.test"]}).start()
    servers.append(dns)
    w["dns"] = dns
    w["records"] = records
    yield w
    for s in servers:
        s.stop()


def delivery_config(world, **overrides):
    """The shared delivery config with this file's shorter timeouts."""
    values = {
        "dns.temporary_failure_ttl": '"200ms"',
        "delivery.max_age": '"1h"',
        "delivery.idle_timeout": '"2s"',
        "delivery.site_failure_delay": '"500ms"',
        "delivery.connect_timeout": '"2s"',
        "delivery.greeting_timeout": '"5s"',
        "delivery.command_timeout": '"5s"',
        **overrides,
    }
    return shared_delivery_config(world["dns"].port, world["port"], **values)


SITE_POLICIES = """
[[delivery.sites]]
match = "mxplain.test"
tls = "required"

[[delivery.sites]]
match = "mxslow.test"
connection_limit = 2
max_deliveries_per_connection = 1
"""


@pytest.fixture
def node(make_node, world):
    return make_node(delivery_config(world), raw_config=SITE_POLICIES)


submit = submit_ok
recipients = recipients_of
settle = settle_message


def sink_messages(server, rcpt):
    return [m for m in server.messages() if rcpt in m["rcpt_to"]]



def deferred(node, message_id, address):
    """The recipient once it has been deferred (its first attempt failed temporarily)."""
    return wait_for(lambda: (lambda x: x if x["status"] == "deferred" else None)(
        recipients(node, message_id)[address]), what=f"a deferral of {address}")

def test_delivered_content_is_exactly_what_was_stored(node, world):
    text = ".\n..two leading dots\n.one dot\nend with CRLF.CRLF next:\n.\nÜmlaut and emoji 😀\n"
    receipt = submit(node, to=["Jürgen <content@example.test>"], subject="Grüße – check",
                     text=text, html="<p>Grüße</p>", headers={"X-Trace": "t1"})
    rs = settle(node, receipt["id"])
    assert rs["content@example.test"]["status"] == "delivered"
    (got,) = sink_messages(world["main"], "content@example.test")
    data = base64.b64decode(got["data_b64"])
    assert not got["bare_lf"] and not got["bare_cr"]
    node.stop()
    stored = node.content(receipt["id"])
    assert data == stored  # byte for byte, dot-stuffing undone by the receiver
    msg = email.message_from_bytes(data, policy=email.policy.default)
    assert msg["Subject"] == "Grüße – check"
    assert msg["X-Trace"] == "t1"
    plain = msg.get_body(preferencelist=("plain",)).get_content().replace("\r\n", "\n")
    assert plain == text
    assert got["mail_from"] == "app@sender.test"


def test_attachments_and_inline_images_arrive_whole_in_a_real_mime_structure(node, world):
    pdf = b"%PDF-1.4\n" + bytes(range(256)) * 40  # binary, past one base64 line
    png = b"\x89PNG\r\n\x1a\n" + bytes(300)
    csv = "name;city\nZoë;Köln\n".encode()
    receipt = submit(node, to=["files@example.test"], subject="Your invoice",
                     text="See the attachment.", html='<p>Logo <img src="cid:logo@petrel.test"></p>',
                     attachments=[
                         {"filename": "Rechnung März.pdf", "content_type": "application/pdf",
                          "content": base64.b64encode(pdf).decode()},
                         {"filename": "logo.png", "content_type": "image/png", "disposition": "inline",
                          "content_id": "logo@petrel.test", "content": base64.b64encode(png).decode()},
                         {"filename": "data.csv", "content_type": "text/csv", "content": base64.b64encode(csv).decode()},
                     ])
    assert settle(node, receipt["id"])["files@example.test"]["status"] == "delivered"
    (got,) = sink_messages(world["main"], "files@example.test")
    data = base64.b64decode(got["data_b64"])
    assert max(len(line) for line in data.split(b"\r\n")) <= 998
    msg = email.message_from_bytes(data, policy=email.policy.default)
    assert msg.get_content_type() == "multipart/mixed"
    related, *files = msg.iter_parts()
    assert related.get_content_type() == "multipart/related"
    alternative, logo = related.iter_parts()
    assert alternative.get_content_type() == "multipart/alternative"
    assert [p.get_content_type() for p in alternative.iter_parts()] == ["text/plain", "text/html"]
    assert logo["Content-ID"] == "<logo@petrel.test>" and logo.get_content_disposition() == "inline"
    assert logo.get_content() == png
    assert [(f.get_filename(), f.get_content_disposition(), f.get_content_type()) for f in files] == [
        ("Rechnung März.pdf", "attachment", "application/pdf"), ("data.csv", "attachment", "text/csv")]
    assert files[0].get_payload(decode=True) == pdf and files[1].get_payload(decode=True) == csv
    assert all(f["Content-Transfer-Encoding"] == "base64" for f in files)


def test_bad_attachments_are_refused_naming_the_field(node):
    base = {"from": "app@sender.test", "to": ["x@example.test"], "text": "t"}
    for attachment, field in [({"content": "YQ=="}, "attachments[0].filename"),
                              ({"filename": "a", "content": "%%%"}, "attachments[0].content"),
                              ({"filename": "a", "content": "YQ==", "content_id": "x@y"}, "attachments[0].content_id")]:
        r = node.submit(node.key, dict(base, attachments=[attachment]))
        assert r.status_code == 400, r.text
        assert field in r.text, r.text


def rfc3339(unix_seconds):
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(unix_seconds)) + ".%03dZ" % (int(unix_seconds * 1000) % 1000)


def event_seconds(event):
    # "2026-12-07T08:50:01.123Z"
    whole, _, fraction = event["at"].rstrip("Z").partition(".")
    return calendar.timegm(time.strptime(whole, "%Y-%m-%dT%H:%M:%S")) + float("0." + (fraction or "0"))


def test_send_at_waits_for_its_time_survives_a_restart_and_is_sent_on_time(make_node, world):
    node = make_node(delivery_config(world))
    send_at = time.time() + 5
    receipt = submit(node, to=["later@example.test", "later2@example.test"], subject="scheduled", text="later",
                     send_at=rfc3339(send_at))
    time.sleep(1.5)
    rs = recipients(node, receipt["id"])
    assert {r["status"] for r in rs.values()} == {"queued"}
    assert sink_messages(world["main"], "later@example.test") == []
    node.stop()  # the schedule is in the store, not in memory
    node.start()
    rs = settle(node, receipt["id"], timeout=30)
    for address in ("later@example.test", "later2@example.test"):
        assert rs[address]["status"] == "delivered"
        delivered_at = event_seconds(rs[address]["history"][-1])
        assert send_at - 1 <= delivered_at <= send_at + 2, (delivered_at - send_at)
    assert len(sink_messages(world["main"], "later@example.test")) == 1


def test_send_at_is_validated(node):
    base = {"from": "app@sender.test", "to": ["x@example.test"], "text": "t"}
    for value, words in [("tomorrow", "RFC 3339"), (rfc3339(time.time() + 73 * 3600), "ahead"), (17, "RFC 3339")]:
        r = node.submit(node.key, dict(base, send_at=value))
        assert r.status_code == 400 and "send_at" in r.text and words in r.text, r.text
    # A time already past is now.
    receipt = submit(node, to=["past@example.test"], text="t", send_at=rfc3339(time.time() - 3600))
    assert settle(node, receipt["id"])["past@example.test"]["status"] == "delivered"


def test_raw_message_with_dot_lines_and_bare_line_feeds_arrives_normalized(node, world):
    raw = b"From: raw@sender.test\nSubject: raw\n\n.\n..\n.x\nbare\rcr\n\r\n.\r\nlast"
    receipt = submit(node, raw=base64.b64encode(raw).decode(),
                     envelope={"from": "bounce@sender.test", "to": ["raw@example.test"]})
    assert settle(node, receipt["id"])["raw@example.test"]["status"] == "delivered"
    (got,) = sink_messages(world["main"], "raw@example.test")
    data = base64.b64decode(got["data_b64"])
    assert not got["bare_lf"] and not got["bare_cr"]
    assert data.endswith(b"\r\n\r\n.\r\n..\r\n.x\r\nbare\r\ncr\r\n\r\n.\r\nlast\r\n")
    assert got["mail_from"] == "bounce@sender.test"


def test_recipients_of_one_domain_share_one_transaction(node, world):
    receipt = submit(node, to=["r1@other.test", "r2@other.test"], cc="r3@other.test",
                     bcc="r4@example.test")
    rs = settle(node, receipt["id"])
    assert {x["status"] for x in rs.values()} == {"delivered"}
    shared = sink_messages(world["main"], "r1@other.test")
    assert len(shared) == 1 and sorted(shared[0]["rcpt_to"]) == ["r1@other.test", "r2@other.test", "r3@other.test"]
    (bcc,) = sink_messages(world["main"], "r4@example.test")
    assert "r4@example.test" not in bcc["data"]  # bcc is in the envelope only


def test_tempfail_is_retried_and_then_delivered(node, world):
    receipt = submit(node, to=["tempfail-1-retry@example.test"])
    r = settle(node, receipt["id"])["tempfail-1-retry@example.test"]
    assert r["status"] == "delivered"
    assert r["attempts"] == 2
    history = [(h["type"], h["data"].get("smtp_code")) for h in r["history"]]
    assert history == [("accepted", None), ("deferred", 451), ("delivered", 250)]
    deferred = r["history"][1]["data"]
    assert deferred["enhanced_code"] == "4.3.0"
    assert deferred["mx_host"] == "mx1.example.test" and deferred["mx_ip"] == "127.0.0.2"
    assert deferred["next_attempt_at"]


def test_permfail_is_bounced_with_the_reply(node, world):
    receipt = submit(node, to=["permfail-x@example.test", "fine@example.test"])
    rs = settle(node, receipt["id"])
    bounced = rs["permfail-x@example.test"]
    assert bounced["status"] == "bounced"
    assert bounced["last_reply"].startswith("550 5.1.1")
    assert bounced["history"][-1]["data"]["enhanced_code"] == "5.1.1"
    assert rs["fine@example.test"]["status"] == "delivered"


def test_null_mx_and_nxdomain_bounce_without_a_connection(node, world):
    before = sum(s.stats()["connections_total"] for k, s in world.items() if k in ("main", "greet421", "tls", "slow", "small", "helo"))
    receipt = submit(node, to=["x@nullmx.test", "y@nosuchdomain.test"])
    rs = settle(node, receipt["id"])
    assert rs["x@nullmx.test"]["status"] == "bounced"
    assert "null MX" in rs["x@nullmx.test"]["last_reply"]
    assert rs["y@nosuchdomain.test"]["status"] == "bounced"
    assert "NXDOMAIN" in rs["y@nosuchdomain.test"]["last_reply"]
    # Bounced as bad_domain, not suppressed (docs/bounces.md): the verdict is DNS's, for now.
    listed = node.session.get(node.url("/v1/suppressions"), headers={"Authorization": f"Bearer {node.key}"},
                              timeout=10).json()["suppressions"]
    assert [x["email"] for x in listed] == []
    after = sum(s.stats()["connections_total"] for k, s in world.items() if k in ("main", "greet421", "tls", "slow", "small", "helo"))
    assert after == before


def test_a_domain_without_mx_is_delivered_to_its_address(node, world):
    receipt = submit(node, to=["implicit@implicit.test"])
    r = settle(node, receipt["id"])["implicit@implicit.test"]
    assert r["status"] == "delivered"
    assert r["history"][-1]["data"]["mx_host"] == "implicit.test"


def test_dns_servfail_defers_then_delivers_when_dns_recovers(node, world):
    receipt = submit(node, to=["later@servfail.test"])
    r = deferred(node, receipt["id"], "later@servfail.test")
    assert "SERVFAIL" in r["last_reply"] or "DNS" in r["last_reply"], r["last_reply"]
    zone = {"records": world["records"] + [
        {"name": "servfail.test", "type": "MX", "preference": 10, "exchange": "mx1.example.test"}]}
    world["dns"].set_zone(zone)
    try:
        assert settle(node, receipt["id"])["later@servfail.test"]["status"] == "delivered"
    finally:
        world["dns"].set_zone({"records": world["records"], "servfail": ["servfail.test"]})


def test_falls_back_to_the_next_mx_on_refused_connections_and_421_greetings(node, world):
    receipt = submit(node, to=["fb@fallback.test", "g@greet.test"])
    rs = settle(node, receipt["id"])
    assert rs["fb@fallback.test"]["status"] == "delivered"
    assert rs["fb@fallback.test"]["history"][-1]["data"]["mx_host"] == "mx1.example.test"
    assert rs["g@greet.test"]["status"] == "delivered"
    assert rs["g@greet.test"]["history"][-1]["data"]["mx_host"] == "mx1.example.test"
    assert world["greet421"].stats()["connections_total"] >= 1  # it was tried first


def test_starttls_is_used_when_offered(node, world):
    receipt = submit(node, to=["secure@tls.test"])
    r = settle(node, receipt["id"])["secure@tls.test"]
    assert r["status"] == "delivered"
    data = r["history"][-1]["data"]
    assert data["tls"] is True and data["tls_version"].startswith("TLSv1.") and data["tls_cipher"]
    (got,) = sink_messages(world["tls"], "secure@tls.test")
    assert got["tls"] is True


def test_required_tls_refuses_a_plaintext_server(node, world):
    receipt = submit(node, to=["never@plain.test"])
    r = deferred(node, receipt["id"], "never@plain.test")
    assert "TLS is required" in r["last_reply"]
    assert sink_messages(world["main"], "never@plain.test") == []


def test_an_idle_connection_is_reused_for_the_next_message(node, world):
    for i in range(4):  # one after the other: each finds the previous session parked
        settle(node, submit(node, to=[f"reuse{i}@example.test"])["id"])
    got = [m for m in world["main"].messages() if m["rcpt_to"][0].startswith("reuse")]
    assert len(got) == 4
    assert len({m["connection"] for m in got}) == 1
    assert sorted(m["index_in_connection"] for m in got) == [1, 2, 3, 4]


def test_with_one_connection_allowed_a_burst_shares_it(make_node, world):
    node = make_node(delivery_config(world, **{"delivery.connection_limit": "1"}))
    ids = [submit(node, to=[f"burst{i}@example.test"])["id"] for i in range(8)]
    for message_id in ids:
        settle(node, message_id)
    got = [m for m in world["main"].messages() if m["rcpt_to"][0].startswith("burst")]
    assert len(got) == 8
    assert len({m["connection"] for m in got}) == 1


def test_the_connection_limit_holds(node, world):
    world["slow"].reset()
    ids = [submit(node, to=[f"c{i}@slow.test"])["id"] for i in range(12)]
    for message_id in ids:
        assert settle(node, message_id, timeout=40)[f"c{ids.index(message_id)}@slow.test"]["status"] == "delivered"
    stats = world["slow"].stats()
    # max_deliveries_per_connection = 1: one connection per message, at most 2 at a time.
    assert stats["connections_total"] == 12
    assert stats["max_concurrent_connections"] == 2


def test_a_message_over_the_servers_size_limit_bounces_without_data(node, world):
    receipt = submit(node, to=["big@small.test"], text="x" * 3000)
    r = settle(node, receipt["id"])["big@small.test"]
    assert r["status"] == "bounced"
    assert r["last_reply"].startswith("552 5.3.4")
    assert world["small"].messages() == []


def test_helo_fallback(node, world):
    receipt = submit(node, to=["old@helo.test"])
    assert settle(node, receipt["id"])["old@helo.test"]["status"] == "delivered"
    (got,) = sink_messages(world["helo"], "old@helo.test")
    assert got["esmtp"] is False


def test_dropped_connections_defer(node, world):
    receipt = submit(node, to=["drop-rcpt-a@example.test"])
    r = deferred(node, receipt["id"], "drop-rcpt-a@example.test")
    assert "error" in r["history"][-1]["data"], r["history"][-1]


def test_recipients_expire_after_max_age(make_node, world):
    node = make_node(delivery_config(world, **{"delivery.max_age": '"3s"'}))
    receipt = submit(node, to=["tempfail-forever@example.test"])
    r = settle(node, receipt["id"], timeout=20)["tempfail-forever@example.test"]
    assert r["status"] == "expired"
    types = [h["type"] for h in r["history"]]
    assert types[0] == "accepted" and types[-1] == "expired" and "deferred" in types


def test_bound_to_the_egress_source_address(make_node, world):
    node = make_node(delivery_config(world), raw_config="""
[[egress.sources]]
name = "ip5"
address = "127.0.0.5"
ehlo_name = "out5.sender.test"
""")
    receipt = submit(node, to=["bound@example.test"])
    r = settle(node, receipt["id"])["bound@example.test"]
    assert r["history"][-1]["data"]["source"] == "ip5"
    assert r["history"][-1]["data"]["source_ip"] == "127.0.0.5"
    (got,) = sink_messages(world["main"], "bound@example.test")
    assert got["peer"] == "127.0.0.5" and got["helo"] == "out5.sender.test"


def test_delivered_recipients_are_not_sent_again_after_kill_minus_9(make_node, world):
    node = make_node(delivery_config(world))
    ids = [submit(node, to=[f"once{i}@example.test"])["id"] for i in range(10)]
    for message_id in ids:
        settle(node, message_id)
    node.kill9()
    node.start()  # ready: recovery is complete, every waiting recipient is known
    totals = node.admin("GET", "/admin/queues").json()["totals"]
    assert totals["queued"] + totals["deferred"] + totals["in_flight"] == 0  # nothing left to send
    got = [m for m in world["main"].messages() if m["rcpt_to"][0].startswith("once")]
    assert len(got) == 10


def test_kill_minus_9_during_delivery_loses_nothing(make_node, world):
    world["slow"].reset()
    config = delivery_config(world)
    node = make_node(config, raw_config=SITE_POLICIES)
    ids = [submit(node, to=[f"k{i}@slow.test"])["id"] for i in range(10)]
    wait_for(lambda: len(world["slow"].messages()) >= 2, what="deliveries to start")
    node.kill9()
    node.start()
    for i, message_id in enumerate(ids):
        assert settle(node, message_id, timeout=40)[f"k{i}@slow.test"]["status"] == "delivered"
    delivered = {m["rcpt_to"][0] for m in world["slow"].messages()}
    assert delivered >= {f"k{i}@slow.test" for i in range(10)}  # at least once each


def test_8bit_raw_messages_use_8bitmime_and_utf8_addresses_use_smtputf8(node, world):
    raw = "From: a@sender.test\r\nSubject: 8bit\r\nContent-Type: text/plain; charset=utf-8\r\n" \
          "Content-Transfer-Encoding: 8bit\r\n\r\nGrüße aus Köln\r\n".encode()
    eight = submit(node, raw=base64.b64encode(raw).decode(),
                   envelope={"from": "a@sender.test", "to": ["eight@example.test"]})
    assert settle(node, eight["id"])["eight@example.test"]["status"] == "delivered"
    (got,) = sink_messages(world["main"], "eight@example.test")
    assert got["mail_params"].get("BODY") == "8BITMIME"
    assert base64.b64decode(got["data_b64"]).endswith("Grüße aus Köln\r\n".encode())
    utf8 = submit(node, to=["jürgen@example.test"])
    assert settle(node, utf8["id"])["jürgen@example.test"]["status"] == "delivered"
    (got,) = sink_messages(world["main"], "jürgen@example.test")
    assert "SMTPUTF8" in got["mail_params"]


def test_idn_domains_are_routed_and_sent_as_a_labels(node, world):
    receipt = submit(node, to=["user@bücher.test", "zwsp@BÜCHER.test\u200b", "same@xn--bcher-kva.test"])
    emails = [r["email"] for r in receipt["recipients"]]
    assert emails == ["user@xn--bcher-kva.test", "zwsp@xn--bcher-kva.test", "same@xn--bcher-kva.test"]
    rs = settle(node, receipt["id"])
    assert {r["status"] for r in rs.values()} == {"delivered"}
    (got,) = sink_messages(world["main"], "user@xn--bcher-kva.test")
    assert sorted(got["rcpt_to"]) == ["same@xn--bcher-kva.test", "user@xn--bcher-kva.test", "zwsp@xn--bcher-kva.test"]
    assert all(a.isascii() for a in got["rcpt_to"])
    assert "SMTPUTF8" not in got["mail_params"]  # an ASCII envelope needs no SMTPUTF8
    r = node.submit(node.key, {"from": "a@sender.test", "to": ["a@\u2665.test"], "text": "t"})
    assert r.status_code == 400 and r.json()["field"] == "to[0]", r.text


def test_loopback_and_private_destinations_are_refused_unless_allowed(make_node, world):
    node = make_node(delivery_config(world, **{"delivery.allow_private_destinations": "false"}))
    receipt = submit(node, to=["lit@[127.0.0.2]", "user@example.test"])
    rs = settle(node, receipt["id"])
    for address in ("lit@[127.0.0.2]", "user@example.test"):
        r = rs[address]
        assert r["status"] == "bounced", r
        event = r["history"][-1]
        assert event["data"]["category"] == "bad_domain"
        assert "allow_private_destinations" in r["last_reply"]
    assert sink_messages(world["main"], "user@example.test") == []
    assert sink_messages(world["main"], "lit@[127.0.0.2]") == []


def test_raw_messages_are_sent_without_their_bcc_header(node, world):
    raw = (b"From: a@sender.test\r\nTo: shown@example.test\r\nBcc: hidden@example.test,\r\n"
           b" also-hidden@example.test\r\nSubject: bcc\r\n\r\nbody\r\n")
    receipt = submit(node, raw=base64.b64encode(raw).decode(),
                     envelope={"from": "a@sender.test", "to": ["shown@example.test", "hidden@example.test"]})
    settle(node, receipt["id"])
    (got,) = sink_messages(world["main"], "hidden@example.test")
    data = base64.b64decode(got["data_b64"])
    assert b"Bcc" not in data and b"hidden@" not in data
    assert b"To: shown@example.test\r\nSubject: bcc\r\n" in data
