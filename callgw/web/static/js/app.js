// The call page's controller: one state object, the session (protocol.js), the call's audio
// (audio.js) and the views (ui.js). docs/client.md ("The web page") describes what a caller
// sees; tests/web/test_browser*.py drive it in Chromium by the accessible names it gives.

import { CallAudio, MicrophoneError, openAudio } from "./audio.js";
import { b64d, b64e } from "./bytes.js";
import { format } from "./e164.js";
import { PAYLOAD_TYPE } from "./g711.js";
import { ReceiveQuality } from "./jitter.js";
import { LoginError, RequestError, Session } from "./protocol.js";
import * as ui from "./ui.js";

const CAUSE_TEXT = {
  normal: "call ended", busy: "the line is busy", "no-answer": "no answer", rejected: "call rejected",
  unreachable: "number unreachable", congestion: "the network is busy", "invalid-number": "not a valid number",
  unauthorized: "call not allowed", cancelled: "call cancelled", timeout: "no response",
  "media-timeout": "the audio stopped", "network-error": "connection lost", "server-error": "server error",
};
const HISTORY_RETRIES = [500, 1500, 3000, 6000];
// After a lost session: try again after these pauses (the last repeats), for as long as callgw
// keeps a call waiting ([client] reattach_grace, 30 s by default)
const RECONNECT_BACKOFF = [250, 500, 1000, 2000, 4000];
const REATTACH_GRACE = 30000;
const RESUME_KEY = "callgw.resume";      // sessionStorage: what a reload needs to carry on

const state = {
  session: null,
  welcome: null,
  book: [],
  history: [],
  call: null,          // {number, id, key, phase, muted, held, audio, seq, ts, quality, connectedAt}
  dialog: null,
  token: null,         // the session's token (kept fresh by refresh): a lost session logs in with it
  reconnecting: null,  // {since, attempt} while a lost session is being replaced
};

const $ = (id) => document.getElementById(id);
const statusEl = $("status");
const timerEl = $("timer");
const connectionEl = $("connection");
const view = $("view");
view.replaceChildren();

// -- the views and where they go ----------------------------------------------------------------
const signInSlot = new ui.Slot(view);
const phone = ui.el("section", { class: "card phone", "aria-label": "Phone" });
const phoneSlot = new ui.Slot(view);
const dialSlot = new ui.Slot(phone);
const inCallSlot = new ui.Slot(phone);
const keypadSlot = new ui.Slot(phone);
const sideSlot = new ui.Slot(view);

const dial = ui.dialView((number) => placeCall(number));
const inCall = ui.inCallView({ onHangup: hangup, onMute: toggleMute, onHold: toggleHold });
const keypad = ui.keypadView(pressKey);
const book = ui.bookView({ onAdd: () => openDialog(null), onCall: (e) => placeCall(e.number),
                           onEdit: (e) => openDialog(e), onDelete: deleteContact });
const history = ui.historyView(() => loadHistory());
const side = ui.el("div", { class: "side" }, book.node, history.node);
const signOut = ui.el("button", { type: "button", class: "link", text: "Sign out", onclick: () => signOutNow() });
let signIn = null;

function setStatus(text) {
  if (statusEl.textContent !== text) statusEl.textContent = text;
}

function render() {
  const signedIn = state.welcome !== null;
  if (!signedIn) {
    if (!signIn) signIn = ui.signInView(signInNow);
    signInSlot.show(signIn.node);
    phoneSlot.show(null);
    sideSlot.show(null);
    $("account").replaceChildren();
    return;
  }
  signInSlot.show(null);
  signIn = null;
  phoneSlot.show(phone);
  sideSlot.show(side);
  const call = state.call;
  // the dial form's Number field leaves the DOM during a call and while the dialog is open
  dialSlot.show(call || state.dialog ? null : dial.node);
  inCallSlot.show(call && call.id ? inCall.node : null);
  keypadSlot.show(keypad.node);
  if (call) {
    inCall.peer.textContent = format(call.number);
    inCall.mute.setAttribute("aria-pressed", String(call.muted));
    inCall.hold.setAttribute("aria-pressed", String(call.held));
  }
  book.render(state.book, Boolean(call));
  history.render(state.history);
}

