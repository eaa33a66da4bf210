"""SMTP submission for applications (docs/api.md, "SMTP submission"): STARTTLS on the submission
port and TLS from the first byte on the other, AUTH PLAIN and LOGIN with an API key, never an
open relay, the same limits and delivery as the HTTP API. Driven with Python's smtplib and
swaks over real TLS, with a certificate made for the test."""
import base64
import re
import smtplib
import socket
import ssl
import subprocess

import pytest

from conftest import delivery_config, settle_message, wait_for  # noqa: E402
from servers import make_self_signed_cert  # noqa: E402

LISTENING = re.compile(r"smtp\.listening listener=(submission|submission_tls) address=[^ ]+:(\d+)")


@pytest.fixture
def snode(make_node, mx_world, tmp_path):
    sink, dns = mx_world
    cert, key = make_self_signed_cert(tmp_path / "tls", hostname="submit.test")
    n = make_node(delivery_config(dns.port, sink.port, **{
        "submission_smtp.listen": '"127.0.0.1:0"',
        "submission_smtp.tls_listen": '"127.0.0.1:0"',
        "submission_smtp.tls_cert_file": f'"{cert}"',
        "submission_smtp.tls_key_file": f'"{key}"',
        "submission_smtp.max_auth_failures": "3",
        "submission.max_recipients": "5",
        "submission.max_message_bytes": '"64KiB"'}))

    def ports():
        found = dict(m.groups() for line in list(n.stderr_lines) if (m := LISTENING.search(line)))
        return found if len(found) == 2 else None
    found = wait_for(ports, what="both submission listeners")
    n.smtp_port, n.smtps_port = int(found["submission"]), int(found["submission_tls"])
    n.cert = cert
    return n


def tls_context(node):
    ctx = ssl.create_default_context(cafile=node.cert)
    ctx.check_hostname = False  # the certificate names submit.test; the test connects to 127.0.0.1
    return ctx


MESSAGE = ("From: App <app@example.com>\r\nTo: someone@example.test\r\nSubject: over SMTP\r\n"
           "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
           "Grüße über SMTP.\r\n.leading dot\r\n")


def message_id_of(reply):
    m = re.search(r"queued as ([0-9A-Z]{26})", reply.decode() if isinstance(reply, bytes) else reply)
    assert m, reply
    return m.group(1)


def test_starttls_then_auth_then_the_message_is_delivered(snode, mx_world):
    sink, _ = mx_world
    with smtplib.SMTP("127.0.0.1", snode.smtp_port, timeout=30) as smtp:
        smtp.ehlo("client.test")
        assert smtp.has_extn("starttls") and not smtp.has_extn("auth")  # no AUTH in clear
        assert smtp.docmd("AUTH", "PLAIN " + base64.b64encode(f"\0u\0{snode.key}".encode()).decode())[0] == 538
        assert smtp.docmd("MAIL", "FROM:<app@example.com>")[0] == 530  # never a relay without AUTH
        smtp.starttls(context=tls_context(snode))
        smtp.ehlo("client.test")
        assert "PLAIN" in smtp.esmtp_features["auth"] and "LOGIN" in smtp.esmtp_features["auth"]
        assert smtp.has_extn("pipelining") and smtp.has_extn("smtputf8") and smtp.has_extn("8bitmime")
        smtp.login("anything", snode.key)  # smtplib picks PLAIN
        smtp.mail("app@example.com", ["BODY=8BITMIME"])
        smtp.rcpt("someone@example.test")
        code, reply = smtp.data(MESSAGE.encode())
        assert code == 250, reply
    message_id = message_id_of(reply)
    recipients = settle_message(snode, message_id)
    assert recipients["someone@example.test"]["status"] == "delivered"
    (got,) = sink.messages()
    data = base64.b64decode(got["data_b64"])
    assert "Grüße über SMTP.".encode() in data and b"\r\n.leading dot\r\n" not in data.split(b"\r\n\r\n", 1)[0]
    assert b"Message-ID: <" in data and b"Date: " in data  # added, as for a raw submission


