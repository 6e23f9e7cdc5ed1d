// What a user gets from npm, checked without a compiler: installs the packed main package and this
// machine's platform package (from dist/, made by `npm run prebuild`) into a fresh temporary project
// with --offline and a PATH without any C/C++ compiler, linker, make, cmake or git,
// then runs `npx imagebind-llm info` and `npx imagebind-llm demo` there (with the best CPU variant, then
// with the sse42 one forced), and adds the Vulkan flavour package when there is one. Prints the install time and
// the installed size (with and without the optional ffmpeg packages); fails when a figure is over the
// budget of the README (CPU package ≤ 15 MB packed, install ≤ 30 MB without ffmpeg) or a step fails.
//
//   node scripts/check-package-install.mjs [dist]
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const dist = path.resolve(root, process.argv[2] ?? 'dist');
const results = JSON.parse(fs.readFileSync(path.join(dist, 'prebuild.json'), 'utf8'));
const key = `${process.platform}-${process.arch}`;
const main = results.find((r) => r.name === 'imagebind-llm');
const cpu = results.find((r) => r.name === `@imagebind-llm/${key}`);
if (!main || !cpu) throw new Error(`${dist}/prebuild.json lacks the main package or @imagebind-llm/${key}: run \`npm run prebuild\``);
const MB = 1e6;
const BUDGET = { cpuPacked: 15 * MB, installNoFfmpeg: 30 * MB };

// What a user without build tools has: every command on this PATH except compilers, linkers, build
// tools and git (packages' own install scripts still need sh, chmod and the like).
const BUILD_TOOLS = /^(cc|c\+\+|cpp|gcc|g\+\+|clang|clang\+\+|ld|ld\..*|make|gmake|ninja|cmake|ctest|cpack|ccache|git|git-.*|[a-z0-9_]+-linux-gnu-.*|gcc-.*|g\+\+-.*|cpp-.*|clang-.*|nvcc|glslc)$/;
function userPath(dir) {
  const bin = path.join(dir, 'bin');
  fs.mkdirSync(bin);
  for (const d of (process.env.PATH ?? '').split(path.delimiter)) {
    let names = [];
    try { names = fs.readdirSync(d); } catch { continue; }
    for (const name of names) {
      if (BUILD_TOOLS.test(name) || fs.existsSync(path.join(bin, name))) continue;
      try { fs.symlinkSync(path.join(d, name), path.join(bin, name)); } catch { /* a name twice */ }
    }
  }
  return bin;
}

function duBytes(dir, skip = () => false) {
  let total = 0;
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (skip(p)) continue;
    if (e.isDirectory()) total += duBytes(p, skip);
    else if (e.isFile()) total += fs.statSync(p).size;
  }
  return total;
}

const work = fs.mkdtempSync(path.join(os.tmpdir(), 'ibl-pkg-'));
const project = path.join(work, 'project');
fs.mkdirSync(project);
fs.writeFileSync(path.join(project, 'package.json'), JSON.stringify({ name: 'ibl-install-check', version: '1.0.0', private: true }) + '\n');
const env = { PATH: userPath(work), HOME: process.env.HOME, npm_config_cache: process.env.npm_config_cache ?? path.join(os.homedir(), '.npm') };
for (const tool of ['cc', 'gcc', 'c++', 'g++', 'clang', 'cmake', 'git']) {
  if (spawnSync('sh', ['-c', `command -v ${tool}`], { env }).status === 0) throw new Error(`${tool} is on the check's PATH`);
}
const npm = (args, opts = {}) => execFileSync('npm', args, { cwd: project, env, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], ...opts });

