"""Rows of the fault matrix (docs/reliability.md). SMTP: a remote server that fails in each way
once, then works; each test asserts the outcome: the attempt deferred with an event that says
what happened, a retry on schedule, the recipient delivered, and a duplicate only where RFC 5321
4.1.1.4 makes it unavoidable (the reply to the final dot lost); resets mid-MAIL and mid-DATA, a stall
past each timeout, certificate errors. DNS: timeouts, SERVFAIL storms, lame servers, answers that
change, CNAMEs and answers too big for UDP. Store: SQLite locked by another process."""
import os
import sqlite3
import time

import pytest

from conftest import delivery_config, settle_message, wait_for
from servers import DnsServer, SmtpServer, make_self_signed_cert


def submit(node, address):
    r = node.submit(node.key, {"from": "App <app@sender.test>", "to": [address], "subject": "fault", "text": "x"})
    assert r.status_code == 202, r.text
    return r.json()["id"]


def history(node, message_id):
    r = node.get_message(node.key, message_id).json()["recipients"][0]
    return r["status"], [(h["type"], h["data"]) for h in r["history"]]


def copies(sink, address):
    return [m for m in sink.messages() if address in m["rcpt_to"]]


def config(dns, sink, **extra):
    # A site whose connections fail is left alone for site_failure_delay: short here.
    return delivery_config(dns.port, sink.port, **{"delivery.site_failure_delay": '"500ms"', **extra})


def deferred_then_delivered(events):
    """The attempts: deferred one or more times (the first is the fault's), then delivered."""
    types = [t for t, _ in events]
    assert types[0] == "accepted" and types[-1] == "delivered" and len(types) >= 3, events
    assert set(types[1:-1]) == {"deferred"}, events
    return events[1][1]


def test_a_connection_reset_before_the_greeting_defers_then_delivers(mx_world, make_node):
    sink, dns = mx_world
    sink.configure(drop_before_greeting=1)
    node = make_node(config(dns, sink))
    message = submit(node, "first@example.test")
    assert settle_message(node, message, timeout=30)["first@example.test"]["status"] == "delivered"
    _, events = history(node, message)
    deferred = deferred_then_delivered(events)
    assert deferred["attempt"] == 1 and "smtp_code" not in deferred and deferred["error"], deferred
    assert len(copies(sink, "first@example.test")) == 1


def test_the_reply_to_the_final_dot_lost_is_the_one_unavoidable_duplicate(mx_world, make_node):
    sink, dns = mx_world
    node = make_node(config(dns, sink))
    address = "drop-data-1-x@example.test"
    message = submit(node, address)
    assert settle_message(node, message, timeout=30)[address]["status"] == "delivered"
    _, events = history(node, message)
    assert deferred_then_delivered(events)["error"], events
    got = copies(sink, address)
    assert len(got) == 2 and [bool(m.get("reply_lost")) for m in got] == [True, False]
    assert got[0]["data_b64"] == got[1]["data_b64"], "the same message, sent again whole"


def test_a_server_that_never_answers_the_final_dot_times_out_and_defers(mx_world, make_node):
    sink, dns = mx_world
    node = make_node(config(dns, sink, **{"delivery.data_done_timeout": '"2s"'}))
    address = "stall-data-1-x@example.test"
    message = submit(node, address)
    assert settle_message(node, message, timeout=40)[address]["status"] == "delivered"
    _, events = history(node, message)
    assert "time" in deferred_then_delivered(events)["error"].lower(), events


@pytest.mark.parametrize("stage,during", [("MAIL", "MAIL"), ("DATA-BODY", "the message")])
def test_a_connection_reset_mid_mail_or_mid_data_defers_then_delivers_once(mx_world, make_node, stage, during):
    # Before the final dot nothing was accepted: the retry is the only copy (no duplicate).
    sink, dns = mx_world
    sink.configure(reset_at={stage: 1})
    node = make_node(config(dns, sink))
    address = f"reset-{stage.lower()}@example.test"
    message = submit(node, address)
    assert settle_message(node, message, timeout=30)[address]["status"] == "delivered"
    _, events = history(node, message)
    deferred = deferred_then_delivered(events)
    assert "smtp_code" not in deferred and deferred["error"], deferred
    assert len(copies(sink, address)) == 1
    assert [c.get("reset") for c in sink.stats()["connections"] if c.get("reset")] == [stage], sink.stats()


