// The SQLite store's worker thread: owns one better-sqlite3 connection with sqlite-vec loaded and
// answers the requests of SqliteStore (sqlite-store.ts).  better-sqlite3 is synchronous, so it runs
// here, never on the application's event loop; so does the search's in-memory sketch (sketch.ts).
//
// Layout (schema 2):
//   ibl_meta(key, value)                  schema, encoder identity / name / dim, generation, changes_pruned
//   ibl_items(id, path UNIQUE, kind, size, mtime_us, hash BLOB(32), indexed_at)
//   ibl_embeddings(id, embedding BLOB)    float32 × dim, little-endian; id = ibl_items.id
//   ibl_codes(id, kind, code BLOB)        the embedding's sign bits (sketch.ts: signCode), derived from it
//   ibl_changes(seq, id)                  ids written or deleted, in commit order
// SQLite is the source of truth; each connection keeps a BinarySketch of ibl_codes in memory and
// brings it up to date from ibl_changes at every search, inside the search's own read transaction, so
// a search sees one snapshot: its candidates, their exact scores and the rows returned agree, and a
// deleted file is never returned.  Schema 1 kept embeddings in a sqlite-vec vec0 table (an exact scan,
// ~1 ms per point read) and is migrated on open.
// WAL journal: readers in other connections and processes search while one writer indexes, and a
// killed writer loses only its open transaction (one batch).
import { parentPort, workerData } from 'node:worker_threads';
import Database from 'better-sqlite3';
import * as sqliteVec from 'sqlite-vec';
import { ImageBindError } from '../errors';
import type { WorkerRequest, WorkerResponse } from './sqlite-protocol';
import type { EncoderStamp, NewItem, StoredItem, StoreHit, StoreStats } from './store';
import { MEDIA_KINDS, type MediaKind } from './kinds';
import { BinarySketch, Scored, signCode } from './sketch';

const SCHEMA = 2;
/** Change-log rows kept after pruning: a reader that falls further behind reloads its sketch whole. */
const KEEP_CHANGES = 262_144;
const { file, create } = workerData as { file: string; create: boolean };

function fail(code: string, message: string): never {
  throw new ImageBindError(code, message);
}

function openDb(): Database.Database {
  let db: Database.Database;
  try {
    db = new Database(file, { fileMustExist: !create });
  } catch (e) {
    const err = e as { code?: string; message: string };
    if (/unable to open|does not exist/i.test(err.message) && !create) fail('ERR_FILE_NOT_FOUND', `${file}: no such media index (make one with \`imagebind-llm index\`)`);
    fail('ERR_INDEX_OPEN', `${file}: cannot open the database: ${err.message}`);
  }
  try {
    sqliteVec.load(db);
    db.pragma('busy_timeout = 10000');
    db.pragma('journal_mode = WAL');
    // NORMAL in WAL mode: a crashed or killed process loses nothing committed; only power loss can
    // lose the last transactions, never corrupt the file.
    db.pragma('synchronous = NORMAL');
    prepareSchema(db);
  } catch (e) {
    db.close();
    if (e instanceof ImageBindError) throw e;
    const err = e as { code?: string; message: string };
    if (err.code === 'SQLITE_NOTADB' || err.code === 'SQLITE_CORRUPT') fail('ERR_INDEX_INVALID', `${file}: not a media index (${err.message})`);
    throw e;
  }
  return db;
}

const TABLES_V2 = `
  CREATE TABLE ibl_embeddings(id INTEGER PRIMARY KEY, embedding BLOB NOT NULL);
  CREATE TABLE ibl_codes(id INTEGER PRIMARY KEY, kind TEXT NOT NULL, code BLOB NOT NULL);
  CREATE TABLE ibl_changes(seq INTEGER PRIMARY KEY AUTOINCREMENT, id INTEGER NOT NULL);`;

