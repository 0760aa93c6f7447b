// The call page's controller: one state object, the session (protocol.js), the call's audio
// (audio.js) and the views (ui.js). docs/client.md ("The web page") describes what a caller
// sees; tests/web/test_browser*.py drive it in Chromium by the accessible names it gives.

import { CallAudio, MicrophoneError, openAudio } from "./audio.js";
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

const state = {
  session: null,
  welcome: null,
  book: [],
  history: [],
  call: null,          // {number, id, phase, muted, held, audio, seq, ts, quality, connectedAt}
  dialog: null,
};

const $ = (id) => document.getElementById(id);
const statusEl = $("status");
const timerEl = $("timer");
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
    state.session = session;
    state.welcome = welcome;
    session.addEventListener("call", (e) => callEvent(e.detail));
    session.addEventListener("media", (e) => mediaIn(e.detail));
    session.addEventListener("closed", (e) => sessionClosed(e.detail.reason));
    applyBranding(welcome);
    $("account").replaceChildren(ui.el("span", { text: welcome.name || welcome.user }), signOut);
    render();
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
  if (session) session.logout();
  resetSignedOut();
}

function sessionClosed(reason) {
  if (!state.session) return;
  state.session = null;
  if (state.call) endCall();
  resetSignedOut();
  signIn.error.textContent = `The connection to the server ended (${reason}). Sign in again.`;
}

function resetSignedOut() {
  state.welcome = null;
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
      call.audio.setCodec(message.codec || "PCMU");
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
  else endCall("");
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
  if (!call || !call.id || call.phase !== "connected") return;
  call.held = !call.held;
  if (call.held) state.session.hold(call.id);
  else state.session.resume(call.id);
  call.audio.reset();
  render();
}

function pressKey(key) {
  const call = state.call;
  if (call && call.id) {
    if (call.phase === "connected") state.session.dtmf(call.id, key);
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
  if (call.phase === "connected") {
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

window.addEventListener("pagehide", () => { if (state.session) state.session.logout(); });

// for diagnostics (and the browser tests): the live call's audio analysers, read-only
Object.defineProperty(window, "callgwPage", {
  value: Object.freeze({ get audio() { return state.call && state.call.audio; },
                         get session() { return state.session; } }),
});

render();
signIn.user.focus();
