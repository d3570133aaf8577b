// Ferry's live view: one EventSource on /events, each "state" event carries the whole view
// (small, bounded lists); render() redraws from it. Plain DOM and SVG, no library.
"use strict";

const NS = "http://www.w3.org/2000/svg";
const WINDOW_S = 120; // seconds shown by the scrolling chart, at most
const MIN_WINDOW_S = 30; // and at least (a short run fills the width)
const COLOURS = { legacy: "#d62728", mbb: "#2ca02c" };

function $(id) { return document.getElementById(id); }
function text(id, v) { const e = $(id); if (e) e.textContent = v; }
function svgEl(name, attrs, content) {
  const e = document.createElementNS(NS, name);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  if (content !== undefined) e.textContent = content;
  return e;
}
// "legacy M", "mbb out": the method, unless the label already says it.
function name(m) { return m.label.startsWith(m.method) ? m.label : m.method + " " + m.label; }
function ms(v) { return v == null ? "–" : (v < 10 ? v.toFixed(2) : v.toFixed(0)) + " ms"; }

function renderServers(view) {
  const box = $("servers");
  box.replaceChildren();
  const primaryOf = {};
  const shadowOf = {};
  for (const r of view.radios) {
    if (r.primary) (primaryOf[r.primary] = primaryOf[r.primary] || []).push(r.name);
    if (r.shadow) (shadowOf[r.shadow] = shadowOf[r.shadow] || []).push(r.name);
  }
  for (const s of view.servers) {
    const d = document.createElement("div");
    d.className = "server";
    d.id = "server-" + s.name;
    d.dataset.power = s.power;
    d.dataset.serving = String(s.serving);
    const n = document.createElement("div");
    n.className = "name";
    n.textContent = s.name;
    for (const r of primaryOf[s.name] || []) {
      const b = document.createElement("span");
      b.className = "badge primary";
      b.dataset.radio = r;
      b.dataset.role = "primary";
      b.textContent = "primary for " + r;
      n.appendChild(b);
    }
    for (const r of shadowOf[s.name] || []) {
      const b = document.createElement("span");
      b.className = "badge";
      b.dataset.radio = r;
      b.dataset.role = "shadow";
      b.textContent = "shadows " + r;
      n.appendChild(b);
    }
    if (s.serving) {
      const b = document.createElement("span");
      b.className = "badge serving";
      b.textContent = "serves the task";
      n.appendChild(b);
    }
    d.appendChild(n);
    const info = document.createElement("div");
    info.className = "small";
    const a = s.agent;
    info.textContent = s.role + " · " + s.power +
      (a ? " · modem " + (a.d2d ? (a.modem_mode || "running") : "stopped") +
        (a.synced === true ? ", synced" : "") + (a.eth3 ? " · eth3 " + a.eth3 : "") : "");
    d.appendChild(info);
    box.appendChild(d);
  }
  const body = $("radios").tBodies[0];
  body.replaceChildren();
  for (const r of view.radios) {
    const tr = document.createElement("tr");
    tr.id = "radio-" + r.name;
    for (const v of [r.name, r.ready ? "yes" : "no", r.primary || "–", r.shadow || "–",
      r.pending_switch || "–", r.epoch == null ? "–" : String(r.epoch), String(r.late_packets)]) {
      const td = document.createElement("td");
      td.textContent = v;
      tr.appendChild(td);
    }
    body.appendChild(tr);
  }
}

function renderCells(view) {
  const box = $("cell-list");
  box.replaceChildren();
  if (view.cells.length === 0) { box.textContent = "no task yet"; return; }
  for (const c of view.cells) {
    const d = document.createElement("div");
    d.className = "cell";
    d.dataset.cell = c.name;
    d.innerHTML = "";
    const s = document.createElement("div");
    s.innerHTML = "<b></b> <span class='state'></span>";
    s.firstChild.textContent = c.name;
    s.lastChild.textContent = c.state;
    d.appendChild(s);
    const ctl = document.createElement("div");
    ctl.className = "small control";
    ctl.textContent = "Control: " + (c.control || "not read yet");
    d.appendChild(ctl);
    box.appendChild(d);
  }
}

