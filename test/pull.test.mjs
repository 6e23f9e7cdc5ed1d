// `pull` against a loopback stand-in for the hub (test/helpers/hub-server.mjs) that serves the
// fixtures' tiny files under the real repository paths, with HF_ENDPOINT pointing at it:
// - pull then ask, end to end through the CLI, answers as the fixtures say (the delta served is zero,
//   so Open-Chinese-LLaMA here is the tiny LLaMA itself);
// - an interrupted download (a cut connection, Ctrl-C, a killed process) resumes without fetching
//   again what it had; cut and stalled connections are retried; a server without ranges works;
// - 401, 403, 404, a wrong sha256, a full disk and a second pull into the same folder are clear errors
//   that leave the folder as it was;
// - the model folder: what ask/chat/embed and loadLlm/loadEncoder take from it, and a damaged manifest.
import test from 'ava';
import fs from 'node:fs';
import path from 'node:path';
import { execFile, spawn } from 'node:child_process';
import net from 'node:net';
import { createRequire } from 'node:module';
import { cliPath, libIndex, root, tmpDir } from './helpers/paths.mjs';
import { fixturePath, manifest, tinyA } from './helpers/fixtures.mjs';
import { readMetaTensors, writeMetaLlama } from './helpers/hf-llama.mjs';
import { sha256, startHub } from './helpers/hub-server.mjs';

const require = createRequire(import.meta.url);
const ibl = require(libIndex);
const { checkKnown } = require(path.join(root, 'lib', 'pull', 'index.js'));
const { checkFreeSpace } = require(path.join(root, 'lib', 'pull', 'downloads.js'));

const dir = tmpDir('ibl-pull-');
test.after.always(() => fs.rmSync(dir, { recursive: true, force: true }));

const llamaDir = path.join(tinyA, 'llama');
const encoderConfig = path.join(tinyA, 'imagebind.config.json');
const image = path.join(tinyA, '..', 'assets', 'dog_image.png');
const imageCase = manifest.llm_cases.find((c) => c.name === 'image');
const greedy = JSON.parse(fs.readFileSync(fixturePath(imageCase.expected.greedy), 'utf8'));
const W3D = { repo: 'ZiyuG/ImageBind_w3D', revision: 'e9206a10f118b0790c730264e7b3aa5c324c35cb', path: 'imagebind_w3D.pth' };

/** The released files as the hub lists them, with the fixtures' tiny contents; a zero delta. */
let released;
test.serial.before(async () => {
  const zero = new Map([...(await readMetaTensors(llamaDir))].map(([n, t]) => [n, { ...t, bits: new Uint16Array(t.bits.length) }]));
  const deltaDir = await writeMetaLlama(path.join(dir, 'zero-delta'), zero, JSON.parse(fs.readFileSync(path.join(llamaDir, 'params.json'), 'utf8')));
  const read = (f) => fs.readFileSync(f);
  released = [
    { ...W3D, data: read(path.join(tinyA, 'imagebind.pth')) },
    { repo: 'Cxxs/ImageBind-LLM', revision: 'main', path: '7B.pth', data: read(path.join(tinyA, 'adapter.pth')) },
    { repo: 'csuhan/knn', revision: 'main', path: 'knn.index', data: read(path.join(tinyA, 'knn.index')) },
    { repo: 'Cxxs/Open-Chinese-LLaMA', revision: 'main', path: '7B_chinese_delta/consolidated.00.pth', data: read(path.join(deltaDir, 'consolidated.00.pth')) },
    { repo: 'Cxxs/Open-Chinese-LLaMA', revision: 'main', path: '7B_chinese_delta/params.json', data: read(path.join(deltaDir, 'params.json')) },
  ];
});

/** A hub of its own for one test; `edit(path) → options` sets per-file behaviour. */
function hubWith(edit = () => ({})) {
  return startHub(released.map((f) => ({ ...f, ...edit(f.path) })));
}

