// `imagebind-llm convert imagebind`: a released ImageBind checkpoint (imagebind_huge.pth, or
// imagebind_w3D.pth with the Point-Bind trunk) → one encoder GGUF. Streams tensor by tensor: memory
// stays near the largest single tensor, not the checkpoint.
import fs from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';
import { addon, packageRoot } from '../binding';
import { ImageBindError, throwIfAborted } from '../errors';
import { OutputFiles, writeTensorFrom } from './output';
import { READ_LIMITS, readRegularSync } from '../files';
import { ARCH_IMAGEBIND, FIELD, KEY, MODALITIES, Modality, PREFIX, TN, modalityKey } from '../keys';
import type { GgufMetaEntry } from '../native';
import { openTorchCheckpoint, TorchCheckpoint, TorchTensorInfo } from '../torch';

export type EncoderType = 'f32' | 'f16' | 'bf16' | 'q8_0';
/** The weight types `convert imagebind --type` takes: bf16 runs on the CPU's bf16 dot products where it has them. */
export const ENCODER_TYPES: readonly EncoderType[] = ['f32', 'f16', 'bf16', 'q8_0'];

export interface ConvertImagebindOptions {
  /** Path or parsed object in the schema of the fixtures' imagebind.config.json; default: ImageBind-huge. */
  config?: string | ImagebindConfig;
  /** Type of the weight matrices (vectors always stay f32). Default f16. */
  type?: EncoderType;
  name?: string;
  /** CLIP BPE merges (.txt.gz); default: the copy shipped with the package. */
  bpePath?: string;
  onProgress?: (done: number, total: number, tensor: string) => void;
  signal?: AbortSignal;
}

export interface ConvertResult {
  path: string;
  modalities: Modality[];
  tensors: number;
  bytes: number;
  type: EncoderType;
}

/** The fields we read from an imagebind.config.json (fixtures §3); everything else comes from shapes. */
export interface ImagebindConfig {
  out_embed_dim?: number;
  [modality: string]: unknown;
}

// ImageBind-huge (and Point-Bind) hyperparameters that tensor shapes do not determine.
// ref: ImageBind models/imagebind_model.py imagebind_huge(); Point-BERT yaml in Point-Bind.
const HUGE_DEFAULTS: Record<Modality, Record<string, number | number[]>> = {
  vision: { num_heads: 16, image_size: 224, video_frames: 2 },
  text: { num_heads: 16 },
  audio: { num_heads: 12, stride: 10, num_mel_bins: 128, target_len: 204 },
  depth: { num_heads: 8, image_size: 224 },
  thermal: { num_heads: 12, image_size: 224 },
  imu: { num_heads: 8, channels: 6, length: 2000 },
  point: { num_heads: 6, num_group: 512, group_size: 32 },
};

const IMAGE_MEAN = [0.48145466, 0.4578275, 0.40821073];
const IMAGE_STD = [0.26862954, 0.26130258, 0.27577711];
const CLIP_MERGES = 49152 - 256 - 2;  // merge lines used by ImageBind's SimpleTokenizer

interface TensorPlan {
  name: string;
  shape: number[];  // ggml order
  matrix: boolean;  // gets the requested type; vectors stay f32
  produce: () => Promise<Float32Array>;
}

function fail(code: string, msg: string): never {
  throw new ImageBindError(code, msg);
}

function loadConfig(c: ConvertImagebindOptions['config']): ImagebindConfig {
  if (c === undefined) return {};
  if (typeof c !== 'string') return c;
  let text: string;
  try {
    text = readRegularSync(c, READ_LIMITS.json, 'a config').toString('utf8');
  } catch (e) {
    fail((e as { code?: string }).code ?? 'ERR_FILE_NOT_FOUND', `${c}: cannot read the config: ${(e as Error).message.replace(`${c}: `, '')}`);
  }
  try {
    return JSON.parse(text) as ImagebindConfig;
  } catch (e) {
    fail('ERR_CONFIG_INVALID', `${c}: not valid JSON: ${(e as Error).message}`);
  }
}

function typeFor(requested: EncoderType, shape: number[], matrix: boolean): string {
  if (!matrix) return 'f32';
  // q8_0 packs rows in blocks of 32 values; rows of other lengths fall back to f16.
  if (requested === 'q8_0' && shape[0]! % 32 !== 0) return 'f16';
  return requested;
}

