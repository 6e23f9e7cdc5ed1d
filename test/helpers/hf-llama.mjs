// Copies of the fixtures' tiny Meta-layout LLaMA in other layouts and dtypes, written here from the
// Meta tensors so the converter can be checked against the Meta conversion:
// - writeHfLlama: Hugging Face transformers layout (config.json, tokenizer.model, safetensors or
//   pytorch_model .bin shards with their index), q_proj/k_proj rows permuted for rotate-half as
//   transformers' convert_llama_weights_to_hf.py does (HF row h·hd + j·hd/2 + i = Meta row h·hd + 2i + j).
// - writeMetaLlama: Meta layout with the tensors converted (bf16) or replaced (a merged delta).
import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';
import { libIndex } from './paths.mjs';
import { halfToFloat } from './numeric.mjs';
import { writeSafetensors } from './safetensors-writer.mjs';
import { f32ToBf16, ordered, tensor, writeTorchCheckpoint } from '../../scripts/lib/torch-writer.mjs';

const require = createRequire(import.meta.url);
const ibl = require(libIndex);

/** The tensors of a Meta folder's consolidated.00.pth: name → { dtype, shape, bits (Uint16Array of f16) }. */
export async function readMetaTensors(dir) {
  const c = await ibl.openTorchCheckpoint(path.join(dir, 'consolidated.00.pth'));
  try {
    const out = new Map();
    for (const t of c.tensors()) {
      if (t.dtype !== 'float16') throw new Error(`${t.name}: expected float16, got ${t.dtype}`);
      const raw = await c.readRaw(t);
      out.set(t.name, { dtype: t.dtype, shape: [...t.shape], bits: new Uint16Array(raw.buffer.slice(raw.byteOffset, raw.byteOffset + raw.byteLength)) });
    }
    return out;
  } finally {
    await c.close();
  }
}

/** f16 bits → bf16 bits (through the exact f32 value, rounded to nearest even). */
export function f16ToBf16Bits(bits) {
  const out = new Uint16Array(bits.length);
  for (let i = 0; i < bits.length; i++) out[i] = f32ToBf16(halfToFloat(bits[i]));
  return out;
}

/** Meta row h·hd + 2i + j → HF row h·hd + j·hd/2 + i, for a [heads·hd, cols] matrix of 16-bit elements. */
export function permuteRows(bits, rows, cols, heads) {
  const hd = rows / heads;
  const out = new Uint16Array(bits.length);
  for (let h = 0; h < heads; h++) {
    for (let i = 0; i < hd / 2; i++) {
      for (let j = 0; j < 2; j++) {
        const meta = h * hd + 2 * i + j;
        const hf = h * hd + j * (hd / 2) + i;
        out.set(bits.subarray(meta * cols, (meta + 1) * cols), hf * cols);
      }
    }
  }
  return out;
}

const HF_NAMES = [
  [/^tok_embeddings\.weight$/, () => 'model.embed_tokens.weight'],
  [/^norm\.weight$/, () => 'model.norm.weight'],
  [/^output\.weight$/, () => 'lm_head.weight'],
  [/^layers\.(\d+)\.attention\.wq\.weight$/, (l) => `model.layers.${l}.self_attn.q_proj.weight`],
  [/^layers\.(\d+)\.attention\.wk\.weight$/, (l) => `model.layers.${l}.self_attn.k_proj.weight`],
  [/^layers\.(\d+)\.attention\.wv\.weight$/, (l) => `model.layers.${l}.self_attn.v_proj.weight`],
  [/^layers\.(\d+)\.attention\.wo\.weight$/, (l) => `model.layers.${l}.self_attn.o_proj.weight`],
  [/^layers\.(\d+)\.feed_forward\.w1\.weight$/, (l) => `model.layers.${l}.mlp.gate_proj.weight`],
  [/^layers\.(\d+)\.feed_forward\.w2\.weight$/, (l) => `model.layers.${l}.mlp.down_proj.weight`],
  [/^layers\.(\d+)\.feed_forward\.w3\.weight$/, (l) => `model.layers.${l}.mlp.up_proj.weight`],
  [/^layers\.(\d+)\.attention_norm\.weight$/, (l) => `model.layers.${l}.input_layernorm.weight`],
  [/^layers\.(\d+)\.ffn_norm\.weight$/, (l) => `model.layers.${l}.post_attention_layernorm.weight`],
];

/**
 * Writes the Meta folder `metaDir` in the Hugging Face layout to `out`.
 * format 'safetensors' | 'bin'; dtype 'F16' | 'BF16'; shards ≥ 1 (more than one gets an index;
 * `index: true` writes one for a single file too; `tie: true` leaves lm_head out, tie_word_embeddings).
 */
