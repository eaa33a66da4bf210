"""Helpers for system tests that need a fake remote MTA or DNS: start smtp_server.py and
dns_server.py as subprocesses, wait until they listen, and drive their HTTP control interfaces.

Tests put tests/tools on sys.path and use:
    with SmtpServer(tmp_path, args=["--size", "1000"]) as smtp, DnsServer(tmp_path, zone) as dns:
        ...
        smtp.wait_for_messages(1)
"""
import json
import pathlib
import signal
import subprocess
import time
import uuid

import requests

TOOLS = pathlib.Path(__file__).resolve().parent
PYTHON = "/usr/bin/python3"
START_TIMEOUT = 10
STOP_TIMEOUT = 5
HTTP_TIMEOUT = 10


class _ToolProcess:
    """A tool script run as a subprocess that reports its ports through a ready file."""

    script = None   # file name in tests/tools, set by subclasses
    name = None     # prefix of the files this instance keeps in work_dir

    def __init__(self, work_dir):
        self.work_dir = pathlib.Path(work_dir)
        self.work_dir.mkdir(parents=True, exist_ok=True)
        # Unique names, so several servers can share one work_dir.
        self.stem = f"{self.name}-{uuid.uuid4().hex[:8]}"
        self.ready_path = self.work_dir / f"{self.stem}.ready.json"
        self.log_path = self.work_dir / f"{self.stem}.log"
        self.proc = None
        self.ready = None
        self.session = requests.Session()

    def command_arguments(self):
        raise NotImplementedError

    def start(self):
        # stderr goes to a file rather than a pipe, which nobody would drain during the test.
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                [PYTHON, "-u", str(TOOLS / self.script), "--control", "127.0.0.1:0",
                 "--ready-file", str(self.ready_path), *self.command_arguments()],
                stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + START_TIMEOUT
        while not self.ready_path.exists():
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.script} exited with {self.proc.returncode}:\n{self.log()}")
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"{self.script} not ready after {START_TIMEOUT}s:\n{self.log()}")
            time.sleep(0.02)
        self.ready = json.loads(self.ready_path.read_text())
        return self

    def stop(self):
        """SIGTERM, then SIGKILL if it has not exited within STOP_TIMEOUT; returns the exit code."""
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()

    def log(self):
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    @property
    def control_url(self):
        return f"http://127.0.0.1:{self.ready['control_port']}"

    def _get(self, path):
        response = self.session.get(self.control_url + path, timeout=HTTP_TIMEOUT)
        response.raise_for_status()
        return response.json()

    def _post(self, path, payload=None):
        response = self.session.post(self.control_url + path, json=payload, timeout=HTTP_TIMEOUT)
        response.raise_for_status()
        return response.json()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc_info):
        self.stop()
        self.session.close()


class SmtpServer(_ToolProcess):
    """smtp_server.py. `listen` entries are "ip:port" (port 0 picks one); `args` are further
    command-line options such as ["--require-tls", "--size", "1000"]."""

    script = "smtp_server.py"
    name = "smtp"

    def __init__(self, work_dir, listen=("127.0.0.2:0",), args=()):
        super().__init__(work_dir)
        self.listen = list(listen)
        self.args = list(args)

    def command_arguments(self):
        return [argument for address in self.listen for argument in ("--listen", address)] \
            + self.args

    @property
    def addresses(self):
        """The bound "ip:port" of each listener, in --listen order."""
        return list(self.ready["listen"])

    @property
    def ports(self):
        return [int(address.rpartition(":")[2]) for address in self.addresses]

    @property
    def port(self):
        return self.ports[0]

    def messages(self):
        return self._get("/messages")

    def stats(self):
        return self._get("/stats")

    def reset(self):
        return self._post("/reset")

    def configure(self, **changes):
        """Runtime changes for new connections: greeting, stall_greeting, require_tls,
        max_connections, size."""
        return self._post("/config", changes)

    def wait_for_messages(self, count, timeout=10):
        """Poll until at least `count` messages have been accepted; returns all of them."""
        deadline = time.monotonic() + timeout
        while True:
            messages = self.messages()
            if len(messages) >= count:
                return messages
            if time.monotonic() > deadline:
                raise TimeoutError(f"{len(messages)} of {count} messages after {timeout}s; "
                                   f"stats: {json.dumps(self.stats())}")
            time.sleep(0.05)


class DnsServer(_ToolProcess):
    """dns_server.py serving `zone` (the dict form described in dns_server.Zone.from_json)."""

    script = "dns_server.py"
    name = "dns"

    def __init__(self, work_dir, zone, listen="127.0.0.1:0"):
        super().__init__(work_dir)
        self.zone_path = self.work_dir / f"{self.stem}.zone.json"
        self.zone_path.write_text(json.dumps(zone))
        self.listen = listen

    def command_arguments(self):
        return ["--listen", self.listen, "--zone", str(self.zone_path)]

    @property
    def port(self):
        return self.ready["port"]

    def stats(self):
        return self._get("/stats")

    def set_zone(self, zone):
        return self._post("/zone", zone)

    def reset(self):
        return self._post("/reset")