// -- signing in and out -------------------------------------------------------------------------
async function signInNow(user, password) {
  if (!user || !password) { signIn.error.textContent = "Type your user name and password."; return; }
  signIn.button.disabled = true;
  signIn.error.textContent = "";
  const session = new Session();
  try {
    await session.open();
    const welcome = await session.login(user, password);
    adopt(session, welcome);
    dial.input.focus();
    await Promise.all([loadBook(), loadHistory()]);
  } catch (err) {
    session.close();
    if (signIn) {
      signIn.button.disabled = false;
      signIn.error.textContent = err instanceof LoginError ? loginText(err) : `Cannot sign in: ${err.message}`;
      signIn.password.focus();
    }
  }
}

/** Make ``session`` (logged in, ``welcome``) the page's session. */
function adopt(session, welcome) {
  state.session = session;
  state.welcome = welcome;
  state.token = { token: session.token, expires: session.expires };
  session.addEventListener("call", (e) => callEvent(e.detail));
  session.addEventListener("media", (e) => mediaIn(e.detail));
  session.addEventListener("token", (e) => { if (state.session === session) state.token = e.detail; });
  session.addEventListener("closed", (e) => { if (state.session === session) sessionClosed(e.detail); });
  applyBranding(welcome);
  $("account").replaceChildren(ui.el("span", { text: welcome.name || welcome.user }), signOut);
  render();
}

function loginText(err) {
  if (err.code === 429) return `Too many failed sign-ins: wait ${err.retry || 1} s and try again.`;
  if (err.code === 401) return "Wrong user name or password.";
  if (err.code === 405) return "This account is disabled.";
  return `Cannot sign in: ${err.text || err.message}`;
}

function signOutNow() {
  if (state.call) endCall();
  const session = state.session;
  state.session = null;
  state.reconnecting = null;
  if (session) session.logout();
  resetSignedOut();
}

function sessionClosed({ reason, lost }) {
  state.session = null;
  if (lost && state.token) {
    reconnect(reason);
    return;
  }
  if (state.call) endCall();
  signedOutBecause(`The connection to the server ended (${reason}). Sign in again.`);
}

function signedOutBecause(text) {
  resetSignedOut();
  signIn.error.textContent = text;
}

// -- continuity: a lost session is replaced, its call taken back (docs/protocol.md section 9) --
/** Log in again with the token, with back-off, while callgw may still hold the call; then
 * ``attach`` to the call (the status keeps its word, the timer goes on, the audio resumes). */
async function reconnect(reason) {
  const since = performance.now();
  const run = state.reconnecting = { since, attempt: 0, reason };
  const call = state.call;
  if (call && call.phase !== "connected") {
    // only answered calls wait for their client: this one is gone
    endCall(`disconnected: network-error — ${CAUSE_TEXT["network-error"]}`);
  }
  render();
  while (state.reconnecting === run) {
    const pause = RECONNECT_BACKOFF[Math.min(run.attempt, RECONNECT_BACKOFF.length - 1)];
    run.attempt++;
    showConnection();
    await new Promise((r) => setTimeout(r, pause));
    if (state.reconnecting !== run) return;
    if (performance.now() - since > REATTACH_GRACE ||
        (state.token.expires && state.token.expires * 1000 < Date.now())) break;
    const session = new Session();
    let welcome;
    try {
      await session.open();
      welcome = await session.loginToken(state.token.token);
    } catch (err) {
      session.close();
      if (err instanceof LoginError && err.code) {          // the token was refused: sign in
        state.reconnecting = null;
        if (state.call) endCall();
        signedOutBecause(`The connection to the server ended (${loginText(err)}). Sign in again.`);
        return;
      }
      continue;                                              // not reachable yet: again
    }
    if (state.reconnecting !== run) { session.logout(); return; }
    state.reconnecting = null;
    adopt(session, welcome);
    const live = state.call;
    if (live && live.key) {
      live.id = session.attach(live.key, live.audio ? live.audio.codec : "PCMU");
      live.reattaching = true;
    }
    showConnection();
    loadHistory();
    return;
  }
  if (state.reconnecting !== run) return;
  state.reconnecting = null;
  if (state.call) endCall(`disconnected: network-error — ${CAUSE_TEXT["network-error"]}`);
  signedOutBecause(`The connection to the server was lost (${reason}) and did not come back. Sign in again.`);
}

