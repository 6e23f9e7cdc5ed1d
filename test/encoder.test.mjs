// ImageBind converter and encoders against the upstream fixtures (tiny-a), at every precision we ship.
import test from 'ava';
import fs from 'node:fs';
import path from 'node:path';
import { execFileSync, spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { cliPath, libIndex, root, tmpDir } from './helpers/paths.mjs';
import { MEDIA_SOURCES, assets, assertClose, caseByName, fixturePath, imageToClip, manifest, readNpy, tinyA } from './helpers/fixtures.mjs';

const require = createRequire(import.meta.url);
const ibl = require(libIndex);
const coreTests = path.join(root, 'build', 'native', process.platform === 'win32' ? 'ibl-core-tests.exe' : 'ibl-core-tests');
const checkpoint = path.join(tinyA, 'imagebind.pth');
const config = path.join(tinyA, 'imagebind.config.json');
const dir = tmpDir('ibl-encoder-');
const gguf = {};

// Tolerances per precision (fixtures README §2 for f32; the for f16 / q8_0; bf16: cosine 0.999 to
// f32, which holds with the activations rounded to bf16 too, as the AVX512-BF16 kernels do).
const TOL = { f32: 'f32', f16: { cosine: 0.9999 }, bf16: { cosine: 0.999 }, q8_0: { cosine: 0.999 } };
const TYPES = Object.keys(TOL);

test.before(async () => {
  for (const type of TYPES) {
    gguf[type] = path.join(dir, `tiny-a-${type}.gguf`);
    await ibl.convertImagebind(checkpoint, gguf[type], { type, config });
  }
});

test('converter: metadata, tensor names/types and the embedded BPE vocabulary', async (t) => {
  const cfg = JSON.parse(fs.readFileSync(config, 'utf8'));
  for (const type of TYPES) {
    const g = await ibl.inspectGguf(gguf[type]);
    t.is(g.metadata['general.architecture'], 'imagebind');
    t.is(g.metadata['general.file_type'], type);
    t.deepEqual(g.metadata['imagebind.modalities'], ['vision', 'text', 'audio', 'depth', 'thermal', 'imu', 'point']);
    t.is(g.metadata['imagebind.out_embed_dim'], cfg.out_embed_dim);
    t.is(g.metadata['imagebind.text.bpe_merges'].length, 48894);
    t.is(g.metadata['imagebind.text.bpe_merges'][0], 'i n');
    t.deepEqual(g.metadata['imagebind.audio.stride'], [cfg.audio.stride, cfg.audio.stride]);
    t.deepEqual(g.metadata['imagebind.vision.kernel_size'], cfg.vision.kernel_size);
    for (const m of ['vision', 'text', 'audio', 'depth', 'thermal', 'imu']) {
      t.is(g.metadata[`imagebind.${m}.head_count`], cfg[m].num_heads, `${m} heads`);
      t.is(g.metadata[`imagebind.${m}.block_count`], cfg[m].num_blocks, `${m} blocks`);
    }
    t.true(Math.abs(g.metadata['imagebind.text.logit_scale'] - cfg.logit_scale_exp_before_clip.text) < 1e-4);
    t.is(g.metadata['imagebind.audio.logit_scale'], 20);
    const byName = Object.fromEntries(g.tensors.map((x) => [x.name, x]));
    // Vectors (norms, biases, positions, CLS) stay f32 at every precision.
    for (const n of ['v.pos', 'v.cls', 'v.blk.0.ln1.weight', 'a.blk.1.attn_bias_k', 't.pos', 'pt.cls_pos']) t.is(byName[n].type, 'f32', n);
    const want = (rowLen) => (type === 'q8_0' && rowLen % 32 !== 0 ? 'f16' : type);
    t.is(byName['v.blk.0.attn_qkv.weight'].type, want(64));
    t.is(byName['a.blk.0.attn_qkv.weight'].type, want(48));  // audio width 48: q8_0 falls back to f16
    t.deepEqual(byName['v.patch.weight'].shape, [3 * 2 * 14 * 14, 64]);
    t.deepEqual(byName['pt.proj'].shape, [64, 40]);
  }
});

// The C++ core fed the fixtures' preprocessed input tensors (inputs/*.npy), every case, every precision.
for (const type of TYPES) {
  test(`encoders from the input tensors match the expected embeddings at ${type}`, (t) => {
    const env = {
      ...process.env,
      IBL_ENCODER_GGUF: gguf[type],
      IBL_ENCODER_COS: String(type === 'f32' ? 0.99999 : TOL[type].cosine),
      IBL_ENCODER_REL: type === 'f32' ? '1e-4' : '1e9',
    };
    const r = spawnSync(coreTests, [path.resolve(tinyA, '..'), 'encoder'], { env, encoding: 'utf8' });
    t.log(r.stdout.split('\n').filter((l) => /embedding/.test(l)).map((l) => l.replace(/^ok +/, '')).join('\n'));
    t.regex(r.stdout, /^\d+ passed, 0 failed$/m, r.stdout + r.stderr);
    t.is(r.status, 0);
    // Every imagebind case was compared (head output and embedding).
    t.is((r.stdout.match(/^ok .*: embedding/gm) ?? []).length, manifest.imagebind_cases.length);
  });
}

test('the same cases through the JS API with raw tensors: head output and embedding at f32', async (t) => {
  const enc = await ibl.loadEncoder(gguf.f32, { threads: 1 });
  t.teardown(() => enc.dispose());
  for (const name of ['vision_dog_image', 'depth_car', 'imu_walk', 'audio_car_audio']) {
    const c = caseByName(name);
    const input = readNpy(fixturePath(c.input));
    let data = input.data;
    if (c.modality === 'vision') data = imageToClip(input.data, input.shape);
    const [r] = await enc.embed([{ kind: 'tensor', modality: c.modality, tensor: { data, shape: [data.length] } }], { raw: true });
    assertClose(t, r.raw, readNpy(fixturePath(c.expected_prenorm)).data, 'f32', `${name} head output`);
    assertClose(t, r.scaled, readNpy(fixturePath(c.expected)).data, 'f32', `${name} embedding`);
    let n = 0;
    for (const x of r.embedding) n += x * x;
    t.true(Math.abs(Math.sqrt(n) - 1) < 1e-5, 'unit length');
  }
});

for (const mmap of [true, false]) {
  test(`each trunk is loaded at its first use, and only that trunk (${mmap ? 'mapped' : 'read'})`, async (t) => {
    const enc = await ibl.loadEncoder(gguf.f16, { threads: 1, mmap });
    t.teardown(() => enc.dispose());
    const loaded = () => Object.entries(enc.info().modalities).filter(([, m]) => m.loaded).map(([k]) => k).sort();
    t.deepEqual(loaded(), []);
    const [text] = await enc.embed([{ kind: 'text', text: 'a dog' }]);
    t.deepEqual(loaded(), ['text']);
    const [image] = await enc.embed([{ kind: 'image', path: path.join(assets, 'dog_image.png') }], { raw: true });
    t.deepEqual(loaded(), ['text', 'vision']);
    const [again] = await enc.embed([{ kind: 'text', text: 'a dog' }]);
    t.deepEqual(Array.from(again.embedding), Array.from(text.embedding));
    assertClose(t, image.scaled, readNpy(fixturePath(caseByName('vision_dog_image').expected)).data, TOL.f16, 'dog_image.png');
  });
}

// End to end from the encoded source files (JPEG, 44.1 kHz WAV, both MP4s, PLY, PNGs, npy): MEDIA_SOURCES.
const SOURCES = MEDIA_SOURCES;

for (const type of TYPES) {
  test(`end to end from the source files at ${type}`, async (t) => {
    const enc = await ibl.loadEncoder(gguf[type], { threads: 1 });
    t.teardown(() => enc.dispose());
    const res = await enc.embed(SOURCES.map(([kind, file]) => ({ kind, path: path.join(assets, file) })), { raw: true });
    const lines = [];
    res.forEach((r, i) => {
      const [kind, file, name] = SOURCES[i];
      t.is(r.kind, kind);
      t.is(r.input, path.join(assets, file));
      const c = assertClose(t, r.scaled, readNpy(fixturePath(caseByName(name).expected)).data,
        type === 'f32' ? 'decoder' : TOL[type], `${file} (${type})`);
      lines.push(`${file}: cosine ${c.cosine.toFixed(7)}, max diff ${c.relDiff.toExponential(2)} of max`);
    });
    t.is(res.find((r) => r.input.endsWith('photos_5s.mp4')).clips, 15);
    t.is(res.find((r) => r.input.endsWith('short_1p2s.mp4')).clips, 15);
    t.is(res.find((r) => r.input.endsWith('dog_audio.wav')).clips, 3);
    t.log(lines.join('\n'));
  });
}

test('text through the CLIP tokenizer: every fixture string, both truncation modes', async (t) => {
  const c = caseByName('text');
  const enc = await ibl.loadEncoder(gguf.f32, { threads: 1 });
  t.teardown(() => enc.dispose());
  const exp = readNpy(fixturePath(c.expected)).data;
  const D = exp.length / c.strings.length;
  // The fixtures use ImageBind-LLM's truncation (a long text loses its end token).
  const res = await enc.embed(c.strings.map((s) => ({ kind: 'text', text: s.text })), { raw: true, truncation: 'imagebind-llm' });
  res.forEach((r, i) => assertClose(t, r.scaled, exp.subarray(i * D, (i + 1) * D), 'f32', `text ${i}`));
  // The default keeps the end token, so the long string pools elsewhere and embeds differently.
  const long = c.strings.findIndex((s) => s.truncated);
  t.true(long >= 0);
  const [dflt] = await enc.embed([{ kind: 'text', text: c.strings[long].text }]);
  t.true(ibl.cosineSimilarity(dflt.embedding, res[long].embedding) < 0.99);
  const short = await enc.embed([{ kind: 'text', text: c.strings[0].text }]);
  assertClose(t, short[0].embedding, res[0].embedding, 'f32', 'short texts do not depend on the mode');
});

test('buffers work like paths, and one call batches inputs of several modalities', async (t) => {
  const enc = await ibl.loadEncoder(gguf.f32, { threads: 1 });
  t.teardown(() => enc.dispose());
  const [a, b, c] = await enc.embed([
    { kind: 'image', path: path.join(assets, 'car_image.png') },
    { kind: 'image', data: fs.readFileSync(path.join(assets, 'car_image.png')), name: 'car.png' },
    { kind: 'point', data: fs.readFileSync(path.join(assets, 'airplane.xyz')), format: 'xyz' },
  ]);
  // Equal up to rounding: in one batch the blocked GEMM (patch 0003) takes a batch's last <= 4 token rows
  // by dot products, which sum in another order than the register tiles of the other rows.
  assertClose(t, b.embedding, a.embedding, { rel: 1e-5, cosine: 0.9999999 }, 'the buffer against the path');
  t.is(b.input, 'car.png');
  assertClose(t, c.embedding, readNpy(fixturePath(caseByName('point_airplane').expected)).data, 'f32', 'airplane.xyz');
});

test('bad inputs are clear JS errors naming the file, and the process stays alive', async (t) => {
  const enc = await ibl.loadEncoder(gguf.f32, { threads: 1 });
  t.teardown(() => enc.dispose());
  const bad = tmpDir('ibl-bad-');
  const f = (name, bytes) => { const p = path.join(bad, name); fs.writeFileSync(p, bytes); return p; };
  const jpeg = fs.readFileSync(path.join(assets, 'dog_image.jpg'));
  // A PNG header (signature + IHDR) that claims 30000 × 30000 pixels.
  const png = Buffer.alloc(33);
  Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]).copy(png, 0);
  png.writeUInt32BE(13, 8); png.write('IHDR', 12, 'latin1'); png.writeUInt32BE(30000, 16); png.writeUInt32BE(30000, 20);
  png[24] = 8; png[25] = 2;
  // A WAV header with no samples.
  const wav = Buffer.alloc(44);
  wav.write('RIFF', 0, 'latin1'); wav.writeUInt32LE(36, 4); wav.write('WAVE', 8, 'latin1'); wav.write('fmt ', 12, 'latin1');
  wav.writeUInt32LE(16, 16); wav.writeUInt16LE(1, 20); wav.writeUInt16LE(1, 22); wav.writeUInt32LE(16000, 24);
  wav.writeUInt32LE(32000, 28); wav.writeUInt16LE(2, 32); wav.writeUInt16LE(16, 34); wav.write('data', 36, 'latin1'); wav.writeUInt32LE(0, 40);
  const cases = [
    [{ kind: 'image', path: f('corrupt.jpg', jpeg.subarray(0, 2000)) }, 'ERR_IMAGE_DECODE', 'corrupt.jpg'],
    [{ kind: 'image', path: f('huge.png', png) }, 'ERR_IMAGE_TOO_LARGE', 'huge.png'],
    [{ kind: 'image', path: f('empty.jpg', '') }, 'ERR_IMAGE_DECODE', 'empty.jpg'],
    [{ kind: 'audio', path: f('empty.wav', wav) }, 'ERR_AUDIO_EMPTY', 'empty.wav'],
    [{ kind: 'audio', path: f('zero.mp3', '') }, 'ERR_MEDIA_DECODE', 'zero.mp3'],
    [{ kind: 'video', path: path.join(assets, 'dog_audio.wav') }, 'ERR_NO_VIDEO_STREAM', 'dog_audio.wav'],
    [{ kind: 'video', path: f('zero.mp4', '') }, 'ERR_MEDIA_DECODE', 'zero.mp4'],
    [{ kind: 'point', path: f('few.xyz', '0 0 0\n1 1 1\n2 2 2\n') }, 'ERR_POINTS_TOO_FEW', 'few.xyz'],
    [{ kind: 'point', path: f('zero.ply', '') }, 'ERR_POINTS_EMPTY', 'zero.ply'],
    [{ kind: 'imu', path: path.join(tinyA, 'inputs', 'depth_car.npy') }, 'ERR_INPUT_SHAPE', 'depth_car.npy'],
    [{ kind: 'image', path: path.join(bad, 'missing.jpg') }, 'ERR_FILE_NOT_FOUND', 'missing.jpg'],
  ];
  for (const [input, code, name] of cases) {
    const err = await t.throwsAsync(enc.embed([input]), undefined, `${name} should fail`);
    t.is(err.code, code, `${name}: ${err.message}`);
    t.true(err.message.includes(name), `${name}: ${err.message}`);
  }
  // Still working afterwards.
  const [ok] = await enc.embed([{ kind: 'image', path: path.join(assets, 'dog_image.png') }]);
  t.is(ok.embedding.length, 32);
});

