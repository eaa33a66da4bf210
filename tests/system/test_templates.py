"""Templated batches end to end (docs/api.md, "Templates and batches"): one submission, a copy
per recipient rendered at delivery from the message's templates and the recipient's data, the
message stored once. Runs on both stores."""
import base64
import email
import email.policy


from conftest import settle_message, wait_events  # noqa: E402


def copies(sink):
    """What the sink received, by recipient, parsed."""
    out = {}
    for m in sink.messages():
        assert len(m["rcpt_to"]) == 1, m["rcpt_to"]  # a transaction per copy
        out[m["rcpt_to"][0]] = email.message_from_bytes(base64.b64decode(m["data_b64"]), policy=email.policy.default)
    return out


def problem(r, status, field):
    assert r.status_code == status, r.text
    body = r.json()
    assert body["field"] == field, body
    return body["detail"]


def test_a_batch_renders_each_recipients_copy(mx_node, mx_world):
    sink, _ = mx_world
    r = mx_node.submit(mx_node.key, {
        "from": "Shop <shop@example.com>",
        "subject": "{{greeting}}, {{name}}",
        "text": "Hi {{name}}, your code is {{code}}.{{#vip}} VIP!{{/vip}}",
        "html": "<p>Hi {{name}}</p><p>{{{banner}}}</p><p>{{missing}}</p>",
        "substitutions": {"greeting": "Hello", "banner": "<b>Sale</b>", "code": "none"},
        "metadata": {"campaign_ref": "c1"},
        "to": [{"email": "ann@example.test", "name": "Ann Example",
                "substitutions": {"name": "Ann <&>", "code": "A1", "vip": True}, "metadata": {"user": 1}},
               {"email": "bo@example.test", "substitutions": {"name": "Bo", "greeting": "Hej"}},
               "cy@example.test"]})
    assert r.status_code == 202, r.text
    message_id = r.json()["id"]
    settle_message(mx_node, message_id)
    got = copies(sink)
    assert set(got) == {"ann@example.test", "bo@example.test", "cy@example.test"}
    ann, bo, cy = got["ann@example.test"], got["bo@example.test"], got["cy@example.test"]
    assert ann["Subject"] == "Hello, Ann <&>" and bo["Subject"] == "Hej, Bo" and cy["Subject"].strip() == "Hello,"
    # Each copy is To its recipient only, with the display name given.
    assert ann["To"] == "Ann Example <ann@example.test>" and bo["To"] == "bo@example.test"
    text = ann.get_body(("plain",)).get_content()
    html = ann.get_body(("html",)).get_content()
    assert "Hi Ann <&>, your code is A1. VIP!" in text  # not escaped in text
    assert "<p>Hi Ann &lt;&amp;&gt;</p>" in html and "<b>Sale</b>" in html  # escaped in html, {{{ }}} raw
    assert "<p></p>" in html  # a missing variable renders empty
    assert "your code is none." in cy.get_body(("plain",)).get_content()  # the message's value
    assert len({m["Message-ID"] for m in got.values()}) == 1

    # Stored once: one message row holding the templates; each recipient holds its data.
    rows = mx_node.sql(f"SELECT templated, length(content) FROM messages WHERE id = '{message_id}'")
    assert [(int(a), int(b)) for a, b in rows] and int(rows[0][0]) == 1
    assert int(rows[0][1]) < 1500
    personal = mx_node.sql(f"SELECT address, personal FROM recipients WHERE message_id = '{message_id}' ORDER BY address")
    assert [p[0] for p in personal] == ["ann@example.test", "bo@example.test", "cy@example.test"]
    assert '"A1"' in personal[0][1]

    # The content endpoint shows a recipient's copy, rendered as it was sent.
    auth = {"Authorization": f"Bearer {mx_node.key}"}
    ids = {x["email"]: x["id"] for x in r.json()["recipients"]}
    shown = mx_node.session.get(mx_node.url(f"/v1/messages/{message_id}/content?recipient={ids['bo@example.test']}"),
                              headers=auth)
    assert shown.status_code == 200 and shown.headers["Content-Type"].startswith("message/rfc822")
    assert email.message_from_bytes(shown.content, policy=email.policy.default)["Subject"] == "Hej, Bo"
    problem(mx_node.session.get(mx_node.url(f"/v1/messages/{message_id}/content"), headers=auth), 400, "recipient")
    problem(mx_node.session.get(mx_node.url(f"/v1/messages/{message_id}/content?recipient=bad"), headers=auth), 400,
            "recipient")
    assert mx_node.session.get(mx_node.url(f"/v1/messages/{message_id}/content?recipient={message_id}"),
                             headers=auth).status_code == 404

    # Per-recipient metadata comes with the recipient's events, over the message's.
    events = wait_events(mx_node, 3, message=message_id, type="delivered")
    by_email = {e["email"]: e["metadata"] for e in events}
    assert by_email["ann@example.test"] == {"campaign_ref": "c1", "user": 1}
    assert by_email["bo@example.test"] == {"campaign_ref": "c1"}


