"""Open and click tracking (docs/sending.md, "Tracking") end to end: messages delivered to a
scripted SMTP server, their rewritten links and pixel followed by a real HTTP client against the
node's tracking listener, and what that records (events, counts, stats, webhooks)."""
import base64
import email
import email.policy
import json
import pathlib
import re
import socket

import dkim
import requests
from dnslib import DNSRecord, QTYPE
from jsonschema import Draft202012Validator

from conftest import delivery_config, settle_message, wait_events, wait_for
from servers import DnsServer, SmtpServer, WebhookServer

BROWSER = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"
BASE_RECORDS = [
    {"name": "mx1.example.test", "type": "A", "address": "127.0.0.2"},
    {"name": "example.test", "type": "MX", "preference": 10, "exchange": "mx1.example.test"},
]
HTML = ('<html><body><p>Hello!</p><p><a href="https://shop.example.com/sale?a=1&amp;b=2">Sale</a> '
        '<a href="http://news.example.org/">News</a> <a href="mailto:help@example.com">Help</a> '
        '<a href="https://shop.example.com/sale?a=1&amp;b=2">Sale again</a></p></body></html>')
EVENT_SCHEMA = Draft202012Validator(json.loads(
    (pathlib.Path(__file__).resolve().parents[2] / "docs" / "schemas" / "event.schema.json").read_text()))
TEXT = "Hello! Sale: https://shop.example.com/sale?a=1&b=2 News: http://news.example.org/"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class World:
    def __init__(self, tmp_path):
        self.smtp = SmtpServer(tmp_path, listen=["127.0.0.2:0"]).start()
        self.dns = DnsServer(tmp_path, {"records": list(BASE_RECORDS)}).start()
        self.tracking_port = free_port()
        self.base = f"http://127.0.0.1:{self.tracking_port}"

    def stop(self):
        self.smtp.stop()
        self.dns.stop()

    def config(self, **extra):
        values = {"tracking.enabled": "true", "tracking.listen": f'"127.0.0.1:{self.tracking_port}"',
                  "tracking.base_url": f'"{self.base}"', "tracking.machine_window": '"0s"',
                  "tracking.cname_target": '"track.petrel.test"', "tracking.scheme": '"http"', **extra}
        return delivery_config(self.dns.port, self.smtp.port, **values)

    def delivered(self, rcpt):
        got = [m for m in self.smtp.messages() if rcpt in m["rcpt_to"]]
        assert len(got) == 1, [m["rcpt_to"] for m in self.smtp.messages()]
        return base64.b64decode(got[0]["data_b64"])


def api(node, method, path, **kw):
    return node.session.request(method, node.url(path), headers={"Authorization": f"Bearer {node.key}"},
                                timeout=30, **kw)


def parts(raw):
    message = email.message_from_bytes(raw, policy=email.policy.default)
    html = message.get_body(preferencelist=("html",))
    text = message.get_body(preferencelist=("plain",))
    return message, html.get_content() if html else None, text.get_content() if text else None


def tracking_urls(html, base):
    clicks = re.findall(re.escape(base) + r"/c/([A-Za-z0-9_-]+)", html)
    pixels = re.findall(re.escape(base) + r"/o/([A-Za-z0-9_-]+)\.gif", html)
    return clicks, pixels


def dnsfunc(world):
    def lookup(name, timeout=5):
        q = DNSRecord.question(name.decode().rstrip("."), "TXT")
        answer = DNSRecord.parse(q.send("127.0.0.1", world.dns.port, timeout=timeout))
        texts = [b"".join(rr.rdata.data) for rr in answer.rr if rr.rtype == QTYPE.TXT]
        return texts[0] if texts else None
    return lookup


