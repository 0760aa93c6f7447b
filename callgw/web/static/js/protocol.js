// The callgw client protocol (docs/protocol.md) in the page, over wss:// on the page's own
// origin (/client/v1/ws): control messages as JSON text frames, media frames as binary frames.
//
// ``Session`` logs in (SCRAM over scrypt, section 5: the password never leaves the page, the
// server's signature is checked), keeps the session alive with pings, refreshes its token at
// two thirds of its lifetime (section 6), sends requests and matches their answers by ``req``
// (section 18), places calls and carries their media frames (section 10). It dispatches events:
// "call" (detail: a server message about a call), "media" (detail: a decoded media frame),
// "token" (detail: {token, expires}), "closed" (detail: {reason, lost}).
//
// A session is *lost* when its socket drops or the server stops answering pings (not when the
// page closes it): then "closed" says ``lost: true`` and its calls get no made-up
// ``disconnected``, because callgw keeps their answered calls for a grace period and a new
// session can take them back with ``attach`` (section 9, "Re-attach after a lost session").

import { b64d, b64e, equalBytes, randomBytes } from "./bytes.js";
import * as scram from "./scram.js";

export const VERSION = 1;
export const WS_PATH = "/client/v1/ws";
export const MEDIA_HEADER = 24;
const MAX_MEDIA_PAYLOAD = 1400;

export class LoginError extends Error {
  constructor(code, text, retry) {
    super(text || `login refused (${code})`);
    Object.assign(this, { code, text, retry });
  }
}

export class RequestError extends Error {
  constructor(code, text) {
    super(text || `request refused (${code})`);
    this.code = code;
  }
}

/** One media frame's bytes (section 10). */
export function encodeMedia(key, payloadType, sequence, timestamp, payload) {
  const out = new Uint8Array(MEDIA_HEADER + payload.length);
  const view = new DataView(out.buffer);
  out[0] = 0x01;
  out[1] = payloadType & 0x7F;
  view.setUint16(2, sequence & 0xFFFF);
  view.setUint32(4, timestamp >>> 0);
  out.set(key, 8);
  out.set(payload, MEDIA_HEADER);
  return out;
}

/** A received media frame, or null when it is not one. */
export function decodeMedia(buffer) {
  const data = new Uint8Array(buffer);
  if (data.length < MEDIA_HEADER || data.length > MEDIA_HEADER + MAX_MEDIA_PAYLOAD || data[0] !== 0x01) return null;
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  return { payloadType: data[1] & 0x7F, sequence: view.getUint16(2), timestamp: view.getUint32(4),
           key: data.slice(8, 24), payload: data.slice(MEDIA_HEADER) };
}

export class Session extends EventTarget {
  constructor(url = defaultUrl()) {
    super();
    this.url = url;
    this.ws = null;
    this.welcome = null;
    this.token = null;
    this.expires = null;
    this.pending = new Map();        // req -> {resolve, reject}
    this.nextReq = 1;
    this.nextCall = 1;
    this.calls = new Map();          // call id -> {key, codec}
    this.waiter = null;              // the login step waiting for the server
    this.unanswered = 0;             // pings sent since the server last said anything
    this.timers = [];
    this.closed = false;
  }

