// The operator dashboard (issue 13): shown at /admin/ once an admin signed in (signin.js mounts
// it). Everything comes from the admin API (callgw/web/dashboard.py): the live stream
// /api/calls/stream (Server-Sent Events: active calls, gateways, call servers, once a second),
// a call's story /api/calls/<id> (events, both legs' messages, routing), /api/cdrs (filters,
// CSV), /api/refused, the counters of the last hour /api/stats/calls (drawn by charts.js).
// Changes (End call, Drain / Enable a gateway) carry the session's CSRF token.
// Tests: tests/web/test_browser_dashboard.py (Chromium, a call to sipp),
// tests/web/test_browser_stats.py (the charts).

import {asrChart, callsChart, latencyChart} from "./charts.js";

const $ = (tag, attrs = {}, ...children) => {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "text") el.textContent = v;
    else if (k === "on") for (const [ev, fn] of Object.entries(v)) el.addEventListener(ev, fn);
    else el.setAttribute(k, v);
  }
  el.append(...children);
  return el;
};

const fmtTime = (t) => (t ? new Date(t * 1000).toLocaleString() : "");
const fmtClock = (t) => (t ? new Date(t * 1000).toLocaleTimeString() : "");

function fmtDuration(seconds) {
  const s = Math.max(0, Math.floor(seconds));
  const m = Math.floor(s / 60);
  const h = Math.floor(m / 60);
  const two = (n) => String(n).padStart(2, "0");
  return h ? `${h}:${two(m % 60)}:${two(s % 60)}` : `${m}:${two(s % 60)}`;
}

// The worse of the two directions' loss, jitter and MOS (a call is as good as its worse side).
// A figure no direction reports (null: rtpengine without RTCP-derived figures) stays blank.
export function quality(media) {
  if (!media) return {loss: "", jitter: "", mos: ""};
  const sides = [media.client_to_gateway, media.gateway_to_client].filter(Boolean);
  const known = (key) => sides.map((s) => s[key]).filter((v) => typeof v === "number");
  const [losses, jitters, moses] = [known("loss"), known("jitter_ms"), known("mos")];
  return {
    loss: losses.length ? `${(Math.max(...losses) * 100).toFixed(1)} %` : "",
    jitter: jitters.length ? `${Math.max(...jitters).toFixed(1)} ms` : "",
    mos: moses.length ? Math.min(...moses).toFixed(2) : "",
  };
}

function table(name, headers) {
  const body = $("tbody");
  const el = $("table", {}, $("caption", {text: name}),
    $("thead", {}, $("tr", {}, ...headers.map((h) => $("th", {scope: "col", text: h})))), body);
  return {el, body};
}

function fillRow(tr, cells) {
  while (tr.cells.length < cells.length) tr.append($("td"));
  cells.forEach((value, i) => {
    const td = tr.cells[i];
    if (value instanceof Node) {
      if (td.firstChild !== value) td.replaceChildren(value);
    } else if (td.textContent !== String(value ?? "")) {
      td.textContent = value ?? "";
    }
  });
}

async function api(path, options = {}) {
  const answer = await fetch(path, {credentials: "same-origin", ...options});
  const body = answer.headers.get("content-type")?.startsWith("application/json")
    ? await answer.json() : await answer.text();
  if (!answer.ok) throw new Error(body.error || `${answer.status}`);
  return body;
}

