// The SQLite store's worker thread: owns one better-sqlite3 connection with sqlite-vec loaded and
// answers the requests of SqliteStore (sqlite-store.ts).  better-sqlite3 is synchronous, so it runs
// here, never on the application's event loop.
//
// Layout (schema 1):
//   ibl_meta(key, value)                  schema, encoder identity / name / dim
//   ibl_items(id, path UNIQUE, kind, size, mtime_us, hash BLOB(32), indexed_at)
//   ibl_vectors  vec0(embedding float[dim] distance_metric=cosine, kind text)   rowid = ibl_items.id
// WAL journal: readers in other connections and processes search while one writer indexes, and a
// killed writer loses only its open transaction (one batch).
import { parentPort, workerData } from 'node:worker_threads';
import Database from 'better-sqlite3';
import * as sqliteVec from 'sqlite-vec';
import { ImageBindError } from '../errors';
import type { WorkerRequest, WorkerResponse } from './sqlite-protocol';
import type { EncoderStamp, NewItem, StoredItem, StoreHit, StoreStats } from './store';
import type { MediaKind } from './kinds';

const SCHEMA = 1;
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

function prepareSchema(db: Database.Database): void {
  const tables = new Set((db.prepare("SELECT name FROM sqlite_master WHERE type IN ('table', 'view')").pluck().all() as string[]));
  if (tables.has('ibl_meta')) {
    const v = Number(db.prepare("SELECT value FROM ibl_meta WHERE key = 'schema'").pluck().get());
    if (v !== SCHEMA) fail('ERR_INDEX_VERSION', `${file}: media index schema ${v}; this version of imagebind-llm reads schema ${SCHEMA}`);
    return;
  }
  if (tables.size > 0) fail('ERR_INDEX_INVALID', `${file}: a SQLite database, but not an imagebind-llm media index (it has other tables); refusing to change it`);
  db.transaction(() => {
    db.exec(`
      CREATE TABLE ibl_meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
      CREATE TABLE ibl_items(
        id INTEGER PRIMARY KEY, path TEXT NOT NULL UNIQUE, kind TEXT NOT NULL, size INTEGER NOT NULL,
        mtime_us INTEGER NOT NULL, hash BLOB NOT NULL, indexed_at INTEGER NOT NULL);
      CREATE INDEX ibl_items_hash ON ibl_items(hash);`);
    db.prepare("INSERT INTO ibl_meta(key, value) VALUES ('schema', ?)").run(String(SCHEMA));
  })();
}

type Ops = Record<string, (...args: never[]) => unknown>;

