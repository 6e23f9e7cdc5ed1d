// PyTorch checkpoints (`torch.save` zip format, torch >= 1.6): list the tensors of a .pth file and read
// them one at a time, so a converter can walk a multi-GB checkpoint without holding it in memory.
//
// ref: pytorch torch/serialization.py (_save / _load) and caffe2/serialize/inline_container.h.
// An archive holds, under one top folder `<archive>/`:
//   data.pkl      a pickle (protocol 2 by default) of the saved object; each tensor is
//                 `torch._utils._rebuild_tensor_v2(storage, offset, size, stride, requires_grad, hooks)`
//                 and each storage a persistent id `('storage', torch.FloatStorage, key, location, numel)`
//   data/<key>    the raw bytes of storage <key>, stored uncompressed
//   byteorder     'little' or 'big' (absent in files from torch < 1.10: little)
//   version       the format version
//
// Libraries:
// - zip: yauzl reads the central directory (zip64 included) and the local headers; the bytes of a
//   stored entry are then read with positional reads straight into the result buffer (one copy, only
//   the byte range a tensor needs). Deflated entries, which torch never writes but a re-zipped file
//   may hold, go through yauzl's inflating stream.
// - pickle: pickleparser (pure TypeScript, no dependencies, every opcode of protocols 0-5) with our
//   own resolvers: every GLOBAL is looked up in the short allow-list below (what torch.save emits for
//   dicts of dense tensors) and anything else is refused by name before any object is built, so
//   nothing from the file is ever executed. Its known gaps (LONG1 read as unsigned, the protocol-0
//   DICT opcode) are in opcodes torch.save does not emit for these values.
import fs from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import { Parser } from 'pickleparser';
import * as yauzl from 'yauzl';
import { ImageBindError } from './errors';
import { refuseSpecial } from './files';

export type TorchDtype =
  | 'float32'
  | 'float16'
  | 'bfloat16'
  | 'float64'
  | 'int64'
  | 'int32'
  | 'int16'
  | 'int8'
  | 'uint8'
  | 'bool';

/** One tensor of a checkpoint: where its elements live in which storage. */
export interface TorchTensorInfo {
  /** Nested dict keys joined with '.', e.g. 'model.llama.layers.0.attention.gate'. */
  readonly name: string;
  readonly dtype: TorchDtype;
  readonly shape: readonly number[];
  /** In elements, like torch's `Tensor.stride()`. */
  readonly stride: readonly number[];
  /** In elements, from the start of the storage. */
  readonly storageOffset: number;
  /** The storage entry `<archive>/data/<storageKey>`. */
  readonly storageKey: string;
  /** Product of the shape (1 for a scalar). */
  readonly numel: number;
}

/**
 * The unpickled object: dicts and OrderedDicts are Maps (an OrderedDict's pickled attributes, e.g. a
 * state_dict's `_metadata`, are kept off the entries), tuples and lists arrays, tensors TorchTensorInfo.
 */
export type TorchValue =
  | null
  | boolean
  | number
  | bigint
  | string
  | Uint8Array
  | TorchTensorInfo
  | TorchValue[]
  | Map<unknown, TorchValue>;

const DTYPE_BYTES: Record<TorchDtype, number> = {
  float32: 4,
  float16: 2,
  bfloat16: 2,
  float64: 8,
  int64: 8,
  int32: 4,
  int16: 2,
  int8: 1,
  uint8: 1,
  bool: 1,
};

/** Bytes per element of a dtype. */
export function torchDtypeSize(dtype: TorchDtype): number {
  return DTYPE_BYTES[dtype];
}

// Legacy typed-storage classes that torch.save names in persistent ids (torch.<X>Storage), and the
// untyped storage of newer torch (bytes).
const STORAGE_DTYPES: Record<string, TorchDtype> = {
  FloatStorage: 'float32',
  HalfStorage: 'float16',
  BFloat16Storage: 'bfloat16',
  DoubleStorage: 'float64',
  LongStorage: 'int64',
  IntStorage: 'int32',
  ShortStorage: 'int16',
  CharStorage: 'int8',
  ByteStorage: 'uint8',
  BoolStorage: 'bool',
  UntypedStorage: 'uint8',
};

