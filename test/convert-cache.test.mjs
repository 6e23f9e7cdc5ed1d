// `convert cache`: the fixtures' faiss IndexFlatIP → kNN cache GGUF (f32, f16, several chunks), read
// back byte for byte; the C++ search + blend (ibl-core-tests knn) on the converted files; the blended
// vectors through the bind network against expected/llm_<case>_visual_knn.npy; the converter's errors.
import test from 'ava';
import fs from 'node:fs';
import path from 'node:path';
import { execFileSync, spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { cliPath, fixtures, libIndex, root, tmpDir } from './helpers/paths.mjs';
import { assertClose, manifest, readNpy, tinyA } from './helpers/fixtures.mjs';
import { halfToFloat } from './helpers/numeric.mjs';

const require = createRequire(import.meta.url);
const ibl = require(libIndex);

const indexPath = path.join(tinyA, 'knn.index');
const dir = tmpDir('ibl-cache-');
const coreTests = process.env.IBL_CORE_TESTS
  ?? path.join(root, 'build', 'native', process.platform === 'win32' ? 'ibl-core-tests.exe' : 'ibl-core-tests');

// The faiss file read independently: header (fourcc, d i32, ntotal i64, 2 × i64, is_trained u8,
// metric i32), then a u64 count of floats and the floats.
function readFaiss(file) {
  const b = fs.readFileSync(file);
  const d = b.readInt32LE(4);
  const n = Number(b.readBigInt64LE(8));
  const floats = new Float32Array(b.buffer.slice(b.byteOffset + 45, b.byteOffset + 45 + n * d * 4));
  return { fourcc: b.toString('latin1', 0, 4), d, n, floats, bytes: b };
}
const faiss = readFaiss(indexPath);

/** The values of a cache tensor, read from the file at the offset inspectGguf reports. */
function tensorValues(file, info) {
  const b = fs.readFileSync(file).subarray(info.offset, info.offset + info.size);
  const n = info.shape.reduce((a, x) => a * x, 1);
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) out[i] = info.type === 'f16' ? halfToFloat(b.readUInt16LE(2 * i)) : b.readFloatLE(4 * i);
  return out;
}

const converted = (async () => {
  const f32 = path.join(dir, 'cache-f32.gguf');
  const f16 = path.join(dir, 'cache-f16.gguf');
  const progress = [];
  const r32 = await ibl.convertCache(indexPath, f32, { type: 'f32', onProgress: (d, t) => progress.push([d, t]) });
  const r16 = await ibl.convertCache(indexPath, f16);
  return { f32, f16, r32, r16, progress };
})();

test('converts the fixture index at f32: metadata, one chunk, the faiss floats exactly', async (t) => {
  const { f32, r32, progress } = await converted;
  t.like(r32, { dimension: faiss.d, count: faiss.n, metric: 'ip', type: 'f32', chunks: 1, chunkRows: faiss.n, sourceType: 'IxFI' });
  t.deepEqual(progress.at(-1), [faiss.n, faiss.n]);
  const g = await ibl.inspectGguf(f32);
  t.like(g.metadata, {
    'general.architecture': 'imagebind-llm-cache', 'general.file_type': 'f32', 'cache.dimension': faiss.d,
    'cache.metric': 'ip', 'cache.chunk_rows': faiss.n, 'cache.chunk_count': 1, 'cache.source_type': 'IxFI',
  });
  t.is(Number(g.metadata['cache.count']), faiss.n);
  t.is(g.metadataTypes['cache.count'], 'u64');
  t.is(g.tensors.length, 1);
  t.like(g.tensors[0], { name: 'cache.features.0', type: 'f32', shape: [faiss.d, faiss.n] });
  const v = tensorValues(f32, g.tensors[0]);
  t.deepEqual(Array.from(v.subarray(0, faiss.d)), Array.from(faiss.floats.subarray(0, faiss.d)), 'row 0');
  t.deepEqual(Array.from(v), Array.from(faiss.floats), 'every row');
});

