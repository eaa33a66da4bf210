"""Sending features an application relies on (docs/api.md): Idempotency-Key (a retried request
answered once, concurrent duplicates and a kill -9 included) and cancelling a message or a batch.
Runs on both stores."""
import concurrent.futures
import datetime
import time


from conftest import delivery_config, settle_message, wait_events, wait_for  # noqa: E402


def submit(node, body, key=None, idem=None, api_key=None):
    headers = {"Authorization": f"Bearer {api_key or node.key}"}
    if idem is not None:
        headers["Idempotency-Key"] = idem
    return node.session.post(node.url("/v1/messages"), json=body, headers=headers, timeout=60)


def post(node, path):
    return node.session.post(node.url(path), headers={"Authorization": f"Bearer {node.key}"}, timeout=60)


def count(node, query):
    return int(node.sql(query)[0][0])


def later(seconds):
    return (datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=seconds)).strftime(
        "%Y-%m-%dT%H:%M:%SZ")


BODY = {"from": "app@example.com", "to": ["idem@example.test"], "subject": "once", "text": "Hello."}


def test_the_same_key_and_body_answer_once(mx_node, mx_world):
    first = submit(mx_node, BODY, idem="order-1")
    assert first.status_code == 202, first.text
    assert "Idempotent-Replayed" not in first.headers
    again = submit(mx_node, BODY, idem="order-1")
    assert again.status_code == 202 and again.json() == first.json()
    assert again.headers["Idempotent-Replayed"] == "true"
    assert count(mx_node, "SELECT COUNT(*) FROM messages") == 1
    settle_message(mx_node, first.json()["id"])
    assert len(mx_world[0].messages()) == 1

    # The same key with another body is a 422 naming the first message; nothing is stored.
    other = submit(mx_node, {**BODY, "subject": "twice?"}, idem="order-1")
    assert other.status_code == 422, other.text
    assert other.json()["type"].endswith("idempotency-key-reused") and first.json()["id"] in other.json()["detail"]
    # Another key, or another tenant with the same key, is another request.
    assert submit(mx_node, BODY, idem="order-2").status_code == 202
    _, other_key = mx_node.create_tenant("other")
    assert submit(mx_node, BODY, idem="order-1", api_key=other_key).status_code == 202
    assert count(mx_node, "SELECT COUNT(*) FROM messages") == 3
    # Bad keys are 400s naming the header; a bad body with a key stores nothing.
    for bad in ("", "x" * 256, "has space", "tab\there"):
        r = submit(mx_node, BODY, idem=bad)
        assert r.status_code == 400 and r.json()["field"] == "Idempotency-Key", (bad, r.text)
    assert submit(mx_node, {"from": "app@example.com"}, idem="order-3").status_code == 400
    assert submit(mx_node, BODY, idem="order-3").status_code == 202  # the key was not taken by the 400


def test_concurrent_duplicates_make_one_message(mx_node):
    body = {**BODY, "to": [f"c{i}@example.test" for i in range(20)]}
    with concurrent.futures.ThreadPoolExecutor(max_workers=16) as pool:
        answers = list(pool.map(lambda _: submit(mx_node, body, idem="burst"), range(32)))
    assert all(a.status_code == 202 for a in answers), [a.text for a in answers if a.status_code != 202]
    assert len({a.json()["id"] for a in answers}) == 1
    assert len({tuple(r["id"] for r in a.json()["recipients"]) for a in answers}) == 1
    assert count(mx_node, "SELECT COUNT(*) FROM messages") == 1
    assert count(mx_node, "SELECT COUNT(*) FROM recipients") == 20


def test_a_key_survives_kill9(mx_node):
    body = {**BODY, "send_at": later(3600)}
    first = submit(mx_node, body, idem="before-crash")
    assert first.status_code == 202
    mx_node.kill9()
    mx_node.start()
    again = submit(mx_node, body, idem="before-crash")
    assert again.status_code == 202 and again.json() == first.json()
    assert count(mx_node, "SELECT COUNT(*) FROM messages") == 1


