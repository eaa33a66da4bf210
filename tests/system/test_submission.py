"""POST /v1/messages and GET /v1/messages/{id} through a real HTTP client."""
import base64
import email
import email.policy
import re
import socket
import time

import pytest

from conftest import simple_message

ULID = re.compile(r"^[0-9A-HJKMNP-TV-Z]{26}$")


def test_first_start_creates_a_tenant_whose_key_submits(node):
    key = node.bootstrap_key
    assert key, node.stdout_lines
    r = node.submit(key, simple_message(to=["a@example.net", "B <b@example.org>"], cc="c@example.net"))
    assert r.status_code == 202, r.text
    body = r.json()
    assert ULID.match(body["id"])
    assert [x["email"] for x in body["recipients"]] == ["a@example.net", "b@example.org", "c@example.net"]
    assert all(x["status"] == "queued" and ULID.match(x["id"]) for x in body["recipients"])


def test_accepted_message_shows_recipients_and_history(node):
    key = node.bootstrap_key
    r = node.submit(key, simple_message(bcc=[{"email": "hidden@example.org"}], tags=["welcome"],
                                        metadata={"user": 7}, campaign="spring"))
    message_id = r.json()["id"]
    got = node.get_message(key, message_id)
    assert got.status_code == 200, got.text
    m = got.json()
    assert m["id"] == message_id
    assert m["subject"] == "Hello"
    assert m["tags"] == ["welcome"]
    assert m["metadata"] == {"user": 7}
    assert m["campaign"] == "spring"
    assert m["message_id"].endswith("@example.com>")
    assert [(x["email"], x["kind"]) for x in m["recipients"]] == [
        ("someone@example.net", "to"), ("hidden@example.org", "bcc")]
    assert all(x["status"] in ("queued", "deferred") for x in m["recipients"])  # no DNS here
    assert m["recipients"][0]["history"][0]["type"] == "accepted"


def test_raw_message_is_accepted_with_its_envelope(node):
    raw = b"From: Raw <raw@example.com>\nTo: x@example.net\nSubject: raw one\n\nbody\n"
    r = node.submit(node.bootstrap_key, {"raw": base64.b64encode(raw).decode(),
                                         "envelope": {"from": "bounces@example.com",
                                                      "to": ["x@example.net", "y@example.net"]}})
    assert r.status_code == 202, r.text
    m = node.get_message(node.bootstrap_key, r.json()["id"]).json()
    assert m["from"] == "bounces@example.com"
    assert m["subject"] == "raw one"
    assert [x["kind"] for x in m["recipients"]] == ["envelope", "envelope"]


def problem(r, status):
    assert r.status_code == status, r.text
    assert r.headers["Content-Type"] == "application/problem+json"
    body = r.json()
    assert body["status"] == status
    assert body["type"].startswith("urn:petrel:problem:")
    return body


@pytest.mark.parametrize("body,field,words", [
    ("{not json", "", "not valid JSON"),
    ("[]", "", "must be a JSON object"),
    (simple_message(**{"from": "not-an-address"}), "from", "has no @"),
    ({"to": ["a@example.net"], "text": "x"}, "from", "required"),
    (simple_message(to=["ok@example.net", "bad@@example.net"]), "to[1]", "needs quoting"),
    (simple_message(to=[]), "to", "at least one recipient"),
    ({"from": "a@example.com", "to": ["b@example.net"]}, "text", "body is required"),
    (simple_message(headers={"X-Evil": "a\r\nBcc: victim@example.org"}), "headers.X-Evil", "CR or LF"),
    (simple_message(headers={"Return-Path": "x@example.org"}), "headers.Return-Path", "cannot be given"),
    (simple_message(surprise=True), "surprise", "unknown field"),
    (simple_message(tags="single"), "tags", "array of strings"),
])
def test_each_invalid_submission_is_a_400_naming_the_field(node, body, field, words):
    body = problem(node.submit(node.bootstrap_key, body), 400)
    assert any(e["field"] == field and words in e["detail"] for e in body["errors"]), body


def test_missing_or_unknown_key_is_401(node):
    r = node.submit(None, simple_message())
    assert problem(r, 401)
    assert r.headers["WWW-Authenticate"] == "Bearer"
    r = node.submit("pk_" + "x" * 40, simple_message())
    problem(r, 401)
    assert r.headers["WWW-Authenticate"] == "Bearer"
    # A bad key with a bad body learns only that the key is bad.
    problem(node.submit("pk_" + "x" * 40, "{garbage"), 401)


def test_wrong_content_type_is_415(node):
    r = node.submit(node.bootstrap_key, "from=a", headers={"Content-Type": "application/x-www-form-urlencoded"})
    problem(r, 415)


def test_body_over_the_limit_is_413(make_node):
    node = make_node("http.max_body_bytes = 4096\nsubmission.max_message_bytes = 2048")
    problem(node.submit(node.bootstrap_key, simple_message(text="x" * 8000)), 413)
    problem(node.submit(node.bootstrap_key, simple_message(text="y" * 3000)), 413)
    assert node.submit(node.bootstrap_key, simple_message()).status_code == 202