function renderChart(view) {
  const svg = $("chart");
  svg.replaceChildren();
  const W = 800, H = 260, L = 44, R = 8, T = 24, B = 36;
  const hist = view.history;
  const tEnd = Math.max(hist.length ? hist[hist.length - 1].t_ms : 0,
    ...view.migrations.map(m => m.end_ms || m.start_ms), MIN_WINDOW_S * 1000);
  const tStart = Math.max(0, tEnd - WINDOW_S * 1000);
  const x = t => L + (t - tStart) / (tEnd - tStart) * (W - L - R);
  // Log scale from 0.1 ms to a decade above the largest RTT or gap.
  let top = 10;
  for (const s of hist) {
    if (s.t_ms < tStart) continue;
    top = Math.max(top, s.rtt_max_ms || 0, s.longest_gap_ms || 0);
  }
  const lo = -1, hi = Math.ceil(Math.log10(top * 1.05));
  const y = v => H - B - (Math.log10(Math.max(v, 0.1)) - lo) / (hi - lo) * (H - B - T);
  // grid
  for (let d = lo; d <= hi; d++) {
    const v = Math.pow(10, d);
    svg.appendChild(svgEl("line", { x1: L, x2: W - R, y1: y(v), y2: y(v), stroke: "#e5e5e5" }));
    svg.appendChild(svgEl("text", { x: L - 4, y: y(v) + 4, "text-anchor": "end", "font-size": 11 }, String(v)));
  }
  const step = tEnd - tStart > 60000 ? 10000 : 5000;
  for (let t = Math.ceil(tStart / step) * step; t <= tEnd; t += step) {
    svg.appendChild(svgEl("line", { x1: x(t), x2: x(t), y1: T, y2: H - B, stroke: "#f0f0f0" }));
    svg.appendChild(svgEl("text", { x: x(t), y: H - B + 14, "text-anchor": "middle", "font-size": 11 }, String(Math.round(t / 1000))));
  }
  svg.appendChild(svgEl("text", { x: (L + W) / 2, y: H - 4, "text-anchor": "middle", "font-size": 11 }, "time since the run started (s)"));
  svg.appendChild(svgEl("text", { x: L - 4, y: 12, "text-anchor": "end", "font-size": 11 }, "ms"));
  // migrations
  view.migrations.forEach((m, i) => {
    if ((m.end_ms || tEnd) < tStart) return;
    const c = COLOURS[m.method] || "#555";
    const a = x(Math.max(m.start_ms, tStart)), b = x(m.end_ms == null ? tEnd : m.end_ms);
    const g = svgEl("g", { class: "mark", "data-label": m.label, "data-running": String(m.end_ms == null) });
    g.appendChild(svgEl("rect", { x: a, y: T, width: Math.max(2, b - a), height: H - B - T, fill: c, opacity: 0.15 }));
    g.appendChild(svgEl("line", { x1: a, x2: a, y1: T, y2: H - B, stroke: c }));
    g.appendChild(svgEl("text", { x: a + 3, y: T + 12 + (i % 4) * 13, fill: c, "font-size": 11 },
      name(m) + (m.end_ms == null ? " (running)" : " " + Math.round(m.end_ms - m.start_ms) + " ms")));
    svg.appendChild(g);
  });
  // losses: a red bar per second, its height the lost share
  for (const s of hist) {
    if (s.t_ms < tStart || !s.lost) continue;
    const share = s.sent ? s.lost / s.sent : 1;
    const w = Math.max(2, x(s.t_ms) - x(s.t_ms - 1000));
    svg.appendChild(svgEl("rect", { class: "loss", x: x(s.t_ms - 1000), y: H - B - share * 40, width: w, height: share * 40, fill: "#d62728" }));
  }
  // RTT: mean line and max ticks
  const pts = hist.filter(s => s.t_ms >= tStart && s.rtt_avg_ms != null);
  let d = "";
  let prev = null;
  for (const s of pts) {
    d += (prev != null && s.t_ms - prev <= 1000 ? "L" : "M") + x(s.t_ms - 500).toFixed(1) + " " + y(s.rtt_avg_ms).toFixed(1);
    prev = s.t_ms;
  }
  svg.appendChild(svgEl("path", { d, stroke: "#1f77b4", "stroke-width": 2, fill: "none" }));
  for (const s of pts) {
    svg.appendChild(svgEl("circle", { cx: x(s.t_ms - 500), cy: y(s.rtt_max_ms), r: 2, fill: "#1f77b4", opacity: 0.5 }));
  }
  // Longest gap of each second (the probe's): an orange step.
  let g = "";
  prev = null;
  for (const s of hist) {
    if (s.t_ms < tStart || s.longest_gap_ms == null) { prev = null; continue; }
    g += (prev != null && s.t_ms - prev <= 1000 ? "L" : "M") + x(s.t_ms - 1000).toFixed(1) + " " + y(s.longest_gap_ms).toFixed(1) +
      "L" + x(s.t_ms).toFixed(1) + " " + y(s.longest_gap_ms).toFixed(1);
    prev = s.t_ms;
  }
  svg.appendChild(svgEl("path", { class: "gaps", d: g, stroke: "#ff7f0e", "stroke-width": 1.5, fill: "none" }));
  svg.appendChild(svgEl("text", { x: W - R, y: 12, "text-anchor": "end", "font-size": 11, fill: "#333" },
    "RTT mean (blue line), max (dots); longest gap (orange); lost share (red)"));
}

