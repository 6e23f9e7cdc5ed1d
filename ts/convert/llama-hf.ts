// A LLaMA in Hugging Face's transformers layout, read as if it were Meta's: config.json,
// tokenizer.model, and the weights in model.safetensors / model-NNNNN-of-NNNNN.safetensors or
// pytorch_model.bin / pytorch_model-NNNNN-of-NNNNN.bin (several files need their *.index.json), in
// F16, BF16 or F32.
//
// ref: transformers models/llama/convert_llama_weights_to_hf.py (Meta → HF), read backwards:
// - names: tok_embeddings → model.embed_tokens, layers.N.attention.wq → model.layers.N.self_attn.q_proj,
//   wk/wv/wo → k_proj/v_proj/o_proj, feed_forward.w1/w2/w3 → mlp.gate_proj/down_proj/up_proj,
//   attention_norm → input_layernorm, ffn_norm → post_attention_layernorm, norm → model.norm,
//   output → lm_head; `rotary_emb.inv_freq` buffers are not weights and are never read.
// - q_proj and k_proj rows are permuted for rotate-half RoPE: per head of hd rows, Meta row 2i + j is
//   HF row j·hd/2 + i (i < hd/2, j ∈ {0, 1}); reading undoes it, so the result is Meta's interleaved
//   layout, which llama.cpp's LLAMA_ROPE_TYPE_NORM expects.
import fs from 'node:fs';
import path from 'node:path';
import { openSafetensors, SafetensorsFile } from '../safetensors';
import { openTorchCheckpoint, TorchCheckpoint } from '../torch';
import { checkParams, configInt, configNumber, fail, findTokenizer, fmt, LlamaParams, LlamaWeights, OpenedLlama, readJson } from './llama-source';
import { readSentencePiece } from './sentencepiece';

/** What the reader needs of one weight file, whichever its format. */
interface WeightFile {
  readonly path: string;
  shapeOf(name: string): readonly number[] | undefined;
  names(): string[];
  readFloat32(name: string): Promise<Float32Array>;
  close(): Promise<void>;
}

function safetensorsFile(f: SafetensorsFile): WeightFile {
  return {
    path: f.path, shapeOf: (n) => f.get(n)?.shape, names: () => f.tensors().map((t) => t.name),
    readFloat32: (n) => f.readFloat32(n), close: () => f.close(),
  };
}

function torchFile(f: TorchCheckpoint): WeightFile {
  return {
    path: f.path, shapeOf: (n) => f.get(n)?.shape, names: () => f.tensors().map((t) => t.name),
    readFloat32: (n) => f.readFloat32(n), close: () => f.close(),
  };
}

/** Meta key → Hugging Face name, and the head count whose rotate-half permutation the rows carry. */
export function hfName(key: string, p: Pick<LlamaParams, 'n_heads' | 'n_kv_heads'>): { name: string; heads?: number } | undefined {
  if (key === 'tok_embeddings.weight') return { name: 'model.embed_tokens.weight' };
  if (key === 'norm.weight') return { name: 'model.norm.weight' };
  if (key === 'output.weight') return { name: 'lm_head.weight' };
  const m = /^layers\.(\d+)\.(.+)\.weight$/.exec(key);
  if (!m) return undefined;
  const l = `model.layers.${m[1]}.`;
  switch (m[2]) {
    case 'attention.wq': return { name: `${l}self_attn.q_proj.weight`, heads: p.n_heads };
    case 'attention.wk': return { name: `${l}self_attn.k_proj.weight`, heads: p.n_kv_heads ?? p.n_heads };
    case 'attention.wv': return { name: `${l}self_attn.v_proj.weight` };
    case 'attention.wo': return { name: `${l}self_attn.o_proj.weight` };
    case 'feed_forward.w1': return { name: `${l}mlp.gate_proj.weight` };
    case 'feed_forward.w2': return { name: `${l}mlp.down_proj.weight` };
    case 'feed_forward.w3': return { name: `${l}mlp.up_proj.weight` };
    case 'attention_norm': return { name: `${l}input_layernorm.weight` };
    case 'ffn_norm': return { name: `${l}post_attention_layernorm.weight` };
    default: return undefined;
  }
}