def test_without_templates_braces_are_text(mx_node, mx_world):
    sink, _ = mx_world
    r = mx_node.submit(mx_node.key, {"from": "app@example.com", "to": ["lit@example.test"],
                                 "subject": "{{not a template}}", "text": "Use {{name}} here."})
    assert r.status_code == 202, r.text
    settle_message(mx_node, r.json()["id"])
    (m,) = copies(sink).values()
    assert m["Subject"] == "{{not a template}}" and "Use {{name}} here." in m.get_body(("plain",)).get_content()


def test_template_true_renders_with_the_messages_data_only(mx_node, mx_world):
    sink, _ = mx_world
    r = mx_node.submit(mx_node.key, {"from": "app@example.com", "to": ["t@example.test", "u@example.test"],
                                 "template": True, "subject": "[{{x}}]", "text": "x={{x}}"})
    assert r.status_code == 202, r.text
    settle_message(mx_node, r.json()["id"])
    got = copies(sink)
    assert {m["Subject"] for m in got.values()} == {"[]"}
    assert got["t@example.test"]["To"] == "t@example.test"


def test_strict_names_the_missing_variable_and_the_recipient(mx_node):
    body = {"from": "app@example.com", "strict": True, "subject": "Hi {{name}}", "text": "{{#items}}{{.}}{{/items}}",
            "to": [{"email": "a@example.test", "substitutions": {"name": "A"}},
                   {"email": "b@example.test", "substitutions": {"nam": "typo"}}]}
    detail = problem(mx_node.submit(mx_node.key, body), 400, "to[1].substitutions")
    assert '"name"' in detail and "strict" in detail
    body["substitutions"] = {"name": "default"}
    assert mx_node.submit(mx_node.key, body).status_code == 202  # the message's value counts
    assert int(mx_node.sql("SELECT COUNT(*) FROM messages")[0][0]) == 1  # nothing of the 400 was stored


def test_bad_templates_and_options_are_400s_naming_the_field(mx_node):
    base = {"from": "app@example.com", "to": [{"email": "a@example.test", "substitutions": {}}], "text": "t"}
    detail = problem(mx_node.submit(mx_node.key, {**base, "html": "<p>{{#open}}</p>"}), 400, "html")
    assert "unclosed" in detail and "open" in detail
    problem(mx_node.submit(mx_node.key, {**base, "subject": "{{/x}}"}), 400, "subject")
    problem(mx_node.submit(mx_node.key, {**base, "cc": ["c@example.test"]}), 400, "cc")
    problem(mx_node.submit(mx_node.key, {**base, "substitutions": ["x"]}), 400, "substitutions")
    problem(mx_node.submit(mx_node.key, {**base, "to": [{"email": "a@example.test", "substitutions": 3}]}), 400,
            "to[0].substitutions")
    problem(mx_node.submit(mx_node.key, {**base, "to": [{"email": "a@example.test", "metadata": []}]}), 400,
            "to[0].metadata")
    problem(mx_node.submit(mx_node.key, {"from": "app@example.com", "to": ["a@example.test"], "text": "t", "strict": True}),
            400, "strict")
    problem(mx_node.submit(mx_node.key, {"from": "app@example.com", "to": ["a@example.test"], "text": "t", "template": "yes"}),
            400, "template")
    # Data cannot break the subject header.
    detail = problem(mx_node.submit(mx_node.key, {"from": "app@example.com", "subject": "{{s}}", "text": "t",
                                              "to": [{"email": "a@example.test",
                                                      "substitutions": {"s": "x\r\nBcc: evil@example.net"}}]}),
                     400, "")
    assert "subject" in detail


def test_per_recipient_metadata_without_templates(mx_node, mx_world):
    r = mx_node.submit(mx_node.key, {"from": "app@example.com", "text": "plain {{x}}",
                                 "to": [{"email": "m1@example.test", "metadata": {"k": "v1"}}, "m2@example.test"]})
    assert r.status_code == 202, r.text
    message_id = r.json()["id"]
    settle_message(mx_node, message_id)
    (m,) = mx_world[0].messages()
    assert sorted(m["rcpt_to"]) == ["m1@example.test", "m2@example.test"]  # not templated: one transaction
    events = wait_events(mx_node, 2, message=message_id, type="delivered")
    assert {e["email"]: e["metadata"] for e in events} == {"m1@example.test": {"k": "v1"}, "m2@example.test": {}}


def api(node, method, path, **kw):
    return node.session.request(method, node.url(path), headers={"Authorization": f"Bearer {node.key}"},
                                timeout=60, **kw)