const MAX_PICKLE_BYTES = 64 << 20;
// A state_dict of the largest checkpoint we read (LLaMA-65B) has a few thousand tensors.
const MAX_PICKLE_VALUES = 200_000;
const MAX_PICKLE_DEPTH = 64;
const MAX_PICKLE_NAME = 1024;
// One positional read at most this long (fs caps a read at 2 GiB - 1).
const READ_CHUNK = 1 << 30;

// ---------------------------------------------------------------------------------------------------
// Unpickling

class StorageRef {
  constructor(
    readonly key: string,
    readonly dtype: TorchDtype,
    readonly numel: number,
  ) {}
}

class StorageType {
  constructor(
    readonly name: string,
    readonly dtype: TorchDtype,
  ) {}
}

/** A tensor as the pickle describes it; it gets its name(s) when the tree is flattened. */
class TensorRef {
  constructor(
    readonly storage: StorageRef,
    readonly storageOffset: number,
    readonly shape: number[],
    readonly stride: number[],
  ) {}
}

/** collections.OrderedDict (and its BUILD state, e.g. a state_dict's `_metadata`). */
class PyOrderedDict extends Map<unknown, unknown> {
  attributes: unknown = undefined;
  __setstate__(state: unknown): void {
    this.attributes = state;
  }
}

/** Marker for a tensor class named by `_rebuild_from_type_v2` (plain Tensor or Parameter). */
class TensorClass {
  constructor(readonly name: string) {}
}

type Fail = (code: string, message: string) => never;

function toIndex(v: unknown, what: string, fail: Fail): number {
  const n = typeof v === 'bigint' ? Number(v) : v;
  if (typeof n !== 'number' || !Number.isSafeInteger(n) || n < 0) {
    fail('ERR_CHECKPOINT_INVALID', `${what} is ${String(v)}, expected a non-negative integer`);
  }
  return n as number;
}

function toIndexList(v: unknown, what: string, fail: Fail): number[] {
  if (!Array.isArray(v)) fail('ERR_CHECKPOINT_INVALID', `${what} is not a tuple`);
  return (v as unknown[]).map((x, i) => toIndex(x, `${what}[${i}]`, fail));
}

function rebuildTensor(fail: Fail) {
  // ref: torch/_utils.py _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad,
  //      backward_hooks, metadata=None)
  return (...args: unknown[]): TensorRef => {
    const [storage, offset, size, stride] = args;
    if (!(storage instanceof StorageRef)) fail('ERR_CHECKPOINT_INVALID', '_rebuild_tensor_v2 got no storage');
    const shape = toIndexList(size, 'tensor size', fail);
    const strides = toIndexList(stride, 'tensor stride', fail);
    if (shape.length !== strides.length) {
      fail('ERR_CHECKPOINT_INVALID', `tensor size (${shape.length} dims) and stride (${strides.length} dims) disagree`);
    }
    return new TensorRef(storage as StorageRef, toIndex(offset, 'storage offset', fail), shape, strides);
  };
}

