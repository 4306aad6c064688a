// Live inbox: reload the list every few seconds while the tab is visible (no CDN, no framework).
(function () {
  var me = document.currentScript;
  var every = parseInt(me.getAttribute("data-interval") || "5000", 10);
  setInterval(function () {
    if (document.visibilityState !== "visible") return;
    fetch(window.location.href, { credentials: "same-origin", headers: { "X-Requested-With": "refresh" } })
      .then(function (r) { return r.ok ? r.text() : null; })
      .then(function (html) {
        if (!html) return;
        var doc = new DOMParser().parseFromString(html, "text/html");
        var fresh = doc.querySelector("main"), old = document.querySelector("main");
        if (fresh && old) old.innerHTML = fresh.innerHTML;
      });
  }, every);
})();
