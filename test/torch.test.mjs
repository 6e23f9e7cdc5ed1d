// PyTorch checkpoint reader: the fixture checkpoints (written by real torch.save), checkpoints written
// by helpers/torch-writer.mjs (every dtype, strided views, both pickle protocols, big-endian,
// compressed entries), what a read touches on disk, and every error path.
import test from 'ava';
import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';
import { fixtures, libIndex, tmpDir } from './helpers/paths.mjs';
import { writeTorchCheckpoint, tensor, storage, view, ordered, tuple, pyCall, f32ToF16, f32ToBf16 } from '../scripts/lib/torch-writer.mjs';
import { halfToFloat, values } from './helpers/numeric.mjs';

const require = createRequire(import.meta.url);
const ibl = require(libIndex);

const tinyA = path.join(fixtures, 'tiny-a');
const ibConfig = JSON.parse(fs.readFileSync(path.join(tinyA, 'imagebind.config.json'), 'utf8'));
const adapterConfig = JSON.parse(fs.readFileSync(path.join(tinyA, 'adapter.config.json'), 'utf8'));
const llamaParams = JSON.parse(fs.readFileSync(path.join(tinyA, 'llama', 'params.json'), 'utf8'));

async function withCheckpoint(file, fn) {
  const ckpt = await ibl.openTorchCheckpoint(file);
  try {
    return await fn(ckpt);
  } finally {
    await ckpt.close();
  }
}

test('imagebind.pth: tensor table and shapes follow imagebind.config.json', async (t) => {
  await withCheckpoint(path.join(tinyA, 'imagebind.pth'), async (ck) => {
    t.is(ck.archiveName, 'imagebind');
    t.is(ck.byteOrder, 'little');
    const all = ck.tensors();
    t.is(all.length, 266);
    t.is(new Set(all.map((x) => x.name)).size, all.length);
    t.true(ck.root instanceof Map);
    t.is(ck.root.size, all.length);
    const shape = (n) => ck.get(n)?.shape;

    for (const m of ['vision', 'text', 'audio', 'depth', 'thermal', 'imu']) {
      const c = ibConfig[m];
      const D = c.embed_dim;
      const blocks = new Set(all.filter((x) => x.name.startsWith(`modality_trunks.${m}.blocks.`)).map((x) => x.name.split('.')[3]));
      t.is(blocks.size, c.num_blocks, m);
      t.deepEqual(shape(`modality_trunks.${m}.blocks.0.attn.in_proj_weight`), [3 * D, D], m);
      t.deepEqual(shape(`modality_trunks.${m}.blocks.0.attn.out_proj.weight`), [D, D], m);
      t.deepEqual(shape(`modality_trunks.${m}.blocks.${c.num_blocks - 1}.mlp.fc1.weight`), [c.mlp_hidden, D], m);
      t.deepEqual(shape(`modality_trunks.${m}.blocks.0.mlp.fc2.weight`), [D, c.mlp_hidden], m);
      t.is(ck.has(`modality_trunks.${m}.blocks.0.attn.bias_k`), c.add_bias_kv, m);
      if (c.add_bias_kv) t.deepEqual(shape(`modality_trunks.${m}.blocks.0.attn.bias_v`), [1, 1, D], m);
    }
    t.deepEqual(shape('modality_trunks.vision.blocks.0.attn.in_proj_weight'), [3 * 64, 64]);
    const v = ibConfig.vision;
    t.deepEqual(shape('modality_preprocessors.vision.rgbt_stem.proj.1.weight'), [v.embed_dim, 3, ...v.kernel_size]);
    t.deepEqual(shape('modality_preprocessors.vision.pos_embedding_helper.pos_embed'), [1, v.num_tokens, v.embed_dim]);
    t.deepEqual(shape('modality_preprocessors.text.token_embedding.weight'), [ibConfig.text.vocab_size, ibConfig.text.embed_dim]);
    t.deepEqual(shape('modality_preprocessors.text.pos_embed'), [1, ibConfig.text.context_length, ibConfig.text.embed_dim]);
    t.deepEqual(shape('modality_preprocessors.audio.pos_embedding_helper.pos_embed'), [1, ibConfig.audio.num_tokens, ibConfig.audio.embed_dim]);
    t.deepEqual(shape('modality_preprocessors.imu.imu_stem.proj.weight'), [ibConfig.imu.embed_dim, ibConfig.imu.patch_features]);
    t.deepEqual(shape('modality_heads.audio.2.weight'), [ibConfig.out_embed_dim, ibConfig.audio.embed_dim]);
    t.deepEqual(shape('point_trunk.pc_projection'), ibConfig.point.pc_projection_shape);

    const bn = ck.get('point_trunk.point_encoder.encoder.first_conv.1.num_batches_tracked');
    t.is(bn.dtype, 'int64');
    t.deepEqual(bn.shape, []);
    const [count] = await ck.readFloat32(bn);
    t.true(Number.isInteger(count) && count >= 0);
    t.deepEqual(new Set(all.filter((x) => x !== bn && !x.name.endsWith('num_batches_tracked')).map((x) => x.dtype)), new Set(['float32']));
  });
});

