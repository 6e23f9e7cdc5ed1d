// Media index (ts/search): recognition, walking, incremental indexing, exact search, encoder identity.
// The tiny-a encoder has random weights, so rankings mean nothing: the tests check exactness against a
// brute-force search and the bookkeeping, not semantics.
import test from 'ava';
import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';
import { tmpDir } from './helpers/paths.mjs';
import { assets } from './helpers/fixtures.mjs';
import { ASSET_SET, assetFolder, cosine, ibl, tinyEncoder } from './helpers/media-index.mjs';

const require = createRequire(import.meta.url);
const Database = require('better-sqlite3');

const KINDS = {
  'dog.jpg': 'image', 'car.png': 'image', 'bird.wav': 'audio', 'car.ply': 'point', 'walk.npy': 'imu',
  'clips/short.mp4': 'video', 'maps/depth.png': 'depth',
};
const MEDIA = Object.keys(KINDS).length;
let encoderFile, encoderF16, enc;

test.before(async () => {
  encoderFile = await tinyEncoder('f32');
  encoderF16 = await tinyEncoder('f16');
  enc = await ibl.loadEncoder(encoderFile, { threads: 1 });
});

test.after.always(() => enc?.dispose());

const dbIn = (dir) => path.join(dir, 'index.sqlite');
const head = (file, n = 512) => fs.readFileSync(file).subarray(0, n);

test('files are recognised by content, then by extension', (t) => {
  const kind = (name, src) => ibl.recogniseMedia(name, head(path.join(assets, src)))?.kind;
  t.is(kind('a.jpg', 'dog_image.jpg'), 'image');
  t.is(kind('a.jpg', 'dog_image.png'), 'image', 'a PNG named .jpg is still an image');
  t.is(kind('a.bin', 'car_audio.wav'), 'audio', 'a WAV with any name is audio');
  t.is(kind('a.mp4', 'photos_5s.mp4'), 'video');
  t.is(kind('a.png', 'depth_car.png'), 'depth', '16-bit grayscale PNG');
  t.is(kind('a.png', 'thermal_dog.png'), 'image', '8-bit grayscale is an image: thermal maps cannot be told apart');
  t.is(kind('a.ply', 'car.ply'), 'point');
  t.is(kind('a.xyz', 'car.xyz'), 'point');
  t.is(kind('a.npy', 'car.npy'), 'point', '(8192, 3) array');
  t.is(kind('a.npy', 'imu_walk.npy'), 'imu', '(6, 2000) array');
  t.is(ibl.recogniseMedia('a.npy', head(path.join(assets, 'car_audio_16k.npy'))), null, '(1, 80000) is no kind we index');
  t.is(ibl.recogniseMedia('assets.json', head(path.join(assets, 'assets.json'))), null);
  const bad = ibl.recogniseMedia('broken.jpg', Buffer.from('hello, not a picture'));
  t.is(bad.kind, null);
  t.regex(bad.problem, /not an image/);
  t.regex(ibl.recogniseMedia('empty.mp4', Buffer.alloc(0)).problem, /empty/);
});

