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
    // Only the checks shoal runs can be switched; the others run inside the service.
    let toggle = el("span", { class: "muted", title: "a custom check, or a database check without a URL: shoal cannot switch it" }, "runs in the service");
    if (c.switchable) {
      toggle = el("button", { "data-check": c.name }, c.enabled ? "disable" : "enable");
      toggle.disabled = busy;
      toggle.addEventListener("click", () => act(`${c.enabled ? "Disabling" : "Enabling"} ${c.name}…`,
        () => api("POST", "/v1/health-checks/" + encodeURIComponent(c.name), { enabled: !c.enabled })));
    }
    return el("tr", {}, el("td", {}, c.name + (c.critical ? "" : " (non-critical)")), el("td", {}, c.type),
      el("td", {}, pill(c.enabled ? c.status : "disabled")), el("td", {}, toggle));
  });
  $("#checks tbody").replaceChildren(...checks);
  $("#no-checks").hidden = checks.length > 0;
  $("#checks").hidden = checks.length === 0;

  const events = (s.events || []).map((e) =>
    el("li", {}, el("time", { datetime: e.time }, hhmm(e.time, true)),
      `${e.kind}` + (e.from !== e.to ? ` ${e.from} → ${e.to}` : "") + (e.reason ? ` — ${e.reason}` : "")));
  $("#events").replaceChildren(...(events.length ? events : [el("li", { class: "muted" }, "no events yet")]));
}

// Charts are SVG drawn at the pixel size they are shown at (so 12px text stays 12px), with a
// value axis in the series' unit, a time axis, and the value under the pointer on hover.
const SVG_NS = "http://www.w3.org/2000/svg";
const svgEl = (tag, attrs, text) => {
  const e = document.createElementNS(SVG_NS, tag);
  for (const k in attrs || {}) e.setAttribute(k, attrs[k]);
  if (text != null) e.textContent = text;
  return e;
};

// niceStep is a round step (1, 2 or 5 times a power of ten) giving about n steps over span.
function niceStep(span, n) {
  const raw = span / Math.max(n, 1);
  const mag = Math.pow(10, Math.floor(Math.log10(raw)));
  const f = raw / mag;
  return (f <= 1 ? 1 : f <= 2 ? 2 : f <= 5 ? 5 : 10) * mag;
}

// Time steps for the time axis, in seconds.
const TIME_STEPS = [10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 21600, 43200, 86400];
// Clock times on a 24-hour clock: short, and the same width in every locale.
const hhmm = (t, withSeconds) => new Date(t).toLocaleTimeString([], withSeconds
  ? { hourCycle: "h23", hour: "2-digit", minute: "2-digit", second: "2-digit" } : { hourCycle: "h23", hour: "2-digit", minute: "2-digit" });

const fmt = (v) => {
  const a = Math.abs(v);
  if (a >= 1e6) return (v / 1e6).toFixed(a >= 1e7 ? 0 : 1) + "M";
  if (a >= 1e4) return (v / 1e3).toFixed(a >= 1e5 ? 0 : 1) + "k";
  if (a >= 100 || Number.isInteger(v)) return v.toFixed(0);
  return a >= 10 ? v.toFixed(1) : v.toFixed(2);
};
const withUnit = (v, unit) => unit === "%" ? fmt(v) + "%" : unit ? `${fmt(v)} ${unit}` : fmt(v);