// `say(text)` reports to the page's one status line (signin.js's).
export function mount(root, {csrf, say: report}) {
  let said = "";
  const note = (text) => { said = text; report(text); };
  let now = Date.now() / 1000;
  let skew = 0;                 // server clock - browser clock, for durations between events

  // -- Active calls ---------------------------------------------------------------------------
  const active = table("Active calls", ["User", "Target", "Gateway", "Call server", "State",
    "Duration", "Media", "Loss", "Jitter", "MOS", "Actions"]);
  const rows = new Map();       // call id -> {tr, data}
  const none = $("p", {text: "No calls right now."});

  function showActive(list) {
    const seen = new Set();
    for (const call of list) {
      seen.add(call.call_id);
      let entry = rows.get(call.call_id);
      if (!entry) {
        const tr = $("tr", {"data-call": call.call_id});
        const details = $("a", {href: `#call=${encodeURIComponent(call.call_id)}`,
          text: "Details", on: {click: (e) => { e.preventDefault(); openCall(call.call_id); }}});
        const end = $("button", {type: "button", text: "End call",
          on: {click: () => confirmEnd(rows.get(call.call_id).data)}});
        entry = {tr, actions: $("span", {class: "actions"}, details, " ", end)};
        rows.set(call.call_id, entry);
        active.body.append(tr);
      }
      entry.data = call;
      const q = quality(call.media);
      const since = call.answered || call.started;
      fillRow(entry.tr, [call.username, call.target, call.gateway || "", call.call_server,
        call.state, fmtDuration(now - since), call.media_mode, q.loss, q.jitter, q.mos,
        entry.actions]);
    }
    for (const [id, entry] of rows) {
      if (!seen.has(id)) {
        entry.tr.remove();
        rows.delete(id);
      }
    }
    none.hidden = rows.size > 0;
  }

  // -- End call (confirmed in a dialog) -------------------------------------------------------
  const question = $("p");
  const yes = $("button", {type: "submit", value: "end", text: "Yes, end the call"});
  const keep = $("button", {type: "submit", value: "keep", text: "Keep the call"});
  const dialog = $("dialog", {"aria-labelledby": "end-title"},
    $("form", {method: "dialog"}, $("h2", {id: "end-title", text: "End this call?"}), question,
      $("p", {}, yes, " ", keep)));
  let ending = null;

  function confirmEnd(call) {
    ending = call;
    question.textContent = `The call from ${call.username} to ${call.target} ` +
      `(gateway ${call.gateway || "none yet"}) is released on both sides.`;
    dialog.showModal();
  }

  dialog.addEventListener("close", async () => {
    const call = ending;
    ending = null;
    if (dialog.returnValue !== "end" || !call) return;
    try {
      await api(`/api/calls/${encodeURIComponent(call.call_id)}/end`,
        {method: "POST", headers: {"X-CSRF-Token": csrf}});
      note(`ended the call from ${call.username} to ${call.target}`);
    } catch (e) {
      note(`could not end the call: ${e.message}`);
    }
  });

  // -- Call details: events, ladder, routing --------------------------------------------------
  const detail = $("section", {"aria-labelledby": "detail-title", hidden: ""});
  let openId = null;
  let detailTimer = null;

  async function openCall(id) {
    openId = id;
    clearTimeout(detailTimer);
    await showCall(id);
    detail.hidden = false;
    detail.querySelector("h2").focus();
  }

  async function showCall(id) {
    let story;
    try {
      story = await api(`/api/calls/${encodeURIComponent(id)}`);
    } catch (e) {
      note(`no details for call ${id}: ${e.message}`);
      return;
    }
    if (openId !== id) return;
    renderStory(story);
    if (story.live) detailTimer = setTimeout(() => showCall(id), 2000);
  }

  function renderStory(story) {
    const call = story.live || story.cdr || {};
    const title = $("h2", {id: "detail-title", tabindex: "-1",
      text: `Call ${call.username || ""} → ${call.target || ""}`});
    const close = $("button", {type: "button", text: "Close details", on: {click: () => {
      openId = null;
      clearTimeout(detailTimer);
      detail.hidden = true;
    }}});
    const facts = $("dl", {class: "facts"});
    const fact = (k, v) => facts.append($("dt", {text: k}), $("dd", {text: v ?? ""}));
    fact("Call id", story.call_id);
    fact("State", story.live ? story.live.state : "ended");
    fact("Gateway", call.gateway);
    if (story.cdr) {
      fact("Ended", fmtTime(story.cdr.ended));
      fact("Cause", `${story.cdr.cause} ${story.cdr.cause_text}`);
      fact("Duration", `${story.cdr.duration} s`);
    }
    detail.replaceChildren(title, close, facts, routing(story.routing),
      ladder(story.trace), events(story.events));
  }

  function routing(list) {
    const ol = $("ol", {"aria-label": "Routing decision"});
    for (const e of list) {
      const d = e.data;
      let text = "";
      if (e.kind === "attempt") {
        text = `attempt ${d.n}: gateway ${d.gateway}`;
        if (d.candidates) text += ` (candidates in order: ${d.candidates.join(", ")})`;
      } else if (e.kind === "failover") {
        text = `failed over from ${d.failed} to ${d.next}: ${d.cause} ${d.text}`;
      } else if (e.kind === "gateway-skipped") {
        text = `gateway ${d.gateway} skipped: ${d.dialled} ${d.reason}`;
      }
      ol.append($("li", {text}));
    }
    return $("section", {"aria-label": "Routing"}, $("h3", {text: "Routing"}), ol);
  }

  // A ladder of every message both legs exchanged: three lanes (the client, callgw, the
  // gateway); a client-protocol message runs between the first two, the native protocol's
  // between the last two, its arrow pointing the way it went.
  function ladder(trace) {
    const t0 = trace.length ? trace[0].at : 0;
    const native = trace.find((t) => t.leg !== "client")?.leg || "gateway";
    const ol = $("ol", {class: "ladder", "aria-label": "Ladder diagram"});
    ol.append($("li", {class: "lanes", "aria-hidden": "true"}, $("span", {text: ""}),
      $("span", {text: "client"}), $("span", {text: "callgw"}),
      $("span", {text: `${native} gateway`})));
    for (const t of trace) {
      const client = t.leg === "client";
      const toward = client ? (t.direction === "in" ? "callgw" : "client")
        : (t.direction === "in" ? "callgw" : "gateway");
      const from = client ? (t.direction === "in" ? "client" : "callgw")
        : (t.direction === "in" ? "gateway" : "callgw");
      const arrow = $("span", {class: `msg ${client ? "left" : "right"} ${
        toward === "callgw" ? (client ? "to-right" : "to-left") : (client ? "to-left" : "to-right")}`},
      $("span", {class: "label", text: t.summary}));
      ol.append($("li", {"aria-label": `+${(t.at - t0).toFixed(3)} s ${t.leg} ${from} to ${
        toward}: ${t.summary}`}, $("span", {class: "at", text: `+${(t.at - t0).toFixed(3)}`}),
      arrow));
    }
    return $("section", {"aria-label": "Messages"}, $("h3", {text: "Messages"}), ol);
  }

  function events(list) {
    const t = table("Events", ["Time", "Event", "Details"]);
    const t0 = list.length ? list[0].at : 0;
    for (const e of list) {
      t.body.append($("tr", {}, $("td", {text: `+${(e.at - t0).toFixed(3)} s`}),
        $("td", {text: e.kind}),
        $("td", {text: Object.entries(e.data).map(([k, v]) => `${k}=${
          typeof v === "object" ? JSON.stringify(v) : v}`).join(" ")})));
    }
    return t.el;
  }

  // -- Gateways, call servers -----------------------------------------------------------------
  const gateways = table("Gateways", ["Name", "Protocol", "Address", "Status", "Probe RTT",
    "Calls", "Recent failures", "Actions"]);
  const gwRows = new Map();     // name -> {tr, drain, enable}

  // Drain (no new calls, its calls go on) or enable a gateway: the admin API's change, with
  // the session's CSRF token; the row follows over the live stream once gateways reload.
  async function gatewayAction(name, action) {
    try {
      await api(`/api/gateways/${encodeURIComponent(name)}/${action}`,
        {method: "POST", headers: {"X-CSRF-Token": csrf}});
      note(action === "drain" ? `gateway ${name} draining: it takes no new calls`
        : `gateway ${name} takes calls again`);
    } catch (e) {
      note(`gateway ${name}: ${e.message}`);
    }
  }

  function showGateways(list) {
    const seen = new Set();
    for (const g of list) {
      seen.add(g.name);
      let entry = gwRows.get(g.name);
      if (!entry) {
        const tr = $("tr", {"data-gateway": g.name});
        const drain = $("button", {type: "button", text: "Drain",
          "aria-label": `Drain gateway ${g.name}`,
          on: {click: () => gatewayAction(g.name, "drain")}});
        const enable = $("button", {type: "button", text: "Enable",
          "aria-label": `Enable gateway ${g.name}`,
          on: {click: () => gatewayAction(g.name, "enable")}});
        entry = {tr, drain, enable};
        gwRows.set(g.name, entry);
        gateways.body.append(tr);
      }
      entry.tr.className = `status-${g.status}`;
      fillRow(entry.tr, [g.name, g.protocol, `${g.host}:${g.port}`, g.status,
        g.rtt_ms == null ? "" : `${Number(g.rtt_ms).toFixed(1)} ms`,
        `${g.active} / ${g.capacity}`, g.failures, g.enabled ? entry.drain : entry.enable]);
    }
    for (const [name, entry] of gwRows) {
      if (!seen.has(name)) { entry.tr.remove(); gwRows.delete(name); }
    }
  }

  const servers = table("Call servers", ["Name", "State", "Calls", "Weight"]);
  const csRows = new Map();

  function showServers(list) {
    for (const s of list) {
      let tr = csRows.get(s.name);
      if (!tr) {
        tr = $("tr");
        csRows.set(s.name, tr);
        servers.body.append(tr);
      }
      fillRow(tr, [s.name, s.state, `${s.active_calls} / ${s.capacity}`, s.weight]);
    }
  }

  // -- Call records (filters, CSV) ------------------------------------------------------------
  const fields = [["user", "User"], ["tenant", "Tenant"], ["prefix", "Target prefix"],
    ["gateway", "Gateway"], ["cause", "Cause"]];
  const inputs = {};
  const form = $("form", {class: "filters", "aria-label": "Call record filters"});
  for (const [key, label] of fields) {
    const id = `f-${key}`;
    inputs[key] = $("input", {id, name: key, autocomplete: "off"});
    form.append($("span", {}, $("label", {for: id, text: label}), inputs[key]));
  }
  for (const [key, label] of [["since", "From"], ["until", "To"]]) {
    const id = `f-${key}`;
    inputs[key] = $("input", {id, name: key, type: "datetime-local", step: "1"});
    form.append($("span", {}, $("label", {for: id, text: label}), inputs[key]));
  }
  const exportLink = $("a", {href: "/api/cdrs?format=csv", download: "callgw-cdrs.csv",
    text: "Export CSV"});
  form.append($("button", {type: "submit", text: "Search"}), " ", exportLink);
  const records = table("Call records", ["Placed", "User", "Tenant", "Target", "Gateway",
    "Duration", "Cause", "Outcome", "Actions"]);

  function query() {
    const q = new URLSearchParams();
    for (const [key] of fields) if (inputs[key].value.trim()) q.set(key, inputs[key].value.trim());
    for (const key of ["since", "until"]) {
      if (inputs[key].value) q.set(key, String(new Date(inputs[key].value).getTime() / 1000));
    }
    return q;
  }

  async function search(event) {
    event?.preventDefault();
    const q = query();
    const csv = new URLSearchParams(q);
    csv.set("format", "csv");
    exportLink.href = `/api/cdrs?${csv}`;
    let list;
    try {
      list = await api(`/api/cdrs?${q}`);
    } catch (e) {
      note(`call records: ${e.message}`);
      return;
    }
    records.body.replaceChildren(...list.map((r) => $("tr", {}, $("td", {text: fmtTime(r.requested)}),
      $("td", {text: r.username}), $("td", {text: r.tenant}), $("td", {text: r.target}),
      $("td", {text: r.gateway || ""}), $("td", {text: `${r.duration} s`}),
      $("td", {text: `${r.cause} ${r.cause_text}`}), $("td", {text: r.stats?.outcome || ""}),
      $("td", {}, $("button", {type: "button", class: "link", text: "Details",
        "aria-label": `Details of the call to ${r.target} at ${fmtClock(r.requested)}`,
        on: {click: () => openCall(r.call_id)}})))));
    if (event) note(`${list.length} call records`);   // a search the operator asked for
  }
  form.addEventListener("submit", search);

  // -- Refused attempts -----------------------------------------------------------------------
  const refused = table("Refused attempts", ["Time", "User", "Target", "Reason", "Answer"]);

  async function showRefused() {
    let list;
    try {
      list = await api("/api/refused?limit=50");
    } catch (e) {
      return;
    }
    refused.body.replaceChildren(...list.map((r) => $("tr", {},
      $("td", {text: fmtTime(r.at)}), $("td", {text: r.user || ""}),
      $("td", {text: r.target || ""}), $("td", {text: r.reason || ""}),
      $("td", {text: `${r.code} ${r.text || ""}`}))));
  }

  // -- Counters over time (the last hour, per minute) ----------------------------------------
  const charts = $("div", {class: "charts"});

  async function showStats() {
    let stats;
    try {
      stats = await api("/api/stats/calls");
    } catch (e) {
      return;
    }
    charts.replaceChildren(callsChart(stats.minutes), asrChart(stats.minutes),
      latencyChart(stats.minutes));
  }

  // -- the page -------------------------------------------------------------------------------
  const section = (title, ...content) => $("section", {"aria-label": title},
    $("h2", {text: title}), ...content);
  root.replaceChildren(
    section("Live calls", active.el, none),
    detail,
    dialog,
    section("Network", gateways.el, servers.el),
    section("Counters", charts),
    section("Records", form, records.el, $("h3", {text: "Refused"}), refused.el),
  );

  const stream = new EventSource("/api/calls/stream");
  stream.addEventListener("state", (e) => {
    const state = JSON.parse(e.data);
    skew = state.now - Date.now() / 1000;
    now = state.now;
    showActive(state.active);
    showGateways(state.gateways);
    showServers(state.servers);
  });
  stream.addEventListener("error", () => {
    note("live updates interrupted: reconnecting");
  });
  stream.addEventListener("open", () => {
    if (said.startsWith("live updates")) note("live updates on");
  });
  // Durations tick between events too.
  setInterval(() => {
    now = Date.now() / 1000 + skew;
    for (const {tr, data} of rows.values()) {
      tr.cells[5].textContent = fmtDuration(now - (data.answered || data.started));
    }
  }, 1000);
  // Records, refused attempts and counters refresh every 5 s (the filters stay as typed).
  search();
  showRefused();
  showStats();
  setInterval(() => { showRefused(); showStats(); }, 5000);
  const hash = location.hash.match(/^#call=(.+)$/);
  if (hash) openCall(decodeURIComponent(hash[1]));
  return {stream};
}