export async function writeHfLlama(metaDir, out, { format = 'safetensors', dtype = 'F16', shards = 1, index = shards > 1, tie = false } = {}) {
  const params = JSON.parse(fs.readFileSync(path.join(metaDir, 'params.json'), 'utf8'));
  const meta = await readMetaTensors(metaDir);
  fs.mkdirSync(out, { recursive: true });
  fs.copyFileSync(path.join(metaDir, 'tokenizer.model'), path.join(out, 'tokenizer.model'));
  const H = params.n_heads;
  const tensors = [];
  for (const [name, t] of meta) {
    const rule = HF_NAMES.find(([re]) => re.test(name));
    if (!rule || (tie && name === 'output.weight')) continue; // rope.freqs: not in HF checkpoints; a tied lm_head is not saved
    const layer = rule[0].exec(name)[1];
    let bits = /attention\.w[qk]\.weight$/.test(name) ? permuteRows(t.bits, t.shape[0], t.shape[1], H) : t.bits;
    if (dtype === 'BF16') bits = f16ToBf16Bits(bits);
    tensors.push([rule[1](layer), { dtype, shape: t.shape, data: bits }]);
    if (name.endsWith('attention.wq.weight') && format === 'bin') {
      // Old transformers saved the RoPE buffer with the weights; a reader must skip it.
      tensors.push([`model.layers.${layer}.self_attn.rotary_emb.inv_freq`, { dtype: 'F32', shape: [t.shape[1] / H / 2], data: new Float32Array(t.shape[1] / H / 2).fill(0.5) }]);
    }
  }
  const ffn = meta.get('layers.0.feed_forward.w1.weight').shape[0];
  fs.writeFileSync(path.join(out, 'config.json'), JSON.stringify({
    architectures: ['LlamaForCausalLM'], model_type: 'llama', hidden_act: 'silu', hidden_size: params.dim, intermediate_size: ffn,
    num_attention_heads: H, num_hidden_layers: params.n_layers, num_key_value_heads: H, rms_norm_eps: params.norm_eps,
    vocab_size: meta.get('tok_embeddings.weight').shape[0], max_position_embeddings: 2048, rope_scaling: null,
    tie_word_embeddings: tie, torch_dtype: dtype === 'BF16' ? 'bfloat16' : 'float16', bos_token_id: 1, eos_token_id: 2,
  }, null, 2));
  const pad = (i) => String(i).padStart(5, '0');
  const fileOf = (s) => format === 'safetensors'
    ? (shards > 1 ? `model-${pad(s + 1)}-of-${pad(shards)}.safetensors` : 'model.safetensors')
    : (shards > 1 ? `pytorch_model-${pad(s + 1)}-of-${pad(shards)}.bin` : 'pytorch_model.bin');
  const parts = Array.from({ length: shards }, () => []);
  tensors.forEach((t, i) => parts[i % shards].push(t));
  const weightMap = {};
  let total = 0;
  for (let s = 0; s < shards; s++) {
    const file = path.join(out, fileOf(s));
    for (const [name, t] of parts[s]) { weightMap[name] = fileOf(s); total += t.data.byteLength; }
    if (format === 'safetensors') writeSafetensors(file, parts[s], { metadata: { format: 'pt' } });
    else {
      const torchDtype = { F16: 'float16', BF16: 'bfloat16', F32: 'float32' };
      await writeTorchCheckpoint(file, ordered(Object.fromEntries(parts[s].map(([n, t]) => [n, tensor(torchDtype[t.dtype], t.shape, t.data)]))));
    }
  }
  if (index) {
    const indexName = format === 'safetensors' ? 'model.safetensors.index.json' : 'pytorch_model.bin.index.json';
    fs.writeFileSync(path.join(out, indexName), JSON.stringify({ metadata: { total_size: total }, weight_map: weightMap }, null, 2));
  }
  return out;
}

/**
 * Writes a Meta folder: `tensors` name → { dtype: 'float16' | 'bfloat16', shape, bits }, params (object),
 * and the tokenizer copied from `tokenizerFrom` when given.
 */
export async function writeMetaLlama(out, tensors, params, tokenizerFrom) {
  fs.mkdirSync(out, { recursive: true });
  fs.writeFileSync(path.join(out, 'params.json'), JSON.stringify(params));
  if (tokenizerFrom) fs.copyFileSync(tokenizerFrom, path.join(out, 'tokenizer.model'));
  await writeTorchCheckpoint(path.join(out, 'consolidated.00.pth'),
    ordered(Object.fromEntries([...tensors].map(([n, t]) => [n, tensor(t.dtype, t.shape, t.bits)]))));
  return out;
}
