import test from 'ava';
import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';
import { libIndex, pkg, tmpDir } from './helpers/paths.mjs';

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

// A fake installed platform package beside a fake main package, as npm lays them out.
function fakeInstall(version, names) {
  const project = tmpDir('ibl-prebuilt-');
  const main = path.join(project, 'node_modules', 'imagebind-llm');
  fs.mkdirSync(main, { recursive: true });
  for (const name of names) {
    const dir = path.join(project, 'node_modules', ...name.split('/'));
    fs.mkdirSync(path.join(dir, 'bin'), { recursive: true });
    fs.writeFileSync(path.join(dir, 'package.json'), JSON.stringify({ name, version }));
  }
  return main;
}

test('a platform package of our version is found where npm puts it; none installed is null', (t) => {
  const name = ibl.packageName(ibl.platformKey());
  t.is(name, `@imagebind-llm/${process.platform}-${process.arch}`);
  const main = fakeInstall(pkg.version, [name]);
  const found = ibl.findPrebuilt(name, main);
  t.is(found.version, pkg.version);
  t.true(fs.existsSync(path.join(found.dir, 'package.json')));
  t.is(ibl.findPrebuilt(name, fakeInstall(pkg.version, [])), null);
});

test('a platform package of another version is ERR_ADDON_VERSION naming both versions', (t) => {
  const name = ibl.packageName('linux-x64');
  const main = fakeInstall('9.9.9', [name]);
  const err = t.throws(() => ibl.findPrebuilt(name, main));
  t.is(err.code, 'ERR_ADDON_VERSION');
  t.true(err.message.includes('9.9.9') && err.message.includes(pkg.version), err.message);
  t.true(err.message.includes(name));
});

test('GPU flavour packages are used only when their runtime is present', (t) => {
  const main = fakeInstall(pkg.version, [ibl.packageName('linux-x64', 'vulkan'), ibl.packageName('linux-x64', 'cuda')]);
  t.deepEqual(ibl.findGpuPrebuilts('linux-x64', main, () => false), []);
  const withVulkan = ibl.findGpuPrebuilts('linux-x64', main, (f) => f === 'vulkan');
  t.deepEqual(withVulkan.map((p) => [p.name, p.flavour]), [['@imagebind-llm/linux-x64-vulkan', 'vulkan']]);
  t.deepEqual(ibl.findGpuPrebuilts('darwin-arm64', main, () => true), [], 'no GPU flavours there (Metal is in the CPU package)');
});

test('package.json pins every platform package to its own version; build tools are not runtime dependencies', (t) => {
  for (const key of ibl.CPU_PLATFORMS) t.is(pkg.optionalDependencies[ibl.packageName(key)], pkg.version, key);
  for (const [key, flavours] of Object.entries(ibl.GPU_FLAVOURS)) {
    for (const f of flavours) {
      t.is(pkg.peerDependencies[ibl.packageName(key, f)], pkg.version, `${key}-${f}`);
      t.true(pkg.peerDependenciesMeta[ibl.packageName(key, f)].optional);
    }
  }
  for (const tool of ['cmake-js', 'node-addon-api', 'tar']) t.false(tool in pkg.dependencies, `${tool} is not needed at run time`);
  t.is(pkg.scripts.install, 'node scripts/install.mjs');
});

test('the Vulkan / CUDA runtime check looks for the driver libraries', (t) => {
  const dir = tmpDir('ibl-runtime-');
  t.false(ibl.gpuRuntimePresent('cuda', { LD_LIBRARY_PATH: dir }, 'darwin'), 'no GPU flavours on macOS');
  fs.writeFileSync(path.join(dir, 'libvulkan.so.1'), '');
  t.true(ibl.gpuRuntimePresent('vulkan', { LD_LIBRARY_PATH: dir }, 'linux'));
});

test('the source build wins over a platform package: its version is not even checked', (t) => {
  t.is(ibl.addonSource().kind, 'source');
  t.true(ibl.addonCandidates({}).every((p) => !p.includes('@imagebind-llm')));
});
