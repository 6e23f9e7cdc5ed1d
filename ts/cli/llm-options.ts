// The flags `ask` and `chat` share, and what they turn into: load options and ask options.
import type { Command } from 'commander';
import type { EmbedInput } from '../encoder';
import { AskInput, AskOptions, ImageBindLLM } from '../llm';
import { defaultModelsDir, resolveModels } from '../models';
import { MEDIA_KINDS, UsageError, collect, inputOptions, intArg, numArg, parseWeights, runtimeOptions, weightOption } from './flags';
import { progress } from './progress';

export interface LlmCliOptions {
  encoder?: string; model?: string; bind?: string; cache?: string; knn?: boolean; models?: string;
  cacheK?: number; cacheT?: number; cacheWeight?: number; weight: string[];
  temperature?: number; topP?: number; topK?: number; repeatPenalty?: number; seed?: number; maxTokens?: number;
  stop: string[]; input?: string; raw?: boolean; threads?: number; gpuLayers?: number; device: string;
  context?: number; timing?: boolean; json?: boolean;
}

export function llmOptions(cmd: Command, inputs: EmbedInput[]): Command {
  return runtimeOptions(weightOption(inputOptions(cmd, inputs, MEDIA_KINDS)))
    .option('--models <dir>', `model folder that \`imagebind-llm pull\` filled, used when --model and --bind are omitted (default: IMAGEBIND_LLM_MODELS, else ${defaultModelsDir()})`)
    .option('--encoder <gguf>', 'encoder GGUF (needed with --image, --audio, … inputs; default: the model folder\'s)')
    .option('--model <gguf>', '<prefix>-llm.gguf from `imagebind-llm convert llm` (default: the model folder\'s)')
    .option('--bind <gguf>', '<prefix>-bind.gguf from `imagebind-llm convert llm` (default: the model folder\'s)')
    .option('--cache <gguf>', 'kNN cache GGUF: enables cache-enhanced inference (default: the model folder\'s, if it has one)')
    .option('--no-knn', 'do not use the cache even when given')
    .option('--cache-k <n>', 'cache neighbours (default 10)', intArg(1, 65536))
    .option('--cache-t <t>', 'cache softmax factor (default 20)', numArg({ min: 0, minOpen: true }))
    .option('--cache-weight <w>', 'share of the cache in the blend (default 0.5)', numArg({ min: 0, max: 1 }))
    .option('--temperature <t>', 'sampling temperature (default 0.1; 0 = greedy)', numArg({ min: 0 }))
    .option('--top-p <p>', 'nucleus sampling (default 0.75)', numArg({ min: 0, minOpen: true, max: 1 }))
    .option('--top-k <k>', 'top-k sampling (default 0 = off)', intArg(0, 1 << 30))
    .option('--repeat-penalty <r>', 'repetition penalty (default 1 = off)', numArg({ min: 0, minOpen: true }))
    .option('--seed <n>', 'random seed (default: random)', intArg(0, 0xffffffff))
    .option('--max-tokens <n>', 'most tokens to generate per answer (default 256)', intArg(0, 1 << 20))
    .option('--stop <string>', 'stop string (repeatable)', collect, [] as string[])
    .option('-c, --context <n>', 'context size in tokens: prompt and answers of the whole conversation (default 2048)', intArg(16, 1 << 20))
    .option('--input <text>', "the prompt template's Input field (context for the instruction)")
    .option('--raw', 'send the prompt as given, without the Alpaca template')
    .option('--gpu-layers <n>', 'layers offloaded to the GPU device (GPU builds; default all)', intArg(0, 1 << 20))
    .option('--timing', 'after each answer, print the time to first token and tokens/s on stderr');
}

/**
 * Checks the combination of flags (each alone was checked by its parser) and fills the files from the
 * model folder when --model and --bind are omitted: then the folder gives the whole set (LLM, bind
 * network, encoder, cache), so that files from different conversions are never mixed by default.
 * `encoderAlways`: take the folder's encoder even without inputs (chat adds inputs later).
 */
export function checkLlmFlags(opts: LlmCliOptions, inputs: EmbedInput[], encoderAlways = false): void {
  if (!opts.model !== !opts.bind) {
    throw new UsageError(`${opts.model ? '--model needs --bind' : '--bind needs --model'} <gguf> (the <prefix>-bind.gguf and <prefix>-llm.gguf of one \`imagebind-llm convert llm\`; or omit both to use the model folder)`);
  }
  if (!opts.model) {
    const set = resolveModels({ models: opts.models });
    if (!set.llm || !set.bind) {
      throw new UsageError(`--model and --bind are required: the model folder ${set.dir} has no LLM (run \`imagebind-llm pull --llama <LLaMA-7B folder>\`, or choose another folder with --models)`);
    }
    opts.model = set.llm;
    opts.bind = set.bind;
    if (!opts.encoder && (inputs.length > 0 || encoderAlways)) opts.encoder = set.encoder;
    if (!opts.cache && opts.knn !== false) opts.cache = set.cache;
    if (inputs.length > 0 && !opts.encoder) {
      throw new UsageError(`--${inputs[0]!.kind} needs --encoder <gguf>: the model folder ${set.dir} has no encoder (run \`imagebind-llm pull\`)`);
    }
  }
  if (inputs.length > 0 && !opts.encoder) {
    throw new UsageError(`--${inputs[0]!.kind} needs --encoder <gguf> (the encoder GGUF from \`imagebind-llm convert imagebind\`; or omit --model and --bind to use the model folder)`);
  }
  for (const k of ['cacheK', 'cacheT', 'cacheWeight'] as const) {
    if (opts[k] !== undefined && !opts.cache) throw new UsageError(`--${k.replace(/[A-Z]/g, (c) => '-' + c.toLowerCase())} needs --cache <gguf>`);
  }
  parseWeights(opts.weight);
}

export function askOptionsOf(opts: LlmCliOptions, inputs: EmbedInput[]): AskOptions {
  const cache = opts.cache && opts.knn !== false ? { k: opts.cacheK, t: opts.cacheT, weight: opts.cacheWeight } : false;
  return {
    inputs: inputs as AskInput[], weights: parseWeights(opts.weight), context: opts.input, raw: opts.raw,
    temperature: opts.temperature, topP: opts.topP, topK: opts.topK, repeatPenalty: opts.repeatPenalty, seed: opts.seed,
    maxTokens: opts.maxTokens, stop: opts.stop.length ? opts.stop : undefined, cache,
  };
}

/** Loads the model set, with a progress bar on a terminal when it takes a while. */
export async function loadLlmCli(opts: LlmCliOptions, signal: AbortSignal): Promise<ImageBindLLM> {
  const bar = progress('loading the model', opts);
  try {
    return await ImageBindLLM.load({
      model: opts.model!, bind: opts.bind!, cache: opts.cache, encoder: opts.encoder, threads: opts.threads,
      gpuLayers: opts.gpuLayers, device: opts.device, contextSize: opts.context, signal, onProgress: (f) => bar.update(f),
    });
  } finally {
    bar.stop();
  }
}

export function formatTimings(r: { tokens: number[]; promptTokens: number[]; timings: { firstTokenMs: number; tokensPerSecond: number; promptMs: number; promptTokensPerSecond: number } }): string {
  const t = r.timings;
  return `[time to first token ${(t.firstTokenMs / 1000).toFixed(2)} s · ${r.tokens.length} tokens at ${t.tokensPerSecond.toFixed(1)} tokens/s · ` +
    `prompt ${r.promptTokens.length} tokens in ${(t.promptMs / 1000).toFixed(2)} s]`;
}