function renderTimeline(view) {
  const svg = $("timeline");
  svg.replaceChildren();
  const m = view.last_migration;
  text("timeline-title", m ? name(m) + " (" + m.route + "): " +
    Math.round(m.end_ms - m.start_ms) + " ms" + (m.ok ? "" : ", failed") : "none yet");
  if (!m) { svg.setAttribute("viewBox", "0 0 800 20"); return; }
  const rowH = 18, label = 300, W = 800, R = 50;
  const total = Math.max(1, ...m.phases.map(p => p.start_ms + p.duration_ms));
  const H = rowH * m.phases.length + 6;
  svg.setAttribute("viewBox", "0 0 " + W + " " + H);
  svg.style.height = H + "px";
  const x = v => label + v / total * (W - label - R);
  m.phases.forEach((p, i) => {
    const yy = 3 + i * rowH;
    const fill = !p.ok ? "#7f7f7f" : p.interrupts_service ? "#d62728" : "#1f77b4";
    const g = svgEl("g", { class: "phase", "data-name": p.name });
    g.appendChild(svgEl("text", { x: label - 6, y: yy + 12, "text-anchor": "end", "font-size": 12 }, p.name));
    g.appendChild(svgEl("rect", { x: x(p.start_ms), y: yy + 2, width: Math.max(2, x(p.start_ms + p.duration_ms) - x(p.start_ms)), height: rowH - 5, fill }));
    g.appendChild(svgEl("text", { x: x(p.start_ms + p.duration_ms) + 4, y: yy + 12, "font-size": 11, fill: "#333" }, Math.round(p.duration_ms) + " ms"));
    svg.appendChild(g);
  });
}

function renderLog(view) {
  const ol = $("migration-log");
  ol.replaceChildren();
  for (const m of view.migrations) {
    const li = document.createElement("li");
    li.dataset.label = m.label;
    li.textContent = name(m) + " " + m.route + " at " + (m.start_ms / 1000).toFixed(1) + " s: " +
      (m.end_ms == null ? "running" : Math.round(m.end_ms - m.start_ms) + " ms" + (m.ok ? "" : " (failed)"));
    ol.appendChild(li);
  }
}

