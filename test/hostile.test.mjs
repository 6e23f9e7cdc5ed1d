// Hostile input (issue 8): a generated corpus of bad inputs over every input surface, each run
// through the CLI in its own process, must end with a clear error naming the file and the problem:
// no signal, no hang, bounded memory, nothing printed as NaN, the user's existing outputs unchanged.
// Then the same kinds of input through the API in this one long-lived process: it stays alive and
// good inputs still give bit-identical results.
import test from 'ava';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawn } from 'node:child_process';
import { createRequire } from 'node:module';
import { cliPath, libIndex, root, tmpDir } from './helpers/paths.mjs';
import { assets } from './helpers/fixtures.mjs';
import { tinyModels } from './helpers/models.mjs';
import { buildCases, mutateGguf, poisonTensor, setMeta, specialPaths } from './helpers/hostile-cases.mjs';

const require = createRequire(import.meta.url);
const ibl = require(libIndex);
const TIMEOUT_MS = 60_000;
const MAX_RSS = 1536 * 1024 ** 2;
const KILL_RSS = 4 * 1024 ** 3;
const rssReporter = path.join(root, 'test', 'helpers', 'rss-report.cjs');
// IBL_HOSTILE_CLI: run the corpus against another build's CLI (to count what an older version did).
const cli = process.env.IBL_HOSTILE_CLI ?? cliPath;

let m, dir, special, cases;
const results = new Map();

function runCase(c, i) {
  return new Promise((resolve) => {
    const rssFile = path.join(dir, `rss-${i}`);
    const before = (c.outputs ?? []).map((f) => [f, fs.readFileSync(f)]);
    const child = spawn(process.execPath, ['--require', rssReporter, cli, ...c.args], {
      stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, IBL_RSS_OUT: rssFile },
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => { if (stdout.length < 1 << 20) stdout += d; });
    child.stderr.on('data', (d) => { if (stderr.length < 1 << 20) stderr += d; });
    let timedOut = false;
    const timer = setTimeout(() => { timedOut = true; child.kill('SIGKILL'); }, TIMEOUT_MS);
    // A process growing past KILL_RSS is stopped before it takes the machine down (and reported).
    let blewUp = 0;
    const watch = setInterval(() => {
      try {
        const kb = Number(/VmRSS:\s+(\d+)/.exec(fs.readFileSync(`/proc/${child.pid}/status`, 'utf8'))?.[1] ?? 0);
        if (kb * 1024 > KILL_RSS) { blewUp = kb * 1024; child.kill('SIGKILL'); }
      } catch { /* gone, or no /proc */ }
    }, 100);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      clearInterval(watch);
      const rss = blewUp || (fs.existsSync(rssFile) ? Number(fs.readFileSync(rssFile, 'utf8')) : null);
      const changed = before.filter(([f, b]) => !fs.existsSync(f) || !fs.readFileSync(f).equals(b)).map(([f]) => f);
      const leftovers = (c.outputs ?? []).flatMap((f) => fs.readdirSync(path.dirname(f)).filter((n) => n.startsWith(`.${path.basename(f)}.`)));
      resolve({ code, signal: blewUp ? null : signal, timedOut, stdout, stderr, rss, changed, leftovers });
    });
  });
}

