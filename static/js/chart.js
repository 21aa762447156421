// Line charts for metric series, drawn as SVG: readable ticks, a padded y-range, and a hover
// readout of the exact value and step. window.LineChart.draw(svg, points, {zero}) with points
// [[step, value], ...]; `zero`: the metric cannot be negative, so the y axis starts at 0.
// window.LineChart.format(value, step) formats one tick. A chart is drawn at the width it is
// shown (one SVG unit per CSS pixel, so the 11px ticks stay 11px) and redrawn when that changes.
(function () {
  "use strict";
  const SVG = "http://www.w3.org/2000/svg";
  const H = 150, TOP = 8, BOTTOM = 122, FALLBACK_WIDTH = 320, MIN_WIDTH = 200;
  const CHAR = 6.8; // px per character of the 11px tick font (generous)
  const drawn = new Map(); // svg -> [points, options, width drawn at]
  const SI = [[1e12, "T"], [1e9, "G"], [1e6, "M"], [1e3, "k"]];

  function el(name, attrs) {
    const node = document.createElementNS(SVG, name);
    for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
    return node;
  }

  // A tick label with as many decimals as the tick step needs, SI suffixes for large numbers
  // and an exponent for tiny ones: 0.69, 0.6925, 12.5k, 3.2M, 1.5e-6.
  function format(value, step) {
    if (value === 0) return "0";
    const abs = Math.abs(value);
    for (const [size, suffix] of SI) {
      if (abs >= size) return trim((value / size).toFixed(decimals(step / size))) + suffix;
    }
    if (abs < 1e-3) {
      const digits = Math.max(0, Math.min(4, Math.ceil(Math.log10(abs / step) - 1e-9) + 1));
      return value.toExponential(digits).replace(/\.?0+e/, "e");
    }
    return trim(value.toFixed(decimals(step)));
  }

  // Decimals that show a tick step exactly: 0.25 -> 2, 0.5 -> 1, 20 -> 0.
  function decimals(step) {
    if (!(step > 0) || !isFinite(step)) return 2;
    const k = Math.floor(Math.log10(step) + 1e-9);
    const extra = Math.abs(step / Math.pow(10, k) - 2.5) < 1e-6 ? 1 : 0;
    return Math.max(0, Math.min(10, extra - k));
  }

  function trim(text) {
    return text.includes(".") ? text.replace(/\.?0+$/, "") : text;
  }

  // The exact value for the hover readout (10 significant digits drop only float noise).
  function exact(value) {
    return String(Number(value.toPrecision(10)));
  }

  // A y-range that holds the data with a margin, never narrower than 1% of the values'
  // size (noise in the 4th decimal stays flat), on round tick steps.
  // With `zero` (a metric that cannot be negative) the range starts at 0.
  function yRange(ys, zero) {
    let lo = Math.min(...ys), hi = Math.max(...ys);
    if (zero && lo >= 0) {
      hi = hi > 0 ? hi * 1.08 : 1;
      lo = 0;
    } else {
      const middle = (lo + hi) / 2;
      const minSpan = middle !== 0 ? Math.abs(middle) * 0.01 : 1;
      if (hi - lo < minSpan) { lo = middle - minSpan / 2; hi = middle + minSpan / 2; }
      const pad = (hi - lo) * 0.08;
      lo -= pad; hi += pad;
    }
    const raw = (hi - lo) / 4;
    const magnitude = Math.pow(10, Math.floor(Math.log10(raw)));
    const step = [1, 2, 2.5, 5, 10].map((m) => m * magnitude).find((s) => s >= raw);
    return { lo: Math.floor(lo / step) * step, hi: Math.ceil(hi / step) * step, step };
  }

  function shownWidth(svg) {
    const width = svg.getBoundingClientRect().width;
    return width > 0 ? Math.max(MIN_WIDTH, width) : FALLBACK_WIDTH;
  }

  function draw(svg, points, options) {
    options = options || {};
    const W = shownWidth(svg), RIGHT = W - 8;
    drawn.set(svg, [points, options, W]);
    while (svg.firstChild) svg.removeChild(svg.firstChild);
    svg.setAttribute("viewBox", `0 0 ${W} ${H}`);
    const xs = points.map((p) => p[0]), ys = points.map((p) => p[1]);
    const [x0, x1] = [Math.min(...xs), Math.max(...xs)];
    const { lo, hi, step } = yRange(ys, options.zero);
    const ticks = [];
    for (let t = lo; t <= hi + step / 2; t += step) ticks.push(Number(t.toPrecision(12)));
    const labels = ticks.map((t) => format(t, step));
    const left = 8 + CHAR * Math.max(...labels.map((l) => l.length)); // room for the widest
    const X = (x) => left + (x1 === x0 ? (RIGHT - left) / 2 : ((x - x0) / (x1 - x0)) * (RIGHT - left));
    const Y = (y) => BOTTOM - ((y - lo) / (hi - lo)) * (BOTTOM - TOP);
    ticks.forEach((t, i) => {
      svg.appendChild(el("line", { x1: left, x2: RIGHT, y1: Y(t), y2: Y(t), class: "grid" }));
      const label = el("text", { x: left - 4, y: Y(t) + 4, "text-anchor": "end", class: "tick" });
      label.textContent = labels[i];
      svg.appendChild(label);
    });
    svg.appendChild(el("line", { x1: left, y1: TOP, x2: left, y2: BOTTOM, class: "axis" }));
    svg.appendChild(el("line", { x1: left, y1: BOTTOM, x2: RIGHT, y2: BOTTOM, class: "axis" }));
    for (const [x, anchor] of [[x0, "start"], [x1, "end"]]) {
      const t = el("text", { x: X(x), y: H - 12, "text-anchor": x0 === x1 ? "middle" : anchor, class: "tick" });
      t.textContent = "step " + x;
      svg.appendChild(t);
      if (x0 === x1) break;
    }
    const path = points.map((p, i) => (i ? "L" : "M") + X(p[0]).toFixed(1) + "," + Y(p[1]).toFixed(1)).join(" ");
    svg.appendChild(el("path", { d: path, class: "line" }));
    if (points.length === 1) svg.appendChild(el("circle", { cx: X(xs[0]), cy: Y(ys[0]), r: 3, class: "dot" }));

    // Hover: the nearest point's exact value and step.
    const marker = el("circle", { r: 3.5, class: "hover-dot", visibility: "hidden" });
    const readout = el("text", { x: RIGHT, y: TOP + 2, "text-anchor": "end", class: "readout", visibility: "hidden" });
    const overlay = el("rect", { x: left, y: TOP, width: RIGHT - left, height: BOTTOM - TOP, class: "overlay" });
    svg.append(marker, readout, overlay);
    overlay.addEventListener("mousemove", (event) => {
      const box = svg.getBoundingClientRect();
      const at = ((event.clientX - box.left) / box.width) * W;
      let best = points[0];
      for (const p of points) if (Math.abs(X(p[0]) - at) < Math.abs(X(best[0]) - at)) best = p;
      marker.setAttribute("cx", X(best[0]));
      marker.setAttribute("cy", Y(best[1]));
      readout.textContent = `step ${best[0]}: ${exact(best[1])}`;
      marker.setAttribute("visibility", "visible");
      readout.setAttribute("visibility", "visible");
    });
    overlay.addEventListener("mouseleave", () => {
      marker.setAttribute("visibility", "hidden");
      readout.setAttribute("visibility", "hidden");
    });
  }

  // Redraw the charts whose shown width changed (a resized window, a narrower grid column).
  let pending = false;
  window.addEventListener("resize", () => {
    if (pending) return;
    pending = true;
    requestAnimationFrame(() => {
      pending = false;
      for (const [svg, [points, options, width]] of drawn) {
        if (!svg.isConnected) drawn.delete(svg);
        else if (Math.abs(shownWidth(svg) - width) > 0.5) draw(svg, points, options);
      }
    });
  });

  window.LineChart = { draw, format, exact, yRange };
})();
