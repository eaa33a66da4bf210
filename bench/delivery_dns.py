"""tests/tools/dns_server.py with a large UDP receive buffer, for bench/delivery.sh.

At the start of the benchmark Petrel looks up the MX of 1,000 domains within a fraction of a
second. The test server answers each query on its own Python thread, and with the kernel's
default receive buffer (net.core.rmem_default, about 208 KiB here) a few hundred of those queries
are dropped (RcvbufErrors in /proc/net/snmp). c-ares then waits dns.timeout (5 s) before asking
again, and every message for those domains waits with it: that measures the test DNS server, not
Petrel. A local caching resolver in production does not drop such a burst, so this wrapper asks
for a 4 MiB buffer (capped by net.core.rmem_max) on the UDP socket. Everything else, including
the command line, is dns_server.py's.
"""
import os
import socket
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "tools"))

import dnslib.server  # noqa: E402
import dns_server  # noqa: E402

RECEIVE_BUFFER = 4 << 20


_bind = dnslib.server.UDPServer.server_bind


def bind_with_large_buffer(server):
    server.socket.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECEIVE_BUFFER)
    _bind(server)


# Patched on dnslib's class itself: DNSServer creates it by name, and its __init__ refers to it.
dnslib.server.UDPServer.server_bind = bind_with_large_buffer

if __name__ == "__main__":
    sys.exit(dns_server.main())
