"""Traffic shaping end to end: the real petrel binary delivering to a scripted SMTP server that
records when each message arrived and from which source address; egress sources bound to
127.0.0.20 and 127.0.0.21."""
import time

import pytest
import requests


from conftest import delivery_config, one_mx_world, recipients_of, settle_message, submit_ok, wait_for  # noqa: E402

WARM, OTHER = "127.0.0.20", "127.0.0.21"


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    work = tmp_path_factory.mktemp("shaping-world")
    sink, dns = one_mx_world(work, "other.test")
    yield {"sink": sink, "dns": dns, "port": sink.port}
    sink.stop()
    dns.stop()


def config(world, **overrides):
    overrides = {"delivery.idle_timeout": '"1s"', "delivery.site_failure_delay": '"200ms"', **overrides}
    return delivery_config(world["dns"].port, world["port"], **overrides)


def warm_first(warmup):
    """Two sources, "warm" with this warm-up schedule and "other", and a default pool that uses
    the warm one first whenever it is open, so that its budget is what decides."""
    return f"""
[[egress.sources]]
name = "warm"
address = "{WARM}"
warmup = [{warmup}]

[[egress.sources]]
name = "other"
address = "{OTHER}"

[[egress.pools]]
name = "warm-first"
sources = [{{source = "warm", weight = 1000}}, {{source = "other", weight = 1}}]

[egress]
default_pool = "warm-first"
"""


SOURCES = warm_first("{day = 1, per_day = 5}")


def received(world, tag):
    """Messages the sink received whose recipients contain `tag`, in arrival order."""
    return sorted((m for m in world["sink"].messages() if any(tag in r for r in m["rcpt_to"])),
                  key=lambda m: m["received_at"])


def submit_many(node, n, tag, key=None, **fields):
    ids = []
    for i in range(n):
        body = {"from": "App <app@sender.test>", "subject": "s", "text": "x",
                "to": [f"{tag}-{i}@example.test"], **fields}
        r = node.submit(key or node.key, body)
        assert r.status_code == 202, r.text
        ids.append(r.json()["id"])
    return ids


def wait_delivered(node, ids, key=None, timeout=30):
    def done():
        for message_id in ids:
            r = node.get_message(key or node.key, message_id)
            if any(x["status"] not in ("delivered", "bounced") for x in r.json()["recipients"]):
                return False
        return True
    wait_for(done, timeout=timeout, what="deliveries")


def assert_budget_kept_over_a_clean_stop(node, world, n, prefix):
    """A clean stop stores the warm-up counters (no wait for the 5-second flush): after a restart
    the spent budget stays spent, and n more messages all go through the other source."""
    assert node.stop() == 0
    node.start()
    more = submit_many(node, n, prefix)
    wait_delivered(node, more)
    assert {m["peer"] for m in received(world, prefix + "-")} == {OTHER}


def test_a_site_rate_limit_holds(make_node, world):
    node = make_node(config(world), raw_config="""
[[delivery.sites]]
match = "mx1.example.test"
message_rate = "10/s"
""")
    ids = submit_many(node, 40, "rate")
    wait_delivered(node, ids)
    times = [m["received_at"] for m in received(world, "rate-")]
    assert len(times) == 40
    # GCRA with a burst of 10: 10 at once, then one every 100 ms: 40 take at least 3 s.
    assert times[-1] - times[0] >= 2.7, times[-1] - times[0]
    # Past the burst, no second holds more than 10 (+1 for window edges).
    steady = [t for t in times if t >= times[0] + 1.0]
    for t in steady:
        assert sum(1 for u in steady if t <= u < t + 1.0) <= 11


def test_suspend_stops_delivery_within_a_second_and_resume_restarts_it(make_node, world):
    node = make_node(config(world), raw_config="""
[[delivery.sites]]
match = "mx1.example.test"
message_rate = "5/s"
""")
    ids = submit_many(node, 30, "pause")
    wait_for(lambda: len(received(world, "pause-")) >= 3, what="first deliveries")
    r = node.admin("POST", "/admin/domains/example.test/suspend", json={"reason": "test"})
    assert r.status_code == 200, r.text
    assert r.json()["kind"] == "domain" and r.json()["until"] is None

    def held():
        # Suspended with nothing in flight: nothing can reach the server until the resume.
        d = node.admin("GET", "/admin/queues/example.test").json()
        return d["waiting_for"] == "suspended" and d["in_flight"] == 0

    wait_for(held, what="the suspension in force with nothing in flight")
    stopped_at = len(received(world, "pause-"))
    assert stopped_at < 30
    assert node.admin("GET", "/admin/controls").json()["controls"][0]["target"] == "example.test"
    # A restart keeps the suspension.
    node.stop()
    node.start()
    wait_for(held, what="the suspension in force after the restart")
    assert len(received(world, "pause-")) == stopped_at
    assert node.admin("POST", "/admin/domains/example.test/resume").status_code == 204
    wait_delivered(node, ids)
    assert len(received(world, "pause-")) == 30
    assert node.admin("POST", "/admin/domains/example.test/resume").status_code == 404
    actions = node.sql("SELECT data FROM events WHERE type = 'admin_action' ORDER BY id")
    assert ['"suspend"' in a[0] for a in actions] == [True, False]


