"""Self-tests for the fake remote servers in tests/tools (smtp_server.py, dns_server.py and the
servers.py helpers). The system tests trust these tools to tell them what Petrel's SMTP client did,
so here they are checked against independent clients: smtplib, raw sockets and dnslib."""
import sys, pathlib; sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "tools"))  # noqa: E401,E702

import base64
import json
import os
import smtplib
import socket
import ssl
import struct
import time

import pytest
import requests
from dnslib import EDNS0, QTYPE, RCODE, DNSRecord

from servers import DnsServer, SmtpServer, make_self_signed_cert, zone_for

SMTP_HOST = "127.0.0.2"
DEFAULT_RUNTIME_CONFIG = {"greeting": None, "stall_greeting": 0, "require_tls": False,
                          "max_connections": None, "size": 10485760}


def wait_until(predicate, timeout=3.0, interval=0.02):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(interval)
    return True


class RawSmtp:
    """A bare socket SMTP client, for what smtplib will not do: pipelining, bare LF, bad input."""

    def __init__(self, port, host=SMTP_HOST, timeout=5):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.buffer = b""

    def send(self, data):
        self.sock.sendall(data)

    def read_line(self):
        while b"\r\n" not in self.buffer:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("server closed the connection")
            self.buffer += chunk
        line, self.buffer = self.buffer.split(b"\r\n", 1)
        return line.decode()

    def reply(self):
        """(code, [text lines]) of one possibly multi-line reply."""
        lines = []
        while True:
            line = self.read_line()
            lines.append(line[4:])
            if line[3:4] != "-":
                return int(line[:3]), lines

    def replies(self, count):
        return [self.reply() for _ in range(count)]

    def at_eof(self):
        return self.buffer == b"" and self.sock.recv(1) == b""

    def close(self):
        self.sock.close()


def smtp_client(server, timeout=5):
    return smtplib.SMTP(SMTP_HOST, server.port, local_hostname="client.test", timeout=timeout)


def unverified_tls_context():
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


@pytest.fixture(scope="module")
def shared_smtp(tmp_path_factory):
    with SmtpServer(tmp_path_factory.mktemp("smtp")) as server:
        yield server


@pytest.fixture
def smtp(shared_smtp):
    """The shared default server, reset to its command-line configuration for each test."""
    shared_smtp.configure(**DEFAULT_RUNTIME_CONFIG)
    shared_smtp.reset()
    return shared_smtp


@pytest.fixture(scope="module")
def certificate(tmp_path_factory):
    return make_self_signed_cert(tmp_path_factory.mktemp("tls"))


def test_smtplib_delivery_is_recorded(smtp):
    with smtp_client(smtp) as client:
        code, _ = client.ehlo()
        assert code == 250
        assert {"pipelining", "size", "8bitmime", "smtputf8", "enhancedstatuscodes"} <= set(
            client.esmtp_features)
        assert "starttls" not in client.esmtp_features
        assert client.esmtp_features["size"] == "10485760"
        body = b"Subject: hello\r\n\r\n.starts with a dot\r\nbody \xc3\xa9\r\n"
        refused = client.sendmail("from@sender.test", ["to@rcpt.test", "permfail@rcpt.test"],
                                  body, mail_options=["BODY=8BITMIME"])
        assert refused == {"permfail@rcpt.test": (
            550, b"5.1.1 <permfail@rcpt.test>: Recipient address rejected: User unknown")}
        client.sendmail("from@sender.test", ["second@rcpt.test"], b"Subject: 2\r\n\r\nx\r\n")

    first, second = smtp.wait_for_messages(2)
    assert base64.b64decode(first["data_b64"]) == body
    assert first["data"] == body.decode()
    assert first["mail_from"] == "from@sender.test"
    assert first["mail_params"] == {"SIZE": str(len(body)), "BODY": "8BITMIME"}
    assert first["rcpt_to"] == ["to@rcpt.test"]
    assert (first["helo"], first["esmtp"], first["tls"], first["tls_version"]) == (
        "client.test", True, False, None)
    assert (first["bare_lf"], first["bare_cr"]) == (False, False)
    assert first["listen"] == f"{SMTP_HOST}:{smtp.port}"
    assert first["peer"].startswith("127.")
    assert (first["index_in_connection"], second["index_in_connection"]) == (1, 2)
    assert first["connection"] == second["connection"]
    assert second["id"] == first["id"] + 1

    assert wait_until(lambda: smtp.stats()["current_connections"] == 0)
    stats = smtp.stats()
    assert stats["messages_total"] == 2
    assert stats["quit_count"] == 1
    assert stats["connections_total"] == 1
    assert stats["commands_total"] == 9   # EHLO, MAIL, RCPT x2, DATA, MAIL, RCPT, DATA, QUIT
    (record,) = stats["connections"]
    assert record["messages"] == 2 and record["closed_at"] >= record["opened_at"]
    assert record["commands"][0] == "ehlo client.test" and record["commands"][-1] == "QUIT"


