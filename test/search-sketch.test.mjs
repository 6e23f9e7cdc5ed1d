// The approximate search (ts/search/sketch.ts) and the store's schema 2: the sketch against brute
// force, recall@10 of the store's default search against its exact scan on embedding-like data, a
// second connection's writes seen by a reader's sketch, and a schema-1 database migrated on open.
// Recall is a documented bound (≥ 0.99 on clustered data), checked on seeded data: deterministic.
import test from 'ava';
import path from 'node:path';
import { createRequire } from 'node:module';
import { root, tmpDir } from './helpers/paths.mjs';
import { ibl } from './helpers/media-index.mjs';
import { clusteredModel, syntheticSet, uniformVectors } from '../scripts/lib/synthetic-vectors.mjs';

const require = createRequire(import.meta.url);
const Database = require('better-sqlite3');
const sqliteVec = require('sqlite-vec');
const { BinarySketch, MAX_CANDIDATES, MAX_K, signCode } = require(path.join(root, 'lib', 'search', 'sketch.js'));

const KINDS = ['image', 'video', 'audio', 'point'];
const dot = (a, b) => a.reduce((s, x, i) => s + x * b[i], 0);

const item = (j, vector, tag = '') => ({
  path: `/media/${tag}file-${String(j).padStart(6, '0')}.jpg`, kind: KINDS[j % 4], size: 1000 + j, mtimeUs: 1_700_000_000_000_000 + j,
  hash: (j.toString(16).padStart(16, '0')).repeat(4), vector,
});

async function fill(store, vectors, tag = '') {
  for (let i = 0; i < vectors.length; i += 1000) await store.upsert(vectors.slice(i, i + 1000).map((v, j) => item(i + j, v, tag)));
}

const recallAt10 = (got, exact) => {
  const truth = new Set(exact.slice(0, 10).map((h) => h.path));
  return got.slice(0, 10).filter((h) => truth.has(h.path)).length / 10;
};

test('sign codes: bit j of byte j >> 3 is set where the value is positive; whole 16-byte blocks', (t) => {
  const code = signCode(Float32Array.from([1, -1, 0, 2, -3, 0.5, 0, 0, -1, 7]));
  t.is(code.length, 16);
  t.deepEqual([...code.subarray(0, 3)], [0b00101001, 0b10, 0]);
  t.is(signCode(new Float32Array(1024)).length, 128);
  t.is(signCode(new Float32Array(129)).length, 32);
});

test('the sketch finds the brute-force top k through inserts, replacements and deletions', (t) => {
  const dim = 64;
  const next = uniformVectors(dim, 7);
  const sketch = new BinarySketch(dim);
  const vectors = new Map();
  const put = (id) => {
    const v = next();
    vectors.set(id, v);
    sketch.set(id, id % 4, signCode(v));
  };
  const n = 12_288;  // several times MAX_CANDIDATES: the approximate path
  t.true(n > 4 * MAX_CANDIDATES);
  for (let id = 1; id <= n; id++) put(id);
  for (let id = 5; id <= n; id += 7) { vectors.delete(id); sketch.delete(id); }
  for (let id = 3; id <= n; id += 11) if (vectors.has(id)) put(id);
  sketch.delete(999_999);  // absent: nothing happens
  t.is(sketch.size, vectors.size);
  const rerank = (ids) => ids.map((id) => ({ id, score: dot(vectors.get(id), query) }));
  let query;
  for (const id of [3, 14, 1000, n]) {
    // A stored vector as the query: its own code is at distance 0, so it must come back first.
    query = vectors.get(id);
    const hits = sketch.search(query, 10, -1, rerank).sort((a, b) => b.score - a.score);
    t.is(hits[0].id, id);
    t.true(new Set(hits.map((h) => h.id)).size === hits.length, 'no id twice');
    t.true(hits.every((h) => vectors.has(h.id)), 'no deleted id');
  }
  // Kind masks: only rows of the wanted kinds are scanned.
  query = next();
  const onlyTwo = sketch.search(query, 10, 1 << 2, rerank);
  t.true(onlyTwo.length > 0 && onlyTwo.every((h) => h.id % 4 === 2));
  // Below MAX_CANDIDATES wanted rows, everything wanted is re-ranked: exact.
  const small = new BinarySketch(dim);
  for (const [id, v] of [...vectors].slice(0, 500)) small.set(id, 0, signCode(v));
  t.is(small.search(query, 10, -1, rerank).length, 500);
  small.clear();
  t.is(small.size, 0);
  t.deepEqual(small.search(query, 10, -1, rerank), []);
  t.throws(() => sketch.search(new Float32Array(3), 10, -1, rerank), { instanceOf: RangeError });
});

