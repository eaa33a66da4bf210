"""Bounces, complaints and suppressions end to end: the real petrel binary delivering to a
scripted SMTP server, with its inbound SMTP listener for bounces and feedback reports, driven
through the HTTP API and real SMTP clients (smtplib)."""
import base64
import email
import email.policy
import re
import smtplib
import time
import urllib.parse

import pytest
import requests


from conftest import delivery_config, one_mx_world, recipients_of, settle_message, submit_ok, wait_for  # noqa: E402

VERP_DOMAIN = "bounces.petrel.test"
FBL_ADDRESS = "fbl@fbl.petrel.test"
BOUNCE_LISTENING = re.compile(r"smtp\.listening listener=bounces address=[^ ]+:(\d+)")


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    work = tmp_path_factory.mktemp("bounce-world")
    sink, dns = one_mx_world(work)
    secret = work / "bounce.secret"
    secret.write_text("0123456789abcdef0123456789abcdef-test-secret\n")
    yield {"sink": sink, "dns": dns, "port": sink.port, "secret": secret}
    sink.stop()
    dns.stop()


def config(world, **overrides):
    overrides = {
        "delivery.max_age": '"1h"',
        "delivery.idle_timeout": '"1s"',
        "bounces.verp_domain": f'"{VERP_DOMAIN}"',
        "bounces.secret_file": f'"{world["secret"]}"',
        "bounces.listen": '"127.0.0.1:0"',
        "bounces.accept_domains": '["fbl.petrel.test"]',
        "bounces.max_message_bytes": '"64KiB"',
        "bounces.unsubscribe_base_url": '"https://mail.petrel.test"',
        "bounces.soft_bounce_streak": "2",
        **overrides,
    }
    return delivery_config(world["dns"].port, world["port"], **overrides)


@pytest.fixture
def node(make_node, world):
    n = make_node(config(world))
    port = wait_for(lambda: next((int(m.group(1)) for line in list(n.stderr_lines)
                                  if (m := BOUNCE_LISTENING.search(line))), None),
                    what="the bounce listener")
    n.bounce_port = port
    return n


submit = submit_ok
recipients = recipients_of
settle = settle_message


def delivered_copy(world, rcpt):
    """The copy the sink received for rcpt (waits for it)."""
    found = wait_for(lambda: [m for m in world["sink"].messages() if rcpt in m["rcpt_to"]],
                     what=f"delivery to {rcpt}")
    return found[-1]


def suppression(node, address):
    r = node.session.get(node.url("/v1/suppressions/" + urllib.parse.quote(address)),
                         headers={"Authorization": f"Bearer {node.key}"}, timeout=10)
    return r.json() if r.status_code == 200 else None


def multipart_report(headers: str, report_type: str, human: str, report: str, original: bytes) -> bytes:
    """A multipart/report (RFC 6522): the human-readable part, the report, and the returned
    message's header fields."""
    headers_only = original.split(b"\r\n\r\n", 1)[0].decode("utf-8", "replace")
    boundary = f"{report_type}-boundary-42"
    return (
        f"{headers}MIME-Version: 1.0\r\n"
        f'Content-Type: multipart/report; report-type={report_type}; boundary="{boundary}"\r\n'
        "\r\n"
        f"--{boundary}\r\n"
        f"Content-Type: text/plain\r\n\r\n{human}\r\n\r\n"
        f"--{boundary}\r\n"
        f"Content-Type: message/{report_type}\r\n\r\n{report}\r\n"
        f"--{boundary}\r\n"
        f"Content-Type: text/rfc822-headers\r\n\r\n{headers_only}\r\n\r\n"
        f"--{boundary}--\r\n").encode()


