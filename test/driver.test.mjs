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