/** Unpickles data.pkl, allowing only the globals torch.save emits for (nested) dicts of dense tensors. */
function unpickle(bytes: Uint8Array, fail: Fail): unknown {
  const rebuild = rebuildTensor(fail);
  const asTensor = (v: unknown, fn: string): TensorRef => {
    if (!(v instanceof TensorRef)) fail('ERR_CHECKPOINT_INVALID', `${fn} got no tensor`);
    return v as TensorRef;
  };
  const globals: Record<string, unknown> = {
    'collections.OrderedDict': function OrderedDict() {
      return new PyOrderedDict();
    },
    'torch._utils._rebuild_tensor_v2': rebuild,
    // ref: torch/_utils.py _rebuild_parameter(data, requires_grad, backward_hooks) and
    //      _rebuild_parameter_with_state(data, requires_grad, backward_hooks, state)
    'torch._utils._rebuild_parameter': (data: unknown) => asTensor(data, '_rebuild_parameter'),
    'torch._utils._rebuild_parameter_with_state': (data: unknown) => asTensor(data, '_rebuild_parameter_with_state'),
    // ref: torch/_tensor.py _rebuild_from_type_v2(func, new_type, args, state): a tensor with Python
    // attributes; func is one of the allowed rebuild functions, the attributes are dropped.
    'torch._tensor._rebuild_from_type_v2': (func: unknown, newType: unknown, args: unknown) => {
      if (func !== rebuild || !(newType instanceof TensorClass) || !Array.isArray(args)) {
        fail('ERR_CHECKPOINT_INVALID', '_rebuild_from_type_v2 got unexpected arguments');
      }
      return rebuild(...(args as unknown[]));
    },
    'torch.Tensor': new TensorClass('torch.Tensor'),
    'torch.nn.parameter.Parameter': new TensorClass('torch.nn.parameter.Parameter'),
  };
  for (const [name, dtype] of Object.entries(STORAGE_DTYPES)) globals[`torch.${name}`] = new StorageType(name, dtype);

  const parser = new Parser({
    unpicklingTypeOfDictionary: 'Map',
    nameResolver: {
      resolve(module: string, name: string) {
        const fqn = `${module}.${name}`;
        if (!Object.prototype.hasOwnProperty.call(globals, fqn)) {
          const hint = /Storage$/.test(name) && module === 'torch' ? ' (a storage dtype this reader does not support)' : '';
          fail(
            'ERR_CHECKPOINT_UNSUPPORTED',
            `data.pkl refers to the Python global '${fqn}'${hint}; a checkpoint of tensors needs only ` +
              'collections.OrderedDict, torch._utils._rebuild_tensor_v2 and torch.*Storage, so it is refused (nothing was executed)',
          );
        }
        return globals[fqn] as (...args: unknown[]) => unknown;
      },
    },
    persistentResolver: {
      // ref: torch/serialization.py _load.persistent_load: ('storage', storage_type, key, location, numel)
      resolve(pid: unknown) {
        if (!Array.isArray(pid) || pid[0] !== 'storage' || pid.length < 5) {
          const kind = Array.isArray(pid) ? String(pid[0]) : typeof pid;
          fail('ERR_CHECKPOINT_UNSUPPORTED', `data.pkl has a persistent id of kind '${kind}', expected a 'storage'`);
        }
        const [, type, key, , numel] = pid as unknown[];
        if (!(type instanceof StorageType)) fail('ERR_CHECKPOINT_INVALID', 'a storage persistent id names no storage type');
        if (typeof key !== 'string' || !/^[A-Za-z0-9_.-]+$/.test(key)) {
          fail('ERR_CHECKPOINT_INVALID', `a storage key is ${JSON.stringify(key)}, expected a plain name`);
        }
        const t = type as StorageType;
        // UntypedStorage counts bytes, typed storages count elements.
        return new StorageRef(key as string, t.dtype, toIndex(numel, `storage ${key} size`, fail));
      },
    },
  });
  try {
    return parser.parse(bytes);
  } catch (err) {
    if (err instanceof ImageBindError) throw err;
    fail('ERR_CHECKPOINT_INVALID', `data.pkl is not a readable pickle (${(err as Error).message})`);
  }
}

// ---------------------------------------------------------------------------------------------------
// Dtype conversion

let halfTable: Float32Array | undefined;
/** All 65536 IEEE half values as float32 (256 KiB, built once). */
function halfToFloatTable(): Float32Array {
  if (halfTable) return halfTable;
  const t = new Float32Array(65536);
  for (let h = 0; h < 65536; h++) {
    const s = h & 0x8000 ? -1 : 1;
    const e = (h >> 10) & 0x1f;
    const m = h & 0x3ff;
    if (e === 0) t[h] = s * m * 2 ** -24;
    else if (e === 31) t[h] = m ? NaN : s * Infinity;
    else t[h] = s * (1 + m / 1024) * 2 ** (e - 15);
  }
  halfTable = t;
  return t;
}