# Each reply withheld past the client's timeout for it (RFC 5321 4.5.3.2), shortened here; the
# event names the stage the attempt timed out in.
STALLS = [("greeting", "delivery.greeting_timeout", "greeting"),
          ("EHLO", "delivery.command_timeout", "EHLO"),
          ("MAIL", "delivery.command_timeout", "MAIL"),
          ("RCPT", "delivery.command_timeout", "RCPT"),
          ("DATA", "delivery.data_timeout", "DATA")]


@pytest.mark.parametrize("stage,key,named", STALLS, ids=[s[0] for s in STALLS])
def test_a_stall_past_each_timeout_defers_with_the_stage_then_delivers(mx_world, make_node, stage, key, named):
    sink, dns = mx_world
    sink.configure(stall_at={stage: 1})
    node = make_node(config(dns, sink, **{key: '"1s"'}))
    address = f"slow-{stage.lower()}@example.test"
    message = submit(node, address)
    try:
        settle_message(node, message, timeout=40)
    except AssertionError as e:
        raise AssertionError(f"{e}: {history(node, message)}\n{sink.stats()['connections']}") from None
    _, events = history(node, message)
    error = deferred_then_delivered(events)["error"]
    assert "timeout" in error.lower() and named.lower() in error.lower(), error
    assert len(copies(sink, address)) == 1
    assert [c.get("stalled") for c in sink.stats()["connections"] if c.get("stalled")] == [stage], sink.stats()


def test_421_in_the_middle_of_a_session_defers_with_the_reply(mx_world, make_node):
    sink, dns = mx_world
    node = make_node(config(dns, sink))
    address = "rcpt421-1-x@example.test"
    message = submit(node, address)
    assert settle_message(node, message, timeout=30)[address]["status"] == "delivered"
    _, events = history(node, message)
    deferred = deferred_then_delivered(events)
    assert deferred["smtp_code"] == 421 and "shutting down" in deferred["reply"], deferred
    assert len(copies(sink, address)) == 1


def test_garbage_and_over_long_replies_are_protocol_errors_that_defer(mx_world, make_node):
    sink, dns = mx_world
    node = make_node(config(dns, sink))
    for address in ("garbage-1-x@example.test", "longreply-1-x@example.test"):
        message = submit(node, address)
        assert settle_message(node, message, timeout=30)[address]["status"] == "delivered", address
        _, events = history(node, message)
        deferred = deferred_then_delivered(events)
        assert deferred.get("error") or deferred.get("reply"), deferred
        assert len(copies(sink, address)) == 1
    # The node is fine afterwards.
    assert wait_for(lambda: node.session.get(node.url("/readyz"), timeout=5).status_code == 200)


# -- DNS rows --------------------------------------------------------------------------------

MX_A = {"name": "mx1.example.test", "type": "A", "address": "127.0.0.2", "ttl": 1}


def dns_config(dns, sink, **extra):
    # No caching across attempts here: each attempt sees the zone as it is now.
    return config(dns, sink, **{"dns.timeout": '"300ms"', "dns.tries": "1", "dns.min_ttl": '"0s"',
                                "dns.temporary_failure_ttl": '"0s"', **extra})


def test_dns_timeouts_defer_until_the_server_answers_again(mx_world, make_node):
    sink, dns = mx_world
    dns.set_zone({"records": [MX_A, {"name": "example.test", "type": "MX", "preference": 10,
                                     "exchange": "mx1.example.test", "ttl": 1}], "timeout": ["example.test"]})
    node = make_node(dns_config(dns, sink))
    message = submit(node, "dns-timeout@example.test")
    wait_for(lambda: history(node, message)[0] == "deferred", timeout=20, what="a deferral")
    _, events = history(node, message)
    assert "time" in events[1][1]["error"].lower() or "dns" in events[1][1]["error"].lower(), events[1][1]
    dns.set_zone({"records": [MX_A, {"name": "example.test", "type": "MX", "preference": 10,
                                     "exchange": "mx1.example.test", "ttl": 1}]})
    assert settle_message(node, message, timeout=30)["dns-timeout@example.test"]["status"] == "delivered"
    assert len(copies(sink, "dns-timeout@example.test")) == 1


