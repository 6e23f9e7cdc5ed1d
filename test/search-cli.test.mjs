// `imagebind-llm index` and `search` as a user runs them: a run killed with SIGKILL (or stopped with
// Ctrl-C) in the middle of indexing resumes with no duplicate and no lost row; JSON output; usage errors.
import test from 'ava';
import fs from 'node:fs';
import path from 'node:path';
import { execFile, spawn } from 'node:child_process';
import { createRequire } from 'node:module';
import { setTimeout as sleep } from 'node:timers/promises';
import { cliPath, tmpDir } from './helpers/paths.mjs';
import { assetFolder, bmp, tinyEncoder } from './helpers/media-index.mjs';

const require = createRequire(import.meta.url);
const Database = require('better-sqlite3');
const sqliteVec = require('sqlite-vec');

const N = 120;
let encoder;

test.before(async () => {
  encoder = await tinyEncoder('f32');
});

/** N distinct small images (distinct content: nothing is reused from a twin). */
function imageFolder() {
  const dir = tmpDir('ibl-cli-media-');
  for (let i = 0; i < N; i++) fs.writeFileSync(path.join(dir, `img-${String(i).padStart(3, '0')}.bmp`), bmp(64, 48, i + 1));
  return dir;
}

/** Rows in the index, read by another connection while the writer may still run. */
function counts(db) {
  const c = new Database(db, { readonly: true, fileMustExist: true });
  try {
    sqliteVec.load(c);
    return {
      items: c.prepare('SELECT count(*) FROM ibl_items').pluck().get(),
      paths: c.prepare('SELECT count(DISTINCT path) FROM ibl_items').pluck().get(),
      vectors: c.prepare('SELECT count(*) FROM ibl_vectors').pluck().get(),
      orphans: c.prepare('SELECT count(*) FROM ibl_vectors WHERE rowid NOT IN (SELECT id FROM ibl_items)').pluck().get(),
      integrity: c.pragma('integrity_check', { simple: true }),
    };
  } finally {
    c.close();
  }
}

async function waitForRows(db, child) {
  for (let i = 0; i < 3000; i++) {
    if (child.exitCode !== null) throw new Error(`the index run ended before it could be interrupted (exit ${child.exitCode})`);
    try {
      if (counts(db).items > 0) return;
    } catch {
      // not created yet, or the schema is being written
    }
    await sleep(10);
  }
  throw new Error('no batch was committed');
}

// Asynchronous: a synchronous spawn would stall the other tests of this file (they poll and signal).
const cli = (args) => new Promise((resolve) => {
  execFile(process.execPath, [cliPath, ...args], { encoding: 'utf8' }, (err, stdout, stderr) => resolve({ status: err ? err.code : 0, stdout, stderr }));
});
const indexArgs = (dir, db, extra = []) => ['index', dir, '--db', db, '--encoder', encoder, '--threads', '1', ...extra];

for (const signal of ['SIGKILL', 'SIGINT']) {
  test(`${signal} in the middle of indexing, then a second run: no duplicate, no lost row`, async (t) => {
    const dir = imageFolder();
    const db = path.join(tmpDir('ibl-cli-db-'), 'media.sqlite');
    const child = spawn(process.execPath, [cliPath, ...indexArgs(dir, db, ['--batch', '2'])], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d) => { stderr += d; });
    const exited = new Promise((resolve) => child.on('exit', (code, sig) => resolve({ code, sig })));
    await waitForRows(db, child);
    child.kill(signal);
    const end = await exited;
    if (signal === 'SIGKILL') t.is(end.sig, 'SIGKILL');
    else t.is(end.code, 130, stderr);
    const before = counts(db);
    t.true(before.items > 0 && before.items < N, `stopped in the middle: ${before.items} of ${N}`);
    t.like(before, { integrity: 'ok', paths: before.items, vectors: before.items, orphans: 0 });

    const r = await cli([...indexArgs(dir, db), '--json']);
    t.is(r.status, 0, r.stderr);
    const summary = JSON.parse(r.stdout);
    t.like(summary, { files: N, unchanged: before.items, embedded: N - before.items, reused: 0, failed: [] });
    t.like(counts(db), { items: N, paths: N, vectors: N, orphans: 0, integrity: 'ok' });
  });
}

