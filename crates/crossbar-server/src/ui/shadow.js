// Shadow traffic (#/shadow): each route's shadow beside the deployment that answered the
// client, over the same requests: error rate, latency, tokens, cost and tool calls whose
// arguments were not JSON. From GET /v1/crossbar/shadow. Loaded after app.js, whose helpers
// and `pages` it uses.
"use strict";

/** One figure's row: primary, shadow, and how the shadow compares. */
function shadowRow(label, field, primary, shadow, format, lowerIsBetter) {
  const p = primary[field];
  const s = shadow[field];
  let diff = "–";
  let tone = "";
  if (p != null && s != null && typeof p === "number" && p !== 0) {
    const change = (s - p) / p;
    diff = `${change >= 0 ? "+" : ""}${(change * 100).toFixed(1)}%`;
    if (lowerIsBetter != null && Math.abs(change) >= 0.05) tone = (change < 0) === lowerIsBetter ? "ok" : "bad";
  }
  return h("tr", { "data-figure": field },
    h("td", {}, label),
    h("td", { class: "num", "data-side": "primary" }, format(p)),
    h("td", { class: "num", "data-side": "shadow" }, format(s)),
    h("td", { class: "num" }, tone ? h("span", { class: `badge ${tone}` }, diff) : diff));
}

pages.shadow = {
  title: "Shadow",
  async load() { return getJson("/v1/crossbar/shadow"); },
  draw(list) {
    if (!list.data.length) {
      render(card(null, h("div", { class: "empty", "data-empty": "shadow" }, h("strong", {}, "No shadow traffic"),
        "Give a route a shadow (`shadow = { deployment = \"model@provider\", share = 0.2 }` or `{ model = ... }`) to copy a share of its requests there and compare.")));
      return;
    }
    const cards = list.data.map((pair) => {
      const p = pair.primary_figures;
      const s = pair.shadow_figures;
      const rows = [
        shadowRow("requests", "requests", p, s, fmt.int, null),
        shadowRow("error rate", "error_rate", p, s, fmt.pct, true),
        shadowRow("latency (mean)", "latency_ms_mean", p, s, fmt.ms, true),
        shadowRow("latency p50", "latency_ms_p50", p, s, fmt.ms, true),
        shadowRow("latency p95", "latency_ms_p95", p, s, fmt.ms, true),
        shadowRow("input tokens", "input_tokens", p, s, fmt.int, null),
        shadowRow("output tokens", "output_tokens", p, s, fmt.int, null),
        shadowRow("cost", "cost_usd", p, s, fmt.usd, true),
        shadowRow("tool calls", "tool_calls", p, s, fmt.int, null),
        shadowRow("tool calls not JSON", "tool_calls_invalid_json", p, s, fmt.int, true),
      ];
      return card(`${pair.route}: ${pair.primary} vs ${pair.shadow}`,
        table(["", { label: pair.primary, num: true }, { label: `${pair.shadow} (shadow)`, num: true }, { label: "shadow vs primary", num: true }],
          rows, { "data-table": "shadow", "data-pair": `${pair.primary} ${pair.shadow}` }),
        h("p", { class: "muted" }, `${fmt.int(pair.dropped)} copies dropped at the concurrency bound · ${fmt.int(pair.in_flight)} in flight`));
    });
    render(...cards, h("p", { class: "muted" },
      "The shadow answers copies of the same requests in the background; its answers are measured, never returned. Copies are sent unstreamed, so latency is the whole answer's on both sides."));
  },
};

// The first draw came before this page existed.
if (location.hash.startsWith("#/shadow")) navigate();
