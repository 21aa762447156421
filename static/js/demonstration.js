// Demonstration: the ideal reply, or a whole dialogue (user and assistant turns).
"use strict";

// Kept as window.TaskKind so the page can start it again on the next task it swaps in.
(window.TaskKind = () => {
  const { draft, save } = window.Task;
  const box = document.getElementById("turns");
  const remove = document.getElementById("remove-turn");
  const valid = (t) => t && (t.role === "user" || t.role === "assistant") && typeof t.content === "string";
  draft.data.turns = (draft.data.turns || []).filter(valid);
  if (!draft.data.turns.length) draft.data.turns.push({ role: "assistant", content: "" });
  const turns = draft.data.turns;
  const limit = Number(box.dataset.maxLength) || Infinity;
  const number = (n) => n.toLocaleString("en-US");

  // Characters used / the server's limit under each text box; over the limit it turns red.
  function count(counter, text) {
    const used = text.value.length;
    counter.textContent = `${number(used)} / ${number(limit)} characters`;
    counter.classList.toggle("over", used > limit);
    if (used > limit) counter.textContent += ` — ${number(used - limit)} over the limit`;
  }

  function render() {
    box.replaceChildren();
    turns.forEach((turn, index) => {
      const label = document.createElement("label");
      label.className = `turn role-${turn.role}`;
      const role = document.createElement("span");
      role.className = "role";
      role.textContent = turn.role === "assistant" ? (index === 0 ? "assistant · your reply" : "assistant") : "user";
      const text = document.createElement("textarea");
      text.rows = index === turns.length - 1 ? 10 : 4;
      text.value = turn.content;
      text.dataset.turn = String(index);
      text.placeholder = turn.role === "assistant" ? "Write the ideal assistant reply…" : "What the user says next…";
      const counter = document.createElement("span");
      counter.className = "char-count small";
      counter.setAttribute("aria-live", "polite");
      text.addEventListener("input", () => {
        turn.content = text.value;
        count(counter, text);
        save();
      });
      text.addEventListener("keydown", (event) => {
        if (event.key === "Escape") text.blur();
      });
      count(counter, text);
      label.append(role, text, counter);
      box.append(label);
    });
    remove.hidden = turns.length < 3;
  }

  document.getElementById("add-turn").addEventListener("click", () => {
    turns.push({ role: "user", content: "" }, { role: "assistant", content: "" });
    save();
    render();
    box.querySelector(`textarea[data-turn="${turns.length - 2}"]`).focus();
  });
  remove.addEventListener("click", () => {
    turns.splice(-2, 2);
    save();
    render();
  });

  window.Task.register({
    collect() {
      const empty = turns.findIndex((t) => !t.content.trim());
      if (empty >= 0) {
        box.querySelector(`textarea[data-turn="${empty}"]`).focus();
        throw new Error(`Turn ${empty + 1} (${turns[empty].role}) is empty.`);
      }
      const long = turns.findIndex((t) => t.content.length > limit);
      if (long >= 0) {
        box.querySelector(`textarea[data-turn="${long}"]`).focus();
        throw new Error(`Turn ${long + 1} has ${number(turns[long].content.length)} characters; the limit is ${number(limit)}.`);
      }
      if (turns.length === 1) return { demonstration: turns[0].content };
      return { demonstration: turns.map((t) => ({ role: t.role, content: t.content })) };
    },
  });
  render();
  box.querySelector("textarea").focus();
})();
