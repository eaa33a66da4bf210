"""The web console (docs/console.md): its login and session rules over plain HTTP, the admin
endpoints it reads, and the whole console driven in headless Chromium against the real binary,
with axe-core checking every page and screenshots saved as artifacts."""
import json
import os
import pathlib
import time

import pytest
import requests

from conftest import ADMIN_TOKEN, ROOT, delivery_config, one_mx_world, submit_ok, wait_events, wait_for

ARTIFACTS = pathlib.Path(os.environ.get("PETREL_ARTIFACTS_DIR", ROOT / "build" / "artifacts")) / "console"
AXE = ROOT / "app" / "console" / "node_modules" / "axe-core" / "axe.min.js"


def login(node, token=ADMIN_TOKEN, session=None, **headers):
    s = session or requests.Session()
    r = s.post(node.admin_url("/ui/login"), json={"token": token}, headers=headers, timeout=10)
    return s, r


def logged_in(node):
    s, r = login(node)
    assert r.status_code == 200, r.text
    return s, r.json()["csrf"]


# ---- HTTP: pages, login, sessions, CSRF ------------------------------------------------------

def test_pages_are_served_with_a_strict_policy(node):
    r = requests.get(node.admin_url("/ui/"), timeout=10)
    assert r.status_code == 200
    assert r.headers["Content-Type"].startswith("text/html")
    csp = r.headers["Content-Security-Policy"]
    assert "default-src 'none'" in csp and "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
    assert "unsafe-inline" not in csp
    assert r.headers["X-Frame-Options"] == "DENY"
    assert r.headers["X-Content-Type-Options"] == "nosniff"
    assert '<script src="/ui/console.js"' in r.text and "<script>" not in r.text
    # The root and /ui lead to the console; the files have ETags and revalidate.
    r = requests.get(node.admin_url("/"), allow_redirects=False, timeout=10)
    assert r.status_code == 302 and r.headers["Location"] == "/ui/"
    js = requests.get(node.admin_url("/ui/console.js"), timeout=10)
    assert js.status_code == 200 and js.headers["Content-Type"].startswith("text/javascript")
    again = requests.get(node.admin_url("/ui/console.js"), headers={"If-None-Match": js.headers["ETag"]}, timeout=10)
    assert again.status_code == 304 and again.content == b""
    assert requests.get(node.admin_url("/favicon.ico"), timeout=10).headers["Content-Type"] == "image/svg+xml"
    assert requests.get(node.admin_url("/ui/nothing.js"), timeout=10).status_code == 404
    assert requests.get(node.admin_url("/ui/../admin.token"), timeout=10).status_code == 404
    # The tenant API's listener has no console.
    assert requests.get(node.url("/ui/"), timeout=10).status_code == 404


def test_nothing_is_reachable_without_a_login(node):
    for path in ("/admin/queues", "/admin/tenants", "/admin/messages", "/admin/events", "/admin/activity"):
        r = requests.get(node.admin_url(path), timeout=10)
        assert r.status_code == 401, path
    assert requests.get(node.admin_url("/ui/session"), timeout=10).json() == {"logged_in": False}
    # A forged or stale cookie is no session.
    r = requests.get(node.admin_url("/admin/tenants"), cookies={"petrel_session": "0" * 64}, timeout=10)
    assert r.status_code == 401 and "log in again" in r.json()["detail"]