function prepareSchema(db: Database.Database): void {
  const tables = new Set((db.prepare("SELECT name FROM sqlite_master WHERE type IN ('table', 'view')").pluck().all() as string[]));
  if (tables.has('ibl_meta')) {
    const v = Number(db.prepare("SELECT value FROM ibl_meta WHERE key = 'schema'").pluck().get());
    if (v === 1) migrateFrom1(db, tables.has('ibl_vectors'));
    else if (v !== SCHEMA) fail('ERR_INDEX_VERSION', `${file}: media index schema ${v}; this version of imagebind-llm reads schema ${SCHEMA}`);
    return;
  }
  if (tables.size > 0) fail('ERR_INDEX_INVALID', `${file}: a SQLite database, but not an imagebind-llm media index (it has other tables); refusing to change it`);
  db.transaction(() => {
    db.exec(`
      CREATE TABLE ibl_meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
      CREATE TABLE ibl_items(
        id INTEGER PRIMARY KEY, path TEXT NOT NULL UNIQUE, kind TEXT NOT NULL, size INTEGER NOT NULL,
        mtime_us INTEGER NOT NULL, hash BLOB NOT NULL, indexed_at INTEGER NOT NULL);
      CREATE INDEX ibl_items_hash ON ibl_items(hash);
      ${TABLES_V2}`);
    db.prepare("INSERT INTO ibl_meta(key, value) VALUES ('schema', ?)").run(String(SCHEMA));
  })();
}

/** Schema 1 → 2 in one transaction: embeddings out of the vec0 table, their codes computed. */
function migrateFrom1(db: Database.Database, hasVectors: boolean): void {
  db.transaction(() => {
    db.exec(TABLES_V2);
    if (hasVectors) {
      db.exec('INSERT INTO ibl_embeddings(id, embedding) SELECT rowid, embedding FROM ibl_vectors; DROP TABLE ibl_vectors;');
    }
    const page = db.prepare('SELECT e.id, i.kind, e.embedding FROM ibl_embeddings e JOIN ibl_items i ON i.id = e.id WHERE e.id > ? ORDER BY e.id LIMIT 1024');
    const put = db.prepare('INSERT INTO ibl_codes(id, kind, code) VALUES (?, ?, ?)');
    for (let after = -1; ;) {
      const rows = page.all(after) as Array<{ id: number; kind: string; embedding: Buffer }>;
      if (rows.length === 0) break;
      for (const r of rows) put.run(r.id, r.kind, signCode(floats(r.embedding)));
      after = rows[rows.length - 1]!.id;
    }
    db.prepare("UPDATE ibl_meta SET value = ? WHERE key = 'schema'").run(String(SCHEMA));
  })();
}

/** A float32 copy of a blob (its bytes may not be 4-aligned). */
function floats(b: Buffer): Float32Array {
  return new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));
}

const blob = (v: Float32Array | Uint8Array) => Buffer.from(v.buffer, v.byteOffset, v.byteLength);

/** The bit a kind has in the sketch's search masks. */
function kindBit(kind: string): number {
  const i = MEDIA_KINDS.indexOf(kind as MediaKind);
  return i < 0 ? 31 : i;
}

type Ops = Record<string, (...args: never[]) => unknown>;