test('imagebind.pth: the causal text mask and the logit-scale buffers hold their known values', async (t) => {
  await withCheckpoint(path.join(tinyA, 'imagebind.pth'), async (ck) => {
    const L = ibConfig.text.context_length;
    const mask = await ck.readFloat32('modality_preprocessors.text.mask');
    t.deepEqual(ck.get('modality_preprocessors.text.mask').shape, [L, L]);
    let bad = 0;
    for (let i = 0; i < L; i++) for (let j = 0; j < L; j++) if (mask[i * L + j] !== (j > i ? -Infinity : 0)) bad++;
    t.is(bad, 0);

    const scales = ck.tensors().filter((x) => x.name.startsWith('modality_postprocessors.') && x.name.endsWith('log_logit_scale'));
    t.deepEqual(scales.map((x) => x.name.split('.')[1]).sort(), ['audio', 'depth', 'imu', 'point', 'text', 'thermal']);
    for (const m of ['audio', 'depth', 'thermal', 'imu', 'point']) {
      const [logScale] = await ck.readFloat32(`modality_postprocessors.${m}.1.log_logit_scale`);
      t.true(Math.abs(Math.exp(logScale) - ibConfig.logit_scale_exp_before_clip[m]) < 1e-5, `${m}: exp(${logScale})`);
    }
    t.deepEqual({ audio: 20, depth: 5, thermal: 10, imu: 5 }, Object.fromEntries(['audio', 'depth', 'thermal', 'imu'].map((m) => [m, ibConfig.logit_scale_exp_before_clip[m]])));
    const [textLog] = await ck.readFloat32('modality_postprocessors.text.1.log_logit_scale');
    t.is(textLog, Math.fround(ibConfig.text_log_logit_scale));
  });
});

test('adapter.pth: {model: state_dict} flattens to model.<key> for exactly the keys adapter.config.json lists', async (t) => {
  await withCheckpoint(path.join(tinyA, 'adapter.pth'), async (ck) => {
    t.deepEqual([...ck.root.keys()], ['model']);
    t.true(ck.root.get('model') instanceof Map);
    const names = ck.tensors().map((x) => x.name);
    t.deepEqual(names, adapterConfig.adapter_checkpoint_keys.map((k) => `model.${k}`));
    t.deepEqual(ck.get('model.llama.layers.0.attention.gate').shape, [1, adapterConfig.llama_n_heads, 1, 1]);
    t.deepEqual(ck.get('model.prefix_query.weight').shape, [adapterConfig.query_layer * adapterConfig.query_len, adapterConfig.llama_dim]);
    t.deepEqual(ck.get('model.image_bind_proj.weight').shape, [adapterConfig.llama_dim, adapterConfig.imagebind_out_dim]);
    t.is(ck.get('image_bind_proj.weight'), undefined);
    // All trainable values are non-zero (fixtures README section 6).
    const gate = await ck.readFloat32('model.llama.layers.0.attention.gate');
    t.is(gate.length, adapterConfig.llama_n_heads);
    t.true(gate.every((x) => x !== 0 && Number.isFinite(x)));
  });
});

