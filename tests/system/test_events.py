"""Events and webhooks end to end: the real petrel binary delivering to a scripted SMTP server,
GET /v1/events paged under concurrent writes, and webhook batches posted to a scriptable
receiver (200, 500, hanging, HTTPS with a test CA) and checked with the documented signature
recipe."""
import datetime
import hashlib
import hmac
import json
import pathlib
import sys
import threading
import time

import jsonschema
import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "tools"))
from servers import DnsServer, SmtpServer, WebhookServer, make_ca, make_leaf  # noqa: E402

from conftest import delivery_config, settle_message, submit_ok, wait_for  # noqa: E402

SCHEMA = json.loads((pathlib.Path(__file__).resolve().parents[2] / "docs/schemas/event.schema.json").read_text())
VALIDATOR = jsonschema.Draft202012Validator(SCHEMA, format_checker=jsonschema.FormatChecker())


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    work = tmp_path_factory.mktemp("events-world")
    make_ca(work)
    cert, key = make_leaf(work, "hooks", ["hooks.test"])
    sink = SmtpServer(work, listen=["127.0.0.2:0"]).start()
    records = [
        {"name": "mx1.example.test", "type": "A", "address": "127.0.0.2"},
        {"name": "example.test", "type": "MX", "preference": 10, "exchange": "mx1.example.test"},
        {"name": "hooks.test", "type": "A", "address": "127.0.0.1"},
    ]
    dns = DnsServer(work, {"records": records}).start()
    yield {"sink": sink, "dns": dns, "port": sink.port, "work": work, "ca": work / "ca.pem",
           "cert": cert, "key": key}
    sink.stop()
    dns.stop()


@pytest.fixture
def hooks(world):
    server = WebhookServer(world["work"]).start()
    yield server
    server.stop()


def config(world, **overrides):
    overrides = {
        "delivery.idle_timeout": '"1s"',
        "webhooks.allow_private_networks": "true",
        "webhooks.require_https": "false",
        "webhooks.max_delay": '"200ms"',
        "webhooks.retry_schedule": '["300ms"]',
        "webhooks.timeout": '"2s"',
        **overrides,
    }
    return delivery_config(world["dns"].port, world["port"], **overrides)


def events_page(node, key, **params):
    r = node.session.get(node.url("/v1/events"), params=params, headers={"Authorization": f"Bearer {key}"},
                         timeout=30)
    assert r.status_code == 200, r.text
    for event in r.json()["events"]:  # every event as documented
        VALIDATOR.validate(event)
    return r.json()


def all_events(node, key, **params):
    out, after = [], None
    while True:
        page = events_page(node, key, **params, **({"after": after} if after else {}), limit=7)
        out.extend(page["events"])
        after = page["next"]
        if not page["more"]:
            return out


def visible_events(node, key, count, **params):
    """Every event of the query once at least `count` are visible. An event is listed once its
    transaction and every older one have ended (on PostgreSQL, transactions of other databases
    of the same cluster count too: xids are cluster-wide), so right after a message settles its
    last event may take a moment to appear."""
    return wait_for(lambda: (lambda ev: ev if len(ev) >= count else None)(all_events(node, key, **params)),
                    what=f"{count} visible events")


def create_webhook(node, key, **body):
    r = node.session.post(node.url("/v1/webhooks"), json=body, headers={"Authorization": f"Bearer {key}"},
                          timeout=30)
    assert r.status_code == 201, r.text
    return r.json()


def webhook(node, key, webhook_id):
    r = node.session.get(node.url(f"/v1/webhooks/{webhook_id}"), headers={"Authorization": f"Bearer {key}"},
                         timeout=30)
    assert r.status_code == 200, r.text
    return r.json()


def send(node, n, prefix, **extra):
    return [submit_ok(node, to=[f"{prefix}{i}@example.test"], **extra)["id"] for i in range(n)]


def verify(secret, request):
    """The receiver's recipe from docs/webhooks.md."""
    header = request["headers"]["petrel-signature"]
    items = [item.split("=", 1) for item in header.split(",")]
    t = next(v for k, v in items if k == "t")
    expected = hmac.new(secret.encode(), f"{t}.{request['body']}".encode(), hashlib.sha256).hexdigest()
    return (any(hmac.compare_digest(expected, v) for k, v in items if k == "v1")
            and abs(time.time() - int(t)) < 300)


