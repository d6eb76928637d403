// The console's only script: refresh the live stats panel every 3 seconds.
// Plain JavaScript, shipped in the package; the pages work without it.
"use strict";
(function () {
  function refresh() {
    var panel = document.querySelector("[data-refresh]");
    if (!panel || document.hidden) { return; }
    fetch(panel.getAttribute("data-refresh"), { credentials: "same-origin" })
      .then(function (answer) { return answer.ok ? answer.text() : null; })
      .then(function (html) {
        if (html === null) { return; }
        var holder = document.createElement("div");
        holder.innerHTML = html;
        var fresh = holder.querySelector("[data-refresh]");
        if (fresh) { panel.replaceWith(fresh); }
      })
      .catch(function () { /* the next tick tries again */ });
  }
  setInterval(refresh, 3000);
})();
