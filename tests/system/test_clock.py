"""Wall-clock jumps (ISSUE: stored due times are wall-clock, timers monotonic): the node runs
under libfaketime with its wall clock moved an hour back and an hour forward while retries wait.
A retry must neither be starved by a clock set back nor fire early when it jumps ahead. Not part
of CI (it needs Debian's faketime and patience): bench/clock_jump.sh runs it."""
import os
import time

import pytest

from conftest import delivery_config, one_mx_world, wait_for

LIBFAKETIME = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1"
pytestmark = pytest.mark.skipif(not os.environ.get("PETREL_CLOCK_TEST") or not os.path.exists(LIBFAKETIME),
                                reason="bench/clock_jump.sh runs it (Debian faketime)")
RETRY_SECONDS = 8


def deferred_at(node, message_id):
    def look():
        r = node.get_message(node.key, message_id).json()["recipients"][0]
        return r if r["status"] == "deferred" else None
    return wait_for(look, timeout=30, interval=0.1, what="the first attempt to defer")


def delivered_after(node, message_id, timeout):
    def look():
        r = node.get_message(node.key, message_id).json()["recipients"][0]
        return r if r["status"] == "delivered" else None
    return wait_for(look, timeout=timeout, interval=0.1, what="the retry to deliver")


@pytest.mark.parametrize("jump", ["-1h", "+1h"])
def test_a_wall_clock_jump_neither_starves_nor_fires_a_waiting_retry(tmp_path, make_node, jump):
    sink, dns = one_mx_world(tmp_path)
    clock = tmp_path / "faketime"
    clock.write_text("+0\n")
    try:
        node = make_node(delivery_config(dns.port, sink.port, **{"delivery.retry_schedule": f'["{RETRY_SECONDS}s"]',
                                                                "delivery.site_failure_delay": '"0s"'}),
                         start=False)
        node.env = dict(os.environ, LD_PRELOAD=LIBFAKETIME, FAKETIME_TIMESTAMP_FILE=str(clock),
                        FAKETIME_NO_CACHE="1", FAKETIME_DONT_FAKE_MONOTONIC="1", FAKETIME_DONT_RESET="1")
        node.start()
        r = node.submit(node.key, {"from": "a@sender.test", "to": ["tempfail-1-clock@example.test"],
                                   "subject": "clock", "text": "x"})
        assert r.status_code == 202, r.text
        message_id = r.json()["id"]
        deferred_at(node, message_id)
        started = time.monotonic()
        clock.write_text(jump + "\n")  # the node's wall clock jumps; its monotonic clock does not
        delivered_after(node, message_id, timeout=RETRY_SECONDS + 30)
        waited = time.monotonic() - started
        # On schedule by the monotonic clock: not an hour late (set back), not at once (set ahead).
        assert RETRY_SECONDS - 2 <= waited <= RETRY_SECONDS + 10, f"retried after {waited:.1f}s with {jump}"
        print(f"clock {jump}: retried after {waited:.1f}s (schedule {RETRY_SECONDS}s)")
    finally:
        sink.stop()
        dns.stop()