class Planner {
  readonly plans: TensorPlan[] = [];
  readonly meta: GgufMetaEntry[] = [];
  constructor(readonly ckpt: TorchCheckpoint, readonly prefix: string, readonly file: string) {}

  has(key: string): boolean {
    return this.ckpt.has(this.prefix + key);
  }

  info(key: string): TorchTensorInfo {
    const t = this.ckpt.get(this.prefix + key);
    if (!t) fail('ERR_CHECKPOINT_MISSING_TENSOR', `${this.file}: missing tensor '${this.prefix + key}'`);
    return t;
  }

  read(key: string): Promise<Float32Array> {
    return this.ckpt.readFloat32(this.info(key));
  }

  /** A tensor copied as is; PyTorch (out, in, ...) row-major is ggml [in..., out] with the same bytes. */
  copy(name: string, key: string, opts: { matrix?: boolean; shape?: number[] } = {}): void {
    const t = this.info(key);
    const numel = t.shape.reduce((a, b) => a * b, 1);
    const shape = opts.shape ?? (t.shape.length === 0 ? [1] : [...t.shape].reverse());
    if (shape.reduce((a, b) => a * b, 1) !== numel) fail('ERR_CHECKPOINT_INVALID', `${this.file}: '${key}' has ${numel} values, expected [${shape}]`);
    this.plans.push({ name, shape, matrix: !!opts.matrix, produce: () => this.read(key) });
  }

  computed(name: string, shape: number[], matrix: boolean, produce: () => Promise<Float32Array>): void {
    this.plans.push({ name, shape, matrix, produce });
  }

  u32(m: string, f: string, v: number): void { this.meta.push({ key: modalityKey(m, f), type: 'u32', value: v }); }
  f32(m: string, f: string, v: number): void { this.meta.push({ key: modalityKey(m, f), type: 'f32', value: v }); }
  bool(m: string, f: string, v: boolean): void { this.meta.push({ key: modalityKey(m, f), type: 'bool', value: v }); }
  u32s(m: string, f: string, v: number[]): void { this.meta.push({ key: modalityKey(m, f), type: 'array', elemType: 'u32', value: v }); }
  f32s(m: string, f: string, v: number[]): void { this.meta.push({ key: modalityKey(m, f), type: 'array', elemType: 'f32', value: v }); }
}

function cfgOf(config: ImagebindConfig, m: Modality): Record<string, unknown> {
  const c = config[m];
  return c && typeof c === 'object' ? (c as Record<string, unknown>) : {};
}

function num(config: ImagebindConfig, m: Modality, key: string, file: string): number {
  const v = cfgOf(config, m)[key] ?? HUGE_DEFAULTS[m][key];
  if (typeof v !== 'number' || !Number.isFinite(v)) fail('ERR_CONFIG_INVALID', `${file}: config ${m}.${key} must be a number`);
  return v;
}

/** Checks a config value against what the checkpoint's shapes say, when the config states it. */
function agree(config: ImagebindConfig, m: Modality, key: string, actual: number, file: string): void {
  const v = cfgOf(config, m)[key];
  if (typeof v === 'number' && v !== actual) {
    fail('ERR_CONFIG_INVALID', `${file}: config ${m}.${key} = ${v}, but the checkpoint's tensors give ${actual}`);
  }
}

function countBlocks(p: Planner, fmt: (i: number) => string): number {
  let n = 0;
  while (p.has(fmt(n))) n++;
  return n;
}

function logitScale(p: Planner, m: Modality): Promise<number> | number {
  const key = `modality_postprocessors.${m}.1.log_logit_scale`;
  if (!p.has(key)) return m === 'vision' ? 0 : 1;
  // ref: ImageBind LearnableLogitScaling — exp(log scale), clipped at max_logit_scale = 100.
  return p.read(key).then((v) => Math.min(Math.exp(v[0]!), 100));
}