def test_events_are_paged_filtered_and_kept_per_tenant(make_node, world):
    node = make_node(config(world))
    ids = send(node, 3, "pg", campaign="autumn", tags=["t1"], metadata={"order": 7})
    ids += send(node, 2, "other")
    for i in ids:
        settle_message(node, i)
    events = visible_events(node, node.key, 10)
    assert len(events) == 10  # accepted + delivered per message
    assert len({e["id"] for e in events}) == 10
    delivered = [e for e in events if e["type"] == "delivered"]
    assert len(delivered) == 5
    first = next(e for e in delivered if e["email"] == "pg0@example.test")
    assert first["message"] == ids[0] and first["campaign"] == "autumn"
    assert first["tags"] == ["t1"] and first["metadata"] == {"order": 7}
    assert first["data"]["smtp_code"] == 250 and first["data"]["mx_host"] == "mx1.example.test"
    assert first["at"].endswith("Z")
    assert len(all_events(node, node.key, type="delivered")) == 5
    assert len(all_events(node, node.key, type="accepted,delivered")) == 10
    assert len(all_events(node, node.key, campaign="autumn")) == 6
    assert len(all_events(node, node.key, recipient="PG1@example.test")) == 1
    assert len(all_events(node, node.key, recipient="pg1@EXAMPLE.test")) == 1
    assert len(all_events(node, node.key, message=ids[4])) == 2
    assert all_events(node, node.key, since="2000-01-01T00:00:00Z", until="2000-01-02T00:00:00Z") == []
    assert len(all_events(node, node.key, since=str(int(time.time()) - 600))) == 10
    # Bad parameters name themselves.
    for params, field in [({"type": "sent"}, "type"), ({"limit": "0"}, "limit"), ({"since": "yesterday"}, "since"),
                          ({"after": "x"}, "after"), ({"message": "nope"}, "message")]:
        r = node.session.get(node.url("/v1/events"), params=params, headers={"Authorization": f"Bearer {node.key}"})
        assert r.status_code == 400 and field in r.json()["detail"], r.text
    # Another tenant sees none of them.
    _, other_key = node.create_tenant("stranger")
    assert events_page(node, other_key)["events"] == []
    assert node.session.get(node.url("/v1/events")).status_code == 401


def test_failures_have_their_documented_events(make_node, world):
    node = make_node(config(world))
    deferred = submit_ok(node, to=["tempfail-1-x@example.test"])["id"]
    bounced = submit_ok(node, to=["permfail-y@example.test"])["id"]
    settle_message(node, deferred)
    settle_message(node, bounced)
    types = [e["type"] for e in visible_events(node, node.key, 3, message=deferred)]
    assert types == ["accepted", "deferred", "delivered"]
    (b,) = visible_events(node, node.key, 1, message=bounced, type="bounced")
    assert b["data"]["smtp_code"] == 550 and b["data"]["hard"] is True and b["data"]["category"]
    (d,) = all_events(node, node.key, message=deferred, type="deferred")
    assert d["data"]["smtp_code"] == 451 and d["data"]["next_attempt_at"]


def test_pagination_under_concurrent_writes_returns_each_event_once(make_node, world):
    node = make_node(config(world))
    done = threading.Event()

    def writer():
        for i in range(150):
            submit_ok(node, to=[f"cw{i}@example.test"])
        done.set()

    thread = threading.Thread(target=writer)
    thread.start()
    seen, after = [], "0"
    deadline = time.time() + 60
    while time.time() < deadline:
        page = events_page(node, node.key, after=after, limit=10)
        seen.extend(e["id"] for e in page["events"])
        after = page["next"]
        if done.is_set() and not page["more"]:
            # Caught up once the writer stopped and deliveries settled.
            if len([x for x in all_events(node, node.key, type="delivered")]) == 150:
                page = events_page(node, node.key, after=after, limit=1000)
                seen.extend(e["id"] for e in page["events"])
                break
        time.sleep(0.01)
    thread.join()
    assert len(seen) == len(set(seen)), "an event was returned twice"
    assert set(seen) == {e["id"] for e in all_events(node, node.key)}
    assert len(seen) == 300


