// `imagebind-llm convert llm`: a LLaMA (Meta's or Hugging Face's layout, optionally plus a delta: see
// llama-open.ts) + the released ImageBind-LLM adapter checkpoint → two GGUFs:
//
//   <prefix>-llm.gguf   an ordinary llama.cpp `llama` model with the adapter merged in: LoRA deltas
//                       added to the weights (W' = W + l2·l1, no scaling), the adapter's biases as
//                       llama.cpp's optional attn_q/attn_output/ffn_* biases, and the adapter's norm
//                       weights in place of the base ones. Stock llama.cpp loads it as a text model.
//   <prefix>-bind.gguf  the bind network (bridge), prefix queries, gates and the wv LoRA factors: what
//                       the image injection needs, and no second copy of the model (see planBind).
//
// Everything is declared up front (shapes checked against the hyperparameters, the tokenizer and each other,
// so a wrong adapter fails before anything is written), then streamed one tensor at a time: memory
// stays near the largest single tensor (in f32), not the checkpoint.
//
// Layout facts (fixtures README §6, Meta's llama/model.py, llama.cpp src/models/llama.cpp):
// - Meta's wq/wk rows are already in the interleaved-pairs RoPE layout llama.cpp's LLAMA_ROPE_TYPE_NORM
//   uses, so no q/k permutation (that permutation only undoes Hugging Face's rotate-half layout).
// - PyTorch (out, in) row-major = ggml [in, out] with the same bytes: matrices are copied as is.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Worker } from 'node:worker_threads';
import { addon } from '../binding';
import { ImageBindError, throwIfAborted } from '../errors';
import { OutputFiles, conversionId, writeTensorFrom } from './output';
import { READ_LIMITS, readRegularSync } from '../files';
import { ARCH_BIND, ARCH_LLAMA, BIND_KEY, BIND_TN, KEY } from '../keys';
import type { GgufMetaEntry } from '../native';
import { openTorchCheckpoint, TorchCheckpoint, TorchTensorInfo } from '../torch';
import { openLlama } from './llama-open';
import { ffnHidden, fmt, LlamaParams, LlamaWeights, sameShape } from './llama-source';
import { sentencePieceMetadata, SentencePieceVocab } from './sentencepiece';

export { ffnHidden, shardAxis } from './llama-source';

export type LlmType = 'f32' | 'f16' | 'q8_0' | 'q4_0' | 'q4_k_m';
export type BindType = 'f32' | 'f16';
export const LLM_TYPES: readonly LlmType[] = ['f32', 'f16', 'q8_0', 'q4_0', 'q4_k_m'];

export interface ConvertLlmOptions {
  /**
   * The base LLaMA folder: Meta's layout (params.json, tokenizer.model, consolidated.NN.pth) or Hugging
   * Face's (config.json, tokenizer.model, *.safetensors or pytorch_model*.bin with their index; F16, BF16
   * or F32).
   */
  llamaDir: string;
  /**
   * A delta added to the base on the fly, as upstream makes Open-Chinese-LLaMA-7B (the released 7B.pth
   * was trained on it): a folder with params.json and consolidated.NN.pth, or one .pth file. Each
   * tensor is (base + delta) in f32 rounded to f16, and the delta's params.json is used.
   */
  delta?: string;
  /** The ImageBind-LLM adapter checkpoint ({'model': state_dict}). */
  adapter: string;
  /** Output prefix: writes `<prefix>-llm.gguf` and `<prefix>-bind.gguf`. */
  outPrefix: string;
  /** LLM weight type (norms and biases stay f32). Default f16. */
  type?: LlmType;
  /** Bind GGUF matrix type. Default f32 (the file is small). */
  bindType?: BindType;
  /** llama.context_length; default 512 (upstream's max_seq_len). */
  contextLength?: number;
  name?: string;
  onProgress?: (done: number, total: number, tensor: string) => void;
  signal?: AbortSignal;
}

export interface ConvertLlmResult {
  llm: string;
  bind: string;
  type: LlmType;
  bindType: BindType;
  vocabSize: number;
  layers: number;
  dim: number;
  queryLayer: number;
  loraRank: number;
  bridge: 'rmsnorm' | 'layernorm';
  /** Weight files read (base shards, plus the delta's). */
  shards: number;
  /** The base folder's layout. */
  layout: 'meta' | 'hf';
  /** Whether a delta was added. */
  delta: boolean;
  tensors: { llm: number; bind: number };
  bytes: { llm: number; bind: number };
}

interface TensorPlan {
  name: string;
  shape: number[]; // ggml order
  type: string; // ggml type name
  produce: () => Promise<Float32Array>;
}

// llama.cpp's llama_ftype values (include/llama.h) for general.file_type.
const FTYPE: Record<LlmType, number> = { f32: 0, f16: 1, q4_0: 2, q8_0: 7, q4_k_m: 15 };
const GGML_QNT_VERSION = 2;