def test_stored_templates_have_versions_previews_and_send(mx_node, mx_world):
    sink, _ = mx_world
    created = api(mx_node, "POST", "/v1/templates",
                  json={"name": "welcome", "subject": "Welcome, {{name}}", "html": "<p>Hi {{name}}</p>"})
    assert created.status_code == 201, created.text
    t = created.json()
    assert t["version"] == 1 and t["text"] is None and t["variables"] == ["name"]
    tid = t["id"]
    updated = api(mx_node, "PUT", f"/v1/templates/{tid}",
                  json={"name": "welcome", "subject": "Hello {{name}}", "text": "Hi {{name}}, code {{code}}"})
    assert updated.status_code == 200 and updated.json()["version"] == 2
    assert api(mx_node, "GET", f"/v1/templates/{tid}").json()["subject"] == "Hello {{name}}"
    assert api(mx_node, "GET", f"/v1/templates/{tid}?version=1").json()["subject"] == "Welcome, {{name}}"
    assert api(mx_node, "GET", f"/v1/templates/{tid}?version=9").status_code == 404
    listed = api(mx_node, "GET", "/v1/templates").json()["templates"]
    assert [(x["id"], x["version"]) for x in listed] == [(tid, 2)]

    # A preview renders with sample data; strict names what is missing.
    preview = api(mx_node, "POST", f"/v1/templates/{tid}/render", json={"substitutions": {"name": "<Ann>"}})
    assert preview.status_code == 200
    assert preview.json() == {"id": tid, "version": 2, "subject": "Hello <Ann>", "text": "Hi <Ann>, code ",
                              "html": None}
    v1 = api(mx_node, "POST", f"/v1/templates/{tid}/render", json={"version": 1, "substitutions": {"name": "<A>"}})
    assert v1.json()["html"] == "<p>Hi &lt;A&gt;</p>"
    strict = api(mx_node, "POST", f"/v1/templates/{tid}/render", json={"strict": True, "substitutions": {"name": "x"}})
    assert strict.status_code == 400 and '"code"' in strict.json()["detail"]

    # A message names the template (the newest version, or one given).
    r = mx_node.submit(mx_node.key, {"from": "app@example.com", "template_id": tid,
                                     "to": [{"email": "st1@example.test", "substitutions": {"name": "Ann", "code": "7"}}]})
    assert r.status_code == 202, r.text
    r1 = mx_node.submit(mx_node.key, {"from": "app@example.com", "template_id": tid, "template_version": 1,
                                      "to": [{"email": "st2@example.test", "substitutions": {"name": "Bo"}}]})
    assert r1.status_code == 202, r1.text
    settle_message(mx_node, r.json()["id"])
    settle_message(mx_node, r1.json()["id"])
    got = copies(sink)
    assert got["st1@example.test"]["Subject"] == "Hello Ann"
    assert "Hi Ann, code 7" in got["st1@example.test"].get_body(("plain",)).get_content()
    assert got["st2@example.test"]["Subject"] == "Welcome, Bo"

    # Deleted: gone for new messages; a message accepted before keeps its copy.
    assert api(mx_node, "DELETE", f"/v1/templates/{tid}").status_code == 204
    assert api(mx_node, "GET", f"/v1/templates/{tid}").status_code == 404
    gone = mx_node.submit(mx_node.key, {"from": "app@example.com", "template_id": tid, "to": ["x@example.test"]})
    assert gone.status_code == 400 and gone.json()["field"] == "template_id"


def test_stored_templates_are_per_tenant_and_validated(mx_node):
    t = api(mx_node, "POST", "/v1/templates", json={"name": "n", "subject": "s", "text": "t"}).json()
    _, other_key = mx_node.create_tenant("other")
    other = mx_node.session.get(mx_node.url(f"/v1/templates/{t['id']}"),
                                headers={"Authorization": f"Bearer {other_key}"})
    assert other.status_code == 404
    stolen = mx_node.session.post(mx_node.url("/v1/messages"), headers={"Authorization": f"Bearer {other_key}"},
                                  json={"from": "a@example.com", "template_id": t["id"], "to": ["x@example.test"]})
    assert stolen.status_code == 400 and stolen.json()["field"] == "template_id"
    for body, field in (({"subject": "s", "text": "t"}, "name"), ({"name": "n", "subject": "s"}, "text"),
                        ({"name": "n", "text": "{{#a}}"}, "text"), ({"name": "n", "text": "t", "x": 1}, "x"),
                        ({"name": "", "text": "t"}, "name")):
        r = api(mx_node, "POST", "/v1/templates", json=body)
        assert r.status_code == 400 and r.json()["field"] == field, (body, r.text)
    both = mx_node.submit(mx_node.key, {"from": "a@example.com", "template_id": t["id"], "subject": "x",
                                        "to": ["x@example.test"]})
    assert both.status_code == 400 and both.json()["field"] == "subject"
    assert mx_node.submit(mx_node.key, {"from": "a@example.com", "template_id": "nope", "to": ["x@example.test"]}
                          ).json()["field"] == "template_id"
    assert api(mx_node, "PATCH", "/v1/templates").status_code == 405
    assert api(mx_node, "GET", "/v1/templates/not-an-id").status_code == 404
