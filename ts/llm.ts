// ImageBind-LLM: ask a LLaMA about images, sounds, videos, point clouds… The inputs' ImageBind
// embeddings are mixed (and optionally blended with the kNN cache), turned into a LLaMA-sized vector by
// the bind network and injected into every layer of the session's llama.cpp context.
import { withAbortToken, type NativeAbortToken } from './abort';
import { addon } from './binding';
import { AbortError, ImageBindError, isAbortError } from './errors';
import { EmbedInput, ImageBindEncoder } from './encoder';
import { resolveModels } from './models';
import { checkDevice, checkInt, checkNumber, checkThreads } from './options';

export interface LlmLoadOptions {
  /**
   * `<prefix>-llm.gguf` from `imagebind-llm convert llm`. With `model` and `bind` both omitted, the
   * model folder gives the whole set (LLM, bind network, encoder, cache): see `models`.
   */
  model?: string;
  /** `<prefix>-bind.gguf`. */
  bind?: string;
  /**
   * The model folder `imagebind-llm pull` filled, used when `model` and `bind` are omitted (default:
   * IMAGEBIND_LLM_MODELS, else the user's cache folder; see `resolveModels`).
   */
  models?: string;
  /** Optional kNN cache GGUF (`convert cache`) for cache-enhanced inference; false: none, even from the folder. */
  cache?: string | false;
  /** An encoder GGUF path or a loaded encoder (needed for image/audio/… inputs); false: none, even from the folder. */
  encoder?: string | ImageBindEncoder | false;
  /** CPU threads (default: the cores this process may use; see `threadLimits()`). */
  threads?: number;
  /** Layers to run on the device (the last ones; the rest run on the CPU); default -1: all of them. */
  gpuLayers?: number;
  /** "auto" (every GPU, else the CPU), "gpu", "cpu", or a device name from `devices()` ("Vulkan0", "CUDA0"). */
  device?: string;
  /** Tokens a session holds by default (prompt + answers of every turn); default 2048. */
  contextSize?: number;
  /** Stops the load (AbortError). */
  signal?: AbortSignal;
  /** Called with the fraction of the LLM's weights read (0 … 1). */
  onProgress?: (fraction: number) => void;
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
  /** Stops the answer within one decode step. */
  signal?: AbortSignal;
  /**
   * When the signal fires during the answer: resolve with the text so far and stopReason 'abort'
   * (true), or reject with an AbortError (false, the default). Either way the partial answer stays
   * in a ChatSession's conversation.
   */
  stopOnAbortSignal?: boolean;
  /** The answer's text as it is generated; the chunks concatenate to exactly `text`. */
  onTextChunk?: (text: string) => void;
  /**
   * The ids of the tokens as they are generated. Deprecated old meaning: without `onTextChunk`,
   * `onToken` still receives the text chunks (as in 0.1) with a deprecation warning; from 0.3 it
   * always receives token ids.
   */
  onToken?: ((tokens: number[]) => void) | ((text: string) => void);
  /** Called as the prompt is evaluated: (tokens done, tokens total). */
  onPromptProgress?: (done: number, total: number) => void;
  /** Include the prompt's last-token logits. */
  logits?: boolean;
  /** Include the logits of every generated step (debugging). */
  stepLogits?: boolean;
}

export interface AskTimings {
  /** From the call to the first generated token (includes encoding the inputs and the prompt). */
  firstTokenMs: number;
  /** Evaluating the prompt. */
  promptMs: number;
  promptTokensPerSecond: number;
  /** From the first to the last generated token. */
  generateMs: number;
  tokensPerSecond: number;
}