test('consolidated.00.pth: float16 Meta-layout weights, readFloat32 converts every half exactly', async (t) => {
  await withCheckpoint(path.join(tinyA, 'llama', 'consolidated.00.pth'), async (ck) => {
    const all = ck.tensors();
    t.is(all.length, 1 + 2 + 9 * llamaParams.n_layers + 1);
    t.true(all.every((x) => x.dtype === 'float16'));
    const dim = llamaParams.dim;
    const hidden = llamaParams.multiple_of * Math.ceil(Math.trunc((8 * dim) / 3) / llamaParams.multiple_of);
    t.deepEqual(ck.get('layers.0.attention.wq.weight').shape, [dim, dim]);
    t.deepEqual(ck.get(`layers.${llamaParams.n_layers - 1}.feed_forward.w1.weight`).shape, [hidden, dim]);
    t.deepEqual(ck.get('layers.0.feed_forward.w2.weight').shape, [dim, hidden]);
    t.deepEqual(ck.get('rope.freqs').shape, [dim / llamaParams.n_heads / 2]);
    for (const info of all) {
      const raw = await ck.readRaw(info);
      t.is(raw.byteLength, info.numel * 2);
      const f = await ck.readFloat32(info);
      const h = new Uint16Array(raw.buffer, raw.byteOffset, info.numel);
      let bad = 0;
      for (let i = 0; i < info.numel; i++) if (!Object.is(f[i], halfToFloat(h[i]))) bad++;
      t.is(bad, 0, info.name);
    }
    const tok = await ck.readFloat32('tok_embeddings.weight');
    t.is(tok.length, ck.get('tok_embeddings.weight').numel);
    t.true(tok.some((x) => x !== 0));
  });
});

// Every dtype, views into shared storages, nested containers and non-tensor values.
function sampleTree() {
  const base = values(6 * 5, 1);
  const shared = storage('float32', base.length, base);
  const f16 = values(10, 2);
  f16.set([65504, -Infinity, NaN, 2 ** -24], 6); // largest half, -inf, NaN, smallest subnormal
  const bf16 = values(10, 3);
  const f64 = Float64Array.from(values(7, 4), (x) => x * Math.PI);
  const i64 = BigInt64Array.from([-(2n ** 40n), -1n, 0n, 7n, 2n ** 50n]);
  const i32 = Int32Array.from([-2147483648, -5, 0, 5, 2147483647]);
  const i16 = Int16Array.from([-32768, -1, 0, 1, 32767]);
  const i8 = Int8Array.from([-128, -1, 0, 1, 127]);
  const u8 = Uint8Array.from([0, 1, 128, 255]);
  const b = Uint8Array.from([1, 0, 0, 1]);
  const tree = {
    model: ordered({
      'w.f32': view(shared, [6, 5]),
      'w.t': view(shared, [5, 6], [1, 5]), // transposed: .t() of w.f32
      'w.slice': view(shared, [2, 3], [5, 2], 7), // as_strided(w.f32, (2, 3), (5, 2), 7)
      'w.col': view(shared, [6], [5], 4), // w.f32[:, 4]
      'w.expand': view(shared, [3, 5], [0, 1], 10), // row 2 broadcast 3x
      'w.scalar': view(shared, [], [], 29),
      'w.empty': view(shared, [0, 5]),
      'h.f16': tensor('float16', [2, 5], Uint16Array.from(f16, f32ToF16)),
      'h.bf16': tensor('bfloat16', [10], Uint16Array.from(bf16, f32ToBf16), { parameter: true, requiresGrad: true }),
      'd.f64': tensor('float64', [7], f64),
      'i.i64': tensor('int64', [5], i64),
      'i.i32': tensor('int32', [5], i32),
      'i.i16': tensor('int16', [5], i16),
      'i.i8': tensor('int8', [5], i8),
      'i.u8': tensor('uint8', [4], u8),
      'i.bool': tensor('bool', [2, 2], b),
      'i64.t': view(storage('int64', 6, BigInt64Array.from([1n, 2n, 3n, -4n, 5n, -(2n ** 33n)])), [3, 2], [1, 3]),
    }),
    nested: { deeper: { x: tensor('float32', [3], Float32Array.from([1, 2, 3])) }, list: [tensor('float32', [1], Float32Array.from([9])), 'text'] },
    epoch: 12,
    big: 2n ** 40n,
    lr: 0.25,
    name: 'run',
    flag: true,
    none: null,
    pair: tuple([1, 2]),
  };
  const w = Array.from({ length: 6 }, (_, i) => Array.from(base.subarray(i * 5, i * 5 + 5)));
  const expected = {
    'model.w.f32': [...base],
    'model.w.t': Array.from({ length: 30 }, (_, k) => w[k % 6][Math.floor(k / 6)]),
    'model.w.slice': [7, 9, 11, 12, 14, 16].map((k) => base[k]), // storage offset 7, strides [5, 2]
    'model.w.col': w.map((r) => r[4]),
    'model.w.expand': [...w[2], ...w[2], ...w[2]],
    'model.w.scalar': [base[29]],
    'model.w.empty': [],
    'model.h.f16': Array.from(f16, (x) => halfToFloat(f32ToF16(x))),
    'model.h.bf16': Array.from(bf16, (x) => new Float32Array(new Uint32Array([f32ToBf16(x) << 16]).buffer)[0]),
    'model.d.f64': Array.from(f64, Math.fround),
    'model.i.i64': Array.from(i64, (x) => Math.fround(Number(x))),
    'model.i.i32': Array.from(i32, Math.fround),
    'model.i.i16': [...i16],
    'model.i.i8': [...i8],
    'model.i.u8': [...u8],
    'model.i.bool': [1, 0, 0, 1],
    'model.i64.t': [1, -4, 2, 5, 3, -(2 ** 33)], // element (i, j) = storage[i + 3j]
    'nested.deeper.x': [1, 2, 3],
    'nested.list.0': [9],
  };
  return { tree, expected };
}