def test_starttls_and_require_tls(tmp_path, certificate):
    cert, key = certificate
    with SmtpServer(tmp_path, args=["--tls-cert", cert, "--tls-key", key, "--require-tls"]) \
            as server, smtp_client(server) as client:
        client.ehlo()
        assert client.has_extn("starttls")
        assert client.mail("from@sender.test") == (
            530, b"5.7.0 Must issue a STARTTLS command first")
        assert client.starttls(context=unverified_tls_context())[0] == 220
        client.ehlo()
        assert not client.has_extn("starttls")
        client.sendmail("from@sender.test", ["to@rcpt.test"], b"Subject: tls\r\n\r\nsecret\r\n")
        (message,) = server.wait_for_messages(1)
        assert message["tls"] is True
        assert message["tls_version"] in ("TLSv1.2", "TLSv1.3")
        assert server.stats()["connections"][0]["tls"] is True

    with SmtpServer(tmp_path, args=["--tls-cert", cert, "--tls-key", key, "--no-starttls"]) \
            as server, smtp_client(server) as client:
        client.ehlo()
        assert not client.has_extn("starttls")


def test_recipient_rules(smtp):
    with smtp_client(smtp) as client:
        client.ehlo()
        client.mail("from@sender.test")
        assert client.rcpt("TempFail-user@rcpt.test") == (
            451, b"4.3.0 Temporary failure, try again later")
        assert client.rcpt("permfail@rcpt.test")[0] == 550
        assert client.rcpt("ok@rcpt.test") == (250, b"2.1.5 Ok")
        assert client.data(b"Subject: ok\r\n\r\nx\r\n")[0] == 250

        for recipients, expected in [
                (["datafail@rcpt.test"], (554, b"5.6.0 Message rejected")),
                (["datatemp@rcpt.test"], (451, b"4.3.0 Try again later")),
                (["ok@rcpt.test", "datatemp@rcpt.test", "datafail@rcpt.test"], (554, None)),
                (["datatemp@rcpt.test", "ok@rcpt.test"], (451, None))]:
            client.mail("from@sender.test")
            for recipient in recipients:
                assert client.rcpt(recipient)[0] == 250
            code, text = client.data(b"Subject: rejected\r\n\r\nx\r\n")
            assert code == expected[0] and (expected[1] is None or text == expected[1])

        # DATA with no accepted recipient is refused before the body.
        client.mail("from@sender.test")
        client.rcpt("permfail@rcpt.test")
        with pytest.raises(smtplib.SMTPDataError) as refused:
            client.data(b"x\r\n")
        assert refused.value.smtp_code == 554

    # tempfail-N counts attempts of the exact address across connections.
    codes = []
    for _ in range(3):
        with smtp_client(smtp) as client:
            client.ehlo()
            client.mail("from@sender.test")
            codes.append(client.rcpt("tempfail-2-bob@rcpt.test")[0])
    assert codes == [451, 451, 250]
    assert [m["rcpt_to"] for m in smtp.messages()] == [["ok@rcpt.test"]]

    smtp.reset()
    with smtp_client(smtp) as client:
        client.ehlo()
        client.mail("from@sender.test")
        assert client.rcpt("tempfail-2-bob@rcpt.test")[0] == 451


