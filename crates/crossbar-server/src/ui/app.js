// Crossbar dashboard: hash routes (#/overview, #/requests/<id>...), each page polling its JSON
// endpoint under /v1/crossbar/ every 1.5 s and redrawing. Plain DOM, no framework.
"use strict";

const POLL_MS = 1500;
const state = {
  split: "provider", // the overview's charts split by provider or by cloud
  window: "15m",
  filters: { key: "", model: "", deployment: "", status: "", since: "1h" },
  whatifSince: "7d",
  timer: null,
  busy: false,
  route: "",
};

// ---------- helpers ----------

function h(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v == null || v === false) continue;
    if (k === "class") node.className = v;
    // Through the CSSOM: the page's CSP forbids style attributes.
    else if (k === "style") Object.assign(node.style, v);
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v === true ? "" : v);
  }
  for (const child of children.flat()) {
    if (child == null || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

const fmt = {
  ms: (v) => (v == null ? "–" : `${Math.round(v)} ms`),
  pct: (v) => (v == null ? "–" : `${(v * 100).toFixed(1)}%`),
  rate: (v) => (v == null ? "–" : v >= 10 ? v.toFixed(1) : v.toFixed(2)),
  usd: (v) => {
    if (v == null) return "–";
    const n = Number(v);
    if (n === 0) return "$0";
    if (Math.abs(n) >= 100) return `$${n.toFixed(2)}`;
    if (Math.abs(n) >= 0.01) return `$${n.toFixed(4)}`;
    return `$${n.toPrecision(3)}`;
  },
  exact: (s) => (s == null ? "–" : `$${s}`),
  int: (v) => (v == null ? "–" : Number(v).toLocaleString("en-US")),
  time: (ms) => new Date(ms).toLocaleTimeString("en-GB"),
  price: (p) => `$${p.input} / $${p.output}`,
};

async function getJson(path) {
  const response = await fetch(path, { headers: { accept: "application/json" } });
  const text = await response.text();
  let body = null;
  try { body = JSON.parse(text); } catch { /* not JSON */ }
  if (!response.ok) {
    const message = body && body.error && body.error.message ? body.error.message : `${response.status} ${text.slice(0, 200)}`;
    const error = new Error(message);
    error.status = response.status;
    throw error;
  }
  return body;
}

function setLive(ok, text) {
  document.getElementById("live-dot").className = ok ? "on" : "off";
  document.getElementById("live-text").textContent = text;
}

function showError(message) {
  const banner = document.getElementById("error");
  banner.hidden = !message;
  banner.textContent = message || "";
}

function card(title, ...body) {
  return h("div", { class: "card" }, title ? h("h2", {}, title) : null, ...body);
}

function kpi(label, value, sub, id) {
  return h("div", { class: "kpi", "data-kpi": id }, h("div", { class: "label" }, label),
    h("div", { class: "value" }, value), sub ? h("div", { class: "sub" }, sub) : null);
}

function table(headers, rows, attrs) {
  return h("div", { class: "table-wrap" }, h("table", attrs || {},
    h("thead", {}, h("tr", {}, headers.map((x) => h("th", { class: x.num ? "num" : null }, x.label || x)))),
    h("tbody", {}, rows)));
}

function segmented(options, current, onPick) {
  return h("div", { class: "seg" }, options.map(([value, label]) =>
    h("button", { type: "button", class: value === current ? "on" : null, "data-value": value,
      onclick: () => onPick(value) }, label)));
}

/** Replaces the page's content, keeping the scroll position. */
function render(...nodes) {
  const page = document.getElementById("page");
  const y = window.scrollY;
  page.replaceChildren(...nodes.filter((node) => node != null && node !== false));
  window.scrollTo(0, y);
}

function setControls(...nodes) {
  document.getElementById("controls").replaceChildren(...nodes);
}

// ---------- pages ----------

const pages = {};

pages.overview = {
  title: "Overview",
  controls() {
    return [
      segmented([["provider", "By provider"], ["cloud", "By cloud"]], state.split, (v) => { state.split = v; refresh(true); }),
      " ",
      segmented([["1m", "1m"], ["5m", "5m"], ["15m", "15m"], ["1h", "1h"], ["24h", "24h"]], state.window, (v) => { state.window = v; refresh(true); }),
    ];
  },
  async load() {
    return getJson(`/v1/crossbar/overview?window=${state.window}&buckets=60`);
  },
  draw(o) {
    const t = o.totals;
    const groups = state.split === "provider" ? o.by_provider : o.by_cloud;
    const names = groups.map((g) => g.name);
    const x = o.buckets.map((b) => b.t_ms + (o.bucket_s * 1000) / 2);
    const part = (b, name) => (state.split === "provider" ? b.by_provider : b.by_cloud)[name];

    const kpis = h("div", { class: "kpis" },
      kpi("Requests/s (last min)", fmt.rate(o.requests_per_s), `${fmt.int(t.requests)} in window`, "rps"),
      kpi("Error rate", fmt.pct(t.error_rate), `${fmt.int(t.failed)} failed`, "error-rate"),
      kpi("Latency p50 / p95", `${fmt.ms(t.latency_ms.p50)}`, `p95 ${fmt.ms(t.latency_ms.p95)}`, "latency"),
      kpi("TTFT p50 / p95", `${fmt.ms(t.ttft_ms.p50)}`, `p95 ${fmt.ms(t.ttft_ms.p95)}`, "ttft"),
      kpi("Gateway overhead", `${fmt.ms(t.overhead_ms.p50)}`, `p95 ${fmt.ms(t.overhead_ms.p95)}`, "overhead"),
      kpi("Spend in window", fmt.exact(t.cost), `${fmt.int(t.input_tokens)} in / ${fmt.int(t.output_tokens)} out tokens`, "spend"));

    const charts = {
      rps: h("div", { class: "chart" }), errors: h("div", { class: "chart" }),
      latency: h("div", { class: "chart" }), overhead: h("div", { class: "chart" }),
      spend: h("div", { class: "chart" }), spendRate: h("div", { class: "chart" }),
    };
    const splitName = state.split === "provider" ? "provider" : "cloud";
    render(kpis,
      h("div", { class: "grid2" },
        card(`Requests/s by ${splitName}`, charts.rps),
        card(`Error rate by ${splitName}`, charts.errors),
        card("Latency and time to first token (successful requests)", charts.latency),
        card("Gateway overhead", charts.overhead),
        card(`Spend over time by ${splitName} (cumulative)`, charts.spend),
        card(`Spend per bucket by ${splitName}`, charts.spendRate)),
      card("By provider", groupTable(o.by_provider, "provider")),
      card("By cloud", groupTable(o.by_cloud, "cloud")));

    const bucketS = o.bucket_s;
    Charts.draw(charts.rps, { x, stacked: true, format: fmt.rate,
      series: names.map((n) => ({ name: n, values: o.buckets.map((b) => (part(b, n) ? part(b, n).requests / bucketS : 0)) })) });
    Charts.draw(charts.errors, { x, format: (v) => `${Math.round(v * 100)}%`,
      series: names.map((n) => ({ name: n, values: o.buckets.map((b) => { const p = part(b, n); return p ? p.failed / p.requests : null; }) })) });
    Charts.draw(charts.latency, { x, format: (v) => `${Math.round(v)} ms`, series: [
      { name: "latency p50", color: "#2563eb", values: o.buckets.map((b) => b.latency_ms.p50) },
      { name: "latency p95", color: "#2563eb", dashed: true, values: o.buckets.map((b) => b.latency_ms.p95) },
      { name: "TTFT p50", color: "#16a34a", values: o.buckets.map((b) => b.ttft_ms.p50) },
      { name: "TTFT p95", color: "#16a34a", dashed: true, values: o.buckets.map((b) => b.ttft_ms.p95) },
    ] });
    Charts.draw(charts.overhead, { x, format: (v) => `${v.toFixed(v < 10 ? 1 : 0)} ms`, series: [
      { name: "overhead p50", color: "#9333ea", values: o.buckets.map((b) => b.overhead_ms.p50) },
      { name: "overhead p95", color: "#9333ea", dashed: true, values: o.buckets.map((b) => b.overhead_ms.p95) },
    ] });
    Charts.draw(charts.spend, { x, format: fmt.usd, series: names.map((n) => {
      let sum = 0;
      return { name: n, values: o.buckets.map((b) => { sum += part(b, n) ? part(b, n).cost_usd : 0; return sum; }) };
    }) });
    Charts.draw(charts.spendRate, { x, stacked: true, format: fmt.usd,
      series: names.map((n) => ({ name: n, values: o.buckets.map((b) => (part(b, n) ? part(b, n).cost_usd : 0)) })) });
  },
};

function groupTable(groups, kind) {
  return table(
    [kind, { label: "requests", num: true }, { label: "share", num: false }, { label: "error rate", num: true },
      { label: "latency p50", num: true }, { label: "latency p95", num: true }, { label: "TTFT p50", num: true },
      { label: "TTFT p95", num: true }, { label: "overhead p50", num: true }, { label: "spend", num: true }],
    groups.map((g) => h("tr", { "data-group": g.name },
      h("td", {}, h("i", { class: "dot", style: { background: Charts.color(g.name) } }), g.name),
      h("td", { class: "num", "data-field": "requests" }, fmt.int(g.requests)),
      h("td", {}, Charts.bar(g.share), fmt.pct(g.share)),
      h("td", { class: "num", "data-field": "error-rate" }, fmt.pct(g.error_rate)),
      h("td", { class: "num" }, fmt.ms(g.latency_ms.p50)),
      h("td", { class: "num" }, fmt.ms(g.latency_ms.p95)),
      h("td", { class: "num" }, fmt.ms(g.ttft_ms.p50)),
      h("td", { class: "num" }, fmt.ms(g.ttft_ms.p95)),
      h("td", { class: "num" }, fmt.ms(g.overhead_ms.p50)),
      h("td", { class: "num", "data-field": "cost" }, fmt.exact(g.cost)))),
    { "data-table": kind });
}

/** Health from the router's live state: the breaker first, then recent errors. */
function health(d) {
  if (d.breaker.state === "open") return ["down", "bad"];
  if (d.breaker.state === "half_open") return ["probing", "warn"];
  if (d.retry_after_ms) return ["rate limited", "warn"];
  if (d.stats.error_rate >= 0.5) return ["failing", "bad"];
  if (d.stats.error_rate >= 0.1) return ["degraded", "warn"];
  if (!d.stats.attempts) return ["idle", "idle"];
  return ["healthy", "ok"];
}

pages.deployments = {
  title: "Deployments",
  controls() {
    return [segmented([["5m", "5m"], ["15m", "15m"], ["1h", "1h"], ["24h", "24h"]], state.window, (v) => { state.window = v; refresh(true); })];
  },
  async load() {
    const [live, overview] = await Promise.all([
      getJson("/v1/crossbar/deployments"),
      getJson(`/v1/crossbar/overview?window=${state.window}&buckets=1`).catch(() => null),
    ]);
    return { live, overview };
  },
  draw({ live, overview }) {
    const share = new Map((overview ? overview.by_deployment : []).map((g) => [g.name, g]));
    const rows = live.data.map((d) => {
      const [label, tone] = health(d);
      const s = d.stats;
      const served = share.get(d.id);
      return h("tr", { "data-deployment": d.id },
        h("td", {}, h("div", {}, d.id), h("div", { class: "muted mono" }, d.target)),
        h("td", {}, d.provider, h("div", { class: "muted" }, `${d.cloud} · ${d.region}`)),
        h("td", { "data-field": "health" }, h("span", { class: `badge ${tone}` }, label)),
        h("td", { "data-field": "breaker" }, d.breaker.state.replace("_", "-"),
          d.breaker.reopens_in_ms != null ? h("div", { class: "muted" }, `retry in ${Math.ceil(d.breaker.reopens_in_ms / 1000)} s`) : null),
        h("td", { class: "num" }, fmt.ms(s.latency_ms.ewma), h("div", { class: "muted" }, `p95 ${fmt.ms(s.latency_ms.p95)}`)),
        h("td", { class: "num" }, fmt.ms(s.ttft_ms.ewma), h("div", { class: "muted" }, `p95 ${fmt.ms(s.ttft_ms.p95)}`)),
        h("td", { class: "num", "data-field": "error-rate" }, fmt.pct(s.error_rate)),
        h("td", { class: "num", "data-field": "attempts" }, `${fmt.int(s.successes)} / ${fmt.int(s.attempts)}`,
          h("div", { class: "muted" }, `${fmt.int(s.failures)} failed`)),
        h("td", { class: "num" }, fmt.price(d.price)),
        h("td", { class: "num", "data-field": "headroom" }, d.headroom ? fmt.pct(d.headroom.remaining) : "–",
          d.headroom ? h("div", { class: "muted" }, `resets in ${Math.ceil(d.headroom.reset_in_ms / 1000)} s`) : null),
        h("td", { "data-field": "share" }, Charts.bar(served ? served.share : 0), fmt.pct(served ? served.share : 0),
          h("div", { class: "muted" }, `${fmt.int(served ? served.requests : 0)} requests`)));
    });
    render(card(null, table(["deployment", "provider", "health", "breaker",
      { label: "latency (ewma)", num: true }, { label: "TTFT (ewma)", num: true }, { label: "error rate", num: true },
      { label: "ok / attempts", num: true }, { label: "$/M in / out", num: true }, { label: "quota left", num: true }, `share of traffic (${state.window})`], rows,
    { "data-table": "deployments" })),
    h("p", { class: "muted" }, "Health and statistics are the router's live view; share of traffic counts the requests each deployment answered in the window."));
  },
};

function requestQuery() {
  const f = state.filters;
  const q = new URLSearchParams({ limit: "200" });
  for (const k of ["key", "model", "deployment", "status", "since"]) if (f[k]) q.set(k, f[k]);
  return q.toString();
}

pages.requests = {
  title: "Requests",
  controls() { return []; },
  async load(id) {
    if (id) return { detail: await getJson(`/v1/crossbar/requests/${encodeURIComponent(id)}`) };
    return { list: await getJson(`/v1/crossbar/requests?${requestQuery()}`) };
  },
  draw(data) {
    if (data.detail) return drawRequest(data.detail);
    const f = state.filters;
    const input = (name, placeholder) => h("label", {}, name,
      h("input", { name, value: f[name], placeholder, oninput: (e) => { f[name] = e.target.value; } }));
    const select = (name, options) => h("label", {}, name, h("select", { name, onchange: (e) => { f[name] = e.target.value; refresh(true); } },
      options.map(([v, label]) => h("option", { value: v, selected: f[name] === v }, label))));
    const form = h("form", { class: "filters", onsubmit: (e) => { e.preventDefault(); refresh(true); } },
      input("key", "key id"), input("model", "logical model"), input("deployment", "model@provider"),
      select("status", [["", "any"], ["ok", "ok"], ["error", "failed"], ["429", "429"], ["500", "500"], ["502", "502"], ["503", "503"]]),
      select("since", [["5m", "5 min"], ["1h", "1 hour"], ["24h", "24 hours"], ["7d", "7 days"]]),
      h("button", { type: "submit" }, "Filter"));
    const rows = data.list.data.map((r) => {
      const failed = r.status >= 400 || r.error;
      return h("tr", { class: "clickable", "data-request": r.request_id, onclick: () => { location.hash = `#/requests/${r.request_id}`; } },
        h("td", {}, fmt.time(r.time_ms)),
        h("td", { class: "mono" }, r.request_id),
        h("td", {}, r.key_id || h("span", { class: "muted" }, "—")),
        h("td", {}, r.model),
        h("td", {}, r.deployment || h("span", { class: "muted" }, "—")),
        h("td", { "data-field": "status" }, h("span", { class: `badge ${failed ? "bad" : "ok"}` }, String(r.status)), r.error && r.status < 400 ? " cut" : ""),
        h("td", { class: "num" }, fmt.ms(r.latency_ms)),
        h("td", { class: "num" }, fmt.ms(r.ttft_ms)),
        h("td", { class: "num" }, `${fmt.int(r.input_tokens)} / ${fmt.int(r.output_tokens)}`),
        h("td", { class: "num", "data-field": "cost" }, fmt.exact(r.cost)),
        h("td", { class: "num", "data-field": "attempts" }, String(r.attempts.length)));
    });
    const keep = document.activeElement && document.activeElement.name;
    render(form, card(null, rows.length ? table(["time", "request", "key", "model", "deployment", "status",
      { label: "latency", num: true }, { label: "TTFT", num: true }, { label: "tokens in / out", num: true },
      { label: "cost", num: true }, { label: "attempts", num: true }], rows, { "data-table": "requests" })
      : h("div", { class: "empty" }, h("strong", {}, "No requests match"), "Traffic through the gateway appears here within a second or two.")));
    // Polling must not steal the cursor from a filter being typed.
    if (keep) {
      const field = document.querySelector(`form.filters [name="${keep}"]`);
      if (field) { field.focus(); if (field.setSelectionRange && field.value) field.setSelectionRange(field.value.length, field.value.length); }
    }
  },
};

function drawRequest(r) {
  const failed = r.status >= 400 || r.error;
  const timeline = h("div", { class: "chart", id: "timeline" });
  render(
    h("p", {}, h("a", { class: "back", href: "#/requests" }, "← all requests")),
    h("div", { class: "grid2" },
      card("Request", h("dl", { class: "facts" },
        h("dt", {}, "id"), h("dd", { class: "mono" }, r.request_id),
        h("dt", {}, "time"), h("dd", {}, new Date(r.time_ms).toISOString()),
        h("dt", {}, "status"), h("dd", { "data-field": "status" }, h("span", { class: `badge ${failed ? "bad" : "ok"}` }, String(r.status)), r.error ? ` ${r.error}` : ""),
        h("dt", {}, "key"), h("dd", {}, r.key_id || "—"),
        h("dt", {}, "api / model"), h("dd", {}, `${r.api} · ${r.model}${r.stream ? " · stream" : ""}`),
        h("dt", {}, "route"), h("dd", {}, r.route || "—"),
        h("dt", {}, "answered by"), h("dd", { "data-field": "deployment" }, r.deployment ? `${r.deployment} (${r.cloud} · ${r.region})` : "—"),
        h("dt", {}, "latency / TTFT"), h("dd", {}, `${fmt.ms(r.latency_ms)} / ${fmt.ms(r.ttft_ms)}`),
        h("dt", {}, "gateway overhead"), h("dd", {}, fmt.ms(r.overhead_ms)),
        h("dt", {}, "notes"), h("dd", { "data-field": "tags" }, requestNotes(r.tags)))),
      card("Tokens and cost", h("dl", { class: "facts" },
        h("dt", {}, "input"), h("dd", { "data-field": "input-tokens" }, fmt.int(r.input_tokens)),
        h("dt", {}, "cached input"), h("dd", {}, fmt.int(r.cached_input_tokens)),
        h("dt", {}, "cache write"), h("dd", {}, fmt.int(r.cache_write_tokens)),
        h("dt", {}, "output"), h("dd", { "data-field": "output-tokens" }, fmt.int(r.output_tokens)),
        h("dt", {}, "reasoning"), h("dd", {}, fmt.int(r.reasoning_tokens)),
        h("dt", {}, "cost"), h("dd", { "data-field": "cost" }, fmt.exact(r.cost)),
        h("dt", {}, "attempts"), h("dd", { "data-field": "attempts" }, `${r.attempts.length} (${r.retries} retries/failovers, ${r.hedges} hedges)`)))),
    card("Attempts", timeline,
      table(["#", "deployment", "kind", "outcome", { label: "status", num: true }, { label: "duration", num: true }, { label: "cost", num: true }, "reason"],
        r.attempts.map((a, i) => h("tr", { "data-attempt": i },
          h("td", {}, String(i + 1)), h("td", {}, a.deployment),
          h("td", {}, a.hedge ? "hedge" : i === 0 ? "first" : "retry/failover"),
          h("td", { "data-field": "outcome" }, h("span", { class: `badge ${a.outcome === "ok" ? "ok" : a.outcome === "cancelled" ? "idle" : "bad"}` }, a.outcome)),
          h("td", { class: "num" }, a.status == null ? "–" : String(a.status)),
          h("td", { class: "num" }, fmt.ms(a.latency_ms)),
          h("td", { class: "num" }, fmt.exact(a.cost)),
          h("td", { class: "muted" }, a.reason || ""))), { "data-table": "attempts" }),
      h("p", { class: "muted" }, "Durations are measured; retries are drawn one after another (backoff gaps are not recorded) and hedges racing to the end.")),
    ...payloadCard(r.payload));
  Charts.timeline(timeline, r.attempts.map((a, i) => ({ label: `${i + 1}. ${a.deployment}${a.hedge ? " (hedge)" : ""}`,
    start_ms: a.start_ms, end_ms: a.end_ms, outcome: a.outcome })), r.latency_ms);
}

// Cache hit, end user, guardrail findings: names and counts, never the text.
function requestNotes(tags) {
  if (!tags) return "—";
  const notes = [];
  if (tags.cache_hit) notes.push("cache hit");
  if (tags.end_user) notes.push(`user ${tags.end_user}`);
  if (tags.guardrails) notes.push(`guardrails ${tags.guardrails}`);
  return notes.length ? notes.join(" · ") : "—";
}

// The bodies a route with payload_log kept (already masked); none otherwise.
function payloadCard(payload) {
  if (!payload) return [];
  const body = (value, field) => h("pre", { class: "mono", "data-field": field }, JSON.stringify(value, null, 2));
  return [card("Payload (as kept: masked)",
    h("h4", {}, "request"), body(payload.request, "payload-request"),
    h("h4", {}, "answer"), payload.answer == null ? h("p", { class: "muted" }, "no answer kept") : body(payload.answer, "payload-answer"))];
}

function budgetCell(s, id) {
  if (s.budget_usd == null) return h("td", { "data-field": id }, fmt.exact(s.spent), h("div", { class: "muted" }, "no budget"));
  const tone = s.used >= 1 ? "bad" : s.used >= 0.8 ? "warn" : null;
  return h("td", { "data-field": id }, `${fmt.exact(s.spent)} of $${s.budget_usd}`,
    h("div", { class: "muted" }, Charts.bar(s.used, tone), `${fmt.pct(s.used)} used`));
}

pages.keys = {
  title: "Keys and budgets",
  controls() { return []; },
  async load() { return getJson("/v1/crossbar/keys"); },
  draw(k) {
    const rows = k.data.map((key) => h("tr", { "data-key": key.id },
      h("td", {}, key.name || key.id, h("div", { class: "muted mono" }, key.id)),
      h("td", {}, key.revoked_ms ? h("span", { class: "badge idle" }, "revoked") : h("span", { class: "badge ok" }, "live")),
      h("td", {}, key.models.length ? key.models.join(", ") : h("span", { class: "muted" }, "all")),
      h("td", { class: "num", "data-field": "rpm" }, `${fmt.int(key.last_minute.requests)} / ${key.rpm == null ? "∞" : fmt.int(key.rpm)} req`,
        h("div", { class: "muted" }, `${fmt.int(key.last_minute.tokens)} / ${key.tpm == null ? "∞" : fmt.int(key.tpm)} tok`)),
      budgetCell(key.spend.day, "day"), budgetCell(key.spend.month, "month"), budgetCell(key.spend.total, "total"),
      h("td", { class: "num", "data-field": "requests" }, fmt.int(key.spend.total.requests))));
    const u = k.unkeyed;
    render(card(null, rows.length ? table(["key", "state", "models", { label: "last minute / limit", num: true },
      "today (UTC)", "this month (UTC)", "lifetime", { label: "requests", num: true }], rows, { "data-table": "keys" })
      : h("div", { class: "empty" }, h("strong", {}, "No virtual keys"), "Create one with `crossbar keys create` or POST /admin/keys.")),
    // Null for a team admin: keyless traffic is no team's.
    u && card("Traffic without a virtual key", h("dl", { class: "facts" },
      h("dt", {}, "today"), h("dd", {}, `${fmt.exact(u.day.spent)} · ${fmt.int(u.day.requests)} requests`),
      h("dt", {}, "this month"), h("dd", {}, `${fmt.exact(u.month.spent)} · ${fmt.int(u.month.requests)} requests`),
      h("dt", {}, "lifetime"), h("dd", { "data-field": "unkeyed-total" }, `${fmt.exact(u.total.spent)} · ${fmt.int(u.total.requests)} requests`))));
  },
};

pages.whatif = {
  title: "What-if",
  controls() {
    return [segmented([["1h", "1h"], ["24h", "24h"], ["7d", "7d"], ["30d", "30d"]], state.whatifSince, (v) => { state.whatifSince = v; refresh(true); })];
  },
  async load() { return getJson(`/v1/crossbar/whatif?since=${state.whatifSince}`); },
  draw(w) {
    if (!w.data.length) {
      return render(card(null, h("div", { class: "empty" }, h("strong", {}, "No successful traffic yet"),
        "The table re-prices recorded requests on every deployment of their model.")));
    }
    // Rows come cheapest first per model; a tie for cheapest gets no badge.
    const costs = new Map();
    for (const r of w.data) costs.set(r.model, [...(costs.get(r.model) || []), Number(r.cost_usd)]);
    const rows = w.data.map((r) => {
      const [first, second] = costs.get(r.model);
      const cheapest = Number(r.cost_usd) === first && (second === undefined || first < second);
      const pct = r.vs_actual_pct;
      return h("tr", { class: cheapest ? "best" : null, "data-whatif": r.deployment },
        h("td", {}, r.model), h("td", {}, r.deployment, cheapest ? h("span", { class: "badge ok tag" }, "cheapest") : null),
        h("td", {}, `${r.cloud} · ${r.region}`),
        h("td", { class: "num" }, fmt.int(r.requests)),
        h("td", { class: "num", "data-field": "cost" }, fmt.exact(r.cost_usd)),
        h("td", { class: "num" }, fmt.exact(r.actual_usd)),
        h("td", { class: "num", "data-field": "vs-actual" }, pct == null ? "–" : `${pct >= 0 ? "+" : ""}${pct.toFixed(1)}%`),
        h("td", { class: "num" }, r.p50_latency_ms == null ? "–" : fmt.ms(r.p50_latency_ms)),
        h("td", { class: "num" }, fmt.int(r.served)));
    });
    render(card(null, table(["model", "deployment", "cloud · region", { label: "requests", num: true }, { label: "would cost", num: true },
      { label: "actually cost", num: true }, { label: "vs actual", num: true }, { label: "p50 where served", num: true }, { label: "served", num: true }], rows, { "data-table": "whatif" })),
    h("p", { class: "muted" }, "Successful requests of each logical model, re-priced with each deployment's price; cheapest first per model. Same numbers as `crossbar whatif`."));
  },
};

function runStatus(status) {
  const tone = status === "completed" ? "ok" : status === "running" || status === "queued" ? "warn" : status === "failed" ? "bad" : "idle";
  return h("span", { class: `badge ${tone}` }, status);
}

pages.runs = {
  title: "Agent runs",
  controls() { return []; },
  async load(id) {
    if (id) return { detail: await getJson(`/v1/crossbar/runs/${encodeURIComponent(id)}`) };
    return { list: await getJson("/v1/crossbar/runs?limit=100") };
  },
  draw(data) {
    if (data.detail) return drawRun(data.detail);
    const runs = data.list.data;
    if (!runs.length) {
      return render(card(null, h("div", { class: "empty", "data-empty": "runs" }, h("strong", {}, "No agent runs yet"),
        "Runs journaled to this gateway's store (`crossbar agent run SPEC TASK`, or submitted to POST /v1/crossbar/runs for workers) appear here live.")));
    }
    render(card(null, table(["started", "run", "agent", "task", "status", "worker", { label: "steps", num: true }, { label: "tool calls", num: true },
      { label: "tokens", num: true }, { label: "cost", num: true }, { label: "wall time", num: true }],
    runs.map((run) => h("tr", { class: "clickable", "data-run": run.id, onclick: () => { location.hash = `#/runs/${run.id}`; } },
      h("td", {}, fmt.time(run.created_ms)), h("td", { class: "mono" }, run.id), h("td", {}, run.agent),
      h("td", { class: "task" }, run.task), h("td", { "data-field": "status" }, runStatus(run.status)),
      h("td", { class: "mono", "data-field": "worker" }, run.worker || "—",
        run.takeovers ? h("span", { class: "badge warn tag", title: "claimed again after a worker's lease expired" }, `${run.takeovers} takeover${run.takeovers > 1 ? "s" : ""}`) : null),
      h("td", { class: "num", "data-field": "steps" }, fmt.int(run.steps)),
      h("td", { class: "num", "data-field": "tool-calls" }, fmt.int(run.tool_calls)),
      h("td", { class: "num" }, fmt.int(run.tokens)),
      h("td", { class: "num", "data-field": "cost" }, fmt.exact(run.cost)),
      h("td", { class: "num" }, fmt.ms(run.elapsed_ms)))), { "data-table": "runs" })));
  },
};

/** What an audit entry changed: the fields whose values differ between before and after. */
function auditChange(e) {
  if (!e.before) return "created";
  if (!e.after) return "deleted";
  const keys = [...new Set([...Object.keys(e.before), ...Object.keys(e.after)])];
  const changed = keys.filter((k) => JSON.stringify(e.before[k]) !== JSON.stringify(e.after[k]));
  return changed.map((k) => `${k}: ${JSON.stringify(e.before[k]) ?? "–"} → ${JSON.stringify(e.after[k]) ?? "–"}`).join("; ");
}

pages.audit = {
  title: "Audit log",
  controls() { return []; },
  async load() { return getJson("/v1/crossbar/audit?limit=200"); },
  draw(a) {
    if (!a.data.length) {
      return render(card(null, h("div", { class: "empty", "data-empty": "audit" }, h("strong", {}, "No administrative changes yet"),
        "Key creations and revocations and configuration reloads are recorded here, newest first.")));
    }
    render(card(null, table(["time", "who", "from", "action", "target", "change"],
      a.data.map((e) => h("tr", { "data-audit": e.id, "data-action": e.action },
        h("td", {}, fmt.time(e.at_ms)), h("td", { "data-field": "actor" }, e.actor), h("td", { class: "muted" }, e.source),
        h("td", { "data-field": "action" }, e.action), h("td", { class: "mono", "data-field": "target" }, e.target),
        h("td", { class: "muted task", "data-field": "change" }, auditChange(e)))), { "data-table": "audit" })),
    h("p", { class: "muted" }, "Append-only; secrets are never recorded. The same list: GET /admin/audit."));
  },
};

function drawRun(run) {
  render(
    h("p", {}, h("a", { class: "back", href: "#/runs" }, "← all runs")),
    card(`Run ${run.id}`, h("dl", { class: "facts" },
      h("dt", {}, "agent"), h("dd", {}, run.agent),
      h("dt", {}, "task"), h("dd", {}, run.task),
      h("dt", {}, "status"), h("dd", { "data-field": "status" }, runStatus(run.status)),
      h("dt", {}, "worker"), h("dd", { "data-field": "worker" }, run.worker ? `${run.worker}${run.takeovers ? ` (after ${run.takeovers} takeover${run.takeovers > 1 ? "s" : ""})` : ""}` : "—"),
      h("dt", {}, "steps / tool calls"), h("dd", {}, `${fmt.int(run.steps)} / ${fmt.int(run.tool_calls)}`),
      h("dt", {}, "tokens / cost"), h("dd", { "data-field": "cost" }, `${fmt.int(run.tokens)} / ${fmt.exact(run.cost)}`),
      h("dt", {}, "answer"), h("dd", {}, run.answer || "—"))),
    card("Cost per step", table(["step", "model", "deployment", { label: "tokens in / out", num: true }, { label: "cost", num: true }, "tool calls"],
      run.per_step.map((s) => h("tr", { "data-step": s.step },
        h("td", {}, String(s.step)), h("td", {}, s.model || "—"),
        h("td", {}, s.deployment || (s.error ? h("span", { class: "badge bad" }, "failed") : "—")),
        h("td", { class: "num" }, `${fmt.int(s.input_tokens)} / ${fmt.int(s.output_tokens)}`),
        h("td", { class: "num", "data-field": "cost", "data-usd": s.cost_usd }, fmt.usd(s.cost_usd)),
        h("td", { "data-field": "tools" }, s.tools.map((t) => h("span", { class: `badge ${t.is_error ? "bad" : "idle"} tag` }, t.name))))),
      { "data-table": "steps" })),
    card("Journal", table(["#", "time", "kind", "detail"], run.events.map((e) => h("tr", {},
      h("td", {}, String(e.seq)), h("td", {}, fmt.time(e.time_ms)), h("td", {}, e.kind),
      h("td", { class: "muted task" }, eventDetail(e.entry)))))));
}

/** One line about a journal entry. */
function eventDetail(e) {
  switch (e.kind) {
    case "model_call": return `${e.model} on ${e.deployment || "?"} · ${fmt.usd(e.cost_usd)}`;
    case "model_failed": return `${e.model}: ${e.error}`;
    case "tool_started": return `${e.name}(${(e.arguments || "").slice(0, 80)})`;
    case "tool_result": return `${e.name}${e.is_error ? " failed" : ""}: ${(e.content || "").slice(0, 80)}`;
    case "finished": return `${e.status}: ${e.reason || ""}`;
    case "started": return e.task || "";
    default: return "";
  }
}

// ---------- routing and polling ----------

function parseRoute() {
  const [, name = "overview", arg] = (location.hash || "#/overview").split("/");
  return { name: pages[name] ? name : "overview", arg: arg ? decodeURIComponent(arg) : null };
}

async function refresh(redrawControls) {
  const { name, arg } = parseRoute();
  const page = pages[name];
  if (redrawControls) setControls(...page.controls());
  if (state.busy) return;
  state.busy = true;
  try {
    const data = await page.load(arg);
    // The route may have changed while waiting.
    if (parseRoute().name === name) {
      page.draw(data);
      showError(null);
    }
    setLive(true, `live · ${new Date().toLocaleTimeString("en-GB")}`);
  } catch (error) {
    showError(error.status === 401 ? "The dashboard needs the admin token (reload to sign in)." : error.message);
    setLive(false, "not updating");
  } finally {
    state.busy = false;
  }
}

function navigate() {
  const { name } = parseRoute();
  document.getElementById("title").textContent = pages[name].title;
  for (const a of document.querySelectorAll("nav a")) a.classList.toggle("active", a.dataset.page === name);
  document.getElementById("page").replaceChildren();
  state.busy = false;
  refresh(true);
}

window.addEventListener("hashchange", navigate);
window.addEventListener("resize", () => refresh(false));
navigate();
state.timer = setInterval(() => { if (!document.hidden) refresh(false); }, POLL_MS);