def dsn(original: bytes, recipient: str, status="5.1.1",
        diagnostic="smtp; 550 5.1.1 <{r}>: Recipient address rejected: User unknown",
        action="failed", original_recipient=None) -> bytes:
    """An RFC 3464 delivery status notification returning `original`."""
    orcpt = f"Original-Recipient: rfc822; {original_recipient}\r\n" if original_recipient else ""
    return multipart_report(
        "From: MAILER-DAEMON@mx1.example.test\r\nTo: whoever\r\nSubject: Undelivered Mail Returned to Sender\r\n",
        "delivery-status",
        "I'm sorry to have to inform you that your message could not be delivered.",
        "Reporting-MTA: dns; mx1.example.test\r\n\r\n"
        f"{orcpt}Final-Recipient: rfc822; {recipient}\r\n"
        f"Action: {action}\r\n"
        f"Status: {status}\r\n"
        "Remote-MTA: dns; mailstore.example.test\r\n"
        f"Diagnostic-Code: {diagnostic.format(r=recipient)}\r\n",
        original)


def arf(original: bytes, recipient: str) -> bytes:
    """An RFC 5965 abuse report about `original`."""
    return multipart_report(
        f"From: feedback@isp.example.test\r\nTo: {FBL_ADDRESS}\r\nSubject: FW: Test\r\n",
        "feedback-report",
        "This is an email abuse report for an email message received from IP 127.0.0.1.",
        "Feedback-Type: abuse\r\nUser-Agent: SomeGenerator/1.0\r\nVersion: 1\r\n"
        f"Original-Rcpt-To: {recipient}\r\nSource-IP: 127.0.0.1\r\n",
        original)


def send_to_listener(node, rcpt, message: bytes, mail_from=""):
    """Sends one message to petrel's bounce listener; returns the DATA reply (code, text)."""
    with smtplib.SMTP("127.0.0.1", node.bounce_port, timeout=20) as smtp:
        smtp.ehlo("mx1.example.test")
        code, text = smtp.mail(mail_from)
        assert code == 250, text
        code, text = smtp.rcpt(rcpt)
        assert code == 250, text
        return smtp.data(message)


def history(node, message_id, address):
    return recipients(node, message_id)[address]["history"]


def test_permfail_is_classified_suppressed_and_reported_at_the_next_submission(node, world):
    receipt = submit(node, to=["permfail-dead@example.test"])
    r = settle(node, receipt["id"])["permfail-dead@example.test"]
    assert r["status"] == "bounced"
    bounced = r["history"][-1]["data"]
    assert bounced["category"] == "invalid_recipient" and bounced["hard"] is True
    assert bounced["bounce_reason"] == "userunknown"
    s = wait_for(lambda: suppression(node, "permfail-dead@EXAMPLE.test"), what="the suppression")
    assert s["reason"] == "hard_bounce" and s["source_event"] == r["history"][-1]["id"]

    again = submit(node, to=["permfail-dead@example.test", "alive@example.test"])
    statuses = {x["email"]: x["status"] for x in again["recipients"]}
    assert statuses == {"permfail-dead@example.test": "suppressed", "alive@example.test": "queued"}
    rs = settle(node, again["id"])
    assert rs["permfail-dead@example.test"]["status"] == "suppressed"
    assert rs["permfail-dead@example.test"]["history"][-1]["type"] == "suppressed"
    assert rs["alive@example.test"]["status"] == "delivered"
    attempts = [m for m in world["sink"].messages() if "permfail-dead@example.test" in m["rcpt_to"]]
    assert attempts == []  # the sink never accepted it, and the second time it was not tried


def test_a_dsn_to_the_verp_address_marks_that_recipient_bounced(node, world):
    receipt = submit(node, to=["verp-a@example.test", "verp-b@example.test"])
    rs = settle(node, receipt["id"])
    assert {x["status"] for x in rs.values()} == {"delivered"}
    copy_a = delivered_copy(world, "verp-a@example.test")
    copy_b = delivered_copy(world, "verp-b@example.test")
    # One transaction per recipient, each with its own signed envelope sender.
    assert copy_a["rcpt_to"] == ["verp-a@example.test"]
    assert re.fullmatch(r"b-[a-z2-7]{42}@" + re.escape(VERP_DOMAIN), copy_a["mail_from"])
    assert copy_a["mail_from"] != copy_b["mail_from"]

    original = base64.b64decode(copy_a["data_b64"])
    # The DSN names the recipient as the receiving system saw it; the VERP token decides.
    code, text = send_to_listener(node, copy_a["mail_from"], dsn(original, "verp-a@example.test"))
    assert code == 250, text
    rs = recipients(node, receipt["id"])
    a, b = rs["verp-a@example.test"], rs["verp-b@example.test"]
    assert a["status"] == "bounced" and b["status"] == "delivered"
    event = a["history"][-1]
    assert event["type"] == "bounced"
    assert event["data"]["async"] is True and event["data"]["category"] == "invalid_recipient"
    assert event["data"]["enhanced_code"] == "5.1.1" and event["data"]["bounce_reason"] == "userunknown"
    assert suppression(node, "verp-a@example.test")["reason"] == "hard_bounce"
    assert suppression(node, "verp-b@example.test") is None


