// Memory after dispose: native memory is released at dispose() (not when the garbage collector
// happens to run), and objects report their native size to V8 so that forgotten ones are collected.
import test from 'ava';
import path from 'node:path';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { libIndex } from './helpers/paths.mjs';
import { tinyModels } from './helpers/models.mjs';

const run = promisify(execFile);
let m;

test.before(async () => {
  m = await tinyModels('f32');
});

/** Runs `body` (with `ibl` and `m` in scope) in a fresh process without --expose-gc; returns its JSON. */
async function inChild(body) {
  const script = `const ibl = require(${JSON.stringify(libIndex)}); const m = ${JSON.stringify(m)};
    const rss = () => process.memoryUsage().rss / 2 ** 20;
    (async () => { ${body} })().then((r) => console.log(JSON.stringify(r)), (e) => { console.error(e); process.exit(1); });`;
  const { stdout } = await run(process.execPath, ['-e', script], { encoding: 'utf8' });
  return JSON.parse(stdout);
}

test('loading and disposing an encoder 200 times keeps the memory flat', async (t) => {
  const r = await inChild(`
    const at = [];
    for (let i = 0; i < 200; i++) { const e = await ibl.loadEncoder(m.encoder, { threads: 1 }); e.dispose(); if (i === 49 || i === 199) at.push(rss()); }
    const e = await ibl.loadEncoder(m.encoder, { threads: 1 }); const mb = e.info().weightsBytes / 2 ** 20; e.dispose();
    return { at, mb };`);
  t.log(`RSS after 50 loads ${r.at[0].toFixed(0)} MiB, after 200 ${r.at[1].toFixed(0)} MiB (the model holds ${r.mb.toFixed(1)} MiB)`);
  // 150 more loads of a model of r.mb MiB: kept until a GC they would add 150 × r.mb.
  t.true(r.at[1] - r.at[0] < Math.max(16, 5 * r.mb), `grew by ${(r.at[1] - r.at[0]).toFixed(1)} MiB`);
});

test('dispose() gives the weights back at once', async (t) => {
  const r = await inChild(`
    const base = rss();
    const encs = [];
    // A trunk's weights are taken at its first use: each encoder embeds a text and a preprocessed image.
    for (let i = 0; i < 8; i++) {
      const e = await ibl.loadEncoder(m.encoder, { threads: 1 });
      const v = e.info().video, n = 3 * v.frames * v.imageSize ** 2;
      await e.embed([{ kind: 'text', text: 'a dog' }, { kind: 'tensor', modality: 'vision', tensor: { data: new Float32Array(n), shape: [n] } }]);
      encs.push(e);
    }
    const loaded = rss();
    for (const e of encs) e.dispose();
    return { base, loaded, after: rss() };`);
  t.log(`RSS ${r.base.toFixed(0)} → ${r.loaded.toFixed(0)} MiB with 8 encoders → ${r.after.toFixed(0)} MiB after dispose()`);
  t.true(r.loaded - r.base > 40, 'the encoders take memory');
  t.true(r.after - r.base < (r.loaded - r.base) / 3, 'most of it comes back without a garbage collection');
});

test('LLM models and sessions give their memory back at dispose()', async (t) => {
  const r = await inChild(`
    const at = [];
    for (let i = 0; i < 60; i++) {
      const llm = await ibl.loadLlm({ model: m.model, bind: m.bind, threads: 1 });
      const s = await llm.createSession({ contextSize: 4096 });
      s.dispose(); llm.dispose();
      if (i === 9 || i === 59) at.push(rss());
    }
    return { at };`);
  t.log(`RSS after 10 loads ${r.at[0].toFixed(0)} MiB, after 60 ${r.at[1].toFixed(0)} MiB`);
  t.true(r.at[1] - r.at[0] < 24, `grew by ${(r.at[1] - r.at[0]).toFixed(1)} MiB`);
});
