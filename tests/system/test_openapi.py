"""docs/openapi.yaml as a contract: real answers of a running node are checked against the
document's schemas (OpenAPI 3.1 schemas are JSON Schema 2020-12), and every status code the
document lists for an operation is produced here at least once, so the document cannot drift
from the server in either direction."""
import base64
import email
import json
import pathlib
import re
import time

import pytest
import requests
import yaml
from jsonschema import Draft202012Validator, RefResolver

from conftest import ADMIN_TOKEN, delivery_config, settle_message, wait_for  # noqa: E402

DOC_PATH = pathlib.Path(__file__).resolve().parents[2] / "docs" / "openapi.yaml"
DOC = yaml.safe_load(DOC_PATH.read_text())
# Relative references ("schemas/event.schema.json") resolve beside the document.
RESOLVER = RefResolver(base_uri=DOC_PATH.as_uri(), referrer=DOC)
# The event schema names itself by its $id: both names resolve here, never over the network.
EVENT_SCHEMA = json.loads((DOC_PATH.parent / "schemas" / "event.schema.json").read_text())
RESOLVER.store[EVENT_SCHEMA["$id"]] = EVENT_SCHEMA
RESOLVER.store[(DOC_PATH.parent / "schemas" / "event.schema.json").as_uri()] = EVENT_SCHEMA
SEEN = set()  # (method, path template, status)
METHODS = {"get", "put", "post", "delete", "patch", "head", "options"}


def deref(node):
    while isinstance(node, dict) and "$ref" in node:
        node = RESOLVER.resolve(node["$ref"])[1]
    return node


def operation_for(method, path, status):
    """(method, path template, operation) documenting this answer. A 405 answers a method the
    path does not take: an operation of the path documents it."""
    for template, item in DOC["paths"].items():
        pattern = "^" + re.sub(r"\{[^}]+\}", "[^/]+", template) + "$"
        if not re.match(pattern, path):
            continue
        if method.lower() in item:
            return method, template, item[method.lower()]
        if status == 405:
            for other, op in item.items():
                if other in METHODS and "405" in op["responses"]:
                    return other.upper(), template, op
    raise AssertionError(f"{method} {path} is not in docs/openapi.yaml")


def check(response):
    """Validates a response against the document; returns it."""
    method = response.request.method
    path = requests.utils.urlparse(response.request.url).path
    method, template, op = operation_for(method, path, response.status_code)
    status = str(response.status_code)
    assert status in op["responses"], f"{method} {template} answered {status}, not documented: {response.text[:300]}"
    SEEN.add((method, template, status))
    documented = deref(op["responses"][status])
    content = documented.get("content")
    if not content:
        assert not response.content, f"{method} {template} {status} has a body the document does not describe"
        return response
    media = response.headers.get("Content-Type", "").split(";")[0].strip()
    assert media in content, f"{method} {template} {status}: {media} is not documented ({list(content)})"
    schema = content[media].get("schema")
    if schema and media.endswith("json"):
        errors = sorted(Draft202012Validator(schema, resolver=RESOLVER).iter_errors(response.json()), key=str)
        assert not errors, f"{method} {template} {status}: " + "; ".join(
            f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in errors[:5])
    return response


@pytest.fixture(scope="module")
def contract_world(tmp_path_factory):
    from conftest import one_mx_world
    from servers import WebhookServer
    work = tmp_path_factory.mktemp("openapi-world")
    sink, dns = one_mx_world(work)
    hooks = WebhookServer(work / "hooks").start()
    (work / "bounce.secret").write_text("0123456789abcdef0123456789abcdef-contract\n")
    yield sink, dns, hooks, work / "bounce.secret"
    hooks.stop()
    sink.stop()
    dns.stop()


@pytest.fixture
def cnode(make_node, contract_world):
    sink, dns, _, secret = contract_world
    return make_node(delivery_config(dns.port, sink.port, **{"storage.content_retention": '"1s"',
                                                            "storage.retention": '"1h"',
                                                            "storage.prune_interval": '"200ms"',
                                                            "webhooks.allow_private_networks": "true",
                                                            "webhooks.require_https": "false",
                                                            "webhooks.max_per_tenant": "2",
                                                            "bounces.secret_file": f'"{secret}"',
                                                            "bounces.unsubscribe_base_url": '"https://mail.petrel.test"'}))


def test_the_document_is_valid_openapi_31():
    assert DOC["openapi"].startswith("3.1")
    for template, item in DOC["paths"].items():
        for method, op in item.items():
            if method not in METHODS:
                continue
            assert op.get("operationId") and op.get("responses"), (template, method)
    Draft202012Validator.check_schema(DOC["components"]["schemas"]["StructuredMessage"])