function planBlocks(p: Planner, m: Modality, pfx: string, n: number, point: boolean): void {
  const base = point ? 'point_trunk.point_encoder.blocks.blocks.' : `modality_trunks.${m}.blocks.`;
  for (let i = 0; i < n; i++) {
    const b = `${base}${i}.`;
    p.copy(TN.LN1(pfx, i, 'weight'), b + (point ? 'norm1.weight' : 'norm_1.weight'));
    p.copy(TN.LN1(pfx, i, 'bias'), b + (point ? 'norm1.bias' : 'norm_1.bias'));
    p.copy(TN.LN2(pfx, i, 'weight'), b + (point ? 'norm2.weight' : 'norm_2.weight'));
    p.copy(TN.LN2(pfx, i, 'bias'), b + (point ? 'norm2.bias' : 'norm_2.bias'));
    if (point) {
      p.copy(TN.ATTN_QKV(pfx, i, 'weight'), b + 'attn.qkv.weight', { matrix: true });
      p.copy(TN.ATTN_OUT(pfx, i, 'weight'), b + 'attn.proj.weight', { matrix: true });
      p.copy(TN.ATTN_OUT(pfx, i, 'bias'), b + 'attn.proj.bias');
    } else {
      p.copy(TN.ATTN_QKV(pfx, i, 'weight'), b + 'attn.in_proj_weight', { matrix: true });
      p.copy(TN.ATTN_QKV(pfx, i, 'bias'), b + 'attn.in_proj_bias');
      p.copy(TN.ATTN_OUT(pfx, i, 'weight'), b + 'attn.out_proj.weight', { matrix: true });
      p.copy(TN.ATTN_OUT(pfx, i, 'bias'), b + 'attn.out_proj.bias');
      if (p.has(b + 'attn.bias_k')) {
        const D = p.info(b + 'attn.bias_k').shape.at(-1)!;
        p.copy(TN.ATTN_BIAS_K(pfx, i), b + 'attn.bias_k', { shape: [D] });
        p.copy(TN.ATTN_BIAS_V(pfx, i), b + 'attn.bias_v', { shape: [D] });
      }
    }
    p.copy(TN.FFN_UP(pfx, i, 'weight'), b + 'mlp.fc1.weight', { matrix: true });
    p.copy(TN.FFN_UP(pfx, i, 'bias'), b + 'mlp.fc1.bias');
    p.copy(TN.FFN_DOWN(pfx, i, 'weight'), b + 'mlp.fc2.weight', { matrix: true });
    p.copy(TN.FFN_DOWN(pfx, i, 'bias'), b + 'mlp.fc2.bias');
  }
}

/** Common trunk metadata derived from the block-0 tensors. */
function trunkMeta(p: Planner, config: ImagebindConfig, m: Modality, D: number, nBlocks: number, ffn: number): void {
  const heads = num(config, m, 'num_heads', p.file);
  if (!Number.isInteger(heads) || heads < 1 || D % heads !== 0) fail('ERR_CONFIG_INVALID', `${p.file}: ${m}: ${D} is not divisible by num_heads ${heads}`);
  agree(config, m, 'embed_dim', D, p.file);
  agree(config, m, m === 'point' ? 'depth' : 'num_blocks', nBlocks, p.file);
  agree(config, m, 'mlp_hidden', ffn, p.file);
  p.u32(m, FIELD.EMBED_DIM, D);
  p.u32(m, FIELD.BLOCK_COUNT, nBlocks);
  p.u32(m, FIELD.HEAD_COUNT, heads);
  p.u32(m, FIELD.FFN_DIM, ffn);
}