/** The connection line (outside the status): says when the page is reconnecting. */
function showConnection(text) {
  const run = state.reconnecting;
  const line = text !== undefined ? text
    : run ? `Connection lost: reconnecting${run.attempt > 1 ? ` (try ${run.attempt})` : ""}…`
      : state.call && state.call.reattaching ? "Reconnected: taking the call back…" : "";
  if (connectionEl.textContent !== line) connectionEl.textContent = line;
  connectionEl.hidden = !line;
}

function resetSignedOut() {
  state.welcome = null;
  state.token = null;
  sessionStorage.removeItem(RESUME_KEY);
  state.book = [];
  state.history = [];
  if (state.dialog) state.dialog.node.close();
  document.documentElement.removeAttribute("style");
  render();
  signIn.user.focus();
}

const COLOR = /^#(?:[0-9a-f]{3}|[0-9a-f]{6})$/i;

/** The tenant's branding from welcome: name, logo, colours, greeting. */
function applyBranding(welcome) {
  const b = welcome.branding || {};
  const name = b.display_name || b.title || "callgw";
  $("brand-name").textContent = name;
  document.title = name;
  $("brand-greeting").textContent = b.greeting || "";
  const logo = $("brand-logo");
  if (b.logo && (/^data:image\/(png|gif|jpeg|webp|svg\+xml)[;,]/.test(b.logo) || /^\/[^/]/.test(b.logo))) {
    logo.src = b.logo;
    logo.alt = `${name} logo`;
    logo.hidden = false;
  } else {
    logo.hidden = true;
  }
  const root = document.documentElement.style;
  for (const [key, prop] of [["primary_color", "--brand"], ["accent_color", "--accent"]]) {
    const color = b[key] || b[key.replace("_color", "")] || (key === "primary_color" ? b.color : undefined);
    if (color && COLOR.test(color)) {
      root.setProperty(prop, color);
      root.setProperty(`${prop}-text`, readableOn(color));
    }
  }
}

function readableOn(hex) {
  const full = hex.length === 4 ? hex.replace(/[0-9a-f]/gi, (c) => c + c) : hex;
  const [r, g, b] = [1, 3, 5].map((i) => parseInt(full.slice(i, i + 2), 16) / 255)
    .map((c) => (c <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4));
  return 0.2126 * r + 0.7152 * g + 0.0722 * b > 0.35 ? "#111" : "#fff";
}

// -- address book and history -------------------------------------------------------------------
async function loadBook() {
  try {
    state.book = await state.session.book();
  } catch (err) {
    book.note.textContent = `The address book could not be loaded: ${err.message}`;
  }
  render();
}

async function loadHistory() {
  if (!state.session) return 0;
  try {
    state.history = await state.session.history();
  } catch (err) {
    /* shown as it was; a later reload may work */
  }
  render();
  return state.history.length;
}