test('search prints JSON lines; the summary counts; failures go to stderr', async (t) => {
  const dir = assetFolder({ 'dog.jpg': 'dog_image.jpg', 'car.png': 'car_image.png', 'bird.wav': 'bird_audio_16k.wav' });
  fs.writeFileSync(path.join(dir, 'broken.jpg'), 'not a jpeg');
  const db = path.join(tmpDir('ibl-cli-db-'), 'media.sqlite');
  const r = await cli(indexArgs(dir, db));
  t.is(r.status, 0, r.stderr);
  t.regex(r.stdout, /3 media files: 3 embedded, 0 reused from identical content, 0 unchanged, 0 removed, 1 skipped/);
  t.regex(r.stderr, new RegExp(`skipped ${path.join(dir, 'broken.jpg').replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: not an image`));
  const s = await cli(['search', '--db', db, '--encoder', encoder, '--threads', '1', '--text', 'a dog', '--audio', path.join(dir, 'bird.wav'),
    '--weight', 'text=2', '--k', '2', '--kinds', 'image,audio', '--json']);
  t.is(s.status, 0, s.stderr);
  const lines = s.stdout.trim().split('\n').map((l) => JSON.parse(l));
  t.is(lines.length, 2);
  t.deepEqual(lines.map((l) => l.rank), [1, 2]);
  t.true(lines[0].score >= lines[1].score);
  for (const l of lines) t.true(fs.existsSync(l.path) && ['image', 'audio'].includes(l.kind));
  const plain = await cli(['search', '--db', db, '--encoder', encoder, '--threads', '1', '--image', path.join(dir, 'dog.jpg'), '--k', '1']);
  t.regex(plain.stdout, new RegExp(`^\\s+1\\.0000  image    ${path.join(dir, 'dog.jpg')}\\n$`));
});

test('usage errors exit 2 with one line; a missing index or another encoder exit 1', async (t) => {
  const cases = [
    [['search', '--db', 'x.sqlite', '--encoder', 'e.gguf'], /give a query/],
    [['search', '--text', 'a', '--k', '0'], /--k <n>.*between 1 and 4096/],
    [['search', '--text', 'a', '--weight', 'smell=1'], /unknown input kind 'smell'/],
    [['index', '.', '--kinds', 'image,nope'], /'nope' is not one/],
    [['index', '.', '--batch', '1e3'], /--batch <n>.*integer/],
    [['index', '.'], /--encoder <gguf> is required/],
    [['index'], /missing required argument/],
  ];
  for (const [args, re] of cases) {
    const r = await cli(args);
    t.is(r.status, 2, `${args.join(' ')}: ${r.stderr}`);
    t.regex(r.stderr, re);
    t.is(r.stderr.trim().split('\n').length, 1);
  }
  const missing = await cli(['search', '--db', path.join(tmpDir(), 'none.sqlite'), '--encoder', encoder, '--text', 'a']);
  t.is(missing.status, 1);
  t.regex(missing.stderr, /no such media index/);

  const dir = assetFolder({ 'dog.jpg': 'dog_image.jpg' });
  const db = path.join(dir, 'media.sqlite');
  t.is((await cli(indexArgs(dir, db))).status, 0);
  const other = await tinyEncoder('f16');
  const refused = await cli(['index', dir, '--db', db, '--encoder', other, '--threads', '1']);
  t.is(refused.status, 1);
  t.regex(refused.stderr, /built with another encoder.*--reembed/);
  const re = await cli(['index', dir, '--db', db, '--encoder', other, '--threads', '1', '--reembed', '--json']);
  t.is(re.status, 0, re.stderr);
  t.like(JSON.parse(re.stdout), { embedded: 1 });
});
