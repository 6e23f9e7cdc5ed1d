// How one embed() call reaches the native encoder: the decoded inputs in one call (same-modality items
// share graphs), then each video as a pipeline: a clip goes to the encoder as soon as ffmpeg has decoded
// its frames, so decoding overlaps encoding and a video's memory is one clip's graph and the frames of
// the clips not yet encoded, not all of its items at once.
import type { Modality } from './keys';
import type { DecodedVideo, VideoClip } from './media';

export interface NativeInput {
  modality: Modality;
  name: string;
  format?: string;
  bytes?: Uint8Array;
  text?: string;
  audio?: { sampleRate: number; channels: Float32Array[] };
  clips?: Array<Array<{ width: number; height: number; rgb: Uint8Array }>>;
  tensor?: { data: Float32Array; shape: number[] };
}

export interface NativeEmbedding { modality: Modality; clips: number; raw: Float32Array; scaled: Float32Array; embedding: Float32Array }

/** One native call; its progress counts encoder items of that call. */
export type NativeEmbed = (inputs: NativeInput[], onProgress: (done: number, total: number) => void) => Promise<NativeEmbedding[]>;

/** A video to decode: `decode` runs ffmpeg and hands over each clip as it is decoded. */
export interface VideoSource {
  name: string;
  /** Encoder items per video (clips × spatial crops), for progress. */
  items: number;
  decode: (onClip: (clip: VideoClip, index: number, size: { width: number; height: number }) => void) => Promise<DecodedVideo>;
}

type Frames = NonNullable<NativeInput['clips']>[number];

function framesOf(clip: VideoClip, size: { width: number; height: number }): Frames {
  return clip.frames.map((f) => ({ width: size.width, height: size.height, rgb: f.rgb }));
}

/** The clip-weighted mean of per-part results, as the native post-processing averages items. */
export function combineParts(parts: NativeEmbedding[]): NativeEmbedding {
  if (parts.length === 1) return parts[0]!;
  const n = parts.reduce((a, p) => a + p.clips, 0);
  const dim = parts[0]!.raw.length;
  const raw = new Float64Array(dim), scaled = new Float64Array(dim);
  for (const p of parts) {
    for (let i = 0; i < dim; i++) {
      raw[i]! += (p.raw[i]! * p.clips) / n;
      scaled[i]! += (p.scaled[i]! * p.clips) / n;
    }
  }
  let ss = 0;
  for (const v of scaled) ss += v * v;
  const inv = 1 / Math.max(Math.sqrt(ss), 1e-12);
  return {
    modality: parts[0]!.modality,
    clips: n,
    raw: Float32Array.from(raw),
    scaled: Float32Array.from(scaled),
    embedding: Float32Array.from(scaled, (v) => v * inv),
  };
}

/** Encodes one video: each clip in its own call, queued as ffmpeg delivers it; waits for every call it started. */
async function embedVideo(embed: NativeEmbed, v: VideoSource, onItems: (done: number) => void): Promise<NativeEmbedding> {
  let chain: Promise<void> = Promise.resolve();
  let failure: { error: unknown } | null = null;
  let done = 0;
  const parts: NativeEmbedding[] = [];
  const encode = (clips: Frames[]) => {
    chain = chain.then(async () => {
      if (failure) return;
      const base = done;
      const [r] = await embed([{ modality: 'vision', name: v.name, clips }], (d) => onItems(base + d));
      done = base + r!.clips;
      parts.push(r!);
      onItems(done);
    }).catch((error: unknown) => {
      failure ??= { error };
    });
  };
  let decoded: DecodedVideo;
  try {
    decoded = await v.decode((clip, _index, size) => encode([framesOf(clip, size)]));
  } finally {
    await chain;  // no encoder call (nor its progress) outlives this one
  }
  if (failure) throw (failure as { error: unknown }).error;
  if (decoded.streamedClipsFinal) return combineParts(parts);
  // A second decode chose other frames than those streamed: encode the final clips instead.
  const { width, height } = decoded.meta;
  const [r] = await embed([{ modality: 'vision', name: v.name, clips: decoded.clips.map((c) => framesOf(c, { width, height })) }],
    (d) => onItems(d));
  return r!;
}

/**
 * Results in input order for `items` (decoded inputs and videos). Progress counts encoder items over all of
 * them; the decoded inputs' total is known from their native call's first report.
 */
export async function embedPipeline(embed: NativeEmbed, items: Array<NativeInput | VideoSource>,
  onProgress?: (done: number, total: number) => void): Promise<NativeEmbedding[]> {
  const isVideo = (x: NativeInput | VideoSource): x is VideoSource => 'decode' in x;
  const plain = items.filter((x): x is NativeInput => !isVideo(x));
  const videoItems = items.reduce((a, x) => a + (isVideo(x) ? x.items : 0), 0);
  let plainTotal = 0, plainDone = 0, videoDone = 0;
  const report = () => onProgress?.(plainDone + videoDone, plainTotal + videoItems);
  const plainResults = plain.length === 0 ? [] : await embed(plain, (d, t) => {
    plainDone = d;
    plainTotal = t;
    report();
  });
  const out: NativeEmbedding[] = [];
  let next = 0;
  for (const x of items) {
    if (!isVideo(x)) {
      out.push(plainResults[next++]!);
      continue;
    }
    const before = videoDone;
    out.push(await embedVideo(embed, x, (d) => {
      videoDone = before + Math.min(d, x.items);
      report();
    }));
    videoDone = before + x.items;
  }
  return out;
}
