// Writes a Meta-layout LLaMA folder (params.json, consolidated.00.pth in f16, tokenizer.model) and a
// released-format ImageBind-LLM adapter checkpoint, all with RANDOM weights, streamed to disk: for the
// demo (tiny) and the benchmark (7B-shaped). Nothing is downloaded.
import fs from 'node:fs';
import path from 'node:path';
import { ordered, storage, view, tensor, writeTorchCheckpoint } from './torch-writer.mjs';

export const LLAMA_7B = { dim: 4096, n_layers: 32, n_heads: 32, multiple_of: 256, norm_eps: 1e-6, vocab_size: 32000, imagebind_out_dim: 1024, lora_rank: 16 };

function ffnHidden(dim, multipleOf) {
  const h = Math.floor((2 * 4 * dim) / 3);
  return multipleOf * Math.ceil(h / multipleOf);
}

// float32 → IEEE half bits (round to nearest even); enough for random weights.
const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);
function toHalf(x) {
  f32[0] = x;
  const b = u32[0];
  const sign = (b >>> 16) & 0x8000;
  const e = ((b >>> 23) & 0xff) - 127 + 15;
  if (e <= 0) return sign;
  if (e >= 31) return sign | 0x7c00;
  return sign | (e << 10) | ((b >>> 13) & 0x3ff);
}

function randomSource(numel, scale, offset, seed, half) {
  return async function* () {
    let s = (seed * 2654435761) >>> 0 || 1;
    const CHUNK = 1 << 20;
    for (let done = 0; done < numel; done += CHUNK) {
      const n = Math.min(CHUNK, numel - done);
      const a = half ? new Uint16Array(n) : new Float32Array(n);
      for (let i = 0; i < n; i++) {
        s ^= s << 13; s >>>= 0; s ^= s >>> 17; s ^= s << 5; s >>>= 0;
        const v = offset + scale * ((s / 4294967296) * 2 - 1);
        a[i] = half ? toHalf(v) : v;
      }
      yield a;
    }
  };
}

/** A SentencePiece BPE model (byte fallback, LLaMA-style ids) of `size` pieces, as protobuf bytes. */
export function makeTokenizerModel(size) {
  const pieces = [{ piece: '<unk>', score: 0, type: 2 }, { piece: '<s>', score: 0, type: 3 }, { piece: '</s>', score: 0, type: 3 }];
  for (let b = 0; b < 256; b++) pieces.push({ piece: `<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`, score: 0, type: 6 });
  const seen = new Set(pieces.map((p) => p.piece));
  const chars = [...'▁etaoinshrdlucmfwygpbvkxjqzETAOINSHRDLUCMFWYGPBVKXJQZ0123456789.,!?\'"-:;()#'];
  const add = (p) => { if (!seen.has(p) && pieces.length < size) { seen.add(p); pieces.push({ piece: p, score: -pieces.length, type: 1 }); } };
  for (const c of chars) add(c);
  // Then merges of what exists: '▁' + a letter, letter pairs, and longer pieces built from those.
  let frontier = chars.slice();
  while (pieces.length < size) {
    const next = [];
    for (const a of frontier.slice(0, 400)) for (const c of chars.slice(1, 27)) { const p = a + c; if (!seen.has(p)) { add(p); next.push(p); } if (pieces.length >= size) break; }
    if (!next.length) break;
    frontier = next;
  }
  while (pieces.length < size) add(`▁w${pieces.length}`);
  // sentencepiece_model.proto's field numbers: ModelProto { pieces = 1, trainer_spec = 2, normalizer_spec = 3 }.
  const trainer = [varintField(3, 2), varintField(4, size), varintField(35, 1), varintField(40, 0), varintField(41, 1),
    varintField(42, 2), varintField(43, -1)];
  const normalizer = [lenField(1, Buffer.from('identity')), varintField(3, 1), varintField(4, 0), varintField(5, 1)];
  const out = pieces.map((p) => lenField(1, Buffer.concat([lenField(1, Buffer.from(p.piece)), floatField(2, p.score), varintField(3, p.type)])));
  return Buffer.concat([...out, lenField(2, Buffer.concat(trainer)), lenField(3, Buffer.concat(normalizer))]);
}

// The protocol buffers wire format, as much as the tokenizer above needs (int32 -1 is 10 bytes).
function varint(v) {
  let x = BigInt.asUintN(64, BigInt(v));
  const bytes = [];
  do {
    let b = Number(x & 0x7fn);
    x >>= 7n;
    if (x) b |= 0x80;
    bytes.push(b);
  } while (x);
  return Buffer.from(bytes);
}
const key = (field, wire) => varint(field * 8 + wire);
const varintField = (field, v) => Buffer.concat([key(field, 0), varint(v)]);
const lenField = (field, b) => Buffer.concat([key(field, 2), varint(b.length), b]);
function floatField(field, v) {
  const b = Buffer.alloc(4);
  b.writeFloatLE(v);
  return Buffer.concat([key(field, 5), b]);
}

