// What a user gets from npm, checked without a compiler: installs the packed main package and this
// machine's platform package (from dist/, made by `npm run prebuild`) into a fresh temporary project
// with --offline and a PATH that holds only node, npm and ffmpeg (no C/C++ compiler, cmake or git),
// then runs `npx imagebind-llm info` and `npx imagebind-llm demo` there. Prints the install time and
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

function which(cmd) {
  const r = spawnSync('sh', ['-c', `command -v ${cmd}`], { encoding: 'utf8' });
  return r.status === 0 ? r.stdout.trim() : null;
}

// A bin folder with only what a user without build tools has.
function minimalPath(dir) {
  const bin = path.join(dir, 'bin');
  fs.mkdirSync(bin);
  for (const cmd of ['node', 'npm', 'npx', 'ffmpeg', 'sh']) {
    const p = which(cmd);
    if (p) fs.symlinkSync(fs.realpathSync(p), path.join(bin, cmd));
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
const env = { PATH: minimalPath(work), HOME: process.env.HOME, npm_config_cache: process.env.npm_config_cache ?? path.join(os.homedir(), '.npm') };
for (const tool of ['cc', 'gcc', 'c++', 'g++', 'clang', 'cmake', 'git']) {
  if (spawnSync('sh', ['-c', `command -v ${tool}`], { env }).status === 0) throw new Error(`${tool} is on the check's PATH`);
}
const npm = (args, opts = {}) => execFileSync('npm', args, { cwd: project, env, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], ...opts });

const started = Date.now();
npm(['install', '--offline', '--no-audit', '--no-fund', main.file, cpu.file]);
const installSeconds = (Date.now() - started) / 1000;
const nm = path.join(project, 'node_modules');
const isFfmpeg = (p) => /node_modules[\\/](ffmpeg-static|@ffmpeg-installer)$/.test(p);
const size = { total: duBytes(nm), withoutFfmpeg: duBytes(nm, isFfmpeg) };
const info = JSON.parse(execFileSync('npx', ['--offline', 'imagebind-llm', 'info', '--json'], { cwd: project, env, encoding: 'utf8' }));
if (info.addon.kind !== 'prebuilt') throw new Error(`the installed package loaded a ${info.addon.kind} addon, not the prebuilt one`);
const demoStarted = Date.now();
const demo = JSON.parse(execFileSync('npx', ['--offline', 'imagebind-llm', 'demo', '--dir', path.join(work, 'demo'), '--json'], { cwd: project, env, encoding: 'utf8' }));
if (!demo.ask || !demo.ask.tokens.length) throw new Error('the demo did not generate an answer');
const report = {
  packages: { main: { packed: main.size, unpacked: main.unpackedSize }, [cpu.name]: { packed: cpu.size, unpacked: cpu.unpackedSize } },
  installSeconds, installedBytes: size, cpuVariant: info.modules.cpuVariant, addon: info.addonPath,
  demoSeconds: (Date.now() - demoStarted) / 1000,
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