def test_drop_and_stall_rules(smtp):
    with smtp_client(smtp) as client:
        client.ehlo()
        client.mail("from@sender.test")
        with pytest.raises(smtplib.SMTPServerDisconnected):
            client.rcpt("drop-rcpt@rcpt.test")

    with smtp_client(smtp) as client:
        client.ehlo()
        client.mail("from@sender.test")
        client.rcpt("ok@rcpt.test")
        client.rcpt("drop-data@rcpt.test")
        client.rcpt("datafail@rcpt.test")
        with pytest.raises(smtplib.SMTPServerDisconnected):
            client.data(b"Subject: dropped\r\n\r\nx\r\n")

    client = RawSmtp(smtp.port, timeout=0.5)
    try:
        client.reply()
        client.send(b"EHLO raw.test\r\nMAIL FROM:<a@x.test>\r\nRCPT TO:<stall-data@x.test>\r\n"
                    b"DATA\r\n")
        client.replies(4)
        client.send(b"Subject: stalled\r\n\r\nx\r\n.\r\n")
        with pytest.raises(socket.timeout):
            client.reply()
        assert smtp.stats()["current_connections"] == 1
    finally:
        client.close()
    # The stalled session must notice the close instead of sleeping on.
    assert wait_until(lambda: smtp.stats()["current_connections"] == 0)
    # The dropped one was received whole, its reply lost (RFC 5321 4.1.1.4): recorded as such.
    got = smtp.messages()
    assert [(m["reply_lost"], "dropped" in m["data"]) for m in got] == [(True, True)], got


def test_pipelining_dot_unstuffing_and_bare_line_endings(smtp):
    client = RawSmtp(smtp.port)
    try:
        assert client.reply()[0] == 220
        client.send(b"EHLO raw.test\r\nMAIL FROM:<from@sender.test>\r\nRCPT TO:<a@rcpt.test>\r\n"
                    b"RCPT TO:<permfail@rcpt.test>\r\nRCPT TO:<b@rcpt.test>\r\nDATA\r\n")
        codes = [code for code, _ in client.replies(6)]
        assert codes == [250, 250, 250, 550, 250, 354]
        client.send(b"Subject: raw\r\n\r\n..leading dot\r\nbare\nlf\r\nbare\rcr\r\n.\r\nQUIT\r\n")
        code, text = client.reply()
        assert code == 250 and text[0].startswith("2.0.0 Ok: queued as ")
        assert client.reply()[0] == 221
    finally:
        client.close()

    (message,) = smtp.wait_for_messages(1)
    assert base64.b64decode(message["data_b64"]) == (
        b"Subject: raw\r\n\r\n.leading dot\r\nbare\nlf\r\nbare\rcr\r\n")
    assert (message["bare_lf"], message["bare_cr"]) == (True, True)
    assert message["rcpt_to"] == ["a@rcpt.test", "b@rcpt.test"]
    assert message["helo"] == "raw.test"
    assert smtp.stats()["connections"][0]["max_pipelined_commands"] >= 2


def test_bare_lf_dot_does_not_end_data(smtp):
    """An SMTP smuggling attempt stays inside the one message, flagged as bare LF."""
    client = RawSmtp(smtp.port)
    try:
        client.reply()
        client.send(b"EHLO raw.test\r\nMAIL FROM:<from@sender.test>\r\nRCPT TO:<a@rcpt.test>\r\n"
                    b"DATA\r\n")
        assert [code for code, _ in client.replies(4)] == [250, 250, 250, 354]
        smuggled = b"Subject: s\r\n\r\nbefore\n.\nMAIL FROM:<evil@x.test>\r\nafter\r\n"
        client.send(smuggled + b".\r\n")
        assert client.reply()[0] == 250
    finally:
        client.close()
    (message,) = smtp.wait_for_messages(1)
    assert base64.b64decode(message["data_b64"]) == smuggled
    assert message["bare_lf"] is True and message["bare_cr"] is False


