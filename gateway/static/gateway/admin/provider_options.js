// The provider account form: show only the options of the kind selected in #id_kind.
// Each option's input carries data-provider-kind (gateway/admin/provider_options.py); its row is
// hidden when that is not the selected kind, and the Options fieldset when the kind has none.
// Without JavaScript every kind's options stay listed, each labelled with its kind.
"use strict";
(function () {
  function update(select) {
    var fieldsets = new Set();
    var shown = new Set();
    document.querySelectorAll("[data-provider-kind]").forEach(function (input) {
      var row = input.closest(".form-row") || input.parentElement;
      var fieldset = input.closest("fieldset");
      var visible = input.getAttribute("data-provider-kind") === select.value;
      row.hidden = !visible;
      row.style.display = visible ? "" : "none";
      if (fieldset) {
        fieldsets.add(fieldset);
        if (visible) {
          shown.add(fieldset);
        }
      }
    });
    fieldsets.forEach(function (fieldset) {
      fieldset.style.display = shown.has(fieldset) ? "" : "none";
    });
  }

  function start() {
    var select = document.getElementById("id_kind");
    if (!select) {
      return;
    }
    select.addEventListener("change", function () { update(select); });
    update(select);
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