/** Runs the CLI; resolves { code, stdout, stderr }. */
function cli(args, env = {}) {
  return new Promise((resolve) => {
    execFile(process.execPath, [cliPath, ...args], { encoding: 'utf8', env: { ...process.env, IMAGEBIND_LLM_MODELS: path.join(dir, 'unused-default'), ...env } }, (err, stdout, stderr) => {
      resolve({ code: err ? (err.code ?? 1) : 0, stdout, stderr });
    });
  });
}

const tiny = { encoderConfig, encoderType: 'f32', cacheType: 'f32', type: 'f32', bindType: 'f32', retryDelayMs: 10 };
const pullFlags = ['--type', 'f32', '--encoder-type', 'f32', '--bind-type', 'f32', '--cache-type', 'f32', '--encoder-config', encoderConfig];
const sizeOf = (p) => released.find((f) => f.path === p).data.length;

// --- 1. pull, then ask -------------------------------------------------------------------------

let pulled; // the folder the CLI pull fills, shared by the tests that only read it
test.serial.before(async () => {
  const hub = await hubWith();
  const models = path.join(dir, 'models');
  const r = await cli(['pull', '--llama', llamaDir, '--models', models, ...pullFlags, '--connections', '3', '--json'], { HF_ENDPOINT: hub.endpoint });
  const again = await cli(['pull', '--llama', llamaDir, '--models', models, ...pullFlags, '--json'], { HF_ENDPOINT: hub.endpoint });
  pulled = { hub, models, r, again, firstRequests: hub.log.length };
  await hub.close();
});

test('pull → ask: from an empty folder to the fixtures\' answers, through the CLI', async (t) => {
  const { r, models } = pulled;
  t.is(r.code, 0, r.stderr);
  const res = JSON.parse(r.stdout);
  t.deepEqual(res.built, ['cache', 'encoder', 'llm']);
  t.is(res.fetchedBytes, released.reduce((a, f) => a + f.data.length, 0), 'every byte fetched once');
  t.false(fs.existsSync(path.join(models, 'downloads')), 'downloads deleted once converted');
  const m = JSON.parse(fs.readFileSync(path.join(models, 'manifest.json'), 'utf8'));
  t.deepEqual(Object.keys(m.files).sort(), ['bind', 'cache', 'encoder', 'llm']);
  for (const [role, e] of Object.entries(m.files)) {
    t.is(e.sha256, sha256(fs.readFileSync(path.join(models, e.file))), `${role}: recorded sha256`);
    for (const s of e.sources) t.is(s.sha256, sha256(released.find((f) => f.path === s.path).data), `${role}: source ${s.path}`);
  }
  t.is(m.files.llm.sources.length, 3, 'adapter, delta, delta params');
  t.regex(m.files.llm.file, /^imagebind-llm-7B-chinese-f32-llm\.gguf$/);

  // The folder gives the whole set: with the cache by default, without it on --no-knn.
  const ask = (extra, env) => cli(['ask', '--image', image, '--temperature', '0', '--max-tokens', '12', '--threads', '1', ...extra, imageCase.instruction], env);
  let a = await ask(['--models', models, '--json']);
  t.is(a.code, 0, a.stderr);
  t.deepEqual(JSON.parse(a.stdout).tokens, greedy.knn.tokens, 'cache-enhanced answer');
  a = await ask(['--no-knn'], { IMAGEBIND_LLM_MODELS: models });
  t.is(a.code, 0, a.stderr);
  t.is(a.stdout.trim(), greedy.no_knn.text.trim(), 'IMAGEBIND_LLM_MODELS names the folder');
  const e = await cli(['embed', '--models', models, '--image', image, '--json', '--threads', '1']);
  t.is(e.code, 0, e.stderr);
  const withFile = await cli(['embed', '--encoder', path.join(models, m.files.encoder.file), '--image', image, '--json', '--threads', '1']);
  t.deepEqual(JSON.parse(e.stdout)[0].embedding, JSON.parse(withFile.stdout)[0].embedding);
});

test('pull again: everything is up to date, nothing is fetched', (t) => {
  const { again } = pulled;
  t.is(again.code, 0, again.stderr);
  const res = JSON.parse(again.stdout);
  t.deepEqual(res.built, []);
  t.deepEqual(res.kept, ['cache', 'encoder', 'llm']);
  t.is(res.fetchedBytes, 0);
  t.false(pulled.hub.log.slice(pulled.firstRequests).some((e) => e.method === 'GET'), 'only paths-info was asked');
});

