// `convert llm` from a Hugging Face-layout LLaMA and with a delta added on the fly:
// - HF copies of the fixtures' tiny LLaMA (q/k rows permuted as transformers does; safetensors and
//   .bin shards with their index; F16 and BF16) convert to exactly the GGUF tensors of the Meta layout
//   (BF16 against a Meta copy in BF16: the same values);
// - base + delta converts to exactly what converting a base merged beforehand gives, the merge done
//   here as upstream's get_chinese_llama.py does: (base.float() + delta.float()).half();
// - the safetensors reader's bounds, and the error paths of both.
import test from 'ava';
import fs from 'node:fs';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { cliPath, libIndex, root, tmpDir } from './helpers/paths.mjs';
import { tinyA } from './helpers/fixtures.mjs';
import { halfToFloat, values } from './helpers/numeric.mjs';
import { f16ToBf16Bits, readMetaTensors, writeHfLlama, writeMetaLlama } from './helpers/hf-llama.mjs';
import { writeSafetensors } from './helpers/safetensors-writer.mjs';
import { f32ToF16 } from '../scripts/lib/torch-writer.mjs';

const require = createRequire(import.meta.url);
const ibl = require(libIndex);
const { openSafetensors } = require(path.join(root, 'lib', 'safetensors.js'));
const { roundToHalf } = require(path.join(root, 'lib', 'convert', 'llama-delta.js'));
const { unpermuteRows } = require(path.join(root, 'lib', 'convert', 'llama-hf.js'));

const llamaDir = path.join(tinyA, 'llama');
const adapter = path.join(tinyA, 'adapter.pth');
const params = JSON.parse(fs.readFileSync(path.join(llamaDir, 'params.json'), 'utf8'));
const dir = tmpDir('ibl-hf-');
test.after.always(() => fs.rmSync(dir, { recursive: true, force: true }));

let metaTensors;
const metaGguf = {};
test.before(async () => {
  metaTensors = await readMetaTensors(llamaDir);
  const bf16 = new Map([...metaTensors].map(([n, t]) => [n, { dtype: 'bfloat16', shape: t.shape, bits: f16ToBf16Bits(t.bits) }]));
  await writeMetaLlama(path.join(dir, 'meta-bf16'), bf16, params, path.join(llamaDir, 'tokenizer.model'));
  metaGguf.F16 = await convert(llamaDir, 'meta-f16');
  metaGguf.BF16 = await convert(path.join(dir, 'meta-bf16'), 'meta-bf16');
});

async function convert(llama, name, extra = {}) {
  return ibl.convertLlm({ llamaDir: llama, adapter, outPrefix: path.join(dir, name), type: 'f32', name: 'same', ...extra });
}

/** Every tensor's name, type, shape and bytes, and the metadata less the per-conversion id. */
async function ggufContents(file) {
  const info = await ibl.inspectGguf(file);
  const fd = fs.openSync(file, 'r');
  try {
    const tensors = info.tensors.map((t) => {
      const b = Buffer.alloc(t.size);
      fs.readSync(fd, b, 0, t.size, t.offset);
      return { name: t.name, type: t.type, shape: t.shape, bytes: b };
    });
    const metadata = { ...info.metadata };
    delete metadata['imagebind_llm.conversion_id'];
    for (const k of Object.keys(metadata)) if (/conversion/.test(k)) delete metadata[k];
    return { tensors, metadata };
  } finally {
    fs.closeSync(fd);
  }
}

async function assertSameGguf(t, got, want, what) {
  for (const kind of ['llm', 'bind']) {
    const a = await ggufContents(got[kind]);
    const b = await ggufContents(want[kind]);
    t.deepEqual(a.metadata, b.metadata, `${what}: ${kind} metadata`);
    t.deepEqual(a.tensors.map((x) => [x.name, x.type, x.shape]), b.tensors.map((x) => [x.name, x.type, x.shape]), `${what}: ${kind} tensor table`);
    const differ = a.tensors.filter((x, i) => !x.bytes.equals(b.tensors[i].bytes)).map((x) => x.name);
    t.deepEqual(differ, [], `${what}: ${kind} tensors with other bytes`);
  }
}

