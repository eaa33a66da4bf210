"""What the test servers share: a quiet HTTP handler that answers and reads JSON (their control
sides), and HOST:PORT arguments."""
import argparse
import json
from http.server import BaseHTTPRequestHandler

CONTROL_BODY_LIMIT = 1 << 20


class JsonHandler(BaseHTTPRequestHandler):
    def log_message(self, format, *args):
        pass

    def send_body(self, status, body: bytes, content_type="application/json"):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def send_json(self, status, payload):
        self.send_body(status, json.dumps(payload).encode())

    def read_json(self):
        length = int(self.headers.get("Content-Length") or 0)
        if length > CONTROL_BODY_LIMIT:
            raise ValueError("body too large")
        return json.loads(self.rfile.read(length) or b"null")


def parse_address(text):
    """'127.0.0.2:25' or '[::1]:25' -> (host, port)."""
    host, separator, port = text.rpartition(":")
    if not separator or not port.isdigit():
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {text!r}")
    return host.strip("[]"), int(port)
