// edgecloud console: live updates without reloading the page.
// - Server-Sent Events from the REST API (/api/v1/events, the session cookie authenticates
//   GETs) update state badges at once and refresh the regions that show the changed object;
//   on (re)connecting, every live region is fetched once to catch up.
// - Regions with data-poll are polled with ETags (a 304 costs nothing) until they say final.
"use strict";
(function () {
  const names = document.getElementById("vm-states");
  const states = names ? JSON.parse(names.textContent) : null;

  function label(data) {
    if (!states) return null;
    if (data.state === 3) return states.lcm[data.lcm_state] || ("LCM_" + data.lcm_state);
    return states.vm[data.state] || ("STATE_" + data.state);
  }

  function badgeClass(text) {
    const t = text.toUpperCase();
    if (["RUNNING", "MONITORED", "READY"].includes(t)) return "ok";
    if (t.includes("FAIL") || ["ERROR", "UNKNOWN", "FAILED"].includes(t)) return "bad";
    if (["POWEROFF", "DONE", "DISABLED", "OFFLINE", "HOLD", "STOPPED", "UNDEPLOYED"].includes(t)) return "off";
    return "busy";
  }

  const etags = new Map();
  const pending = new Map();

  async function refresh(region) {
    const src = region.dataset.src;
    if (!src) return;
    const headers = { "X-Console-Fragment": "1" };
    const tag = etags.get(src);
    if (tag) headers["If-None-Match"] = tag;
    let response;
    try {
      response = await fetch(src, { headers: headers, credentials: "same-origin" });
    } catch (e) {
      return;
    }
    if (response.status === 401) { window.location.assign("/login?next=" + encodeURIComponent(location.pathname)); return; }
    if (response.status !== 200) return;
    const etag = response.headers.get("ETag");
    if (etag) etags.set(src, etag);
    const html = await response.text();
    const active = document.activeElement && document.activeElement.id;
    region.innerHTML = html;
    if (active) { const again = document.getElementById(active); if (again) again.focus(); }
    const final = region.querySelector("[data-final]");
    if (final) region.removeAttribute("data-poll");
  }

  function refreshSoon(region) {
    if (pending.has(region)) return;
    pending.set(region, setTimeout(function () { pending.delete(region); refresh(region); }, 120));
  }

  function onEvent(kind, data) {
    const key = kind + ":" + data.id;
    if (kind === "vm") {
      const text = label(data);
      document.querySelectorAll('[data-live="' + key + '"]').forEach(function (badge) {
        if (text) { badge.textContent = text; badge.className = "badge " + badgeClass(text); }
      });
    }
    document.querySelectorAll("[data-refresh]").forEach(function (region) {
      const wants = region.dataset.refresh.split(" ");
      if (wants.includes(key) || wants.includes(kind + ":*")) refreshSoon(region);
    });
  }

  const watch = document.body.dataset.watch;
  if (watch && window.EventSource) {
    const kinds = watch.split(",");
    const query = kinds.length === 1 ? "?kind=" + encodeURIComponent(kinds[0]) : "";
    const source = new EventSource("/api/v1/events" + query);
    kinds.forEach(function (kind) {
      source.addEventListener(kind, function (e) {
        try { onEvent(kind, JSON.parse(e.data)); } catch (err) { /* a malformed event is skipped */ }
      });
    });
    // Whatever changed between rendering the page and (re)connecting is caught up at once.
    source.addEventListener("open", function () {
      document.body.dataset.live = "on";
      document.querySelectorAll("[data-refresh], [data-catchup]").forEach(refreshSoon);
    });
    window.addEventListener("pagehide", function () { source.close(); });
  }

  document.querySelectorAll("[data-poll]").forEach(function (region) {
    const every = Math.max(500, parseInt(region.dataset.poll, 10) || 2000);
    const timer = setInterval(function () {
      if (!region.hasAttribute("data-poll")) { clearInterval(timer); return; }
      if (!document.hidden) refresh(region);
    }, every);
  });
})();
