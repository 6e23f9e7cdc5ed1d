// Writes torch.save-format checkpoints (zip of data.pkl + raw storages) from JS, so tests can make
// checkpoints of any shape and size without Python. Storages are streamed into the zip one at a time
// (yazl, STORED entries), so a multi-GB checkpoint never sits in memory.
//
// ref: torch/serialization.py _save: data.pkl is a protocol-2 pickle whose tensors are
// torch._utils._rebuild_tensor_v2((('storage', torch.<T>Storage, key, 'cpu', numel) persid), offset,
// size, stride, requires_grad, OrderedDict()); records are <archive>/data.pkl, <archive>/byteorder,
// <archive>/data/<key>, <archive>/version.
//
//   import { writeTorchCheckpoint, tensor, storage, view, ordered } from './torch-writer.mjs';
//   await writeTorchCheckpoint(file, ordered({ 'a.weight': tensor('float32', [2, 3], new Float32Array(6)) }));
//
// Values: plain objects are dicts, `ordered(obj | Map)` OrderedDicts (what state_dict() gives),
// arrays lists, `tuple([...])` tuples; strings, integers (number or bigint), other numbers (floats),
// booleans and null as themselves; `tensor(...)` / `view(...)` tensors; `pyCall(module, name, args)`
// an arbitrary global call (to test that readers refuse it).
import fs from 'node:fs';
import path from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import yazl from 'yazl';

export const DTYPES = {
  float32: { bytes: 4, storage: 'FloatStorage', array: Float32Array },
  float16: { bytes: 2, storage: 'HalfStorage', array: Uint16Array },
  bfloat16: { bytes: 2, storage: 'BFloat16Storage', array: Uint16Array },
  float64: { bytes: 8, storage: 'DoubleStorage', array: Float64Array },
  int64: { bytes: 8, storage: 'LongStorage', array: BigInt64Array },
  int32: { bytes: 4, storage: 'IntStorage', array: Int32Array },
  int16: { bytes: 2, storage: 'ShortStorage', array: Int16Array },
  int8: { bytes: 1, storage: 'CharStorage', array: Int8Array },
  uint8: { bytes: 1, storage: 'ByteStorage', array: Uint8Array },
  bool: { bytes: 1, storage: 'BoolStorage', array: Uint8Array },
};

const KIND = Symbol('torch-writer kind');

function dtypeInfo(dtype) {
  const d = DTYPES[dtype];
  if (!d) throw new TypeError(`unknown dtype ${dtype}`);
  return d;
}

function asBytes(data) {
  if (data instanceof Uint8Array) return data;
  if (ArrayBuffer.isView(data)) return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  throw new TypeError('storage data must be a typed array');
}

/**
 * A storage of `numel` elements. `source` is a typed array (its bytes, little-endian) or a function
 * returning an (async) iterable of typed-array chunks, called when the zip entry is written (for
 * streaming large data). `options.allowShort` lets the data be shorter than numel (a damaged file).
 */
export function storage(dtype, numel, source, options = {}) {
  const { bytes } = dtypeInfo(dtype);
  if (typeof source !== 'function' && !options.allowShort && asBytes(source).byteLength !== numel * bytes) {
    throw new RangeError(`storage data has ${asBytes(source).byteLength} bytes, expected ${numel * bytes}`);
  }
  return { [KIND]: 'storage', dtype, numel, source, allowShort: !!options.allowShort };
}

function contiguousStride(shape) {
  const stride = new Array(shape.length);
  let s = 1;
  for (let d = shape.length - 1; d >= 0; d--) {
    stride[d] = s;
    s *= shape[d];
  }
  return stride;
}

/** A strided view of a storage (several views may share one storage: it is written once). */
export function view(store, shape, stride = contiguousStride(shape), storageOffset = 0, options = {}) {
  if (store?.[KIND] !== 'storage') throw new TypeError('view() needs a storage()');
  return { [KIND]: 'tensor', storage: store, shape: [...shape], stride: [...stride], storageOffset, parameter: !!options.parameter, requiresGrad: !!options.requiresGrad };
}