def test_login_sets_a_strict_session_cookie_and_logout_ends_it(node):
    s, r = login(node, token="wrong-token-wrong-token")
    assert r.status_code == 401 and "admin token is wrong" in r.json()["detail"]
    s, r = login(node, token=node.key)
    assert r.status_code == 401 and "API key" in r.json()["detail"]
    s, r = login(node)
    assert r.status_code == 200, r.text
    cookie = r.headers["Set-Cookie"]
    assert cookie.startswith("petrel_session=")
    for attribute in ("HttpOnly", "SameSite=Strict", "Path=/"):
        assert attribute in cookie
    assert "Secure" not in cookie  # plain HTTP here; Secure when the request came over TLS
    csrf = r.json()["csrf"]
    assert s.get(node.admin_url("/ui/session"), timeout=10).json()["csrf"] == csrf

    r = s.get(node.admin_url("/admin/queues"), timeout=10)
    assert r.status_code == 200 and r.headers["Cache-Control"] == "no-store"

    # Logging out needs the CSRF token too; afterwards the cookie opens nothing.
    assert s.post(node.admin_url("/ui/logout"), timeout=10).status_code == 403
    r = s.post(node.admin_url("/ui/logout"), headers={"X-CSRF-Token": csrf}, timeout=10)
    assert r.status_code == 204 and "Max-Age=0" in r.headers["Set-Cookie"]
    old = r.request.headers["Cookie"]
    assert requests.get(node.admin_url("/admin/queues"), headers={"Cookie": old}, timeout=10).status_code == 401
    # The admin token still works as it always did.
    assert node.admin("GET", "/admin/queues").status_code == 200


def test_actions_need_the_csrf_token_and_a_same_origin_request(node):
    s, csrf = logged_in(node)
    path = node.admin_url("/admin/domains/csrf.test/suspend")
    assert s.post(path, json={}, timeout=10).status_code == 403
    assert s.post(path, json={}, headers={"X-CSRF-Token": "x" * 64}, timeout=10).status_code == 403
    evil = s.post(path, json={}, headers={"X-CSRF-Token": csrf, "Origin": "http://evil.example"}, timeout=10)
    assert evil.status_code == 403 and "console's own pages" in evil.json()["detail"]
    cross = s.post(path, json={}, headers={"X-CSRF-Token": csrf, "Sec-Fetch-Site": "cross-site"}, timeout=10)
    assert cross.status_code == 403
    assert node.admin("GET", "/admin/controls").json()["controls"] == []
    ok = s.post(path, json={"reason": "from the console"}, timeout=10,
                headers={"X-CSRF-Token": csrf, "Origin": node.admin_url("").rstrip("/"),
                         "Sec-Fetch-Site": "same-origin"})
    assert ok.status_code in (200, 204), ok.text
    controls = node.admin("GET", "/admin/controls").json()["controls"]
    assert [(c["kind"], c["target"], c["reason"]) for c in controls] == [("domain", "csrf.test", "from the console")]
    # Reading needs no CSRF token.
    assert s.get(node.admin_url("/admin/controls"), timeout=10).status_code == 200


def test_failed_logins_are_braked_per_address(node):
    for _ in range(10):
        assert login(node, token="not-the-token-0000")[1].status_code == 401
    s, r = login(node)  # even the right token waits out the minute
    assert r.status_code == 429 and int(r.headers["Retry-After"]) >= 1
    assert "too many failed logins" in r.json()["detail"]


def test_a_login_must_be_json_from_the_same_origin(node):
    r = requests.post(node.admin_url("/ui/login"), data={"token": ADMIN_TOKEN}, timeout=10)
    assert r.status_code == 415
    _, r = login(node, Origin="http://evil.example")
    assert r.status_code == 403


def test_the_console_can_be_turned_off(make_node):
    node = make_node("admin.console = false")
    assert requests.get(node.admin_url("/ui/"), timeout=10).status_code == 404
    assert login(node)[1].status_code == 404
    assert node.admin("GET", "/admin/queues").status_code == 200


def test_session_settings_are_checked(make_node):
    # (Sessions ending when idle or at their lifetime: tests/unit/test_console.cpp.)
    bad = make_node('admin.console_idle_timeout = "5s"', name="bad", start=False)
    with pytest.raises(RuntimeError, match="console_idle_timeout"):
        bad.start()


# ---- the admin endpoints the console reads ---------------------------------------------------