test('the wrong model files are refused with the reason', async (t) => {
  const bad = tmpDir('ibl-model-');
  const llm = path.join(bad, 'llm.gguf');
  await ibl.writeGguf(llm, { metadata: [{ key: 'general.architecture', type: 'string', value: 'llama' }] });
  const e1 = await t.throwsAsync(ibl.loadEncoder(llm));
  t.is(e1.code, 'ERR_MODEL_WRONG_TYPE');
  t.regex(e1.message, /llm\.gguf: not an ImageBind encoder: general.architecture is 'llama'/);
  const e2 = await t.throwsAsync(ibl.loadEncoder(checkpoint));
  t.is(e2.code, 'ERR_GGUF_INVALID');
  t.true(e2.message.includes('imagebind.pth'));
  // A GGUF with a tensor removed: named in the error.
  const g = await ibl.inspectGguf(gguf.f32);
  const bytes = fs.readFileSync(gguf.f32);
  const keep = g.tensors.filter((x) => x.name !== 'a.blk.1.ffn_up.weight');
  const meta = Object.entries(g.metadata).map(([key, value]) => {
    const ty = g.metadataTypes[key];
    return ty.startsWith('array<') ? { key, type: 'array', elemType: ty.slice(6, -1), value } : { key, type: ty, value };
  });
  const cut = path.join(bad, 'missing-tensor.gguf');
  await ibl.writeGguf(cut, { metadata: meta, tensors: keep.map((x) => ({ name: x.name, type: x.type, shape: x.shape, data: new Uint8Array(bytes.subarray(x.offset, x.offset + x.size)) })) });
  const e3 = await t.throwsAsync(ibl.loadEncoder(cut));
  t.is(e3.code, 'ERR_MODEL_INVALID');
  t.regex(e3.message, /missing tensor 'a\.blk\.1\.ffn_up\.weight'/);
  const e4 = await t.throwsAsync(ibl.loadEncoder(path.join(bad, 'nope.gguf')));
  t.is(e4.code, 'ERR_FILE_NOT_FOUND');
});

