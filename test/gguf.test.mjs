import test from 'ava';
import fs from 'node:fs';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { cliPath, libIndex, tmpDir } from './helpers/paths.mjs';
import { halfToFloat, values } from './helpers/numeric.mjs';

const require = createRequire(import.meta.url);
const ibl = require(libIndex);

const META = [
  { key: 'general.architecture', type: 'string', value: 'test-arch' },
  { key: 'test.u8', type: 'u8', value: 200 },
  { key: 'test.i8', type: 'i8', value: -100 },
  { key: 'test.u16', type: 'u16', value: 60000 },
  { key: 'test.i16', type: 'i16', value: -30000 },
  { key: 'test.u32', type: 'u32', value: 4000000000 },
  { key: 'test.i32', type: 'i32', value: -2000000000 },
  { key: 'test.u64', type: 'u64', value: 2n ** 60n + 3n },
  { key: 'test.i64', type: 'i64', value: -(2n ** 60n) },
  { key: 'test.f32', type: 'f32', value: 0.25 },
  { key: 'test.f64', type: 'f64', value: Math.PI },
  { key: 'test.bool', type: 'bool', value: true },
  { key: 'test.strings', type: 'array', elemType: 'string', value: ['a', 'bé', ''] },
  { key: 'test.floats', type: 'array', elemType: 'f32', value: [1.5, -2, 3.25] },
  { key: 'test.ints', type: 'array', elemType: 'i32', value: [1, -2, 3] },
];

async function writeSample(dir) {
  const file = path.join(dir, 'sample.gguf');
  const w32 = values(64 * 3, 1);
  const w16 = values(64 * 2, 2);
  const wq = values(64 * 4, 3);
  const raw = new Uint8Array([1, 2, 3, 4, 5, 6, 7, 8]);
  await ibl.writeGguf(file, {
    metadata: META,
    tensors: [
      { name: 'a.f32', type: 'f32', shape: [64, 3], data: w32 },
      { name: 'b.f16', type: 'f16', shape: [64, 2], data: w16 },
      { name: 'c.q8_0', type: 'q8_0', shape: [64, 4], data: wq },
      { name: 'd.raw_i8', type: 'i8', shape: [8], data: raw },
    ],
  });
  return { file, w32, w16, wq, raw };
}

test('a GGUF written through ggml\'s gguf API reads back: keys, values, types, tensor table, data', async (t) => {
  const dir = tmpDir();
  const { file, w32, w16 } = await writeSample(dir);
  const info = await ibl.inspectGguf(file);

  t.is(info.version, 3);
  t.is(info.fileSize, fs.statSync(file).size);
  for (const m of META) t.deepEqual(info.metadata[m.key], m.value, m.key);
  t.is(info.metadataTypes['test.u64'], 'u64');
  t.is(info.metadataTypes['test.strings'], 'array<string>');
  t.is(info.metadataTypes['test.floats'], 'array<f32>');
  t.is(typeof info.metadata['test.u64'], 'bigint');

  t.deepEqual(info.tensors.map((x) => [x.name, x.type, x.shape]), [
    ['a.f32', 'f32', [64, 3]],
    ['b.f16', 'f16', [64, 2]],
    ['c.q8_0', 'q8_0', [64, 4]],
    ['d.raw_i8', 'i8', [8]],
  ]);
  for (const x of info.tensors) t.is(x.offset % info.alignment, 0, `${x.name} is aligned`);
  const sizes = Object.fromEntries(info.tensors.map((x) => [x.name, x.size]));
  t.is(sizes['a.f32'], 64 * 3 * 4);
  t.is(sizes['b.f16'], 64 * 2 * 2);
  t.is(sizes['c.q8_0'], 4 * 2 * 34); // 2 blocks of 32 per row, 34 bytes each
  t.is(sizes['d.raw_i8'], 8);

  const bytes = fs.readFileSync(file);
  const a = info.tensors[0];
  const got32 = new Float32Array(bytes.buffer.slice(bytes.byteOffset + a.offset, bytes.byteOffset + a.offset + a.size));
  t.deepEqual(Array.from(got32), Array.from(w32));
  const b = info.tensors[1];
  for (let i = 0; i < w16.length; i++) {
    const h = bytes.readUInt16LE(b.offset + 2 * i);
    t.true(Math.abs(halfToFloat(h) - w16[i]) <= Math.abs(w16[i]) * 1e-3 + 1e-4, `f16 element ${i}`);
  }
  const d = info.tensors[3];
  t.deepEqual(Array.from(bytes.subarray(d.offset, d.offset + 8)), [1, 2, 3, 4, 5, 6, 7, 8]);
});

test('inspect: a missing file is ERR_FILE_NOT_FOUND naming the file', async (t) => {
  const file = path.join(tmpDir(), 'nope.gguf');
  const err = await t.throwsAsync(ibl.inspectGguf(file));
  t.is(err.code, 'ERR_FILE_NOT_FOUND');
  t.true(err.message.includes(file));
});