/** Little-endian contiguous elements of `dtype` → float32. `bytes` starts on an 8-byte boundary. */
export function toFloat32(bytes: Uint8Array, dtype: TorchDtype, numel: number): Float32Array {
  const buf = bytes.buffer;
  const off = bytes.byteOffset;
  switch (dtype) {
    case 'float32':
      return new Float32Array(buf, off, numel);
    case 'float16': {
      // Copied as bit patterns, so NaN payloads survive.
      const src = new Uint16Array(buf, off, numel);
      const out = new Float32Array(numel);
      const bits = new Uint32Array(out.buffer);
      const t = new Uint32Array(halfToFloatTable().buffer);
      for (let i = 0; i < numel; i++) bits[i] = t[src[i]];
      return out;
    }
    case 'bfloat16': {
      // bfloat16 is the top half of a float32.
      const src = new Uint16Array(buf, off, numel);
      const out = new Float32Array(numel);
      const bits = new Uint32Array(out.buffer);
      for (let i = 0; i < numel; i++) bits[i] = src[i] << 16;
      return out;
    }
    case 'float64':
      return Float32Array.from(new Float64Array(buf, off, numel));
    case 'int64': {
      const src = new Uint32Array(buf, off, numel * 2);
      const out = new Float32Array(numel);
      for (let i = 0; i < numel; i++) out[i] = src[2 * i] + (src[2 * i + 1] | 0) * 4294967296;
      return out;
    }
    case 'int32':
      return Float32Array.from(new Int32Array(buf, off, numel));
    case 'int16':
      return Float32Array.from(new Int16Array(buf, off, numel));
    case 'int8':
      return Float32Array.from(new Int8Array(buf, off, numel));
    case 'uint8':
      return Float32Array.from(new Uint8Array(buf, off, numel));
    case 'bool': {
      const src = new Uint8Array(buf, off, numel);
      const out = new Float32Array(numel);
      for (let i = 0; i < numel; i++) out[i] = src[i] ? 1 : 0;
      return out;
    }
  }
}

function byteSwap(bytes: Uint8Array, elemSize: number): void {
  if (elemSize === 1) return;
  for (let i = 0; i < bytes.length; i += elemSize) {
    for (let a = i, b = i + elemSize - 1; a < b; a++, b--) {
      const x = bytes[a];
      bytes[a] = bytes[b];
      bytes[b] = x;
    }
  }
}

function isContiguous(shape: readonly number[], stride: readonly number[]): boolean {
  let expect = 1;
  for (let d = shape.length - 1; d >= 0; d--) {
    if (shape[d] !== 1 && stride[d] !== expect) return false;
    expect *= shape[d];
  }
  return true;
}

/**
 * Copies the elements of a strided view into row-major order. `src` holds the storage from element
 * `base` on; offsets are in elements. Elements are moved as whole 1/2/4-byte words (8-byte ones as two
 * 4-byte words), so no value is reinterpreted.
 */
function gather(src: Uint8Array, elemSize: number, shape: readonly number[], stride: readonly number[], start: number, numel: number): Uint8Array {
  const out = allocBytes(numel * elemSize);
  const words = elemSize === 8 ? 2 : 1;
  const unit = elemSize === 8 ? 4 : elemSize;
  const asWords = (b: Uint8Array): Uint8Array | Uint16Array | Uint32Array =>
    unit === 1
      ? b
      : unit === 2
        ? new Uint16Array(b.buffer, b.byteOffset, b.byteLength / 2)
        : new Uint32Array(b.buffer, b.byteOffset, b.byteLength / 4);
  const s = asWords(src);
  const o = asWords(out);
  const nd = shape.length;
  if (numel === 0) return out;
  if (nd === 0) {
    for (let w = 0; w < words; w++) o[w] = s[start * words + w];
    return out;
  }
  const inner = shape[nd - 1];
  const innerStride = stride[nd - 1] * words;
  const idx = new Array<number>(nd - 1).fill(0);
  let base = start;
  let p = 0;
  for (;;) {
    let q = base * words;
    for (let k = 0; k < inner; k++, q += innerStride) {
      for (let w = 0; w < words; w++) o[p++] = s[q + w];
    }
    // Odometer over the outer dims.
    let d = nd - 2;
    for (; d >= 0; d--) {
      idx[d]++;
      base += stride[d];
      if (idx[d] < shape[d]) break;
      base -= stride[d] * shape[d];
      idx[d] = 0;
    }
    if (d < 0) return out;
  }
}

/** A fresh buffer of its own (offset 0, so every typed view of it is aligned), not zero-filled. */
export function allocBytes(n: number): Uint8Array {
  const b = Buffer.allocUnsafeSlow(n);
  return new Uint8Array(b.buffer, b.byteOffset, n);
}

// ---------------------------------------------------------------------------------------------------
// The checkpoint

interface StorageEntry {
  entry: yauzl.Entry;
  /** Resolved from the local header on first use. */
  dataStart?: Promise<number>;
}

// ref: torch/serialization.py MAGIC_NUMBER, written as a LONG1 right after PROTO 2 by the legacy format.
const LEGACY_MAGIC = Buffer.from([0x80, 0x02, 0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19]);