/**
 * Undoes the rotate-half row permutation of a [heads·hd, cols] matrix: Meta row h·hd + 2i + j =
 * HF row h·hd + j·hd/2 + i.
 */
export function unpermuteRows(w: Float32Array, rows: number, cols: number, heads: number): Float32Array {
  const hd = rows / heads;
  const half = hd / 2;
  const out = new Float32Array(w.length);
  for (let h = 0; h < heads; h++) {
    for (let i = 0; i < half; i++) {
      for (let j = 0; j < 2; j++) {
        const src = (h * hd + j * half + i) * cols;
        out.set(w.subarray(src, src + cols), (h * hd + 2 * i + j) * cols);
      }
    }
  }
  return out;
}

class HfLlama implements LlamaWeights {
  readonly layout = 'hf' as const;
  constructor(
    readonly dir: string,
    readonly files: string,
    private readonly weightFiles: WeightFile[],
    private readonly where: Map<string, WeightFile>,
    private readonly params: LlamaParams,
    private readonly tiedOutput: boolean,
  ) {}

  get fileCount(): number { return this.weightFiles.length; }

  private locate(key: string): { file: WeightFile; name: string; heads?: number } | undefined {
    const k = key === 'output.weight' && this.tiedOutput ? 'tok_embeddings.weight' : key;
    const n = hfName(k, this.params);
    const file = n && this.where.get(n.name);
    return file ? { file, ...n! } : undefined;
  }

  has(key: string): boolean { return this.locate(key) !== undefined; }

