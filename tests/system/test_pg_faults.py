"""PostgreSQL faults: the database restarting in the middle of a submission burst. Every 202
must be in the database afterwards, every other answer a clear 503 with Retry-After, and the
node must recover by itself, without a restart. Runs its own PostgreSQL cluster, so that
restarting it disturbs no other test."""
import json
import os
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
