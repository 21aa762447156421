// Project page import: send the file with XMLHttpRequest to show its upload progress, then
// poll the server's count of prompts stored while it imports, and put the answer (the report,
// or the bad lines) in place of the import card and the stats, without a page load.
// Without this script the form posts as usual.
(function () {
  "use strict";
  if (!window.FormData || !window.DOMParser || !window.crypto) return;

  function megabytes(n) {
    return (n / 1e6).toFixed(n < 1e7 ? 1 : 0) + " MB";
  }

  function newId() {
    const bytes = new Uint8Array(16);
    window.crypto.getRandomValues(bytes);
    return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  }

  // Whether the answer was the project page (its import card) and replaced ours.
  function replaceFrom(html) {
    const page = new DOMParser().parseFromString(html, "text/html");
    if (!page.querySelector("#import")) return false;
    for (const selector of ["#import", ".stats"]) {
      const fresh = page.querySelector(selector);
      const old = document.querySelector(selector);
      if (fresh && old) old.replaceWith(document.importNode(fresh, true));
    }
    const notices = page.querySelectorAll("main > .flash");
    for (const old of document.querySelectorAll("main > .flash")) old.remove();
    const stats = document.querySelector(".stats");
    for (const notice of notices) stats.before(document.importNode(notice, true));
    return true;
  }

  // Delegated: the card (and its form) is replaced by each answer.
  document.addEventListener("submit", function (event) {
    const form = event.target;
    if (form.id !== "import-form") return;
    event.preventDefault();
    const box = form.querySelector(".import-progress");
    const bar = box.querySelector("progress");
    const text = box.querySelector("[role=status]");
    const button = form.querySelector("button[type=submit]");

    function show(message, fraction) {
      box.hidden = false;
      text.textContent = message;
      if (fraction === null) bar.removeAttribute("value");
      else bar.value = Math.max(0, Math.min(1, fraction));
    }

    const id = newId();
    const data = new FormData(form);
    data.set("progress_id", id);
    const started = Date.now();
    let polling = null;

    function poll() {
      fetch(form.dataset.progress + "?id=" + id, { credentials: "same-origin" })
        .then((r) => (r.ok ? r.json() : null))
        .then(function (state) {
          if (!state || state.finished || !polling) return;
          const fraction = state.total ? state.done / state.total : null;
          const seconds = (Date.now() - started) / 1000;
          show(
            "Importing: " + state.rows.toLocaleString() + " prompts stored" +
              (fraction !== null ? ", " + Math.round(fraction * 100) + "% of the file read" : "") +
              " (" + Math.round(seconds) + " s)",
            fraction
          );
        })
        .catch(function () {});
    }

    const xhr = new XMLHttpRequest();
    xhr.open("POST", form.action);
    xhr.upload.addEventListener("progress", function (e) {
      if (e.lengthComputable) {
        show("Uploading: " + megabytes(e.loaded) + " of " + megabytes(e.total), e.loaded / e.total);
      }
    });
    xhr.upload.addEventListener("load", function () {
      show("Importing…", null);
      polling = window.setInterval(poll, 500);
    });
    xhr.addEventListener("load", function () {
      window.clearInterval(polling);
      polling = null;
      if (!replaceFrom(xhr.responseText)) {
        button.disabled = false;
        show("The server answered " + xhr.status + " " + xhr.statusText + "; nothing was imported.", 0);
      }
    });
    xhr.addEventListener("error", function () {
      window.clearInterval(polling);
      polling = null;
      button.disabled = false;
      show("The upload failed (network error); nothing was imported. Try again.", 0);
    });
    button.disabled = true;
    show("Uploading…", 0);
    xhr.send(data);
  });
})();