function serve(db: Database.Database): Ops {
  const meta = (key: string) => db.prepare('SELECT value FROM ibl_meta WHERE key = ?').pluck().get(key) as string | undefined;
  const setMeta = db.prepare('INSERT OR REPLACE INTO ibl_meta(key, value) VALUES (?, ?)');

  function encoder(): EncoderStamp | null {
    const identity = meta('encoder');
    return identity ? { identity, name: meta('encoder_name') ?? '', dim: Number(meta('dim')) } : null;
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
      db.exec('DROP TABLE IF EXISTS ibl_vectors; DELETE FROM ibl_items;');
      if (!Number.isInteger(stamp.dim) || stamp.dim < 1 || stamp.dim > 8192) fail('ERR_INVALID_ARG', `embedding size ${stamp.dim} out of range`);
      db.exec(`CREATE VIRTUAL TABLE ibl_vectors USING vec0(embedding float[${stamp.dim}] distance_metric=cosine, kind text)`);
      setMeta.run('encoder', stamp.identity);
      setMeta.run('encoder_name', stamp.name);
      setMeta.run('dim', String(stamp.dim));
    })();
  }

  // Statements on ibl_vectors exist only once the store is bound (the table needs the dimension).
  let vecStmts: ReturnType<typeof prepareVec> | null = null;
  function prepareVec() {
    return {
      insert: db.prepare('INSERT INTO ibl_vectors(rowid, embedding, kind) VALUES (?, ?, ?)'),
      del: db.prepare('DELETE FROM ibl_vectors WHERE rowid = ?'),
      get: db.prepare('SELECT embedding FROM ibl_vectors WHERE rowid = ?').pluck(),
    };
  }
  function vec() {
    if (!encoder()) fail('ERR_INDEX_UNBOUND', `${file}: the index has no encoder yet`);
    return (vecStmts ??= prepareVec());
  }

  const itemCols = 'path, kind, size, mtime_us AS mtimeUs, lower(hex(hash)) AS hash';
  const byPath = db.prepare(`SELECT id, ${itemCols} FROM ibl_items WHERE path = ?`);
  const byHash = db.prepare('SELECT id, kind FROM ibl_items WHERE hash = ? LIMIT 1');
  const insertItem = db.prepare('INSERT INTO ibl_items(path, kind, size, mtime_us, hash, indexed_at) VALUES (?, ?, ?, ?, ?, ?)');
  const updateItem = db.prepare('UPDATE ibl_items SET kind = ?, size = ?, mtime_us = ?, hash = ?, indexed_at = ? WHERE id = ?');
  const touchItem = db.prepare('UPDATE ibl_items SET size = ?, mtime_us = ? WHERE path = ?');
  const deleteItem = db.prepare('DELETE FROM ibl_items WHERE id = ?');

  const blob = (v: Float32Array) => Buffer.from(v.buffer, v.byteOffset, v.byteLength);

  function lookup(paths: string[]): StoredItem[] {
    const out: StoredItem[] = [];
    for (const p of paths) {
      const row = byPath.get(p) as (StoredItem & { id: number }) | undefined;
      if (row) out.push({ path: row.path, kind: row.kind, size: row.size, mtimeUs: row.mtimeUs, hash: row.hash });
    }
    return out;
  }

  function vectorsByHash(hashes: string[]): Array<{ hash: string; kind: MediaKind; vector: Float32Array }> {
    const v = vec();
    const out: Array<{ hash: string; kind: MediaKind; vector: Float32Array }> = [];
    for (const hash of hashes) {
      const row = byHash.get(Buffer.from(hash, 'hex')) as { id: number; kind: MediaKind } | undefined;
      const e = row && (v.get.get(BigInt(row.id)) as Buffer | undefined);
      if (row && e) out.push({ hash, kind: row.kind, vector: new Float32Array(e.buffer.slice(e.byteOffset, e.byteOffset + e.byteLength)) });
    }
    return out;
  }

  function upsert(items: NewItem[]): void {
    const v = vec();
    const dim = encoder()!.dim;
    const now = Date.now();
    db.transaction(() => {
      for (const it of items) {
        if (it.vector.length !== dim) fail('ERR_INVALID_ARG', `${it.path}: embedding of ${it.vector.length} values, the index holds ${dim}`);
        const hash = Buffer.from(it.hash, 'hex');
        const old = byPath.get(it.path) as { id: number } | undefined;
        let id: bigint;
        if (old) {
          id = BigInt(old.id);
          updateItem.run(it.kind, it.size, it.mtimeUs, hash, now, id);
          v.del.run(id);
        } else {
          id = BigInt(insertItem.run(it.path, it.kind, it.size, it.mtimeUs, hash, now).lastInsertRowid);
        }
        v.insert.run(id, blob(it.vector), it.kind);
      }
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
        if (encoder()) vec().del.run(BigInt(row.id));
        deleteItem.run(row.id);
        n++;
      }
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

  const searchStmts = new Map<number, Database.Statement>();
  function search(vector: Float32Array, k: number, kinds: MediaKind[] | null): StoreHit[] {
    vec();
    const n = kinds ? kinds.length : 0;
    let st = searchStmts.get(n);
    if (!st) {
      const filter = n ? ` AND kind IN (${Array(n).fill('?').join(', ')})` : '';
      // sqlite-vec's vec0 KNN: an exact scan, cosine distance = 1 − cosine similarity.
      st = db.prepare(`WITH knn AS (SELECT rowid, distance FROM ibl_vectors WHERE embedding MATCH ? AND k = ?${filter})
        SELECT ${itemCols}, 1.0 - knn.distance AS score FROM knn JOIN ibl_items i ON i.id = knn.rowid ORDER BY knn.distance, i.path`);
      searchStmts.set(n, st);
    }
    return st.all(blob(vector), k, ...(kinds ?? [])) as StoreHit[];
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