def test_answers_match_the_document(cnode, contract_world):
    s = cnode.session
    auth = {"Authorization": f"Bearer {cnode.key}"}

    def call(method, path, **kw):
        headers = {**auth, **kw.pop("headers", {})}
        return check(s.request(method, cnode.url(path), headers=headers, timeout=60, **kw))

    body = {"from": "app@example.com", "to": ["a@example.test"], "subject": "s", "text": "t", "campaign": "c"}
    # POST /v1/messages
    receipt = call("POST", "/v1/messages", json=body).json()
    assert call("POST", "/v1/messages", json={"from": "x"}).status_code == 400
    assert check(s.post(cnode.url("/v1/messages"), json=body, timeout=30)).status_code == 401
    assert call("POST", "/v1/messages", json={**body, "text": "x" * 11_000_000}).status_code == 413
    assert call("POST", "/v1/messages", data="{}", headers={"Content-Type": "text/plain"}).status_code == 415
    assert call("POST", "/v1/messages", json=body, headers={"Idempotency-Key": "k1"}).status_code == 202
    assert call("POST", "/v1/messages", json=body, headers={"Idempotency-Key": "k1"}).status_code == 202
    assert call("POST", "/v1/messages", json={**body, "subject": "other"},
                headers={"Idempotency-Key": "k1"}).status_code == 422
    _, slow_key = cnode.create_tenant("slow", rate="1/m", burst=1)
    answers = [call("POST", "/v1/messages", json=body, headers={"Authorization": f"Bearer {slow_key}"})
               for _ in range(2)]
    assert [a.status_code for a in answers] == [202, 429]
    others = answers[0].json()["id"]  # another tenant's message
    assert cnode.admin("POST", "/admin/debug/store", json={"fail_commits": 1}).status_code == 202
    assert call("POST", "/v1/messages", json=body).status_code == 503
    assert check(s.get(cnode.url("/readyz"), timeout=5)).status_code in (200, 503)

    # GET /v1/messages
    assert call("GET", "/v1/messages?recipient=a@example.test").json()["messages"]
    assert call("GET", "/v1/messages?status=nope").status_code == 400
    assert check(s.get(cnode.url("/v1/messages"), timeout=30)).status_code == 401

    # GET /v1/messages/{id}, content, cancel
    mid = receipt["id"]
    unknown = mid[:-1] + ("0" if mid[-1] != "0" else "1")  # recent: not found rather than gone
    settle_message(cnode, mid)
    assert call("GET", f"/v1/messages/{mid}").status_code == 200
    assert call("GET", f"/v1/messages/{unknown}").status_code == 404
    assert check(s.get(cnode.url(f"/v1/messages/{mid}"), timeout=30)).status_code == 401
    templated = call("POST", "/v1/messages", json={**body, "template": True, "send_at": "2100-01-01T00:00:00Z"})
    assert templated.status_code == 400  # (send_at too far ahead: a 400 naming it)
    later = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 3600))
    templated = call("POST", "/v1/messages", json={**body, "template": True, "send_at": later}).json()
    tid, trid = templated["id"], templated["recipients"][0]["id"]
    assert call("GET", f"/v1/messages/{tid}/content?recipient={trid}").status_code == 200
    assert call("GET", f"/v1/messages/{tid}/content").status_code == 400
    assert call("GET", f"/v1/messages/{others}/content").status_code == 404
    assert check(s.get(cnode.url(f"/v1/messages/{tid}/content"), timeout=30)).status_code == 401
    # The first message's content is pruned a second after it was delivered.
    wait_for(lambda: s.get(cnode.url(f"/v1/messages/{mid}/content"), headers=auth, timeout=30).status_code == 410,
             what="the content pruned")
    assert call("GET", f"/v1/messages/{mid}/content").status_code == 410
    assert call("POST", f"/v1/messages/{tid}/cancel").json()["cancelled"] == 1
    assert call("POST", f"/v1/messages/{unknown}/cancel").status_code == 404
    assert check(s.post(cnode.url(f"/v1/messages/{tid}/cancel"), timeout=30)).status_code == 401
    call("POST", "/v1/messages", json={**body, "batch_id": "b1", "send_at": later})
    assert call("POST", "/v1/batches/b1/cancel").json()["cancelled"] == 1
    assert call("POST", "/v1/batches/none/cancel").status_code == 404
    assert check(s.post(cnode.url("/v1/batches/b1/cancel"), timeout=30)).status_code == 401

    # /v1/templates
    t = call("POST", "/v1/templates", json={"name": "n", "subject": "Hi {{x}}", "html": "<p>{{x}}</p>"})
    assert t.status_code == 201
    t = t.json()
    assert call("POST", "/v1/templates", json={"name": "n"}).status_code == 400
    assert call("POST", "/v1/templates", data="{}", headers={"Content-Type": "text/plain"}).status_code == 415
    assert check(s.post(cnode.url("/v1/templates"), json={"name": "n", "text": "t"}, timeout=30)).status_code == 401
    assert call("GET", "/v1/templates").json()["templates"]
    assert check(s.get(cnode.url("/v1/templates"), timeout=30)).status_code == 401
    assert call("GET", f"/v1/templates/{t['id']}?version=1").status_code == 200
    assert call("GET", f"/v1/templates/{t['id']}?version=x").status_code == 400
    assert call("GET", "/v1/templates/01ARZ3NDEKTSV4RRFFQ69G5FAV").status_code == 404
    assert check(s.get(cnode.url(f"/v1/templates/{t['id']}"), timeout=30)).status_code == 401
    assert call("PUT", f"/v1/templates/{t['id']}", json={"name": "n", "text": "v2 {{x}}"}).json()["version"] == 2
    assert call("PUT", f"/v1/templates/{t['id']}", json={"text": "no name"}).status_code == 400
    assert call("PUT", "/v1/templates/01ARZ3NDEKTSV4RRFFQ69G5FAV", json={"name": "n", "text": "t"}).status_code == 404
    assert check(s.put(cnode.url(f"/v1/templates/{t['id']}"), json={"name": "n", "text": "t"}, timeout=30)
                 ).status_code == 401
    assert call("POST", f"/v1/templates/{t['id']}/render", json={"substitutions": {"x": 1}}).status_code == 200
    assert call("POST", f"/v1/templates/{t['id']}/render", json={"strict": True}).status_code == 400
    assert call("POST", "/v1/templates/01ARZ3NDEKTSV4RRFFQ69G5FAV/render").status_code == 404
    assert check(s.post(cnode.url(f"/v1/templates/{t['id']}/render"), timeout=30)).status_code == 401
    assert call("DELETE", f"/v1/templates/{t['id']}").status_code == 204
    assert call("DELETE", f"/v1/templates/{t['id']}").status_code == 404
    assert check(s.delete(cnode.url(f"/v1/templates/{t['id']}"), timeout=30)).status_code == 401

    # GET /v1/events
    assert call("GET", f"/v1/events?message={mid}").json()["events"]
    assert call("GET", "/v1/events?type=nope").status_code == 400
    assert check(s.get(cnode.url("/v1/events"), timeout=30)).status_code == 401

    # GET /v1/stats
    totals = call("GET", "/v1/stats").json()["totals"]
    assert totals["delivered"] >= 1 and 0 < totals["delivery_rate"] <= 1
    assert call("GET", "/v1/stats?bucket=day&campaign=c").status_code == 200
    assert call("GET", "/v1/stats?bucket=week").status_code == 400
    assert check(s.get(cnode.url("/v1/stats"), timeout=30)).status_code == 401

    # /v1/suppressions
    assert call("POST", "/v1/suppressions", json={"email": "s1@example.test", "expires_in": "30d"}).status_code == 200
    assert call("POST", "/v1/suppressions", json={"suppressions": [{"email": "s2@example.test",
                                                                     "reason": "complaint"}]}).status_code == 200
    assert call("POST", "/v1/suppressions", json={"email": "nobody"}).status_code == 400
    assert call("POST", "/v1/suppressions", data="{}", headers={"Content-Type": "text/plain"}).status_code == 415
    assert check(s.post(cnode.url("/v1/suppressions"), json={"email": "x@example.test"}, timeout=30)).status_code == 401
    assert len(call("GET", "/v1/suppressions?limit=1").json()["suppressions"]) == 1
    assert call("GET", "/v1/suppressions?reason=other").status_code == 400
    assert check(s.get(cnode.url("/v1/suppressions"), timeout=30)).status_code == 401
    assert call("GET", "/v1/suppressions/s1@example.test").json()["expires_at"]
    assert call("GET", "/v1/suppressions/not-an-address").status_code == 400
    assert call("GET", "/v1/suppressions/s9@example.test").status_code == 404
    assert check(s.get(cnode.url("/v1/suppressions/s1@example.test"), timeout=30)).status_code == 401
    assert call("DELETE", "/v1/suppressions/s1@example.test").status_code == 204
    assert call("DELETE", "/v1/suppressions/not-an-address").status_code == 400
    assert check(s.delete(cnode.url("/v1/suppressions/s2@example.test"), timeout=30)).status_code == 401

    # /v1/webhooks
    hook_url = f"http://127.0.0.1:{contract_world[2].port}/hook"
    w = call("POST", "/v1/webhooks", json={"url": hook_url, "events": ["delivered"]})
    assert w.status_code == 201 and w.json()["secret"]
    wid = w.json()["id"]
    assert call("POST", "/v1/webhooks", json={"url": "ftp://x"}).status_code == 400
    assert call("POST", "/v1/webhooks", data="{}", headers={"Content-Type": "text/plain"}).status_code == 415
    assert check(s.post(cnode.url("/v1/webhooks"), json={"url": hook_url}, timeout=30)).status_code == 401
    assert call("POST", "/v1/webhooks", json={"url": hook_url}).status_code == 201
    assert call("POST", "/v1/webhooks", json={"url": hook_url}).status_code == 409  # webhooks.max_per_tenant
    assert len(call("GET", "/v1/webhooks").json()["webhooks"]) == 2
    assert check(s.get(cnode.url("/v1/webhooks"), timeout=30)).status_code == 401
    assert call("GET", f"/v1/webhooks/{wid}").status_code == 200
    assert call("GET", f"/v1/webhooks/{unknown}").status_code == 404
    assert check(s.get(cnode.url(f"/v1/webhooks/{wid}"), timeout=30)).status_code == 401
    assert call("POST", f"/v1/webhooks/{wid}/rotate").json()["previous_secret_until"]
    assert call("POST", f"/v1/webhooks/{wid}/rotate", json={"secret": "short"}).status_code == 400
    assert call("POST", f"/v1/webhooks/{unknown}/rotate").status_code == 404
    assert check(s.post(cnode.url(f"/v1/webhooks/{wid}/rotate"), timeout=30)).status_code == 401
    assert call("POST", f"/v1/webhooks/{wid}/resume").status_code == 200
    assert call("POST", f"/v1/webhooks/{unknown}/resume").status_code == 404
    assert check(s.post(cnode.url(f"/v1/webhooks/{wid}/resume"), timeout=30)).status_code == 401
    assert call("POST", f"/v1/webhooks/{wid}/test").json()["delivered"] is True
    assert call("POST", f"/v1/webhooks/{unknown}/test").status_code == 404
    assert check(s.post(cnode.url(f"/v1/webhooks/{wid}/test"), timeout=30)).status_code == 401
    assert call("DELETE", f"/v1/webhooks/{wid}").status_code == 204
    assert call("DELETE", f"/v1/webhooks/{wid}").status_code == 404
    assert check(s.delete(cnode.url(f"/v1/webhooks/{wid}"), timeout=30)).status_code == 401

    # /v1/domains
    d = call("POST", "/v1/domains", json={"domain": "contract.test", "algorithms": ["rsa-sha256", "ed25519-sha256"]})
    assert d.status_code == 201 and len(d.json()["keys"]) == 2
    assert call("POST", "/v1/domains", json={"domain": "contract.test"}).status_code == 409
    assert call("POST", "/v1/domains", json={"domain": "x.test", "selector": "Bad Selector"}).status_code == 400
    assert call("POST", "/v1/domains", data="{}", headers={"Content-Type": "text/plain"}).status_code == 415
    assert check(s.post(cnode.url("/v1/domains"), json={"domain": "y.test"}, timeout=30)).status_code == 401
    assert call("GET", "/v1/domains").json()["domains"]
    assert check(s.get(cnode.url("/v1/domains"), timeout=30)).status_code == 401
    assert call("GET", "/v1/domains/contract.test").json()["verified"] is False
    assert call("GET", "/v1/domains/none.test").status_code == 404
    assert check(s.get(cnode.url("/v1/domains/contract.test"), timeout=30)).status_code == 401
    rotated = call("POST", "/v1/domains/contract.test/rotate").json()
    assert call("POST", "/v1/domains/none.test/rotate").status_code == 404
    assert check(s.post(cnode.url("/v1/domains/contract.test/rotate"), timeout=30)).status_code == 401
    selector = rotated["keys"][0]["selector"]
    assert call("DELETE", f"/v1/domains/contract.test/keys/{selector}").status_code == 200
    assert call("DELETE", "/v1/domains/contract.test/keys/nope").status_code == 404
    assert check(s.delete(cnode.url(f"/v1/domains/contract.test/keys/{selector}"), timeout=30)).status_code == 401
    assert call("DELETE", "/v1/domains/contract.test").status_code == 204
    assert call("DELETE", "/v1/domains/contract.test").status_code == 404
    assert check(s.delete(cnode.url("/v1/domains/contract.test"), timeout=30)).status_code == 401

    # POST /v1/inbound
    report = (b"From: MAILER-DAEMON@example.test\r\nTo: app@example.com\r\nSubject: hello\r\n\r\nNot a bounce.\r\n")
    rfc822 = {"Content-Type": "message/rfc822"}
    assert "kind" in call("POST", "/v1/inbound", data=report, headers=rfc822).json()
    assert call("POST", "/v1/inbound", data=b"", headers=rfc822).status_code == 400
    assert check(s.post(cnode.url("/v1/inbound"), data=report, headers=rfc822, timeout=30)).status_code == 401

    # /u/{token}: a bulk message's List-Unsubscribe link
    bulk = call("POST", "/v1/messages", json={**body, "to": ["unsub@example.test"], "bulk": True}).json()
    settle_message(cnode, bulk["id"])
    (copy,) = [m for m in contract_world[0].messages() if m["rcpt_to"] == ["unsub@example.test"]]
    header = email.message_from_bytes(base64.b64decode(copy["data_b64"]))["List-Unsubscribe"]
    token = re.search(r"/u/([a-z2-7]+)>", header).group(1)
    assert check(s.get(cnode.url(f"/u/{token}"), timeout=30)).status_code == 200
    assert check(s.get(cnode.url("/u/" + "a" * 42), timeout=30)).status_code == 404
    assert check(s.post(cnode.url(f"/u/{token}"), data="List-Unsubscribe=One-Click", timeout=30)).status_code == 200
    assert check(s.post(cnode.url("/u/" + "a" * 42), data="List-Unsubscribe=One-Click", timeout=30)).status_code == 404
    assert check(s.put(cnode.url(f"/u/{token}"), timeout=30)).status_code == 405

    # The admin API
    def admin(method, path, **kw):
        return check(cnode.admin(method, path, **kw))

    def stranger(method, path, **kw):
        return check(s.request(method, cnode.admin_url(path), timeout=30, **kw))

    call("POST", "/v1/messages", json={**body, "to": ["held@example.test"], "send_at": later})
    assert admin("GET", "/admin/queues").json()["totals"]["domains"] >= 1
    assert admin("GET", "/admin/queues?scope=everywhere").status_code == 400
    assert admin("GET", "/admin/queues?scope=cluster").status_code == 409
    assert stranger("GET", "/admin/queues").status_code == 401
    assert admin("GET", "/admin/queues/example.test").json()["lanes"] is not None
    assert admin("GET", "/admin/queues/nothing.test").status_code == 404
    assert stranger("GET", "/admin/queues/example.test").status_code == 401
    assert admin("GET", "/admin/egress").status_code == 200
    assert admin("GET", "/admin/egress?scope=x").status_code == 400
    assert admin("GET", "/admin/egress?scope=cluster").status_code == 409
    assert stranger("GET", "/admin/egress").status_code == 401
    assert admin("POST", "/admin/domains/example.test/suspend", json={"duration": "1m", "reason": "r"}).status_code == 200
    assert admin("POST", "/admin/domains/example.test/suspend", json={"duration": "soon"}).status_code == 400
    assert stranger("POST", "/admin/domains/example.test/suspend").status_code == 401
    assert admin("GET", "/admin/controls").json()["controls"]
    assert stranger("GET", "/admin/controls").status_code == 401
    assert admin("POST", "/admin/domains/example.test/resume").status_code == 204
    assert admin("POST", "/admin/domains/example.test/resume").status_code == 404
    assert stranger("POST", "/admin/domains/example.test/resume").status_code == 401
    assert admin("POST", "/admin/domains/nothing.test/bounce", json={"reason": "r"}).json() == {"cancelled": 0}
    assert stranger("POST", "/admin/domains/nothing.test/bounce").status_code == 401
    assert admin("POST", "/admin/domains/example.test/flush").status_code == 200
    assert stranger("POST", "/admin/domains/example.test/flush").status_code == 401
    assert admin("POST", "/admin/flush").status_code == 200
    assert stranger("POST", "/admin/flush").status_code == 401
    assert admin("GET", "/admin/cluster").json() == {"enabled": False}
    assert stranger("GET", "/admin/cluster").status_code == 401
    assert admin("POST", "/admin/cluster/drain").status_code == 409
    assert admin("POST", "/admin/reload").status_code == 200
    assert stranger("POST", "/admin/reload").status_code == 401
    good_config = cnode.config_path.read_text()
    cnode.config_path.write_text(good_config.replace('level = "debug"', 'level = "loud"'))
    assert admin("POST", "/admin/reload").status_code == 400
    cnode.config_path.write_text(good_config)
    assert stranger("POST", "/admin/cluster/drain").status_code == 401
    created = admin("POST", "/admin/tenants", json={"name": "contract", "rate": "5/s", "burst": 10})
    assert created.status_code == 201
    tenant_id = created.json()["tenant"]["id"]
    assert admin("POST", "/admin/tenants", json={"name": "contract"}).status_code == 409
    assert admin("POST", "/admin/tenants", json={"rate": "5/s"}).status_code == 400
    assert stranger("POST", "/admin/tenants", json={"name": "x"}).status_code == 401
    assert any(t["id"] == tenant_id for t in admin("GET", "/admin/tenants").json()["tenants"])
    assert stranger("GET", "/admin/tenants").status_code == 401
    assert admin("PATCH", f"/admin/tenants/{tenant_id}", json={"rate": None, "weight": 3}).json()["tenant"]["weight"] == 3
    assert admin("PATCH", "/admin/tenants/contract", json={"weight": 0}).status_code == 400
    assert admin("PATCH", "/admin/tenants/nobody", json={"weight": 2}).status_code == 404
    assert stranger("PATCH", f"/admin/tenants/{tenant_id}", json={"weight": 2}).status_code == 401
    new_key = admin("POST", f"/admin/tenants/{tenant_id}/keys").json()["key"]["id"]
    assert admin("POST", "/admin/tenants/nobody/keys").status_code == 404
    assert stranger("POST", f"/admin/tenants/{tenant_id}/keys").status_code == 401
    assert admin("DELETE", f"/admin/tenants/{tenant_id}/keys/{new_key}").status_code == 204
    assert admin("DELETE", f"/admin/tenants/{tenant_id}/keys/{new_key}").status_code == 404
    assert stranger("DELETE", f"/admin/tenants/{tenant_id}/keys/{new_key}").status_code == 401
    assert "kind" in admin("POST", "/admin/inbound", data=report, headers=rfc822).json()
    assert admin("POST", "/admin/inbound", data=b"", headers=rfc822).status_code == 400
    assert stranger("POST", "/admin/inbound", data=report, headers=rfc822).status_code == 401
    assert admin("POST", "/admin/debug/crash", json={"domain": "example.test"}).status_code == 202
    assert admin("POST", "/admin/debug/crash", json={"domain": "nothing.test"}).status_code == 404
    assert admin("POST", "/admin/debug/crash", json={}).status_code == 400
    assert stranger("POST", "/admin/debug/crash", json={"domain": "example.test"}).status_code == 401
    assert admin("POST", "/admin/debug/store", json={"fail_commits": 0}).status_code == 202
    assert admin("POST", "/admin/debug/store", json={}).status_code == 400
    assert stranger("POST", "/admin/debug/store", json={"fail_commits": 0}).status_code == 401
    # What the console reads: every tenant's messages, events and webhooks, a tenant's data by
    # the admin API, the activity per minute.
    mid = receipt["id"]
    assert admin("GET", "/admin/activity?minutes=3").json()["totals"]["accepted"] >= 1
    assert admin("GET", "/admin/activity?minutes=0").status_code == 400
    assert stranger("GET", "/admin/activity").status_code == 401
    assert admin("GET", "/admin/messages?campaign=c").json()["messages"]
    assert admin("GET", "/admin/messages?status=lost").status_code == 400
    assert stranger("GET", "/admin/messages").status_code == 401
    assert admin("GET", f"/admin/messages/{mid}").json()["tenant_name"] == "default"
    assert admin("GET", f"/admin/messages/{unknown}").status_code == 404
    assert stranger("GET", f"/admin/messages/{mid}").status_code == 401
    assert admin("GET", "/admin/events?limit=2").json()["events"]
    assert admin("GET", "/admin/events?after=x").status_code == 400
    assert stranger("GET", "/admin/events").status_code == 401
    assert admin("GET", "/admin/webhooks").json()["webhooks"]
    assert stranger("GET", "/admin/webhooks").status_code == 401
    t = "/admin/tenants/default"
    assert admin("POST", f"{t}/suppressions", json={"email": "console@example.test"}).status_code == 200
    assert admin("POST", f"{t}/suppressions", json={"email": "not an address"}).status_code == 400
    assert admin("POST", "/admin/tenants/nobody/suppressions", json={"email": "a@b.test"}).status_code == 404
    assert stranger("POST", f"{t}/suppressions", json={"email": "a@b.test"}).status_code == 401
    assert admin("GET", f"{t}/suppressions").json()["suppressions"]
    assert admin("GET", f"{t}/suppressions?limit=0").status_code == 400
    assert admin("GET", "/admin/tenants/nobody/suppressions").status_code == 404
    assert stranger("GET", f"{t}/suppressions").status_code == 401
    assert admin("GET", f"{t}/suppressions/console@example.test").json()["reason"] == "manual"
    assert stranger("GET", f"{t}/suppressions/console@example.test").status_code == 401
    assert admin("DELETE", f"{t}/suppressions/console@example.test").status_code == 204
    assert admin("DELETE", f"{t}/suppressions/console@example.test").status_code == 404
    assert admin("GET", f"{t}/suppressions/console@example.test").status_code == 404
    assert stranger("DELETE", f"{t}/suppressions/console@example.test").status_code == 401
    assert admin("GET", f"{t}/messages?campaign=c").json()["messages"]
    assert admin("GET", f"{t}/messages?limit=0").status_code == 400
    assert admin("GET", "/admin/tenants/nobody/messages").status_code == 404
    assert stranger("GET", f"{t}/messages").status_code == 401
    assert admin("GET", f"{t}/messages/{mid}").json()["id"] == mid
    assert admin("GET", f"{t}/messages/{unknown}").status_code == 404
    assert stranger("GET", f"{t}/messages/{mid}").status_code == 401
    assert admin("GET", f"{t}/events").json()["events"]
    assert admin("GET", f"{t}/events?type=nothing").status_code == 400
    assert admin("GET", "/admin/tenants/nobody/events").status_code == 404
    assert stranger("GET", f"{t}/events").status_code == 401
    assert admin("GET", f"{t}/stats").json()["totals"]
    assert admin("GET", f"{t}/stats?bucket=week").status_code == 400
    assert admin("GET", "/admin/tenants/nobody/stats").status_code == 404
    assert stranger("GET", f"{t}/stats").status_code == 401
    live_hook = admin("GET", f"{t}/webhooks").json()["webhooks"][0]["id"]
    assert admin("GET", "/admin/tenants/nobody/webhooks").status_code == 404
    assert stranger("GET", f"{t}/webhooks").status_code == 401
    assert "delivered" in admin("POST", f"{t}/webhooks/{live_hook}/test").json()
    assert admin("POST", f"{t}/webhooks/{unknown}/test").status_code == 404
    assert stranger("POST", f"{t}/webhooks/{live_hook}/test").status_code == 401
    assert "domains" in admin("GET", f"{t}/domains").json()
    assert admin("GET", "/admin/tenants/nobody/domains").status_code == 404
    assert stranger("GET", f"{t}/domains").status_code == 401

    # The console's login, on a session of its own.
    ui = requests.Session()

    def console(method, path, **kw):
        return check(ui.request(method, cnode.admin_url(path), timeout=30, **kw))

    assert console("GET", "/ui/session").json() == {"logged_in": False}
    assert console("POST", "/ui/session").status_code == 405
    assert console("POST", "/ui/login", json={}).status_code == 400
    assert console("POST", "/ui/login", data="token", headers={"Content-Type": "text/plain"}).status_code == 415
    assert console("POST", "/ui/login", json={"token": "x"}, headers={"Origin": "http://evil.test"}).status_code == 403
    csrf = console("POST", "/ui/login", json={"token": ADMIN_TOKEN}).json()["csrf"]
    assert console("GET", "/ui/session").json()["csrf"] == csrf
    assert console("POST", "/ui/logout").status_code == 403
    assert console("POST", "/ui/logout", headers={"X-CSRF-Token": csrf}).status_code == 204
    for _ in range(10):
        assert console("POST", "/ui/login", json={"token": "wrong"}).status_code == 401
    assert console("POST", "/ui/login", json={"token": ADMIN_TOKEN}).status_code == 429

    assert stranger("GET", "/metrics").text.startswith("#")
    assert admin("GET", "/metrics?scope=x").status_code == 400
    assert stranger("GET", "/metrics?scope=cluster").status_code == 401
    assert admin("GET", "/metrics?scope=cluster").status_code == 409

    # Health
    assert check(s.get(cnode.url("/healthz"), timeout=5)).status_code == 200
    assert check(s.post(cnode.url("/healthz"), timeout=5)).status_code == 405
    assert check(s.post(cnode.url("/readyz"), timeout=5)).status_code == 405
    assert check(s.get(cnode.url("/readyz"), timeout=5)).status_code == 200
    assert cnode.admin("POST", "/admin/debug/store", json={"fail_commits": 2}).status_code == 202
    assert check(s.get(cnode.url("/readyz"), timeout=5)).status_code == 503