def test_warmup_overflow_goes_to_the_other_source_and_the_budget_survives_a_restart(make_node, world):
    node = make_node(config(world), raw_config=SOURCES)
    # Configured but not sent from yet: day 1 has not begun.
    before = {s["name"]: s for s in node.admin("GET", "/admin/egress").json()["sources"]}
    assert before["warm"]["warmup"]["day"] == 1 and before["warm"]["warmup"]["started_at"] is None
    ids = submit_many(node, 12, "warm")
    wait_delivered(node, ids)
    peers = [m["peer"] for m in received(world, "warm-")]
    histories = [[(h["type"], h["data"].get("source"), h["data"].get("error") or h["data"].get("reply"))
                  for h in r["history"]]
                 for message_id in ids for r in recipients_of(node, message_id).values()]
    assert peers.count(WARM) == 5 and peers.count(OTHER) == 7, (peers, histories)
    egress = {s["name"]: s for s in node.admin("GET", "/admin/egress").json()["sources"]}
    assert egress["warm"]["warmup"]["used_today"] == 5 and egress["warm"]["warmup"]["per_day"] == 5
    assert egress["warm"]["warmup"]["day"] == 1 and egress["warm"]["warmup"]["started_at"] is not None
    assert egress["other"]["warmup"] is None
    assert_budget_kept_over_a_clean_stop(node, world, 4, "warmagain")


def test_a_per_site_warmup_budget_holds_at_that_site_only_and_survives_a_restart(make_node, world):
    node = make_node(config(world), raw_config=warm_first('{site = "mx1.*.test", day = 1, per_day = 3}'))
    ids = submit_many(node, 10, "sitewarm")
    wait_delivered(node, ids)
    peers = [m["peer"] for m in received(world, "sitewarm-")]
    assert peers.count(WARM) == 3 and peers.count(OTHER) == 7, peers
    warm = next(s for s in node.admin("GET", "/admin/egress").json()["sources"] if s["name"] == "warm")
    assert warm["warmup"] is None  # no budget of the source's own
    assert warm["site_warmups"] == [{"site": "mx1.*.test", "day": 1, "per_day": 3, "per_hour": None,
                                     "used_today": 3, "used_this_hour": 3}]
    assert_budget_kept_over_a_clean_stop(node, world, 3, "sitewarmagain")


def test_weighted_pool_selection_and_tenant_pools(make_node, world):
    node = make_node(config(world), raw_config=f"""
[[egress.sources]]
name = "a"
address = "{WARM}"

[[egress.sources]]
name = "b"
address = "{OTHER}"

[[egress.pools]]
name = "mostly-a"
sources = [{{source = "a", weight = 3}}, {{source = "b", weight = 1}}]

[[egress.pools]]
name = "only-b"
sources = [{{source = "b"}}]

[egress]
default_pool = "mostly-a"
""")
    ids = submit_many(node, 200, "weight")
    wait_delivered(node, ids, timeout=60)
    peers = [m["peer"] for m in received(world, "weight-")]
    assert 120 <= peers.count(WARM) <= 180, peers.count(WARM)  # 150 expected
    tenant_id, key = node.create_tenant("pinned")
    r = node.admin("PATCH", f"/admin/tenants/{tenant_id}", json={"pool": "only-b", "weight": 2})
    assert r.status_code == 200 and r.json()["tenant"]["pool"] == "only-b"
    assert r.json()["tenant"]["weight"] == 2
    assert node.admin("PATCH", f"/admin/tenants/{tenant_id}", json={"pool": "nope"}).status_code == 400
    pinned = submit_many(node, 10, "pinned", key=key)
    wait_delivered(node, pinned, key=key)
    assert {m["peer"] for m in received(world, "pinned-")} == {OTHER}