def test_protocol_errors(smtp):
    client = RawSmtp(smtp.port)
    try:
        client.reply()
        client.send(b"MAIL FROM:<a@x.test>\r\nHELO raw.test\r\nRCPT TO:<b@x.test>\r\nFOO\r\n"
                    b"NOOP " + b"x" * 5000 + b"\r\nNOOP\r\nRSET\r\nMAIL FROM:<a@x.test> SIZE=x\r\n"
                    b"MAIL FROM:<a@x.test> BODY=8BITMIME\r\n")
        assert client.replies(9) == [
            (503, ["5.5.1 Error: send HELO/EHLO first"]),
            (250, ["mx.test"]),
            (503, ["5.5.1 Bad sequence of commands"]),
            (500, ["5.5.2 Syntax error"]),
            (500, ["5.5.2 Line too long"]),
            (250, ["2.0.0 Ok"]),
            (250, ["2.0.0 Ok"]),
            (555, ["5.5.4 Unsupported option: SIZE=x"]),   # no ESMTP parameters after HELO
            (555, ["5.5.4 Unsupported option: BODY=8BITMIME"]),
        ]
    finally:
        client.close()


def test_size_limit(smtp):
    smtp.configure(size=100)
    with smtp_client(smtp) as client:
        client.ehlo()
        assert client.esmtp_features["size"] == "100"
        assert client.mail("from@sender.test", ["SIZE=101"]) == (
            552, b"5.3.4 Message size exceeds fixed maximum message size")
        assert client.mail("from@sender.test", ["SIZE=50"])[0] == 250
        client.rcpt("to@rcpt.test")
        assert client.data(b"x" * 200 + b"\r\n")[0] == 552
        client.mail("from@sender.test")
        client.rcpt("to@rcpt.test")
        assert client.data(b"y" * 10000 + b"\r\n")[0] == 552   # one line beyond any limit
        client.mail("from@sender.test")
        client.rcpt("to@rcpt.test")
        assert client.data(b"x" * 20 + b"\r\n")[0] == 250
    assert len(smtp.messages()) == 1


def test_helo_fallback_and_disabled_extensions(tmp_path):
    with SmtpServer(tmp_path, args=["--no-ehlo"]) as server:
        with smtp_client(server) as client:
            assert client.ehlo() == (502, b"5.5.1 EHLO not supported")
        with smtp_client(server) as client:
            # smtplib tries EHLO and falls back to HELO on its own.
            client.sendmail("from@sender.test", ["to@rcpt.test"], b"Subject: helo\r\n\r\nx\r\n")
        (message,) = server.wait_for_messages(1)
        assert (message["helo"], message["esmtp"], message["mail_params"]) == (
            "client.test", False, {})
        assert server.stats()["connections"][1]["commands"][:2] == [
            "ehlo client.test", "helo client.test"]

    with SmtpServer(tmp_path, args=["--no-pipelining", "--no-8bitmime", "--no-smtputf8",
                                    "--hostname", "other.test", "--size", "1234"]) as server, \
            smtp_client(server) as client:
        code, text = client.ehlo()
        assert text.split(b"\n") == [b"other.test", b"SIZE 1234", b"ENHANCEDSTATUSCODES"]
        assert client.mail("from@sender.test", ["BODY=8BITMIME"])[0] == 555


def test_greeting_and_stall_greeting(smtp):
    smtp.configure(greeting="421 4.3.2 Service not available")
    with pytest.raises(smtplib.SMTPConnectError) as refused:
        smtp_client(smtp)
    assert refused.value.smtp_code == 421

    smtp.configure(greeting=None, stall_greeting=0.4)
    started = time.monotonic()
    with smtp_client(smtp) as client:
        assert time.monotonic() - started >= 0.35
        assert client.noop()[0] == 250