function openDialog(entry) {
  if (state.dialog) return;
  const opener = document.activeElement;
  const dialog = ui.contactDialog({
    title: entry ? "Edit contact" : "Add contact",
    entry,
    onSave: async (name, number, error) => {
      try {
        await state.session.bookPut(name, number, entry ? entry.name : undefined);
        dialog.node.close();
        book.note.textContent = "";
        await loadBook();
        const call = [...book.list.querySelectorAll("button.call-contact")].find((b) => b.textContent === `Call ${name}`);
        if (call) call.focus();
      } catch (err) {
        error.textContent = err instanceof RequestError && err.code === 601
          ? `There is already a contact named ${name}.` : `Not saved: ${err.message}`;
      }
    },
    onClose: () => {
      state.dialog = null;
      render();
      if (opener && opener.isConnected) opener.focus();
      else book.add.focus();
    },
  });
  state.dialog = dialog;
  render();                       // the dial form's Number leaves the DOM first
  document.body.append(dialog.node);
  dialog.node.showModal();
  dialog.name.focus();
}

async function deleteContact(entry) {
  try {
    await state.session.bookDelete(entry.name);
    book.note.textContent = `${entry.name} was deleted.`;
  } catch (err) {
    book.note.textContent = `${entry.name} was not deleted: ${err.message}`;
  }
  await loadBook();
  book.add.focus();
}

// -- calls --------------------------------------------------------------------------------------
async function placeCall(number) {
  if (state.call || !state.session) return;
  // the audio context starts in the click (or Enter) that places the call
  const ctx = new AudioContext({ latencyHint: "interactive" });
  const call = state.call = { number, id: null, phase: "starting", muted: false, held: false,
                              audio: null, seq: Math.floor(Math.random() * 65536), ts: 0,
                              quality: new ReceiveQuality(), buffer: null, connectedAt: null };
  setStatus("");
  timerEl.textContent = "";
  render();
  try {
    call.audio = await openAudio(ctx, { onFrame: (codes) => frameOut(call, codes),
                                        onBuffer: (b) => { call.buffer = b; } });
  } catch (err) {
    ctx.close().catch(() => {});
    if (state.call === call) state.call = null;
    setStatus(err instanceof MicrophoneError ? err.message : `no audio: ${err.message}`);
    render();
    dial.input.focus();
    return;
  }
  if (state.call !== call || !state.session) {      // hung up or signed out meanwhile
    call.audio.close();
    return;
  }
  await ctx.resume().catch(() => {});
  call.id = state.session.call(number);
  render();
  inCall.hangup.focus();
  call.ticker = setInterval(() => tick(call), 250);
}

function frameOut(call, codes) {
  if (call.phase !== "connected" || call.held || !state.session) return;
  const codec = call.audio.codec;
  state.session.sendMedia(call.id, PAYLOAD_TYPE[codec], call.seq, call.ts, codes);
  call.seq = (call.seq + 1) & 0xFFFF;
  call.ts = (call.ts + codes.length) >>> 0;
}

function mediaIn(frame) {
  const call = state.call;
  if (!call || frame.call !== call.id || !call.audio) return;
  call.quality.frame(frame.sequence, frame.timestamp, performance.now());
  if (call.held) return;
  call.audio.play(frame.sequence, frame.payloadType === 8 ? "PCMA" : "PCMU", frame.payload);
}

function callEvent(message) {
  const call = state.call;
  if (!call || message.call !== call.id) return;
  switch (message.cmd) {
    case "trying":
    case "ringing":
      call.phase = message.cmd;
      setStatus(message.cmd);
      break;
    case "connected":
      if (call.phase !== "connected") call.connectedAt = performance.now();
      call.phase = "connected";
      call.key = state.session.keyOf(call.id);
      call.audio.setCodec(message.codec || "PCMU");
      if (call.reattaching) {
        call.reattaching = false;
        call.audio.reset();               // a held call stays held: the server keeps that
        call.quality = new ReceiveQuality();   // a new stream: the gap is not loss
        showConnection(call.audio.ctx.state === "running" ? "" : "Click or press a key to hear the call.");
      }
      setStatus("connected");
      break;
    case "status":
      if (message.info === "held" || message.info === "resumed") call.held = message.info === "held";
      break;
    case "disconnected":
      endCall(`disconnected: ${message.cause} — ${message.text || CAUSE_TEXT[message.cause] || message.cause}`);
      return;
    case "unauthorized":
      endCall(`disconnected: unauthorized — ${message.text || CAUSE_TEXT.unauthorized}`);
      return;
    case "error":
      endCall(`disconnected: server-error — ${message.text || CAUSE_TEXT["server-error"]}`);
      return;
    default:
      break;
  }
  render();
}