  /** Open the WebSocket; resolves once it is open. */
  open() {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(this.url);
      ws.binaryType = "arraybuffer";
      this.ws = ws;
      ws.onopen = () => resolve();
      ws.onerror = () => reject(new Error("cannot reach the server"));
      ws.onmessage = (e) => this._receive(e.data);
      ws.onclose = (e) => this._closed(e.code === 1000 ? "closed" : `connection lost (${e.code})`,
                                       e.code !== 1000);
    });
  }

  _send(message) {
    if (this.ws && this.ws.readyState === WebSocket.OPEN) this.ws.send(JSON.stringify({ v: VERSION, ...message }));
  }

  _wait(expected) {
    return new Promise((resolve, reject) => { this.waiter = { expected, resolve, reject }; });
  }

  /** Password login; resolves with the welcome, rejects with LoginError. */
  async login(user, password) {
    const clientNonce = b64e(randomBytes(18));
    this._send({ cmd: "login", user, nonce: clientNonce });
    const challenge = await this._wait(["challenge"]);
    const { nonce, n, r, p } = challenge;
    if (typeof nonce !== "string" || !nonce.startsWith(clientNonce) || nonce.length < clientNonce.length + 16) {
      throw new LoginError(0, "the server's challenge does not answer ours");
    }
    if (!Number.isInteger(n) || n < 2 || (n & (n - 1)) || n * r > 2 ** 20 || p * r > 64) {
      throw new LoginError(0, "the server asked for scrypt parameters over this page's limits");
    }
    const salt = b64d(challenge.salt);
    const salted = await scram.saltedPassword(password, salt, n, r, p);
    const auth = scram.authMessage(user, clientNonce, nonce, salt, n, r, p);
    this._send({ cmd: "login", user, nonce, proof: b64e(scram.clientProof(salted, auth)) });
    const welcome = await this._wait(["welcome"]);
    if (!welcome.signature || !equalBytes(b64d(welcome.signature), scram.serverSignature(salted, auth))) {
      this.close();
      throw new LoginError(401, "the server did not prove it knows the password: not our server");
    }
    return this._welcomed(welcome);
  }

  /** Resume with a token (after a dropped socket); resolves with the welcome. */
  async loginToken(token) {
    this._send({ cmd: "login", token });
    return this._welcomed(await this._wait(["welcome"]));
  }

  _welcomed(welcome) {
    this.welcome = welcome;
    this._setToken(welcome.token, welcome.expires);
    // a ping every interval; three in a row without a word from the server: it is gone
    this.timers.push(setInterval(() => {
      if (this.unanswered >= 3) { this.drop("no answer from the server"); return; }
      this.unanswered++;
      this._send({ cmd: "ping" });
    }, Math.max(1, welcome.ping) * 1000));
    return welcome;
  }

  _setToken(token, expires) {
    this.token = token;
    this.expires = expires;
    clearTimeout(this.refreshTimer);
    const left = expires - Date.now() / 1000;
    const delay = Math.min(2 ** 31 - 1, Math.max(15, (2 * left) / 3) * 1000);
    this.refreshTimer = setTimeout(() => this.refresh().catch(() => {}), delay);
    this.dispatchEvent(new CustomEvent("token", { detail: { token, expires } }));
  }

  /** A fresh token (section 6); resolves with {token, expires}. */
  async refresh() {
    const answer = await this.request({ cmd: "refresh" });
    this._setToken(answer.token, answer.expires);
    return answer;
  }

  /** Send a request (section 18); resolves with its answer, rejects with RequestError. */
  request(message) {
    if (this.closed) return Promise.reject(new RequestError(0, "not connected"));
    const req = this.nextReq++;
    return new Promise((resolve, reject) => {
      this.pending.set(req, { resolve, reject });
      this._send({ ...message, req });
    });
  }

  /** The whole address book: [{name, number}], by name. */
  async book() {
    const entries = [];
    let after;
    do {
      const page = await this.request(after ? { cmd: "book-list", after } : { cmd: "book-list" });
      entries.push(...page.entries);
      after = page.next;
    } while (after);
    return entries;
  }

  bookPut(name, number, was) {
    return this.request(was === undefined || was === null ? { cmd: "book-put", name, number }
      : { cmd: "book-put", name, number, was });
  }

  bookDelete(name) {
    return this.request({ cmd: "book-delete", name });
  }

  /** The newest call records (one page), newest first. */
  async history() {
    return (await this.request({ cmd: "history" })).records;
  }

  /** Place a relayed call; returns its id. */
  call(number, codecs = ["PCMU", "PCMA"]) {
    const call = `c${this.nextCall++}`;
    this.calls.set(call, { key: null, codec: "PCMU" });
    this._send({ cmd: "call", call, number, mode: "relay", codecs });
    return call;
  }

  /** Take back a call an earlier session of this user lost (``key``: the call's last media
   * key); returns the call's id in this session. Its "connected" (a new key) or
   * "disconnected" comes as a "call" event. */
  attach(key, codec = "PCMU") {
    const call = `c${this.nextCall++}`;
    this.calls.set(call, { key: null, codec });
    this._send({ cmd: "attach", call, key: b64e(key) });
    return call;
  }

  /** The call's current media key (null before ``connected``). */
  keyOf(call) {
    const state = this.calls.get(call);
    return state ? state.key : null;
  }

  hangup(call) { this._send({ cmd: "hangup", call }); }
  dtmf(call, digits) { this._send({ cmd: "dtmf", call, digits }); }
  hold(call) { this._send({ cmd: "hold", call }); }
  resume(call) { this._send({ cmd: "resume", call }); }

  /** Send one media frame of ``call`` (false while it has no key). */
  sendMedia(call, payloadType, sequence, timestamp, payload) {
    const state = this.calls.get(call);
    if (!state || !state.key || !this.ws || this.ws.readyState !== WebSocket.OPEN) return false;
    this.ws.send(encodeMedia(state.key, payloadType, sequence, timestamp, payload));
    return true;
  }

  /** Log out (the server hangs up every call) and close. */
  logout() {
    this._send({ cmd: "logout" });
    this.close();
  }

  close() {
    if (this.ws && this.ws.readyState <= WebSocket.OPEN) this.ws.close(1000);
    this._closed("closed");
  }

  /** Give the session up as lost (the server keeps its answered calls for a while). */
  drop(reason = "connection lost") {
    const ws = this.ws;
    if (ws) { ws.onclose = null; ws.onmessage = null; }
    this._closed(reason, true);
    if (ws && ws.readyState <= WebSocket.OPEN) ws.close(4000, "lost");
  }

  _receive(data) {
    this.unanswered = 0;
    if (typeof data !== "string") {
      const frame = decodeMedia(data);
      if (!frame) return;
      for (const [call, state] of this.calls) {
        if (state.key && equalBytes(state.key, frame.key)) {
          this.dispatchEvent(new CustomEvent("media", { detail: { call, ...frame } }));
          return;
        }
      }
      return;
    }
    let message;
    try { message = JSON.parse(data); } catch { return; }
    if (!message || message.v !== VERSION || typeof message.cmd !== "string") return;
    this._message(message);
  }

  _message(message) {
    const { cmd } = message;
    if (this.waiter && (this.waiter.expected.includes(cmd) || cmd === "unauthorized" || cmd === "error")
        && message.call === undefined && message.req === undefined) {
      const { resolve, reject, expected } = this.waiter;
      this.waiter = null;
      if (expected.includes(cmd)) resolve(message);
      else reject(new LoginError(message.code, message.text, message.retry));
      return;
    }
    if (message.req !== undefined && this.pending.has(message.req)) {
      const { resolve, reject } = this.pending.get(message.req);
      this.pending.delete(message.req);
      if (cmd === "error") reject(new RequestError(message.code, message.text));
      else resolve(message);
      return;
    }
    if (message.call !== undefined && this.calls.has(message.call)) {
      const state = this.calls.get(message.call);
      if (cmd === "connected" && message.key) {
        state.key = b64d(message.key);
        state.codec = message.codec || "PCMU";
      }
      if (cmd === "disconnected" || cmd === "unauthorized" || (cmd === "error" && message.re === "call")) {
        this.calls.delete(message.call);
      }
      this.dispatchEvent(new CustomEvent("call", { detail: message }));
      return;
    }
    if (cmd === "redirect" || (cmd === "error" && message.call === undefined)) {
      this.dispatchEvent(new CustomEvent("notice", { detail: message }));
    }
  }

  _closed(reason, lost = false) {
    if (this.closed) return;
    this.closed = true;
    for (const t of this.timers) clearInterval(t);
    clearTimeout(this.refreshTimer);
    if (this.waiter) { this.waiter.reject(new LoginError(0, reason)); this.waiter = null; }
    for (const { reject } of this.pending.values()) reject(new RequestError(0, reason));
    this.pending.clear();
    if (!lost) {
      for (const call of this.calls.keys()) {
        this.dispatchEvent(new CustomEvent("call", { detail: { cmd: "disconnected", call, cause: "network-error", text: reason } }));
      }
    }
    this.calls.clear();
    this.dispatchEvent(new CustomEvent("closed", { detail: { reason, lost } }));
  }
}

/** wss:// on the page's own host and port. */
export function defaultUrl() {
  return `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}${WS_PATH}`;
}
