#!/usr/bin/python3
"""Cluster benchmark (docs/cluster.md, "Capacity"): the delivery benchmark's load on 1, 2 and 3
Petrel nodes sharing one PostgreSQL, all on this machine.

Setup, all on 127.0.0.0/8: a PostgreSQL server of its own (tests/pg/pg-server.sh), four Postfix
smtp-sink processes on 127.0.0.10..13 and the benchmark's DNS server (1,000 domains
d0..d999.bench.test, domain i -> sink i % 4), as bench/delivery.sh sets them up. For each node
count: a fresh database, the nodes (node k's source bound to 127.0.0.{30+k}), one wrk per node
posting one-recipient 1 KB messages (bench/delivery.lua) for DURATION with CONNECTIONS split
over the nodes; then wait until nothing waits, and read from the database and the processes:
delivered/s (delivered / (last delivered event - first message)), delivered per node (by the
source address in each event), CPU seconds of each node and of PostgreSQL, and PostgreSQL's
commits, rows written and statements per delivered message (pg_stat_database,
pg_stat_statements).

The two cores are shared by everything (the nodes, PostgreSQL, the sinks, wrk), so more nodes
here measure the cluster's overhead, not its scaling: per-node CPU per message is the figure to
carry to a real deployment.

    bench/cluster.py                      # NODES="1 2 3" DURATION=15s
    NODES="1 3" DURATION=30s bench/cluster.py
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
import urllib.request

ROOT = pathlib.Path(__file__).resolve().parents[1]
PETREL = os.environ.get("PETREL_BIN", str(ROOT / "build" / "app" / "petrel"))
NODES = [int(n) for n in os.environ.get("NODES", "1 2 3").split()]
DURATION = os.environ.get("DURATION", "15s")
CONNECTIONS = int(os.environ.get("CONNECTIONS", "24"))
SINK_PORT = int(os.environ.get("SINK_PORT", "2525"))
SINKS = [f"127.0.0.{10 + i}" for i in range(4)]
TOKEN = "bench-admin-token-0123456789abcdef"
PG_SERVER = str(ROOT / "tests" / "pg" / "pg-server.sh")

processes = []


def log(*parts):
    print("==", *parts, file=sys.stderr, flush=True)


def psql(url, sql):
    out = subprocess.run(["psql", url, "-X", "-q", "-At", "-F", "|", "-c", sql], capture_output=True,
                         text=True, timeout=120, check=True)
    return [line.split("|") for line in out.stdout.splitlines()]


def start(command, log_path):
    f = open(log_path, "w")
    p = subprocess.Popen(command, stdout=f, stderr=subprocess.STDOUT)
    processes.append(p)
    return p


def wait_until(predicate, seconds, what):
    deadline = time.time() + seconds
    while time.time() < deadline:
        try:
            if predicate():
                return
        except Exception:
            pass
        time.sleep(0.1)
    raise SystemExit(f"cluster.py: {what} did not happen within {seconds} s")


def http(url, data=None, method=None):
    request = urllib.request.Request(url, data=data, method=method,
                                     headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as r:
        return json.loads(r.read() or b"{}")


def cpu_seconds(pid):
    fields = pathlib.Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def pg_data(pgdir):
    """The data directory of tests/pg/pg-server.sh's cluster (its path is in pgdir/cluster)."""
    return pathlib.Path((pgdir / "cluster").read_text().strip()) / "data"


def postgres_cpu(pgdir):
    """CPU seconds of every process of the PostgreSQL server (its postmaster's children)."""
    pid = int((pg_data(pgdir) / "postmaster.pid").read_text().split()[0])
    total = cpu_seconds(pid)
    children = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout.split()
    for child in children:
        try:
            total += cpu_seconds(int(child))
        except FileNotFoundError:
            pass
    return total


