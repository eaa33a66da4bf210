"""Harness for system tests: starts the real petrel binary on a temporary data directory with
ephemeral ports, and talks to it over HTTP like any client would."""
import collections
import json
import os
import uuid
import pathlib
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time

import pytest
import requests

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "tools"))
from servers import DnsServer, SmtpServer  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parents[2]
# PETREL_TEST_STORE=postgresql runs the nodes on PostgreSQL: each node gets a database of its
# own on the cluster whose admin URL is in PETREL_PG_URL_FILE (tests/pg/pg-server.sh).
STORE = os.environ.get("PETREL_TEST_STORE", "sqlite")


def pg_admin_url():
    return pathlib.Path(os.environ["PETREL_PG_URL_FILE"]).read_text().strip()


def psql(url, sql):
    out = subprocess.run(["psql", url, "-X", "-q", "-At", "-F", "\x1f", "-c", sql],
                         capture_output=True, text=True, timeout=60)
    if out.returncode != 0:
        raise RuntimeError(f"psql failed: {out.stderr}")
    return [line.split("\x1f") for line in out.stdout.splitlines()]
PETREL_BIN = os.environ.get("PETREL_BIN", str(ROOT / "build" / "app" / "petrel"))
ADMIN_TOKEN = "system-test-admin-token-0123456789"
LISTENING = re.compile(r"http\.listening listener=(\w+) address=([\d.:\[\]a-f]+):(\d+)")


