// The binary sketch: an in-memory acceleration structure over the stored embeddings, derived from
// SQLite (the source of truth) and never consulted without it.  Each embedding is kept as its sign
// bits (1,024 bits = 128 bytes for ImageBind-Huge, 1/32 of the float32 vector); a query is compared
// with every code by Hamming distance in a WebAssembly SIMD kernel (sketch-kernel.wat), and only the
// nearest codes are re-ranked exactly, in float32, by the caller.
//
// How many to re-rank comes from the random-hyperplane model of sign codes (Charikar 2002): for two
// vectors at angle θ, each bit differs with probability θ/π, so the distance is close to Binomial(bits,
// θ/π).  After an exact re-rank of the nearest few codes the k-th best cosine s_k so far bounds the
// angle of every true top-k item (θ ≤ acos s_k); every code within Z standard deviations above that
// binomial's mean is re-ranked too.  Tight clusters (real embeddings) need a few hundred re-ranks;
// unstructured data (uniform random vectors) would need most of the index, and is cut at
// MAX_CANDIDATES, where recall falls (docs/SEARCH.md).  Searches ask for k ≤ MAX_K; a k over
// MAX_CANDIDATES re-ranks k codes.
import os from 'node:os';
import { CTL_BYTES, Kernel, PAGE, Scanner, instantiate, kernelModule, sharedMemory } from './sketch-kernel';

/**
 * Codes re-ranked at most per query, unless k is larger: each costs one float32 read and cosine in
 * SQLite, ~5 µs warm, so 2,048 bound a search at 1M to ~10 ms of scan plus ~10 ms of re-rank.
 */
export const MAX_CANDIDATES = 2048;
/** The largest k a search takes. */
export const MAX_K = 4096;
/** Codes re-ranked first, to learn s_k (at least 2k). */
const PROBE = 128;
/** Standard deviations of the binomial model kept above its mean (one true neighbour in ~700 lost). */
const Z = 3;
/** Most bits a code may have (the store bounds embeddings to 8,192 values). */
const MAX_BITS = 8192;
/** From this many codes on, a helper thread scans too (where there are two cores). */
const PARALLEL_FROM = 65_536;
/** Codes per chunk of a scan (the unit the threads share out; ~0.2 ms each). */
const CHUNK = 16_384;

/** Bytes of the sign code of a `dim`-value vector (whole 16-byte SIMD blocks; padding bits stay 0). */
export function codeBytes(dim: number): number {
  return Math.ceil(dim / 128) * 16;
}

/** The sign code of a vector: bit j (byte j >> 3, bit j & 7) is set where v[j] > 0. */
export function signCode(v: Float32Array): Uint8Array {
  const code = new Uint8Array(codeBytes(v.length));
  for (let j = 0; j < v.length; j++) if (v[j]! > 0) code[j >> 3]! |= 1 << (j & 7);
  return code;
}

// Memory layout (bytes): the helper's control block, the query code, a distance histogram per thread
// and the collect() output have fixed places; per-item kinds (u8), distances (u16) and codes follow,
// laid out again when capacity grows.
const HIST_BYTES = (MAX_BITS + 1) * 4 + 12;
const Q_OFF = CTL_BYTES;
const HIST_OFF = Q_OFF + MAX_BITS / 8;
const HELPER_HIST_OFF = HIST_OFF + HIST_BYTES;
const OUT_OFF = HELPER_HIST_OFF + HIST_BYTES;
const ITEMS_OFF = OUT_OFF + MAX_K * 4;
const align16 = (x: number) => Math.ceil(x / 16) * 16;

export interface Scored {
  id: number;
  /** Cosine similarity. */
  score: number;
}

export class BinarySketch {
  readonly dim: number;
  readonly bytes: number;
  #mem = sharedMemory(Math.ceil(ITEMS_OFF / PAGE) + 1);
  #k: Kernel;
  #scanner: Scanner;
  #n = 0;
  #cap = 0;
  #kindsOff = ITEMS_OFF;
  #distOff = ITEMS_OFF;
  #codesOff = ITEMS_OFF;
  #slotId = new Float64Array(0);
  #slotOf = new Map<number, number>();