def test_tenants_take_turns_and_high_priority_goes_first(make_node, world):
    node = make_node(config(world), raw_config="""
[[delivery.sites]]
match = "mx1.example.test"
message_rate = "20/s"
connection_limit = 1
""")
    # Hold the domain while the queue fills, so that order is decided by the rotation alone.
    node.admin("POST", "/admin/domains/other.test/suspend")
    _, small_key = node.create_tenant("small")

    def many(key, n, tag, **fields):
        ids = []
        for i in range(n):
            r = node.submit(key, {"from": "a@sender.test", "subject": "s", "text": "x",
                                  "to": [f"{tag}-{i}@other.test"], **fields})
            assert r.status_code == 202, r.text
            ids.append(r.json()["id"])
        return ids
    big = many(node.key, 40, "campaign")
    small = many(small_key, 5, "reset")
    urgent = many(node.key, 2, "urgent", priority="high")
    wait_for(lambda: node.admin("GET", "/admin/queues/other.test").json()["queued"] == 47, what="queue")
    node.admin("POST", "/admin/domains/other.test/resume")
    wait_delivered(node, big)
    wait_delivered(node, small, key=small_key)
    order = [m["rcpt_to"][0].split("-")[0] for m in sorted(
        (m for m in world["sink"].messages() if m["rcpt_to"][0].endswith("@other.test")),
        key=lambda m: m["received_at"])]
    assert order[:2] == ["urgent", "urgent"]
    # The small tenant's 5 are among the first 12, not after the campaign's 40.
    assert max(i for i, who in enumerate(order) if who == "reset") < 12, order


def test_backlog_bounds_answer_429_and_503_with_retry_after(make_node, world):
    node = make_node(config(world, **{"shaping.max_waiting_per_tenant": "10",
                                      "shaping.max_waiting_recipients": "15"}))
    node.admin("POST", "/admin/domains/example.test/suspend")
    submit_many(node, 10, "full")
    wait_for(lambda: node.admin("GET", "/admin/queues").json()["totals"]["queued"] == 10, what="backlog")
    r = node.submit(node.key, {"from": "a@sender.test", "subject": "s", "text": "x", "to": ["x@example.test"]})
    assert r.status_code == 429 and int(r.headers["Retry-After"]) >= 1
    _, other_key = node.create_tenant("other")
    for i in range(5):
        ok = node.submit(other_key, {"from": "a@sender.test", "subject": "s", "text": "x",
                                     "to": [f"o{i}@example.test"]})
        assert ok.status_code == 202
    wait_for(lambda: node.admin("GET", "/admin/queues").json()["totals"]["queued"] == 15, what="backlog")
    r = node.submit(other_key, {"from": "a@sender.test", "subject": "s", "text": "x", "to": ["y@example.test"]})
    assert r.status_code == 503 and "Retry-After" in r.headers
    # Cancelling the domain's queue frees the room.
    r = node.admin("POST", "/admin/domains/example.test/bounce", json={"reason": "test"})
    assert r.status_code == 200 and r.json()["cancelled"] == 15
    assert node.submit(node.key, {"from": "a@sender.test", "subject": "s", "text": "x",
                                  "to": ["z@example.test"]}).status_code == 202


def test_a_response_rule_suspends_the_site_for_the_source(make_node, world):
    node = make_node(config(world), raw_config="""
[[shaping.rules]]
name = "deferrals"
reply_code = 451
pattern = "try again later"
threshold = 3
window = "1m"
action = "suspend_site"
duration = "1h"
""")
    submit_many(node, 8, "tempfail-rule")
    wait_for(lambda: any(c["kind"] == "source_site"
                         for c in node.admin("GET", "/admin/controls").json()["controls"]),
             what="the rule's suspension")
    (control,) = node.admin("GET", "/admin/controls").json()["controls"]
    assert control["target"] == "default/example.test" or control["target"].startswith("default/")
    assert "deferrals" in control["reason"] and control["until"] is not None
    # Nothing more is tried through that source while the suspension holds: once the sessions
    # of the attempts before it have ended, recipients that are due again wait behind it.
    wait_for(lambda: all(site["sessions"] == 0
                         for source in node.admin("GET", "/admin/egress").json()["sources"]
                         for site in source["sites"]),
             what="the sessions of the attempts before the suspension to end")
    connections = world["sink"].stats()["connections_total"]
    detail = wait_for(lambda: (lambda d: d if d["lanes"] and d["lanes"][0]["blocked"] and d["due"] >= 1 else None)(
        node.admin("GET", "/admin/queues/example.test").json()), what="recipients due behind the suspension")
    assert world["sink"].stats()["connections_total"] == connections, detail


def test_refused_connections_halve_the_connection_limit_and_deliveries_raise_it(make_node, world):
    node = make_node(config(world, **{"delivery.connection_limit": "8"}))
    world["sink"].configure(greeting="421 4.3.2 Too busy")
    try:
        submit_many(node, 3, "aimd-busy")

        def site():
            sites = node.admin("GET", "/admin/queues").json()["sites"]
            return sites[0] if sites else None
        wait_for(lambda: (site() or {}).get("connection_limit") == 1, what="the limit to drop to 1")
    finally:
        world["sink"].configure(greeting=None)
    ids = submit_many(node, 30, "aimd-ok")
    wait_delivered(node, ids)
    assert site()["connection_limit"] >= 4  # grown back by one per window of deliveries
