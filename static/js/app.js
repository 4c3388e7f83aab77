// Plutomi's own script: small, no build step. The pages work without it.
(function () {
  "use strict";

  // Every htmx request carries the CSRF token of the page as it is now (see base.html).
  document.body.addEventListener("htmx:configRequest", function (event) {
    var token = document.getElementById("csrf-token");
    if (token) event.detail.headers["X-CSRFToken"] = token.dataset.token;
  });

  // Flashes that an htmx partial did not render arrive as an HX-Trigger "flash" event.
  document.body.addEventListener("flash", function (event) {
    var box = document.getElementById("flashes");
    if (!box) return;
    (event.detail.value || []).forEach(function (item) {
      var div = document.createElement("div");
      div.className = "flash flash-" + item.category;
      div.setAttribute("role", "status");
      div.textContent = item.message;
      box.appendChild(div);
    });
  });

  // After a refused form, put the cursor in the first field that needs fixing.
  function focusFirstError(root) {
    var field = (root || document).querySelector("[aria-invalid=true]");
    if (field) field.focus();
  }
  document.addEventListener("DOMContentLoaded", function () { focusFirstError(document); });
  document.body.addEventListener("htmx:afterSettle", function (event) { focusFirstError(event.detail.elt); });

  // A network failure gets a message instead of a silently dead button.
  document.body.addEventListener("htmx:sendError", function () {
    var box = document.getElementById("flashes");
    if (!box) return;
    var div = document.createElement("div");
    div.className = "flash flash-error";
    div.textContent = "Could not reach the server. Check your connection and try again.";
    box.appendChild(div);
  });
})();
