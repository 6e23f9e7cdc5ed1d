// Interaction done right (issue 7): thread defaults and bounds, exact and ordered streaming, prompt
// abort that keeps a conversation consistent, the chat CLI, strict flags, familiar names, progress.
import test from 'ava';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execFile, execFileSync, spawn } from 'node:child_process';
import { createRequire } from 'node:module';
import { promisify } from 'node:util';
import { cliPath, libIndex, root, tmpDir } from './helpers/paths.mjs';
import { assets } from './helpers/fixtures.mjs';
import { tinyModels } from './helpers/models.mjs';

const require = createRequire(import.meta.url);
const ibl = require(libIndex);
const { addon } = require(path.join(root, 'lib', 'binding.js'));
const run = promisify(execFile);
const img = path.join(assets, 'dog_image.png');
let m;

test.before(async () => {
  m = await tinyModels('f32');
});

/** Runs the CLI; resolves { code, stdout, stderr } whatever the exit code. */
function cli(args, o = {}) {
  return new Promise((resolve) => {
    const child = execFile(process.execPath, [cliPath, ...args], { encoding: 'utf8', ...o }, (err, stdout, stderr) => {
      resolve({ code: err ? (err.code ?? 1) : 0, signal: err?.signal, stdout, stderr });
    });
    if (o.input !== undefined) child.stdin.end(o.input);
  });
}

const llmFlags = () => ['--encoder', m.encoder, '--model', m.model, '--bind', m.bind, '--threads', '1'];

// --- 1. threads ---------------------------------------------------------------------------------

test('threads: the default is the cores this process may use, the same in the API and the core', async (t) => {
  const lim = ibl.threadLimits();
  t.true(lim.default >= 1 && lim.default <= os.availableParallelism());
  t.true(lim.logical >= lim.default);
  t.is(lim.max, Math.min(512, 4 * lim.logical));
  const enc = await ibl.loadEncoder(m.encoder);
  t.teardown(() => enc.dispose());
  t.is(enc.info().threads, lim.default);
  // The CLI says the same.
  const info = JSON.parse(execFileSync(process.execPath, [cliPath, 'info', '--json'], { encoding: 'utf8' }));
  t.deepEqual(info.threads, lim);
  // Pinned to one CPU (taskset), the default follows the affinity mask.
  const pinned = spawn('taskset', ['-c', '0', process.execPath, '-e', `console.log(require(${JSON.stringify(libIndex)}).threadLimits().default)`], { stdio: ['ignore', 'pipe', 'ignore'] });
  let out = '';
  pinned.stdout.on('data', (d) => { out += d; });
  const code = await new Promise((r) => pinned.on('close', r));
  if (code === 0) t.is(out.trim(), '1');
  else t.log('taskset not available: affinity case not checked');
});

