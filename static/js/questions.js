// The project's extra questions on a labeling page: answers kept in the draft (they survive a
// reload), keys inside a question (a digit picks a Likert point, Y / N answer yes/no), and the
// `answers` object of the submit. The controls are native radios, checkboxes and text areas:
// Tab reaches each group, arrows move within it, Space ticks a box.
"use strict";

// Kept as window.TaskQuestions so the page can start it again on the next task it swaps in.
(window.TaskQuestions = () => {
  const { draft, save } = window.Task;
  const groups = Array.from(document.querySelectorAll("fieldset[data-question]"));
  if (!groups.length) {
    window.Task.questions = null;
    return;
  }
  draft.answers ||= {};
  const answers = draft.answers;

  const perResponse = (group) => group.dataset.response !== undefined;
  const inputs = (group) => Array.from(group.querySelectorAll("input, textarea"));

  function read(group) {
    const type = group.dataset.type;
    if (type === "text") return group.querySelector("textarea").value;
    if (type === "multi_label") return inputs(group).filter((i) => i.checked).map((i) => i.value);
    const picked = inputs(group).find((i) => i.checked);
    if (!picked) return undefined;
    if (type === "likert") return Number(picked.value);
    if (type === "yes_no") return picked.value === "yes";
    return picked.value;
  }

  function show(group, value) {
    const type = group.dataset.type;
    if (value === undefined || value === null) return;
    if (type === "text") {
      group.querySelector("textarea").value = value;
      return;
    }
    for (const input of inputs(group)) {
      if (type === "multi_label") input.checked = value.includes(input.value);
      else if (type === "yes_no") input.checked = (input.value === "yes") === value;
      else input.checked = input.value === String(value);
    }
  }

  function remember(group) {
    const name = group.dataset.question;
    const value = read(group);
    if (perResponse(group)) {
      const byResponse = (answers[name] ||= {});
      if (value === undefined) delete byResponse[group.dataset.response];
      else byResponse[group.dataset.response] = value;
    } else if (value === undefined) {
      delete answers[name];
    } else {
      answers[name] = value;
    }
    save();
  }

  function pick(group, value) {
    const input = inputs(group).find((i) => i.value === value);
    if (!input) return false;
    input.checked = true;
    input.focus();
    remember(group);
    return true;
  }

  for (const group of groups) {
    const stored = answers[group.dataset.question];
    show(group, perResponse(group) ? (stored || {})[group.dataset.response] : stored);
    group.addEventListener("change", () => remember(group));
    group.addEventListener("input", () => remember(group));
    group.addEventListener("keydown", (event) => {
      if (event.ctrlKey || event.metaKey || event.altKey) return;
      const key = event.key.toLowerCase();
      let handled = false;
      if (group.dataset.type === "likert" && /^[0-9]$/.test(key)) {
        handled = pick(group, key) || (key === "0" && pick(group, "10"));  // 0 stands for 10
      } else if (group.dataset.type === "yes_no" && (key === "y" || key === "n")) {
        handled = pick(group, key === "y" ? "yes" : "no");
      }
      if (handled) event.preventDefault();
    });
  }

  const title = (group) => group.querySelector("legend").firstChild.textContent.trim();

  window.Task.questions = {
    /** The `answers` of the submit; throws naming the first required question left open. */
    collect() {
      const out = {};
      for (const group of groups) {
        const name = group.dataset.question;
        const value = read(group);
        const open = value === undefined || value === "" || (Array.isArray(value) && !value.length);
        if (open && group.hasAttribute("data-required")) {
          group.querySelector("input, textarea").focus();
          const where = perResponse(group) ? " for every response" : "";
          throw new Error(`Answer “${title(group)}”${where} first.`);
        }
        if (perResponse(group)) {
          if (value !== undefined) (out[name] ||= {})[group.dataset.response] = value;
        } else if (!open) {
          out[name] = value;
        }
      }
      return out;
    },
  };
})();
