// Audio and video decoding with ffmpeg, and ImageBind's choice of video clips and frames.
//
// ffmpeg runs as a child with an argv vector, `-nostdin -loglevel error`, raw data over pipes; every
// promise settles only after the child has exited and its pipes have closed (also on abort and when
// reading its output fails).  Buffers are written to a temporary file (MP4 needs seeking), always removed.
//
// ref: ImageBind data.py load_and_transform_video_data (pytorchvideo EncodedVideoPyAV,
//      ConstantClipsPerVideoSampler, UniformTemporalSubsample) and load_and_transform_audio_data
//      (torchaudio.load); fixtures README §4.2 steps 1-4 and §4.3 step 1.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { findFfmpeg } from './ffmpeg';
import { AbortError, ImageBindError, throwIfAborted } from './errors';

/** A file path, or the file's bytes. */
export type MediaInput = string | Uint8Array;
/** An exact fraction [numerator, denominator], denominator > 0, reduced. */
export type Fraction = [number, number];

export interface MediaOptions {
  signal?: AbortSignal;
}

// ---------------------------------------------------------------------------------------------
// Bounds on what decoding may produce (README: "What is refused").

/** The longest audio read whole (it is resampled in memory); the native reader has the same bound. */
export const MAX_AUDIO_SECONDS = 1800;
const MAX_AUDIO_CHANNELS = 16;
const MAX_FRAME_SIDE = 16384;
const MAX_FRAME_PIXELS = 8192 * 8192;
const MAX_CLIPS = 64;
const MAX_FRAMES_PER_CLIP = 64;

// ---------------------------------------------------------------------------------------------
// Audio

export interface DecodedAudio {
  /** The stream's own rate (no resampling here: that is done later, like torchaudio). */
  sampleRate: number;
  /** One array per channel, float32 in [-1, 1) (PCM-16 comes out as value / 32768 exactly). */
  channels: Float32Array[];
}

/**
 * Decodes the first audio stream of a file with every channel at its original sample rate, like
 * `torchaudio.load` (normalize=True).  ffmpeg writes float32 WAV over a pipe; integer PCM is
 * converted by libswresample (s16 → x / 32768, exact).
 */
export async function decodeAudio(input: MediaInput, opts: MediaOptions = {}): Promise<DecodedAudio> {
  throwIfAborted(opts.signal);
  const ff = await findFfmpeg();
  return withInputFile(input, opts.signal, async (file, label) => {
    const args = [
      ...inputArgs(file, 'audio'),
      '-map', '0:a:0', '-c:a', 'pcm_f32le', '-f', 'wav', 'pipe:1',
    ];
    const run = startFfmpeg(ff.path, args, { label, file, stream: 'audio', signal: opts.signal });
    const chunks: Buffer[] = [];
    // The decoded size is known only once decoding runs (a small FLAC of hours of silence decodes to
    // gigabytes): stop at the first byte beyond MAX_AUDIO_SECONDS of the stream's own format.
    let total = 0;
    let limit = Infinity;
    run.stdout.on('data', (c: Buffer) => {
      chunks.push(c);
      total += c.length;
      if (limit === Infinity && total >= 64) {
        const head = Buffer.concat(chunks);
        const fmt = wavFormat(head);
        if (fmt) {
          if (fmt.channels > MAX_AUDIO_CHANNELS) {
            run.fail(new ImageBindError('ERR_AUDIO_UNSUPPORTED', `${label}: ${fmt.channels} audio channels, more than the ${MAX_AUDIO_CHANNELS} this reads`));
          }
          limit = head.length + MAX_AUDIO_SECONDS * fmt.sampleRate * fmt.channels * 4;
        }
      }
      if (total > limit) {
        run.fail(new ImageBindError('ERR_AUDIO_TOO_LONG', `${label}: the audio is longer than the ${MAX_AUDIO_SECONDS} s this reads (trim it)`));
      }
    });
    await run.done;
    return parseFloatWav(Buffer.concat(chunks), label);
  });
}

/** Channels and rate from the head of a WAV stream (null until its fmt chunk has arrived). */
function wavFormat(buf: Buffer): { channels: number; sampleRate: number } | null {
  if (buf.length < 12 || buf.toString('latin1', 0, 4) !== 'RIFF') return null;
  for (let pos = 12; pos + 8 <= buf.length;) {
    const id = buf.toString('latin1', pos, pos + 4);
    const size = buf.readUInt32LE(pos + 4);
    if (id === 'fmt ' && pos + 16 <= buf.length) return { channels: buf.readUInt16LE(pos + 10), sampleRate: buf.readUInt32LE(pos + 12) };
    if (id === 'data') return null;
    pos += 8 + size + (size & 1);
  }
  return null;
}

/** Parses ffmpeg's streamed float32 WAV (its size fields are placeholders: data runs to the end). */
function parseFloatWav(buf: Buffer, label: string): DecodedAudio {
  const bad = (why: string) => new ImageBindError('ERR_MEDIA_DECODE', `Cannot decode ${label}: ffmpeg's WAV output ${why}`);
  if (buf.length < 12 || buf.toString('latin1', 0, 4) !== 'RIFF' || buf.toString('latin1', 8, 12) !== 'WAVE') {
    throw bad('has no RIFF/WAVE header');
  }
  let pos = 12;
  let channels = 0, sampleRate = 0, bits = 0, format = 0;
  for (;;) {
    if (pos + 8 > buf.length) throw bad('ends before its data chunk');
    const id = buf.toString('latin1', pos, pos + 4);
    const size = buf.readUInt32LE(pos + 4);
    pos += 8;
    if (id === 'data') break;
    if (id === 'fmt ') {
      format = buf.readUInt16LE(pos);
      channels = buf.readUInt16LE(pos + 2);
      sampleRate = buf.readUInt32LE(pos + 4);
      bits = buf.readUInt16LE(pos + 14);
      if (format === 0xfffe && size >= 40) format = buf.readUInt16LE(pos + 24); // WAVE_FORMAT_EXTENSIBLE sub-format
    }
    pos += size + (size & 1);
  }
  if (format !== 3 || bits !== 32 || channels < 1 || sampleRate < 1) {
    throw bad(`is not float32 (format ${format}, ${bits} bits, ${channels} channels, ${sampleRate} Hz)`);
  }
  const frames = Math.floor((buf.length - pos) / (4 * channels));
  if (frames === 0) throw new ImageBindError('ERR_AUDIO_EMPTY', `${label}: the audio stream decodes to zero samples`);
  // Interleaved f32le (frames, channels) → one array per channel.
  const out = Array.from({ length: channels }, () => new Float32Array(frames));
  const aligned = (buf.byteOffset + pos) % 4 === 0 && os.endianness() === 'LE';
  if (aligned) {
    const src = new Float32Array(buf.buffer, buf.byteOffset + pos, frames * channels);
    for (let c = 0; c < channels; c++) {
      const dst = out[c]!;
      for (let i = 0, j = c; i < frames; i++, j += channels) dst[i] = src[j]!;
    }
  } else {
    for (let c = 0; c < channels; c++) {
      const dst = out[c]!;
      for (let i = 0, o = pos + 4 * c; i < frames; i++, o += 4 * channels) dst[i] = buf.readFloatLE(o);
    }
  }
  return { sampleRate, channels: out };
}

