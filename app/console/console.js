// The Petrel console: one page that reads and steers the node through its admin API, logged in
// with a session cookie (HttpOnly) and a CSRF token for every action. Data is only ever put in
// the page as text (textContent), never as markup.
"use strict";

(function () {
  const state = { csrf: null, session: null, timer: null, generation: 0 };

  // ---- DOM helpers --------------------------------------------------------------------------

  function h(tag, attrs, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k === "class") e.className = v;
      else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
      else if (v === true) e.setAttribute(k, "");
      else e.setAttribute(k, String(v));
    }
    for (const c of children.flat()) {
      if (c === null || c === undefined || c === false) continue;
      e.appendChild(typeof c === "string" || typeof c === "number" ? document.createTextNode(String(c)) : c);
    }
    return e;
  }

  function announce(text) {
    const s = document.getElementById("status");
    s.textContent = "";
    setTimeout(() => (s.textContent = text), 30);
  }

  function when(ts) {
    if (!ts) return "—";
    const d = new Date(ts);
    if (isNaN(d)) return String(ts);
    return d.toLocaleString(undefined, { dateStyle: "short", timeStyle: "medium" });
  }

  function ago(ts) {
    if (!ts) return "—";
    const s = Math.round((Date.now() - new Date(ts).getTime()) / 1000);
    if (s < 0) return "in " + span(-s);
    return span(s) + " ago";
  }

  function span(s) {
    if (s < 90) return s + " s";
    if (s < 5400) return Math.round(s / 60) + " min";
    if (s < 172800) return Math.round(s / 3600) + " h";
    return Math.round(s / 86400) + " d";
  }

  function num(n) {
    return n === null || n === undefined ? "—" : Number(n).toLocaleString();
  }

  // What an event's data says in a line: the reply (code, enhanced code, text), or the error.
  function detailsOf(data) {
    if (!data) return "";
    const parts = [];
    if (data.smtp_code) parts.push(data.smtp_code, data.enhanced_code || "", data.reply || "");
    else if (data.error) parts.push(data.error);
    else if (data.reason) parts.push(data.reason);
    if (data.mx_host) parts.push("(" + data.mx_host + ")");
    return parts.filter(Boolean).join(" ");
  }

  function badge(text, kind) {
    return h("span", { class: "badge " + (kind || text) }, text);
  }

  // A table: columns [{label, num?}], rows of cells (strings, numbers or nodes).
  function table(caption, columns, rows, emptyText) {
    if (!rows.length) return h("p", { class: "empty" }, emptyText || "Nothing here.");
    // (A region that may scroll sideways: focusable, so that keyboards can scroll it.)
    return h(
      "div",
      { class: "table-wrap", tabindex: "0", role: "region", "aria-label": caption },
      h(
        "table",
        {},
        h("caption", { class: "visually-hidden" }, caption),
        h("thead", {}, h("tr", {}, columns.map((c) => h("th", { scope: "col", class: c.num ? "num" : null }, c.label)))),
        h(
          "tbody",
          {},
          rows.map((r) => h("tr", {}, r.map((cell, i) => h("td", { class: columns[i] && columns[i].num ? "num" : null }, cell))))
        )
      )
    );
  }

  function card(label, value, kind) {
    return h("div", { class: "card" + (kind ? " " + kind : "") }, h("span", { class: "label" }, label), h("span", { class: "value" }, value));
  }

  // ---- the API --------------------------------------------------------------------------------

  class ApiError extends Error {
    constructor(status, problem) {
      super((problem && (problem.detail || problem.title)) || "HTTP " + status);
      this.status = status;
      this.problem = problem;
    }
  }

  async function api(method, path, body) {
    const headers = { Accept: "application/json" };
    if (method !== "GET") headers["X-CSRF-Token"] = state.csrf || "";
    if (body !== undefined) headers["Content-Type"] = "application/json";
    const r = await fetch(path, {
      method,
      headers,
      credentials: "same-origin",
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    let data = null;
    const text = await r.text();
    if (text) {
      try {
        data = JSON.parse(text);
      } catch (e) {
        data = { detail: text };
      }
    }
    if (r.status === 401 && path !== "/ui/login") {
      showLogin("Your session has ended; log in again.");
      throw new ApiError(401, data);
    }
    if (!r.ok) throw new ApiError(r.status, data);
    return data;
  }

  function problemText(e) {
    if (!(e instanceof ApiError)) return String(e && e.message ? e.message : e);
    let text = e.message;
    const errors = e.problem && e.problem.errors;
    if (Array.isArray(errors) && errors.length > 1)
      text += " — " + errors.map((x) => x.field + ": " + x.detail).join("; ");
    return text;
  }

  // ---- login ---------------------------------------------------------------------------------

  function showLogin(message) {
    stopTimer();
    state.csrf = null;
    document.getElementById("top").hidden = true;
    document.getElementById("view").replaceChildren();
    document.getElementById("login-view").hidden = false;
    document.getElementById("login-error").textContent = message || "";
    document.title = "Log in — Petrel console";
    document.getElementById("token").focus();
  }

  async function startSession() {
    const r = await fetch("/ui/session", { credentials: "same-origin", headers: { Accept: "application/json" } });
    const session = r.status === 200 ? await r.json() : null;
    if (!session || !session.logged_in) return showLogin("");
    state.session = session;
    state.csrf = state.session.csrf;
    document.getElementById("login-view").hidden = true;
    document.getElementById("top").hidden = false;
    document.getElementById("node-label").textContent = state.session.node ? "Node " + state.session.node : "";
    document.getElementById("nav-cluster").hidden = !state.session.cluster;
    route();
  }

  async function login(ev) {
    ev.preventDefault();
    const input = document.getElementById("token");
    const error = document.getElementById("login-error");
    error.textContent = "";
    try {
      await api("POST", "/ui/login", { token: input.value });
      input.value = "";
      await startSession();
      announce("Logged in");
    } catch (e) {
      error.textContent = problemText(e);
    }
  }

  async function logout() {
    try {
      await api("POST", "/ui/logout");
    } catch (e) {
      /* ended anyway */
    }
    location.hash = "#/";
    showLogin("Logged out.");
  }

  // ---- confirmation dialog ---------------------------------------------------------------------

  // fields: [{name, label, placeholder, value}]; resolves with the values, or null if cancelled.
  function confirmAction(title, text, fields, okLabel) {
    const dialog = document.getElementById("confirm");
    const form = document.getElementById("confirm-form");
    document.getElementById("confirm-title").textContent = title;
    document.getElementById("confirm-text").textContent = text;
    document.getElementById("confirm-error").textContent = "";
    document.getElementById("confirm-ok").textContent = okLabel || "Confirm";
    const box = document.getElementById("confirm-fields");
    box.replaceChildren(
      ...(fields || []).map((f) =>
        h(
          "div",
          { class: "field" },
          h("label", { for: "confirm-" + f.name }, f.label),
          h("input", { id: "confirm-" + f.name, name: f.name, placeholder: f.placeholder || null, value: f.value || null })
        )
      )
    );
    return new Promise((resolve) => {
      const done = () => {
        dialog.removeEventListener("close", done);
        if (dialog.returnValue !== "ok") return resolve(null);
        const values = {};
        for (const f of fields || []) values[f.name] = document.getElementById("confirm-" + f.name).value.trim();
        resolve(values);
      };
      dialog.addEventListener("close", done);
      dialog.returnValue = "";
      dialog.showModal();
      const first = box.querySelector("input");
      (first || document.getElementById("confirm-cancel")).focus();
    });
  }

  // An action on a domain, site, tenant or source: suspend (reason, duration), resume, flush,
  // bounce (reason), confirmed first.
  async function shapingAction(kind, name, action, after) {
    const what = { domains: "domain", sites: "site", tenants: "tenant", sources: "source" }[kind];
    let fields = [];
    let text = "";
    if (action === "suspend") {
      fields = [
        { name: "reason", label: "Reason (shown to other operators)", placeholder: "e.g. blocklisted at the receiver" },
        { name: "duration", label: "Duration (empty: until resumed)", placeholder: "e.g. 30m, 2h, 1d" },
      ];
      text = `No new attempts to the ${what} ${name} until it is resumed or the duration ends. Attempts under way finish.`;
    } else if (action === "resume") {
      text = `Delivery to the ${what} ${name} starts again.`;
    } else if (action === "flush") {
      text = `Every deferred recipient of the ${what} ${name} is retried now.`;
    } else if (action === "bounce") {
      fields = [{ name: "reason", label: "Reason (in the bounce events)", placeholder: "e.g. domain retired" }];
      text = `Every recipient waiting for the ${what} ${name} is bounced now. This cannot be undone.`;
    }
    const label = action.charAt(0).toUpperCase() + action.slice(1);
    const values = await confirmAction(`${label} ${what} ${name}?`, text, fields, label);
    if (!values) return;
    const body = {};
    if (values.reason) body.reason = values.reason;
    if (values.duration) body.duration = values.duration;
    try {
      await api("POST", `/admin/${kind}/${encodeURIComponent(name)}/${action}`, body);
      announce(`${label}: ${what} ${name} done`);
      if (after) after();
    } catch (e) {
      alertError(e);
    }
  }

  function alertError(e) {
    const box = document.getElementById("view-error");
    if (box) box.textContent = problemText(e);
    announce("Error: " + problemText(e));
  }

  function actionButtons(kind, name, actions, after) {
    return h(
      "div",
      { class: "actions" },
      actions.map((a) =>
        h(
          "button",
          {
            type: "button",
            class: a === "bounce" || a === "suspend" ? "danger" : "secondary",
            "aria-label": `${a} ${name}`,
            "data-action": a,
            onclick: () => shapingAction(kind, name, a, after),
          },
          a
        )
      )
    );
  }

  // ---- router ----------------------------------------------------------------------------------

  function stopTimer() {
    if (state.timer) clearInterval(state.timer);
    state.timer = null;
  }

  // Runs render(view) now and every `seconds` while the page stays on this view.
  function every(seconds, render) {
    stopTimer();
    const generation = ++state.generation;
    let running = false;
    const run = async () => {
      if (running) return; // the previous run still waits for its answers: skip this tick
      running = true;
      try {
        await render(generation);
      } catch (e) {
        if (!(e instanceof ApiError && e.status === 401)) alertError(e);
      } finally {
        running = false;
      }
    };
    run();
    if (seconds) state.timer = setInterval(run, seconds * 1000);
  }

  function page(title, ...content) {
    document.title = title + " — Petrel console";
    const view = document.getElementById("view");
    view.replaceChildren(h("h1", {}, title), h("p", { id: "view-error", class: "error", role: "alert" }), ...content.filter(Boolean));
    return view;
  }

  // Replaces the children of the element with that id, if the view still shows it.
  function fill(id, ...content) {
    const e = document.getElementById(id);
    if (e) e.replaceChildren(...content.filter((c) => c !== null && c !== undefined && c !== false));
  }

  function parseHash() {
    const hash = location.hash.replace(/^#/, "") || "/";
    const [path, query] = hash.split("?");
    const parts = path.split("/").filter(Boolean).map(decodeURIComponent);
    return { parts, params: new URLSearchParams(query || "") };
  }

  function route() {
    if (!state.csrf) return;
    const { parts, params } = parseHash();
    const section = parts[0] || "overview";
    for (const a of document.querySelectorAll("nav a[data-section]")) {
      if (a.dataset.section === section) a.setAttribute("aria-current", "page");
      else a.removeAttribute("aria-current");
    }
    const views = {
      overview: () => overview(),
      domains: () => (parts[1] ? domainView(parts[1]) : domainsView(params)),
      egress: () => egressView(params),
      tenants: () => (parts[1] ? tenantView(parts[1]) : tenantsView()),
      messages: () => (parts[1] ? messageView(parts[1]) : messagesView(params)),
      events: () => eventsView(params),
      cluster: () => clusterView(),
    };
    (views[section] || (() => page("Not found", h("p", {}, "No such page."))))();
  }

  function scopeQuery(params) {
    return state.session && state.session.cluster && params.get("scope") === "cluster" ? "?scope=cluster" : "";
  }

  // In a cluster: this node's view or every member's.
  function scopeSelector(base, params) {
    if (!state.session || !state.session.cluster) return null;
    const select = h(
      "select",
      {
        id: "scope",
        onchange: (e) => (location.hash = base + (e.target.value === "cluster" ? "?scope=cluster" : "")),
      },
      h("option", { value: "node", selected: params.get("scope") !== "cluster" }, "This node"),
      h("option", { value: "cluster", selected: params.get("scope") === "cluster" }, "Every member")
    );
    return h("div", { class: "toolbar" }, h("label", { for: "scope" }, "Nodes"), select);
  }

  // ---- overview ------------------------------------------------------------------------------

  async function readiness() {
    const r = await fetch("/readyz", { credentials: "same-origin" });
    try {
      return await r.json();
    } catch (e) {
      return { ready: false, reason: "HTTP " + r.status };
    }
  }

  function overview() {
    page(
      "Overview",
      h("h2", {}, "Warnings"),
      h("ul", { id: "warnings", class: "warnings" }, h("li", {}, "Loading…")),
      h("h2", {}, "Queues and health"),
      h("div", { id: "cards", class: "cards" }),
      h("h2", {}, "Deliveries per minute, last 3 hours"),
      h(
        "ul",
        { class: "legend", "aria-label": "Legend" },
        ["delivered", "deferred", "bounced", "complained", "accepted"].map((k) =>
          h("li", {}, h("span", { class: "swatch " + k }), k)
        )
      ),
      h("div", { id: "chart" }),
      h("details", {}, h("summary", {}, "The last 15 minutes as a table"), h("div", { id: "chart-table" }))
    );
    every(10, async () => {
      const [activity, queues, ready, controls, webhooks, tenants] = await Promise.all([
        api("GET", "/admin/activity?minutes=180"),
        api("GET", "/admin/queues"),
        readiness(),
        api("GET", "/admin/controls"),
        api("GET", "/admin/webhooks"),
        api("GET", "/admin/tenants"),
      ]);
      const minutes = activity.minutes;
      const recent = minutes.slice(-5);
      const sum = (rows, k) => rows.reduce((a, r) => a + r[k], 0);
      const dnsOk = sum(recent, "dns_resolved");
      const dnsFailed = sum(recent, "dns_failed");
      const t = queues.totals;
      fill(
        "cards",
        card("Queued", num(t.queued)),
        card("Deferred", num(t.deferred), t.deferred > 0 ? "bad" : null),
        card("Due now", num(t.due)),
        card("In flight", num(t.in_flight)),
        card("Domains waiting", num(t.domains)),
        card("Accepted / min (5 min)", num(Math.round(sum(recent, "accepted") / 5))),
        card("Delivered / min (5 min)", num(Math.round(sum(recent, "delivered") / 5))),
        card("Store", ready.ready ? "ready" : "not ready: " + (ready.reason || "?"), ready.ready ? "good" : "bad"),
        card(
          "DNS (5 min)",
          dnsFailed ? `${dnsFailed} of ${dnsOk + dnsFailed} failing` : dnsOk ? `${dnsOk} resolved` : "idle",
          dnsFailed ? "bad" : "good"
        )
      );
      const warnings = [];
      if (!ready.ready) warnings.push(`The node is not ready: ${ready.reason || "no reason given"}.`);
      for (const w of webhooks.webhooks)
        if (w.state && w.state !== "active")
          warnings.push(`Webhook ${w.url} of ${w.tenant_name} is ${w.state}${w.paused_reason ? ": " + w.paused_reason : ""}.`);
      for (const t of tenants.tenants)
        if (t.reputation && t.reputation.state === "warning")
          warnings.push(
            `Tenant ${t.name} is past a reputation warning threshold: ${(t.reputation.complaint_rate_ppm / 10000).toFixed(2)}% complaints, ${(t.reputation.hard_bounce_rate_ppm / 10000).toFixed(2)}% hard bounces.`
          );
      for (const c of controls.controls)
        warnings.push(
          `${c.kind} ${c.target} is suspended${c.reason ? " (" + c.reason + ")" : ""}${c.until ? " until " + when(c.until) : ""}.`
        );
      for (const s of queues.sites || [])
        if (s.waiting_for === "down" || s.waiting_for === "suspended")
          warnings.push(`Site ${s.site} (source ${s.source}) is ${s.waiting_for}.`);
      const limit = (state.session && state.session.warn_deferred) || 100;
      for (const d of queues.domains)
        if (d.deferred >= limit) warnings.push(`Domain ${d.domain} has ${num(d.deferred)} deferred recipients.`);
      if (dnsFailed) warnings.push(`${dnsFailed} DNS route lookups failed for now in the last 5 minutes.`);
      fill(
        "warnings",
        ...(warnings.length ? warnings.map((w) => h("li", {}, w)) : [h("li", { class: "none" }, "No warnings.")])
      );
      const series = ["delivered", "deferred", "bounced", "complained", "accepted"].map((k) => ({
        name: k,
        className: k,
        values: minutes.map((m) => m[k]),
      }));
      fill(
        "chart",
        window.PetrelChart.lineChart(
          minutes.map((m) => new Date(m.start).getTime()),
          series,
          { label: `Per minute over the last 3 hours: ${num(activity.totals.delivered)} delivered, ${num(activity.totals.deferred)} deferred, ${num(activity.totals.bounced)} bounced, ${num(activity.totals.complained)} complaints` }
        )
      );
      fill(
        "chart-table",
        table(
          "The last 15 minutes",
          [{ label: "Minute" }, { label: "Accepted", num: 1 }, { label: "Delivered", num: 1 }, { label: "Deferred", num: 1 }, { label: "Bounced", num: 1 }, { label: "Complaints", num: 1 }],
          minutes.slice(-15).reverse().map((m) => [when(m.start), num(m.accepted), num(m.delivered), num(m.deferred), num(m.bounced), num(m.complained)])
        )
      );
    });
  }

  // ---- domains and sites ------------------------------------------------------------------------

  function domainsView(params) {
    page(
      "Domains and MX sites",
      scopeSelector("#/domains", params),
      h("h2", {}, "Destination domains"),
      h("div", { id: "domains" }, "Loading…"),
      h("h2", {}, "MX sites"),
      h("div", { id: "sites" }),
      h("h2", {}, "Suspensions in force"),
      h("div", { id: "controls" })
    );
    const refresh = () => every(5, load);
    const load = async () => {
      const [queues, controls] = await Promise.all([api("GET", "/admin/queues" + scopeQuery(params)), api("GET", "/admin/controls")]);
      const suspended = new Set(controls.controls.map((c) => c.kind + ":" + c.target));
      fill(
        "domains",
        table(
          "Destination domains",
          [
            { label: "Domain" },
            { label: "Queued", num: 1 },
            { label: "Deferred", num: 1 },
            { label: "Due", num: 1 },
            { label: "In flight", num: 1 },
            { label: "Oldest" },
            { label: "Next attempt" },
            { label: "Waiting for" },
            { label: "Actions" },
          ],
          queues.domains.map((d) => [
            h("a", { href: "#/domains/" + encodeURIComponent(d.domain) }, d.domain),
            num(d.queued),
            num(d.deferred),
            num(d.due),
            num(d.in_flight),
            ago(d.oldest),
            d.next_attempt ? ago(d.next_attempt) : "—",
            d.waiting_for || "—",
            actionButtons(
              "domains",
              d.domain,
              suspended.has("domain:" + d.domain) ? ["resume", "flush", "bounce"] : ["suspend", "flush", "bounce"],
              refresh
            ),
          ]),
          "No recipients are waiting."
        )
      );
      fill(
        "sites",
        table(
          "MX sites",
          [
            { label: "Site" },
            { label: "Source" },
            { label: "Sessions", num: 1 },
            { label: "Connection limit" },
            { label: "Ready", num: 1 },
            { label: "Rate" },
            { label: "Waiting for" },
            { label: "Actions" },
          ],
          (queues.sites || []).map((s) => [
            s.site,
            s.source,
            num(s.sessions),
            `${s.connection_limit} of ${s.max_connection_limit}`,
            num(s.ready),
            s.message_rate ? s.message_rate + "/s" : "—",
            (s.waiting_for || "—") + (s.blocked_until ? " until " + when(s.blocked_until) : ""),
            actionButtons("sites", s.site, suspended.has("site:" + s.site) ? ["resume"] : ["suspend"], refresh),
          ]),
          "No site has sessions or work."
        )
      );
      fill(
        "controls",
        table(
          "Suspensions",
          [{ label: "Kind" }, { label: "Target" }, { label: "Reason" }, { label: "Since" }, { label: "Until" }, { label: "Actions" }],
          controls.controls.map((c) => [
            c.kind,
            c.target,
            c.reason || "—",
            when(c.since),
            c.until ? when(c.until) : "resumed by hand",
            // (Response rules' suspensions of a source or tenant at one site end by themselves.)
            ["domain", "site", "tenant", "source"].includes(c.kind) ? actionButtons(c.kind + "s", c.target, ["resume"], refresh) : "—",
          ]),
          "Nothing is suspended."
        )
      );
    };
    refresh();
  }

  function domainView(name) {
    const base = "/admin/queues/" + encodeURIComponent(name);
    page(
      "Domain " + name,
      h("p", {}, h("a", { href: "#/domains" }, "← All domains")),
      h("div", { id: "domain-actions" }),
      h("div", { id: "domain-cards", class: "cards" }, "Loading…"),
      h("h2", {}, "Lanes (source and MX site)"),
      h("div", { id: "lanes" }),
      h("h2", {}, "Last replies"),
      h("div", { id: "replies" }),
      h("h2", {}, "Waiting per tenant"),
      h("div", { id: "domain-tenants" })
    );
    const refresh = () => every(5, load);
    const load = async () => {
      const controls = await api("GET", "/admin/controls");
      const suspended = controls.controls.some((c) => c.kind === "domain" && c.target === name);
      fill("domain-actions", actionButtons("domains", name, suspended ? ["resume", "flush", "bounce"] : ["suspend", "flush", "bounce"], refresh));
      let d;
      try {
        d = await api("GET", base);
      } catch (e) {
        if (e instanceof ApiError && e.status === 404) {
          fill("domain-cards", h("p", { class: "empty" }, "No recipients wait for this domain."));
          for (const id of ["lanes", "replies", "domain-tenants"]) fill(id);
          return;
        }
        throw e;
      }
      fill(
        "domain-cards",
        card("Queued", num(d.queued)),
        card("Deferred", num(d.deferred), d.deferred ? "bad" : null),
        card("Due", num(d.due)),
        card("In flight", num(d.in_flight)),
        card("Oldest waiting", ago(d.oldest)),
        card("Waiting for", suspended ? "suspended" : d.waiting_for || "nothing")
      );
      fill(
        "lanes",
        table(
          "Lanes",
          [{ label: "Source" }, { label: "Site" }, { label: "Due", num: 1 }, { label: "In flight", num: 1 }, { label: "Blocked by" }, { label: "Until" }],
          d.lanes.map((l) => [l.source, l.site || "—", num(l.due), num(l.in_flight), l.blocked || "—", l.blocked_until ? when(l.blocked_until) : "—"]),
          "No lanes."
        )
      );
      fill(
        "replies",
        table(
          "Last replies",
          [{ label: "Outcome" }, { label: "Reply" }, { label: "Times", num: 1 }, { label: "Last" }],
          (d.last_replies || []).map((r) => [badge(r.outcome), r.reply || "—", num(r.count), when(r.at)]),
          "No attempts since this domain became active."
        )
      );
      const names = new Map((await api("GET", "/admin/tenants")).tenants.map((t) => [t.id, t.name]));
      fill(
        "domain-tenants",
        table(
          "Tenants",
          [{ label: "Tenant" }, { label: "Waiting", num: 1 }],
          d.tenants.map((t) => [h("a", { href: "#/tenants/" + t.tenant }, names.get(t.tenant) || t.tenant), num(t.waiting)]),
          "—"
        )
      );
    };
    refresh();
  }

  // ---- egress -----------------------------------------------------------------------------------

  function egressView(params) {
    page("Egress", scopeSelector("#/egress", params), h("div", { id: "sources" }, "Loading…"));
    const refresh = () => every(5, load);
    const load = async () => {
      const egress = await api("GET", "/admin/egress" + scopeQuery(params));
      const blocks = [];
      for (const s of egress.sources) {
        const w = s.warmup;
        blocks.push(
          h(
            "section",
            { class: "panel", "aria-label": "Source " + s.name },
            h("h3", {}, "Source " + s.name + (s.node ? " on " + s.node : "")),
            h(
              "div",
              { class: "cards" },
              card("Address", s.address || "system default"),
              card("Message rate", s.message_rate ? s.message_rate + "/s" : "no limit"),
              card("Warm-up day", w ? String(w.day) : "—"),
              card("Used today", w ? `${num(w.used_today)} of ${w.per_day ? num(w.per_day) : "∞"}` : "—"),
              card("Used this hour", w ? `${num(w.used_this_hour)} of ${w.per_hour ? num(w.per_hour) : "∞"}` : "—")
            ),
            h("div", { class: "toolbar" }, actionButtons("sources", s.name, ["suspend", "resume"], refresh)),
            h("h4", {}, "Sites (adaptive limits)"),
            table(
              "Sites of " + s.name,
              [{ label: "Site" }, { label: "Sessions", num: 1 }, { label: "Connection limit (AIMD)" }, { label: "Credit out", num: 1 }, { label: "Rate" }, { label: "Waiting for" }],
              s.sites.map((x) => [x.site, num(x.sessions), `${x.connection_limit} of ${x.max_connection_limit}`, num(x.credit_out), x.message_rate ? x.message_rate + "/s" : "—", x.waiting_for || "—"]),
              "No sites yet."
            ),
            s.site_warmups.length
              ? table(
                  "Site warm-ups of " + s.name,
                  [{ label: "Sites" }, { label: "Day", num: 1 }, { label: "Used today" }, { label: "Used this hour" }],
                  s.site_warmups.map((x) => [x.site, num(x.day), `${num(x.used_today)} of ${x.per_day ? num(x.per_day) : "∞"}`, `${num(x.used_this_hour)} of ${x.per_hour ? num(x.per_hour) : "∞"}`])
                )
              : null
          )
        );
      }
      blocks.unshift(
        h("h2", {}, "Pools"),
        table(
          "Pools",
          [{ label: "Pool" }, { label: "Sources (weight)" }],
          (egress.pools || []).map((p) => [p.name + (p.default ? " (default)" : ""), p.sources.map((m) => `${m.source} (${m.weight})`).join(", ")]),
          "No pools."
        ),
        h("h2", {}, "Sources")
      );
      fill("sources", ...blocks);
    };
    refresh();
  }

  // ---- tenants ------------------------------------------------------------------------------------

  function tenantsView() {
    page(
      "Tenants",
      h(
        "form",
        { class: "inline", id: "new-tenant", onsubmit: createTenant },
        h("div", { class: "field" }, h("label", { for: "tenant-name" }, "New tenant's name"), h("input", { id: "tenant-name", required: true })),
        h("div", { class: "field" }, h("label", { for: "tenant-rate" }, "Rate (optional)"), h("input", { id: "tenant-rate", placeholder: "e.g. 100/s" })),
        h("button", { type: "submit" }, "Create tenant")
      ),
      h("div", { id: "created-key" }),
      h("div", { id: "tenants" }, "Loading…")
    );
    every(15, async () => {
      const data = await api("GET", "/admin/tenants");
      fill(
        "tenants",
        table(
          "Tenants",
          [{ label: "Name" }, { label: "Rate" }, { label: "Burst", num: 1 }, { label: "Pool" }, { label: "State" }, { label: "Reputation" }, { label: "Keys", num: 1 }, { label: "Created" }],
          data.tenants.map((t) => [
            h("a", { href: "#/tenants/" + t.id }, t.name),
            t.rate || "default",
            t.burst === null ? "default" : num(t.burst),
            t.pool || "default",
            [t.suspended ? badge("suspended") : badge("active"), t.sandbox ? [" ", badge("sandbox", "queued")] : null],
            reputationBadge(t.reputation),
            num(t.keys.length),
            when(t.created_at),
          ]),
          "No tenants."
        )
      );
    });
  }

  // The reputation guard's state with the rates (parts per million shown as percentages).
  function reputationBadge(r) {
    if (!r) return "—";
    const pct = (ppm) => (ppm / 10000).toFixed(2) + "%";
    const kind = r.state === "paused" ? "failed" : r.state === "warning" ? "deferred" : "ok";
    return h("span", {}, badge(r.state, kind), ` complaints ${pct(r.complaint_rate_ppm)}, hard bounces ${pct(r.hard_bounce_rate_ppm)}`);
  }

  async function createTenant(ev) {
    ev.preventDefault();
    const body = { name: document.getElementById("tenant-name").value.trim() };
    const rate = document.getElementById("tenant-rate").value.trim();
    if (rate) body.rate = rate;
    try {
      const r = await api("POST", "/admin/tenants", body);
      showSecret("created-key", `Tenant ${r.tenant.name} created. Its API key, shown only now:`, r.api_key);
      tenantsView();
      showSecret("created-key", `Tenant ${r.tenant.name} created. Its API key, shown only now:`, r.api_key);
    } catch (e) {
      alertError(e);
    }
  }

  function showSecret(id, text, secret) {
    fill(
      id,
      h(
        "div",
        { class: "panel", role: "status" },
        h("p", {}, text),
        h("p", { class: "secret", id: id + "-value" }, secret),
        h("p", { class: "hint" }, "Copy it now: Petrel keeps only its hash and cannot show it again.")
      )
    );
  }

  function tenantView(id) {
    const base = "/admin/tenants/" + encodeURIComponent(id);
    page(
      "Tenant",
      h("p", {}, h("a", { href: "#/tenants" }, "← All tenants")),
      h("div", { id: "tenant-head" }, "Loading…"),
      h("h2", {}, "Usage, last 24 hours"),
      h("div", { id: "tenant-usage", class: "cards" }),
      h("h2", {}, "API keys"),
      h("div", { class: "toolbar" }, h("button", { type: "button", id: "create-key", onclick: () => createKey(id) }, "Create a key")),
      h("div", { id: "new-key" }),
      h("div", { id: "keys" }),
      h("h2", {}, "Suppressions"),
      h(
        "form",
        { class: "inline", onsubmit: (e) => searchSuppressions(e, id) },
        h("div", { class: "field" }, h("label", { for: "sup-email" }, "Address"), h("input", { id: "sup-email", type: "email", placeholder: "someone@example.com" })),
        h("button", { type: "submit", class: "secondary" }, "Search"),
        h("button", { type: "button", onclick: () => addSuppression(id) }, "Suppress this address")
      ),
      h("div", { id: "suppressions" }),
      h("h2", {}, "Webhooks"),
      h("div", { id: "webhooks" }),
      h("h2", {}, "Sender domains"),
      h("div", { id: "sender-domains" })
    );
    every(0, async () => {
      const [tenants, stats, webhooks, domains, controls] = await Promise.all([
        api("GET", "/admin/tenants"),
        api("GET", base + "/stats"),
        api("GET", base + "/webhooks"),
        api("GET", base + "/domains"),
        api("GET", "/admin/controls"),
      ]);
      const t = tenants.tenants.find((x) => x.id === id || x.name === id);
      if (!t) return fill("tenant-head", h("p", {}, "No such tenant."));
      // Sending is paused by a control of kind tenant (an operator's or the reputation guard's).
      const paused = controls.controls.find((c) => c.kind === "tenant" && c.target === t.id);
      document.querySelector("#view h1").textContent = "Tenant " + t.name;
      document.title = "Tenant " + t.name + " — Petrel console";
      fill(
        "tenant-head",
        h(
          "div",
          { class: "cards" },
          card(
            "State",
            t.suspended
              ? "suspended: submissions refused"
              : paused
                ? "sending paused" + (paused.reason ? ": " + paused.reason : "")
                : t.sandbox
                  ? "active (sandbox)"
                  : "active",
            t.suspended || paused ? "bad" : "good"
          ),
          card(
            "Reputation",
            t.reputation
              ? `${t.reputation.state}: ${(t.reputation.complaint_rate_ppm / 10000).toFixed(2)}% complaints, ${(t.reputation.hard_bounce_rate_ppm / 10000).toFixed(2)}% hard bounces` +
                  (t.reputation.sender_domains || [])
                    .filter((d) => d.state !== "ok")
                    .map((d) => `; ${d.domain} ${d.state}: ${(d.complaint_rate_ppm / 10000).toFixed(2)}% complaints, ${(d.hard_bounce_rate_ppm / 10000).toFixed(2)}% hard bounces`)
                    .join("")
              : "—",
            t.reputation && t.reputation.state !== "ok" ? "bad" : null
          ),
          card("Rate", t.rate || "default"),
          card("Burst", t.burst === null ? "default" : num(t.burst)),
          card("Pool", t.pool || "default"),
          card(
            "Tracking",
            t.tracking
              ? [t.tracking.opens ? "opens" : null, t.tracking.clicks ? "clicks" : null].filter(Boolean).join(" and ") ||
                  "off by default"
              : "—",
            null
          ),
          card(
            "Tracking domain",
            t.tracking && t.tracking.domain ? t.tracking.domain + (t.tracking.verified ? " (verified)" : " (not verified)") : "none",
            t.tracking && t.tracking.domain && !t.tracking.verified ? "bad" : null
          ),
          card("Id", t.id, "small")
        ),
        h(
          "form",
          { class: "inline", onsubmit: (e) => updateTenant(e, id) },
          h("div", { class: "field" }, h("label", { for: "edit-rate" }, "Rate"), h("input", { id: "edit-rate", value: t.rate || "", placeholder: "e.g. 50/s (empty: default)" })),
          h("button", { type: "submit", class: "secondary" }, "Save rate"),
          h(
            "button",
            { type: "button", class: paused ? "secondary" : "danger", onclick: () => shapingAction("tenants", t.id, paused ? "resume" : "suspend", () => tenantView(id)) },
            paused ? "Resume sending" : "Pause sending"
          )
        )
      );
      const tot = stats.totals;
      fill(
        "tenant-usage",
        card("Recipients accepted", num(tot.recipients)),
        card("Delivered", num(tot.delivered)),
        card("Deferred", num(tot.deferred)),
        card("Bounced", num(tot.bounced)),
        card("Complaints", num(tot.complained)),
        card("Opened", num(tot.opened) + (tot.opened_machine ? ` (+${num(tot.opened_machine)} machines)` : "")),
        card("Clicked", num(tot.clicked) + (tot.clicked_machine ? ` (+${num(tot.clicked_machine)} machines)` : "")),
        card("Delivery rate", tot.delivery_rate === null ? "—" : (100 * tot.delivery_rate).toFixed(1) + "%")
      );
      renderKeys(t);
      fill(
        "webhooks",
        table(
          "Webhooks",
          [{ label: "URL" }, { label: "State" }, { label: "Delivered", num: 1 }, { label: "Backlog", num: 1 }, { label: "Last success" }, { label: "Last error" }, { label: "Actions" }],
          webhooks.webhooks.map((w) => [
            w.url,
            badge(w.state || "active"),
            num(w.delivered),
            num(w.backlog),
            when(w.last_success_at),
            w.last_error ? `${w.last_error} (${when(w.last_error_at)})` : "—",
            h(
              "div",
              { class: "actions" },
              w.state === "paused" ? h("button", { type: "button", class: "secondary", onclick: () => webhookAction(id, w.id, "resume") }, "Resume") : null,
              h("button", { type: "button", class: "secondary", onclick: () => webhookAction(id, w.id, "test") }, "Send a test")
            ),
          ]),
          "No webhooks."
        )
      );
      fill(
        "sender-domains",
        ...(domains.domains.length
          ? domains.domains.map((d) =>
              h(
                "section",
                { class: "panel", "aria-label": "Sender domain " + d.domain },
                h("h3", {}, d.domain, " ", d.verified ? badge("verified", "ok") : badge("not verified", "failed")),
                h("p", { class: "muted" }, "Checked " + when(d.checked_at)),
                table(
                  "DNS records to publish for " + d.domain,
                  [{ label: "Type" }, { label: "Name" }, { label: "Value" }, { label: "Purpose" }],
                  d.records.map((r) => [r.type, r.name, h("code", {}, r.zone_file || r.value), r.purpose])
                ),
                d.notes.map((n) => h("p", { class: "hint" }, n))
              )
            )
          : [h("p", { class: "empty" }, "No sender domains.")])
      );
      await loadSuppressions(id, "");
    });
  }

  function renderKeys(t) {
    fill(
      "keys",
      table(
        "API keys",
        [{ label: "Key" }, { label: "Id" }, { label: "Created" }, { label: "Actions" }],
        t.keys.map((k) => [
          h("code", {}, k.prefix + "…"),
          k.id,
          when(k.created_at),
          h("button", { type: "button", class: "danger", "aria-label": "Revoke key " + k.prefix, onclick: () => revokeKey(t, k) }, "Revoke"),
        ]),
        "No active keys."
      )
    );
  }

  async function createKey(id) {
    const ok = await confirmAction("Create an API key?", "A new key for this tenant. It is shown once; Petrel keeps only its hash.", [], "Create");
    if (!ok) return;
    try {
      const r = await api("POST", `/admin/tenants/${encodeURIComponent(id)}/keys`);
      const tenants = await api("GET", "/admin/tenants");
      const t = tenants.tenants.find((x) => x.id === id || x.name === id);
      if (t) renderKeys(t);
      showSecret("new-key", "The new key, shown only now:", r.api_key);
      announce("Key created");
    } catch (e) {
      alertError(e);
    }
  }

  async function revokeKey(t, k) {
    const ok = await confirmAction(`Revoke key ${k.prefix}…?`, `Requests with this key of ${t.name} are refused from now on.`, [], "Revoke");
    if (!ok) return;
    try {
      await api("DELETE", `/admin/tenants/${t.id}/keys/${k.id}`);
      const tenants = await api("GET", "/admin/tenants");
      const now = tenants.tenants.find((x) => x.id === t.id);
      if (now) renderKeys(now);
      announce("Key revoked");
    } catch (e) {
      alertError(e);
    }
  }

  async function updateTenant(ev, id) {
    ev.preventDefault();
    const rate = document.getElementById("edit-rate").value.trim();
    try {
      await api("PATCH", "/admin/tenants/" + encodeURIComponent(id), { rate: rate || null });
      announce("Rate saved");
      tenantView(id);
    } catch (e) {
      alertError(e);
    }
  }

  async function webhookAction(tenant, webhook, action) {
    try {
      const r = await api("POST", `/admin/tenants/${encodeURIComponent(tenant)}/webhooks/${webhook}/${action}`);
      if (action === "test")
        announce(r.delivered ? "The test was delivered" : "The test failed: " + (r.error || "HTTP " + r.status));
      else announce("Webhook resumed");
      if (action !== "test") tenantView(tenant);
      else fill("view-error", r.delivered ? "" : "Test failed: " + (r.error || "HTTP " + r.status));
    } catch (e) {
      alertError(e);
    }
  }

  async function loadSuppressions(id, email) {
    const base = `/admin/tenants/${encodeURIComponent(id)}/suppressions`;
    let rows = [];
    if (email) {
      try {
        rows = [await api("GET", base + "/" + encodeURIComponent(email))];
      } catch (e) {
        if (!(e instanceof ApiError && e.status === 404)) throw e;
      }
    } else {
      rows = (await api("GET", base + "?limit=50")).suppressions;
    }
    fill(
      "suppressions",
      table(
        "Suppressions",
        [{ label: "Address" }, { label: "Reason" }, { label: "Since" }, { label: "Actions" }],
        rows.map((s) => [
          s.email,
          s.reason,
          when(s.created_at),
          h("button", { type: "button", class: "secondary", "aria-label": "Remove " + s.email, onclick: () => removeSuppression(id, s.email) }, "Remove"),
        ]),
        email ? `${email} is not suppressed.` : "No suppressions."
      )
    );
  }

  async function searchSuppressions(ev, id) {
    ev.preventDefault();
    try {
      await loadSuppressions(id, document.getElementById("sup-email").value.trim());
    } catch (e) {
      alertError(e);
    }
  }

  async function addSuppression(id) {
    const email = document.getElementById("sup-email").value.trim();
    if (!email) return fill("view-error", "Enter the address to suppress.");
    const ok = await confirmAction(`Suppress ${email}?`, "Mail from this tenant to the address is not sent until the suppression is removed.", [], "Suppress");
    if (!ok) return;
    try {
      await api("POST", `/admin/tenants/${encodeURIComponent(id)}/suppressions`, { suppressions: [{ email, reason: "manual" }] });
      announce(email + " suppressed");
      await loadSuppressions(id, email);
    } catch (e) {
      alertError(e);
    }
  }

  async function removeSuppression(id, email) {
    const ok = await confirmAction(`Remove the suppression of ${email}?`, "Mail to the address is sent again.", [], "Remove");
    if (!ok) return;
    try {
      await api("DELETE", `/admin/tenants/${encodeURIComponent(id)}/suppressions/${encodeURIComponent(email)}`);
      announce("Suppression removed");
      await loadSuppressions(id, "");
    } catch (e) {
      alertError(e);
    }
  }

  // ---- messages -----------------------------------------------------------------------------------

  function messagesView(params) {
    page(
      "Messages",
      h(
        "form",
        {
          class: "inline",
          id: "message-search",
          onsubmit: (e) => {
            e.preventDefault();
            const id = document.getElementById("q-id").value.trim();
            if (id) return (location.hash = "#/messages/" + encodeURIComponent(id));
            const q = new URLSearchParams();
            for (const k of ["recipient", "campaign"]) {
              const v = document.getElementById("q-" + k).value.trim();
              if (v) q.set(k, v);
            }
            location.hash = "#/messages?" + q.toString();
          },
        },
        h("div", { class: "field" }, h("label", { for: "q-id" }, "Message id"), h("input", { id: "q-id" })),
        h("div", { class: "field" }, h("label", { for: "q-recipient" }, "Recipient"), h("input", { id: "q-recipient", type: "email", value: params.get("recipient") || null })),
        h("div", { class: "field" }, h("label", { for: "q-campaign" }, "Campaign"), h("input", { id: "q-campaign", value: params.get("campaign") || null })),
        h("button", { type: "submit" }, "Find")
      ),
      h("div", { id: "messages" }, "Loading…")
    );
    every(0, async () => {
      const q = new URLSearchParams();
      for (const k of ["recipient", "campaign"]) if (params.get(k)) q.set(k, params.get(k));
      q.set("limit", "50");
      const data = await api("GET", "/admin/messages?" + q.toString());
      fill(
        "messages",
        table(
          "Messages",
          [{ label: "Created" }, { label: "Tenant" }, { label: "From" }, { label: "Subject" }, { label: "Campaign" }, { label: "Recipients" }],
          data.messages.map((m) => [
            h("a", { href: "#/messages/" + m.id }, when(m.created_at)),
            m.tenant_name,
            m.from,
            m.subject,
            m.campaign || "—",
            m.recipients ? m.recipients.map((r) => h("div", {}, r.email + " ", badge(r.status))) : "—",
          ]),
          "No messages match."
        )
      );
    });
  }

  function messageView(id) {
    page("Message", h("p", {}, h("a", { href: "#/messages" }, "← Find messages")), h("div", { id: "message" }, "Loading…"));
    every(0, async () => {
      let m;
      try {
        m = await api("GET", "/admin/messages/" + encodeURIComponent(id));
      } catch (e) {
        if (e instanceof ApiError && e.status === 404) return fill("message", h("p", { class: "empty" }, "No message has the id " + id + "."));
        throw e;
      }
      fill(
        "message",
        h(
          "div",
          { class: "cards" },
          card("Tenant", m.tenant_name),
          card("From", m.from),
          card("Subject", m.subject || "—"),
          card("Created", when(m.created_at)),
          card("Size", num(m.size) + " bytes")
        ),
        h("p", { class: "muted" }, "Message-ID ", h("code", {}, m.message_id || "—"), " · id ", h("code", {}, m.id)),
        h("h2", {}, "Recipients"),
        ...m.recipients.map((r) =>
          h(
            "section",
            { class: "panel recipient", "aria-label": "Recipient " + r.email },
            h("h3", {}, r.email, " ", badge(r.status)),
            h("p", { class: "muted" }, `${r.attempts} attempt(s) · last reply: ${r.last_reply || "—"}${r.next_attempt_at ? " · next attempt " + when(r.next_attempt_at) : ""}`),
            h(
              "ol",
              { class: "history" },
              r.history.map((e) =>
                h(
                  "li",
                  {},
                  h("time", { datetime: e.at }, when(e.at)),
                  " ",
                  badge(e.type),
                  " ",
                  detailsOf(e.data)
                )
              )
            )
          )
        )
      );
    });
  }

  // ---- events ---------------------------------------------------------------------------------------

  function eventsView(params) {
    let paused = false;
    page(
      "Events",
      h(
        "div",
        { class: "toolbar" },
        h("label", { for: "event-type" }, "Types"),
        h("input", { id: "event-type", placeholder: "e.g. bounced,deferred", value: params.get("type") || null }),
        h("button", { type: "button", class: "secondary", onclick: () => (location.hash = "#/events?type=" + encodeURIComponent(document.getElementById("event-type").value.trim())) }, "Filter"),
        h(
          "button",
          {
            type: "button",
            id: "pause-events",
            "aria-pressed": "false",
            onclick: (e) => {
              paused = !paused;
              e.target.setAttribute("aria-pressed", String(paused));
              e.target.textContent = paused ? "Resume the tail" : "Pause the tail";
            },
          },
          "Pause the tail"
        )
      ),
      h("p", { class: "muted" }, "The newest events of every tenant, from the last 10 minutes on; the list follows new ones every 2 seconds."),
      h(
        "div",
        { class: "table-wrap", tabindex: "0", role: "region", "aria-label": "Events" },
        h(
          "table",
          {},
          h("caption", { class: "visually-hidden" }, "Events"),
          h("thead", {}, h("tr", {}, ["Time", "Type", "Tenant", "Recipient", "Details"].map((c) => h("th", { scope: "col" }, c)))),
          h("tbody", { id: "event-rows" })
        )
      )
    );
    let cursor = null;
    const since = new Date(Date.now() - 10 * 60 * 1000).toISOString();
    const type = params.get("type") || "";
    every(2, async (generation) => {
      if (paused) return;
      // Every page up to the newest (at most 10 per tick), newest on top, 500 rows kept.
      for (let round = 0; round < 10; round++) {
        const q = new URLSearchParams({ limit: "200" });
        if (cursor === null) q.set("since", since);
        else q.set("after", cursor);
        if (type) q.set("type", type);
        const data = await api("GET", "/admin/events?" + q.toString());
        if (generation !== state.generation) return;
        cursor = data.next;
        const body = document.getElementById("event-rows");
        if (!body) return;
        for (const e of data.events) {
          const details = detailsOf(e.data);
          body.insertBefore(
            h(
              "tr",
              {},
              h("td", {}, when(e.at)),
              h("td", {}, badge(e.type)),
              h("td", {}, e.tenant_name || e.tenant),
              h("td", {}, e.message ? h("a", { href: "#/messages/" + e.message }, e.email || "message") : "—"),
              h("td", {}, details)
            ),
            body.firstChild
          );
        }
        while (body.children.length > 500) body.removeChild(body.lastChild);
        if (!data.more) break;
      }
    });
  }

  // ---- cluster ---------------------------------------------------------------------------------------

  function clusterView() {
    page("Cluster", h("div", { id: "cluster" }, "Loading…"));
    every(5, async () => {
      const c = await api("GET", "/admin/cluster");
      if (!c.enabled) return fill("cluster", h("p", {}, "This node runs alone (no [cluster] section)."));
      const members = c.members || [];
      const partitions = c.partitions || [];
      fill(
        "cluster",
        h(
          "div",
          { class: "cards" },
          card("This node", c.node || "—"),
          card("Members", num(members.length)),
          card("Partitions", num(c.partition_count)),
          card("State", c.draining ? "draining" : c.error ? "error: " + c.error : "member", c.error ? "bad" : null)
        ),
        h("p", { class: "muted" }, "Queues and egress of every member: choose \u201cEvery member\u201d on the Domains and Egress pages."),
        h("h2", {}, "Members"),
        table(
          "Members",
          [{ label: "Node" }, { label: "State" }, { label: "Address (node links)" }, { label: "Partitions held", num: 1 }, { label: "Lease" }],
          members.map((m) => [
            m.name + (m.name === c.node ? " (this node)" : ""),
            badge(m.live ? "live" : "down", m.live ? "ok" : "failed"),
            m.advertise || "—",
            num(m.partitions),
            m.lease_left_ms >= 0 ? "valid for " + span(Math.round(m.lease_left_ms / 1000)) : "expired " + span(Math.round(-m.lease_left_ms / 1000)) + " ago",
          ]),
          "No members."
        ),
        h("h2", {}, "Partitions"),
        table(
          "Partitions",
          [{ label: "Partition", num: 1 }, { label: "Owner" }, { label: "Epoch", num: 1 }, { label: "Lease" }],
          partitions.map((p) => [num(p.id), p.owner || "—", num(p.epoch), p.lease_valid ? badge("valid", "ok") : badge("expired", "failed")]),
          "No partitions."
        )
      );
    });
  }

  // ---- start -----------------------------------------------------------------------------------------

  document.addEventListener("DOMContentLoaded", () => {
    document.getElementById("login-form").addEventListener("submit", login);
    document.getElementById("logout").addEventListener("click", logout);
    window.addEventListener("hashchange", () => {
      route();
      document.getElementById("main").focus();
    });
    startSession().catch(() => showLogin(""));
  });
})();
