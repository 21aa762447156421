// The shared part of every labeling page: the draft (localStorage, keyed by assignment id),
// time on task, flags, the skip panel, the keyboard, and submitting to the JSON API.
// Untrusted text is never put into the page from here: only textContent and values, and the
// server-rendered (autoescaped) labeling page of the next task, parsed and swapped in whole.
// After a submit the answer carries that page (?next=page): no second request, no reload.
"use strict";

(window.TaskPage = () => {
  if (window.Task && window.Task.stop) window.Task.stop();  // the previous task's timers, keys
  const stopped = new AbortController();
  const config = JSON.parse(document.getElementById("task-config").textContent);
  const csrf = document.querySelector('meta[name="csrf-token"]').content;
  const storeKey = `rlhf-draft-${config.assignment_id}`;
  const DRAFT_DAYS = 7;
  const $ = (id) => document.getElementById(id);

  function newKey() {
    const bytes = new Uint8Array(16);
    crypto.getRandomValues(bytes);
    return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  }

  function forgetOldDrafts() {
    const cutoff = Date.now() - DRAFT_DAYS * 86400000;
    for (const key of Object.keys(localStorage)) {
      if (!key.startsWith("rlhf-draft-") || key === storeKey) continue;
      try {
        if ((JSON.parse(localStorage.getItem(key)).saved || 0) < cutoff) localStorage.removeItem(key);
      } catch (_) {
        localStorage.removeItem(key);
      }
    }
  }

  function loadDraft() {
    try {
      const stored = JSON.parse(localStorage.getItem(storeKey));
      if (stored && typeof stored.key === "string") return stored;
    } catch (_) { /* a broken draft is replaced */ }
    // The Idempotency-Key is made once per draft and kept with it: a retried submit replays.
    return { key: newKey(), elapsed: 0, flags: {}, data: {} };
  }

  const draft = loadDraft();
  let finished = false;
  let inFlight = false;

  function save() {
    if (finished) return;
    draft.saved = Date.now();
    localStorage.setItem(storeKey, JSON.stringify(draft));
  }

  // Time on task: counted while the page is visible, kept in the draft across reloads.
  let tick = performance.now();
  function elapsed() {
    const now = performance.now();
    if (document.visibilityState === "visible") draft.elapsed += now - tick;
    tick = now;
    return draft.elapsed;
  }
  function showTime() {
    const seconds = Math.floor(draft.elapsed / 1000);
    $("timer").textContent = `${Math.floor(seconds / 60)}:${String(seconds % 60).padStart(2, "0")}`;
  }
  const clock = setInterval(() => {
    elapsed();
    showTime();
    save();
  }, 1000);
  showTime();

  // Flags: checkboxes with data-flag, data-response and the criterion as value.
  const flagBoxes = Array.from(document.querySelectorAll("input[data-flag]"));
  for (const box of flagBoxes) {
    box.checked = (draft.flags[box.dataset.response] || []).includes(box.value);
    box.addEventListener("change", () => {
      draft.flags = {};
      for (const b of flagBoxes) {
        if (b.checked) (draft.flags[b.dataset.response] ||= []).push(b.value);
      }
      save();
    });
  }

  function status(text, tone, offerNext = false) {
    $("status").hidden = false;
    $("status").className = `status ${tone}`;
    $("status-text").textContent = text;
    $("status-next").hidden = !offerNext;
  }

  async function errorDetail(response) {
    try {
      const body = await response.json();
      if (typeof body.detail === "string") return body.detail;
      if (Array.isArray(body.detail)) {
        return body.detail.map((d) => `${(d.loc || []).join(".")}: ${d.msg}`).join("; ");
      }
    } catch (_) { /* not JSON */ }
    return `the server answered ${response.status}`;
  }

  function done(message, answer, submitted) {
    finished = true;
    localStorage.removeItem(storeKey);
    status(message, "ok");
    if (ready) {
      const next = ready.page;
      ready = null;
      return showNext(next, submitted);
    }
    if (answer && answer.next_page) return showNext(parse(answer.next_page));
    window.location.replace(window.location.pathname);  // the next task (or "all done")
  }

  // The next task, leased and rendered ahead (`?ahead=1`) while the labeler works on this one,
  // so it shows the moment this one is stored. A page that is left gives that lease back.
  let ready = null;
  async function prepareNext() {
    try {
      const response = await fetch(`${window.location.pathname}?ahead=1`, {
        credentials: "same-origin", signal: stopped.signal,
      });
      if (!response.ok) return;
      const page = parse(await response.text());  // parsed now, not after the submit
      const data = page.getElementById("task-config");
      if (!page.getElementById("task") || !data) return;  // nothing after this one
      const id = JSON.parse(data.textContent).assignment_id;
      if (id !== config.assignment_id) ready = { page, id };
    } catch (_) { /* the next task then comes with the submit's answer */ }
  }
  function giveBack() {
    if (!ready || finished) return;
    fetch(`/api/v1/assignments/${ready.id}/return`, {
      method: "POST", credentials: "same-origin", keepalive: true,
      headers: { "X-CSRF-Token": csrf },
    }).catch(() => {});
    ready = null;
  }
  window.addEventListener("pagehide", giveBack, { signal: stopped.signal });

  function parse(html) {
    return new DOMParser().parseFromString(html, "text/html");
  }

  function showNext(page, submitted) {
    const next = page.getElementById("task");
    if (!next) return window.location.replace(window.location.pathname);
    document.getElementById("task").replaceWith(document.adoptNode(next));
    document.title = page.title;
    const count = document.querySelector("#position strong");
    if (submitted && count) count.textContent = String(Number(count.textContent) + 1);
    window.scrollTo(0, 0);
    window.TaskPage();
    if (window.TaskQuestions) window.TaskQuestions();
    window.TaskKind();
  }

  async function post(url, body, headers = {}) {
    return fetch(url, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf, ...headers },
      body: JSON.stringify(body),
    });
  }

  async function send(url, body, headers, okMessage) {
    if (inFlight || finished) return;
    inFlight = true;
    document.body.classList.add("busy");
    status("Saving…", "info");
    try {
      const response = await post(ready ? url : `${url}?next=page`, body, headers);
      if (response.ok) {
        const answer = ready ? null : await response.json().catch(() => null);
        return done(okMessage, answer, url.endsWith("/annotations"));
      }
      const detail = await errorDetail(response);
      if (response.status === 410) {
        status(`Your lease on this task expired: ${detail}. Your work is still on this page.`, "error", true);
      } else if (response.status === 409) {
        status(`${detail}.`, "error", true);
      } else {
        status(`Not saved: ${detail}`, "error");
      }
    } catch (_) {
      status("Could not reach the server. Your work is kept here; submit again to retry.", "error");
    } finally {
      inFlight = false;
      document.body.classList.remove("busy");
    }
  }

  let kind = null;

  function submit() {
    let body;
    try {
      body = kind.collect();
      if (window.Task.questions) body.answers = window.Task.questions.collect();
    } catch (problem) {
      status(String(problem.message || problem), "error");
      return;
    }
    if (flagBoxes.length) body.flags = draft.flags;
    body.duration_ms = Math.round(elapsed());
    const url = `/api/v1/assignments/${config.assignment_id}/annotations`;
    send(url, body, { "Idempotency-Key": draft.key }, "Saved. Loading the next task…");
  }

  // Skip: a reason is required; the panel keeps the keyboard flow (1…n pick, Enter skips).
  const panel = $("skip-panel");
  const reasons = Array.from(panel.querySelectorAll('input[name="reason"]'));
  function openSkip() {
    panel.hidden = false;
    reasons[0].focus();
  }
  function closeSkip() {
    panel.hidden = true;
  }
  panel.addEventListener("submit", (event) => {
    event.preventDefault();
    const picked = reasons.find((r) => r.checked);
    const reason = picked && picked.value === "other" ? $("skip-other").value : picked && picked.value;
    if (!reason || !reason.trim()) {
      status("Say why you skip this task.", "error");
      return;
    }
    const url = `/api/v1/assignments/${config.assignment_id}/skip`;
    send(url, { reason: reason.trim() }, {}, "Skipped. Loading the next task…");
  });
  panel.addEventListener("keydown", (event) => {
    if (event.key === "Escape") closeSkip();
    const n = Number(event.key);
    if (event.target.type !== "text" && n >= 1 && n <= reasons.length) {
      reasons[n - 1].checked = true;
      reasons[n - 1].focus();
    }
  });
  $("skip-other").addEventListener("focus", () => { reasons[reasons.length - 1].checked = true; });
  $("skip-cancel").addEventListener("click", closeSkip);
  $("skip-button").addEventListener("click", openSkip);
  $("submit-button").addEventListener("click", submit);

  document.addEventListener("keydown", (event) => {
    if (!kind || !panel.hidden || finished) return;
    const typing = event.target.matches("input[type=text], textarea, select");
    if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
      event.preventDefault();
      submit();
      return;
    }
    if (typing || event.ctrlKey || event.metaKey || event.altKey) return;
    // Inside a question the keys belong to its controls (arrows, digits); Enter still submits.
    const inQuestion = event.target.closest && event.target.closest("[data-questions]");
    if (event.key === "Enter" && !event.target.matches("a, .main-actions button")) {
      event.preventDefault();
      submit();
    } else if (inQuestion) {
      return;
    } else if (event.key === "s" || event.key === "S") {
      event.preventDefault();
      openSkip();
    } else if (kind.onKey && kind.onKey(event)) {
      event.preventDefault();
    }
  }, { signal: stopped.signal });

  forgetOldDrafts();
  prepareNext();
  window.Task = {
    config,
    draft,
    save,
    status,
    /** A page kind registers { collect(): body, onKey(event): handled }. */
    register(handler) {
      kind = handler;
    },
    /** Ends this task's timer and keyboard handling (before the next task is swapped in). */
    stop() {
      finished = true;
      clearInterval(clock);
      stopped.abort();
    },
  };
})();