def test_webhook_batches_are_signed_and_carry_the_documented_fields(make_node, world, hooks):
    node = make_node(config(world))
    created = create_webhook(node, node.key, url=f"http://127.0.0.1:{hooks.port}/petrel/hook?x=1")
    secret = created["secret"]
    assert secret.startswith("whsec_") and created["state"] == "active" and created["events"] is None
    listed = node.session.get(node.url("/v1/webhooks"), headers={"Authorization": f"Bearer {node.key}"}).json()
    assert [w["id"] for w in listed["webhooks"]] == [created["id"]] and "secret" not in listed["webhooks"][0]
    ids = send(node, 3, "wh", campaign="c1", metadata={"k": "v"})
    got = wait_for(lambda: (lambda ev: ev if len(ev) >= 6 else None)(hooks.events()), what="6 events")
    requests_seen = hooks.requests()
    for r in requests_seen:
        assert r["path"] == "/petrel/hook?x=1"
        assert r["headers"]["content-type"] == "application/json"
        assert r["headers"]["petrel-webhook"] == created["id"]
        assert verify(secret, r), r["headers"]
        assert not verify("whsec_wrong", r)
        assert json.loads(r["body"])["webhook"] == created["id"]
    assert {(e["type"], e["message"]) for e in got} == {(t, i) for i in ids for t in ("accepted", "delivered")}
    delivered = next(e for e in got if e["type"] == "delivered")
    assert delivered["email"].startswith("wh") and delivered["campaign"] == "c1" and delivered["metadata"] == {"k": "v"}
    assert delivered["data"]["smtp_code"] == 250 and delivered["tenant"]
    # The events are the same as GET /v1/events shows them.
    by_id = {e["id"]: e for e in all_events(node, node.key)}
    for e in got:
        assert by_id[e["id"]] == e
        VALIDATOR.validate(e)
    status = wait_for(lambda: (lambda w: w if w["delivered"] == 6 else None)(webhook(node, node.key, created["id"])),
                      what="delivered count")
    assert status["failures"] == 0 and status["last_success_at"]


def test_only_subscribed_types_are_posted(make_node, world, hooks):
    node = make_node(config(world))
    create_webhook(node, node.key, url=f"http://127.0.0.1:{hooks.port}/", events=["delivered"])
    ids = send(node, 2, "sub")
    got = wait_for(lambda: (lambda ev: ev if len(ev) >= 2 else None)(hooks.events()), what="2 events")
    # Events are posted in order: once a later message's delivery is posted, every earlier event
    # (the accepted ones included) has been either posted or skipped.
    (later,) = send(node, 1, "sub-later")
    wait_for(lambda: any(e["message"] == later for e in hooks.events()), what="the later delivery")
    assert {e["type"] for e in hooks.events()} == {"delivered"}
    assert sorted(e["message"] for e in got[:2]) == sorted(ids)


def test_failed_posts_are_retried_until_the_endpoint_answers(make_node, world, hooks):
    node = make_node(config(world))
    hooks.configure(mode="status", status=500)
    created = create_webhook(node, node.key, url=f"http://127.0.0.1:{hooks.port}/")
    ids = send(node, 2, "retry")
    wait_for(lambda: len(hooks.requests()) >= 3, what="three failed attempts")
    status = webhook(node, node.key, created["id"])
    assert status["failures"] >= 2 and status["last_error"] == "HTTP 500" and status["state"] == "active"
    assert status["failing_since"] and status["next_attempt_at"]
    hooks.configure(mode="ok")
    got = wait_for(lambda: (lambda ev: ev if len(ev) >= 4 else None)(hooks.events("ok")), what="events after recovery")
    assert {(e["type"], e["message"]) for e in got} == {(t, i) for i in ids for t in ("accepted", "delivered")}
    # At least once: the failed batches carried the same events again.
    failed_ids = {e["id"] for e in hooks.events("status")}
    assert failed_ids <= {e["id"] for e in got}
    status = wait_for(lambda: (lambda w: w if w["failures"] == 0 else None)(webhook(node, node.key, created["id"])),
                      what="recovered")
    assert status["last_error"] == "HTTP 500"  # kept for the operator


