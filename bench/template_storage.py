#!/usr/bin/python3
"""What a templated batch costs in the store (docs/api.md, "Templates and batches"): one
submission of a TEMPLATE_KB template to RECIPIENTS recipients, each with its own substitutions,
against the same mail as RECIPIENTS plain submissions of the rendered size.

The node runs on the embedded SQLite store; the recipients are scheduled an hour ahead
(send_at), so nothing is delivered while the store is measured. Bytes are those SQLite reports
for the tables (dbstat) and the message and recipient rows' columns.

    bench/template_storage.py            # TEMPLATE_KB=20 RECIPIENTS=10000 PLAIN=1000
"""
import datetime
import os
import pathlib
import shutil
import signal
import sqlite3
import sys
import tempfile
import time

import requests

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
from load_support import for_each_item, start_petrel  # noqa: E402

PETREL = os.environ.get("PETREL_BIN", str(ROOT / "build" / "app" / "petrel"))
TEMPLATE_KB = int(os.environ.get("TEMPLATE_KB", "20"))
RECIPIENTS = int(os.environ.get("RECIPIENTS", "10000"))
PLAIN = int(os.environ.get("PLAIN", "1000"))  # plain messages measured (scaled to RECIPIENTS)
TOKEN = "bench-admin-token-0123456789abcdef"


def write_config(work):
    (work / "petrel.toml").write_text(f"""
[log]
level = "warn"
[http]
listen = "127.0.0.1:18590"
max_body_bytes = "64MiB"
[admin]
listen = "127.0.0.1:18591"
token = "{TOKEN}"
[storage]
data_dir = "{work / 'data'}"
[submission]
max_recipients = {max(RECIPIENTS, 1000)}
max_json_values = {RECIPIENTS * 8 + 1000}
[tenants]
default_rate = "1000000/s"
default_burst = 1000000
""")


def start(work):
    return start_petrel(PETREL, work, "http://127.0.0.1:18590/readyz")


def table_bytes(db):
    """Bytes of each table with its indexes (SQLite's dbstat)."""
    rows = db.execute("SELECT name, SUM(pgsize) FROM dbstat GROUP BY name").fetchall()
    return dict(rows)


def main():
    work = pathlib.Path(tempfile.mkdtemp(prefix="petrel-template-storage-"))
    write_config(work)
    p = start(work)
    try:
        key = requests.post("http://127.0.0.1:18591/admin/tenants", json={"name": "bench"},
                            headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30).json()["api_key"]
        auth = {"Authorization": f"Bearer {key}"}
        later = (datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
        paragraph = "Dear {{name}}, here is your offer {{code}} for {{city}}. " * 4 + "\n"
        html = ("<p>" + paragraph + "</p>\n") * (TEMPLATE_KB * 1024 // (len(paragraph) + 8))
        body = {"from": "news@example.com", "subject": "Hello {{name}}", "html": html, "send_at": later,
                "to": [{"email": f"r{i}@example.net",
                        "substitutions": {"name": f"Name {i}", "code": f"C{i:06d}", "city": "Springfield"}}
                       for i in range(RECIPIENTS)]}
        t = time.monotonic()
        r = requests.post("http://127.0.0.1:18590/v1/messages", json=body, headers=auth, timeout=600)
        elapsed = time.monotonic() - t
        assert r.status_code == 202, r.text[:500]
        message_id = r.json()["id"]

        def submit(s, i):
            rendered = html.replace("{{name}}", f"Name {i}").replace("{{code}}", f"C{i:06d}").replace("{{city}}", "Springfield")
            x = s.post("http://127.0.0.1:18590/v1/messages", headers=auth, timeout=60,
                       json={"from": "news@example.com", "subject": f"Hello Name {i}", "html": rendered,
                             "send_at": later, "to": [f"p{i}@example.org"]})
            assert x.status_code == 202, x.text

        for_each_item(PLAIN, 4, submit)
    finally:
        p.send_signal(signal.SIGTERM)
        p.wait(timeout=60)
    with sqlite3.connect(str(work / "data" / "petrel.db")) as db:
        (tsize, trows) = db.execute("SELECT length(content), (SELECT SUM(length(personal) + length(metadata) + length(address) "
                                    "+ length(domain) + 100) FROM recipients WHERE message_id = ?1) FROM messages "
                                    "WHERE id = ?1", (message_id,)).fetchone()
        (psize,) = db.execute("SELECT SUM(length(content)) FROM messages WHERE templated = 0").fetchone()
        (pcount,) = db.execute("SELECT COUNT(*) FROM messages WHERE templated = 0").fetchone()
        tables = table_bytes(db)
    templated_per = (tsize + trows) / RECIPIENTS
    plain_per = psize / pcount
    print(f"template: {TEMPLATE_KB} KB html, {RECIPIENTS} recipients, submitted in {elapsed:.2f} s")
    print(f"templated batch: message content {tsize} bytes once + recipient rows ~{trows} bytes "
          f"= {templated_per:.0f} bytes per recipient")
    print(f"plain messages ({pcount} measured): {plain_per:.0f} bytes of content per recipient "
          f"({plain_per * RECIPIENTS / 1e6:.1f} MB for {RECIPIENTS})")
    print(f"ratio: {plain_per / templated_per:.1f}x less per recipient when templated")
    print("table bytes (with indexes):", {k: v for k, v in sorted(tables.items()) if v > 100000})
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
