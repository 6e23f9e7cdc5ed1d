// The base LLaMA as `convert llm` sees it, whatever the files: one interface (LlamaWeights) that
// answers in Meta's names and Meta's row order, the Meta-layout reader (params.json,
// consolidated.NN.pth, tokenizer.model), and the config helpers the other layouts share. The Hugging
// Face layout is in llama-hf.ts, the delta in llama-delta.ts, the choice between them in llama-open.ts.
import fs from 'node:fs';
import path from 'node:path';
import { ImageBindError } from '../errors';
import { READ_LIMITS, readRegularSync } from '../files';
import { openTorchCheckpoint, TorchCheckpoint } from '../torch';
import type { SentencePieceVocab } from './sentencepiece';

/** The hyperparameters, in Meta's params.json terms. */
export interface LlamaParams {
  dim: number;
  n_layers: number;
  n_heads: number;
  n_kv_heads?: number;
  multiple_of?: number;
  ffn_dim_multiplier?: number;
  norm_eps: number;
  vocab_size?: number;
  rope_theta?: number;
}

/** The weights of a LLaMA, by Meta's key names, in Meta's layout (torch shapes, row-major). */
export interface LlamaWeights {
  readonly dir: string;
  /** The files, for messages ('…/consolidated.*.pth'). */
  readonly files: string;
  readonly layout: 'meta' | 'hf';
  /** How many weight files were read (shards, plus the delta's). */
  readonly fileCount: number;
  has(key: string): boolean;
  /** The torch shape; an error naming the file when the tensor is missing. */
  shape(key: string): number[];
  /** The tensor as float32. */
  read(key: string): Promise<Float32Array>;
  close(): Promise<void>;
}

export interface OpenedLlama {
  params: LlamaParams;
  vocab: SentencePieceVocab;
  llama: LlamaWeights;
  /** The files the hyperparameters came from (params.json, config.json, the delta's params.json). */
  paramsFile: string;
}

export function fail(code: string, msg: string): never {
  throw new ImageBindError(code, msg);
}

export const fmt = (s: readonly number[]) => `[${s.join(', ')}]`;
export const sameShape = (a: readonly number[], b: readonly number[]) => a.length === b.length && a.every((x, i) => x === b[i]);
const numel = (s: readonly number[]) => s.reduce((a, b) => a * b, 1);

/**
 * How Meta's model-parallel shards split each tensor (llama/model.py: ColumnParallelLinear splits the
 * output rows, RowParallelLinear and ParallelEmbedding the input columns; norms are replicated).
 * Returns the torch axis the shards are concatenated along, or -1 for a replicated tensor.
 */
export function shardAxis(key: string): -1 | 0 | 1 {
  if (key === 'tok_embeddings.weight') return 1;
  if (key === 'output.weight') return 0;
  if (/\.attention\.w[qkv]\.weight$/.test(key) || /\.feed_forward\.w[13]\.weight$/.test(key)) return 0;
  if (/\.attention\.wo\.weight$/.test(key) || /\.feed_forward\.w2\.weight$/.test(key)) return 1;
  return -1;
}

/** One or more Meta shards (consolidated.NN.pth), joined along each tensor's model-parallel axis. */
export class MetaLlama implements LlamaWeights {
  readonly layout = 'meta' as const;
  constructor(readonly dir: string, readonly shards: TorchCheckpoint[]) {}

  get files(): string { return this.shards.length === 1 ? this.shards[0]!.path : path.join(this.dir, 'consolidated.*.pth'); }
  get fileCount(): number { return this.shards.length; }

  has(key: string): boolean { return this.shards[0]!.has(key); }

