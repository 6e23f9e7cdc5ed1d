import test from 'ava';
import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';
import { libIndex, tmpDir } from './helpers/paths.mjs';

const require = createRequire(import.meta.url);
const ibl = require(libIndex);

test('the addon loads from build/ and is built for this platform', (t) => {
  const p = ibl.addonPath();
  t.truthy(p, 'an addon file is found');
  t.true(fs.existsSync(p));
  t.deepEqual(ibl.binaryTarget(p), { platform: process.platform, arch: process.arch });
  t.is(typeof ibl.versions().package, 'string');
});

test('ESM and CJS entry points export the same API', async (t) => {
  const esm = await import(path.join(path.dirname(libIndex), 'index.mjs'));
  t.is(esm.versions, ibl.versions);
  t.is(esm.inspectGguf, ibl.inspectGguf);
  t.is(esm.default, ibl);
});

test('a missing addon gives ERR_ADDON_NOT_FOUND naming every place looked in', (t) => {
  const dir = tmpDir();
  const a = path.join(dir, 'Release', 'imagebind_llm.node');
  const b = path.join(dir, 'prebuilds', 'imagebind_llm.node');
  const err = t.throws(() => ibl.loadAddonFrom([a, b]));
  t.is(err.code, 'ERR_ADDON_NOT_FOUND');
  t.true(err.message.includes(a) && err.message.includes(b));
  t.regex(err.message, /npm run build:native/);
});

function fakeElf(machine) {
  const buf = Buffer.alloc(64);
  buf.writeUInt32BE(0x7f454c46, 0);
  buf[4] = 2; // 64-bit
  buf[5] = 1; // little endian
  buf.writeUInt16LE(3, 16); // ET_DYN
  buf.writeUInt16LE(machine, 18);
  return buf;
}

test('an addon built for another platform gives ERR_ADDON_PLATFORM naming the file and both platforms', (t) => {
  const dir = tmpDir();
  const otherArch = process.arch === 'arm64' ? 62 : 183;
  const elf = path.join(dir, 'elf.node');
  fs.writeFileSync(elf, fakeElf(otherArch));
  const macho = path.join(dir, 'macho.node');
  const mh = Buffer.alloc(32);
  mh.writeUInt32LE(0xfeedfacf, 0);
  mh.writeUInt32LE(0x0100000c, 4);
  fs.writeFileSync(macho, mh);
  for (const file of [elf, macho]) {
    const err = t.throws(() => ibl.loadAddonFrom([file]));
    t.is(err.code, 'ERR_ADDON_PLATFORM');
    t.true(err.message.includes(file));
    t.true(err.message.includes(`${process.platform}-${process.arch}`));
  }
});

test('a damaged addon for this platform gives ERR_ADDON_LOAD naming the file', (t) => {
  if (process.platform !== 'linux') return t.pass('header forging is only written for ELF here');
  const dir = tmpDir();
  const file = path.join(dir, 'broken.node');
  fs.writeFileSync(file, Buffer.concat([fakeElf(process.arch === 'arm64' ? 183 : 62), Buffer.alloc(200, 7)]));
  const err = t.throws(() => ibl.loadAddonFrom([file]));
  t.is(err.code, 'ERR_ADDON_LOAD');
  t.true(err.message.includes(file));
});

test('IMAGEBIND_LLM_ADDON overrides the search', (t) => {
  t.deepEqual(ibl.addonCandidates({ IMAGEBIND_LLM_ADDON: '/x/y.node' }), [path.resolve('/x/y.node')]);
  t.true(ibl.addonCandidates({}).length >= 2);
});