def test_links_and_pixel_are_followed_and_counted_once_per_recipient_and_link(tmp_path, make_node):
    world = World(tmp_path)
    hooks = WebhookServer(tmp_path / "hooks").start()
    secret = tmp_path / "bounce.key"
    secret.write_text("b" * 64)
    try:
        node = make_node(world.config(**{"bounces.secret_file": f'"{secret}"',
                                         "bounces.unsubscribe_base_url": '"https://u.petrel.test"',
                                         "webhooks.allow_private_networks": "true",
                                         "webhooks.require_https": "false", "webhooks.max_delay": '"100ms"'}))
        r = api(node, "POST", "/v1/webhooks", json={"url": f"http://127.0.0.1:{hooks.port}/hook",
                                                     "events": ["opened", "clicked"]})
        assert r.status_code == 201, r.text
        # A sender domain with its DKIM keys published: the tracked copies are signed as sent.
        view = api(node, "POST", "/v1/domains", json={"domain": "sender.test"}).json()
        world.dns.set_zone({"records": BASE_RECORDS + [{"name": x["name"], "type": "TXT", "text": x["value"]}
                                                       for x in view["records"] if x["type"] == "TXT"]})
        r = node.submit(node.key, {"from": "Shop <shop@sender.test>", "to": ["a@example.test", "b@example.test"],
                                   "subject": "Tracked", "text": TEXT, "html": HTML, "bulk": True,
                                   "tracking": {"opens": True, "clicks": True}})
        assert r.status_code == 202, r.text
        message_id = r.json()["id"]
        ids = {x["email"]: x["id"] for x in r.json()["recipients"]}
        assert {x["status"] for x in settle_message(node, message_id).values()} == {"delivered"}

        copies = {}
        for rcpt in ids:
            raw = world.delivered(rcpt)
            d = dkim.DKIM(raw)
            assert all(d.verify(idx=i, dnsfunc=dnsfunc(world)) for i in range(raw.count(b"DKIM-Signature:")))
            assert raw.count(b"DKIM-Signature:") >= 1
            message, html, text = parts(raw)
            # Both see the message as sent: To both of them; the text part and List-Unsubscribe as they were.
            assert "a@example.test" in message["To"] and "b@example.test" in message["To"]
            assert text.strip() == TEXT
            assert message["List-Unsubscribe"].startswith("<https://u.petrel.test/u/")
            clicks, pixels = tracking_urls(html, world.base)
            assert len(clicks) == 3 and len(pixels) == 1, html
            assert clicks[0] != clicks[1] and clicks[0] != clicks[2], "each link has its own token"
            assert 'href="mailto:help@example.com"' in html and "shop.example.com" not in html
            copies[rcpt] = (clicks, pixels[0])
        assert copies["a@example.test"][0][0] != copies["b@example.test"][0][0], "each recipient has its own"

        clicks, pixel = copies["a@example.test"]
        browser = {"User-Agent": BROWSER}
        r = requests.get(f"{world.base}/o/{pixel}.gif", headers=browser, timeout=10)
        assert r.status_code == 200 and r.headers["Content-Type"] == "image/gif" and r.content[:6] == b"GIF89a"
        assert "no-store" in r.headers["Cache-Control"]
        requests.get(f"{world.base}/o/{pixel}.gif", headers=browser, timeout=10)
        targets = []
        for token in (clicks[0], clicks[0], clicks[1], clicks[0]):
            r = requests.get(f"{world.base}/c/{token}", headers=browser, allow_redirects=False, timeout=10)
            assert r.status_code == 302, r.text
            targets.append(r.headers["Location"])
        assert targets == ["https://shop.example.com/sale?a=1&b=2"] * 2 + ["http://news.example.org/"] + \
            ["https://shop.example.com/sale?a=1&b=2"]
        # The third link is the first one again: its own index, the same target. What the request
        # says besides the token changes nothing: the target is the stored one.
        r = requests.get(f"{world.base}/c/{clicks[2]}?u=https://evil.example/", headers=browser,
                         allow_redirects=False, timeout=10)
        assert r.headers["Location"] == "https://shop.example.com/sale?a=1&b=2"

        # Forged, altered or misplaced tokens: 404 and no redirect anywhere.
        forged = clicks[0][:-2] + ("AA" if clicks[0][-2:] != "AA" else "BA")
        for path in (f"/c/{forged}", f"/c/{pixel}", f"/o/{clicks[0]}.gif", "/c/" + "A" * 64, "/c/x",
                     "/c/" + clicks[0] + "A"):
            r = requests.get(world.base + path, headers=browser, allow_redirects=False, timeout=10)
            assert r.status_code == 404 and "Location" not in r.headers, (path, r.status_code)

        # Events: one open, one click per link (three links), each the first; repeats counted.
        opened = wait_events(node, 1, type="opened")
        assert len(opened) == 1 and opened[0]["recipient"] == ids["a@example.test"]
        data = opened[0]["data"]
        assert data["first"] is True and data["machine"] is False and data["user_agent"] == BROWSER
        assert "ip" not in data, "the tenant does not keep addresses"
        clicked = wait_events(node, 3, type="clicked")
        for event in opened + clicked:
            errors = list(EVENT_SCHEMA.iter_errors(event))
            assert not errors, errors
        assert sorted((e["data"]["link"], e["data"]["url"]) for e in clicked) == [
            (1, "https://shop.example.com/sale?a=1&b=2"), (2, "http://news.example.org/"),
            (3, "https://shop.example.com/sale?a=1&b=2")]

        def engagement():
            rs = {x["email"]: x for x in node.get_message(node.key, message_id).json()["recipients"]}
            e = rs["a@example.test"]["engagement"]
            return rs if e["clicks"] == 5 and e["opens"] == 2 else None
        rs = wait_for(engagement, what="the hits counted")
        a = rs["a@example.test"]["engagement"]
        assert a["machine_opens"] == 0 and a["machine_clicks"] == 0
        assert sorted((x["link"], x["count"]) for x in a["links"]) == [(1, 3), (2, 1), (3, 1)]
        assert rs["b@example.test"]["engagement"]["opens"] == 0

        stats = api(node, "GET", "/v1/stats").json()["totals"]
        assert stats["opened"] == 1 and stats["clicked"] == 3 and stats["opened_machine"] == 0

        def posted():
            types = [e["type"] for batch in hooks.requests() for e in json.loads(batch["body"])["events"]]
            return types if types.count("clicked") == 3 else None
        types = wait_for(posted, timeout=30, what="the webhook batches")
        assert sorted(types) == ["clicked"] * 3 + ["opened"]
    finally:
        hooks.stop()
        world.stop()