def test_implicit_tls_and_auth_login(snode):
    with smtplib.SMTP_SSL("127.0.0.1", snode.smtps_port, timeout=30, context=tls_context(snode)) as smtp:
        smtp.ehlo("client.test")
        assert not smtp.has_extn("starttls")
        code, _ = smtp.docmd("AUTH", "LOGIN")
        assert code == 334
        assert smtp.docmd(base64.b64encode(b"user").decode())[0] == 334
        assert smtp.docmd(base64.b64encode(snode.key.encode()).decode())[0] == 235
        smtp.mail("app@example.com")
        smtp.rcpt("tls@example.test")
        code, reply = smtp.data(MESSAGE.replace("someone@", "tls@").encode())
        assert code == 250
    settle_message(snode, message_id_of(reply))


def test_wrong_keys_are_refused_and_then_the_address_is(snode):
    ctx = tls_context(snode)
    with smtplib.SMTP("127.0.0.1", snode.smtp_port, timeout=30) as smtp:
        smtp.starttls(context=ctx)
        smtp.ehlo("client.test")
        wrong = base64.b64encode(b"\0x\0pk_" + b"0" * 40).decode()
        for attempt in range(3):
            code, text = smtp.docmd("AUTH", "PLAIN " + wrong)
            assert code == 535, text
        # The fourth attempt from this address within the minute: refused, closed.
        code, text = smtp.docmd("AUTH", "PLAIN " + base64.b64encode(f"\0u\0{snode.key}".encode()).decode())
        assert code == 421, text
    with smtplib.SMTP("127.0.0.1", snode.smtp_port, timeout=30) as smtp:
        smtp.starttls(context=ctx)
        smtp.ehlo("client.test")
        with pytest.raises(smtplib.SMTPException):
            smtp.login("x", snode.key)  # even the right key, until the minute is over


def test_limits_and_bad_messages_get_smtp_errors(snode, mx_world):
    with smtplib.SMTP("127.0.0.1", snode.smtp_port, timeout=30) as smtp:
        smtp.starttls(context=tls_context(snode))
        smtp.login("x", snode.key)
        smtp.mail("app@example.com")
        for i in range(5):
            assert smtp.rcpt(f"r{i}@example.test")[0] == 250
        assert smtp.rcpt("r5@example.test")[0] == 452  # submission.max_recipients
        smtp.rset()
        # No From header: refused with the reason, nothing stored.
        smtp.mail("app@example.com")
        smtp.rcpt("nofrom@example.test")
        code, text = smtp.data(b"Subject: no from\r\n\r\nbody\r\n")
        assert code == 550 and b"From" in text, text
        # Too big.
        smtp.mail("app@example.com")
        smtp.rcpt("big@example.test")
        code, _ = smtp.data(b"From: a@example.com\r\n\r\n" + b"x" * 70_000 + b"\r\n")
        assert code == 552
        # The null sender cannot submit.
        smtp.mail("")
        smtp.rcpt("null@example.test")
        code, text = smtp.data(MESSAGE.encode())
        assert code == 550 and b"sender" in text
    assert int(snode.sql("SELECT COUNT(*) FROM messages")[0][0]) == 0


def test_a_suspended_tenant_and_a_rate_limit_answer_like_the_api(snode):
    _, slow_key = snode.create_tenant("slow", rate="1/m", burst=1)
    with smtplib.SMTP("127.0.0.1", snode.smtp_port, timeout=30) as smtp:
        smtp.starttls(context=tls_context(snode))
        smtp.login("x", slow_key)
        codes = []
        for i in range(2):
            smtp.mail("app@example.com")
            smtp.rcpt(f"s{i}@example.test")
            codes.append(smtp.data(MESSAGE.encode())[0])
        assert codes == [250, 451]
    assert snode.admin("PATCH", "/admin/tenants/slow", json={"suspended": True}).status_code == 200
    with smtplib.SMTP("127.0.0.1", snode.smtp_port, timeout=30) as smtp:
        smtp.starttls(context=tls_context(snode))
        smtp.login("x", slow_key)
        smtp.mail("app@example.com")
        smtp.rcpt("s9@example.test")
        code, text = smtp.data(MESSAGE.encode())
        assert code == 550 and b"5.7.1" in text, text  # the API's 403, as a permanent refusal


