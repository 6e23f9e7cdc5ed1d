// Writes safetensors files from JS (the format as huggingface/safetensors' README specifies it: an
// 8-byte little-endian header size, the JSON header, then the tensors' bytes back to back), so tests
// can make Hugging Face-layout checkpoints without Python. `header` edits let a test damage a file.
import fs from 'node:fs';

const SIZES = { F32: 4, F16: 2, BF16: 2, F64: 8, I64: 8, I32: 4, I16: 2, I8: 1, U8: 1, BOOL: 1 };

/**
 * tensors: [[name, { dtype: 'F16' | 'BF16' | 'F32' | …, shape, data: TypedArray of the raw elements }]]
 * options.metadata: the __metadata__ object; options.editHeader(header) may change the header object;
 * options.rawHeader: header bytes to write instead; options.pad: spaces appended to the header.
 */
export function writeSafetensors(file, tensors, options = {}) {
  const header = {};
  if (options.metadata) header.__metadata__ = options.metadata;
  let offset = 0;
  const datas = [];
  for (const [name, t] of tensors) {
    const bytes = Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength);
    const n = t.shape.reduce((a, b) => a * b, 1);
    if (SIZES[t.dtype] && n * SIZES[t.dtype] !== bytes.length) throw new RangeError(`${name}: ${bytes.length} bytes for ${n} × ${t.dtype}`);
    header[name] = { dtype: t.dtype, shape: t.shape, data_offsets: [offset, offset + bytes.length] };
    offset += bytes.length;
    datas.push(bytes);
  }
  options.editHeader?.(header);
  let json = options.rawHeader ?? Buffer.from(JSON.stringify(header) + ' '.repeat(options.pad ?? 0), 'utf8');
  const size = Buffer.alloc(8);
  size.writeBigUInt64LE(BigInt(options.declaredSize ?? json.length));
  fs.writeFileSync(file, Buffer.concat([size, json, ...datas]));
  return file;
}