def test_a_forged_verp_token_is_ignored(node, world):
    receipt = submit(node, to=["forge@example.test"])
    settle(node, receipt["id"])
    copy = delivered_copy(world, "forge@example.test")
    real = copy["mail_from"]
    local = real.split("@")[0]
    # Change one character of the token: the HMAC no longer matches.
    tampered = local[:-1] + ("a" if local[-1] != "a" else "b") + "@" + VERP_DOMAIN
    code, _ = send_to_listener(node, tampered, dsn(base64.b64decode(copy["data_b64"]), "forge@example.test"))
    assert code == 250  # accepted and dropped: a forger learns nothing
    r = recipients(node, receipt["id"])["forge@example.test"]
    assert r["status"] == "delivered"
    assert [h["type"] for h in r["history"]] == ["accepted", "delivered"]
    assert suppression(node, "forge@example.test") is None
    assert node.metric("petrel_inbound_forged_total") == 1


def test_a_forged_dsn_cannot_bounce_or_suppress_a_co_recipient(node, world):
    """Anyone who received a message knows its Message-ID and the other recipients' addresses;
    with VERP on, that is not enough to bounce or suppress them."""
    receipt = submit(node, to=["forger@example.test", "victim@example.test"])
    settle(node, receipt["id"])
    copy = delivered_copy(world, "forger@example.test")
    original = base64.b64decode(copy["data_b64"])
    # To postmaster of the VERP domain, naming the real Message-ID and the victim.
    code, text = send_to_listener(node, "postmaster@" + VERP_DOMAIN, dsn(original, "victim@example.test"))
    assert code == 250, text
    # To the forger's own VERP address: the token names the forger's delivery, not the victim's.
    code, text = send_to_listener(node, copy["mail_from"], dsn(original, "victim@example.test"))
    assert code == 250, text
    rs = recipients(node, receipt["id"])
    assert rs["victim@example.test"]["status"] == "delivered"
    assert [h["type"] for h in rs["victim@example.test"]["history"]] == ["accepted", "delivered"]
    assert suppression(node, "victim@example.test") is None
    assert rs["forger@example.test"]["status"] == "bounced"
    assert node.metric("petrel_inbound_unverified_total") == 1
    # A complaint naming the victim without a token changes nothing either.
    code, _ = send_to_listener(node, FBL_ADDRESS, arf(original, "victim@example.test"),
                               mail_from="feedback@isp.example.test")
    assert code == 250
    assert suppression(node, "victim@example.test") is None
    assert node.metric("petrel_inbound_unverified_total") == 2


def test_without_verp_reports_are_matched_by_message_id(make_node, world):
    node = make_node(config(world, **{"bounces.verp_domain": '""'}))
    receipt = submit(node, to=["plain@example.test"])
    settle(node, receipt["id"])
    copy = delivered_copy(world, "plain@example.test")
    assert "@" + VERP_DOMAIN not in copy["mail_from"]
    r = node.session.post(node.url("/v1/inbound"), data=dsn(base64.b64decode(copy["data_b64"]), "plain@example.test"),
                          headers={"Authorization": f"Bearer {node.key}"}, timeout=10)
    assert r.status_code == 200, r.text
    (outcome,) = r.json()["outcomes"]
    assert outcome["email"] == "plain@example.test" and outcome["hard"] is True
    assert outcome["bounce_reason"] == "userunknown"
    assert recipients(node, receipt["id"])["plain@example.test"]["status"] == "bounced"