export interface AskResult {
  text: string;
  tokens: number[];
  promptTokens: number[];
  stopReason: 'eos' | 'stop' | 'length' | 'context' | 'abort';
  timings: AskTimings;
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

interface NativeGenerated {
  tokens: Int32Array;
  text: string;
  stopReason: AskResult['stopReason'];
  stepLogits?: Float32Array;
}

interface NativeSession {
  setInjection(d: Float32Array | null): void;
  eval(tokens: Int32Array, abort?: NativeAbortToken, onProgress?: (done: number, total: number) => void): Promise<void>;
  lastLogits(): Float32Array;
  generate(opts: object, onText?: (t: string, id: number) => void, abort?: NativeAbortToken): Promise<NativeGenerated>;
  reset(): void;
  /** Forgets everything after the first n tokens of the conversation. */
  truncate(n: number): void;
  dispose(): void;
  readonly nPast: number;
  readonly nCtx: number;
  /** Tokens of the conversation (prompts and answers), one of them possibly not yet in the KV cache. */
  readonly nHistory: number;
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

/** Checks sampling and generation options (the native side trusts them). */
function samplingOf(o: AskOptions) {
  checkNumber(o.temperature, 'temperature', { min: 0 });
  checkNumber(o.topP, 'topP', { min: 0, minOpen: true, max: 1 });
  checkInt(o.topK, 'topK', 0, 1 << 30);
  checkNumber(o.repeatPenalty, 'repeatPenalty', { min: 0, minOpen: true });
  checkInt(o.repeatLastN, 'repeatLastN', 0, 1 << 20);
  checkInt(o.seed, 'seed', 0, 0xffffffff);
  checkInt(o.maxTokens, 'maxTokens', 0, 1 << 20);
  if (o.stop !== undefined && (!Array.isArray(o.stop) || o.stop.some((s) => typeof s !== 'string' || s === ''))) {
    throw new ImageBindError('ERR_INVALID_ARG', 'stop must be an array of non-empty strings');
  }
  return {
    temperature: o.temperature ?? 0.1, topP: o.topP ?? 0.75, topK: o.topK ?? 0, repeatPenalty: o.repeatPenalty ?? 1,
    repeatLastN: o.repeatLastN ?? 64, seed: o.seed, maxTokens: o.maxTokens ?? 256, stop: o.stop ?? [], stepLogits: !!o.stepLogits,
  };
}

function checkCache(c: AskOptions['cache']): CacheOptions | null {
  if (!c) return null;
  if (c === true) return {};
  checkInt(c.k, 'cache.k', 1, 1 << 16);
  checkNumber(c.t, 'cache.t', { min: 0, minOpen: true });
  checkNumber(c.weight, 'cache.weight', { min: 0, max: 1 });
  return c;
}

let warnedOnToken = false;

/**
 * The native text callback → the user's callbacks. A callback that throws stops generation and
 * that error becomes the result.
 */
function textCallbacks(o: AskOptions, onFirst: () => void, stop: () => void) {
  let failure: { error: unknown } | null = null;
  const legacy = o.onToken && !o.onTextChunk;
  if (legacy && !warnedOnToken) {
    warnedOnToken = true;
    process.emitWarning('onToken(text) is deprecated: use onTextChunk(text); from 0.3 onToken receives token ids', 'DeprecationWarning');
  }
  const onText = o.onTextChunk ?? (legacy ? (o.onToken as (t: string) => void) : undefined);
  const onIds = legacy ? undefined : (o.onToken as ((t: number[]) => void) | undefined);
  const cb = (text: string, id: number) => {
    if (id >= 0) onFirst();
    if (failure) return;
    try {
      if (id >= 0) onIds?.([id]);
      if (text) onText?.(text);
    } catch (e) {
      failure = { error: e };
      stop();
    }
  };
  return { cb, failure: () => failure };
}

export class ImageBindLLM {
  #native: NativeLlm | null;
  #encoder: ImageBindEncoder | null;
  #ownsEncoder: boolean;
  #contextSize: number;
  readonly info: LlmInfo;

  private constructor(native: NativeLlm, encoder: ImageBindEncoder | null, owns: boolean, contextSize: number) {
    this.#native = native;
    this.#encoder = encoder;
    this.#ownsEncoder = owns;
    this.#contextSize = contextSize;
    this.info = native.info();
    if (encoder) this.#checkEncoder(encoder);
  }

  #checkEncoder(enc: ImageBindEncoder): void {
    const out = enc.info().outDim;
    if (out !== this.info.inputDim) {
      throw new ImageBindError('ERR_MODEL_MISMATCH',
        `the encoder ${enc.path} gives ${out}-d embeddings, but the bind network ${this.info.bind} takes ${this.info.inputDim}-d`);
    }
  }