function fail(code: string, msg: string): never {
  throw new ImageBindError(code, msg);
}

const numel = (s: readonly number[]) => s.reduce((a, b) => a * b, 1);

// --- tensor types -----------------------------------------------------------------------------

type Role = 'token_embd' | 'output' | 'attn_q' | 'attn_k' | 'attn_v' | 'attn_output' | 'ffn_gate' | 'ffn_down' | 'ffn_up';

// llama.cpp src/llama-quant.cpp: the layers that get more bits in the *_M mixes.
function useMoreBits(i: number, n: number): boolean {
  const e = Math.trunc(n / 8);
  return i < e || i >= Math.trunc((7 * n) / 8) || (i - e) % 3 === 2;
}

/**
 * The row-length fallback of llama.cpp's tensor_type_fallback: a row (ne[0]) must be a whole number of
 * blocks (256 values for k-quants, 32 for q4_0/q5_0/q8_0). q4_K falls back to q5_0, q6_K to q8_0 (the
 * 32-block types of about the same size); a row that 32 does not divide either is stored f16.
 */
function fitRow(t: string, rowLen: number): string {
  const block = t.endsWith('_K') ? 256 : t === 'f32' || t === 'f16' ? 1 : 32;
  if (rowLen % block === 0) return t;
  const next = t === 'q4_K' ? 'q5_0' : t === 'q6_K' ? 'q8_0' : t === 'q5_K' ? 'q5_1' : t;
  return rowLen % 32 === 0 ? next : 'f16';
}

/**
 * Type of one LLM matrix. f32/f16/q8_0/q4_0 store every matrix in that type, except that, as
 * llama-quantize does, output.weight gets q6_K under q4_0 (q8_0 when its rows do not fit 256-blocks).
 * q4_k_m is llama.cpp's Q4_K_M recipe (llama_tensor_get_type_impl): q4_K by default (token_embd
 * included); output.weight q6_K; attn_v and ffn_down q6_K in the layers useMoreBits picks (the first
 * and last eighth and every third layer between: about half), q4_K elsewhere; on a 70B-shaped model
 * (80 layers with grouped KV heads) attn_v q5_K at least.
 */
export function llmTensorType(type: LlmType, role: Role, layer: number, nLayers: number, rowLen: number, gqa = false): string {
  if (type === 'f32' || type === 'f16') return type;
  let t: string;
  if (role === 'output') t = type === 'q8_0' || rowLen % (type === 'q4_k_m' ? 256 : 32) !== 0 ? 'q8_0' : 'q6_K';
  else if (type === 'q4_k_m') {
    t = (role === 'attn_v' || role === 'ffn_down') && useMoreBits(layer, nLayers) ? 'q6_K' : 'q4_K';
    if (role === 'attn_v' && nLayers === 80 && gqa && t === 'q4_K') t = 'q5_K';
  } else t = type;
  return fitRow(t, rowLen);
}

// --- the adapter ---------------------------------------------------------------------------------

class Adapter {
  readonly root: string; // 'model.' when wrapped in {'model': ...}
  readonly llm: string; // root + 'llama.' (or the old 'llma.')
  constructor(readonly ckpt: TorchCheckpoint, readonly file: string, readonly llamaDir: string) {
    const pq = ckpt.tensors().find((t) => t.name === 'prefix_query.weight' || t.name.endsWith('.prefix_query.weight'));
    if (!pq) {
      const keys = ckpt.tensors().slice(0, 3).map((t) => `'${t.name}'`).join(', ');
      fail('ERR_CHECKPOINT_MISSING_TENSOR', `${file}: missing tensor 'model.prefix_query.weight': not an ImageBind-LLM adapter checkpoint${keys ? ` (it starts with ${keys})` : ''}`);
    }
    this.root = pq.name.slice(0, -'prefix_query.weight'.length);
    const llm = ['llama.', 'llma.'].find((p) => ckpt.has(`${this.root}${p}norm.weight`) || ckpt.has(`${this.root}${p}layers.0.attention.gate`));
    if (!llm) fail('ERR_CHECKPOINT_MISSING_TENSOR', `${file}: missing tensor '${this.root}llama.norm.weight' (no 'llama.*' or 'llma.*' keys)`);
    this.llm = this.root + llm;
  }

  has(key: string): boolean { return this.ckpt.has(key); }

  info(key: string): TorchTensorInfo {
    const t = this.ckpt.get(key);
    if (!t) fail('ERR_CHECKPOINT_MISSING_TENSOR', `${this.file}: missing tensor '${key}'`);
    return t;
  }