/** A contiguous tensor over its own storage. `data`: typed array of the dtype's raw elements (f16/bf16 as Uint16Array bits), or a chunk function as in storage(). */
export function tensor(dtype, shape, data, options = {}) {
  const numel = shape.reduce((a, b) => a * b, 1);
  return view(storage(dtype, numel, data, options), shape, contiguousStride(shape), 0, options);
}

export function ordered(obj) {
  return { [KIND]: 'ordered', entries: obj instanceof Map ? [...obj] : Object.entries(obj) };
}

export function tuple(items) {
  return { [KIND]: 'tuple', items };
}

export function pyCall(module, name, args = []) {
  return { [KIND]: 'call', module, name, args };
}

/** float32 → IEEE half bits (round to nearest even). */
export function f32ToF16(x) {
  const f = new Float32Array(1);
  const u = new Uint32Array(f.buffer);
  f[0] = x;
  const b = u[0];
  const sign = (b >>> 16) & 0x8000;
  const exp = (b >>> 23) & 0xff;
  let mant = b & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0);
  let e = exp - 127 + 15;
  if (e >= 31) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign;
    mant |= 0x800000;
    const shift = 14 - e;
    let h = mant >>> shift;
    const rem = mant & ((1 << shift) - 1);
    const half = 1 << (shift - 1);
    if (rem > half || (rem === half && h & 1)) h++;
    return sign | h;
  }
  let h = (e << 10) | (mant >>> 13);
  const rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && h & 1)) h++;
  return sign | h;
}

/** float32 → bfloat16 bits (round to nearest even). */
export function f32ToBf16(x) {
  const f = new Float32Array([x]);
  const b = new Uint32Array(f.buffer)[0];
  if ((b & 0x7f800000) === 0x7f800000 && b & 0x7fffff) return (b >>> 16) | 0x40;
  return ((b + 0x7fff + ((b >>> 16) & 1)) >>> 16) & 0xffff;
}

// ---------------------------------------------------------------------------------------------------
// Pickler: protocol 2 as torch.save writes it (GLOBAL, BINPUT/BINGET memo, MARK/TUPLE, SETITEMS), or
// protocol 4 (STACK_GLOBAL, SHORT_BINUNICODE, MEMOIZE) as torch.save(..., pickle_protocol=4) writes it.

class Pickler {
  constructor(protocol) {
    this.protocol = protocol;
    this.parts = [];
    this.memo = new Map();
    this.storageKeys = new Map();
    this.storages = [];
  }

  bytes(...b) {
    this.parts.push(Buffer.from(b));
  }

  raw(buf) {
    this.parts.push(buf);
  }

  u32(n) {
    const b = Buffer.alloc(4);
    b.writeUInt32LE(n);
    this.raw(b);
  }

  str(s) {
    const b = Buffer.from(s, 'utf8');
    if (this.protocol >= 4 && b.length < 256) {
      this.bytes(0x8c, b.length); // SHORT_BINUNICODE
    } else {
      this.bytes(0x58); // BINUNICODE
      this.u32(b.length);
    }
    this.raw(b);
  }

  int(v) {
    const n = BigInt(v);
    if (n >= 0n && n < 256n) return this.bytes(0x4b, Number(n)); // BININT1
    if (n >= 0n && n < 65536n) return this.bytes(0x4d, Number(n) & 0xff, Number(n) >> 8); // BININT2
    if (n >= -(2n ** 31n) && n < 2n ** 31n) {
      const b = Buffer.alloc(4);
      b.writeInt32LE(Number(n));
      this.bytes(0x4a); // BININT
      return this.raw(b);
    }
    // LONG1: minimal little-endian two's complement.
    const out = [];
    let x = n;
    for (;;) {
      const byte = Number(x & 0xffn);
      out.push(byte);
      x >>= 8n;
      if ((x === 0n && !(byte & 0x80)) || (x === -1n && byte & 0x80)) break;
    }
    this.bytes(0x8a, out.length, ...out);
  }