/** Writes <dir>/llama/{params.json,consolidated.00.pth,tokenizer.model} and <dir>/adapter.pth. */
export async function writeRandomLlama(dir, cfg = LLAMA_7B) {
  const { dim, n_layers: L, n_heads, multiple_of, norm_eps, vocab_size: V, imagebind_out_dim: E, lora_rank: r } = cfg;
  const F = ffnHidden(dim, multiple_of);
  const llamaDir = path.join(dir, 'llama');
  fs.mkdirSync(llamaDir, { recursive: true });
  fs.writeFileSync(path.join(llamaDir, 'params.json'), JSON.stringify({ dim, n_layers: L, n_heads, multiple_of, norm_eps, vocab_size: -1 }));
  fs.writeFileSync(path.join(llamaDir, 'tokenizer.model'), makeTokenizerModel(V));
  let seed = 1;
  const half = (shape, scale = 0.02, offset = 0) => {
    const n = shape.reduce((a, b) => a * b, 1);
    return view(storage('float16', n, randomSource(n, scale, offset, seed++, true)), shape);
  };
  const base = new Map();
  base.set('tok_embeddings.weight', half([V, dim]));
  base.set('norm.weight', half([dim], 0.1, 1));
  base.set('output.weight', half([V, dim]));
  for (let i = 0; i < L; i++) {
    const p = `layers.${i}.`;
    for (const w of ['wq', 'wk', 'wv', 'wo']) base.set(`${p}attention.${w}.weight`, half([dim, dim]));
    base.set(`${p}feed_forward.w1.weight`, half([F, dim]));
    base.set(`${p}feed_forward.w2.weight`, half([dim, F]));
    base.set(`${p}feed_forward.w3.weight`, half([F, dim]));
    base.set(`${p}attention_norm.weight`, half([dim], 0.1, 1));
    base.set(`${p}ffn_norm.weight`, half([dim], 0.1, 1));
  }
  base.set('rope.freqs', half([dim / n_heads / 2], 0.1, 1));
  await writeTorchCheckpoint(path.join(llamaDir, 'consolidated.00.pth'), ordered(base));

  const f = (shape, scale = 0.02, offset = 0) => {
    const n = shape.reduce((a, b) => a * b, 1);
    return view(storage('float32', n, randomSource(n, scale, offset, seed++, false)), shape);
  };
  const ad = new Map();
  ad.set('image_bind_proj.weight', f([dim, E]));
  ad.set('image_bind_proj.bias', f([dim]));
  for (let b = 1; b <= 3; b++) {
    ad.set(`image_bind_norm_${b}.weight`, f([dim], 0.1, 1));
    ad.set(`image_bind_f1_${b}.weight`, f([4 * dim, dim]));
    ad.set(`image_bind_f2_${b}.weight`, f([dim, 4 * dim]));
    ad.set(`image_bind_f3_${b}.weight`, f([4 * dim, dim]));
  }
  for (let i = 0; i < L; i++) {
    const p = `llama.layers.${i}.`;
    ad.set(`${p}attention.gate`, f([1, n_heads, 1, 1], 0.5));
    ad.set(`${p}attention.wq.bias`, f([dim]));
    ad.set(`${p}attention.wo.bias`, f([dim]));
    for (const w of ['wq', 'wk', 'wv', 'wo']) {
      ad.set(`${p}attention.lora_${w}_l1.weight`, f([r, dim]));
      ad.set(`${p}attention.lora_${w}_l2.weight`, f([dim, r]));
    }
    ad.set(`${p}feed_forward.w1.bias`, f([F]));
    ad.set(`${p}feed_forward.w2.bias`, f([dim]));
    ad.set(`${p}feed_forward.w3.bias`, f([F]));
    for (const [w, o, inp] of [['w1', F, dim], ['w2', dim, F], ['w3', F, dim]]) {
      ad.set(`${p}feed_forward.lora_${w}_l1.weight`, f([r, inp]));
      ad.set(`${p}feed_forward.lora_${w}_l2.weight`, f([o, r]));
    }
    ad.set(`${p}attention_norm.weight`, f([dim], 0.1, 1));
    ad.set(`${p}ffn_norm.weight`, f([dim], 0.1, 1));
  }
  ad.set('llama.norm.weight', f([dim], 0.1, 1));
  ad.set('prefix_query.weight', f([L, dim]));
  await writeTorchCheckpoint(path.join(dir, 'adapter.pth'), { model: ordered(ad) });
  return { llamaDir, adapter: path.join(dir, 'adapter.pth') };
}
