// The ImageBind encoder API: load an encoder GGUF, embed inputs of any modality into one space.
// File reading and media decoding are asynchronous; preprocessing and the GGML graphs run on a native
// worker thread, so nothing here blocks the event loop.
import path from 'node:path';
import { addon } from './binding';
import { withAbortToken } from './abort';
import { AbortError, ImageBindError, throwIfAborted } from './errors';
import { READ_LIMITS, readRegular } from './files';
import { resolveModels } from './models';
import { checkDevice, checkInt, checkThreads } from './options';
import { decodeAudio, decodeVideoClips } from './media';
import { embedPipeline, type NativeEmbedding, type NativeInput, type VideoSource } from './embed-pipeline';
import type { Modality } from './keys';

/** What a user gives: a kind of input and where its data is. */
export type InputKind = 'image' | 'video' | 'audio' | 'text' | 'depth' | 'thermal' | 'imu' | 'point';

export type EmbedInput =
  | { kind: 'text'; text: string }
  | { kind: Exclude<InputKind, 'text'>; path: string; format?: string }
  | { kind: Exclude<InputKind, 'text'>; data: Uint8Array; name?: string; format?: string }
  /** An already preprocessed model input tensor (the fixtures' `inputs/*.npy` layout). */
  | { kind: 'tensor'; modality: Modality; tensor: { data: Float32Array; shape: number[] }; name?: string };

export interface EmbedOptions {
  signal?: AbortSignal;
  /** Called as encoder items (images, clips, …) finish: (done, total). */
  onProgress?: (done: number, total: number) => void;
  /** Text longer than the context: 'imagebind' (default: keep the end token) or 'imagebind-llm' (cut). */
  truncation?: 'imagebind' | 'imagebind-llm';
  /** Include `raw` (head output) and `scaled` (with the logit scale) in the results. */
  raw?: boolean;
  /** Most items in one graph (default 16). */
  maxBatch?: number;
}

export interface Embedding {
  kind: InputKind | 'tensor';
  modality: Modality;
  /** The input as given: the path, the text, or the buffer's name. */
  input: string;
  /** Unit-length embedding. */
  embedding: Float32Array;
  /** How many encoder items (clips × crops) were averaged. */
  clips: number;
  /** Head output before normalisation, averaged over clips (with `raw: true`). */
  raw?: Float32Array;
  /** Post-processed as upstream: per-clip L2 normalised × the logit scale, averaged (with `raw: true`). */
  scaled?: Float32Array;
}

export interface EncoderLoadOptions {
  /** CPU threads for the graphs (default: the cores this process may use; `threadLimits()`). */
  threads?: number;
  /** "auto" (a GPU when the build has one, else CPU), "cpu", or a ggml device name. */
  device?: string;
  /** CPU: use the weights in place from the memory-mapped file (default); false reads each trunk's at its first use. */
  mmap?: boolean;
  /** Stops the load (AbortError). */
  signal?: AbortSignal;
  /** Called with the fraction of the weights read (0 … 1). */
  onProgress?: (fraction: number) => void;
  /** Without a file: the model folder whose encoder to load (default: IMAGEBIND_LLM_MODELS, else the user's cache folder). */
  models?: string;
}

export interface EncoderInfo {
  path: string;
  name: string;
  fileType: string;
  outDim: number;
  device: string;
  threads: number;
  weightsBytes: number;
  /** Per trunk; `loaded`: its weights are in use (each trunk's are mapped or read at its first use). */
  modalities: Partial<Record<Modality, { embedDim: number; blocks: number; heads: number; tokens: number; logitScale: number; loaded: boolean }>>;
  video?: { imageSize: number; frames: number; clipDuration: number; clipsPerVideo: number };
  point?: { numGroup: number; groupSize: number };
}

interface NativeEncoder {
  info(): EncoderInfo;
  embed(inputs: NativeInput[], opts: { truncation?: string; maxBatch?: number }, abortToken?: unknown,
        onProgress?: (done: number, total: number) => void): Promise<NativeEmbedding[]>;
  dispose(): void;
}


const KIND_MODALITY: Record<InputKind, Modality> = {
  image: 'vision', video: 'vision', audio: 'audio', text: 'text', depth: 'depth', thermal: 'thermal', imu: 'imu', point: 'point',
};

function readInput(p: string, signal?: AbortSignal): Promise<Uint8Array> {
  return readRegular(p, READ_LIMITS.input, 'an input file', signal);
}

function describe(input: EmbedInput): string {
  if (input.kind === 'text') return input.text;
  if ('path' in input) return input.path;
  return input.name ?? '<buffer>';
}

export class ImageBindEncoder {
  #native: NativeEncoder | null;
  readonly path: string;

  private constructor(native: NativeEncoder, p: string) {
    this.#native = native;
    this.path = p;
  }

  /** Loads an encoder GGUF (made by `imagebind-llm convert imagebind`) off the JS thread. */
  static async load(file?: string | EncoderLoadOptions, options: EncoderLoadOptions = {}): Promise<ImageBindEncoder> {
    if (file === undefined || (typeof file === 'object' && file !== null)) {
      // load(), load({ models }): the model folder's encoder.
      options = (file as EncoderLoadOptions | undefined) ?? options;
      const set = resolveModels({ models: options.models });
      if (!set.encoder) throw new ImageBindError('ERR_MODELS_MISSING', `the model folder ${set.dir} has no encoder: run \`imagebind-llm pull\`, or pass a .gguf path`);
      file = set.encoder;
    }
    if (typeof file !== 'string' || !file) throw new ImageBindError('ERR_INVALID_ARG_TYPE', 'ImageBindEncoder.load: expected a .gguf path');
    const threads = checkThreads(options.threads);
    const device = checkDevice(options.device);
    if (options.mmap !== undefined && typeof options.mmap !== 'boolean') throw new ImageBindError('ERR_INVALID_ARG', 'mmap must be true or false');
    const mmap = options.mmap ?? true;
    const native = await withAbortToken(options.signal, (token) =>
      addon().loadEncoder(file, { threads, device, mmap }, token, options.onProgress)) as NativeEncoder;
    return new ImageBindEncoder(native, file);
  }

