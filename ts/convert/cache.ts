// `imagebind-llm convert cache`: a faiss flat index (ImageBind-LLM's knn.index, ~3 million × 1024
// image features) → a kNN cache GGUF for cache-enhanced inference (native/core/ibl_knn.h).
//
// The index is streamed: rows are read, converted and written one chunk at a time, never the whole
// file (the released one is 12 GB). GGUF layout (names in keys.ts / ibl_keys.h):
//   general.architecture  "imagebind-llm-cache"
//   cache.dimension u32, cache.count u64, cache.metric "ip" | "l2", cache.chunk_rows u32,
//   cache.chunk_count u32, cache.source_type (the faiss fourcc)
//   cache.features.<k>    [d, rows_k] f16 or f32: rows k·chunk_rows … in faiss order
//   cache.sqnorms.<k>     [rows_k] f32 squared norms of those rows (l2 caches only)
import fs from 'node:fs';
import path from 'node:path';
import { addon } from '../binding';
import { ImageBindError, throwIfAborted } from '../errors';
import { OutputFiles, writeTensorFrom } from './output';
import { refuseSpecial } from '../files';
import { ARCH_CACHE, CACHE_KEY, KEY, TN_CACHE } from '../keys';
import type { GgufMetaEntry } from '../native';

export type CacheType = 'f16' | 'f32';
export type CacheMetric = 'ip' | 'l2';

export interface ConvertCacheOptions {
  /** Storage type of the features. Default f16 (half the size; similarities within ~1e-3). */
  type?: CacheType;
  /** Rows per feature tensor. Default: 65536, fewer for very wide rows (a chunk stays ≤ 256 MiB as f32). */
  chunkRows?: number;
  name?: string;
  onProgress?: (doneRows: number, totalRows: number) => void;
  signal?: AbortSignal;
}

export interface ConvertCacheResult {
  path: string;
  dimension: number;
  count: number;
  metric: CacheMetric;
  type: CacheType;
  chunkRows: number;
  chunks: number;
  /** The faiss fourcc of the source index. */
  sourceType: string;
  bytes: number;
}

/** What the header of a faiss flat index says (faiss/impl/index_read.cpp, read_index_header). */
export interface FaissIndexHeader {
  fourcc: string;
  dimension: number;
  count: number;
  metric: CacheMetric;
  /** Byte offset of the first row's floats. */
  dataOffset: number;
  fileSize: number;
}

const DEFAULT_CHUNK_ROWS = 65536;
const MAX_CHUNK_BYTES = 256 * 1024 * 1024;

// Readable names of the faiss fourccs people are likely to hand us (ref: faiss/impl/index_write.cpp).
const FAISS_TYPES: Record<string, string> = {
  IxFI: 'IndexFlatIP', IxF2: 'IndexFlatL2', IxFl: 'IndexFlat',
  IwFl: 'IndexIVFFlat', IwFd: 'IndexIVFFlatDedup', IvFl: 'IndexIVFFlat (legacy)', IvFL: 'IndexIVFFlat (legacy)',
  IwPQ: 'IndexIVFPQ', IwQR: 'IndexIVFPQR', IvPQ: 'IndexIVFPQ (legacy)', IwSQ: 'IndexIVFScalarQuantizer', IwSq: 'IndexIVFScalarQuantizer',
  IxPQ: 'IndexPQ', IxPo: 'IndexPQ', IxPq: 'IndexPQ', IxSQ: 'IndexScalarQuantizer', IxHE: 'IndexLSH', IxHe: 'IndexLSH',
  IHNf: 'IndexHNSWFlat', IHNp: 'IndexHNSWPQ', IHNs: 'IndexHNSWSQ', IHN2: 'IndexHNSW2Level', IHNc: 'IndexHNSWCagra',
  INSf: 'IndexNSGFlat', INNf: 'IndexNNDescentFlat',
  IxMp: 'IndexIDMap', IxM2: 'IndexIDMap2', IxRF: 'IndexRefineFlat', IxRf: 'IndexRefine', IxPT: 'IndexPreTransform',
  IxSh: 'IndexShards', IxSI: 'IndexShards',
  IBxF: 'IndexBinaryFlat', IBwF: 'IndexBinaryIVF', IBHf: 'IndexBinaryHNSW', IBFf: 'IndexBinaryFromFloat',
};
const SUPPORTED = 'IxFI (IndexFlatIP), IxF2 (IndexFlatL2), IxFl (IndexFlat with the inner-product or L2 metric)';

function fail(code: string, msg: string): never {
  throw new ImageBindError(code, msg);
}

async function readExactly(fh: fs.promises.FileHandle, buf: Uint8Array, position: number, file: string): Promise<void> {
  let done = 0;
  while (done < buf.byteLength) {
    const { bytesRead } = await fh.read(buf, done, buf.byteLength - done, position + done);
    if (bytesRead === 0) fail('ERR_INDEX_TRUNCATED', `${file}: truncated faiss index: unexpected end of file at byte ${position + done}`);
    done += bytesRead;
  }
}