test('converts at f16 by default: values are the faiss floats rounded to half precision', async (t) => {
  const { f16, r16 } = await converted;
  t.like(r16, { type: 'f16', chunks: 1, metric: 'ip' });
  const g = await ibl.inspectGguf(f16);
  t.is(g.metadata['general.file_type'], 'f16');
  t.like(g.tensors[0], { name: 'cache.features.0', type: 'f16', shape: [faiss.d, faiss.n] });
  t.is(g.tensors[0].size, faiss.d * faiss.n * 2);
  const v = tensorValues(f16, g.tensors[0]);
  let worst = 0;
  for (let i = 0; i < v.length; i++) worst = Math.max(worst, Math.abs(v[i] - faiss.floats[i]) / Math.max(Math.abs(faiss.floats[i]), 2 ** -14));
  t.true(worst <= 2 ** -11, `relative rounding ${worst}`);
  t.true(Math.abs(v[0] - faiss.floats[0]) <= 2 ** -11 * Math.abs(faiss.floats[0]), 'row 0, value 0');
});

test('CLI: chunks of rows (the last one partial) concatenate to the faiss rows', async (t) => {
  const out = path.join(dir, 'chunked.gguf');
  const res = JSON.parse(execFileSync(process.execPath, [cliPath, 'convert', 'cache', indexPath, '-o', out, '--type', 'f32', '--chunk-rows', '10', '--json'], { encoding: 'utf8' }));
  t.like(res, { count: faiss.n, dimension: faiss.d, chunkRows: 10, chunks: Math.ceil(faiss.n / 10), type: 'f32' });
  const g = await ibl.inspectGguf(out);
  t.is(g.metadata['cache.chunk_count'], 7);
  t.deepEqual(g.tensors.map((x) => x.name), [0, 1, 2, 3, 4, 5, 6].map((k) => `cache.features.${k}`));
  t.deepEqual(g.tensors.at(-1).shape, [faiss.d, 4]);
  const all = g.tensors.flatMap((x) => Array.from(tensorValues(out, x)));
  t.deepEqual(all, Array.from(faiss.floats));
  const text = execFileSync(process.execPath, [cliPath, 'convert', 'cache', indexPath, '-o', path.join(dir, 'cli16.gguf')], { encoding: 'utf8' });
  t.regex(text, /64 × 32 ip cache, f16, 1 chunk of 64 rows/);
});

test('an IndexFlatL2 converts with its metric and the squared row norms', async (t) => {
  const b = Buffer.from(faiss.bytes);
  b.write('IxF2', 0, 'latin1');
  b.writeInt32LE(1, 33);  // metric_type L2
  const src = path.join(dir, 'l2.index');
  fs.writeFileSync(src, b);
  const out = path.join(dir, 'l2.gguf');
  const res = await ibl.convertCache(src, out, { type: 'f32', chunkRows: 40 });
  t.like(res, { metric: 'l2', chunks: 2, sourceType: 'IxF2' });
  const g = await ibl.inspectGguf(out);
  t.is(g.metadata['cache.metric'], 'l2');
  t.deepEqual(g.tensors.map((x) => `${x.name} ${x.type} [${x.shape}]`), [
    `cache.features.0 f32 [${faiss.d},40]`, 'cache.sqnorms.0 f32 [40]', `cache.features.1 f32 [${faiss.d},24]`, 'cache.sqnorms.1 f32 [24]',
  ]);
  const sq = [...tensorValues(out, g.tensors[1]), ...tensorValues(out, g.tensors[3])];
  for (let r = 0; r < faiss.n; r++) {
    let s = 0;
    for (let i = 0; i < faiss.d; i++) s += faiss.floats[r * faiss.d + i] ** 2;
    if (Math.abs(sq[r] - s) > 1e-6 * s) t.fail(`row ${r}: |x|² ${sq[r]} vs ${s}`);
  }
  t.pass();
});

// y = bind(v): image_bind_proj, then three times x += f2(silu(f1(n)) · f3(n)), n = RMSNorm(x), eps 1e-6
// (fixtures README §6.1 step 4), in double from adapter.pth.
async function bindNetwork() {
  const ckpt = await ibl.openTorchCheckpoint(path.join(tinyA, 'adapter.pth'));
  try {
    const byName = new Map(ckpt.tensors().map((x) => [x.name.replace(/^model\./, ''), x]));
    const w = {};
    for (const [k, info] of byName) if (k.startsWith('image_bind_')) w[k] = { shape: info.shape, data: await ckpt.readFloat32(info) };
    const linear = (m, x, b) => {
      const [o, n] = m.shape;
      const y = new Float64Array(o);
      for (let r = 0; r < o; r++) {
        let s = b ? b.data[r] : 0;
        for (let c = 0; c < n; c++) s += m.data[r * n + c] * x[c];
        y[r] = s;
      }
      return y;
    };
    return (v) => {
      let x = linear(w['image_bind_proj.weight'], v, w['image_bind_proj.bias']);
      for (const i of [1, 2, 3]) {
        const ms = x.reduce((a, z) => a + z * z, 0) / x.length;
        const g = w[`image_bind_norm_${i}.weight`].data;
        const n = x.map((z, j) => (z / Math.sqrt(ms + 1e-6)) * g[j]);
        const a = linear(w[`image_bind_f1_${i}.weight`], n).map((z) => z / (1 + Math.exp(-z)));
        const c = linear(w[`image_bind_f3_${i}.weight`], n);
        const d = linear(w[`image_bind_f2_${i}.weight`], a.map((z, j) => z * c[j]));
        x = x.map((z, j) => z + d[j]);
      }
      return x;
    };
  } finally {
    await ckpt.close();
  }
}