// npm's cache holds the tarballs of the lockfile's packages but not always the registry's metadata that
// resolving versions in a new project needs: one resolution with network access fills it (what a user's
// cache has after any install), then the install itself runs offline.
const warm = path.join(work, 'warm');
fs.mkdirSync(warm);
fs.writeFileSync(path.join(warm, 'package.json'), '{"name":"warm","version":"1.0.0","private":true}\n');
execFileSync('npm', ['install', '--package-lock-only', '--ignore-scripts', '--no-audit', '--no-fund', main.file, cpu.file],
  { cwd: warm, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
const started = Date.now();
npm(['install', '--offline', '--no-audit', '--no-fund', main.file, cpu.file]);
const installSeconds = (Date.now() - started) / 1000;
const nm = path.join(project, 'node_modules');
const isFfmpeg = (p) => /node_modules[\\/](ffmpeg-static|@ffmpeg-installer)$/.test(p);
const size = { total: duBytes(nm), withoutFfmpeg: duBytes(nm, isFfmpeg) };
// npm ≥ 11 skips a dependency's install script until the user approves it; run it as an approved one
// would: it must find the prebuilt addon and build nothing.
const hook = spawnSync('node', [path.join(nm, 'imagebind-llm', 'scripts', 'install.mjs')], { cwd: path.join(nm, 'imagebind-llm'), env, encoding: 'utf8' });
if (hook.status !== 0 || !/using the prebuilt addon from @imagebind-llm\//.test(hook.stderr) || fs.existsSync(path.join(nm, 'imagebind-llm', 'build'))) {
  throw new Error(`the install script did not settle for the prebuilt addon:\n${hook.stderr}`);
}
const info = JSON.parse(execFileSync('npx', ['--offline', 'imagebind-llm', 'info', '--json'], { cwd: project, env, encoding: 'utf8' }));
if (info.addon.kind !== 'prebuilt') throw new Error(`the installed package loaded a ${info.addon.kind} addon, not the prebuilt one`);
const demoStarted = Date.now();
const demo = JSON.parse(execFileSync('npx', ['--offline', 'imagebind-llm', 'demo', '--dir', path.join(work, 'demo'), '--json'], { cwd: project, env, encoding: 'utf8' }));
if (!demo.ask || !demo.ask.tokens.length) throw new Error('the demo did not generate an answer');
// The lowest x86-64 CPU variant that still has SSE4.2, forced, runs the demo too (what an SSE4.2-only
// machine would load); then the Vulkan flavour, where it was built and the Vulkan loader is here, adds
// its device (lavapipe needs GGML_VK_VISIBLE_DEVICES, docs/DEVICES.md).
let lowVariant = null;
if (process.arch === 'x64') {
  const lowEnv = { ...env, IMAGEBIND_LLM_CPU_VARIANT: 'sse42' };
  const low = JSON.parse(execFileSync('npx', ['--offline', 'imagebind-llm', 'demo', '--dir', path.join(work, 'demo'), '--json'], { cwd: project, env: lowEnv, encoding: 'utf8' }));
  const lowInfo = JSON.parse(execFileSync('npx', ['--offline', 'imagebind-llm', 'info', '--json'], { cwd: project, env: lowEnv, encoding: 'utf8' }));
  if (lowInfo.modules.cpuVariant !== 'sse42' || !low.ask.tokens.length) throw new Error('the sse42 CPU variant did not run the demo');
  lowVariant = lowInfo.modules.cpuModule;
}
const vulkan = results.find((r) => r.name === `@imagebind-llm/${key}-vulkan`);
let vulkanDevices = null;
if (vulkan) {
  npm(['install', '--offline', '--no-audit', '--no-fund', vulkan.file]);
  const vkEnv = { ...env, GGML_VK_VISIBLE_DEVICES: process.env.GGML_VK_VISIBLE_DEVICES ?? '0' };
  const vk = JSON.parse(execFileSync('npx', ['--offline', 'imagebind-llm', 'info', '--json'], { cwd: project, env: vkEnv, encoding: 'utf8' }));
  vulkanDevices = vk.backends.filter((b) => b.name === 'Vulkan').flatMap((b) => b.devices.map((d) => `${d.name}: ${d.description}`));
  if (!vk.addon.gpuPackages.some((p) => p.name === vulkan.name)) throw new Error(`${vulkan.name} was not picked up (is libvulkan.so.1 installed?)`);
  if (!vulkanDevices.length) throw new Error(`${vulkan.name} loaded but lists no Vulkan device`);
}
const report = {
  packages: { main: { packed: main.size, unpacked: main.unpackedSize }, [cpu.name]: { packed: cpu.size, unpacked: cpu.unpackedSize } },
  installSeconds, installedBytes: size, installScript: hook.stderr.trim(), cpuVariant: info.modules.cpuVariant, addon: info.addonPath,
  demoSeconds: (Date.now() - demoStarted) / 1000,
  lowestVariantDemo: lowVariant, vulkanDevices,
};
console.log(JSON.stringify(report, null, 2));
fs.rmSync(work, { recursive: true, force: true });
const over = [];
if (cpu.size > BUDGET.cpuPacked) over.push(`${cpu.name} is ${(cpu.size / MB).toFixed(1)} MB packed (budget 15 MB)`);
if (size.withoutFfmpeg > BUDGET.installNoFfmpeg) over.push(`the install is ${(size.withoutFfmpeg / MB).toFixed(1)} MB without ffmpeg (budget 30 MB)`);
if (over.length) {
  console.error(`over budget: ${over.join('; ')}`);
  process.exit(1);
}
console.log(`package install check: ${(cpu.size / MB).toFixed(1)} MB packed CPU package, install ${installSeconds.toFixed(1)} s, ` +
  `${(size.withoutFfmpeg / MB).toFixed(1)} MB on disk without ffmpeg (${(size.total / MB).toFixed(1)} MB with), demo ran on ${info.modules.cpuVariant}`);