def start_node(work, url, dns_port, index, total):
    d = work / f"n{index + 1}"
    d.mkdir()
    (d / "petrel.toml").write_text(f"""
[log]
level = "info"
[http]
listen = "127.0.0.1:0"
[admin]
listen = "127.0.0.1:0"
token = "{TOKEN}"
[storage]
data_dir = "{d}/data"
url = "{url}"
[bootstrap]
create_tenant = false
[dns]
servers = ["127.0.0.1:{dns_port}"]
[delivery]
port = {SINK_PORT}
allow_private_destinations = true
[cluster]
enabled = {"true" if total > 1 else "false"}
node_name = "n{index + 1}"
listen = "127.0.0.1:0"
insecure_private_network = true
[[egress.sources]]
name = "n{index + 1}"
address = "127.0.0.{30 + index}"
""")
    p = start([PETREL, "serve", "--config", str(d / "petrel.toml")], d / "log")
    wait_until(lambda: "listener=admin" in (d / "log").read_text(), 20, f"node {index + 1} listening")
    text = (d / "log").read_text()
    api = int(text.split("listener=api address=")[1].split()[0].rsplit(":", 1)[1])
    admin = int(text.split("listener=admin address=")[1].split()[0].rsplit(":", 1)[1])
    wait_until(lambda: urllib.request.urlopen(f"http://127.0.0.1:{api}/readyz", timeout=2).status == 200, 30,
               f"node {index + 1} ready")
    return {"process": p, "api": api, "admin": admin, "dir": d}


def waiting(node):
    t = http(f"http://127.0.0.1:{node['admin']}/admin/queues")["totals"]
    return t["queued"] + t["deferred"]