  /** The full (concatenated) torch shape of a tensor. */
  shape(key: string): number[] {
    const parts = this.shards.map((s, i) => {
      const t = s.get(key);
      if (!t) fail('ERR_CHECKPOINT_MISSING_TENSOR', `${s.path}: missing tensor '${key}'${this.shards.length > 1 ? ` (shard ${i} of ${this.shards.length})` : ''}`);
      return t;
    });
    const first = parts[0]!.shape;
    const axis = this.shards.length === 1 ? -1 : shardAxis(key);
    for (let i = 1; i < parts.length; i++) {
      if (!sameShape(parts[i]!.shape, first)) {
        fail('ERR_CHECKPOINT_INVALID', `${this.shards[i]!.path}: tensor '${key}' has shape ${fmt(parts[i]!.shape)}, but shard 0 has ${fmt(first)}`);
      }
    }
    if (axis < 0) return [...first];
    if (first.length !== 2) fail('ERR_CHECKPOINT_INVALID', `${this.shards[0]!.path}: tensor '${key}' has shape ${fmt(first)}, expected a matrix`);
    const full = [...first];
    full[axis] = first[axis]! * parts.length;
    return full;
  }

  /** The tensor in f32, shards concatenated along their axis. */
  async read(key: string): Promise<Float32Array> {
    const axis = this.shards.length === 1 ? -1 : shardAxis(key);
    if (axis < 0) return this.shards[0]!.readFloat32(key);
    const full = this.shape(key);
    const out = new Float32Array(numel(full));
    const n = this.shards.length;
    for (let s = 0; s < n; s++) {
      const part = await this.shards[s]!.readFloat32(key);
      if (axis === 0) {
        out.set(part, s * part.length);
      } else {
        const rows = full[0]!;
        const cols = full[1]! / n;
        for (let r = 0; r < rows; r++) out.set(part.subarray(r * cols, (r + 1) * cols), r * full[1]! + s * cols);
      }
    }
    return out;
  }

  async close(): Promise<void> {
    await Promise.all(this.shards.map((s) => s.close()));
  }
}

/** The consolidated.NN.pth files of a Meta folder, in order (none missing), opened. */
export async function openMetaShards(dir: string): Promise<MetaLlama> {
  const shardFiles = fs.readdirSync(dir).filter((f) => /^consolidated\.\d+\.pth$/.test(f)).sort((a, b) => parseInt(a.split('.')[1]!, 10) - parseInt(b.split('.')[1]!, 10));
  if (shardFiles.length === 0) fail('ERR_FILE_NOT_FOUND', `${path.join(dir, 'consolidated.00.pth')}: missing (no consolidated.*.pth in ${dir})`);
  shardFiles.forEach((f, i) => {
    if (parseInt(f.split('.')[1]!, 10) !== i) fail('ERR_FILE_NOT_FOUND', `${path.join(dir, `consolidated.${String(i).padStart(2, '0')}.pth`)}: missing (found ${shardFiles.join(', ')})`);
  });
  return openMetaFiles(dir, shardFiles.map((f) => path.join(dir, f)));
}

export async function openMetaFiles(dir: string, files: string[]): Promise<MetaLlama> {
  const shards: TorchCheckpoint[] = [];
  try {
    for (const f of files) shards.push(await openTorchCheckpoint(f));
  } catch (e) {
    await Promise.all(shards.map((s) => s.close()));
    throw e;
  }
  return new MetaLlama(dir, shards);
}

/** tokenizer.model in the folder, or beside it (Meta's release keeps it beside the 7B/13B/… folders). */
export function findTokenizer(dir: string): string {
  const tokFile = path.join(dir, 'tokenizer.model');
  if (fs.existsSync(tokFile)) return tokFile;
  const parent = path.join(dir, '..', 'tokenizer.model');
  if (fs.existsSync(parent)) return parent;
  fail('ERR_FILE_NOT_FOUND', `${tokFile}: missing (nor is there one in the parent folder, as in Meta's release layout)`);
}

export function readJson(file: string): Record<string, unknown> {
  let p: unknown;
  try {
    p = JSON.parse(readRegularSync(file, READ_LIMITS.json, 'a JSON config').toString('utf8'));
  } catch (e) {
    const code = (e as { code?: string }).code;
    if (code && code !== 'ERR_CONFIG_INVALID') fail(code, (e as Error).message);
    fail('ERR_CONFIG_INVALID', `${file}: not valid JSON: ${(e as Error).message}`);
  }
  if (p === null || typeof p !== 'object' || Array.isArray(p)) fail('ERR_CONFIG_INVALID', `${file}: expected a JSON object`);
  return p as Record<string, unknown>;
}

