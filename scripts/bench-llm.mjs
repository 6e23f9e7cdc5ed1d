#!/usr/bin/env node
// LLM benchmark (npm run bench:llm): prompt processing and decoding speed of a LLaMA-7B-shaped model
// with RANDOM weights at q4_0, made through our own converter (random Meta-layout checkpoint + adapter →
// convert llm), against llama.cpp's own llama-bench built from the same pinned source on the same file,
// in one run: llama-bench, our session without injection and our session with an image's injection
// set take turns, once per repetition, and every repetition is printed with the spread (min / median /
// max) so that the noise is visible next to the ratios. Then the time to first token of one image
// question end to end (encoder + bind + injection + prompt + first token), with an ImageBind-huge f16
// encoder this script makes itself when `npm run bench` has not made one.
//
//   node scripts/bench-llm.mjs [--dir <work dir>] [--threads N] [--pp 512] [--tg 128] [--reps 3]
//                              [--shape 7b|small] [--no-bias] [--no-ttft]
//
// --shape small (dim 2048, 16 layers) is for quick checks while developing; figures are for 7b.
// --no-bias runs on a copy of the model without its attention output biases (made once): the injection
// then has to add one bias per layer, and this measures what that costs.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { LLAMA_7B, writeRandomLlama } from './lib/random-llama.mjs';
import { HUGE, writeRandomImagebind } from './lib/random-imagebind.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, '..');
const require = createRequire(import.meta.url);
const fixtures = process.env.IMAGEBIND_LLM_FIXTURES ?? path.resolve(root, '..', 'shared', 'fixtures');
const SHAPES = { '7b': LLAMA_7B, small: { ...LLAMA_7B, dim: 2048, n_layers: 16, n_heads: 16 } };

function arg(name, dflt) {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : dflt;
}

const mib = (b) => (b / 2 ** 20).toFixed(0);
const seconds = (t0) => Number(process.hrtime.bigint() - t0) / 1e9;

// --- our side, in its own process: loads once, then runs what the parent asks, one JSON line each ---

async function child() {
  // --child <llm> <bind> <threads> <pp> <tg> [encoder]
  const a = process.argv.slice(process.argv.indexOf('--child') + 1);
  const [llmPath, bindPath, threads, pp, tg, encoder] = [a[0], a[1], Number(a[2]), Number(a[3]), Number(a[4]), a[5]];
  const ibl = require(path.join(root, 'lib', 'index.js'));
  const llm = await ibl.ImageBindLLM.load({ model: llmPath, bind: bindPath, threads, encoder: encoder || undefined });
  const native = llm.nativeModel;
  const vocab = llm.info.nVocab;
  const tokens = Int32Array.from({ length: pp }, (_, i) => 3 + ((i * 7919) % (vocab - 3)));
  const vis = await llm.visualFromEmbeddings([Float32Array.from({ length: llm.info.inputDim }, (_, i) => Math.sin(i) / 20)], [1]);

  // One repetition as llama-bench measures it: pp tokens into an empty context in one batch, then tg
  // single-token decodes from an empty context (one token first, so that there are logits to sample;
  // our tg includes greedy sampling, llama-bench's does not sample).
  async function run(inject) {
    const s = await native.createSession({ contextSize: pp + tg + 16, batchSize: 512 });
    try {
      if (inject) s.setInjection(vis.injection);
      let t0 = process.hrtime.bigint();
      await s.eval(tokens);
      const ppTs = pp / seconds(t0);
      s.reset();
      await s.eval(tokens.subarray(0, 1));
      t0 = process.hrtime.bigint();
      const g = await s.generate({ temperature: 0, maxTokens: tg });
      // Each sampled token is decoded (eos: sampled, not decoded).
      const tgTs = (g.tokens.length) / seconds(t0);
      return { pp: ppTs, tg: tgTs };
    } finally {
      s.dispose();
    }
  }

  async function ttft() {
    const img = path.join(fixtures, 'assets', 'dog_image.jpg');
    const t0 = process.hrtime.bigint();
    // maxTokens 1: the answer is complete when its first token has been sampled.
    await llm.ask('Describe this image in detail.', { inputs: [{ kind: 'image', path: img }], temperature: 0, maxTokens: 1 });
    return { ms: seconds(t0) * 1000 };
  }

  // Warm-up: pages the weights in and builds the graphs of both kinds.
  for (const inject of [false, true]) {
    const w = await native.createSession({ contextSize: 64, batchSize: 32 });
    if (inject) w.setInjection(vis.injection);
    await w.eval(tokens.subarray(0, 32));
    await w.generate({ temperature: 0, maxTokens: 4 });
    w.dispose();
  }
  const reply = (o) => process.stdout.write(JSON.stringify(o) + '\n');
  reply({ ready: true });
  for await (const line of readline.createInterface({ input: process.stdin })) {
    const cmd = JSON.parse(line);
    if (cmd.run === 'plain' || cmd.run === 'injected') reply(await run(cmd.run === 'injected'));
    else if (cmd.run === 'ttft') reply(await ttft());
    else break;
  }
  llm.dispose();
  reply({ maxRssBytes: process.resourceUsage().maxRSS * 1024 });
}

