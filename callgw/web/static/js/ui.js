// The page's views, built once and shown or removed (never merely hidden, so that the names the
// tests and assistive technology rely on are unique in the DOM): the sign-in form, the dial
// form, the in-call buttons, the keypad, the address book, the contact dialog and the call
// history. app.js owns the state and calls these; nothing here talks to the server.

import { format, normalize, reformat, valid } from "./e164.js";

/** Make an element: el("button", {type: "button", onclick}, "text", child...). */
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else if (key === "text") node.textContent = value;
    else node.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children) if (child !== null && child !== undefined) node.append(child);
  return node;
}

/** A place in the DOM where a view is put or taken away. */
export class Slot {
  constructor(parent) {
    this.mark = document.createComment("slot");
    parent.append(this.mark);
    this.node = null;
  }

  show(node) {
    if (this.node === node) return;
    if (this.node) this.node.remove();
    this.node = node;
    if (node) this.mark.after(node);
  }
}

let ids = 0;
const nextId = (prefix) => `${prefix}-${++ids}`;

function field(label, attrs) {
  const id = nextId("f");
  const input = el("input", { id, ...attrs });
  return { input, node: el("p", { class: "field" }, el("label", { for: id, text: label }), input) };
}

export function signInView(onSubmit) {
  const user = field("User name", { name: "user", autocomplete: "username", required: true,
                                    autocapitalize: "none", spellcheck: "false" });
  const password = field("Password", { name: "password", type: "password",
                                       autocomplete: "current-password", required: true });
  const error = el("p", { class: "error", role: "alert" });
  const button = el("button", { type: "submit", class: "primary", text: "Sign in" });
  const form = el("form", {
    class: "card signin", "aria-labelledby": "signin-title",
    onsubmit: (e) => { e.preventDefault(); onSubmit(user.input.value.trim(), password.input.value); },
  }, el("h2", { id: "signin-title", text: "Sign in to call" }), user.node, password.node, button, error);
  return { node: form, user: user.input, password: password.input, error, button };
}

/** A number field that formats E.164 as it is typed. */
export function numberField(label, attrs = {}) {
  const f = field(label, { type: "tel", inputmode: "tel", autocomplete: "off",
                           placeholder: "+1 415 555 0100", ...attrs });
  f.input.addEventListener("input", () => { reformat(f.input); f.input.removeAttribute("aria-invalid"); });
  return f;
}

export function dialView(onCall) {
  const hint = el("p", { class: "hint", id: nextId("hint") });
  const number = numberField("Number", { "aria-describedby": hint.id });
  const form = el("form", {
    class: "dial",
    onsubmit: (e) => {
      e.preventDefault();
      if (!valid(number.input.value)) {
        number.input.setAttribute("aria-invalid", "true");
        hint.textContent = "Type a number in international form: + then country code and number.";
        number.input.focus();
        return;
      }
      hint.textContent = "";
      onCall(normalize(number.input.value));
    },
  }, number.node, el("button", { type: "submit", class: "primary call", text: "Call" }), hint);
  return { node: form, input: number.input, hint };
}

export function inCallView({ onHangup, onMute, onHold }) {
  const mute = el("button", { type: "button", "aria-pressed": "false", text: "Mute", onclick: onMute });
  const hold = el("button", { type: "button", "aria-pressed": "false", text: "Hold", onclick: onHold });
  const hangup = el("button", { type: "button", class: "danger", text: "Hang up", onclick: onHangup });
  const peer = el("p", { class: "peer" });
  const quality = el("p", { class: "quality" });
  const micLevel = el("meter", { min: "0", max: "1", value: "0", "aria-label": "Microphone level" });
  const speakerLevel = el("meter", { min: "0", max: "1", value: "0", "aria-label": "Speaker level" });
  const node = el("div", { class: "incall" }, peer,
    el("div", { class: "controls" }, mute, hold, hangup),
    el("div", { class: "levels" }, el("span", { text: "Mic" }), micLevel, el("span", { text: "Speaker" }), speakerLevel),
    quality);
  return { node, mute, hold, hangup, peer, quality, micLevel, speakerLevel };
}

export const KEYS = ["1", "2", "3", "4", "5", "6", "7", "8", "9", "*", "0", "#"];
const LETTERS = { 2: "ABC", 3: "DEF", 4: "GHI", 5: "JKL", 6: "MNO", 7: "PQRS", 8: "TUV", 9: "WXYZ", 0: "+" };

/** The one keypad: types into the number field, or sends DTMF during a call. */
export function keypadView(onKey) {
  const buttons = new Map();
  const grid = el("div", { class: "keypad", role: "group", "aria-label": "Keypad" });
  for (const key of KEYS) {
    const button = el("button", { type: "button", "aria-label": key, onclick: () => onKey(key) },
      el("span", { class: "digit", text: key, "aria-hidden": "true" }),
      el("span", { class: "letters", text: LETTERS[key] || "", "aria-hidden": "true" }));
    buttons.set(key, button);
    grid.append(button);
  }
  return { node: grid, buttons };
}