  /** The tensor's info, after checking it has `shape` (an adapter for another model size fails here). */
  expect(key: string, shape: number[], what = ''): TorchTensorInfo {
    const t = this.info(key);
    if (!sameShape(t.shape, shape)) {
      fail('ERR_SHAPE_MISMATCH', `${this.file}: tensor '${key}' has shape ${fmt(t.shape)}, but the LLaMA in ${this.llamaDir} needs ${fmt(shape)}${what}: is the adapter for another model size?`);
    }
    return t;
  }

  read(key: string): Promise<Float32Array> { return this.ckpt.readFloat32(key); }
}

// --- LoRA merge, off the JS thread --------------------------------------------------------------

/**
 * W[rows, cols] += B[rows, r] · A[r, cols] in place, accumulated in float64 and rounded once to f32.
 * Two rows and four ranks per pass, so each A value loaded serves eight multiply-adds (about 3× the
 * plain loop in V8). Self-contained: its source also runs in the merge workers (MERGE_WORKER).
 */
export function addLowRank(w: Float32Array, rows: number, cols: number, b: Float32Array, a: Float32Array, r: number): void {
  const A = Float64Array.from(a);
  const acc0 = new Float64Array(cols);
  const acc1 = new Float64Array(cols);
  for (let o = 0; o < rows; o += 2) {
    const two = o + 1 < rows;
    acc0.fill(0);
    acc1.fill(0);
    const b0 = o * r;
    const b1 = two ? b0 + r : b0;
    let k = 0;
    for (; k + 3 < r; k += 4) {
      const s0 = b[b0 + k]!, s1 = b[b0 + k + 1]!, s2 = b[b0 + k + 2]!, s3 = b[b0 + k + 3]!;
      const t0 = b[b1 + k]!, t1 = b[b1 + k + 1]!, t2 = b[b1 + k + 2]!, t3 = b[b1 + k + 3]!;
      const a0 = k * cols, a1 = a0 + cols, a2 = a1 + cols, a3 = a2 + cols;
      for (let i = 0; i < cols; i++) {
        const x0 = A[a0 + i]!, x1 = A[a1 + i]!, x2 = A[a2 + i]!, x3 = A[a3 + i]!;
        acc0[i]! += s0 * x0 + s1 * x1 + s2 * x2 + s3 * x3;
        acc1[i]! += t0 * x0 + t1 * x1 + t2 * x2 + t3 * x3;
      }
    }
    for (; k < r; k++) {
      const s0 = b[b0 + k]!, t0 = b[b1 + k]!;
      const a0 = k * cols;
      for (let i = 0; i < cols; i++) {
        acc0[i]! += s0 * A[a0 + i]!;
        acc1[i]! += t0 * A[a0 + i]!;
      }
    }
    const w0 = o * cols;
    for (let i = 0; i < cols; i++) w[w0 + i]! += acc0[i]!;
    if (two) for (let i = 0; i < cols; i++) w[w0 + cols + i]! += acc1[i]!;
  }
}

// The merge runs in worker threads (row ranges in parallel) so the event loop stays free during a 7B
// conversion; the workers run addLowRank's own compiled source.
const MERGE_WORKER = `
const { parentPort } = require('node:worker_threads');
const addLowRank = ${addLowRank.toString()};
parentPort.on('message', (m) => {
  addLowRank(new Float32Array(m.w), m.rows, m.cols, new Float32Array(m.b), new Float32Array(m.a), m.r);
  parentPort.postMessage({ id: m.id, w: m.w }, [m.w]);
});
`;

export class LoraMerger {
  private workers: Worker[] = [];
  private nextId = 0;
  private pending = new Map<number, { resolve: (w: ArrayBuffer) => void; reject: (e: Error) => void }>();

  /** W += B·A in place (W [rows, cols] row-major, B [rows, r], A [r, cols]). */
  async merge(w: Float32Array, rows: number, cols: number, b: Float32Array, a: Float32Array, r: number): Promise<void> {
    // Small matrices: a worker round trip costs more than the arithmetic.
    if (rows * cols * r < 1 << 22) {
      addLowRank(w, rows, cols, b, a, r);
      return;
    }
    const n = Math.max(1, Math.min(os.availableParallelism?.() ?? os.cpus().length, 8, Math.ceil(rows / 64)));
    while (this.workers.length < n) this.spawn();
    const per = Math.ceil(rows / n);
    const jobs: Promise<void>[] = [];
    for (let j = 0; j < n; j++) {
      const r0 = j * per;
      const r1 = Math.min(rows, r0 + per);
      if (r1 <= r0) break;
      const ws = w.slice(r0 * cols, r1 * cols);
      const bs = b.slice(r0 * r, r1 * r);
      const as = a.slice();
      const id = this.nextId++;
      jobs.push(new Promise<ArrayBuffer>((resolve, reject) => {
        this.pending.set(id, { resolve, reject });
        this.workers[j]!.postMessage({ id, w: ws.buffer, b: bs.buffer, a: as.buffer, rows: r1 - r0, cols, r }, [ws.buffer, bs.buffer, as.buffer]);
      }).then((buf) => { w.set(new Float32Array(buf), r0 * cols); }));
    }
    await Promise.all(jobs);
  }

