// A base LLaMA plus a delta, added on the fly as upstream makes Open-Chinese-LLaMA-7B, so no merged
// 13 GB checkpoint is ever written.
//
// ref: LLaMA-Adapter imagebind_LLM/tools/get_chinese_llama.py: for every key of the base's
// consolidated.00.pth except keys containing 'rope', new = (base.float() + delta.float()).half();
// the merged model takes the delta's params.json (its norm_eps is 1e-5) and the base's tokenizer.
// Here each tensor is computed the same way when the converter asks for it: f32 + f32 rounded once to
// f32 (a JS sum of two f32 values rounded to f32 is the f32 sum: double has more than 2·24 + 2 bits),
// then rounded to f16 with ties to even as torch's .half() does, then read back as f32.
import fs from 'node:fs';
import path from 'node:path';
import { fail, fmt, LlamaParams, LlamaWeights, MetaLlama, OpenedLlama, openMetaFiles, openMetaShards, readParams, sameShape } from './llama-source';

const F16_INF_FROM = 0x477ff000; // 65520: the smallest float that .half() rounds to infinity

/**
 * Rounds every value to the nearest float16 (ties to even), in place, as torch's Tensor.half() then
 * .float(). Returns the index of the first value that is not finite afterwards (overflow, NaN, ∞), or -1.
 */
export function roundToHalf(a: Float32Array): number {
  const u = new Uint32Array(a.buffer, a.byteOffset, a.length);
  let bad = -1;
  for (let i = 0; i < u.length; i++) {
    const b = u[i]!;
    const abs = b & 0x7fffffff;
    if (abs >= F16_INF_FROM) {
      if (bad < 0) bad = i;
      if (abs <= 0x7f800000) u[i] = (b & 0x80000000) | 0x7f800000; // overflow → ∞ (NaN stays NaN)
    } else if (abs >= 0x38800000) {
      // A normal half (≥ 2^-14): keep 10 of the 23 mantissa bits, ties to even; a carry moves the exponent.
      u[i] = (b & 0x80000000) | ((abs + 0xfff + ((abs >>> 13) & 1)) & ~0x1fff);
    } else {
      // Subnormal half: a multiple of 2^-24 (exact in double below 2^-14 · 2^24 = 2^10).
      const q = Math.abs(a[i]!) * 16777216;
      let r = Math.floor(q);
      const d = q - r;
      if (d > 0.5 || (d === 0.5 && (r & 1) === 1)) r++;
      a[i] = (b & 0x80000000 ? -r : r) / 16777216;
      if (r === 0 && b & 0x80000000) u[i] = 0x80000000; // keep the sign of zero
    }
  }
  return bad;
}

class DeltaLlama implements LlamaWeights {
  constructor(readonly base: LlamaWeights, readonly delta: MetaLlama) {}

  get dir(): string { return this.base.dir; }
  get files(): string { return this.base.files; }
  get layout(): 'meta' | 'hf' { return this.base.layout; }
  get fileCount(): number { return this.base.fileCount + this.delta.fileCount; }

  has(key: string): boolean { return this.base.has(key); }

  shape(key: string): number[] {
    const s = this.base.shape(key);
    if (key.includes('rope')) return s;
    const d = this.delta.shape(key);
    if (!sameShape(s, d)) fail('ERR_SHAPE_MISMATCH', `${this.delta.files}: delta tensor '${key}' has shape ${fmt(d)}, but the base (${this.base.files}) has ${fmt(s)}`);
    return s;
  }

  async read(key: string): Promise<Float32Array> {
    if (key.includes('rope')) return this.base.read(key); // upstream drops these keys; nothing reads them
    this.shape(key);
    const [w, d] = await Promise.all([this.base.read(key), this.delta.read(key)]);
    for (let i = 0; i < d.length; i++) d[i] = w[i]! + d[i]!; // in the delta's buffer: one fewer copy
    const bad = roundToHalf(d);
    if (bad >= 0) {
      const x = (await this.delta.read(key))[bad];
      fail('ERR_CHECKPOINT_INVALID', `tensor '${key}': base (${this.base.files}) ${w[bad]} + delta (${this.delta.files}) ${x} at element ${bad} is not a finite float16 (upstream's .half() would store ${Number.isNaN(d[bad]) ? 'NaN' : 'infinity'}): is the delta for this base?`);
    }
    return d;
  }

  async close(): Promise<void> {
    await Promise.all([this.base.close(), this.delta.close()]);
  }
}

/** The sizes a delta must share with its base; its other hyperparameters (norm_eps) replace the base's. */
function checkSameModel(base: LlamaParams, baseFile: string, delta: LlamaParams, deltaFile: string): void {
  for (const k of ['dim', 'n_layers', 'n_heads'] as const) {
    if (base[k] !== delta[k]) fail('ERR_SHAPE_MISMATCH', `${deltaFile}: ${k} ${delta[k]}, but the base's ${baseFile} has ${base[k]}: is the delta for another model size?`);
  }
  if ((base.n_kv_heads ?? base.n_heads) !== (delta.n_kv_heads ?? delta.n_heads)) {
    fail('ERR_SHAPE_MISMATCH', `${deltaFile}: ${delta.n_kv_heads ?? delta.n_heads} key/value heads, but the base's ${baseFile} has ${base.n_kv_heads ?? base.n_heads}`);
  }
}

/**
 * Adds the delta at `deltaPath` to an opened base: a folder with params.json and consolidated.NN.pth
 * (as released: 7B_chinese_delta/), or one .pth file (then a params.json beside it is used if there is
 * one, else the base's hyperparameters are kept).
 */
export async function openDelta(base: OpenedLlama, deltaPath: string): Promise<OpenedLlama> {
  let st: fs.Stats;
  try {
    st = fs.statSync(deltaPath);
  } catch {
    fail('ERR_FILE_NOT_FOUND', `${deltaPath}: no such delta (a folder with params.json and consolidated.00.pth, or a .pth file)`);
  }
  const dir = st.isDirectory() ? deltaPath : path.dirname(deltaPath);
  const paramsFile = path.join(dir, 'params.json');
  if (st.isDirectory() && !fs.existsSync(paramsFile)) fail('ERR_FILE_NOT_FOUND', `${paramsFile}: missing (the delta's hyperparameters; upstream's merged model uses them)`);
  const params = fs.existsSync(paramsFile) ? readParams(paramsFile) : base.params;
  checkSameModel(base.params, base.paramsFile, params, paramsFile);
  const delta = st.isDirectory() ? await openMetaShards(deltaPath) : await openMetaFiles(dir, [deltaPath]);
  return { params, vocab: base.vocab, llama: new DeltaLlama(base.llama, delta), paramsFile: params === base.params ? base.paramsFile : paramsFile };
}