def test_cancel_a_scheduled_message(mx_node, mx_world):
    r = submit(mx_node, {**BODY, "to": ["s1@example.test", "s2@example.test", "s3@other-domain.test"],
                       "send_at": later(3600)})
    assert r.status_code == 202, r.text
    message_id = r.json()["id"]
    answer = post(mx_node, f"/v1/messages/{message_id}/cancel")
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"id": message_id, "messages": 1, "waiting": 3, "cancelled": 3}
    recipients = settle_message(mx_node, message_id)
    assert {x["status"] for x in recipients.values()} == {"cancelled"}
    events = wait_events(mx_node, 3, message=message_id, type="cancelled")
    assert len(events) == 3 and all(e["data"]["by"] == "sender" for e in events)
    # Again: nothing waits any more.
    assert post(mx_node, f"/v1/messages/{message_id}/cancel").json()["cancelled"] == 0
    # Another tenant's message, or no message, is 404.
    assert post(mx_node, "/v1/messages/01ARZ3NDEKTSV4RRFFQ69G5FAV/cancel").status_code == 404
    assert post(mx_node, "/v1/messages/nonsense/cancel").status_code == 404
    assert mx_node.session.get(mx_node.url(f"/v1/messages/{message_id}/cancel"),
                             headers={"Authorization": f"Bearer {mx_node.key}"}).status_code == 405
    assert mx_world[0].messages() == []


def test_cancel_a_batch_leaves_delivered_mail_alone(mx_node, mx_world):
    sink, _ = mx_world
    delivered = submit(mx_node, {**BODY, "to": ["now@example.test"], "batch_id": "spring-2026"})
    assert delivered.status_code == 202
    settle_message(mx_node, delivered.json()["id"])
    waiting = [submit(mx_node, {**BODY, "to": [f"b{i}@example.test"], "batch_id": "spring-2026",
                              "send_at": later(3600)}) for i in range(3)]
    other = submit(mx_node, {**BODY, "to": ["keep@example.test"], "batch_id": "summer", "send_at": later(3600)})
    answer = post(mx_node, "/v1/batches/spring-2026/cancel")
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"batch_id": "spring-2026", "messages": 4, "waiting": 3, "cancelled": 3}
    for w in waiting:
        assert {x["status"] for x in settle_message(mx_node, w.json()["id"]).values()} == {"cancelled"}
    assert count(mx_node, f"SELECT COUNT(*) FROM recipients WHERE message_id = '{other.json()['id']}' "
                        "AND state = 'queued'") == 1
    assert count(mx_node, f"SELECT COUNT(*) FROM recipients WHERE message_id = '{delivered.json()['id']}' "
                        "AND state = 'delivered'") == 1
    assert post(mx_node, "/v1/batches/no-such-batch/cancel").status_code == 404


def test_cancel_reaches_recipients_paged_out_to_the_store(make_node, mx_world):
    """More recipients than memory holds for the domain: those only in the store are cancelled
    there, and the queue's counts drop with them."""
    sink, dns = mx_world
    node = make_node(delivery_config(dns.port, sink.port, **{"queue.max_in_memory_per_domain": "100",
                                                             "queue.page": "25", "queue.horizon": '"1s"'}))
    r = submit(node, {**BODY, "to": [f"p{i:03d}@example.test" for i in range(300)], "send_at": later(3600)})
    assert r.status_code == 202
    message_id = r.json()["id"]
    answer = post(node, f"/v1/messages/{message_id}/cancel")
    assert answer.json()["cancelled"] == 300
    wait_for(lambda: count(node, f"SELECT COUNT(*) FROM recipients WHERE message_id = '{message_id}' "
                                 "AND state = 'cancelled'") == 300, what="every recipient cancelled in the store")
    wait_for(lambda: node.metric("petrel_recipients_waiting") == 0, what="the waiting gauge back to 0")