async function planPatchModality(p: Planner, config: ImagebindConfig, m: Exclude<Modality, 'text' | 'point'>): Promise<void> {
  const pfx = PREFIX[m];
  const pre = `modality_preprocessors.${m}.`;
  const n = countBlocks(p, (i) => `modality_trunks.${m}.blocks.${i}.attn.in_proj_weight`);
  const D = p.info(`modality_trunks.${m}.blocks.0.attn.in_proj_weight`).shape[1]!;
  const ffn = p.info(`modality_trunks.${m}.blocks.0.mlp.fc1.weight`).shape[0]!;
  trunkMeta(p, config, m, D, n, ffn);
  planBlocks(p, m, pfx, n, false);

  // Stem: the conv/linear weight as a matrix over flattened patches.
  const stemKey = { vision: 'rgbt_stem.proj.1', audio: 'rgbt_stem.proj', depth: 'depth_stem.proj', thermal: 'rgbt_stem.proj', imu: 'imu_stem.proj' }[m];
  const w = p.info(pre + stemKey + '.weight');
  const K = w.shape.slice(1).reduce((a, b) => a * b, 1);
  p.copy(TN.PATCH(pfx), pre + stemKey + '.weight', { matrix: true, shape: [K, D] });
  let kernel: number[];
  let stride: number[];
  let inChannels: number;
  if (m === 'imu') {
    inChannels = num(config, m, 'channels', p.file);
    if (K % inChannels !== 0) fail('ERR_CONFIG_INVALID', `${p.file}: imu stem has ${K} inputs, not a multiple of ${inChannels} channels`);
    kernel = [K / inChannels];
    stride = kernel;
    p.u32(m, FIELD.IMU_CHANNELS, inChannels);
    p.u32(m, FIELD.IMU_LENGTH, num(config, m, 'length', p.file));
    p.u32(m, FIELD.IMU_WINDOW, kernel[0]!);
  } else {
    inChannels = w.shape[1]!;
    kernel = w.shape.slice(2);
    // Vision, depth and thermal stems are non-overlapping (stride = kernel); audio's stride is set.
    stride = m === 'audio' ? kernel.map(() => num(config, m, 'stride', p.file)) : kernel;
    const cfgStride = cfgOf(config, m).stride;
    if (m !== 'audio' && cfgStride !== undefined && JSON.stringify([cfgStride].flat().length === 1 ? kernel.map(() => cfgStride) : cfgStride) !== JSON.stringify(stride)) {
      fail('ERR_CONFIG_INVALID', `${p.file}: config ${m}.stride ${JSON.stringify(cfgStride)} differs from the kernel ${JSON.stringify(kernel)}`);
    }
  }
  p.u32(m, FIELD.IN_CHANNELS, inChannels);
  p.u32s(m, FIELD.KERNEL, kernel);
  p.u32s(m, FIELD.STRIDE, stride);

  const stemNorm = pre + stemKey.replace(/\.proj(\.1)?$/, '') + '.norm_layer';
  if (p.has(stemNorm + '.weight')) {
    p.copy(TN.STEM_NORM(pfx, 'weight'), stemNorm + '.weight');
    p.copy(TN.STEM_NORM(pfx, 'bias'), stemNorm + '.bias');
    p.f32(m, FIELD.STEM_LN_EPS, 1e-5);
  }
  p.copy(TN.CLS(pfx), pre + 'cls_token', { shape: [D] });
  const posKey = p.has(pre + 'pos_embedding_helper.pos_embed') ? pre + 'pos_embedding_helper.pos_embed' : pre + 'pos_embed';
  const L = p.info(posKey).shape.at(-2)!;
  p.copy(TN.POS(pfx), posKey, { shape: [D, L] });
  agree(config, m, 'num_tokens', L, p.file);
  p.u32(m, FIELD.NUM_TOKENS, L);
  const preLn = `modality_trunks.${m}.pre_transformer_layer.0`;
  if (p.has(preLn + '.weight')) {
    p.copy(TN.PRE_NORM(pfx, 'weight'), preLn + '.weight');
    p.copy(TN.PRE_NORM(pfx, 'bias'), preLn + '.bias');
    p.bool(m, FIELD.PRE_LN, true);
  }
  p.bool(m, FIELD.KV_BIAS, p.has(`modality_trunks.${m}.blocks.0.attn.bias_k`));
  p.f32(m, FIELD.LN_EPS, 1e-6);
  p.f32(m, FIELD.HEAD_LN_EPS, 1e-6);
  p.f32(m, FIELD.LOGIT_SCALE, await logitScale(p, m));

  const head = `modality_heads.${m}.`;
  p.copy(TN.HEAD_NORM(pfx, 'weight'), head + '0.weight');
  p.copy(TN.HEAD_NORM(pfx, 'bias'), head + '0.bias');
  // The head's Linear sits after LayerNorm, SelectElement (and a Dropout for IMU).
  const headLinear = [2, 3, 1].map((i) => `${head}${i}.weight`).find((k) => p.has(k) && p.info(k).shape.length === 2);
  if (!headLinear) fail('ERR_CHECKPOINT_MISSING_TENSOR', `${p.file}: missing tensor '${p.prefix}${head}2.weight' (the ${m} head projection)`);
  p.copy(TN.HEAD(pfx), headLinear, { matrix: true });

  if (m === 'vision') {
    p.u32(m, FIELD.IMAGE_SIZE, num(config, m, 'image_size', p.file));
    p.u32(m, FIELD.FRAMES, num(config, m, 'video_frames', p.file));
    p.f32s(m, FIELD.IMAGE_MEAN, IMAGE_MEAN);
    p.f32s(m, FIELD.IMAGE_STD, IMAGE_STD);
    p.f32(m, FIELD.CLIP_DURATION, 2);
    p.u32(m, FIELD.CLIPS_PER_VIDEO, 5);
  } else if (m === 'audio') {
    p.u32(m, FIELD.SAMPLE_RATE, 16000);
    p.u32(m, FIELD.MEL_BINS, num(config, m, 'num_mel_bins', p.file));
    p.u32(m, FIELD.TARGET_LEN, num(config, m, 'target_len', p.file));
    p.f32(m, FIELD.CLIP_DURATION, 2);
    p.u32(m, FIELD.CLIPS_PER_VIDEO, 3);
    p.f32(m, FIELD.AUDIO_MEAN, -4.268);
    p.f32(m, FIELD.AUDIO_STD, 9.138);
  } else if (m === 'depth' || m === 'thermal') {
    p.u32(m, FIELD.IMAGE_SIZE, num(config, m, 'image_size', p.file));
  }
}

