// A small SVG line chart for the console's per-minute series: no dependency, drawn from data
// with DOM calls only (no markup strings), so the page's Content-Security-Policy holds.
"use strict";

(function () {
  const NS = "http://www.w3.org/2000/svg";

  function el(name, attrs, text) {
    const e = document.createElementNS(NS, name);
    for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, String(v));
    if (text !== undefined) e.textContent = text;
    return e;
  }

  // A "nice" upper bound for the y axis and its step: 1, 2 or 5 times a power of ten.
  function niceScale(max) {
    if (max <= 0) return { top: 4, step: 1 };
    const raw = max / 4;
    const p = Math.pow(10, Math.floor(Math.log10(raw)));
    const step = [1, 2, 5, 10].map((m) => m * p).find((s) => s >= raw);
    return { top: Math.ceil(max / step) * step, step };
  }

  function clock(ms) {
    const d = new Date(ms);
    return String(d.getHours()).padStart(2, "0") + ":" + String(d.getMinutes()).padStart(2, "0");
  }

  // times: start of each point (ms); series: [{name, className, values}], same length as times.
  // Returns an <svg> that fills its container's width.
  function lineChart(times, series, options) {
    const width = 1200;
    const height = (options && options.height) || 280;
    const left = 48;
    const right = 12;
    const top = 12;
    const bottom = 28;
    const plotW = width - left - right;
    const plotH = height - top - bottom;
    let max = 0;
    for (const s of series) for (const v of s.values) max = Math.max(max, v);
    const { top: yTop, step } = niceScale(max);
    const n = Math.max(times.length - 1, 1);
    const x = (i) => left + (plotW * i) / n;
    const y = (v) => top + plotH - (plotH * v) / yTop;

    const svg = el("svg", {
      viewBox: `0 0 ${width} ${height}`,
      class: "chart",
      role: "img",
      "aria-label": (options && options.label) || "chart",
    });
    svg.appendChild(el("title", {}, (options && options.label) || "chart"));
    for (let v = 0; v <= yTop; v += step) {
      svg.appendChild(el("line", { x1: left, x2: width - right, y1: y(v), y2: y(v), class: "grid" }));
      svg.appendChild(el("text", { x: left - 6, y: y(v) + 4, class: "axis", "text-anchor": "end" }, String(v)));
    }
    const labels = Math.min(6, times.length);
    for (let k = 0; k < labels; k++) {
      const i = Math.round((k * (times.length - 1)) / Math.max(labels - 1, 1));
      svg.appendChild(el("text", { x: x(i), y: height - 8, class: "axis", "text-anchor": "middle" }, clock(times[i])));
    }
    for (const s of series) {
      const points = s.values.map((v, i) => `${x(i).toFixed(1)},${y(v).toFixed(1)}`).join(" ");
      svg.appendChild(el("polyline", { points, class: "line " + s.className }));
    }
    return svg;
  }

  window.PetrelChart = { lineChart };
})();