  private spawn(): void {
    const wk = new Worker(MERGE_WORKER, { eval: true });
    wk.on('message', (m: { id: number; w: ArrayBuffer }) => {
      const p = this.pending.get(m.id);
      this.pending.delete(m.id);
      p?.resolve(m.w);
    });
    wk.on('error', (e) => {
      for (const p of this.pending.values()) p.reject(e);
      this.pending.clear();
    });
    this.workers.push(wk);
  }

  async close(): Promise<void> {
    const ws = this.workers;
    this.workers = [];
    await Promise.all(ws.map((w) => w.terminate()));
  }
}

// --- planning -------------------------------------------------------------------------------------

interface Dims {
  dim: number; nLayers: number; nHeads: number; nKv: number; headDim: number; ffn: number; vocab: number;
  rank: number; queryLayer: number; bindIn: number; bindHidden: number; bridge: 'rmsnorm' | 'layernorm'; bridgeBlocks: number;
  wBias: boolean;
}

const LAYER_MATRICES = [
  // [Meta key, adapter LoRA name, adapter bias (or null), llama.cpp name, role]
  ['attention.wq', 'attention.lora_wq', 'attention.wq.bias', 'attn_q', 'attn_q'],
  ['attention.wk', 'attention.lora_wk', null, 'attn_k', 'attn_k'],
  ['attention.wv', 'attention.lora_wv', null, 'attn_v', 'attn_v'],
  ['attention.wo', 'attention.lora_wo', 'attention.wo.bias', 'attn_output', 'attn_output'],
  ['feed_forward.w1', 'feed_forward.lora_w1', 'feed_forward.w1.bias', 'ffn_gate', 'ffn_gate'],
  ['feed_forward.w2', 'feed_forward.lora_w2', 'feed_forward.w2.bias', 'ffn_down', 'ffn_down'],
  ['feed_forward.w3', 'feed_forward.lora_w3', 'feed_forward.w3.bias', 'ffn_up', 'ffn_up'],
] as const;