  float(v) {
    const b = Buffer.alloc(8);
    b.writeDoubleBE(v);
    this.bytes(0x47); // BINFLOAT
    this.raw(b);
  }

  memoize(id) {
    const i = this.memo.size;
    this.memo.set(id, i);
    if (this.protocol >= 4) return this.bytes(0x94); // MEMOIZE
    if (i < 256) this.bytes(0x71, i); // BINPUT
    else {
      this.bytes(0x72); // LONG_BINPUT
      this.u32(i);
    }
  }

  global(module, name) {
    const id = `global:${module}.${name}`;
    const i = this.memo.get(id);
    if (i !== undefined) {
      if (i < 256) return this.bytes(0x68, i); // BINGET
      this.bytes(0x6a); // LONG_BINGET
      return this.u32(i);
    }
    if (this.protocol >= 4) {
      this.str(module);
      this.str(name);
      this.bytes(0x93); // STACK_GLOBAL
    } else {
      this.bytes(0x63); // GLOBAL
      this.raw(Buffer.from(`${module}\n${name}\n`, 'latin1'));
    }
    this.memoize(id);
  }

  tupleOf(items) {
    if (items.length === 0) return this.bytes(0x29); // EMPTY_TUPLE
    if (items.length <= 3) {
      for (const x of items) this.save(x);
      return this.bytes(0x84 + items.length); // TUPLE1..3
    }
    this.bytes(0x28); // MARK
    for (const x of items) this.save(x);
    this.bytes(0x74); // TUPLE
  }

  setItems(entries) {
    for (let i = 0; i < entries.length; i += 1000) {
      this.bytes(0x28); // MARK
      for (const [k, v] of entries.slice(i, i + 1000)) {
        this.save(k);
        this.save(v);
      }
      this.bytes(0x75); // SETITEMS
    }
  }

  orderedDict(entries) {
    this.global('collections', 'OrderedDict');
    this.bytes(0x29, 0x52); // EMPTY_TUPLE REDUCE
    this.setItems(entries);
  }

  storageKey(s) {
    let key = this.storageKeys.get(s);
    if (key === undefined) {
      key = String(this.storageKeys.size);
      this.storageKeys.set(s, key);
      this.storages.push({ key, storage: s });
    }
    return key;
  }

  tensor(t) {
    if (t.parameter) this.global('torch._utils', '_rebuild_parameter');
    this.global('torch._utils', '_rebuild_tensor_v2');
    this.bytes(0x28); // MARK
    // persistent id ('storage', torch.<T>Storage, key, 'cpu', numel)
    this.bytes(0x28);
    this.str('storage');
    this.global('torch', dtypeInfo(t.storage.dtype).storage);
    this.str(this.storageKey(t.storage));
    this.str('cpu');
    this.int(t.storage.numel);
    this.bytes(0x74, 0x51); // TUPLE BINPERSID
    this.int(t.storageOffset);
    this.tupleOf(t.shape);
    this.tupleOf(t.stride);
    this.bytes(t.requiresGrad && !t.parameter ? 0x88 : 0x89);
    this.orderedDict([]);
    this.bytes(0x74, 0x52); // TUPLE REDUCE
    if (t.parameter) {
      this.bytes(t.requiresGrad ? 0x88 : 0x89);
      this.orderedDict([]);
      this.bytes(0x87, 0x52); // TUPLE3 REDUCE
    }
  }

