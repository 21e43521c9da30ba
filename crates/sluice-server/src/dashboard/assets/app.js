// sluice's web dashboard: polls the JSON API (see /api/openapi.json) and draws the pool.
// No dependencies. Every value from the server is put in the page as text (never as HTML):
// model names and errors come from clients.
"use strict";

const POLL_MS = 2000;
const SERIES_MS = 5000;
const COLORS = ["#5aa2e0", "#3fb97a", "#e0a43a", "#c77ae0", "#e05a5a", "#4fd1c5", "#d4d45a", "#e07ab8"];

const state = {
  key: sessionStorage.getItem("sluice-admin-key") || "",
  range: "hour",
  overview: null,
  clockOffset: 0, // server time minus browser time
  confirming: null, // {account, action}
  colors: new Map(),
  bucketMs: 60000,
};

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name === "class") node.className = value;
    else if (name === "text") node.textContent = value;
    else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else if (name === "dataset") Object.assign(node.dataset, value);
    else node.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function svg(tag, attrs) {
  const node = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [name, value] of Object.entries(attrs || {})) node.setAttribute(name, String(value));
  return node;
}

async function api(path, options = {}) {
  const headers = Object.assign({}, options.headers || {});
  if (state.key) headers["x-api-key"] = state.key;
  if (options.body !== undefined) headers["content-type"] = "application/json";
  const response = await fetch(path, Object.assign({}, options, { headers, cache: "no-store" }));
  const text = await response.text();
  let body = null;
  try { body = text ? JSON.parse(text) : null; } catch (_) { body = null; }
  if (response.status === 401) {
    document.getElementById("key-form").hidden = false;
  }
  if (!response.ok) {
    const message = body && body.error && body.error.message ? body.error.message : `HTTP ${response.status}`;
    throw new Error(message);
  }
  return body;
}

function notice(message, error) {
  const box = document.getElementById("notice");
  box.textContent = message;
  box.className = error ? "notice error" : "notice";
  box.hidden = !message;
  clearTimeout(notice.timer);
  if (message) notice.timer = setTimeout(() => { box.hidden = true; }, 6000);
}

// ---- formatting -------------------------------------------------------------

function number(n) {
  if (n === null || n === undefined) return "–";
  if (n >= 1e9) return (n / 1e9).toFixed(1) + "G";
  if (n >= 1e6) return (n / 1e6).toFixed(1) + "M";
  if (n >= 1e4) return (n / 1e3).toFixed(1) + "k";
  return String(Math.round(n));
}

function duration(ms) {
  if (ms <= 0) return "now";
  const s = Math.round(ms / 1000);
  const d = Math.floor(s / 86400), h = Math.floor((s % 86400) / 3600), m = Math.floor((s % 3600) / 60);
  if (d > 0) return h ? `${d}d ${h}h` : `${d}d`;
  if (h > 0) return m ? `${h}h ${String(m).padStart(2, "0")}m` : `${h}h`;
  if (m > 0) return s % 60 ? `${m}m ${String(s % 60).padStart(2, "0")}s` : `${m}m`;
  return `${s}s`;
}

function serverNow() { return Date.now() + state.clockOffset; }

function countdown(at) {
  return el("span", { class: "countdown", dataset: { at: String(at) }, text: duration(at - serverNow()) });
}

function time(ms) {
  const d = new Date(ms);
  return d.toLocaleTimeString([], { hour12: false });
}

function colorOf(name) {
  if (!state.colors.has(name)) state.colors.set(name, COLORS[state.colors.size % COLORS.length]);
  return state.colors.get(name);
}

// ---- the live view ----------------------------------------------------------

function usageBar(window) {
  if (!window) return el("span", { class: "muted", text: "–" });
  const used = Math.max(0, Math.min(1, window.utilization));
  const fill = el("span", { class: "fill" + (used >= 0.9 ? " bad" : used >= 0.7 ? " warn" : "") });
  fill.style.width = (used * 100).toFixed(1) + "%";
  return el("div", { class: "bar" },
    el("span", { class: "track" }, fill),
    el("span", { class: "pct", text: Math.round(window.utilization * 100) + "%" }),
    window.resets_at ? el("span", { class: "reset", title: "resets in" }, "↻ ", countdown(window.resets_at)) : null);
}

function actionCell(account) {
  const name = account.name;
  const confirming = state.confirming && state.confirming.account === name ? state.confirming : null;
  if (confirming) {
    const verb = confirming.action === "remove" ? "Remove" : "Disable";
    return el("div", { class: "confirm" },
      el("span", { text: `${verb} ${name}?` }),
      el("button", { type: "button", class: "danger", dataset: { confirm: "yes" }, onclick: () => runAction(name, confirming.action) }, "yes"),
      el("button", { type: "button", dataset: { confirm: "no" }, onclick: () => { state.confirming = null; render(); } }, "no"));
  }
  if (account.credential && account.credential.origin === "config") {
    return el("span", { class: "muted", title: "declared in the config file: change it there", text: "config file" });
  }
  const buttons = [];
  if (account.enabled) {
    buttons.push(el("button", { type: "button", dataset: { action: "disable" }, onclick: () => { state.confirming = { account: name, action: "disable" }; render(); } }, "disable"));
  } else {
    buttons.push(el("button", { type: "button", dataset: { action: "enable" }, onclick: () => runAction(name, "enable") }, "enable"));
  }
  if (account.in_flight === 0 && !account.leaving) {
    buttons.push(el("button", { type: "button", class: "danger", dataset: { action: "remove" }, onclick: () => { state.confirming = { account: name, action: "remove" }; render(); } }, "remove"));
  }
  return el("div", { class: "actions" }, buttons);
}