def test_an_answer_that_changes_between_attempts_is_followed(mx_world, make_node):
    sink, dns = mx_world
    # First the MX is a host where nothing listens; then it is the sink.
    dns.set_zone({"records": [{"name": "down.example.test", "type": "A", "address": "127.0.0.3", "ttl": 1},
                              {"name": "example.test", "type": "MX", "preference": 10,
                               "exchange": "down.example.test", "ttl": 1}]})
    node = make_node(dns_config(dns, sink))
    message = submit(node, "moved@example.test")
    wait_for(lambda: history(node, message)[0] == "deferred", timeout=20, what="a deferral")
    dns.set_zone({"records": [MX_A, {"name": "example.test", "type": "MX", "preference": 10,
                                     "exchange": "mx1.example.test", "ttl": 1}]})
    assert settle_message(node, message, timeout=30)["moved@example.test"]["status"] == "delivered"
    _, events = history(node, message)
    assert events[-1][1]["mx_host"] == "mx1.example.test", events[-1][1]


def test_an_mx_that_is_a_cname_and_a_huge_answer_over_tcp_are_delivered(mx_world, make_node):
    sink, dns = mx_world
    # example.test: MX -> alias (a CNAME to mx1), RFC 2181 10.3 says it should not, senders cope.
    # big.example.test: 120 MX records, far more than a 1,232-octet UDP answer holds: truncated,
    # then asked again over TCP.
    records = [MX_A, {"name": "alias.example.test", "type": "CNAME", "target": "mx1.example.test", "ttl": 1},
               {"name": "example.test", "type": "MX", "preference": 10, "exchange": "alias.example.test", "ttl": 1}]
    records += [{"name": "big.example.test", "type": "MX", "preference": 10 + i,
                 "exchange": "mx1.example.test", "ttl": 1} for i in range(120)]
    dns.set_zone({"records": records})
    node = make_node(dns_config(dns, sink))
    for address in ("cname@example.test", "huge@big.example.test"):
        message = submit(node, address)
        assert settle_message(node, message, timeout=30)[address]["status"] == "delivered", history(node, message)
    assert dns.stats()["by_transport"].get("tcp", 0) >= 1, dns.stats()


@pytest.mark.parametrize("lame", ["refused", "servfail"])
def test_a_lame_server_first_in_the_list_is_passed_over_for_the_next(tmp_path, mx_world, make_node, lame):
    # The first configured server is lame for the zone: not authoritative and not recursive, it
    # refuses (or fails) every question. The resolver asks the next server and the mail goes.
    sink, dns = mx_world
    dns.set_zone({"records": [MX_A, {"name": "example.test", "type": "MX", "preference": 10,
                                     "exchange": "mx1.example.test", "ttl": 1}]})
    lame_server = DnsServer(tmp_path / "lame", {"records": [], lame: ["test"]}).start()
    try:
        node = make_node(dns_config(dns, sink, **{
            "dns.servers": f'["127.0.0.1:{lame_server.port}", "127.0.0.1:{dns.port}"]'}))
        message = submit(node, "lame@example.test")
        assert settle_message(node, message, timeout=30)["lame@example.test"]["status"] == "delivered"
        _, events = history(node, message)
        assert [t for t, _ in events] == ["accepted", "delivered"], events
        assert lame_server.stats()["queries"].get("example.test/MX", 0) >= 1, lame_server.stats()
        assert dns.stats()["queries"].get("example.test/MX", 0) >= 1, dns.stats()
    finally:
        lame_server.stop()