// Starts the child and returns ask(cmd) → the next JSON line it prints.
function startChild(args) {
  const proc = spawn(process.execPath, [fileURLToPath(import.meta.url), '--child', ...args], { stdio: ['pipe', 'pipe', 'inherit'] });
  const lines = readline.createInterface({ input: proc.stdout });
  const waiting = [];
  lines.on('line', (l) => waiting.shift()?.resolve(JSON.parse(l)));
  proc.on('exit', (code) => { for (const w of waiting.splice(0)) w.reject(new Error(`benchmark child exited (${code})`)); });
  const next = () => new Promise((resolve, reject) => waiting.push({ resolve, reject }));
  return {
    ready: next(),
    ask(cmd) { const p = next(); proc.stdin.write(JSON.stringify(cmd) + '\n'); return p; },
    end() { proc.stdin.end(); },
  };
}

// --- inputs: the model, the encoder, llama-bench ---

async function ensureModel(dir, shape) {
  const name = shape === '7b' ? 'llama7b' : `llama-${shape}`;
  const src = path.join(dir, `${name}-random`);
  const prefix = path.join(dir, `${name}-random-q4_0`);
  if (!fs.existsSync(`${prefix}-llm.gguf`) || !fs.existsSync(`${prefix}-bind.gguf`)) {
    if (!fs.existsSync(path.join(src, 'adapter.pth'))) {
      const t0 = Date.now();
      await writeRandomLlama(src, SHAPES[shape]);
      console.log(`wrote a random ${shape}-shaped LLaMA checkpoint + adapter in ${((Date.now() - t0) / 1000).toFixed(0)} s`);
    }
    const script = `const ibl=require(${JSON.stringify(path.join(root, 'lib', 'index.js'))});const t0=Date.now();` +
      `ibl.convertLlm({llamaDir:${JSON.stringify(path.join(src, 'llama'))},adapter:${JSON.stringify(path.join(src, 'adapter.pth'))},outPrefix:${JSON.stringify(prefix)},type:'q4_0'})` +
      `.then(r=>console.log(JSON.stringify({r,s:(Date.now()-t0)/1000,rss:process.resourceUsage().maxRSS*1024})))`;
    const r = JSON.parse(execFileSync(process.execPath, ['-e', script], { encoding: 'utf8' }));
    console.log(`convert llm → q4_0: ${mib(r.r.bytes.llm)} MiB + bind ${mib(r.r.bytes.bind)} MiB in ${r.s.toFixed(0)} s, peak RSS ${mib(r.rss)} MiB`);
  }
  return { llm: `${prefix}-llm.gguf`, bind: `${prefix}-bind.gguf` };
}

// A copy of an LLM GGUF without its attention output biases, written tensor by tensor.
async function withoutAttnBias(src, dst) {
  if (fs.existsSync(dst)) return dst;
  const ibl = require(path.join(root, 'lib', 'index.js'));
  const g = await ibl.inspectGguf(src);
  const metadata = Object.entries(g.metadata).map(([key, value]) => {
    const type = g.metadataTypes[key];
    return type.startsWith('array<') ? { key, type: 'array', elemType: type.slice(6, -1), value } : { key, type, value };
  });
  const tensors = g.tensors.filter((t) => !/^blk\.\d+\.attn_output\.bias$/.test(t.name));
  const w = new (ibl.loadAddonFrom(ibl.addonCandidates()).GgufStreamWriter)(`${dst}.part`);
  const fd = fs.openSync(src, 'r');
  try {
    w.setMetadata(metadata);
    for (const t of tensors) w.addTensor(t.name, t.type, t.shape);
    w.begin();
    for (const t of tensors) {
      const buf = Buffer.alloc(t.size);
      fs.readSync(fd, buf, 0, t.size, t.offset);
      await w.writeTensor(t.name, new Uint8Array(buf.buffer, buf.byteOffset, buf.length));
    }
    await w.finish();
  } finally {
    fs.closeSync(fd);
    w.dispose();
  }
  fs.renameSync(`${dst}.part`, dst);
  console.log(`wrote ${path.basename(dst)}: the model without its ${g.tensors.length - tensors.length} attention output biases`);
  return dst;
}

