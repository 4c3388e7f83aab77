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

  function sending(event) {
    var config = event.detail.requestConfig;
    return Boolean(config && config.verb && config.verb !== "get");
  }

  // A form sent by htmx is not sent again until its answer is in, nor after an answer that
  // leaves the page (HX-Redirect): a double click made two openings. What a person sends
  // also clears the messages of what they did before.
  document.body.addEventListener("htmx:beforeRequest", function (event) {
    if (!sending(event)) return;
    document.querySelectorAll("#flashes > .flash, .flashes-inline > .flash").forEach(function (old) {
      old.remove();
    });
    var form = event.detail.elt;
    if (form.tagName !== "FORM") return;
    form.querySelectorAll("button, input[type=submit]").forEach(function (button) {
      if (button.disabled) return;
      button.disabled = true;
      button.dataset.sending = "1";
    });
  });
  document.body.addEventListener("htmx:afterRequest", function (event) {
    // A change made on a board's page (its applicant panel: a reject, a tag) shows on the
    // board at once, not at its next poll.
    if (sending(event) && event.detail.successful && document.getElementById("board-live")) {
      htmx.trigger(document.body, "board-poll");
    }
    var form = event.detail.elt;
    if (form.tagName !== "FORM") return;
    var xhr = event.detail.xhr;
    if (event.detail.successful && xhr && xhr.getResponseHeader("HX-Redirect")) return;
    form.querySelectorAll("[data-sending]").forEach(function (button) {
      button.disabled = false;
      delete button.dataset.sending;
    });
  });

  // After a swap, the keyboard stays where it was: on the control that sent the request,
  // found again in what came back by its id or its name, else on the section swapped in.
  var focused = null;
  document.body.addEventListener("htmx:beforeRequest", function (event) {
    var active = document.activeElement;
    // Only a request the focused control (or its form) sent: not a poll's.
    if (!active || active === document.body || !event.detail.elt.contains(active)) return;
    focused = {
      element: active,
      id: active.id,
      label: active.getAttribute("aria-label"),
      text: active.tagName === "BUTTON" ? active.textContent.trim() : "",
    };
  });
  function findAgain(was, within) {
    if (was.id && document.getElementById(was.id)) return document.getElementById(was.id);
    if (was.label) {
      var named = document.querySelector('[aria-label="' + CSS.escape(was.label) + '"]');
      if (named) return named;
    }
    if (was.text) {
      var buttons = within.querySelectorAll("button");
      for (var i = 0; i < buttons.length; i++) {
        if (buttons[i].textContent.trim() === was.text) return buttons[i];
      }
    }
    return null;
  }
  document.body.addEventListener("htmx:afterSettle", function (event) {
    var was = focused;
    if (!was || document.contains(was.element)) return;
    if (document.activeElement && document.activeElement !== document.body) return;
    focused = null;
    var target = event.detail.target || document.body;
    var again = findAgain(was, target);
    if (!again && target !== document.body && document.contains(target)) {
      if (!target.hasAttribute("tabindex")) target.setAttribute("tabindex", "-1");
      again = target;
    }
    if (again) again.focus();
  });

  // Text typed into one form of a section outlives another form's redraw of that section
  // (a note being written while another is edited, a new stage's name while one is moved):
  // it goes back into the field of the same id, when that comes back untouched.
  var drafts = null;
  var TYPED = "input[id]:not([type=hidden]):not([type=checkbox]):not([type=radio])" +
    ":not([type=file]):not([type=submit]), textarea[id]";
  document.body.addEventListener("htmx:beforeSwap", function (event) {
    drafts = null;
    var target = event.detail.target;
    var config = event.detail.requestConfig;
    // A section's redraw only: a boosted visit is another page.
    if (!target || target === document.body || (config && config.boosted)) return;
    // The element that sent the request (the event's own elt is the swap's target).
    var sender = config && config.elt;
    var sent = sender && sender.closest ? sender.closest("form") : null;
    target.querySelectorAll(TYPED).forEach(function (field) {
      if (!field.value || field.value === field.defaultValue) return;
      if (sent && sent.contains(field)) return;  // what its own form sent is the server's now
      drafts = drafts || {};
      drafts[field.id] = field.value;
    });
  });
  document.body.addEventListener("htmx:afterSwap", function () {
    var kept = drafts;
    drafts = null;
    if (!kept) return;
    Object.keys(kept).forEach(function (id) {
      var field = document.getElementById(id);
      if (field && field.value === field.defaultValue) field.value = kept[id];
    });
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