def test_untracked_messages_are_sent_as_built(tmp_path, make_node):
    world = World(tmp_path)
    try:
        node = make_node(world.config())
        for tracking in (None, False, {"opens": False, "clicks": False}):
            body = {"from": "app@sender.test", "to": ["plain@example.test"], "subject": "Plain",
                    "text": TEXT, "html": HTML}
            if tracking is not None:
                body["tracking"] = tracking
            r = node.submit(node.key, body)
            assert r.status_code == 202, r.text
            message_id = r.json()["id"]
            settle_message(node, message_id)
            stored = api(node, "GET", f"/v1/messages/{message_id}/content").content
            sent = [base64.b64decode(m["data_b64"]) for m in world.smtp.messages()
                    if "plain@example.test" in m["rcpt_to"]][-1]
            assert sent == stored, "the message went out byte for byte as it was built and stored"
            assert b"/c/" not in sent and b".gif" not in sent
            world.smtp.reset()
        # Without tracking on the server, asking for it is a clear 400; a raw message cannot be tracked.
        r = node.submit(node.key, {"raw": base64.b64encode(b"From: a@sender.test\r\nTo: b@example.test\r\n"
                                                           b"Subject: x\r\n\r\nhi\r\n").decode(),
                                   "envelope": {"from": "a@sender.test", "to": ["b@example.test"]},
                                   "tracking": {"opens": True}})
        assert r.status_code == 400 and "tracking" in r.text, r.text
        r = node.submit(node.key, {"from": "a@sender.test", "to": ["b@example.test"], "subject": "x", "html": "<p>x",
                                   "tracking": {"opens": "yes"}})
        assert r.status_code == 400 and "tracking.opens" in r.text, r.text
    finally:
        world.stop()


def test_tracking_refused_when_the_server_has_none(make_node):
    node = make_node()
    r = node.submit(node.key, {"from": "a@sender.test", "to": ["b@example.test"], "subject": "x",
                               "html": "<a href='https://x.example/'>x</a>", "tracking": True})
    assert r.status_code == 400 and "tracking is not enabled" in r.text, r.text


