"""The petrel command line client against a running node: every subcommand, human and --json
output, connection settings from flags, environment and a config file, and the documented
exit codes."""
import json
import os
import pathlib
import signal
import subprocess
import sys
import threading
import time

import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "tools"))
from servers import DnsServer, SmtpServer, WebhookServer  # noqa: E402

from conftest import ADMIN_TOKEN, PETREL_BIN, delivery_config, settle_message, wait_for  # noqa: E402


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    work = tmp_path_factory.mktemp("cli-world")
    sink = SmtpServer(work, listen=["127.0.0.2:0"]).start()
    records = [{"name": "mx1.example.test", "type": "A", "address": "127.0.0.2"},
               {"name": "example.test", "type": "MX", "preference": 10, "exchange": "mx1.example.test"}]
    dns = DnsServer(work, {"records": records}).start()
    yield {"sink": sink, "dns": dns}
    sink.stop()
    dns.stop()


@pytest.fixture
def node(make_node, world):
    return make_node(delivery_config(world["dns"].port, world["sink"].port, **{
        "delivery.idle_timeout": '"1s"', "webhooks.require_https": "false", "webhooks.allow_private_networks": "true"}))


def petrel(node, *args, stdin=None, env_extra=None, key=None, admin=True, flags=True):
    env = {k: v for k, v in os.environ.items() if not k.startswith("PETREL_") or k == "PETREL_BIN"}
    env["HOME"] = str(node.dir)  # no ~/.config/petrel/cli.toml of the machine
    env.update(env_extra or {})
    connection = []
    if flags:
        connection = ["--url", node.url(""), "--admin-url", node.admin_url(""), "--key", key or node.key]
        if admin:
            connection += ["--admin-token", ADMIN_TOKEN]
    r = subprocess.run([PETREL_BIN, *args, *connection], input=stdin, capture_output=True, text=True, env=env,
                       timeout=60, cwd=node.dir)
    return r


def ok(r):
    assert r.returncode == 0, (r.returncode, r.stdout, r.stderr)
    return r.stdout


def test_send_status_and_events(node):
    out = ok(petrel(node, "send", "--from", "App <app@sender.test>", "--to", "a@example.test", "--to", "b@example.test",
                    "--subject", "Hello", "--text", "Hi.", "--campaign", "cli", "--tag", "t1"))
    assert out.startswith("accepted ")
    message = out.split()[1]
    assert "a@example.test" in out and "queued" in out
    settle_message(node, message)
    status = ok(petrel(node, "status", message))
    assert "delivered" in status and "b@example.test" in status and "STATUS" in status
    as_json = json.loads(ok(petrel(node, "status", message, "--json")))
    assert {r["status"] for r in as_json["recipients"]} == {"delivered"}
    events = ok(petrel(node, "events", "--message", message))
    assert events.count("delivered") == 2 and "accepted" in events and "250" in events
    lines = [json.loads(x) for x in ok(petrel(node, "events", "--type", "delivered", "--json")).splitlines()]
    assert len(lines) == 2 and all(e["campaign"] == "cli" for e in lines)
    # The body from standard input, and a raw message from a file.
    out = ok(petrel(node, "send", "--from", "app@sender.test", "--to", "c@example.test", "--subject", "stdin",
                    stdin="Text from stdin.\n"))
    settle_message(node, out.split()[1])
    raw = node.dir / "raw.eml"
    raw.write_text("From: app@sender.test\r\nTo: d@example.test\r\nSubject: raw\r\n\r\nRaw body.\r\n")
    assert petrel(node, "send", "--raw", str(raw)).returncode == 2  # the envelope is needed
    out = ok(petrel(node, "send", "--raw", str(raw), "--from", "bounces@sender.test", "--to", "d@example.test"))
    settle_message(node, out.split()[1])
    assert b"Raw body." in node.content(out.split()[1])


