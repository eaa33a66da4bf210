"""Scripted DNS server for Petrel's system tests.

Petrel's SMTP client resolves MX, A and AAAA records through this server instead of the real DNS,
so tests decide where mail goes and can make lookups fail in every way a resolver sees: NXDOMAIN,
NODATA, SERVFAIL, REFUSED and no answer at all. It answers authoritatively from a JSON zone (see
Zone.from_json), over UDP and TCP on the same port, and counts the queries it gets. An HTTP control
interface reports the counts (GET /stats), clears them (POST /reset) and swaps the zone
(POST /zone); the zone file is also re-read when it changes.

Usage:
  /usr/bin/python3 tests/tools/dns_server.py --listen 127.0.0.1:0 --zone ZONE.json
      --control 127.0.0.1:0 --ready-file PATH
"""
import argparse
import ipaddress
import json
import os
import signal
import socket
import struct
import sys
import threading
from http.server import ThreadingHTTPServer

from control_http import JsonHandler, parse_address  # noqa: E402

from dnslib import AAAA, CNAME, EDNS0, MX, QTYPE, RCODE, RR, SOA, TXT, A, DNSError, DNSLabel
from dnslib.server import DNSHandler, DNSLogger, DNSServer

DEFAULT_TTL = 300
SOA_MINIMUM = 60
SOA_RECORD = RR("test.", QTYPE.SOA, ttl=SOA_MINIMUM,
                rdata=SOA("ns.test.", "hostmaster.test.", (1, 3600, 600, 86400, SOA_MINIMUM)))
MAX_CNAME_CHAIN = 8
TCP_IDLE_SECONDS = 30
EDNS_UDP_PAYLOAD = 1232
PORT_ATTEMPTS = 20
ZONE_CHECK_INTERVAL = 1.0
SHUTDOWN_POLL = 0.05


class DropQuery(DNSError):
    """Raised by the resolver for names scripted to time out, so that nothing is sent."""


def normalize(name):
    return str(name).rstrip(".").lower()


def is_at_or_under(name, domains):
    return any(name == domain or name.endswith("." + domain) for domain in domains)


def text_chunks(text):
    """TXT data as character-strings of at most 255 bytes each."""
    parts = text if isinstance(text, list) else [text]
    chunks = []
    for part in parts:
        data = part.encode()
        chunks.extend(data[i:i + 255] for i in range(0, max(len(data), 1), 255))
    return chunks


def record_rdata(record):
    """(QTYPE value, rdata) for one zone JSON record; raises ValueError/KeyError if invalid."""
    kind = record["type"].upper()
    if kind == "A":
        return QTYPE.A, A(str(ipaddress.IPv4Address(record["address"])))
    if kind == "AAAA":
        return QTYPE.AAAA, AAAA(str(ipaddress.IPv6Address(record["address"])))
    if kind == "MX":
        # exchange "." is a null MX (RFC 7505) and stays the root name.
        return QTYPE.MX, MX(DNSLabel(record["exchange"]), int(record["preference"]))
    if kind == "TXT":
        return QTYPE.TXT, TXT(text_chunks(record["text"]))
    if kind == "CNAME":
        return QTYPE.CNAME, CNAME(DNSLabel(record["target"]))
    raise ValueError(f"unsupported record type {kind!r}")


class Zone:
    """An immutable snapshot of the served data; replaced as a whole, never edited."""

    def __init__(self, records, servfail, timeout, refused):
        self.records = records   # normalized name -> [(qtype, ttl, rdata)]
        # Names with no records of their own but with records below them ("empty non-terminals")
        # exist in the DNS: they get NODATA, not NXDOMAIN.
        self.ancestors = {name.split(".", depth)[-1] for name in records
                          for depth in range(1, name.count(".") + 1)}
        self.servfail = servfail
        self.timeout = timeout
        self.refused = refused

    @classmethod
    def from_json(cls, document):
        """Build a zone from its JSON form; raises ValueError if anything in it is invalid.

        {"records": [{"name": ..., "type": "A|AAAA|MX|TXT|CNAME", "ttl": 300, ...}],
         "servfail": [names], "timeout": [names], "refused": [names]}
        A: address; AAAA: address; MX: preference, exchange; TXT: text (str or list);
        CNAME: target. The lists apply to each name and everything under it.
        """
        if not isinstance(document, dict):
            raise ValueError("zone must be a JSON object")
        records = {}
        for record in document.get("records", []):
            try:
                qtype, rdata = record_rdata(record)
                entry = (qtype, int(record.get("ttl", DEFAULT_TTL)), rdata)
                records.setdefault(normalize(record["name"]), []).append(entry)
            except (KeyError, TypeError, ValueError, AttributeError, DNSError) as error:
                raise ValueError(f"bad record {record!r}: {error!r}") from error
        lists = {}
        for key in ("servfail", "timeout", "refused"):
            names = document.get(key, [])
            if not isinstance(names, list):
                raise ValueError(f"{key!r} must be a list of names")
            lists[key] = [normalize(name) for name in names]
        return cls(records, **lists)

    @classmethod
    def from_file(cls, path):
        with open(path) as handle:
            return cls.from_json(json.load(handle))