// ---------------------------------------------------------------------------------------------
// Video

export interface VideoMeta {
  width: number;
  height: number;
  /** ffmpeg's codec name, e.g. "h264". */
  codec: string;
  /** The video stream's time base (exact). */
  timeBase: Fraction;
  /** The stream's start time in time-base units (PyAV `stream.start_time`): pts of its first packet. */
  startPts: number;
  /**
   * The stream's duration in time-base units (PyAV `stream.duration`): for MP4/MOV the header's (mdhd,
   * cut to the edit list as FFmpeg does); null for Matroska/WebM, whose streams carry none in FFmpeg;
   * otherwise the span the packets cover, max(pts + duration) − startPts.
   */
  durationTs: number | null;
  /**
   * Seconds, exact, as pytorchvideo computes them: (durationTs − startPts) · timeBase, or, without a
   * stream duration, (last pts − startPts) · timeBase.
   */
  duration: Fraction;
  /** Number of packets (≈ frames) in the stream. */
  frameCount: number;
  /** Non-fatal messages ffmpeg printed while reading the file (e.g. "partial file"). */
  warnings: string[];
}

export interface VideoFrame {
  /** Presentation timestamp in `meta.timeBase` units. */
  pts: number;
  /** Index of this frame within its clip (`trunc(linspace(0, T − 1, n))`). */
  index: number;
  /** Decoded RGB24, H × W × 3, row-major (libswscale's yuv→rgb with BT.601 coefficients). May be shared between clips. */
  rgb: Uint8Array;
}

export interface VideoClip {
  /** Clip start and end in seconds (exact). */
  start: Fraction;
  end: Fraction;
  /** A frame belongs to the clip when startPts ≤ pts < endPts (ceil(start / timeBase) + meta.startPts, same for end). */
  startPts: number;
  endPts: number;
  /** T: how many frames fall in the clip. */
  frameCount: number;
  frames: VideoFrame[];
}

export interface DecodedVideo {
  meta: VideoMeta;
  clips: VideoClip[];
  /**
   * With `onClip`: whether the clips it was given are exactly `clips` (false when the decoder's timestamps
   * contradicted the packets' and a second decode chose other frames: the caller must use `clips`).
   */
  streamedClipsFinal?: boolean;
}

export interface VideoClipOptions extends MediaOptions {
  /** Seconds per clip, a number or an exact fraction (default 2). */
  clipDuration?: number | Fraction;
  /** Clips spread uniformly over the video (default 5). */
  clipsPerVideo?: number;
  /** Frames kept per clip (default: the whole seconds of clipDuration, as upstream's UniformTemporalSubsample(clip_duration)). */
  framesPerClip?: number;
  /** Called with the fraction of frames decoded so far (0 … 1). */
  onProgress?: (fraction: number) => void;
  /**
   * Called during the decode, in clip order, as soon as each clip's frames are in (so the caller can encode
   * it while ffmpeg goes on). See `streamedClipsFinal` in the result.
   */
  onClip?: (clip: VideoClip, index: number, size: { width: number; height: number }) => void;
}

/** Reads a video stream's time base, start, duration and size with ffmpeg alone (no ffprobe). */
export async function probeVideo(input: MediaInput, opts: MediaOptions = {}): Promise<VideoMeta> {
  throwIfAborted(opts.signal);
  const ff = await findFfmpeg();
  return withInputFile(input, opts.signal, async (file, label) => (await probePackets(ff.path, file, label, opts.signal)).meta);
}

/**
 * Decodes a video's first video stream and keeps, for each of `clipsPerVideo` clips, the frames
 * upstream ImageBind feeds the model (README §4.2 steps 1-4), with exact rational clip arithmetic.
 * Only the selected frames are held in memory.
 */
