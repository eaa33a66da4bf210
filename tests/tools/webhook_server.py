"""Scriptable webhook receiver for Petrel's system tests.

Petrel POSTs signed event batches here. The server records every request (time, headers, raw
body) and answers as scripted through its HTTP control interface:
  POST /config {"mode": "ok"}                    200 (the default)
  POST /config {"mode": "status", "status": 500} that status
  POST /config {"mode": "slow", "delay": 2}      200 after `delay` seconds
  POST /config {"mode": "hang", "delay": 30}     no answer for `delay` seconds, then close
  POST /config {"mode": "reset"}                  the connection reset (RST) instead of an answer
  GET  /requests                                 [{"at", "path", "headers", "body"}, ...]
  POST /reset                                    forget the requests
With --cert/--key the receiver speaks HTTPS.

Usage:
  /usr/bin/python3 tests/tools/webhook_server.py --listen 127.0.0.1:0 [--cert C --key K]
      --control 127.0.0.1:0 --ready-file PATH
"""
import argparse
import json
import os
import signal
import socket
import ssl
import struct
import sys
import threading
import time
from http.server import ThreadingHTTPServer

from control_http import JsonHandler, parse_address  # noqa: E402

BODY_LIMIT = 16 << 20


class State:
    def __init__(self):
        self.lock = threading.Lock()
        self.requests = []
        self.config = {"mode": "ok"}


STATE = State()



class ReceiverHandler(JsonHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        if length > BODY_LIMIT:
            self.send_error(413)
            return
        body = self.rfile.read(length)
        with STATE.lock:
            config = dict(STATE.config)
            STATE.requests.append({"at": time.time(), "path": self.path,
                                   "headers": {k.lower(): v for k, v in self.headers.items()},
                                   "body": body.decode("utf-8", "replace"), "answered": config["mode"]})
        mode = config.get("mode", "ok")
        if mode == "hang":
            time.sleep(float(config.get("delay", 30)))
            self.close_connection = True
            return
        if mode == "reset":
            # SO_LINGER with a zero timeout: close() sends an RST, not a FIN.
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.close()
            self.close_connection = True
            return
        if mode == "slow":
            time.sleep(float(config.get("delay", 1)))
        status = int(config.get("status", 500)) if mode == "status" else 200
        payload = b'{"ok": true}' if status == 200 else b'{"error": "scripted"}'
        self.send_body(status, payload)


class ControlHandler(JsonHandler):
    def answer(self, value, status=200):
        self.send_json(status, value)

    def do_GET(self):
        if self.path == "/requests":
            with STATE.lock:
                return self.answer(list(STATE.requests))
        self.answer({"error": "not found"}, 404)

    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b"{}"
        payload = json.loads(body or b"{}") if body.strip() else {}
        if self.path == "/config":
            with STATE.lock:
                STATE.config = dict(payload or {"mode": "ok"})
            return self.answer({"config": STATE.config})
        if self.path == "/reset":
            with STATE.lock:
                STATE.requests.clear()
            return self.answer({"reset": True})
        self.answer({"error": "not found"}, 404)


def serve_in_thread(server):
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    return thread


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--listen", type=parse_address, required=True)
    parser.add_argument("--cert")
    parser.add_argument("--key")
    parser.add_argument("--control", type=parse_address, required=True)
    parser.add_argument("--ready-file", required=True)
    args = parser.parse_args(argv)

    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    receiver = ThreadingHTTPServer(args.listen, ReceiverHandler)
    receiver.daemon_threads = True
    if args.cert:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(args.cert, args.key)
        receiver.socket = context.wrap_socket(receiver.socket, server_side=True)
    serve_in_thread(receiver)
    control = ThreadingHTTPServer(args.control, ControlHandler)
    control.daemon_threads = True
    serve_in_thread(control)
    temporary = args.ready_file + ".tmp"
    with open(temporary, "w") as handle:
        json.dump({"port": receiver.server_address[1], "control_port": control.server_address[1]}, handle)
    os.replace(temporary, args.ready_file)
    while not stop.wait(0.2):
        pass
    for server in (receiver, control):
        server.shutdown()
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
