// Small hand-written SVG charts for the dashboard: line charts and stacked areas over time.
// No dependencies; every chart is redrawn whole on each poll (a few hundred nodes at most).
"use strict";

const Charts = (() => {
  const NS = "http://www.w3.org/2000/svg";
  const PALETTE = ["#2563eb", "#16a34a", "#d97706", "#9333ea", "#dc2626", "#0891b2",
    "#db2777", "#65a30d", "#4b5563", "#ea580c"];
  const assigned = new Map();

  /** A stable colour per series name, so a provider keeps its colour across charts. */
  function color(name) {
    if (!assigned.has(name)) assigned.set(name, PALETTE[assigned.size % PALETTE.length]);
    return assigned.get(name);
  }

  function el(tag, attrs, parent) {
    const node = document.createElementNS(NS, tag);
    for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
    if (parent) parent.appendChild(node);
    return node;
  }

  /** Round maximum for the y axis: 1, 2 or 5 times a power of ten. */
  function niceMax(value) {
    if (!(value > 0)) return 1;
    const power = Math.pow(10, Math.floor(Math.log10(value)));
    for (const step of [1, 2, 5, 10]) if (value <= step * power) return step * power;
    return 10 * power;
  }

  function clock(ms) {
    return new Date(ms).toTimeString().slice(0, 8);
  }

  /**
   * Draws into `host`: `x` (ms timestamps), `series` [{name, values, color?}] with null gaps,
   * `format` for the y labels, `stacked` for stacked areas.
   */
  function draw(host, { x, series, format = (v) => String(v), stacked = false, height = 180 }) {
    host.textContent = "";
    const width = Math.max(host.clientWidth || 480, 240);
    const n = x.length;

    // Stacked series are drawn on cumulative sums.
    const tops = series.map((s) => s.values.map((v) => (v == null ? null : Number(v))));
    if (stacked) {
      for (let j = 1; j < tops.length; j++) {
        for (let i = 0; i < n; i++) tops[j][i] = (tops[j][i] || 0) + (tops[j - 1][i] || 0);
      }
    }
    let max = 0;
    for (const values of tops) for (const v of values) if (v != null && v > max) max = v;
    const top = niceMax(max);
    const labels = [0, 1, 2, 3, 4].map((t) => format((top * t) / 4));
    // Room for the longest y label (about 6 px a character at 10 px).
    const pad = { left: Math.max(36, 10 + 6 * Math.max(...labels.map((l) => l.length))), right: 14, top: 10, bottom: 22 };
    const w = width - pad.left - pad.right;
    const h = height - pad.top - pad.bottom;
    const svg = el("svg", { width, height, viewBox: `0 0 ${width} ${height}`, role: "img" }, host);
    const xs = (i) => pad.left + (n <= 1 ? w / 2 : (i * w) / (n - 1));
    const ys = (v) => pad.top + h - (v / top) * h;

    labels.forEach((text, t) => {
      const y = ys((top * t) / 4);
      el("line", { x1: pad.left, x2: pad.left + w, y1: y, y2: y, class: "grid" }, svg);
      const label = el("text", { x: pad.left - 6, y: y + 4, class: "axis", "text-anchor": "end" }, svg);
      label.textContent = text;
    });
    const ticks = Math.min(6, n);
    for (let t = 0; t < ticks; t++) {
      const i = Math.round((t * (n - 1)) / Math.max(ticks - 1, 1));
      // The end labels stay inside the chart.
      const anchor = t === 0 ? "start" : t === ticks - 1 ? "end" : "middle";
      const label = el("text", { x: xs(i), y: height - 6, class: "axis", "text-anchor": anchor }, svg);
      label.textContent = clock(x[i]);
    }

    series.forEach((s, j) => {
      const stroke = s.color || color(s.name);
      const values = tops[j];
      if (stacked) {
        const below = j === 0 ? values.map(() => 0) : tops[j - 1];
        let d = "";
        for (let i = 0; i < n; i++) d += `${i ? "L" : "M"}${xs(i)},${ys(values[i] || 0)}`;
        for (let i = n - 1; i >= 0; i--) d += `L${xs(i)},${ys(below[i] || 0)}`;
        el("path", { d: d + "Z", fill: stroke, "fill-opacity": 0.35, stroke: "none" }, svg);
      }
      // A stacked series is outlined only where it has a share, so the last one does not
      // paint the whole baseline.
      const own = (i) => (i < 0 || i >= n ? 0 : (s.values[i] || 0));
      const shown = (i) => values[i] != null && (!stacked || own(i) > 0 || own(i - 1) > 0 || own(i + 1) > 0);
      let d = "";
      let pen = false;
      for (let i = 0; i < n; i++) {
        if (!shown(i)) { pen = false; continue; }
        d += `${pen ? "L" : "M"}${xs(i)},${ys(values[i])}`;
        pen = true;
      }
      if (d) el("path", { d, fill: "none", stroke, "stroke-width": s.dashed ? 1.5 : 2,
        "stroke-dasharray": s.dashed ? "4 3" : "none", "stroke-linejoin": "round" }, svg);
      // Single points would be invisible as paths.
      for (let i = 0; i < n && !stacked; i++) {
        const alone = values[i] != null && (i === 0 || values[i - 1] == null) && (i === n - 1 || values[i + 1] == null);
        if (alone) el("circle", { cx: xs(i), cy: ys(values[i]), r: 2.5, fill: stroke }, svg);
      }
    });

    const legend = document.createElement("div");
    legend.className = "legend";
    for (const s of series) {
      const item = document.createElement("span");
      const swatch = document.createElement("i");
      swatch.style.background = s.color || color(s.name);
      if (s.dashed) swatch.className = "dashed";
      item.append(swatch, document.createTextNode(s.name));
      legend.appendChild(item);
    }
    host.appendChild(legend);
  }

  /** A horizontal bar of `fraction` (0..1, clamped), for shares and budgets. */
  function bar(fraction, tone) {
    const outer = document.createElement("span");
    outer.className = "bar" + (tone ? ` ${tone}` : "");
    const inner = document.createElement("span");
    inner.style.width = `${Math.max(0, Math.min(1, fraction || 0)) * 100}%`;
    outer.appendChild(inner);
    return outer;
  }

  /**
   * The attempts of one request on a timeline: `attempts` [{label, start_ms, end_ms, outcome,
   * hedge}] over `total_ms`.
   */
  function timeline(host, attempts, total) {
    host.textContent = "";
    const width = Math.max(host.clientWidth || 480, 240);
    const row = 26;
    const pad = { left: 190, right: 60, top: 8, bottom: 22 };
    const height = pad.top + pad.bottom + row * Math.max(attempts.length, 1);
    const end = Math.max(total || 0, ...attempts.map((a) => a.end_ms), 1);
    const w = width - pad.left - pad.right;
    const xs = (ms) => pad.left + (ms / end) * w;
    const svg = el("svg", { width, height, viewBox: `0 0 ${width} ${height}`, role: "img" }, host);
    for (let t = 0; t <= 4; t++) {
      const ms = (end * t) / 4;
      el("line", { x1: xs(ms), x2: xs(ms), y1: pad.top, y2: height - pad.bottom, class: "grid" }, svg);
      const label = el("text", { x: xs(ms), y: height - 6, class: "axis", "text-anchor": "middle" }, svg);
      label.textContent = `${Math.round(ms)} ms`;
    }
    attempts.forEach((a, i) => {
      const y = pad.top + i * row;
      const name = el("text", { x: pad.left - 8, y: y + 17, class: "label", "text-anchor": "end" }, svg);
      name.textContent = a.label;
      const tone = a.outcome === "ok" ? "#16a34a" : a.outcome === "cancelled" ? "#9ca3af" : "#dc2626";
      el("rect", { x: xs(a.start_ms), y: y + 5, width: Math.max(xs(a.end_ms) - xs(a.start_ms), 2),
        height: row - 10, rx: 3, fill: tone, "data-outcome": a.outcome }, svg);
      const note = el("text", { x: xs(a.end_ms) + 6, y: y + 17, class: "axis" }, svg);
      note.textContent = `${a.end_ms - a.start_ms} ms`;
    });
  }

  return { draw, bar, timeline, color };
})();
