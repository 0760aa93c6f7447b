// G.711 mu-law (PCMU) and A-law (PCMA), bit for bit as callgw's protocols/rtp/g711.py (and
// Python's audioop): 16-bit linear samples to 8-bit codes and back, table-driven.
// Used by the capture and playout worklets; the browser tests compare every one of the 65,536
// encodings and 256 decodings with the Python tables.

const SEG_UEND = [0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF, 0x1FFF];
const SEG_AEND = [0x1F, 0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF];
const BIAS = 0x84;
const CLIP = 8159;

export const SILENCE = { PCMU: 0xFF, PCMA: 0xD5 };
export const PAYLOAD_TYPE = { PCMU: 0, PCMA: 8 };

function segment(value, ends) {
  for (let i = 0; i < ends.length; i++) if (value <= ends[i]) return i;
  return ends.length;
}

function linear14ToUlaw(pcm) {
  let mask = 0xFF;
  if (pcm < 0) { pcm = -pcm; mask = 0x7F; }
  pcm = Math.min(pcm, CLIP) + (BIAS >> 2);
  const seg = segment(pcm, SEG_UEND);
  if (seg >= 8) return 0x7F ^ mask;
  return ((seg << 4) | ((pcm >> (seg + 1)) & 0x0F)) ^ mask;
}

function linear13ToAlaw(pcm) {
  let mask = 0xD5;
  if (pcm < 0) { mask = 0x55; pcm = -pcm - 1; }
  const seg = segment(pcm, SEG_AEND);
  if (seg >= 8) return 0x7F ^ mask;
  let code = seg << 4;
  code |= (pcm >> (seg < 2 ? 1 : seg)) & 0x0F;
  return code ^ mask;
}

function ulawToLinear(code) {
  code = ~code & 0xFF;
  const t = (((code & 0x0F) << 3) + BIAS) << ((code & 0x70) >> 4);
  return code & 0x80 ? BIAS - t : t - BIAS;
}

function alawToLinear(code) {
  code ^= 0x55;
  let t = (code & 0x0F) << 4;
  const seg = (code & 0x70) >> 4;
  if (seg === 0) t += 8;
  else if (seg === 1) t += 0x108;
  else t = (t + 0x108) << (seg - 1);
  return code & 0x80 ? t : -t;
}

// Encoding tables indexed by the sample as an unsigned 16-bit value.
const ULAW_ENCODE = new Uint8Array(65536);
const ALAW_ENCODE = new Uint8Array(65536);
for (let i = 0; i < 65536; i++) {
  const s = i & 0x8000 ? i - 0x10000 : i;
  ULAW_ENCODE[i] = linear14ToUlaw(s >> 2);
  ALAW_ENCODE[i] = linear13ToAlaw(s >> 3);
}
const ULAW_DECODE = new Int16Array(256);
const ALAW_DECODE = new Int16Array(256);
for (let c = 0; c < 256; c++) {
  ULAW_DECODE[c] = ulawToLinear(c);
  ALAW_DECODE[c] = alawToLinear(c);
}

/** Int16Array of samples -> Uint8Array of ``codec`` ("PCMU" or "PCMA") codes. */
export function encode(codec, samples) {
  const table = codec === "PCMA" ? ALAW_ENCODE : ULAW_ENCODE;
  const out = new Uint8Array(samples.length);
  for (let i = 0; i < samples.length; i++) out[i] = table[samples[i] & 0xFFFF];
  return out;
}

/** Uint8Array of codes -> Int16Array of samples. */
export function decode(codec, codes) {
  const table = codec === "PCMA" ? ALAW_DECODE : ULAW_DECODE;
  const out = new Int16Array(codes.length);
  for (let i = 0; i < codes.length; i++) out[i] = table[codes[i]];
  return out;
}

/** The codec named by an RTP payload type (0 PCMU, 8 PCMA), or null. */
export function codecOf(payloadType) {
  return payloadType === 0 ? "PCMU" : payloadType === 8 ? "PCMA" : null;
}