for (const [label, options] of [
  ['protocol 2 (torch default)', {}],
  ['protocol 4', { protocol: 4 }],
  ['big-endian storages', { byteorder: 'big' }],
  ['no byteorder record (torch < 1.10)', { byteorder: null }],
  ['deflated storages', { compress: true }],
]) {
  test(`a checkpoint from torch-writer round-trips exactly: ${label}`, async (t) => {
    const file = path.join(tmpDir(), 'sample.pth');
    const { tree, expected } = sampleTree();
    await writeTorchCheckpoint(file, tree, options);
    await withCheckpoint(file, async (ck) => {
      t.is(ck.archiveName, 'sample');
      t.is(ck.byteOrder, options.byteorder === 'big' ? 'big' : 'little');
      t.deepEqual(ck.tensors().map((x) => x.name), Object.keys(expected));
      for (const [name, want] of Object.entries(expected)) {
        t.deepEqual(Array.from(await ck.readFloat32(name)), want, name);
      }
      const tr = ck.get('model.w.t');
      t.deepEqual([tr.dtype, tr.shape, tr.stride, tr.storageOffset, tr.storageKey], ['float32', [5, 6], [1, 5], 0, ck.get('model.w.f32').storageKey]);
      t.is(ck.get('model.h.bf16').dtype, 'bfloat16');
      t.deepEqual(ck.get('model.w.scalar').shape, []);
      t.is(ck.get('model.w.empty').numel, 0);
      // readRaw: row-major bytes in the tensor's own dtype, little-endian whatever the file's order.
      const raw64 = await ck.readRaw('model.i.i64');
      t.deepEqual(Array.from(new BigInt64Array(raw64.buffer, raw64.byteOffset, 5)), [-(2n ** 40n), -1n, 0n, 7n, 2n ** 50n]);
      const rawT = await ck.readRaw('model.i64.t');
      t.deepEqual(Array.from(new BigInt64Array(rawT.buffer, rawT.byteOffset, 6)), [1n, -4n, 2n, 5n, 3n, -(2n ** 33n)]);
      const rawH = await ck.readRaw('model.h.f16');
      t.is(rawH.byteLength, 20);
      // Non-tensor values stay in the root.
      t.is(ck.root.get('epoch'), 12);
      t.is(ck.root.get('big'), 2 ** 40);
      t.is(ck.root.get('lr'), 0.25);
      t.is(ck.root.get('name'), 'run');
      t.is(ck.root.get('flag'), true);
      t.is(ck.root.get('none'), null);
      t.deepEqual(ck.root.get('pair'), [1, 2]);
      t.is(ck.root.get('nested').get('list')[1], 'text');
      t.is(ck.root.get('model').get('w.t').name, 'model.w.t');
    });
  });
}