def test_tracking_answers_match_the_document(make_node, contract_world):
    sink, dns, _, _ = contract_world
    dns.set_zone({"records": [{"name": "mx1.example.test", "type": "A", "address": "127.0.0.2"},
                              {"name": "example.test", "type": "MX", "preference": 10, "exchange": "mx1.example.test"},
                              {"name": "t.sender.test", "type": "CNAME", "target": "track.petrel.test"}],
                  "servfail": ["down.sender.test"]})
    node = make_node(delivery_config(dns.port, sink.port, **{"tracking.enabled": "true",
                                                             "tracking.listen": '"127.0.0.1:0"',
                                                             "tracking.base_url": '"http://127.0.0.1:9"',
                                                             "tracking.cname_target": '"track.petrel.test"'}))
    s = node.session
    auth = {"Authorization": f"Bearer {node.key}"}

    def call(method, path, **kw):
        headers = {**auth, **kw.pop("headers", {})}
        return check(s.request(method, node.url(path), headers=headers, timeout=60, **kw))

    assert call("GET", "/v1/tracking").status_code == 200
    assert check(s.get(node.url("/v1/tracking"), timeout=30)).status_code == 401
    assert call("PATCH", "/v1/tracking", json={"opens": True, "clicks": True}).status_code == 200
    assert call("PATCH", "/v1/tracking", json={"opens": 1}).status_code == 400
    assert check(s.patch(node.url("/v1/tracking"), json={"opens": True}, timeout=30)).status_code == 401
    assert call("PATCH", "/v1/tracking", data="{}", headers={"Content-Type": "text/plain"}).status_code == 415
    assert call("DELETE", "/v1/tracking").status_code == 405
    assert call("POST", "/v1/tracking/verify").status_code == 400  # no domain yet
    assert check(s.post(node.url("/v1/tracking/verify"), timeout=30)).status_code == 401
    assert call("PATCH", "/v1/tracking", json={"domain": "down.sender.test"}).status_code == 200
    assert call("POST", "/v1/tracking/verify").status_code == 503
    assert call("PATCH", "/v1/tracking", json={"domain": "t.sender.test"}).status_code == 200
    assert call("POST", "/v1/tracking/verify").json()["verified"] is True
    tenant = [t for t in node.admin("GET", "/admin/tenants").json()["tenants"]][0]["id"]
    admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    assert check(s.get(node.admin_url(f"/admin/tenants/{tenant}/tracking"), headers=admin, timeout=30)).json()["verified"]
    assert check(s.get(node.admin_url(f"/admin/tenants/{tenant}/tracking"), timeout=30)).status_code == 401
    assert check(s.get(node.admin_url("/admin/tenants/01M98HTZRT0000AGW4E9QVKFYB/tracking"), headers=admin,
                       timeout=30)).status_code == 404
    receipt = call("POST", "/v1/messages", json={"from": "app@example.com", "to": ["t@example.test"], "subject": "s",
                                                 "html": '<a href="https://x.example/">x</a>',
                                                 "tracking": {"opens": True}}).json()
    settle_message(node, receipt["id"])
    details = call("GET", f"/v1/messages/{receipt['id']}").json()
    assert details["tracked_links"] == ["https://x.example/"] and details["recipients"][0]["engagement"]["opens"] == 0
    call("GET", "/v1/stats")
    # A server without a cname_target cannot verify tracking domains.
    other = make_node(delivery_config(dns.port, sink.port, **{"tracking.enabled": "true",
                                                              "tracking.listen": '"127.0.0.1:0"'}), name="other")
    assert check(other.session.patch(other.url("/v1/tracking"), json={"domain": "t.sender.test"},
                                     headers={"Authorization": f"Bearer {other.key}"}, timeout=30)).status_code == 200
    assert check(other.session.post(other.url("/v1/tracking/verify"),
                                    headers={"Authorization": f"Bearer {other.key}"}, timeout=30)).status_code == 409


def test_every_documented_status_was_produced():
    """Runs after the test above (file order): what the document promises, the server did."""
    if not SEEN:
        pytest.skip("the answers test did not run")
    missing = []
    for template, item in DOC["paths"].items():
        for method, op in item.items():
            if method not in METHODS:
                continue
            for status, response in op["responses"].items():
                if "x-produced-by" in response:
                    continue  # a setup this test cannot make (a cluster); that test asserts it
                if (method.upper(), template, status) not in SEEN:
                    missing.append(f"{method.upper()} {template} {status}")
    assert not missing, "documented but never produced: " + ", ".join(missing)