test('index, re-index unchanged, then copies, renames, edits and deletions', async (t) => {
  const dir = assetFolder();
  const db = dbIn(tmpDir('ibl-db-'));
  const idx = await ibl.MediaIndex.open(db, { encoder: enc });
  t.teardown(() => idx.close());
  const progress = [];
  const first = await idx.add(dir, { batchSize: 3, onProgress: (p) => progress.push(p) });
  t.like(first, { files: MEDIA, embedded: MEDIA, reused: 0, unchanged: 0, removed: 0, failed: [] });
  t.deepEqual(progress.map((p) => p.done), [3, 6, 8], 'one report per committed batch (8 files walked, notes.txt included)');
  const stats = await idx.stats();
  t.is(stats.items, MEDIA);
  t.deepEqual(stats.byKind, { image: 2, audio: 1, point: 1, imu: 1, video: 1, depth: 1 });
  t.is(stats.encoder.dim, enc.info().outDim);

  t.like(await idx.add(dir), { files: MEDIA, embedded: 0, reused: 0, unchanged: MEDIA, removed: 0 }, 'nothing changed, nothing embedded');

  // copy, rename, edit, delete, and a touch that changes the mtime but not the content
  fs.mkdirSync(path.join(dir, 'sub'));
  fs.copyFileSync(path.join(dir, 'dog.jpg'), path.join(dir, 'sub', 'dog-copy.jpg'));
  fs.renameSync(path.join(dir, 'car.png'), path.join(dir, 'renamed.png'));
  fs.copyFileSync(path.join(assets, 'car_audio_16k.wav'), path.join(dir, 'bird.wav'));
  fs.rmSync(path.join(dir, 'car.ply'));
  const later = new Date(Date.now() + 5000);
  fs.utimesSync(path.join(dir, 'walk.npy'), later, later);

  const noPrune = await idx.add(dir);
  t.like(noPrune, { files: MEDIA, embedded: 1, reused: 2, unchanged: MEDIA - 3, removed: 0 });
  const paths = async () => (await idx.search(new Float32Array(enc.info().outDim).fill(1), { k: 100 })).map((h) => path.relative(dir, h.path)).sort();
  t.true((await paths()).includes('car.ply'), 'without --prune a deleted file stays');
  t.like(await idx.add(dir, { prune: true }), { embedded: 0, unchanged: MEDIA, removed: 2 });
  t.deepEqual(await paths(), ['bird.wav', 'clips/short.mp4', 'dog.jpg', 'maps/depth.png', 'renamed.png', 'sub/dog-copy.jpg', 'walk.npy']);

  // The edited file holds the new content's embedding; the copy holds the original's.
  const [edited, dog] = await enc.embed([{ kind: 'audio', path: path.join(dir, 'bird.wav') }, { kind: 'image', path: path.join(dir, 'dog.jpg') }]);
  const top = await idx.search(edited.embedding, { k: 1 });
  t.is(top[0].path, path.join(dir, 'bird.wav'));
  t.true(top[0].score > 0.99999);
  const dogs = await idx.search(dog.embedding, { k: 2, kinds: ['image'] });
  t.deepEqual(dogs.map((h) => path.relative(dir, h.path)).sort(), ['dog.jpg', 'sub/dog-copy.jpg']);
  t.true(dogs.every((h) => h.score > 0.99999));
  t.is(dogs[0].hash, dogs[1].hash);

  t.is(await idx.remove(path.join(dir, 'sub')), 1, 'remove() takes folders');
  t.is(await idx.remove([path.join(dir, 'dog.jpg'), path.join(dir, 'nope.jpg')]), 1);
  t.is((await idx.stats()).items, MEDIA - 2);
});

test('a corrupt file is reported and skipped; the rest is indexed', async (t) => {
  const dir = assetFolder({ 'dog.jpg': 'dog_image.jpg', 'bird.wav': 'bird_audio_16k.wav' });
  fs.writeFileSync(path.join(dir, 'truncated.jpg'), fs.readFileSync(path.join(assets, 'dog_image.jpg')).subarray(0, 3000));
  fs.writeFileSync(path.join(dir, 'text.png'), 'this is not a PNG');
  fs.writeFileSync(path.join(dir, 'cloud.ply'), 'ply\nformat ascii 1.0\nelement vertex 5\nproperty float x\nend_header\n1\n');
  const idx = await ibl.MediaIndex.open(dbIn(dir), { encoder: enc });
  t.teardown(() => idx.close());
  const reported = [];
  const res = await idx.add(dir, { onFileError: (f, e) => reported.push([path.basename(f), e.code, e.message]) });
  t.is(res.embedded, 2);
  t.deepEqual(res.failed.map((f) => path.basename(f.path)).sort(), ['cloud.ply', 'text.png', 'truncated.jpg']);
  t.deepEqual(reported.map((r) => r[0]).sort(), ['cloud.ply', 'text.png', 'truncated.jpg']);
  for (const [name, code, message] of reported) {
    t.true(message.includes(path.join(dir, name)), `the message names the file: ${message}`);
    t.regex(code, /^ERR_/);
  }
  t.regex(reported.find((r) => r[0] === 'truncated.jpg')[2], /truncated|JPEG/i);
  t.is((await idx.stats()).items, 2);
  // A file that turns bad loses its stale row.
  fs.writeFileSync(path.join(dir, 'dog.jpg'), fs.readFileSync(path.join(assets, 'dog_image.jpg')).subarray(0, 3000));
  const again = await idx.add(dir);
  t.is(again.removed, 1);
  t.is((await idx.stats()).items, 1);
});

