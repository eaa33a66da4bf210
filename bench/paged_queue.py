#!/usr/bin/python3
"""Queue benchmark (docs/architecture.md, "Queues larger than memory"; docs/operations.md,
"Sizing"): RECIPIENTS queued on one node, then a restart and the drain.

Setup, all on 127.0.0.0/8: the test DNS server (tests/tools/dns_server.py) with DOMAINS domains
q0..qN.bench.test whose one MX is 127.0.0.2, and at first the test SMTP server answering every
connection with "421 4.3.2 try later" (the MX defers). Steps:

1. Submit RECIPIENTS recipients in messages of 1,000 (one domain per message, domains in turn)
   with SUBMITTERS clients; shaping.max_waiting_* are set above RECIPIENTS.
   MODE=defer (default): every recipient is attempted and deferred (the sink's 421; the retry
   schedule is RETRY seconds). MODE=suspend: the domains are suspended first, so recipients stay
   queued without attempts (for 10 M, where 10 M deferrals would take most of an hour here).
2. Once everything waits: resident memory (VmRSS) and bytes on disk (the SQLite files), per
   queued recipient.
3. kill -9 and wait until every deferred recipient is due again; the MX accepts now (Postfix's
   smtp-sink replaces the test server); restart and time ready (GET /readyz 200) and the first
   delivery (MODE=suspend: after resuming the domains).
4. The drain for DRAIN seconds (or until nothing waits): delivered per second, and RSS.
5. Bytes on disk per delivered recipient, after the drain.

    bench/paged_queue.py                              # RECIPIENTS=1000000 DOMAINS=10 MODE=defer
    RECIPIENTS=10000000 MODE=suspend bench/paged_queue.py
"""
import json
import os
import pathlib
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import requests

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "tools"))
from servers import DnsServer, SmtpServer  # noqa: E402
sys.path.insert(0, str(ROOT / "bench"))
from load_support import for_each_item  # noqa: E402

PETREL = os.environ.get("PETREL_BIN", str(ROOT / "build" / "app" / "petrel"))
RECIPIENTS = int(os.environ.get("RECIPIENTS", "1000000"))
DOMAINS = int(os.environ.get("DOMAINS", "10"))
MODE = os.environ.get("MODE", "defer")
SUBMITTERS = int(os.environ.get("SUBMITTERS", "4"))
DRAIN = float(os.environ.get("DRAIN", "600"))
RETRY = int(os.environ.get("RETRY", "60"))  # seconds: deferred recipients are due again after this
PER_MESSAGE = 1000
TOKEN = "bench-admin-token-0123456789abcdef"


def log(*parts):
    print("==", *parts, file=sys.stderr, flush=True)


def rss_mb(pid):
    for line in pathlib.Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def disk_bytes(data):
    return sum(p.stat().st_size for p in data.glob("petrel.db*"))


class Petrel:
    def __init__(self, work, sink_port, dns_port):
        self.work = work
        self.data = work / "data"
        self.config = work / "petrel.toml"
        self.config.write_text(f"""
[log]
level = "warn"
[http]
listen = "127.0.0.1:18480"
[admin]
listen = "127.0.0.1:18481"
token = "{TOKEN}"
[storage]
data_dir = "{self.data}"
[dns]
servers = ["127.0.0.1:{dns_port}"]
[delivery]
port = {sink_port}
retry_schedule = ["{RETRY}s"]
retry_jitter = 0
max_recipients_per_transaction = 100
allow_private_destinations = true  # the MX is on 127.0.0.2
[tenants]
default_rate = "1000000/s"
default_burst = 1000000
[submission]
max_recipients = {PER_MESSAGE}
[shaping]
max_waiting_recipients = {RECIPIENTS * 2}
max_waiting_per_tenant = {RECIPIENTS * 2}
""")
        self.proc = None

    def start(self):
        self.started = time.monotonic()
        self.proc = subprocess.Popen([PETREL, "serve", "--config", str(self.config)],
                                     stdout=open(self.work / "petrel.log", "a"), stderr=subprocess.STDOUT)
        return self

    def wait_ready(self, timeout=120):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if requests.get("http://127.0.0.1:18480/readyz", timeout=2).status_code == 200:
                    return time.monotonic() - self.started
            except requests.RequestException:
                pass
            time.sleep(0.01)
        raise SystemExit("paged_queue.py: petrel never became ready; see " + str(self.work / "petrel.log"))

    def admin(self, method, path, **kw):
        r = requests.request(method, "http://127.0.0.1:18481" + path,
                             headers={"Authorization": f"Bearer {TOKEN}"}, timeout=60, **kw)
        r.raise_for_status()
        return r.json() if r.content else {}

    def metric(self, name):
        text = requests.get("http://127.0.0.1:18481/metrics", timeout=30).text
        total = 0.0
        for line in text.splitlines():
            if line.startswith(name + " ") or line.startswith(name + "{"):
                total += float(line.split()[-1])
        return total