function checkpointError(code: string, path: string, message: string, cause?: unknown): ImageBindError {
  return new ImageBindError(code, `${path}: ${message}`, cause === undefined ? undefined : { cause });
}

function hexHead(b: Buffer): string {
  return Array.from(b.subarray(0, 8), (x) => x.toString(16).padStart(2, '0')).join(' ');
}

/** Reads the directory of a zip and hands each entry to `onEntry`. */
function listEntries(zip: yauzl.ZipFile, onEntry: (e: yauzl.Entry) => void): Promise<void> {
  return new Promise((resolve, reject) => {
    zip.on('entry', (e: yauzl.Entry) => {
      onEntry(e);
      zip.readEntry();
    });
    zip.once('end', () => resolve());
    zip.once('error', reject);
    zip.readEntry();
  });
}

async function readStream(stream: NodeJS.ReadableStream, limit: number): Promise<Buffer> {
  const parts: Buffer[] = [];
  let n = 0;
  for await (const chunk of stream as AsyncIterable<Buffer>) {
    n += chunk.length;
    if (n > limit) throw new Error(`entry is larger than ${limit} bytes`);
    parts.push(chunk);
  }
  return Buffer.concat(parts, n);
}

/** A torch.save checkpoint opened for reading: the tensor table is in memory, the data stays on disk. */
export class TorchCheckpoint {
  readonly path: string;
  /** The top folder of the archive (torch names it after the file saved, e.g. 'consolidated.00'). */
  readonly archiveName: string;
  /** Byte order of the storages. */
  readonly byteOrder: 'little' | 'big';
  /** The unpickled object (see TorchValue). */
  readonly root: TorchValue;
  private readonly list: TorchTensorInfo[];
  private readonly byName: Map<string, TorchTensorInfo>;
  private readonly storages: Map<string, StorageEntry>;
  private readonly zip: yauzl.ZipFile;
  private readonly fh: FileHandle;
  private readonly fileSize: number;
  private closed = false;

  private constructor(init: {
    path: string;
    archiveName: string;
    byteOrder: 'little' | 'big';
    root: TorchValue;
    list: TorchTensorInfo[];
    storages: Map<string, StorageEntry>;
    zip: yauzl.ZipFile;
    fh: FileHandle;
    fileSize: number;
  }) {
    this.path = init.path;
    this.archiveName = init.archiveName;
    this.byteOrder = init.byteOrder;
    this.root = init.root;
    this.list = init.list;
    this.byName = new Map();
    for (const t of init.list) if (!this.byName.has(t.name)) this.byName.set(t.name, t);
    this.storages = init.storages;
    this.zip = init.zip;
    this.fh = init.fh;
    this.fileSize = init.fileSize;
  }

  /** Opens a checkpoint, reading only the zip directory and data.pkl. */
  static async open(path: string): Promise<TorchCheckpoint> {
    if (typeof path !== 'string' || path.length === 0) {
      throw new ImageBindError('ERR_INVALID_ARG_TYPE', `openTorchCheckpoint: expected a file path string, received ${path === '' ? 'an empty string' : typeof path}`);
    }
    // Before open: a FIFO would block it.
    await refuseSpecial(path).catch((e) => { throw checkpointError('ERR_CHECKPOINT_INVALID', path, `is not a regular file (${(e as Error).message.replace(`${path}: `, '')})`); });
    let fh: FileHandle;
    try {
      fh = await fs.promises.open(path, 'r');
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT') throw checkpointError('ERR_FILE_NOT_FOUND', path, 'no such file', err);
      throw checkpointError('ERR_FILE_READ', path, `cannot open: ${(err as Error).message}`, err);
    }
    let zip: yauzl.ZipFile | undefined;
    try {
      const stat = await fh.stat();
      if (!stat.isFile()) throw checkpointError('ERR_CHECKPOINT_INVALID', path, 'is not a regular file');
      const size = stat.size;
      if (size === 0) throw checkpointError('ERR_CHECKPOINT_INVALID', path, 'is empty, not a torch checkpoint');
      const head = Buffer.alloc(Math.min(size, 512));
      await fh.read(head, 0, head.length, 0);
      const isZip = head.length >= 4 && head.readUInt32LE(0) === 0x04034b50;
      if (!isZip) throw TorchCheckpoint.notZipError(path, head);
      try {
        zip = await yauzl.openPromise(path, { autoClose: false, lazyEntries: true, strictFileNames: true });
      } catch (err) {
        // The zip directory sits at the end of the file: a zip that starts right but has none was cut short.
        throw checkpointError(
          'ERR_CHECKPOINT_TRUNCATED',
          path,
          `the zip directory at the end of the file is missing or damaged (${(err as Error).message}); the file (${size} bytes) is probably an incomplete download or copy`,
          err,
        );
      }
      return await TorchCheckpoint.readArchive(path, zip, fh, size);
    } catch (err) {
      zip?.close();
      await fh.close().catch(() => undefined);
      throw err;
    }
  }