class ScriptedResolver:
    """dnslib resolver answering from the current Zone and counting queries."""

    def __init__(self, zone):
        self.zone = zone
        self.lock = threading.Lock()
        self.reset()

    def reset(self):
        with self.lock:
            self.queries = {}
            self.by_transport = {"udp": 0, "tcp": 0}
            self.total = 0

    def stats(self):
        with self.lock:
            return {"queries": dict(self.queries), "total": self.total,
                    "by_transport": dict(self.by_transport)}

    def count(self, name, qtype, transport):
        key = f"{name}/{QTYPE[qtype]}"
        with self.lock:
            self.queries[key] = self.queries.get(key, 0) + 1
            self.by_transport[transport] += 1
            self.total += 1

    def resolve(self, request, handler):
        zone = self.zone   # one snapshot for the whole answer, even if /zone swaps it meanwhile
        question = request.q
        name = normalize(question.qname)
        self.count(name, question.qtype, handler.protocol)
        if is_at_or_under(name, zone.timeout):
            raise DropQuery(f"dropping query for {name}")
        reply = request.reply()
        if any(rr.rtype == QTYPE.OPT for rr in request.ar):
            reply.add_ar(EDNS0(udp_len=EDNS_UDP_PAYLOAD))
        if is_at_or_under(name, zone.servfail):
            reply.header.rcode = RCODE.SERVFAIL
        elif is_at_or_under(name, zone.refused):
            reply.header.rcode = RCODE.REFUSED
        else:
            self.answer(zone, question, reply)
        return reply

    def answer(self, zone, question, reply):
        """Fill in an authoritative answer, following CNAMEs within the zone."""
        owner = question.qname
        wanted = question.qtype
        seen = set()
        for _ in range(MAX_CNAME_CHAIN):
            name = normalize(owner)
            entries = zone.records.get(name)
            if entries is None:
                if name not in zone.ancestors:
                    reply.header.rcode = RCODE.NXDOMAIN
                break
            matching = [entry for entry in entries if wanted in (entry[0], QTYPE.ANY)]
            if matching:
                for qtype, ttl, rdata in matching:
                    reply.add_answer(RR(owner, qtype, ttl=ttl, rdata=rdata))
                return
            aliases = [entry for entry in entries if entry[0] == QTYPE.CNAME]
            if not aliases or name in seen:
                break
            seen.add(name)
            qtype, ttl, rdata = aliases[0]
            reply.add_answer(RR(owner, qtype, ttl=ttl, rdata=rdata))
            owner = rdata.label
        # NXDOMAIN or NODATA: the SOA tells caches how long to remember the negative answer.
        reply.add_auth(SOA_RECORD)


class ScriptedHandler(DNSHandler):
    """dnslib's handler, except that over TCP it answers any number of queries on one connection
    (RFC 7766, as c-ares and other stub resolvers expect), and a dropped query leaves the
    connection open and silent, as a server that never answers would, rather than closed."""

    def handle(self):
        if self.server.socket_type != socket.SOCK_STREAM:
            super().handle()
            return
        self.protocol = "tcp"
        self.request.settimeout(TCP_IDLE_SECONDS)
        try:
            while (length := self.read_exactly(2)) is not None:
                query = self.read_exactly(struct.unpack("!H", length)[0])
                if query is None:
                    return
                try:
                    reply = self.get_reply(query)
                except DNSError as error:
                    self.server.logger.log_error(self, error)
                    continue
                self.request.sendall(struct.pack("!H", len(reply)) + reply)
        except OSError:   # includes the idle timeout
            pass

    def read_exactly(self, count):
        """`count` bytes from the TCP stream, or None at end of stream."""
        data = b""
        while len(data) < count:
            chunk = self.request.recv(count - len(data))
            if not chunk:
                return None
            data += chunk
        return data