test('threads: out-of-range counts are clear errors in the API and the CLI, never an abort or a hang', async (t) => {
  for (const threads of [0, -1, 1.5, 100000, Number.NaN, 2 ** 32 + 1]) {
    const e = await t.throwsAsync(ibl.loadEncoder(m.encoder, { threads }), { instanceOf: ibl.ImageBindError });
    t.is(e.code, 'ERR_INVALID_ARG');
    t.regex(e.message, /threads must be an integer between 1 and \d+/);
    await t.throwsAsync(ibl.loadLlm({ model: m.model, bind: m.bind, threads }), { code: 'ERR_INVALID_ARG' });
  }
  for (const [cmd, v] of [['ask', '100000'], ['embed', '1024'], ['chat', '0'], ['demo', 'abc']]) {
    const r = await cli([cmd, '--threads', v, ...(cmd === 'ask' ? ['hi'] : [])]);
    t.is(r.code, 2, `${cmd} --threads ${v}`);
    t.regex(r.stderr, /--threads <n>' argument .* is invalid\. expected an integer between 1 and \d+/);
    t.is(r.stderr.trim().split('\n').length, 1);
  }
});

test('threads: a system that cannot start the threads gives an error, not an abort', async (t) => {
  // An unprivileged user allowed 5 processes/threads (root is exempt from RLIMIT_NPROC); node itself
  // needs 3 with one V8 and one libuv worker.
  const threads = Math.min(ibl.threadLimits().max, 8);
  const tools = await run('sh', ['-c', 'command -v prlimit && command -v setpriv && id nobody'], { encoding: 'utf8' }).catch(() => null);
  if (!tools || threads < 4) return t.log('prlimit, setpriv or the user nobody is missing, or too few CPUs: not checked') || t.pass();
  fs.chmodSync(m.dir, 0o755);
  fs.chmodSync(m.encoder, 0o644);
  const script = `require(${JSON.stringify(libIndex)}).loadEncoder(${JSON.stringify(m.encoder)},{threads:${threads}}).then(()=>console.log('loaded'),e=>console.log(e.code+': '+e.message))`;
  const r = await run('prlimit', ['--nproc=5', 'setpriv', '--reuid=nobody', '--regid=nogroup', '--clear-groups', 'env', 'UV_THREADPOOL_SIZE=1',
    process.execPath, '--v8-pool-size=1', '-e', script], { encoding: 'utf8' }).then((x) => ({ ...x, code: 0 }), (e) => e);
  t.is(r.code, 0, r.stderr);
  t.regex(r.stdout, new RegExp(`ERR_THREADS: cannot start ${threads} threads: the system refused`));
});

// --- 2. exact streaming -------------------------------------------------------------------------

/** SentencePiece's byte decoding: each byte that does not start a valid UTF-8 sequence → U+FFFD. */
function decodeBytes(bytes) {
  let out = '';
  let i = 0;
  while (i < bytes.length) {
    const c = bytes[i];
    let len = 0, lo = 0x80, hi = 0xbf;
    if (c < 0x80) len = 1;
    else if (c >= 0xc2 && c <= 0xdf) len = 2;
    else if (c === 0xe0) { len = 3; lo = 0xa0; } else if (c === 0xed) { len = 3; hi = 0x9f; } else if (c >= 0xe1 && c <= 0xef) len = 3;
    else if (c === 0xf0) { len = 4; lo = 0x90; } else if (c === 0xf4) { len = 4; hi = 0x8f; } else if (c >= 0xf1 && c <= 0xf3) len = 4;
    let ok = len > 0 && i + len <= bytes.length;
    for (let k = 1; ok && k < len; k++) {
      const b = bytes[i + k];
      ok = k === 1 ? b >= lo && b <= hi : b >= 0x80 && b <= 0xbf;
    }
    if (ok) { out += Buffer.from(bytes.subarray(i, i + len)).toString('utf8'); i += len; } else { out += '\ufffd'; i += 1; }
  }
  return out;
}

function rng(seed) {
  let s = seed >>> 0;
  return () => { s = (s * 1664525 + 1013904223) >>> 0; return s / 2 ** 32; };
}

const SAMPLES = ['a', ' the', '日本語', '中文字符', '🙂', '👩‍👩‍👧', 'é', '\n', '###', ' Response', 'ü', '𝄞', 'Ж'];

test('streaming: random byte-token sequences stream exactly the final text, stop strings cut it', (t) => {
  const r = rng(7);
  for (let iter = 0; iter < 3000; iter++) {
    const parts = [];
    const n = 1 + Math.floor(r() * 12);
    for (let i = 0; i < n; i++) {
      const kind = r();
      if (kind < 0.45) parts.push(Buffer.from(SAMPLES[Math.floor(r() * SAMPLES.length)]));
      else if (kind < 0.75) parts.push(Buffer.from(Array.from({ length: 1 + Math.floor(r() * 3) }, () => Math.floor(r() * 256))));
      else parts.push(Buffer.from([0xe0 + Math.floor(r() * 0x15), 0x80 + Math.floor(r() * 0x40)]));  // truncated/odd sequences
    }
    // Split the whole byte string into tokens at random points (splitting characters across tokens).
    const all = Buffer.concat(parts);
    const pieces = [];
    for (let i = 0; i < all.length;) {
      const len = 1 + Math.floor(r() * 4);
      pieces.push(new Uint8Array(all.subarray(i, i + len)));
      i += len;
    }
    const full = decodeBytes(all);
    const chars = Array.from(full);  // whole code points: a stop string is a JS string
    const stops = r() < 0.5 ? [] : [SAMPLES[Math.floor(r() * SAMPLES.length)], chars.slice(Math.floor(r() * chars.length)).slice(0, 3).join('')].filter(Boolean);
    const res = addon().textStream(pieces, stops);
    t.is(res.chunks.join(''), res.text, `iteration ${iter}`);
    t.true(full.startsWith(res.text), `iteration ${iter}: the text is a prefix of the decoded bytes`);
    const hit = stops.some((s) => full.includes(s));
    if (!hit) t.is(res.text, full, `iteration ${iter}: no stop string, the whole text`);
    else {
      t.false(stops.some((s) => res.text.includes(s)), `iteration ${iter}: no stop string left in the text`);
      t.true(stops.some((s) => full.slice(res.text.length).startsWith(s)), `iteration ${iter}: cut right before a stop string`);
    }
  }
});

test('streaming: a real model streams exactly its answer, every callback before the promise settles', async (t) => {
  const llm = await ibl.loadLlm({ model: m.model, bind: m.bind, encoder: m.encoder, threads: 1 });
  t.teardown(() => llm.dispose());
  for (const seed of [1, 2, 3, 4, 5, 6]) {
    let settled = false;
    const chunks = [];
    const ids = [];
    const res = await llm.ask('Tell me a story.', {
      temperature: 1.5, topP: 1, seed, maxTokens: 48, stop: seed % 2 ? ['e'] : [],
      onTextChunk: (c) => { t.false(settled, 'a text chunk after the promise settled'); chunks.push(c); },
      onToken: (tokens) => { t.false(settled); ids.push(...tokens); },
    }).finally(() => { settled = true; });
    t.is(chunks.join(''), res.text, `seed ${seed}`);
    t.deepEqual(ids, res.tokens, `seed ${seed}`);
    // The stream iterator yields the same chunks and returns the same result.
    const it = llm.stream('Tell me a story.', { temperature: 1.5, topP: 1, seed, maxTokens: 48, stop: seed % 2 ? ['e'] : [] });
    const streamed = [];
    let step;
    while (!(step = await it.next()).done) streamed.push(step.value);
    t.is(streamed.join(''), step.value.text);
    t.is(step.value.text, res.text);
  }
});

test('streaming: the deprecated onToken(text) still receives the text, with a deprecation warning', async (t) => {
  const llm = await ibl.loadLlm({ model: m.model, bind: m.bind, threads: 1 });
  t.teardown(() => llm.dispose());
  const warned = new Promise((r) => process.once('warning', (w) => r(w)));
  const chunks = [];
  const res = await llm.ask('Hi', { temperature: 0, maxTokens: 8, onToken: (c) => chunks.push(c) });
  t.is(chunks.join(''), res.text);
  const w = await warned;
  t.is(w.name, 'DeprecationWarning');
  t.regex(w.message, /onTextChunk/);
});

// --- 3. abort -----------------------------------------------------------------------------------

test('abort: generation stops within a step; stopOnAbortSignal resolves with the streamed partial text', async (t) => {
  const llm = await ibl.loadLlm({ model: m.model, bind: m.bind, threads: 1 });
  t.teardown(() => llm.dispose());
  const ac = new AbortController();
  const chunks = [];
  let n = 0;
  const res = await llm.ask('Tell me a story.', {
    temperature: 1, seed: 11, maxTokens: 200, signal: ac.signal, stopOnAbortSignal: true,
    onTextChunk: (c) => chunks.push(c), onToken: () => { if (++n === 3) ac.abort(); },
  });
  t.is(res.stopReason, 'abort');
  t.true(res.tokens.length >= 3 && res.tokens.length <= 5, `${res.tokens.length} tokens after an abort at the 3rd`);
  t.is(chunks.join(''), res.text);
  // Without stopOnAbortSignal: the one AbortError.
  const ac2 = new AbortController();
  let k = 0;
  const err = await t.throwsAsync(llm.ask('Tell me a story.', { temperature: 1, seed: 11, maxTokens: 200, signal: ac2.signal, onToken: () => { if (++k === 2) ac2.abort(); } }));
  t.true(err instanceof ibl.AbortError);
  t.is(err.name, 'AbortError');
  t.is(err.code, 'ABORT_ERR');
  t.true(k <= 4);
});

test('abort: after an aborted turn the conversation holds the partial answer, in the KV cache and the history alike', async (t) => {
  const llm = await ibl.loadLlm({ model: m.model, bind: m.bind, encoder: m.encoder, threads: 1 });
  t.teardown(() => llm.dispose());
  const inputs = [{ kind: 'image', path: img }];
  const a = await llm.createSession();
  t.teardown(() => a.dispose());
  const ac = new AbortController();
  let n = 0;
  const first = await a.ask('Describe it.', { inputs, temperature: 0, maxTokens: 40, signal: ac.signal, stopOnAbortSignal: true, onToken: () => { if (++n === 4) ac.abort(); } });
  t.is(first.stopReason, 'abort');
  const second = await a.ask('And then?', { temperature: 0, maxTokens: 12 });
  // The same conversation without an abort: the first answer limited to the same tokens.
  const b = await llm.createSession();
  t.teardown(() => b.dispose());
  const ref = await b.ask('Describe it.', { inputs, temperature: 0, maxTokens: first.tokens.length });
  t.deepEqual(ref.tokens, first.tokens);
  const refSecond = await b.ask('And then?', { temperature: 0, maxTokens: 12 });
  t.deepEqual(second.tokens, refSecond.tokens);
  t.is(a.tokensUsed, b.tokensUsed);
});

test('abort: a turn aborted while reading its prompt is dropped whole', async (t) => {
  const llm = await ibl.loadLlm({ model: m.model, bind: m.bind, threads: 1 });
  t.teardown(() => llm.dispose());
  const s = await llm.createSession({ batchSize: 1 });
  t.teardown(() => s.dispose());
  const ac = new AbortController();
  const e = await t.throwsAsync(s.ask('word '.repeat(400), { maxTokens: 1, signal: ac.signal, onPromptProgress: (d) => { if (d >= 16) ac.abort(); } }));
  t.true(e instanceof ibl.AbortError);
  t.true(s.isEmpty);
  t.is(s.tokensUsed, 0);
  // The next turn is a first turn again, with the template and BOS.
  const r = await s.ask('Hi', { temperature: 0, maxTokens: 4 });
  t.is(r.promptTokens[0], 1);
});

test('abort: leaving a for-await loop over stream() stops generation', async (t) => {
  const llm = await ibl.loadLlm({ model: m.model, bind: m.bind, threads: 1 });
  t.teardown(() => llm.dispose());
  let generated = 0;
  let seen = 0;
  for await (const chunk of llm.stream('Tell me a story.', { temperature: 1, seed: 5, maxTokens: 400, onToken: () => { generated++; } })) {
    if (chunk && ++seen === 3) break;
  }
  const after = generated;
  await new Promise((r) => setTimeout(r, 300));
  t.is(generated, after, 'no token after the loop was left');
  t.true(generated < 60, `${generated} tokens generated`);
});

test('abort: one AbortError for embed, loads and conversions', async (t) => {
  const ac = new AbortController();
  ac.abort();
  const cases = [
    ibl.loadEncoder(m.encoder, { signal: ac.signal }),
    ibl.loadLlm({ model: m.model, bind: m.bind, signal: ac.signal }),
    ibl.convertCache(path.join(assets, '..', 'tiny-a', 'knn.index'), path.join(tmpDir(), 'c.gguf'), { signal: ac.signal }),
  ];
  for (const p of cases) {
    const e = await t.throwsAsync(p);
    t.true(e instanceof ibl.AbortError, e.message);
    t.is(e.code, 'ABORT_ERR');
  }
  const enc = await ibl.loadEncoder(m.encoder);
  t.teardown(() => enc.dispose());
  const ac2 = new AbortController();
  setTimeout(() => ac2.abort(), 20);  // while ffmpeg decodes the video
  const e = await t.throwsAsync(enc.embed([{ kind: 'image', path: img }, { kind: 'video', path: path.join(assets, 'photos_5s.mp4') }], { signal: ac2.signal }));
  t.true(e instanceof ibl.AbortError);
});

// --- 5. a strict CLI ----------------------------------------------------------------------------

test('CLI: numeric flags are parsed strictly and errors name the flag, in one line with a hint', async (t) => {
  const bad = [
    ['ask', '--temperature', 'abc'], ['ask', '--temperature', '-1'], ['ask', '--top-p', '0'], ['ask', '--top-p', '1.5'],
    ['ask', '--top-k', '2.5'], ['ask', '--repeat-penalty', '0'], ['ask', '--seed', '-3'], ['ask', '--max-tokens', 'NaN'],
    ['ask', '-c', '1e12'], ['ask', '--context', '8'], ['ask', '--gpu-layers', '-1'], ['ask', '--cache-k', '0'],
    ['ask', '--cache-weight', '2'], ['chat', '--max-tokens', 'Infinity'], ['convert', 'llm', '--context-length', '1e12'],
    ['convert', 'cache', 'x', '-o', 'y', '--chunk-rows', '12abc'],
  ];
  for (const args of bad) {
    const r = await cli([...args, ...(args[0] === 'ask' ? ['q'] : [])]);
    const flag = args[args.length - 2];
    t.is(r.code, 2, args.join(' '));
    t.true(r.stderr.includes(flag), `${args.join(' ')}: ${r.stderr}`);
    t.regex(r.stderr, /see `imagebind-llm .*--help`/);
    t.is(r.stderr.trim().split('\n').length, 1, args.join(' '));
  }
});

test('CLI: flags checked against each other and against the build', async (t) => {
  let r = await cli(['ask', '--model', m.model, '--bind', m.bind, '--image', img, 'hi']);
  t.is(r.code, 2);
  t.regex(r.stderr, /--image needs --encoder/);
  r = await cli(['ask', ...llmFlags(), '--weight', 'smell=1', 'hi']);
  t.is(r.code, 2);
  t.regex(r.stderr, /--weight smell=1: unknown input kind 'smell'/);
  r = await cli(['ask', ...llmFlags(), '--weight', 'audio=-1', 'hi']);
  t.regex(r.stderr, /--weight audio=-1/);
  for (const cmd of ['ask', 'chat', 'embed', 'similarity', 'demo']) {
    r = await cli([cmd, '--device', 'NoSuchGPU', ...(cmd === 'ask' ? ['hi'] : [])]);
    t.is(r.code, 2, cmd);
    t.regex(r.stderr, /--device.*unknown device 'NoSuchGPU' \(this build has: auto, gpu, cpu, CPU/, cmd);
  }
  r = await cli(['--version']);
  t.is(r.code, 0);
  t.is(r.stdout.trim(), JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8')).version);
  // -c sets the context size: a prompt that does not fit is an error naming the context.
  r = await cli(['ask', ...llmFlags(), '-c', '16', 'Tell me everything about this long, long question.']);
  t.is(r.code, 1);
  t.regex(r.stderr, /do not fit in the context/);
});

test('CLI: SIGINT during an answer exits with 130; a closed stdout ends quietly', async (t) => {
  // Greedy decoding of the tiny model never produces the end token: the answer runs until stopped.
  const child = spawn(process.execPath, [cliPath, 'ask', ...llmFlags(), '--temperature', '0', '--max-tokens', '100000', '-c', '100000', 'Go on forever.'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d) => { stderr += d; });
  await new Promise((r) => child.stdout.once('data', r));
  child.kill('SIGINT');
  const [code] = await new Promise((r) => child.on('close', (c, s) => r([c, s])));
  t.is(code, 130, stderr);
  t.is(stderr, '');
  // `| head -c 1`: the reader goes away after one byte.
  const r = await run('sh', ['-c', `"${process.execPath}" "${cliPath}" ask ${llmFlags().join(' ')} --temperature 1 --seed 3 --max-tokens 2000 -c 4000 "Go on." | head -c 1; echo " status $?"`], { encoding: 'utf8' });
  t.regex(r.stdout, / status 0/);
  t.notRegex(r.stderr, /EPIPE|Error/);
});

test('process.exit() during a generation or an encode exits at once (the native jobs stop)', async (t) => {
  const gen = `const ibl=require(${JSON.stringify(libIndex)});
    ibl.loadLlm({model:${JSON.stringify(m.model)},bind:${JSON.stringify(m.bind)},threads:1,contextSize:60000}).then((llm)=>
      llm.ask('Go on forever.',{temperature:0,maxTokens:100000,onTextChunk:()=>process.exit(3)}));`;
  const enc = `const ibl=require(${JSON.stringify(libIndex)});
    ibl.loadEncoder(${JSON.stringify(m.encoder)},{threads:1}).then((e)=>{
      e.embed(Array.from({length:8},()=>({kind:'video',path:${JSON.stringify(path.join(assets, 'photos_5s.mp4'))}})));
      setTimeout(()=>process.exit(4),300);});`;
  for (const [script, code] of [[gen, 3], [enc, 4]]) {
    const r = await run(process.execPath, ['-e', script], { encoding: 'utf8', timeout: 60000 }).then(() => ({ code: 0 }), (e) => e);
    t.is(r.code, code, r.stderr);
  }
});

// --- 4. chat ------------------------------------------------------------------------------------

test('chat: piped stdin is answered line by line, commands confirm on stderr', async (t) => {
  const input = ['What is this?', `/image ${img}`, 'And now?', '/reset', '/clear', '/nope', '/audio /no/such/file.wav', 'Last one.', ''].join('\n');
  const r = await cli(['chat', ...llmFlags(), '--temperature', '0', '--max-tokens', '6', '--timing'], { input });
  t.is(r.code, 0, r.stderr);
  t.is(r.stdout.trim().split('\n').length, 3, r.stdout);
  t.regex(r.stderr, /added image .*dog_image\.png; the next question starts a new conversation with: image/);
  t.regex(r.stderr, /conversation forgotten; inputs kept: image/);
  t.regex(r.stderr, /inputs dropped/);
  t.regex(r.stderr, /unknown command \/nope/);
  t.regex(r.stderr, /no such file/);
  t.is((r.stderr.match(/time to first token [\d.]+ s · \d+ tokens at [\d.]+ tokens\/s/g) ?? []).length, 3);
  // The answers are those of the API for the same conversation.
  const llm = await ibl.loadLlm({ model: m.model, bind: m.bind, encoder: m.encoder, threads: 1 });
  t.teardown(() => llm.dispose());
  const s = await llm.createSession();
  t.teardown(() => s.dispose());
  const a1 = await s.ask('What is this?', { temperature: 0, maxTokens: 6 });
  const a2 = await s.ask('And now?', { temperature: 0, maxTokens: 6, inputs: [{ kind: 'image', path: img }] });
  t.deepEqual(r.stdout.split('\n').slice(0, 2), [a1.text, a2.text]);
});

function pty(argv, steps, timeout = 90) {
  const spec = JSON.stringify({ argv, steps, timeout });
  return JSON.parse(execFileSync('python3', [path.join(root, 'test', 'helpers', 'pty-run.py'), spec], { encoding: 'utf8', maxBuffer: 64 << 20 }));
}

test('chat at a terminal: banner, Ctrl-C stops an answer and returns to the prompt, Ctrl-C at an empty prompt exits 130', (t) => {
  const argv = [process.execPath, cliPath, 'chat', ...llmFlags(), '--image', img, '--temperature', '0', '--max-tokens', '100000', '-c', '60000'];
  const r = pty(argv, [
    { expect: '/image PATH' }, { expect: '> ' },
    { send: 'Go on forever.\r' }, { expect: 'Go on forever\\.[\\r\\n]+[^\\r\\n]' },
    { send: '\u0003' }, { expect: '\\[stopped\\]' }, { expect: '> ' },
    { send: '/reset\r' }, { expect: 'conversation forgotten' }, { expect: '> ' },
    { send: '\u0003' },
  ]);
  t.is(r.failedStep, null, r.output.slice(-2000));
  t.false(r.timedOut);
  t.is(r.status, 130);
  t.regex(r.output, /\/clear +drop every input/);
});

test('chat at a terminal: Ctrl-D at an empty prompt exits 0', (t) => {
  const r = pty([process.execPath, cliPath, 'chat', ...llmFlags(), '--max-tokens', '4'], [{ expect: '> ' }, { send: '\u0004' }]);
  t.is(r.failedStep, null, r.output);
  t.is(r.status, 0);
});

// --- 6. names -----------------------------------------------------------------------------------

test('names: ImageBindError (old spelling kept), AbortError, Symbol.dispose and Symbol.asyncDispose everywhere', async (t) => {
  t.is(ibl.ImagebindError, ibl.ImageBindError);
  t.true(new ibl.AbortError() instanceof ibl.ImageBindError);
  const enc = await ibl.loadEncoder(m.encoder);
  const llm = await ibl.loadLlm({ model: m.model, bind: m.bind, threads: 1 });
  const s = await llm.createSession();
  for (const o of [enc, llm, s]) {
    t.is(typeof o[Symbol.dispose], 'function');
    t.is(typeof o[Symbol.asyncDispose], 'function');
  }
  await s[Symbol.asyncDispose]();
  t.throws(() => s.tokensUsed, { code: 'ERR_DISPOSED' });
  llm[Symbol.dispose]();
  await enc[Symbol.asyncDispose]();
  t.true(enc.disposed);
});

// --- 7. progress --------------------------------------------------------------------------------

test('progress: on a terminal after about a second, cleared when done; never on a pipe or with --json', (t) => {
  const script = `const {progress}=require(${JSON.stringify(path.join(root, 'lib', 'cli', 'progress.js'))});
    const json = process.argv[1] === 'json';
    const p = progress('working', { json });
    let i = 0; const iv = setInterval(() => { p.update(++i, 30); if (i === 30) { clearInterval(iv); p.stop(); process.stdout.write('DONE'); } }, 60);`;
  const r = pty([process.execPath, '-e', script], [{ expect: 'DONE' }], 30);
  t.is(r.failedStep, null);
  t.regex(r.output, /working \[.*\] \d+%/);
  t.regex(r.output, /\u001b\[2K|\r/, 'the bar is cleared');
  const quick = pty([process.execPath, '-e', script.replace('60)', '10)')], [{ expect: 'DONE' }], 30);
  t.notRegex(quick.output, /working/, 'not shown for work under a second');
  const json = pty([process.execPath, '-e', script, 'json'], [{ expect: 'DONE' }], 30);
  t.notRegex(json.output, /working/);
  const piped = execFileSync(process.execPath, ['-e', script], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  t.is(piped, 'DONE');
});