async function planText(p: Planner, config: ImagebindConfig, bpePath: string): Promise<void> {
  const m = 'text';
  const pfx = PREFIX.text;
  const pre = 'modality_preprocessors.text.';
  const n = countBlocks(p, (i) => `modality_trunks.text.blocks.${i}.attn.in_proj_weight`);
  const D = p.info('modality_trunks.text.blocks.0.attn.in_proj_weight').shape[1]!;
  const ffn = p.info('modality_trunks.text.blocks.0.mlp.fc1.weight').shape[0]!;
  trunkMeta(p, config, m, D, n, ffn);
  planBlocks(p, m, pfx, n, false);
  const [vocab] = p.info(pre + 'token_embedding.weight').shape;
  const L = p.info(pre + 'pos_embed').shape.at(-2)!;
  agree(config, m, 'vocab_size', vocab!, p.file);
  agree(config, m, 'context_length', L, p.file);
  p.copy(TN.TOKEN_EMBD(pfx), pre + 'token_embedding.weight', { matrix: true });
  p.copy(TN.POS(pfx), pre + 'pos_embed', { shape: [D, L] });
  p.copy(TN.HEAD_NORM(pfx, 'weight'), 'modality_heads.text.proj.0.weight');
  p.copy(TN.HEAD_NORM(pfx, 'bias'), 'modality_heads.text.proj.0.bias');
  p.copy(TN.HEAD(pfx), 'modality_heads.text.proj.1.weight', { matrix: true });
  p.u32(m, FIELD.NUM_TOKENS, L);
  p.u32(m, FIELD.CONTEXT_LEN, L);
  p.u32(m, FIELD.VOCAB_SIZE, vocab!);
  p.bool(m, FIELD.CAUSAL, true);
  p.f32(m, FIELD.LN_EPS, 1e-6);
  p.f32(m, FIELD.HEAD_LN_EPS, 1e-6);
  p.f32(m, FIELD.LOGIT_SCALE, await logitScale(p, m));
  let merges: string[];
  try {
    merges = zlib.gunzipSync(fs.readFileSync(bpePath)).toString('utf8').split('\n').slice(1, 1 + CLIP_MERGES);
  } catch (e) {
    fail('ERR_FILE_READ', `${bpePath}: cannot read the CLIP BPE merges: ${(e as Error).message}`);
  }
  if (merges.length !== CLIP_MERGES) fail('ERR_FILE_READ', `${bpePath}: expected ${CLIP_MERGES} merges, found ${merges.length}`);
  p.meta.push({ key: modalityKey(m, FIELD.BPE_MERGES), type: 'array', elemType: 'string', value: merges });
}