  get disposed(): boolean {
    return this.#native === null;
  }

  #live(): NativeEncoder {
    if (!this.#native) throw new ImageBindError('ERR_DISPOSED', `the encoder ${this.path} has been disposed`);
    return this.#native;
  }

  info(): EncoderInfo {
    return this.#live().info();
  }

  /** Turns inputs (decoded as needed) into native input descriptors. */
  async #prepare(input: EmbedInput, signal?: AbortSignal): Promise<NativeInput | VideoSource> {
    const name = describe(input);
    if (input.kind === 'tensor') return { modality: input.modality, name, tensor: input.tensor };
    if (input.kind === 'text') {
      if (typeof input.text !== 'string') throw new ImageBindError('ERR_INVALID_ARG_TYPE', 'text input: expected a string');
      return { modality: 'text', name: input.text.slice(0, 80), text: input.text };
    }
    const modality = KIND_MODALITY[input.kind];
    if (!modality) throw new ImageBindError('ERR_INVALID_ARG', `unknown input kind '${(input as { kind: string }).kind}'`);
    const source = 'path' in input ? input.path : input.data;
    const ext = (input.format ?? path.extname(name).slice(1)).toLowerCase();
    if (input.kind === 'audio' && ext !== 'wav') {
      // WAV is read in-process; every other container/codec goes through ffmpeg.
      const audio = await decodeAudio(source, { signal });
      return { modality, name, audio };
    }
    if (input.kind === 'video') {
      // Decoded while its clips are encoded (embed-pipeline.ts); 3 spatial crops per clip.
      const v = this.info().video;
      const clipsPerVideo = v?.clipsPerVideo ?? 5;
      return {
        name,
        items: 3 * clipsPerVideo,
        decode: (onClip) => decodeVideoClips(source, {
          signal, onClip, clipsPerVideo, clipDuration: v?.clipDuration ?? 2, framesPerClip: v?.frames ?? 2,
        }),
      };
    }
    const bytes = 'path' in input ? await readInput(input.path, signal) : input.data;
    if (!(bytes instanceof Uint8Array)) throw new ImageBindError('ERR_INVALID_ARG_TYPE', `${name}: data must be a Uint8Array`);
    const format = input.format ?? (path.extname(name).slice(1).toLowerCase() || undefined);
    return { modality, name, bytes, format };
  }

  /** Embeds inputs of any modalities; results come back in input order. */
  async embed(inputs: EmbedInput[], options: EmbedOptions = {}): Promise<Embedding[]> {
    const native = this.#live();
    if (!Array.isArray(inputs)) throw new ImageBindError('ERR_INVALID_ARG_TYPE', 'embed: expected an array of inputs');
    const { signal } = options;
    checkInt(options.maxBatch, 'maxBatch', 1, 4096);
    throwIfAborted(signal);
    const prepared = await Promise.all(inputs.map((i) => this.#prepare(i, signal)));
    const results = await withAbortToken(signal, (token) =>
      embedPipeline((batch, onProgress) => native.embed(batch, { truncation: options.truncation, maxBatch: options.maxBatch }, token, onProgress),
        prepared, options.onProgress));
    return results.map((r, i) => {
      const input = inputs[i]!;
      const out: Embedding = { kind: input.kind, modality: r.modality, input: describe(input), embedding: r.embedding, clips: r.clips };
      if (options.raw) {
        out.raw = r.raw;
        out.scaled = r.scaled;
      }
      return out;
    });
  }

  /** Frees the model now (otherwise the garbage collector does, eventually). */
  dispose(): void {
    this.#native?.dispose();
    this.#native = null;
  }

  [Symbol.dispose](): void {
    this.dispose();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    this.dispose();
  }
}

/** Loads an encoder GGUF; `loadEncoder()` or `loadEncoder({ models })` loads the model folder's. */
export function loadEncoder(file?: string | EncoderLoadOptions, options?: EncoderLoadOptions): Promise<ImageBindEncoder> {
  return ImageBindEncoder.load(file, options);
}

/** Cosine similarity of two vectors. */
export function cosineSimilarity(a: Float32Array, b: Float32Array): number {
  if (a.length !== b.length) throw new ImageBindError('ERR_INVALID_ARG', `vectors of different lengths (${a.length} and ${b.length})`);
  let dot = 0, na = 0, nb = 0;
  for (let i = 0; i < a.length; i++) {
    dot += a[i]! * b[i]!;
    na += a[i]! * a[i]!;
    nb += b[i]! * b[i]!;
  }
  return na === 0 || nb === 0 ? 0 : dot / Math.sqrt(na * nb);
}

/** rows × cols matrix of cosine similarities. */
export function similarityMatrix(rows: Float32Array[], cols: Float32Array[]): number[][] {
  return rows.map((r) => cols.map((c) => cosineSimilarity(r, c)));
}

/** Zero-shot classification: softmax over `scale ·` cosine similarities of a query to each label. */
export function zeroShot(query: Float32Array, labels: Float32Array[], scale = 100): number[] {
  const s = labels.map((l) => scale * cosineSimilarity(query, l));
  const m = Math.max(...s);
  const e = s.map((x) => Math.exp(x - m));
  const z = e.reduce((a, b) => a + b, 0);
  return e.map((x) => x / z);
}
