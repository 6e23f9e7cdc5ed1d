#!/usr/bin/env node
// Media search benchmark: prints figures, asserts nothing.
//   1. indexing throughput against bare ImageBindEncoder.embed on the same files (the index's overhead:
//      walking, hashing, lookups, SQLite writes);
//   2. search latency (p50/p99) and recall@10 of the approximate search against the exact scan, over
//      N synthetic unit vectors (default 100k and 1M, 1024-d as ImageBind-Huge) of two data sets
//      (scripts/lib/synthetic-vectors.mjs: uniform, clustered); the database's and the sketch's bytes
//      per item; the cost of building and updating.
// Usage: node scripts/bench-search.mjs [--sizes 100000,1000000] [--data uniform,clustered] [--dim 1024]
//        [--queries 30] [--db-dir DIR] [--encoder file.gguf] [--files 64] [--threads n] [--skip-index]
//        [--skip-search]
// --db-dir keeps the synthetic databases there and reuses them (populating 1M takes minutes).
// Run it under `flock -x /work/.cpu.lock` on a shared machine.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createRequire } from 'node:module';
import { parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';
import { syntheticBmp } from './lib/synthetic-bmp.mjs';
import { syntheticSet } from './lib/synthetic-vectors.mjs';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const require = createRequire(import.meta.url);
const ibl = require(path.join(root, 'lib', 'index.js'));

const { values: opt } = parseArgs({
  options: {
    sizes: { type: 'string', default: '100000,1000000' },
    data: { type: 'string', default: 'uniform,clustered' },
    'db-dir': { type: 'string' },
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

const KINDS = ['image', 'video', 'audio', 'point'];
const ms = (x) => `${x.toFixed(1)} ms`;

/** A store of `size` synthetic items of data set `name`: reused from --db-dir when it holds one. */
async function syntheticStore(name, size, dim) {
  const dir = opt['db-dir'] ?? tmp;
  fs.mkdirSync(dir, { recursive: true });
  const db = path.join(dir, `${name}-${dim}d-${size}.sqlite`);
  const store = await ibl.SqliteStore.open(db);
  const stamp = { identity: `synthetic-${name}`, name: `synthetic ${name}`, dim };
  await store.bind(stamp, true);
  if ((await store.stats()).items === size) return { store, db, insertS: null };
  await store.bind({ ...stamp, identity: 'emptied' }, true);
  await store.bind(stamp, true);
  const next = syntheticSet(name, dim).items;
  let insertMs = 0;  // the store's work only, not the generator's
  for (let i = 0; i < size; i += 1000) {
    const items = [];
    for (let j = i; j < Math.min(size, i + 1000); j++) items.push(syntheticItem(j, next()));
    insertMs += (await timed(() => store.upsert(items))).ms;
  }
  return { store, db, insertS: insertMs / 1000 };
}

function syntheticItem(j, vector) {
  return {
    path: `/photos/${String(Math.floor(j / 1000)).padStart(4, '0')}/file-${String(j).padStart(7, '0')}.jpg`,
    kind: KINDS[j % 4], size: 1_000_000 + j, mtimeUs: 1_700_000_000_000_000 + j,
    hash: (j.toString(16).padStart(16, '0')).repeat(4), vector,
  };
}

async function timed(f) {
  const t = performance.now();
  const value = await f();
  return { value, ms: performance.now() - t };
}

const recallAt10 = (got, exact) => {
  const truth = new Set(exact.slice(0, 10).map((h) => h.path));
  return got.slice(0, 10).filter((h) => truth.has(h.path)).length / Math.min(10, truth.size);
};

async function benchSearch(name, size, dim, queries) {
  const { store, db, insertS } = await syntheticStore(name, size, dim);
  const stats = await store.stats();
  const qs = syntheticSet(name, dim).queries;
  const rss0 = process.memoryUsage().rss;
  const load = await timed(() => store.search(qs(), 20));  // loads the sketch from ibl_codes
  const sketchBytes = process.memoryUsage().rss - rss0;
  await store.search(qs(), 20, undefined, { exact: true });  // reads every embedding: a warm page cache
  const lat = { all: [], kind: [], exactAll: [], exactKind: [] };
  const recall = { all: 0, kind: 0 };
  for (let q = 0; q < queries; q++) {
    const v = qs();
    const a = await timed(() => store.search(v, 20));
    const ak = await timed(() => store.search(v, 20, ['audio']));
    const e = await timed(() => store.search(v, 20, undefined, { exact: true }));
    const ek = await timed(() => store.search(v, 20, ['audio'], { exact: true }));
    lat.all.push(a.ms); lat.kind.push(ak.ms); lat.exactAll.push(e.ms); lat.exactKind.push(ek.ms);
    recall.all += recallAt10(a.value, e.value) / queries;
    recall.kind += recallAt10(ak.value, ek.value) / queries;
  }
  // Update cost: 1,000 rows re-written (new embeddings), then the next search brings the sketch up to date.
  const upd = syntheticSet(name, dim, 999).items;
  const changed = Array.from({ length: 1000 }, (_, i) => syntheticItem(i * Math.floor(size / 1000), upd()));
  const write = await timed(() => store.upsert(changed));
  const resync = await timed(() => store.search(qs(), 20));
  await store.close();
  const fileBytes = fs.statSync(db).size;
  return { name, size, insertS, loadMs: load.ms, sketchBytes, bytesPerItem: stats.bytes / size, fileBytes, lat, recall, writeMs: write.ms, resyncMs: resync.ms };
}

if (!opt['skip-index']) await benchIndexing();
if (!opt['skip-search']) {
  const dim = Number(opt.dim), queries = Number(opt.queries);
  console.log(`\n## Search: k = 20 over synthetic ${dim}-d unit vectors, one query at a time, ${queries} queries per row`);
  console.log('Approximate: the binary sketch re-ranked in float32 (the default); exact: a full scan (`exact: true`), which is also the truth for recall@10. ' +
    '"one kind": `kinds: [\'audio\']`, a quarter of the rows.\n');
  console.log('| data | items | p50 | p99 | recall@10 | p50, one kind | p99, one kind | recall@10, one kind | exact p50 | exact p99 | exact p50, one kind | sketch load | DB bytes/item | sketch bytes/item (RSS) | insert rate | 1,000 updates + next search |');
  console.log('|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|');
  for (const name of opt.data.split(',')) {
    for (const size of opt.sizes.split(',').map(Number)) {
      const r = await benchSearch(name, size, dim, queries);
      const rate = r.insertS === null ? 'reused DB' : `${Math.round(size / r.insertS).toLocaleString('en')}/s`;
      console.log(`| ${name} | ${size.toLocaleString('en')} | ${ms(pct(r.lat.all, 50))} | ${ms(pct(r.lat.all, 99))} | ${r.recall.all.toFixed(3)} | ` +
        `${ms(pct(r.lat.kind, 50))} | ${ms(pct(r.lat.kind, 99))} | ${r.recall.kind.toFixed(3)} | ` +
        `${ms(pct(r.lat.exactAll, 50))} | ${ms(pct(r.lat.exactAll, 99))} | ${ms(pct(r.lat.exactKind, 50))} | ` +
        `${ms(r.loadMs)} | ${Math.round(r.bytesPerItem).toLocaleString('en')} | ${Math.round(r.sketchBytes / size)} | ${rate} | ${ms(r.writeMs)} + ${ms(r.resyncMs)} |`);
    }
  }
}