def test_tenant_data_through_the_admin_api(tmp_path, make_node):
    sink, dns = one_mx_world(tmp_path)
    try:
        node = make_node(delivery_config(dns.port, sink.port))
        tenant_id, key = node.create_tenant("acme")
        other_id, other_key = node.create_tenant("other")
        m = submit_ok(node, **{"to": ["alice@example.test"], "campaign": "spring"})
        submit_ok(node, **{"to": ["bob@example.test"]})
        r = node.submit(key, {"from": "a@sender.test", "to": ["carol@example.test"], "subject": "acme", "text": "x"})
        assert r.status_code == 202
        acme_message = r.json()["id"]
        sink.wait_for_messages(3)
        wait_events(node, 2, type="delivered")

        # A message of any tenant by id, with its tenant and each recipient's history.
        r = node.admin("GET", f"/admin/messages/{acme_message}")
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["tenant_name"] == "acme" and body["tenant"] == tenant_id
        assert [e["type"] for e in body["recipients"][0]["history"]] == ["accepted", "delivered"]
        assert node.admin("GET", "/admin/messages/01M98HTZRTCYKAGW4E9QVKFYBN").status_code == 404
        assert node.admin("GET", "/admin/messages/not-an-id").status_code == 404

        # Messages by recipient or campaign across tenants.
        found = node.admin("GET", "/admin/messages", params={"recipient": "carol@example.test"}).json()["messages"]
        assert [(x["id"], x["tenant_name"]) for x in found] == [(acme_message, "acme")]
        assert found[0]["recipients"][0]["status"] == "delivered"
        found = node.admin("GET", "/admin/messages", params={"campaign": "spring"}).json()["messages"]
        assert [x["id"] for x in found] == [m["id"]]
        page = node.admin("GET", "/admin/messages", params={"limit": 2}).json()
        assert len(page["messages"]) == 2 and page["next"]
        rest = node.admin("GET", "/admin/messages", params={"limit": 2, "before": page["next"]}).json()
        assert len(rest["messages"]) == 1 and rest["next"] is None
        assert {x["id"] for x in page["messages"] + rest["messages"]} >= {acme_message, m["id"]}
        assert node.admin("GET", "/admin/messages", params={"status": "lost"}).status_code == 400

        # The event tail of every tenant, in one order, with a cursor.
        events = node.admin("GET", "/admin/events", params={"limit": 4}).json()
        assert len(events["events"]) == 4 and events["more"] is True
        seen = [e["id"] for e in events["events"]]
        after = node.admin("GET", "/admin/events", params={"after": events["next"]}).json()
        seen += [e["id"] for e in after["events"]]
        assert len(seen) == len(set(seen)) == 6  # 3 accepted, 3 delivered
        assert {e["tenant_name"] for e in events["events"] + after["events"]} == {"default", "acme"}

        # A tenant's data by id or by name: suppressions, messages, events, stats, webhooks, domains.
        base = f"/admin/tenants/{tenant_id}"
        r = node.admin("POST", f"{base}/suppressions", json={"suppressions": [{"email": "dave@Example.TEST"}]})
        assert r.status_code == 200, r.text
        assert node.admin("GET", "/admin/tenants/acme/suppressions/dave@example.test").json()["reason"] == "manual"
        assert node.admin("GET", f"/admin/tenants/{other_id}/suppressions/dave@example.test").status_code == 404
        r = node.submit(key, {"from": "a@sender.test", "to": ["dave@example.test"], "subject": "s", "text": "x"})
        assert r.json()["recipients"][0]["status"] == "suppressed"
        assert node.admin("DELETE", f"{base}/suppressions/dave@example.test").status_code == 204
        assert node.admin("GET", f"{base}/suppressions").json()["suppressions"] == []
        assert [x["id"] for x in node.admin("GET", f"{base}/messages", params={"recipient": "carol@example.test"}).json()["messages"]] == [acme_message]
        assert node.admin("GET", f"{base}/messages/{acme_message}").json()["id"] == acme_message
        assert node.admin("GET", f"/admin/tenants/{other_id}/messages/{acme_message}").status_code == 404
        assert {e["type"] for e in node.admin("GET", f"{base}/events").json()["events"]} >= {"accepted", "delivered"}
        assert node.admin("GET", f"{base}/stats").json()["totals"]["delivered"] == 1
        assert node.admin("GET", f"{base}/webhooks").json() == {"webhooks": []}
        assert node.admin("GET", f"{base}/domains").json() == {"domains": []}
        assert node.admin("GET", "/admin/tenants/01M98HTZRTCYKAGW4E9QVKFYBN/suppressions").status_code == 404
        assert node.admin("GET", "/admin/tenants/nobody/events").status_code == 404
        assert node.admin("POST", f"{base}/messages", json={}).status_code == 405
        # ... and never with a tenant's key.
        r = requests.get(node.admin_url(f"{base}/events"), headers={"Authorization": f"Bearer {key}"}, timeout=10)
        assert r.status_code == 401 and "API key" in r.json()["detail"]

        # The activity of the last minutes.
        act = node.admin("GET", "/admin/activity", params={"minutes": 5}).json()
        assert len(act["minutes"]) == 5
        assert act["totals"]["accepted"] >= 4 and act["totals"]["delivered"] == 3
        assert act["totals"]["dns_resolved"] >= 1
        assert node.admin("GET", "/admin/activity", params={"minutes": 0}).status_code == 400

        # Every tenant's webhooks, with their health.
        r = node.submit(other_key, {"from": "a@sender.test", "to": ["erin@example.test"], "subject": "s", "text": "x"})
        assert r.status_code == 202
        assert node.admin("GET", "/admin/webhooks").json() == {"webhooks": []}
    finally:
        sink.stop()
        dns.stop()


