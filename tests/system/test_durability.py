"""Accepted means durable: kill -9 after a burst of 202s loses nothing; supervision restarts
crashed actors from the store; SIGTERM finishes pending commits."""
import signal
import threading

from conftest import simple_message

# The bootstrap tenant gets the default rate; these tests measure durability, not limits.
UNLIMITED = 'tenants.default_rate = "1000000/s"\ntenants.default_burst = 1000000'


def burst(node, key, clients=8, per_client=60, stop=None):
    """Submits from several clients at once; returns the 202 receipts."""
    accepted, lock = [], threading.Lock()

    def client(n):
        for i in range(per_client):
            if stop is not None and stop.is_set():
                return
            try:
                r = node.submit(key, simple_message(to=[f"r{n}-{i}@d{i % 5}.example",
                                                        f"s{n}-{i}@d{(i + 1) % 5}.example"]))
            except Exception:
                return  # the server went away mid-request: nothing was promised
            if r.status_code == 202:
                with lock:
                    accepted.append(r.json())

    threads = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return accepted


def assert_all_present(node, key, receipts):
    for receipt in receipts:
        r = node.get_message(key, receipt["id"])
        assert r.status_code == 200, receipt["id"]
        got = {x["id"]: x["status"] for x in r.json()["recipients"]}
        # Waiting: queued, or deferred by a failed attempt (no DNS in these tests).
        assert set(got) == {x["id"] for x in receipt["recipients"]}
        assert set(got.values()) <= {"queued", "deferred"}


def waiting_total(node):
    totals = node.admin("GET", "/admin/queues").json()["totals"]
    return totals["queued"] + totals["deferred"]


def test_kill_minus_9_right_after_a_burst_loses_no_acknowledged_message(make_node):
    node = make_node(UNLIMITED)
    key = node.bootstrap_key
    receipts = burst(node, key)
    assert len(receipts) == 8 * 60
    node.kill9()
    node.start()
    assert_all_present(node, key, receipts)
    assert waiting_total(node) == 2 * len(receipts)  # every recipient is back in its domain actor


def test_kill_minus_9_during_a_burst_keeps_every_acknowledged_message(make_node):
    node = make_node(UNLIMITED)
    key = node.bootstrap_key
    stop = threading.Event()
    killer = threading.Timer(0.4, lambda: (stop.set(), node.kill9()))
    killer.start()
    receipts = burst(node, key, clients=8, per_client=1000, stop=stop)
    killer.join()
    assert receipts, "nothing was accepted before the kill"
    node.start()
    assert_all_present(node, key, receipts)


def test_sigterm_during_a_burst_exits_0_with_every_acknowledged_message_stored(make_node):
    node = make_node(UNLIMITED)
    key = node.bootstrap_key
    stop = threading.Event()
    result = {}

    def terminate():
        result["code"] = node.stop(signal.SIGTERM)
        stop.set()

    stopper = threading.Timer(0.4, terminate)
    stopper.start()
    receipts = burst(node, key, clients=8, per_client=1000, stop=stop)
    stopper.join()
    assert result["code"] == 0, node.log()
    assert "petrel.stopped exit_code=0" in node.log()
    node.start()
    assert_all_present(node, key, receipts)


def test_a_crashed_domain_actor_is_restarted_and_rebuilds_its_queue(node):
    key = node.bootstrap_key
    for i in range(5):
        node.submit(key, simple_message(to=[f"u{i}@crash.example"]))
    def waiting(q):
        return [d["queued"] + d["deferred"] for d in q["domains"] if d["domain"] == "crash.example"]

    before = node.admin("GET", "/admin/queues").json()
    assert waiting(before) == [5]
    restarts = node.metric("petrel_actor_restarts_total")
    r = node.admin("POST", "/admin/debug/crash", json={"domain": "crash.example"})
    assert r.status_code == 202
    deadline = __import__("time").time() + 5
    while __import__("time").time() < deadline:
        q = node.admin("GET", "/admin/queues").json()
        if q["restarting"] == 0 and waiting(q) == [5]:
            break
    else:
        raise AssertionError(node.log())
    assert node.metric("petrel_actor_restarts_total") == restarts + 1
    assert "domains.child_crashed domain=crash.example" in node.log()
    # The crashed actor's domain keeps accepting.
    node.submit(key, simple_message(to=["late@crash.example"]))
    q = node.admin("GET", "/admin/queues").json()
    assert waiting(q) == [6]