test('the API: loadLlm({ models }) and loadEncoder({ models }) use the folder', async (t) => {
  const enc = await ibl.loadEncoder({ models: pulled.models, threads: 1 });
  t.is(enc.path, path.join(pulled.models, JSON.parse(fs.readFileSync(path.join(pulled.models, 'manifest.json'), 'utf8')).files.encoder.file));
  enc.dispose();
  const llm = await ibl.loadLlm({ models: pulled.models, threads: 1 });
  try {
    const res = await llm.ask(imageCase.instruction, { inputs: [{ kind: 'image', path: image }], temperature: 0, maxTokens: 12, cache: false });
    t.deepEqual(res.tokens, greedy.no_knn.tokens);
  } finally {
    llm.dispose();
  }
  const set = ibl.resolveModels({ models: pulled.models });
  t.is(set.from, 'option');
  t.truthy(set.encoder && set.llm && set.bind && set.cache);
});

test('an empty model folder: usage errors that say to pull, and ERR_MODELS_MISSING in the API', async (t) => {
  const empty = path.join(dir, 'empty-models');
  let r = await cli(['ask', '--models', empty, 'hi']);
  t.is(r.code, 2);
  t.regex(r.stderr, /--model and --bind are required: the model folder .*empty-models has no LLM \(run `imagebind-llm pull --llama/);
  r = await cli(['embed', '--image', image], { IMAGEBIND_LLM_MODELS: empty });
  t.is(r.code, 2);
  t.regex(r.stderr, /--encoder <gguf> is required: the model folder .*empty-models has no encoder/);
  r = await cli(['ask', '--model', 'x.gguf', 'hi']);
  t.is(r.code, 2);
  t.regex(r.stderr, /--model needs --bind/);
  let e = await t.throwsAsync(() => ibl.loadLlm({ models: empty }));
  t.is(e.code, 'ERR_MODELS_MISSING');
  e = await t.throwsAsync(() => ibl.loadEncoder({ models: empty }));
  t.is(e.code, 'ERR_MODELS_MISSING');
});

test('a damaged model folder is an error naming the file, never a file used blindly', (t) => {
  const copy = path.join(dir, 'damaged');
  fs.cpSync(pulled.models, copy, { recursive: true });
  const mf = path.join(copy, 'manifest.json');
  const m = JSON.parse(fs.readFileSync(mf, 'utf8'));
  fs.appendFileSync(path.join(copy, m.files.cache.file), 'x');
  let e = t.throws(() => ibl.resolveModels({ models: copy }));
  t.is(e.code, 'ERR_MODELS_INVALID');
  t.regex(e.message, /knn-cache-f32\.gguf: \d+ bytes, but .*manifest\.json says \d+: changed since it was pulled/);
  fs.writeFileSync(mf, JSON.stringify({ ...m, files: { ...m.files, llm: { ...m.files.llm, file: '../../etc/passwd' } } }));
  e = t.throws(() => ibl.resolveModels({ models: copy }));
  t.regex(e.message, /files\.llm\.file is "\.\.\/\.\.\/etc\/passwd", expected a file name in the folder/);
  fs.writeFileSync(mf, '{"format": "imagebind-llm-models", ');
  e = t.throws(() => ibl.resolveModels({ models: copy }));
  t.regex(e.message, /manifest\.json: not valid JSON/);
});

test('which folder: the option, else IMAGEBIND_LLM_MODELS, else the user cache folder', (t) => {
  const saved = { m: process.env.IMAGEBIND_LLM_MODELS, x: process.env.XDG_CACHE_HOME };
  try {
    process.env.IMAGEBIND_LLM_MODELS = path.join(dir, 'from-env');
    t.deepEqual(ibl.modelsDir('rel'), { dir: path.resolve('rel'), from: 'option' });
    t.deepEqual(ibl.modelsDir(), { dir: path.join(dir, 'from-env'), from: 'env' });
    delete process.env.IMAGEBIND_LLM_MODELS;
    process.env.XDG_CACHE_HOME = path.join(dir, 'xdg');
    if (process.platform !== 'darwin' && process.platform !== 'win32') t.is(ibl.defaultModelsDir(), path.join(dir, 'xdg', 'imagebind-llm', 'models'));
    t.is(ibl.modelsDir().from, 'default');
    t.deepEqual(ibl.resolveModels().entries, {}, 'no manifest: no files');
  } finally {
    for (const [k, v] of [['IMAGEBIND_LLM_MODELS', saved.m], ['XDG_CACHE_HOME', saved.x]]) {
      if (v === undefined) delete process.env[k]; else process.env[k] = v;
    }
  }
});

// --- 2. interrupted downloads --------------------------------------------------------------------

/** Byte ranges [start, end) the state file records as present. */
function doneRanges(models, file) {
  const s = JSON.parse(fs.readFileSync(path.join(models, 'downloads', '.partial', `${sha256(file.data)}.json`), 'utf8'));
  return s.done.map((d, i) => [i * s.segment, i * s.segment + d]).filter(([a, b]) => b > a);
}

const overlaps = (a, b) => a.some(([s1, e1]) => b.some(([s2, e2]) => s1 < e2 && s2 < e1));

test('a cut connection: the error says to run again, and the next run fetches only the missing bytes', async (t) => {
  const w3d = released.find((f) => f.path === W3D.path);
  const hub = await hubWith((p) => (p === W3D.path ? { cutAt: Math.floor(w3d.data.length * 0.4) + 123 } : {}));
  const models = path.join(dir, 'cut');
  const o = { ...tiny, models, endpoint: hub.endpoint, knn: false, connections: 3, segmentBytes: 256 * 1024 };
  try {
    const e = await t.throwsAsync(() => ibl.pull({ ...o, retries: 0 }));
    t.is(e.code, 'ERR_PULL_CONNECTION', e.message);
    t.regex(e.message, /ZiyuG\/ImageBind_w3D\/imagebind_w3D\.pth@e9206a10f118: the connection (closed after \d+ of \d+ bytes|broke \(.*\)); \d+ of \d+ bytes are kept: run pull again to continue/);
    t.false(fs.existsSync(path.join(models, 'manifest.json')), 'nothing installed');
    t.false(fs.existsSync(path.join(models, 'downloads', 'ZiyuG--ImageBind_w3D')), 'no file under its final name');
    const had = doneRanges(models, w3d);
    const kept = had.reduce((a, [s, e2]) => a + e2 - s, 0);
    t.true(kept > 0);
    const before = hub.log.length;
    const res = await ibl.pull(o);
    t.deepEqual(res.built, ['encoder']);
    t.is(res.reusedBytes, kept);
    t.is(res.fetchedBytes, w3d.data.length - kept);
    const second = hub.log.slice(before).filter((x) => x.file === W3D.path && x.sent > 0).map((x) => [x.start, x.start + x.sent]);
    t.true(second.length > 0);
    t.false(overlaps(second, had), 'no byte fetched twice');
    t.truthy(res.models.encoder);
  } finally {
    await hub.close();
  }
});

test('cut and stalled connections are retried within one run; a server without ranges works on one', async (t) => {
  const w3d = sizeOf(W3D.path);
  const hub = await hubWith((p) => (p === W3D.path ? { cutAt: 1_000_000, cuts: 2 } : p === 'knn.index' ? { stallAt: 4000 } : {}));
  try {
    const res = await ibl.pull({ ...tiny, models: path.join(dir, 'retry'), endpoint: hub.endpoint, stallMs: 1000, connections: 2, segmentBytes: 1 << 20 });
    t.deepEqual(res.built, ['cache', 'encoder']);
    t.is(res.fetchedBytes, w3d + sizeOf('knn.index'));
    // The retries asked for the rest of the segment, from where each connection stopped.
    t.true(hub.log.some((e) => e.file === W3D.path && e.start > 0 && e.start % (1 << 20) !== 0), 'a cut resumed mid-segment');
    // The stalled request was given up and asked again from the bytes it had (all 4000 of them, unless
    // a loaded machine let the stall timer fire first).
    const k = hub.log.filter((e) => e.file === 'knn.index');
    t.true(k.length >= 2 && k.at(-1).start <= 4000, 'a stall was retried');
  } finally {
    await hub.close();
  }
  const plain = await hubWith(() => ({ noRanges: true }));
  try {
    const res = await ibl.pull({ ...tiny, models: path.join(dir, 'no-ranges'), endpoint: plain.endpoint, connections: 4, segmentBytes: 64 * 1024 });
    t.deepEqual(res.built, ['cache', 'encoder']);
    t.is(plain.log.filter((e) => e.file === W3D.path).length, 1, 'one connection, the whole file');
  } finally {
    await plain.close();
  }
});

/** Starts a CLI pull and resolves once `ready()` says so; returns the child. */
async function pullUntil(args, env, ready) {
  const child = spawn(process.execPath, [cliPath, 'pull', ...args], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d) => { stderr += d; });
  const exited = new Promise((resolve) => child.on('exit', (code, signal) => resolve({ code, signal, stderr })));
  for (let i = 0; i < 600 && !ready(); i++) await new Promise((r) => setTimeout(r, 50));
  return { child, exited };
}

for (const [how, sig] of [['Ctrl-C', 'SIGINT'], ['a killed process', 'SIGKILL']]) {
  test(`after ${how}, the next run continues the download`, async (t) => {
    const w3d = released.find((f) => f.path === W3D.path);
    const hub = await hubWith((p) => (p === W3D.path ? { delayMs: 15 } : {}));
    const models = path.join(dir, `interrupt-${sig}`);
    const state = path.join(models, 'downloads', '.partial', `${sha256(w3d.data)}.json`);
    const served = () => hub.log.filter((e) => e.file === W3D.path).reduce((a, e) => a + e.sent, 0);
    try {
      const args = ['--models', models, '--no-knn', ...pullFlags];
      const env = { HF_ENDPOINT: hub.endpoint };
      // Ctrl-C: once some bytes came; a kill: once the state file records some (it is written every second).
      const ready = sig === 'SIGINT' ? () => served() > 2_000_000 : () => fs.existsSync(state) && doneRanges(models, w3d).length > 0;
      const { child, exited } = await pullUntil(args, env, ready);
      child.kill(sig);
      const end = await exited;
      if (sig === 'SIGINT') t.is(end.code, 130, end.stderr);
      else t.is(end.signal, 'SIGKILL');
      const kept = doneRanges(models, w3d).reduce((a, [s, e]) => a + e - s, 0);
      t.true(kept > 0, 'the partial download and its state are kept');
      t.false(fs.existsSync(path.join(models, 'manifest.json')));
      hub.set(W3D.path, { delayMs: 0 });
      // The folder's lock of a killed pull goes stale; a new pull takes it.
      const r = await cli(['pull', ...args, '--json'], env);
      t.is(r.code, 0, r.stderr);
      const res = JSON.parse(r.stdout);
      t.is(res.reusedBytes, kept);
      t.is(res.fetchedBytes, w3d.data.length - kept);
    } finally {
      await hub.close();
    }
  });
}

// --- 3. errors -------------------------------------------------------------------------------------

async function pullError(t, edit, o, code, re) {
  const hub = await hubWith(edit);
  const models = path.join(dir, `err-${Math.random().toString(36).slice(2)}`);
  try {
    const e = await t.throwsAsync(() => ibl.pull({ ...tiny, models, endpoint: hub.endpoint, ...o }));
    t.is(e.code, code, e.message);
    t.regex(e.message, re);
    t.false(fs.existsSync(path.join(models, 'manifest.json')), 'nothing installed');
    return { hub, models };
  } finally {
    await hub.close();
  }
}

test('401: a token is needed, or the one given is refused; the right one works', async (t) => {
  const knn = (p) => (p === 'knn.index' ? { token: 'sekrit' } : {});
  await pullError(t, knn, {}, 'ERR_PULL_UNAUTHORIZED', /csuhan\/knn.*the hub wants a login \(401 at .*\): the repository is private or gated.*set HF_TOKEN/);
  await pullError(t, knn, { token: 'wrong' }, 'ERR_PULL_UNAUTHORIZED', /refused the token in HF_TOKEN/);
  const hub = await hubWith(knn);
  try {
    const res = await ibl.pull({ ...tiny, models: path.join(dir, 'token'), endpoint: hub.endpoint, token: 'sekrit' });
    t.deepEqual(res.built, ['cache', 'encoder']);
    t.true(hub.log.filter((e) => e.path.includes('csuhan/knn')).every((e) => e.auth === 'Bearer sekrit'));
  } finally {
    await hub.close();
  }
});

test('403 (gated) and 404 (no such file, repository or revision)', async (t) => {
  await pullError(t, (p) => (p === 'knn.index' ? { forbidden: true } : {}), {}, 'ERR_PULL_FORBIDDEN', /access denied \(403.*accept its terms at http:\/\/127\.0\.0\.1:\d+\/csuhan\/knn/);
  await pullError(t, (p) => (p === 'knn.index' ? { missing: 'all' } : {}), {}, 'ERR_PULL_NOT_FOUND', /csuhan\/knn\/knn\.index: not in the repository/);
  await pullError(t, (p) => (p === 'knn.index' ? { missing: 'get' } : {}), {}, 'ERR_PULL_NOT_FOUND', /csuhan\/knn\/knn\.index: not found at .* \(404 at http:\/\/127\.0\.0\.1:\d+\/csuhan\/knn\/resolve\/main\/knn\.index\)/);
  await pullError(t, (p) => (p === '7B.pth' ? { repo: 'someone/else' } : {}), { llama: llamaDir }, 'ERR_PULL_NOT_FOUND', /Cxxs\/ImageBind-LLM.*404/);
});

test('a wrong sha256: the download is removed and the folder keeps its old files', async (t) => {
  const hub = await hubWith();
  const models = path.join(dir, 'sha');
  try {
    await ibl.pull({ ...tiny, models, endpoint: hub.endpoint });
    const before = fs.readFileSync(path.join(models, 'manifest.json'), 'utf8');
    hub.set('knn.index', { corrupt: true });
    // Another cache type: the cache must be made again, from a download that turns out wrong.
    const e = await t.throwsAsync(() => ibl.pull({ ...tiny, models, endpoint: hub.endpoint, cacheType: 'f16' }));
    t.is(e.code, 'ERR_PULL_CHECKSUM');
    t.regex(e.message, /csuhan\/knn\/knn\.index: the download's sha256 is [0-9a-f]{64}, but the hub says [0-9a-f]{64}; the file was removed: run pull again/);
    t.deepEqual(fs.readdirSync(path.join(models, 'downloads', '.partial')), [], 'no partial left');
    t.is(fs.readFileSync(path.join(models, 'manifest.json'), 'utf8'), before, 'the manifest is as it was');
    t.truthy(ibl.resolveModels({ models }).cache, 'the old cache is still there and in use');
  } finally {
    await hub.close();
  }
});

test('a full disk: checked before the work, and a write that fails says so', async (t) => {
  const e = t.throws(() => checkFreeSpace(dir, 2 ** 60, 'the encoder'));
  t.is(e.code, 'ERR_DISK_FULL');
  t.regex(e.message, /the encoder needs about \d+\.\d GB free, but the disk has .* GB: free some space, or choose another folder with --models/);
  if (!fs.existsSync('/dev/full')) return;
  // The partial file is /dev/full: every write fails with ENOSPC, as on a full disk.
  const models = path.join(dir, 'full');
  const partial = path.join(models, 'downloads', '.partial');
  fs.mkdirSync(partial, { recursive: true });
  fs.symlinkSync('/dev/full', path.join(partial, `${sha256(released.find((f) => f.path === 'knn.index').data)}.part`));
  const hub = await hubWith();
  try {
    const err = await t.throwsAsync(() => ibl.pull({ ...tiny, models, endpoint: hub.endpoint }));
    t.is(err.code, 'ERR_DISK_FULL', err.message);
    t.regex(err.message, /\.partial[/\\][0-9a-f]{64}\.part: no space left on the disk while writing csuhan\/knn\/knn\.index; free some space and run pull again/);
  } finally {
    await hub.close();
  }
});

test('a second pull into the same folder is refused while the first runs', async (t) => {
  const hub = await hubWith((p) => (p === W3D.path ? { delayMs: 20 } : {}));
  const models = path.join(dir, 'busy');
  const ac = new AbortController();
  try {
    const first = ibl.pull({ ...tiny, models, endpoint: hub.endpoint, knn: false, signal: ac.signal });
    for (let i = 0; i < 200 && !hub.log.some((e) => e.file === W3D.path); i++) await new Promise((r) => setTimeout(r, 25));
    const e = await t.throwsAsync(() => ibl.pull({ ...tiny, models, endpoint: hub.endpoint, knn: false }));
    t.is(e.code, 'ERR_PULL_BUSY');
    t.regex(e.message, /another pull is filling this folder/);
    ac.abort();
    const a = await t.throwsAsync(first);
    t.is(a.code, 'ABORT_ERR');
  } finally {
    await hub.close();
  }
});

test('on huggingface.co, a file with a known sha256 must still be that file', (t) => {
  const delta = ibl.RELEASED.delta;
  const hf = { endpoint: 'https://huggingface.co', userAgent: 'x' };
  t.notThrows(() => checkKnown(hf, delta, { ...delta, size: 13_476_940_539, sha256: delta.known.sha256 }));
  const e = t.throws(() => checkKnown(hf, delta, { ...delta, size: 13_476_940_539, sha256: 'a'.repeat(64) }));
  t.is(e.code, 'ERR_PULL_CHANGED');
  t.notThrows(() => checkKnown({ ...hf, endpoint: 'http://127.0.0.1:1' }, delta, { ...delta, size: 5, sha256: 'b'.repeat(64) }), 'a mirror is checked against its own listing');
  t.is(delta.known.bytes, 13_476_940_539);
  t.is(ibl.RELEASED.encoder.revision, 'e9206a10f118b0790c730264e7b3aa5c324c35cb');
});

test('pull flags and options are checked before any work', async (t) => {
  let r = await cli(['pull', '--adapter', 'beta']);
  t.is(r.code, 2);
  t.regex(r.stderr, /--adapter beta was trained on plain LLaMA-7B: add --base llama/);
  r = await cli(['pull', '--dir', 'a', '--models', 'b']);
  t.is(r.code, 2);
  r = await cli(['pull', '--connections', '0']);
  t.is(r.code, 2);
  t.regex(r.stderr, /--connections.*between 1 and 16/);
  // A port nothing listens on: taken from the system, then closed.
  const probe = net.createServer();
  await new Promise((resolve) => probe.listen(0, '127.0.0.1', resolve));
  const closed = `http://127.0.0.1:${probe.address().port}`;
  await new Promise((resolve) => probe.close(resolve));
  r = await cli(['pull', '--llama', path.join(dir, 'nope'), '--models', path.join(dir, 'flags')], { HF_ENDPOINT: closed });
  t.is(r.code, 1);
  t.regex(r.stderr, /nope: no such LLaMA folder/);
  r = await cli(['pull', '--models', path.join(dir, 'flags')], { HF_ENDPOINT: 'ftp://example' });
  t.is(r.code, 1);
  t.regex(r.stderr, /the hub endpoint ftp:\/\/example \(HF_ENDPOINT\) must be an http\(s\) URL/);
  r = await cli(['pull', '--models', path.join(dir, 'flags')], { HF_ENDPOINT: closed });
  t.is(r.code, 1);
  t.true(r.stderr.includes(`cannot reach ${closed} (ECONNREFUSED): check the connection, or set HF_ENDPOINT to a mirror`), r.stderr);
  const e = await t.throwsAsync(() => ibl.pull({ models: path.join(dir, 'flags'), type: 'q5_k' }));
  t.is(e.code, 'ERR_INVALID_ARG');
});
