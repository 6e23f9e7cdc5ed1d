// ImageBind-LLM: ask a LLaMA about images, sounds, videos, point clouds… The inputs' ImageBind
// embeddings are mixed (and optionally blended with the kNN cache), turned into a LLaMA-sized vector by
// the bind network and injected into every layer of the session's llama.cpp context.
import { addon } from './binding';
import { ImagebindError } from './errors';
import { EmbedInput, ImageBindEncoder } from './encoder';

export interface LlmLoadOptions {
  /** `<prefix>-llm.gguf` from `imagebind-llm convert llm`. */
  model: string;
  /** `<prefix>-bind.gguf`. */
  bind: string;
  /** Optional kNN cache GGUF (`convert cache`) for cache-enhanced inference. */
  cache?: string;
  /** An encoder GGUF path or a loaded encoder (needed for image/audio/… inputs). */
  encoder?: string | ImageBindEncoder;
  threads?: number;
  /** Layers to run on the device (the last ones; the rest run on the CPU); default -1: all of them. */
  gpuLayers?: number;
  /** "auto" (every GPU, else the CPU), "gpu", "cpu", or a device name from `backends()` ("Vulkan0", "CUDA0"). */
  device?: string;
}

export interface SamplingOptions {
  /** Default 0.1 (upstream); 0 = greedy. */
  temperature?: number;
  /** Default 0.75 (upstream). */
  topP?: number;
  /** Default 0 (off). */
  topK?: number;
  /** Default 1 (off). */
  repeatPenalty?: number;
  repeatLastN?: number;
  seed?: number;
}

export interface CacheOptions {
  /** Neighbours (cache_size, default 10). */
  k?: number;
  /** Softmax factor (cache_t, default 20). */
  t?: number;
  /** Share of the cache in the blend (cache_weight, default 0.5). */
  weight?: number;
}

/** An input for the model: what `ImageBindEncoder.embed` takes, plus a mixing weight (default 1). */
export type AskInput = EmbedInput & { weight?: number };

export interface AskOptions extends SamplingOptions {
  inputs?: AskInput[];
  /** A result of `visual()` to inject instead of `inputs` (reuse one image's vectors across questions). */
  visual?: VisualResult;
  /** Per-kind weights, e.g. { image: 1, audio: 0.5 }; an input's own weight wins. */
  weights?: Partial<Record<string, number>>;
  /** The Alpaca template's Input field. */
  context?: string;
  /** Send the prompt as given, without the template. */
  raw?: boolean;
  maxTokens?: number;
  stop?: string[];
  /** Cache-enhanced inference: true for the defaults, or its parameters. Needs a cache. */
  cache?: boolean | CacheOptions;
  signal?: AbortSignal;
  onToken?: (text: string) => void;
  /** Include the prompt's last-token logits. */
  logits?: boolean;
  /** Include the logits of every generated step (debugging). */
  stepLogits?: boolean;
}

export interface AskResult {
  text: string;
  tokens: number[];
  promptTokens: number[];
  stopReason: 'eos' | 'stop' | 'length' | 'context';
  logits?: Float32Array;
  stepLogits?: Float32Array[];
}

export interface VisualResult {
  embeddings: Float32Array[];
  weights: number[];
  mixed: Float32Array;
  blended: Float32Array;
  hits: Array<{ index: number; score: number }>;
  visual: Float32Array;
  injection: Float32Array;
}

// ref: ImageBind-LLM llama/utils.py format_prompt (Alpaca).
const PROMPT_NO_INPUT = 'Below is an instruction that describes a task. Write a response that appropriately completes the request.\n\n### Instruction:\n{instruction}\n\n### Response:';
const PROMPT_INPUT = 'Below is an instruction that describes a task, paired with an input that provides further context. Write a response that appropriately completes the request.\n\n### Instruction:\n{instruction}\n\n### Input:\n{input}\n\n### Response:';

export function formatPrompt(instruction: string, context?: string): string {
  return context
    ? PROMPT_INPUT.replace('{instruction}', instruction).replace('{input}', context)
    : PROMPT_NO_INPUT.replace('{instruction}', instruction);
}

