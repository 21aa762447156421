// Run page: polls the run, its new metric rows and its log; draws one SVG line chart per metric.
(function () {
  "use strict";
  const root = document.getElementById("run-status");
  if (!root) return;
  const runId = root.dataset.run;
  const SKIP = new Set(["step", "epoch", "time", "elapsed", "learning_rate", "lr"]);
  const PREFERRED = ["loss", "eval_loss", "accuracy", "eval_accuracy", "score", "mean_score", "kl",
    "reward_margin", "policy_loss", "value_loss", "entropy", "clip_fraction"];
  const series = new Map(); // metric name -> [[step, value], ...]
  let lastStep = -1;
  const SVG = "http://www.w3.org/2000/svg";

  function el(name, attrs) {
    const node = document.createElementNS(SVG, name);
    for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
    return node;
  }

  function chart(name, points) {
    let box = document.getElementById("chart-" + name);
    if (!box) {
      box = document.createElement("figure");
      box.className = "chart";
      box.id = "chart-" + name;
      const caption = document.createElement("figcaption");
      box.appendChild(caption);
      box.appendChild(el("svg", { viewBox: "0 0 320 140", role: "img", "aria-label": name }));
      document.getElementById("charts").appendChild(box);
    }
    const last = points[points.length - 1][1];
    box.querySelector("figcaption").textContent = name + " · " + Number(last).toPrecision(4);
    const svg = box.querySelector("svg");
    while (svg.firstChild) svg.removeChild(svg.firstChild);
    const xs = points.map((p) => p[0]);
    const ys = points.map((p) => p[1]);
    const [x0, x1] = [Math.min(...xs), Math.max(...xs)];
    let [y0, y1] = [Math.min(...ys), Math.max(...ys)];
    if (y0 === y1) { y0 -= 1; y1 += 1; }
    const X = (x) => 36 + (x1 === x0 ? 0 : ((x - x0) / (x1 - x0)) * 276);
    const Y = (y) => 120 - ((y - y0) / (y1 - y0)) * 110;
    svg.appendChild(el("line", { x1: 36, y1: 120, x2: 312, y2: 120, class: "axis" }));
    for (const [y, label] of [[y0, y0], [y1, y1]]) {
      const t = el("text", { x: 32, y: Y(y) + 4, "text-anchor": "end", class: "tick" });
      t.textContent = Number(label).toPrecision(3);
      svg.appendChild(t);
    }
    const path = points.map((p, i) => (i ? "L" : "M") + X(p[0]).toFixed(1) + "," + Y(p[1]).toFixed(1)).join(" ");
    svg.appendChild(el("path", { d: path, class: "line" }));
    const tx = el("text", { x: 312, y: 136, "text-anchor": "end", class: "tick" });
    tx.textContent = "step " + x1;
    svg.appendChild(tx);
  }

  function draw() {
    const names = [...series.keys()].sort((a, b) => {
      const ia = PREFERRED.indexOf(a), ib = PREFERRED.indexOf(b);
      return (ia < 0 ? 99 : ia) - (ib < 0 ? 99 : ib) || a.localeCompare(b);
    });
    for (const name of names.slice(0, 12)) chart(name, series.get(name));
    const none = document.getElementById("no-metrics");
    if (none && series.size) none.remove();
  }

  async function json(url) {
    const r = await fetch(url, { headers: { Accept: "application/json" }, credentials: "same-origin" });
    if (!r.ok) throw new Error(url + ": " + r.status);
    return r.json();
  }

  async function tick() {
    let finished = false;
    try {
      const rows = await json(`/api/v1/runs/${runId}/metrics?after=${lastStep}`);
      for (const row of rows) {
        for (const [k, v] of Object.entries(row.values)) {
          if (SKIP.has(k) || typeof v !== "number" || !isFinite(v)) continue;
          if (!series.has(k)) series.set(k, []);
          series.get(k).push([row.step, v]);
        }
        lastStep = Math.max(lastStep, row.step);
      }
      if (rows.length) draw();
      if (lastStep >= 0) document.getElementById("step").textContent = lastStep;
      const run = await json(`/api/v1/runs/${runId}`);
      const status = run.status + (run.cancel_requested && run.status === "running" ? " (cancelling)" : "");
      document.getElementById("status").textContent = status;
      document.getElementById("attempt").textContent = run.attempt + " / " + run.max_attempts;
      document.getElementById("worker").textContent = run.worker || "–";
      const warn = document.getElementById("warnings");
      warn.hidden = !run.warnings.length;
      warn.replaceChildren(...run.warnings.map((w) => {
        const p = document.createElement("p");
        p.textContent = w;
        return p;
      }));
      const error = document.getElementById("error");
      error.hidden = !run.error;
      error.textContent = run.error || "";
      const log = await fetch(`/api/v1/runs/${runId}/log?lines=60`, { credentials: "same-origin" });
      if (log.ok) document.getElementById("log").textContent = await log.text();
      finished = ["succeeded", "failed", "cancelled"].includes(run.status);
      if (finished && run.output_model_id && !document.querySelector("#output a")) {
        setTimeout(() => window.location.reload(), 500);
      }
    } catch (e) {
      document.getElementById("live").textContent = "reconnecting…";
    }
    document.getElementById("live").textContent = finished ? "final" : "live";
    if (!finished) setTimeout(tick, 1500);
  }
  tick();
})();