export async function decodeVideoClips(input: MediaInput, opts: VideoClipOptions = {}): Promise<DecodedVideo> {
  throwIfAborted(opts.signal);
  const cd = opts.clipDuration ?? 2;
  if (Array.isArray(cd) ? !(Number.isSafeInteger(cd[0]) && Number.isSafeInteger(cd[1]) && cd[1] > 0) : typeof cd !== 'number') {
    throw new TypeError(`Expected clipDuration to be a number of seconds or an integer fraction [num, den] but received ${JSON.stringify(cd)}`);
  }
  const clipDuration = Array.isArray(cd) ? rat(BigInt(cd[0]), BigInt(cd[1])) : ratFromNumber(cd);
  const clipsPerVideo = opts.clipsPerVideo ?? 5;
  const framesPerClip = opts.framesPerClip ?? Number(clipDuration.n / clipDuration.d);
  if (clipDuration.n <= 0n) throw new RangeError(`clipDuration must be positive, got ${fmt(clipDuration)}`);
  if (!Number.isInteger(clipsPerVideo) || clipsPerVideo < 1 || clipsPerVideo > MAX_CLIPS) {
    throw new RangeError(`clipsPerVideo must be an integer from 1 to ${MAX_CLIPS}, got ${clipsPerVideo}`);
  }
  if (!Number.isInteger(framesPerClip) || framesPerClip < 1 || framesPerClip > MAX_FRAMES_PER_CLIP) {
    throw new RangeError(`framesPerClip must be an integer from 1 to ${MAX_FRAMES_PER_CLIP}, got ${framesPerClip} (it defaults to the whole seconds of clipDuration)`);
  }

  const ff = await findFfmpeg();
  return withInputFile(input, opts.signal, async (file, label) => {
    const probe = await probePackets(ff.path, file, label, opts.signal);
    // Every kept frame is width × height × 3 bytes: bound them before decoding any.
    const { width, height } = probe.meta;
    if (!(width > 0 && height > 0 && width <= MAX_FRAME_SIDE && height <= MAX_FRAME_SIDE && width * height <= MAX_FRAME_PIXELS)) {
      throw new ImageBindError('ERR_MEDIA_TOO_LARGE', `Cannot decode ${label}: frames of ${width}×${height} are larger than this reads (${MAX_FRAME_PIXELS} pixels, sides up to ${MAX_FRAME_SIDE})`);
    }
    const shape = { clipDuration, clipsPerVideo, framesPerClip };
    // Progress only moves forward (a second decode, when one is needed, reports nothing new).
    let reported = -1;
    const onProgress = opts.onProgress;
    const passOpts: VideoClipOptions = {
      signal: opts.signal,
      onProgress: onProgress && ((f: number) => {
        if (f > reported) onProgress((reported = f));
      }),
    };
    // The packets predict which frames will be selected; the decoded timestamps confirm it.  If the
    // decoder disagrees (undecodable or duplicated frames), decode once more with its own timestamps.
    let plan = planVideo(probe.meta, probe.pts, shape, label);
    const streamer = opts.onClip ? new ClipStreamer(plan, opts.onClip) : null;
    let pass = await decodeSelected(ff, file, label, probe.meta, plan, probe.pts.length, passOpts, streamer);
    let actual = planVideo(probe.meta, pass.decodedPts, shape, label);
    let streamedClipsFinal = streamer !== null;
    if (!samePlan(plan, actual)) {
      plan = actual;
      streamedClipsFinal = false;
      pass = await decodeSelected(ff, file, label, probe.meta, plan, pass.decodedPts.length, passOpts, null);
      actual = planVideo(probe.meta, pass.decodedPts, shape, label);
      if (!samePlan(plan, actual)) {
        throw new ImageBindError('ERR_MEDIA_DECODE', `Cannot decode ${label}: ffmpeg returned different frames on two decodes of the same file`);
      }
    }
    const meta: VideoMeta = {
      ...probe.meta,
      width: pass.width,
      height: pass.height,
      duration: toPair(plan.duration),
      warnings: [...probe.meta.warnings, ...pass.warnings],
    };
    const clips: VideoClip[] = plan.clips.map((c) => clipOf(c, pass.frames, label));
    if (streamer) streamedClipsFinal &&= streamer.matches(clips);
    onProgress?.(1);
    return streamer ? { meta, clips, streamedClipsFinal } : { meta, clips };
  });
}

function clipOf(c: ClipPlan, frames: ReadonlyMap<number, Uint8Array>, label: string): VideoClip {
  return {
    start: toPair(c.start),
    end: toPair(c.end),
    startPts: c.startPts,
    endPts: c.endPts,
    frameCount: c.frameCount,
    frames: c.selected.map((s) => {
      const rgb = frames.get(s.pts);
      if (!rgb) throw new ImageBindError('ERR_MEDIA_DECODE', `Cannot decode ${label}: frame pts ${s.pts} was not delivered`);
      return { pts: s.pts, index: s.index, rgb };
    }),
  };
}

/** Hands each planned clip to `onClip` as soon as all of its frames have been decoded, in clip order. */
class ClipStreamer {
  private readonly frames = new Map<number, Uint8Array>();
  private readonly sent: VideoClip[] = [];

  constructor(private readonly plan: VideoPlan, private readonly onClip: NonNullable<VideoClipOptions['onClip']>) {}

  frame(pts: number, rgb: Uint8Array, width: number, height: number): void {
    if (!this.plan.wanted.has(pts)) return;
    this.frames.set(pts, rgb);
    for (let k = this.sent.length; k < this.plan.clips.length; k = this.sent.length) {
      const c = this.plan.clips[k]!;
      if (!c.selected.every((s) => this.frames.has(s.pts))) return;
      const clip = clipOf(c, this.frames, '');
      this.sent.push(clip);
      this.onClip(clip, k, { width, height });
    }
  }

  /** Every clip was sent, with the very frames the final result holds (a later duplicate pts replaces one). */
  matches(clips: readonly VideoClip[]): boolean {
    return this.sent.length === clips.length &&
      clips.every((c, k) => c.frames.every((f, i) => this.sent[k]!.frames[i]!.rgb === f.rgb));
  }
}

// --- pass 1: packets ---------------------------------------------------------------------------

interface ProbeResult {
  meta: VideoMeta;
  /** pts of every packet that yields a frame (decode order). */
  pts: number[];
}

/**
 * Reads the stream's packets without decoding (`-c copy -f framecrc`): the framecrc header gives the
 * exact time base (`#tb`), codec and coded size; each line gives one packet's dts, pts and duration
 * in that time base.  `-copyts` keeps the demuxer's timestamps (ffmpeg would otherwise shift them by
 * the file's start time).
 */