def test_machine_hits_are_marked_by_documented_heuristics(tmp_path, make_node):
    world = World(tmp_path)
    try:
        node = make_node(world.config(**{"tracking.machine_window": '"1h"',
                                         "tracking.trusted_proxies": '["127.0.0.0/8"]'}))
        r = api(node, "PATCH", "/v1/tracking", json={"record_ip": True})
        assert r.status_code == 200 and r.json()["record_ip"] is True, r.text
        r = node.submit(node.key, {"from": "app@sender.test", "to": ["m@example.test"], "subject": "Machines",
                                   "html": HTML, "tracking": True})
        assert r.status_code == 202, r.text
        message_id = r.json()["id"]
        settle_message(node, message_id)
        _, html, _ = parts(world.delivered("m@example.test"))
        clicks, pixels = tracking_urls(html, world.base)
        base = world.base
        # Apple's proxy behind our own proxy (X-Forwarded-For from a trusted peer).
        requests.get(f"{base}/o/{pixels[0]}.gif", timeout=10,
                     headers={"User-Agent": "Mozilla/5.0", "X-Forwarded-For": "17.58.1.2, 127.0.0.9"})
        requests.head(f"{base}/c/{clicks[0]}", headers={"User-Agent": BROWSER}, timeout=10)
        requests.get(f"{base}/c/{clicks[1]}", allow_redirects=False, timeout=10)  # python-requests
        requests.get(f"{base}/c/{clicks[2]}", headers={"User-Agent": BROWSER}, allow_redirects=False, timeout=10)
        events = wait_events(node, 4, type="opened,clicked")
        reasons = {(e["type"], e["data"].get("link", 0)): (e["data"]["machine"], e["data"].get("machine_reason"))
                   for e in events}
        assert reasons == {("opened", 0): (True, "apple_privacy_proxy"), ("clicked", 1): (True, "head_request"),
                           ("clicked", 2): (True, "scanner_user_agent"),
                           ("clicked", 3): (True, "soon_after_delivery")}
        for event in events:
            errors = list(EVENT_SCHEMA.iter_errors(event))
            assert not errors, errors
        opened = [e for e in events if e["type"] == "opened"][0]
        assert opened["data"]["ip"] == "17.58.1.2"
        stats = api(node, "GET", "/v1/stats").json()["totals"]
        assert stats["opened"] == 0 and stats["opened_machine"] == 1
        assert stats["clicked"] == 0 and stats["clicked_machine"] == 3
        # A browser within the window after the delivery is still taken for a machine: a repeat
        # of the machine's open, counted, without a second event.
        requests.get(f"{base}/o/{pixels[0]}.gif", headers={"User-Agent": BROWSER}, timeout=10)

        def counted():
            rs = {x["email"]: x for x in node.get_message(node.key, message_id).json()["recipients"]}
            e = rs["m@example.test"]["engagement"]
            return e if e["machine_opens"] == 2 else None
        e = wait_for(counted, what="the second machine open")
        assert e["opens"] == 0 and e["machine_clicks"] == 3
        assert len(wait_events(node, 1, type="opened")) == 1
    finally:
        world.stop()


