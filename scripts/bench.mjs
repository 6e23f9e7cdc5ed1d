#!/usr/bin/env node
// npm run bench: encoder speed and memory on a full-size ImageBind-huge (+ Point-Bind) GGUF with random
// weights, made here through the same checkpoint writer, converter and quantizers as real models
// (nothing is downloaded). In one run, on the same threads:
//   - the machine's ggml f32 matmul rate (one mul_mat of 2048 x 4096 by 4096 x 4096, ibl-driver matmul);
//   - per type and trunk (vision: one image, text: one 77-token text, audio: 3 clips; preprocessed input
//     tensors, no decoding): ms, GFLOP/s, % of that matmul rate, and the peak RSS of a process that uses
//     only that trunk (so "vision" is an image-only user's memory);
//   - onnxruntime-node on the same trunks, when the reference runtime and its exports are there:
//       IMAGEBIND_LLM_BENCH_ORT   the onnxruntime-node package folder (…/node_modules/onnxruntime-node)
//       IMAGEBIND_LLM_BENCH_ONNX  the folder ../shared/bench/ort_export.py wrote (vision.onnx, … + *.in.npy)
//     (../shared/bench/README.md sets both up). Ours (every type) and onnxruntime-node are timed in
//     alternation: --pair-rounds rounds (default 3 with onnxruntime-node, else 1), each running all of them,
//     each alone in its own process as a user would run it, the order rotated every round, so that a change
//     in the machine's speed during the run reaches all alike; a ratio is the median of the rounds' ratios.
//     (Both runtimes in one process, calls alternated, slowed ours by 5-20 % on a 2-core machine without
//     either spinning while idle: each process gets the machine to itself.)
//   - the BLAS sgemm rate of the same shape (numpy's matmul, 2048 x 4096 by 4096 x 4096), when
//       IMAGEBIND_LLM_BENCH_NUMPY names a python with numpy (e.g. Debian's /usr/bin/python3 + OpenBLAS);
//   - end to end per type (unless --no-e2e): ms per image, audio file, text, 5 s video, 8192-point cloud.
//
//   node scripts/bench.mjs [--dir <work dir>] [--types f32,f16,bf16,q8_0] [--threads N] [--repeat N]
//                          [--trunks vision,text,audio] [--pair-rounds N] [--no-e2e]
// The work dir (default: $TMPDIR/imagebind-llm-bench) keeps the 4.5 GB checkpoint and the GGUFs between
// runs; delete it to regenerate. Threads default to the cores this process may use.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { HUGE, writeRandomImagebind } from './lib/random-imagebind.mjs';
import { ortSessionOptions, readNpy, trunkInput } from './lib/bench-inputs.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, '..');
const require = createRequire(import.meta.url);
const fixtures = process.env.IMAGEBIND_LLM_FIXTURES ?? path.resolve(root, '..', 'shared', 'fixtures');
const assets = path.join(fixtures, 'assets');
const driver = path.join(root, 'build', 'native', process.platform === 'win32' ? 'ibl-driver.exe' : 'ibl-driver');

function arg(name, dflt) {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : dflt;
}

const mib = (b) => (b / 2 ** 20).toFixed(0);
const median = (xs) => [...xs].sort((a, b) => a - b)[xs.length >> 1];

// Multiply-adds x 2 of one trunk call as benchmarked (items x (stem + blocks + head)); attention with
// ImageBind's extra bias key/value token where the trunk has one (audio).
function trunkFlops(cfg, trunk) {
  const c = cfg[trunk];
  const D = c.embed_dim, F = c.mlp_hidden, n = c.num_blocks;
  const shape = {
    vision: { items: 1, L: 257, Lk: 257, K: 3 * 2 * 14 * 14 },
    text: { items: 1, L: 77, Lk: 77, K: 0 },
    audio: { items: 3, L: c.num_tokens, Lk: c.num_tokens + 1, K: c.kernel_size * c.kernel_size },
  }[trunk];
  const { items, L, Lk, K } = shape;
  const block = 2 * L * D * 3 * D + 2 * 2 * L * Lk * D + 2 * L * D * D + 2 * 2 * L * D * F;
  return items * (2 * (L - 1) * K * D + n * block + 2 * D * cfg.out_embed_dim);
}

async function timed(fn, repeat) {
  await fn();  // warm-up: pages the trunk's weights in, builds tables
  const times = [];
  for (let i = 0; i < repeat; i++) {
    const t0 = process.hrtime.bigint();
    await fn();
    times.push(Number(process.hrtime.bigint() - t0) / 1e6);
  }
  return median(times);
}

const maxRss = () => process.resourceUsage().maxRSS * 1024;