def test_starttls_injection_and_bare_line_feeds_are_harmless(snode, mx_world):
    sink, _ = mx_world
    raw = socket.create_connection(("127.0.0.1", snode.smtp_port), timeout=30)
    try:
        f = raw.makefile("rb")
        assert f.readline().startswith(b"220")
        raw.sendall(b"EHLO x\r\n")
        while not f.readline().startswith(b"250 "):
            pass
        # Commands pipelined after STARTTLS in clear must not be run inside TLS.
        raw.sendall(b"STARTTLS\r\nMAIL FROM:<evil@example.com>\r\n")
        assert f.readline().startswith(b"220")
        tls = tls_context(snode).wrap_socket(raw, server_hostname="submit.test")
        tf = tls.makefile("rb")
        tls.sendall(b"RCPT TO:<x@example.test>\r\n")
        assert tf.readline().startswith(b"503")  # no MAIL was taken over
        tls.sendall(b"EHLO x\r\n")
        while not tf.readline().startswith(b"250 "):
            pass
        tls.sendall(b"AUTH PLAIN " + base64.b64encode(f"\0u\0{snode.key}".encode()) + b"\r\n")
        assert tf.readline().startswith(b"235")
        # A bare LF before a dot does not end the data: "\n.\n" is text, only CRLF.CRLF ends it.
        tls.sendall(b"MAIL FROM:<app@example.com>\r\nRCPT TO:<lf@example.test>\r\nDATA\r\n")
        assert tf.readline().startswith(b"250") and tf.readline().startswith(b"250")
        assert tf.readline().startswith(b"354")
        tls.sendall(b"From: app@example.com\r\nSubject: lf\r\n\r\nline one\n.\nMAIL FROM:<smuggled@example.com>\n"
                    b"line two\r\n.\r\n")
        reply = tf.readline()
        assert reply.startswith(b"250"), reply
        tls.sendall(b"QUIT\r\n")
    finally:
        raw.close()
    settle_message(snode, message_id_of(reply))
    (got,) = [m for m in sink.messages() if m["rcpt_to"] == ["lf@example.test"]]
    data = base64.b64decode(got["data_b64"])
    assert b"MAIL FROM:<smuggled@example.com>\r\n" in data  # text of the one message, CRLF now
    assert b"\n.\n" not in data


def test_swaks_with_pipelining_over_starttls(snode):
    result = subprocess.run(
        ["swaks", "--server", "127.0.0.1", "--port", str(snode.smtp_port), "--tls", "--pipeline",
         "--auth", "PLAIN", "--auth-user", "app", "--auth-password", snode.key,
         "--from", "app@example.com", "--to", "swaks@example.test", "--header", "Subject: from swaks",
         "--body", "Hello from swaks."],
        capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    settle_message(snode, message_id_of(result.stdout))


def test_a_missing_or_mismatched_certificate_stops_the_start_with_the_reason(make_node, mx_world, tmp_path):
    sink, dns = mx_world
    cert, key = make_self_signed_cert(tmp_path / "a", hostname="a.test")
    _, other_key = make_self_signed_cert(tmp_path / "b", hostname="b.test")
    for cert_file, key_file, words in ((str(tmp_path / "nope.crt"), key, "tls_cert_file"),
                                       (cert, other_key, "tls_key_file")):
        node = make_node(delivery_config(dns.port, sink.port, **{
            "submission_smtp.listen": '"127.0.0.1:0"',
            "submission_smtp.tls_cert_file": f'"{cert_file}"',
            "submission_smtp.tls_key_file": f'"{key_file}"'}), start=False)
        with pytest.raises(RuntimeError):
            node.start(timeout=10)
        assert node.proc.wait(timeout=10) == 1
        assert "petrel.start_failed" in node.log() and words in node.log(), node.log()


def test_an_internationalized_address_over_smtputf8(snode):
    with smtplib.SMTP("127.0.0.1", snode.smtp_port, timeout=30) as smtp:
        smtp.starttls(context=tls_context(snode))
        smtp.login("x", snode.key)
        message = MESSAGE.replace("someone@example.test", "jürgen@example.test").encode()
        smtp.mail("app@example.com", ["SMTPUTF8", "BODY=8BITMIME"])
        assert smtp.rcpt("jürgen@example.test")[0] == 250
        code, reply = smtp.data(message)
        assert code == 250, reply
    recipients = wait_for(lambda: (lambda r: r if r.status_code == 200 else None)(
        snode.get_message(snode.key, message_id_of(reply))), what="the message").json()["recipients"]
    assert [r["email"] for r in recipients] == ["jürgen@example.test"]