def test_connection_limits_and_concurrency(tmp_path):
    with SmtpServer(tmp_path, listen=["127.0.0.2:0", "127.0.0.3:0"],
                    args=["--max-connections", "2"]) as server:
        first_port, second_port = server.ports
        assert server.addresses == [f"127.0.0.2:{first_port}", f"127.0.0.3:{second_port}"]
        clients = [RawSmtp(first_port), RawSmtp(first_port)]
        try:
            assert [client.reply()[0] for client in clients] == [220, 220]
            extra = RawSmtp(second_port, host="127.0.0.3")
            assert extra.reply() == (421, ["4.7.0 Too many connections, try again later"])
            assert extra.at_eof()
            extra.close()
            stats = server.stats()
            assert stats["max_concurrent_connections"] == 3
            assert stats["connections_total"] == 3
            assert sum(stats["connections_per_peer"].values()) == 3
            per_listen = stats["per_listen"]
            assert per_listen[f"127.0.0.2:{first_port}"]["max_concurrent_connections"] == 2
            assert per_listen[f"127.0.0.3:{second_port}"]["connections_total"] == 1

            clients.pop().close()
            assert wait_until(lambda: server.stats()["current_connections"] == 1)
            clients.append(RawSmtp(second_port, host="127.0.0.3"))
            assert clients[-1].reply()[0] == 220
        finally:
            for client in clients:
                client.close()


def test_control_interface(smtp):
    assert requests.get(smtp.control_url + "/nothing", timeout=5).status_code == 404
    for bad in ({"bogus": 1}, {"size": "big"}, {"require_tls": 1}, [1]):
        assert requests.post(smtp.control_url + "/config", json=bad, timeout=5).status_code == 400
    assert smtp.configure(max_connections=5)["config"]["max_connections"] == 5

    with smtp_client(smtp) as client:
        client.sendmail("from@sender.test", ["to@rcpt.test"], b"Subject: x\r\n\r\nx\r\n")
    smtp.wait_for_messages(1)
    smtp.reset()
    assert smtp.messages() == []
    stats = smtp.stats()
    assert (stats["messages_total"], stats["connections_total"], stats["connections"]) == (0, 0, [])
    with pytest.raises(TimeoutError):
        smtp.wait_for_messages(1, timeout=0.2)


def test_sigterm_stops_promptly_despite_stalled_connection(tmp_path):
    server = SmtpServer(tmp_path).start()
    client = RawSmtp(server.port)
    try:
        client.reply()
        client.send(b"EHLO raw.test\r\nMAIL FROM:<a@x.test>\r\nRCPT TO:<stall-data@x.test>\r\n"
                    b"DATA\r\n")
        client.replies(4)
        client.send(b"Subject: stall\r\n\r\nx\r\n.\r\n")
        assert wait_until(lambda: server.stats()["commands_total"] == 4)
        started = time.monotonic()
        assert server.stop() == 0
        assert time.monotonic() - started < 3
    finally:
        client.close()
        server.stop()


# ---------------------------------------------------------------- DNS

ZONE = {
    "records": [
        {"name": "example.test", "type": "MX", "preference": 10, "exchange": "mx1.example.test",
         "ttl": 300},
        {"name": "example.test", "type": "MX", "preference": 20, "exchange": "mx2.example.test"},
        {"name": "mx1.example.test", "type": "A", "address": "127.0.0.2", "ttl": 120},
        {"name": "v6.example.test", "type": "AAAA", "address": "::1"},
        {"name": "txt.example.test", "type": "TXT", "text": "v=spf1 -all"},
        {"name": "alias.example.test", "type": "CNAME", "target": "example.test"},
        {"name": "dangling.example.test", "type": "CNAME", "target": "gone.example.test"},
        {"name": "nullmx.test", "type": "MX", "preference": 0, "exchange": "."},
        {"name": "a.b.deep.test", "type": "A", "address": "127.0.0.4"},
    ],
    "servfail": ["broken.test"],
    "timeout": ["slow.test"],
    "refused": ["refused.test"],
}


