// MediaIndex: a searchable index of local media files, embedded by one ImageBind encoder.
//
// add() walks folders, recognises files, skips the unchanged (same size and mtime, or same content),
// reuses the stored embedding of identical content (copies, renames), embeds the rest in batches and
// commits each batch in one transaction: an interrupted or killed run loses at most the batch in
// flight, and the next run resumes.  search() embeds a query of any modalities and returns the
// nearest files by cosine similarity.
import fs from 'node:fs/promises';
import path from 'node:path';
import { EmbedInput, ImageBindEncoder, InputKind } from '../encoder';
import { AbortError, ImageBindError, isAbortError, throwIfAborted } from '../errors';
import { checkInt, checkNumber } from '../options';
import { encoderIdentity, hashFile, readHead } from './identity';
import { MEDIA_KINDS, MediaKind, recognise } from './kinds';
import { SqliteStore } from './sqlite-store';
import type { EncoderStamp, NewItem, StoredItem, StoreStats, VectorStore } from './store';
import { WalkedFile, walk } from './walk';

export interface MediaIndexOptions {
  /** The encoder: a loaded one (the index borrows it) or a GGUF path (the index loads and owns it). */
  encoder?: ImageBindEncoder | string;
  /** For an encoder given as a path: CPU threads and device. */
  threads?: number;
  device?: string;
  /** An index built with another encoder is emptied and rebuilt with this one (otherwise refused). */
  reembed?: boolean;
  /** Create the database file when it does not exist (default true). */
  create?: boolean;
  signal?: AbortSignal;
}

export interface IndexProgress {
  /** Files looked at so far, of `total` found. */
  done: number;
  total: number;
  /** Files embedded so far (the expensive part). */
  embedded: number;
}

export interface AddOptions {
  signal?: AbortSignal;
  /** Called after each batch is committed (never after add() settles). */
  onProgress?: (p: IndexProgress) => void;
  /** Called for each file that could not be indexed (never after add() settles); add() goes on. */
  onFileError?: (file: string, error: ImageBindError) => void;
  /** Only these kinds (default: all). */
  kinds?: readonly MediaKind[];
  /** Also drop stored files under the given folders that no longer exist. */
  prune?: boolean;
  /** Files per encoder call and per transaction (default 16). */
  batchSize?: number;
}

export interface AddResult {
  /** Media files found (of the kinds asked for). */
  files: number;
  /** Embedded now: new files and changed ones. */
  embedded: number;
  /** Stored with the embedding of identical content already in the index (copies, renames). */
  reused: number;
  /** Already indexed and unchanged. */
  unchanged: number;
  /** Rows removed: deleted files (with prune) and files that changed into something unreadable. */
  removed: number;
  failed: Array<{ path: string; code: string; message: string }>;
}

/** A query input, optionally weighted (default weight 1, or the `weights` entry of its kind). */
export type SearchInput = EmbedInput & { weight?: number };
/** Text, one input, several weighted inputs, or a ready unit vector of the index's dimension. */
export type SearchQuery = string | SearchInput | SearchInput[] | Float32Array;

export interface SearchOptions {
  /** How many results (default 20, at most 4096). */
  k?: number;
  /** Only files of these kinds. */
  kinds?: readonly MediaKind[];
  /** Per-kind weights, e.g. { text: 1, audio: 0.5 }; an input's own weight wins. */
  weights?: Partial<Record<InputKind, number>>;
  signal?: AbortSignal;
}

export interface SearchResult {
  path: string;
  kind: MediaKind;
  /** Cosine similarity to the query, in [-1, 1]. */
  score: number;
  size: number;
  /** Modification time when indexed. */
  mtime: Date;
  /** Hex SHA-256 of the content. */
  hash: string;
}

const MAX_K = 4096;  // sqlite-vec's bound on k
/** What a changed-looking file turns out to be, besides work to do. */
const UNCHANGED = Symbol('unchanged');  // same content: only its size/mtime are recorded
const SKIP = Symbol('skip');            // not of the kinds asked for, or unreadable: left as it is
const STALE = Symbol('stale');          // no longer indexable media: its row goes

function checkKinds(kinds: unknown, name: string): MediaKind[] | undefined {
  if (kinds === undefined) return undefined;
  if (!Array.isArray(kinds) || kinds.length === 0) throw new ImageBindError('ERR_INVALID_ARG', `${name} must be a non-empty array of kinds (${MEDIA_KINDS.join(', ')})`);
  for (const k of kinds) {
    if (!MEDIA_KINDS.includes(k)) throw new ImageBindError('ERR_INVALID_ARG', `${name}: unknown kind '${k}' (one of ${MEDIA_KINDS.join(', ')})`);
  }
  return [...new Set(kinds as MediaKind[])];
}

