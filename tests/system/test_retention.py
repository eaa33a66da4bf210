"""Retention end to end (docs/operations.md "Retention"): a message's content is emptied once
its recipients are final and storage.content_retention has passed (GET /v1/messages/{id}/content
answers 410 from then on), its rows are deleted after storage.retention, a waiting recipient
keeps its message whole, and SQLite gives the pages back. Runs on both stores."""
import os
import time

import pytest
import requests

from conftest import delivery_config, one_mx_world, recipients_of, settle_message, submit_ok, wait_for  # noqa: E402

STORE = os.environ.get("PETREL_TEST_STORE", "sqlite")


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    sink, dns = one_mx_world(tmp_path_factory.mktemp("retention"))
    yield sink, dns
    sink.stop()
    dns.stop()


def retention_node(make_node, world, content="2s", rows="5s"):
    sink, dns = world
    return make_node(delivery_config(dns.port, sink.port, **{
        "storage.content_retention": f'"{content}"', "storage.retention": f'"{rows}"',
        "storage.prune_interval": '"200ms"', "delivery.retry_schedule": '["1h"]'}))


def content(node, key, message_id):
    return requests.get(node.url(f"/v1/messages/{message_id}/content"),
                        headers={"Authorization": f"Bearer {key}"}, timeout=10)


def test_content_then_rows_are_pruned_but_never_of_a_waiting_recipient(make_node, world):
    node = retention_node(make_node, world)
    done = submit_ok(node, to=["a@example.test"], subject="kept for a while", text="Hello.")["id"]
    waiting = submit_ok(node, to=["tempfail-ret@example.test"], subject="still waiting")["id"]
    settle_message(node, done)
    wait_for(lambda: recipients_of(node, waiting)["tempfail-ret@example.test"]["status"] == "deferred",
             what="the deferral")

    r = content(node, node.key, done)
    assert r.status_code == 200 and r.headers["Content-Type"] == "message/rfc822"
    assert r.content == node.content(done) and b"Subject: kept for a while" in r.content
    _, other_key = node.create_tenant("other")
    assert content(node, other_key, done).status_code == 404  # the owner's only

    accepted = time.time()
    # (A requests.Response is false for an error status: wait for the status itself.)
    wait_for(lambda: content(node, node.key, done).status_code == 410, timeout=20, what="the content pruned")
    gone = content(node, node.key, done)
    assert gone.headers["Content-Type"] == "application/problem+json"
    assert time.time() - accepted >= 1.0  # not before content_retention (2 s from acceptance)
    assert recipients_of(node, done)["a@example.test"]["status"] == "delivered"  # the history stays
    assert content(node, node.key, waiting).status_code == 200  # waiting: kept whole

    # After storage.retention the rows go too; an old id's content is gone, not unknown.
    wait_for(lambda: node.get_message(node.key, done).status_code == 404, timeout=20, what="the rows pruned")
    assert content(node, node.key, done).status_code == 410
    assert node.get_message(node.key, waiting).status_code == 200
    assert content(node, node.key, "01ARZ3NDEKTSV4RRFFQ69G5FAV").status_code in (404, 410)


@pytest.mark.skipif(STORE == "postgresql", reason="SQLite's file: PostgreSQL reuses space through autovacuum")
def test_sqlite_gives_the_pages_of_pruned_content_back(make_node, world):
    node = retention_node(make_node, world, content="1s", rows="1h")
    assert node.sql("PRAGMA auto_vacuum") == [(2,)]  # incremental
    body = "x" * 60_000
    ids = [submit_ok(node, to=[f"big{i}@example.test"], subject="big", text=body)["id"] for i in range(60)]
    for message_id in ids:
        settle_message(node, message_id)
    full = node.sql("PRAGMA page_count")[0][0]
    wait_for(lambda: all(content(node, node.key, i).status_code == 410 for i in ids), timeout=30,
             what="every content pruned")
    after = wait_for(lambda: (lambda n: n if n < full * 0.7 else None)(node.sql("PRAGMA page_count")[0][0]),
                     timeout=20, what="pages given back")
    print(f"sqlite pages: {full} with 60 x 60 KB messages, {after} after pruning their content")