async function childTrunk() {
  // --child-trunk <gguf> <trunk> <threads> <repeat>: this trunk only, in its own process.
  const [gguf, trunk, threads, repeat] = process.argv.slice(process.argv.indexOf('--child-trunk') + 1);
  const ibl = require(path.join(root, 'lib', 'index.js'));
  const enc = await ibl.loadEncoder(gguf, { threads: Number(threads), device: 'cpu' });
  const input = trunkInput(trunk);
  const ms = await timed(() => enc.embed([input]), Number(repeat));
  enc.dispose();
  process.stdout.write(JSON.stringify({ ms, maxRssBytes: maxRss() }) + '\n');
}

async function childOrt() {
  // --child-ort <trunk> <threads> <repeat>: onnxruntime-node's CPU provider on the export of the trunk.
  const [trunk, threads, repeat] = process.argv.slice(process.argv.indexOf('--child-ort') + 1);
  const ort = require(process.env.IMAGEBIND_LLM_BENCH_ORT);
  const dir = process.env.IMAGEBIND_LLM_BENCH_ONNX;
  const sess = await ort.InferenceSession.create(path.join(dir, `${trunk}.onnx`), ortSessionOptions(Number(threads)));
  const x = readNpy(path.join(dir, `${trunk}.in.npy`));
  const feeds = { x: new ort.Tensor(x.type, x.data, x.shape) };
  const ms = await timed(() => sess.run(feeds), Number(repeat));
  await sess.release();
  process.stdout.write(JSON.stringify({ ms, maxRssBytes: maxRss(), version: ort.env.versions?.common ?? '' }) + '\n');
}

async function childE2e() {
  // --child-e2e <gguf> <threads> <repeat>: every input kind from its source file; prints JSON.
  const [gguf, threads, repeat] = process.argv.slice(process.argv.indexOf('--child-e2e') + 1);
  const ibl = require(path.join(root, 'lib', 'index.js'));
  const enc = await ibl.loadEncoder(gguf, { threads: Number(threads), device: 'cpu' });
  const inputs = {
    image: { kind: 'image', path: path.join(assets, 'dog_image.jpg') },
    audio: { kind: 'audio', path: path.join(assets, 'dog_audio.wav') },
    text: { kind: 'text', text: 'a photo of a dog playing in the grass' },
    video: { kind: 'video', path: path.join(assets, 'photos_5s.mp4') },
    point: { kind: 'point', path: path.join(assets, 'airplane.npy') },
  };
  const ms = {};
  for (const [name, input] of Object.entries(inputs)) {
    ms[name] = await timed(() => enc.embed([input]), name === 'video' ? 1 : Number(repeat));
  }
  enc.dispose();
  process.stdout.write(JSON.stringify({ ms, maxRssBytes: maxRss() }) + '\n');
}

function runChild(args, env = process.env) {
  return JSON.parse(execFileSync(process.execPath, [fileURLToPath(import.meta.url), ...args], { encoding: 'utf8', env, maxBuffer: 1 << 24 }));
}

// The ISA extensions that matter here, from the OS (Linux /proc/cpuinfo; elsewhere the build's view).
function cpuExtensions() {
  try {
    const flags = fs.readFileSync('/proc/cpuinfo', 'utf8').match(/^flags\s*:(.*)$/m)[1].trim().split(/\s+/);
    return flags.filter((f) => /^(avx2|fma|f16c|avx512(f|bw|vl|_bf16|_vnni|_fp16|vnni)|avx_vnni|amx_\w+)$/.test(f)).join(' ');
  } catch {
    return 'unknown';
  }
}

// numpy's sgemm on the same threads (its BLAS: OpenBLAS where installed), or null.
function blasRate(threads) {
  const python = process.env.IMAGEBIND_LLM_BENCH_NUMPY;
  if (!python) return null;
  const code = 'import numpy as np, time, json\n' +
    'a = np.random.rand(2048, 4096).astype(np.float32); b = np.random.rand(4096, 4096).astype(np.float32)\n' +
    'a @ b\nts = []\nfor _ in range(3):\n    t = time.perf_counter(); a @ b; ts.append(time.perf_counter() - t)\n' +
    'print(json.dumps({"ms": min(ts) * 1e3, "gflops": 2 * 2048 * 4096 * 4096 / min(ts) / 1e9}))\n';
  const env = { ...process.env, OPENBLAS_NUM_THREADS: String(threads), OMP_NUM_THREADS: String(threads), MKL_NUM_THREADS: String(threads) };
  delete env.OPENBLAS_CORETYPE;
  delete env.OPENBLAS_L2_SIZE;
  return JSON.parse(execFileSync(python, ['-c', code], { encoding: 'utf8', env }));
}