function checkDims(params: LlamaParams, paramsFile: string, vocab: SentencePieceVocab, llama: LlamaWeights, ad: Adapter): Dims {
  const pf = path.basename(paramsFile);
  const dim = params.dim;
  const nLayers = params.n_layers;
  const nHeads = params.n_heads;
  const nKv = params.n_kv_heads ?? nHeads;
  const headDim = dim / nHeads;
  const V = vocab.tokens.length;
  const base = (key: string, shape: number[]) => {
    const s = llama.shape(key);
    if (!sameShape(s, shape)) fail('ERR_SHAPE_MISMATCH', `${llama.files}: tensor '${key}' has shape ${fmt(s)}, but ${pf} and tokenizer.model (dim ${dim}, ${nHeads} heads, vocabulary ${V}) need ${fmt(shape)}`);
  };
  const embd = llama.shape('tok_embeddings.weight');
  if (embd[0] !== V) fail('ERR_SHAPE_MISMATCH', `${llama.files}: tok_embeddings.weight has ${embd[0]} rows, but ${path.join(llama.dir, 'tokenizer.model')} has ${V} pieces`);
  if (params.vocab_size !== undefined && params.vocab_size > 0 && params.vocab_size !== V) {
    fail('ERR_CONFIG_INVALID', `${paramsFile}: vocab_size ${params.vocab_size} differs from the tokenizer's ${V} pieces`);
  }
  base('tok_embeddings.weight', [V, dim]);
  base('output.weight', [V, dim]);
  base('norm.weight', [dim]);
  const ffn = llama.shape('layers.0.feed_forward.w1.weight')[0]!;
  if (params.multiple_of !== undefined) {
    const want = ffnHidden(dim, params.multiple_of, params.ffn_dim_multiplier ?? undefined);
    if (want !== ffn) fail('ERR_SHAPE_MISMATCH', `${llama.files}: layers.0.feed_forward.w1.weight has ${ffn} rows, but ${pf} (dim ${dim}, multiple_of ${params.multiple_of}) gives an FFN of ${want}`);
  }
  const outOf = { wq: nHeads * headDim, wk: nKv * headDim, wv: nKv * headDim, wo: dim, w1: ffn, w2: dim, w3: ffn } as Record<string, number>;
  const inOf = { wq: dim, wk: dim, wv: dim, wo: nHeads * headDim, w1: dim, w2: ffn, w3: dim } as Record<string, number>;
  for (let l = 0; l < nLayers; l++) {
    for (const [k] of LAYER_MATRICES) {
      const w = k.split('.')[1]!;
      base(`layers.${l}.${k}.weight`, [outOf[w]!, inOf[w]!]);
    }
  }
  if (llama.has(`layers.${nLayers}.attention.wq.weight`)) fail('ERR_CONFIG_INVALID', `${llama.files}: has more than ${pf}'s ${nLayers} layers`);

  // Adapter: what it trains is detected from layer 0, then required in every layer.
  const L = ad.llm;
  const rank = ad.has(`${L}layers.0.attention.lora_wq_l1.weight`) ? ad.info(`${L}layers.0.attention.lora_wq_l1.weight`).shape[0]! : 0;
  const wBias = ad.has(`${L}layers.0.attention.wq.bias`);
  for (let l = 0; l < nLayers; l++) {
    const p = `${L}layers.${l}.`;
    ad.expect(`${p}attention_norm.weight`, [dim]);
    ad.expect(`${p}ffn_norm.weight`, [dim]);
    const g = ad.info(`${p}attention.gate`);
    if (g.numel !== nHeads && g.numel !== 1) fail('ERR_SHAPE_MISMATCH', `${ad.file}: tensor '${p}attention.gate' has shape ${fmt(g.shape)}, but the LLaMA in ${llama.dir} has ${nHeads} heads (expected [1, ${nHeads}, 1, 1]): is the adapter for another model size?`);
    for (const [k, lora, bias] of LAYER_MATRICES) {
      const w = k.split('.')[1]!;
      if (rank > 0) {
        ad.expect(`${p}${lora}_l1.weight`, [rank, inOf[w]!]);
        ad.expect(`${p}${lora}_l2.weight`, [outOf[w]!, rank]);
      }
      if (wBias && bias) ad.expect(`${p}${bias}`, [outOf[w]!]);
    }
  }
  if (ad.has(`${L}layers.${nLayers}.attention_norm.weight`) || ad.has(`${L}layers.${nLayers}.attention.gate`)) {
    let n = nLayers;
    while (ad.has(`${L}layers.${n}.attention_norm.weight`) || ad.has(`${L}layers.${n}.attention.gate`)) n++;
    fail('ERR_SHAPE_MISMATCH', `${ad.file}: the adapter has ${n} layers ('${L}layers.${n - 1}.*'), but the LLaMA in ${llama.dir} has ${nLayers}: is the adapter for another model size?`);
  }
  ad.expect(`${L}norm.weight`, [dim]);

  const pq = ad.info(`${ad.root}prefix_query.weight`);
  if (pq.shape.length !== 2 || pq.shape[1] !== dim) ad.expect(`${ad.root}prefix_query.weight`, [pq.shape[0] ?? 1, dim]);
  const queryLayer = pq.shape[0]!;
  if (queryLayer < 1 || queryLayer > nLayers) fail('ERR_SHAPE_MISMATCH', `${ad.file}: prefix_query.weight has ${queryLayer} rows (query layers), but the LLaMA in ${llama.dir} has ${nLayers} layers`);

  // Bridge: image_bind_proj, then blocks image_bind_{norm,f1,f2,f3}_<i> for i = 1, 2, ...
  const R = ad.root;
  const proj = ad.info(`${R}image_bind_proj.weight`);
  if (proj.shape.length !== 2 || proj.shape[0] !== dim) ad.expect(`${R}image_bind_proj.weight`, [dim, proj.shape[1] ?? 1024]);
  const bindIn = proj.shape[1]!;
  ad.expect(`${R}image_bind_proj.bias`, [dim]);
  let bridgeBlocks = 0;
  while (ad.has(`${R}image_bind_norm_${bridgeBlocks + 1}.weight`)) bridgeBlocks++;
  if (bridgeBlocks === 0) ad.info(`${R}image_bind_norm_1.weight`);
  // The beta release's "legacy bridge": nn.LayerNorm (weight + bias) and f1/f2/f3 with biases.
  const bridge = ad.has(`${R}image_bind_norm_1.bias`) ? 'layernorm' : 'rmsnorm';
  const f1 = ad.info(`${R}image_bind_f1_1.weight`);
  const bindHidden = f1.shape[0]!;
  for (let i = 1; i <= bridgeBlocks; i++) {
    ad.expect(`${R}image_bind_norm_${i}.weight`, [dim]);
    ad.expect(`${R}image_bind_f1_${i}.weight`, [bindHidden, dim]);
    ad.expect(`${R}image_bind_f2_${i}.weight`, [dim, bindHidden]);
    ad.expect(`${R}image_bind_f3_${i}.weight`, [bindHidden, dim]);
    if (bridge === 'layernorm') {
      ad.expect(`${R}image_bind_norm_${i}.bias`, [dim]);
      ad.expect(`${R}image_bind_f1_${i}.bias`, [bindHidden]);
      ad.expect(`${R}image_bind_f2_${i}.bias`, [dim]);
      ad.expect(`${R}image_bind_f3_${i}.bias`, [bindHidden]);
    }
  }
  return { dim, nLayers, nHeads, nKv, headDim, ffn, vocab: V, rank, queryLayer, bindIn, bindHidden, bridge, bridgeBlocks, wBias };
}

