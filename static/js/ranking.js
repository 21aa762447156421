// Ranking: 1…K pick the next best, Backspace undoes, drag and drop into numbered slots.
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

  function render() {
    slots.forEach((slot, rank) => {
      const body = slot.querySelector(".slot-body");
      const id = ranking[rank];
      slot.classList.toggle("filled", Boolean(id));
      slot.classList.toggle("next", rank === ranking.length);
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
      text.textContent = `Response ${card.dataset.key} — ${card.dataset.excerpt}`;
      chip.append(key, text);
      chip.addEventListener("dragstart", (event) => startDrag(event, id));
      body.append(chip);
    });
    for (const card of cards) {
      const rank = ranking.indexOf(card.dataset.response);
      card.classList.toggle("ranked", rank >= 0);
      card.querySelector("[data-rank-badge]").textContent = rank >= 0 ? `#${rank + 1}` : "";
    }
  }

  function change() {
    save();
    render();
  }

  function pick(id) {
    if (!ranking.includes(id)) {
      ranking.push(id);
      change();
    }
  }

  function place(id, rank) {
    const from = ranking.indexOf(id);
    if (from >= 0) ranking.splice(from, 1);
    ranking.splice(Math.min(rank, ranking.length), 0, id);
    change();
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
      ranking.splice(at, 1);
      change();
    }
  });

  window.Task.register({
    onKey(event) {
      const n = Number(event.key);
      if (Number.isInteger(n) && n >= 1 && n <= cards.length) {
        pick(cards[n - 1].dataset.response);
        return true;
      }
      if (event.key === "Backspace") {
        ranking.pop();
        change();
        return true;
      }
      return false;
    },
    collect() {
      const left = ids.length - ranking.length;
      if (left === 1) ranking.push(ids.find((id) => !ranking.includes(id)));  // the worst is clear
      else if (left > 0) throw new Error(`Rank all ${ids.length} responses first (${left} left).`);
      change();
      return { ranking: ranking.map(Number) };
    },
  });
  render();
})();