function endCall(statusText) {
  const call = state.call;
  if (!call) return;
  state.call = null;
  showConnection(state.reconnecting ? undefined : "");
  clearInterval(call.ticker);
  if (call.audio) call.audio.close();
  if (statusText) setStatus(statusText);
  render();
  if (dial.node.isConnected) dial.input.focus();
  if (call.id) reloadHistoryAfterCall();
}

async function reloadHistoryAfterCall() {
  // the call's record is written a moment after it ended: look again until it is there
  const newest = JSON.stringify(state.history[0] || null), count = state.history.length;
  for (const wait of HISTORY_RETRIES) {
    await new Promise((r) => setTimeout(r, wait));
    if (!state.session) return;
    await loadHistory();
    if (state.history.length !== count || JSON.stringify(state.history[0] || null) !== newest) return;
  }
}

function hangup() {
  const call = state.call;
  if (!call) return;
  if (call.id && state.session) state.session.hangup(call.id);
  // between sessions: the call ends here; callgw ends it when its grace period is over
  else endCall(call.id ? `disconnected: normal — ${CAUSE_TEXT.normal}` : "");
}

function toggleMute() {
  const call = state.call;
  if (!call || !call.audio) return;
  call.muted = !call.muted;
  call.audio.setMuted(call.muted);
  render();
}

function toggleHold() {
  const call = state.call;
  if (!call || !call.id || call.phase !== "connected" || !state.session || call.reattaching) return;
  call.held = !call.held;
  if (call.held) state.session.hold(call.id);
  else state.session.resume(call.id);
  call.audio.reset();
  render();
}

function pressKey(key) {
  const call = state.call;
  if (call && call.id) {
    if (call.phase === "connected" && state.session && !call.reattaching) state.session.dtmf(call.id, key);
    return;
  }
  if (dial.node.isConnected) {
    const input = dial.input;
    const at = input.selectionStart ?? input.value.length;
    input.value = input.value.slice(0, at) + key + input.value.slice(input.selectionEnd ?? at);
    input.setSelectionRange(at + 1, at + 1);
    input.dispatchEvent(new Event("input"));
  }
}

function tick(call) {
  if (state.call !== call) return;
  if (call.connectedAt !== null) timerEl.textContent = ui.clock((performance.now() - call.connectedAt) / 1000);
  if (call.audio) {
    inCall.micLevel.value = Math.min(1, CallAudio.level(call.audio.micAnalyser) * 4);
    inCall.speakerLevel.value = Math.min(1, CallAudio.level(call.audio.speakerAnalyser) * 4);
  }
  if (call.phase === "connected" && (state.reconnecting || call.reattaching)) {
    inCall.quality.textContent = "Quality: no connection (reconnecting)";
    inCall.quality.dataset.grade = "poor";
  } else if (call.phase === "connected") {
    const q = call.quality.snapshot();
    const buffer = call.buffer ? ` · buffer ${call.buffer.delayMs} ms` : "";
    inCall.quality.textContent = `Quality: ${q.grade} · loss ${q.lossPercent.toFixed(1)}% · jitter ${Math.round(q.jitterMs)} ms${buffer}`;
    inCall.quality.dataset.grade = q.grade;
  } else {
    inCall.quality.textContent = "";
  }
}

// DTMF from the keyboard during a call (outside text fields)
document.addEventListener("keydown", (e) => {
  const call = state.call;
  if (!call || !call.id || e.ctrlKey || e.metaKey || e.altKey) return;
  if (e.target instanceof HTMLInputElement || state.dialog) return;
  if (ui.KEYS.includes(e.key)) {
    e.preventDefault();
    const button = keypad.buttons.get(e.key);
    button.classList.add("pressed");
    setTimeout(() => button.classList.remove("pressed"), 150);
    pressKey(e.key);
  }
});

