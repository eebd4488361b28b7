// Lintel status page: live updates over server-sent events. The server
// sends counts only; the alerts list is refetched as rendered HTML so
// every string still comes from the server's catalogue.
(function () {
  "use strict";
  var body = document.body;
  // Confirm dangerous actions (gate open).
  document.addEventListener("submit", function (e) {
    var f = e.target;
    if (f.classList && f.classList.contains("confirm") && !window.confirm(f.getAttribute("data-confirm"))) {
      e.preventDefault();
    }
  });
  if (!document.getElementById("nav-alerts") || !window.EventSource) return;
  var badge = document.getElementById("alert-badge");
  var banner = document.getElementById("live-banner");
  var dot = document.getElementById("live-state");
  var list = document.getElementById("alerts-live");
  var lastCritical = null;
  var refreshing = false, again = false;

  function refresh() {
    if (!list) return;
    if (refreshing) { again = true; return; }
    // Do not replace the list while someone is typing a visit note.
    var a = document.activeElement;
    if (a && list.contains(a) && (a.tagName === "TEXTAREA" || a.tagName === "SELECT")) { again = true; setTimeout(refresh, 3000); return; }
    refreshing = true;
    fetch(list.getAttribute("data-src"), { credentials: "same-origin", cache: "no-store" })
      .then(function (r) { if (!r.ok) throw new Error(r.status); return r.text(); })
      .then(function (html) { list.innerHTML = html; body.setAttribute("data-live-seq", String(Date.now())); })
      .catch(function () {})
      .then(function () { refreshing = false; if (again) { again = false; refresh(); } });
  }

  function counts(m) {
    if (badge) {
      badge.textContent = String(m.open);
      badge.classList.toggle("hide", m.open === 0);
      badge.classList.toggle("crit", m.critical > 0);
    }
    if (lastCritical !== null && m.critical > lastCritical && banner && body.getAttribute("data-page") !== "alerts") {
      banner.classList.remove("hide");
    }
    lastCritical = m.critical;
  }

  var es = new EventSource("/live");
  es.addEventListener("open", function () { if (dot) dot.classList.add("on"); body.setAttribute("data-live", "on"); });
  es.addEventListener("error", function () { if (dot) dot.classList.remove("on"); body.setAttribute("data-live", "off"); });
  es.addEventListener("hello", function (e) { counts(JSON.parse(e.data)); body.setAttribute("data-live", "on"); });
  es.addEventListener("alerts", function (e) { counts(JSON.parse(e.data)); refresh(); });
})();