def query(server, name, qtype, tcp=False, timeout=2):
    packet = DNSRecord.question(name, qtype).send("127.0.0.1", server.port, tcp=tcp,
                                                   timeout=timeout)
    return DNSRecord.parse(packet)


def answers(reply):
    return [(QTYPE[rr.rtype], str(rr.rname), rr.ttl, str(rr.rdata)) for rr in reply.rr]


def assert_negative(reply, rcode):
    assert reply.header.rcode == rcode
    assert reply.rr == []
    (soa,) = reply.auth
    assert (QTYPE[soa.rtype], str(soa.rname), soa.ttl) == ("SOA", "test.", 60)
    assert str(soa.rdata.mname) == "ns.test." and soa.rdata.times[-1] == 60


@pytest.fixture(scope="module")
def dns(tmp_path_factory):
    with DnsServer(tmp_path_factory.mktemp("dns"), ZONE) as server:
        yield server


@pytest.mark.parametrize("tcp", [False, True], ids=["udp", "tcp"])
def test_dns_positive_answers(dns, tcp):
    reply = query(dns, "Example.TEST", "MX", tcp)
    assert reply.header.rcode == RCODE.NOERROR and reply.header.aa
    assert answers(reply) == [("MX", "Example.TEST.", 300, "10 mx1.example.test."),
                              ("MX", "Example.TEST.", 300, "20 mx2.example.test.")]
    assert answers(query(dns, "nullmx.test", "MX", tcp)) == [("MX", "nullmx.test.", 300, "0 .")]
    assert answers(query(dns, "mx1.example.test", "A", tcp)) == [
        ("A", "mx1.example.test.", 120, "127.0.0.2")]
    assert answers(query(dns, "v6.example.test", "AAAA", tcp)) == [
        ("AAAA", "v6.example.test.", 300, "::1")]
    assert answers(query(dns, "txt.example.test", "TXT", tcp)) == [
        ("TXT", "txt.example.test.", 300, '"v=spf1 -all"')]
    assert answers(query(dns, "alias.example.test", "MX", tcp)) == [
        ("CNAME", "alias.example.test.", 300, "example.test."),
        ("MX", "example.test.", 300, "10 mx1.example.test."),
        ("MX", "example.test.", 300, "20 mx2.example.test.")]
    assert answers(query(dns, "alias.example.test", "CNAME", tcp)) == [
        ("CNAME", "alias.example.test.", 300, "example.test.")]


@pytest.mark.parametrize("tcp", [False, True], ids=["udp", "tcp"])
def test_dns_negative_answers(dns, tcp):
    assert_negative(query(dns, "example.test", "A", tcp), RCODE.NOERROR)
    assert_negative(query(dns, "missing.example.test", "MX", tcp), RCODE.NXDOMAIN)
    # An empty non-terminal (records below it, none at it) exists: NODATA, not NXDOMAIN.
    assert_negative(query(dns, "deep.test", "MX", tcp), RCODE.NOERROR)
    dangling = query(dns, "dangling.example.test", "A", tcp)
    assert dangling.header.rcode == RCODE.NXDOMAIN
    assert answers(dangling) == [("CNAME", "dangling.example.test.", 300, "gone.example.test.")]
    for name in ("broken.test", "deep.sub.BROKEN.test"):
        assert query(dns, name, "MX", tcp).header.rcode == RCODE.SERVFAIL
    assert query(dns, "refused.test", "A", tcp).header.rcode == RCODE.REFUSED
    assert query(dns, "notbroken.test", "A", tcp).header.rcode == RCODE.NXDOMAIN


