// Recording a voice message from the microphone, with a timer, a live level meter and
// the auto-stop. The recording goes to the facade as it is (WebM/Opus or Ogg/Opus from
// MediaRecorder when the web view has it, else 16-bit WAV captured with Web Audio) and
// is converted to MP3 on the device. MediaRecorder's fragmented MP4 (all WebKitGTK 2.4x
// offers) is not used: its AAC frames do not decode on the device today.

export interface RecorderEvents {
  /** Elapsed time (ms) and the current input level (0–1), about 20 times a second. */
  onTick(elapsedMs: number, level: number): void;
  /** The recording, when stopped (by the user or at `maxMs`). */
  onDone(recording: Blob, elapsedMs: number): void;
}

const MIME_TYPES = ['audio/webm;codecs=opus', 'audio/ogg;codecs=opus'];

/** A MediaRecorder type the web view can record, if it can. */
function recorderType(): string | null {
  if (typeof MediaRecorder === 'undefined') return null;
  return MIME_TYPES.find((t) => MediaRecorder.isTypeSupported(t)) ?? null;
}

export class Recorder {
  private stream: MediaStream | null = null;
  private context: AudioContext | null = null;
  private media: MediaRecorder | null = null;
  private chunks: Blob[] = [];
  private pcm: Float32Array[] = [];
  private processor: ScriptProcessorNode | null = null;
  private timer: ReturnType<typeof setInterval> | null = null;
  private started = 0;
  private stopped = false;

  constructor(
    private readonly maxMs: number,
    private readonly events: RecorderEvents,
  ) {}

  /** Asks for the microphone and starts recording. */
  async start(): Promise<void> {
    this.stream = await navigator.mediaDevices.getUserMedia({ audio: true, video: false });
    this.context = new AudioContext();
    const source = this.context.createMediaStreamSource(this.stream);
    const analyser = this.context.createAnalyser();
    analyser.fftSize = 512;
    source.connect(analyser);
    const type = recorderType();
    if (type) {
      this.media = new MediaRecorder(this.stream, { mimeType: type });
      this.media.ondataavailable = (e) => {
        if (e.data.size > 0) this.chunks.push(e.data);
      };
      this.media.onstop = () => this.finish(new Blob(this.chunks, { type }));
      this.media.start(250);
    } else {
      // Web Audio capture: plain samples, written as WAV when stopped.
      this.processor = this.context.createScriptProcessor(4096, 1, 1);
      this.processor.onaudioprocess = (e) => {
        if (!this.stopped) this.pcm.push(new Float32Array(e.inputBuffer.getChannelData(0)));
      };
      source.connect(this.processor);
      this.processor.connect(this.context.destination);
    }
    this.started = performance.now();
    const samples = new Uint8Array(analyser.fftSize);
    this.timer = setInterval(() => {
      const elapsed = performance.now() - this.started;
      analyser.getByteTimeDomainData(samples);
      let peak = 0;
      for (const s of samples) peak = Math.max(peak, Math.abs(s - 128) / 128);
      this.events.onTick(Math.min(elapsed, this.maxMs), peak);
      if (elapsed >= this.maxMs) this.stop();
    }, 50);
  }

  /** Stops; `onDone` follows with the recording. */
  stop(): void {
    if (this.stopped) return;
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    if (this.media && this.media.state !== 'inactive') {
      this.media.stop();
    } else if (this.context) {
      const rate = this.context.sampleRate;
      this.finish(new Blob([encodeWav(this.pcm, rate)], { type: 'audio/wav' }));
    }
  }

  /** Stops without a recording (the dialog was closed). */
  cancel(): void {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    if (this.media) this.media.onstop = null;
    if (this.media && this.media.state !== 'inactive') this.media.stop();
    this.release();
  }

  private finish(recording: Blob): void {
    const elapsed = Math.min(performance.now() - this.started, this.maxMs);
    this.release();
    this.events.onDone(recording, elapsed);
  }

  private release(): void {
    this.processor?.disconnect();
    this.stream?.getTracks().forEach((t) => t.stop());
    void this.context?.close();
    this.stream = null;
    this.context = null;
  }
}

/** Mono 16-bit PCM WAV of the captured blocks of samples (−1…1). */
export function encodeWav(blocks: Float32Array[], sampleRate: number): Uint8Array {
  const frames = blocks.reduce((n, b) => n + b.length, 0);
  const out = new Uint8Array(44 + frames * 2);
  const view = new DataView(out.buffer);
  const text = (at: number, s: string) => [...s].forEach((c, i) => view.setUint8(at + i, c.charCodeAt(0)));
  text(0, 'RIFF');
  view.setUint32(4, 36 + frames * 2, true);
  text(8, 'WAVE');
  text(12, 'fmt ');
  view.setUint32(16, 16, true); // fmt chunk size
  view.setUint16(20, 1, true); // PCM
  view.setUint16(22, 1, true); // mono
  view.setUint32(24, sampleRate, true);
  view.setUint32(28, sampleRate * 2, true); // bytes per second
  view.setUint16(32, 2, true); // block align
  view.setUint16(34, 16, true); // bits per sample
  text(36, 'data');
  view.setUint32(40, frames * 2, true);
  let at = 44;
  for (const block of blocks) {
    for (const s of block) {
      const v = Math.max(-1, Math.min(1, s));
      view.setInt16(at, v < 0 ? v * 0x8000 : v * 0x7fff, true);
      at += 2;
    }
  }
  return out;
}