  /** Loads the LLM, bind network, optional cache (and encoder) off the JS thread. */
  static async load(options: LlmLoadOptions = {}): Promise<ImageBindLLM> {
    options = withModelFolder(options ?? {});
    const { model, bind } = options;
    if (typeof model !== 'string' || typeof bind !== 'string') {
      throw new ImageBindError('ERR_INVALID_ARG_TYPE', 'ImageBindLLM.load: expected { model, bind } file paths (or neither, for the model folder)');
    }
    const threads = checkThreads(options.threads);
    const device = checkDevice(options.device);
    const gpuLayers = checkInt(options.gpuLayers, 'gpuLayers', -1, 65536) ?? -1;
    const contextSize = checkInt(options.contextSize, 'contextSize', 16, 1 << 20) ?? 2048;
    const native = (await withAbortToken(options.signal, (token) => addon().loadLlm({
      model, bind, cache: options.cache || undefined, threads, gpuLayers, device,
    }, token, options.onProgress))) as NativeLlm;
    let encoder: ImageBindEncoder | null = null;
    let owns = false;
    try {
      if (typeof options.encoder === 'string') {
        encoder = await ImageBindEncoder.load(options.encoder, { threads: options.threads, device: options.device, signal: options.signal });
        owns = true;
      } else if (options.encoder) {
        encoder = options.encoder;
      }
      return new ImageBindLLM(native, encoder, owns, contextSize);
    } catch (e) {
      native.dispose();
      if (owns) encoder?.dispose();
      throw e;
    }
  }

  #live(): NativeLlm {
    if (!this.#native) throw new ImageBindError('ERR_DISPOSED', 'this model has been disposed');
    return this.#native;
  }

  /** The encoder the model was loaded with (null without one). */
  get encoder(): ImageBindEncoder | null {
    return this.#encoder;
  }