class Node:
    """One petrel process. Keeps its data directory across restarts."""

    def __init__(self, directory: pathlib.Path, extra_config: str = "", raw_config: str = ""):
        self.raw_config = raw_config  # appended as is, for arrays of tables
        self.dir = directory
        self.dir.mkdir(parents=True, exist_ok=True)
        self.data_dir = self.dir / "data"
        self.config_path = self.dir / "petrel.toml"
        self.extra_config = extra_config
        self.proc = None
        self.env = None  # the process's environment (None: this one's)
        self.first_key = None
        self.stdout_lines = []
        self.stderr_lines = []
        self.api_port = None
        self.admin_port = None
        self.session = requests.Session()
        self.scheme = self.admin_scheme = "http"
        self.verify = True  # a CA file when the listeners speak HTTPS (use_https)
        self.store_url = None
        if STORE == "postgresql":
            name = "petrel_node_" + uuid.uuid4().hex[:12]
            admin = pg_admin_url()
            psql(admin, f"CREATE DATABASE {name}")
            self.store_url = admin.rsplit("/", 1)[0] + "/" + name

    def write_config(self):
        sections = {
            "log": {"level": '"debug"'},
            "http": {"listen": '"127.0.0.1:0"'},
            "admin": {"listen": '"127.0.0.1:0"', "token": f'"{ADMIN_TOKEN}"'},
            "storage": {"data_dir": f'"{self.data_dir}"',
                        **({"url": f'"{self.store_url}"'} if self.store_url else {})},
            "debug": {"fault_injection": "true"},
            # Tests only talk to this machine: no DNS server listens on port 1, so lookups
            # fail fast (temporary) unless a test points dns.servers at its own server.
            "dns": {"servers": '["127.0.0.1:1"]'},
            # The test servers are on loopback, which delivery refuses by default.
            "delivery": {"port": "1", "retry_schedule": '["1h"]', "allow_private_destinations": "true"},
        }
        # extra_config lines "section.key = value" override or add to the defaults above.
        for line in self.extra_config.strip().splitlines():
            line = line.strip()
            if not line:
                continue
            dotted, value = [x.strip() for x in line.split("=", 1)]
            section, key = dotted.split(".", 1)
            sections.setdefault(section, {})[key] = value
        text = ""
        for section, keys in sections.items():
            text += f"[{section}]\n" + "".join(f"{k} = {v}\n" for k, v in keys.items())
        self.config_path.write_text(text + "\n" + self.raw_config)

    def start(self, wait_ready=True, timeout=20):
        self.write_config()
        self.stdout_lines, self.stderr_lines = [], []
        self.api_port = self.admin_port = None
        self.ports = {}  # every HTTP listener's bound port, by name
        self.proc = subprocess.Popen(
            [PETREL_BIN, "serve", "--config", str(self.config_path)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=self.env)
        threading.Thread(target=self._pump, args=(self.proc.stdout, self.stdout_lines), daemon=True).start()
        threading.Thread(target=self._pump, args=(self.proc.stderr, self.stderr_lines), daemon=True).start()
        deadline = time.time() + timeout
        while time.time() < deadline and (self.api_port is None or self.admin_port is None):
            if self.proc.poll() is not None:
                raise RuntimeError("petrel exited with %s:\n%s" % (self.proc.returncode, self.log()))
            for line in list(self.stderr_lines):
                m = LISTENING.search(line)
                if m:
                    self.ports[m.group(1)] = int(m.group(3))
                    if m.group(1) == "api":
                        self.api_port = int(m.group(3))
                    elif m.group(1) == "admin":
                        self.admin_port = int(m.group(3))
            time.sleep(0.02)
        if self.api_port is None or self.admin_port is None:
            raise RuntimeError("petrel did not start listening:\n" + self.log())
        if wait_ready:
            self.wait_ready(deadline - time.time())
        return self

    def _pump(self, stream, sink):
        for line in stream:
            sink.append(line.rstrip("\n"))

    def wait_ready(self, timeout=15):
        deadline = time.time() + timeout
        while time.time() < deadline:
            try:
                if requests.get(self.url("/readyz"), timeout=2, verify=self.verify).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.05)
        raise RuntimeError("petrel never became ready:\n" + self.log())

    def stop(self, sig=signal.SIGTERM, timeout=30):
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(sig)
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            stacks = ""
            if shutil.which("gdb"):  # where it hangs, for the failure report
                stacks = subprocess.run(
                    ["gdb", "-q", "-batch", "-p", str(self.proc.pid), "-ex", "thread apply all bt 20"],
                    capture_output=True, text=True, timeout=60).stdout
                (self.dir / "hang-stacks.txt").write_text(stacks)
            self.proc.kill()
            self.proc.wait()
            raise AssertionError("petrel did not stop within %ss:\n%s\n%s" % (timeout, self.log(), stacks[-20000:]))
        time.sleep(0.05)  # let the pump threads drain the pipes
        return self.proc.returncode

    def kill9(self):
        self.proc.kill()
        self.proc.wait()

    def log(self):
        return "\n".join(self.stderr_lines[-80:])

    def _printed_key(self):
        for line in self.stdout_lines:
            m = re.search(r"\b(pk_[A-Za-z0-9]{40})\b", line)
            if m:
                self.first_key = m.group(1)
                return self.first_key
        return None

    @property
    def bootstrap_key(self):
        """The key printed at this start (None if it printed none). The key is printed once
        every listener is bound, just before the node serves, so its line may reach the pipe
        reader a moment after /readyz answered: wait for it, or for the log saying there is
        none to print."""
        deadline = time.time() + 5
        while time.time() < deadline:
            if self._printed_key():
                return self.first_key
            if any("bootstrap.tenants_exist" in l or "bootstrap.not_done" in l for l in self.stderr_lines):
                return None
            if self.proc is None or self.proc.poll() is not None:
                break
            time.sleep(0.02)
        return self._printed_key()

    @property
    def key(self):
        """The first tenant's key, also after restarts."""
        return self.bootstrap_key or self.first_key

    def url(self, path):
        return f"{self.scheme}://127.0.0.1:{self.api_port}{path}"

    def admin_url(self, path):
        return f"{self.admin_scheme}://127.0.0.1:{self.admin_port}{path}"

    def use_https(self, ca_file, api=True, admin=True):
        """Talk HTTPS to the API and/or admin listener, trusting ca_file."""
        self.scheme = "https" if api else "http"
        self.admin_scheme = "https" if admin else "http"
        self.verify = str(ca_file)
        self.session.verify = self.verify
        self.session.trust_env = False  # REQUESTS_CA_BUNDLE would win over session.verify

    def submit(self, key, body, **kw):
        headers = {"Content-Type": "application/json"}
        if key is not None:
            headers["Authorization"] = f"Bearer {key}"
        headers.update(kw.pop("headers", {}))
        data = body if isinstance(body, (str, bytes)) else json.dumps(body)
        return self.session.post(self.url("/v1/messages"), data=data, headers=headers, timeout=30, **kw)

    def get_message(self, key, message_id):
        return self.session.get(self.url(f"/v1/messages/{message_id}"),
                                headers={"Authorization": f"Bearer {key}"}, timeout=30)

    def admin(self, method, path, **kw):
        headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
        headers.update(kw.pop("headers", {}))
        return self.session.request(method, self.admin_url(path), headers=headers, timeout=30, **kw)

    def create_tenant(self, name, **fields):
        r = self.admin("POST", "/admin/tenants", json={"name": name, **fields})
        assert r.status_code == 201, r.text
        body = r.json()
        return body["tenant"]["id"], body["api_key"]

    def metric(self, name, labels=None):
        """The value of one series from /metrics (0 when absent)."""
        text = requests.get(self.admin_url("/metrics"), timeout=10, verify=self.verify).text
        wanted = name + ("{" + ",".join(f'{k}="{v}"' for k, v in labels.items()) + "}" if labels else "")
        for line in text.splitlines():
            if line.startswith(wanted + " "):
                return float(line.split()[-1])
        return 0.0

    def sql(self, query):
        """Rows of a query on the node's store (values as the backend returns them)."""
        if self.store_url:
            return [tuple(row) for row in psql(self.store_url, query)]
        with sqlite3.connect(str(self.data_dir / "petrel.db")) as db:
            return [tuple(row) for row in db.execute(query)]

    def content(self, message_id):
        """The stored RFC 5322 message, as bytes."""
        if self.store_url:
            (row,) = psql(self.store_url, f"SELECT encode(content, 'hex') FROM messages WHERE id = '{message_id}'")
            return bytes.fromhex(row[0])
        with sqlite3.connect(str(self.data_dir / "petrel.db")) as db:
            return db.execute("SELECT content FROM messages WHERE id = ?", (message_id,)).fetchone()[0]