function serve(db: Database.Database): Ops {
  const meta = (key: string) => db.prepare('SELECT value FROM ibl_meta WHERE key = ?').pluck().get(key) as string | undefined;
  const setMeta = db.prepare('INSERT OR REPLACE INTO ibl_meta(key, value) VALUES (?, ?)');

  function encoder(): EncoderStamp | null {
    const identity = meta('encoder');
    return identity ? { identity, name: meta('encoder_name') ?? '', dim: Number(meta('dim')) } : null;
  }

  function bound(): EncoderStamp {
    return encoder() ?? fail('ERR_INDEX_UNBOUND', `${file}: the index has no encoder yet`);
  }

  const shortId = (id: string) => id.slice(0, 12);

  function bind(stamp: EncoderStamp, reset: boolean): void {
    db.transaction(() => {
      const cur = encoder();
      if (cur && cur.identity === stamp.identity) return;
      if (cur && !reset) {
        fail('ERR_INDEX_ENCODER', `${file} was built with another encoder ('${cur.name}', ${cur.dim}-d, identity ${shortId(cur.identity)}) ` +
          `than '${stamp.name}' (${stamp.dim}-d, identity ${shortId(stamp.identity)}): their embeddings cannot be compared. ` +
          'Use the encoder it was built with, or re-embed everything with this one (--reembed).');
      }
      if (!Number.isInteger(stamp.dim) || stamp.dim < 1 || stamp.dim > 8192) fail('ERR_INVALID_ARG', `embedding size ${stamp.dim} out of range`);
      db.exec('DELETE FROM ibl_embeddings; DELETE FROM ibl_codes; DELETE FROM ibl_items; DELETE FROM ibl_changes;');
      // A new generation: every connection's sketch reloads.
      setMeta.run('generation', String(Number(meta('generation') ?? 0) + 1));
      setMeta.run('changes_pruned', String(lastSeq()));
      setMeta.run('encoder', stamp.identity);
      setMeta.run('encoder_name', stamp.name);
      setMeta.run('dim', String(stamp.dim));
    })();
  }

  const itemCols = (t = '') => `${t}path, ${t}kind, ${t}size, ${t}mtime_us AS mtimeUs, lower(hex(${t}hash)) AS hash`;
  const byPath = db.prepare(`SELECT id, ${itemCols()} FROM ibl_items WHERE path = ?`);
  const byHash = db.prepare('SELECT id, kind FROM ibl_items WHERE hash = ? LIMIT 1');
  const insertItem = db.prepare('INSERT INTO ibl_items(path, kind, size, mtime_us, hash, indexed_at) VALUES (?, ?, ?, ?, ?, ?)');
  const updateItem = db.prepare('UPDATE ibl_items SET kind = ?, size = ?, mtime_us = ?, hash = ?, indexed_at = ? WHERE id = ?');
  const touchItem = db.prepare('UPDATE ibl_items SET size = ?, mtime_us = ? WHERE path = ?');
  const deleteItem = db.prepare('DELETE FROM ibl_items WHERE id = ?');
  const getEmbedding = db.prepare('SELECT embedding FROM ibl_embeddings WHERE id = ?').pluck();
  const putEmbedding = db.prepare('INSERT OR REPLACE INTO ibl_embeddings(id, embedding) VALUES (?, ?)');
  const putCode = db.prepare('INSERT OR REPLACE INTO ibl_codes(id, kind, code) VALUES (?, ?, ?)');
  const deleteEmbedding = db.prepare('DELETE FROM ibl_embeddings WHERE id = ?');
  const deleteCode = db.prepare('DELETE FROM ibl_codes WHERE id = ?');
  const logChange = db.prepare('INSERT INTO ibl_changes(id) VALUES (?)');
  const lastSeqStmt = db.prepare("SELECT seq FROM sqlite_sequence WHERE name = 'ibl_changes'").pluck();
  const lastSeq = () => Number(lastSeqStmt.get() ?? 0);
  const dropChanges = db.prepare('DELETE FROM ibl_changes WHERE seq <= ?');

  /** Keeps the change log bounded (inside the writer's transaction). */
  function pruneChanges(): void {
    const seq = lastSeq();
    if (seq - Number(meta('changes_pruned') ?? 0) <= 2 * KEEP_CHANGES) return;
    dropChanges.run(seq - KEEP_CHANGES);
    setMeta.run('changes_pruned', String(seq - KEEP_CHANGES));
  }

  function lookup(paths: string[]): StoredItem[] {
    const out: StoredItem[] = [];
    for (const p of paths) {
      const row = byPath.get(p) as (StoredItem & { id: number }) | undefined;
      if (row) out.push({ path: row.path, kind: row.kind, size: row.size, mtimeUs: row.mtimeUs, hash: row.hash });
    }
    return out;
  }

  function vectorsByHash(hashes: string[]): Array<{ hash: string; kind: MediaKind; vector: Float32Array }> {
    bound();
    const out: Array<{ hash: string; kind: MediaKind; vector: Float32Array }> = [];
    for (const hash of hashes) {
      const row = byHash.get(Buffer.from(hash, 'hex')) as { id: number; kind: MediaKind } | undefined;
      const e = row && (getEmbedding.get(row.id) as Buffer | undefined);
      if (row && e) out.push({ hash, kind: row.kind, vector: floats(e) });
    }
    return out;
  }

  function upsert(items: NewItem[]): void {
    const dim = bound().dim;
    const now = Date.now();
    db.transaction(() => {
      for (const it of items) {
        if (it.vector.length !== dim) fail('ERR_INVALID_ARG', `${it.path}: embedding of ${it.vector.length} values, the index holds ${dim}`);
        const hash = Buffer.from(it.hash, 'hex');
        const old = byPath.get(it.path) as { id: number } | undefined;
        let id: number;
        if (old) {
          id = old.id;
          updateItem.run(it.kind, it.size, it.mtimeUs, hash, now, id);
        } else {
          id = Number(insertItem.run(it.path, it.kind, it.size, it.mtimeUs, hash, now).lastInsertRowid);
        }
        putEmbedding.run(id, blob(it.vector));
        putCode.run(id, it.kind, blob(signCode(it.vector)));
        logChange.run(id);
      }
      pruneChanges();
    })();
  }

  function touch(items: Array<Pick<StoredItem, 'path' | 'size' | 'mtimeUs'>>): void {
    db.transaction(() => {
      for (const it of items) touchItem.run(it.size, it.mtimeUs, it.path);
    })();
  }

  function remove(paths: string[]): number {
    let n = 0;
    db.transaction(() => {
      for (const p of paths) {
        const row = byPath.get(p) as { id: number } | undefined;
        if (!row) continue;
        deleteEmbedding.run(row.id);
        deleteCode.run(row.id);
        deleteItem.run(row.id);
        logChange.run(row.id);
        n++;
      }
      pruneChanges();
    })();
    return n;
  }

  const under = db.prepare('SELECT path FROM ibl_items WHERE path >= ? AND path > ? AND path < ? ORDER BY path LIMIT ?').pluck();
  function pathsUnder(dir: string, sep: string, after: string | null, limit: number): string[] {
    // Inside dir ⇔ dir + sep ≤ path < dir + (the character after sep), in binary collation: a range
    // scan of the unique index on path.
    const lo = dir.endsWith(sep) ? dir : dir + sep;
    const hi = lo.slice(0, -1) + String.fromCharCode(sep.charCodeAt(0) + 1);
    return under.all(lo, after ?? '', hi, limit) as string[];
  }

  // The sketch: loaded at the first search, then brought up to date from the change log.
  let sketch: BinarySketch | null = null;
  let sketchGeneration = '';
  let syncedSeq = 0;
  const allCodes = db.prepare('SELECT id, kind, code FROM ibl_codes').raw();
  const changedSince = db.prepare('SELECT DISTINCT id FROM ibl_changes WHERE seq > ?').pluck();
  const codeById = db.prepare('SELECT kind, code FROM ibl_codes WHERE id = ?');

  /** The sketch as of this connection's snapshot (call inside a transaction). */
  function syncSketch(dim: number): BinarySketch {
    const generation = meta('generation') ?? '0';
    const seq = lastSeq();
    if (!sketch || sketch.dim !== dim || generation !== sketchGeneration || syncedSeq < Number(meta('changes_pruned') ?? 0)) {
      const fresh = new BinarySketch(dim);
      for (const [id, kind, code] of allCodes.iterate() as Iterable<[number, string, Buffer]>) fresh.set(id, kindBit(kind), code);
      sketch?.close();
      sketch = fresh;
    } else if (seq > syncedSeq) {
      for (const id of changedSince.all(syncedSeq) as number[]) {
        const row = codeById.get(id) as { kind: string; code: Buffer } | undefined;
        if (row) sketch.set(id, kindBit(row.kind), row.code);
        else sketch.delete(id);
      }
    }
    sketchGeneration = generation;
    syncedSeq = seq;
    return sketch;
  }

  const rerankStmt = db.prepare('SELECT id, 1.0 - vec_distance_cosine(embedding, ?) AS score FROM ibl_embeddings WHERE id IN (SELECT value FROM json_each(?))');
  const rowsStmt = db.prepare(`SELECT id, ${itemCols()} FROM ibl_items WHERE id IN (SELECT value FROM json_each(?))`);
  const exactStmts = new Map<number, Database.Statement>();

  function exactSearch(q: Buffer, k: number, kinds: MediaKind[] | null): StoreHit[] {
    const n = kinds ? kinds.length : 0;
    let st = exactStmts.get(n);
    if (!st) {
      const filter = n ? ` WHERE i.kind IN (${Array(n).fill('?').join(', ')})` : '';
      // A full scan: vec_distance_cosine (sqlite-vec) on every stored embedding.
      st = db.prepare(`SELECT ${itemCols('i.')}, 1.0 - vec_distance_cosine(e.embedding, ?) AS score
        FROM ibl_embeddings e JOIN ibl_items i ON i.id = e.id${filter} ORDER BY score DESC, i.path LIMIT ?`);
      exactStmts.set(n, st);
    }
    return st.all(q, ...(kinds ?? []), k) as StoreHit[];
  }

  function search(vector: Float32Array, k: number, kinds: MediaKind[] | null, exact: boolean): StoreHit[] {
    const dim = bound().dim;
    if (vector.length !== dim) fail('ERR_INVALID_ARG', `search: a ${vector.length}-d query, the index holds ${dim}-d embeddings`);
    const q = blob(vector);
    // One read transaction: one snapshot for the sketch's update, the re-rank and the rows.
    return db.transaction(() => {
      if (exact) return exactSearch(q, k, kinds);
      const mask = kinds ? kinds.reduce((m, kind) => m | (1 << kindBit(kind)), 0) : -1;
      const scored = syncSketch(dim).search(vector, k, mask, (ids) => rerankStmt.all(q, JSON.stringify(ids)) as Scored[]);
      scored.sort((a, b) => b.score - a.score || a.id - b.id);
      const top = new Map(scored.slice(0, k).map((s) => [s.id, s.score]));
      const rows = rowsStmt.all(JSON.stringify([...top.keys()])) as Array<StoredItem & { id: number }>;
      return rows.map(({ id, ...item }) => ({ ...item, score: top.get(id)! }))
        .sort((a, b) => b.score - a.score || (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
    })();
  }

  function stats(): StoreStats {
    const byKind: Partial<Record<MediaKind, number>> = {};
    for (const r of db.prepare('SELECT kind, count(*) AS n FROM ibl_items GROUP BY kind').all() as Array<{ kind: MediaKind; n: number }>) byKind[r.kind] = r.n;
    const items = Object.values(byKind).reduce((a, b) => a + b, 0);
    const bytes = Number(db.pragma('page_count', { simple: true })) * Number(db.pragma('page_size', { simple: true }));
    return { items, byKind, encoder: encoder(), bytes };
  }

  return {
    encoder, bind, lookup, vectorsByHash, upsert, touch, remove, pathsUnder, search, stats,
    close: () => {
      sketch?.close();
      db.pragma('wal_checkpoint(TRUNCATE)');
      db.close();
    },
  };
}

function toWire(e: unknown): { code: string; message: string } {
  const err = e as { code?: string; message?: string };
  if (e instanceof ImageBindError) return { code: e.code, message: e.message };
  return { code: 'ERR_INDEX_STORAGE', message: `${file}: ${err.code ? `${err.code}: ` : ''}${err.message}` };
}

let ops: Ops;
try {
  ops = serve(openDb());
  parentPort!.postMessage({ id: 0, value: 'ready' } satisfies WorkerResponse);
} catch (e) {
  parentPort!.postMessage({ id: 0, error: toWire(e) } satisfies WorkerResponse);
  process.exit(0);
}

parentPort!.on('message', (req: WorkerRequest) => {
  let res: WorkerResponse;
  try {
    const op = ops[req.op];
    if (!op) fail('ERR_INTERNAL', `unknown store operation ${req.op}`);
    res = { id: req.id, value: (op as (...a: unknown[]) => unknown)(...req.args) };
  } catch (e) {
    res = { id: req.id, error: toWire(e) };
  }
  parentPort!.postMessage(res);
});