test('C++ search + blend on the converted caches; blended vectors through the bind network match visual_knn', async (t) => {
  const { f32, f16 } = await converted;
  t.true(fs.existsSync(coreTests), `${coreTests} must exist (built by npm install with test_knn registered)`);
  const dump = tmpDir('ibl-knn-dump-');
  const r = spawnSync(coreTests, [fixtures, 'knn'], {
    encoding: 'utf8', env: { ...process.env, IBL_CACHE_GGUF: f32, IBL_CACHE_GGUF_F16: f16, IBL_KNN_DUMP: dump },
  });
  t.deepEqual(r.stdout.split('\n').filter((l) => l.startsWith('FAIL')), [], r.stderr);
  t.notRegex(r.stdout, /IBL_CACHE_GGUF .* unset/);
  const m = /^(\d+) passed, (\d+) failed$/m.exec(r.stdout);
  t.truthy(m, r.stdout + r.stderr);
  t.true(Number(m[1]) >= 60, `${m[1]} knn checks ran`);
  t.is(Number(m[2]), 0);
  t.is(r.status, 0);

  const bind = await bindNetwork();
  const cases = manifest.llm_cases.filter((c) => c.expected.knn_search);
  t.true(cases.length >= 1);
  for (const c of cases) {
    // The reference itself: bind(visual_in) reproduces expected visual.
    const vin = readNpy(path.join(tinyA, c.expected.visual_in)).data;
    assertClose(t, bind(vin), readNpy(path.join(tinyA, c.expected.visual)).data, 'f32', `${c.name}: bind(visual_in) vs visual`);
    const exp = readNpy(path.join(tinyA, c.expected.visual_knn)).data;
    const b32 = readNpy(path.join(dump, `${c.name}_f32.npy`)).data;
    const b16 = readNpy(path.join(dump, `${c.name}_f16.npy`)).data;
    t.is(b32.length, faiss.d);
    const c32 = assertClose(t, bind(b32), exp, 'f32', `${c.name}: bind(C++ blend, f32 cache) vs visual_knn`);
    const c16 = assertClose(t, bind(b16), exp, { cosine: 0.9999 }, `${c.name}: bind(C++ blend, f16 cache) vs visual_knn`);
    t.log(`${c.name}: f32 rel ${c32.relDiff.toExponential(2)} cos ${c32.cosine.toFixed(9)}; f16 rel ${c16.relDiff.toExponential(2)} cos ${c16.cosine.toFixed(9)}`);
  }
});

// --- errors ------------------------------------------------------------------------------------

async function convertError(t, src, code, pattern) {
  const out = path.join(dir, `bad-${path.basename(src)}.gguf`);
  const err = await t.throwsAsync(ibl.convertCache(src, out), { instanceOf: ibl.ImagebindError });
  t.is(err.code, code, err.message);
  t.regex(err.message, pattern);
  t.true(err.message.includes(src), 'names the file');
  t.false(fs.existsSync(out), 'no output left behind');
  t.deepEqual(fs.readdirSync(dir).filter((f) => f.startsWith(`.${path.basename(out)}.`)), [], 'no temporary file left behind');
  return err;
}

test('error: a PNG renamed .index is not a faiss index', async (t) => {
  const src = path.join(dir, 'photo.index');
  fs.copyFileSync(path.join(fixtures, 'assets', 'depth_car.png'), src);
  await convertError(t, src, 'ERR_INDEX_INVALID', /not a faiss index.*89 50 4e 47/);
});