  private static notZipError(path: string, head: Buffer): ImageBindError {
    if (head.subarray(0, LEGACY_MAGIC.length).equals(LEGACY_MAGIC) || (head.length >= 262 && head.toString('latin1', 257, 262) === 'ustar')) {
      return checkpointError(
        'ERR_CHECKPOINT_LEGACY_FORMAT',
        path,
        "is in PyTorch's legacy (pre-1.6, non-zip) serialization format, which this reader does not support; " +
          "re-save it in the zip format with torch >= 1.6: python -c \"import torch; torch.save(torch.load('IN.pth', map_location='cpu'), 'OUT.pth')\"",
      );
    }
    if (head[0] === 0x80) {
      return checkpointError('ERR_CHECKPOINT_INVALID', path, 'is a bare Python pickle, not a torch.save zip archive');
    }
    return checkpointError('ERR_CHECKPOINT_INVALID', path, `is not a torch checkpoint: not a zip archive (it starts with bytes ${hexHead(head)})`);
  }

  private static async readArchive(path: string, zip: yauzl.ZipFile, fh: FileHandle, fileSize: number): Promise<TorchCheckpoint> {
    const fail: Fail = (code, message) => {
      throw checkpointError(code, path, message);
    };
    const entries = new Map<string, yauzl.Entry>();
    try {
      await listEntries(zip, (e) => entries.set(e.fileName, e));
    } catch (err) {
      throw checkpointError('ERR_CHECKPOINT_TRUNCATED', path, `the zip directory is damaged (${(err as Error).message}); the file was probably cut short or altered`, err);
    }
    // ref: inline_container.cc: every record lives under one top folder, data.pkl among them.
    const pkls = [...entries.keys()].filter((n) => /^[^/]+\/data\.pkl$/.test(n));
    if (pkls.length !== 1) {
      fail(
        'ERR_CHECKPOINT_INVALID',
        pkls.length === 0
          ? 'is a zip archive but not a torch checkpoint: it has no <archive>/data.pkl entry'
          : `is a zip archive with ${pkls.length} data.pkl entries (${pkls.join(', ')}), expected one`,
      );
    }
    const archiveName = pkls[0].slice(0, -'/data.pkl'.length);
    const prefix = `${archiveName}/`;

    const readSmall = async (name: string, limit: number): Promise<Buffer> => {
      const e = entries.get(name)!;
      try {
        return await readStream(await zip.openReadStreamPromise(e), limit);
      } catch (err) {
        throw checkpointError('ERR_CHECKPOINT_TRUNCATED', path, `cannot read ${name} (${(err as Error).message})`, err);
      }
    };

    let byteOrder: 'little' | 'big' = 'little';
    if (entries.has(`${prefix}byteorder`)) {
      const bo = (await readSmall(`${prefix}byteorder`, 64)).toString('latin1').trim();
      if (bo !== 'little' && bo !== 'big') fail('ERR_CHECKPOINT_INVALID', `${prefix}byteorder is '${bo}', expected 'little' or 'big'`);
      byteOrder = bo as 'little' | 'big';
    }

    const pickled = await readSmall(pkls[0], MAX_PICKLE_BYTES);
    const raw = unpickle(pickled, fail);

    // Storages: every tensor's entry must exist, and be long enough for the elements the tensor spans.
    const storages = new Map<string, StorageEntry>();
    const storageDtype = new Map<string, TorchDtype>();
    const list: TorchTensorInfo[] = [];
    const toInfo = (name: string, t: TensorRef): TorchTensorInfo => {
      const key = t.storage.key;
      const entry = entries.get(`${prefix}data/${key}`);
      if (!entry) fail('ERR_CHECKPOINT_INVALID', `tensor '${name}' uses storage ${prefix}data/${key}, which is not in the archive`);
      const prev = storageDtype.get(key);
      if (prev && prev !== t.storage.dtype) fail('ERR_CHECKPOINT_INVALID', `storage ${key} is used with dtypes ${prev} and ${t.storage.dtype}`);
      storageDtype.set(key, t.storage.dtype);
      if (!storages.has(key)) storages.set(key, { entry: entry! });
      const numel = t.shape.reduce((a, b) => a * b, 1);
      const info: TorchTensorInfo = Object.freeze({
        name,
        dtype: t.storage.dtype,
        shape: Object.freeze([...t.shape]) as readonly number[],
        stride: Object.freeze([...t.stride]) as readonly number[],
        storageOffset: t.storageOffset,
        storageKey: key,
        numel,
      });
      const need = spanBytes(info);
      if (need > entry!.uncompressedSize) {
        fail(
          'ERR_CHECKPOINT_TRUNCATED',
          `tensor '${name}' needs ${need} bytes of storage ${prefix}data/${key}, which holds only ${entry!.uncompressedSize}; the checkpoint is truncated or damaged`,
        );
      }
      list.push(info);
      return info;
    };
    // The pickle may share one object many times (memo references): a 1 KB pickle can describe a
    // tree of 2^100 nodes, or a cycle. The walk counts every visit and refuses cycles and depth.
    let visits = 0;
    const onPath = new Set<unknown>();
    const convert = (v: unknown, name: string, depth: number): TorchValue => {
      if (++visits > MAX_PICKLE_VALUES) {
        fail('ERR_CHECKPOINT_INVALID', `data.pkl expands to more than ${MAX_PICKLE_VALUES} values (shared references multiply it); not a checkpoint of tensors`);
      }
      if (depth > MAX_PICKLE_DEPTH) fail('ERR_CHECKPOINT_INVALID', `data.pkl nests containers more than ${MAX_PICKLE_DEPTH} deep`);
      if (name.length > MAX_PICKLE_NAME) fail('ERR_CHECKPOINT_INVALID', `data.pkl has a tensor name longer than ${MAX_PICKLE_NAME} characters`);
      if (v instanceof TensorRef) return toInfo(name, v);
      if (v instanceof Map || Array.isArray(v)) {
        if (onPath.has(v)) fail('ERR_CHECKPOINT_INVALID', `data.pkl holds a container that contains itself ('${name || '<root>'}')`);
        onPath.add(v);
        try {
          if (Array.isArray(v)) return v.map((x, i) => convert(x, name === '' ? String(i) : `${name}.${i}`, depth + 1));
          const m = new Map<unknown, TorchValue>();
          for (const [k, x] of v) m.set(k, convert(x, name === '' ? String(k) : `${name}.${String(k)}`, depth + 1));
          return m;
        } finally {
          onPath.delete(v);
        }
      }
      if (v instanceof StorageRef) fail('ERR_CHECKPOINT_UNSUPPORTED', `'${name || '<root>'}' is a bare storage, not a tensor`);
      if (v === null || typeof v === 'boolean' || typeof v === 'number' || typeof v === 'bigint' || typeof v === 'string' || v instanceof Uint8Array) {
        return v as TorchValue;
      }
      fail('ERR_CHECKPOINT_UNSUPPORTED', `'${name || '<root>'}' holds a value this reader does not support`);
    };
    const root = convert(raw, '', 0);

    // Local headers give where each entry's bytes start; checking them now finds a cut-short file
    // before a long conversion starts.
    for (const [key, s] of storages) {
      s.dataStart = zip.readLocalFileHeaderPromise(s.entry, { minimal: true }).then((h) => h.fileDataStart);
      try {
        await s.dataStart;
      } catch (err) {
        const who = list.find((t) => t.storageKey === key)?.name ?? key;
        throw checkpointError('ERR_CHECKPOINT_TRUNCATED', path, `the data of tensor '${who}' (${prefix}data/${key}) is missing or damaged (${(err as Error).message})`, err);
      }
    }
    return new TorchCheckpoint({ path, archiveName, byteOrder, root, list, storages, zip, fh, fileSize });
  }

