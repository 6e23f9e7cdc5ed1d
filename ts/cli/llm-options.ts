// The flags `ask` and `chat` share, and what they turn into: load options and ask options.
import type { Command } from 'commander';
import type { EmbedInput } from '../encoder';
import { AskInput, AskOptions, ImageBindLLM } from '../llm';
import { MEDIA_KINDS, UsageError, collect, inputOptions, intArg, numArg, parseWeights, runtimeOptions, weightOption } from './flags';
import { progress } from './progress';

export interface LlmCliOptions {
  encoder?: string; model?: string; bind?: string; cache?: string; knn?: boolean;
  cacheK?: number; cacheT?: number; cacheWeight?: number; weight: string[];
  temperature?: number; topP?: number; topK?: number; repeatPenalty?: number; seed?: number; maxTokens?: number;
  stop: string[]; input?: string; raw?: boolean; threads?: number; gpuLayers?: number; device: string;
  context?: number; timing?: boolean; json?: boolean;
}

export function llmOptions(cmd: Command, inputs: EmbedInput[]): Command {
  return runtimeOptions(weightOption(inputOptions(cmd, inputs, MEDIA_KINDS)))
    .option('--encoder <gguf>', 'encoder GGUF (needed with --image, --audio, … inputs)')
    .option('--model <gguf>', '<prefix>-llm.gguf from `imagebind-llm convert llm`')
    .option('--bind <gguf>', '<prefix>-bind.gguf from `imagebind-llm convert llm`')
    .option('--cache <gguf>', 'kNN cache GGUF: enables cache-enhanced inference')
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

/** Checks the combination of flags (each alone was checked by its parser). */
export function checkLlmFlags(opts: LlmCliOptions, inputs: EmbedInput[]): void {
  if (!opts.model) throw new UsageError('--model <gguf> is required (the <prefix>-llm.gguf from `imagebind-llm convert llm`)');
  if (!opts.bind) throw new UsageError('--bind <gguf> is required (the <prefix>-bind.gguf from `imagebind-llm convert llm`)');
  if (inputs.length > 0 && !opts.encoder) {
    throw new UsageError(`--${inputs[0]!.kind} needs --encoder <gguf> (the encoder GGUF from \`imagebind-llm convert imagebind\`)`);
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
