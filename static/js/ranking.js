// Ranking: 1…K pick the next best, = ties the last pick with the one above, Backspace undoes,
// drag and drop into numbered slots; with a strength scale, A… say how much better the first is.
"use strict";

// Kept as window.TaskKind so the page can start it again on the next task it swaps in.
(window.TaskKind = () => {
  const { draft, save } = window.Task;
  const cards = Array.from(document.querySelectorAll("#responses .response"));
  const slots = Array.from(document.querySelectorAll("#slots .slot"));
  const ids = cards.map((card) => card.dataset.response);
  const cardOf = (id) => cards.find((card) => card.dataset.response === id);
  draft.data.ranking = (draft.data.ranking || []).filter((id) => ids.includes(id));
  const ranking = draft.data.ranking;
  // tied[i]: ranking[i] shares its place with ranking[i - 1] (tied[0] is always false).
  draft.data.tied = (draft.data.tied || []).slice(0, ranking.length);
  const tied = draft.data.tied;
  while (tied.length < ranking.length) tied.push(false);
  tied[0] = false;
  const strengthBoxes = Array.from(document.querySelectorAll("input[name=strength]"));
  // A prefilled suggestion starts the ranking once (not over a draft the labeler changed).
  const suggested = window.Task.config.suggestion;
  if (suggested && suggested.mode === "prefilled" && suggested.ranking && !draft.data.prefilled && !ranking.length) {
    const groups = suggested.ranking.map((entry) => (Array.isArray(entry) ? entry : [entry]).map(String));
    if (groups.flat().every((id) => ids.includes(id))) {
      tied.length = 0;
      for (const group of groups) group.forEach((id, i) => { ranking.push(id); tied.push(i > 0); });
    }
    draft.data.prefilled = true;
  }

  // The place shown for each position: tied positions share the place of the first of them.
  function places() {
    const out = [];
    ranking.forEach((_, i) => out.push(i > 0 && tied[i] ? out[i - 1] : i + 1));
    return out;
  }

  function render() {
    const place = places();
    slots.forEach((slot, rank) => {
      const body = slot.querySelector(".slot-body");
      const id = ranking[rank];
      const isTied = Boolean(id) && rank > 0 && tied[rank];
      slot.classList.toggle("filled", Boolean(id));
      slot.classList.toggle("next", rank === ranking.length);
      slot.classList.toggle("tied", isTied);
      slot.querySelector(".slot-number").textContent = id ? place[rank] : rank + 1;
      const toggle = slot.querySelector(".tie-toggle");
      if (toggle) {
        toggle.setAttribute("aria-pressed", String(isTied));
        toggle.disabled = !id;
        toggle.setAttribute("aria-label", isTied ? `Untie slot ${rank + 1} from the slot above` : `Tie slot ${rank + 1} with the slot above`);
      }
      body.replaceChildren();
      if (!id) {
        const empty = document.createElement("span");
        empty.className = "slot-empty";
        empty.textContent = rank === 0 ? "best" : rank === slots.length - 1 ? "worst" : "";
        body.append(empty);
        return;
      }
      const card = cardOf(id);
      const chip = document.createElement("span");
      chip.className = "chip";
      chip.draggable = true;
      chip.dataset.response = id;
      const key = document.createElement("kbd");
      key.textContent = card.dataset.key;
      const text = document.createElement("span");
      text.className = "chip-text";
      text.textContent = `${isTied ? "tied · " : ""}Response ${card.dataset.key} — ${card.dataset.excerpt}`;
      chip.append(key, text);
      chip.addEventListener("dragstart", (event) => startDrag(event, id));
      body.append(chip);
    });
    for (const card of cards) {
      const rank = ranking.indexOf(card.dataset.response);
      const shared = rank >= 0 && place.filter((p) => p === place[rank]).length > 1;
      card.classList.toggle("ranked", rank >= 0);
      card.querySelector("[data-rank-badge]").textContent =
        rank >= 0 ? `#${place[rank]}${shared ? " (tie)" : ""}` : "";
    }
    for (const box of strengthBoxes) box.checked = String(draft.data.strength) === box.value;
  }

  function change() {
    save();
    render();
  }

  function pick(id) {
    if (!ranking.includes(id)) {
      ranking.push(id);
      tied.push(false);
      change();
    }
  }

  function remove(at) {
    ranking.splice(at, 1);
    tied.splice(at, 1);
    if (tied.length) tied[0] = false;
  }

  function place(id, rank) {
    const from = ranking.indexOf(id);
    if (from >= 0) remove(from);
    const at = Math.min(rank, ranking.length);
    ranking.splice(at, 0, id);
    tied.splice(at, 0, false);
    tied[0] = false;
    change();
  }

  function toggleTie(at) {
    if (at < 1 || at >= ranking.length) return false;
    tied[at] = !tied[at];
    change();
    return true;
  }

  function startDrag(event, id) {
    event.dataTransfer.setData("text/plain", id);
    event.dataTransfer.effectAllowed = "move";
  }

  for (const card of cards) {
    card.addEventListener("dragstart", (event) => startDrag(event, card.dataset.response));
    card.addEventListener("click", (event) => {
      if (!event.target.closest("input, label, a, summary, fieldset")) pick(card.dataset.response);
    });
  }
  slots.forEach((slot, rank) => {
    slot.addEventListener("dragover", (event) => {
      event.preventDefault();
      slot.classList.add("over");
    });
    slot.addEventListener("dragleave", () => slot.classList.remove("over"));
    slot.addEventListener("drop", (event) => {
      event.preventDefault();
      slot.classList.remove("over");
      const id = event.dataTransfer.getData("text/plain");
      if (ids.includes(id)) place(id, rank);
    });
  });
  const pool = document.getElementById("responses");
  pool.addEventListener("dragover", (event) => event.preventDefault());
  pool.addEventListener("drop", (event) => {
    // A chip dragged back onto the responses leaves the ranking.
    event.preventDefault();
    const id = event.dataTransfer.getData("text/plain");
    const at = ranking.indexOf(id);
    if (at >= 0) {
      remove(at);
      change();
    }
  });
  for (const toggle of document.querySelectorAll("#slots .tie-toggle")) {
    toggle.addEventListener("click", () => toggleTie(Number(toggle.dataset.tie)));
  }
  for (const box of strengthBoxes) {
    box.addEventListener("change", () => {
      draft.data.strength = Number(box.value);
      save();
    });
  }

  // The ranking as the API takes it: ids best first, tied ones grouped in an inner list.
  function entries() {
    const out = [];
    ranking.forEach((id, i) => {
      if (i > 0 && tied[i]) {
        const last = out[out.length - 1];
        if (Array.isArray(last)) last.push(Number(id));
        else out[out.length - 1] = [last, Number(id)];
      } else out.push(Number(id));
    });
    return out;
  }

  window.Task.register({
    onKey(event) {
      const n = Number(event.key);
      if (Number.isInteger(n) && n >= 1 && n <= cards.length) {
        pick(cards[n - 1].dataset.response);
        return true;
      }
      if (event.key === "Backspace") {
        if (ranking.length) remove(ranking.length - 1);
        change();
        return true;
      }
      if (event.key === "=") {
        if (!toggleTie(ranking.length - 1)) window.Task.status("Pick two responses before tying them.", "error");
        return true;
      }
      const level = strengthBoxes.find((box) => box.dataset.strengthKey === event.key.toLowerCase());
      if (level) {
        draft.data.strength = Number(level.value);
        change();
        level.focus();
        return true;
      }
      return false;
    },
    collect() {
      const left = ids.length - ranking.length;
      if (left === 1) pick(ids.find((id) => !ranking.includes(id)));  // the worst is clear
      else if (left > 0) throw new Error(`Rank all ${ids.length} responses first (${left} left).`);
      change();
      const body = { ranking: entries() };
      if (strengthBoxes.length && body.ranking.length > 1) {
        if (draft.data.strength === undefined || draft.data.strength === null) {
          const last = strengthBoxes[strengthBoxes.length - 1].dataset.strengthKey.toUpperCase();
          throw new Error(`Say how much better your first choice is (A…${last}).`);
        }
        body.strength = draft.data.strength;
      }
      return body;
    },
  });
  render();
})();
