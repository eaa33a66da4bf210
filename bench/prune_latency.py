#!/usr/bin/python3
"""Submission latency while retention prunes (docs/operations.md, "Retention"): does pruning hold
submissions up?

Setup, all on 127.0.0.0/8: the test DNS server with one domain whose MX (127.0.0.2) is Postfix's
smtp-sink (the test SMTP server when Postfix is not installed). Steps:

1. MESSAGES one-recipient 1 KB messages are submitted and delivered, with retention off (1 year).
2. The node restarts twice, each time followed by RATE submissions per second for SECONDS with
   CLIENTS clients, each request timed: first with retention still off (the baseline), then with
   storage.content_retention = 1s and storage.retention = 2s, so that the passes delete every
   message of step 1 while the submissions run (storage.prune_batch, storage.prune_interval as
   configured: PRUNE_BATCH, PRUNE_INTERVAL).
3. Prints p50/p99/max submission latency of both runs and the messages pruned during the second.

    bench/prune_latency.py                 # MESSAGES=200000 RATE=500 SECONDS=20
"""
import json
import os
import pathlib
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

import requests

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "tools"))
from servers import DnsServer, SmtpServer  # noqa: E402
sys.path.insert(0, str(ROOT / "bench"))
from load_support import for_each_item, start_petrel  # noqa: E402

PETREL = os.environ.get("PETREL_BIN", str(ROOT / "build" / "app" / "petrel"))
MESSAGES = int(os.environ.get("MESSAGES", "200000"))
RATE = float(os.environ.get("RATE", "500"))
SECONDS = float(os.environ.get("SECONDS", "20"))
CLIENTS = int(os.environ.get("CLIENTS", "8"))
PRUNE_BATCH = int(os.environ.get("PRUNE_BATCH", "2000"))
PRUNE_INTERVAL = os.environ.get("PRUNE_INTERVAL", "2s")
TOKEN = "bench-admin-token-0123456789abcdef"
BODY = "x" * 1000


def log(*parts):
    print("==", *parts, file=sys.stderr, flush=True)


def write_config(work, dns_port, sink_port, content, rows):
    (work / "petrel.toml").write_text(f"""
[log]
level = "warn"
[http]
listen = "127.0.0.1:18490"
[admin]
listen = "127.0.0.1:18491"
token = "{TOKEN}"
[storage]
data_dir = "{work / 'data'}"
content_retention = "{content}"
retention = "{rows}"
prune_batch = {PRUNE_BATCH}
prune_interval = "{PRUNE_INTERVAL}"
[dns]
servers = ["127.0.0.1:{dns_port}"]
[delivery]
port = {sink_port}
allow_private_destinations = true  # the MX is on 127.0.0.2
[tenants]
default_rate = "1000000/s"
default_burst = 1000000
""")


def start(work):
    return start_petrel(PETREL, work, "http://127.0.0.1:18490/readyz")


def stop(p):
    p.send_signal(signal.SIGTERM)
    p.wait(timeout=60)


def metric(name):
    text = requests.get("http://127.0.0.1:18491/metrics", timeout=30).text
    return sum(float(line.split()[-1]) for line in text.splitlines()
               if line.startswith(name + " ") or line.startswith(name + "{"))


def message_count(work):
    import sqlite3
    with sqlite3.connect(str(work / "data" / "petrel.db")) as db:
        return db.execute("SELECT COUNT(*) FROM messages").fetchone()[0]


def fill(key):
    def submit(s, i):
        r = s.post("http://127.0.0.1:18490/v1/messages", timeout=60,
                   headers={"Authorization": f"Bearer {key}"},
                   json={"from": "app@example.com", "to": [f"f{i}@p.bench.test"], "subject": "fill", "text": BODY})
        assert r.status_code == 202, r.text

    for_each_item(MESSAGES, 8, submit)

def timed_load(key):
    """RATE submissions per second for SECONDS over CLIENTS clients; the latency of each."""
    latencies, lock, failures = [], threading.Lock(), []
    start_at = time.monotonic() + 0.2
    per_client = RATE / CLIENTS

    def client(c):
        with requests.Session() as s:
            n = 0
            while True:
                due = start_at + n / per_client
                if due - start_at >= SECONDS:
                    return
                time.sleep(max(0.0, due - time.monotonic()))
                t = time.monotonic()
                r = s.post("http://127.0.0.1:18490/v1/messages", timeout=60,
                           headers={"Authorization": f"Bearer {key}"},
                           json={"from": "app@example.com", "to": [f"l{c}-{n}@p.bench.test"], "subject": "load", "text": BODY})
                elapsed = time.monotonic() - t
                with lock:
                    latencies.append(elapsed)
                    if r.status_code != 202:
                        failures.append(r.status_code)
                n += 1

    threads = [threading.Thread(target=client, args=(c,)) for c in range(CLIENTS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    latencies.sort()
    q = lambda f: round(latencies[min(len(latencies) - 1, int(f * len(latencies)))] * 1000, 2)  # noqa: E731
    return {"requests": len(latencies), "failed": len(failures), "p50_ms": q(0.5), "p99_ms": q(0.99),
            "max_ms": round(latencies[-1] * 1000, 2)}


def main():
    work = pathlib.Path(tempfile.mkdtemp(prefix="petrel-prune-"))
    records = [{"name": "mx.bench.test", "type": "A", "address": "127.0.0.2"},
               {"name": "p.bench.test", "type": "MX", "preference": 10, "exchange": "mx.bench.test"}]
    dns = DnsServer(work, {"records": records}).start()
    sink_port = 2626
    if shutil.which("/usr/sbin/smtp-sink"):
        sink = subprocess.Popen(["/usr/sbin/smtp-sink", "-u", "nobody", "-m", "1000", f"127.0.0.2:{sink_port}", "4096"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        stop_sink = sink.terminate
    else:
        sink = SmtpServer(work, listen=[f"127.0.0.2:{sink_port}"]).start()
        stop_sink = sink.stop
    write_config(work, dns.port, sink_port, "365d", "365d")
    p = start(work)
    key = requests.post("http://127.0.0.1:18491/admin/tenants", json={"name": "bench"},
                        headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10).json()["api_key"]
    log(f"filling: {MESSAGES:,} messages")
    fill(key)
    while metric("petrel_recipients_waiting") > 0:
        time.sleep(0.5)
    stop(p)
    time.sleep(2.5)  # every message of the fill is older than both retentions of run 2

    results = {}
    for name, (content, rows) in {"baseline (no pruning)": ("365d", "365d"),
                                  "while pruning": ("1s", "2s")}.items():
        write_config(work, dns.port, sink_port, content, rows)
        before = message_count(work)
        p = start(work)
        result = timed_load(key)
        stop(p)
        result["messages_pruned"] = max(0, before + result["requests"] - message_count(work))
        results[name] = result
        log(name, result)
    print(json.dumps({"messages": MESSAGES, "rate": RATE, "seconds": SECONDS, "prune_batch": PRUNE_BATCH,
                      "prune_interval": PRUNE_INTERVAL, "runs": results}, indent=2))
    stop_sink()
    dns.stop()
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