@pytest.fixture
def make_node(tmp_path):
    nodes = []

    def factory(extra_config="", name="node", start=True, raw_config=""):
        node = Node(tmp_path / name, extra_config, raw_config)
        nodes.append(node)
        if start:
            node.start()
        return node

    yield factory
    for node in nodes:
        if node.proc is not None and node.proc.poll() is None:
            code = node.stop()
            assert code == 0, "petrel exited with %s on SIGTERM:\n%s" % (code, node.log())


@pytest.fixture
def node(make_node):
    return make_node()


class Burst:
    """Clients that each submit one message per request, to `address(client, n)`, until stop():
    what was accepted (id -> address, and the time of each 202), the 503s, and every status (or
    exception name) seen. For tests that break the store in the middle of a burst."""

    def __init__(self, node, address, text="burst", clients=4, pause=0.01):
        self.node, self.address, self.text, self.pause = node, address, text, pause
        self.accepted, self.acked_at, self.refused = {}, {}, []
        self.statuses = collections.Counter()
        self._stop, self._lock = threading.Event(), threading.Lock()
        self._threads = [threading.Thread(target=self._client, args=(c,), daemon=True) for c in range(clients)]
        for t in self._threads:
            t.start()

    def _client(self, c):
        with requests.Session() as s:
            n = 0
            while not self._stop.is_set():
                to = self.address(c, n)
                try:
                    r = s.post(self.node.url("/v1/messages"),
                               json={"from": "app@example.com", "to": [to], "subject": "burst", "text": self.text},
                               headers={"Authorization": f"Bearer {self.node.key}"}, timeout=30)
                except requests.RequestException as e:
                    with self._lock:
                        self.statuses[type(e).__name__] += 1
                    continue
                with self._lock:
                    self.statuses[r.status_code] += 1
                    if r.status_code == 202:
                        self.accepted[r.json()["id"]] = to
                        self.acked_at[r.json()["id"]] = time.time()
                    elif r.status_code == 503:
                        self.refused.append(r)
                n += 1
                time.sleep(self.pause)

    def stop(self):
        self._stop.set()
        for t in self._threads:
            t.join()