@pytest.mark.parametrize("fault", ["hang", "slow", "status", "reset", "bad-tls"])
def test_a_misbehaving_endpoint_does_not_delay_mail(make_node, world, fault):
    # Each receiver fault of docs/reliability.md: mail is accepted and delivered at its own pace
    # while the endpoint hangs, answers slowly, fails with 500, resets the connection, or presents
    # a certificate that does not match its name.
    tls = fault == "bad-tls"
    server = WebhookServer(world["work"], cert=world["cert"] if tls else None,
                           key=world["key"] if tls else None).start()
    try:
        server.configure(**{"hang": {"mode": "hang", "delay": 30}, "slow": {"mode": "slow", "delay": 3},
                            "status": {"mode": "status", "status": 500}, "reset": {"mode": "reset"},
                            "bad-tls": {"mode": "ok"}}[fault])
        node = make_node(config(world, **({"webhooks.ca_file": f'"{world["ca"]}"'} if tls else {})))
        url = f"https://127.0.0.1:{server.port}/" if tls else f"http://127.0.0.1:{server.port}/"
        created = create_webhook(node, node.key, url=url)
        started = time.time()
        ids = send(node, 30, f"fault-{fault}")
        for i in ids:
            assert all(r["status"] == "delivered" for r in settle_message(node, i, timeout=20).values())
        elapsed = time.time() - started
        print(f"{fault}: 30 messages accepted and delivered in {elapsed:.2f} s")
        assert elapsed < 15
        if fault != "slow":
            status = wait_for(lambda: (lambda w: w if w["failures"] >= 1 else None)(webhook(node, node.key, created["id"])),
                              what="the endpoint's failure recorded")
            assert status["last_error"], status
            if tls:
                assert "TLS" in status["last_error"] and not server.requests(), status
        else:
            assert all(r["answered"] == "slow" for r in server.requests())
    finally:
        server.stop()


def test_undelivered_webhook_events_are_posted_after_a_restart(make_node, world, hooks):
    node = make_node(config(world))
    hooks.configure(mode="status", status=503)
    create_webhook(node, node.key, url=f"http://127.0.0.1:{hooks.port}/")
    ids = send(node, 3, "restart")
    for i in ids:
        settle_message(node, i)
    wait_for(lambda: len(hooks.requests()) >= 1, what="a failed attempt")
    node.stop()
    hooks.configure(mode="ok")
    node.start()
    got = wait_for(lambda: (lambda ev: ev if len(ev) >= 6 else None)(hooks.events("ok")), what="events after restart")
    assert {(e["type"], e["message"]) for e in got} == {(t, i) for i in ids for t in ("accepted", "delivered")}


def test_an_endpoint_too_far_behind_is_paused_and_resumed(make_node, world, hooks):
    node = make_node(config(world, **{"webhooks.max_pending": "4"}))
    hooks.configure(mode="status", status=500)
    created = create_webhook(node, node.key, url=f"http://127.0.0.1:{hooks.port}/")
    ids = send(node, 4, "pause")
    status = wait_for(lambda: (lambda w: w if w["state"] == "paused" else None)(webhook(node, node.key, created["id"])),
                      what="paused")
    assert "events waiting" in status["paused_reason"]
    attempts = len(hooks.requests())
    # Paused: no attempt is scheduled, and new events (stored and queryable) are not posted.
    assert status["next_attempt_at"] is None, status
    (more,) = send(node, 1, "pause-more")
    settle_message(node, more)
    assert webhook(node, node.key, created["id"])["state"] == "paused"
    assert len(hooks.requests()) == attempts
    assert len(all_events(node, node.key)) >= 4  # still queryable
    hooks.configure(mode="ok")
    r = node.session.post(node.url(f"/v1/webhooks/{created['id']}/resume"), headers={"Authorization": f"Bearer {node.key}"})
    assert r.status_code == 200 and r.json()["state"] == "active", r.text
    for i in ids:
        settle_message(node, i)
    wait_for(lambda: {e["message"] for e in hooks.events("ok") if e["type"] == "delivered"} >= set(ids) | {more},
             what="every delivered event after resume")