async function planPoint(p: Planner, config: ImagebindConfig): Promise<void> {
  const m = 'point';
  const pfx = PREFIX.point;
  const e = 'point_trunk.point_encoder.';
  const n = countBlocks(p, (i) => `${e}blocks.blocks.${i}.attn.qkv.weight`);
  const D = p.info(`${e}cls_token`).shape.at(-1)!;
  const ffn = p.info(`${e}blocks.blocks.0.mlp.fc1.weight`).shape[0]!;
  agree(config, m, 'trans_dim', D, p.file);
  trunkMeta(p, config, m, D, n, ffn);
  planBlocks(p, m, pfx, n, true);
  // Mini-PointNet: fold each eval-mode BatchNorm into the Conv1d before it (exact in real arithmetic).
  const bnEps = 1e-5;
  const convs: Array<[string, string | null]> = [
    ['encoder.first_conv.0', 'encoder.first_conv.1'], ['encoder.first_conv.3', null],
    ['encoder.second_conv.0', 'encoder.second_conv.1'], ['encoder.second_conv.3', null],
  ];
  convs.forEach(([conv, bn], i) => {
    const wi = p.info(`${e}${conv}.weight`);
    const [out, inp] = wi.shape as [number, number];
    p.computed(TN.PT_CONV(i + 1, 'weight'), [inp, out], true, async () => {
      const w = await p.read(`${e}${conv}.weight`);
      if (!bn) return w;
      const [g, be, mu, v] = await Promise.all(['weight', 'bias', 'running_mean', 'running_var'].map((k) => p.read(`${e}${bn}.${k}`)));
      for (let o = 0; o < out; o++) {
        const s = g![o]! / Math.sqrt(v![o]! + bnEps);
        for (let j = 0; j < inp; j++) w[o * inp + j]! *= s;
      }
      void be; void mu;
      return w;
    });
    p.computed(TN.PT_CONV(i + 1, 'bias'), [out], false, async () => {
      const b = await p.read(`${e}${conv}.bias`);
      if (!bn) return b;
      const [g, be, mu, v] = await Promise.all(['weight', 'bias', 'running_mean', 'running_var'].map((k) => p.read(`${e}${bn}.${k}`)));
      for (let o = 0; o < out; o++) b[o] = (b[o]! - mu![o]!) * (g![o]! / Math.sqrt(v![o]! + bnEps)) + be![o]!;
      return b;
    });
  });
  p.copy(TN.PT_REDUCE('weight'), `${e}reduce_dim.weight`, { matrix: true });
  p.copy(TN.PT_REDUCE('bias'), `${e}reduce_dim.bias`);
  p.copy(TN.PT_POS1('weight'), `${e}pos_embed.0.weight`, { matrix: true });
  p.copy(TN.PT_POS1('bias'), `${e}pos_embed.0.bias`);
  p.copy(TN.PT_POS2('weight'), `${e}pos_embed.2.weight`, { matrix: true });
  p.copy(TN.PT_POS2('bias'), `${e}pos_embed.2.bias`);
  p.copy(TN.CLS(pfx), `${e}cls_token`, { shape: [D] });
  p.copy(TN.PT_CLS_POS, `${e}cls_pos`, { shape: [D] });
  p.copy(TN.POST_NORM(pfx, 'weight'), `${e}norm.weight`);
  p.copy(TN.POST_NORM(pfx, 'bias'), `${e}norm.bias`);
  // pc_projection is used as feature @ P (a plain matrix): store its transpose so rows are inputs.
  const [pin, pout] = p.info('point_trunk.pc_projection').shape as [number, number];
  if (pin !== 2 * D) fail('ERR_CHECKPOINT_INVALID', `${p.file}: point_trunk.pc_projection is [${pin}, ${pout}], expected [${2 * D}, P]`);
  p.computed(TN.PT_PROJ, [pin, pout], true, async () => {
    const a = await p.read('point_trunk.pc_projection');
    const t = new Float32Array(a.length);
    for (let i = 0; i < pin; i++) for (let j = 0; j < pout; j++) t[j * pin + i] = a[i * pout + j]!;
    return t;
  });
  p.copy(TN.HEAD_NORM(pfx, 'weight'), 'modality_heads.point.0.weight');
  p.copy(TN.HEAD_NORM(pfx, 'bias'), 'modality_heads.point.0.bias');
  p.copy(TN.HEAD(pfx), 'modality_heads.point.2.weight', { matrix: true });
  const G = num(config, m, 'num_group', p.file);
  p.u32(m, FIELD.NUM_TOKENS, G + 1);
  p.u32(m, FIELD.NUM_GROUP, G);
  p.u32(m, FIELD.GROUP_SIZE, num(config, m, 'group_size', p.file));
  p.u32(m, FIELD.PROJ_DIM, pout);
  p.f32(m, FIELD.LN_EPS, 1e-5);
  p.f32(m, FIELD.HEAD_LN_EPS, 1e-6);
  p.f32(m, FIELD.LOGIT_SCALE, await logitScale(p, m));
}