for (const format of ['safetensors', 'bin']) {
  for (const dtype of ['F16', 'BF16']) {
    for (const shards of [1, 3]) {
      test(`HF layout, ${format}, ${dtype}, ${shards} file${shards > 1 ? 's' : ''}: the same GGUF tensors as the Meta layout`, async (t) => {
        const name = `hf-${format}-${dtype}-${shards}`;
        const hf = await writeHfLlama(llamaDir, path.join(dir, name), { format, dtype, shards });
        const res = await convert(hf, name);
        t.is(res.layout, 'hf');
        t.is(res.shards, shards);
        await assertSameGguf(t, res, metaGguf[dtype], name);
      });
    }
  }
}

test('HF layout: the permutation is undone (without it the q/k tensors differ)', async (t) => {
  // Guard against a test that passes because q/k are never permuted on either side.
  const wq = metaTensors.get('layers.0.attention.wq.weight');
  const f = Float32Array.from(wq.bits, halfToFloat);
  const [rows, cols] = wq.shape;
  const back = unpermuteRows(f, rows, cols, params.n_heads);
  t.notDeepEqual(Array.from(back), Array.from(f));
  // Meta row h·hd + 2i + j = HF row h·hd + j·hd/2 + i: row 1 (i 0, j 1) comes from HF row hd/2.
  const hd = rows / params.n_heads;
  t.deepEqual(Array.from(back.subarray(cols, 2 * cols)), Array.from(f.subarray((hd / 2) * cols, (hd / 2 + 1) * cols)));
});

test('HF layout: a tied lm_head reads the embeddings; rope_scaling and other model types are refused', async (t) => {
  const hf = await writeHfLlama(llamaDir, path.join(dir, 'hf-cfg'), { format: 'safetensors', dtype: 'F16' });
  const cfg = JSON.parse(fs.readFileSync(path.join(hf, 'config.json'), 'utf8'));
  const withCfg = (edit) => { fs.writeFileSync(path.join(hf, 'config.json'), JSON.stringify({ ...cfg, ...edit })); };
  withCfg({ model_type: 'mistral' });
  let e = await t.throwsAsync(() => convert(hf, 'x'));
  t.is(e.code, 'ERR_CONFIG_UNSUPPORTED');
  t.regex(e.message, /config\.json: model_type is "mistral"/);
  withCfg({ rope_scaling: { type: 'linear', factor: 2 } });
  e = await t.throwsAsync(() => convert(hf, 'x'));
  t.regex(e.message, /rope_scaling is set/);
  withCfg({ intermediate_size: 100 });
  e = await t.throwsAsync(() => convert(hf, 'x'));
  t.is(e.code, 'ERR_SHAPE_MISMATCH');
  t.regex(e.message, /intermediate_size 100/);
  withCfg({ num_attention_heads: 'four' });
  e = await t.throwsAsync(() => convert(hf, 'x'));
  t.is(e.code, 'ERR_CONFIG_INVALID');
  t.regex(e.message, /config\.json: 'num_attention_heads' must be an integer from 1 to \d+/);
  withCfg({});
  t.false(fs.readdirSync(dir).some((f) => f.startsWith('x-')), 'no output left behind');
  const tied = await convert(await writeHfLlama(llamaDir, path.join(dir, 'hf-tied'), { tie: true }), 'hf-tied');
  const g = await ggufContents(tied.llm);
  const bytesOf = (n) => g.tensors.find((x) => x.name === n).bytes;
  t.true(bytesOf('output.weight').equals(bytesOf('token_embd.weight')));
  t.false(bytesOf('output.weight').equals((await ggufContents(metaGguf.F16.llm)).tensors.find((x) => x.name === 'output.weight').bytes));
});