def test_https_endpoints_are_verified(make_node, world):
    server = WebhookServer(world["work"], cert=world["cert"], key=world["key"]).start()
    try:
        node = make_node(config(world, **{"webhooks.require_https": "true", "webhooks.ca_file": f'"{world["ca"]}"'}))
        create_webhook(node, node.key, url=f"https://hooks.test:{server.port}/in")
        ids = send(node, 1, "tls")
        wait_for(lambda: {e["message"] for e in server.events()} == set(ids), what="an event over HTTPS")
        # An endpoint whose certificate does not match its name is never posted to.
        bad = create_webhook(node, node.key, url=f"https://127.0.0.1:{server.port}/in")
        send(node, 1, "tls-again")  # a webhook gets what happens after its creation
        status = wait_for(lambda: (lambda w: w if w["failures"] >= 1 else None)(webhook(node, node.key, bad["id"])),
                          what="a TLS failure")
        assert "TLS" in status["last_error"], status
    finally:
        server.stop()


def test_webhook_requests_are_validated(make_node, world):
    node = make_node(delivery_config(world["dns"].port, world["port"]))  # defaults: https, public only
    cases = [
        ({"url": "http://hooks.example.com/x"}, "url"),
        ({"url": "https://127.0.0.1/x"}, "url"),
        ({"url": "https://localhost/x"}, "url"),
        ({"url": "https://[::1]/x"}, "url"),
        ({"url": "https://user:pw@hooks.example.com/x"}, "url"),
        ({"url": "ftp://hooks.example.com/x"}, "url"),
        ({"url": "https://hooks.example.com/x", "events": ["sent"]}, "events"),
        ({"url": "https://hooks.example.com/x", "secret": "short"}, "secret"),
        ({"url": "https://hooks.example.com/x", "colour": "red"}, "colour"),
        ({}, "url"),
    ]
    for body, field in cases:
        r = node.session.post(node.url("/v1/webhooks"), json=body, headers={"Authorization": f"Bearer {node.key}"})
        assert r.status_code == 400, (body, r.text)
        assert r.json()["errors"][0]["field"] == field, (body, r.text)
    # The refusals say which setting decides, and which types there are.
    detail = lambda body: node.session.post(node.url("/v1/webhooks"), json=body,  # noqa: E731
                                            headers={"Authorization": f"Bearer {node.key}"}).json()["detail"]
    assert "webhooks.require_https" in detail({"url": "http://hooks.example.com/x"})
    assert "webhooks.allow_private_networks" in detail({"url": "https://127.0.0.1/x"})
    types = detail({"url": "https://hooks.example.com/x", "events": ["sent"]})
    assert "unknown event type \"sent\"" in types and "delivered" in types and "bounced" in types
    ok = create_webhook(node, node.key, url="https://hooks.example.com/x", secret="my-own-secret-123456")
    assert ok["secret"] == "my-own-secret-123456"
    # Another tenant can neither see nor delete it.
    _, other = node.create_tenant("other")
    h = {"Authorization": f"Bearer {other}"}
    assert node.session.get(node.url(f"/v1/webhooks/{ok['id']}"), headers=h).status_code == 404
    assert node.session.delete(node.url(f"/v1/webhooks/{ok['id']}"), headers=h).status_code == 404
    mine = {"Authorization": f"Bearer {node.key}"}
    assert node.session.delete(node.url(f"/v1/webhooks/{ok['id']}"), headers=mine).status_code == 204
    assert node.session.get(node.url("/v1/webhooks"), headers=mine).json()["webhooks"] == []


