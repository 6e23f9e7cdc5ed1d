// The sketch's WebAssembly kernel (sketch-kernel.wat → sketch-kernel.wasm) and its scanner: the store's
// worker and, where there is a second core, a helper thread scan chunks of the codes side by side.
// Both instantiate the kernel over one shared memory and meet through a control block in it
// (Atomics), not through messages: the store's worker answers requests synchronously.
import fs from 'node:fs';
import path from 'node:path';
import { Worker } from 'node:worker_threads';

// TypeScript declares WebAssembly only with the DOM library, @types/node 20 not at all: the members used.
export interface WasmMemory {
  readonly buffer: ArrayBuffer | SharedArrayBuffer;
  grow(pages: number): number;
}
declare const WebAssembly: {
  Memory: new (descriptor: { initial: number; maximum: number; shared: boolean }) => WasmMemory;
  Module: new (bytes: Uint8Array) => object;
  Instance: new (module: object, imports: object) => { exports: unknown };
};

export interface Kernel {
  scan(codes: number, n: number, blocks: number, q: number, kinds: number, mask: number, dist: number, hist: number): void;
  collect(dist: number, n: number, lo: number, hi: number, out: number, cap: number): number;
}

export const PAGE = 65536;
/** The control block: Int32 slots at byte 0 of the shared memory. */
export const CTL_BYTES = 64;
const JOB = 0, NEXT = 1, DONE = 2, QUIT = 3, CODES = 4, N = 5, BLOCKS = 6, Q = 7, KINDS = 8, MASK = 9, DIST = 10, CHUNK = 11, CHUNKS = 12, HELPED = 13;
/** A scan the helper has not finished in this long means it is gone: the worker scans alone. */
const HELPER_TIMEOUT_MS = 10_000;

let compiled: object | null = null;

export function kernelModule(): object {
  return (compiled ??= new WebAssembly.Module(fs.readFileSync(path.join(__dirname, 'sketch-kernel.wasm'))));
}

export function sharedMemory(pages: number): WasmMemory {
  return new WebAssembly.Memory({ initial: pages, maximum: 65536, shared: true });
}

export function instantiate(module: object, mem: WasmMemory): Kernel {
  return new WebAssembly.Instance(module, { env: { mem } }).exports as unknown as Kernel;
}

/** One scan over all codes: its arguments as scan() takes them (whole arrays), and its chunking. */
export interface ScanJob {
  codes: number;
  n: number;
  blocks: number;
  q: number;
  kinds: number;
  mask: number;
  dist: number;
  chunk: number;
}

/**
 * Runs the scan's chunks that no other thread has taken, each into this thread's histogram: threads
 * take chunks from a shared counter, so a thread that is slowed down (the other core busy) takes
 * fewer, and the other waits at most for the one chunk it is on.
 */
function runChunks(k: Kernel, ctl: Int32Array, hist: number, helper: boolean): void {
  const chunks = ctl[CHUNKS]!, chunk = ctl[CHUNK]!, n = ctl[N]!, blocks = ctl[BLOCKS]!;
  for (let c; (c = Atomics.add(ctl, NEXT, 1)) < chunks;) {
    const from = c * chunk;
    k.scan(ctl[CODES]! + from * blocks * 16, Math.min(chunk, n - from), blocks, ctl[Q]!, ctl[KINDS]! + from, ctl[MASK]!, ctl[DIST]! + 2 * from, hist);
    if (helper) Atomics.add(ctl, HELPED, 1);
    Atomics.add(ctl, DONE, 1);
    Atomics.notify(ctl, DONE);
  }
}

/** Scans on this thread and, when there is one, on a helper thread (sketch-helper.ts). */
export class Scanner {
  #k: Kernel;
  #ctl: Int32Array;
  #helper: Worker | null = null;
  #helperHist: number;
  #broken = false;

