"""The sandbox (docs/sending.md, "Sandbox"): mail is validated, stored, rendered and signed as
usual and delivered nowhere; each recipient gets a simulated outcome by address, with the same
events and webhooks as real mail, and no suppression."""
import json

import requests

from conftest import delivery_config, one_mx_world, wait_events, wait_for
from servers import WebhookServer

SIM = "simulator.petrel.test"


def statuses(node, key, message_id):
    r = node.get_message(key, message_id)
    assert r.status_code == 200, r.text
    return {x["email"]: x for x in r.json()["recipients"]}


def settled(node, key, message_id, final=("delivered", "bounced")):
    def done():
        rs = statuses(node, key, message_id)
        return rs if all(x["status"] in final for x in rs.values()) else None
    return wait_for(done, timeout=30, what=f"the recipients of {message_id} to settle")


def test_every_simulated_address_and_nothing_leaves_the_node(tmp_path, make_node):
    sink, dns = one_mx_world(tmp_path)
    hooks = WebhookServer(tmp_path / "hooks").start()
    try:
        node = make_node(delivery_config(dns.port, sink.port, **{"webhooks.allow_private_networks": "true",
                                                                "webhooks.require_https": "false",
                                                                "webhooks.max_delay": '"100ms"'}))
        auth = {"Authorization": f"Bearer {node.key}"}
        r = requests.post(node.url("/v1/webhooks"), json={"url": f"http://127.0.0.1:{hooks.port}/hook"},
                          headers=auth, timeout=30)
        assert r.status_code == 201, r.text
        auto_replies = node.metric("petrel_inbound_reports_total", {"kind": "auto_reply"})
        to = ["someone@example.test", "anyone@nowhere.invalid", f"bounce@{SIM}", f"complaint@{SIM}",
              f"defer@{SIM}", f"ooto@{SIM}", f"Bounce+tag@{SIM.upper()}"]
        r = node.submit(node.key, {"from": "App <app@sender.test>", "to": to, "subject": "Sandbox",
                                   "text": "Hello.", "sandbox": True})
        assert r.status_code == 202, r.text
        message = r.json()["id"]
        rs = settled(node, node.key, message)
        assert {k: v["status"] for k, v in rs.items()} == {
            "someone@example.test": "delivered", "anyone@nowhere.invalid": "delivered",
            f"bounce@{SIM}": "bounced", f"complaint@{SIM}": "delivered", f"defer@{SIM}": "delivered",
            f"ooto@{SIM}": "delivered", f"Bounce+tag@{SIM}": "bounced"}

        def history(address):
            return [(h["type"], h["data"].get("simulated")) for h in rs[address]["history"]]
        assert history("someone@example.test") == [("accepted", None), ("delivered", "delivered")]
        assert history(f"bounce@{SIM}") == [("accepted", None), ("bounced", "bounce")]
        assert history(f"defer@{SIM}") == [("accepted", None), ("deferred", "defer"), ("delivered", "delivered")]
        bounced = rs[f"bounce@{SIM}"]["history"][-1]["data"]
        assert bounced["sandbox"] is True and bounced["smtp_code"] == 550 and bounced["hard"] is True
        assert bounced["mx_host"] == "sandbox" and "simulated" in bounced["reply"]

        # The complaint follows the delivery, as a feedback report's would.
        complaint = wait_events(node, 1, type="complained", recipient=f"complaint@{SIM}")[0]
        assert complaint["data"]["origin"] == "sandbox" and complaint["data"]["feedback_type"] == "abuse"
        page = requests.get(node.url("/v1/events"), params={"recipient": f"complaint@{SIM}"}, headers=auth,
                            timeout=30).json()["events"]
        assert [e["type"] for e in page] == ["delivered", "complained"]
        # The out-of-office reply is counted as a real one would be (no event).
        assert node.metric("petrel_inbound_reports_total", {"kind": "auto_reply"}) == auto_replies + 1

        # Nothing was suppressed, nothing reached the network.
        for address in (f"bounce@{SIM}", f"complaint@{SIM}"):
            r = requests.get(node.url(f"/v1/suppressions/{address}"), headers=auth, timeout=30)
            assert r.status_code == 404, r.text
        assert sink.stats()["connections_total"] == 0
        assert dns.stats()["total"] == 0, dns.stats()

        # The same events reach the webhook.
        def posted():
            types = [(e["type"], e["email"]) for batch in hooks.requests() for e in json.loads(batch["body"])["events"]]
            return types if ("complained", f"complaint@{SIM}") in types else None
        types = wait_for(posted, timeout=30, what="the webhook batches")
        assert ("bounced", f"bounce@{SIM}") in types and ("delivered", "someone@example.test") in types

        # Not counted by the reputation guard either.
        tenants = node.admin("GET", "/admin/tenants").json()["tenants"]
        assert tenants[0]["reputation"]["delivered"] == 0 and tenants[0]["reputation"]["hard_bounces"] == 0
        # Nor shown as an egress source.
        assert [s["name"] for s in node.admin("GET", "/admin/egress").json()["sources"]] == ["default"]
    finally:
        hooks.stop()
        sink.stop()
        dns.stop()