def test_stats_count_events_per_bucket_tenant_and_campaign(make_node, world):
    node = make_node(config(world))
    ids = send(node, 3, "st", campaign="s1")
    ids.append(submit_ok(node, to=["tempfail-1-st@example.test"])["id"])
    ids.append(submit_ok(node, to=["permfail-st@example.test", "st-ok@example.test"])["id"])
    for i in ids:
        settle_message(node, i)

    def stats(key=node.key, **params):
        r = node.session.get(node.url("/v1/stats"), params=params, headers={"Authorization": f"Bearer {key}"})
        assert r.status_code == 200, r.text
        return r.json()

    hourly = stats()
    assert hourly["bucket"] == "hour" and len(hourly["buckets"]) == 24
    t = hourly["totals"]
    assert (t["messages"], t["recipients"], t["delivered"], t["deferred"]) == (5, 6, 5, 1)
    assert (t["bounced"], t["bounced_hard"], t["bounced_soft"]) == (1, 1, 0)
    assert t["delivery_rate"] == 5 / 6
    assert sum(b["delivered"] for b in hourly["buckets"]) == 5
    assert all(b["start"].endswith(":00:00.000Z") for b in hourly["buckets"])
    campaign = stats(campaign="s1")["totals"]
    assert (campaign["messages"], campaign["delivered"], campaign["bounced"]) == (3, 3, 0)
    daily = stats(bucket="day")
    assert len(daily["buckets"]) == 30 and daily["totals"]["delivered"] == 5
    assert stats(since="2001-01-01T00:00:00Z", until="2001-01-02T00:00:00Z")["totals"]["delivered"] == 0
    r = node.session.get(node.url("/v1/stats"), params={"bucket": "week"}, headers={"Authorization": f"Bearer {node.key}"})
    assert r.status_code == 400 and r.json()["errors"][0]["field"] == "bucket"
    _, other = node.create_tenant("stats-stranger")
    assert stats(key=other)["totals"]["messages"] == 0


def test_events_past_the_retention_are_pruned(make_node, world):
    node = make_node(config(world, **{"events.retention": '"2s"', "events.prune_interval": '"1s"'}))
    first = send(node, 2, "old")
    for i in first:
        settle_message(node, i)
    assert len(visible_events(node, node.key, 4)) == 4
    # Pruned once older than 2 s; the newest event of the store always stays (positions are
    # never reused).
    wait_for(lambda: len(all_events(node, node.key)) <= 1, timeout=15, what="pruning")
    fresh = send(node, 1, "new")
    settle_message(node, fresh[0])
    assert {e["message"] for e in all_events(node, node.key)} >= {fresh[0]}


def test_a_rotated_secret_signs_next_to_the_old_one_for_the_overlap(make_node, world, hooks):
    node = make_node(config(world, **{"webhooks.rotation_overlap": '"3s"'}))
    created = create_webhook(node, node.key, url=f"http://127.0.0.1:{hooks.port}/")
    old = created["secret"]
    r = node.session.post(node.url(f"/v1/webhooks/{created['id']}/rotate"), headers={"Authorization": f"Bearer {node.key}"})
    assert r.status_code == 200, r.text
    new = r.json()["secret"]
    overlap_until = r.json()["previous_secret_until"]
    assert new != old and new.startswith("whsec_") and overlap_until
    send(node, 1, "rot")
    wait_for(lambda: len(hooks.requests()) >= 1, what="a batch")
    first = hooks.requests()[0]
    assert first["headers"]["petrel-signature"].count("v1=") == 2
    assert verify(new, first) and verify(old, first)
    # Past the overlap only the new secret signs; a restart keeps it.
    end = datetime.datetime.fromisoformat(overlap_until.replace("Z", "+00:00")).timestamp()
    time.sleep(max(0.0, end - time.time()) + 0.05)
    node.stop()
    node.start()
    hooks.reset()
    send(node, 1, "rot2")
    wait_for(lambda: len(hooks.requests()) >= 1, what="a batch after the overlap")
    later = hooks.requests()[0]
    assert later["headers"]["petrel-signature"].count("v1=") == 1
    assert verify(new, later) and not verify(old, later)
    # A secret of one's own, and validation.
    h = {"Authorization": f"Bearer {node.key}"}
    r = node.session.post(node.url(f"/v1/webhooks/{created['id']}/rotate"), json={"secret": "short"}, headers=h)
    assert r.status_code == 400 and r.json()["errors"][0]["field"] == "secret"
    r = node.session.post(node.url(f"/v1/webhooks/{created['id']}/rotate"), json={"secret": "mine-0123456789abcdef"},
                          headers=h)
    assert r.status_code == 200 and r.json()["secret"] == "mine-0123456789abcdef"
    _, other = node.create_tenant("rotate-stranger")
    r = node.session.post(node.url(f"/v1/webhooks/{created['id']}/rotate"), headers={"Authorization": f"Bearer {other}"})
    assert r.status_code == 404
