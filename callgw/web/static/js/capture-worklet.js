// AudioWorklet processor "callgw-capture": the microphone, low-pass filtered, resampled to
// 8 kHz and cut into 20 ms frames encoded in G.711 (the call's law), posted to the page as
// {codes: ArrayBuffer of 160 codes}. {codec} sets the law, {muted} sends silence instead
// of the microphone. No output: the page sends the frames over the socket.
import { encode } from "./g711.js";

const OUT_RATE = 8000;
const FRAME = 160;
const TAPS = 63;

function lowPass(rate, cutoff) {
  const fc = cutoff / rate, mid = (TAPS - 1) / 2, taps = new Float32Array(TAPS);
  let sum = 0;
  for (let i = 0; i < TAPS; i++) {
    const x = i - mid;
    const sinc = x === 0 ? 2 * fc : Math.sin(2 * Math.PI * fc * x) / (Math.PI * x);
    const w = 0.42 - 0.5 * Math.cos((2 * Math.PI * i) / (TAPS - 1)) + 0.08 * Math.cos((4 * Math.PI * i) / (TAPS - 1));
    taps[i] = sinc * w;
    sum += taps[i];
  }
  return taps.map((t) => t / sum);
}

class Capture extends AudioWorkletProcessor {
  constructor() {
    super();
    this.codec = "PCMU";
    this.muted = false;
    this.ratio = sampleRate / OUT_RATE;
    this.taps = lowPass(sampleRate, Math.min(3600, sampleRate / 2.2));
    this.history = new Float32Array(TAPS);
    this.h = 0;
    this.g = 0;                 // index of the next input sample
    this.nextOut = 0;           // input position of the next 8 kHz sample
    this.prev = 0;
    this.out = new Int16Array(FRAME);
    this.n = 0;
    this.port.onmessage = (e) => {
      if (e.data.codec) this.codec = e.data.codec;
      if (typeof e.data.muted === "boolean") this.muted = e.data.muted;
    };
  }

  process(inputs) {
    const channel = inputs[0] && inputs[0][0];
    if (!channel) return true;
    const { taps, history } = this;
    for (let i = 0; i < channel.length; i++) {
      history[this.h] = channel[i];
      this.h = (this.h + 1) % TAPS;
      let y = 0;
      for (let k = 0, j = this.h; k < TAPS; k++, j = (j + 1) % TAPS) y += taps[k] * history[j];
      while (this.nextOut <= this.g) {
        const frac = this.nextOut - (this.g - 1);
        this.emit(this.prev + (y - this.prev) * frac);
        this.nextOut += this.ratio;
      }
      this.prev = y;
      this.g++;
    }
    return true;
  }

  emit(value) {
    const v = this.muted ? 0 : Math.max(-1, Math.min(1, value));
    this.out[this.n++] = Math.round(v * 32767);
    if (this.n === FRAME) {
      const codes = encode(this.codec, this.out);
      this.port.postMessage({ codes: codes.buffer }, [codes.buffer]);
      this.n = 0;
    }
  }
}

registerProcessor("callgw-capture", Capture);