async function runAction(name, action) {
  state.confirming = null;
  try {
    const path = "/api/accounts/" + encodeURIComponent(name);
    let result;
    if (action === "remove") result = await api(path, { method: "DELETE", body: undefined, headers: { "content-type": "application/json" } });
    else result = await api(path, { method: "PATCH", body: JSON.stringify({ enabled: action === "enable" }) });
    notice(result.messages.join("; "));
  } catch (error) {
    notice(error.message, true);
  }
  await refresh();
}

function renderAccounts(overview) {
  const body = document.querySelector("#accounts tbody");
  const rows = overview.status.accounts.map((account) => {
    const stateCell = el("td", { dataset: { field: "state" } },
      el("span", { class: "state " + account.state, text: account.state.replace(/_/g, " ") }),
      account.until ? el("span", { class: "until" }, countdown(account.until)) : null);
    return el("tr", { class: account.enabled ? "" : "disabled", dataset: { account: account.name, state: account.state } },
      el("td", { dataset: { field: "name" } }, el("strong", { text: account.name }), account.leaving ? el("span", { class: "muted", text: " (leaving)" }) : null),
      el("td", { text: account.provider }),
      el("td", { text: account.credential.plan || account.kind.replace("_", " ") }),
      stateCell,
      el("td", {}, usageBar(account.quota.session)),
      el("td", {}, usageBar(account.quota.weekly)),
      el("td", { class: "num", dataset: { field: "in_flight" }, text: account.in_flight }),
      el("td", { class: "num", text: account.load_15m.requests }),
      el("td", { class: "num", text: account.load_1h.requests }),
      el("td", { class: "muted last-error", title: account.last_error || "", text: account.last_error ? `${account.last_error}${account.last_error_at ? " · " + duration(serverNow() - account.last_error_at) + " ago" : ""}` : "" }),
      el("td", {}, actionCell(account)));
  });
  body.replaceChildren(...rows);
  const pools = overview.status.pools.map((pool) => {
    const breaker = pool.scheduler.breaker ? " · upstream breaker open" : "";
    const preferred = pool.scheduler.preferred_account ? ` · preferred: ${pool.scheduler.preferred_account}` : "";
    return `${pool.provider}: ${pool.available}/${pool.accounts} available, ${pool.conversations} conversations${preferred}${breaker}`;
  });
  const log = overview.request_log;
  const logLine = log.enabled ? `request log: ${number(log.written)} rows written${log.dropped ? `, ${number(log.dropped)} dropped` : ""}` : "request log: off";
  document.getElementById("pool-line").textContent = [...pools, logLine].join("  ·  ");
}

function renderHeader(overview) {
  const status = overview.status;
  document.getElementById("version").textContent = "v" + status.version;
  document.getElementById("listen").textContent = status.listen;
  document.getElementById("uptime").textContent = duration(status.uptime_seconds * 1000);
  document.getElementById("rpm").textContent = number(overview.throughput.requests_per_minute);
  document.getElementById("tpm").textContent = number(overview.throughput.tokens_per_minute);
  document.getElementById("completed").textContent = number(status.totals.completed);
  document.getElementById("in-flight").textContent = number(status.totals.in_flight);
  document.getElementById("queued").textContent = number(status.pools.reduce((n, p) => n + p.scheduler.queued, 0));
  const select = document.getElementById("strategy");
  if (document.activeElement !== select) {
    if (select.options.length !== overview.strategies.length) {
      select.replaceChildren(...overview.strategies.map((s) => el("option", { value: s, text: s })));
    }
    select.value = status.strategy;
  }
}

function render() {
  if (!state.overview) return;
  renderHeader(state.overview);
  renderAccounts(state.overview);
}

async function refresh() {
  try {
    const overview = await api("/api/overview");
    state.clockOffset = overview.now_ms - Date.now();
    state.overview = overview;
    document.getElementById("key-form").hidden = true;
    render();
    const requests = await api("/api/requests?limit=40");
    renderRequests(requests.requests);
  } catch (error) {
    if (!document.getElementById("key-form").hidden) return;
    notice("cannot reach sluice: " + error.message, true);
  }
}

