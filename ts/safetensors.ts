// safetensors files (Hugging Face's tensor format): list the tensors and read them one at a time, so a
// converter can walk a multi-GB shard without holding it in memory.
//
// ref: huggingface/safetensors, the format as its README specifies it:
//   8 bytes      N, an unsigned little-endian 64-bit integer: the size of the header
//   N bytes      a UTF-8 JSON object: { "__metadata__"?: {string: string},
//                  "<name>": { "dtype": "F16", "shape": [..], "data_offsets": [begin, end] }, ... }
//                (may end with spaces; the reference implementation refuses headers over 100 MB)
//   the rest     the byte buffer; offsets are relative to its start, tensors are little-endian,
//                row-major, and together they cover the buffer without holes or overlaps.
// Every number read from the file is checked before use: the header size against the file and the
// 100 MB bound, each shape against the safe-integer range, each byte range against the buffer and
// against shape × element size, and the ranges against each other.
import fs from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import { ImageBindError } from './errors';
import { allocBytes, toFloat32, TorchDtype } from './torch';

// ref: safetensors/src/tensor.rs Dtype (the names the header uses) → element size; the ones a float
// reader can convert carry the matching torch dtype name.
const DTYPES: Record<string, { bytes: number; dtype?: TorchDtype }> = {
  BOOL: { bytes: 1, dtype: 'bool' },
  U8: { bytes: 1, dtype: 'uint8' },
  I8: { bytes: 1, dtype: 'int8' },
  F8_E5M2: { bytes: 1 },
  F8_E4M3: { bytes: 1 },
  I16: { bytes: 2, dtype: 'int16' },
  U16: { bytes: 2 },
  F16: { bytes: 2, dtype: 'float16' },
  BF16: { bytes: 2, dtype: 'bfloat16' },
  I32: { bytes: 4, dtype: 'int32' },
  U32: { bytes: 4 },
  F32: { bytes: 4, dtype: 'float32' },
  F64: { bytes: 8, dtype: 'float64' },
  I64: { bytes: 8, dtype: 'int64' },
  U64: { bytes: 8 },
};

/** The reference implementation's bound on the header (safetensors MAX_HEADER_SIZE). */
export const SAFETENSORS_MAX_HEADER = 100_000_000;
// One positional read at most this long (fs caps a read at 2 GiB - 1).
const READ_CHUNK = 1 << 30;

export interface SafetensorsTensorInfo {
  readonly name: string;
  /** The header's dtype name: 'F16', 'BF16', 'F32', … */
  readonly dtype: string;
  readonly shape: readonly number[];
  readonly numel: number;
  /** Byte range in the file (absolute). */
  readonly start: number;
  readonly end: number;
}

function fileError(code: string, file: string, message: string, cause?: unknown): ImageBindError {
  return new ImageBindError(code, `${file}: ${message}`, cause === undefined ? undefined : { cause });
}