test('error: a truncated index says how many rows it promised and how many bytes are there', async (t) => {
  const src = path.join(dir, 'truncated.index');
  fs.writeFileSync(src, faiss.bytes.subarray(0, 45 + 40 * faiss.d * 4 + 7));
  await convertError(t, src, 'ERR_INDEX_TRUNCATED', /promises 64 rows of 32 floats \(8192 bytes\) but only 5127 bytes \(40 whole rows\)/);
  const tiny = path.join(dir, 'header-only.index');
  fs.writeFileSync(tiny, faiss.bytes.subarray(0, 20));
  await convertError(t, tiny, 'ERR_INDEX_TRUNCATED', /shorter than the 45-byte flat-index header/);
});

test('error: IVF and HNSW indexes are named and refused', async (t) => {
  for (const [fourcc, name] of [['IwFl', 'IndexIVFFlat'], ['IHNf', 'IndexHNSWFlat'], ['IxMp', 'IndexIDMap']]) {
    const b = Buffer.from(faiss.bytes);
    b.write(fourcc, 0, 'latin1');
    const src = path.join(dir, `${fourcc}.index`);
    fs.writeFileSync(src, b);
    const err = await convertError(t, src, 'ERR_INDEX_UNSUPPORTED', new RegExp(`"${fourcc}" \\(${name}\\)`));
    t.regex(err.message, /IxFI \(IndexFlatIP\), IxF2 \(IndexFlatL2\)/);
  }
  const b = Buffer.from(faiss.bytes);
  b.write('Zzzz', 0, 'latin1');
  const src = path.join(dir, 'unknown.index');
  fs.writeFileSync(src, b);
  await convertError(t, src, 'ERR_INDEX_INVALID', /starts with "Zzzz"/);
});

test('error: dimension 0, an empty index, a float count that disagrees, an unsupported metric', async (t) => {
  const variants = [
    ['dim0', (b) => b.writeInt32LE(0, 4), 'ERR_INDEX_INVALID', /dimension 0/],
    ['empty', (b) => b.writeBigInt64LE(0n, 8), 'ERR_INDEX_INVALID', /empty/],
    ['count', (b) => b.writeBigUInt64LE(2047n, 37), 'ERR_INDEX_INVALID', /2047 stored floats, but ntotal 64 × d 32 = 2048/],
    ['metric', (b) => { b.write('IxFl', 0, 'latin1'); b.writeInt32LE(2, 33); }, 'ERR_INDEX_UNSUPPORTED', /metric_type 2/],
  ];
  for (const [name, edit, code, pattern] of variants) {
    const b = Buffer.from(faiss.bytes);
    edit(b);
    const src = path.join(dir, `${name}.index`);
    fs.writeFileSync(src, b);
    await convertError(t, src, code, pattern);
  }
  // IxFl (generic IndexFlat) with the inner-product metric is accepted.
  const b = Buffer.from(faiss.bytes);
  b.write('IxFl', 0, 'latin1');
  const src = path.join(dir, 'generic.index');
  fs.writeFileSync(src, b);
  t.like(await ibl.convertCache(src, path.join(dir, 'generic.gguf')), { metric: 'ip', sourceType: 'IxFl' });
});

test('error: missing file, bad options, abort; the CLI exits non-zero with the message', async (t) => {
  await convertError(t, path.join(dir, 'nope.index'), 'ERR_FILE_NOT_FOUND', /cannot open the faiss index/);
  await t.throwsAsync(ibl.convertCache(indexPath, path.join(dir, 'x.gguf'), { type: 'q8_0' }), { code: 'ERR_INVALID_ARG' });
  await t.throwsAsync(ibl.convertCache(indexPath, path.join(dir, 'x.gguf'), { chunkRows: 0 }), { code: 'ERR_INVALID_ARG' });
  const ac = new AbortController();
  ac.abort();
  await t.throwsAsync(ibl.convertCache(indexPath, path.join(dir, 'aborted.gguf'), { signal: ac.signal }), { code: 'ABORT_ERR' });
  t.false(fs.existsSync(path.join(dir, 'aborted.gguf')));
  const r = spawnSync(process.execPath, [cliPath, 'convert', 'cache', path.join(fixtures, 'assets', 'depth_car.png'), '-o', path.join(dir, 'cli-bad.gguf')], { encoding: 'utf8' });
  t.not(r.status, 0);
  t.regex(r.stderr, /not a faiss index/);
});
