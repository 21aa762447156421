// Start-run form: the kind and the model decide the suggested hyper-parameters, the kind the
// usable snapshots and whether a reward model is asked for. A field the admin edited is kept.
(function () {
  "use strict";
  const defaults = JSON.parse(document.getElementById("run-defaults").textContent);
  const suggestions = JSON.parse(document.getElementById("run-suggestions").textContent);
  const snapshotKinds = JSON.parse(document.getElementById("snapshot-kinds").textContent);
  const kind = document.getElementById("kind");
  const model = document.getElementById("model");
  const snapshot = document.getElementById("snapshot");

  function suggested() {
    return (suggestions[model.value.trim()] || suggestions[""])[kind.value];
  }
  let previous = suggested();

  function apply() {
    const k = kind.value;
    const now = suggested();
    for (const input of document.querySelectorAll("[data-field]")) {
      const field = input.dataset.field;
      const untouched = input.value.trim() !== "" && Number(input.value) === Number(previous[field]);
      if (untouched || input.value === String(previous[field])) input.value = now[field];
    }
    previous = now;
    // Usable: a snapshot of a kind this run kind trains on, with rows (newest first).
    let firstUsable = null;
    for (const option of snapshot.options) {
      if (!option.value) continue; // the "choose a snapshot" placeholder
      const usable =
        snapshotKinds[k].includes(option.dataset.kind) && Number(option.dataset.trainRows) > 0;
      option.disabled = !usable;
      if (usable && firstUsable === null) firstUsable = option;
    }
    const current = snapshot.selectedOptions[0];
    if (!current || current.disabled) {
      if (firstUsable) firstUsable.selected = true;
      else snapshot.options[0].selected = true;
    }
    const selected = snapshot.selectedOptions[0];
    const warning = document.getElementById("snapshot-warning");
    const noTest = selected && selected.value && Number(selected.dataset.testRows) === 0;
    warning.hidden = !noTest;
    warning.textContent = noTest
      ? `Snapshot #${selected.value} has 0 test rows: the run trains, but reports no eval metrics.`
      : "";
    document.getElementById("reward-row").hidden = k !== "ppo";
    const chosen = snapshot.selectedOptions[0];
    const aspect = k === "rm" && chosen && chosen.dataset.kind === "ratings";
    document.getElementById("aspect-row").hidden = !aspect;
    document.getElementById("aspect").disabled = !aspect;
    document.getElementById("defaults").textContent = JSON.stringify(defaults[k], null, 2);
  }
  kind.addEventListener("change", apply);
  snapshot.addEventListener("change", apply);
  model.addEventListener("input", apply);
  apply();
})();