function matmulRate(threads) {
  if (!fs.existsSync(driver)) return null;
  return JSON.parse(execFileSync(driver, ['matmul', '2048', '4096', '4096', String(threads), 'f32', '3'], { encoding: 'utf8' }));
}

async function ensureModels(dir, types) {
  fs.mkdirSync(dir, { recursive: true });
  const ckpt = path.join(dir, 'imagebind_huge_random.pth');
  if (!fs.existsSync(ckpt)) {
    const t0 = Date.now();
    const size = await writeRandomImagebind(ckpt, HUGE);
    console.log(`wrote a random ImageBind-huge + Point-Bind checkpoint: ${mib(size)} MiB in ${((Date.now() - t0) / 1000).toFixed(0)} s`);
  }
  const ckptSize = fs.statSync(ckpt).size;
  const ggufs = {};
  for (const type of types) {
    ggufs[type] = path.join(dir, `imagebind_huge_random-${type}.gguf`);
    if (fs.existsSync(ggufs[type])) continue;
    const r = JSON.parse(execFileSync(process.execPath, [path.join(here, 'lib', 'convert-child.mjs'), ckpt, ggufs[type], type], { encoding: 'utf8' }));
    console.log(`convert ${mib(ckptSize)} MiB checkpoint → ${type}: ${mib(r.result.bytes)} MiB in ${r.seconds.toFixed(1)} s, peak RSS ${mib(r.maxRssBytes)} MiB`);
  }
  return ggufs;
}

// rows: ours per type and trunk, medians over the rounds (with onnxruntime-node's median and the median of the
// rounds' ratios); ortRows: onnxruntime-node's ms by round per trunk.
function printTrunks(rows, ortRows, rounds, rate, threads) {
  const f = (x, d = 0) => (x === undefined || x === null ? '—' : x.toFixed(d));
  const list = (xs, d = 0) => xs.map((x) => f(x, d)).join(', ');
  const o0 = Object.values(ortRows)[0];
  if (rounds > 1) {
    console.log(`\n${rounds} rounds per trunk, each running every type${o0 ? ' and onnxruntime-node' : ''} alone in its own process, ` +
      'the order rotated each round; ms: the median of the rounds, ratio: the median of the rounds\' ratios.');
  }
  console.log(`\n| type | trunk | ms | GFLOP | GFLOP/s | % of f32 matmul | peak RSS MiB | onnxruntime-node ms | ours / ORT |`);
  console.log('|---|---|---|---|---|---|---|---|---|');
  for (const r of rows) {
    console.log(`| ${r.type} | ${r.trunk} | ${f(r.ms)} | ${f(r.flop / 1e9, 1)} | ${f(r.gflops, 1)} | ${rate ? f((100 * r.gflops) / rate.gflops) : '—'} | ` +
      `${mib(r.rss)} | ${f(r.ortMs)} | ${f(r.ratio, 2)} |`);
  }
  if (rounds > 1) {
    console.log('\nBy round (ms; ours / ORT):\n');
    console.log('| type | trunk | ms by round | ours / ORT by round |');
    console.log('|---|---|---|---|');
    for (const [trunk, o] of Object.entries(ortRows)) console.log(`| onnxruntime-node | ${trunk} | ${list(o.byRound)} | |`);
    for (const r of rows) console.log(`| ${r.type} | ${r.trunk} | ${list(r.byRound)} | ${r.ratios ? list(r.ratios, 3) : ''} |`);
  }
  if (o0) {
    console.log(`\nonnxruntime-node ${o0.version} (CPU provider, ${threads} intra-op threads), peak RSS MiB: ` +
      Object.entries(ortRows).map(([t, o]) => `${t} ${mib(o.rss)}`).join(', '));
  }
}