  save(v) {
    if (v === null || v === undefined) return this.bytes(0x4e); // NONE
    if (v === true) return this.bytes(0x88);
    if (v === false) return this.bytes(0x89);
    if (typeof v === 'string') return this.str(v);
    if (typeof v === 'bigint') return this.int(v);
    if (typeof v === 'number') return Number.isInteger(v) && !Object.is(v, -0) ? this.int(v) : this.float(v);
    if (Array.isArray(v)) {
      this.bytes(0x5d); // EMPTY_LIST
      if (v.length) {
        this.bytes(0x28);
        for (const x of v) this.save(x);
        this.bytes(0x65); // APPENDS
      }
      return;
    }
    switch (v[KIND]) {
      case 'tensor':
        return this.tensor(v);
      case 'ordered':
        return this.orderedDict(v.entries);
      case 'tuple':
        return this.tupleOf(v.items);
      case 'call':
        this.global(v.module, v.name);
        this.tupleOf(v.args);
        return this.bytes(0x52); // REDUCE
      case 'storage':
        throw new TypeError('a bare storage cannot be saved here; wrap it in view()');
      default:
        break;
    }
    this.bytes(0x7d); // EMPTY_DICT
    const entries = Object.entries(v);
    if (entries.length) this.setItems(entries);
  }

  dump(root) {
    this.bytes(0x80, this.protocol); // PROTO
    this.save(root);
    this.bytes(0x2e); // STOP
    return Buffer.concat(this.parts);
  }
}

/** The pickle bytes torch.save would write for `root`, and the storages it refers to. */
export function picklePayload(root, { protocol = 2 } = {}) {
  const p = new Pickler(protocol);
  const bytes = p.dump(root);
  return { bytes, storages: p.storages };
}

function swapChunk(bytes, size) {
  const out = Buffer.from(bytes);
  if (size > 1) {
    for (let i = 0; i < out.length; i += size) out.subarray(i, i + size).reverse();
  }
  return out;
}

async function* storageChunks(s, bigEndian) {
  const size = dtypeInfo(s.dtype).bytes;
  const src = typeof s.source === 'function' ? s.source() : [s.source];
  let total = 0;
  for await (const chunk of src) {
    const b = asBytes(chunk);
    if (b.byteLength % size) throw new RangeError('storage chunks must hold whole elements');
    total += b.byteLength;
    yield bigEndian ? swapChunk(b, size) : Buffer.from(b.buffer, b.byteOffset, b.byteLength);
  }
  if (total !== s.numel * size && !s.allowShort) throw new RangeError(`storage produced ${total} bytes, expected ${s.numel * size}`);
}

/**
 * Writes `root` as a torch.save zip checkpoint at `file`.
 * options: archiveName (default: the file name without extension, as torch does), protocol (2 | 4),
 * byteorder ('little' | 'big' | null to omit the record, as torch < 1.10 did), compress (deflate the
 * storages, which torch never does), pickle (raw data.pkl bytes to write instead), omit (record names to
 * leave out, e.g. ['data.pkl']).
 */
export async function writeTorchCheckpoint(file, root, options = {}) {
  const archiveName = options.archiveName ?? path.basename(file).replace(/\.[^.]*$/, '');
  const byteorder = options.byteorder === undefined ? 'little' : options.byteorder;
  const omit = new Set(options.omit ?? []);
  const { bytes, storages } = picklePayload(root, { protocol: options.protocol ?? 2 });
  const zip = new yazl.ZipFile();
  const mtime = new Date(Date.UTC(1980, 0, 1, 12));
  const add = (name, buf) => {
    if (!omit.has(name)) zip.addBuffer(Buffer.from(buf), `${archiveName}/${name}`, { compress: false, mtime, forceDosTimestamp: true });
  };
  add('data.pkl', options.pickle ?? bytes);
  if (byteorder) add('byteorder', byteorder);
  for (const { key, storage: s } of storages) {
    const name = `data/${key}`;
    if (omit.has(name)) continue;
    zip.addReadStreamLazy(`${archiveName}/${name}`, { compress: !!options.compress, mtime, forceDosTimestamp: true }, (cb) =>
      cb(null, Readable.from(storageChunks(s, byteorder === 'big'))),
    );
  }
  add('version', '3\n');
  zip.end();
  await pipeline(zip.outputStream, fs.createWriteStream(file));
  return file;
}
