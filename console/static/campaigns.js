// Campaign form: the segment's live audience count (a small fetch while typing).
(function () {
  var box = document.querySelector("textarea[data-audience-url]");
  var out = document.querySelector("[data-audience]");
  if (!box || !out) return;
  var csrf = document.querySelector("meta[name=csrf-token]").content;
  var kind = document.querySelector("select[name=kind]");
  var timer = null;
  function count() {
    fetch(box.getAttribute("data-audience-url"), {
      method: "POST", credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf },
      body: JSON.stringify({ segment: box.value, kind: kind ? kind.value : "marketing" })
    }).then(function (r) { return r.json(); }).then(function (a) {
      if (a.error) { out.textContent = a.error; out.className = "bad"; return; }
      var langs = Object.keys(a.by_language).map(function (k) { return k + " " + a.by_language[k]; }).join(", ");
      out.className = "";
      out.setAttribute("data-reachable", a.reachable);
      out.textContent = out.getAttribute("data-label-matched") + " " + a.matched + " · " +
        out.getAttribute("data-label-reachable") + " " + a.reachable + (langs ? " (" + langs + ")" : "") +
        (a.reason_empty ? " — " + a.reason_empty : "");
    });
  }
  function later() { clearTimeout(timer); timer = setTimeout(count, 300); }
  box.addEventListener("input", later);
  if (kind) kind.addEventListener("change", later);
  count();
})();