def test_over_the_tenant_rate_is_429_with_retry_after(node):
    _, key = node.create_tenant("slow", rate="1/s", burst=2)
    codes = [node.submit(key, simple_message()) for _ in range(3)]
    assert [r.status_code for r in codes[:2]] == [202, 202]
    body = problem(codes[2], 429)
    assert int(codes[2].headers["Retry-After"]) >= 1
    assert codes[2].headers["X-RateLimit-Remaining"] == "0" and int(codes[2].headers["X-RateLimit-Reset"]) >= 1
    assert codes[2].headers["X-RateLimit-Limit"] == "2"
    assert codes[2].headers["RateLimit-Policy"] == "2;w=2"  # a burst of 2, refilled at 1/s
    assert codes[2].headers["RateLimit"].startswith("limit=2, remaining=0, reset=")
    assert "over its message rate of 1/s (burst 2)" in body["detail"], body
    # Other tenants are not affected.
    assert node.submit(node.bootstrap_key, simple_message()).status_code == 202


def test_suspended_tenant_is_403_until_resumed(node):
    tenant_id, key = node.create_tenant("paused")
    r = node.admin("PATCH", f"/admin/tenants/{tenant_id}", json={"suspended": True})
    assert r.status_code == 200 and r.json()["tenant"]["suspended"] is True
    problem(node.submit(key, simple_message()), 403)
    node.admin("PATCH", f"/admin/tenants/{tenant_id}", json={"suspended": False})
    assert node.submit(key, simple_message()).status_code == 202


def test_store_failure_is_503_with_retry_after_and_nothing_is_half_stored(node):
    key = node.bootstrap_key
    assert node.admin("POST", "/admin/debug/store", json={"fail_commits": 1}).status_code == 202
    r = node.submit(key, simple_message(subject="lost"))
    problem(r, 503)
    assert int(r.headers["Retry-After"]) >= 1
    ok = node.submit(key, simple_message(subject="kept"))
    assert ok.status_code == 202
    node.stop()
    subjects = [row[0] for row in node.sql("SELECT subject FROM messages")]
    assert "lost" not in subjects and "kept" in subjects


def test_tenants_cannot_see_each_other(node):
    _, key_a = node.create_tenant("alpha")
    _, key_b = node.create_tenant("beta")
    message_id = node.submit(key_a, simple_message()).json()["id"]
    assert node.get_message(key_a, message_id).status_code == 200
    problem(node.get_message(key_b, message_id), 404)
    problem(node.get_message(key_b, "01ARZ3NDEKTSV4RRFFQ69G5FAV"), 404)
    problem(node.get_message(key_b, "not-an-id"), 404)
    problem(node.get_message("pk_" + "z" * 40, message_id), 401)


def test_revoked_key_stops_working_and_new_keys_do(node):
    tenant_id, key = node.create_tenant("rotating")
    r = node.admin("POST", f"/admin/tenants/{tenant_id}/keys")
    assert r.status_code == 201
    new_key, new_key_id = r.json()["api_key"], r.json()["key"]["id"]
    old_key_id = [k["id"] for t in node.admin("GET", "/admin/tenants").json()["tenants"]
                  if t["id"] == tenant_id for k in t["keys"] if k["id"] != new_key_id][0]
    assert node.admin("DELETE", f"/admin/tenants/{tenant_id}/keys/{old_key_id}").status_code == 204
    problem(node.submit(key, simple_message()), 401)
    assert node.submit(new_key, simple_message()).status_code == 202


def test_stored_message_parses_with_pythons_email_package(node):
    key = node.bootstrap_key
    r = node.submit(key, {"from": {"email": "app@example.com", "name": "Zoë Ångström"},
                          "to": ["Jürgen <j@example.net>"], "reply_to": "help@example.com",
                          "subject": "Grüße – 日本語" + " long" * 40,
                          "text": "Ça va?\n.leading dot\n" + "z" * 1200 + "\n",
                          "html": "<p>Ça va?</p>", "headers": {"X-Campaign-Note": "naïve"}})
    assert r.status_code == 202, r.text
    node.stop()
    content = node.content(r.json()["id"])
    assert b"\n" not in content.replace(b"\r\n", b"")  # CRLF only
    assert all(len(line) <= 998 for line in content.split(b"\r\n"))
    msg = email.message_from_bytes(content, policy=email.policy.default)
    assert msg["Subject"] == "Grüße – 日本語" + " long" * 40
    assert msg["From"].addresses[0].display_name == "Zoë Ångström"
    assert msg["To"].addresses[0].username == "j"
    assert msg["Reply-To"] == "help@example.com"
    assert msg["X-Campaign-Note"] == "naïve"
    assert msg["MIME-Version"] == "1.0"
    assert msg["Message-ID"] and msg["Date"]
    assert msg.get_content_type() == "multipart/alternative"
    plain, html = msg.get_payload()
    # Encoded text is canonical CRLF (RFC 2045 6.8); compare line by line.
    assert plain.get_content().replace("\r\n", "\n") == "Ça va?\n.leading dot\n" + "z" * 1200 + "\n"
    assert html.get_content().strip() == "<p>Ça va?</p>"


def test_expect_100_continue_is_answered_before_the_body(node):
    body = ('{"from":"a@example.com","to":["b@example.net"],"text":"' + "x" * 2000 + '"}').encode()
    with socket.create_connection(("127.0.0.1", node.api_port), timeout=5) as s:
        s.sendall(b"POST /v1/messages HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  b"Authorization: Bearer " + node.bootstrap_key.encode() + b"\r\n"
                  b"Expect: 100-continue\r\nContent-Length: " + str(len(body)).encode() + b"\r\n\r\n")
        assert s.recv(100).startswith(b"HTTP/1.1 100 Continue")
        s.sendall(body)
        response = b""
        while b"\r\n\r\n" not in response:
            response += s.recv(4096)
        assert response.startswith(b"HTTP/1.1 202")