def test_a_servfail_storm_defers_everything_asks_little_and_recovers(mx_world, make_node):
    # Every question SERVFAILs for a while (a resolver whose upstreams are unreachable): 40
    # messages to 4 domains are deferred, not bounced; failures are remembered for
    # temporary_failure_ttl, so the storm costs a few questions per domain rather than one per
    # message and attempt; once DNS is back everything is delivered.
    sink, dns = mx_world
    domains = [f"storm{i}.test" for i in range(4)]
    good = [MX_A] + [{"name": d, "type": "MX", "preference": 10, "exchange": "mx1.example.test", "ttl": 1}
                     for d in domains]
    dns.set_zone({"records": good, "servfail": ["test"]})
    node = make_node(config(dns, sink, **{"dns.timeout": '"300ms"', "dns.tries": "1",
                                          "dns.temporary_failure_ttl": '"3s"'}))
    messages = [submit(node, f"r{n}@{domains[n % 4]}") for n in range(40)]
    wait_for(lambda: all(history(node, m)[0] == "deferred" for m in messages), timeout=30, what="every message deferred")
    started = time.time()
    time.sleep(4)  # past one temporary_failure_ttl, with attempts each second meanwhile
    asked = dns.stats()["queries"]
    print(f"SERVFAIL storm: {sum(asked.get(f'{d}/MX', 0) for d in domains)} MX questions for 40 messages "
          f"in {time.time() - started + 1:.1f} s")
    for d in domains:
        # About one question per temporary_failure_ttl (3 s) and domain, not 10 per second.
        assert asked.get(f"{d}/MX", 0) <= 2 + 2 * int((time.time() - started) / 3 + 1), asked
    for m in messages:
        status, events = history(node, m)
        assert status == "deferred" and "bounced" not in [t for t, _ in events], events
        assert "SERVFAIL" in events[1][1]["error"] or "DNS" in events[1][1]["error"], events[1][1]
    dns.set_zone({"records": good})
    for m in messages:
        assert all(r["status"] == "delivered" for r in settle_message(node, m, timeout=30).values())
    assert sink.stats()["messages_total"] == 40


def test_a_looping_cname_and_an_mx_without_an_address_defer_with_the_reason_until_fixed(mx_world, make_node):
    sink, dns = mx_world
    broken = [MX_A,
              {"name": "loop-a.example.test", "type": "CNAME", "target": "loop-b.example.test", "ttl": 1},
              {"name": "loop-b.example.test", "type": "CNAME", "target": "loop-a.example.test", "ttl": 1},
              {"name": "example.test", "type": "MX", "preference": 10, "exchange": "loop-a.example.test", "ttl": 1},
              {"name": "lame.test", "type": "MX", "preference": 10, "exchange": "nowhere.example.test", "ttl": 1}]
    dns.set_zone({"records": broken})
    node = make_node(dns_config(dns, sink))
    reasons = {"loop@example.test": "no MX host of the domain has an address",
               "lame@lame.test": "MX host nowhere.example.test has no address"}
    messages = {address: submit(node, address) for address in reasons}
    for address, message in messages.items():
        # Deferred, not bounced (a DNS mistake is fixed in minutes), and attempted again.
        def twice():
            status, events = history(node, message)
            return events if status == "deferred" and len(events) >= 3 else None
        events = wait_for(twice, timeout=20, what=f"two deferrals of {address}")
        assert {d["error"] for t, d in events[1:]} == {reasons[address]}, events
    dns.set_zone({"records": [MX_A] + [{"name": d, "type": "MX", "preference": 10, "exchange": "mx1.example.test",
                                        "ttl": 1} for d in ("example.test", "lame.test")]})
    for address, message in messages.items():
        assert settle_message(node, message, timeout=30)[address]["status"] == "delivered"


# -- Store rows ------------------------------------------------------------------------------

@pytest.mark.skipif(os.environ.get("PETREL_TEST_STORE") == "postgresql", reason="SQLite's own lock")
def test_sqlite_locked_by_another_process_is_a_503_then_recovers_with_nothing_lost(make_node):
    node = make_node('storage.busy_timeout = "300ms"')
    holder = sqlite3.connect(str(node.data_dir / "petrel.db"), isolation_level=None, timeout=10)
    accepted, refused = [], []
    try:
        holder.execute("BEGIN IMMEDIATE")  # another process holds the write lock
        for i in range(5):
            r = node.submit(node.key, {"from": "a@sender.test", "to": [f"busy{i}@example.net"], "subject": "s",
                                       "text": "x"})
            (accepted if r.status_code == 202 else refused).append(r)
        assert refused, [r.status_code for r in accepted]
        for r in refused:
            assert r.status_code == 503 and int(r.headers["Retry-After"]) >= 1, r.text
            assert r.json()["type"] in ("urn:petrel:problem:store-unavailable", "urn:petrel:problem:unavailable"), r.text
    finally:
        holder.execute("COMMIT")
        holder.close()
    # Released: accepted again, ready again, and what was acknowledged before is there.
    def again():
        r = node.submit(node.key, {"from": "a@sender.test", "to": ["after@example.net"], "subject": "s", "text": "x"})
        return r if r.status_code == 202 else None
    accepted.append(wait_for(again, timeout=30, interval=0.5, what="202s after the lock"))
    wait_for(lambda: node.session.get(node.url("/readyz"), timeout=5).status_code == 200, what="ready again")
    for r in accepted:
        assert node.get_message(node.key, r.json()["id"]).status_code == 200