  shape(key: string): number[] {
    const at = this.locate(key);
    if (!at) {
      const n = hfName(key, this.params);
      fail('ERR_CHECKPOINT_MISSING_TENSOR', `${this.files}: missing tensor '${n?.name ?? key}'${n ? ` (Meta's '${key}')` : ''}`);
    }
    const s = at.file.shapeOf(at.name);
    if (!s) fail('ERR_CHECKPOINT_MISSING_TENSOR', `${at.file.path}: missing tensor '${at.name}', which the index assigns to this file`);
    return [...s];
  }

  async read(key: string): Promise<Float32Array> {
    const shape = this.shape(key);
    const at = this.locate(key)!;
    const w = await at.file.readFloat32(at.name);
    if (at.heads === undefined) return w;
    const [rows, cols] = shape as [number, number];
    if (shape.length !== 2 || rows % at.heads !== 0 || (rows / at.heads) % 2 !== 0) {
      fail('ERR_SHAPE_MISMATCH', `${at.file.path}: tensor '${at.name}' has shape ${fmt(shape)}, which ${at.heads} heads of even size cannot split`);
    }
    return unpermuteRows(w, rows, cols, at.heads);
  }

  async close(): Promise<void> {
    await Promise.all(this.weightFiles.map((f) => f.close()));
  }
}

/** config.json → Meta's hyperparameters (the fields LLaMA's LlamaConfig has). */
export function readHfConfig(file: string): { params: LlamaParams; ffn: number; tied: boolean } {
  const c = readJson(file);
  if (c.model_type !== undefined && c.model_type !== 'llama') fail('ERR_CONFIG_UNSUPPORTED', `${file}: model_type is ${JSON.stringify(c.model_type)}, expected "llama"`);
  if (c.hidden_act !== undefined && c.hidden_act !== 'silu') fail('ERR_CONFIG_UNSUPPORTED', `${file}: hidden_act is ${JSON.stringify(c.hidden_act)}, LLaMA uses "silu"`);
  if (c.rope_scaling !== undefined && c.rope_scaling !== null) fail('ERR_CONFIG_UNSUPPORTED', `${file}: rope_scaling is set (${JSON.stringify(c.rope_scaling)}); ImageBind-LLM's LLaMA uses plain RoPE`);
  const params = checkParams(file, {
    dim: configInt(file, c, 'hidden_size')!, n_layers: configInt(file, c, 'num_hidden_layers')!, n_heads: configInt(file, c, 'num_attention_heads')!,
    n_kv_heads: configInt(file, c, 'num_key_value_heads', true), norm_eps: configNumber(file, c, 'rms_norm_eps')!,
    rope_theta: configNumber(file, c, 'rope_theta', true), vocab_size: configInt(file, c, 'vocab_size', true),
  });
  return { params, ffn: configInt(file, c, 'intermediate_size')!, tied: c.tie_word_embeddings === true };
}

/** The weight files and which tensor each holds: from the index when there is one. */
function weightPlan(dir: string): { kind: 'safetensors' | 'bin'; files: string[]; map?: Map<string, string>; index?: string } {
  const has = (f: string) => fs.existsSync(path.join(dir, f));
  for (const [kind, single, index] of [['safetensors', 'model.safetensors', 'model.safetensors.index.json'], ['bin', 'pytorch_model.bin', 'pytorch_model.bin.index.json']] as const) {
    if (has(index)) {
      const file = path.join(dir, index);
      const j = readJson(file);
      const wm = j.weight_map;
      if (wm === null || typeof wm !== 'object' || Array.isArray(wm)) fail('ERR_CONFIG_INVALID', `${file}: 'weight_map' must be an object of tensor name → file name`);
      const map = new Map<string, string>();
      for (const [name, f] of Object.entries(wm as Record<string, unknown>)) {
        // Only plain file names in this folder: an index must not send the reader elsewhere.
        if (typeof f !== 'string' || !/^[^/\\]+$/.test(f) || f === '.' || f === '..') fail('ERR_CONFIG_INVALID', `${file}: weight_map['${name}'] is ${JSON.stringify(f)}, expected a file name in ${dir}`);
        map.set(name, f);
      }
      const files = [...new Set(map.values())];
      if (files.length === 0) fail('ERR_CONFIG_INVALID', `${file}: 'weight_map' is empty`);
      for (const f of files) if (!has(f)) fail('ERR_FILE_NOT_FOUND', `${path.join(dir, f)}: missing (${index} names it)`);
      return { kind, files, map, index: file };
    }
    if (has(single)) return { kind, files: [single] };
  }
  const shards = fs.readdirSync(dir).filter((f) => /\.(safetensors|bin)$/.test(f));
  if (shards.length) fail('ERR_FILE_NOT_FOUND', `${path.join(dir, shards[0]!.endsWith('.bin') ? 'pytorch_model.bin.index.json' : 'model.safetensors.index.json')}: missing (needed to read the shards ${shards.slice(0, 3).join(', ')}${shards.length > 3 ? ', …' : ''})`);
  fail('ERR_FILE_NOT_FOUND', `${path.join(dir, 'model.safetensors')}: missing (no *.safetensors or pytorch_model*.bin weights in ${dir})`);
}

/** Opens a Hugging Face-layout LLaMA folder. */
export async function openHfLlama(dir: string): Promise<OpenedLlama> {
  const configFile = path.join(dir, 'config.json');
  const { params, ffn, tied } = readHfConfig(configFile);
  const vocab = readSentencePiece(findTokenizer(dir));
  const plan = weightPlan(dir);
  const opened: WeightFile[] = [];
  try {
    const byName = new Map<string, WeightFile>();
    for (const f of plan.files) {
      const p = path.join(dir, f);
      const wf = plan.kind === 'safetensors' ? safetensorsFile(await openSafetensors(p)) : torchFile(await openTorchCheckpoint(p));
      opened.push(wf);
      byName.set(f, wf);
    }
    const where = new Map<string, WeightFile>();
    if (plan.map) {
      for (const [name, f] of plan.map) where.set(name, byName.get(f)!);
    } else {
      for (const n of opened[0]!.names()) where.set(n, opened[0]!);
    }
    const files = plan.index ? `${plan.index} (${plan.files.length} file${plan.files.length > 1 ? 's' : ''})` : path.join(dir, plan.files[0]!);
    const llama = new HfLlama(dir, files, opened, where, params, tied && !where.has('lm_head.weight'));
    const w1 = llama.shape('layers.0.feed_forward.w1.weight');
    if (w1[0] !== ffn) fail('ERR_SHAPE_MISMATCH', `${files}: model.layers.0.mlp.gate_proj.weight has ${w1[0]} rows, but ${configFile} says intermediate_size ${ffn}`);
    return { params, vocab, llama, paramsFile: configFile };
  } catch (e) {
    await Promise.all(opened.map((f) => f.close()));
    throw e;
  }
}
