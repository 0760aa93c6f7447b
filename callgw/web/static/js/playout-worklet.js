// AudioWorklet processor "callgw-playout": the call's received G.711 frames through the
// adaptive jitter buffer (jitter.js), resampled from 8 kHz to the context's rate. Messages:
// {frame: {seq, codec, codes: ArrayBuffer}}, {reset: true} (hold, a new call). Once a second
// it posts {buffer: {delayMs, bufferedMs, underruns, concealed, late}} to the page.
import { decode } from "./g711.js";
import { FRAME, JitterBuffer } from "./jitter.js";

class Playout extends AudioWorkletProcessor {
  constructor() {
    super();
    this.jb = new JitterBuffer();
    this.step = 8000 / sampleRate;
    this.frame = null;
    this.idx = FRAME;
    this.a = 0;
    this.b = 0;
    this.t = 1;
    this.reported = 0;
    this.port.onmessage = (e) => {
      const d = e.data;
      if (d.frame) {
        const pcm = decode(d.frame.codec, new Uint8Array(d.frame.codes));
        const f = new Float32Array(pcm.length);
        for (let i = 0; i < pcm.length; i++) f[i] = pcm[i] / 32768;
        this.jb.push(d.frame.seq, f);
      } else if (d.reset) {
        this.jb.reset();
      }
    };
  }

  sample() {
    if (this.idx >= FRAME) {
      this.frame = this.jb.pull();
      this.idx = 0;
    }
    return this.frame ? this.frame[this.idx++] : (this.idx++, 0);
  }

  process(inputs, outputs) {
    const out = outputs[0];
    const first = out[0];
    for (let i = 0; i < first.length; i++) {
      while (this.t >= 1) {
        this.a = this.b;
        this.b = this.sample();
        this.t -= 1;
      }
      first[i] = this.a + (this.b - this.a) * this.t;
      this.t += this.step;
    }
    for (let c = 1; c < out.length; c++) out[c].set(first);
    if (currentTime - this.reported >= 1) {
      this.reported = currentTime;
      const { late, concealed, underruns } = this.jb.stats;
      this.port.postMessage({ buffer: { delayMs: this.jb.delay * 20, bufferedMs: this.jb.size * 20,
                                        underruns, concealed, late } });
    }
    return true;
  }
}

registerProcessor("callgw-playout", Playout);