test('HF layout errors: missing index, an index that points elsewhere or at a missing file, missing tensors', async (t) => {
  const base = await writeHfLlama(llamaDir, path.join(dir, 'hf-idx'), { format: 'safetensors', dtype: 'F16', shards: 2 });
  const index = path.join(base, 'model.safetensors.index.json');
  const j = JSON.parse(fs.readFileSync(index, 'utf8'));
  fs.renameSync(index, `${index}.bak`);
  let e = await t.throwsAsync(() => convert(base, 'x'));
  t.is(e.code, 'ERR_FILE_NOT_FOUND');
  t.regex(e.message, /model\.safetensors\.index\.json: missing \(needed to read the shards/);
  fs.writeFileSync(index, JSON.stringify({ weight_map: { ...j.weight_map, 'model.norm.weight': '../../etc/passwd' } }));
  e = await t.throwsAsync(() => convert(base, 'x'));
  t.is(e.code, 'ERR_CONFIG_INVALID');
  t.regex(e.message, /weight_map\['model\.norm\.weight'\] is "\.\.\/\.\.\/etc\/passwd", expected a file name in/);
  fs.writeFileSync(index, JSON.stringify({ weight_map: { ...j.weight_map, 'model.norm.weight': 'model-00009-of-00009.safetensors' } }));
  e = await t.throwsAsync(() => convert(base, 'x'));
  t.is(e.code, 'ERR_FILE_NOT_FOUND');
  t.regex(e.message, /model-00009-of-00009\.safetensors: missing \(model\.safetensors\.index\.json names it\)/);
  const wm = { ...j.weight_map };
  delete wm['model.layers.1.mlp.down_proj.weight'];
  fs.writeFileSync(index, JSON.stringify({ weight_map: wm }));
  e = await t.throwsAsync(() => convert(base, 'x'));
  t.is(e.code, 'ERR_CHECKPOINT_MISSING_TENSOR');
  t.regex(e.message, /missing tensor 'model\.layers\.1\.mlp\.down_proj\.weight' \(Meta's 'layers\.1\.feed_forward\.w2\.weight'\)/);
  const empty = path.join(dir, 'hf-empty');
  fs.mkdirSync(empty);
  fs.copyFileSync(path.join(base, 'config.json'), path.join(empty, 'config.json'));
  fs.copyFileSync(path.join(base, 'tokenizer.model'), path.join(empty, 'tokenizer.model'));
  e = await t.throwsAsync(() => convert(empty, 'x'));
  t.regex(e.message, /model\.safetensors: missing \(no \*\.safetensors or pytorch_model\*\.bin weights/);
});

// --- safetensors reader bounds --------------------------------------------------------------------

function stFile(name, options, tensors = [['a', { dtype: 'F32', shape: [2, 3], data: new Float32Array([1, 2, 3, 4, 5, 6]) }], ['b', { dtype: 'F16', shape: [2], data: new Uint16Array([0x3c00, 0xc000]) }]]) {
  return writeSafetensors(path.join(dir, `${name}.safetensors`), tensors, options);
}

async function stError(t, file, code, re) {
  const e = await t.throwsAsync(() => openSafetensors(file));
  t.is(e.code, code, e.message);
  t.regex(e.message, re);
  t.true(e.message.startsWith(file), 'the message names the file');
}

test('safetensors: reads F32, F16, BF16 and metadata; header padding is allowed', async (t) => {
  const f = await openSafetensors(stFile('ok', { metadata: { format: 'pt' }, pad: 5 }, [
    ['a', { dtype: 'F32', shape: [2, 3], data: new Float32Array([1, 2, 3, 4, 5, 6]) }],
    ['b', { dtype: 'F16', shape: [2], data: new Uint16Array([0x3c00, 0xc000]) }],
    ['c', { dtype: 'BF16', shape: [1, 2], data: new Uint16Array([0x3f80, 0xc0a0]) }],
    ['z', { dtype: 'F32', shape: [0], data: new Float32Array(0) }],
  ]));
  try {
    t.deepEqual(f.tensors().map((x) => [x.name, x.dtype, x.shape]), [['a', 'F32', [2, 3]], ['b', 'F16', [2]], ['c', 'BF16', [1, 2]], ['z', 'F32', [0]]]);
    t.deepEqual(f.metadata, { format: 'pt' });
    t.deepEqual(Array.from(await f.readFloat32('a')), [1, 2, 3, 4, 5, 6]);
    t.deepEqual(Array.from(await f.readFloat32('b')), [1, -2]);
    t.deepEqual(Array.from(await f.readFloat32('c')), [1, -5]);
    t.deepEqual(Array.from(await f.readFloat32('z')), []);
    const e = await t.throwsAsync(() => f.readFloat32('nope'));
    t.is(e.code, 'ERR_TENSOR_NOT_FOUND');
  } finally {
    await f.close();
  }
});

test('safetensors: every size read from the file is bounded', async (t) => {
  await stError(t, stFile('huge-header', { declaredSize: 2 ** 40 }), 'ERR_SAFETENSORS_INVALID', /header of 1099511627776 bytes, over the format's limit of 100000000/);
  await stError(t, stFile('long-header', { declaredSize: 5000 }), 'ERR_SAFETENSORS_TRUNCATED', /header of 5000 bytes, but the file has only/);
  const short = path.join(dir, 'short.safetensors');
  fs.writeFileSync(short, Buffer.from([1, 2, 3]));
  await stError(t, short, 'ERR_SAFETENSORS_TRUNCATED', /3 bytes long: too short/);
  await stError(t, stFile('not-json', { rawHeader: Buffer.from('{"a": ') }), 'ERR_SAFETENSORS_INVALID', /the header is not valid JSON/);
  await stError(t, stFile('not-object', { rawHeader: Buffer.from('[1, 2]') }), 'ERR_SAFETENSORS_INVALID', /does not start with '\{'/);
  await stError(t, stFile('dtype', { editHeader: (h) => { h.a.dtype = 'F7'; } }), 'ERR_SAFETENSORS_INVALID', /tensor 'a' has dtype "F7", not one of/);
  await stError(t, stFile('shape', { editHeader: (h) => { h.a.shape = [2, -3]; } }), 'ERR_SAFETENSORS_INVALID', /tensor 'a' has shape \[2,-3\]/);
  await stError(t, stFile('overflow', { editHeader: (h) => { h.a.shape = [2 ** 40, 2 ** 40]; } }), 'ERR_SAFETENSORS_INVALID', /too many elements/);
  await stError(t, stFile('span', { editHeader: (h) => { h.a.shape = [3, 3]; } }), 'ERR_SAFETENSORS_INVALID', /shape \[3, 3\] of F32 \(36 bytes\), but data_offsets span 24 bytes/);
  await stError(t, stFile('past-end', { editHeader: (h) => { h.b.data_offsets = [24, 1000]; h.b.shape = [488]; } }), 'ERR_SAFETENSORS_TRUNCATED', /tensor 'b' ends at byte 1000 of the data, which holds only 28 bytes/);
  await stError(t, stFile('offsets', { editHeader: (h) => { h.b.data_offsets = [30, 26]; } }), 'ERR_SAFETENSORS_INVALID', /data_offsets \[30,26\], expected \[begin, end\]/);
  await stError(t, stFile('overlap', { editHeader: (h) => { h.b.data_offsets = [20, 24]; } }), 'ERR_SAFETENSORS_INVALID', /tensor 'b' overlaps the tensor before it/);
  await stError(t, stFile('gap', { editHeader: (h) => { h.a.data_offsets = [0, 24]; h.b.data_offsets = [26, 30]; } }), 'ERR_SAFETENSORS_TRUNCATED', /ends at byte 30 of the data, which holds only 28/);
  await stError(t, stFile('hole', { editHeader: (h) => { h.b.data_offsets = [24, 26]; h.b.shape = [1]; } }), 'ERR_SAFETENSORS_INVALID', /2 bytes at the end of the data belong to no tensor/);
  await stError(t, stFile('meta', { editHeader: (h) => { h.__metadata__ = { n: 1 }; } }), 'ERR_SAFETENSORS_INVALID', /__metadata__\.n is not a string/);
  // A file cut short after its header: the last tensor's range passes the end.
  const ok = stFile('cut');
  fs.truncateSync(ok, fs.statSync(ok).size - 2);
  await stError(t, ok, 'ERR_SAFETENSORS_TRUNCATED', /tensor 'b' ends at byte 28 of the data, which holds only 26 bytes: the file is cut short/);
});

// --- the delta --------------------------------------------------------------------------------------

test('roundToHalf is torch\'s .half(): every f16 value, every midpoint (ties to even), overflow', (t) => {
  const xs = [];
  for (let h = 0; h < 0x7c00; h++) {
    xs.push(halfToFloat(h), -halfToFloat(h));
    if (h + 1 < 0x7c00) xs.push((halfToFloat(h) + halfToFloat(h + 1)) / 2, Math.fround(halfToFloat(h) * 0.75 + halfToFloat(h + 1) * 0.25));
  }
  xs.push(...values(4096, 3).map((v) => v * 1e-6), 65504, 65519.996, 65520, -70000, 1e-10);
  const a = Float32Array.from(xs);
  const want = Array.from(a, (x) => halfToFloat(f32ToF16(x)));
  const bad = roundToHalf(a);
  t.deepEqual(Array.from(a), want.map((x) => (Object.is(x, -0) ? -0 : x)));
  t.is(bad, xs.indexOf(65520));
  t.is(roundToHalf(Float32Array.of(1, 2, NaN)), 2);
});

const deltaParams = { ...params, norm_eps: 1e-5 };

/** A delta for every key of the base (rope included, as released), f16; `scale` sets the size. */
async function writeDelta(out, edit = () => {}) {
  const tensors = new Map();
  let seed = 1;
  for (const [name, t] of metaTensors) {
    const n = t.bits.length;
    const v = values(n, seed++);
    const bits = new Uint16Array(n);
    for (let i = 0; i < n; i++) bits[i] = f32ToF16(v[i] * 0.0137);
    tensors.set(name, { dtype: 'float16', shape: t.shape, bits });
  }
  edit(tensors);
  return writeMetaLlama(out, tensors, deltaParams);
}

/** What get_chinese_llama.py writes: (base.float() + delta.float()).half() for every non-rope key. */
async function mergeAsUpstream(deltaDir, out) {
  const delta = await readMetaTensors(deltaDir);
  const merged = new Map();
  let rounded = 0;
  for (const [name, t] of metaTensors) {
    if (name.includes('rope')) continue;
    const d = delta.get(name).bits;
    const bits = new Uint16Array(t.bits.length);
    for (let i = 0; i < bits.length; i++) {
      const sum = Math.fround(halfToFloat(t.bits[i]) + halfToFloat(d[i]));
      bits[i] = f32ToF16(sum);
      if (halfToFloat(bits[i]) !== sum) rounded++;
    }
    merged.set(name, { dtype: 'float16', shape: t.shape, bits });
  }
  await writeMetaLlama(out, merged, deltaParams, path.join(llamaDir, 'tokenizer.model'));
  return rounded;
}

test('base + delta converts to exactly what converting the base merged beforehand gives (Meta and HF bases)', async (t) => {
  const delta = await writeDelta(path.join(dir, 'delta'));
  const rounded = await mergeAsUpstream(delta, path.join(dir, 'merged'));
  t.true(rounded > 1000, `the f16 rounding matters for ${rounded} values`);
  const want = await convert(path.join(dir, 'merged'), 'merged');
  const got = await convert(llamaDir, 'on-the-fly', { delta });
  t.true(got.delta);
  t.is(got.shards, 2);
  await assertSameGguf(t, got, want, 'Meta base + delta folder');
  const info = await ibl.inspectGguf(got.llm);
  t.is(Math.fround(info.metadata['llama.attention.layer_norm_rms_epsilon']), Math.fround(1e-5), "the delta's norm_eps");
  // The delta as one .pth: its folder's params.json is used.
  await assertSameGguf(t, await convert(llamaDir, 'on-the-fly-pth', { delta: path.join(delta, 'consolidated.00.pth') }), want, 'delta .pth');
  // An HF-layout F16 base holds the same values: the same result.
  const hf = await writeHfLlama(llamaDir, path.join(dir, 'hf-for-delta'), { format: 'safetensors', dtype: 'F16', shards: 2 });
  await assertSameGguf(t, await convert(hf, 'hf-delta', { delta }), want, 'HF base + delta');
  // And the CLI.
  const r = spawnSync(process.execPath, [cliPath, 'convert', 'llm', '--llama', llamaDir, '--delta', delta, '--adapter', adapter, '-o', path.join(dir, 'cli-delta'), '--type', 'f32', '--json'], { encoding: 'utf8' });
  t.is(r.status, 0, r.stderr);
  const res = JSON.parse(r.stdout);
  t.true(res.delta);
  const a = await ggufContents(res.llm);
  const b = await ggufContents(want.llm);
  t.deepEqual(a.tensors.map((x) => x.bytes.toString('base64')), b.tensors.map((x) => x.bytes.toString('base64')));
});

test('delta errors: missing folder or params.json, other model size, a missing or misshapen tensor, overflow', async (t) => {
  const err = async (opts, code, re) => {
    const e = await t.throwsAsync(() => convert(llamaDir, 'x', opts));
    t.is(e.code, code, e.message);
    t.regex(e.message, re);
  };
  await err({ delta: path.join(dir, 'no-delta') }, 'ERR_FILE_NOT_FOUND', /no-delta: no such delta/);
  const noParams = await writeDelta(path.join(dir, 'delta-no-params'));
  fs.rmSync(path.join(noParams, 'params.json'));
  await err({ delta: noParams }, 'ERR_FILE_NOT_FOUND', /delta-no-params[/\\]params\.json: missing/);
  const other = await writeDelta(path.join(dir, 'delta-other'));
  fs.writeFileSync(path.join(other, 'params.json'), JSON.stringify({ ...deltaParams, n_layers: 5 }));
  await err({ delta: other }, 'ERR_SHAPE_MISMATCH', /delta-other[/\\]params\.json: n_layers 5, but the base's .*params\.json has 3/);
  const missing = await writeDelta(path.join(dir, 'delta-missing'), (m) => m.delete('layers.2.feed_forward.w3.weight'));
  await err({ delta: missing }, 'ERR_CHECKPOINT_MISSING_TENSOR', /delta-missing[/\\]consolidated\.00\.pth: missing tensor 'layers\.2\.feed_forward\.w3\.weight'/);
  const shaped = await writeDelta(path.join(dir, 'delta-shape'), (m) => { const x = m.get('norm.weight'); m.set('norm.weight', { ...x, shape: [x.shape[0] / 2, 2] }); });
  await err({ delta: shaped }, 'ERR_SHAPE_MISMATCH', /delta tensor 'norm\.weight' has shape \[32, 2\], but the base/);
  // A damaged delta: an infinity (a sum past 65504 would be one too).
  const big = await writeDelta(path.join(dir, 'delta-big'), (m) => { m.get('layers.1.attention.wv.weight').bits[7] = 0x7c00; });
  await err({ delta: big }, 'ERR_CHECKPOINT_INVALID', /tensor 'layers\.1\.attention\.wv\.weight': base .* \+ delta .* Infinity at element 7 is not a finite float16/);
  t.false(fs.readdirSync(dir).some((f) => f.startsWith('x-')), 'no output left behind');
});