def readline_within(stream, seconds):
    """The next line of a child's output, or a failure after `seconds` (never blocks forever)."""
    lines = []
    reader = threading.Thread(target=lambda: lines.append(stream.readline()), daemon=True)
    reader.start()
    reader.join(seconds)
    assert lines, f"no line within {seconds} s"
    return lines[0]


def test_events_follow_prints_new_events_as_they_happen(node):
    env = {k: v for k, v in os.environ.items() if not k.startswith("PETREL_")}
    env.update({"PETREL_URL": node.url(""), "PETREL_API_KEY": node.key, "HOME": str(node.dir)})
    polls = node.metric("petrel_http_requests_total", {"listener": "api", "code": "200"})
    follower = subprocess.Popen([PETREL_BIN, "events", "--follow", "--json", "--type", "delivered"],
                                stdout=subprocess.PIPE, text=True, env=env)
    try:
        # The follower has read where the events end (its first page) before the message is sent.
        wait_for(lambda: node.metric("petrel_http_requests_total", {"listener": "api", "code": "200"}) > polls,
                 what="the follower's first page")
        message = ok(petrel(node, "send", "--from", "app@sender.test", "--to", "f@example.test", "--subject", "f",
                            "--text", "x")).split()[1]
        line = readline_within(follower.stdout, 20)
        assert json.loads(line)["message"] == message
    finally:
        follower.send_signal(signal.SIGINT)
        assert follower.wait(timeout=10) == 0


def test_queues_and_controls(node):
    ok(petrel(node, "suspend", "domain", "example.test", "--reason", "maintenance", "--duration", "1h"))
    message = ok(petrel(node, "send", "--from", "app@sender.test", "--to", "q@example.test", "--subject", "q",
                        "--text", "x")).split()[1]
    wait_for(lambda: "example.test" in ok(petrel(node, "queues")), what="the domain in the queue view")
    table = ok(petrel(node, "queues"))
    assert "WAITING_FOR" in table and "suspended" in table
    detail = ok(petrel(node, "queues", "example.test"))
    assert detail.startswith("example.test: queued 1")
    assert json.loads(ok(petrel(node, "queues", "--json")))["totals"]["queued"] == 1
    ok(petrel(node, "resume", "domain", "example.test"))
    settle_message(node, message)
    ok(petrel(node, "suspend", "domain", "example.test"))
    message = ok(petrel(node, "send", "--from", "app@sender.test", "--to", "r@example.test", "--subject", "r",
                        "--text", "x")).split()[1]
    wait_for(lambda: "cancelled 1" in ok(petrel(node, "bounce", "domain", "example.test", "--reason", "test")),
             what="the cancel")
    assert json.loads(ok(petrel(node, "status", message, "--json")))["recipients"][0]["status"] == "cancelled"
    assert "flushed" in ok(petrel(node, "flush"))
    assert "flushed" in ok(petrel(node, "flush", "example.test"))
    # Usage errors are 2, unknown kinds too.
    assert petrel(node, "suspend", "planet", "x").returncode == 2
    assert petrel(node, "resume", "domain", "never-suspended.test").returncode == 4


def test_suppressions_tenants_and_domains(node):
    out = ok(petrel(node, "suppressions", "add", "x@example.test", "y@example.test", "--reason", "manual"))
    assert "x@example.test" in out
    listed = ok(petrel(node, "suppressions", "list"))
    assert "x@example.test" in listed and "y@example.test" in listed
    ok(petrel(node, "suppressions", "remove", "x@example.test"))
    assert "x@example.test" not in ok(petrel(node, "suppressions", "list"))
    assert petrel(node, "suppressions", "remove", "x@example.test").returncode == 4

    created = ok(petrel(node, "tenants", "create", "cli-tenant", "--rate", "20/s"))
    tenant_id = created.split()[1]
    new_key = created.split("api key ")[1].split()[0]
    assert new_key.startswith("pk_")
    assert "cli-tenant" in ok(petrel(node, "tenants", "list"))
    added = ok(petrel(node, "tenants", "keys", "add", tenant_id))
    key_id = added.split()[1]
    keys = json.loads(ok(petrel(node, "tenants", "keys", "list", tenant_id, "--json")))
    assert len(keys) == 2
    ok(petrel(node, "tenants", "keys", "revoke", tenant_id, key_id))
    assert petrel(node, "tenants", "create", "cli-tenant").returncode == 3  # the name is taken
    # The new tenant's key works for tenant commands.
    assert "SUPPRESSIONS" not in ok(petrel(node, "suppressions", "list", key=new_key))

    shown = ok(petrel(node, "domains", "add", "sender.test"))
    assert shown.startswith("sender.test: not verified") and "TXT" in shown
    assert "note: no SPF record is suggested" in shown  # this node's source has no address
    assert "sender.test" in ok(petrel(node, "domains", "list"))
    verify = petrel(node, "domains", "verify", "sender.test")
    assert verify.returncode == 6, verify  # not verified: no DNS records here
    assert "sender.test: not verified" in verify.stdout and "dkim" in verify.stdout and "TXT" in verify.stdout
    assert petrel(node, "domains", "verify", "nope.test").returncode == 4


