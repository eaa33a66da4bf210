"""The petrel command as an operator meets it: help, configuration errors, signals, health,
metrics, logs."""
import json
import signal
import socket
import subprocess

import requests

from conftest import PETREL_BIN, simple_message


def run(*args):
    return subprocess.run([PETREL_BIN, *args], capture_output=True, text=True, timeout=30)


def test_help_and_version():
    r = run("--help")
    assert r.returncode == 0 and "petrel serve" in r.stdout
    r = run("serve", "--help")
    assert r.returncode == 0 and "--config FILE" in r.stdout
    r = run("--version")
    assert r.returncode == 0 and r.stdout.startswith("petrel ")
    r = run("frobnicate")
    assert r.returncode == 2 and "unknown command" in r.stderr


def test_a_bad_configuration_fails_with_file_line_key_and_reason(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('[http]\nlisten = "nowhere"\n[storage]\nsqlite_synchronous = "sometimes"\n')
    r = run("serve", "--config", str(bad))
    assert r.returncode == 2
    assert f'{bad}:2:10: http.listen: expected "host:port"' in r.stderr
    assert f"{bad}:4:22: storage.sqlite_synchronous:" in r.stderr
    r = run("serve", "--config", str(tmp_path / "missing.toml"))
    assert r.returncode == 2 and "cannot open" in r.stderr


def test_check_validates_the_shipped_example():
    from conftest import ROOT
    r = run("serve", "--config", str(ROOT / "config" / "petrel.toml"), "--check")
    assert r.returncode == 0, r.stderr


def test_a_port_in_use_fails_start_with_exit_1(make_node):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        node = make_node(f'http.listen = "127.0.0.1:{port}"', start=False)
        node.write_config()
        r = subprocess.run([PETREL_BIN, "serve", "--config", str(node.config_path)],
                           capture_output=True, text=True, timeout=30)
        assert r.returncode == 1
        assert f"cannot listen on 127.0.0.1:{port}" in r.stderr
        # Nothing was created nor printed: no key that would point at the other process.
        assert "pk_" not in r.stdout
    node.start()  # the port is free now: this is the node's first real start
    assert node.bootstrap_key
    assert [t["name"] for t in node.admin("GET", "/admin/tenants").json()["tenants"]] == ["default"]


def test_sigint_stops_cleanly(node):
    assert node.stop(signal.SIGINT) == 0
    assert "petrel.stopping signal=SIGINT" in node.log()


def test_the_first_tenant_is_created_once(make_node):
    node = make_node()
    assert node.bootstrap_key
    node.stop()
    node.start()
    assert node.bootstrap_key is None  # second start: no new tenant, no key printed
    assert "petrel tenants keys add" in node.log()  # but how to make another
    tenants = node.admin("GET", "/admin/tenants").json()["tenants"]
    assert [t["name"] for t in tenants] == ["default"]


def test_health_and_readiness(node):
    assert requests.get(node.url("/healthz"), timeout=5).json() == {"status": "ok"}
    assert requests.get(node.url("/readyz"), timeout=5).json() == {"ready": True}
    assert requests.get(node.admin_url("/readyz"), timeout=5).status_code == 200


def test_metrics_count_what_happened(node):
    key = node.bootstrap_key
    for _ in range(7):
        assert node.submit(key, simple_message(to=["a@m.example", "b@m.example"])).status_code == 202
    node.submit(key, "{bad")
    text = requests.get(node.admin_url("/metrics"), timeout=5).text
    assert "# TYPE petrel_store_commit_seconds histogram" in text
    assert node.metric("petrel_messages_accepted_total") == 7
    assert node.metric("petrel_recipients_accepted_total") == 14
    assert node.metric("petrel_http_requests_total", {"listener": "api", "code": "202"}) == 7
    assert node.metric("petrel_http_requests_total", {"listener": "api", "code": "400"}) == 1
    assert node.metric("petrel_recipients_waiting") == 14
    assert node.metric("petrel_store_batch_operations_count") >= 1
    assert node.metric("process_resident_memory_bytes") > 1_000_000


def test_json_logs_are_one_object_per_line(make_node):
    node = make_node('log.format = "json"')
    node.submit(node.bootstrap_key, simple_message())
    node.stop()
    lines = [l for l in node.stderr_lines if l.strip()]
    assert len(lines) > 5
    for line in lines:
        record = json.loads(line)
        assert set(record) == {"ts", "level", "msg"}