// Upper bounds of the config fields: what llama.cpp and memory allow (LLaMA-65B: dim 8192, 80 layers,
// 64 heads, 22016 hidden), Meta's and Hugging Face's names alike.
const INT_MAX: Record<string, number> = {
  dim: 65536, hidden_size: 65536, n_heads: 1024, num_attention_heads: 1024, n_kv_heads: 1024, num_key_value_heads: 1024,
  n_layers: 512, num_hidden_layers: 512, multiple_of: 65536, intermediate_size: 1 << 20, vocab_size: 1 << 22,
};
const NUM_MAX: Record<string, number> = { norm_eps: 1, rms_norm_eps: 1, ffn_dim_multiplier: 64, rope_theta: 1e12 };

/** A positive integer field of a JSON config, within its bound (undefined when optional and absent or null). */
export function configInt(file: string, p: Record<string, unknown>, k: string, optional = false): number | undefined {
  const v = p[k];
  if ((v === undefined || v === null) && optional) return undefined;
  const max = INT_MAX[k] ?? 2 ** 31 - 1;
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 1 || v > max) {
    fail('ERR_CONFIG_INVALID', `${file}: '${k}' must be an integer from 1 to ${max} (got ${JSON.stringify(v)})`);
  }
  return v;
}

/** A positive finite number field of a JSON config, within its bound. */
export function configNumber(file: string, p: Record<string, unknown>, k: string, optional = false): number | undefined {
  const v = p[k];
  if ((v === undefined || v === null) && optional) return undefined;
  const max = NUM_MAX[k] ?? Number.MAX_VALUE;
  if (typeof v !== 'number' || !Number.isFinite(v) || !(v > 0) || v > max) {
    fail('ERR_CONFIG_INVALID', `${file}: '${k}' must be a number in (0, ${max === Number.MAX_VALUE ? '∞' : max}] (got ${JSON.stringify(v) ?? String(v)})`);
  }
  return v;
}

/** Checks the relations between the sizes (head counts divide, and so on). */
export function checkParams(file: string, p: LlamaParams): LlamaParams {
  if (p.dim % p.n_heads !== 0) fail('ERR_CONFIG_INVALID', `${file}: dim ${p.dim} is not divisible by n_heads ${p.n_heads}`);
  if (p.n_kv_heads !== undefined && p.n_heads % p.n_kv_heads !== 0) fail('ERR_CONFIG_INVALID', `${file}: n_heads ${p.n_heads} is not divisible by n_kv_heads ${p.n_kv_heads}`);
  return p;
}

/** Meta's params.json. */
export function readParams(file: string): LlamaParams {
  const p = readJson(file);
  const mult = configNumber(file, p, 'ffn_dim_multiplier', true);
  return checkParams(file, {
    dim: configInt(file, p, 'dim')!, n_heads: configInt(file, p, 'n_heads')!, n_kv_heads: configInt(file, p, 'n_kv_heads', true),
    n_layers: configInt(file, p, 'n_layers')!, multiple_of: configInt(file, p, 'multiple_of', true),
    ffn_dim_multiplier: mult, norm_eps: configNumber(file, p, 'norm_eps')!,
    rope_theta: configNumber(file, p, 'rope_theta', true),
    vocab_size: typeof p.vocab_size === 'number' ? p.vocab_size : undefined,
  });
}

/** FFN hidden size by Meta's rule: int(2·4·dim/3), times ffn_dim_multiplier, rounded up to multiple_of. */
export function ffnHidden(dim: number, multipleOf: number, ffnDimMultiplier?: number): number {
  let h = Math.trunc((2 * 4 * dim) / 3);
  if (ffnDimMultiplier !== undefined) h = Math.trunc(ffnDimMultiplier * h);
  return multipleOf * Math.ceil(h / multipleOf);
}
