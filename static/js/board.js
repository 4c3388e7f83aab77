// The stage board: drag-and-drop moves (SortableJS, posted through htmx), selection for bulk
// actions, and filing the cards that the live poll brings in. Every move can also be made
// without this script, through the "move to" form on each card.
(function () {
  "use strict";

  // Loaded in the page body, so a boosted visit runs it again: listeners are added once, and
  // the board's elements are looked up when used, since navigation replaces them.
  if (window.plutomiBoard) return;
  window.plutomiBoard = true;

  function boardData() {
    var board = document.getElementById("board");
    return board ? board.dataset : null;
  }
  var lastChecked = null;

  function cardsOf(list) {
    return Array.prototype.filter.call(list.children, function (el) {
      return el.classList.contains("board-card");
    });
  }

  function filterValues() {
    var form = document.getElementById("board-filter");
    var values = {};
    if (!form) return values;
    new FormData(form).forEach(function (value, key) {
      if (!value) return;
      if (values[key] === undefined) values[key] = value;
      else values[key] = [].concat(values[key], value);
    });
    return values;
  }

  // --- drag and drop ---------------------------------------------------------------------

  function postMove(values, target) {
    var all = Object.assign(filterValues(), values);
    return htmx.ajax("POST", boardData().moveUrl, {
      source: target, target: target, swap: "outerHTML", values: all,
    });
  }

  function dropped(event) {
    document.body.classList.remove("dragging");
    var item = event.item;
    if (event.from === event.to && event.oldIndex === event.newIndex) return;
    var prev = item.previousElementSibling;
    while (prev && !prev.classList.contains("board-card")) prev = prev.previousElementSibling;
    var next = item.nextElementSibling;
    while (next && !next.classList.contains("board-card")) next = next.nextElementSibling;
    var values = {
      applicant: item.dataset.id,
      version: item.dataset.version,
      stage: event.to.dataset.stage,
      // Where this board showed it: redrawn too if the move is refused.
      from: event.from.dataset.stage,
    };
    if (prev) values.after = prev.dataset.id;
    else if (next) values.before = next.dataset.id;
    item.classList.add("moving");
    item.dataset.pendingMove = JSON.stringify(values);
    postMove(values, item);
  }

  function makeSortable(list) {
    var data = boardData();
    if (!data || data.canMove !== "true" || list.dataset.sortable) return;
    if (typeof Sortable === "undefined") return;
    list.dataset.sortable = "1";
    Sortable.create(list, {
      group: "board",
      draggable: ".board-card",
      filter: "input, select, button, a, label",
      preventOnFilter: false,
      // Touch: a short press starts a drag, so a finger can still scroll the column.
      delay: 150,
      delayOnTouchOnly: true,
      animation: 120,
      onStart: function () { document.body.classList.add("dragging"); },
      onEnd: dropped,
    });
  }

  function init(root) {
    var lists = root.querySelectorAll ? root.querySelectorAll(".cards") : [];
    Array.prototype.forEach.call(lists, makeSortable);
    if (root.classList && root.classList.contains("cards")) makeSortable(root);
    updateBulkBar();
  }
  htmx.onLoad(init);
  // On a boosted visit this script arrives after htmx has announced the new page, so the
  // board already on the page is set up now (a second setup of a list is skipped).
  init(document.body);

  // A throttled move is not failed: it is sent again when the server says it may be.
  document.body.addEventListener("htmx:afterRequest", function (event) {
    var xhr = event.detail.xhr;
    var elt = event.detail.elt;
    if (xhr && xhr.status === 429 && elt && elt.dataset && elt.dataset.pendingMove) {
      var wait = parseInt(xhr.getResponseHeader("Retry-After") || "1", 10);
      var values = JSON.parse(elt.dataset.pendingMove);
      setTimeout(function () { if (document.body.contains(elt)) postMove(values, elt); }, wait * 1000);
    }
    fileLiveCards();
  });

  // --- live updates ------------------------------------------------------------------------

  function fileCard(card) {
    var existing = document.getElementById(card.id);
    var checked = false;
    var focused = "";
    if (existing) {
      var box = existing.querySelector(".card-select");
      checked = !!(box && box.checked);
      // A keyboard user on this card keeps their place when it is filed again.
      if (existing.contains(document.activeElement)) focused = document.activeElement.id;
      existing.remove();
    }
    var list = document.getElementById("cards-" + card.dataset.stage);
    if (!list) return;
    var rank = card.dataset.rank;
    var before = null;
    var cards = cardsOf(list);
    for (var i = 0; i < cards.length; i++) {
      if (cards[i].dataset.rank > rank) { before = cards[i]; break; }
    }
    var more = list.querySelector(".more");
    // Below the last loaded card of a column that has more: it arrives with the next page.
    if (!before && more) return;
    list.insertBefore(card, before || more);
    var newBox = card.querySelector(".card-select");
    if (newBox) newBox.checked = checked;
    htmx.process(card);
    var again = focused && document.getElementById(focused);
    if (again) again.focus({ preventScroll: true });
  }

  function fileLiveCards() {
    var inbox = document.getElementById("live-inbox");
    if (!inbox || !inbox.firstElementChild) return;
    if (inbox.querySelector("[data-redraw]")) {
      inbox.innerHTML = "";
      redraw();
      return;
    }
    Array.prototype.slice.call(inbox.children).forEach(function (el) {
      if (el.dataset.remove) {
        var gone = document.getElementById("card-" + el.dataset.remove);
        if (gone) gone.remove();
        el.remove();
      } else if (el.classList.contains("board-card")) {
        fileCard(el);
      } else {
        el.remove();
      }
    });
    updateBulkBar();
  }

  function redraw() {
    var data = boardData();
    if (!data) return;
    htmx.ajax("GET", data.boardUrl + window.location.search, {
      target: "#board-columns", swap: "innerHTML", headers: { "HX-Target": "board-columns" },
    });
  }
  document.body.addEventListener("board-redraw", function () {
    clearSelection();
    redraw();
  });

  // --- selection and bulk actions ----------------------------------------------------------

  function bulkForm() {
    return document.getElementById("bulk-form");
  }

  function selectedBoxes() {
    return document.querySelectorAll(".card-select:checked");
  }

  function clearSelection() {
    var bulk = bulkForm();
    Array.prototype.forEach.call(selectedBoxes(), function (box) { box.checked = false; });
    if (bulk) bulk.elements.all_in_stage.value = "";
    updateBulkBar();
  }

  function updateBulkBar() {
    var bulk = bulkForm();
    if (!bulk) return;
    var all = bulk.elements.all_in_stage.value;
    var label = bulk.querySelector(".bulk-count");
    if (all) {
      var count = document.getElementById("count-" + all);
      var name = bulk.dataset.allName || "this stage";
      label.textContent = "All " + (count ? count.textContent : "") + " in " + name + " selected";
      bulk.hidden = false;
      return;
    }
    var n = selectedBoxes().length;
    label.textContent = n + " selected";
    bulk.hidden = n === 0;
  }

  document.addEventListener("click", function (event) {
    var bulk = bulkForm();
    var box = event.target.closest(".card-select");
    if (box) {
      if (bulk) bulk.elements.all_in_stage.value = "";
      // Shift-click selects the range from the last box clicked, within one column.
      if (event.shiftKey && lastChecked && lastChecked !== box &&
          lastChecked.closest(".cards") === box.closest(".cards")) {
        var boxes = Array.prototype.slice.call(box.closest(".cards").querySelectorAll(".card-select"));
        var a = boxes.indexOf(lastChecked), b = boxes.indexOf(box);
        boxes.slice(Math.min(a, b), Math.max(a, b) + 1).forEach(function (el) { el.checked = box.checked; });
      }
      lastChecked = box;
      updateBulkBar();
      return;
    }
    var all = event.target.closest(".select-all");
    if (all && bulk) {
      clearSelection();
      bulk.elements.all_in_stage.value = all.dataset.stage;
      bulk.dataset.allName = all.dataset.stageName;
      updateBulkBar();
      return;
    }
    if (event.target.closest(".bulk-clear")) clearSelection();
    var opener = event.target.closest(".board-card .card-name");
    if (opener) panelOpener = opener.closest(".board-card").id;
    if (event.target.closest(".panel-close")) closePanel();
  });

  // The applicant panel closes by its button or Escape, and the keyboard goes back to the
  // card it was opened from (found again by id: the live poll may have redrawn it).
  var panelOpener = null;
  function closePanel() {
    var panel = document.getElementById("panel");
    if (!panel) return;
    panel.innerHTML = "";
    var card = panelOpener && document.getElementById(panelOpener);
    var link = card && card.querySelector(".card-name");
    if (link) link.focus();
  }
  document.addEventListener("keydown", function (event) {
    var panel = document.getElementById("panel");
    if (event.key !== "Escape" || !panel || !panel.contains(document.activeElement)) return;
    // Escape in an open "move to" menu or a field of the panel is theirs first.
    if (event.target.matches("input, select, textarea")) return;
    closePanel();
  });
})();