  /** Prompt token ids ([BOS] + SentencePiece ids), as the model sees them. */
  tokenize(text: string, bos = true): number[] {
    return Array.from(this.#live().tokenize(text, bos));
  }

  detokenize(ids: number[]): string {
    return this.#live().detokenize(Int32Array.from(ids));
  }

  /** Embeddings → mixed → (cache) → bind network → injection vectors. */
  async visual(inputs: AskInput[], options: {
    weights?: AskOptions['weights']; cache?: AskOptions['cache']; signal?: AbortSignal;
    /** Encoder items (images, clips…) done of total. */
    onProgress?: (done: number, total: number) => void;
  } = {}): Promise<VisualResult> {
    if (!this.#encoder) throw new ImageBindError('ERR_INVALID_ARG', 'multimodal inputs need an encoder (load with { encoder })');
    for (const inp of inputs) checkNumber(inp.weight, `the weight of input '${'path' in inp ? inp.path : inp.kind}'`, { min: 0 });
    for (const [k, w] of Object.entries(options.weights ?? {})) checkNumber(w, `weights.${k}`, { min: 0 });
    const embedded = await this.#encoder.embed(inputs, { signal: options.signal, onProgress: options.onProgress });
    const weights = inputs.map((inp, i) => inp.weight ?? options.weights?.[inp.kind] ?? options.weights?.[embedded[i]!.modality] ?? 1);
    const embeddings = embedded.map((e) => e.embedding);
    return this.visualFromEmbeddings(embeddings, weights, options.cache);
  }

  /** The same from ready unit embeddings (e.g. computed earlier). */
  async visualFromEmbeddings(embeddings: Float32Array[], weights: number[], cache?: AskOptions['cache']): Promise<VisualResult> {
    const r = await this.#live().visual(embeddings, weights, checkCache(cache));
    return { embeddings, weights, ...r };
  }

  /** A conversation: one llama.cpp context whose KV cache is kept between turns. */
  async createSession(options: SessionOptions = {}): Promise<ChatSession> {
    checkInt(options.contextSize, 'contextSize', 16, 1 << 20);
    checkInt(options.batchSize, 'batchSize', 1, 1 << 16);
    const native = await this.#live().createSession({ contextSize: this.#contextSize, batchSize: 512, ...options });
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

  /**
   * Streams the answer's text as it is generated; the generator's return value is the AskResult.
   * Leaving the loop early (break, return, throw) stops generation.
   */
  async *stream(instruction: string, options: AskOptions = {}): AsyncGenerator<string, AskResult | undefined> {
    return yield* streamAnswer((o) => this.ask(instruction, o), options);
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

  async [Symbol.asyncDispose](): Promise<void> {
    this.dispose();
  }

  /** @internal */
  get nativeModel(): NativeLlm {
    return this.#live();
  }
}

/**
 * Runs an ask() as an async iterator of text chunks. The chunks are yielded in order, all of them
 * before the iterator ends; leaving the loop early aborts the answer and waits for it to stop.
 */
async function* streamAnswer(run: (o: AskOptions) => Promise<AskResult>, options: AskOptions): AsyncGenerator<string, AskResult | undefined> {
  const queue: string[] = [];
  let wake: (() => void) | null = null;
  let settled = false;
  let result: AskResult | undefined;
  let error: unknown;
  const inner = new AbortController();
  const outer = options.signal;
  const forward = () => inner.abort(outer?.reason);
  if (outer?.aborted) forward();
  else outer?.addEventListener('abort', forward, { once: true });
  const p = run({
    ...options,
    signal: inner.signal,
    onTextChunk: (t) => { options.onTextChunk?.(t); queue.push(t); wake?.(); },
  }).then((r) => { result = r; }, (e) => { error = e; }).finally(() => { settled = true; wake?.(); });
  try {
    while (!settled || queue.length) {
      if (queue.length) { yield queue.shift()!; continue; }
      await new Promise<void>((r) => { wake = r; });
      wake = null;
    }
    if (error) throw error;
    return result;
  } finally {
    outer?.removeEventListener('abort', forward);
    if (!settled) {
      // The consumer left the loop: stop generating and wait until the native side has stopped.
      inner.abort(new AbortError('the stream was closed'));
      await p;
    }
  }
}

export class ChatSession {
  #native: NativeSession | null;
  #visual = false;

  constructor(readonly llm: ImageBindLLM, native: NativeSession) {
    this.#native = native;
  }

  #live(): NativeSession {
    if (!this.#native) throw new ImageBindError('ERR_DISPOSED', 'this session has been disposed');
    return this.#native;
  }

  /** Tokens in the KV cache. */
  get tokensUsed(): number {
    return this.#live().nPast;
  }

  /** The context size (tokens the session can hold). */
  get contextSize(): number {
    return this.#live().nCtx;
  }

  /** True while the conversation is empty (the next ask() starts it with the full template). */
  get isEmpty(): boolean {
    return this.#live().nHistory === 0;
  }

  /** True when inputs are injected (set by the first ask() with inputs, kept until reset/clear). */
  get hasInputs(): boolean {
    return this.#visual;
  }

  /**
   * Asks one turn. Inputs given on a turn are injected for the rest of the conversation; inputs on a
   * later turn replace them and start the conversation over (the KV cache was computed with the old
   * ones). An aborted turn stays in the conversation with its partial answer (none when the abort
   * came before the first token: then the turn is dropped); `reset()` forgets everything.
   */
  async ask(instruction: string, options: AskOptions = {}): Promise<AskResult> {
    const s = this.#live();
    if (typeof instruction !== 'string') throw new ImageBindError('ERR_INVALID_ARG_TYPE', 'ask: expected an instruction string');
    const sampling = samplingOf(options);
    const started = performance.now();
    if (options.visual || (options.inputs && options.inputs.length > 0)) {
      const v = options.visual ?? await this.llm.visual(options.inputs!, { weights: options.weights, cache: options.cache, signal: options.signal });
      s.reset();
      s.setInjection(v.injection);
      this.#visual = true;
    }
    let prompt: string;
    const first = s.nHistory === 0;
    if (options.raw) prompt = instruction;
    else if (first) prompt = formatPrompt(instruction, options.context);
    else prompt = `\n\n### Instruction:\n${instruction}${options.context ? `\n\n### Input:\n${options.context}` : ''}\n\n### Response:`;
    const promptTokens = this.llm.tokenize(prompt, first);
    return this.#generate(options, sampling, started, promptTokens, async (token) => {
      const t0 = performance.now();
      await s.eval(Int32Array.from(promptTokens), token, options.onPromptProgress);
      return performance.now() - t0;
    });
  }

  /** Generates more of the current answer (e.g. after maxTokens stopped it), without a new prompt. */
  async continue(options: AskOptions = {}): Promise<AskResult> {
    const s = this.#live();
    if (s.nHistory === 0) throw new ImageBindError('ERR_INVALID_STATE', 'continue: ask something first');
    return this.#generate(options, samplingOf(options), performance.now(), [], async () => 0);
  }

  /** Evaluates the prompt, then generates, streaming through the user's callbacks. */
  async #generate(options: AskOptions, sampling: ReturnType<typeof samplingOf>, started: number, promptTokens: number[],
    evalPrompt: (token: NativeAbortToken) => Promise<number>): Promise<AskResult> {
    const s = this.#live();
    const before = s.nHistory;
    let firstAt = 0;
    let token: NativeAbortToken | null = null;
    const calls = textCallbacks(options, () => { firstAt ||= performance.now(); }, () => token?.abort());
    let promptMs = 0;
    let logits: Float32Array | undefined;
    let r: NativeGenerated;
    try {
      r = await withAbortToken(options.signal, async (t) => {
        token = t;
        promptMs = await evalPrompt(t);
        if (options.logits) logits = s.lastLogits();
        return s.generate(sampling, calls.cb, t);
      });
    } catch (e) {
      const f = calls.failure();
      if (f) throw f.error;
      if (isAbortError(e) && options.stopOnAbortSignal && options.signal?.aborted) r = { tokens: new Int32Array(0), text: '', stopReason: 'abort' };
      else throw e;
    }
    // A turn aborted before its first token leaves no trace (its prompt may already be in the cache).
    if (r.stopReason === 'abort' && r.tokens.length === 0) s.truncate(before);
    const f = calls.failure();
    if (f) throw f.error;
    if (r.stopReason === 'abort' && !options.stopOnAbortSignal) throw new AbortError(undefined, { cause: options.signal?.reason });
    const end = performance.now();
    const n = r.tokens.length;
    const out: AskResult = {
      text: r.text, tokens: Array.from(r.tokens), promptTokens, stopReason: r.stopReason,
      timings: {
        firstTokenMs: firstAt ? firstAt - started : end - started,
        promptMs, promptTokensPerSecond: promptMs > 0 ? promptTokens.length / (promptMs / 1000) : 0,
        generateMs: firstAt ? end - firstAt : 0,
        tokensPerSecond: firstAt && n > 1 && end > firstAt ? (n - 1) / ((end - firstAt) / 1000) : 0,
      },
    };
    if (logits) out.logits = logits;
    if (r.stepLogits) {
      const nv = this.llm.info.nVocab;
      out.stepLogits = Array.from({ length: r.stepLogits.length / nv }, (_, i) => r.stepLogits!.subarray(i * nv, (i + 1) * nv));
    }
    return out;
  }

  /** Streams one turn's text; see ImageBindLLM.stream. */
  async *stream(instruction: string, options: AskOptions = {}): AsyncGenerator<string, AskResult | undefined> {
    return yield* streamAnswer((o) => this.ask(instruction, o), options);
  }

  /** Forgets the conversation and its inputs. */
  reset(): void {
    this.#live().reset();
    this.#live().setInjection(null);
    this.#visual = false;
  }

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

/**
 * With `model` and `bind` omitted, the model folder's set: its LLM and bind network, and its encoder
 * and cache unless given (or set to false).
 */
function withModelFolder(options: LlmLoadOptions): LlmLoadOptions {
  if (options.model !== undefined || options.bind !== undefined) return options;
  const set = resolveModels({ models: options.models });
  if (!set.llm || !set.bind) {
    throw new ImageBindError('ERR_MODELS_MISSING', `the model folder ${set.dir} has no LLM: run \`imagebind-llm pull --llama <LLaMA-7B folder>\`, or pass { model, bind }`);
  }
  return { ...options, model: set.llm, bind: set.bind, encoder: options.encoder ?? set.encoder, cache: options.cache ?? set.cache };
}

export function loadLlm(options: LlmLoadOptions = {}): Promise<ImageBindLLM> {
  return ImageBindLLM.load(options);
}
