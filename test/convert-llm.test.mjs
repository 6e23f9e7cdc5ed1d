// `convert llm`: the fixtures' Meta-layout LLaMA + ImageBind-LLM adapter → <prefix>-llm.gguf (llama.cpp
// `llama`, adapter merged) and <prefix>-bind.gguf, at every type. Checks the files' keys, the SentencePiece
// vocabulary against the manifest's prompt pieces, tensor names/types/shapes, the merged weights
// (W + l2·l1 recomputed here from both checkpoints), the bind file's contents, multi-shard LLaMA
// folders, the CLI, and the error paths. (Parity of the converted model run by llama.cpp with the
// expected logits and greedy tokens was checked with a C++ program; see the converter's report.)
import test from 'ava';
import fs from 'node:fs';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { cliPath, libIndex, root, tmpDir } from './helpers/paths.mjs';
import { manifest, tinyA } from './helpers/fixtures.mjs';
import { writeTorchCheckpoint, tensor, ordered } from '../scripts/lib/torch-writer.mjs';
import { halfToFloat } from './helpers/numeric.mjs';

const require = createRequire(import.meta.url);
const ibl = require(libIndex);
const { llmTensorType, shardAxis, ffnHidden, addLowRank, LoraMerger } = require(path.join(root, 'lib', 'convert', 'llm.js'));

const llamaDir = path.join(tinyA, 'llama');
const adapterPath = path.join(tinyA, 'adapter.pth');
const params = JSON.parse(fs.readFileSync(path.join(llamaDir, 'params.json'), 'utf8'));
const adapterConfig = JSON.parse(fs.readFileSync(path.join(tinyA, 'adapter.config.json'), 'utf8'));
const dir = tmpDir('ibl-llm-');
const TYPES = ['f32', 'f16', 'q8_0', 'q4_0', 'q4_k_m'];
test.after.always(() => fs.rmSync(dir, { recursive: true, force: true }));

const D = params.dim;
const L = params.n_layers;
const H = params.n_heads;
const F = adapterConfig.llama_ffn_hidden;
const V = adapterConfig.vocab_size;
const R = adapterConfig.lora_rank;
const Q = adapterConfig.query_layer;
const BIND_HIDDEN = adapterConfig.bridge_hidden;
const IN = adapterConfig.imagebind_out_dim;

/** A tensor's values read from the file (f32, f16, q8_0, q4_0 decoded here, independently of ggml). */
function tensorValues(file, info, name) {
  const ti = info.tensors.find((x) => x.name === name);
  if (!ti) throw new Error(`${file}: no tensor ${name}`);
  const b = Buffer.alloc(ti.size);
  const fd = fs.openSync(file, 'r');
  fs.readSync(fd, b, 0, ti.size, ti.offset);
  fs.closeSync(fd);
  const n = ti.shape.reduce((a, x) => a * x, 1);
  const out = new Float32Array(n);
  if (ti.type === 'f32') return new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + n * 4));
  if (ti.type === 'f16') {
    for (let i = 0; i < n; i++) out[i] = halfToFloat(b.readUInt16LE(2 * i));
    return out;
  }
  if (ti.type === 'q8_0') { // blocks of 32: f16 scale, 32 × int8
    for (let blk = 0; blk < n / 32; blk++) {
      const d = halfToFloat(b.readUInt16LE(blk * 34));
      for (let j = 0; j < 32; j++) out[blk * 32 + j] = d * b.readInt8(blk * 34 + 2 + j);
    }
    return out;
  }
  if (ti.type === 'q4_0') { // blocks of 32: f16 scale, 16 bytes: low nibbles = values 0..15, high = 16..31
    for (let blk = 0; blk < n / 32; blk++) {
      const d = halfToFloat(b.readUInt16LE(blk * 18));
      for (let j = 0; j < 16; j++) {
        const q = b[blk * 18 + 2 + j];
        out[blk * 32 + j] = d * ((q & 15) - 8);
        out[blk * 32 + 16 + j] = d * ((q >> 4) - 8);
      }
    }
    return out;
  }
  throw new Error(`no decoder for ${ti.type}`);
}

async function withCkpt(file, fn) {
  const c = await ibl.openTorchCheckpoint(file);
  try { return await fn(c); } finally { await c.close(); }
}

/** Merged W + l2·l1 for layer l of a Meta key (e.g. 'attention.wv'), in float64 then rounded to f32. */
async function expectedMerged(l, key) {
  const w = await withCkpt(path.join(llamaDir, 'consolidated.00.pth'), (c) => c.readFloat32(`layers.${l}.${key}.weight`));
  const [mod, m] = key.split('.');
  const [a, b] = await withCkpt(adapterPath, (c) => Promise.all([
    c.readFloat32(`model.llama.layers.${l}.${mod}.lora_${m}_l1.weight`),
    c.readFloat32(`model.llama.layers.${l}.${mod}.lora_${m}_l2.weight`),
  ]));
  const cols = a.length / R;
  const rows = b.length / R;
  const out = new Float32Array(rows * cols);
  for (let o = 0; o < rows; o++) {
    for (let i = 0; i < cols; i++) {
      let s = 0;
      for (let k = 0; k < R; k++) s += b[o * R + k] * a[k * cols + i];
      out[o * cols + i] = w[o * cols + i] + s;
    }
  }
  return { merged: out, base: w, rows, cols };
}

