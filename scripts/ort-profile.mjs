#!/usr/bin/env node
// Where onnxruntime-node spends its time, to set beside `ibl-driver profile` (issue 10's comparisons):
//   node scripts/ort-profile.mjs trunk <vision|text|audio> [threads] [reps]
//       per-op kernel time of one trunk's ONNX export (onnxruntime's own profiler), summed over the timed
//       runs after a warm-up and divided by their number;
//   node scripts/ort-profile.mjs gemm <M> <N> <K> [threads] [reps]
//       one Gemm node (X[M,K] · W[N,K]^T + b, the weight an initializer: a linear layer) built here,
//       best and median ms and GFLOP/s; compare with `ibl-driver matmul M N K threads f32 reps`.
// Needs IMAGEBIND_LLM_BENCH_ORT (the onnxruntime-node package folder) and, for `trunk`,
// IMAGEBIND_LLM_BENCH_ONNX (the exports of ../shared/bench/ort_export.py), as scripts/bench.mjs does.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createRequire } from 'node:module';
import { ortSessionOptions, readNpy } from './lib/bench-inputs.mjs';

const require = createRequire(import.meta.url);
const { IMAGEBIND_LLM_BENCH_ORT: ortModule, IMAGEBIND_LLM_BENCH_ONNX: onnxDir } = process.env;
const [mode, ...rest] = process.argv.slice(2);
const usage = 'usage: ort-profile.mjs trunk <vision|text|audio> [threads] [reps] | gemm <M> <N> <K> [threads] [reps]';
if (!ortModule || !['trunk', 'gemm'].includes(mode)) {
  console.error(`${usage}\n(IMAGEBIND_LLM_BENCH_ORT must name the onnxruntime-node package folder)`);
  process.exit(2);
}
const ort = require(ortModule);

async function profileTrunk(trunk, threads, reps) {
  if (!onnxDir) throw new Error('IMAGEBIND_LLM_BENCH_ONNX must name the folder of the ONNX exports');
  const prefix = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'ibl-ort-profile-')), trunk);
  const sess = await ort.InferenceSession.create(path.join(onnxDir, `${trunk}.onnx`),
    { ...ortSessionOptions(threads), enableProfiling: true, profileFilePrefix: prefix });
  const x = readNpy(path.join(onnxDir, `${trunk}.in.npy`));
  const feeds = { x: new ort.Tensor(x.type, x.data, x.shape) };
  for (let i = 0; i <= reps; i++) await sess.run(feeds);
  sess.endProfiling();
  await sess.release();
  const dir = path.dirname(prefix);
  const events = JSON.parse(fs.readFileSync(path.join(dir, fs.readdirSync(dir).find((f) => f.endsWith('.json'))), 'utf8'));
  fs.rmSync(dir, { recursive: true, force: true });
  const runs = events.filter((e) => e.name === 'model_run');
  const t0 = runs[1].ts;  // after the warm-up
  const ms = new Map(), count = new Map();
  for (const e of events) {
    if (e.cat !== 'Node' || !e.name.endsWith('_kernel_time') || e.ts < t0) continue;
    const op = e.args.op_name;
    ms.set(op, (ms.get(op) ?? 0) + e.dur / 1000 / reps);
    count.set(op, (count.get(op) ?? 0) + 1 / reps);
  }
  console.log(`onnxruntime-node ${ort.env.versions?.common ?? ''}, ${trunk}, ${threads} threads, per run (mean of ${reps} after a warm-up):`);
  console.log('| op | ms | nodes |\n|---|---|---|');
  for (const [op, t] of [...ms].sort((a, b) => b[1] - a[1])) console.log(`| ${op} | ${t.toFixed(1)} | ${Math.round(count.get(op))} |`);
  console.log(`| all kernels | ${[...ms.values()].reduce((a, b) => a + b, 0).toFixed(1)} | |`);
  console.log(`model_run ms: ${runs.slice(1).map((r) => (r.dur / 1000).toFixed(0)).join(', ')}`);
}

// A one-node ONNX model written directly in protobuf wire format (ModelProto with a GraphProto).
function gemmModel(M, N, K) {
  const varint = (n) => { const o = []; let v = BigInt(n); do { let b = Number(v & 0x7fn); v >>= 7n; if (v) b |= 0x80; o.push(b); } while (v); return o; };
  const key = (f, w) => varint((f << 3) | w);
  const int = (f, n) => Buffer.from([...key(f, 0), ...varint(n)]);
  const bytes = (f, b) => Buffer.concat([Buffer.from([...key(f, 2), ...varint(b.length)]), Buffer.from(b)]);
  const str = (f, s) => bytes(f, Buffer.from(s));
  const msg = (f, ...parts) => bytes(f, Buffer.concat(parts));
  const random = (n) => Float32Array.from({ length: n }, () => Math.random() - 0.5);
  const tensor = (name, dims, data) => msg(5, ...dims.map((d) => int(1, d)), int(2, 1), str(8, name), bytes(9, Buffer.from(data.buffer)));
  const valueInfo = (f, name, dims) => msg(f, str(1, name), msg(2, msg(1, int(1, 1), msg(2, ...dims.map((d) => msg(1, int(1, d)))))));
  const node = msg(1, str(1, 'x'), str(1, 'w'), str(1, 'b'), str(2, 'y'), str(3, 'gemm'), str(4, 'Gemm'),
    msg(5, str(1, 'transB'), int(3, 1), int(20, 2)));
  const graph = msg(7, node, str(2, 'g'), tensor('w', [N, K], random(N * K)), tensor('b', [N], random(N)),
    valueInfo(11, 'x', [M, K]), valueInfo(12, 'y', [M, N]));
  return { model: Buffer.concat([int(1, 8), graph, msg(8, str(1, ''), int(2, 17))]), x: random(M * K) };
}

async function timeGemm(M, N, K, threads, reps) {
  const { model, x } = gemmModel(M, N, K);
  const sess = await ort.InferenceSession.create(model, ortSessionOptions(threads));
  const feeds = { x: new ort.Tensor('float32', x, [M, K]) };
  await sess.run(feeds);
  const ts = [];
  for (let i = 0; i < reps; i++) {
    const t = performance.now();
    await sess.run(feeds);
    ts.push(performance.now() - t);
  }
  await sess.release();
  ts.sort((a, b) => a - b);
  const rate = (ms) => +(2 * M * N * K / ms / 1e6).toFixed(1);
  console.log(JSON.stringify({ M, N, K, threads, best_ms: +ts[0].toFixed(3), median_ms: +ts[ts.length >> 1].toFixed(3), gflops_best: rate(ts[0]), gflops_median: rate(ts[ts.length >> 1]) }));
}

const positive = (s, name) => {
  const n = Number(s);
  if (!Number.isInteger(n) || n < 1) { console.error(`${name} must be a positive integer\n${usage}`); process.exit(2); }
  return n;
};
if (mode === 'trunk') {
  const [trunk, threads = '2', reps = '3'] = rest;
  if (!['vision', 'text', 'audio'].includes(trunk)) { console.error(usage); process.exit(2); }
  await profileTrunk(trunk, positive(threads, 'threads'), positive(reps, 'reps'));
} else {
  const [M, N, K, threads = '2', reps = '15'] = rest;
  await timeGemm(positive(M, 'M'), positive(N, 'N'), positive(K, 'K'), positive(threads, 'threads'), positive(reps, 'reps'));
}