/** Finds the key prefix of the state dict ('' for a bare state dict, 'model.' when wrapped). */
function statePrefix(ckpt: TorchCheckpoint, file: string): string {
  for (const t of ckpt.tensors()) {
    const i = t.name.indexOf('modality_trunks.');
    if (i >= 0) return t.name.slice(0, i);
  }
  fail('ERR_CHECKPOINT_INVALID', `${file}: not an ImageBind checkpoint (no 'modality_trunks.*' tensors)`);
}

function modalityPresent(p: Planner, m: Modality): boolean {
  return m === 'point' ? p.has('point_trunk.point_encoder.cls_token') : p.has(`modality_trunks.${m}.blocks.0.attn.in_proj_weight`);
}

export async function convertImagebind(checkpoint: string, out: string, options: ConvertImagebindOptions = {}): Promise<ConvertResult> {
  const type = options.type ?? 'f16';
  if (!ENCODER_TYPES.includes(type)) fail('ERR_INVALID_ARG', `unsupported encoder type '${type}' (${ENCODER_TYPES.join(', ')})`);
  const config = loadConfig(options.config);
  const bpePath = options.bpePath ?? path.join(packageRoot, 'assets', 'clip_bpe', 'bpe_simple_vocab_16e6.txt.gz');
  const outputs = OutputFiles.prepare([out]);
  const ckpt = await openTorchCheckpoint(checkpoint).catch((e) => { outputs.discard(); throw e; });
  const writer = new (addon().GgufStreamWriter)(outputs.temp(out));
  try {
    const p = new Planner(ckpt, statePrefix(ckpt, checkpoint), checkpoint);
    const modalities = MODALITIES.filter((m) => modalityPresent(p, m));
    for (const m of modalities) {
      if (m === 'text') await planText(p, config, bpePath);
      else if (m === 'point') await planPoint(p, config);
      else await planPatchModality(p, config, m);
    }
    const outDim = p.info(`modality_heads.${modalities[0]!}.${modalities[0] === 'text' ? 'proj.1' : '2'}.weight`).shape[0]!;
    if (config.out_embed_dim !== undefined && config.out_embed_dim !== outDim) {
      fail('ERR_CONFIG_INVALID', `${checkpoint}: config out_embed_dim = ${config.out_embed_dim}, but the heads project to ${outDim}`);
    }
    writer.setMetadata([
      { key: KEY.ARCH, type: 'string', value: ARCH_IMAGEBIND },
      { key: KEY.NAME, type: 'string', value: options.name ?? path.basename(checkpoint).replace(/\.pth?$/, '') },
      { key: KEY.FILE_TYPE, type: 'string', value: type },
      { key: KEY.OUT_DIM, type: 'u32', value: outDim },
      { key: KEY.MODALITIES, type: 'array', elemType: 'string', value: [...modalities] },
      ...p.meta,
    ]);
    for (const t of p.plans) writer.addTensor(t.name, typeFor(type, t.shape, t.matrix), t.shape);
    writer.begin();
    let bytes = 0;
    const total = p.plans.reduce((a, t) => a + t.shape.reduce((x, y) => x * y, 1) * 4, 0);
    for (const t of p.plans) {
      throwIfAborted(options.signal, 'conversion');
      const data = await t.produce();
      await writeTensorFrom(checkpoint, writer, t.name, data);
      bytes += data.byteLength;
      options.onProgress?.(bytes, total, t.name);
    }
    await writer.finish();
    outputs.commit();
    return { path: out, modalities: [...modalities], tensors: p.plans.length, bytes: fs.statSync(out).size, type };
  } finally {
    writer.dispose();
    outputs.discard();
    await ckpt.close();
  }
}