async function probePackets(bin: string, file: string, label: string, signal?: AbortSignal): Promise<ProbeResult> {
  const args = [...inputArgs(file, 'packets'), '-map', '0:v:0', '-c', 'copy', '-f', 'framecrc', 'pipe:1'];
  const run = startFfmpeg(bin, args, { label, file, stream: 'video', signal });
  const crc = new FramecrcReader();
  run.stdout.setEncoding('latin1');
  run.stdout.on('data', (s: string) => crc.push(s));
  const stderr = await run.done;
  crc.end();
  const tb = crc.timeBase;
  if (!tb) throw new ImageBindError('ERR_MEDIA_DECODE', `Cannot decode ${label}: ffmpeg did not report the video stream's time base`);
  const pts: number[] = [];
  let startPts: number | null = null;
  let endPts: number | null = null;
  for (const p of crc.packets) {
    if (p.pts === null || (p.flags & PKT_FLAG_DISCARD)) continue;
    startPts ??= p.pts;
    pts.push(p.pts);
    endPts = Math.max(endPts ?? -Infinity, p.pts + p.duration);
  }
  if (startPts === null || endPts === null) {
    throw new ImageBindError('ERR_MEDIA_DECODE', `Cannot decode ${label}: its video stream has no timestamped packets`);
  }
  const durationTs = await headerDuration(file, tb, endPts - startPts);
  const meta: VideoMeta = {
    width: crc.width, height: crc.height, codec: crc.codec,
    timeBase: toPair(tb), startPts, durationTs,
    duration: [0, 1], frameCount: pts.length,
    warnings: stderrLines(stderr, file, label),
  };
  meta.duration = toPair(videoSeconds(meta, pts));
  return { meta, pts };
}

/**
 * What FFmpeg (and so PyAV) reports as the stream's duration:
 *   - MP4/MOV: read from the header (see movDuration);
 *   - Matroska/WebM: none (FFmpeg's demuxer sets no per-stream duration) → null;
 *   - anything else: the span the packets cover, which is how FFmpeg estimates it where the container
 *     stores none (MPEG-TS, fragmented MP4) and equals the stored one in AVI and the like.
 */
async function headerDuration(file: string, tb: Rat, packetSpan: number): Promise<number | null> {
  const fh = await fs.promises.open(file, 'r');
  try {
    const head = await readAt(fh, 0, 4);
    if (head.length === 4 && head.readUInt32BE(0) === 0x1a45dfa3) return null; // EBML magic
    const mov = await movDuration(fh);
    if (mov && tb.n === 1n && tb.d === mov.timescale) return Number(mov.duration);
    return packetSpan;
  } finally {
    await fh.close();
  }
}

async function readAt(fh: fs.promises.FileHandle, pos: number, len: number): Promise<Buffer> {
  const b = Buffer.alloc(len);
  const { bytesRead } = await fh.read(b, 0, len, pos);
  return b.subarray(0, bytesRead);
}

/**
 * The first video track's duration as FFmpeg 5.1's mov demuxer sets it: the mdhd duration, cut to the
 * edit list's total Σ av_rescale(segment_duration, mdhd timescale, mvhd timescale) when the track has
 * one (ref: libavformat/mov.c mov_read_mdhd, get_edit_list_entry, mov_fix_index).  null when the file
 * is not ISO-BMFF, has no video track, or its mdhd holds no duration (fragmented: FFmpeg then takes it
 * from the fragments, as the packet span does).
 */
async function movDuration(fh: fs.promises.FileHandle): Promise<{ timescale: bigint; duration: bigint } | null> {
  const size = (await fh.stat()).size;
  // The boxes in [start, end): type, body offset, end offset.  Stops at the first malformed header.
  const boxes = async (start: number, end: number) => {
    const out: Array<{ type: string; body: number; end: number }> = [];
    for (let pos = start; pos + 8 <= end;) {
      const h = await readAt(fh, pos, 16);
      let sz = h.readUInt32BE(0);
      let hdr = 8;
      if (sz === 1 && h.length === 16) {
        sz = Number(h.readBigUInt64BE(8));
        hdr = 16;
      } else if (sz === 0) {
        sz = end - pos;
      }
      const type = h.toString('latin1', 4, 8);
      if (sz < hdr || pos + sz > end || !/^[\x20-\x7e]{4}$/.test(type)) break;
      out.push({ type, body: pos + hdr, end: pos + sz });
      pos += sz;
    }
    return out;
  };
  const moov = (await boxes(0, size)).find((b) => b.type === 'moov');
  if (!moov) return null;
  let mvhdTimescale = 0n;
  for (const b of await boxes(moov.body, moov.end)) {
    if (b.type === 'mvhd') {
      const d = await readAt(fh, b.body, 24);
      mvhdTimescale = BigInt(d.readUInt32BE(d[0] === 1 ? 20 : 12));
    }
    if (b.type !== 'trak') continue;
    let handler = '', timescale = 0n, duration = 0n;
    let edits: bigint[] | null = null;
    for (const t of await boxes(b.body, b.end)) {
      if (t.type === 'mdia') {
        for (const m of await boxes(t.body, t.end)) {
          if (m.type === 'hdlr') handler = (await readAt(fh, m.body + 8, 4)).toString('latin1');
          if (m.type === 'mdhd') {
            const d = await readAt(fh, m.body, 32);
            const v1 = d[0] === 1;
            timescale = BigInt(d.readUInt32BE(v1 ? 20 : 12));
            duration = v1 ? d.readBigUInt64BE(24) : BigInt(d.readUInt32BE(16));
          }
        }
      } else if (t.type === 'edts') {
        const elst = (await boxes(t.body, t.end)).find((e) => e.type === 'elst');
        if (elst) {
          const d = await readAt(fh, elst.body, Math.min(elst.end - elst.body, 1 << 20));
          const v1 = d[0] === 1;
          const step = v1 ? 20 : 12;
          edits = [];
          for (let i = 0, o = 8; i < d.readUInt32BE(4) && o + step <= d.length; i++, o += step) {
            edits.push(v1 ? d.readBigUInt64BE(o) : BigInt(d.readUInt32BE(o)));
          }
        }
      }
    }
    if (handler !== 'vide') continue;
    if (timescale <= 0n || duration <= 0n) return null;
    if (edits && edits.length > 0 && mvhdTimescale > 0n) {
      // av_rescale rounds to nearest, halves away from zero.
      const total = edits.reduce((sum, e) => sum + (e * timescale + mvhdTimescale / 2n) / mvhdTimescale, 0n);
      if (total < duration) duration = total;
    }
    return { timescale, duration };
  }
  return null;
}