def test_an_attempt_in_flight_is_cancelled_when_it_defers(mx_node, mx_world):
    sink, _ = mx_world
    sink.configure(stall_greeting=2.0)
    r = submit(mx_node, {**BODY, "to": ["tempfail-1-x@example.test"]})
    message_id = r.json()["id"]
    wait_for(lambda: mx_node.admin("GET", "/admin/queues/example.test").json().get("in_flight", 0) >= 1,
             what="the attempt under way")
    assert post(mx_node, f"/v1/messages/{message_id}/cancel").json()["cancelled"] == 1
    sink.configure(stall_greeting=0)
    recipients = settle_message(mx_node, message_id)
    assert recipients["tempfail-1-x@example.test"]["status"] == "cancelled"
    time.sleep(1.5)  # a retry (1 s schedule) would have delivered it by now
    assert sink.messages() == []


def test_messages_are_found_by_recipient_status_campaign_tag_batch_and_time(mx_node, mx_world):
    auth = {"Authorization": f"Bearer {mx_node.key}"}

    def search(query):
        r = mx_node.session.get(mx_node.url("/v1/messages?" + query), headers=auth, timeout=30)
        assert r.status_code == 200, r.text
        return r.json()

    a = submit(mx_node, {**BODY, "to": ["ann@Example.TEST", "bo@example.test"], "campaign": "spring", "tags": ["t1"]})
    b = submit(mx_node, {**BODY, "to": ["ann@example.test"], "batch_id": "b-1", "send_at": later(3600)})
    c = submit(mx_node, {**BODY, "to": ["permfail-cy@example.test"], "tags": ["t2"]})
    ids = [x.json()["id"] for x in (a, b, c)]
    settle_message(mx_node, ids[0])
    settle_message(mx_node, ids[2])

    everything = search("")
    assert [m["id"] for m in everything["messages"]] == ids[::-1] and everything["next"] is None
    ann = search("recipient=ann@EXAMPLE.test")  # the domain in any case: the stored form
    assert [m["id"] for m in ann["messages"]] == [ids[1], ids[0]]
    assert {r["email"]: r["status"] for r in ann["messages"][1]["recipients"]} == {"ann@example.test": "delivered"}
    assert ann["messages"][0]["recipients"][0]["status"] == "queued"
    assert [m["id"] for m in search("status=bounced")["messages"]] == [ids[2]]
    assert [m["id"] for m in search("recipient=ann@example.test&status=queued")["messages"]] == [ids[1]]
    assert [m["id"] for m in search("campaign=spring")["messages"]] == [ids[0]]
    assert [m["id"] for m in search("tag=t2")["messages"]] == [ids[2]]
    assert [m["id"] for m in search("batch_id=b-1")["messages"]] == [ids[1]]
    assert search("since=2100-01-01T00:00:00Z")["messages"] == []
    # Pages: newest first, two at a time, the cursor in "next".
    first = search("limit=2")
    assert [m["id"] for m in first["messages"]] == [ids[2], ids[1]] and first["next"]
    second = search("limit=2&before=" + first["next"])
    assert [m["id"] for m in second["messages"]] == [ids[0]]
    # Only the tenant's own; bad filters name themselves.
    _, other_key = mx_node.create_tenant("other")
    assert mx_node.session.get(mx_node.url("/v1/messages"), headers={"Authorization": f"Bearer {other_key}"}
                               ).json()["messages"] == []
    for query, field in (("status=lost", "status"), ("limit=0", "limit"), ("before=x", "before"),
                         ("before=12x-01M99V8JDGG21H4DN8QAC0K0Q5", "before"),  # (ASan found its check reading freed memory)
                         ("recipient=nobody", "recipient"), ("since=yesterday", "since")):
        r = mx_node.session.get(mx_node.url("/v1/messages?" + query), headers=auth, timeout=30)
        assert r.status_code == 400 and r.json()["field"] == field, (query, r.text)