function asError(e: unknown, file: string): ImageBindError {
  if (e instanceof ImageBindError) return e;
  return new ImageBindError('ERR_INDEX_FILE', `${file}: ${(e as Error).message ?? String(e)}`);
}

const cleanup = new FinalizationRegistry<{ store: VectorStore; encoder: ImageBindEncoder | null }>((held) => {
  void held.store.close();
  held.encoder?.dispose();
});

interface Candidate extends WalkedFile {
  stored?: StoredItem;
}

interface Prepared {
  file: WalkedFile;
  kind: MediaKind;
  hash: string;
  stored?: StoredItem;
}

export class MediaIndex {
  readonly file: string;
  #store: VectorStore;
  #encoder: ImageBindEncoder | null;
  #ownsEncoder: boolean;
  #stamp: EncoderStamp | null;
  #running: { controller: AbortController; done: Promise<unknown> } | null = null;
  #closing: Promise<void> | null = null;

  private constructor(file: string, store: VectorStore, encoder: ImageBindEncoder | null, owns: boolean, stamp: EncoderStamp | null) {
    this.file = file;
    this.#store = store;
    this.#encoder = encoder;
    this.#ownsEncoder = owns;
    this.#stamp = stamp;
    cleanup.register(this, { store, encoder: owns ? encoder : null }, this);
  }

  /**
   * Opens (or creates) the index in SQLite file `db`, or over any VectorStore.  With an encoder, an
   * index built with another encoder is refused (ERR_INDEX_ENCODER) unless `reembed`.
   */
  static async open(db: string | VectorStore, options: MediaIndexOptions = {}): Promise<MediaIndex> {
    if (typeof db !== 'string' && (typeof db !== 'object' || db === null)) {
      throw new ImageBindError('ERR_INVALID_ARG_TYPE', 'MediaIndex.open: expected a database path or a VectorStore');
    }
    if (db === '') throw new ImageBindError('ERR_INVALID_ARG_TYPE', 'MediaIndex.open: the database path is empty');
    const { signal } = options;
    throwIfAborted(signal);
    let encoder: ImageBindEncoder | null = null;
    const owns = typeof options.encoder === 'string';
    if (typeof options.encoder === 'string') {
      encoder = await ImageBindEncoder.load(options.encoder, { threads: options.threads, device: options.device, signal });
    } else if (options.encoder !== undefined) {
      if (!(options.encoder instanceof ImageBindEncoder)) throw new ImageBindError('ERR_INVALID_ARG_TYPE', 'MediaIndex.open: encoder must be an ImageBindEncoder or a GGUF path');
      encoder = options.encoder;
    }
    let store: VectorStore | null = null;
    try {
      let stamp: EncoderStamp | null = null;
      if (encoder) {
        const info = encoder.info();
        stamp = { identity: await encoderIdentity(encoder.path), name: info.name, dim: info.outDim };
      }
      store = typeof db === 'string' ? await SqliteStore.open(db, { create: options.create }) : db;
      throwIfAborted(signal);
      if (stamp) await store.bind(stamp, !!options.reembed);
      const file = typeof db === 'string' ? path.resolve(db) : '<store>';
      return new MediaIndex(file, store, encoder, owns, stamp ?? await store.encoder());
    } catch (e) {
      if (typeof db === 'string') await store?.close();
      if (owns) encoder?.dispose();
      throw e;
    }
  }

  #live(): VectorStore {
    if (this.#closing) throw new ImageBindError('ERR_INDEX_CLOSED', `${this.file}: the media index is closed`);
    return this.#store;
  }

  #liveEncoder(what: string): ImageBindEncoder {
    if (!this.#encoder) throw new ImageBindError('ERR_INDEX_NO_ENCODER', `${this.file}: ${what} needs an encoder (MediaIndex.open(db, { encoder }))`);
    return this.#encoder;
  }

