// Plutomi's own script: small, no build step. The pages work without it.
(function () {
  "use strict";

  // Every htmx request carries the CSRF token of the page as it is now (see base.html), and
  // the org the page shows: a change sent after another tab switched org is refused.
  document.body.addEventListener("htmx:configRequest", function (event) {
    var token = document.getElementById("csrf-token");
    if (!token) return;
    event.detail.headers["X-CSRFToken"] = token.dataset.token;
    if (token.dataset.org) event.detail.headers["X-Plutomi-Org"] = token.dataset.org;
  });

  // Flashes that an htmx partial did not render arrive as an HX-Trigger "flash" event.
  document.body.addEventListener("flash", function (event) {
    var box = document.getElementById("flashes");
    if (!box) return;
    (event.detail.value || []).forEach(function (item) {
      // The same message again (a poll refused every few seconds) is shown once.
      var last = box.lastElementChild;
      if (last && last.textContent === item.message) return;
      var div = document.createElement("div");
      div.className = "flash flash-" + item.category;
      div.setAttribute("role", item.category === "error" ? "alert" : "status");
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

  // A file over the upload limit is refused as it is chosen, beside its field: sent, the
  // server would refuse the whole request after the long upload, and the form with it.
  function describedBy(input, id, on) {
    var ids = (input.getAttribute("aria-describedby") || "").split(" ").filter(function (x) {
      return x && x !== id;
    });
    if (on) ids.push(id);
    if (ids.length) input.setAttribute("aria-describedby", ids.join(" "));
    else input.removeAttribute("aria-describedby");
  }
  document.addEventListener("change", function (event) {
    var input = event.target;
    if (!input.matches || !input.matches("input[type=file][data-max-mb]")) return;
    var id = input.id + "-too-large";
    var old = document.getElementById(id);
    if (old) old.remove();
    describedBy(input, id, false);
    var max = Number(input.dataset.maxMb);
    var file = input.files && input.files[0];
    var tooLarge = Boolean(file && max && file.size > max * 1024 * 1024);
    input.setAttribute("aria-invalid", tooLarge ? "true" : "false");
    var field = input.closest(".field");
    if (!tooLarge || !field) return;
    input.value = "";
    var note = document.createElement("p");
    note.className = "error";
    note.id = id;
    note.setAttribute("role", "alert");
    note.textContent = file.name + " is larger than " + max + " MB. Choose a smaller file.";
    field.appendChild(note);
    describedBy(input, id, true);
  });

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