function planLlm(d: Dims, type: LlmType, llama: LlamaWeights, ad: Adapter, merger: LoraMerger): TensorPlan[] {
  const plans: TensorPlan[] = [];
  const gqa = d.nKv !== d.nHeads;
  const vec = (name: string, n: number, produce: () => Promise<Float32Array>) => plans.push({ name, shape: [n], type: 'f32', produce });
  plans.push({
    name: 'token_embd.weight', shape: [d.dim, d.vocab], type: llmTensorType(type, 'token_embd', 0, d.nLayers, d.dim),
    produce: () => llama.read('tok_embeddings.weight'),
  });
  for (let l = 0; l < d.nLayers; l++) {
    const p = `${ad.llm}layers.${l}.`;
    // The adapter's norm weights replace the base model's (they were fine-tuned).
    vec(`blk.${l}.attn_norm.weight`, d.dim, () => ad.read(`${p}attention_norm.weight`));
    for (const [k, lora, bias, name, role] of LAYER_MATRICES) {
      const [out, inp] = llama.shape(`layers.${l}.${k}.weight`) as [number, number];
      plans.push({
        name: `blk.${l}.${name}.weight`, shape: [inp, out], type: llmTensorType(type, role, l, d.nLayers, inp, gqa),
        produce: async () => {
          const w = await llama.read(`layers.${l}.${k}.weight`);
          if (d.rank > 0) {
            const [a, b] = await Promise.all([ad.read(`${p}${lora}_l1.weight`), ad.read(`${p}${lora}_l2.weight`)]);
            await merger.merge(w, out, inp, b, a, d.rank);
          }
          return w;
        },
      });
      if (d.wBias && bias) vec(`blk.${l}.${name}.bias`, out, () => ad.read(`${p}${bias}`));
      if (name === 'attn_output') vec(`blk.${l}.ffn_norm.weight`, d.dim, () => ad.read(`${p}ffn_norm.weight`));
    }
  }
  vec('output_norm.weight', d.dim, () => ad.read(`${ad.llm}norm.weight`));
  plans.push({
    name: 'output.weight', shape: [d.dim, d.vocab], type: llmTensorType(type, 'output', 0, d.nLayers, d.dim),
    produce: () => llama.read('output.weight'),
  });
  return plans;
}

/**
 * The bind GGUF. Injection (fixtures README §6.2): in each of the last query_layer layers l (j = l −
 * (n_layers − query_layer) indexes prefix and gate), a = bind(e) + prefix[j], and per head h
 * tanh(gate[h, j]) · (Wv_base·a)_h is added to the attention output before Wo. Wv_base is the BASE
 * value projection, without its LoRA delta, while the LLM GGUF only holds the merged Wv' = Wv_base +
 * B·A. Rather than a second copy of every Wv, we store the LoRA factors and the run time computes
 * Wv_base·a = Wv'·a − B·(A·a) with the merged attn_v from the LLM GGUF (A = lora_wv_l1, B = lora_wv_l2).
 */
