// Bytes helpers shared by the protocol modules: base64url without padding (RFC 4648 section 5,
// canonical, as docs/protocol.md section 2 requires), UTF-8, comparison.

const ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
const INDEX = new Map([...ALPHABET].map((c, i) => [c, i]));

/** Uint8Array -> base64url text without padding. */
export function b64e(bytes) {
  let out = "";
  for (let i = 0; i < bytes.length; i += 3) {
    const n = (bytes[i] << 16) | ((bytes[i + 1] ?? 0) << 8) | (bytes[i + 2] ?? 0);
    const chars = [18, 12, 6, 0].map((s) => ALPHABET[(n >> s) & 63]);
    out += chars.slice(0, Math.min(4, Math.ceil(((bytes.length - i) * 8) / 6))).join("");
  }
  return out;
}

/** base64url text -> Uint8Array; throws on anything not canonical. */
export function b64d(text) {
  if (typeof text !== "string" || text.length % 4 === 1) throw new Error("not base64url");
  const out = [];
  let bits = 0, value = 0;
  for (const c of text) {
    const v = INDEX.get(c);
    if (v === undefined) throw new Error("not base64url");
    value = (value << 6) | v;
    bits += 6;
    if (bits >= 8) { bits -= 8; out.push((value >> bits) & 0xFF); }
  }
  const bytes = Uint8Array.from(out);
  if (b64e(bytes) !== text) throw new Error("not canonical base64url");
  return bytes;
}

export const utf8 = (text) => new TextEncoder().encode(text);

/** Constant-time comparison of two byte arrays. */
export function equalBytes(a, b) {
  if (!a || !b || a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a[i] ^ b[i];
  return diff === 0;
}

/** ``n`` random bytes from the browser's CSPRNG. */
export function randomBytes(n) {
  return crypto.getRandomValues(new Uint8Array(n));
}
