// secmon console: SLA countdowns and the live findings feed.  Loaded from /static (CSP:
// script-src 'self'); no inline script anywhere, no external code.
"use strict";

function fmtDuration(ms) {
  const minutes = Math.floor(Math.abs(ms) / 60000);
  const days = Math.floor(minutes / 1440), hours = Math.floor((minutes % 1440) / 60), mins = minutes % 60;
  if (days) return days + "d " + hours + "h";
  if (hours) return hours + "h " + String(mins).padStart(2, "0") + "m";
  return mins + "m";
}

function tickCountdowns(skew) {
  const body = document.body;
  document.querySelectorAll(".countdown[data-due]").forEach(function (el) {
    const left = Number(el.dataset.due) - (Date.now() + skew);
    const tpl = left < 0 ? body.dataset.overdue : body.dataset.dueIn;
    el.textContent = tpl.replace("{d}", fmtDuration(left));
    el.classList.toggle("overdue", left < 0);
    el.classList.toggle("soon", left >= 0 && left < 3600000);
  });
}

function startCountdowns() {
  const first = document.querySelector(".countdown[data-now]");
  if (!first) return;
  // The server's clock is the reference: correct for the browser's skew once.
  const skew = Number(first.dataset.now) - Date.now();
  setInterval(function () { tickCountdowns(skew); }, 30000);
}

function label(list, key) {
  const tpl = document.getElementById(list);
  const el = tpl && tpl.content.querySelector('[data-key="' + key + '"]');
  return el ? el.textContent : key;
}

function cell(text, code) {
  const td = document.createElement("td");
  if (code) { const c = document.createElement("code"); c.textContent = text; td.appendChild(c); }
  else td.textContent = text;
  return td;
}

function startFeed() {
  const live = document.getElementById("live");
  const rows = document.getElementById("feed-rows");
  if (!live || !rows || !window.EventSource) return;
  const params = new URLSearchParams();
  if (live.dataset.cursor) params.set("after", live.dataset.cursor);
  if (live.dataset.kind) params.append("kind", live.dataset.kind);
  if (live.dataset.minSeverity) params.set("min_severity", live.dataset.minSeverity);
  const account = live.dataset.account;
  const source = new EventSource("/api/v1/findings/stream?" + params.toString());
  source.onopen = function () { live.classList.add("on"); live.textContent = live.dataset.labelOn; };
  source.onerror = function () { live.classList.remove("on"); live.textContent = live.dataset.labelOff; };
  source.addEventListener("finding", function (ev) {
    const f = JSON.parse(ev.data);
    if (account && f.account_id !== account) return;
    const tr = document.createElement("tr");
    tr.className = "new sev-" + f.severity;
    tr.appendChild(cell(f.detected_at));
    tr.appendChild(cell(label("severity-labels", f.severity)));
    tr.appendChild(cell(label("kind-labels", f.kind)));
    tr.appendChild(cell(f.account_id || "—", true));
    const td = document.createElement("td");
    const a = document.createElement("a");
    a.href = "/findings/" + encodeURIComponent(f.finding_id);
    a.textContent = f.summary;
    td.appendChild(a);
    tr.appendChild(td);
    rows.insertBefore(tr, rows.firstChild);
    const empty = document.getElementById("feed-empty");
    if (empty) empty.remove();
  });
}

document.addEventListener("DOMContentLoaded", function () { startCountdowns(); startFeed(); });
