// The call's audio in the page: the microphone (getUserMedia with the browser's echo
// cancellation, noise suppression and gain control) into the capture worklet, and received
// frames through the playout worklet (jitter buffer) to the speaker. Analyser nodes on both
// sides drive the level meters (and let the browser tests measure what is heard).
//
// The AudioContext is made by the page in the click that places the call (browsers start
// audio only from a user gesture) and handed to ``openAudio``; a refused microphone is a
// ``MicrophoneError`` (``blocked`` true when the user or the browser denied it).

export class MicrophoneError extends Error {
  constructor(message, blocked) {
    super(message);
    this.blocked = blocked;
  }
}

export const CONSTRAINTS = {
  audio: { echoCancellation: true, noiseSuppression: true, autoGainControl: true, channelCount: 1 },
  video: false,
};

const WORKLETS = ["./capture-worklet.js", "./playout-worklet.js"];

/** Ask for the microphone and build the graph on ``ctx``; resolves with a ``CallAudio``. */
export async function openAudio(ctx, { onFrame, onBuffer }) {
  if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
    throw new MicrophoneError("this page needs HTTPS for the microphone", true);
  }
  let stream;
  try {
    stream = await navigator.mediaDevices.getUserMedia(CONSTRAINTS);
  } catch (err) {
    const blocked = err && (err.name === "NotAllowedError" || err.name === "SecurityError");
    throw new MicrophoneError(blocked ? "microphone blocked" : "no microphone", blocked);
  }
  try {
    for (const url of WORKLETS) await ctx.audioWorklet.addModule(new URL(url, import.meta.url));
    return new CallAudio(ctx, stream, onFrame, onBuffer);
  } catch (err) {
    for (const track of stream.getTracks()) track.stop();
    throw err;
  }
}

export class CallAudio {
  constructor(ctx, stream, onFrame, onBuffer) {
    this.ctx = ctx;
    this.stream = stream;
    this.source = ctx.createMediaStreamSource(stream);
    this.capture = new AudioWorkletNode(ctx, "callgw-capture", { numberOfInputs: 1, numberOfOutputs: 0 });
    this.capture.port.onmessage = (e) => onFrame(new Uint8Array(e.data.codes));
    this.source.connect(this.capture);
    this.micAnalyser = ctx.createAnalyser();
    this.micAnalyser.fftSize = 2048;
    this.source.connect(this.micAnalyser);
    this.playout = new AudioWorkletNode(ctx, "callgw-playout", { numberOfInputs: 0, numberOfOutputs: 1, outputChannelCount: [1] });
    this.playout.port.onmessage = (e) => { if (e.data.buffer && onBuffer) onBuffer(e.data.buffer); };
    this.speakerAnalyser = ctx.createAnalyser();
    this.speakerAnalyser.fftSize = 2048;
    this.playout.connect(this.speakerAnalyser);
    this.speakerAnalyser.connect(ctx.destination);
    this.codec = "PCMU";
  }

  /** The call's G.711 law (from ``connected``). */
  setCodec(codec) {
    this.codec = codec;
    this.capture.port.postMessage({ codec });
  }

  /** Mute: the microphone is replaced by silence (the frames keep flowing). */
  setMuted(muted) {
    this.capture.port.postMessage({ muted });
  }

  /** One received frame for the speaker. */
  play(seq, codec, payload) {
    const codes = payload.slice().buffer;
    this.playout.port.postMessage({ frame: { seq, codec, codes } }, [codes]);
  }

  /** Forget buffered audio (hold, resume). */
  reset() {
    this.playout.port.postMessage({ reset: true });
  }

  /** RMS level of what the analyser sees (0..1). */
  static level(analyser) {
    const data = new Float32Array(analyser.fftSize);
    analyser.getFloatTimeDomainData(data);
    let sum = 0;
    for (const v of data) sum += v * v;
    return Math.sqrt(sum / data.length);
  }

  /** Stop the microphone and the audio context. */
  close() {
    for (const track of this.stream.getTracks()) track.stop();
    try { this.source.disconnect(); } catch { /* already */ }
    return this.ctx.close().catch(() => {});
  }
}
