// Start-run form: the kind decides the default hyper-parameters, the usable snapshots and
// whether a reward model is asked for.
(function () {
  "use strict";
  const defaults = JSON.parse(document.getElementById("run-defaults").textContent);
  const snapshotKinds = JSON.parse(document.getElementById("snapshot-kinds").textContent);
  const kind = document.getElementById("kind");
  const snapshot = document.getElementById("snapshot");
  let previous = kind.value;

  function apply() {
    const k = kind.value;
    for (const input of document.querySelectorAll("[data-field]")) {
      const field = input.dataset.field;
      if (input.value === String(defaults[previous][field])) input.value = defaults[k][field];
    }
    previous = k;
    let firstUsable = null;
    for (const option of snapshot.options) {
      const usable = snapshotKinds[k].includes(option.dataset.kind);
      option.disabled = !usable;
      if (usable && firstUsable === null) firstUsable = option;
    }
    if (snapshot.selectedOptions[0] && snapshot.selectedOptions[0].disabled && firstUsable) {
      firstUsable.selected = true;
    }
    document.getElementById("reward-row").hidden = k !== "ppo";
    document.getElementById("defaults").textContent = JSON.stringify(defaults[k], null, 2);
  }
  kind.addEventListener("change", apply);
  apply();
})();