function printable(bytes: Uint8Array): boolean {
  return bytes.every((b) => (b >= 0x30 && b <= 0x39) || (b >= 0x41 && b <= 0x5a) || (b >= 0x61 && b <= 0x7a) || b === 0x5f);
}

function hex(bytes: Uint8Array): string {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join(' ');
}

/**
 * Reads and checks the header of a faiss flat index (IndexFlatIP / IndexFlatL2 as written by
 * faiss.write_index): fourcc, then d (i32), ntotal (i64), two unused i64, is_trained (u8),
 * metric_type (i32), then the row data as a size_t count of floats followed by the floats.
 */
export async function readFaissHeader(file: string): Promise<FaissIndexHeader> {
  await refuseSpecial(file);  // before open: a FIFO would block it
  let fh: fs.promises.FileHandle;
  try {
    fh = await fs.promises.open(file, 'r');
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    fail(err.code === 'ENOENT' ? 'ERR_FILE_NOT_FOUND' : 'ERR_FILE_READ', `${file}: cannot open the faiss index: ${err.message}`);
  }
  try {
    return await parseHeader(fh, file);
  } finally {
    await fh.close();
  }
}

async function parseHeader(fh: fs.promises.FileHandle, file: string): Promise<FaissIndexHeader> {
  const st = await fh.stat();
  if (st.isDirectory()) fail('ERR_FILE_READ', `${file}: is a directory, expected a faiss index file`);
  const fileSize = st.size;
  const HEADER = 4 + 4 + 8 + 8 + 8 + 1 + 4;  // up to metric_type
  const head = new Uint8Array(Math.min(fileSize, HEADER + 8));
  await readExactly(fh, head, 0, file);
  const magic = head.subarray(0, 4);
  if (magic.length < 4 || !printable(magic)) {
    fail('ERR_INDEX_INVALID', `${file}: not a faiss index (expected a 4-letter index type code such as "IxFI", found bytes ${hex(head.subarray(0, 8))})`);
  }
  const fourcc = Buffer.from(magic).toString('latin1');
  if (fourcc !== 'IxFI' && fourcc !== 'IxF2' && fourcc !== 'IxFl') {
    const what = FAISS_TYPES[fourcc];
    if (what) fail('ERR_INDEX_UNSUPPORTED', `${file}: unsupported faiss index type "${fourcc}" (${what}): the cache must be a flat index: ${SUPPORTED}`);
    fail('ERR_INDEX_INVALID', `${file}: not a faiss index, or one of a type this converter does not know: it starts with "${fourcc}"; supported: ${SUPPORTED}`);
  }
  if (fileSize < HEADER + 8) fail('ERR_INDEX_TRUNCATED', `${file}: truncated faiss index: ${fileSize} bytes, shorter than the ${HEADER + 8}-byte flat-index header`);
  const dv = new DataView(head.buffer, head.byteOffset, head.byteLength);
  const d = dv.getInt32(4, true);
  const ntotal = dv.getBigInt64(8, true);
  const metricType = dv.getInt32(33, true);
  // metric_type > 1 (L1, Linf, Lp, ...) is followed by a float metric_arg; we support IP (0) and L2 (1) only.
  if (metricType !== 0 && metricType !== 1) {
    fail('ERR_INDEX_UNSUPPORTED', `${file}: faiss ${fourcc} index with metric_type ${metricType}: only the inner-product (0) and L2 (1) metrics are supported`);
  }
  if ((fourcc === 'IxFI' && metricType !== 0) || (fourcc === 'IxF2' && metricType !== 1)) {
    fail('ERR_INDEX_INVALID', `${file}: corrupt faiss index: type ${fourcc} with metric_type ${metricType}`);
  }
  if (d <= 0) fail('ERR_INDEX_INVALID', `${file}: faiss index with dimension ${d}: the dimension must be at least 1`);
  if (ntotal <= 0n) fail('ERR_INDEX_INVALID', `${file}: faiss index is empty (ntotal ${ntotal}): nothing to cache`);
  if (ntotal > BigInt(Number.MAX_SAFE_INTEGER)) fail('ERR_INDEX_INVALID', `${file}: corrupt faiss index: ntotal ${ntotal}`);
  const count = Number(ntotal);
  const nFloats = dv.getBigUint64(HEADER, true);
  if (nFloats !== ntotal * BigInt(d)) {
    fail('ERR_INDEX_INVALID', `${file}: corrupt faiss index: ${nFloats} stored floats, but ntotal ${count} × d ${d} = ${ntotal * BigInt(d)}`);
  }
  const dataOffset = HEADER + 8;
  const need = count * d * 4;
  if (dataOffset + need > fileSize) {
    const rows = Math.floor((fileSize - dataOffset) / (d * 4));
    fail('ERR_INDEX_TRUNCATED', `${file}: truncated faiss index: the header promises ${count} rows of ${d} floats (${need} bytes) but only ${fileSize - dataOffset} bytes (${rows} whole rows) follow it`);
  }
  return { fourcc, dimension: d, count, metric: metricType === 0 ? 'ip' : 'l2', dataOffset, fileSize };
}

