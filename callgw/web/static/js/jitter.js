// A small adaptive jitter buffer for 20 ms G.711 frames, and the receive-quality figures the
// page shows. Pure code (no audio, no DOM): the playout worklet and the page use it, the
// browser tests drive it with synthetic arrivals.
//
// JitterBuffer: frames are put in by RTP-style sequence number and taken out one per 20 ms by
// the playout clock. Playout starts (and restarts after running dry) once ``delay`` frames are
// buffered. Running dry raises the delay by one frame (up to ``maxDelay``); a buffer that stays
// two frames or more above the delay for ``shrinkAfter`` frames drops its oldest frame and
// lowers the delay by one (down to ``minDelay``). A frame older than the playout point is late
// and dropped; a missing frame is played as the last frame faded by half, then silence.

export const FRAME = 160;                 // samples per 20 ms frame at 8 kHz

const seqLess = (a, b) => ((a - b) & 0xFFFF) > 0x8000;   // a before b, modulo 2^16

export class JitterBuffer {
  constructor({ minDelay = 2, maxDelay = 10, startDelay = 3, shrinkAfter = 100 } = {}) {
    Object.assign(this, { minDelay, maxDelay, shrinkAfter });
    this.delay = startDelay;             // frames to gather before playing
    this.frames = new Map();             // seq -> Float32Array(FRAME)
    this.next = null;                    // seq to play next; null while (re)buffering
    this.playing = false;
    this.calm = 0;                       // frames played while well above the delay
    this.last = null;                    // the last frame played (for concealment)
    this.stats = { late: 0, concealed: 0, underruns: 0, dropped: 0 };
  }

  /** Frames buffered (from the playout point on). */
  get size() { return this.frames.size; }

  /** Put one frame in (``samples``: Float32Array of FRAME values in -1..1). */
  push(seq, samples) {
    if (this.next !== null && seqLess(seq, this.next)) { this.stats.late++; return; }
    if (this.frames.size >= 4 * this.maxDelay) this._dropOldest();
    this.frames.set(seq & 0xFFFF, samples);
  }

  /** The next 20 ms to play: a frame, a concealed frame, or null (silence while buffering). */
  pull() {
    if (!this.playing) {
      if (this.frames.size < this.delay) return null;
      this.playing = true;
      this.next = this._oldest();
    }
    if (this.frames.size === 0) {               // ran dry: wait for more, a little longer
      this.playing = false;
      this.next = null;
      this.stats.underruns++;
      this.delay = Math.min(this.maxDelay, this.delay + 1);
      this.calm = 0;
      return this._conceal();
    }
    let frame = this.frames.get(this.next);
    if (frame !== undefined) {
      this.frames.delete(this.next);
      this.last = frame;
    } else {
      frame = this._conceal();
    }
    this.next = (this.next + 1) & 0xFFFF;
    if (this.frames.size >= this.delay + 2) {
      if (++this.calm >= this.shrinkAfter) {
        this._dropOldest();
        this.delay = Math.max(this.minDelay, this.delay - 1);
        this.calm = 0;
      }
    } else {
      this.calm = 0;
    }
    return frame;
  }

  /** Forget everything (hold, a new call). */
  reset() {
    this.frames.clear();
    this.next = null;
    this.playing = false;
    this.last = null;
  }

  _conceal() {
    this.stats.concealed++;
    if (this.last === null) return null;
    const faded = this.last.map((v) => v * 0.5);
    this.last = faded.some((v) => Math.abs(v) > 1e-3) ? faded : null;
    return faded;
  }

  _oldest() {
    let oldest = null;
    for (const seq of this.frames.keys()) if (oldest === null || seqLess(seq, oldest)) oldest = seq;
    return oldest;
  }

  _dropOldest() {
    const oldest = this._oldest();
    if (oldest === null) return;
    this.frames.delete(oldest);
    this.stats.dropped++;
    if (this.next !== null) this.next = (oldest + 1) & 0xFFFF;
  }
}

// Receive quality from the frames' sequence numbers, timestamps and arrival times, as an RTP
// receiver computes it (RFC 3550 section 6.4.1 and appendix A.8): cumulative loss and
// interarrival jitter, in milliseconds at 8 kHz.
export class ReceiveQuality {
  constructor() { this.reset(); }

  reset() {
    this.received = 0;
    this.base = null;            // first sequence number (extended)
    this.max = null;             // highest extended sequence number
    this.transit = null;
    this.jitter = 0;             // in timestamp units (1/8000 s)
  }

  /** One frame: its sequence number, RTP timestamp and arrival time in milliseconds. */
  frame(seq, timestamp, arrivalMs) {
    if (this.max === null) {
      this.base = this.max = seq;
    } else {
      const last = this.max & 0xFFFF;
      const delta = (seq - last) & 0xFFFF;
      if (delta < 0x8000) this.max += delta;              // in order (or a jump ahead)
    }
    this.received++;
    const transit = arrivalMs * 8 - timestamp;
    if (this.transit !== null) {
      let d = Math.abs(transit - this.transit);
      if (d > 8000 * 60) d = 0;                            // a timestamp jump, not jitter
      this.jitter += (d - this.jitter) / 16;
    }
    this.transit = transit;
  }

  /** ``{received, expected, lost, lossPercent, jitterMs, grade}``. */
  snapshot() {
    const expected = this.max === null ? 0 : this.max - this.base + 1;
    const lost = Math.max(0, expected - this.received);
    const lossPercent = expected ? (100 * lost) / expected : 0;
    const jitterMs = this.jitter / 8;
    const grade = !this.received ? "no audio" : lossPercent < 1 && jitterMs < 30 ? "good"
      : lossPercent < 5 && jitterMs < 60 ? "fair" : "poor";
    return { received: this.received, expected, lost, lossPercent, jitterMs, grade };
  }
}