/**
 * pytorchvideo's EncodedVideoPyAV duration: pts_to_secs(stream.duration, time_base, start_time), i.e.
 * (duration − start) · time_base; without a stream duration it decodes everything and uses the last
 * (largest) frame pts instead.
 */
function videoSeconds(meta: VideoMeta, pts: readonly number[]): Rat {
  const tb = rat(BigInt(meta.timeBase[0]), BigInt(meta.timeBase[1]));
  let end: number;
  if (meta.durationTs !== null) end = meta.durationTs;
  else end = pts.reduce((m, p) => Math.max(m, p), -Infinity);
  return mul(rat(BigInt(end) - BigInt(meta.startPts)), tb);
}

// --- clip plan ---------------------------------------------------------------------------------

interface ClipPlan {
  start: Rat;
  end: Rat;
  startPts: number;
  endPts: number;
  frameCount: number;
  selected: Array<{ pts: number; index: number }>;
}

interface VideoPlan {
  duration: Rat;
  clips: ClipPlan[];
  /** Every selected pts (a frame may serve several clips). */
  wanted: Set<number>;
}

interface PlanShape {
  clipDuration: Rat;
  clipsPerVideo: number;
  framesPerClip: number;
}

/**
 * ConstantClipsPerVideoSampler + EncodedVideoPyAV.get_clip + UniformTemporalSubsample, exactly:
 *   max_start = max(duration − clip_duration, 0); step = max_start / max(clips − 1, 1);
 *   clip k = [k·step, k·step + clip_duration);
 *   frame in clip ⇔ ceil(start / tb) + start_pts ≤ pts < ceil(end / tb) + start_pts;
 *   frames are the clip's distinct pts in order (pytorchvideo keys them by pts: the last frame decoded
 *   with a pts wins); keep indices trunc(linspace(0, T − 1, n)) (float32, as torch.linspace).
 */
function planVideo(meta: VideoMeta, pts: readonly number[], shape: PlanShape, label: string): VideoPlan {
  const tb = rat(BigInt(meta.timeBase[0]), BigInt(meta.timeBase[1]));
  const duration = videoSeconds(meta, pts);
  const sorted = [...new Set(pts)].sort((a, b) => a - b);
  const zero = rat(0n);
  const maxStart = maxRat(sub(duration, shape.clipDuration), zero);
  const step = div(maxStart, rat(BigInt(Math.max(shape.clipsPerVideo - 1, 1))));
  const clips: ClipPlan[] = [];
  const wanted = new Set<number>();
  for (let k = 0; k < shape.clipsPerVideo; k++) {
    const start = mul(step, rat(BigInt(k)));
    const end = add(start, shape.clipDuration);
    const startPts = Number(ceilRat(div(start, tb))) + meta.startPts;
    const endPts = Number(ceilRat(div(end, tb))) + meta.startPts;
    const lo = lowerBound(sorted, startPts);
    const hi = lowerBound(sorted, endPts);
    const count = hi - lo;
    if (count === 0) {
      throw new ImageBindError('ERR_VIDEO_EMPTY_CLIP',
        `${label}: clip ${k} [${fmt(start)}, ${fmt(end)}) s holds no frames (video duration ${fmt(duration)} s, ${sorted.length} frames)`);
    }
    const selected = uniformIndices(count, shape.framesPerClip).map((index) => ({ index, pts: sorted[lo + index]! }));
    for (const s of selected) wanted.add(s.pts);
    clips.push({ start, end, startPts, endPts, frameCount: count, selected });
  }
  return { duration, clips, wanted };
}

/** `torch.clamp(torch.linspace(0, t − 1, n), 0, t − 1).long()` with torch's float32 CPU linspace. */
export function uniformIndices(t: number, n: number): number[] {
  const f = Math.fround;
  const end = f(t - 1);
  if (n === 1) return [0];
  const step = f(end / (n - 1));
  const half = Math.floor(n / 2);
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const v = i < half ? f(step * i) : f(end - f(step * (n - 1 - i)));
    out.push(Math.trunc(Math.min(Math.max(v, 0), t - 1)));
  }
  return out;
}

function samePlan(a: VideoPlan, b: VideoPlan): boolean {
  if (cmp(a.duration, b.duration) !== 0 || a.clips.length !== b.clips.length) return false;
  return a.clips.every((c, k) => {
    const d = b.clips[k]!;
    return c.frameCount === d.frameCount && c.selected.length === d.selected.length &&
      c.selected.every((s, i) => s.pts === d.selected[i]!.pts && s.index === d.selected[i]!.index);
  });
}