# -- TLS rows --------------------------------------------------------------------------------

TLS_REQUIRED = """
[[delivery.sites]]
match = "mx1.example.test"
tls = "required"
"""


def tls_world(tmp_path):
    cert, key = make_self_signed_cert(tmp_path, "mx1.example.test")
    sink = SmtpServer(tmp_path, listen=["127.0.0.2:0"], args=["--tls-cert", str(cert), "--tls-key", str(key)]).start()
    dns = DnsServer(tmp_path, {"records": [MX_A, {"name": "example.test", "type": "MX", "preference": 10,
                                                   "exchange": "mx1.example.test"}]}).start()
    return sink, dns


@pytest.mark.parametrize("mode", ["opportunistic", "required"])
def test_a_failed_tls_handshake_never_sends_in_clear_where_tls_is_required(tmp_path, make_node, mode):
    sink, dns = tls_world(tmp_path)
    try:
        sink.configure(broken_tls=1)
        node = make_node(config(dns, sink), raw_config=TLS_REQUIRED if mode == "required" else "")
        address = f"tls-{mode}@example.test"
        message = submit(node, address)
        assert settle_message(node, message, timeout=30)[address]["status"] == "delivered", history(node, message)
        _, events = history(node, message)
        delivered = events[-1][1]
        (got,) = copies(sink, address)
        if mode == "required":
            # Deferred with the handshake's failure, then sent over TLS: never in clear.
            deferred = deferred_then_delivered(events)
            assert "tls" in (deferred.get("error") or deferred.get("reply") or "").lower(), deferred
            assert delivered["tls"] is True and got["tls"] is True
        else:
            # Opportunistic (RFC 7435): when the handshake fails the same attempt goes on in clear;
            # when the connection is lost with it, the attempt is deferred and the next one tries
            # TLS again. Either way it is delivered, and the event says how.
            types = [t for t, _ in events]
            assert types == ["accepted", "delivered"] or deferred_then_delivered(events), events
            assert delivered["tls"] is got["tls"], (delivered, got)
            if types == ["accepted", "delivered"]:
                assert delivered["tls"] is False
    finally:
        sink.stop()
        dns.stop()


def expired_wrong_name_cert(work):
    """A self-signed certificate for another name that expired a year ago: every check a
    verifying client makes fails."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID
    import datetime
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "wrong.example")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=730)).not_valid_after(now - datetime.timedelta(days=365))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("wrong.example")]), critical=False)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = work / "expired.crt", work / "expired.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


@pytest.mark.parametrize("mode", ["opportunistic", "required"])
def test_certificate_errors_under_the_unverified_tls_modes_still_encrypt(tmp_path, make_node, mode):
    # opportunistic and required encrypt without authenticating the server (RFC 7435; Postfix's
    # "may" and "encrypt"): an expired certificate for another name is used, and the message goes
    # over TLS, never in clear. The verifying modes refuse it: MTA-STS enforce and DANE (their
    # own rows).
    cert, key = expired_wrong_name_cert(tmp_path)
    sink = SmtpServer(tmp_path, listen=["127.0.0.2:0"], args=["--tls-cert", str(cert), "--tls-key", str(key)]).start()
    dns = DnsServer(tmp_path, {"records": [MX_A, {"name": "example.test", "type": "MX", "preference": 10,
                                                   "exchange": "mx1.example.test"}]}).start()
    try:
        node = make_node(config(dns, sink), raw_config=TLS_REQUIRED if mode == "required" else "")
        address = f"badcert-{mode}@example.test"
        message = submit(node, address)
        assert settle_message(node, message, timeout=30)[address]["status"] == "delivered", history(node, message)
        _, events = history(node, message)
        assert [t for t, _ in events] == ["accepted", "delivered"], events
        (got,) = copies(sink, address)
        assert events[-1][1]["tls"] is True and got["tls"] is True, (events, got)
    finally:
        sink.stop()
        dns.stop()