class WebhookServer(_ToolProcess):
    """webhook_server.py: records the POSTs it gets and answers as configured (see its doc)."""

    script = "webhook_server.py"
    name = "webhook"

    def __init__(self, work_dir, listen="127.0.0.1:0", cert=None, key=None):
        super().__init__(work_dir)
        self.listen = listen
        self.cert = cert
        self.key = key

    def command_arguments(self):
        extra = ["--cert", str(self.cert), "--key", str(self.key)] if self.cert else []
        return ["--listen", self.listen, *extra]

    @property
    def port(self):
        return self.ready["port"]

    def requests(self):
        return self._get("/requests")

    def configure(self, **config):
        return self._post("/config", config)

    def reset(self):
        return self._post("/reset")

    def events(self, answered="ok"):
        """Every event of every batch that was answered with `answered` (None: all), in order."""
        out = []
        for r in self.requests():
            if answered is None or r["answered"] == answered:
                out.extend(json.loads(r["body"])["events"])
        return out


def make_self_signed_cert(work_dir, hostname="mx.test"):
    """A throwaway certificate for `hostname` (and IP 127.0.0.2); returns (cert_path, key_path)."""
    work_dir = pathlib.Path(work_dir)
    work_dir.mkdir(parents=True, exist_ok=True)
    cert_path = work_dir / f"{hostname}.crt"
    key_path = work_dir / f"{hostname}.key"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
         "-subj", f"/CN={hostname}", "-addext", f"subjectAltName=DNS:{hostname},IP:127.0.0.2",
         "-keyout", str(key_path), "-out", str(cert_path)],
        check=True, capture_output=True, timeout=60)
    return str(cert_path), str(key_path)


def zone_for(domains):
    """Zone dict from {"example.test": [("mx1.example.test", 10, "127.0.0.2"), ...]}: an MX
    record per entry plus an address record for each host (AAAA when the address has a colon)."""
    records = []
    addresses = set()
    for domain, exchanges in domains.items():
        for host, preference, address in exchanges:
            records.append({"name": domain, "type": "MX", "preference": preference,
                            "exchange": host})
            if (host, address) not in addresses:
                addresses.add((host, address))
                records.append({"name": host, "type": "AAAA" if ":" in address else "A",
                                "address": address})
    return {"records": records}


def openssl(*args):
    subprocess.run(["openssl", *args], check=True, capture_output=True, timeout=60)


def make_ca(work):
    """A throwaway CA (ca.pem, ca.key) in `work`, a pathlib.Path."""
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=Petrel Test CA",
            "-keyout", str(work / "ca.key"), "-out", str(work / "ca.pem"),
            "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign")


def make_leaf(work, name, hosts):
    """A certificate of the CA in `work` for `hosts` (DNS names); returns (cert, key) paths."""
    key, csr, cert = work / f"{name}.key", work / f"{name}.csr", work / f"{name}.pem"
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={hosts[0]}", "-keyout", str(key), "-out", str(csr))
    ext = work / f"{name}.ext"
    ext.write_text("subjectAltName=" + ",".join(f"DNS:{h}" for h in hosts) + "\n")
    openssl("x509", "-req", "-in", str(csr), "-CA", str(work / "ca.pem"), "-CAkey", str(work / "ca.key"),
            "-CAcreateserial", "-days", "2", "-out", str(cert), "-extfile", str(ext))
    return cert, key


def tlsa_digest(cert_path, selector=1):
    """The SHA-256 of a PEM certificate's public key (selector 1) or whole DER certificate
    (selector 0), hex: the data of a TLSA record with matching type 1."""
    import hashlib
    if selector == 1:
        pub = subprocess.run(["openssl", "x509", "-in", str(cert_path), "-noout", "-pubkey"],
                             check=True, capture_output=True, timeout=60).stdout
        der = subprocess.run(["openssl", "pkey", "-pubin", "-outform", "DER"], input=pub,
                             check=True, capture_output=True, timeout=60).stdout
    else:
        der = subprocess.run(["openssl", "x509", "-in", str(cert_path), "-outform", "DER"],
                             check=True, capture_output=True, timeout=60).stdout
    return hashlib.sha256(der).hexdigest()


def _free_port():
    import socket
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        udp.bind(("127.0.0.1", 0))
        return udp.getsockname()[1]