def wait_for(predicate, timeout=20, interval=0.05, what="condition"):
    """Polls until predicate() returns something truthy; returns it, or fails after timeout."""
    deadline = time.time() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.time() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def exchange(port, data, read_timeout=5, source="127.0.0.1"):
    """Sends raw bytes (from a loopback source address), returns everything the server answered
    until it closed (or timeout)."""
    with socket.create_connection(("127.0.0.1", port), timeout=read_timeout, source_address=(source, 0)) as s:
        s.sendall(data)
        out = b""
        try:
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                out += chunk
        except socket.timeout:
            pass
        return out


def simple_message(**overrides):
    body = {"from": "App <app@example.com>", "to": ["someone@example.net"],
            "subject": "Hello", "text": "Hi there."}
    body.update(overrides)
    return body


FINAL_STATES = {"delivered", "bounced", "expired", "suppressed", "cancelled"}


def submit_ok(node, **body):
    """Submits a structured (or raw) message with the first tenant's key; returns the 202 body."""
    if "raw" not in body:
        body.setdefault("from", "App <app@sender.test>")
        body.setdefault("subject", "Test")
        if "text" not in body and "html" not in body:
            body["text"] = "Hello."
    r = node.submit(node.key, body)
    assert r.status_code == 202, r.text
    return r.json()


def recipients_of(node, message_id):
    """The message's recipients by address, as GET /v1/messages/{id} shows them."""
    r = node.get_message(node.key, message_id)
    assert r.status_code == 200, r.text
    return {x["email"]: x for x in r.json()["recipients"]}


def settle_message(node, message_id, timeout=20):
    """Waits until every recipient of the message is final; returns them by address."""
    return wait_for(lambda: (lambda rs: rs if all(x["status"] in FINAL_STATES for x in rs.values()) else None)(
        recipients_of(node, message_id)), timeout=timeout, what=f"message {message_id} to settle")


def wait_events(node, count, key=None, **params):
    """The events of the query once at least `count` are visible. An event is listed once its
    transaction and every older one have ended, so on PostgreSQL the last events of a message
    that just settled may take a moment to appear."""
    def page():
        r = node.session.get(node.url("/v1/events"), params={**params, "limit": 1000},
                             headers={"Authorization": f"Bearer {key or node.key}"}, timeout=30)
        assert r.status_code == 200, r.text
        events = r.json()["events"]
        return events if len(events) >= count else None
    return wait_for(page, what=f"{count} visible events of {params}")


def delivery_config(dns_port, smtp_port, **overrides):
    """Config lines for a node that delivers to the local test DNS and SMTP servers, with a
    one-second retry schedule and no tenant rate limit; overrides win (dotted keys, TOML values)."""
    values = {
        "dns.servers": f'["127.0.0.1:{dns_port}"]',
        "delivery.port": str(smtp_port),
        "delivery.retry_schedule": '["1s"]',
        "delivery.retry_jitter": "0",
        "tenants.default_rate": '"100000/s"',
        "tenants.default_burst": "100000",
    }
    values.update(overrides)
    return "\n".join(f"{k} = {v}" for k, v in values.items())


def one_mx_world(work, *domains):
    """A sink SMTP server on 127.0.0.2 that is the one MX (mx1.example.test) of example.test and
    of `domains`, with the DNS server that says so. Returns (sink, dns); the caller stops both."""
    sink = SmtpServer(work, listen=["127.0.0.2:0"]).start()
    records = [{"name": "mx1.example.test", "type": "A", "address": "127.0.0.2"}]
    for domain in ("example.test",) + domains:
        records.append({"name": domain, "type": "MX", "preference": 10, "exchange": "mx1.example.test"})
    return sink, DnsServer(work, {"records": records}).start()


@pytest.fixture
def mx_world(tmp_path):
    """one_mx_world as a fixture: (sink, dns), stopped afterwards."""
    sink, dns = one_mx_world(tmp_path)
    yield sink, dns
    sink.stop()
    dns.stop()


@pytest.fixture
def mx_node(make_node, mx_world):
    """A node delivering to mx_world (delivery_config)."""
    sink, dns = mx_world
    return make_node(delivery_config(dns.port, sink.port))