/** Every way a case can go wrong, as one line each (empty: it passed). */
function problems(c, r) {
  const p = [];
  if (r.timedOut) return [`hangs (killed after ${TIMEOUT_MS / 1000} s)`];
  if (r.rss !== null && r.rss > KILL_RSS) return [`blows up (killed past ${(r.rss / 2 ** 30).toFixed(1)} GiB)`];
  if (r.signal) return [`killed by ${r.signal}: ${r.stderr.slice(-300)}`];
  if (/GGML_ASSERT|Segmentation|Aborted|core dumped|FATAL ERROR|heap out of memory/.test(r.stderr)) p.push(`aborts: ${r.stderr.slice(-300)}`);
  if (r.rss !== null && r.rss > MAX_RSS) p.push(`peak RSS ${(r.rss / 2 ** 20).toFixed(0)} MiB`);
  if (r.changed.length) p.push(`changed ${r.changed.join(', ')}`);
  if (r.leftovers.length) p.push(`left ${r.leftovers.join(', ')}`);
  if (/\bNaN\b|\bnull\b/.test(r.stdout)) p.push('prints NaN/null');
  if (c.ok) {
    if (r.code !== 0) p.push(`fails (${r.code}): ${r.stderr.trim()}`);
    return p;
  }
  if (r.code === 0) return [...p, 'succeeds (exit 0)'];
  if (c.code !== undefined && r.code !== c.code) p.push(`exit ${r.code}, expected ${c.code}`);
  const msg = r.stderr.trim();
  if (!/^imagebind-llm: \S/.test(msg)) p.push(`no clear error: ${msg.slice(0, 300)}`);
  if (/\n\s+at \S+ \(|node:internal/.test(msg)) p.push(`prints a stack trace: ${msg.slice(0, 300)}`);
  if (c.file && !msg.includes(c.file)) p.push(`does not name ${c.file}: ${msg.slice(0, 300)}`);
  if (c.flag && !msg.includes(c.flag)) p.push(`does not name ${c.flag}: ${msg.slice(0, 300)}`);
  if (c.expect && !c.expect.test(msg)) p.push(`message ${msg.slice(0, 200)} does not match ${c.expect}`);
  return p;
}

test.before(async () => {
  m = await tinyModels('f32');
  dir = tmpDir('ibl-hostile-');
  special = await specialPaths(dir);
  cases = await buildCases(m, dir, special);
  // Two at a time (the CI machine has 2 cores).
  let next = 0;
  const worker = async () => {
    while (next < cases.length) {
      const i = next++;
      results.set(cases[i], await runCase(cases[i], i));
    }
  };
  await Promise.all([worker(), worker()]);
  // IBL_HOSTILE_DUMP=<file>: every case's outcome as JSON lines, for reading the messages.
  if (process.env.IBL_HOSTILE_DUMP) {
    fs.writeFileSync(process.env.IBL_HOSTILE_DUMP, cases.map((c) => JSON.stringify({
      surface: c.surface, name: c.name, code: results.get(c).code, signal: results.get(c).signal, timedOut: results.get(c).timedOut,
      rssMiB: Math.round((results.get(c).rss ?? 0) / 2 ** 20), stderr: results.get(c).stderr.trim().slice(0, 400), problems: problems(c, results.get(c)),
    })).join('\n') + '\n');
  }
});

test.after.always(() => {
  special?.server.close();
});

test('the corpus covers every input surface with at least 300 cases', (t) => {
  const bySurface = {};
  for (const c of cases) bySurface[c.surface.replace(/ \(.*\)$/, '')] = (bySurface[c.surface.replace(/ \(.*\)$/, '')] ?? 0) + 1;
  t.log(`${cases.length} cases: ${Object.entries(bySurface).map(([s, n]) => `${s} ${n}`).join(', ')}`);
  t.true(cases.length >= 300);
  for (const s of ['LLM GGUF', 'bind GGUF', 'cache GGUF', 'encoder GGUF', 'checkpoint', 'params.json', 'tokenizer.model', 'adapter',
    'faiss index', 'image', 'audio', 'video', 'point cloud', 'text', 'numeric flags', 'special paths']) {
    t.true(bySurface[s] > 0, s);
  }
});

// One test per surface, so a failure says where.
const SURFACES = ['LLM GGUF', 'bind GGUF', 'cache GGUF', 'encoder GGUF', 'checkpoint', 'params.json', 'tokenizer.model', 'LLaMA weights', 'adapter',
  'faiss index', 'image', 'audio', 'video', 'imu .npy', 'point .npy', 'depth .npy', 'point cloud', 'depth map', 'thermal map', 'text', 'numeric flags', 'special paths'];
for (const surface of SURFACES) {
  test(`hostile ${surface}: a clear error, no crash, no hang, bounded memory, outputs untouched`, (t) => {
    const mine = cases.filter((c) => c.surface === surface || c.surface.startsWith(`${surface} (`));
    t.true(mine.length > 0);
    const failures = [];
    let peak = 0;
    for (const c of mine) {
      const r = results.get(c);
      peak = Math.max(peak, r.rss ?? 0);
      const p = problems(c, r);
      if (p.length) failures.push(`${c.surface} / ${c.name}: ${p.join('; ')}`);
    }
    t.log(`${mine.length} cases, peak RSS ${(peak / 2 ** 20).toFixed(0)} MiB`);
    t.deepEqual(failures, []);
  });
}

test('API: after a stream of bad inputs in one process, good inputs give bit-identical results', async (t) => {
  const img = { kind: 'image', path: path.join(assets, 'dog_image.png') };
  const good = async () => {
    const enc = await ibl.loadEncoder(m.encoder, { threads: 1 });
    const llm = await ibl.loadLlm({ model: m.model, bind: m.bind, cache: m.cache, encoder: enc, threads: 1 });
    try {
      const [e] = await enc.embed([img, { kind: 'text', text: 'a dog' }, { kind: 'point', path: path.join(assets, 'airplane.npy') }]);
      const a = await llm.ask('What is it?', { inputs: [img], temperature: 0, maxTokens: 6, cache: true, logits: true });
      return { e: Buffer.from(e.embedding.buffer).toString('hex'), tokens: a.tokens, logits: Buffer.from(a.logits.buffer).toString('hex') };
    } finally {
      llm.dispose();
      enc.dispose();
    }
  };
  const baseline = await good();
  const d = tmpDir('ibl-hostile-api-');
  const bad = [
    () => ibl.loadEncoder(path.join(d, 'missing.gguf')),
    () => ibl.loadEncoder('/dev/zero'),
    () => ibl.loadEncoder(special.paths.fifo),
    async () => ibl.loadLlm({ model: await mutateGguf(m.model, path.join(d, 'b0.gguf'), (g) => setMeta(g, 'llama.block_count', 'u32', 0)), bind: m.bind }),
    async () => ibl.loadLlm({ model: await mutateGguf(m.model, path.join(d, 'dup.gguf'), (g) => { const tk = g.meta.find((e) => e.key === 'tokenizer.ggml.tokens'); tk.value = tk.value.slice(); tk.value[5] = tk.value[4]; }), bind: m.bind }),
    async () => ibl.loadLlm({ model: m.model, bind: await mutateGguf(m.bind, path.join(d, 'i32.gguf'), (g) => { const x = g.tensors.find((q) => q.name === 'bind.proj.weight'); x.type = 'i32'; }) }),
    // A trunk's weights are checked at its first use (they are mapped or read then, not at the load).
    async () => { const p = path.join(d, 'nan.gguf'); fs.copyFileSync(m.encoder, p); await poisonTensor(p, (await ibl.inspectGguf(p)).tensors.find((x) => /^v\.blk\..*attn_qkv\.weight$/.test(x.name)).name, NaN); const enc = await ibl.loadEncoder(p, { threads: 1 }); try { return await enc.embed([img]); } finally { enc.dispose(); } },
    async () => { const enc = await ibl.loadEncoder(m.encoder, { threads: 1 }); try { return await enc.embed([{ kind: 'image', data: new Uint8Array(100) }, { kind: 'point', data: Buffer.from('nan 0 0\n'), name: 'x.xyz' }]); } finally { enc.dispose(); } },
    async () => { const enc = await ibl.loadEncoder(m.encoder, { threads: 1 }); try { return await enc.embed([{ kind: 'tensor', modality: 'imu', tensor: { data: new Float32Array(12000).fill(Infinity), shape: [6, 2000] } }]); } finally { enc.dispose(); } },
    async () => { const llm = await ibl.loadLlm({ model: m.model, bind: m.bind, threads: 1 }); try { return await llm.ask('hi', { temperature: -1 }); } finally { llm.dispose(); } },
    async () => { const llm = await ibl.loadLlm({ model: m.model, bind: m.bind, threads: 1 }); try { return await llm.visualFromEmbeddings([new Float32Array(32).fill(NaN)], [1]); } finally { llm.dispose(); } },
    () => ibl.convertImagebind(special.paths['/dev/zero'], path.join(d, 'x.gguf')),
    () => ibl.convertCache(special.paths.socket, path.join(d, 'y.gguf')),
  ];
  for (let round = 0; round < 3; round++) {
    for (const [i, b] of bad.entries()) {
      const e = await t.throwsAsync(b(), undefined, `bad input ${i}`);
      t.true(typeof e?.code === 'string' && e.code.length > 0, `bad input ${i} gives an error with a code: ${e?.message}`);
    }
  }
  t.deepEqual(await good(), baseline);
});