test.serial('reading one tensor reads only the bytes it spans, not the archive', async (t) => {
  const file = path.join(tmpDir(), 'spans.pth');
  const big = storage('float32', 1 << 20, () => chunks(1 << 20, 1 << 16, 5));
  await writeTorchCheckpoint(file, ordered({ big: view(big, [1024, 1024]), row: view(big, [1024], [1], 1000 * 1024), col: view(big, [4], [1024], 7), small: tensor('float16', [8], new Uint16Array(8)) }));
  t.true(fs.statSync(file).size > 4 << 20);
  const probe = await fs.promises.open(file, 'r');
  const proto = Object.getPrototypeOf(probe);
  await probe.close();
  const original = proto.read;
  let bytesRead = 0;
  proto.read = async function (...args) {
    const r = await original.apply(this, args);
    bytesRead += r.bytesRead;
    return r;
  };
  try {
    await withCheckpoint(file, async (ck) => {
      const measure = async (name) => {
        bytesRead = 0;
        const x = await ck.readFloat32(name);
        return [x, bytesRead];
      };
      const [small, n1] = await measure('small');
      t.is(small.length, 8);
      t.is(n1, 16);
      const [row, n2] = await measure('row');
      t.is(n2, 1024 * 4);
      t.is(row[3], chunkValue(1000 * 1024 + 3, 5));
      const [col, n3] = await measure('col');
      t.is(n3, (3 * 1024 + 1) * 4); // first to last element of the column
      t.deepEqual(Array.from(col), [0, 1, 2, 3].map((i) => chunkValue(7 + 1024 * i, 5)));
    });
  } finally {
    proto.read = original;
  }
});

// Deterministic streamed float32 data: element k = chunkValue(k, seed).
function chunkValue(k, seed) {
  return Math.fround(((k * 2654435761 + seed) % 1000003) / 1000003 - 0.5);
}
function* chunks(numel, per, seed) {
  for (let k = 0; k < numel; k += per) {
    const a = new Float32Array(Math.min(per, numel - k));
    for (let i = 0; i < a.length; i++) a[i] = chunkValue(k + i, seed);
    yield a;
  }
}

test('torch-writer streams storages from generators (large checkpoints never sit in memory)', async (t) => {
  const file = path.join(tmpDir(), 'streamed.pth');
  const numel = 24 << 20; // 96 MiB of float32
  await writeTorchCheckpoint(file, ordered({ 'layers.0.w': tensor('float32', [numel / 4096, 4096], () => chunks(numel, 1 << 18, 9)) }));
  t.true(fs.statSync(file).size > numel * 4);
  await withCheckpoint(file, async (ck) => {
    const w = await ck.readFloat32('layers.0.w');
    t.is(w.length, numel);
    let bad = 0;
    for (let k = 0; k < numel; k += 9973) if (w[k] !== chunkValue(k, 9)) bad++;
    t.is(bad, 0);
    t.is(w[numel - 1], chunkValue(numel - 1, 9));
  });
});

// ---------------------------------------------------------------------------------------------------
// Errors: each names the file and carries a code; the process stays up.

async function expectError(t, file, code, pattern) {
  const err = await t.throwsAsync(ibl.openTorchCheckpoint(file));
  t.is(err.code, code, err.message);
  t.true(err instanceof ibl.ImagebindError);
  t.true(err.message.includes(file), err.message);
  if (pattern) t.regex(err.message, pattern);
  return err;
}