/** Parses and checks a header; `dataSize` is the size of the byte buffer after it. */
function parseHeader(file: string, json: string, dataStart: number, dataSize: number): { tensors: SafetensorsTensorInfo[]; metadata: Record<string, string> } {
  const bad = (m: string): never => { throw fileError('ERR_SAFETENSORS_INVALID', file, m); };
  let header: unknown;
  try {
    header = JSON.parse(json);
  } catch (e) {
    bad(`the header is not valid JSON (${(e as Error).message})`);
  }
  if (header === null || typeof header !== 'object' || Array.isArray(header)) bad('the header is not a JSON object');
  const metadata: Record<string, string> = {};
  const tensors: SafetensorsTensorInfo[] = [];
  for (const [name, v] of Object.entries(header as Record<string, unknown>)) {
    if (name === '__metadata__') {
      if (v === null || typeof v !== 'object' || Array.isArray(v)) bad('__metadata__ is not an object');
      for (const [k, x] of Object.entries(v as Record<string, unknown>)) {
        if (typeof x !== 'string') bad(`__metadata__.${k} is not a string`);
        metadata[k] = x as string;
      }
      continue;
    }
    const t = v as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
    if (t === null || typeof t !== 'object') bad(`tensor '${name}' is not an object`);
    const info = typeof t.dtype === 'string' ? DTYPES[t.dtype] : undefined;
    if (!info) bad(`tensor '${name}' has dtype ${JSON.stringify(t.dtype)}, not one of ${Object.keys(DTYPES).join(', ')}`);
    if (!Array.isArray(t.shape) || !t.shape.every((d) => Number.isSafeInteger(d) && d >= 0)) bad(`tensor '${name}' has shape ${JSON.stringify(t.shape)}, expected a list of non-negative integers`);
    const shape = t.shape as number[];
    const off = t.data_offsets;
    if (!Array.isArray(off) || off.length !== 2 || !off.every((d) => Number.isSafeInteger(d) && d >= 0) || off[0] > off[1]) {
      bad(`tensor '${name}' has data_offsets ${JSON.stringify(off)}, expected [begin, end] with 0 ≤ begin ≤ end`);
    }
    const [begin, end] = off as [number, number];
    if (end > dataSize) {
      throw fileError('ERR_SAFETENSORS_TRUNCATED', file, `tensor '${name}' ends at byte ${end} of the data, which holds only ${dataSize} bytes: the file is cut short or damaged`);
    }
    let numel = 1;
    for (const d of shape) {
      numel *= d;
      if (!Number.isSafeInteger(numel * info!.bytes)) bad(`tensor '${name}' has shape ${JSON.stringify(shape)}: too many elements`);
    }
    if (numel * info!.bytes !== end - begin) bad(`tensor '${name}' has shape [${shape.join(', ')}] of ${t.dtype} (${numel * info!.bytes} bytes), but data_offsets span ${end - begin} bytes`);
    tensors.push(Object.freeze({ name, dtype: t.dtype as string, shape: Object.freeze([...shape]), numel, start: dataStart + begin, end: dataStart + end }));
  }
  // The ranges tile the buffer: no overlap (one tensor's bytes read as another's), no hole.
  const sorted = [...tensors].sort((a, b) => a.start - b.start || a.end - b.end);
  let pos = dataStart;
  for (const t of sorted) {
    if (t.start !== pos) bad(t.start < pos ? `tensor '${t.name}' overlaps the tensor before it in the data` : `there is a gap of ${t.start - pos} bytes before tensor '${t.name}' in the data`);
    pos = t.end;
  }
  if (pos !== dataStart + dataSize) bad(`${dataStart + dataSize - pos} bytes at the end of the data belong to no tensor`);
  return { tensors, metadata };
}

/** A safetensors file opened for reading: the header is in memory, the data stays on disk. */
export class SafetensorsFile {
  readonly path: string;
  readonly metadata: Readonly<Record<string, string>>;
  readonly #list: SafetensorsTensorInfo[];
  readonly #byName: Map<string, SafetensorsTensorInfo>;
  readonly #fh: FileHandle;
  #closed = false;

  private constructor(path: string, fh: FileHandle, tensors: SafetensorsTensorInfo[], metadata: Record<string, string>) {
    this.path = path;
    this.#fh = fh;
    this.#list = tensors;
    this.#byName = new Map(tensors.map((t) => [t.name, t]));
    this.metadata = Object.freeze({ ...metadata });
  }

