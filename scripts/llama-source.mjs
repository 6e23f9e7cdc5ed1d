// Unpacks the pinned llama.cpp source from node-llama-cpp's npm tarball into deps/llama.cpp.
//
// We need node-llama-cpp only for llama/gitRelease.bundle (a git bundle of the llama.cpp release it
// was built with), not for its prebuilt binaries, so it is not a dependency: installing it would pull
// in every GPU flavour of its binaries and run its own postinstall. Instead we `npm pack` the exact
// pinned version (npm registry only, served from npm's cache when offline), check its integrity,
// and take the bundle out of it. An already-installed node-llama-cpp of the same version is used as is.
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const pkg = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8'));
const pin = pkg.imagebindLlm.llamaCppSource;
const depsDir = path.join(root, 'deps');
export const llamaDir = path.join(depsDir, 'llama.cpp');
const stampPath = path.join(llamaDir, '.imagebind-llm-source.json');
const patchDir = path.join(root, 'native', 'patches');

function log(msg) { process.stderr.write(`[imagebind-llm] ${msg}\n`); }

function run(cmd, args, opts = {}) {
  const r = spawnSync(cmd, args, { encoding: 'utf8', ...opts });
  if (r.error) throw new Error(`could not run ${cmd}: ${r.error.message}`);
  if (r.status !== 0) {
    throw new Error(`${cmd} ${args.join(' ')} failed (exit ${r.status}):\n${r.stderr || r.stdout}`);
  }
  return r.stdout;
}

function patchFiles() {
  if (!fs.existsSync(patchDir)) return [];
  return fs.readdirSync(patchDir).filter((f) => f.endsWith('.patch')).sort().map((f) => path.join(patchDir, f));
}

function patchesHash() {
  const h = createHash('sha256');
  for (const f of patchFiles()) h.update(path.basename(f)).update(fs.readFileSync(f));
  return h.digest('hex');
}

function wantedStamp() {
  return { package: pin.package, version: pin.version, commit: pin.commit, patches: patchesHash() };
}

function readStamp() {
  try {
    return JSON.parse(fs.readFileSync(stampPath, 'utf8'));
  } catch {
    return null;
  }
}

function isUpToDate() {
  const have = readStamp();
  const want = wantedStamp();
  return !!have && Object.keys(want).every((k) => have[k] === want[k]);
}

// Same pinned source, other patches: restore the files the old patches touched and apply the new
// ones in place, so only those files change (and recompile).
function repatch() {
  const have = readStamp();
  const want = wantedStamp();
  if (!have || have.package !== want.package || have.version !== want.version || have.commit !== want.commit) return false;
  log('llama.cpp patches changed: re-applying them');
  run('git', ['checkout', '--quiet', '--', '.'], { cwd: llamaDir });
  run('git', ['clean', '-fdq', '-e', path.basename(stampPath)], { cwd: llamaDir });
  applyPatches(llamaDir);
  fs.writeFileSync(stampPath, JSON.stringify(want, null, 2) + '\n');
  return true;
}

function applyPatches(dir) {
  for (const p of patchFiles()) {
    log(`applying ${path.basename(p)}`);
    try {
      run('git', ['apply', '--whitespace=nowarn', p], { cwd: dir });
    } catch (e) {
      throw new Error(`patch ${path.relative(root, p)} no longer applies to llama.cpp ${pin.commit}: ${e.message}`);
    }
  }
}

// An installed node-llama-cpp of exactly the pinned version, if there is one.
function installedBundle() {
  const require = createRequire(path.join(root, 'package.json'));
  try {
    const pj = require.resolve(`${pin.package}/package.json`);
    const v = JSON.parse(fs.readFileSync(pj, 'utf8')).version;
    const bundle = path.join(path.dirname(pj), pin.bundle);
    if (v === pin.version && fs.existsSync(bundle)) return bundle;
  } catch { /* not installed */ }
  return null;
}

function npmCommand() {
  // Inside an npm lifecycle script npm_execpath points at npm's own CLI: use the same npm.
  const execpath = process.env.npm_execpath;
  if (execpath && /npm-cli\.js$/.test(execpath)) return [process.execPath, [execpath]];
  return [process.platform === 'win32' ? 'npm.cmd' : 'npm', []];
}

async function packedBundle() {
  const workDir = path.join(depsDir, 'pack');
  fs.mkdirSync(workDir, { recursive: true });
  const spec = `${pin.package}@${pin.version}`;
  const tgz = path.join(workDir, `${pin.package}-${pin.version}.tgz`);
  if (!fs.existsSync(tgz)) {
    log(`fetching ${spec} from the npm registry (source bundle only)`);
    const [cmd, pre] = npmCommand();
    run(cmd, [...pre, 'pack', spec, '--pack-destination', workDir, '--silent'], {
      cwd: workDir, shell: process.platform === 'win32',
    });
  }
  const digest = 'sha512-' + createHash('sha512').update(fs.readFileSync(tgz)).digest('base64');
  if (digest !== pin.integrity) {
    fs.rmSync(tgz, { force: true });
    throw new Error(`${tgz}: integrity mismatch (expected ${pin.integrity}, got ${digest})`);
  }
  const out = path.join(workDir, 'extract');
  fs.rmSync(out, { recursive: true, force: true });
  fs.mkdirSync(out, { recursive: true });
  const tar = await import('tar');
  await tar.x({ file: tgz, cwd: out, filter: (p) => p === `package/${pin.bundle}` });
  const bundle = path.join(out, 'package', pin.bundle);
  if (!fs.existsSync(bundle)) throw new Error(`${tgz}: has no ${pin.bundle}`);
  return bundle;
}

function cloneBundle(bundle) {
  const tmp = `${llamaDir}.tmp`;
  fs.rmSync(tmp, { recursive: true, force: true });
  log(`unpacking llama.cpp ${pin.tag} (${pin.commit.slice(0, 12)}) from ${path.relative(root, bundle) || bundle}`);
  run('git', ['clone', '--quiet', '--no-checkout', bundle, tmp]);
  run('git', ['-c', 'advice.detachedHead=false', 'checkout', '--quiet', pin.commit], { cwd: tmp });
  const head = run('git', ['rev-parse', 'HEAD'], { cwd: tmp }).trim();
  if (head !== pin.commit) throw new Error(`llama.cpp bundle is at ${head}, expected ${pin.commit}`);
  applyPatches(tmp);
  fs.rmSync(llamaDir, { recursive: true, force: true });
  fs.renameSync(tmp, llamaDir);
  fs.writeFileSync(stampPath, JSON.stringify(wantedStamp(), null, 2) + '\n');
}

export async function ensureLlamaSource() {
  if (process.env.IMAGEBIND_LLM_LLAMA_DIR) return path.resolve(process.env.IMAGEBIND_LLM_LLAMA_DIR);
  if (isUpToDate()) return llamaDir;
  if (repatch()) return llamaDir;
  const bundle = process.env.IMAGEBIND_LLM_LLAMA_BUNDLE || installedBundle() || await packedBundle();
  cloneBundle(bundle);
  // The tarball is in npm's cache; keep only the unpacked source.
  fs.rmSync(path.join(depsDir, 'pack'), { recursive: true, force: true });
  return llamaDir;
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  ensureLlamaSource().then((dir) => console.log(dir), (e) => { log(e.message); process.exit(1); });
}
