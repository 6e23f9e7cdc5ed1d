import test from 'ava';
import fs from 'node:fs';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import { root, tmpDir } from './helpers/paths.mjs';

// The C++ driver runs the core without Node (how GPU machines check it); it must build and pass here too.
const driver = path.join(root, 'build', 'native', process.platform === 'win32' ? 'ibl-driver.exe' : 'ibl-driver');

test('ibl-driver selftest: GGUF write/read and error paths in the plain C++ core', (t) => {
  t.true(fs.existsSync(driver), `${driver} is built by npm install`);
  const out = execFileSync(driver, ['selftest', tmpDir()], { encoding: 'utf8' });
  t.regex(out, /^1 passed, 0 failed$/m);
  t.notRegex(out, /FAIL/);
});

test('ibl-driver info lists the CPU backend', (t) => {
  const out = execFileSync(driver, ['info'], { encoding: 'utf8' });
  t.regex(out, /backend CPU/);
});

// The parity checks a machine without Node runs (e.g. a GPU box): the driver's encode / logits.
test('ibl-driver encode and logits reproduce the fixtures (what GPU parity checks run)', async (t) => {
  const { createRequire } = await import('node:module');
  const { libIndex } = await import('./helpers/paths.mjs');
  const { tinyA, readNpy, assertClose, manifest } = await import('./helpers/fixtures.mjs');
  const ibl = createRequire(import.meta.url)(libIndex);
  const dir = tmpDir('ibl-driver-');
  const enc = path.join(dir, 'enc.gguf');
  await ibl.convertImagebind(path.join(tinyA, 'imagebind.pth'), enc, { type: 'f32', config: path.join(tinyA, 'imagebind.config.json') });
  const raw = JSON.parse(execFileSync(driver, ['encode', enc, 'vision', path.join(tinyA, 'inputs', 'vision_dog_image.npy'), 'cpu'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }));
  assertClose(t, raw, readNpy(path.join(tinyA, 'expected', 'vision_dog_image.prenorm.npy')).data, 'f32', 'driver encode');
  const { llm, bind } = await ibl.convertLlm({ llamaDir: path.join(tinyA, 'llama'), adapter: path.join(tinyA, 'adapter.pth'), outPrefix: path.join(dir, 'tiny'), type: 'f32' });
  const c = manifest.llm_cases.find((x) => x.name === 'image');
  const promptFile = path.join(dir, 'prompt.txt');
  fs.writeFileSync(promptFile, c.prompt);
  const logits = JSON.parse(execFileSync(driver, ['logits', llm, bind, promptFile, path.join(tinyA, c.expected.visual), 'cpu'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }));
  assertClose(t, logits, readNpy(path.join(tinyA, c.expected.logits)).data, 'f32', 'driver logits with injection');
});