def test_connection_settings_and_exit_codes(node, tmp_path):
    # From the environment.
    r = petrel(node, "queues", flags=False, env_extra={"PETREL_ADMIN_URL": node.admin_url(""),
                                                       "PETREL_ADMIN_TOKEN": ADMIN_TOKEN})
    assert r.returncode == 0, r.stderr
    # From a config file.
    cfg = tmp_path / "cli.toml"
    cfg.write_text(f'url = "{node.url("")}"\nkey = "{node.key}"\n')
    assert petrel(node, "suppressions", "list", "--cli-config", str(cfg), flags=False).returncode == 0
    bad = tmp_path / "bad.toml"
    bad.write_text('colour = "red"\n')
    assert petrel(node, "suppressions", "list", "--cli-config", str(bad), flags=False).returncode == 2
    # Exit codes.
    assert petrel(node, "status", "01M8JVCF8W9GZ6Z9R3SWJETVDD").returncode == 4
    assert petrel(node, "status", "x", key="pk_wrong").returncode == 5
    assert petrel(node, "queues", flags=False,
                  env_extra={"PETREL_ADMIN_URL": node.admin_url(""), "PETREL_ADMIN_TOKEN": "wrong-token-123456"}).returncode == 5
    r = petrel(node, "send", "--from", "not an address", "--to", "a@example.test", "--subject", "s", "--text", "x")
    assert r.returncode == 3 and "from" in r.stderr
    assert petrel(node, "send", "--to", "a@example.test").returncode == 2
    r = petrel(node, "status", "x", flags=False, env_extra={"PETREL_URL": "http://127.0.0.1:1", "PETREL_API_KEY": "k"})
    assert r.returncode == 1 and "refused" in r.stderr
    # The error names what was tried, where it came from, and what sets it.
    assert "the tenant API at http://127.0.0.1:1 (PETREL_URL)" in r.stderr and "--config" in r.stderr, r.stderr
    assert petrel(node, "events", "--type", "nonsense").returncode == 3
    assert subprocess.run([PETREL_BIN, "frobnicate"], capture_output=True).returncode == 2


def test_each_command_has_its_own_help_and_refuses_unknown_flags(node):
    send_help = ok(petrel(node, "send", "--help"))
    events_help = ok(petrel(node, "events", "--help"))
    assert send_help != events_help
    for flag in ("--from", "--to", "--cc", "--bcc", "--subject", "--text", "--html", "--raw", "--campaign",
                 "--tag", "--priority", "--metadata", "--config", "--url"):
        assert flag in send_help, flag
    assert "--follow" in events_help and "--since" in events_help and "--from" not in events_help
    overview = ok(petrel(node, "--help", flags=False))
    for command in ("send", "webhooks", "stats", "egress", "controls", "tenants", "domains"):
        assert f"  {command} " in overview, command
    # One exit-code table: the same in every help and in docs/cli.md.
    table = overview[overview.index("Exit codes:"):]
    assert table in send_help
    docs = (pathlib.Path(__file__).resolve().parents[2] / "docs" / "cli.md").read_text()
    assert table.strip() in docs
    r = petrel(node, "send", "--frm", "a@b.test", "--to", "x@example.test")
    assert r.returncode == 2 and "unknown flag --frm" in r.stderr and "petrel send --help" in r.stderr
    assert petrel(node, "queues", "--json=yes").returncode == 2  # a switch takes no value