test('converter errors: not a checkpoint, truncated, missing tensors, bad config', async (t) => {
  const bad = tmpDir('ibl-conv-');
  const out = path.join(bad, 'out.gguf');
  const e1 = await t.throwsAsync(ibl.convertImagebind(path.join(assets, 'dog_image.jpg'), out));
  t.is(e1.code, 'ERR_CHECKPOINT_INVALID');
  const full = fs.readFileSync(checkpoint);
  const cut = path.join(bad, 'cut.pth');
  fs.writeFileSync(cut, full.subarray(0, Math.floor(full.length * 0.6)));
  const e2 = await t.throwsAsync(ibl.convertImagebind(cut, out, { config }));
  t.true(['ERR_CHECKPOINT_TRUNCATED', 'ERR_CHECKPOINT_INVALID'].includes(e2.code), e2.message);
  t.true(e2.message.includes('cut.pth'));
  t.false(fs.existsSync(out), 'no output left behind');
  // A checkpoint that lacks one tensor: the error names it.
  const { writeTorchCheckpoint, ordered, tensor } = await import('../scripts/lib/torch-writer.mjs');
  const { openTorchCheckpoint } = ibl;
  const ck = await openTorchCheckpoint(checkpoint);
  const entries = new Map();
  for (const info of ck.tensors()) {
    if (info.name === 'modality_trunks.audio.blocks.1.mlp.fc2.weight') continue;
    const data = await ck.readFloat32(info);
    entries.set(info.name, tensor('float32', info.shape, data));
  }
  await ck.close();
  const missing = path.join(bad, 'missing.pth');
  await writeTorchCheckpoint(missing, ordered(entries));
  const e3 = await t.throwsAsync(ibl.convertImagebind(missing, out, { config }));
  t.is(e3.code, 'ERR_CHECKPOINT_MISSING_TENSOR');
  t.regex(e3.message, /missing tensor 'modality_trunks\.audio\.blocks\.1\.mlp\.fc2\.weight'/);
  const wrongCfg = path.join(bad, 'cfg.json');
  fs.writeFileSync(wrongCfg, JSON.stringify({ ...JSON.parse(fs.readFileSync(config, 'utf8')), vision: { num_heads: 4, embed_dim: 128 } }));
  const e4 = await t.throwsAsync(ibl.convertImagebind(checkpoint, out, { config: wrongCfg }));
  t.is(e4.code, 'ERR_CONFIG_INVALID');
  t.regex(e4.message, /vision\.embed_dim = 128, but the checkpoint's tensors give 64/);
});

test('embedding runs off the event loop and honours AbortSignal', async (t) => {
  const enc = await ibl.loadEncoder(gguf.f32, { threads: 1 });
  t.teardown(() => enc.dispose());
  let ticks = 0;
  const timer = setInterval(() => ticks++, 2);
  const inputs = Array.from({ length: 6 }, () => ({ kind: 'video', path: path.join(assets, 'photos_5s.mp4') }));
  const progress = [];
  await enc.embed(inputs, { maxBatch: 5, onProgress: (d, n) => progress.push([d, n]) });
  clearInterval(timer);
  t.true(ticks >= 5, `the event loop ran ${ticks} timer callbacks during embedding`);
  t.true(progress.length >= 2, 'progress reported');
  t.deepEqual(progress.at(-1), [90, 90]);

  const ac = new AbortController();
  ac.abort();
  const e1 = await t.throwsAsync(enc.embed([{ kind: 'image', path: path.join(assets, 'dog_image.png') }], { signal: ac.signal }));
  t.is(e1.code, 'ABORT_ERR');
  const ac2 = new AbortController();
  const p = enc.embed(inputs, { signal: ac2.signal, maxBatch: 3 });
  setTimeout(() => ac2.abort(), 300);
  const e2 = await t.throwsAsync(p);
  t.is(e2.code, 'ABORT_ERR');
  const [after] = await enc.embed([{ kind: 'image', path: path.join(assets, 'dog_image.png') }]);
  t.is(after.embedding.length, 32, 'usable after an abort');
});

test('dispose frees the model; later calls are clear errors', async (t) => {
  const enc = await ibl.loadEncoder(gguf.q8_0);
  t.is(enc.info().fileType, 'q8_0');
  enc.dispose();
  t.true(enc.disposed);
  const err = await t.throwsAsync(enc.embed([{ kind: 'text', text: 'x' }]));
  t.is(err.code, 'ERR_DISPOSED');
  enc.dispose();  // idempotent
});

test('CLI: embed --json keeps the order of mixed flags; similarity; model; convert', (t) => {
  const run = (...args) => execFileSync(process.execPath, [cliPath, ...args], { encoding: 'utf8' });
  const out = JSON.parse(run('embed', '--encoder', gguf.f32, '--point', path.join(assets, 'airplane.npy'),
    '--image', path.join(assets, 'dog_image.png'), '--depth', path.join(assets, 'depth_car.png'),
    '--image', path.join(assets, 'car_image.png'), '--json'));
  t.deepEqual(out.map((o) => [o.kind, path.basename(o.input)]), [['point', 'airplane.npy'], ['image', 'dog_image.png'], ['depth', 'depth_car.png'], ['image', 'car_image.png']]);
  t.deepEqual(out.map((o) => o.modality), ['point', 'vision', 'depth', 'vision']);
  assertClose(t, out[1].embedding, (() => { const e = readNpy(fixturePath(caseByName('vision_dog_image').expected)).data; const n = Math.hypot(...e); return e.map((x) => x / n); })(), 'f32', 'CLI dog');
  const sim = JSON.parse(run('similarity', '--encoder', gguf.f32, '--image', path.join(assets, 'dog_image.png'), '--image', path.join(assets, 'dog_image.jpg'), '--json'));
  t.is(sim.similarity.length, 2);
  t.true(sim.similarity[0][1] > 0.999 && sim.similarity[0][1] <= 1.0000001);
  const model = JSON.parse(run('model', gguf.f16, '--json'));
  t.is(model.fileType, 'f16');
  t.deepEqual(Object.keys(model.modalities), ['vision', 'text', 'audio', 'depth', 'thermal', 'imu', 'point']);
  const conv = JSON.parse(run('convert', 'imagebind', checkpoint, '--config', config, '-o', path.join(dir, 'cli.gguf'), '--type', 'q8_0', '--json'));
  t.is(conv.tensors, 249);
  const err = t.throws(() => execFileSync(process.execPath, [cliPath, 'embed', '--encoder', gguf.f32, '--image', path.join(dir, 'nope.jpg')], { encoding: 'utf8', stdio: 'pipe' }));
  t.is(err.status, 1);
  t.regex(err.stderr, /nope\.jpg: file not found/);
});