function lowerBound(a: readonly number[], x: number): number {
  let lo = 0, hi = a.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (a[mid]! < x) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

// --- pass 2: decode ----------------------------------------------------------------------------

/**
 * How to keep every decoded frame with its own timestamp: `-fps_mode passthrough` (FFmpeg ≥ 5.1),
 * `-vsync passthrough` before (deprecated in 5.1, still accepted by 7.x).
 */
type ArgStyle = 'modern' | 'legacy';
const argStyleCache = new Map<string, ArgStyle>();

function argStyleFor(version: string): ArgStyle | null {
  const m = /^n?(\d+)\.(\d+)/.exec(version);
  if (!m) return null; // a git snapshot ("N-47683-g0e8eb07980"): try legacy first, then modern
  const major = Number(m[1]), minor = Number(m[2]);
  return major > 5 || (major === 5 && minor >= 1) ? 'modern' : 'legacy';
}

interface DecodePass {
  width: number;
  height: number;
  frames: Map<number, Uint8Array>;
  /** pts of every decoded frame, in output order. */
  decodedPts: number[];
  warnings: string[];
}

async function decodeSelected(ff: { path: string; version: string }, file: string, label: string, meta: VideoMeta,
  plan: VideoPlan, expectedFrames: number, opts: VideoClipOptions, streamer: ClipStreamer | null): Promise<DecodePass> {
  const first = argStyleCache.get(ff.path) ?? argStyleFor(ff.version) ?? 'legacy';
  const styles: ArgStyle[] = first === 'legacy' ? ['legacy', 'modern'] : ['modern', 'legacy'];
  let lastError: unknown;
  for (const style of styles) {
    try {
      const r = await decodeOnce(ff.path, style, file, label, meta, plan, expectedFrames, opts, streamer);
      argStyleCache.set(ff.path, style);
      return r;
    } catch (e) {
      lastError = e;
      if (!(e instanceof OptionRejected)) throw e;
    }
  }
  throw new ImageBindError('ERR_MEDIA_DECODE', `Cannot decode ${label}: ${(lastError as Error).message}`);
}

/** ffmpeg refused an option spelling (older or newer ffmpeg): try the other one. */
class OptionRejected extends Error {}

/**
 * One ffmpeg run decodes the stream once and splits the frames three ways:
 *   fd 3: `framecrc` of every frame (wrapped, not converted): its pts, one flushed line per frame;
 *   fd 4: `framecrc` of the frames whose pts the plan selects (`select` filter), after RGB conversion;
 *   fd 1: those selected frames as raw RGB24 (only they are converted and piped).
 * RGB frame i pairs with line i on fd 4.  The encoders run in the stream's own time base
 * (`-enc_time_base num:den`) and pass every frame through, so the pts are the demuxer's, exactly.
 * If RGB data runs ahead of its timestamps, stdout is paused (ffmpeg writes the line first).
 */
function decodeOnce(bin: string, style: ArgStyle, file: string, label: string, meta: VideoMeta, plan: VideoPlan,
  expectedFrames: number, opts: VideoClipOptions, streamer: ClipStreamer | null): Promise<DecodePass> {
  const tb = meta.timeBase;
  const out = [style === 'modern' ? '-fps_mode' : '-vsync', 'passthrough', '-enc_time_base', `${tb[0]}:${tb[1]}`];
  const wanted = [...plan.wanted].sort((a, b) => a - b).map((p) => `eq(pts,${p})`).join('+');
  const graph = `[0:v:0]split=2[all][sel];[sel]select='${wanted}',` +
    // PyAV ≤ 11's frame.to_rgb(): libswscale, SWS_BILINEAR, default (BT.601) coefficients.
    'scale=flags=bilinear:in_color_matrix=bt601,format=rgb24,split=2[rgb][rgbts]';
  const stamps = ['-c:v', 'wrapped_avframe', '-flush_packets', '1', '-f', 'framecrc'];
  const args = [
    ...inputArgs(file, 'video'),
    '-filter_complex', graph,
    '-map', '[all]', ...out, ...stamps, 'pipe:3',
    '-map', '[rgbts]', ...out, ...stamps, 'pipe:4',
    '-map', '[rgb]', ...out, '-pix_fmt', 'rgb24', '-c:v', 'rawvideo', '-f', 'rawvideo', 'pipe:1',
  ];
  const run = startFfmpeg(bin, args, { label, file, stream: 'video', signal: opts.signal, extraPipes: 2 });
  const all = new FramecrcReader();
  const sel = new FramecrcReader();
  const frames = new Map<number, Uint8Array>();
  let frameSize = 0;
  let delivered = 0;
  // RGB bytes whose timestamp line has not arrived yet (whole frames first, then a partial one).
  let pending: Buffer[] = [];
  let pendingBytes = 0;
  let paused = false;
  let lastReported = -1;

  // Removes `n` bytes from the front of `pending`, returned as one array.
  const takeFrame = (n: number): Uint8Array => {
    const dst = new Uint8Array(n);
    for (let off = 0; off < n;) {
      const head = pending[0]!;
      const k = Math.min(head.length, n - off);
      dst.set(head.subarray(0, k), off);
      off += k;
      if (k === head.length) pending.shift();
      else pending[0] = head.subarray(k);
    }
    pendingBytes -= n;
    return dst;
  };

  const drain = () => {
    if (!frameSize && sel.width && sel.height) frameSize = sel.width * sel.height * 3;
    while (frameSize && pendingBytes >= frameSize && sel.packets.length > delivered) {
      const pts = sel.packets[delivered++]!.pts;
      if (pts === null) throw new ImageBindError('ERR_MEDIA_DECODE', `Cannot decode ${label}: a decoded frame has no timestamp`);
      const rgb = takeFrame(frameSize);
      frames.set(pts, rgb); // the last frame with a pts wins, as in pytorchvideo
      streamer?.frame(pts, rgb, sel.width, sel.height);
    }
    // The frame size comes with the timestamps' header: until then hold back up to 16 MiB.
    const backlog = frameSize ? pendingBytes / frameSize : pendingBytes / (1 << 24);
    if (!paused && backlog > 2) {
      paused = true;
      run.stdout.pause();
    } else if (paused && backlog <= 1) {
      paused = false;
      run.stdout.resume();
    }
  };

  const progress = () => {
    if (!opts.onProgress || expectedFrames <= 0) return;
    const f = Math.min(all.packets.length / expectedFrames, 0.999);
    if (f - lastReported >= 0.01) {
      lastReported = f;
      opts.onProgress(f);
    }
  };

  const guard = (fn: () => void) => {
    try {
      fn();
    } catch (e) {
      run.fail(e);
    }
  };
  const [fd3, fd4] = run.extra;
  fd3!.setEncoding('latin1');
  fd3!.on('data', (s: string) => guard(() => {
    all.push(s);
    progress();
  }));
  fd4!.setEncoding('latin1');
  fd4!.on('data', (s: string) => guard(() => {
    sel.push(s);
    drain();
  }));
  run.stdout.on('data', (c: Buffer) => guard(() => {
    pending.push(c);
    pendingBytes += c.length;
    drain();
  }));

  return run.done.then((stderr) => {
    all.end();
    sel.end();
    drain();
    for (const r of [all, sel]) {
      if (r.timeBase && (r.timeBase.n !== BigInt(tb[0]) || r.timeBase.d !== BigInt(tb[1]))) {
        throw new ImageBindError('ERR_MEDIA_DECODE',
          `Cannot decode ${label}: decoded frames came in time base ${fmt(r.timeBase)}, the stream's is ${tb[0]}/${tb[1]}`);
      }
    }
    if (pendingBytes !== 0 || delivered !== sel.packets.length) {
      throw new ImageBindError('ERR_MEDIA_DECODE',
        `Cannot decode ${label}: ffmpeg sent ${delivered} RGB frames (+${pendingBytes} bytes) for ${sel.packets.length} timestamps ` +
        '(does the frame size change mid-stream?)');
    }
    const decodedPts = all.packets.map((p, i) => {
      if (p.pts === null) throw new ImageBindError('ERR_MEDIA_DECODE', `Cannot decode ${label}: decoded frame ${i} has no timestamp`);
      return p.pts;
    });
    pending = [];
    return { width: sel.width || all.width, height: sel.height || all.height, frames, decodedPts, warnings: stderrLines(stderr, file, label) };
  }, (e: unknown) => {
    if (e instanceof ImageBindError && e.code === 'ERR_MEDIA_DECODE' && all.packets.length === 0 &&
        /Unrecognized option|Option \S+ not found/.test(e.message)) {
      throw new OptionRejected(e.message);
    }
    throw e;
  });
}

// --- framecrc parsing --------------------------------------------------------------------------

const PKT_FLAG_DISCARD = 0x4;
const NOPTS = '-9223372036854775808';

interface CrcPacket {
  pts: number | null;
  duration: number;
  flags: number;
}

/**
 * Reads ffmpeg's framecrc text: `#tb 0: 1/12800`, `#codec_id 0: h264`, `#dimensions 0: 320x240`, then
 * `stream, dts, pts, duration, size, crc[, F=0xflags][, S=side data…]` per packet.
 */
class FramecrcReader {
  timeBase: Rat | null = null;
  codec = '';
  width = 0;
  height = 0;
  packets: CrcPacket[] = [];
  private rest = '';

  push(text: string): void {
    const lines = (this.rest + text).split('\n');
    this.rest = lines.pop()!;
    for (const line of lines) this.line(line);
  }

  end(): void {
    if (this.rest) this.line(this.rest);
    this.rest = '';
  }

  private line(raw: string): void {
    const line = raw.trim();
    if (!line) return;
    if (line.startsWith('#')) {
      const m = /^#(\w+) 0:\s*(.*)$/.exec(line);
      if (!m) return;
      const [, key, value] = m;
      if (key === 'tb') {
        const t = /^(\d+)\/(\d+)$/.exec(value!);
        if (t) this.timeBase = rat(BigInt(t[1]!), BigInt(t[2]!));
      } else if (key === 'codec_id') {
        this.codec = value!;
      } else if (key === 'dimensions') {
        const d = /^(\d+)x(\d+)$/.exec(value!);
        if (d) {
          this.width = Number(d[1]);
          this.height = Number(d[2]);
        }
      }
      return;
    }
    const f = line.split(',').map((s) => s.trim());
    if (f.length < 6 || f[0] !== '0') return;
    const flags = /F=0x([0-9a-fA-F]+)/.exec(line);
    this.packets.push({
      pts: f[2] === NOPTS ? null : Number(f[2]),
      duration: Number(f[3]),
      flags: flags ? parseInt(flags[1]!, 16) : 1,
    });
  }
}

// --- ffmpeg child ------------------------------------------------------------------------------

/**
 * Input options: the `file:` protocol only (no URLs or protocol prefixes in names); for video the
 * demuxer's own timestamps (`-copyts`) and no autorotation (PyAV neither shifts nor rotates).
 */
function inputArgs(file: string, use: 'audio' | 'packets' | 'video'): string[] {
  return [
    '-hide_banner', '-nostdin', '-loglevel', 'error',
    '-protocol_whitelist', 'file',
    ...(use === 'video' ? ['-noautorotate'] : []),
    ...(use === 'audio' ? [] : ['-copyts']),
    '-i', `file:${file}`,
  ];
}

interface FfmpegRun {
  stdout: Readable;
  /** Pipes on fd 3, 4, … */
  extra: Readable[];
  /** Kills ffmpeg; `done` then rejects with `reason`. */
  fail(reason: unknown): void;
  /** Settles once ffmpeg has exited and its pipes closed: its stderr on exit status 0, else an error. */
  done: Promise<string>;
}

interface RunOptions {
  label: string;
  file: string;
  stream: 'audio' | 'video';
  signal?: AbortSignal;
  /** How many pipes beyond stdio to open (fd 3, 4, …). */
  extraPipes?: number;
}

function startFfmpeg(bin: string, args: string[], o: RunOptions): FfmpegRun {
  const child = spawn(bin, args, {
    stdio: ['ignore', 'pipe', 'pipe', ...Array<'pipe'>(o.extraPipes ?? 0).fill('pipe')],
    windowsHide: true,
  });
  const stdout = child.stdout!;
  const extra = child.stdio.slice(3) as Readable[];
  let failure: { reason: unknown } | null = null;
  let spawnError: Error | null = null;
  let stderr = '';
  child.stderr!.setEncoding('utf8');
  child.stderr!.on('data', (s: string) => {
    if (stderr.length < 65536) stderr += s;
  });
  child.on('error', (e) => {
    spawnError ??= e;
  });
  const fail = (reason: unknown) => {
    if (!failure) failure = { reason };
    // Paused pipes would hold back 'close': let them go, then stop the child.
    stdout.destroy();
    for (const p of extra) p.destroy();
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  };
  const onAbort = () => fail(new AbortError(undefined, { cause: o.signal!.reason }));
  if (o.signal?.aborted) onAbort();
  else o.signal?.addEventListener('abort', onAbort, { once: true });

  const done = new Promise<string>((resolve, reject) => {
    child.on('close', (code, sig) => {
      o.signal?.removeEventListener('abort', onAbort);
      if (failure) reject(failure.reason);
      else if (spawnError) reject(new ImageBindError('ERR_FFMPEG_NOT_FOUND', `Could not run ffmpeg (${bin}): ${spawnError.message}`));
      else if (code === 0) resolve(stderr);
      else reject(ffmpegError(stderr, code, sig, o));
    });
  });
  return { stdout, extra, fail, done };
}

function ffmpegError(stderr: string, code: number | null, sig: NodeJS.Signals | null, o: RunOptions): ImageBindError {
  const lines = stderrLines(stderr, o.file, o.label);
  if (lines.some((l) => /matches no streams|does not contain any stream/.test(l))) {
    return new ImageBindError(o.stream === 'video' ? 'ERR_NO_VIDEO_STREAM' : 'ERR_NO_AUDIO_STREAM',
      `${o.label} has no ${o.stream} stream`);
  }
  // The first line says what went wrong first; ffmpeg's last line often sums it up ("Invalid data …").
  const first = lines[0] ?? `ffmpeg exited with ${sig ? `signal ${sig}` : `code ${code}`} and printed nothing`;
  const last = lines.length > 1 ? lines[lines.length - 1]! : '';
  const why = last && !/^To ignore this|^Conversion failed/.test(last) ? `${first} (${last.replace(`${o.label}: `, '')})` : first;
  return new ImageBindError('ERR_MEDIA_DECODE', `Cannot decode ${o.label}: ${why}`);
}

/**
 * ffmpeg's stderr lines, with the (temporary) file name replaced by what the caller gave and the
 * pointer dropped from log prefixes ("[mov,mp4,m4a,3gp,3g2,mj2 @ 0x55d0c8a0] …" → "[mov,mp4,…] …").
 */
function stderrLines(stderr: string, file: string, label: string): string[] {
  return stderr.split(/\r?\n/).map((l) => l.trim()).filter(Boolean)
    .map((l) => l.split(`file:${file}`).join(label).split(file).join(label).replace(/^\[([^\]@]*?) @ 0x[0-9a-fA-F]+\]/, '[$1]'));
}