def free_port():
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_the_server_configuration_says_where_to_connect(make_node, world):
    api, admin = free_port(), free_port()
    node = make_node(delivery_config(world["dns"].port, world["sink"].port,
                                     **{"http.listen": f'"127.0.0.1:{api}"', "admin.listen": f'"127.0.0.1:{admin}"'}))
    config = str(node.config_path)
    # Only the server's config: its admin listener and token.
    assert "domains" in ok(petrel(node, "queues", "--config", config, flags=False))
    assert "domains" in ok(petrel(node, "--config", config, "queues", flags=False))
    assert "domains" in ok(petrel(node, "queues", flags=False, env_extra={"PETREL_CONFIG": config}))
    # The tenant API's address comes from it too (the key does not).
    out = ok(petrel(node, "send", "--from", "app@sender.test", "--to", "cfg@example.test", "--subject", "s",
                    "--text", "x", "--config", config, "--key", node.key, flags=False))
    assert out.startswith("accepted ")
    bad = node.dir / "broken.toml"
    bad.write_text("[http]\nlisten = 80\n")
    r = petrel(node, "queues", "--config", str(bad), flags=False)
    assert r.returncode == 2 and "http.listen" in r.stderr


def test_files_names_stats_egress_controls_and_webhooks(node, world, tmp_path):
    html = tmp_path / "body.html"
    html.write_text("<p>From a file</p>")
    text = tmp_path / "body.txt"
    text.write_text("From a file.")
    message = ok(petrel(node, "send", "--from", "app@sender.test", "--to", "file@example.test", "--subject", "f",
                        "--html", f"@{html}", "--text", f"@{text}")).split()[1]
    settle_message(node, message)
    content = node.content(message)
    assert b"From a file" in content and b"@" not in content.split(b"\r\n\r\n", 1)[1][:5]

    # Tenants by name.
    ok(petrel(node, "tenants", "create", "named"))
    updated = ok(petrel(node, "tenants", "update", "named", "--rate", "5/s", "--burst", "7"))
    assert "named" in updated and "5/s" in updated and "E" not in updated.split("\n")[1].split()[2]
    assert "suspended tenant" in ok(petrel(node, "suspend", "tenant", "named"))
    assert "tenant" in ok(petrel(node, "controls"))
    ok(petrel(node, "resume", "tenant", "named"))
    r = petrel(node, "tenants", "update", "nobody", "--rate", "1/s")
    assert r.returncode == 2 and "no tenant" in r.stderr

    stats = ok(petrel(node, "stats"))
    assert "DELIVERY_RATE" in stats and "total:" in stats
    assert "default" in ok(petrel(node, "egress"))

    hooks = WebhookServer(tmp_path / "hooks").start()
    try:
        created = ok(petrel(node, "webhooks", "create", f"http://127.0.0.1:{hooks.port}/in", "--events", "delivered"))
        hook = created.split("\n")[1].split()[0]
        assert "secret " in created
        assert hook in ok(petrel(node, "webhooks", "list"))
        assert "delivered: HTTP 200" in ok(petrel(node, "webhooks", "test", hook))
        (posted,) = [r for r in hooks.requests() if json.loads(r["body"])["events"][0]["type"] == "test"]
        assert posted["headers"]["petrel-signature"].startswith("t=")
        hooks.configure(mode="status", status=500)
        r = petrel(node, "webhooks", "test", hook)
        assert r.returncode == 1 and "HTTP 500" in r.stdout
        ok(petrel(node, "webhooks", "delete", hook))
        assert petrel(node, "webhooks", "test", hook).returncode == 4
    finally:
        hooks.stop()