  /** Indexes files and folders (recursively); see the file comment. */
  async add(paths: string | string[], options: AddOptions = {}): Promise<AddResult> {
    const store = this.#live();
    const encoder = this.#liveEncoder('add()');
    const roots = (Array.isArray(paths) ? paths : [paths]).map((p) => {
      if (typeof p !== 'string' || !p) throw new ImageBindError('ERR_INVALID_ARG_TYPE', 'add: expected file or folder paths');
      return path.resolve(p);
    });
    const kinds = checkKinds(options.kinds, 'kinds');
    const batchSize = checkInt(options.batchSize, 'batchSize', 1, 4096) ?? 16;
    if (this.#running) throw new ImageBindError('ERR_INDEX_BUSY', `${this.file}: add() is already running on this index`);
    throwIfAborted(options.signal);
    const controller = new AbortController();
    const onAbort = () => controller.abort(options.signal?.reason);
    options.signal?.addEventListener('abort', onAbort, { once: true });
    let settled = false;
    const guard = <A extends unknown[]>(f?: (...a: A) => void) => f && ((...a: A) => { if (!settled) f(...a); });
    const run = new Indexer(store, encoder, {
      signal: controller.signal, kinds, batchSize, prune: !!options.prune,
      onProgress: guard(options.onProgress), onFileError: guard(options.onFileError),
    }).run(roots);
    this.#running = { controller, done: run.catch(() => {}) };
    try {
      return await run;
    } catch (e) {
      if (controller.signal.aborted && (isAbortError(e) || (e as { code?: string }).code === 'ERR_INDEX_CLOSED')) {
        throw new AbortError('indexing aborted', { cause: controller.signal.reason });
      }
      throw e;
    } finally {
      settled = true;
      this.#running = null;
      options.signal?.removeEventListener('abort', onAbort);
    }
  }

  /** The files nearest to the query, best first. */
  async search(query: SearchQuery, options: SearchOptions = {}): Promise<SearchResult[]> {
    const store = this.#live();
    const k = checkInt(options.k, 'k', 1, MAX_K) ?? 20;
    const kinds = checkKinds(options.kinds, 'kinds');
    for (const [kind, w] of Object.entries(options.weights ?? {})) checkNumber(w, `weights.${kind}`, { min: 0 });
    const vector = await this.#queryVector(query, options);
    throwIfAborted(options.signal);
    const hits = await store.search(vector, k, kinds);
    return hits.map((h) => ({ path: h.path, kind: h.kind, score: h.score, size: h.size, mtime: new Date(h.mtimeUs / 1000), hash: h.hash }));
  }

  async #queryVector(query: SearchQuery, options: SearchOptions): Promise<Float32Array> {
    const dim = this.#stamp?.dim;
    if (query instanceof Float32Array) {
      if (dim !== undefined && query.length !== dim) throw new ImageBindError('ERR_INVALID_ARG', `search: a ${query.length}-d vector, the index holds ${dim}-d embeddings`);
      if (!query.every(Number.isFinite)) throw new ImageBindError('ERR_INVALID_ARG', 'search: the query vector has NaN or infinite values');
      return normalise(query);
    }
    const inputs: SearchInput[] = typeof query === 'string' ? [{ kind: 'text', text: query }] : Array.isArray(query) ? query : [query];
    if (inputs.length === 0) throw new ImageBindError('ERR_INVALID_ARG', 'search: the query has no inputs');
    for (const inp of inputs) checkNumber(inp.weight, `the weight of query input '${'path' in inp ? inp.path : inp.kind}'`, { min: 0 });
    const embedded = await this.#liveEncoder('search() with inputs').embed(inputs.map(stripWeight), { signal: options.signal });
    const sum = new Float32Array(embedded[0]!.embedding.length);
    inputs.forEach((inp, i) => {
      const w = inp.weight ?? options.weights?.[inp.kind as InputKind] ?? 1;
      const e = embedded[i]!.embedding;
      for (let j = 0; j < sum.length; j++) sum[j] += w * e[j]!;
    });
    return normalise(sum);
  }

  /** Removes these files, or everything stored under these folders; returns how many rows went. */
  async remove(paths: string | string[]): Promise<number> {
    const store = this.#live();
    let n = 0;
    for (const p of Array.isArray(paths) ? paths : [paths]) {
      if (typeof p !== 'string' || !p) throw new ImageBindError('ERR_INVALID_ARG_TYPE', 'remove: expected file or folder paths');
      const abs = path.resolve(p);
      n += await store.remove([abs]);
      n += await removeUnder(store, abs, () => false);
    }
    return n;
  }

  /** How many files of each kind, the encoder, the database size. */
  stats(): Promise<StoreStats> {
    return this.#live().stats();
  }

  /** The encoder the index was built with (null: nothing indexed yet and no encoder given). */
  get encoder(): EncoderStamp | null {
    return this.#stamp;
  }