function planBind(d: Dims, bindType: BindType, ad: Adapter): TensorPlan[] {
  const R = ad.root;
  const plans: TensorPlan[] = [];
  const mat = (name: string, key: string, shape: number[]) => plans.push({ name, shape, type: bindType, produce: () => ad.read(key) });
  const vec = (name: string, key: string, n: number) => plans.push({ name, shape: [n], type: 'f32', produce: () => ad.read(key) });
  mat(BIND_TN.PROJ('weight'), `${R}image_bind_proj.weight`, [d.bindIn, d.dim]);
  vec(BIND_TN.PROJ('bias'), `${R}image_bind_proj.bias`, d.dim);
  for (let i = 0; i < d.bridgeBlocks; i++) {
    const k = `_${i + 1}`;
    vec(BIND_TN.NORM(i, 'weight'), `${R}image_bind_norm${k}.weight`, d.dim);
    if (d.bridge === 'layernorm') vec(BIND_TN.NORM(i, 'bias'), `${R}image_bind_norm${k}.bias`, d.dim);
    mat(BIND_TN.F1(i, 'weight'), `${R}image_bind_f1${k}.weight`, [d.dim, d.bindHidden]);
    mat(BIND_TN.F2(i, 'weight'), `${R}image_bind_f2${k}.weight`, [d.bindHidden, d.dim]);
    mat(BIND_TN.F3(i, 'weight'), `${R}image_bind_f3${k}.weight`, [d.dim, d.bindHidden]);
    if (d.bridge === 'layernorm') {
      vec(BIND_TN.F1(i, 'bias'), `${R}image_bind_f1${k}.bias`, d.bindHidden);
      vec(BIND_TN.F2(i, 'bias'), `${R}image_bind_f2${k}.bias`, d.dim);
      vec(BIND_TN.F3(i, 'bias'), `${R}image_bind_f3${k}.bias`, d.bindHidden);
    }
  }
  // nn.Embedding(query_layer, dim) rows = ggml [dim, query_layer] columns: same bytes.
  plans.push({ name: BIND_TN.PREFIX, shape: [d.dim, d.queryLayer], type: 'f32', produce: () => ad.read(`${R}prefix_query.weight`) });
  const first = d.nLayers - d.queryLayer;
  plans.push({
    name: BIND_TN.GATE, shape: [d.nHeads, d.queryLayer], type: 'f32',
    produce: async () => {
      const g = new Float32Array(d.nHeads * d.queryLayer);
      for (let j = 0; j < d.queryLayer; j++) {
        const v = await ad.read(`${ad.llm}layers.${first + j}.attention.gate`);
        for (let h = 0; h < d.nHeads; h++) g[j * d.nHeads + h] = v.length === 1 ? v[0]! : v[h]!;
      }
      return g;
    },
  });
  if (d.rank > 0) {
    for (let j = 0; j < d.queryLayer; j++) {
      const l = first + j;
      const p = `${ad.llm}layers.${l}.attention.lora_wv`;
      mat(BIND_TN.WV_LORA_A(l), `${p}_l1.weight`, [d.dim, d.rank]);
      mat(BIND_TN.WV_LORA_B(l), `${p}_l2.weight`, [d.rank, d.nKv * d.headDim]);
    }
  }
  return plans;
}

// --- writing -------------------------------------------------------------------------------------

async function writeGgufFile(file: string, sources: string, meta: GgufMetaEntry[], plans: TensorPlan[], progress: (bytes: number, name: string) => void, signal?: AbortSignal): Promise<void> {
  const writer = new (addon().GgufStreamWriter)(file);
  try {
    writer.setMetadata(meta);
    for (const t of plans) writer.addTensor(t.name, t.type, t.shape);
    writer.begin();
    for (const t of plans) {
      throwIfAborted(signal, 'conversion');
      const data = await t.produce();
      if (data.length !== numel(t.shape)) fail('ERR_CHECKPOINT_INVALID', `tensor '${t.name}': got ${data.length} values, expected ${numel(t.shape)}`);
      await writeTensorFrom(sources, writer, t.name, data);
      progress(data.byteLength, t.name);
    }
    await writer.finish();
  } finally {
    writer.dispose();
  }
}

