// shoal dashboard: reads /v1/status and /v1/metrics every two seconds with the admin token,
// draws the fleet, and scales or restarts it through the same API the CLI uses.
"use strict";

const $ = (sel) => document.querySelector(sel);
const TOKEN_KEY = "shoal.admin.token";
let token = sessionStorage.getItem(TOKEN_KEY) || "";
let status = null;
let busy = false;
let timer = null;

async function api(method, path, body) {
  const res = await fetch(path, {
    method,
    headers: Object.assign({ Authorization: "Bearer " + token }, body ? { "Content-Type": "application/json" } : {}),
    body: body ? JSON.stringify(body) : undefined,
  });
  let data = null;
  try { data = await res.json(); } catch (_) { /* empty body */ }
  if (!res.ok) {
    const err = new Error((data && data.message) || res.status + " " + res.statusText);
    err.status = res.status;
    throw err;
  }
  return data;
}

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") e.className = v; else e.setAttribute(k, v);
  }
  for (const c of children) e.append(c instanceof Node ? c : document.createTextNode(c == null ? "" : String(c)));
  return e;
}

const pill = (text) => el("span", { class: "pill " + text }, text);

function showLogin(message) {
  clearInterval(timer);
  $("#main").hidden = true;
  $("#login").hidden = false;
  $("#login-error").textContent = message || "";
  $("#token").focus();
}

function renderStatus(s) {
  status = s;
  $("#service").textContent = s.service;
  $("#env").textContent = s.environment || "";
  $("#env").hidden = !s.environment;
  $("#summary").textContent =
    `${s.ready} of ${s.desired} ready · bounds ${s.min_instances}–${s.max_instances} · ${s.algorithm}` +
    (s.proxy_url ? ` · ${s.proxy_url}` : "") + (s.autoscaling ? " · autoscaling on" : "");
  $("#count").textContent = `${s.instances.length}`;
  const rows = s.instances.map((i) =>
    el("tr", { "data-id": i.id },
      el("td", {}, i.id), el("td", {}, pill(i.state)), el("td", {}, pill(i.health)), el("td", {}, pill(i.breaker)),
      el("td", {}, i.pid || ""), el("td", {}, i.port || ""), el("td", {}, i.in_flight), el("td", {}, i.uptime || ""),
      el("td", {}, i.restarts)));
  $("#instances tbody").replaceChildren(...rows);
  $("#scale-up").disabled = busy || s.desired >= s.max_instances;
  $("#scale-down").disabled = busy || s.desired <= s.min_instances;
  $("#restart").disabled = busy;

  const checks = (s.checks || []).map((c) => {
    const toggle = el("button", { "data-check": c.name }, c.enabled ? "disable" : "enable");
    toggle.addEventListener("click", () => act(`${c.enabled ? "Disabling" : "Enabling"} ${c.name}…`,
      () => api("POST", "/v1/health-checks/" + encodeURIComponent(c.name), { enabled: !c.enabled })));
    return el("tr", {}, el("td", {}, c.name + (c.critical ? "" : " (non-critical)")), el("td", {}, c.type),
      el("td", {}, pill(c.enabled ? c.status : "disabled")), el("td", {}, toggle));
  });
  $("#checks tbody").replaceChildren(...checks);
  $("#no-checks").hidden = checks.length > 0;
  $("#checks").hidden = checks.length === 0;

  const events = (s.events || []).map((e) =>
    el("li", {}, el("time", { datetime: e.time }, new Date(e.time).toLocaleTimeString()),
      `${e.kind}` + (e.from !== e.to ? ` ${e.from} → ${e.to}` : "") + (e.reason ? ` — ${e.reason}` : "")));
  $("#events").replaceChildren(...(events.length ? events : [el("li", { class: "muted" }, "no events yet")]));
}

