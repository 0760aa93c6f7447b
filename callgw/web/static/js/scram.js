// The login proof of docs/protocol.md section 5 (SCRAM-style over scrypt), as
// protocols/client/scram.py computes it. scrypt runs in a module worker (scrypt-worker.js) so
// the page stays responsive; HMAC-SHA256 and SHA-256 come from the vendored @noble/hashes.
// The browser tests check these functions against docs/protocol.md's test vector.

import { hmac } from "../vendor/noble-hashes/hmac.js";
import { sha256 } from "../vendor/noble-hashes/sha2.js";
import { scrypt } from "../vendor/noble-hashes/scrypt.js";
import { b64e, utf8 } from "./bytes.js";

export const KEY_LEN = 32;

/** scrypt(password, salt, N, r, p, 32) on this thread (the worker and the tests use it). */
export function saltedPasswordSync(password, salt, n, r, p) {
  return scrypt(utf8(password), salt, { N: n, r, p, dkLen: KEY_LEN, maxmem: 256 * n * r + 2 ** 20 });
}

/** The same in a worker; resolves with the 32-byte key. */
export function saltedPassword(password, salt, n, r, p) {
  return new Promise((resolve, reject) => {
    const worker = new Worker(new URL("./scrypt-worker.js", import.meta.url), { type: "module" });
    worker.onmessage = (e) => {
      worker.terminate();
      if (e.data.error) reject(new Error(e.data.error));
      else resolve(new Uint8Array(e.data.key));
    };
    worker.onerror = (e) => { worker.terminate(); reject(new Error(e.message || "scrypt worker failed")); };
    worker.postMessage({ password, salt, n, r, p });
  });
}

const mac = (key, msg) => hmac(sha256, key, msg);

export const clientKey = (salted) => mac(salted, utf8("Client Key"));
export const serverKey = (salted) => mac(salted, utf8("Server Key"));
export const storedKey = (ckey) => sha256(ckey);

/** The bytes both sides sign (user names and nonces hold no commas). */
export function authMessage(user, clientNonce, nonce, salt, n, r, p) {
  return utf8(`callgw-v1,n=${user},r=${clientNonce},r=${nonce},s=${b64e(salt)},` +
              `i=${n}:${r}:${p},c=none,r=${nonce}`);
}

/** The client's proof: client_key XOR HMAC(stored_key, auth). */
export function clientProof(salted, auth) {
  const ckey = clientKey(salted);
  const sig = mac(storedKey(ckey), auth);
  return ckey.map((b, i) => b ^ sig[i]);
}

/** What the server's signature must be: HMAC(server_key, auth). */
export function serverSignature(salted, auth) {
  return mac(serverKey(salted), auth);
}