// The ImageBind-huge f16 encoder for the time to first token: `npm run bench`'s (all modalities) when it
// is there, else a vision-only one made here (the checkpoint is removed once converted).
async function ensureEncoder(dir) {
  const full = path.join(dir, 'imagebind_huge_random-f16.gguf');
  if (fs.existsSync(full)) return full;
  const gguf = path.join(dir, 'imagebind_huge_vision_random-f16.gguf');
  if (fs.existsSync(gguf)) return gguf;
  const ckpt = path.join(dir, 'imagebind_huge_vision_random.pth');
  const t0 = Date.now();
  const size = await writeRandomImagebind(ckpt, HUGE, { modalities: ['vision'] });
  const r = JSON.parse(execFileSync(process.execPath, [path.join(here, 'lib', 'convert-child.mjs'), ckpt, gguf, 'f16'], { encoding: 'utf8' }));
  fs.rmSync(ckpt);
  console.log(`wrote a random ImageBind-huge vision checkpoint (${mib(size)} MiB) → f16 ${mib(r.result.bytes)} MiB in ${((Date.now() - t0) / 1000).toFixed(0)} s`);
  return gguf;
}

function buildLlamaBench(jobs) {
  const src = path.join(root, 'deps', 'llama.cpp');
  const build = path.join(root, 'build', 'llama-bench');
  const bin = path.join(build, 'bin', 'llama-bench');
  if (!fs.existsSync(bin)) {
    console.log('building llama.cpp\'s llama-bench from the pinned source (deps/llama.cpp) …');
    const cfg = ['-S', src, '-B', build, '-DCMAKE_BUILD_TYPE=Release', '-DBUILD_SHARED_LIBS=OFF', '-DLLAMA_BUILD_TOOLS=ON', '-DLLAMA_BUILD_COMMON=ON',
      '-DLLAMA_BUILD_TESTS=OFF', '-DLLAMA_BUILD_EXAMPLES=OFF', '-DLLAMA_BUILD_SERVER=OFF', '-DLLAMA_BUILD_APP=OFF', '-DLLAMA_OPENSSL=OFF',
      '-DGGML_OPENMP=OFF', '-DGGML_NATIVE=ON', '-DGGML_CCACHE=OFF'];
    if (process.arch === 'x64' && process.platform !== 'win32' && !/^(1|on|true)$/i.test(process.env.IMAGEBIND_LLM_AMX ?? '')) {
      // Same CPU flags as our addon: -march=native minus AMX (see CMakeLists.txt). ggml puts -march=native
      // after CMAKE_C(XX)_FLAGS, so the flags are appended by a compiler launcher instead.
      fs.mkdirSync(build, { recursive: true });
      const launcher = path.join(build, 'no-amx-launcher.sh');
      fs.writeFileSync(launcher, '#!/bin/sh\nexec "$@" -mno-amx-tile -mno-amx-int8 -mno-amx-bf16\n', { mode: 0o755 });
      cfg.push(`-DCMAKE_C_COMPILER_LAUNCHER=${launcher}`, `-DCMAKE_CXX_COMPILER_LAUNCHER=${launcher}`);
    }
    for (const step of [cfg, ['--build', build, '--target', 'llama-bench', '-j', String(jobs)]]) {
      const r = spawnSync('cmake', step, { stdio: 'inherit' });
      if (r.status !== 0) throw new Error('building llama-bench failed');
    }
  }
  return bin;
}

// One llama-bench repetition (its own warm-up run first, as always).
function llamaBench(bin, llm, threads, pp, tg) {
  const out = JSON.parse(execFileSync(bin, ['-m', llm, '-p', String(pp), '-n', String(tg), '-t', String(threads), '-r', '1', '-o', 'json'],
    { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }));
  return { pp: out.find((x) => x.n_prompt === pp).avg_ts, tg: out.find((x) => x.n_gen === tg).avg_ts };
}

function cpuName() {
  const r = spawnSync('lscpu', [], { encoding: 'utf8' });
  const m = /^Model name:\s*(.+)$/m.exec(r.stdout ?? '');
  return m ? m[1].trim() : os.cpus()[0]?.model ?? 'cpu';
}

// --- the report ---

const median = (xs) => { const s = [...xs].sort((a, b) => a - b); const n = s.length; return n % 2 ? s[(n - 1) / 2] : (s[n / 2 - 1] + s[n / 2]) / 2; };
const spread = (xs) => ({ min: Math.min(...xs), median: median(xs), max: Math.max(...xs) });