interface NativeSession {
  setInjection(d: Float32Array | null): void;
  eval(tokens: Int32Array, abort?: unknown): Promise<void>;
  lastLogits(): Float32Array;
  generate(opts: object, onText?: (t: string, id: number) => void, abort?: unknown): Promise<{ tokens: Int32Array; text: string; stopReason: AskResult['stopReason']; stepLogits?: Float32Array }>;
  reset(): void;
  dispose(): void;
  readonly nPast: number;
  readonly nCtx: number;
}

interface NativeLlm {
  info(): LlmInfo;
  tokenize(text: string, bos: boolean): Int32Array;
  detokenize(ids: Int32Array): string;
  visual(embeddings: Float32Array[], weights: number[], cache: CacheOptions | null): Promise<Omit<VisualResult, 'embeddings' | 'weights'>>;
  createSession(opts: SessionOptions): Promise<NativeSession>;
  dispose(): void;
}

export interface SessionOptions {
  /** Tokens the session can hold (prompt + answers of every turn). Default 2048. */
  contextSize?: number;
  /** Prompt tokens evaluated per llama_decode call. Default 512. */
  batchSize?: number;
  /** KV cache type: 'auto' (f32 for an f32 model, else f16), 'f32' or 'f16'. */
  kvType?: 'auto' | 'f32' | 'f16';
  /** Flash attention: 'auto' (off for an f32 model, for exact parity; else llama.cpp's choice), 'on', 'off'. */
  flashAttention?: 'auto' | 'on' | 'off';
}

export interface LlmInfo {
  model: string;
  bind: string;
  cache: string | null;
  nEmbd: number;
  nLayer: number;
  nHead: number;
  nVocab: number;
  nCtxTrain: number;
  inputDim: number;
  queryLayer: number;
  bridge: string;
  cacheSize: number;
  /** Where the offloaded layers run ("CPU" when none is offloaded; with device "auto", every GPU's name). */
  device: string;
  /** Layers offloaded there (nLayer + 1 counts the output layer too). */
  gpuLayers: number;
}

function abortError(): ImagebindError {
  return new ImagebindError('ABORT_ERR', 'The operation was aborted');
}

async function withAbort<T>(signal: AbortSignal | undefined, run: (token: unknown) => Promise<T>): Promise<T> {
  if (signal?.aborted) throw abortError();
  const token = new (addon().AbortToken)();
  const onAbort = () => token.abort();
  signal?.addEventListener('abort', onAbort, { once: true });
  try {
    return await run(token);
  } catch (e) {
    if ((e as { code?: string }).code === 'ERR_ABORTED') throw abortError();
    throw e;
  } finally {
    signal?.removeEventListener('abort', onAbort);
  }
}

function samplingOf(o: AskOptions) {
  return {
    temperature: o.temperature ?? 0.1, topP: o.topP ?? 0.75, topK: o.topK ?? 0, repeatPenalty: o.repeatPenalty ?? 1,
    repeatLastN: o.repeatLastN ?? 64, seed: o.seed, maxTokens: o.maxTokens ?? 256, stop: o.stop ?? [], stepLogits: !!o.stepLogits,
  };
}

export class ImageBindLLM {
  #native: NativeLlm | null;
  #encoder: ImageBindEncoder | null;
  #ownsEncoder: boolean;
  readonly info: LlmInfo;

  private constructor(native: NativeLlm, encoder: ImageBindEncoder | null, owns: boolean) {
    this.#native = native;
    this.#encoder = encoder;
    this.#ownsEncoder = owns;
    this.info = native.info();
    if (encoder) this.#checkEncoder(encoder);
  }

