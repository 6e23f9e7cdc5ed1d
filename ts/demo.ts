// `imagebind-llm demo`: a tiny model set with RANDOM weights that the package builds for itself, and
// sample media it synthesises, so a fresh machine without downloaded weights runs every stage
// (checkpoint → converter → GGUF → preprocessing → encoders). The numbers it prints are meaningless
// as semantics; they show that the pipeline runs.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { pathToFileURL } from 'node:url';
import { packageRoot } from './binding';
import { convertImagebind } from './convert/imagebind';
import { convertLlm } from './convert/llm';
import type { EmbedInput } from './encoder';
import { findFfmpeg } from './ffmpeg';

const run = promisify(execFile);
// TypeScript compiles import() to require() for CommonJS; the generators are ES modules.
const importEsm = new Function('s', 'return import(s)') as (s: string) => Promise<Record<string, unknown>>;

export const DEMO_LABEL = 'RANDOM WEIGHTS — imagebind-llm demo model, not a trained model';

/** Small dimensions, real geometries (224×224 images, 2-frame clips, 128×204 spectrograms, 77 tokens). */
export const DEMO_CONFIG = {
  out_embed_dim: 32,
  vision: { embed_dim: 64, num_blocks: 2, num_heads: 4, mlp_hidden: 256 },
  text: { embed_dim: 64, num_blocks: 2, num_heads: 4, mlp_hidden: 256, context_length: 77, vocab_size: 49408 },
  audio: { embed_dim: 48, num_blocks: 2, num_heads: 4, mlp_hidden: 192, kernel_size: 16, stride: 10, num_tokens: 229 },
  depth: { embed_dim: 32, num_blocks: 2, num_heads: 2, mlp_hidden: 128, kernel_size: 16, num_tokens: 197 },
  thermal: { embed_dim: 48, num_blocks: 2, num_heads: 4, mlp_hidden: 192, kernel_size: 16, num_tokens: 197 },
  imu: { embed_dim: 32, num_blocks: 2, num_heads: 2, mlp_hidden: 128, channels: 6, num_tokens: 251 },
  point: { trans_dim: 32, depth: 2, num_heads: 2, mlp_hidden: 128, num_group: 64, group_size: 28, encoder_dims: 64, pc_projection_shape: [64, 40] },
};

export interface DemoSet {
  dir: string;
  encoder: string;
  /** The demo LLM: <prefix>-llm.gguf and <prefix>-bind.gguf (RANDOM weights). */
  llm: string;
  bind: string;
  inputs: EmbedInput[];
}

/** A tiny LLaMA (random weights) whose bind network takes the demo encoder's 32-d embeddings. */
export const DEMO_LLAMA = { dim: 64, n_layers: 2, n_heads: 4, multiple_of: 32, norm_eps: 1e-6, vocab_size: 600, imagebind_out_dim: 32, lora_rank: 4 };

export function defaultDemoDir(): string {
  const base = process.env.XDG_CACHE_HOME || path.join(os.homedir(), '.cache');
  return path.join(base, 'imagebind-llm', 'demo');
}

function writeNpyF32(file: string, shape: number[], data: Float32Array): void {
  let header = `{'descr': '<f4', 'fortran_order': False, 'shape': (${shape.join(', ')}${shape.length === 1 ? ',' : ''}), }`;
  while ((10 + header.length + 1) % 64 !== 0) header += ' ';
  header += '\n';
  const pre = Buffer.from([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, 1, 0, header.length & 0xff, header.length >> 8]);
  fs.writeFileSync(file, Buffer.concat([pre, Buffer.from(header, 'latin1'), Buffer.from(data.buffer, data.byteOffset, data.byteLength)]));
}