  /** Stops a running add() (it rejects with AbortError), closes the database, frees an owned encoder. */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      cleanup.unregister(this);
      if (this.#running) {
        this.#running.controller.abort(new AbortError('the media index was closed'));
        await this.#running.done;
      }
      await this.#store.close();
      if (this.#ownsEncoder) this.#encoder?.dispose();
      this.#encoder = null;
    })();
    return this.#closing;
  }

  dispose(): Promise<void> {
    return this.close();
  }

  [Symbol.dispose](): void {
    void this.close();
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

function stripWeight(inp: SearchInput): EmbedInput {
  const { weight: _w, ...rest } = inp;
  return rest as EmbedInput;
}

function normalise(v: Float32Array): Float32Array {
  let n = 0;
  for (let i = 0; i < v.length; i++) n += v[i]! * v[i]!;
  if (!(n > 0)) throw new ImageBindError('ERR_INVALID_ARG', 'search: the query is a zero vector (all weights 0?)');
  const s = 1 / Math.sqrt(n);
  return Float32Array.from(v, (x) => x * s);
}

/** Removes stored paths under `dir` for which `keep` is false, a page at a time. */
async function removeUnder(store: VectorStore, dir: string, keep: (p: string) => boolean, signal?: AbortSignal): Promise<number> {
  let n = 0, after: string | null = null;
  for (;;) {
    throwIfAborted(signal);
    const page = await store.pathsUnder(dir, after, 1000);
    if (page.length === 0) return n;
    after = page[page.length - 1]!;
    const gone = page.filter((p) => !keep(p));
    if (gone.length) n += await store.remove(gone);
  }
}

interface IndexerOptions {
  signal: AbortSignal;
  kinds?: MediaKind[];
  batchSize: number;
  prune: boolean;
  onProgress?: (p: IndexProgress) => void;
  onFileError?: (file: string, error: ImageBindError) => void;
}

/** One add() run. */
class Indexer {
  readonly result: AddResult = { files: 0, embedded: 0, reused: 0, unchanged: 0, removed: 0, failed: [] };
  #done = 0;
  #total = 0;

  constructor(private readonly store: VectorStore, private readonly encoder: ImageBindEncoder, private readonly o: IndexerOptions) {}

  async run(roots: string[]): Promise<AddResult> {
    const { signal } = this.o;
    const existing: string[] = [];
    for (const r of roots) {
      if (await exists(r)) existing.push(r);
      else if (!this.o.prune) throw new ImageBindError('ERR_FILE_NOT_FOUND', `${r}: no such file or folder`);
    }
    const files = await walk(existing, { signal, onProblem: (f, m) => this.#fail(f, new ImageBindError('ERR_FILE_READ', `${f}: ${m}`)) });
    this.#total = files.length;
    // Looking up and hashing the next batch overlaps with embedding this one.
    let next: Promise<Prepared[]> | null = files.length ? this.#prepare(files.slice(0, this.o.batchSize)) : null;
    for (let i = 0; next; i += this.o.batchSize) {
      const batch = await next;
      const j = i + this.o.batchSize;
      next = j < files.length ? this.#prepare(files.slice(j, j + this.o.batchSize)) : null;
      next?.catch(() => {});  // awaited on the next turn; an abort here must not go unhandled meanwhile
      await this.#commit(batch);
      this.#done = Math.min(j, files.length);
      this.o.onProgress?.({ done: this.#done, total: this.#total, embedded: this.result.embedded });
    }
    if (this.o.prune) await this.#prune(roots, new Set(files.map((f) => f.path)));
    return this.result;
  }

  #fail(file: string, e: ImageBindError): void {
    this.result.failed.push({ path: file, code: e.code, message: e.message });
    this.o.onFileError?.(file, e);
  }

  /** Which files of the batch need work, their kind and content hash. */
  async #prepare(batch: WalkedFile[]): Promise<Prepared[]> {
    const stored = new Map((await this.store.lookup(batch.map((f) => f.path))).map((s) => [s.path, s]));
    const out: Prepared[] = [];
    const stale: string[] = [];
    const touched: Array<Pick<StoredItem, 'path' | 'size' | 'mtimeUs'>> = [];
    for (const file of batch) {
      const s = stored.get(file.path);
      if (s && s.size === file.size && s.mtimeUs === file.mtimeUs) {
        if (this.#wanted(s.kind)) this.#unchanged();
        continue;
      }
      const p = await this.#recognise({ ...file, stored: s });
      if (p === STALE) {
        if (s) stale.push(file.path);
      } else if (p === UNCHANGED) {
        this.#unchanged();
        touched.push(file);
      } else if (p !== SKIP) {
        out.push(p);
      }
    }
    if (touched.length) await this.store.touch(touched);
    if (stale.length) this.result.removed += await this.store.remove(stale);
    return out;
  }

  #wanted(kind: MediaKind): boolean {
    return !this.o.kinds || this.o.kinds.includes(kind);
  }

  #unchanged(): void {
    this.result.files++;
    this.result.unchanged++;
  }

  /** Recognises a new or changed file from its first bytes, then hashes it (non-media is never read whole). */
  async #recognise(c: Candidate): Promise<Prepared | typeof UNCHANGED | typeof SKIP | typeof STALE> {
    let r, hashed;
    try {
      r = recognise(path.basename(c.path), await readHead(c.path));
      if (r === null || r.kind === null || !this.#wanted(r.kind)) hashed = null;
      else hashed = await hashFile(c.path, this.o.signal);
    } catch (e) {
      if (isAbortError(e)) throw e;
      this.#fail(c.path, asError(e, c.path));
      return SKIP;
    }
    if (r === null) return STALE;
    if (r.kind === null) {
      this.#fail(c.path, new ImageBindError('ERR_INDEX_UNRECOGNISED', `${c.path}: ${r.problem}`));
      return STALE;
    }
    if (!hashed) return SKIP;
    if (c.stored && c.stored.hash === hashed.hash && c.stored.kind === r.kind) return UNCHANGED;
    return { file: { path: c.path, size: hashed.size, mtimeUs: c.mtimeUs }, kind: r.kind, hash: hashed.hash, stored: c.stored };
  }

  /** Embeds what has no stored twin and commits the batch in one transaction. */
  async #commit(batch: Prepared[]): Promise<void> {
    if (batch.length === 0) return;
    const twins = new Map((await this.store.vectorsByHash([...new Set(batch.map((p) => p.hash))])).map((t) => [`${t.kind}:${t.hash}`, t.vector]));
    const toEmbed = new Map<string, Prepared>();  // one embedding per distinct content
    for (const p of batch) {
      const key = `${p.kind}:${p.hash}`;
      if (!twins.has(key) && !toEmbed.has(key)) toEmbed.set(key, p);
    }
    const vectors = await this.#embed([...toEmbed.values()]);
    const rows: NewItem[] = [];
    const broken: string[] = [];
    for (const p of batch) {
      const key = `${p.kind}:${p.hash}`;
      const v = twins.get(key) ?? vectors.get(key);
      this.result.files++;
      if (!v) {
        if (p.stored) broken.push(p.file.path);
        continue;
      }
      if (twins.has(key) || toEmbed.get(key) !== p) this.result.reused++;
      else this.result.embedded++;
      rows.push({ ...p.file, kind: p.kind, hash: p.hash, vector: v });
    }
    throwIfAborted(this.o.signal);
    await this.store.upsert(rows);
    if (broken.length) this.result.removed += await this.store.remove(broken);
  }

  /** Embeds in one encoder call; if that fails, file by file, so one bad file costs only itself. */
  async #embed(items: Prepared[]): Promise<Map<string, Float32Array>> {
    const out = new Map<string, Float32Array>();
    if (items.length === 0) return out;
    const input = (p: Prepared): EmbedInput => ({ kind: p.kind, path: p.file.path });
    try {
      const res = await this.encoder.embed(items.map(input), { signal: this.o.signal });
      items.forEach((p, i) => out.set(`${p.kind}:${p.hash}`, res[i]!.embedding));
      return out;
    } catch (e) {
      if (isAbortError(e) || this.o.signal.aborted) throw e;
      if (items.length === 1) {
        this.#fail(items[0]!.file.path, asError(e, items[0]!.file.path));
        return out;
      }
    }
    for (const p of items) {
      for (const [k, v] of await this.#embed([p])) out.set(k, v);
    }
    return out;
  }

  async #prune(roots: string[], seen: Set<string>): Promise<void> {
    for (const r of roots) {
      if (!seen.has(r) && !(await exists(r))) this.result.removed += await this.store.remove([r]);
      this.result.removed += await removeUnder(this.store, r, (p) => seen.has(p), this.o.signal);
    }
  }
}

async function exists(p: string): Promise<boolean> {
  try {
    await fs.stat(p);
    return true;
  } catch {
    return false;
  }
}
