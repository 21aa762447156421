// Run page: polls the run, its new metric rows and its log; draws one SVG line chart per metric.
(function () {
  "use strict";
  const root = document.getElementById("run-status");
  if (!root) return;
  const runId = root.dataset.run;
  // Metrics that cannot be negative by definition: their charts start at 0 (app/runs/metric_info.py).
  const ZERO = new Set((root.dataset.zero || "").split(" ").filter(Boolean));
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
      box.appendChild(el("svg", { viewBox: "0 0 320 150", role: "img", "aria-label": name }));
      document.getElementById("charts").appendChild(box);
    }
    const last = points[points.length - 1];
    box.querySelector("figcaption").textContent = `${name} · ${window.LineChart.exact(last[1])} at step ${last[0]}`;
    window.LineChart.draw(box.querySelector("svg"), points, { zero: ZERO.has(name) });
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
      const status = run.state + (run.cancel_requested && run.status === "running" ? " (cancelling)" : "");
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
      document.getElementById("failure").hidden = !run.cause;
      document.getElementById("failure-cause").textContent = run.cause || "";
      document.getElementById("failure-log").textContent = (run.error || "").split("\n").slice(1).join("\n");
      document.getElementById("no-retry").hidden = run.status !== "failed" || run.retryable;
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