test('inspect: a file that is not GGUF says so, naming the file', async (t) => {
  const dir = tmpDir();
  const text = path.join(dir, 'model.gguf');
  fs.writeFileSync(text, 'this is not a model file at all, just some text');
  const err = await t.throwsAsync(ibl.inspectGguf(text));
  t.is(err.code, 'ERR_GGUF_INVALID');
  t.true(err.message.includes(text));
  t.regex(err.message, /magic/);

  const empty = path.join(dir, 'empty.gguf');
  fs.writeFileSync(empty, '');
  const err2 = await t.throwsAsync(ibl.inspectGguf(empty));
  t.is(err2.code, 'ERR_GGUF_INVALID');
  t.true(err2.message.includes(empty));

  const err3 = await t.throwsAsync(ibl.inspectGguf(dir));
  t.is(err3.code, 'ERR_FILE_READ');
});

test('inspect: truncated GGUFs (in the metadata, and in the tensor data) are clear errors', async (t) => {
  const dir = tmpDir();
  const { file } = await writeSample(dir);
  const full = fs.readFileSync(file);
  const info = await ibl.inspectGguf(file);

  const inMeta = path.join(dir, 'meta-cut.gguf');
  fs.writeFileSync(inMeta, full.subarray(0, 100));
  const e1 = await t.throwsAsync(ibl.inspectGguf(inMeta));
  t.is(e1.code, 'ERR_GGUF_INVALID');
  t.true(e1.message.includes(inMeta));

  const inData = path.join(dir, 'data-cut.gguf');
  fs.writeFileSync(inData, full.subarray(0, info.tensors[2].offset + 10));
  const e2 = await t.throwsAsync(ibl.inspectGguf(inData));
  t.true(['ERR_GGUF_TRUNCATED', 'ERR_GGUF_INVALID'].includes(e2.code));
  t.true(e2.message.includes(inData));
  t.regex(e2.message, /truncated/);
});

test('writer: bad specs are JS errors, not aborts', async (t) => {
  const dir = tmpDir();
  const f = (n) => path.join(dir, n);
  const dup = await t.throwsAsync(ibl.writeGguf(f('dup.gguf'), {
    tensors: [{ name: 'x', shape: [4], data: new Float32Array(4) }, { name: 'x', shape: [4], data: new Float32Array(4) }],
  }));
  t.regex(dup.message, /duplicate tensor name 'x'/);
  t.false(fs.existsSync(f('dup.gguf')));

  const mismatch = await t.throwsAsync(ibl.writeGguf(f('m.gguf'), { tensors: [{ name: 'x', shape: [4, 2], data: new Float32Array(4) }] }));
  t.regex(mismatch.message, /data has 4 values, shape needs 8/);

  const block = await t.throwsAsync(ibl.writeGguf(f('q.gguf'), { tensors: [{ name: 'x', type: 'q8_0', shape: [33], data: new Float32Array(33) }] }));
  t.regex(block.message, /block size/);

  const badType = await t.throwsAsync(ibl.writeGguf(f('t.gguf'), { tensors: [{ name: 'x', type: 'q9_9', shape: [4], data: new Float32Array(4) }] }));
  t.regex(badType.message, /unknown tensor type 'q9_9'/);

  const range = await t.throwsAsync(ibl.writeGguf(f('r.gguf'), { metadata: [{ key: 'k', type: 'u8', value: 300 }] }));
  t.regex(range.message, /out of range for u8/);

  const longName = await t.throwsAsync(ibl.writeGguf(f('n.gguf'), { tensors: [{ name: 'n'.repeat(80), shape: [4], data: new Float32Array(4) }] }));
  t.regex(longName.message, /1 to 63 characters/);

  const noDir = path.join(dir, 'missing-dir', 'x.gguf');
  const e = await t.throwsAsync(ibl.writeGguf(noDir, { tensors: [] }));
  t.is(e.code, 'ERR_FILE_WRITE');
  t.true(e.message.includes(noDir));

  const notPath = await t.throwsAsync(ibl.inspectGguf(42));
  t.is(notPath.code, 'ERR_INVALID_ARG_TYPE');
});

test('CLI inspect prints the same table as the API, and fails cleanly on a bad file', async (t) => {
  const dir = tmpDir();
  const { file } = await writeSample(dir);
  const out = JSON.parse(execFileSync(process.execPath, [cliPath, 'inspect', file, '--json'], { encoding: 'utf8' }));
  t.deepEqual(out.tensors.map((x) => x.name), ['a.f32', 'b.f16', 'c.q8_0', 'd.raw_i8']);
  t.is(out.metadata['test.u64'], (2n ** 60n + 3n).toString());
  const text = execFileSync(process.execPath, [cliPath, 'inspect', file], { encoding: 'utf8' });
  t.regex(text, /c\.q8_0\s+q8_0\s+\[64, 4\]/);

  const bad = path.join(dir, 'bad.gguf');
  fs.writeFileSync(bad, 'nope nope nope nope nope nope');
  const err = t.throws(() => execFileSync(process.execPath, [cliPath, 'inspect', bad], { encoding: 'utf8', stdio: 'pipe' }));
  t.is(err.status, 1);
  t.true(err.stderr.includes(bad));
});
