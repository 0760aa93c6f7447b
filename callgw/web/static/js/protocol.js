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
// A ``redirect`` (section 5, "Redirect") is followed inside the session: it opens the same
// scheme and path at the address named, logs in again (in the middle of ``login``: with the
// salted password it just derived, no second scrypt; once logged in: with its token), takes
// its answered calls back there with ``attach`` (same call id and key) and carries on; a
// "redirect" event (detail: {address, port, text}) tells the page. At most 3 in a row: the
// fourth, or an address that is not one host, ends it ("too many redirects: A -> B -> ...").
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
export const MAX_REDIRECTS = 3;
// server messages that do not end a chain of redirects (the login's answers)
const LOGIN_ANSWERS = new Set(["challenge", "welcome", "redirect", "unauthorized", "error"]);

/** Why ``address``:``port`` of a redirect is no place to go (null: it is one). */
export function badTarget(address, port) {
  if (!Number.isInteger(port) || port < 1 || port > 65535) return "not a port";
  if (typeof address !== "string") return "not an IP address";
  const v4 = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/.test(address);
  const v6 = !v4 && address.includes(":") && /^[0-9a-f:.]+$/.test(address) && (() => {
    try { return new URL(`http://[${address}]/`).hostname === `[${address}]`; } catch { return false; }
  })();
  if (!v4 && !v6) return "not an IP address";
  const first = v4 ? Number(address.split(".")[0]) : 0;
  if (address === "0.0.0.0" || address === "255.255.255.255" || address === "::" ||
      (v4 && first >= 224 && first <= 239) || (v6 && address.startsWith("ff"))) {
    return "not an address of one host";
  }
  return null;
}

export function hostPort(address, port) {
  return address.includes(":") ? `[${address}]:${port}` : `${address}:${port}`;
}

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
    this.hops = [new URL(url).host];  // this chain of redirects: where it began, then each
    this.moving = false;             // between a redirect and the next server's welcome
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

  /** Password login; resolves with the welcome (the final server's, after redirects),
   * rejects with LoginError. */
  async login(user, password) {
    let derived = null;                // {params, salted}: kept for a redirect's second login
    for (;;) {
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
      const params = `${challenge.salt}/${n}/${r}/${p}`;
      if (!derived || derived.params !== params) {
        derived = { params, salted: await scram.saltedPassword(password, salt, n, r, p) };
      }
      const { salted } = derived;
      const auth = scram.authMessage(user, clientNonce, nonce, salt, n, r, p);
      this._send({ cmd: "login", user, nonce, proof: b64e(scram.clientProof(salted, auth)) });
      const answer = await this._wait(["welcome", "redirect"]);
      if (answer.cmd === "redirect") {
        await this._follow(answer);
        continue;
      }
      if (!answer.signature || !equalBytes(b64d(answer.signature), scram.serverSignature(salted, auth))) {
        this.close();
        throw new LoginError(401, "the server did not prove it knows the password: not our server");
      }
      return this._welcomed(answer);
    }
  }

  /** Resume with a token (after a dropped socket); resolves with the welcome (the final
   * server's, after redirects). */
  async loginToken(token) {
    for (;;) {
      this._send({ cmd: "login", token });
      const answer = await this._wait(["welcome", "redirect"]);
      if (answer.cmd !== "redirect") return this._welcomed(answer);
      await this._follow(answer);
    }
  }

  /** Leave this socket for the address a redirect names (same scheme and path); throws
   * LoginError when it is no place to go, one too many, or cannot be reached. */
  async _follow(message) {
    const target = hostPort(String(message.address), message.port);
    const bad = badTarget(message.address, message.port);
    if (bad) throw this._refuse(`redirect to ${target}: ${bad}`);
    this.hops.push(target);
    if (this.hops.length - 1 > MAX_REDIRECTS) throw this._refuse(`too many redirects: ${this.hops.join(" -> ")}`);
    const old = this.ws;
    if (old) {
      old.onclose = null; old.onmessage = null; old.onerror = null;
      if (old.readyState <= WebSocket.OPEN) old.close(1000);
    }
    for (const t of this.timers) clearInterval(t);
    this.timers = [];
    this.welcome = null;
    this.moving = true;
    const url = new URL(this.url);
    url.host = target;
    this.url = url.toString();
    this.dispatchEvent(new CustomEvent("redirect", { detail: { address: message.address, port: message.port, text: message.text } }));
    try {
      await this.open();
    } catch (err) {
      throw this._refuse(`redirected to ${target}: ${err.message}`);
    }
  }

  _refuse(text) {
    this.close(text);
    return new LoginError(0, text);
  }

  /** A redirect once logged in (a drained server, a call held elsewhere): follow it, log in
   * there with the token, take the answered calls back; the others end here. */
  async _redirected(message) {
    for (const { reject } of this.pending.values()) reject(new RequestError(0, "redirected to another server"));
    this.pending.clear();
    const carried = [];
    for (const [call, state] of [...this.calls]) {
      const key = state.key || state.attach;      // up, or being taken back already
      if (key) {
        carried.push([call, key]);
        state.key = null;
      } else {
        this.calls.delete(call);
        this.dispatchEvent(new CustomEvent("call", { detail: { cmd: "disconnected", call, cause: "network-error", text: "redirected to another server" } }));
      }
    }
    try {
      await this._follow(message);
      await this.loginToken(this.token);
    } catch (err) {
      this.close(err.message || "redirect failed");
      return;
    }
    for (const [call, key] of carried) this._send({ cmd: "attach", call, key: b64e(key) });
  }

  _welcomed(welcome) {
    this.welcome = welcome;
    this.moving = false;
    for (const t of this.timers) clearInterval(t);
    this.timers = [];
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
    this.calls.set(call, { key: null, codec, attach: key });
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

  close(reason = "closed") {
    if (this.ws && this.ws.readyState <= WebSocket.OPEN) this.ws.close(1000);
    this._closed(reason);
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
    if (!LOGIN_ANSWERS.has(message.cmd)) this.hops = this.hops.slice(-1);  // a chain ended
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
    if (cmd === "redirect" && this.welcome && !this.moving) {
      this._redirected(message);
      return;
    }
    if (cmd === "error" && message.call === undefined) {
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
