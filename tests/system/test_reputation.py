"""The reputation guard (docs/sending.md, "Reputation guard"): a tenant's hard-bounce and
complaint rates over a rolling window, a reputation_warning event at each threshold crossed, and
a pause of its sending (recipients wait) until an operator resumes it."""
import base64

import requests

from conftest import delivery_config, one_mx_world, wait_events, wait_for
from test_bounces import arf

GUARD = {"reputation.min_volume": "20", "reputation.check_interval": '"200ms"', "reputation.window": '"1h"'}


def submit_to(node, key, addresses, **fields):
    ids = []
    for address in addresses:
        r = node.submit(key, {"from": "App <app@sender.test>", "to": [address], "subject": "s", "text": "x",
                              **fields})
        assert r.status_code == 202, r.text
        ids.append(r.json()["id"])
    return ids


def final(node, key, ids, states=("delivered", "bounced")):
    def done():
        for message_id in ids:
            for x in node.get_message(key, message_id).json()["recipients"]:
                if x["status"] not in states:
                    return None
        return True
    wait_for(done, timeout=40, what="the recipients to be final")


def reputation_of(node, name):
    tenants = {t["name"]: t for t in node.admin("GET", "/admin/tenants").json()["tenants"]}
    return tenants[name]["reputation"]


def test_hard_bounces_warn_then_pause_until_resumed(tmp_path, make_node):
    sink, dns = one_mx_world(tmp_path)
    try:
        node = make_node(delivery_config(dns.port, sink.port, **GUARD))
        tenant_id, key = node.create_tenant("shop")
        final(node, key, submit_to(node, key, [f"ok{i}@example.test" for i in range(19)]))
        # 1 of 20 (5%): the warning threshold.
        final(node, key, submit_to(node, key, ["permfail-1@example.test"]))
        warning = wait_events(node, 1, key=key, type="reputation_warning")[0]
        assert warning["message"] is None and warning["recipient"] is None
        data = warning["data"]
        assert (data["level"], data["metric"], data["paused"]) == ("warning", "hard_bounce_rate", False)
        assert (data["rate_ppm"], data["threshold_ppm"], data["delivered"], data["hard_bounces"]) == (50000, 50000, 19, 1)
        assert reputation_of(node, "shop")["state"] == "warning"
        assert node.admin("GET", "/admin/controls").json()["controls"] == []

        # 3 of 22 (13.6%): past the pause threshold. The tenant's sending stops; its mail waits.
        final(node, key, submit_to(node, key, ["permfail-2@example.test", "permfail-3@example.test"]))
        paused = wait_events(node, 2, key=key, type="reputation_warning")[1]["data"]
        assert (paused["level"], paused["paused"], paused["hard_bounces"]) == ("paused", True, 3)
        controls = wait_for(lambda: node.admin("GET", "/admin/controls").json()["controls"] or None,
                            what="the guard's suspension")
        assert [(c["kind"], c["target"]) for c in controls] == [("tenant", tenant_id)]
        assert "reputation guard: hard bounce rate 13.64% >= 10.00%" in controls[0]["reason"]
        action = wait_events(node, 1, key=key, type="admin_action")[0]["data"]
        assert (action["action"], action["by"]) == ("suspend", "reputation_guard")
        rep = reputation_of(node, "shop")
        assert rep["state"] == "paused" and rep["hard_bounce_rate_ppm"] == 136364
        assert node.metric("petrel_reputation_actions_total", {"action": "pause"}) == 1

        before = len(sink.messages())
        waiting = submit_to(node, key, ["waits@example.test"])  # accepted: 202, then it waits
        other = node.submit(node.key, {"from": "a@sender.test", "to": ["other@example.test"], "subject": "s",
                                       "text": "x"})
        final(node, node.key, [other.json()["id"]])  # other tenants are not affected
        r = node.get_message(key, waiting[0]).json()["recipients"][0]
        assert r["status"] == "queued"
        assert [m["rcpt_to"] for m in sink.messages()[before:]] == [["other@example.test"]]

        # An operator resumes it: the waiting mail goes, and the window starts over.
        assert node.admin("POST", f"/admin/tenants/{tenant_id}/resume").status_code == 204
        final(node, key, waiting)
        wait_for(lambda: reputation_of(node, "shop")["state"] == "ok", what="the guard to start over")
        assert reputation_of(node, "shop")["hard_bounces"] == 0
        assert len(wait_events(node, 2, key=key, type="reputation_warning")) == 2
    finally:
        sink.stop()
        dns.stop()


def test_complaints_pause_at_their_own_threshold(tmp_path, make_node):
    sink, dns = one_mx_world(tmp_path)
    try:
        node = make_node(delivery_config(dns.port, sink.port, **GUARD))
        tenant_id, key = node.create_tenant("news")
        addresses = [f"reader{i}@example.test" for i in range(25)]
        final(node, key, submit_to(node, key, addresses))
        assert reputation_of(node, "news")["state"] == "ok"
        # One complaint in 25 (4%): past 0.3% at once.
        copy = next(m for m in sink.messages() if m["rcpt_to"] == ["reader7@example.test"])
        report = arf(base64.b64decode(copy["data_b64"]), "reader7@example.test")
        r = node.admin("POST", "/admin/inbound", data=report, headers={"Content-Type": "message/rfc822"})
        assert r.status_code == 200, r.text
        data = wait_events(node, 1, key=key, type="reputation_warning")[0]["data"]
        assert (data["level"], data["metric"], data["complaints"], data["paused"]) == ("paused", "complaint_rate", 1, True)
        assert data["rate_ppm"] == 40000 and data["threshold_ppm"] == 3000
        wait_for(lambda: reputation_of(node, "news")["state"] == "paused", what="the pause")
        assert node.admin("GET", "/admin/controls").json()["controls"][0]["target"] == tenant_id
    finally:
        sink.stop()
        dns.stop()