/** Converts a faiss flat index to a kNN cache GGUF, streaming it in chunks of rows. */
export async function convertCache(indexPath: string, outPath: string, options: ConvertCacheOptions = {}): Promise<ConvertCacheResult> {
  const type = options.type ?? 'f16';
  if (type !== 'f16' && type !== 'f32') fail('ERR_INVALID_ARG', `unsupported cache type '${String(type)}' (f16 or f32)`);
  if (options.chunkRows !== undefined && !(Number.isInteger(options.chunkRows) && options.chunkRows >= 1 && options.chunkRows <= 2 ** 31 - 1)) {
    fail('ERR_INVALID_ARG', `chunkRows must be a positive integer, got ${String(options.chunkRows)}`);
  }
  throwIfAborted(options.signal, 'conversion');
  const outputs = OutputFiles.prepare([outPath]);
  await refuseSpecial(indexPath).catch((e) => { outputs.discard(); throw e; });
  let fh: fs.promises.FileHandle;
  try {
    fh = await fs.promises.open(indexPath, 'r');
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    outputs.discard();
    fail(err.code === 'ENOENT' ? 'ERR_FILE_NOT_FOUND' : 'ERR_FILE_READ', `${indexPath}: cannot open the faiss index: ${err.message}`);
  }
  let writer: ReturnType<typeof newWriter> | undefined;
  try {
    const h = await parseHeader(fh, indexPath);
    const d = h.dimension;
    const N = h.count;
    const chunkRows = Math.min(options.chunkRows ?? Math.max(1, Math.min(DEFAULT_CHUNK_ROWS, Math.floor(MAX_CHUNK_BYTES / (4 * d)))), N);
    const nChunks = Math.ceil(N / chunkRows);
    const l2 = h.metric === 'l2';
    writer = newWriter(outputs.temp(outPath));
    const meta: GgufMetaEntry[] = [
      { key: KEY.ARCH, type: 'string', value: ARCH_CACHE },
      { key: KEY.NAME, type: 'string', value: options.name ?? path.basename(indexPath).replace(/\.[^.]*$/, '') },
      { key: KEY.FILE_TYPE, type: 'string', value: type },
      { key: CACHE_KEY.DIM, type: 'u32', value: d },
      { key: CACHE_KEY.COUNT, type: 'u64', value: BigInt(N) },
      { key: CACHE_KEY.METRIC, type: 'string', value: h.metric },
      { key: CACHE_KEY.CHUNK_ROWS, type: 'u32', value: chunkRows },
      { key: CACHE_KEY.CHUNK_COUNT, type: 'u32', value: nChunks },
      { key: CACHE_KEY.SOURCE, type: 'string', value: h.fourcc },
    ];
    writer.setMetadata(meta);
    const rowsOf = (k: number) => Math.min(chunkRows, N - k * chunkRows);
    for (let k = 0; k < nChunks; k++) {
      writer.addTensor(TN_CACHE.FEATURES(k), type, [d, rowsOf(k)]);
      if (l2) writer.addTensor(TN_CACHE.SQNORMS(k), 'f32', [rowsOf(k)]);
    }
    writer.begin();

    const readChunk = async (k: number): Promise<Float32Array> => {
      const rows = rowsOf(k);
      const values = new Float32Array(rows * d);
      await readExactly(fh, new Uint8Array(values.buffer), h.dataOffset + k * chunkRows * d * 4, indexPath);
      return values;
    };
    // Read chunk k+1 while chunk k is converted and written off the JS thread.
    let next: Promise<Float32Array> | undefined = readChunk(0);
    let done = 0;
    for (let k = 0; k < nChunks; k++) {
      const values: Float32Array = await next!;
      next = k + 1 < nChunks ? readChunk(k + 1) : undefined;
      next?.catch(() => {});  // awaited on the next turn; keep an early failure from being unhandled
      throwIfAborted(options.signal, 'conversion');
      await writeTensorFrom(indexPath, writer, TN_CACHE.FEATURES(k), values);
      if (l2) {
        const rows = rowsOf(k);
        const sq = new Float32Array(rows);
        for (let r = 0; r < rows; r++) {
          let s = 0;
          for (let j = r * d, e = j + d; j < e; j++) s += values[j]! * values[j]!;
          sq[r] = s;
        }
        await writer.writeTensor(TN_CACHE.SQNORMS(k), sq);
      }
      done += rowsOf(k);
      options.onProgress?.(done, N);
    }
    await writer.finish();
    outputs.commit();
    return {
      path: outPath, dimension: d, count: N, metric: h.metric, type, chunkRows, chunks: nChunks,
      sourceType: h.fourcc, bytes: fs.statSync(outPath).size,
    };
  } finally {
    writer?.dispose();
    outputs.discard();
    await fh.close();
  }
}

function newWriter(out: string) {
  return new (addon().GgufStreamWriter)(out);
}