  /** Every tensor, in the order the checkpoint stores them. */
  tensors(): TorchTensorInfo[] {
    return [...this.list];
  }

  get(name: string): TorchTensorInfo | undefined {
    return this.byName.get(name);
  }

  has(name: string): boolean {
    return this.byName.has(name);
  }

  /** The tensor's elements in row-major order, in its own dtype, little-endian. */
  async readRaw(t: TorchTensorInfo | string): Promise<Uint8Array> {
    const info = this.resolve(t);
    const es = DTYPE_BYTES[info.dtype];
    if (info.numel === 0) return new Uint8Array(0);
    const spanEnd = spanBytes(info) / es;
    const first = info.storageOffset;
    const range = await this.readStorageRange(info, first * es, spanEnd * es);
    const out = isContiguous(info.shape, info.stride) ? range : gather(range, es, info.shape, info.stride, 0, info.numel);
    if (this.byteOrder === 'big') byteSwap(out, es);
    return out;
  }

  /** The tensor's elements in row-major order as float32 (f16/bf16/f64/integers/bool converted). */
  async readFloat32(t: TorchTensorInfo | string): Promise<Float32Array> {
    const info = this.resolve(t);
    return toFloat32(await this.readRaw(info), info.dtype, info.numel);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.zip.close();
    await this.fh.close();
  }

