// Nothing lost: conversions write temporary files of their own and replace their outputs together,
// only when all are complete; failures and interrupts leave the user's files exactly as they were.
import test from 'ava';
import fs from 'node:fs';
import path from 'node:path';
import { execFileSync, spawn } from 'node:child_process';
import { createRequire } from 'node:module';
import { cliPath, libIndex, tmpDir } from './helpers/paths.mjs';
import { tinyA } from './helpers/fixtures.mjs';

const require = createRequire(import.meta.url);
const ibl = require(libIndex);
const llamaDir = path.join(tinyA, 'llama');
const adapter = path.join(tinyA, 'adapter.pth');

function snapshot(dir) {
  return Object.fromEntries(fs.readdirSync(dir).sort().map((f) => [f, fs.readFileSync(path.join(dir, f)).toString('base64')]));
}

test('convert llm: when the LLM half fails, the previous pair and the user\'s own .partial files are untouched', async (t) => {
  const dir = tmpDir('ibl-out-');
  const prefix = path.join(dir, 'model');
  await ibl.convertLlm({ llamaDir, adapter, outPrefix: prefix, type: 'f32' });
  fs.writeFileSync(`${prefix}-llm.gguf.partial`, 'mine');
  fs.writeFileSync(`${prefix}-bind.gguf.partial`, 'mine too');
  const before = snapshot(dir);
  // An adapter whose LLM tensors cannot be produced: the bind file is written first, then it fails.
  const ac = new AbortController();
  let n = 0;
  const err = await t.throwsAsync(ibl.convertLlm({ llamaDir, adapter, outPrefix: prefix, type: 'f16', signal: ac.signal,
    onProgress: (_d, _t, name) => { if (name && !name.startsWith('bind') && ++n === 3) ac.abort(); } }));
  t.is(err.code, 'ABORT_ERR');
  t.deepEqual(snapshot(dir), before);
});

test('convert llm: the pair carries one conversion id; an LLM and a bind file from different conversions are refused', async (t) => {
  const dir = tmpDir('ibl-out-');
  const a = await ibl.convertLlm({ llamaDir, adapter, outPrefix: path.join(dir, 'a'), type: 'f32' });
  const b = await ibl.convertLlm({ llamaDir, adapter, outPrefix: path.join(dir, 'b'), type: 'f32' });
  const idOf = async (f) => (await ibl.inspectGguf(f)).metadata['imagebind_llm.conversion_id'];
  t.is(await idOf(a.llm), await idOf(a.bind));
  t.not(await idOf(a.llm), await idOf(b.llm));
  const e = await t.throwsAsync(ibl.loadLlm({ model: a.llm, bind: b.bind, threads: 1 }));
  t.is(e.code, 'ERR_MODEL_MISMATCH');
  t.regex(e.message, /come from different conversions/);
  const ok = await ibl.loadLlm({ model: b.llm, bind: b.bind, threads: 1 });
  ok.dispose();
  t.pass();
});

test('convert: an output folder that does not exist is refused before any work', async (t) => {
  const out = path.join(tmpDir('ibl-out-'), 'missing', 'x.gguf');
  const e = await t.throwsAsync(ibl.convertImagebind(path.join(tinyA, 'imagebind.pth'), out, { config: path.join(tinyA, 'imagebind.config.json') }));
  t.is(e.code, 'ERR_FILE_WRITE');
  t.regex(e.message, /the folder .* does not exist/);
});

for (const sig of ['SIGINT', 'SIGTERM']) {
  test(`convert imagebind: ${sig} during the conversion removes its temporary file and keeps the old output`, async (t) => {
    const dir = tmpDir('ibl-out-');
    const out = path.join(dir, 'enc.gguf');
    fs.writeFileSync(out, 'the user\'s previous file');
    const before = snapshot(dir);
    const child = spawn(process.execPath, [cliPath, 'convert', 'imagebind', path.join(tinyA, 'imagebind.pth'), '-o', out,
      '--config', path.join(tinyA, 'imagebind.config.json'), '--type', 'f32'], { stdio: ['ignore', 'pipe', 'pipe'] });
    // Listen before anything else: on a loaded machine the conversion may end while we poll.
    let exited = false;
    const closed = new Promise((r) => child.on('close', (c, s) => { exited = true; r(c ?? s); }));
    // Wait for the temporary file to appear, then interrupt.
    for (let i = 0; i < 2000 && !exited && !fs.readdirSync(dir).some((f) => f.endsWith('.tmp')); i++) await new Promise((r) => setTimeout(r, 2));
    child.kill(sig);
    // A CLI that ignored the signal would hang here: give it a generous bound, then say so.
    const guard = setTimeout(() => child.kill('SIGKILL'), 60_000);
    const code = await closed;
    clearTimeout(guard);
    t.not(code, 'SIGKILL', `the CLI did not exit within 60 s of ${sig}`);
    if (code === 0) return t.log('the conversion finished before the signal: nothing to check') || t.pass();
    t.is(code, sig === 'SIGINT' ? 130 : 143);
    t.deepEqual(snapshot(dir), before);
  });
}

test('a full disk: a clear error, the old outputs intact, no temporary file left', async (t) => {
  const mnt = tmpDir('ibl-full-');
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', mnt], { stdio: 'ignore' });
  } catch {
    t.log('cannot mount a small tmpfs here (needs root): not checked');
    t.pass();
    return;
  }
  t.teardown(() => { try { execFileSync('umount', [mnt], { stdio: 'ignore' }); } catch { /* already gone */ } });
  const out = path.join(mnt, 'enc.gguf');
  fs.writeFileSync(out, 'previous encoder');
  const prefix = path.join(mnt, 'pair');
  fs.writeFileSync(`${prefix}-llm.gguf`, 'previous llm');
  fs.writeFileSync(`${prefix}-bind.gguf`, 'previous bind');
  const before = snapshot(mnt);
  const e1 = await t.throwsAsync(ibl.convertImagebind(path.join(tinyA, 'imagebind.pth'), out, { type: 'f32', config: path.join(tinyA, 'imagebind.config.json') }));
  t.is(e1.code, 'ERR_FILE_WRITE');
  t.regex(e1.message, /No space left on device/, e1.message);
  const e2 = await t.throwsAsync(ibl.convertLlm({ llamaDir, adapter, outPrefix: prefix, type: 'f32' }));
  t.is(e2.code, 'ERR_FILE_WRITE');
  t.deepEqual(snapshot(mnt), before);
});
