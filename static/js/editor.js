// The opening editor: drag stages and questions with SortableJS; the new order is posted by
// htmx (hx-trigger="reordered" on each list, sending the ids in one hidden "order" field). Move up / Move down buttons do the same without it.
(function () {
  "use strict";
  if (window.plutomiEditor) return; // a boosted visit runs this script again
  window.plutomiEditor = true;

  function init(root) {
    var lists = [];
    if (root.matches && root.matches("[data-sortable]")) lists.push(root);
    root.querySelectorAll("[data-sortable]").forEach(function (el) { lists.push(el); });
    lists.forEach(function (list) {
      if (list.sortable) return;
      list.sortable = Sortable.create(list, {
        handle: ".drag-handle",
        draggable: "li[data-id]",
        animation: 150,
        onEnd: function (event) {
          if (event.oldIndex === event.newIndex) return;
          // After Sortable has tidied up; each item once, in the order shown.
          setTimeout(function () {
            var seen = {};
            var order = [];
            Array.prototype.forEach.call(list.children, function (item) {
              var id = item.getAttribute("data-id");
              if (id && !seen[id] && item.style.display !== "none") {
                seen[id] = true;
                order.push(id);
              }
            });
            // Not bubbling: a question list's drop must not reorder the stages around it.
            document.getElementById(list.getAttribute("data-order-input")).value = order.join(",");
            list.dispatchEvent(new CustomEvent("reordered"));
          }, 0);
        },
      });
    });
  }

  function start() {
    if (!window.Sortable || !window.htmx) return setTimeout(start, 30);
    htmx.onLoad(init);
    init(document.body);
  }
  start();
})();