function report(rows, pp, tg) {
  const f = (x) => x.toFixed(2).padStart(7);
  const cols = [['llama-bench', 'bench'], ['ours, no injection', 'plain'], ['ours, image injected', 'injected']];
  console.log(`\n| repetition | ${cols.map(([n]) => `${n} pp${pp}`).join(' | ')} | ${cols.map(([n]) => `${n} tg${tg}`).join(' | ')} |`);
  console.log(`|---|${'---|'.repeat(6)}`);
  rows.forEach((r, i) => console.log(`| ${i + 1} | ${cols.map(([, k]) => f(r[k].pp)).join(' | ')} | ${cols.map(([, k]) => f(r[k].tg)).join(' | ')} |`));
  const s = {};
  for (const [, k] of cols) s[k] = { pp: spread(rows.map((r) => r[k].pp)), tg: spread(rows.map((r) => r[k].tg)) };
  for (const stat of ['min', 'median', 'max']) {
    console.log(`| ${stat} | ${cols.map(([, k]) => f(s[k].pp[stat])).join(' | ')} | ${cols.map(([, k]) => f(s[k].tg[stat])).join(' | ')} |`);
  }
  // Ratios of the medians, and the range of the same ratio taken within each repetition (runs side by side).
  console.log('\nratios (tokens/s over tokens/s): median of the runs [range over the repetitions, paired]');
  for (const [label, a, b] of [['ours no injection / llama-bench', 'plain', 'bench'], ['ours injected / llama-bench', 'injected', 'bench'],
    ['ours injected / ours no injection', 'injected', 'plain']]) {
    const part = (m) => {
      const paired = rows.map((r) => r[a][m] / r[b][m]);
      return `${m}${m === 'pp' ? pp : tg} ${(s[a][m].median / s[b][m].median).toFixed(3)} [${Math.min(...paired).toFixed(3)}–${Math.max(...paired).toFixed(3)}]`;
    };
    console.log(`  ${label.padEnd(34)} ${part('pp')}   ${part('tg')}`);
  }
}

async function main() {
  const dir = arg('dir', path.join(os.tmpdir(), 'imagebind-llm-bench'));
  const threads = Number(arg('threads', String(os.availableParallelism?.() ?? os.cpus().length)));
  const pp = Number(arg('pp', '512')), tg = Number(arg('tg', '128')), reps = Number(arg('reps', '3'));
  const shape = arg('shape', '7b');
  const withTtft = !process.argv.includes('--no-ttft');
  if (!SHAPES[shape]) throw new Error(`--shape must be one of ${Object.keys(SHAPES).join(', ')}`);
  if (!(reps >= 1 && pp >= 1 && tg >= 1)) throw new Error('--reps, --pp and --tg must be positive');
  fs.mkdirSync(dir, { recursive: true });
  console.log(`imagebind-llm LLM benchmark — ${cpuName()}, ${os.cpus().length} cores, ${threads} threads, ${shape} q4_0` +
    `${process.argv.includes('--no-bias') ? ' without attention output biases' : ''}, node ${process.version}`);
  const model = await ensureModel(dir, shape);
  const noBias = process.argv.includes('--no-bias');
  const llm = noBias ? await withoutAttnBias(model.llm, model.llm.replace(/-llm\.gguf$/, '-nobias-llm.gguf')) : model.llm;
  const bind = model.bind;
  const encoder = withTtft ? await ensureEncoder(dir) : '';
  const bench = buildLlamaBench(threads);

  const ours = startChild([llm, bind, String(threads), String(pp), String(tg), encoder]);
  await ours.ready;
  const rows = [];
  for (let r = 0; r < reps; r++) {
    const row = { bench: llamaBench(bench, llm, threads, pp, tg) };
    row.plain = await ours.ask({ run: 'plain' });
    row.injected = await ours.ask({ run: 'injected' });
    rows.push(row);
    console.log(`repetition ${r + 1}/${reps}: pp ${row.bench.pp.toFixed(2)} / ${row.plain.pp.toFixed(2)} / ${row.injected.pp.toFixed(2)}, ` +
      `tg ${row.bench.tg.toFixed(2)} / ${row.plain.tg.toFixed(2)} / ${row.injected.tg.toFixed(2)} tokens/s (llama-bench / ours / ours injected)`);
  }
  const ttft = [];
  if (withTtft) for (let r = 0; r < reps; r++) ttft.push((await ours.ask({ run: 'ttft' })).ms);
  const { maxRssBytes } = await ours.ask({ run: 'quit' });
  ours.end();

  report(rows, pp, tg);
  if (withTtft) {
    const t = spread(ttft);
    console.log(`\ntime to first token, one image question end to end (${path.basename(encoder)} + ${shape} q4_0): ` +
      `${ttft.map((x) => (x / 1000).toFixed(2)).join(', ')} s (first after load first); min ${(t.min / 1000).toFixed(2)}, median ${(t.median / 1000).toFixed(2)}, max ${(t.max / 1000).toFixed(2)} s`);
  }
  console.log(`peak RSS of our process: ${mib(maxRssBytes)} MiB`);
}

if (process.argv.includes('--child')) await child();
else await main();