  #checkEncoder(enc: ImageBindEncoder): void {
    const out = enc.info().outDim;
    if (out !== this.info.inputDim) {
      throw new ImagebindError('ERR_MODEL_MISMATCH',
        `the encoder ${enc.path} gives ${out}-d embeddings, but the bind network ${this.info.bind} takes ${this.info.inputDim}-d`);
    }
  }

  /** Loads the LLM, bind network, optional cache (and encoder) off the JS thread. */
  static async load(options: LlmLoadOptions): Promise<ImageBindLLM> {
    if (!options || typeof options.model !== 'string' || typeof options.bind !== 'string') {
      throw new ImagebindError('ERR_INVALID_ARG_TYPE', 'ImageBindLLM.load: expected { model, bind } file paths');
    }
    const gpuLayers = options.gpuLayers ?? -1;
    if (!Number.isInteger(gpuLayers) || gpuLayers < -1 || gpuLayers > 65536) {
      throw new ImagebindError('ERR_INVALID_ARG', `gpuLayers must be an integer from -1 (all) to 65536, but received ${String(options.gpuLayers)}`);
    }
    const native = (await addon().loadLlm({
      model: options.model, bind: options.bind, cache: options.cache, threads: options.threads ?? 4,
      gpuLayers, device: options.device ?? 'auto',
    })) as NativeLlm;
    let encoder: ImageBindEncoder | null = null;
    let owns = false;
    try {
      if (typeof options.encoder === 'string') {
        encoder = await ImageBindEncoder.load(options.encoder, { threads: options.threads, device: options.device });
        owns = true;
      } else if (options.encoder) {
        encoder = options.encoder;
      }
      return new ImageBindLLM(native, encoder, owns);
    } catch (e) {
      native.dispose();
      if (owns) encoder?.dispose();
      throw e;
    }
  }

  #live(): NativeLlm {
    if (!this.#native) throw new ImagebindError('ERR_DISPOSED', 'this model has been disposed');
    return this.#native;
  }

  /** Prompt token ids ([BOS] + SentencePiece ids), as the model sees them. */
  tokenize(text: string, bos = true): number[] {
    return Array.from(this.#live().tokenize(text, bos));
  }

  detokenize(ids: number[]): string {
    return this.#live().detokenize(Int32Array.from(ids));
  }

  /** Embeddings → mixed → (cache) → bind network → injection vectors. */
  async visual(inputs: AskInput[], options: { weights?: AskOptions['weights']; cache?: AskOptions['cache']; signal?: AbortSignal } = {}): Promise<VisualResult> {
    if (!this.#encoder) throw new ImagebindError('ERR_INVALID_ARG', 'multimodal inputs need an encoder (load with { encoder })');
    const embedded = await this.#encoder.embed(inputs, { signal: options.signal });
    const weights = inputs.map((inp, i) => inp.weight ?? options.weights?.[inp.kind] ?? options.weights?.[embedded[i]!.modality] ?? 1);
    const embeddings = embedded.map((e) => e.embedding);
    return this.visualFromEmbeddings(embeddings, weights, options.cache);
  }

  /** The same from ready unit embeddings (e.g. computed earlier). */
  async visualFromEmbeddings(embeddings: Float32Array[], weights: number[], cache?: AskOptions['cache']): Promise<VisualResult> {
    const c = cache ? (cache === true ? {} : cache) : null;
    const r = await this.#live().visual(embeddings, weights, c);
    return { embeddings, weights, ...r };
  }

  /** A conversation: one llama.cpp context whose KV cache is kept between turns. */
  async createSession(options: SessionOptions = {}): Promise<ChatSession> {
    const native = await this.#live().createSession({ contextSize: 2048, batchSize: 512, ...options });
    return new ChatSession(this, native);
  }

  /** One question, one answer (a fresh session each time). */
  async ask(instruction: string, options: AskOptions = {}): Promise<AskResult> {
    const s = await this.createSession();
    try {
      return await s.ask(instruction, options);
    } finally {
      s.dispose();
    }
  }

  /** Streams the answer's text as it is generated. */
  async *stream(instruction: string, options: AskOptions = {}): AsyncGenerator<string, AskResult> {
    const queue: string[] = [];
    let wake: (() => void) | null = null;
    let done = false;
    let result: AskResult | undefined;
    let error: unknown;
    const p = this.ask(instruction, {
      ...options,
      onToken: (t) => { options.onToken?.(t); queue.push(t); wake?.(); },
    }).then((r) => { result = r; }, (e) => { error = e; }).finally(() => { done = true; wake?.(); });
    while (!done || queue.length) {
      if (queue.length) { yield queue.shift()!; continue; }
      await new Promise<void>((r) => { wake = r; });
      wake = null;
    }
    await p;
    if (error) throw error;
    return result!;
  }

  dispose(): void {
    this.#native?.dispose();
    this.#native = null;
    if (this.#ownsEncoder) this.#encoder?.dispose();
    this.#encoder = null;
  }

  [Symbol.dispose](): void {
    this.dispose();
  }

  /** @internal */
  get nativeModel(): NativeLlm {
    return this.#live();
  }
}

export class ChatSession {
  #native: NativeSession | null;
  #turns = 0;
  #visual = false;

  constructor(readonly llm: ImageBindLLM, native: NativeSession) {
    this.#native = native;
  }

  #live(): NativeSession {
    if (!this.#native) throw new ImagebindError('ERR_DISPOSED', 'this session has been disposed');
    return this.#native;
  }

  get tokensUsed(): number {
    return this.#live().nPast;
  }

  /**
   * Asks one turn. Inputs given on the first turn stay injected for the whole conversation; inputs on
   * a later turn replace them and start the conversation over (the KV cache was computed with the old ones).
   */
  async ask(instruction: string, options: AskOptions = {}): Promise<AskResult> {
    const s = this.#live();
    if (typeof instruction !== 'string') throw new ImagebindError('ERR_INVALID_ARG_TYPE', 'ask: expected an instruction string');
    const { signal } = options;
    if (options.visual || (options.inputs && options.inputs.length > 0)) {
      const v = options.visual ?? await this.llm.visual(options.inputs!, { weights: options.weights, cache: options.cache, signal });
      if (this.#turns > 0) s.reset();
      this.#turns = 0;
      s.setInjection(v.injection);
      this.#visual = true;
    } else if (this.#turns === 0 && this.#visual) {
      s.setInjection(null);
      this.#visual = false;
    }
    let prompt: string;
    if (options.raw) prompt = instruction;
    else if (this.#turns === 0) prompt = formatPrompt(instruction, options.context);
    else prompt = `\n\n### Instruction:\n${instruction}${options.context ? `\n\n### Input:\n${options.context}` : ''}\n\n### Response:`;
    const promptTokens = this.llm.tokenize(prompt, this.#turns === 0);
    return withAbort(signal, async (token) => {
      await s.eval(Int32Array.from(promptTokens), token);
      const logits = options.logits ? s.lastLogits() : undefined;
      const r = await s.generate(samplingOf(options), options.onToken ? (t) => options.onToken!(t) : undefined, token);
      this.#turns++;
      const out: AskResult = { text: r.text, tokens: Array.from(r.tokens), promptTokens, stopReason: r.stopReason };
      if (logits) out.logits = logits;
      if (r.stepLogits) {
        const n = this.llm.info.nVocab;
        out.stepLogits = Array.from({ length: r.stepLogits.length / n }, (_, i) => r.stepLogits!.subarray(i * n, (i + 1) * n));
      }
      return out;
    });
  }

  /** Generates more of the current answer (e.g. after maxTokens stopped it), without a new prompt. */
  async continue(options: AskOptions = {}): Promise<AskResult> {
    const s = this.#live();
    if (this.#turns === 0) throw new ImagebindError('ERR_INVALID_STATE', 'continue: ask something first');
    return withAbort(options.signal, async (token) => {
      const r = await s.generate(samplingOf(options), options.onToken ? (t) => options.onToken!(t) : undefined, token);
      return { text: r.text, tokens: Array.from(r.tokens), promptTokens: [], stopReason: r.stopReason };
    });
  }

  /** Forgets the conversation (and its inputs). */
  reset(): void {
    this.#live().reset();
    this.#live().setInjection(null);
    this.#turns = 0;
    this.#visual = false;
  }

  dispose(): void {
    this.#native?.dispose();
    this.#native = null;
  }

  [Symbol.dispose](): void {
    this.dispose();
  }
}

export function loadLlm(options: LlmLoadOptions): Promise<ImageBindLLM> {
  return ImageBindLLM.load(options);
}
