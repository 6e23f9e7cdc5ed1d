// Builds this machine's prebuilt platform packages and packs them, with the main package, into dist/:
//   @imagebind-llm/<platform>-<arch>           the addon, libllama, libggml and every CPU backend variant
//                                              (+ Metal and BLAS on macOS); the best variant is chosen at run time
//   @imagebind-llm/<platform>-<arch>-vulkan    ggml's Vulkan backend module (when glslc and the Vulkan SDK are here)
//   @imagebind-llm/<platform>-<arch>-cuda      ggml's CUDA backend module (when nvcc is here)
// A GPU flavour holds only its backend module: the loader adds it to the CPU package's addon when its
// runtime (Vulkan loader, CUDA driver) is installed.
//
//   node scripts/prebuild.mjs [--flavours cpu,vulkan,cuda] [--out dist] [--no-main] [--gpu-from <dir>]
// Default flavours: cpu, and each GPU flavour whose compiler is on the PATH. --gpu-from takes the GPU
// modules from a source build of this same checkout (e.g. build/Release of IMAGEBIND_LLM_VULKAN=1 npm
// run build:native) instead of compiling them again: a backend module's compile options do not depend
// on the CPU options, so it is the same file (CI uses this to save the Vulkan shaders' second build).
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { buildNative, root } from './build-native.mjs';

const log = (msg) => console.error(`[prebuild] ${msg}`);
const pkg = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8'));
const key = `${process.platform}-${process.arch}`;
const SCOPE = '@imagebind-llm';
const MOD = process.platform === 'win32' ? { pre: '', ext: '.dll' } : { pre: 'lib', ext: '.so' };
const SHARED_EXT = { linux: '.so', darwin: '.dylib', win32: '.dll' }[process.platform];

function onPath(cmd) {
  return spawnSync(cmd, ['--version'], { stdio: 'ignore', shell: process.platform === 'win32' }).status === 0;
}

function packageJson(name, flavour) {
  const out = {
    name,
    version: pkg.version,
    description: flavour
      ? `imagebind-llm: ggml's ${flavour} backend for ${key} (used by imagebind-llm when the ${flavour} runtime is installed)`
      : `imagebind-llm: the prebuilt native addon for ${key}, with every CPU backend variant`,
    license: pkg.license,
    os: [process.platform],
    cpu: [process.arch],
    files: ['bin/'],
  };
  if (process.platform === 'linux') out.libc = ['glibc'];
  return out;
}