def test_dns_tcp_connection_carries_several_queries_and_edns_is_echoed(dns):
    first = DNSRecord.question("example.test", "MX")
    first.add_ar(EDNS0(udp_len=1232))
    second = DNSRecord.question("mx1.example.test", "A")
    with socket.create_connection(("127.0.0.1", dns.port), timeout=2) as sock:
        sock.sendall(b"".join(struct.pack("!H", len(packet)) + packet
                              for packet in (first.pack(), second.pack())))
        stream = sock.makefile("rb")
        replies = []
        for _ in range(2):
            (length,) = struct.unpack("!H", stream.read(2))
            replies.append(DNSRecord.parse(stream.read(length)))
    assert [reply.header.id for reply in replies] == [first.header.id, second.header.id]
    assert [QTYPE[rr.rtype] for rr in replies[0].ar] == ["OPT"]
    assert replies[1].ar == []
    assert answers(replies[1]) == [("A", "mx1.example.test.", 120, "127.0.0.2")]


@pytest.mark.parametrize("tcp", [False, True], ids=["udp", "tcp"])
def test_dns_timeout(dns, tcp):
    with pytest.raises(socket.timeout):
        query(dns, "mx.slow.test", "A", tcp, timeout=0.3)


def test_dns_zone_replacement_and_stats(tmp_path):
    with DnsServer(tmp_path, ZONE) as server:
        query(server, "example.test", "MX")
        query(server, "EXAMPLE.test", "MX", tcp=True)
        query(server, "mx1.example.test", "A")
        with pytest.raises(socket.timeout):
            query(server, "slow.test", "MX", timeout=0.2)
        stats = server.stats()
        assert stats["queries"] == {"example.test/MX": 2, "mx1.example.test/A": 1,
                                    "slow.test/MX": 1}
        assert stats["total"] == 4

        server.set_zone(zone_for({"example.test": [("mx9.example.test", 5, "127.0.0.9")]}))
        assert answers(query(server, "example.test", "MX")) == [
            ("MX", "example.test.", 300, "5 mx9.example.test.")]
        assert_negative(query(server, "mx1.example.test", "A"), RCODE.NXDOMAIN)
        assert query(server, "slow.test", "MX").header.rcode == RCODE.NXDOMAIN

        response = requests.post(server.control_url + "/zone", timeout=5,
                                 json={"records": [{"name": "x.test", "type": "A",
                                                    "address": "not-an-ip"}]})
        assert response.status_code == 400
        assert len(query(server, "example.test", "MX").rr) == 1

        server.reset()
        assert server.stats() == {"queries": {}, "total": 0, "by_transport": {"udp": 0, "tcp": 0}}
        assert requests.get(server.control_url + "/nothing", timeout=5).status_code == 404


def test_dns_zone_file_is_reloaded(tmp_path):
    with DnsServer(tmp_path, ZONE) as server:
        new_zone = {"records": [{"name": "fresh.test", "type": "A", "address": "127.0.0.5"}]}
        server.zone_path.write_text(json.dumps(new_zone))
        # Make the change visible even on filesystems with coarse timestamps.
        later = time.time() + 5
        os.utime(server.zone_path, (later, later))
        assert wait_until(lambda: query(server, "fresh.test", "A").rr, timeout=4)
        assert query(server, "example.test", "MX").header.rcode == RCODE.NXDOMAIN
        assert server.stop() == 0


def test_zone_for_builds_mx_and_address_records():
    zone = zone_for({"example.test": [("mx1.example.test", 10, "127.0.0.2"),
                                      ("mx2.example.test", 20, "::1")],
                     "other.test": [("mx1.example.test", 5, "127.0.0.2")]})
    assert zone == {"records": [
        {"name": "example.test", "type": "MX", "preference": 10, "exchange": "mx1.example.test"},
        {"name": "mx1.example.test", "type": "A", "address": "127.0.0.2"},
        {"name": "example.test", "type": "MX", "preference": 20, "exchange": "mx2.example.test"},
        {"name": "mx2.example.test", "type": "AAAA", "address": "::1"},
        {"name": "other.test", "type": "MX", "preference": 5, "exchange": "mx1.example.test"},
    ]}
