#!/usr/bin/env node
// Media search benchmark: prints figures, asserts nothing.
//   1. indexing throughput against bare ImageBindEncoder.embed on the same files (the index's overhead:
//      walking, hashing, lookups, SQLite writes);
//   2. search latency (p50/p99) over N synthetic unit vectors (default 100k and 1M, 1024-d as
//      ImageBind-Huge), and the database's bytes per item.
// Usage: node scripts/bench-search.mjs [--sizes 100000,1000000] [--dim 1024] [--queries 30]
//        [--encoder file.gguf] [--files 64] [--threads n] [--skip-index] [--skip-search]
// Run it under `flock -x /work/.cpu.lock` on a shared machine.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createRequire } from 'node:module';
import { parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';
import { syntheticBmp } from './lib/synthetic-bmp.mjs';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const require = createRequire(import.meta.url);
const ibl = require(path.join(root, 'lib', 'index.js'));

const { values: opt } = parseArgs({
  options: {
    sizes: { type: 'string', default: '100000,1000000' },
    dim: { type: 'string', default: '1024' },
    queries: { type: 'string', default: '30' },
    encoder: { type: 'string' },
    files: { type: 'string', default: '64' },
    threads: { type: 'string' },
    'skip-index': { type: 'boolean', default: false },
    'skip-search': { type: 'boolean', default: false },
  },
});

const cpu = os.cpus()[0]?.model ?? 'unknown CPU';
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'ibl-bench-search-'));
process.on('exit', () => fs.rmSync(tmp, { recursive: true, force: true }));
console.log(`CPU: ${cpu} (${os.availableParallelism()} usable cores); Node ${process.version}`);

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const pct = (xs, p) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.ceil((p / 100) * xs.length) - 1)];

async function benchIndexing() {
  let encoder = opt.encoder;
  if (!encoder) {
    encoder = path.join(tmp, 'tiny-a.gguf');
    const tinyA = path.resolve(root, '..', 'shared', 'fixtures', 'tiny-a');
    await ibl.convertImagebind(path.join(tinyA, 'imagebind.pth'), encoder, { type: 'f32', config: path.join(tinyA, 'imagebind.config.json') });
  }
  const n = Number(opt.files);
  const dir = path.join(tmp, 'media');
  fs.mkdirSync(dir);
  const files = [];
  for (let i = 0; i < n; i++) {
    const f = path.join(dir, `img-${i}.bmp`);
    fs.writeFileSync(f, syntheticBmp(224, 224, i + 1));
    files.push(f);
  }
  const threads = opt.threads ? Number(opt.threads) : undefined;
  const enc = await ibl.loadEncoder(encoder, { threads });
  const info = enc.info();
  console.log(`\n## Indexing ${n} distinct 224×224 images with ${path.basename(encoder)} (${info.outDim}-d, ${enc.info().threads} threads)`);
  const bare = [], indexed = [];
  for (let rep = 0; rep < 3; rep++) {
    let t = performance.now();
    for (let i = 0; i < n; i += 16) await enc.embed(files.slice(i, i + 16).map((p) => ({ kind: 'image', path: p })));
    bare.push(performance.now() - t);
    const db = path.join(tmp, `index-${rep}.sqlite`);
    const idx = await ibl.MediaIndex.open(db, { encoder: enc });
    t = performance.now();
    const r = await idx.add(dir);
    indexed.push(performance.now() - t);
    await idx.close();
    if (r.embedded !== n) throw new Error(`indexed ${r.embedded} of ${n}`);
  }
  enc.dispose();
  const b = median(bare), x = median(indexed);
  console.log('| | median of 3 | files/s |\n|---|---|---|');
  console.log(`| bare embed (batches of 16) | ${(b / 1000).toFixed(3)} s | ${(n / (b / 1000)).toFixed(1)} |`);
  console.log(`| index (walk, hash, embed, store) | ${(x / 1000).toFixed(3)} s | ${(n / (x / 1000)).toFixed(1)} |`);
  console.log(`overhead of the index over bare embed: ${(100 * (x / b - 1)).toFixed(1)} %`);
}

/** Uniform pseudo-random unit vectors (xorshift32): synthetic, reproducible. */
function randomUnit(dim, state) {
  const v = new Float32Array(dim);
  let s2 = 0;
  for (let j = 0; j < dim; j++) {
    state.s ^= state.s << 13; state.s ^= state.s >>> 17; state.s ^= state.s << 5;
    const x = ((state.s >>> 0) / 4294967296) * 2 - 1;
    v[j] = x;
    s2 += x * x;
  }
  const k = 1 / Math.sqrt(s2);
  for (let j = 0; j < dim; j++) v[j] *= k;
  return v;
}

async function benchSearch(size, dim, queries) {
  const db = path.join(tmp, `synthetic-${size}.sqlite`);
  const store = await ibl.SqliteStore.open(db);
  await store.bind({ identity: 'synthetic', name: 'synthetic', dim }, false);
  const state = { s: 12345 };
  const kinds = ['image', 'video', 'audio', 'point'];
  let t = performance.now();
  for (let i = 0; i < size; i += 1000) {
    const items = [];
    for (let j = i; j < Math.min(size, i + 1000); j++) {
      items.push({
        path: `/photos/${String(Math.floor(j / 1000)).padStart(4, '0')}/file-${String(j).padStart(7, '0')}.jpg`,
        kind: kinds[j % 4], size: 1_000_000 + j, mtimeUs: 1_700_000_000_000_000 + j,
        hash: (j.toString(16).padStart(16, '0')).repeat(4), vector: randomUnit(dim, state),
      });
    }
    await store.upsert(items);
  }
  const insertS = (performance.now() - t) / 1000;
  const stats = await store.stats();
  const fileBytes = fs.statSync(db).size + (fs.existsSync(`${db}-wal`) ? fs.statSync(`${db}-wal`).size : 0);
  const lat = { all: [], kind: [] };
  await store.search(randomUnit(dim, state), 20);  // warm the page cache
  for (let q = 0; q < queries; q++) {
    const v = randomUnit(dim, state);
    t = performance.now();
    await store.search(v, 20);
    lat.all.push(performance.now() - t);
    t = performance.now();
    await store.search(v, 20, ['audio']);
    lat.kind.push(performance.now() - t);
  }
  await store.close();
  fs.rmSync(db, { force: true });
  return { size, insertS, bytesPerItem: stats.bytes / size, fileBytesPerItem: fileBytes / size, lat };
}

if (!opt['skip-index']) await benchIndexing();
if (!opt['skip-search']) {
  const dim = Number(opt.dim), queries = Number(opt.queries);
  console.log(`\n## Search: k = 20 over synthetic ${dim}-d unit vectors (exact scan by sqlite-vec, one query at a time, ${queries} queries)`);
  console.log('| items | p50 | p99 | p50, one kind of 4 | p99, one kind of 4 | bytes/item | insert rate |\n|---|---|---|---|---|---|---|');
  for (const size of opt.sizes.split(',').map(Number)) {
    const r = await benchSearch(size, dim, queries);
    const ms = (x) => `${x.toFixed(1)} ms`;
    console.log(`| ${size.toLocaleString('en')} | ${ms(pct(r.lat.all, 50))} | ${ms(pct(r.lat.all, 99))} | ${ms(pct(r.lat.kind, 50))} | ${ms(pct(r.lat.kind, 99))} | ` +
      `${Math.round(r.bytesPerItem)} | ${Math.round(size / r.insertS).toLocaleString('en')}/s |`);
  }
}