test('search returns the exact top k of a brute-force scan, with weights and kind filters', async (t) => {
  const dir = assetFolder();
  const idx = await ibl.MediaIndex.open(dbIn(dir), { encoder: enc });
  t.teardown(() => idx.close());
  await idx.add(dir, { batchSize: 4 });
  const names = Object.keys(KINDS);
  const stored = await enc.embed(names.map((n) => ({ kind: KINDS[n], path: path.join(dir, n) })));
  const query = [
    { kind: 'text', text: 'a dog barking' },
    { kind: 'image', path: path.join(assets, 'bird_image.jpg'), weight: 0.3 },
    { kind: 'audio', path: path.join(assets, 'dog_audio.wav') },
  ];
  const weights = { audio: 2 };
  const q = await enc.embed(query.map(({ weight, ...i }) => i));
  const mix = new Float64Array(q[0].embedding.length);
  q.forEach((e, i) => e.embedding.forEach((x, j) => { mix[j] += (query[i].weight ?? weights[query[i].kind] ?? 1) * x; }));

  const check = async (k, kinds) => {
    const exact = names.map((n, i) => ({ path: path.join(dir, n), kind: KINDS[n], score: cosine(mix, stored[i].embedding) }))
      .filter((e) => !kinds || kinds.includes(e.kind)).sort((a, b) => b.score - a.score);
    const got = await idx.search(query, { k, kinds, weights });
    t.is(got.length, Math.min(k, exact.length));
    const byPath = new Map(exact.map((e) => [e.path, e]));
    got.forEach((g, i) => {
      t.true(Math.abs(g.score - exact[i].score) < 1e-5, `rank ${i}: ${g.score} vs exact ${exact[i].score}`);
      t.true(Math.abs(g.score - byPath.get(g.path).score) < 1e-5, `${g.path} scores ${g.score}, exactly ${byPath.get(g.path).score}`);
      t.is(g.kind, byPath.get(g.path).kind);
    });
    t.is(new Set(got.map((g) => g.path)).size, got.length);
  };
  await check(3);
  await check(20);
  await check(2, ['image', 'video']);
  await check(1, ['audio']);

  // A text query alone is a string.
  const [text] = await enc.embed([{ kind: 'text', text: 'a red car' }]);
  const s = await idx.search('a red car', { k: 1 });
  t.is(s[0].score.toFixed(5), Math.max(...stored.map((e) => cosine(text.embedding, e.embedding))).toFixed(5));
});

test('readers search while one writer indexes', async (t) => {
  const dir = assetFolder();
  const db = dbIn(tmpDir('ibl-db-'));
  const writer = await ibl.MediaIndex.open(db, { encoder: enc });
  const reader = await ibl.MediaIndex.open(db, { encoder: enc });
  t.teardown(async () => { await writer.close(); await reader.close(); });
  const seen = [];
  let searching = Promise.resolve();
  await writer.add(dir, {
    batchSize: 2,
    onProgress: (p) => {
      if (p.done < p.total) searching = searching.then(async () => seen.push((await reader.search('anything', { k: 50 })).length));
    },
  });
  await searching;
  t.true(seen.length >= 2);
  t.true(seen.every((n) => n >= 2 && n <= MEDIA), `the reader saw committed batches: ${seen}`);
  t.is((await reader.search('anything', { k: 50 })).length, MEDIA);
});

test('an index built with another encoder is refused unless re-embedded', async (t) => {
  const dir = assetFolder({ 'dog.jpg': 'dog_image.jpg', 'bird.wav': 'bird_audio_16k.wav' });
  const db = dbIn(dir);
  const a = await ibl.MediaIndex.open(db, { encoder: enc });
  await a.add(dir);
  await a.close();
  const err = await t.throwsAsync(ibl.MediaIndex.open(db, { encoder: encoderF16, threads: 1 }));
  t.is(err.code, 'ERR_INDEX_ENCODER');
  t.true(err.message.includes(db));
  t.regex(err.message, /--reembed/);
  const b = await ibl.MediaIndex.open(db, { encoder: encoderF16, threads: 1, reembed: true });
  t.teardown(() => b.close());
  t.is((await b.stats()).items, 0, 're-embedding starts from an empty index');
  t.like(await b.add(dir), { embedded: 2 });
  t.not(b.encoder.identity, (await ibl.encoderIdentity(encoderFile)));
  t.is(b.encoder.identity, await ibl.encoderIdentity(encoderF16));
});