def test_a_sandbox_tenant_and_templates_render_as_usual(tmp_path, make_node):
    sink, dns = one_mx_world(tmp_path)
    try:
        node = make_node(delivery_config(dns.port, sink.port))
        r = node.admin("POST", "/admin/tenants", json={"name": "trial", "sandbox": True})
        assert r.status_code == 201, r.text
        assert r.json()["tenant"]["sandbox"] is True
        tenant_id, key = r.json()["tenant"]["id"], r.json()["api_key"]
        body = {"from": "App <app@sender.test>", "subject": "Hi {{name}}", "text": "Dear {{name}}",
                "to": [{"email": "ann@example.test", "substitutions": {"name": "Ann"}},
                       {"email": f"bounce@{SIM}", "substitutions": {"name": "Bob"}}]}
        # Validation is the tenant API's as ever.
        bad = node.submit(key, {**body, "strict": True, "text": "{{missing}}"})
        assert bad.status_code == 400, bad.text
        assert node.submit(key, {**body, "sandbox": "yes"}).status_code == 400
        r = node.submit(key, body)
        assert r.status_code == 202, r.text
        message = r.json()["id"]
        rs = settled(node, key, message)
        assert rs["ann@example.test"]["status"] == "delivered"
        assert rs[f"bounce@{SIM}"]["status"] == "bounced"
        copy = requests.get(node.url(f"/v1/messages/{message}/content"),
                            params={"recipient": rs["ann@example.test"]["id"]},
                            headers={"Authorization": f"Bearer {key}"}, timeout=30)
        assert copy.status_code == 200 and b"Subject: Hi Ann" in copy.content and b"Dear Ann" in copy.content
        assert sink.stats()["connections_total"] == 0

        # Out of the sandbox, the same tenant's mail goes out for real.
        r = node.admin("PATCH", f"/admin/tenants/{tenant_id}", json={"sandbox": False})
        assert r.status_code == 200 and r.json()["tenant"]["sandbox"] is False
        r = node.submit(key, {"from": "App <app@sender.test>", "to": ["real@example.test"], "subject": "s",
                              "text": "x"})
        settled(node, key, r.json()["id"])
        assert [m["rcpt_to"] for m in sink.messages()] == [["real@example.test"]]
        assert node.admin("PATCH", f"/admin/tenants/{tenant_id}", json={"sandbox": 1}).status_code == 400
    finally:
        sink.stop()
        dns.stop()


def test_the_sandbox_flag_survives_a_restart(tmp_path, make_node):
    node = make_node()
    r = node.admin("POST", "/admin/tenants", json={"name": "trial", "sandbox": True})
    assert r.status_code == 201
    node.stop()
    node.start()
    tenants = {t["name"]: t for t in node.admin("GET", "/admin/tenants").json()["tenants"]}
    assert tenants["trial"]["sandbox"] is True and tenants["default"]["sandbox"] is False


def test_the_simulator_names_are_reserved(make_node):
    raw = '[[egress.sources]]\nname = "~sandbox"\n'
    node = make_node(raw_config=raw, start=False)
    try:
        node.start()
        raise AssertionError("a source named ~sandbox was accepted")
    except RuntimeError as e:
        assert "cannot start with '~'" in str(e)