function renderPool(view) {
  const p = view.pool;
  $("pool").hidden = !p;
  if (!p) return;
  text("pool-on", p.servers_on + " of " + p.servers_total);
  text("pool-load", (p.load * 100).toFixed(0) + " %");
  text("pool-moves", String(p.moves));
  text("pool-saved", p.saved_server_hours.toFixed(1));
  text("pool-hour", p.hour.toFixed(1) + " h (" + p.policy + ")");
  const body = document.querySelector("#pool-servers tbody");
  body.replaceChildren();
  for (const s of p.servers) {
    const tr = document.createElement("tr");
    tr.className = "pool-server";
    tr.id = "pool-server-" + s.name;
    tr.dataset.power = s.power;
    tr.dataset.cells = s.cells.join(" ");
    for (const v of [s.name, s.power, s.load_cores.toFixed(3), s.cells.join(", ") || "–"]) {
      const td = document.createElement("td");
      td.textContent = v;
      tr.appendChild(td);
    }
    body.appendChild(tr);
  }
  const svg = $("pool-chart");
  svg.replaceChildren();
  const W = 800, H = 120, n = Math.max(1, p.servers_total);
  const x = h => 30 + h / 24 * (W - 40), y = k => H - 16 - k / n * (H - 26);
  let d = "";
  p.on_along_day.forEach(([h, k], i) => { d += (i ? "L" : "M") + x(h).toFixed(1) + " " + y(k).toFixed(1); });
  svg.appendChild(svgEl("path", { d, stroke: "#9467bd", "stroke-width": 2, fill: "none" }));
  for (let h = 0; h <= 24; h += 6) svg.appendChild(svgEl("text", { x: x(h), y: H - 2, "text-anchor": "middle", "font-size": 11 }, h + " h"));
}

function render(view) {
  text("experiment", (view.experiment || "–") + (view.finished ? " (finished)" : ""));
  text("method", view.method || "–");
  const serving = view.servers.find(s => s.serving);
  const radioPrimary = view.radios.find(r => r.name === "pool" && r.primary);
  text("primary", serving ? serving.name : radioPrimary ? radioPrimary.primary : "–");
  text("migration-count", String(view.migrations.filter(m => m.end_ms != null).length));
  text("sources", view.sources.join(" · "));
  renderServers(view);
  renderCells(view);
  const s = view.last_second;
  text("rtt-avg", s ? ms(s.rtt_avg_ms) : "–");
  text("rtt-max", s ? ms(s.rtt_max_ms) : "–");
  text("lost", s ? s.lost + " of " + s.sent : "–");
  text("gap", s ? ms(s.longest_gap_ms) : "–");
  text("second-source", s ? "(" + (s.source === "probe" ? "UDP probe" : "ping -i 0.1") + ")" : "");
  renderChart(view);
  renderTimeline(view);
  renderLog(view);
  renderPool(view);
  $("errors-card").hidden = view.errors.length === 0;
  const ul = $("errors");
  ul.replaceChildren(...view.errors.map(e => { const li = document.createElement("li"); li.textContent = e; return li; }));
  measure();
}

// Layout check for tests and narrow screens: does the page overflow horizontally?
function measure() {
  const l = $("layout");
  l.dataset.scrollWidth = String(document.documentElement.scrollWidth);
  l.dataset.clientWidth = String(document.documentElement.clientWidth);
}

function connect() {
  const es = new EventSource("/events");
  es.addEventListener("state", e => {
    $("status").dataset.state = "live";
    text("status", "live");
    try {
      const u = JSON.parse(e.data);
      render(u.view);
      text("dropped", u.dropped_inputs ? " · " + u.dropped_inputs + " inputs dropped (queue full)" : "");
    } catch (err) { text("status", "bad update: " + err); }
  });
  es.onerror = () => {
    $("status").dataset.state = "lost";
    text("status", "disconnected, retrying…");
  };
}

window.addEventListener("resize", measure);
measure();
connect();