def test_complaints_warn_below_their_pause_threshold(tmp_path, make_node):
    sink, dns = one_mx_world(tmp_path)
    try:
        node = make_node(delivery_config(dns.port, sink.port, **{**GUARD, "reputation.complaint_warn": "0.02",
                                                                 "reputation.complaint_pause": "0.05"}))
        _, key = node.create_tenant("letters")
        final(node, key, submit_to(node, key, [f"reader{i}@example.test" for i in range(40)]))
        # One complaint in 40 (2.5%): a warning, no pause.
        copy = next(m for m in sink.messages() if m["rcpt_to"] == ["reader3@example.test"])
        report = arf(base64.b64decode(copy["data_b64"]), "reader3@example.test")
        assert node.admin("POST", "/admin/inbound", data=report,
                          headers={"Content-Type": "message/rfc822"}).status_code == 200
        data = wait_events(node, 1, key=key, type="reputation_warning")[0]["data"]
        assert (data["level"], data["metric"], data["paused"], data["sender_domain"]) == (
            "warning", "complaint_rate", False, None)
        assert (data["rate_ppm"], data["threshold_ppm"], data["complaints"], data["delivered"]) == (25000, 20000, 1, 40)
        assert reputation_of(node, "letters")["state"] == "warning"
        assert node.admin("GET", "/admin/controls").json()["controls"] == []
    finally:
        sink.stop()
        dns.stop()


def test_a_bad_sender_domain_pauses_its_tenant_though_the_whole_looks_fine(tmp_path, make_node):
    sink, dns = one_mx_world(tmp_path)
    try:
        node = make_node(delivery_config(dns.port, sink.port, **{**GUARD, "reputation.min_volume": "10"}))
        tenant_id, key = node.create_tenant("mixed")

        def send(sender, addresses):
            ids = []
            for address in addresses:
                r = node.submit(key, {"from": f"App <app@{sender}>", "to": [address], "subject": "s", "text": "x"})
                assert r.status_code == 202, r.text
                ids.append(r.json()["id"])
            final(node, key, ids)
        send("receipts.test", [f"r{i}@example.test" for i in range(40)])
        # 2 hard bounces of 10 from news.test (20%); 2 of 50 for the tenant (4%: below a warning).
        send("news.test", [f"n{i}@example.test" for i in range(8)] + ["permfail-n1@example.test",
                                                                       "permfail-n2@example.test"])
        warning = wait_events(node, 1, key=key, type="reputation_warning")
        data = warning[0]["data"]
        assert (data["sender_domain"], data["level"], data["paused"], data["hard_bounces"], data["delivered"]) == (
            "news.test", "paused", True, 2, 8)
        controls = wait_for(lambda: node.admin("GET", "/admin/controls").json()["controls"] or None,
                            what="the guard's suspension")
        assert [(c["kind"], c["target"]) for c in controls] == [("tenant", tenant_id)]
        assert "sender domain news.test: hard bounce rate 20.00%" in controls[0]["reason"]
        rep = wait_for(lambda: (lambda r: r if r["state"] == "paused" else None)(reputation_of(node, "mixed")),
                       what="the paused state")
        assert (rep["delivered"], rep["hard_bounces"]) == (48, 2)
        domains = {d["domain"]: d for d in rep["sender_domains"]}
        assert domains["news.test"]["state"] == "paused" and domains["news.test"]["hard_bounce_rate_ppm"] == 200000
        assert domains["receipts.test"]["state"] == "ok" and domains["receipts.test"]["delivered"] == 40
        assert len(wait_events(node, 1, key=key, type="reputation_warning")) == 1
    finally:
        sink.stop()
        dns.stop()


def test_below_the_minimum_volume_nothing_happens_and_it_can_be_off(tmp_path, make_node):
    sink, dns = one_mx_world(tmp_path)
    try:
        node = make_node(delivery_config(dns.port, sink.port, **GUARD))
        _, key = node.create_tenant("tiny")
        final(node, key, submit_to(node, key, ["permfail-a@example.test", "permfail-b@example.test", "ok@example.test"]))
        rep = reputation_of(node, "tiny")
        assert (rep["state"], rep["delivered"], rep["hard_bounces"]) == ("ok", 1, 2)
        r = requests.get(node.url("/v1/events"), params={"type": "reputation_warning"},
                         headers={"Authorization": f"Bearer {key}"}, timeout=30)
        assert r.json()["events"] == []
        bad = make_node(delivery_config(dns.port, sink.port, **{"reputation.bounce_warn": "0.2"}), name="bad",
                        start=False)
        try:
            bad.start()
            raise AssertionError("bounce_warn above bounce_pause was accepted")
        except RuntimeError as e:
            assert "must not be above bounce_pause" in str(e)
    finally:
        sink.stop()
        dns.stop()
