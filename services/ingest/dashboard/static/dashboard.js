/* Heron's dashboard: the little JavaScript it needs, no build step.
   - a sign-in link (#token=…) fills in the sign-in form and submits it;
   - "Copy" buttons put their text on the clipboard;
   - pages that show live data listen to /dashboard/p/{id}/events (server-sent events) and, when an
     alert or a change of a monitor of their project arrives, fetch themselves again and swap in the
     fresh [data-live-region]s; they also refresh every half minute while visible ("last seen" and
     "ago" times age without any change, and a change notice lost while the broker was away). */
(function () {
  "use strict";

  function signInFromLink() {
    var form = document.getElementById("signin-form");
    if (!form || location.hash.indexOf("#token=") !== 0) return;
    var token = decodeURIComponent(location.hash.slice("#token=".length));
    // Out of the address bar and history before anything else happens.
    history.replaceState(null, "", location.pathname + location.search);
    form.elements.token.value = token;
    form.submit();
  }

  function copied(button) {
    var label = button.getAttribute("data-label") || button.textContent;
    button.setAttribute("data-label", label);
    button.textContent = "Copied!";
    button.setAttribute("data-copied", "true");
    setTimeout(function () {
      button.textContent = label;
      button.removeAttribute("data-copied");
    }, 2000);
  }

  function copyFallback(text, button) {
    var area = document.createElement("textarea");
    area.value = text;
    area.setAttribute("readonly", "");
    area.className = "skip";
    document.body.appendChild(area);
    area.select();
    try {
      document.execCommand("copy");
      copied(button);
    } finally {
      document.body.removeChild(area);
    }
  }

  document.addEventListener("click", function (event) {
    var button = event.target.closest ? event.target.closest("[data-copy]") : null;
    if (!button) return;
    var text = button.getAttribute("data-copy");
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(text).then(function () { copied(button); }, function () { copyFallback(text, button); });
    } else {
      copyFallback(text, button);
    }
  });

  var refreshing = false;
  var again = false;

  function refresh() {
    if (refreshing) { again = true; return; }
    refreshing = true;
    fetch(location.href, { credentials: "same-origin", headers: { "X-Heron-Refresh": "1" } })
      .then(function (response) { return response.ok ? response.text() : null; })
      .then(function (html) {
        if (!html) return;
        var fresh = new DOMParser().parseFromString(html, "text/html");
        document.querySelectorAll("[data-live-region]").forEach(function (region) {
          var next = fresh.getElementById(region.id);
          if (next && !region.contains(document.activeElement)) region.replaceWith(next);
          else if (next) again = true; // the user is working in it: try again with the next alert
        });
        document.body.setAttribute("data-refreshed", String(Date.now()));
      })
      .catch(function () { /* the next alert (or a reload) catches up */ })
      .then(function () {
        refreshing = false;
        if (again) { again = false; setTimeout(refresh, 500); }
      });
  }

  var toastTimer = null;

  function toast(text) {
    var box = document.getElementById("toast");
    if (!box) return;
    box.textContent = "🤠 " + text;
    clearTimeout(toastTimer);
    toastTimer = setTimeout(function () { box.textContent = ""; }, 8000);
  }

  var QUIET_REFRESH = 30000;
  var RETRY = 10000;

  function listen() {
    var url = document.body.getAttribute("data-live-url");
    var status = document.getElementById("live-status");
    if (!url || !window.EventSource) return;
    var source = new EventSource(url);
    source.onopen = function () {
      document.body.setAttribute("data-live", "connected");
      if (status) { status.textContent = "Live"; status.setAttribute("data-state", "connected"); }
    };
    source.onerror = function () {
      document.body.setAttribute("data-live", "reconnecting");
      if (status) { status.textContent = "Reconnecting…"; status.setAttribute("data-state", "reconnecting"); }
      // A refused stream (503 while the broker is away) is not retried by the browser itself.
      if (source.readyState === EventSource.CLOSED) setTimeout(listen, RETRY);
    };
    source.addEventListener("alert", function (event) {
      var alert = {};
      try { alert = JSON.parse(event.data); } catch (e) { /* still refresh */ }
      if (alert.text) toast(alert.text);
      refresh();
    });
    // Any other change of a monitor (a heartbeat going late, a pause, a ping, a probe result, a
    // new monitor): no toast, just the fresh page.
    source.addEventListener("change", function () { refresh(); });
  }

  signInFromLink();
  listen();
  if (document.body.getAttribute("data-live-url")) {
    setInterval(function () { if (!document.hidden) refresh(); }, QUIET_REFRESH);
  }
})();