class QuietLogger(DNSLogger):
    """Logs only real errors: dnslib's default prints every query and our deliberate drops."""

    def __init__(self):
        super().__init__(log="error", prefix=False,
                         logf=lambda text: print(text, file=sys.stderr, flush=True))

    def log_error(self, handler, error):
        if not isinstance(error, DropQuery):
            super().log_error(handler, error)


def serve_in_thread(server):
    # A short poll interval keeps shutdown() quick; the default 0.5 s adds up across servers.
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": SHUTDOWN_POLL},
                     daemon=True).start()


def start_dns_servers(resolver, host, port):
    """UDP and TCP servers on one port. For port 0 the UDP port is picked by the kernel and
    retried until TCP can bind the same number."""
    logger = QuietLogger()
    for _ in range(PORT_ATTEMPTS if port == 0 else 1):
        udp = DNSServer(resolver, address=host, port=port, logger=logger,
                        handler=ScriptedHandler)
        chosen = udp.server.server_address[1]
        try:
            tcp = DNSServer(resolver, address=host, port=chosen, tcp=True, logger=logger,
                            handler=ScriptedHandler)
        except OSError:
            udp.server.server_close()
            if port != 0:
                raise
            continue
        for server in (udp, tcp):
            serve_in_thread(server.server)
        return udp, tcp, chosen
    raise OSError(f"no port free for both UDP and TCP on {host} after {PORT_ATTEMPTS} tries")


class ZoneFileWatcher(threading.Thread):
    """Reloads the zone file when its modification time changes."""

    def __init__(self, path, resolver, stop):
        super().__init__(daemon=True)
        self.path = path
        self.resolver = resolver
        self.stop = stop
        self.mtime = os.stat(path).st_mtime_ns

    def run(self):
        while not self.stop.wait(ZONE_CHECK_INTERVAL):
            try:
                mtime = os.stat(self.path).st_mtime_ns
                if mtime != self.mtime:
                    self.mtime = mtime
                    self.resolver.zone = Zone.from_file(self.path)
            except (OSError, ValueError) as error:
                # A half-written or broken file keeps the old zone; the next change retries.
                print(f"zone reload failed: {error}", file=sys.stderr, flush=True)


class ControlHandler(JsonHandler):
    """GET /stats, POST /zone, POST /reset."""

    def do_GET(self):
        if self.path == "/stats":
            self.send_json(200, self.server.resolver.stats())
        else:
            self.send_json(404, {"error": "not found"})

    def do_POST(self):
        resolver = self.server.resolver
        if self.path == "/reset":
            resolver.reset()
            self.send_json(200, {"ok": True})
        elif self.path == "/zone":
            try:
                resolver.zone = Zone.from_json(self.read_json())
            except ValueError as error:
                self.send_json(400, {"error": str(error)})
                return
            self.send_json(200, {"ok": True})
        else:
            self.send_json(404, {"error": "not found"})



def write_ready_file(path, payload):
    temporary = path + ".tmp"
    with open(temporary, "w") as handle:
        json.dump(payload, handle)
    os.replace(temporary, path)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--listen", type=parse_address, required=True,
                        help="HOST:PORT for both UDP and TCP (port 0 picks one free for both)")
    parser.add_argument("--zone", required=True, help="zone JSON file, re-read when it changes")
    parser.add_argument("--control", type=parse_address, required=True,
                        help="HOST:PORT of the HTTP control interface")
    parser.add_argument("--ready-file", required=True,
                        help="written with the bound ports once serving")
    args = parser.parse_args(argv)

    resolver = ScriptedResolver(Zone.from_file(args.zone))
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    udp, tcp, port = start_dns_servers(resolver, *args.listen)
    ZoneFileWatcher(args.zone, resolver, stop).start()
    control = ThreadingHTTPServer(args.control, ControlHandler)
    control.daemon_threads = True
    control.resolver = resolver
    serve_in_thread(control)
    write_ready_file(args.ready_file, {"port": port, "control_port": control.server_address[1]})

    while not stop.wait(0.5):
        pass
    for server in (udp.server, tcp.server, control):
        server.shutdown()
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