# ---- the console in a real browser -----------------------------------------------------------

@pytest.fixture
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    options = webdriver.ChromeOptions()
    for a in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,900"):
        options.add_argument(a)
    options.binary_location = "/usr/bin/chromium"
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
    driver.set_page_load_timeout(20)
    yield driver
    driver.quit()


class Console:
    """Drives the console's pages and checks each one: no console errors, no accessibility
    violations, a screenshot."""

    def __init__(self, driver, node):
        from selenium.common.exceptions import StaleElementReferenceException
        from selenium.webdriver.support.ui import WebDriverWait
        self.d = driver
        self.node = node
        # (Pages redraw their tables on a timer: an element read as it is replaced is retried.)
        self.wait = WebDriverWait(driver, 20, ignored_exceptions=[StaleElementReferenceException])
        self.checked = []
        assert AXE.is_file(), f"{AXE} is missing: run scripts/install-deps.sh (npm ci in app/console)"
        self.axe = AXE.read_text()
        ARTIFACTS.mkdir(parents=True, exist_ok=True)

    def by(self, css):
        from selenium.webdriver.common.by import By
        return self.d.find_element(By.CSS_SELECTOR, css)

    def all(self, css):
        from selenium.webdriver.common.by import By
        return self.d.find_elements(By.CSS_SELECTOR, css)

    def until(self, predicate, what):
        try:
            return self.wait.until(lambda d: predicate())
        except Exception as e:
            raise AssertionError(f"timed out waiting for {what}; page text:\n{self.text()}") from e

    def text(self):
        return self.d.execute_script("return document.body.innerText")

    def show_text(self, text):
        return self.until(lambda: text in self.text(), repr(text))

    def go(self, hash_path, text):
        self.d.execute_script("location.hash = arguments[0]", hash_path)
        self.show_text(text)

    def check_page(self, name):
        """No JavaScript errors so far, no axe violations, and a screenshot."""
        errors = [e for e in self.d.get_log("browser") if e["level"] == "SEVERE"]
        assert not errors, errors
        self.d.execute_script(self.axe)
        result = self.d.execute_async_script(
            "const done = arguments[arguments.length - 1];"
            "axe.run(document, {resultTypes: ['violations']}).then(r => done(r.violations.map("
            "v => ({id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.map(n => n.target.join(' '))}))))"
            ".catch(e => done([{id: 'axe-error', help: String(e)}]))")
        assert result == [], json.dumps(result, indent=1)
        assert self.d.execute_script("return document.documentElement.scrollWidth <= window.innerWidth"), \
            f"{name} is wider than the window"
        self.d.save_screenshot(str(ARTIFACTS / f"{name}.png"))
        self.checked.append(name)

    def confirm(self, **fields):
        self.until(lambda: self.by("#confirm").get_attribute("open") is not None, "the confirmation dialog")
        for name, value in fields.items():
            box = self.by(f"#confirm-{name}")
            box.clear()
            box.send_keys(value)
        self.by("#confirm-ok").click()
        self.until(lambda: self.by("#confirm").get_attribute("open") is None, "the dialog to close")


