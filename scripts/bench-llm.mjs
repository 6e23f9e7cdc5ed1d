#!/usr/bin/env node
// LLM benchmark (npm run bench:llm): prompt processing and decoding speed of a LLaMA-7B-shaped model
// with RANDOM weights at q4_0, made through our own converter (random Meta-layout checkpoint + adapter →
// convert llm), with and without the image injection, against llama.cpp's own llama-bench built from the
// same pinned source on the same file, in one run; and the time to first token of one image question
// end to end (encoder + bind + injection + prompt + first token).
//
//   node scripts/bench-llm.mjs [--dir <work dir>] [--threads N] [--pp 512] [--tg 128] [--reps 2]
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execFileSync, spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { LLAMA_7B, writeRandomLlama } from './lib/random-llama.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, '..');
const require = createRequire(import.meta.url);
const fixtures = process.env.IMAGEBIND_LLM_FIXTURES ?? path.resolve(root, '..', 'shared', 'fixtures');

function arg(name, dflt) {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : dflt;
}

const mib = (b) => (b / 2 ** 20).toFixed(0);

async function child() {
  // --child <llm> <bind> <threads> <pp> <tg> <reps> [encoder]: our speed, printed as JSON.
  const a = process.argv.slice(process.argv.indexOf('--child') + 1);
  const [llmPath, bindPath, threads, pp, tg, reps, encoder] = [a[0], a[1], Number(a[2]), Number(a[3]), Number(a[4]), Number(a[5]), a[6]];
  const ibl = require(path.join(root, 'lib', 'index.js'));
  const llm = await ibl.ImageBindLLM.load({ model: llmPath, bind: bindPath, threads, encoder: encoder || undefined });
  const native = llm.nativeModel;
  const vocab = llm.info.nVocab;
  const tokens = Int32Array.from({ length: pp }, (_, i) => 3 + ((i * 7919) % (vocab - 3)));
  const vis = await llm.visualFromEmbeddings([Float32Array.from({ length: llm.info.inputDim }, (_, i) => Math.sin(i) / 20)], [1]);
  // Warm-up (pages the weights in, builds both graphs), then plain and injected runs alternate so
  // that drift (page cache, clocks) does not favour either.
  {
    const w = await native.createSession({ contextSize: 64, batchSize: 32 });
    await w.eval(tokens.subarray(0, 32));
    await w.generate({ temperature: 0, maxTokens: 4 });
    w.setInjection(vis.injection);
    await w.generate({ temperature: 0, maxTokens: 4 });
    w.dispose();
  }
  const best = { plain: { pp: 0, tg: 0 }, injected: { pp: 0, tg: 0 } };
  for (let r = 0; r < reps; r++) {
    for (const inj of [false, true]) {
      const b = best[inj ? 'injected' : 'plain'];
      const s = await native.createSession({ contextSize: pp + tg + 16, batchSize: 512 });
      if (inj) s.setInjection(vis.injection);
      let t0 = process.hrtime.bigint();
      await s.eval(tokens);
      b.pp = Math.max(b.pp, pp / (Number(process.hrtime.bigint() - t0) / 1e9));
      t0 = process.hrtime.bigint();
      // Greedy decoding of tg tokens (sampling + one decode per token, as llama-bench's tg runs decodes).
      const g = await s.generate({ temperature: 0, maxTokens: tg });
      const n = g.tokens.length + (g.stopReason === 'eos' ? 1 : 0);
      b.tg = Math.max(b.tg, n / (Number(process.hrtime.bigint() - t0) / 1e9));
      s.dispose();
    }
  }
  const out = { ...best };
  if (encoder) {
    // Time to first token: one image question, end to end, in a fresh session.
    const img = path.join(fixtures, 'assets', 'dog_image.jpg');
    const t0 = process.hrtime.bigint();
    let first = null;
    await llm.ask('Describe this image in detail.', {
      inputs: [{ kind: 'image', path: img }], temperature: 0, maxTokens: 1,
      onToken: () => { if (first === null) first = Number(process.hrtime.bigint() - t0) / 1e6; },
    });
    out.ttftMs = first ?? Number(process.hrtime.bigint() - t0) / 1e6;
  }
  llm.dispose();
  out.maxRssBytes = process.resourceUsage().maxRSS * 1024;
  process.stdout.write(JSON.stringify(out) + '\n');
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

async function main() {
  const dir = arg('dir', path.join(os.tmpdir(), 'imagebind-llm-bench'));
  const threads = Number(arg('threads', String(os.availableParallelism?.() ?? os.cpus().length)));
  const pp = Number(arg('pp', '512')), tg = Number(arg('tg', '128')), reps = Number(arg('reps', '3'));
  fs.mkdirSync(dir, { recursive: true });
  console.log(`imagebind-llm LLM benchmark — ${os.cpus()[0]?.model ?? 'cpu'}, ${os.cpus().length} cores, ${threads} threads`);
  const src = path.join(dir, 'llama7b-random');
  if (!fs.existsSync(path.join(src, 'adapter.pth'))) {
    const t0 = Date.now();
    await writeRandomLlama(src, LLAMA_7B);
    console.log(`wrote a random LLaMA-7B-shaped checkpoint + adapter in ${((Date.now() - t0) / 1000).toFixed(0)} s`);
  }
  const prefix = path.join(dir, 'llama7b-random-q4_0');
  if (!fs.existsSync(`${prefix}-llm.gguf`)) {
    const script = `const ibl=require(${JSON.stringify(path.join(root, 'lib', 'index.js'))});const t0=Date.now();` +
      `ibl.convertLlm({llamaDir:${JSON.stringify(path.join(src, 'llama'))},adapter:${JSON.stringify(path.join(src, 'adapter.pth'))},outPrefix:${JSON.stringify(prefix)},type:'q4_0'})` +
      `.then(r=>console.log(JSON.stringify({r,s:(Date.now()-t0)/1000,rss:process.resourceUsage().maxRSS*1024})))`;
    const r = JSON.parse(execFileSync(process.execPath, ['-e', script], { encoding: 'utf8' }));
    console.log(`convert llm → q4_0: ${mib(r.r.bytes.llm)} MiB + bind ${mib(r.r.bytes.bind)} MiB in ${r.s.toFixed(0)} s, peak RSS ${mib(r.rss)} MiB`);
  }
  const llm = `${prefix}-llm.gguf`, bind = `${prefix}-bind.gguf`;
  const bench = buildLlamaBench(threads);
  const lb = JSON.parse(execFileSync(bench, ['-m', llm, '-p', String(pp), '-n', String(tg), '-t', String(threads), '-r', String(reps), '-o', 'json'], { encoding: 'utf8' }));
  const lbPp = lb.find((x) => x.n_prompt === pp)?.avg_ts, lbTg = lb.find((x) => x.n_gen === tg)?.avg_ts;
  const encoder = fs.existsSync(path.join(dir, 'imagebind_huge_random-f16.gguf')) ? path.join(dir, 'imagebind_huge_random-f16.gguf') : '';
  const ours = JSON.parse(execFileSync(process.execPath, [fileURLToPath(import.meta.url), '--child', llm, bind, String(threads), String(pp), String(tg), String(reps), encoder], { encoding: 'utf8' }));
  const f = (x) => (x ?? NaN).toFixed(2).padStart(8);
  console.log(`\n| run | pp${pp} t/s | tg${tg} t/s |`);
  console.log('|---|---|---|');
  console.log(`| llama.cpp llama-bench | ${f(lbPp)} | ${f(lbTg)} |`);
  console.log(`| imagebind-llm, no injection | ${f(ours.plain.pp)} | ${f(ours.plain.tg)} |`);
  console.log(`| imagebind-llm, image injected | ${f(ours.injected.pp)} | ${f(ours.injected.tg)} |`);
  console.log(`\ninjection cost: pp ${(100 * (1 - ours.injected.pp / ours.plain.pp)).toFixed(1)}%, tg ${(100 * (1 - ours.injected.tg / ours.plain.tg)).toFixed(1)}%`);
  if (ours.ttftMs) console.log(`time to first token, one image question end to end (ImageBind-huge f16 + 7B q4_0): ${(ours.ttftMs / 1000).toFixed(1)} s`);
  else console.log('(run `npm run bench` first to make the ImageBind-huge encoder for the time-to-first-token figure)');
  console.log(`peak RSS of our run: ${mib(ours.maxRssBytes)} MiB`);
}

if (process.argv.includes('--child')) await child();
else await main();