// chart draws one series as an SVG line with its latest value and maximum.
function chart(svg, points, unit) {
  const W = 600, H = 160, L = 40, R = 8, T = 10, B = 20;
  const ns = "http://www.w3.org/2000/svg";
  const mk = (tag, attrs) => { const e = document.createElementNS(ns, tag); for (const k in attrs) e.setAttribute(k, attrs[k]); return e; };
  const nodes = [mk("line", { class: "axis", x1: L, y1: H - B, x2: W - R, y2: H - B })];
  if (!points || points.length === 0) {
    const t = mk("text", { x: W / 2, y: H / 2, "text-anchor": "middle" }); t.textContent = "no data yet";
    svg.replaceChildren(...nodes, t);
    return;
  }
  const t0 = new Date(points[0].t).getTime(), t1 = Math.max(new Date(points[points.length - 1].t).getTime(), t0 + 1);
  const vmax = Math.max(1e-9, ...points.map((p) => p.v)) * 1.1;
  const x = (p) => L + ((new Date(p.t).getTime() - t0) / (t1 - t0)) * (W - L - R);
  const y = (p) => H - B - (p.v / vmax) * (H - T - B);
  const d = points.map((p, i) => `${i ? "L" : "M"}${x(p).toFixed(1)},${y(p).toFixed(1)}`).join(" ");
  nodes.push(mk("path", { class: "area", d: `${d} L${x(points[points.length - 1]).toFixed(1)},${H - B} L${x(points[0]).toFixed(1)},${H - B} Z` }));
  nodes.push(mk("path", { class: "line", d }));
  const top = mk("text", { x: 4, y: T + 8 }); top.textContent = fmt(vmax / 1.1);
  const zero = mk("text", { x: 4, y: H - B }); zero.textContent = "0";
  const last = mk("text", { x: W - R, y: H - 6, "text-anchor": "end" });
  last.textContent = `now ${fmt(points[points.length - 1].v)} ${unit}`;
  svg.replaceChildren(...nodes, top, zero, last);
}

const fmt = (v) => (v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(1) : v.toFixed(2));

async function refresh() {
  try {
    const [s, m] = await Promise.all([api("GET", "/v1/status"), api("GET", "/v1/metrics?since=15m&points=120")]);
    $("#login").hidden = true;
    $("#main").hidden = false;
    renderStatus(s);
    const series = Object.fromEntries((m.series || []).map((x) => [x.metric, x]));
    chart($("#chart-rate"), (series.request_rate || {}).points, "req/s");
    chart($("#chart-p95"), (series.response_time_p95 || {}).points, "ms");
    chart($("#chart-instances"), (series.instance_count || {}).points, "");
  } catch (err) {
    if (err.status === 401 || err.status === 403) {
      showLogin(err.message);
    } else {
      $("#action-msg").textContent = "cannot reach the admin API: " + err.message;
    }
  }
}

async function act(message, fn) {
  busy = true;
  $("#action-msg").textContent = message;
  if (status) renderStatus(status);
  try {
    await fn();
    $("#action-msg").textContent = message.replace(/…$/, "") + ": done";
  } catch (err) {
    $("#action-msg").textContent = err.message;
  } finally {
    busy = false;
    await refresh();
  }
}

function start() {
  clearInterval(timer);
  refresh();
  timer = setInterval(refresh, 2000);
}

document.addEventListener("DOMContentLoaded", () => {
  $("#login-form").addEventListener("submit", (e) => {
    e.preventDefault();
    token = $("#token").value.trim();
    sessionStorage.setItem(TOKEN_KEY, token);
    start();
  });
  $("#logout").addEventListener("click", () => { sessionStorage.removeItem(TOKEN_KEY); token = ""; showLogin(""); });
  $("#scale-up").addEventListener("click", () => status && act(`Scaling up to ${status.desired + 1}…`,
    () => api("POST", "/v1/scale", { instances: status.desired + 1, reason: "dashboard" })));
  $("#scale-down").addEventListener("click", () => status && act(`Scaling down to ${status.desired - 1}…`,
    () => api("POST", "/v1/scale", { instances: status.desired - 1, reason: "dashboard" })));
  $("#restart").addEventListener("click", () => act("Restarting every instance, one at a time…", () => api("POST", "/v1/restart")));
  if (token) start(); else showLogin("");
});