function run(cmd, args, opts = {}) {
  const r = spawnSync(cmd, args, { encoding: 'utf8', shell: process.platform === 'win32', ...opts });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed:\n${r.stderr || r.stdout}`);
  return r.stdout;
}

// Debug symbols are most of a Release .so's size; the packages ship without them.
function strip(file) {
  if (process.platform === 'linux') run('strip', ['--strip-unneeded', file]);
  else if (process.platform === 'darwin') run('strip', ['-x', file]);
}

function stage(name, flavour, files) {
  const dir = path.join(root, 'build', 'prebuild', 'packages', name.replace('/', '+'));
  fs.rmSync(dir, { recursive: true, force: true });
  fs.mkdirSync(path.join(dir, 'bin'), { recursive: true });
  for (const f of files) {
    const dst = path.join(dir, 'bin', path.basename(f));
    fs.copyFileSync(f, dst);
    strip(dst);
  }
  fs.writeFileSync(path.join(dir, 'package.json'), JSON.stringify(packageJson(name, flavour), null, 2) + '\n');
  fs.writeFileSync(path.join(dir, 'README.md'),
    `# ${name}\n\nPrebuilt native code of [imagebind-llm](https://www.npmjs.com/package/imagebind-llm) ${pkg.version} for ${key}` +
    `${flavour ? ` (ggml's ${flavour} backend)` : ''}. Install \`imagebind-llm\`, not this package: npm picks it for your platform.\n`);
  return dir;
}

function pack(dir, out) {
  const json = JSON.parse(run('npm', ['pack', dir, '--pack-destination', out, '--json'], { cwd: out }));
  const { filename, size, unpackedSize } = json[0];
  log(`${filename}: ${(size / 1e6).toFixed(2)} MB packed, ${(unpackedSize / 1e6).toFixed(2)} MB unpacked`);
  return { file: path.join(out, filename), size, unpackedSize };
}

async function buildCpu() {
  const bin = path.join(root, 'build', 'prebuild', `${key}-cpu`, 'bin');
  await buildNative({
    outDir: path.join(root, 'build', 'prebuild', `${key}-cpu`),
    libDir: bin,
    overrides: { IBL_CPU_ALL_VARIANTS: 'ON', IBL_NATIVE: 'OFF', IBL_VULKAN: 'OFF', IBL_CUDA: 'OFF', IBL_BUILD_TOOLS: 'OFF' },
  });
  const files = fs.readdirSync(bin).filter((f) =>
    f === 'imagebind_llm.node' || f.endsWith(SHARED_EXT) || (f.startsWith(`${MOD.pre}ggml-`) && f.endsWith(MOD.ext)));
  return files.map((f) => path.join(bin, f));
}

async function buildGpu(flavour, from) {
  if (from) {
    const file = path.resolve(root, from, `${MOD.pre}ggml-${flavour}${MOD.ext}`);
    if (!fs.existsSync(file)) throw new Error(`--gpu-from: ${file} does not exist`);
    return [file];
  }
  const dir = path.join(root, 'build', 'prebuild', `${key}-${flavour}`);
  const target = `ggml-${flavour}`;
  // Only the backend module: it links against the CPU package's libggml-base (same source, same options).
  await buildNative({
    outDir: dir,
    libDir: path.join(dir, 'bin'),
    overrides: { IBL_CPU_ALL_VARIANTS: 'OFF', IBL_NATIVE: 'OFF', IBL_VULKAN: flavour === 'vulkan' ? 'ON' : 'OFF',
      IBL_CUDA: flavour === 'cuda' ? 'ON' : 'OFF', IBL_BUILD_TOOLS: 'OFF' },
    target,
  });
  return [path.join(dir, 'bin', `${MOD.pre}${target}${MOD.ext}`)];
}

async function main() {
  const { values } = parseArgs({ options: {
    flavours: { type: 'string' }, out: { type: 'string', default: 'dist' }, 'no-main': { type: 'boolean' }, 'gpu-from': { type: 'string' },
  } });
  const flavours = values.flavours ? values.flavours.split(',') : ['cpu', ...(onPath('glslc') ? ['vulkan'] : []), ...(onPath('nvcc') ? ['cuda'] : [])];
  const out = path.resolve(root, values.out);
  fs.mkdirSync(out, { recursive: true });
  for (const [dep, version] of Object.entries(pkg.optionalDependencies ?? {})) {
    if (dep.startsWith(`${SCOPE}/`) && version !== pkg.version) throw new Error(`package.json: ${dep} is pinned to ${version}, not ${pkg.version}`);
  }
  const results = [];
  for (const flavour of flavours) {
    const started = Date.now();
    const name = `${SCOPE}/${key}${flavour === 'cpu' ? '' : `-${flavour}`}`;
    log(`building ${name}`);
    const files = flavour === 'cpu' ? await buildCpu() : await buildGpu(flavour, values['gpu-from']);
    results.push({ name, ...pack(stage(name, flavour === 'cpu' ? undefined : flavour, files), out), seconds: Math.round((Date.now() - started) / 1000) });
  }
  if (!values['no-main']) results.push({ name: pkg.name, ...pack(root, out) });
  fs.writeFileSync(path.join(out, 'prebuild.json'), JSON.stringify(results, null, 2) + '\n');
}

main().catch((e) => { log(e.message); process.exit(1); });