/** Runs `fn` on a file path: the caller's file, or a temporary copy of the caller's bytes (removed after). */
async function withInputFile<T>(input: MediaInput, signal: AbortSignal | undefined,
  fn: (file: string, label: string) => Promise<T>): Promise<T> {
  if (typeof input === 'string') {
    let st: fs.Stats;
    try {
      st = await fs.promises.stat(input);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === 'ENOENT' || code === 'ENOTDIR') throw new ImageBindError('ERR_FILE_NOT_FOUND', `File not found: ${input}`);
      throw new ImageBindError('ERR_MEDIA_DECODE', `Cannot read ${input}: ${(e as Error).message}`);
    }
    if (st.isDirectory()) throw new ImageBindError('ERR_MEDIA_DECODE', `Cannot decode ${input}: it is a directory`);
    // ffmpeg would wait forever on a FIFO and read a device without end.
    if (!st.isFile()) throw new ImageBindError('ERR_FILE_READ', `Cannot decode ${input}: not a regular file (a FIFO, device or socket)`);
    throwIfAborted(signal);
    return fn(path.resolve(input), input);
  }
  if (!(input instanceof Uint8Array)) {
    throw new TypeError(`Expected a file path (string) or the file's bytes (Uint8Array) for the media input but received ${
      input === null ? 'null' : typeof input}`);
  }
  const dir = await fs.promises.mkdtemp(path.join(os.tmpdir(), 'imagebind-llm-media-'));
  try {
    const file = path.join(dir, 'input');
    await fs.promises.writeFile(file, input);
    throwIfAborted(signal);
    return await fn(file, `<buffer of ${input.byteLength} bytes>`);
  } finally {
    await fs.promises.rm(dir, { recursive: true, force: true });
  }
}