def test_a_forwarded_recipient_is_found_by_original_recipient_and_a_phrase_alone_does_not_suppress(make_node, world):
    node = make_node(config(world, **{"bounces.verp_domain": '""'}))
    receipt = submit(node, to=["alias@example.test", "other@example.test"])
    settle(node, receipt["id"])
    original = base64.b64decode(delivered_copy(world, "alias@example.test")["data_b64"])
    # The alias forwarded to a mailbox elsewhere, whose server refused it after DATA with a
    # "User unknown" that a content filter also says: soft, and the address stays usable.
    report = dsn(original, "person@forwarded.example.test", status="5.0.0",
                 diagnostic="smtp; 550 User unknown", original_recipient="alias@example.test")
    r = node.session.post(node.url("/v1/inbound"), data=report,
                          headers={"Authorization": f"Bearer {node.key}"}, timeout=10)
    assert r.status_code == 200, r.text
    (outcome,) = r.json()["outcomes"]
    assert outcome["email"] == "alias@example.test"
    assert outcome["hard"] is False and outcome["suppressed"] is False
    assert outcome["category"] == "invalid_recipient" and outcome["bounce_reason"] == "filtered"
    rs = recipients(node, receipt["id"])
    assert rs["alias@example.test"]["status"] == "bounced"
    assert rs["other@example.test"]["status"] == "delivered"
    assert suppression(node, "alias@example.test") is None


def test_an_arf_report_records_a_complaint_and_suppresses(node, world):
    receipt = submit(node, to=["complainer@example.test", "quiet@example.test"])
    settle(node, receipt["id"])
    copy = delivered_copy(world, "complainer@example.test")
    # As stored in the mailbox: the receiving MTA wrote the envelope sender (our VERP address)
    # into Return-Path, and the provider's report includes it.
    original = f"Return-Path: <{copy['mail_from']}>\r\n".encode() + base64.b64decode(copy["data_b64"])
    code, text = send_to_listener(node, FBL_ADDRESS, arf(original, "complainer@example.test"),
                                  mail_from="feedback@isp.example.test")
    assert code == 250, text
    rs = recipients(node, receipt["id"])
    event = rs["complainer@example.test"]["history"][-1]
    assert event["type"] == "complained" and event["data"]["feedback_type"] == "abuse"
    assert rs["quiet@example.test"]["history"][-1]["type"] == "delivered"
    assert suppression(node, "complainer@example.test")["reason"] == "complaint"
    assert submit(node, to=["complainer@example.test"])["recipients"][0]["status"] == "suppressed"


def test_auto_replies_and_delay_notices_are_not_bounces(node, world):
    receipt = submit(node, to=["vacation@example.test"])
    settle(node, receipt["id"])
    copy = delivered_copy(world, "vacation@example.test")
    vacation = ("From: vacation@example.test\r\nTo: app@sender.test\r\nSubject: Out of office\r\n"
                "Auto-Submitted: auto-replied\r\n\r\nI am away until Monday.\r\n").encode()
    assert send_to_listener(node, copy["mail_from"], vacation)[0] == 250
    delayed = dsn(base64.b64decode(copy["data_b64"]), "vacation@example.test", status="4.2.2",
                  diagnostic="smtp; 452 4.2.2 mailbox full", action="delayed")
    assert send_to_listener(node, copy["mail_from"], delayed)[0] == 250
    r = recipients(node, receipt["id"])["vacation@example.test"]
    assert r["status"] == "delivered"
    assert [h["type"] for h in r["history"]] == ["accepted", "delivered"]


