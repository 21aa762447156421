// New-project form: show only the settings that apply to the chosen kind (each field's
// data-kinds lists the kinds it applies to); a hidden field is disabled so it is not sent.
(function () {
  "use strict";
  const kind = document.getElementById("project-kind");
  if (!kind) return;
  function show() {
    for (const field of document.querySelectorAll("[data-kinds]")) {
      const applies = field.dataset.kinds.split(" ").includes(kind.value);
      field.hidden = !applies;
      for (const input of field.querySelectorAll("input, select, textarea")) input.disabled = !applies;
    }
  }
  kind.addEventListener("change", show);
  show();
})();
