"""A full disk (docs/operations.md, "A full disk"): the SQLite store lives on a small tmpfs that
a filler takes every free byte of during a burst of submissions. Submissions get 503 with
Retry-After, /readyz says why, delivery outcomes are kept and retried rather than dropped, the
node recovers by itself when the filler goes, and after a restart every 202 is still there.
Needs root (mount); SQLite only (a PostgreSQL server's disk is its operator's to watch)."""
import collections
import errno
import os
import subprocess
import time

import pytest
import requests

from conftest import STORE, Burst, delivery_config, one_mx_world, recipients_of, wait_for  # noqa: E402

pytestmark = [
    pytest.mark.skipif(STORE == "postgresql", reason="the SQLite file's own file system"),
    pytest.mark.skipif(os.geteuid() != 0, reason="mounting a small file system needs root"),
]


def fill(path):
    """Writes until the file system is full; returns the bytes written."""
    written = 0
    chunk = b"\0" * (256 * 1024)
    with open(path, "wb", buffering=0) as f:
        while True:
            try:
                written += f.write(chunk)
            except OSError as e:
                if e.errno != errno.ENOSPC:
                    raise
                if len(chunk) == 1:
                    return written
                chunk = chunk[:len(chunk) // 4]


def test_a_full_disk_refuses_new_mail_keeps_outcomes_and_recovers_by_itself(make_node, tmp_path):
    sink, dns = one_mx_world(tmp_path)
    # min_free_space off: the file system really fills, and the commits themselves fail.
    node = make_node(delivery_config(dns.port, sink.port, **{
        "storage.min_free_space": "0", "delivery.retry_schedule": '["1s"]'}), start=False)
    node.data_dir.mkdir(parents=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=40m", "tmpfs", str(node.data_dir)], check=True)
    filler = node.data_dir / "filler"
    try:
        node.start()
        # Every other one is deferred twice first (retried each second): attempts go on while the
        # disk is full.
        burst = Burst(node, lambda c, n: f"tempfail-2-burst{c}-{n}@example.test" if n % 2 else f"burst{c}-{n}@example.test",
                      text="y" * 50_000)
        accepted, refused, statuses = burst.accepted, burst.refused, burst.statuses
        wait_for(lambda: len(accepted) >= 20, timeout=30, what="some messages accepted")
        fill(filler)  # the disk is full now, during the burst
        wait_for(lambda: len(refused) >= 5, timeout=30, what="submissions refused while the disk is full")
        # Readiness follows the last commit: while the disk is full the commits of new mail fail,
        # though a small outcome update may fit in between; so the node says it is not ready
        # (polled: not at one instant).
        answer = wait_for(lambda: (lambda r: r.json() if r.status_code == 503 else None)(
            requests.get(node.url("/readyz"), timeout=5)), timeout=10, interval=0.02,
            what="not ready while the disk is full")
        assert "cannot commit" in answer["reason"], answer
        burst.stop()
        assert statuses[500] == 0, statuses  # refused cleanly, never an internal error
        assert all(x.headers.get("Retry-After") for x in refused)
        assert all(x.headers["Content-Type"] == "application/problem+json" for x in refused)

        # While full: commits really fail (not the min_free_space guard), and the node stays up;
        # outcomes of deliveries made meanwhile wait for the store.
        assert "store.commit_failed" in node.log() and "database or disk is full" in node.log()
        wait_for(lambda: "domain.commit_failed" in node.log(), timeout=20, what="an outcome commit failing")
        time.sleep(2)
        assert node.proc.poll() is None, node.log()

        # Space returns: the node recovers by itself.
        filler.unlink()
        wait_for(lambda: requests.get(node.url("/readyz"), timeout=5).status_code == 200, timeout=30,
                 what="ready again once space returned")
        r = node.submit(node.key, {"from": "app@example.com", "to": ["after@example.test"], "subject": "after",
                                   "text": "Space again."})
        assert r.status_code == 202, r.text
        accepted[r.json()["id"]] = "after@example.test"

        def all_delivered():
            return all(recipients_of(node, m)[a]["status"] == "delivered" for m, a in accepted.items())
        wait_for(all_delivered, timeout=60, what="every accepted recipient delivered and recorded")
        assert "domain.commits_recovered" in node.log() and "domain.outcomes_" not in node.log()
        retried = node.log().count("domain.commit_failed")

        # After a restart every 202 is there, delivered; the sink has each address.
        assert node.stop() == 0
        node.start()
        for message_id, address in accepted.items():
            assert recipients_of(node, message_id)[address]["status"] == "delivered"
        received = collections.Counter(a for m in sink.messages() for a in m["rcpt_to"])
        assert set(accepted.values()) <= set(received)
        print(f"\nfull disk: {len(accepted)} accepted, {len(refused)} refused with 503, "
              f"{sum(received.values()) - len(received)} delivered twice, "
              f"{retried} outcome commits retried")
    finally:
        if node.proc is not None and node.proc.poll() is None:
            node.stop()
        filler.unlink(missing_ok=True)
        subprocess.run(["umount", "-l", str(node.data_dir)], check=False)
        sink.stop()
        dns.stop()