test('errors: missing file, directory, PNG renamed .pth, empty file, bare pickle, legacy format', async (t) => {
  const dir = tmpDir();
  await expectError(t, path.join(dir, 'absent.pth'), 'ERR_FILE_NOT_FOUND', /no such file/);
  await expectError(t, dir, 'ERR_CHECKPOINT_INVALID', /not a regular file/);
  const png = path.join(dir, 'image.pth');
  fs.copyFileSync(path.join(fixtures, 'assets', 'depth_car.png'), png);
  await expectError(t, png, 'ERR_CHECKPOINT_INVALID', /not a zip archive.*89 50 4e 47/);
  const empty = path.join(dir, 'empty.pth');
  fs.writeFileSync(empty, '');
  await expectError(t, empty, 'ERR_CHECKPOINT_INVALID', /empty/);
  const bare = path.join(dir, 'bare.pth');
  fs.writeFileSync(bare, Buffer.from([0x80, 0x02, 0x7d, 0x2e]));
  await expectError(t, bare, 'ERR_CHECKPOINT_INVALID', /bare Python pickle/);
  // torch < 1.6: a pickled magic number (LONG1 0x1950a86a20f9469cfc6c), then the object and storages.
  const legacy = path.join(dir, 'legacy.pth');
  fs.writeFileSync(legacy, Buffer.concat([Buffer.from('80028a0a6cfc9c46f9206aa85019', 'hex'), Buffer.from('.\x80\x02M\xe9\x03.', 'latin1')]));
  await expectError(t, legacy, 'ERR_CHECKPOINT_LEGACY_FORMAT', /pre-1\.6.*torch\.save\(torch\.load\(/s);
});

test('errors: a zip without data.pkl, a missing storage entry, an unreadable pickle', async (t) => {
  const dir = tmpDir();
  const noPkl = path.join(dir, 'nopkl.pth');
  await writeTorchCheckpoint(noPkl, { a: tensor('float32', [2], new Float32Array(2)) }, { omit: ['data.pkl'] });
  await expectError(t, noPkl, 'ERR_CHECKPOINT_INVALID', /not a torch checkpoint: it has no <archive>\/data\.pkl/);
  const noData = path.join(dir, 'nodata.pth');
  await writeTorchCheckpoint(noData, ordered({ 'a.weight': tensor('float32', [2], new Float32Array(2)) }), { omit: ['data/0'] });
  await expectError(t, noData, 'ERR_CHECKPOINT_INVALID', /'a\.weight'.*nodata\/data\/0.*not in the archive/);
  const garbage = path.join(dir, 'garbage.pth');
  await writeTorchCheckpoint(garbage, {}, { pickle: Buffer.from([0x80, 0x02, 0x7d, 0x28, 0x58, 0xff]) });
  await expectError(t, garbage, 'ERR_CHECKPOINT_INVALID', /data\.pkl is not a readable pickle/);
});

test('errors: truncated archives (cut short, bytes cut from the middle, a short storage entry)', async (t) => {
  const dir = tmpDir();
  const full = fs.readFileSync(path.join(tinyA, 'imagebind.pth'));
  const half = path.join(dir, 'half.pth');
  fs.writeFileSync(half, full.subarray(0, full.length >> 1));
  await expectError(t, half, 'ERR_CHECKPOINT_TRUNCATED', /zip directory.*missing/);
  const cut = path.join(dir, 'cut.pth');
  fs.writeFileSync(cut, Buffer.concat([full.subarray(0, full.length >> 1), full.subarray((full.length >> 1) + 4096)]));
  await expectError(t, cut, 'ERR_CHECKPOINT_TRUNCATED');
  const tail = path.join(dir, 'tail.pth');
  fs.writeFileSync(tail, full.subarray(0, full.length - 7));
  await expectError(t, tail, 'ERR_CHECKPOINT_TRUNCATED');
  const short = path.join(dir, 'short.pth');
  await writeTorchCheckpoint(short, ordered({ ok: tensor('float32', [2], new Float32Array(2)), 'layers.3.w': tensor('float32', [4, 4], new Float32Array(10), { allowShort: true }) }));
  await expectError(t, short, 'ERR_CHECKPOINT_TRUNCATED', /tensor 'layers\.3\.w' needs 64 bytes.*holds only 40/);
});

test('errors: a pickle calling a forbidden global is refused by name and nothing runs', async (t) => {
  const dir = tmpDir();
  const marker = path.join(dir, 'executed');
  for (const [protocol, mod, name] of [
    [2, 'os', 'system'],
    [4, 'builtins', 'eval'],
    [2, 'torch', 'ComplexFloatStorage'],
  ]) {
    const file = path.join(dir, `${mod}-${name}-p${protocol}.pth`);
    await writeTorchCheckpoint(file, { model: ordered({ w: tensor('float32', [1], new Float32Array(1)) }), evil: pyCall(mod, name, [`touch ${marker}`]) }, { protocol });
    await expectError(t, file, 'ERR_CHECKPOINT_UNSUPPORTED', new RegExp(`'${mod}\\.${name}'.*refused`));
  }
  t.false(fs.existsSync(marker));
});

test('errors on a good checkpoint: unknown tensor name, use after close; the process carries on', async (t) => {
  const ck = await ibl.openTorchCheckpoint(path.join(tinyA, 'adapter.pth'));
  const e1 = await t.throwsAsync(ck.readFloat32('model.nope'));
  t.is(e1.code, 'ERR_TENSOR_NOT_FOUND');
  t.regex(e1.message, /adapter\.pth.*'model\.nope'/);
  const info = ck.get('model.image_bind_proj.bias');
  await ck.close();
  await ck.close();
  const e2 = await t.throwsAsync(ck.readFloat32(info));
  t.is(e2.code, 'ERR_CHECKPOINT_CLOSED');
  await withCheckpoint(path.join(tinyA, 'adapter.pth'), async (again) => {
    t.is((await again.readFloat32(info)).length, adapterConfig.llama_dim);
  });
});