def test_tracking_domain_is_verified_by_its_cname_and_used_once_verified(tmp_path, make_node):
    world = World(tmp_path)
    try:
        node = make_node(world.config(**{"tracking.base_url": '""'}))
        view = api(node, "GET", "/v1/tracking").json()
        assert view == {"opens": False, "clicks": False, "record_ip": False, "domain": None, "verified": False,
                        "checked_at": None, "status": None, "enabled": True, "base_url": None, "records": []}
        # Without a domain and without the server's base_url, a message cannot be tracked.
        r = node.submit(node.key, {"from": "app@sender.test", "to": ["x@example.test"], "subject": "x",
                                   "html": HTML, "tracking": {"clicks": True}})
        assert r.status_code == 400 and "tracking domain" in r.text, r.text
        r = api(node, "PATCH", "/v1/tracking", json={"domain": "Links.Sender.Test.", "opens": True, "clicks": True})
        assert r.status_code == 200, r.text
        view = r.json()
        assert view["domain"] == "links.sender.test" and view["verified"] is False
        assert view["records"] == [{"type": "CNAME", "name": "links.sender.test", "value": "track.petrel.test"}]
        r = api(node, "PATCH", "/v1/tracking", json={"domain": "not a domain", "colour": "red"})
        assert r.status_code == 400 and "domain" in r.text and "colour" in r.text, r.text

        r = api(node, "POST", "/v1/tracking/verify")
        assert r.status_code == 200, r.text
        assert r.json()["verified"] is False and "no CNAME record" in r.json()["status"]
        # Unverified, with no base_url: the tenant's default tracking does not apply (no 400).
        r = node.submit(node.key, {"from": "app@sender.test", "to": ["early@example.test"], "subject": "x",
                                   "html": HTML})
        assert r.status_code == 202, r.text
        settle_message(node, r.json()["id"])
        assert b"/c/" not in world.delivered("early@example.test")

        world.dns.set_zone({"records": BASE_RECORDS + [
            {"name": "links.sender.test", "type": "CNAME", "target": "elsewhere.test"}]})
        r = api(node, "POST", "/v1/tracking/verify")
        assert r.json()["verified"] is False and "points elsewhere" in r.json()["status"], r.text
        world.dns.set_zone({"records": BASE_RECORDS + [
            {"name": "links.sender.test", "type": "CNAME", "target": "track.petrel.test"},
            {"name": "track.petrel.test", "type": "A", "address": "127.0.0.1"}]})
        r = api(node, "POST", "/v1/tracking/verify")
        assert r.status_code == 200 and r.json()["verified"] is True, r.text
        assert r.json()["base_url"] == "http://links.sender.test" and r.json()["checked_at"]

        # The tenant's defaults now track its messages on its own domain.
        r = node.submit(node.key, {"from": "app@sender.test", "to": ["late@example.test"], "subject": "x",
                                   "html": HTML})
        assert r.status_code == 202, r.text
        settle_message(node, r.json()["id"])
        _, html, _ = parts(world.delivered("late@example.test"))
        clicks, pixels = tracking_urls(html, "http://links.sender.test")
        assert len(clicks) == 3 and len(pixels) == 1
        # The listener serves whichever host name points at it.
        r = requests.get(f"{world.base}/c/{clicks[1]}", headers={"User-Agent": BROWSER, "Host": "links.sender.test"},
                         allow_redirects=False, timeout=10)
        assert r.status_code == 302 and r.headers["Location"] == "http://news.example.org/"
        # A new domain starts unverified; the admin API sees the same settings.
        api(node, "PATCH", "/v1/tracking", json={"domain": "t2.sender.test"})
        tenants = node.admin("GET", "/admin/tenants").json()
        mine = [t for t in tenants["tenants"] if t["tracking"]["domain"] == "t2.sender.test"]
        assert mine and mine[0]["tracking"]["verified"] is False and mine[0]["tracking"]["opens"] is True
    finally:
        world.stop()


def test_templated_copies_track_static_links_and_leave_personal_ones(tmp_path, make_node):
    world = World(tmp_path)
    try:
        node = make_node(world.config())
        html = ('<p>Hi {{name}}</p><a href="https://shop.example.com/">Shop</a> '
                '<a href="https://shop.example.com/u/{{id}}">Yours</a>{{#extra}}<a href="https://x.example/">X</a>{{/extra}}')
        r = node.submit(node.key, {"from": "app@sender.test", "subject": "Hi {{name}}", "html": html,
                                   "to": [{"email": "t1@example.test", "substitutions": {"name": "Ann", "id": "7"}},
                                          {"email": "t2@example.test",
                                           "substitutions": {"name": "Bob", "id": "9", "extra": True}}],
                                   "tracking": {"clicks": True}})
        assert r.status_code == 202, r.text
        message_id = r.json()["id"]
        settle_message(node, message_id)
        _, one, _ = parts(world.delivered("t1@example.test"))
        _, two, _ = parts(world.delivered("t2@example.test"))
        assert "Hi Ann" in one and 'href="https://shop.example.com/u/7"' in one
        assert 'href="https://shop.example.com/u/9"' in two
        c1, p1 = tracking_urls(one, world.base)
        c2, _ = tracking_urls(two, world.base)
        assert len(c1) == 1 and len(c2) == 2 and not p1, (one, two)
        r = requests.get(f"{world.base}/c/{c2[1]}", headers={"User-Agent": BROWSER}, allow_redirects=False, timeout=10)
        assert r.headers["Location"] == "https://x.example/"
        details = node.get_message(node.key, message_id).json()
        assert details["tracked_links"] == ["https://shop.example.com/", "https://x.example/"]
    finally:
        world.stop()