export function bookView({ onAdd, onCall, onEdit, onDelete }) {
  const list = el("ul", { class: "contacts" });
  const note = el("p", { class: "note", role: "alert" });
  const add = el("button", { type: "button", text: "Add contact", onclick: onAdd });
  const node = el("section", { class: "card book", "aria-labelledby": "book-title" },
    el("div", { class: "card-head" }, el("h2", { id: "book-title", text: "Address book" }), add), note, list);
  function render(entries, inCall) {
    list.replaceChildren(...entries.map((entry) => el("li", {},
      el("span", { class: "who" }, el("span", { class: "name", text: entry.name }),
        el("span", { class: "number", text: format(entry.number) })),
      el("span", { class: "actions" },
        el("button", { type: "button", class: "call-contact", text: `Call ${entry.name}`,
                       disabled: inCall, onclick: () => onCall(entry) }),
        el("button", { type: "button", text: "Edit", "aria-label": `Edit ${entry.name}`, onclick: (e) => onEdit(entry, e.currentTarget) }),
        el("button", { type: "button", text: "Delete", "aria-label": `Delete ${entry.name}`, onclick: () => onDelete(entry) })))));
    if (!entries.length) list.append(el("li", { class: "empty", text: "No contacts yet." }));
  }
  return { node, list, note, add, render };
}

/** The modal contact dialog ("Add contact" / "Edit contact"). */
export function contactDialog({ title, entry, onSave, onClose }) {
  const titleId = nextId("dlg");
  const name = field("Name", { name: "name", required: true, maxlength: "64", autocomplete: "off" });
  const number = numberField("Number", { name: "number", required: true });
  const error = el("p", { class: "error", role: "alert" });
  if (entry) {
    name.input.value = entry.name;
    number.input.value = format(entry.number);
  }
  const dialog = el("dialog", { "aria-labelledby": titleId, class: "card" });
  const form = el("form", {
    onsubmit: (e) => {
      e.preventDefault();
      const n = name.input.value.trim();
      if (!n || /[\u0000-\u001f\u007f]/.test(n) || n.length > 64) { error.textContent = "Give the contact a name (up to 64 characters)."; name.input.focus(); return; }
      if (!valid(number.input.value)) { error.textContent = "Type the number in international form: + then country code and number."; number.input.focus(); return; }
      onSave(n, normalize(number.input.value), error);
    },
  }, el("h2", { id: titleId, text: title }), name.node, number.node, error,
  el("p", { class: "buttons" }, el("button", { type: "submit", class: "primary", text: "Save" }),
    el("button", { type: "button", text: "Cancel", onclick: () => dialog.close() })));
  dialog.append(form);
  dialog.addEventListener("close", () => { dialog.remove(); onClose(); });
  return { node: dialog, name: name.input, number: number.input, error };
}

const WHEN = new Intl.DateTimeFormat(undefined, { dateStyle: "short", timeStyle: "short" });

export function historyView(onReload) {
  const body = el("tbody");
  const table = el("table", { class: "history" },
    el("caption", { class: "visually-hidden", text: "Your calls, newest first" }),
    el("thead", {}, el("tr", {}, ...["When", "Number", "Duration", "Result"].map((h) => el("th", { scope: "col", text: h })))),
    body);
  const node = el("section", { class: "card", "aria-labelledby": "history-title" },
    el("div", { class: "card-head" }, el("h2", { id: "history-title", text: "Call history" }),
      el("button", { type: "button", text: "Reload history", onclick: onReload })),
    el("div", { class: "table-wrap" }, table));
  function render(records) {
    body.replaceChildren(...records.map((r) => el("tr", {},
      el("td", { text: WHEN.format(new Date(r.start * 1000)) }),
      el("td", { text: format(r.number) }),
      el("td", { text: r.answered === undefined ? "—" : clock(r.duration) }),
      el("td", { text: r.answered === undefined ? `not answered (${r.cause})` : r.cause === "normal" ? "answered" : `answered, ended: ${r.cause}` }))));
    if (!records.length) body.append(el("tr", {}, el("td", { colspan: "4", text: "No calls yet." })));
  }
  return { node, render };
}

/** Seconds as m:ss (or h:mm:ss). */
export function clock(seconds) {
  const s = Math.max(0, Math.floor(seconds));
  const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), r = String(s % 60).padStart(2, "0");
  return h ? `${h}:${String(m).padStart(2, "0")}:${r}` : `${m}:${r}`;
}
