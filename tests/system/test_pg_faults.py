"""PostgreSQL faults: the database restarting in the middle of a submission burst. Every 202
must be in the database afterwards, every other answer a clear 503 with Retry-After, and the
node must recover by itself, without a restart. Runs its own PostgreSQL cluster, so that
restarting it disturbs no other test."""
import json
import os
import signal
import subprocess
import threading
import time

import pytest
import requests

from conftest import ROOT, Node, psql, simple_message, wait_for

pytestmark = pytest.mark.skipif(os.environ.get("PETREL_TEST_STORE") != "postgresql",
                                reason="runs with PETREL_TEST_STORE=postgresql")
PG_SERVER = str(ROOT / "tests" / "pg" / "pg-server.sh")


@pytest.fixture
def cluster(tmp_path):
    directory = tmp_path / "pg"
    subprocess.run([PG_SERVER, "start", str(directory)], check=True, capture_output=True, timeout=120)
    url = (directory / "url").read_text().strip()
    psql(url, "CREATE DATABASE petrel")
    yield directory, url.rsplit("/", 1)[0] + "/petrel"
    subprocess.run([PG_SERVER, "stop", str(directory)], capture_output=True, timeout=120)


def test_restarting_postgresql_mid_burst_loses_no_accepted_message(tmp_path, cluster):
    directory, url = cluster
    node = Node(tmp_path / "node", 'tenants.default_rate = "100000/s"\ntenants.default_burst = 100000')
    node.store_url = url
    node.start()
    try:
        key = node.bootstrap_key
        answers, lock, stop = [], threading.Lock(), threading.Event()

        def client(n):
            with requests.Session() as s:
                for i in range(100000):
                    if stop.is_set():
                        return
                    r = s.post(node.url("/v1/messages"), json=simple_message(to=[f"c{n}-{i}@pg.example"]),
                               headers={"Authorization": f"Bearer {key}"}, timeout=60)
                    with lock:
                        answers.append((r.status_code, r.headers.get("Retry-After"),
                                        r.json() if r.headers.get("Content-Type", "").startswith("application") else r.text))

        threads = [threading.Thread(target=client, args=(n,)) for n in range(6)]
        for t in threads:
            t.start()
        wait_for(lambda: len(answers) > 200, what="the burst to start")
        subprocess.run([PG_SERVER, "restart", str(directory)], check=True, capture_output=True, timeout=120)
        # Keep submitting until the node has accepted messages again after the restart.
        restarted_at = len(answers)
        wait_for(lambda: any(code == 202 for code, _, _ in answers[restarted_at:][-50:]) and
                 len(answers) > restarted_at + 200, timeout=60, what="202s after the restart")
        stop.set()
        for t in threads:
            t.join()

        codes = {code for code, _, _ in answers}
        assert codes <= {202, 503}, codes
        for code, retry_after, body in answers:
            if code == 503:
                assert retry_after and int(retry_after) >= 1
                assert body["type"] in ("urn:petrel:problem:store-unavailable", "urn:petrel:problem:unavailable",
                                        "urn:petrel:problem:overloaded"), body
        accepted = [body["id"] for code, _, body in answers if code == 202]
        assert any(code == 202 for code, _, _ in answers[:restarted_at])
        assert any(code == 202 for code, _, _ in answers[restarted_at:])
        stored = {row[0] for row in psql(url, "SELECT id FROM messages")}
        missing = [i for i in accepted if i not in stored]
        assert not missing, f"{len(missing)} accepted messages are not in the database"
        # Recovered by itself: ready, and accepting.
        assert requests.get(node.url("/readyz"), timeout=5).status_code == 200
        assert node.submit(key, simple_message()).status_code == 202
        assert node.metric("petrel_store_connected") == 1
        print(f"answers: {len(answers)}, 202: {len(accepted)}, 503: {sum(1 for c, _, _ in answers if c == 503)}")
    finally:
        assert node.stop() == 0