  /** Opens a file, reading and checking only its header. */
  static async open(path: string): Promise<SafetensorsFile> {
    if (typeof path !== 'string' || path.length === 0) throw new ImageBindError('ERR_INVALID_ARG_TYPE', 'openSafetensors: expected a file path string');
    let fh: FileHandle;
    try {
      fh = await fs.promises.open(path, 'r');
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      throw fileError(code === 'ENOENT' ? 'ERR_FILE_NOT_FOUND' : 'ERR_FILE_READ', path, code === 'ENOENT' ? 'no such file' : `cannot open: ${(err as Error).message}`, err);
    }
    try {
      const st = await fh.stat();
      if (!st.isFile()) throw fileError('ERR_SAFETENSORS_INVALID', path, 'is not a regular file');
      if (st.size < 8) throw fileError('ERR_SAFETENSORS_TRUNCATED', path, `is ${st.size} bytes long: too short for a safetensors header`);
      const head = Buffer.alloc(8);
      await fh.read(head, 0, 8, 0);
      const n = head.readBigUInt64LE(0);
      if (n > BigInt(SAFETENSORS_MAX_HEADER)) throw fileError('ERR_SAFETENSORS_INVALID', path, `declares a header of ${n} bytes, over the format's limit of ${SAFETENSORS_MAX_HEADER}: not a safetensors file, or damaged`);
      const hlen = Number(n);
      if (8 + hlen > st.size) throw fileError('ERR_SAFETENSORS_TRUNCATED', path, `declares a header of ${hlen} bytes, but the file has only ${st.size - 8} after the size field: cut short or not a safetensors file`);
      const text = Buffer.alloc(hlen);
      const { bytesRead } = await fh.read(text, 0, hlen, 8);
      if (bytesRead !== hlen) throw fileError('ERR_SAFETENSORS_TRUNCATED', path, 'the header could not be read whole');
      if (text[0] !== 0x7b) throw fileError('ERR_SAFETENSORS_INVALID', path, `the header does not start with '{' (is this a safetensors file?)`);
      const { tensors, metadata } = parseHeader(path, text.toString('utf8'), 8 + hlen, st.size - 8 - hlen);
      return new SafetensorsFile(path, fh, tensors, metadata);
    } catch (err) {
      await fh.close().catch(() => undefined);
      throw err;
    }
  }

  tensors(): SafetensorsTensorInfo[] {
    return [...this.#list];
  }

  get(name: string): SafetensorsTensorInfo | undefined {
    return this.#byName.get(name);
  }

  has(name: string): boolean {
    return this.#byName.has(name);
  }

  /** The tensor's bytes as stored (row-major, little-endian), in a fresh aligned buffer. */
  async readRaw(name: string): Promise<Uint8Array> {
    const t = this.#info(name);
    const out = allocBytes(t.end - t.start);
    let done = 0;
    while (done < out.length) {
      const want = Math.min(READ_CHUNK, out.length - done);
      const { bytesRead } = await this.#fh.read(out, done, want, t.start + done);
      if (bytesRead === 0) throw fileError('ERR_SAFETENSORS_TRUNCATED', this.path, `the file ends inside the data of tensor '${name}'`);
      done += bytesRead;
    }
    return out;
  }

  /** The tensor as float32 (F16, BF16, F64 and integer types converted). */
  async readFloat32(name: string): Promise<Float32Array> {
    const t = this.#info(name);
    const dtype = DTYPES[t.dtype]!.dtype;
    if (!dtype) throw fileError('ERR_SAFETENSORS_UNSUPPORTED', this.path, `tensor '${name}' is ${t.dtype}, which this reader does not convert (F32, F16, BF16, F64 and integers are read)`);
    return toFloat32(await this.readRaw(name), dtype, t.numel);
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#fh.close();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  #info(name: string): SafetensorsTensorInfo {
    if (this.#closed) throw fileError('ERR_SAFETENSORS_CLOSED', this.path, 'the file is closed');
    const t = this.#byName.get(name);
    if (!t) throw fileError('ERR_TENSOR_NOT_FOUND', this.path, `has no tensor named '${name}'`);
    return t;
  }
}

/** Opens a safetensors file (see SafetensorsFile.open). */
export function openSafetensors(path: string): Promise<SafetensorsFile> {
  return SafetensorsFile.open(path);
}
