// A module worker that computes one scrypt-derived key (scram.js starts one per login), so the
// page's thread never runs scrypt.
import { saltedPasswordSync } from "./scram.js";

self.onmessage = (e) => {
  const { password, salt, n, r, p } = e.data;
  try {
    const key = saltedPasswordSync(password, new Uint8Array(salt), n, r, p);
    self.postMessage({ key: key.buffer }, [key.buffer]);
  } catch (err) {
    self.postMessage({ error: String(err && err.message || err) });
  }
};