async function main() {
  const dir = arg('dir', path.join(os.tmpdir(), 'imagebind-llm-bench'));
  const types = arg('types', 'f32,f16,bf16,q8_0').split(',');
  const threads = Number(arg('threads', String(os.availableParallelism?.() ?? os.cpus().length)));
  const repeat = Number(arg('repeat', '3'));
  const trunks = arg('trunks', 'vision,text,audio').split(',').filter(Boolean);
  const ibl = require(path.join(root, 'lib', 'index.js'));
  console.log(`imagebind-llm encoder benchmark — ${os.cpus()[0]?.model ?? 'cpu'}, ${os.cpus().length} cores, ${threads} threads, node ${process.version}`);
  console.log(`CPU extensions: ${cpuExtensions()}`);
  const mods = ibl.backendModules();
  console.log(`build: ${ibl.systemInfo().trim()}`);
  console.log(`CPU module: ${mods.cpuModule} (variant ${mods.cpuVariant}${mods.cpuVariant === 'native' ? ': a source build, -march=native' : ', chosen at run time as in the prebuilt packages'}) from ${mods.dir}`);
  const ggufs = await ensureModels(dir, types);

  const rate = matmulRate(threads);
  console.log(rate ? `ggml f32 mul_mat 2048x4096 · 4096x4096, ${threads} threads: ${rate.ms.toFixed(0)} ms, ${rate.gflops.toFixed(1)} GFLOP/s`
    : `(no ${path.relative(root, driver)}: build it with IMAGEBIND_LLM_BUILD_TOOLS=1 for the matmul reference)`);

  const blas = blasRate(threads);
  if (blas) console.log(`numpy (BLAS) sgemm, same shape and threads: ${blas.ms.toFixed(0)} ms, ${blas.gflops.toFixed(1)} GFLOP/s` +
    (rate ? ` (ggml: ${((100 * rate.gflops) / blas.gflops).toFixed(0)} % of it)` : ''));

  // Per trunk, --pair-rounds rounds: every type of ours and onnxruntime-node (when there), each alone in its own
  // process, the order rotated each round; a type's ms is its median over the rounds, its ratio the median
  // of the rounds' ratios to onnxruntime-node's ms of the same round.
  const { IMAGEBIND_LLM_BENCH_ORT: ortModule, IMAGEBIND_LLM_BENCH_ONNX: onnxDir } = process.env;
  const withOrt = Boolean(ortModule && onnxDir);
  if (!withOrt) console.log('(onnxruntime-node not measured: set IMAGEBIND_LLM_BENCH_ORT and IMAGEBIND_LLM_BENCH_ONNX, see ../shared/bench/README.md)');
  const rounds = Number(arg('pair-rounds', withOrt ? '3' : '1'));
  const rows = [], ortRows = {};
  for (const trunk of trunks) {
    const hasOrt = withOrt && fs.existsSync(path.join(onnxDir, `${trunk}.onnx`));
    const runs = [...types.map((type) => ({ type, run: () => runChild(['--child-trunk', ggufs[type], trunk, String(threads), String(repeat)]) })),
      ...(hasOrt ? [{ type: 'ort', run: () => runChild(['--child-ort', trunk, String(threads), String(repeat)]) }] : [])];
    const byRound = [];
    for (let i = 0; i < rounds; i++) {
      const r = {};
      for (let j = 0; j < runs.length; j++) {
        const { type, run } = runs[(i + j) % runs.length];
        r[type] = run();
      }
      byRound.push(r);
    }
    const flop = trunkFlops(HUGE, trunk);
    for (const type of types) {
      const ms = median(byRound.map((r) => r[type].ms));
      const ratios = hasOrt ? byRound.map((r) => r[type].ms / r.ort.ms) : undefined;
      rows.push({
        type, trunk, ms, flop, gflops: flop / ms / 1e6, rss: Math.max(...byRound.map((r) => r[type].maxRssBytes)),
        byRound: byRound.map((r) => r[type].ms),
        ortMs: hasOrt ? median(byRound.map((r) => r.ort.ms)) : undefined,
        ratio: ratios && median(ratios),
        ratios,
      });
    }
    if (hasOrt) {
      ortRows[trunk] = { byRound: byRound.map((r) => r.ort.ms), version: byRound[0].ort.version, rss: Math.max(...byRound.map((r) => r.ort.maxRssBytes)) };
    }
  }
  printTrunks(rows, ortRows, rounds, rate, threads);

  if (!process.argv.includes('--no-e2e')) {
    console.log('\n| type | image ms | audio ms (3 clips) | text ms | video ms (5 s, 15 clips) | point ms (8192 pts) | peak RSS MiB (all trunks) |');
    console.log('|---|---|---|---|---|---|---|');
    for (const type of types) {
      const r = runChild(['--child-e2e', ggufs[type], String(threads), String(repeat)]);
      const f = (x) => x.toFixed(0);
      console.log(`| ${type} | ${f(r.ms.image)} | ${f(r.ms.audio)} | ${f(r.ms.text)} | ${f(r.ms.video)} | ${f(r.ms.point)} | ${mib(r.maxRssBytes)} |`);
    }
  }
  console.log('\nms: median of the repeats after a warm-up; trunks on preprocessed input tensors of the ONNX exports\' shapes.');
}

if (process.argv.includes('--child-trunk')) await childTrunk();
else if (process.argv.includes('--child-ort')) await childOrt();
else if (process.argv.includes('--child-e2e')) await childE2e();
else await main();