// 64-d: one 16-byte block per code (the kernel's general loop); 1,024-d: its unrolled 8-block path.
for (const dim of [64, 1024]) test(`a large sketch scans on two threads: the first re-rank gets exactly the codes nearest by Hamming distance (${dim}-d)`, async (t) => {
  const n = 70_000;  // over the size from which a helper thread scans too
  const next = uniformVectors(dim, 11);
  const sketch = new BinarySketch(dim);
  t.teardown(() => sketch.close());
  const codes = [];
  for (let id = 0; id < n; id++) {
    codes.push(signCode(next()));
    sketch.set(id, id % 3, codes[id]);
  }
  const hamming = (a, b) => a.reduce((s, x, i) => { let v = x ^ b[i]; for (; v; v &= v - 1) s++; return s; }, 0);
  const search = (query, mask) => {
    const calls = [];
    sketch.search(query, 10, mask, (ids) => { calls.push(ids); return ids.map((id) => ({ id, score: 0 })); });
    return calls;
  };
  // The helper thread starts with the first large scan and takes chunks once it runs.
  const warm = next();
  for (let i = 0; i < 400 && sketch.helperChunks === 0; i++) {
    search(warm, -1);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
  t.true(sketch.helperChunks > 0, 'the helper thread took part');
  for (const [query, mask] of [[next(), -1], [next(), 0b110]]) {
    const qc = signCode(query);
    let calls;
    for (let i = 0; i < 50 && (!calls || sketch.helperChunks === 0); i++) calls = search(query, mask);
    t.true(sketch.helperChunks > 0);
    const first = calls[0];
    const wanted = (id) => ((mask >>> (id % 3)) & 1) === 1;
    t.is(first.length, 128, 'round 1 re-ranks the 128 nearest codes');
    t.true(first.every(wanted));
    // Exactly the nearest: every code closer than the farthest taken, then ties in slot (here: id) order.
    const reach = Math.max(...first.map((id) => hamming(codes[id], qc)));
    const closer = codes.map((c, id) => id).filter((id) => wanted(id) && hamming(codes[id], qc) < reach);
    const tied = codes.map((c, id) => id).filter((id) => wanted(id) && hamming(codes[id], qc) === reach);
    t.true(closer.length < 128);
    t.deepEqual([...first].sort((a, b) => a - b), [...closer, ...tied.slice(0, 128 - closer.length)].sort((a, b) => a - b));
    for (const later of calls.slice(1)) t.true(later.every((id) => wanted(id) && hamming(codes[id], qc) >= reach && !first.includes(id)), 'round 2 reaches further');
  }
  // The largest k a search takes still gets k rows.
  const all = sketch.search(next(), MAX_K, -1, (ids) => ids.map((id) => ({ id, score: 0 })));
  t.is(new Set(all.map((r) => r.id)).size, MAX_K);
});

test('recall@10 of the default search against the exact scan is at least 0.99 on clustered data', async (t) => {
  const dim = 1024, n = 20_000;
  const set = syntheticSet('clustered', dim, 4321);
  const store = await ibl.SqliteStore.open(path.join(tmpDir('ibl-sketch-'), 'c.sqlite'));
  t.teardown(() => store.close());
  await store.bind({ identity: 'synthetic', name: 'synthetic', dim }, false);
  await fill(store, Array.from({ length: n }, set.items));
  let recall = 0, recallKind = 0;
  const Q = 20;
  for (let q = 0; q < Q; q++) {
    const v = set.queries();
    const [approx, exact] = [await store.search(v, 20), await store.search(v, 20, undefined, { exact: true })];
    t.is(approx.length, 20);
    approx.forEach((h, i) => {
      if (i > 0) t.true(h.score <= approx[i - 1].score, 'best first');
    });
    // Whatever it returns is scored exactly: a row both return has the same score.
    const exactScore = new Map(exact.map((h) => [h.path, h.score]));
    for (const h of approx) if (exactScore.has(h.path)) t.true(Math.abs(h.score - exactScore.get(h.path)) < 1e-6);
    recall += recallAt10(approx, exact) / Q;
    const kinds = ['audio', 'point'];
    const [ak, ek] = [await store.search(v, 20, kinds), await store.search(v, 20, kinds, { exact: true })];
    t.true(ak.every((h) => kinds.includes(h.kind)));
    recallKind += recallAt10(ak, ek) / Q;
  }
  t.true(recall >= 0.99, `recall@10 ${recall}`);
  t.true(recallKind >= 0.99, `recall@10 with a kind filter ${recallKind}`);
});

test('a reader\'s sketch follows another connection\'s writes: new rows found, deleted rows never returned', async (t) => {
  const dim = 128, n = 2 * MAX_CANDIDATES;
  const file = path.join(tmpDir('ibl-sketch-'), 'rw.sqlite');
  const writer = await ibl.SqliteStore.open(file);
  const reader = await ibl.SqliteStore.open(file);
  t.teardown(async () => { await writer.close(); await reader.close(); });
  await writer.bind({ identity: 'synthetic', name: 'synthetic', dim }, false);
  const model = clusteredModel(dim, 99, { topics: 50, rank: 64 });
  const vectors = Array.from({ length: n }, model(1));
  await fill(writer, vectors);
  const probe = vectors[17];
  const before = await reader.search(probe, 5);  // loads the reader's sketch
  t.is(before[0].path, item(17).path);
  // The writer deletes the nearest rows, rewrites one with a new embedding and adds new ones.
  const gone = before.slice(0, 3).map((h) => h.path);
  t.is(await writer.remove(gone), 3);
  const fresh = Array.from({ length: 50 }, model(2));
  await writer.upsert(fresh.map((v, i) => item(i, v, 'new-')));
  await writer.upsert([item(1000, fresh[7])]);
  const after = await reader.search(probe, 50);
  t.true(after.every((h) => !gone.includes(h.path)), 'no deleted file');
  for (const i of [0, 7, 49]) {
    const top = await reader.search(fresh[i], 2);
    t.true(top.some((h) => h.path === item(i, null, 'new-').path && h.score > 0.9999), `new row ${i} found`);
  }
  const moved = await reader.search(fresh[7], 2);
  t.deepEqual(moved.map((h) => h.path).sort(), [item(1000).path, item(7, null, 'new-').path].sort(), 'the rewritten row carries its new embedding');
  t.is((await reader.stats()).items, n - 3 + 50);
});

test('a schema-1 database (sqlite-vec vec0 table) is migrated on open', async (t) => {
  const file = path.join(tmpDir('ibl-sketch-'), 'v1.sqlite');
  const dim = 16;
  const next = uniformVectors(dim, 3);
  const vectors = Array.from({ length: 6 }, next);
  const db = new Database(file);
  sqliteVec.load(db);
  db.exec(`
    CREATE TABLE ibl_meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
    CREATE TABLE ibl_items(id INTEGER PRIMARY KEY, path TEXT NOT NULL UNIQUE, kind TEXT NOT NULL, size INTEGER NOT NULL,
      mtime_us INTEGER NOT NULL, hash BLOB NOT NULL, indexed_at INTEGER NOT NULL);
    CREATE INDEX ibl_items_hash ON ibl_items(hash);
    CREATE VIRTUAL TABLE ibl_vectors USING vec0(embedding float[${dim}] distance_metric=cosine, kind text);`);
  const meta = db.prepare('INSERT INTO ibl_meta(key, value) VALUES (?, ?)');
  for (const [k, v] of [['schema', '1'], ['encoder', 'enc'], ['encoder_name', 'enc'], ['dim', String(dim)]]) meta.run(k, v);
  vectors.forEach((v, i) => {
    const it = item(i, v);
    const id = db.prepare('INSERT INTO ibl_items(path, kind, size, mtime_us, hash, indexed_at) VALUES (?, ?, ?, ?, ?, 0)')
      .run(it.path, it.kind, it.size, it.mtimeUs, Buffer.from(it.hash, 'hex')).lastInsertRowid;
    db.prepare('INSERT INTO ibl_vectors(rowid, embedding, kind) VALUES (?, ?, ?)').run(BigInt(id), Buffer.from(v.buffer), it.kind);
  });
  db.close();

  const store = await ibl.SqliteStore.open(file);
  t.teardown(() => store.close());
  t.is((await store.stats()).items, 6);
  const hits = await store.search(vectors[4], 6);
  t.is(hits[0].path, item(4).path);
  t.true(Math.abs(hits[0].score - 1) < 1e-6);
  const exact = await store.search(vectors[4], 6, undefined, { exact: true });
  t.deepEqual(hits.map((h) => h.path), exact.map((h) => h.path));
  t.deepEqual((await store.vectorsByHash([item(2).hash]))[0].vector, vectors[2]);
  const check = new Database(file, { readonly: true });
  t.teardown(() => check.close());
  t.is(check.prepare("SELECT value FROM ibl_meta WHERE key = 'schema'").pluck().get(), '2');
  t.is(check.prepare('SELECT count(*) FROM ibl_codes').pluck().get(), 6);
  t.is(check.prepare("SELECT count(*) FROM sqlite_master WHERE name = 'ibl_vectors'").pluck().get(), 0);
});