  constructor(dim: number) {
    if (!Number.isInteger(dim) || dim < 1 || dim > MAX_BITS) throw new RangeError(`sketch: dimension ${dim} out of range`);
    this.dim = dim;
    this.bytes = codeBytes(dim);
    this.#k = instantiate(kernelModule(), this.#mem);
    this.#scanner = new Scanner(this.#k, this.#mem, HELPER_HIST_OFF);
  }

  /** Chunks of the last search's scan that the helper thread did (0: this thread did all). */
  get helperChunks(): number {
    return this.#scanner.helped;
  }

  /** Stops the helper thread, if any (the sketch still works, on one thread). */
  close(): void {
    this.#scanner.close();
  }

  get size(): number {
    return this.#n;
  }

  /** Memory held, in bytes (codes, kinds, distances, ids). */
  get memoryBytes(): number {
    return this.#mem.buffer.byteLength + this.#slotId.byteLength;
  }

  /** Inserts or replaces the code of row `id`; `kind` is the bit index its kind has in search masks. */
  set(id: number, kind: number, code: Uint8Array): void {
    if (code.length !== this.bytes) throw new RangeError(`sketch: a code of ${code.length} bytes, expected ${this.bytes}`);
    let slot = this.#slotOf.get(id);
    if (slot === undefined) {
      if (this.#n === this.#cap) this.#grow();
      slot = this.#n++;
      this.#slotOf.set(id, slot);
      this.#slotId[slot] = id;
    }
    const u8 = new Uint8Array(this.#mem.buffer);
    u8[this.#kindsOff + slot] = kind;
    u8.set(code, this.#codesOff + slot * this.bytes);
  }

  /** Drops row `id` (the last slot moves into its place). */
  delete(id: number): void {
    const slot = this.#slotOf.get(id);
    if (slot === undefined) return;
    this.#slotOf.delete(id);
    const last = --this.#n;
    if (slot !== last) {
      const u8 = new Uint8Array(this.#mem.buffer);
      u8[this.#kindsOff + slot] = u8[this.#kindsOff + last]!;
      u8.copyWithin(this.#codesOff + slot * this.bytes, this.#codesOff + last * this.bytes, this.#codesOff + (last + 1) * this.bytes);
      const moved = this.#slotId[last]!;
      this.#slotId[slot] = moved;
      this.#slotOf.set(moved, slot);
    }
  }

  clear(): void {
    this.#n = 0;
    this.#slotOf.clear();
  }

  #grow(): void {
    const cap = Math.max(1024, this.#cap * 2);
    const kindsOff = ITEMS_OFF;
    const distOff = align16(kindsOff + cap);
    const codesOff = align16(distOff + cap * 2);
    const end = codesOff + cap * this.bytes;
    const have = this.#mem.buffer.byteLength;
    if (end > have) this.#mem.grow(Math.ceil((end - have) / PAGE));
    const u8 = new Uint8Array(this.#mem.buffer);
    // Codes move up first (copyWithin copies as if through a buffer); kinds stay where they are.
    u8.copyWithin(codesOff, this.#codesOff, this.#codesOff + this.#n * this.bytes);
    const ids = new Float64Array(cap);
    ids.set(this.#slotId.subarray(0, this.#n));
    this.#slotId = ids;
    this.#cap = cap;
    this.#kindsOff = kindsOff;
    this.#distOff = distOff;
    this.#codesOff = codesOff;
  }

  /**
   * The approximate top-k of a unit query among rows whose kind bit is set in `mask`: the nearest
   * codes are passed to `rerank`, which returns their exact cosine similarities (rows it no longer
   * finds are left out); returns every re-ranked row, unsorted (the caller sorts and keeps k).
   */
  search(query: Float32Array, k: number, mask: number, rerank: (ids: number[]) => Scored[]): Scored[] {
    if (query.length !== this.dim) throw new RangeError(`sketch: a ${query.length}-d query, expected ${this.dim}`);
    if (!(k >= 1 && k <= MAX_K)) throw new RangeError(`sketch: k = ${k}, expected 1 to ${MAX_K}`);
    const hist = this.#scan(signCode(query), mask);
    const cum = cumulative(hist);
    const matching = cum[cum.length - 1]!;
    if (matching === 0) return [];
    // Small sets are re-ranked whole: exact.
    const budget = Math.max(k, MAX_CANDIDATES);
    if (matching <= budget) return rerank(this.#collect(-1, hist.length - 1, budget));
    // Round 1: the nearest codes, enough to learn s_k.
    const asked = this.#nearest(cum, Math.min(budget, Math.max(PROBE, 2 * k)), -1);
    const first = rerank(asked);
    if (first.length < k) return first;
    // Round 2: every code the binomial model puts within reach of a true top-k item, up to the budget.
    const p = Math.acos(Math.min(1, Math.max(-1, kthScore(first, k)))) / Math.PI;
    const bits = this.dim;
    const reachT = Math.min(hist.length - 1, Math.floor(bits * p + Z * Math.sqrt(bits * p * (1 - p))));
    const total = Math.min(budget, cum[reachT]!);
    if (total <= asked.length) return first;
    // Buckets up to `full` were taken whole in round 1; the next one maybe in part (skipped by id).
    const taken = new Set(asked);
    const more = this.#nearest(cum, total, within(cum, asked.length)).filter((id) => !taken.has(id));
    return more.length ? first.concat(rerank(more)) : first;
  }

  /**
   * Ids of the `count` codes nearest to the query of the last scan (a tie at the cut is broken by slot
   * order, the same on every call), leaving out the buckets of distance ≤ `after`.
   */
  #nearest(cum: Float64Array, count: number, after: number): number[] {
    const full = within(cum, count);  // buckets ≤ full hold at most `count` codes
    const ids = full > after ? this.#collect(after, full, count) : [];
    const have = (full >= 0 ? cum[full]! : 0);
    if (have < count && full + 1 < cum.length) ids.push(...this.#collect(full, full + 1, count - have));
    return ids;
  }

  /** Hamming distances of the wanted rows to `code` (into the distance area); their histogram. */
  #scan(code: Uint8Array, mask: number): Uint32Array {
    new Uint8Array(this.#mem.buffer).set(code, Q_OFF);
    const bins = this.dim + 1;
    new Uint32Array(this.#mem.buffer, HIST_OFF, bins).fill(0);
    if (this.#n >= PARALLEL_FROM && os.availableParallelism() > 1) this.#scanner.startHelper(kernelModule(), this.#mem);
    this.#scanner.scan({
      codes: this.#codesOff, n: this.#n, blocks: this.bytes / 16, q: Q_OFF, kinds: this.#kindsOff, mask, dist: this.#distOff, chunk: CHUNK,
    }, this.#mem, HIST_OFF, bins);
    return new Uint32Array(this.#mem.buffer, HIST_OFF, bins).slice();
  }

  /** Ids of rows with lo < distance ≤ hi, at most cap, after #scan. */
  #collect(lo: number, hi: number, cap: number): number[] {
    const count = this.#k.collect(this.#distOff, this.#n, lo, hi, OUT_OFF, Math.min(cap, MAX_K));
    const slots = new Uint32Array(this.#mem.buffer, OUT_OFF, count);
    return Array.from(slots, (s) => this.#slotId[s]!);
  }
}

function cumulative(hist: Uint32Array): Float64Array {
  const cum = new Float64Array(hist.length);
  let c = 0;
  hist.forEach((h, i) => { cum[i] = c += h; });
  return cum;
}

/** The largest distance within which at most `count` rows lie (-1 if none). */
function within(cum: Float64Array, count: number): number {
  let t = -1;
  while (t + 1 < cum.length && cum[t + 1]! <= count) t++;
  return t;
}

function kthScore(rows: Scored[], k: number): number {
  return rows.map((r) => r.score).sort((a, b) => b - a)[k - 1]!;
}