class ValidatingResolver:
    """Debian's unbound on 127.0.0.1, validating DNSSEC over zones signed here with ldns (ECDSA
    P-256): answers from `signed` zones carry the AD bit, answers from `unsigned` ones do not,
    and a record of `tamper` (owner, type) changed after signing is bogus (SERVFAIL). Zones are
    given as zone-file lines relative to their origin, without SOA and NS (added here)."""

    def __init__(self, work_dir, signed, unsigned=None, tamper=()):
        self.work = pathlib.Path(work_dir) / f"unbound-{uuid.uuid4().hex[:8]}"
        self.work.mkdir(parents=True)
        self.signed, self.unsigned, self.tamper = signed, unsigned or {}, tamper
        self.proc = None
        self.port = None

    def _zone_file(self, zone, lines):
        path = self.work / f"{zone}.zone"
        head = [f"$ORIGIN {zone}.", "$TTL 300",
                f"@ IN SOA ns.{zone}. hostmaster.{zone}. 1 3600 600 86400 300",
                f"@ IN NS ns.{zone}.", "ns IN A 127.0.0.1"]
        path.write_text("\n".join(head + list(lines)) + "\n")
        return path

    def _sign(self, zone, path):
        def keygen(*extra):
            out = subprocess.run(["ldns-keygen", "-a", "ECDSAP256SHA256", *extra, zone], cwd=self.work,
                                 check=True, capture_output=True, text=True, timeout=60).stdout
            return out.strip()
        ksk, zsk = keygen("-k"), keygen()
        subprocess.run(["ldns-signzone", str(path), ksk, zsk], cwd=self.work, check=True,
                       capture_output=True, timeout=60)
        signed = pathlib.Path(str(path) + ".signed")
        if self.tamper:
            lines = signed.read_text().splitlines()
            for i, line in enumerate(lines):
                fields = line.split()
                for owner, rtype in self.tamper:
                    if len(fields) > 4 and fields[0].rstrip(".") == owner and fields[3] == rtype:
                        fields[-1] = fields[-1][:-2] + ("00" if fields[-1][-2:] != "00" else "11")
                        lines[i] = "\t".join(fields)
            signed.write_text("\n".join(lines) + "\n")
        return signed, (self.work / f"{ksk}.key").read_text()

    def start(self):
        self.port = _free_port()
        anchors, auth = [], []
        for zone, lines in self.signed.items():
            signed, anchor = self._sign(zone, self._zone_file(zone, lines))
            anchors.append(anchor)
            auth.append((zone, signed))
        for zone, lines in self.unsigned.items():
            auth.append((zone, self._zone_file(zone, lines)))
        (self.work / "ta.key").write_text("".join(anchors))
        conf = [
            "server:",
            f"  interface: 127.0.0.1@{self.port}", f"  port: {self.port}",
            "  do-daemonize: no", '  username: ""', '  chroot: ""', f'  directory: "{self.work}"',
            '  pidfile: ""', "  use-syslog: no", f'  logfile: "{self.work}/unbound.log"', "  do-ip6: no",
            "  access-control: 127.0.0.0/8 allow", f'  trust-anchor-file: "{self.work}/ta.key"',
            '  module-config: "validator iterator"', '  local-zone: "test." nodefault',
            '  target-fetch-policy: "0 0 0 0 0"', "  verbosity: 1",
        ]
        for zone, path in auth:
            conf += ["auth-zone:", f'  name: "{zone}."', f'  zonefile: "{path}"', "  for-upstream: yes",
                     "  for-downstream: no"]
        conf += ["remote-control:", "  control-enable: no"]
        (self.work / "unbound.conf").write_text("\n".join(conf) + "\n")
        self.proc = subprocess.Popen(["unbound", "-d", "-c", str(self.work / "unbound.conf")],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + START_TIMEOUT
        zone = next(iter(self.signed))
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("unbound exited: " + (self.work / "unbound.log").read_text()[-2000:])
            if self.query(zone, "SOA") is not None:
                return self
            time.sleep(0.1)
        self.stop()
        raise RuntimeError("unbound did not answer within %ss" % START_TIMEOUT)

    def query(self, name, rtype):
        """(rcode, ad) of a query with the AD bit set, or None when there is no answer."""
        import dnslib
        import socket
        q = dnslib.DNSRecord.question(name, rtype)
        q.header.ad = 1
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.settimeout(0.5)
            try:
                s.sendto(q.pack(), ("127.0.0.1", self.port))
                answer = dnslib.DNSRecord.parse(s.recv(4096))
            except (OSError, dnslib.DNSError):
                return None
        return answer.header.rcode, bool(answer.header.ad)

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


def start_mta_sts_server(work, address, policies):
    """An HTTPS server on `address` (an IP; the port is picked) answering
    /.well-known/mta-sts.txt for mta-sts.<domain> with policies[domain] (RFC 8461 3.2), with a
    certificate of the CA in `work` (make_ca first) for every mta-sts.<domain>. Returns the
    server; its port is server.server_address[1]; server.shutdown() stops it."""
    import http.server
    import ssl
    import threading

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            domain = self.headers.get("Host", "").split(":")[0].removeprefix("mta-sts.")
            body = policies.get(domain)
            if self.path != "/.well-known/mta-sts.txt" or body is None:
                self.send_response(404)
                self.end_headers()
                return
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body.encode())

        def log_message(self, *args):
            pass

    cert, key = make_leaf(work, "mta-sts-" + uuid.uuid4().hex[:8], [f"mta-sts.{d}" for d in policies])
    server = http.server.ThreadingHTTPServer((address, 0), Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(str(cert), str(key))
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server
