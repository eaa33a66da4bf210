"""Malformed and hostile HTTP never crashes or wedges the server."""
import socket
import threading
import time

import requests

from conftest import exchange, simple_message


def assert_healthy(node):
    assert requests.get(node.url("/healthz"), timeout=5).status_code == 200
    assert node.submit(node.bootstrap_key, simple_message()).status_code == 202


def test_garbage_request_lines_get_400_and_the_server_carries_on(node):
    for garbage in [b"HELLO\r\n\r\n", b"GET\r\n\r\n", b"\x00\x01\x02\xff\r\n\r\n",
                    b"GET / HTTP/9.9\r\n\r\n", b"POST /v1/messages HTTP/1.1\r\nContent-Length: -5\r\n\r\n",
                    b"POST /v1/messages HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nZZZ\r\n"]:
        answer = exchange(node.api_port, garbage)
        assert answer.startswith(b"HTTP/1.1 400"), (garbage, answer[:200])
    assert_healthy(node)


def test_oversized_headers_get_431(node):
    answer = exchange(node.api_port, b"GET /healthz HTTP/1.1\r\nX-Big: " + b"a" * 20000 + b"\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 431"), answer[:200]
    assert_healthy(node)


def test_a_huge_content_length_is_refused_before_the_body(node):
    answer = exchange(node.api_port, b"POST /v1/messages HTTP/1.1\r\nContent-Type: application/json\r\n"
                                     b"Content-Length: 99999999999\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert_healthy(node)


def test_a_chunked_body_over_the_limit_is_413(make_node):
    node = make_node("http.max_body_bytes = 2048")
    chunk = b"1000\r\n" + b"x" * 4096 + b"\r\n"
    answer = exchange(node.api_port, b"POST /v1/messages HTTP/1.1\r\nContent-Type: application/json\r\n"
                                     b"Transfer-Encoding: chunked\r\n\r\n" + chunk + b"0\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert_healthy(node)


def test_silent_and_half_sent_clients_are_disconnected(make_node):
    node = make_node('http.read_timeout = "500ms"\nhttp.idle_timeout = "500ms"')
    started = time.time()
    with socket.create_connection(("127.0.0.1", node.api_port), timeout=10) as s:
        s.sendall(b"POST /v1/messages HTTP/1.1\r\nContent-Length: 100\r\n\r\n{\"from\"")
        assert s.recv(100) == b""  # closed by the server, nothing answered
    assert time.time() - started < 5
    with socket.create_connection(("127.0.0.1", node.api_port), timeout=10) as s:
        assert s.recv(100) == b""  # idle connection closed
    assert_healthy(node)


def test_unknown_paths_and_wrong_methods(node):
    r = requests.get(node.url("/nope"), timeout=5)
    assert r.status_code == 404
    r = requests.delete(node.url("/v1/messages"), timeout=5)
    assert r.status_code == 405 and r.headers["Allow"] == "GET, POST"
    assert requests.get(node.url("/v1/messages"), timeout=5).status_code == 401  # (the search, with a key)
    r = requests.delete(node.url("/healthz"), timeout=5)
    assert r.status_code == 405


def test_deeply_nested_json_is_refused(node):
    r = node.submit(node.bootstrap_key, '{"metadata":' + "[" * 10000 + "]" * 10000 + "}")
    assert r.status_code == 400


def test_many_concurrent_connections_are_all_served(node):
    key = node.bootstrap_key
    results = []

    def client():
        with requests.Session() as s:
            for _ in range(5):
                r = s.post(node.url("/v1/messages"), json=simple_message(),
                           headers={"Authorization": f"Bearer {key}"}, timeout=30)
                results.append(r.status_code)

    threads = [threading.Thread(target=client) for _ in range(40)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results.count(202) == 200


def test_admin_api_needs_the_admin_token(node):
    assert requests.get(node.admin_url("/admin/queues"), timeout=5).status_code == 401
    r = requests.get(node.admin_url("/admin/queues"), timeout=5,
                     headers={"Authorization": f"Bearer {node.bootstrap_key}"})
    assert r.status_code == 401
    assert node.admin("GET", "/admin/queues").status_code == 200
    # The tenant listener does not serve the admin API.
    assert requests.get(node.url("/admin/queues"), timeout=5).status_code == 404


def test_errors_say_which_credential_and_which_listener(node):
    from conftest import ADMIN_TOKEN
    detail = lambda r: r.json()["detail"]  # noqa: E731
    r = requests.get(node.admin_url("/admin/queues"), timeout=5, headers={"Authorization": f"Bearer {node.bootstrap_key}"})
    assert r.status_code == 401 and "this is an API key; the admin API needs the admin token" in detail(r)
    r = requests.get(node.admin_url("/admin/queues"), timeout=5, headers={"Authorization": "Bearer nope-nope"})
    assert r.status_code == 401 and "admin token is wrong" in detail(r) and "admin.token_file" in detail(r)
    r = requests.get(node.admin_url("/admin/queues"), timeout=5)
    assert r.status_code == 401 and "admin token is required" in detail(r)
    r = node.submit(ADMIN_TOKEN, simple_message())
    assert r.status_code == 401 and "this is the admin token" in detail(r)
    r = node.submit("not-a-key", simple_message())
    assert r.status_code == 401 and "start with pk_" in detail(r)
    r = requests.get(node.url("/admin/queues"), timeout=5)
    assert r.status_code == 404 and "admin listener (admin.listen" in detail(r)
    r = requests.get(node.admin_url("/v1/events"), timeout=5)
    assert r.status_code == 404 and "tenant API's listener (http.listen" in detail(r)
    # JSON syntax errors say where; durations need a unit and a string.
    r = requests.post(node.url("/v1/messages"), data='{\n "to": [}', timeout=5,
                      headers={"Authorization": f"Bearer {node.bootstrap_key}", "Content-Type": "application/json"})
    assert r.status_code == 400 and "at line 2, column" in detail(r), detail(r)
    r = node.admin("POST", "/admin/domains/x.example/suspend", json={"duration": 30})
    assert r.status_code == 400 and "expects a duration string like" in detail(r)
    r = node.admin("POST", "/admin/domains/x.example/suspend", json={"duration": "30"})
    assert r.status_code == 400 and "\"30\" has no unit" in detail(r)


def test_tenants_are_named_by_name_wherever_an_id_goes(node):
    tenant_id = node.admin("GET", "/admin/tenants").json()["tenants"][0]["id"]
    r = node.admin("PATCH", "/admin/tenants/default", json={"rate": "250/min"})
    assert r.status_code == 200 and r.json()["tenant"]["id"] == tenant_id
    assert r.json()["tenant"]["rate"] == "250/min"  # as written (the largest whole unit)
    r = node.admin("POST", "/admin/tenants/default/suspend", json={"duration": "1h"})
    assert r.status_code == 200 and r.json()["target"] == tenant_id  # the control holds the id
    assert node.admin("POST", "/admin/tenants/default/resume").status_code == 204
    r = node.admin("POST", "/admin/tenants/default/keys")
    assert r.status_code == 201
    r = node.admin("PATCH", "/admin/tenants/nobody", json={"rate": "1/s"})
    assert r.status_code == 404 and "no tenant has the id or name \"nobody\"" in r.json()["detail"]
