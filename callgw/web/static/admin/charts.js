// Small inline SVG charts of the dashboard's counters over time (issue 13): calls per minute by
// outcome (stacked bars), the answer-seizure ratio and set-up latency (lines), drawn from
// /api/stats/calls (callgw/web/dashboard.py, one entry per minute). Plain DOM and SVG: no chart
// library. Each chart is a <figure> whose <svg role="img"> is named by its title and whose
// <figcaption> says the figures in words (what a screen reader and the tests read); each bar
// and point carries its minute and value in data-* attributes and a <title> tooltip.
// Tests: tests/web/test_browser_stats.py (Chromium, calls to the echo number).

const SVG = "http://www.w3.org/2000/svg";
const W = 600;
const H = 150;
const PAD = {left: 44, right: 8, top: 10, bottom: 22};

export const OUTCOMES = [
  ["answered", "answered", "#16a34a"], ["busy", "busy", "#d97706"],
  ["no-answer", "no answer", "#2563eb"], ["cancelled", "cancelled", "#71717a"],
  ["failed", "failed", "#dc2626"], ["refused", "refused", "#7c3aed"],
];

function svg(tag, attrs = {}, ...children) {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, v);
  el.append(...children);
  return el;
}

const title = (text) => svg("title", {}, text);
const hhmm = (t) => new Date(t * 1000).toLocaleTimeString([], {hour: "2-digit",
  minute: "2-digit"});

// The frame every chart shares: the y axis from 0 to `max` (its top labelled with `label`),
// the x axis from the first minute to the last, labelled at both ends.
function frame(name, minutes, max, label) {
  const chart = svg("svg", {viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": name,
    class: "chart"});
  const bottom = H - PAD.bottom;
  chart.append(
    svg("line", {x1: PAD.left, y1: PAD.top, x2: PAD.left, y2: bottom, class: "axis"}),
    svg("line", {x1: PAD.left, y1: bottom, x2: W - PAD.right, y2: bottom, class: "axis"}),
    svg("line", {x1: PAD.left, y1: PAD.top, x2: W - PAD.right, y2: PAD.top, class: "grid"}),
    svg("text", {x: PAD.left - 4, y: PAD.top + 4, "text-anchor": "end"}, label),
    svg("text", {x: PAD.left - 4, y: bottom, "text-anchor": "end"}, "0"));
  if (minutes.length) {
    chart.append(
      svg("text", {x: PAD.left, y: H - 6, "text-anchor": "start"}, hhmm(minutes[0].minute)),
      svg("text", {x: W - PAD.right, y: H - 6, "text-anchor": "end"},
        hhmm(minutes[minutes.length - 1].minute)));
  }
  const slot = (W - PAD.left - PAD.right) / Math.max(1, minutes.length);
  const x = (i) => PAD.left + i * slot;
  const y = (v) => bottom - (max ? (v / max) * (bottom - PAD.top) : 0);
  return {chart, slot, x, y};
}

function figure(name, chart, caption, legend) {
  const fig = document.createElement("figure");
  fig.className = "chart";
  fig.setAttribute("aria-label", name);
  const cap = document.createElement("figcaption");
  const strong = document.createElement("strong");
  strong.textContent = name;
  cap.append(strong, ": ", caption);
  fig.append(chart, cap);
  if (legend) fig.append(legend);
  return fig;
}

// Calls per minute, a bar per minute stacked by outcome.
export function callsChart(minutes) {
  const name = "Calls per minute by outcome";
  const peak = Math.max(0, ...minutes.map((m) => m.calls));
  const max = Math.max(1, peak);
  const {chart, slot, x, y} = frame(name, minutes, max, String(max));
  const totals = Object.fromEntries(OUTCOMES.map(([key]) => [key, 0]));
  minutes.forEach((m, i) => {
    let base = 0;
    for (const [key, label, color] of OUTCOMES) {
      const n = m.outcomes[key] || 0;
      totals[key] += n;
      if (!n) continue;
      chart.append(svg("rect", {x: x(i) + slot * 0.1, width: Math.max(1, slot * 0.8),
        y: y(base + n), height: y(base) - y(base + n), fill: color, "data-outcome": key,
        "data-minute": m.minute, "data-count": n}, title(`${hhmm(m.minute)}: ${n} ${label}`)));
      base += n;
    }
  });
  const all = Object.values(totals).reduce((a, b) => a + b, 0);
  const parts = OUTCOMES.filter(([key]) => totals[key]).map(([key, label]) =>
    `${totals[key]} ${label}`);
  const caption = all ? `${all} calls in ${minutes.length} minutes (${parts.join(", ")}), ` +
    `at most ${peak} in a minute` : `no calls in ${minutes.length} minutes`;
  const legend = document.createElement("ul");
  legend.className = "legend";
  legend.setAttribute("aria-hidden", "true");
  for (const [, label, color] of OUTCOMES) {
    const li = document.createElement("li");
    li.append(svg("svg", {viewBox: "0 0 10 10", width: 10, height: 10},
      svg("rect", {width: 10, height: 10, fill: color})), ` ${label}`);
    legend.append(li);
  }
  return figure(name, chart, caption, legend);
}

// A line through the minutes that have a value (gaps where none), a dot on each.
function lineChart(name, minutes, value, max, maxLabel, show) {
  const {chart, slot, x, y} = frame(name, minutes, max, maxLabel);
  let run = [];
  const flush = () => {
    if (run.length > 1) chart.append(svg("polyline", {points: run.join(" "), class: "line"}));
    run = [];
  };
  minutes.forEach((m, i) => {
    const v = value(m);
    if (v == null) { flush(); return; }
    const cx = x(i) + slot / 2;
    run.push(`${cx},${y(v)}`);
    chart.append(svg("circle", {cx, cy: y(v), r: 3, class: "point", "data-minute": m.minute,
      "data-value": v}, title(`${hhmm(m.minute)}: ${show(v, m)}`)));
  });
  flush();
  return chart;
}

// The answer-seizure ratio per minute: answered calls / calls that reached a gateway.
export function asrChart(minutes) {
  const name = "Answer-seizure ratio";
  const chart = lineChart(name, minutes, (m) => (m.asr == null ? null : m.asr * 100), 100,
    "100 %", (v, m) => `${v.toFixed(0)} % (${m.answered} of ${m.seized})`);
  const seized = minutes.reduce((a, m) => a + m.seized, 0);
  const answered = minutes.reduce((a, m) => a + m.answered, 0);
  const caption = seized
    ? `${((answered / seized) * 100).toFixed(0)} % (${answered} answered of ${seized} seized)`
    : "no calls reached a gateway";
  return figure(name, chart, caption);
}

// Set-up latency per minute: the average, request to ringing (or answer).
export function latencyChart(minutes) {
  const name = "Set-up latency";
  const values = minutes.filter((m) => m.setup_avg != null);
  const top = Math.max(0, ...values.map((m) => m.setup_avg));
  const max = top > 0 ? top * 1.1 : 1;
  const fmt = (s) => (s < 1 ? `${(s * 1000).toFixed(0)} ms` : `${s.toFixed(2)} s`);
  const chart = lineChart(name, minutes, (m) => m.setup_avg, max, fmt(max),
    (v, m) => `average ${fmt(v)}, at most ${fmt(m.setup_max)}`);
  const worst = Math.max(0, ...values.map((m) => m.setup_max));
  const caption = values.length
    ? `average ${fmt(values.reduce((a, m) => a + m.setup_avg, 0) / values.length)} per ` +
      `minute, at most ${fmt(worst)}`
    : "no call set up";
  return figure(name, chart, caption);
}