def test_failover_to_a_synchronous_replica_mid_burst_loses_no_write_and_answers_each_once(tmp_path, cluster):
    # A primary with a synchronous streaming replica; the node's URL names both, read-write
    # wanted (libpq's multi-host form). In the middle of a burst the primary crashes (an
    # immediate stop: commits in flight are cut off) and the replica is promoted. Clients retry
    # every answer but 202 with the same Idempotency-Key, as docs/api.md asks. Afterwards:
    # every 202 is in the new primary, and no key made two messages (a write whose answer was
    # lost with the primary is answered with its original id when retried, never twice).
    primary_dir, primary_url = cluster
    standby_dir = tmp_path / "standby"
    subprocess.run([PG_SERVER, "standby", str(standby_dir), str(primary_dir)], check=True, capture_output=True,
                   timeout=120)
    try:
        standby_url = (standby_dir / "url").read_text().strip().rsplit("/", 1)[0] + "/petrel"
        hosts = ",".join(u.split("@", 1)[1].split("/", 1)[0] for u in (primary_url, standby_url))
        node = Node(tmp_path / "node", 'tenants.default_rate = "100000/s"\ntenants.default_burst = 100000')
        node.store_url = f"postgresql://postgres@{hosts}/petrel?target_session_attrs=read-write"
        node.start()
        try:
            key = node.bootstrap_key
            answers, lock, stop = [], threading.Lock(), threading.Event()
            by_key = {}  # Idempotency-Key -> the ids of its 202s

            def client(n):
                with requests.Session() as s:
                    for i in range(100000):
                        if stop.is_set():
                            return
                        body, idem = simple_message(to=[f"f{n}-{i}@pg.example"]), f"failover-{n}-{i}"
                        for attempt in range(200):  # the same request until it is answered 202
                            try:
                                r = s.post(node.url("/v1/messages"), json=body, timeout=60,
                                           headers={"Authorization": f"Bearer {key}", "Idempotency-Key": idem})
                            except requests.RequestException:
                                time.sleep(0.2)
                                continue
                            with lock:
                                answers.append((r.status_code, r.headers.get("Idempotent-Replayed")))
                                if r.status_code == 202:
                                    by_key.setdefault(idem, []).append(r.json()["id"])
                            if r.status_code == 202:
                                break
                            time.sleep(0.2)  # 503 with Retry-After, checked below

            threads = [threading.Thread(target=client, args=(n,)) for n in range(6)]
            for t in threads:
                t.start()
            wait_for(lambda: len(answers) > 200, what="the burst to start")
            # Mid-commit for certain: the replica's WAL receiver is frozen, so the primary's
            # commits wait for its acknowledgement; the primary crashes while they wait.
            (receiver,) = psql(standby_url, "SELECT pid FROM pg_stat_wal_receiver")[0]
            os.kill(int(receiver), signal.SIGSTOP)
            time.sleep(1)
            in_flight = len(answers)
            time.sleep(0.5)
            assert len(answers) == in_flight, "commits went on without the synchronous replica"
            subprocess.run([PG_SERVER, "crash", str(primary_dir)], check=True, capture_output=True, timeout=60)
            crashed_at = len(answers)
            os.kill(int(receiver), signal.SIGCONT)
            time.sleep(1)  # the node sees the primary gone; the replica is read-only meanwhile
            subprocess.run([PG_SERVER, "promote", str(standby_dir)], check=True, capture_output=True, timeout=60)
            wait_for(lambda: sum(1 for code, _ in answers[crashed_at:] if code == 202) > 200, timeout=90,
                     what="202s from the promoted replica")
            stop.set()
            for t in threads:
                t.join()

            assert {code for code, _ in answers} <= {202, 503}, {code for code, _ in answers}
            stored = {row[0] for row in psql(standby_url, "SELECT id FROM messages")}
            accepted = {i for ids in by_key.values() for i in ids}
            missing = accepted - stored
            assert not missing, f"{len(missing)} acknowledged messages are not in the promoted replica"
            twice = {k: ids for k, ids in by_key.items() if len(set(ids)) > 1}
            assert not twice, f"keys answered 202 with different ids: {list(twice.items())[:3]}"
            rows = psql(standby_url, "SELECT count(*) FROM messages")
            assert int(rows[0][0]) == len(accepted), (rows, len(accepted))  # no message without its 202
            replayed = sum(1 for code, again in answers if code == 202 and again == "true")
            refused = sum(1 for code, _ in answers[crashed_at:] if code == 503)
            assert requests.get(node.url("/readyz"), timeout=5).status_code == 200
            print(f"failover: {len(accepted)} acknowledged, all in the promoted replica; {refused} answers 503 "
                  f"during the failover; {replayed} retries answered with the original 202")
        finally:
            assert node.stop() == 0
    finally:
        subprocess.run([PG_SERVER, "stop", str(standby_dir)], capture_output=True, timeout=120)