  /** `helperHist`: where the helper's histogram lives (zeroed here before each scan). */
  constructor(k: Kernel, mem: WasmMemory, helperHist: number) {
    this.#k = k;
    this.#ctl = new Int32Array(mem.buffer, 0, CTL_BYTES / 4);
    this.#helperHist = helperHist;
  }

  /** Starts the helper thread (once); a broken one is not replaced. */
  startHelper(module: object, mem: WasmMemory): void {
    if (this.#helper || this.#broken) return;
    const worker = new Worker(path.join(__dirname, 'sketch-helper.js'), { workerData: { kernel: module, mem, hist: this.#helperHist } });
    worker.unref();
    worker.on('error', () => { this.#broken = true; });
    worker.on('exit', () => { this.#broken = true; });
    this.#helper = worker;
  }

  /**
   * scan() over the whole job, this thread's histogram at `hist` (zeroed by the caller), the helper's
   * (if any) added into it.  Synchronous: the helper is awaited with Atomics.wait.
   */
  scan(job: ScanJob, mem: WasmMemory, hist: number, bins: number): void {
    const ctl = this.#ctl;
    const helper = this.#helper && !this.#broken;
    const chunks = Math.ceil(job.n / job.chunk);
    ctl[CODES] = job.codes; ctl[N] = job.n; ctl[BLOCKS] = job.blocks; ctl[Q] = job.q;
    ctl[KINDS] = job.kinds; ctl[MASK] = job.mask; ctl[DIST] = job.dist; ctl[CHUNK] = job.chunk; ctl[CHUNKS] = chunks;
    const theirs = new Uint32Array(mem.buffer, this.#helperHist, bins);
    theirs.fill(0);
    Atomics.store(ctl, DONE, 0);
    Atomics.store(ctl, HELPED, 0);
    Atomics.store(ctl, NEXT, 0);
    if (helper) {
      Atomics.add(ctl, JOB, 1);
      Atomics.notify(ctl, JOB);
    }
    runChunks(this.#k, ctl, hist, false);
    if (!helper) return;
    if (!this.#awaitChunks(chunks)) {
      // The helper holds a chunk and does not finish it: scan everything here, without the counter.
      this.close();
      new Uint32Array(mem.buffer, hist, bins).fill(0);
      this.#k.scan(job.codes, job.n, job.blocks, job.q, job.kinds, job.mask, job.dist, hist);
      return;
    }
    const mine = new Uint32Array(mem.buffer, hist, bins);
    theirs.forEach((h, i) => { mine[i]! += h; });
  }

  /** Chunks of the last scan that the helper thread did. */
  get helped(): number {
    return Atomics.load(this.#ctl, HELPED);
  }

  #awaitChunks(chunks: number): boolean {
    const deadline = Date.now() + HELPER_TIMEOUT_MS;
    for (let done; (done = Atomics.load(this.#ctl, DONE)) < chunks;) {
      const left = deadline - Date.now();
      if (left <= 0) return false;
      Atomics.wait(this.#ctl, DONE, done, left);
    }
    return true;
  }

  close(): void {
    this.#broken = true;
    if (!this.#helper) return;
    Atomics.store(this.#ctl, QUIT, 1);
    Atomics.add(this.#ctl, JOB, 1);
    Atomics.notify(this.#ctl, JOB);
    void this.#helper.terminate();
    this.#helper = null;
  }
}

/** The helper thread's loop: each new job, take chunks until none is left; until QUIT. */
export function serveScans(module: object, mem: WasmMemory, hist: number): void {
  const k = instantiate(module, mem);
  const ctl = new Int32Array(mem.buffer, 0, CTL_BYTES / 4);
  for (let seen = Atomics.load(ctl, JOB); ;) {
    Atomics.wait(ctl, JOB, seen);
    if (Atomics.load(ctl, QUIT)) return;
    const job = Atomics.load(ctl, JOB);
    if (job === seen) continue;
    seen = job;
    runChunks(k, ctl, hist, true);
  }
}