def test_the_listener_is_not_an_open_relay(node):
    with smtplib.SMTP("127.0.0.1", node.bounce_port, timeout=20) as smtp:
        smtp.ehlo("spammer.test")
        assert smtp.mail("spammer@spammer.test")[0] == 250
        code, text = smtp.rcpt("victim@gmail.com")
        assert code == 550 and b"5.7.1" in text
        code, _ = smtp.rcpt("postmaster@" + VERP_DOMAIN + ".evil.test")
        assert code == 550
        with pytest.raises(smtplib.SMTPDataError) as refused:
            smtp.data(b"Subject: spam\r\n\r\nbuy\r\n")
        assert refused.value.smtp_code == 503  # no valid recipient: nothing is accepted
    with smtplib.SMTP("127.0.0.1", node.bounce_port, timeout=20) as smtp:
        smtp.ehlo("big.test")
        smtp.mail("")
        assert smtp.rcpt("b-whatever@" + VERP_DOMAIN)[0] == 250
        code, _ = smtp.data(b"Subject: big\r\n\r\n" + b"x" * 70 * 1024 + b"\r\n")
        assert code == 552  # over bounces.max_message_bytes


def test_one_click_unsubscribe(node, world):
    receipt = submit(node, to=["reader@example.test"], campaign="weekly")
    settle(node, receipt["id"])
    copy = delivered_copy(world, "reader@example.test")
    msg = email.message_from_bytes(base64.b64decode(copy["data_b64"]), policy=email.policy.default)
    assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    link = re.fullmatch(r"<(https://mail\.petrel\.test/u/([a-z2-7]{42}))>", msg["List-Unsubscribe"])
    assert link, msg["List-Unsubscribe"]
    token = link.group(2)
    page = node.session.get(node.url("/u/" + token), timeout=10)
    assert page.status_code == 200 and "<form" in page.text
    assert suppression(node, "reader@example.test") is None  # GET never unsubscribes
    bad = node.session.post(node.url("/u/" + token[:-1] + ("a" if token[-1] != "a" else "b")),
                            data="List-Unsubscribe=One-Click", timeout=10)
    assert bad.status_code == 404
    done = node.session.post(node.url("/u/" + token), data="List-Unsubscribe=One-Click",
                             headers={"Content-Type": "application/x-www-form-urlencoded"}, timeout=10)
    assert done.status_code == 200, done.text
    assert suppression(node, "reader@example.test")["reason"] == "unsubscribe"
    assert recipients(node, receipt["id"])["reader@example.test"]["history"][-1]["type"] == "unsubscribed"
    # A transactional message (not bulk) carries no unsubscribe link.
    plain = submit(node, to=["receipt@example.test"])
    settle(node, plain["id"])
    msg = email.message_from_bytes(base64.b64decode(delivered_copy(world, "receipt@example.test")["data_b64"]),
                                   policy=email.policy.default)
    assert msg["List-Unsubscribe"] is None


def test_suppression_api(node):
    auth = {"Authorization": f"Bearer {node.key}"}
    url = node.url("/v1/suppressions")
    r = node.session.post(url, json={"suppressions": [
        {"email": "a@Example.NET"}, {"email": "b@example.net", "reason": "complaint"},
        {"email": "c@example.net", "expires_in": "1d"}]}, headers=auth, timeout=10)
    assert r.status_code == 200, r.text
    assert [s["email"] for s in r.json()["suppressions"]] == ["a@example.net", "b@example.net", "c@example.net"]
    page = node.session.get(url + "?limit=2", headers=auth, timeout=10).json()
    assert [s["email"] for s in page["suppressions"]] == ["a@example.net", "b@example.net"]
    rest = node.session.get(url + "?limit=2&after=" + page["next_after"], headers=auth, timeout=10).json()
    assert [s["email"] for s in rest["suppressions"]] == ["c@example.net"] and rest["next_after"] is None
    # The same shape as the events' pages: next and more.
    assert page["more"] is True and page["next"] == page["next_after"]
    assert rest["more"] is False and rest["next"] == "c@example.net"
    assert rest["suppressions"][0]["expires_at"] is not None
    complaints = node.session.get(url + "?reason=complaint", headers=auth, timeout=10).json()
    assert [s["email"] for s in complaints["suppressions"]] == ["b@example.net"]
    assert submit(node, to=["A@example.net"])["recipients"][0]["status"] != "suppressed"  # local part kept as stored
    assert submit(node, to=["a@EXAMPLE.net"])["recipients"][0]["status"] == "suppressed"
    assert node.session.delete(url + "/a%40example.net", headers=auth, timeout=10).status_code == 204
    assert node.session.delete(url + "/a%40example.net", headers=auth, timeout=10).status_code == 404
    assert node.session.get(url + "/a@example.net", headers=auth, timeout=10).status_code == 404
    assert submit(node, to=["a@example.net"])["recipients"][0]["status"] == "queued"
    bad = node.session.post(url, json={"email": "not an address", "reason": "whim"}, headers=auth, timeout=10)
    assert bad.status_code == 400
    fields = {e["field"] for e in bad.json()["errors"]}
    assert fields == {"email", "reason"}
    assert node.session.get(url, headers={"Authorization": "Bearer nope"}, timeout=10).status_code == 401
    # Another tenant sees none of these.
    _, other_key = node.create_tenant("other")
    theirs = node.session.get(url, headers={"Authorization": f"Bearer {other_key}"}, timeout=10)
    assert theirs.json()["suppressions"] == []