test('bad databases, arguments and states are refused with codes', async (t) => {
  const dir = tmpDir('ibl-db-');
  const notDb = path.join(dir, 'x.sqlite');
  fs.writeFileSync(notDb, 'definitely not sqlite '.repeat(100));
  t.like(await t.throwsAsync(ibl.MediaIndex.open(notDb, { encoder: enc })), { code: 'ERR_INDEX_INVALID' });
  t.is(fs.readFileSync(notDb, 'utf8').slice(0, 10), 'definitely', 'left as it was');
  const other = path.join(dir, 'other.sqlite');
  const raw = new Database(other);
  raw.exec('CREATE TABLE notes(x)');
  raw.close();
  t.like(await t.throwsAsync(ibl.MediaIndex.open(other, { encoder: enc })), { code: 'ERR_INDEX_INVALID' });
  t.like(await t.throwsAsync(ibl.MediaIndex.open(path.join(dir, 'missing.sqlite'), { encoder: enc, create: false })), { code: 'ERR_FILE_NOT_FOUND' });

  const idx = await ibl.MediaIndex.open(path.join(dir, 'ok.sqlite'), { encoder: enc });
  t.like(await t.throwsAsync(idx.search('x', { k: 0 })), { code: 'ERR_INVALID_ARG' });
  t.like(await t.throwsAsync(idx.search('x', { k: 5000 })), { code: 'ERR_INVALID_ARG' });
  t.like(await t.throwsAsync(idx.search('x', { kinds: ['smell'] })), { code: 'ERR_INVALID_ARG' });
  t.like(await t.throwsAsync(idx.search(new Float32Array(3))), { code: 'ERR_INVALID_ARG' });
  t.like(await t.throwsAsync(idx.search([{ kind: 'text', text: 'a', weight: 0 }])), { code: 'ERR_INVALID_ARG' });
  t.like(await t.throwsAsync(idx.search([{ kind: 'text', text: 'a', weight: NaN }])), { code: 'ERR_INVALID_ARG' });
  t.like(await t.throwsAsync(idx.add(path.join(dir, 'no-such-folder'))), { code: 'ERR_FILE_NOT_FOUND' });
  const ac = new AbortController();
  ac.abort();
  t.like(await t.throwsAsync(idx.add(assets, { signal: ac.signal })), { code: 'ABORT_ERR' });
  await idx.close();
  await idx.close();
  t.like(await t.throwsAsync(idx.search('x')), { code: 'ERR_INDEX_CLOSED' });
});

test('an abort stops indexing after whole batches; the next run resumes', async (t) => {
  const dir = assetFolder();
  const idx = await ibl.MediaIndex.open(dbIn(tmpDir('ibl-db-')), { encoder: enc });
  t.teardown(() => idx.close());
  const ac = new AbortController();
  const calls = [];
  const err = await t.throwsAsync(idx.add(dir, { batchSize: 2, signal: ac.signal, onProgress: (p) => { calls.push(p.done); ac.abort(); } }));
  t.is(err.code, 'ABORT_ERR');
  t.deepEqual(calls, [2], 'no progress after the abort');
  t.is((await idx.stats()).items, 2, 'the committed batch stays');
  t.like(await idx.add(dir), { unchanged: 2, embedded: MEDIA - 2 });
});

test('the walk follows links without looping and lists a file once', async (t) => {
  const dir = assetFolder({ 'a/dog.jpg': 'dog_image.jpg' });
  fs.symlinkSync(dir, path.join(dir, 'a', 'loop'));
  fs.symlinkSync(path.join(dir, 'a', 'dog.jpg'), path.join(dir, 'dog-link.jpg'));
  fs.symlinkSync(path.join(dir, 'gone.jpg'), path.join(dir, 'dangling.jpg'));
  const files = await ibl.walkMedia([dir]);
  t.deepEqual(files.map((f) => path.relative(dir, f.path)), ['a/dog.jpg']);
});
