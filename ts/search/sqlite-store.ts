// The SQLite store: better-sqlite3 (a maintained, synchronous binding that compiles SQLite from source
// when no prebuilt binary can be fetched) with sqlite-vec (a vector-search extension whose npm package
// ships its loadable library per platform).  The connection lives on a worker thread
// (sqlite-worker.ts); this side forwards requests and turns failures into ImageBindErrors.
import path from 'node:path';
import { Worker } from 'node:worker_threads';
import { ImageBindError } from '../errors';
import type { MediaKind } from './kinds';
import type { WorkerRequest, WorkerResponse } from './sqlite-protocol';
import type { EncoderStamp, NewItem, StoredItem, StoreHit, StoreStats, VectorStore } from './store';

interface Pending {
  resolve: (v: unknown) => void;
  reject: (e: Error) => void;
}

export interface SqliteStoreOptions {
  /** Create the database when it does not exist (default true). */
  create?: boolean;
}

function workerFailure(file: string, e: Error): ImageBindError {
  if (/better[-_]sqlite3|bindings file|sqlite-vec|loadable/i.test(e.message)) {
    return new ImageBindError('ERR_SQLITE_UNAVAILABLE',
      `${file}: the SQLite binding or its vector extension cannot be loaded (${e.message.split('\n')[0]}); ` +
      'media search needs them in your project: `npm install better-sqlite3@12 sqlite-vec@0.1.9` ' +
      '(or `npm rebuild better-sqlite3` when it is installed but not built)', { cause: e });
  }
  return new ImageBindError('ERR_INDEX_STORAGE', `${file}: the database worker failed: ${e.message}`, { cause: e });
}

export class SqliteStore implements VectorStore {
  readonly file: string;
  #worker: Worker;
  #pending = new Map<number, Pending>();
  #next = 1;
  #closed: Promise<void> | null = null;
  #dead: Error | null = null;

  private constructor(file: string, worker: Worker) {
    this.file = file;
    this.#worker = worker;
    worker.on('message', (res: WorkerResponse) => this.#settle(res));
    worker.on('error', (e) => this.#die(workerFailure(file, e)));
    worker.on('exit', () => this.#die(new ImageBindError('ERR_INDEX_CLOSED', `${file}: the media index is closed`)));
    worker.unref();
  }

  /** Opens (or creates) the database file; resolves once its schema is checked. */
  static async open(file: string, options: SqliteStoreOptions = {}): Promise<SqliteStore> {
    const abs = path.resolve(file);
    const worker = new Worker(path.join(__dirname, 'sqlite-worker.js'), { workerData: { file: abs, create: options.create !== false } });
    await new Promise<void>((resolve, reject) => {
      const onMessage = (res: WorkerResponse) => {
        if (res.id !== 0) return;
        worker.off('error', onError);
        if (res.error) {
          reject(new ImageBindError(res.error.code, res.error.message));
          void worker.terminate();
        } else {
          resolve();
        }
      };
      const onError = (e: Error) => {
        worker.off('message', onMessage);
        reject(workerFailure(abs, e));
      };
      worker.once('message', onMessage);
      worker.once('error', onError);
    });
    return new SqliteStore(abs, worker);
  }

  #settle(res: WorkerResponse): void {
    const p = this.#pending.get(res.id);
    if (!p) return;
    this.#pending.delete(res.id);
    if (this.#pending.size === 0) this.#worker.unref();
    if (res.error) p.reject(new ImageBindError(res.error.code, res.error.message));
    else p.resolve(res.value);
  }

  #die(e: Error): void {
    this.#dead ??= e;
    for (const p of this.#pending.values()) p.reject(e);
    this.#pending.clear();
  }

  #call<T>(op: string, ...args: unknown[]): Promise<T> {
    if (this.#closed) return Promise.reject(new ImageBindError('ERR_INDEX_CLOSED', `${this.file}: the media index is closed`));
    if (this.#dead) return Promise.reject(this.#dead);
    const id = this.#next++;
    // Referenced while a request is outstanding, so the process waits for the answer; idle, it may exit.
    if (this.#pending.size === 0) this.#worker.ref();
    return new Promise<T>((resolve, reject) => {
      this.#pending.set(id, { resolve: resolve as (v: unknown) => void, reject });
      this.#worker.postMessage({ id, op, args } satisfies WorkerRequest);
    });
  }

  encoder(): Promise<EncoderStamp | null> {
    return this.#call('encoder');
  }

  bind(encoder: EncoderStamp, reset: boolean): Promise<void> {
    return this.#call('bind', encoder, reset);
  }

  lookup(paths: string[]): Promise<StoredItem[]> {
    return this.#call('lookup', paths);
  }

  vectorsByHash(hashes: string[]): Promise<Array<{ hash: string; kind: MediaKind; vector: Float32Array }>> {
    return this.#call('vectorsByHash', hashes);
  }

  upsert(items: NewItem[]): Promise<void> {
    return this.#call('upsert', items);
  }

  touch(items: Array<Pick<StoredItem, 'path' | 'size' | 'mtimeUs'>>): Promise<void> {
    return this.#call('touch', items);
  }

  remove(paths: string[]): Promise<number> {
    return this.#call('remove', paths);
  }

  pathsUnder(dir: string, after: string | null, limit: number): Promise<string[]> {
    return this.#call('pathsUnder', dir, path.sep, after, limit);
  }

  search(vector: Float32Array, k: number, kinds?: readonly MediaKind[]): Promise<StoreHit[]> {
    return this.#call('search', vector, k, kinds ? [...kinds] : null);
  }

  stats(): Promise<StoreStats> {
    return this.#call('stats');
  }

  /** Checkpoints the journal into the database file and ends the worker; idempotent. */
  close(): Promise<void> {
    this.#closed ??= (async () => {
      if (!this.#dead) await this.#callUnchecked('close').catch(() => {});
      await this.#worker.terminate();
    })();
    return this.#closed;
  }

  #callUnchecked(op: string): Promise<unknown> {
    const id = this.#next++;
    this.#worker.ref();
    return new Promise((resolve, reject) => {
      this.#pending.set(id, { resolve, reject });
      this.#worker.postMessage({ id, op, args: [] } satisfies WorkerRequest);
    });
  }

  /** Ends the worker without waiting (a finalizer's last resort). */
  terminate(): void {
    void this.#worker.terminate();
  }
}
