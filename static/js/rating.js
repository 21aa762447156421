// Rating: each response gets thumbs up/down (U / D) or a score 0…5 (digit keys), plus flags.
"use strict";

// Kept as window.TaskKind so the page can start it again on the next task it swaps in.
(window.TaskKind = () => {
  const { draft, save, config } = window.Task;
  const cards = Array.from(document.querySelectorAll("#responses .response"));
  const thumbs = config.rating_scale === "thumbs";
  draft.data.scores ||= {};
  const scores = draft.data.scores;
  // A prefilled suggestion starts the scores once (not over a draft the labeler changed).
  const suggested = config.suggestion;
  if (suggested && suggested.mode === "prefilled" && suggested.scores && !draft.data.prefilled && !Object.keys(scores).length) {
    for (const card of cards) {
      const value = suggested.scores[card.dataset.response];
      if (value !== undefined) scores[card.dataset.response] = value;
    }
    draft.data.prefilled = true;
  }
  let current = 0;

  function render() {
    cards.forEach((card, index) => {
      const value = scores[card.dataset.response];
      card.classList.toggle("current", index === current);
      card.classList.toggle("scored", value !== undefined);
      for (const button of card.querySelectorAll("[data-score]")) {
        const on = Number(button.dataset.score) === value;
        button.classList.toggle("selected", on);
        button.setAttribute("aria-pressed", String(on));
      }
    });
  }

  function focusCard(index) {
    current = Math.max(0, Math.min(cards.length - 1, index));
    render();
    cards[current].scrollIntoView({ block: "nearest", behavior: "smooth" });
  }

  function score(index, value) {
    scores[cards[index].dataset.response] = value;
    save();
    const next = cards.findIndex((card) => scores[card.dataset.response] === undefined);
    focusCard(next >= 0 ? next : index);
  }

  cards.forEach((card, index) => {
    card.addEventListener("click", () => {
      current = index;
      render();
    });
    for (const button of card.querySelectorAll("[data-score]")) {
      button.addEventListener("click", (event) => {
        event.stopPropagation();
        button.blur();
        score(index, Number(button.dataset.score));
      });
    }
  });

  window.Task.register({
    onKey(event) {
      const key = event.key.toLowerCase();
      if (thumbs && (key === "u" || key === "d")) {
        score(current, key === "u" ? 1 : -1);
      } else if (!thumbs && /^[0-5]$/.test(key)) {
        score(current, Number(key));
      } else if (key === "j" || key === "arrowdown") {
        focusCard(current + 1);
      } else if (key === "k" || key === "arrowup") {
        focusCard(current - 1);
      } else {
        return false;
      }
      return true;
    },
    collect() {
      const left = cards.filter((card) => scores[card.dataset.response] === undefined).length;
      if (left) throw new Error(`Score every response first (${left} left).`);
      return { scores };
    },
  });
  render();
})();