  dispose(): Promise<void> {
    return this.close();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  private resolve(t: TorchTensorInfo | string): TorchTensorInfo {
    if (this.closed) throw checkpointError('ERR_CHECKPOINT_CLOSED', this.path, 'the checkpoint is closed');
    if (typeof t === 'string') {
      const info = this.byName.get(t);
      if (!info) throw checkpointError('ERR_TENSOR_NOT_FOUND', this.path, `has no tensor named '${t}'`);
      return info;
    }
    if (t === null || typeof t !== 'object' || !this.storages.has(t.storageKey) || !(t.dtype in DTYPE_BYTES)) {
      throw new ImageBindError('ERR_INVALID_ARG_TYPE', `${this.path}: expected a tensor name or a TorchTensorInfo of this checkpoint`);
    }
    return t;
  }

  /** Bytes [start, end) of a tensor's storage, in a fresh aligned buffer. */
  private async readStorageRange(info: TorchTensorInfo, start: number, end: number): Promise<Uint8Array> {
    const s = this.storages.get(info.storageKey)!;
    const entry = s.entry;
    const truncated = (detail: string) =>
      checkpointError('ERR_CHECKPOINT_TRUNCATED', this.path, `tensor '${info.name}' (${this.archiveName}/data/${info.storageKey}): ${detail}`);
    if (end > entry.uncompressedSize) throw truncated(`needs ${end} bytes of its storage, which holds only ${entry.uncompressedSize}`);
    const out = allocBytes(end - start);
    if (entry.compressionMethod === 0) {
      const dataStart = await s.dataStart!;
      let done = 0;
      while (done < out.length) {
        const want = Math.min(READ_CHUNK, out.length - done);
        const { bytesRead } = await this.fh.read(out, done, want, dataStart + start + done);
        if (bytesRead === 0) throw truncated(`the file ends at byte ${this.fileSize}, inside the tensor's data`);
        done += bytesRead;
      }
      return out;
    }
    // A compressed entry can only be read from its start: inflate and keep [start, end).
    let pos = 0;
    let filled = 0;
    try {
      const stream = await this.zip.openReadStreamPromise(entry);
      for await (const chunk of stream as AsyncIterable<Buffer>) {
        const a = Math.max(start - pos, 0);
        const b = Math.min(end - pos, chunk.length);
        if (b > a) {
          out.set(chunk.subarray(a, b), filled);
          filled += b - a;
        }
        pos += chunk.length;
        if (pos >= end) break; // leaving the loop destroys the stream
      }
    } catch (err) {
      throw truncated(`cannot inflate the data (${(err as Error).message})`);
    }
    if (filled !== out.length) throw truncated(`the data ends after ${filled} of ${out.length} bytes`);
    return out;
  }
}

/** Bytes of storage from the start to one past the last element the tensor uses. */
function spanBytes(t: TorchTensorInfo): number {
  if (t.numel === 0) return 0;
  let last = t.storageOffset;
  for (let d = 0; d < t.shape.length; d++) last += (t.shape[d] - 1) * t.stride[d];
  return (last + 1) * DTYPE_BYTES[t.dtype];
}

/** Opens a torch.save checkpoint (see TorchCheckpoint.open). */
export function openTorchCheckpoint(path: string): Promise<TorchCheckpoint> {
  return TorchCheckpoint.open(path);
}