export async function convertLlm(options: ConvertLlmOptions): Promise<ConvertLlmResult> {
  const { llamaDir, adapter, outPrefix } = options ?? ({} as ConvertLlmOptions);
  for (const [k, v] of [['llamaDir', llamaDir], ['adapter', adapter], ['outPrefix', outPrefix]] as const) {
    if (typeof v !== 'string' || v.length === 0) fail('ERR_INVALID_ARG_TYPE', `convertLlm: '${k}' must be a non-empty path string`);
  }
  if (options.delta !== undefined && (typeof options.delta !== 'string' || options.delta.length === 0)) fail('ERR_INVALID_ARG_TYPE', "convertLlm: 'delta' must be a non-empty path string");
  const type = options.type ?? 'f16';
  if (!LLM_TYPES.includes(type)) fail('ERR_INVALID_ARG', `unsupported LLM type '${type}' (${LLM_TYPES.join(', ')})`);
  const bindType = options.bindType ?? 'f32';
  if (bindType !== 'f32' && bindType !== 'f16') fail('ERR_INVALID_ARG', `unsupported bind type '${bindType}' (f32 or f16)`);
  const ctx = options.contextLength ?? 512;
  if (!Number.isInteger(ctx) || ctx < 1) fail('ERR_INVALID_ARG', `contextLength must be a positive integer (got ${ctx})`);
  throwIfAborted(options.signal, 'conversion');
  const llmFile = `${outPrefix}-llm.gguf`;
  const bindFile = `${outPrefix}-bind.gguf`;

  const outputs = OutputFiles.prepare([llmFile, bindFile]);
  const { params, vocab, llama, paramsFile } = await openLlama(llamaDir, { delta: options.delta }).catch((e) => { outputs.discard(); throw e; });
  let adCkpt: TorchCheckpoint | undefined;
  const merger = new LoraMerger();
  try {
    adCkpt = await openTorchCheckpoint(adapter);
    const ad = new Adapter(adCkpt, adapter, llamaDir);
    const d = checkDims(params, paramsFile, vocab, llama, ad);
    const llmPlans = planLlm(d, type, llama, ad, merger);
    const bindPlans = planBind(d, bindType, ad);
    const name = options.name ?? `${path.basename(path.resolve(llamaDir))}-imagebind-llm`;
    // Both files carry it: a loader refuses an LLM and a bind file from different conversions.
    const pair = { key: KEY.CONVERSION_ID, type: 'string', value: conversionId() } as const;

    const llmMeta: GgufMetaEntry[] = [
      { key: KEY.ARCH, type: 'string', value: ARCH_LLAMA },
      { key: KEY.NAME, type: 'string', value: name },
      { key: KEY.FILE_TYPE, type: 'u32', value: FTYPE[type] },
      ...(type === 'f32' || type === 'f16' ? [] : [{ key: 'general.quantization_version', type: 'u32', value: GGML_QNT_VERSION } as GgufMetaEntry]),
      { key: 'llama.vocab_size', type: 'u32', value: d.vocab },
      { key: 'llama.context_length', type: 'u32', value: ctx },
      { key: 'llama.embedding_length', type: 'u32', value: d.dim },
      { key: 'llama.block_count', type: 'u32', value: d.nLayers },
      { key: 'llama.feed_forward_length', type: 'u32', value: d.ffn },
      { key: 'llama.rope.dimension_count', type: 'u32', value: d.headDim },
      { key: 'llama.attention.head_count', type: 'u32', value: d.nHeads },
      { key: 'llama.attention.head_count_kv', type: 'u32', value: d.nKv },
      { key: 'llama.attention.layer_norm_rms_epsilon', type: 'f32', value: params.norm_eps },
      { key: 'llama.rope.freq_base', type: 'f32', value: params.rope_theta ?? 10000 },
      ...sentencePieceMetadata(vocab),
      pair,
    ];
    const bindMeta: GgufMetaEntry[] = [
      { key: KEY.ARCH, type: 'string', value: ARCH_BIND },
      { key: KEY.NAME, type: 'string', value: name },
      { key: KEY.FILE_TYPE, type: 'string', value: bindType },
      { key: BIND_KEY.INPUT_DIM, type: 'u32', value: d.bindIn },
      { key: BIND_KEY.EMBED_DIM, type: 'u32', value: d.dim },
      { key: BIND_KEY.FFN_DIM, type: 'u32', value: d.bindHidden },
      { key: BIND_KEY.BLOCK_COUNT, type: 'u32', value: d.bridgeBlocks },
      // RMSNorm(dim) keeps its module default eps 1e-6 (not norm_eps); the beta's nn.LayerNorm 1e-5.
      { key: BIND_KEY.NORM_EPS, type: 'f32', value: d.bridge === 'rmsnorm' ? 1e-6 : 1e-5 },
      { key: BIND_KEY.BRIDGE, type: 'string', value: d.bridge },
      { key: BIND_KEY.QUERY_LAYER, type: 'u32', value: d.queryLayer },
      { key: BIND_KEY.HEAD_COUNT, type: 'u32', value: d.nHeads },
      { key: BIND_KEY.HEAD_COUNT_KV, type: 'u32', value: d.nKv },
      { key: BIND_KEY.WV_LORA_RANK, type: 'u32', value: d.rank },
      { key: BIND_KEY.LLM_BLOCK_COUNT, type: 'u32', value: d.nLayers },
      { key: BIND_KEY.LLM_EMBED_DIM, type: 'u32', value: d.dim },
      { key: BIND_KEY.LLM_VOCAB_SIZE, type: 'u32', value: d.vocab },
      pair,
    ];

    const total = [...bindPlans, ...llmPlans].reduce((a, t) => a + numel(t.shape) * 4, 0);
    let done = 0;
    const progress = (bytes: number, tensor: string) => {
      done += bytes;
      options.onProgress?.(done, total, tensor);
    };
    // The bind file first: small, and it reads every adapter tensor the injection needs. Neither
    // replaces an existing file until both are complete.
    const sources = `${llamaDir} + ${adapter}`;
    await writeGgufFile(outputs.temp(bindFile), sources, bindMeta, bindPlans, progress, options.signal);
    await writeGgufFile(outputs.temp(llmFile), sources, llmMeta, llmPlans, progress, options.signal);
    outputs.commit();
    return {
      llm: llmFile, bind: bindFile, type, bindType, vocabSize: d.vocab, layers: d.nLayers, dim: d.dim,
      queryLayer: d.queryLayer, loraRank: d.rank, bridge: d.bridge, shards: llama.fileCount, layout: llama.layout, delta: options.delta !== undefined,
      tensors: { llm: llmPlans.length, bind: bindPlans.length },
      bytes: { llm: fs.statSync(llmFile).size, bind: fs.statSync(bindFile).size },
    };
  } finally {
    outputs.discard();
    await merger.close();
    await adCkpt?.close();
    await llama.close();
  }
}