def test_the_console_in_a_browser(tmp_path, make_node, browser):
    sink, dns = one_mx_world(tmp_path)
    try:
        node = make_node(delivery_config(dns.port, sink.port, **{"delivery.site_failure_delay": '"500ms"',
                                                                "webhooks.allow_private_networks": "true",
                                                                "webhooks.require_https": "false"}))
        tenant_api = {"Authorization": f"Bearer {node.key}"}
        # A sender domain (not published, so not verified) and a webhook whose receiver is down.
        assert requests.post(node.url("/v1/domains"), json={"domain": "brand.test"}, headers=tenant_api,
                             timeout=30).status_code == 201
        assert requests.post(node.url("/v1/webhooks"), json={"url": "http://127.0.0.1:9/hooks"},
                             headers=tenant_api, timeout=30).status_code == 201
        c = Console(browser, node)
        browser.get(node.admin_url("/ui/"))

        # Login: a wrong token is refused on the page, the right one opens the overview.
        c.until(lambda: c.by("#login-view").is_displayed(), "the login form")
        # First paint, for the record (docs/console.md); timings are not asserted in tests.
        timing = browser.execute_script(
            "const p = performance.getEntriesByType('paint').find(e => e.name === 'first-contentful-paint');"
            "const n = performance.getEntriesByType('navigation')[0];"
            "return {first_contentful_paint_ms: p ? p.startTime : null, dom_content_loaded_ms: n.domContentLoadedEventEnd}")
        (ARTIFACTS / "first-paint.json").write_text(json.dumps(timing) + "\n")
        c.check_page("login")
        c.by("#token").send_keys("wrong-token-wrong-token")
        c.by("#login-form button[type=submit]").click()
        c.show_text("admin token is wrong")
        browser.get_log("browser")  # the 401 of that attempt is expected
        c.by("#token").clear()
        c.by("#token").send_keys(ADMIN_TOKEN)
        c.by("#login-form button[type=submit]").click()
        c.show_text("No warnings.")
        assert not any(x["name"] == "petrel_session" and not x["httpOnly"] for x in browser.get_cookies())
        assert browser.execute_script("return document.cookie") == ""  # HttpOnly: not readable by scripts

        # A deferring sink: the domain's queue fills with deferred recipients.
        sink.configure(greeting="421 4.3.2 Too busy")
        ids = [submit_ok(node, to=[f"user{i}@example.test"], subject=f"queued {i}")["id"] for i in range(5)]
        c.go("#/domains", "example.test")
        c.until(lambda: "Too busy" in requests.get(node.admin_url("/admin/queues/example.test"), timeout=10,
                                                   headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}).text,
                "the 421 among the last replies")
        c.go("#/", "Deferred")
        c.check_page("overview")
        c.go("#/domains/example.test", "Last replies")
        c.show_text("421 4.3.2 Too busy")
        c.check_page("domain")

        # Suspend it (confirmed, with a reason); with the sink fixed nothing is delivered.
        c.go("#/domains", "example.test")
        c.by("button[aria-label='suspend example.test']").click()
        c.confirm(reason="receiver overloaded", duration="2h")
        c.show_text("receiver overloaded")
        c.check_page("domains")
        controls = node.admin("GET", "/admin/controls").json()["controls"]
        assert [(x["kind"], x["target"]) for x in controls] == [("domain", "example.test")]
        sink.configure(greeting=None)
        time.sleep(3)  # the retry schedule is 1 s: without the suspension they would be delivered
        assert sink.messages() == []

        # Resume: the deliveries reach the sink, and the queue empties.
        c.by("button[aria-label='resume example.test']").click()
        c.confirm()
        sink.wait_for_messages(5, timeout=30)

        def domain_row():
            rows = browser.execute_script(
                "return [...document.querySelectorAll('#domains tbody tr')].map(r => r.innerText)")
            return next((r for r in rows if r.startswith("example.test")), None)
        c.until(lambda: (domain_row() or "").split()[:5] == ["example.test", "0", "0", "0", "0"]
                or "No recipients are waiting." in c.text(), "an empty queue for example.test")

        # Messages: find one by recipient and see its history.
        c.go("#/messages", "Find")
        c.by("#q-recipient").send_keys("user3@example.test")
        c.by("#message-search button[type=submit]").click()
        c.show_text("queued 3")
        c.check_page("messages")
        c.by("#messages a").click()
        c.show_text("Recipients")
        c.until(lambda: "delivered" in c.by(".recipient").text, "the delivery in the history")
        history = c.by(".recipient").text
        assert "accepted" in history and "deferred" in history and "421" in history
        assert ids[3] in c.text()
        c.check_page("message")

        # Events: the live tail shows the deliveries.
        c.go("#/events", "The newest events")
        c.until(lambda: len(c.all("#event-rows tr")) >= 15, "accepted, deferred and delivered events")
        c.check_page("events")

        # Tenants: create a key (shown once), then revoke it; it stops working.
        c.go("#/tenants", "default")
        c.check_page("tenants")
        c.by("#tenants a").click()
        c.show_text("API keys")
        c.show_text("Delivery rate")
        keys_before = len(c.all("#keys tbody tr"))
        c.by("#create-key").click()
        c.confirm()
        c.until(lambda: c.all("#new-key-value"), "the new key")
        new_key = c.by("#new-key-value").text
        assert new_key.startswith("pk_")
        assert node.submit(new_key, {"from": "a@sender.test", "to": ["k@example.test"], "subject": "s",
                                     "text": "x"}).status_code == 202
        c.until(lambda: len(c.all("#keys tbody tr")) == keys_before + 1, "the key in the list")
        # Its sender domain with the records to publish, its webhook with its health.
        domains = c.by("#sender-domains").text
        assert "brand.test" in domains and "not verified" in domains and "_domainkey.brand.test" in domains
        assert "http://127.0.0.1:9/hooks" in c.by("#webhooks").text
        c.check_page("tenant")
        c.by(f"button[aria-label='Revoke key {new_key[:9]}']").click()
        c.confirm()
        c.until(lambda: len(c.all("#keys tbody tr")) == keys_before, "the key gone from the list")
        assert node.submit(new_key, {"from": "a@sender.test", "to": ["k@example.test"], "subject": "s",
                                     "text": "x"}).status_code == 401

        # Suppressions from the tenant's page.
        c.by("#sup-email").send_keys("blocked@example.test")
        c.by("#sup-email").find_element("xpath", "..").find_element("xpath", "..").find_element(
            "css selector", "button[type=button]").click()
        c.confirm()
        c.until(lambda: "blocked@example.test" in c.by("#suppressions").text, "the suppression")
        r = node.submit(node.key, {"from": "a@sender.test", "to": ["blocked@example.test"], "subject": "s", "text": "x"})
        assert r.json()["recipients"][0]["status"] == "suppressed"

        c.go("#/egress", "Source default")
        c.check_page("egress")

        # A phone-sized window: no page wider than the screen.
        browser.set_window_size(390, 844)
        for hash_path, text, name in (("#/", "Queues and health", "phone-overview"),
                                      ("#/domains", "MX sites", "phone-domains")):
            c.go(hash_path, text)
            c.check_page(name)  # (which checks that the page is no wider than the window)
        browser.set_window_size(1280, 900)

        # Logout ends the session: the page asks for a login, and the old cookie opens nothing.
        cookie = {x["name"]: x["value"] for x in browser.get_cookies()}["petrel_session"]
        c.by("#logout").click()
        c.until(lambda: c.by("#login-view").is_displayed(), "the login form after logout")
        assert requests.get(node.admin_url("/admin/queues"), cookies={"petrel_session": cookie},
                            timeout=10).status_code == 401
        c.go("#/domains", "Admin token")
        assert not c.by("#top").is_displayed()
        assert [e for e in browser.get_log("browser") if e["level"] == "SEVERE"] == []
        assert len(c.checked) >= 12
    finally:
        sink.stop()
        dns.stop()