// Leaving or reloading the page is not signing out: the socket just drops (callgw keeps an
// answered call for its grace period) and the tab remembers, for this tab only, what the next
// page needs to sign in again with the token and take the call back. "Sign out" logs out.
window.addEventListener("pagehide", () => {
  if (!state.token || !state.welcome) return;
  const call = state.call;
  const keep = { token: state.token, at: Date.now() };
  if (call && call.key && call.phase === "connected") {
    keep.call = { number: call.number, key: b64e(call.key), held: call.held, muted: call.muted,
                  codec: call.audio ? call.audio.codec : "PCMU",
                  connectedFor: (performance.now() - call.connectedAt) / 1000 };
  }
  sessionStorage.setItem(RESUME_KEY, JSON.stringify(keep));
  if (state.session) state.session.drop("page left");
});

// for diagnostics (and the browser tests): the live call's audio analysers, read-only
Object.defineProperty(window, "callgwPage", {
  value: Object.freeze({ get audio() { return state.call && state.call.audio; },
                         get session() { return state.session; } }),
});

/** After a reload: sign in again with the token the last page left, and take its call back. */
async function resumeAfterReload() {
  const raw = sessionStorage.getItem(RESUME_KEY);
  sessionStorage.removeItem(RESUME_KEY);
  let keep;
  try { keep = JSON.parse(raw); } catch { return; }
  if (!keep || !keep.token || !keep.token.token || keep.token.expires * 1000 < Date.now()) return;
  const session = new Session();
  let welcome;
  try {
    await session.open();
    welcome = await session.loginToken(keep.token.token);
  } catch {
    session.close();
    return;
  }
  if (state.session) { session.logout(); return; }          // signed in meanwhile
  adopt(session, welcome);
  if (keep.call && Date.now() - keep.at < REATTACH_GRACE) await takeBackCall(keep.call, keep.at);
  else dial.input.focus();
  await Promise.all([loadBook(), loadHistory()]);
}

async function takeBackCall(kept, leftAt) {
  const ctx = new AudioContext({ latencyHint: "interactive" });
  const call = state.call = { number: kept.number, id: null, key: b64d(kept.key), phase: "connected",
                              muted: Boolean(kept.muted), held: Boolean(kept.held), audio: null,
                              seq: Math.floor(Math.random() * 65536), ts: 0, reattaching: true,
                              quality: new ReceiveQuality(), buffer: null,
                              connectedAt: performance.now() - kept.connectedFor * 1000 - (Date.now() - leftAt) };
  render();
  try {
    call.audio = await openAudio(ctx, { onFrame: (codes) => frameOut(call, codes),
                                        onBuffer: (b) => { call.buffer = b; } });
  } catch (err) {
    ctx.close().catch(() => {});
    if (state.call === call) state.call = null;
    setStatus(err instanceof MicrophoneError ? err.message : `no audio: ${err.message}`);
    render();
    return;
  }
  if (state.call !== call || !state.session) { call.audio.close(); return; }
  call.audio.setCodec(kept.codec || "PCMU");
  call.audio.setMuted(call.muted);
  call.id = state.session.attach(call.key, kept.codec || "PCMU");
  showConnection();
  render();
  inCall.hangup.focus();
  call.ticker = setInterval(() => tick(call), 250);
  await ctx.resume().catch(() => {});
  if (ctx.state !== "running") {
    // browsers start sound only after a gesture: the first click or key brings it back
    showConnection("Click or press a key to hear the call.");
    const wake = () => {
      ctx.resume().then(() => { if (state.call === call && !call.reattaching) showConnection(""); }).catch(() => {});
    };
    document.addEventListener("pointerdown", wake, { once: true });
    document.addEventListener("keydown", wake, { once: true });
  }
}

render();
signIn.user.focus();
resumeAfterReload();