function maxAbsDiff(a, b) {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

test('LoRA merge kernel: odd rows and ranks; the worker-thread path gives the same bits', async (t) => {
  const rnd = (n, seed) => Float32Array.from({ length: n }, (_, i) => Math.sin(seed + 0.37 * i) * 0.5);
  for (const [rows, cols, r] of [[7, 5, 3], [6, 9, 8], [1, 4, 5], [9, 33, 16]]) {
    const w = rnd(rows * cols, 1), a = rnd(r * cols, 2), b = rnd(rows * r, 3);
    const want = new Float32Array(rows * cols);
    for (let o = 0; o < rows; o++) for (let i = 0; i < cols; i++) {
      let s = 0;
      for (let k = 0; k < r; k++) s += b[o * r + k] * a[k * cols + i];
      want[o * cols + i] = w[o * cols + i] + s;
    }
    addLowRank(w, rows, cols, b, a, r);
    t.true(maxAbsDiff(w, want) <= 1e-7, `${rows}x${cols} r${r}`);
  }
  const [rows, cols, r] = [1031, 1024, 16]; // above the in-thread threshold
  const w = rnd(rows * cols, 4), a = rnd(r * cols, 5), b = rnd(rows * r, 6);
  const inThread = w.slice();
  addLowRank(inThread, rows, cols, b, a, r);
  const merger = new LoraMerger();
  try {
    await merger.merge(w, rows, cols, b, a, r);
  } finally {
    await merger.close();
  }
  t.deepEqual(w, inThread);
});

const results = {};
const infos = {};
test.before(async () => {
  for (const type of TYPES) {
    results[type] = await ibl.convertLlm({ llamaDir, adapter: adapterPath, outPrefix: path.join(dir, `tiny-${type}`), type });
    infos[type] = { llm: await ibl.inspectGguf(results[type].llm), bind: await ibl.inspectGguf(results[type].bind) };
  }
});

test('result: both files, sizes and shapes of the model', (t) => {
  const r = results.f32;
  t.is(r.llm, path.join(dir, 'tiny-f32-llm.gguf'));
  t.is(r.bind, path.join(dir, 'tiny-f32-bind.gguf'));
  t.true(fs.existsSync(r.llm) && fs.existsSync(r.bind));
  t.like(r, { type: 'f32', bindType: 'f32', vocabSize: V, layers: L, dim: D, queryLayer: Q, loraRank: R, bridge: 'rmsnorm', shards: 1 });
  t.is(r.tensors.llm, 3 + L * 14);
  t.true(results.q4_k_m.bytes.llm < results.f16.bytes.llm && results.f16.bytes.llm < results.f32.bytes.llm);
  t.deepEqual(fs.readdirSync(dir).filter((f) => f.startsWith('.tiny-') || f.includes('.partial')), [], 'no temporary file left');
});

test('LLM GGUF: llama.cpp llama keys from params.json and the tokenizer', (t) => {
  const m = infos.f32.llm.metadata;
  const ty = infos.f32.llm.metadataTypes;
  t.is(m['general.architecture'], 'llama');
  t.is(m['general.file_type'], 0);
  t.is(ty['general.file_type'], 'u32');
  t.is(m['llama.context_length'], 512);
  t.is(m['llama.embedding_length'], D);
  t.is(m['llama.block_count'], L);
  t.is(m['llama.feed_forward_length'], F);
  t.is(F, ffnHidden(D, params.multiple_of));
  t.is(m['llama.rope.dimension_count'], D / H);
  t.is(m['llama.attention.head_count'], H);
  t.is(m['llama.attention.head_count_kv'], H);
  t.is(ty['llama.attention.layer_norm_rms_epsilon'], 'f32');
  t.true(Math.abs(m['llama.attention.layer_norm_rms_epsilon'] - params.norm_eps) < 1e-12);
  t.is(m['llama.rope.freq_base'], 10000);
  t.is(m['llama.vocab_size'], V);
  // llama.cpp's ftype numbers per type, and the quantization version on quantized files.
  t.deepEqual(TYPES.map((x) => infos[x].llm.metadata['general.file_type']), [0, 1, 7, 2, 15]);
  t.is(infos.f16.llm.metadata['general.quantization_version'], undefined);
  t.is(infos.q4_k_m.llm.metadata['general.quantization_version'], 2);
});

test('LLM GGUF: SentencePiece vocabulary as llama.cpp SPM (tokens, scores, types, special ids)', (t) => {
  const m = infos.f32.llm.metadata;
  const ty = infos.f32.llm.metadataTypes;
  t.is(m['tokenizer.ggml.model'], 'llama');
  const tokens = m['tokenizer.ggml.tokens'];
  const types = m['tokenizer.ggml.token_type'];
  const scores = m['tokenizer.ggml.scores'];
  t.is(ty['tokenizer.ggml.tokens'], 'array<string>');
  t.is(ty['tokenizer.ggml.token_type'], 'array<i32>');
  t.is(ty['tokenizer.ggml.scores'], 'array<f32>');
  t.is(tokens.length, V);
  t.is(types.length, V);
  t.is(scores.length, V);
  t.deepEqual(tokens.slice(0, 3), ['<unk>', '<s>', '</s>']);
  t.deepEqual(types.slice(0, 3), [2, 3, 3]); // UNKNOWN, CONTROL, CONTROL
  for (let b = 0; b < 256; b++) {
    t.is(tokens[3 + b], `<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`);
    t.is(types[3 + b], 6); // BYTE
  }
  t.true(types.slice(259).every((x) => x === 1)); // NORMAL
  // BPE: the score is minus the merge rank, so later pieces score lower.
  for (let i = 260; i < V; i++) t.true(scores[i] <= scores[i - 1], `score of ${i}`);
  t.is(m['tokenizer.ggml.unknown_token_id'], 0);
  t.is(m['tokenizer.ggml.bos_token_id'], 1);
  t.is(m['tokenizer.ggml.eos_token_id'], 2);
  t.is(m['tokenizer.ggml.padding_token_id'], undefined); // pad_id -1
  t.is(m['tokenizer.ggml.add_bos_token'], true);
  t.is(m['tokenizer.ggml.add_eos_token'], false);
  t.is(m['tokenizer.ggml.add_space_prefix'], true);
  t.is(m['tokenizer.ggml.remove_extra_whitespaces'], false);
  t.true(manifest.llm_cases.filter((x) => x.prompt_pieces).length >= 4);
  // Every id of every manifest prompt names the piece the manifest gives for it.
  for (const c of manifest.llm_cases.filter((x) => x.prompt_pieces)) {
    c.prompt_tokens.forEach((id, i) => t.is(tokens[id], c.prompt_pieces[i], `${c.name} token ${i}`));
  }
});

test('LLM GGUF: tensor names, shapes and types; biases present; rope.freqs dropped', (t) => {
  const info = infos.f32.llm;
  const byName = Object.fromEntries(info.tensors.map((x) => [x.name, x]));
  const want = {
    'token_embd.weight': [D, V], 'output_norm.weight': [D], 'output.weight': [D, V],
  };
  for (let l = 0; l < L; l++) {
    Object.assign(want, {
      [`blk.${l}.attn_norm.weight`]: [D], [`blk.${l}.ffn_norm.weight`]: [D],
      [`blk.${l}.attn_q.weight`]: [D, D], [`blk.${l}.attn_k.weight`]: [D, D], [`blk.${l}.attn_v.weight`]: [D, D],
      [`blk.${l}.attn_output.weight`]: [D, D],
      [`blk.${l}.ffn_gate.weight`]: [D, F], [`blk.${l}.ffn_down.weight`]: [F, D], [`blk.${l}.ffn_up.weight`]: [D, F],
      [`blk.${l}.attn_q.bias`]: [D], [`blk.${l}.attn_output.bias`]: [D],
      [`blk.${l}.ffn_gate.bias`]: [F], [`blk.${l}.ffn_down.bias`]: [D], [`blk.${l}.ffn_up.bias`]: [F],
    });
  }
  t.deepEqual(Object.keys(byName).sort(), Object.keys(want).sort());
  for (const [n, s] of Object.entries(want)) t.deepEqual(byName[n].shape, s, n);
  t.true(info.tensors.every((x) => x.type === 'f32'));
  t.false(info.tensors.some((x) => /rope|attn_k\.bias|attn_v\.bias/.test(x.name)));

  const typeOf = (type) => Object.fromEntries(infos[type].llm.tensors.map((x) => [x.name, x.type]));
  const vectors = Object.keys(want).filter((n) => want[n].length === 1);
  for (const type of TYPES) {
    const ty = typeOf(type);
    for (const n of vectors) t.is(ty[n], 'f32', `${type} ${n}`);
  }
  const f16 = typeOf('f16');
  t.true(Object.keys(want).filter((n) => want[n].length === 2).every((n) => f16[n] === 'f16'));
  const q8 = typeOf('q8_0');
  t.true(Object.keys(want).filter((n) => want[n].length === 2).every((n) => q8[n] === 'q8_0'));
  // q4_0: every matrix q4_0 except output.weight, which llama-quantize stores q6_K (q8_0 here: rows of
  // 64 do not fit q6_K's 256-value blocks).
  const q4 = typeOf('q4_0');
  t.true(Object.keys(want).filter((n) => want[n].length === 2 && n !== 'output.weight').every((n) => q4[n] === 'q4_0'));
  t.is(q4['output.weight'], 'q8_0');
  // q4_k_m on rows of 64 / 192 (not multiples of 256): q4_K → q5_0 and q6_K → q8_0, as llama.cpp falls back.
  const km = typeOf('q4_k_m');
  t.is(km['token_embd.weight'], 'q5_0');
  t.is(km['output.weight'], 'q8_0');
  for (let l = 0; l < L; l++) {
    const more = l === 2; // use_more_bits(l, 3): layer 2 only
    t.is(km[`blk.${l}.attn_v.weight`], more ? 'q8_0' : 'q5_0', `attn_v ${l}`);
    t.is(km[`blk.${l}.ffn_down.weight`], more ? 'q8_0' : 'q5_0', `ffn_down ${l}`);
    for (const n of ['attn_q', 'attn_k', 'attn_output', 'ffn_gate', 'ffn_up']) t.is(km[`blk.${l}.${n}.weight`], 'q5_0');
  }
});

test('q4_k_m recipe on 7B shapes follows llama.cpp Q4_K_M (use_more_bits layers get q6_K)', (t) => {
  const n = 32;
  const v = [...Array(n).keys()].map((l) => llmTensorType('q4_k_m', 'attn_v', l, n, 4096));
  const down = [...Array(n).keys()].map((l) => llmTensorType('q4_k_m', 'ffn_down', l, n, 11008));
  const q6 = [0, 1, 2, 3, 6, 9, 12, 15, 18, 21, 24, 27, 28, 29, 30, 31];
  t.deepEqual(v.map((x, l) => (x === 'q6_K' ? l : -1)).filter((x) => x >= 0), q6);
  t.true(v.every((x) => x === 'q6_K' || x === 'q4_K'));
  // ffn_down rows are 11008 values: 11008 % 256 = 0, so the k-quants fit.
  t.deepEqual(down.map((x, l) => (x === 'q6_K' ? l : -1)).filter((x) => x >= 0), q6);
  for (const role of ['attn_q', 'attn_k', 'attn_output', 'ffn_gate', 'ffn_up', 'token_embd']) t.is(llmTensorType('q4_k_m', role, 5, n, 4096), 'q4_K');
  t.is(llmTensorType('q4_k_m', 'output', 0, n, 4096), 'q6_K');
  t.is(llmTensorType('q4_0', 'output', 0, n, 4096), 'q6_K');
  t.is(llmTensorType('q8_0', 'output', 0, n, 4096), 'q8_0');
  t.is(llmTensorType('q4_0', 'attn_q', 0, n, 4096), 'q4_0');
  // Fallbacks: rows that 256 does not divide, then rows that 32 does not divide.
  t.is(llmTensorType('q4_k_m', 'attn_q', 5, n, 4096 + 32), 'q5_0');
  t.is(llmTensorType('q4_k_m', 'attn_v', 0, n, 4096 + 32), 'q8_0');
  t.is(llmTensorType('q4_k_m', 'attn_q', 5, n, 100), 'f16');
  t.is(llmTensorType('q8_0', 'attn_q', 5, n, 100), 'f16');
  t.is(llmTensorType('f16', 'attn_q', 5, n, 100), 'f16');
  // 70B-shaped (80 layers, grouped KV heads): attn_v at least q5_K.
  t.is(llmTensorType('q4_k_m', 'attn_v', 40, 80, 8192, true), 'q5_K');
});

test('LLM GGUF: merged weights = base + l2·l1; adapter norms and biases; embeddings unchanged', async (t) => {
  const file = results.f32.llm;
  const info = infos.f32.llm;
  const pairs = [['attention.wq', 'attn_q'], ['attention.wk', 'attn_k'], ['attention.wv', 'attn_v'], ['attention.wo', 'attn_output'],
    ['feed_forward.w1', 'ffn_gate'], ['feed_forward.w2', 'ffn_down'], ['feed_forward.w3', 'ffn_up']];
  for (const [l, [key, name]] of [[1, pairs[2]], [0, pairs[5]], [2, pairs[0]], [1, pairs[3]], [2, pairs[4]], [0, pairs[6]], [1, pairs[1]]]) {
    const { merged, base } = await expectedMerged(l, key);
    const got = tensorValues(file, info, `blk.${l}.${name}.weight`);
    const d = maxAbsDiff(got, merged);
    t.true(d <= 1e-6, `blk.${l}.${name}: max diff ${d}`);
    t.true(maxAbsDiff(got, base) > 1e-3, `blk.${l}.${name}: the LoRA delta is there`);
  }
  await withCkpt(adapterPath, async (ad) => {
    await withCkpt(path.join(llamaDir, 'consolidated.00.pth'), async (bs) => {
      for (let l = 0; l < L; l++) {
        const p = `model.llama.layers.${l}.`;
        t.deepEqual(tensorValues(file, info, `blk.${l}.attn_norm.weight`), await ad.readFloat32(`${p}attention_norm.weight`));
        t.deepEqual(tensorValues(file, info, `blk.${l}.ffn_norm.weight`), await ad.readFloat32(`${p}ffn_norm.weight`));
        t.true(maxAbsDiff(tensorValues(file, info, `blk.${l}.attn_norm.weight`), await bs.readFloat32(`layers.${l}.attention_norm.weight`)) > 1e-3);
        t.deepEqual(tensorValues(file, info, `blk.${l}.attn_q.bias`), await ad.readFloat32(`${p}attention.wq.bias`));
        t.deepEqual(tensorValues(file, info, `blk.${l}.attn_output.bias`), await ad.readFloat32(`${p}attention.wo.bias`));
        t.deepEqual(tensorValues(file, info, `blk.${l}.ffn_gate.bias`), await ad.readFloat32(`${p}feed_forward.w1.bias`));
        t.deepEqual(tensorValues(file, info, `blk.${l}.ffn_down.bias`), await ad.readFloat32(`${p}feed_forward.w2.bias`));
        t.deepEqual(tensorValues(file, info, `blk.${l}.ffn_up.bias`), await ad.readFloat32(`${p}feed_forward.w3.bias`));
      }
      t.deepEqual(tensorValues(file, info, 'output_norm.weight'), await ad.readFloat32('model.llama.norm.weight'));
      t.deepEqual(tensorValues(file, info, 'token_embd.weight'), await bs.readFloat32('tok_embeddings.weight'));
      t.deepEqual(tensorValues(file, info, 'output.weight'), await bs.readFloat32('output.weight'));
    });
  });
});

test('LLM GGUF: f16, q8_0 and q4_0 hold the merged weights within their rounding', async (t) => {
  const { merged } = await expectedMerged(1, 'attention.wv');
  const f16 = tensorValues(results.f16.llm, infos.f16.llm, 'blk.1.attn_v.weight');
  for (let i = 0; i < merged.length; i++) t.true(Math.abs(f16[i] - merged[i]) <= Math.abs(merged[i]) * 2 ** -11 + 2 ** -24, `f16 ${i}`);
  const blockMax = (a, i) => { let m = 0; for (let j = i - (i % 32); j < i - (i % 32) + 32; j++) m = Math.max(m, Math.abs(a[j])); return m; };
  const q8 = tensorValues(results.q8_0.llm, infos.q8_0.llm, 'blk.1.attn_v.weight');
  let worst = 0;
  for (let i = 0; i < merged.length; i++) worst = Math.max(worst, Math.abs(q8[i] - merged[i]) / blockMax(merged, i));
  t.true(worst <= 0.5 / 127 + 1e-3, `q8_0: worst error ${worst} of the block maximum`);
  const q4 = tensorValues(results.q4_0.llm, infos.q4_0.llm, 'blk.1.attn_v.weight');
  worst = 0;
  for (let i = 0; i < merged.length; i++) worst = Math.max(worst, Math.abs(q4[i] - merged[i]) / blockMax(merged, i));
  t.true(worst <= 1 / 8 + 1e-3, `q4_0: worst error ${worst} of the block maximum`);
});

test('bind GGUF: keys, bridge, prefix, gates and the wv LoRA factors', async (t) => {
  const file = results.f32.bind;
  const info = infos.f32.bind;
  const m = info.metadata;
  t.is(m['general.architecture'], 'imagebind-llm-bind');
  t.is(m['general.file_type'], 'f32');
  t.is(m['imagebind-llm-bind.input_dim'], IN);
  t.is(m['imagebind-llm-bind.embedding_length'], D);
  t.is(m['imagebind-llm-bind.feed_forward_length'], BIND_HIDDEN);
  t.is(m['imagebind-llm-bind.block_count'], 3);
  t.true(Math.abs(m['imagebind-llm-bind.norm_eps'] - 1e-6) < 1e-12);
  t.is(m['imagebind-llm-bind.bridge'], 'rmsnorm');
  t.is(m['imagebind-llm-bind.query_layer'], Q);
  t.is(m['imagebind-llm-bind.head_count'], H);
  t.is(m['imagebind-llm-bind.head_count_kv'], H);
  t.is(m['imagebind-llm-bind.wv_lora_rank'], R);
  t.is(m['imagebind-llm-bind.llm.block_count'], L);
  t.is(m['imagebind-llm-bind.llm.embedding_length'], infos.f32.llm.metadata['llama.embedding_length']);
  t.is(m['imagebind-llm-bind.llm.vocab_size'], infos.f32.llm.metadata['tokenizer.ggml.tokens'].length);

  const want = { 'bind.proj.weight': [IN, D], 'bind.proj.bias': [D], 'inject.prefix': [D, Q], 'inject.gate': [H, Q] };
  for (let i = 0; i < 3; i++) {
    Object.assign(want, { [`bind.blk.${i}.norm.weight`]: [D], [`bind.blk.${i}.f1.weight`]: [D, BIND_HIDDEN], [`bind.blk.${i}.f2.weight`]: [BIND_HIDDEN, D], [`bind.blk.${i}.f3.weight`]: [D, BIND_HIDDEN] });
  }
  for (let l = L - Q; l < L; l++) Object.assign(want, { [`inject.blk.${l}.wv_lora_a`]: [D, R], [`inject.blk.${l}.wv_lora_b`]: [R, D] });
  t.deepEqual(info.tensors.map((x) => x.name).sort(), Object.keys(want).sort());
  for (const x of info.tensors) {
    t.deepEqual(x.shape, want[x.name], x.name);
    t.is(x.type, 'f32', x.name);
  }
  // No second copy of the model: nothing but the bridge, prefix, gates and rank-R factors.
  t.true(results.f32.bytes.bind < 4 * (IN * D + 3 * 3 * D * BIND_HIDDEN + 2 * Q * D * R + 4 * D * Q) + 64 * 1024);

  await withCkpt(adapterPath, async (ad) => {
    t.deepEqual(tensorValues(file, info, 'bind.proj.weight'), await ad.readFloat32('model.image_bind_proj.weight'));
    t.deepEqual(tensorValues(file, info, 'bind.proj.bias'), await ad.readFloat32('model.image_bind_proj.bias'));
    for (let i = 0; i < 3; i++) {
      t.deepEqual(tensorValues(file, info, `bind.blk.${i}.norm.weight`), await ad.readFloat32(`model.image_bind_norm_${i + 1}.weight`));
      for (const f of ['f1', 'f2', 'f3']) t.deepEqual(tensorValues(file, info, `bind.blk.${i}.${f}.weight`), await ad.readFloat32(`model.image_bind_${f}_${i + 1}.weight`));
    }
    t.deepEqual(tensorValues(file, info, 'inject.prefix'), await ad.readFloat32('model.prefix_query.weight'));
    const gate = tensorValues(file, info, 'inject.gate');
    for (let j = 0; j < Q; j++) {
      const g = await ad.readFloat32(`model.llama.layers.${L - Q + j}.attention.gate`);
      t.deepEqual(gate.subarray(j * H, (j + 1) * H), g);
      t.true(g.some((x) => x !== 0));
    }
    for (let l = L - Q; l < L; l++) {
      t.deepEqual(tensorValues(file, info, `inject.blk.${l}.wv_lora_a`), await ad.readFloat32(`model.llama.layers.${l}.attention.lora_wv_l1.weight`));
      t.deepEqual(tensorValues(file, info, `inject.blk.${l}.wv_lora_b`), await ad.readFloat32(`model.llama.layers.${l}.attention.lora_wv_l2.weight`));
    }
  });
  // The bind file does not change with the LLM type.
  for (const type of TYPES) t.deepEqual(infos[type].bind.tensors.map((x) => [x.name, x.type]), info.tensors.map((x) => [x.name, x.type]));
});

test('bind GGUF: Wv_merged·a − B·(A·a) recovers the base Wv·a that the injection needs', async (t) => {
  const l = 1;
  const { base } = await expectedMerged(l, 'attention.wv');
  const wv = tensorValues(results.f32.llm, infos.f32.llm, `blk.${l}.attn_v.weight`);
  const A = tensorValues(results.f32.bind, infos.f32.bind, `inject.blk.${l}.wv_lora_a`);
  const B = tensorValues(results.f32.bind, infos.f32.bind, `inject.blk.${l}.wv_lora_b`);
  const a = Float64Array.from({ length: D }, (_, i) => Math.sin(1 + i));
  const Aa = new Float64Array(R);
  for (let k = 0; k < R; k++) for (let i = 0; i < D; i++) Aa[k] += A[k * D + i] * a[i];
  let worst = 0;
  let scale = 0;
  for (let o = 0; o < D; o++) {
    let merged = 0, want = 0, delta = 0;
    for (let i = 0; i < D; i++) { merged += wv[o * D + i] * a[i]; want += base[o * D + i] * a[i]; }
    for (let k = 0; k < R; k++) delta += B[o * R + k] * Aa[k];
    worst = Math.max(worst, Math.abs(merged - delta - want));
    scale = Math.max(scale, Math.abs(want));
  }
  t.true(worst <= 1e-5 * scale, `max error ${worst} (scale ${scale})`);
});

test('bind GGUF: bindType f16 stores the matrices f16, vectors f32', async (t) => {
  const res = await ibl.convertLlm({ llamaDir, adapter: adapterPath, outPrefix: path.join(dir, 'bindf16'), type: 'q8_0', bindType: 'f16' });
  const info = await ibl.inspectGguf(res.bind);
  t.is(info.metadata['general.file_type'], 'f16');
  for (const x of info.tensors) t.is(x.type, x.shape.length === 2 && !x.name.startsWith('inject.prefix') && x.name !== 'inject.gate' ? 'f16' : 'f32', x.name);
});

// --- multi-shard LLaMA folders --------------------------------------------------------------------

function rawOf(arr, dtype) {
  return dtype === 'float16' ? new Uint16Array(arr.buffer, arr.byteOffset, arr.byteLength / 2) : new Float32Array(arr.buffer, arr.byteOffset, arr.byteLength / 4);
}

/** Splits the fixture's consolidated.00.pth into n Meta-style model-parallel shards. */
async function writeShards(out, n) {
  fs.mkdirSync(out, { recursive: true });
  fs.copyFileSync(path.join(llamaDir, 'params.json'), path.join(out, 'params.json'));
  fs.copyFileSync(path.join(llamaDir, 'tokenizer.model'), path.join(out, 'tokenizer.model'));
  await withCkpt(path.join(llamaDir, 'consolidated.00.pth'), async (c) => {
    const parts = Array.from({ length: n }, () => ({}));
    for (const ti of c.tensors()) {
      const raw = await c.readRaw(ti);
      const es = ti.dtype === 'float16' ? 2 : 4;
      const axis = shardAxis(ti.name);
      for (let s = 0; s < n; s++) {
        if (axis < 0) { parts[s][ti.name] = tensor(ti.dtype, [...ti.shape], rawOf(raw.slice(), ti.dtype)); continue; }
        const [rows, cols] = ti.shape;
        const shape = axis === 0 ? [rows / n, cols] : [rows, cols / n];
        const piece = new Uint8Array(shape[0] * shape[1] * es);
        for (let r = 0; r < shape[0]; r++) {
          const srcRow = axis === 0 ? s * shape[0] + r : r;
          const srcCol = axis === 0 ? 0 : s * shape[1];
          piece.set(raw.subarray((srcRow * cols + srcCol) * es, (srcRow * cols + srcCol + shape[1]) * es), r * shape[1] * es);
        }
        parts[s][ti.name] = tensor(ti.dtype, shape, rawOf(piece, ti.dtype));
      }
    }
    for (let s = 0; s < n; s++) await writeTorchCheckpoint(path.join(out, `consolidated.${String(s).padStart(2, '0')}.pth`), ordered(parts[s]));
  });
}

test('multi-shard: 2 and 4 consolidated.NN.pth shards give the same model as one', async (t) => {
  t.is(shardAxis('tok_embeddings.weight'), 1);
  t.is(shardAxis('output.weight'), 0);
  t.is(shardAxis('layers.3.attention.wk.weight'), 0);
  t.is(shardAxis('layers.3.attention.wo.weight'), 1);
  t.is(shardAxis('layers.3.feed_forward.w2.weight'), 1);
  t.is(shardAxis('layers.3.feed_forward.w3.weight'), 0);
  t.is(shardAxis('layers.3.ffn_norm.weight'), -1);
  const one = results.f32;
  for (const n of [2, 4]) {
    const shardDir = path.join(dir, `shards${n}`);
    await writeShards(shardDir, n);
    const res = await ibl.convertLlm({ llamaDir: shardDir, adapter: adapterPath, outPrefix: path.join(dir, `sharded${n}`), type: 'f32' });
    t.is(res.shards, n);
    const info = await ibl.inspectGguf(res.llm);
    t.deepEqual(info.tensors.map((x) => [x.name, x.type, x.shape]), infos.f32.llm.tensors.map((x) => [x.name, x.type, x.shape]));
    for (const x of info.tensors) t.deepEqual(tensorValues(res.llm, info, x.name), tensorValues(one.llm, infos.f32.llm, x.name), `${n} shards: ${x.name}`);
  }
});

// --- CLI ----------------------------------------------------------------------------------------------

test('CLI: convert llm --json', (t) => {
  const prefix = path.join(dir, 'cli');
  const r = spawnSync(process.execPath, [cliPath, 'convert', 'llm', '--llama', llamaDir, '--adapter', adapterPath, '-o', prefix, '--type', 'q8_0', '--json'], { encoding: 'utf8' });
  t.is(r.status, 0, r.stderr);
  const out = JSON.parse(r.stdout);
  t.is(out.llm, `${prefix}-llm.gguf`);
  t.is(out.bind, `${prefix}-bind.gguf`);
  t.is(out.type, 'q8_0');
  t.is(out.vocabSize, V);
  t.true(fs.existsSync(out.llm) && fs.existsSync(out.bind));
  const bad = spawnSync(process.execPath, [cliPath, 'convert', 'llm', '--llama', path.join(dir, 'nope'), '--adapter', adapterPath, '-o', prefix], { encoding: 'utf8' });
  t.not(bad.status, 0);
  t.regex(bad.stderr, /nope.*no such LLaMA folder/);
  const badType = spawnSync(process.execPath, [cliPath, 'convert', 'llm', '--llama', llamaDir, '--adapter', adapterPath, '-o', prefix, '--type', 'q2_k'], { encoding: 'utf8' });
  t.not(badType.status, 0);
});

// --- errors ---------------------------------------------------------------------------------------

/** A copy of the fixture's LLaMA folder with `edit(dir)` applied. */
function llamaCopy(name, edit) {
  const d = path.join(dir, name);
  fs.mkdirSync(d, { recursive: true });
  for (const f of fs.readdirSync(llamaDir)) fs.copyFileSync(path.join(llamaDir, f), path.join(d, f));
  edit?.(d);
  return d;
}

/** A copy of adapter.pth with its state dict edited: `edit(map)` gets name → torch-writer tensor. */
async function adapterCopy(name, edit) {
  const file = path.join(dir, `${name}.pth`);
  await withCkpt(adapterPath, async (c) => {
    const m = new Map();
    for (const ti of c.tensors()) m.set(ti.name.slice('model.'.length), tensor(ti.dtype, [...ti.shape], rawOf(await c.readRaw(ti), ti.dtype)));
    edit(m);
    await writeTorchCheckpoint(file, { model: ordered(m) });
  });
  return file;
}

async function convertError(t, opts, code, re) {
  const outPrefix = path.join(dir, `err-${Math.random().toString(36).slice(2)}`);
  const err = await t.throwsAsync(() => ibl.convertLlm({ llamaDir, adapter: adapterPath, outPrefix, type: 'f32', ...opts }));
  t.is(err.code, code, err.message);
  t.regex(err.message, re);
  t.false(fs.existsSync(`${outPrefix}-llm.gguf`) || fs.existsSync(`${outPrefix}-bind.gguf`), 'no output left behind');
  return err;
}

test('errors: missing params.json, tokenizer.model, consolidated.*.pth', async (t) => {
  await convertError(t, { llamaDir: llamaCopy('no-params', (d) => fs.rmSync(path.join(d, 'params.json'))) }, 'ERR_FILE_NOT_FOUND', /no-params[/\\]params\.json: missing/);
  await convertError(t, { llamaDir: llamaCopy('no-tok', (d) => fs.rmSync(path.join(d, 'tokenizer.model'))) }, 'ERR_FILE_NOT_FOUND', /no-tok[/\\]tokenizer\.model: missing/);
  await convertError(t, { llamaDir: llamaCopy('no-ckpt', (d) => fs.rmSync(path.join(d, 'consolidated.00.pth'))) }, 'ERR_FILE_NOT_FOUND', /consolidated\.00\.pth: missing/);
  await convertError(t, { llamaDir: llamaCopy('gap', (d) => fs.renameSync(path.join(d, 'consolidated.00.pth'), path.join(d, 'consolidated.01.pth'))) }, 'ERR_FILE_NOT_FOUND', /consolidated\.00\.pth: missing/);
  await convertError(t, { llamaDir: path.join(dir, 'does-not-exist') }, 'ERR_FILE_NOT_FOUND', /does-not-exist: no such LLaMA folder/);
  await convertError(t, { llamaDir: llamaCopy('bad-params', (d) => fs.writeFileSync(path.join(d, 'params.json'), '{"dim": 64,')) }, 'ERR_CONFIG_INVALID', /params\.json: not valid JSON/);
  await convertError(t, { adapter: path.join(dir, 'missing-adapter.pth') }, 'ERR_FILE_NOT_FOUND', /missing-adapter\.pth/);
});

test('errors: corrupt tokenizer.model', async (t) => {
  const tok = fs.readFileSync(path.join(llamaDir, 'tokenizer.model'));
  await convertError(t, { llamaDir: llamaCopy('tok-trunc', (d) => fs.writeFileSync(path.join(d, 'tokenizer.model'), tok.subarray(0, tok.length >> 1))) }, 'ERR_TOKENIZER_INVALID', /tok-trunc[/\\]tokenizer\.model: not a valid SentencePiece/);
  await convertError(t, { llamaDir: llamaCopy('tok-json', (d) => fs.writeFileSync(path.join(d, 'tokenizer.model'), '{"model": {"type": "BPE"}}\n')) }, 'ERR_TOKENIZER_INVALID', /tokenizer\.model: not a valid SentencePiece/);
  await convertError(t, { llamaDir: llamaCopy('tok-empty', (d) => fs.writeFileSync(path.join(d, 'tokenizer.model'), '')) }, 'ERR_TOKENIZER_INVALID', /empty/);
  // A valid protobuf of another shape: one piece, an unk_id past its end.
  const other = Buffer.from([0x0a, 0x05, 0x0a, 0x03, 0x61, 0x62, 0x63, 0x12, 0x03, 0xc0, 0x02, 0x05]);
  await convertError(t, { llamaDir: llamaCopy('tok-other', (d) => fs.writeFileSync(path.join(d, 'tokenizer.model'), other)) }, 'ERR_TOKENIZER_INVALID', /unk_id 5 is outside the vocabulary of 1 pieces/);
});

test('errors: the tokenizer and the checkpoint disagree on the vocabulary', async (t) => {
  // A params.json for another model: its dims do not match the checkpoint.
  await convertError(t, { llamaDir: llamaCopy('params-128', (d) => fs.writeFileSync(path.join(d, 'params.json'), JSON.stringify({ ...params, dim: 128 }))) },
    'ERR_SHAPE_MISMATCH', /tok_embeddings\.weight' has shape \[512, 64\], but params\.json .* need \[512, 128\]/);
  await convertError(t, { llamaDir: llamaCopy('params-layers', (d) => fs.writeFileSync(path.join(d, 'params.json'), JSON.stringify({ ...params, n_layers: 4 }))) },
    'ERR_CHECKPOINT_MISSING_TENSOR', /missing tensor 'layers\.3\.attention\.wq\.weight'/);
});

test('errors: adapter missing keys (named)', async (t) => {
  const noLora = await adapterCopy('no-wv-l2', (m) => m.delete('llama.layers.1.attention.lora_wv_l2.weight'));
  await convertError(t, { adapter: noLora }, 'ERR_CHECKPOINT_MISSING_TENSOR', /no-wv-l2\.pth: missing tensor 'model\.llama\.layers\.1\.attention\.lora_wv_l2\.weight'/);
  const noGate = await adapterCopy('no-gate', (m) => m.delete('llama.layers.2.attention.gate'));
  await convertError(t, { adapter: noGate }, 'ERR_CHECKPOINT_MISSING_TENSOR', /missing tensor 'model\.llama\.layers\.2\.attention\.gate'/);
  const noF2 = await adapterCopy('no-f2', (m) => m.delete('image_bind_f2_3.weight'));
  await convertError(t, { adapter: noF2 }, 'ERR_CHECKPOINT_MISSING_TENSOR', /missing tensor 'model\.image_bind_f2_3\.weight'/);
  const noPrefix = await adapterCopy('no-prefix', (m) => m.delete('prefix_query.weight'));
  await convertError(t, { adapter: noPrefix }, 'ERR_CHECKPOINT_MISSING_TENSOR', /prefix_query\.weight.*not an ImageBind-LLM adapter/);
  // The ImageBind checkpoint given as the adapter.
  await convertError(t, { adapter: path.join(tinyA, 'imagebind.pth') }, 'ERR_CHECKPOINT_MISSING_TENSOR', /imagebind\.pth: missing tensor 'model\.prefix_query\.weight'/);
});

test('errors: adapter for another model size names the tensor and both shapes', async (t) => {
  const z = (shape) => tensor('float32', shape, new Float32Array(shape.reduce((a, b) => a * b, 1)));
  const wide = await adapterCopy('wide', (m) => {
    for (const [k] of [...m]) {
      if (k.endsWith('attention_norm.weight') || k.endsWith('ffn_norm.weight') || k === 'llama.norm.weight') m.set(k, z([128]));
    }
  });
  await convertError(t, { adapter: wide }, 'ERR_SHAPE_MISMATCH', /wide\.pth: tensor 'model\.llama\.layers\.0\.attention_norm\.weight' has shape \[128\], but the LLaMA in .* needs \[64\]/);
  const lora = await adapterCopy('lora', (m) => m.set('llama.layers.0.attention.lora_wk_l1.weight', z([16, 128])));
  await convertError(t, { adapter: lora }, 'ERR_SHAPE_MISMATCH', /'model\.llama\.layers\.0\.attention\.lora_wk_l1\.weight' has shape \[16, 128\].*needs \[16, 64\]/);
  const gate = await adapterCopy('gate', (m) => m.set('llama.layers.0.attention.gate', z([1, 8, 1, 1])));
  await convertError(t, { adapter: gate }, 'ERR_SHAPE_MISMATCH', /'model\.llama\.layers\.0\.attention\.gate' has shape \[1, 8, 1, 1\].*4 heads/);
  const deeper = await adapterCopy('deeper', (m) => {
    for (const [k, v] of [...m]) if (k.startsWith('llama.layers.2.')) m.set(k.replace('layers.2.', 'layers.3.'), v);
  });
  await convertError(t, { adapter: deeper }, 'ERR_SHAPE_MISMATCH', /the adapter has 4 layers.*has 3/);
  const proj = await adapterCopy('proj', (m) => m.set('image_bind_proj.weight', z([128, 32])));
  await convertError(t, { adapter: proj }, 'ERR_SHAPE_MISMATCH', /'model\.image_bind_proj\.weight' has shape \[128, 32\].*needs \[64, 32\]/);
});

test('errors: truncated checkpoints', async (t) => {
  const ck = fs.readFileSync(path.join(llamaDir, 'consolidated.00.pth'));
  await convertError(t, { llamaDir: llamaCopy('trunc', (d) => fs.writeFileSync(path.join(d, 'consolidated.00.pth'), ck.subarray(0, ck.length - 4096))) }, 'ERR_CHECKPOINT_TRUNCATED', /trunc[/\\]consolidated\.00\.pth/);
  const ad = fs.readFileSync(adapterPath);
  const truncAdapter = path.join(dir, 'trunc-adapter.pth');
  fs.writeFileSync(truncAdapter, ad.subarray(0, ad.length >> 1));
  await convertError(t, { adapter: truncAdapter }, 'ERR_CHECKPOINT_TRUNCATED', /trunc-adapter\.pth/);
});

test('errors: bad options; abort leaves no files', async (t) => {
  await convertError(t, { type: 'q3_k' }, 'ERR_INVALID_ARG', /unsupported LLM type 'q3_k'/);
  await convertError(t, { bindType: 'q8_0' }, 'ERR_INVALID_ARG', /bind type/);
  await convertError(t, { contextLength: 0 }, 'ERR_INVALID_ARG', /contextLength/);
  await convertError(t, { llamaDir: '' }, 'ERR_INVALID_ARG_TYPE', /llamaDir/);
  const ac = new AbortController();
  let n = 0;
  await convertError(t, { signal: ac.signal, onProgress: () => { if (++n === 30) ac.abort(); } }, 'ABORT_ERR', /aborted/);
  t.true(n >= 30);
});

test('legacy (beta) bridge: LayerNorm with biases and biased f1-f3 are detected and kept', async (t) => {
  const v = (n, s) => tensor('float32', [n], Float32Array.from({ length: n }, (_, i) => Math.cos(s + i)));
  const legacy = await adapterCopy('legacy', (m) => {
    for (let i = 1; i <= 3; i++) {
      m.set(`image_bind_norm_${i}.bias`, v(D, i));
      m.set(`image_bind_f1_${i}.bias`, v(BIND_HIDDEN, 10 + i));
      m.set(`image_bind_f2_${i}.bias`, v(D, 20 + i));
      m.set(`image_bind_f3_${i}.bias`, v(BIND_HIDDEN, 30 + i));
    }
  });
  const res = await ibl.convertLlm({ llamaDir, adapter: legacy, outPrefix: path.join(dir, 'legacy'), type: 'f16' });
  t.is(res.bridge, 'layernorm');
  const info = await ibl.inspectGguf(res.bind);
  t.is(info.metadata['imagebind-llm-bind.bridge'], 'layernorm');
  t.true(Math.abs(info.metadata['imagebind-llm-bind.norm_eps'] - 1e-5) < 1e-12); // nn.LayerNorm's default
  const names = info.tensors.map((x) => x.name);
  for (let i = 0; i < 3; i++) for (const n of ['norm', 'f1', 'f2', 'f3']) t.true(names.includes(`bind.blk.${i}.${n}.bias`), `${i} ${n}`);
  t.deepEqual(tensorValues(res.bind, info, 'bind.blk.1.f3.bias'), Float32Array.from({ length: BIND_HIDDEN }, (_, i) => Math.cos(32 + i)));
});

test("old 'llma.' key prefix converts to the same files", async (t) => {
  const old = await adapterCopy('llma', (m) => {
    for (const [k, v] of [...m]) if (k.startsWith('llama.')) { m.delete(k); m.set('llma.' + k.slice(6), v); }
  });
  const res = await ibl.convertLlm({ llamaDir, adapter: old, outPrefix: path.join(dir, 'llma'), type: 'f32' });
  // Byte for byte, but for the pair's random conversion id (same length in both).
  const id = async (f) => Buffer.from((await ibl.inspectGguf(f)).metadata['imagebind_llm.conversion_id']);
  const same = async (a, b) => {
    const [ba, bb, ia, ib] = [fs.readFileSync(a), fs.readFileSync(b), await id(a), await id(b)];
    const at = ba.indexOf(ia);
    t.true(at > 0 && bb.indexOf(ib) === at);
    ib.copy(ba, at);
    t.deepEqual(ba, bb);
  };
  await same(res.llm, results.f32.llm);
  await same(res.bind, results.f32.bind);
});
