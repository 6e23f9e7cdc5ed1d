#!/usr/bin/env node
// npm run bench: encoder speed and memory on a full-size ImageBind-huge (+ Point-Bind) GGUF with random
// weights, made here through the same checkpoint writer, converter and quantizers as real models
// (nothing is downloaded). Prints, for f32/f16/q8_0 and 1 and 2 threads: ms per image, per audio file
// (3 clips), per text, per 5 s video (15 clips), per 8192-point cloud, the vision trunk's GFLOP/s, and
// the peak RSS of each run; plus the converter's time and peak RSS.
//
//   node scripts/bench.mjs [--dir <work dir>] [--types f32,f16,q8_0] [--threads 1,2] [--repeat N]
// The work dir (default: $TMPDIR/imagebind-llm-bench) keeps the 4.5 GB checkpoint and the GGUFs
// between runs; delete it to regenerate.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { HUGE, writeRandomImagebind } from './lib/random-imagebind.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, '..');
const require = createRequire(import.meta.url);
const fixtures = process.env.IMAGEBIND_LLM_FIXTURES ?? path.resolve(root, '..', 'shared', 'fixtures');
const assets = path.join(fixtures, 'assets');

function arg(name, dflt) {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : dflt;
}

// Multiply-adds ×2 of the vision trunk for one 2-frame image: patch projection, blocks, head.
function visionFlops(cfg) {
  const { embed_dim: D, num_blocks: n, mlp_hidden: F } = cfg.vision;
  const L = 257, K = 3 * 2 * 14 * 14;
  const block = 2 * L * D * 3 * D + 2 * 2 * L * L * D + 2 * L * D * D + 2 * 2 * L * D * F;
  return 2 * (L - 1) * K * D + n * block + 2 * D * cfg.out_embed_dim;
}

async function child() {
  // --child <gguf> <threads> <repeat>: one encoder, every input kind; prints JSON.
  const [gguf, threadsArg, repeatArg] = process.argv.slice(process.argv.indexOf('--child') + 1);
  const ibl = require(path.join(root, 'lib', 'index.js'));
  const enc = await ibl.loadEncoder(gguf, { threads: Number(threadsArg), device: 'cpu' });
  const repeat = Number(repeatArg);
  const inputs = {
    image: [{ kind: 'image', path: path.join(assets, 'dog_image.jpg') }],
    audio: [{ kind: 'audio', path: path.join(assets, 'dog_audio.wav') }],
    text: [{ kind: 'text', text: 'a photo of a dog playing in the grass' }],
    video: [{ kind: 'video', path: path.join(assets, 'photos_5s.mp4') }],
    point: [{ kind: 'point', path: path.join(assets, 'airplane.npy') }],
  };
  const ms = {};
  for (const [name, inp] of Object.entries(inputs)) {
    await enc.embed(inp);  // warm-up: page in the weights, build tables
    const times = [];
    for (let i = 0; i < (name === 'video' ? 1 : repeat); i++) {
      const t0 = process.hrtime.bigint();
      await enc.embed(inp);
      times.push(Number(process.hrtime.bigint() - t0) / 1e6);
    }
    ms[name] = Math.min(...times);
  }
  // The vision trunk alone, on a preprocessed tensor (no decoding/resizing in the timing).
  const clip = new Float32Array(3 * 2 * 224 * 224).fill(0.1);
  const times = [];
  for (let i = 0; i < repeat; i++) {
    const t0 = process.hrtime.bigint();
    await enc.embed([{ kind: 'tensor', modality: 'vision', tensor: { data: clip, shape: [clip.length] } }]);
    times.push(Number(process.hrtime.bigint() - t0) / 1e6);
  }
  ms.visionTrunk = Math.min(...times);
  enc.dispose();
  process.stdout.write(JSON.stringify({ ms, maxRssBytes: process.resourceUsage().maxRSS * 1024 }) + '\n');
}

async function main() {
  const dir = arg('dir', path.join(os.tmpdir(), 'imagebind-llm-bench'));
  const types = arg('types', 'f32,f16,q8_0').split(',');
  const threads = arg('threads', '1,2').split(',').map(Number);
  const repeat = Number(arg('repeat', '3'));
  fs.mkdirSync(dir, { recursive: true });
  const ckpt = path.join(dir, 'imagebind_huge_random.pth');
  const mib = (b) => (b / 2 ** 20).toFixed(0);
  console.log(`imagebind-llm encoder benchmark — ${os.cpus()[0]?.model ?? 'cpu'}, ${os.cpus().length} cores, node ${process.version}`);
  if (!fs.existsSync(ckpt)) {
    const t0 = Date.now();
    const size = await writeRandomImagebind(ckpt, HUGE);
    console.log(`wrote a random ImageBind-huge + Point-Bind checkpoint: ${mib(size)} MiB in ${((Date.now() - t0) / 1000).toFixed(0)} s`);
  }
  const ckptSize = fs.statSync(ckpt).size;
  const flops = visionFlops(HUGE);
  const rows = [];
  for (const type of types) {
    const gguf = path.join(dir, `imagebind_huge_random-${type}.gguf`);
    if (!fs.existsSync(gguf)) {
      const r = JSON.parse(execFileSync(process.execPath, [path.join(here, 'lib', 'convert-child.mjs'), ckpt, gguf, type], { encoding: 'utf8' }));
      console.log(`convert ${mib(ckptSize)} MiB checkpoint → ${type}: ${mib(r.result.bytes)} MiB in ${r.seconds.toFixed(1)} s, peak RSS ${mib(r.maxRssBytes)} MiB`);
    }
    for (const n of threads) {
      const r = JSON.parse(execFileSync(process.execPath, [fileURLToPath(import.meta.url), '--child', gguf, String(n), String(repeat)], { encoding: 'utf8' }));
      rows.push({ type, threads: n, ...r.ms, gflops: flops / (r.ms.visionTrunk / 1000) / 1e9, rss: r.maxRssBytes });
    }
  }
  const f = (x) => x.toFixed(0).padStart(9);
  console.log('\n| type | threads | image ms | audio ms (3 clips) | text ms | video ms (15 clips) | point ms (8192) | vision trunk ms | vision GFLOP/s | peak RSS MiB |');
  console.log('|---|---|---|---|---|---|---|---|---|---|');
  for (const r of rows) {
    console.log(`| ${r.type} | ${r.threads} |${f(r.image)} |${f(r.audio)} |${f(r.text)} |${f(r.video)} |${f(r.point)} |${f(r.visionTrunk)} |${r.gflops.toFixed(1).padStart(9)} |${mib(r.rss).padStart(9)} |`);
  }
  console.log(`\nvision trunk: ${(flops / 1e9).toFixed(1)} GFLOP per image (ViT-H/14, 257 tokens)`);
}

if (process.argv.includes('--child')) await child();
else await main();