/** Synthesises the sample media: ffmpeg test patterns and tones, and computed IMU / point data. */
async function makeMedia(dir: string): Promise<EmbedInput[]> {
  const ff = (await findFfmpeg()).path;
  const f = (name: string) => path.join(dir, name);
  const lavfi = async (args: string[], out: string) => {
    if (!fs.existsSync(out)) await run(ff, ['-nostdin', '-loglevel', 'error', '-y', '-f', 'lavfi', ...args, out]);
  };
  await lavfi(['-i', 'testsrc2=size=320x240:duration=1', '-frames:v', '1'], f('pattern.png'));
  await lavfi(['-i', 'mandelbrot=size=320x240', '-frames:v', '1', '-q:v', '3'], f('mandelbrot.jpg'));
  await lavfi(['-i', 'testsrc2=size=320x240:rate=25:duration=3', '-pix_fmt', 'yuv420p', '-c:v', 'mpeg4', '-q:v', '4'], f('pattern.mp4'));
  await lavfi(['-i', 'sine=frequency=440:sample_rate=44100:duration=3'], f('tone.wav'));
  await lavfi(['-i', 'testsrc2=size=224x224:duration=1', '-frames:v', '1', '-pix_fmt', 'gray16be'], f('depth.png'));
  await lavfi(['-i', 'testsrc2=size=224x224:duration=1', '-frames:v', '1', '-pix_fmt', 'gray'], f('thermal.png'));
  if (!fs.existsSync(f('imu.npy'))) {
    const imu = new Float32Array(6 * 2000);
    for (let c = 0; c < 6; c++) for (let i = 0; i < 2000; i++) imu[c * 2000 + i] = Math.sin((i / 200) * (c + 1)) + (c === 2 ? 9.81 : 0);
    writeNpyF32(f('imu.npy'), [6, 2000], imu);
  }
  if (!fs.existsSync(f('torus.xyz'))) {
    const lines: string[] = [];
    for (let i = 0; i < 2048; i++) {
      const u = (2 * Math.PI * i) / 2048 * 37, v = (2 * Math.PI * i) / 2048;
      lines.push(`${((1 + 0.3 * Math.cos(u)) * Math.cos(v)).toFixed(6)} ${((1 + 0.3 * Math.cos(u)) * Math.sin(v)).toFixed(6)} ${(0.3 * Math.sin(u)).toFixed(6)}`);
    }
    fs.writeFileSync(f('torus.xyz'), lines.join('\n') + '\n');
  }
  return [
    { kind: 'image', path: f('pattern.png') },
    { kind: 'image', path: f('mandelbrot.jpg') },
    { kind: 'video', path: f('pattern.mp4') },
    { kind: 'audio', path: f('tone.wav') },
    { kind: 'depth', path: f('depth.png') },
    { kind: 'thermal', path: f('thermal.png') },
    { kind: 'imu', path: f('imu.npy') },
    { kind: 'point', path: f('torus.xyz') },
    { kind: 'text', text: 'a test pattern' },
    { kind: 'text', text: 'a sine tone' },
  ];
}

/** Builds (once) the demo encoder from a random checkpoint through the real converter, and the media. */
export async function buildDemo(dir = defaultDemoDir(), log: (msg: string) => void = () => {}): Promise<DemoSet> {
  fs.mkdirSync(dir, { recursive: true });
  const encoder = path.join(dir, 'demo-encoder-RANDOM-f16.gguf');
  if (!fs.existsSync(encoder)) {
    log(`building a tiny demo encoder with RANDOM weights in ${dir}`);
    const ckpt = path.join(dir, 'demo-imagebind-RANDOM.pth');
    const gen = await importEsm(pathToFileURL(path.join(packageRoot, 'scripts', 'lib', 'random-imagebind.mjs')).href);
    await (gen.writeRandomImagebind as (f: string, c: unknown) => Promise<number>)(ckpt, DEMO_CONFIG);
    await convertImagebind(ckpt, encoder, { config: DEMO_CONFIG, type: 'f16', name: DEMO_LABEL });
    fs.rmSync(ckpt, { force: true });
  }
  const prefix = path.join(dir, 'demo-llama-RANDOM');
  if (!fs.existsSync(`${prefix}-llm.gguf`) || !fs.existsSync(`${prefix}-bind.gguf`)) {
    log(`building a tiny demo LLaMA + adapter with RANDOM weights in ${dir}`);
    const src = path.join(dir, 'demo-llama-src');
    const gen = await importEsm(pathToFileURL(path.join(packageRoot, 'scripts', 'lib', 'random-llama.mjs')).href);
    const r = await (gen.writeRandomLlama as (d: string, c: unknown) => Promise<{ llamaDir: string; adapter: string }>)(src, DEMO_LLAMA);
    await convertLlm({ llamaDir: r.llamaDir, adapter: r.adapter, outPrefix: prefix, type: 'f16', name: DEMO_LABEL });
    fs.rmSync(src, { recursive: true, force: true });
  }
  return { dir, encoder, llm: `${prefix}-llm.gguf`, bind: `${prefix}-bind.gguf`, inputs: await makeMedia(dir) };
}