function renderRequests(requests) {
  const body = document.querySelector("#requests tbody");
  body.replaceChildren(...requests.map((r) => {
    const statusClass = r.error ? (r.status < 400 ? "status-warn" : "status-bad") : "status-ok";
    const attempts = r.failovers.length ? `${r.attempts} (${r.failovers.join(", ")})` : String(r.attempts);
    return el("tr", {},
      el("td", { text: time(r.at_ms) }),
      el("td", { text: r.provider }),
      el("td", { text: r.account || "–" }),
      el("td", { text: r.model || "–" }),
      el("td", { class: "num " + statusClass, text: r.status }),
      el("td", { class: "num", text: r.latency_ms.toFixed(0) + " ms" }),
      el("td", { class: "num", text: r.ttfb_ms === null ? "–" : r.ttfb_ms.toFixed(0) + " ms" }),
      el("td", { class: "num", text: `${number(r.input_tokens + r.cache_read_tokens + r.cache_creation_tokens)} / ${number(r.output_tokens)}` }),
      el("td", { text: attempts }),
      el("td", { class: statusClass, text: r.error || "" }));
  }));
}

// ---- charts and usage -------------------------------------------------------

function drawChart(node, series, field, buckets) {
  const width = 600, height = 160, pad = 4;
  node.replaceChildren();
  const totals = buckets.map((_, i) => series.reduce((n, s) => n + s[field][i], 0));
  const max = Math.max(1, ...totals);
  const slot = (width - pad * 2) / Math.max(1, buckets.length);
  buckets.forEach((at, i) => {
    let y = height - pad;
    for (const s of series) {
      const value = s[field][i];
      if (!value) continue;
      const h = (value / max) * (height - pad * 2);
      y -= h;
      const rect = svg("rect", { x: pad + i * slot + 1, y, width: Math.max(1, slot - 2), height: h, fill: colorOf(s.account) });
      const title = svg("title", {});
      title.textContent = `${s.account}: ${number(value)} ${field} at ${new Date(at).toLocaleString()}`;
      rect.append(title);
      node.append(rect);
    }
  });
  const label = svg("text", { x: pad + 4, y: 14, fill: "#7d8794", "font-size": 11 });
  label.textContent = "max " + number(max) + " per " + duration(state.bucketMs);
  node.append(label);
}

async function refreshSeries() {
  try {
    const series = await api("/api/series?range=" + state.range);
    state.bucketMs = series.bucket_ms;
    drawChart(document.getElementById("chart-requests"), series.accounts, "requests", series.buckets);
    drawChart(document.getElementById("chart-tokens"), series.accounts, "tokens", series.buckets);
    document.getElementById("legend").replaceChildren(...series.accounts.map((s) => {
      const swatch = el("span", { class: "swatch" });
      swatch.style.background = colorOf(s.account);
      return el("span", {}, swatch, s.account);
    }));
    document.getElementById("series-note").textContent = series.request_log
      ? `${series.buckets.length} buckets of ${duration(series.bucket_ms)} from the request log`
      : "no request log: sluice runs without a store";
    const usage = await api("/api/usage?since=24h&by=account");
    renderUsage(usage);
  } catch (error) {
    if (document.getElementById("key-form").hidden) notice(error.message, true);
  }
}

function renderUsage(usage) {
  const money = (v) => "$" + v.toFixed(v >= 100 ? 0 : 2);
  const row = (u, strong) => el("tr", {},
    el("td", {}, strong ? el("strong", { text: u.key }) : (u.key || "(no account)")),
    el("td", { class: "num", text: number(u.requests) }),
    el("td", { class: "num", text: number(u.failed) }),
    el("td", { class: "num", text: number(u.input_tokens) }),
    el("td", { class: "num", text: number(u.output_tokens) }),
    el("td", { class: "num", text: number(u.cache_creation_tokens) }),
    el("td", { class: "num", text: number(u.cache_read_tokens) }),
    el("td", { class: "num", text: money(u.cost_usd) + (u.unpriced_requests ? " +?" : "") }));
  const rows = usage.rows.map((u) => row(u, false));
  if (usage.rows.length > 1) rows.push(row(usage.total, true));
  document.querySelector("#usage tbody").replaceChildren(...rows);
}

// ---- controls ---------------------------------------------------------------

function tick() {
  for (const node of document.querySelectorAll(".countdown")) {
    node.textContent = duration(Number(node.dataset.at) - serverNow());
  }
}

function setup() {
  document.getElementById("strategy-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const strategy = document.getElementById("strategy").value;
    try {
      const result = await api("/api/scheduler", { method: "PUT", body: JSON.stringify({ strategy }) });
      notice(`routing strategy: ${result.strategy}`);
    } catch (error) {
      notice(error.message, true);
    }
    document.getElementById("strategy").blur();
    await refresh();
  });
  document.getElementById("key-form").addEventListener("submit", (event) => {
    event.preventDefault();
    state.key = document.getElementById("key").value.trim();
    sessionStorage.setItem("sluice-admin-key", state.key);
    refresh();
    refreshSeries();
  });
  for (const button of document.querySelectorAll("#ranges button")) {
    button.addEventListener("click", () => {
      state.range = button.dataset.range;
      for (const b of document.querySelectorAll("#ranges button")) b.classList.toggle("active", b === button);
      refreshSeries();
    });
  }
  refresh();
  refreshSeries();
  setInterval(refresh, POLL_MS);
  setInterval(refreshSeries, SERIES_MS);
  setInterval(tick, 1000);
}

document.addEventListener("DOMContentLoaded", setup);