// chart draws points ({t, v}) into svg. opts: unit (shown on the axis and on hover), integer
// (whole-number axis, as for instance counts), and marks: [{t, label, kind}] drawn as vertical
// lines with a label at the top, e.g. the autoscaler's decisions on the instance chart.
function chart(svg, points, opts) {
  const o = Object.assign({ unit: "", integer: false, marks: [] }, opts);
  const W = Math.max(Math.round(svg.clientWidth || 600), 300), H = 220;
  const L = 64, R = 16, T = 14, B = 30; // room for value labels left, time labels below
  svg.setAttribute("viewBox", `0 0 ${W} ${H}`);
  svg.setAttribute("height", H);
  const nodes = [];
  const plotW = W - L - R, plotH = H - T - B;
  if (!points || points.length === 0) {
    nodes.push(svgEl("rect", { class: "frame", x: L, y: T, width: plotW, height: plotH }));
    nodes.push(svgEl("text", { class: "empty", x: L + plotW / 2, y: T + plotH / 2, "text-anchor": "middle" }, "no data yet"));
    svg.replaceChildren(...nodes);
    svg.onmousemove = svg.onmouseleave = null;
    return;
  }
  const ts = points.map((p) => new Date(p.t).getTime());
  const t0 = ts[0], t1 = Math.max(ts[ts.length - 1], t0 + 1000);
  let vmax = Math.max(...points.map((p) => p.v), o.integer ? 1 : 1e-9);
  let step = niceStep(vmax, 4);
  if (o.integer) step = Math.max(1, Math.round(step));
  vmax = Math.ceil(vmax / step) * step;
  if (vmax === Math.max(...points.map((p) => p.v))) vmax += step; // headroom above the peak
  const x = (t) => L + ((t - t0) / (t1 - t0)) * plotW;
  const y = (v) => T + plotH - (v / vmax) * plotH;

  // Value axis: grid lines and labels with the unit.
  for (let v = 0; v <= vmax + step / 2; v += step) {
    nodes.push(svgEl("line", { class: v === 0 ? "axis" : "grid", x1: L, x2: W - R, y1: y(v), y2: y(v) }));
    nodes.push(svgEl("text", { class: "tick", x: L - 8, y: y(v) + 4, "text-anchor": "end" }, withUnit(v, o.unit)));
  }
  // Time axis: round clock times.
  const span = (t1 - t0) / 1000;
  const tstep = (TIME_STEPS.find((s) => span / s <= 6) || 86400) * 1000;
  for (let t = Math.ceil(t0 / tstep) * tstep; t <= t1; t += tstep) {
    nodes.push(svgEl("line", { class: "grid", x1: x(t), x2: x(t), y1: T, y2: T + plotH }));
    // A label at either end of the axis is anchored inside the chart, not cut off.
    const anchor = x(t) > W - R - 36 ? "end" : x(t) < L + 36 ? "start" : "middle";
    nodes.push(svgEl("text", { class: "tick", x: anchor === "end" ? Math.min(x(t), W - 2) : x(t), y: H - 10, "text-anchor": anchor }, hhmm(t, tstep < 60000)));
  }
  // Marks (decisions, events) under the line.
  for (const m of o.marks || []) {
    const t = new Date(m.t).getTime();
    if (t < t0 || t > t1) continue;
    nodes.push(svgEl("line", { class: "mark " + (m.kind || ""), x1: x(t), x2: x(t), y1: T, y2: T + plotH }));
    if (m.label) nodes.push(svgEl("text", { class: "mark-label", x: x(t) + 3, y: T + 10 }, m.label));
  }
  const d = points.map((p, i) => `${i ? "L" : "M"}${x(ts[i]).toFixed(1)},${y(p.v).toFixed(1)}`).join(" ");
  nodes.push(svgEl("path", { class: "area", d: `${d} L${x(ts[ts.length - 1]).toFixed(1)},${y(0)} L${x(t0).toFixed(1)},${y(0)} Z` }));
  nodes.push(svgEl("path", { class: "line", d }));

  // Hover: a cursor line, a dot on the nearest sample and its time and value.
  const cursor = svgEl("line", { class: "cursor", x1: 0, x2: 0, y1: T, y2: T + plotH, visibility: "hidden" });
  const dot = svgEl("circle", { class: "dot", r: 4, cx: 0, cy: 0, visibility: "hidden" });
  const tipBox = svgEl("rect", { class: "tip", rx: 4, x: 0, y: 0, width: 0, height: 22, visibility: "hidden" });
  const tip = svgEl("text", { class: "tip-text", x: 0, y: 0, visibility: "hidden" });
  nodes.push(cursor, dot, tipBox, tip);
  svg.replaceChildren(...nodes);
  const show = (on) => [cursor, dot, tipBox, tip].forEach((n) => n.setAttribute("visibility", on ? "visible" : "hidden"));
  svg.onmouseleave = () => show(false);
  svg.onmousemove = (ev) => {
    const r = svg.getBoundingClientRect();
    const px = ((ev.clientX - r.left) / r.width) * W;
    let i = 0;
    for (let j = 1; j < ts.length; j++) if (Math.abs(x(ts[j]) - px) < Math.abs(x(ts[i]) - px)) i = j;
    const cx = x(ts[i]), cy = y(points[i].v);
    cursor.setAttribute("x1", cx); cursor.setAttribute("x2", cx);
    dot.setAttribute("cx", cx); dot.setAttribute("cy", cy);
    tip.textContent = `${hhmm(ts[i], true)}  ${withUnit(points[i].v, o.unit)}`;
    const tw = tip.getComputedTextLength() + 16;
    const tx = Math.min(Math.max(cx - tw / 2, L), W - R - tw), ty = Math.max(cy - 34, T);
    tipBox.setAttribute("x", tx); tipBox.setAttribute("y", ty); tipBox.setAttribute("width", tw);
    tip.setAttribute("x", tx + 8); tip.setAttribute("y", ty + 15);
    show(true);
  };
}

// The charts of the Traffic card: which series, in what unit. The instance chart is where
// scaling decisions are marked (opts.marks); marksFor returns them, none yet.
const CHARTS = [
  { id: "#chart-rate", metric: "request_rate", unit: "req/s" },
  { id: "#chart-p95", metric: "response_time_p95", unit: "ms" },
  { id: "#chart-instances", metric: "instance_count", unit: "", integer: true, marks: true },
  { id: "#chart-cpu", metric: "cpu_utilization_percentage", unit: "%" },
];
const marksFor = (_status) => [];
let lastMetrics = null;

function drawCharts() {
  if (!lastMetrics) return;
  const series = Object.fromEntries((lastMetrics.series || []).map((x) => [x.metric, x]));
  for (const c of CHARTS) {
    const s = series[c.metric] || {};
    chart($(c.id), s.points, { unit: s.unit === "instances" ? "" : (s.unit || c.unit), integer: c.integer,
      marks: c.marks ? marksFor(status) : [] });
  }
}

async function refresh() {
  try {
    const [s, m] = await Promise.all([api("GET", "/v1/status"), api("GET", "/v1/metrics?since=15m&points=120")]);
    $("#login").hidden = true;
    $("#main").hidden = false;
    renderStatus(s);
    lastMetrics = m;
    drawCharts();
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
  let resizing = null;
  window.addEventListener("resize", () => { clearTimeout(resizing); resizing = setTimeout(drawCharts, 100); });
});