def run(count, work, pgdir, admin_url, dns_port):
    name = f"bench_{count}"
    psql(admin_url, f"DROP DATABASE IF EXISTS {name}")
    psql(admin_url, f"CREATE DATABASE {name}")
    url = admin_url.rsplit("/", 1)[0] + "/" + name
    psql(url, "CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
    (work / name).mkdir()
    nodes = [start_node(work / name, url, dns_port, i, count) for i in range(count)]
    if count > 1:  # partitions balanced over every node
        def balanced():
            rows = psql(url, "SELECT count(DISTINCT owner), count(*) FILTER (WHERE lease_until > clock_timestamp()) "
                             "FROM partitions")
            return int(rows[0][0]) == count and int(rows[0][1]) == 64
        wait_until(balanced, 30, "partitions balanced")
        time.sleep(3)
    key = http(f"http://127.0.0.1:{nodes[0]['admin']}/admin/tenants",
               json.dumps({"name": "bench", "rate": "1000000/s", "burst": 1000000}).encode())["api_key"]
    time.sleep(1)  # the new key reaches the other nodes (pg_notify, 200 ms polls)
    psql(url, "SELECT pg_stat_reset(); SELECT pg_stat_statements_reset()")
    pg_cpu0 = postgres_cpu(pgdir)
    node_cpu0 = [cpu_seconds(n["process"].pid) for n in nodes]
    stats0 = psql(url, f"SELECT xact_commit, tup_inserted + tup_updated + tup_deleted FROM pg_stat_database "
                       f"WHERE datname = '{name}'")[0]
    env = dict(os.environ, PETREL_KEY=key, MESSAGE_BYTES="1024")
    wrks = [subprocess.Popen(["wrk", "-t1", f"-c{max(1, CONNECTIONS // count)}", f"-d{DURATION}",
                              "-s", str(ROOT / "bench" / "delivery.lua"), f"http://127.0.0.1:{n['api']}/v1/messages"],
                             env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            for n in nodes]
    for w in wrks:
        w.wait()
    deadline = time.time() + 300
    while time.time() < deadline and sum(waiting(n) for n in nodes) > 0:
        time.sleep(0.5)
    time.sleep(1)
    node_cpu = [cpu_seconds(n["process"].pid) - c for n, c in zip(nodes, node_cpu0)]
    pg_cpu = postgres_cpu(pgdir) - pg_cpu0
    stats1 = psql(url, f"SELECT xact_commit, tup_inserted + tup_updated + tup_deleted FROM pg_stat_database "
                       f"WHERE datname = '{name}'")[0]
    delivered, first, last = psql(url, """
        SELECT count(*), (SELECT min(created_at) FROM messages), max(created_at)
        FROM events WHERE type = 'delivered'""")[0]
    delivered = int(delivered)
    per_source = dict(psql(url, "SELECT data::json->>'source_ip', count(*) FROM events WHERE type = 'delivered' "
                                "GROUP BY 1 ORDER BY 1"))
    statements = psql(url, "SELECT coalesce(sum(calls), 0) FROM pg_stat_statements s JOIN pg_database d "
                           f"ON d.oid = s.dbid WHERE d.datname = '{name}'")[0][0]
    for n in nodes:
        n["process"].send_signal(signal.SIGTERM)
    for n in nodes:
        n["process"].wait(timeout=60)
    seconds = (int(last) - int(first)) / 1000 if delivered else 0
    return {
        "nodes": count,
        "delivered": delivered,
        "delivered_per_s": round(delivered / seconds) if seconds else 0,
        "per_node": per_source,
        "node_cpu_s": [round(c, 1) for c in node_cpu],
        "node_cpu_us_per_msg": round(sum(node_cpu) * 1e6 / delivered) if delivered else 0,
        "pg_cpu_s": round(pg_cpu, 1),
        "pg_cpu_us_per_msg": round(pg_cpu * 1e6 / delivered) if delivered else 0,
        "commits_per_msg": round((int(stats1[0]) - int(stats0[0])) / delivered, 2) if delivered else 0,
        "rows_per_msg": round((int(stats1[1]) - int(stats0[1])) / delivered, 2) if delivered else 0,
        "statements_per_msg": round(int(statements) / delivered, 2) if delivered else 0,
    }


def main():
    for tool in ("wrk", "psql", "/usr/sbin/smtp-sink"):
        if not shutil.which(tool):
            raise SystemExit(f"cluster.py: {tool} is missing (bash scripts/install-deps.sh --bench)")
    work = pathlib.Path(tempfile.mkdtemp(prefix="petrel-cluster-bench-"))
    pgdir = work / "pg"
    try:
        subprocess.run([PG_SERVER, "start", str(pgdir)], check=True, capture_output=True, timeout=120)
        with open(pg_data(pgdir) / "postgresql.conf", "a") as conf:
            conf.write("shared_preload_libraries = 'pg_stat_statements'\n")
        subprocess.run([PG_SERVER, "restart", str(pgdir)], check=True, capture_output=True, timeout=120)
        admin_url = (pgdir / "url").read_text().strip()
        for sink in SINKS:
            start(["/usr/sbin/smtp-sink", "-u", "nobody", "-m", "1000", f"{sink}:{SINK_PORT}", "4096"],
                  work / f"sink-{sink}.log")
        zone = subprocess.run([sys.executable, str(ROOT / "bench" / "delivery_zone.py"), "1000", str(len(SINKS))],
                              capture_output=True, text=True, check=True).stdout
        (work / "zone.json").write_text(zone)
        start([sys.executable, str(ROOT / "bench" / "delivery_dns.py"), "--listen", "127.0.0.1:0", "--zone",
               str(work / "zone.json"), "--control", "127.0.0.1:0", "--ready-file", str(work / "dns.ready")],
              work / "dns.log")
        wait_until(lambda: (work / "dns.ready").stat().st_size > 0, 20, "DNS server ready")
        dns_port = json.loads((work / "dns.ready").read_text())["port"]
        psql(admin_url, "CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        results = []
        for count in NODES:
            log(f"{count} node(s), {DURATION}")
            psql(admin_url, "CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
            result = run(count, work, pgdir, admin_url, dns_port)
            log(json.dumps(result))
            results.append(result)
        print("\nnodes  delivered/s  per node (by source)            node CPU µs/msg  PG CPU µs/msg  "
              "commits/msg  rows/msg  statements/msg")
        for r in results:
            per = ", ".join(f"{k.rsplit('.', 1)[1]}:{v}" for k, v in r["per_node"].items())
            print(f"{r['nodes']:>5}  {r['delivered_per_s']:>11}  {per:<32} {r['node_cpu_us_per_msg']:>15}  "
                  f"{r['pg_cpu_us_per_msg']:>13}  {r['commits_per_msg']:>11}  {r['rows_per_msg']:>8}  "
                  f"{r['statements_per_msg']:>14}")
    finally:
        for p in processes:
            if p.poll() is None:
                p.terminate()
        for p in processes:
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()
        subprocess.run([PG_SERVER, "stop", str(pgdir)], capture_output=True, timeout=120)
        if os.environ.get("KEEP_WORK") != "1":
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
