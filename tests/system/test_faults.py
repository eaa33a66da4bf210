"""Rows of the fault matrix (docs/reliability.md). SMTP: a remote server that fails in each way
once, then works; each test asserts the outcome: the attempt deferred with an event that says
what happened, a retry on schedule, the recipient delivered, and a duplicate only where RFC 5321
4.1.1.4 makes it unavoidable (the reply to the final dot lost). DNS: timeouts, answers that
change, CNAMEs and answers too big for UDP. Store: SQLite locked by another process."""
import os
import sqlite3

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