def test_an_address_suppressed_while_waiting_is_not_tried_again(node, world):
    receipt = submit(node, to=["tempfail-later@example.test"])
    wait_for(lambda: recipients(node, receipt["id"])["tempfail-later@example.test"]["status"] == "deferred",
             what="a deferral")
    auth = {"Authorization": f"Bearer {node.key}"}
    r = node.session.post(node.url("/v1/suppressions"), json={"email": "tempfail-later@example.test"},
                          headers=auth, timeout=10)
    assert r.status_code == 200
    r = settle(node, receipt["id"])["tempfail-later@example.test"]
    assert r["status"] == "suppressed"
    assert r["history"][-1]["data"]["stage"] == "delivery"


def test_inbound_api_and_soft_bounce_streak(node, world):
    auth = {"Authorization": f"Bearer {node.key}"}
    ids = []
    for _ in range(2):
        receipt = submit(node, to=["full@example.test"])
        settle(node, receipt["id"])
        ids.append(receipt["id"])
    copies = [m for m in world["sink"].messages() if "full@example.test" in m["rcpt_to"]]
    assert len(copies) == 2
    for copy in copies:
        # The tenant's own mail server took the bounce: ?to= gives the envelope recipient (the
        # VERP address), without which no report is trusted while VERP is on.
        report = dsn(base64.b64decode(copy["data_b64"]), "full@example.test", status="5.2.2",
                     diagnostic="smtp; 552 5.2.2 <{r}>: Mailbox full, over quota")
        r = node.session.post(node.url("/v1/inbound"), data=report, params={"to": copy["mail_from"]},
                              headers={**auth, "Content-Type": "message/rfc822"}, timeout=10)
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["kind"] == "delivery_failure"
        (outcome,) = body["outcomes"]
        assert outcome["email"] == "full@example.test" and outcome["category"] == "mailbox_full"
        assert outcome["hard"] is False and outcome["suppressed"] is False
    # Two soft bounces (bounces.soft_bounce_streak = 2): suppressed for a while.
    s = wait_for(lambda: suppression(node, "full@example.test"), what="the streak suppression")
    assert s["reason"] == "soft_bounce_streak" and s["expires_at"] is not None
    # Another tenant's key cannot attach reports to this tenant's messages.
    _, stranger_key = node.create_tenant("stranger")
    report = dsn(base64.b64decode(copies[0]["data_b64"]), "full@example.test")
    r = node.session.post(node.url("/v1/inbound"), data=report, params={"to": copies[0]["mail_from"]},
                          headers={"Authorization": f"Bearer {stranger_key}"}, timeout=10)
    assert r.status_code == 200 and r.json()["outcomes"] == []
    # The admin listener takes reports for any tenant.
    r = node.admin("POST", "/admin/inbound", data=b"Subject: hi\r\n\r\njust mail\r\n")
    assert r.status_code == 200 and r.json()["kind"] == "not_a_report"