// --- exact rationals ---------------------------------------------------------------------------

interface Rat {
  n: bigint;
  d: bigint;
}

function gcd(a: bigint, b: bigint): bigint {
  if (a < 0n) a = -a;
  if (b < 0n) b = -b;
  while (b) [a, b] = [b, a % b];
  return a;
}

function rat(n: bigint, d = 1n): Rat {
  if (d === 0n) throw new RangeError('fraction with a zero denominator');
  if (d < 0n) {
    n = -n;
    d = -d;
  }
  const g = gcd(n, d) || 1n;
  return { n: n / g, d: d / g };
}

const add = (a: Rat, b: Rat) => rat(a.n * b.d + b.n * a.d, a.d * b.d);
const sub = (a: Rat, b: Rat) => rat(a.n * b.d - b.n * a.d, a.d * b.d);
const mul = (a: Rat, b: Rat) => rat(a.n * b.n, a.d * b.d);
const div = (a: Rat, b: Rat) => rat(a.n * b.d, a.d * b.n);
const cmp = (a: Rat, b: Rat) => Math.sign(Number(a.n * b.d - b.n * a.d));
const maxRat = (a: Rat, b: Rat) => (cmp(a, b) >= 0 ? a : b);
const fmt = (a: Rat) => `${a.n}/${a.d}`;

/** Smallest integer ≥ a (BigInt division truncates toward zero). */
function ceilRat(a: Rat): bigint {
  const q = a.n / a.d;
  return a.n % a.d !== 0n && a.n > 0n ? q + 1n : q;
}

/** The exact value of a double, like Python's Fraction(float). */
function ratFromNumber(x: number): Rat {
  if (!Number.isFinite(x)) throw new RangeError(`expected a finite number, got ${x}`);
  let d = 1n;
  while (!Number.isInteger(x)) {
    x *= 2;
    d *= 2n;
  }
  return rat(BigInt(x), d);
}

function toPair(a: Rat): Fraction {
  const n = Number(a.n), d = Number(a.d);
  if (!Number.isSafeInteger(n) || !Number.isSafeInteger(d)) throw new RangeError(`fraction ${fmt(a)} exceeds 2^53`);
  return [n, d];
}