def submit_all(key):
    def submit(s, i):
        domain = f"q{i % DOMAINS}.bench.test"
        body = {"from": "app@example.com", "subject": "queued", "text": "Hello.",
                "to": [f"r{i}-{j}@{domain}" for j in range(PER_MESSAGE)]}
        for _ in range(100):
            r = s.post("http://127.0.0.1:18480/v1/messages", json=body,
                       headers={"Authorization": f"Bearer {key}"}, timeout=120)
            if r.status_code == 202:
                break
            time.sleep(float(r.headers.get("Retry-After", "1")))
        else:
            raise SystemExit("paged_queue.py: submissions failed: " + r.text)
        if i % 500 == 0:
            log(f"submitted {i * PER_MESSAGE:,} recipients")

    for_each_item(RECIPIENTS // PER_MESSAGE, SUBMITTERS, submit)

def main():
    work = pathlib.Path(tempfile.mkdtemp(prefix="petrel-queue-"))
    records = [{"name": "mx.bench.test", "type": "A", "address": "127.0.0.2"}]
    records += [{"name": f"q{i}.bench.test", "type": "MX", "preference": 10, "exchange": "mx.bench.test"}
                for i in range(DOMAINS)]
    dns = DnsServer(work, {"records": records}).start()
    sink = SmtpServer(work, listen=["127.0.0.2:0"]).start()
    sink_port = sink.port
    sink.configure(greeting="421 4.3.2 try later")
    node = Petrel(work, sink_port, dns.port).start()
    node.wait_ready()
    baseline = rss_mb(node.proc.pid)
    key = node.admin("POST", "/admin/tenants", json={"name": "bulk"})["api_key"]
    if MODE == "suspend":
        for i in range(DOMAINS):
            node.admin("POST", f"/admin/domains/q{i}.bench.test/suspend", json={"reason": "bench"})
    log(f"submitting {RECIPIENTS:,} recipients to {DOMAINS} domains ({MODE})")
    t0 = time.monotonic()
    submit_all(key)
    submit_s = time.monotonic() - t0
    log(f"submitted in {submit_s:.1f} s")
    waiting_state = 'petrel_recipients_queue{state="deferred"}' if MODE == "defer" else 'petrel_recipients_queue{state="queued"}'
    while node.metric(waiting_state) < RECIPIENTS:
        time.sleep(0.5)
    settled_s = time.monotonic() - t0
    time.sleep(3)
    queued_rss = rss_mb(node.proc.pid)
    queued_disk = disk_bytes(node.data)
    queues = node.admin("GET", "/admin/queues")
    in_memory = sum(d.get("in_memory", 0) for d in queues["domains"])
    log(f"all {RECIPIENTS:,} waiting after {settled_s:.1f} s; RSS {queued_rss:.0f} MB; disk {queued_disk / 2**20:.0f} MiB")

    # Restart with the MX accepting: smtp-sink in place of the deferring test server, once every
    # deferred recipient is due again (the last was deferred before `settled`).
    node.proc.send_signal(signal.SIGKILL)
    node.proc.wait()
    if MODE == "defer":
        time.sleep(max(0.0, t0 + settled_s + RETRY + 1 - time.monotonic()))
    sink.stop()
    smtp_sink = None
    if shutil.which("/usr/sbin/smtp-sink"):
        smtp_sink = subprocess.Popen(["/usr/sbin/smtp-sink", "-u", "nobody", "-m", "1000",
                                      f"127.0.0.2:{sink_port}", "4096"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        sink_name = "Postfix smtp-sink"
    else:
        sink = SmtpServer(work, listen=[f"127.0.0.2:{sink_port}"]).start()
        sink_name = "the test SMTP server (install postfix for smtp-sink)"
    time.sleep(0.5)
    node.start()
    ready_s = node.wait_ready()
    ready_rss = rss_mb(node.proc.pid)
    if MODE == "suspend":
        for i in range(DOMAINS):
            node.admin("POST", f"/admin/domains/q{i}.bench.test/resume")
    while node.metric('petrel_recipient_outcomes_total{outcome="delivered"}') < 1:
        time.sleep(0.02)
    first_s = time.monotonic() - node.started
    log(f"ready {ready_s:.2f} s after the restart; first delivery after {first_s:.2f} s")

    d0, t_drain = node.metric('petrel_recipient_outcomes_total{outcome="delivered"}'), time.monotonic()
    peak_rss = ready_rss
    while time.monotonic() - t_drain < DRAIN:
        time.sleep(1)
        peak_rss = max(peak_rss, rss_mb(node.proc.pid))
        if node.metric("petrel_recipients_waiting") == 0:
            break
    delivered = node.metric('petrel_recipient_outcomes_total{outcome="delivered"}') - d0
    drain_s = time.monotonic() - t_drain
    after_disk = disk_bytes(node.data)
    done = node.metric("petrel_recipients_waiting") == 0

    result = {
        "recipients": RECIPIENTS, "domains": DOMAINS, "mode": MODE,
        "submit_seconds": round(submit_s, 1), "submitted_per_second": round(RECIPIENTS / submit_s),
        "rss_baseline_mb": round(baseline), "rss_queued_mb": round(queued_rss),
        "rss_bytes_per_queued_recipient": round((queued_rss - baseline) * 2**20 / RECIPIENTS, 1),
        "in_memory_recipients": in_memory,
        "disk_bytes_per_queued_recipient": round(queued_disk / RECIPIENTS),
        "restart_to_ready_seconds": round(ready_s, 2), "rss_after_restart_mb": round(ready_rss),
        "restart_to_first_delivery_seconds": round(first_s, 2),
        "drain_delivered_per_second": round(delivered / drain_s), "drain_seconds": round(drain_s, 1),
        "drain_peak_rss_mb": round(peak_rss), "drained": done, "sink": sink_name,
    }
    if done:
        result["disk_bytes_per_delivered_recipient"] = round(after_disk / RECIPIENTS)
    print(json.dumps(result, indent=2))
    node.proc.send_signal(signal.SIGTERM)
    node.proc.wait()
    if smtp_sink:
        smtp_sink.terminate()
    else:
        sink.stop()
    dns.stop()
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
