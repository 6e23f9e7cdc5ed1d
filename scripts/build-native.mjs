// Builds the native addon from source: unpacks the pinned llama.cpp source, then runs cmake-js.
// (`npm install` runs scripts/install.mjs, which builds only when no prebuilt package loads.)
//
// Build options (environment variable, or the same name as npm config, e.g.
// `npm install --imagebind-llm-vulkan=true` sets npm_config_imagebind_llm_vulkan):
//   IMAGEBIND_LLM_CUDA=1         build ggml's CUDA backend (needs the CUDA toolkit)
//   IMAGEBIND_LLM_VULKAN=1       build ggml's Vulkan backend (needs the Vulkan headers/loader and glslc)
//   IMAGEBIND_LLM_METAL=0|1      Metal backend (default: on on macOS)
//   IMAGEBIND_LLM_NATIVE=0       do not tune the CPU backend for this machine's SIMD (portable build)
//   IMAGEBIND_LLM_CPU_VARIANTS=1 build every per-microarchitecture CPU module (what the packages ship)
//   IMAGEBIND_LLM_AMX=1          keep ggml's Intel AMX kernels in a native build (off: some VMs trap on AMX)
//   IMAGEBIND_LLM_BUILD_TOOLS=0  skip the C++ driver build/native/ibl-driver (built by default)
//   IMAGEBIND_LLM_JOBS=N         parallel compile jobs (default: number of cores)
//   IMAGEBIND_LLM_SKIP_BUILD=1   do nothing (e.g. when a prebuilt addon is provided)
//   IMAGEBIND_LLM_DEBUG=1        Debug configuration
// The build directory (build/native) is kept: rebuilding after a change to our C++ recompiles only
// our sources, not llama.cpp. The addon, libllama, libggml and the backend modules go to build/Release.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { ensureLlamaSource } from './llama-source.mjs';

export const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const require = createRequire(path.join(root, 'package.json'));

export function option(name) {
  const env = process.env[name];
  if (env !== undefined && env !== '') return env;
  const npmName = `npm_config_${name.toLowerCase()}`;
  const npmVal = process.env[npmName];
  return npmVal !== undefined && npmVal !== '' ? npmVal : undefined;
}

export function flag(name, dflt) {
  const v = option(name);
  if (v === undefined) return dflt;
  return !/^(0|false|off|no)$/i.test(v);
}

const onOff = (b) => (b ? 'ON' : 'OFF');

/** The CMake options the environment asks for; `overrides` win (the prebuild script's flavours). */
export function buildOptions(overrides = {}) {
  return {
    IBL_CUDA: onOff(flag('IMAGEBIND_LLM_CUDA', false)),
    IBL_VULKAN: onOff(flag('IMAGEBIND_LLM_VULKAN', false)),
    IBL_METAL: onOff(flag('IMAGEBIND_LLM_METAL', process.platform === 'darwin')),
    IBL_NATIVE: onOff(flag('IMAGEBIND_LLM_NATIVE', true)),
    IBL_CPU_ALL_VARIANTS: onOff(flag('IMAGEBIND_LLM_CPU_VARIANTS', false)),
    IBL_BUILD_TOOLS: onOff(flag('IMAGEBIND_LLM_BUILD_TOOLS', true)),
    IBL_AMX: onOff(flag('IMAGEBIND_LLM_AMX', false)),
    ...overrides,
  };
}

function resolveBuildTool(name) {
  try {
    return require.resolve(`${name}/package.json`);
  } catch {
    throw new Error(`building from source needs ${name}, which is not installed. In your project: ` +
      '`npm install --save-dev cmake-js@8 node-addon-api@8 tar@7`, then `npm rebuild imagebind-llm --build-from-source`. ' +
      'README.md lists the other requirements (CMake >= 3.19, a C++17 compiler, git).');
  }
}

/**
 * Configures and builds with cmake-js. outDir: the CMake build directory; libDir: where the addon and
 * its libraries go (default build/Release, where the loader looks for a source build); target: one
 * CMake target instead of all.
 */
export async function buildNative({ outDir = path.join(root, 'build', 'native'), libDir, overrides = {}, target, log = true } = {}) {
  const started = Date.now();
  const llamaDir = await ensureLlamaSource();
  resolveBuildTool('node-addon-api');
  const defs = { LLAMA_CPP_DIR: llamaDir, ...buildOptions(overrides) };
  if (libDir) defs.IBL_LIB_DIR = libDir;
  const jobs = Number(option('IMAGEBIND_LLM_JOBS')) || (os.availableParallelism?.() ?? os.cpus().length);
  const cmakeJs = path.join(path.dirname(resolveBuildTool('cmake-js')), 'bin', 'cmake-js');
  const common = ['--out', outDir, '--parallel', String(jobs), '--log-level', 'warn'];
  if (flag('IMAGEBIND_LLM_DEBUG', false)) common.push('--config', 'Debug');
  for (const [k, v] of Object.entries(defs)) common.push(`--CD${k}=${v}`);
  const shown = Object.entries(defs).filter(([k]) => k !== 'LLAMA_CPP_DIR').map(([k, v]) => `${k}=${v}`).join(' ');
  if (log) console.error(`[imagebind-llm] building the addon (${shown}, ${jobs} jobs)`);
  const run = (verb, extra = []) => {
    const r = spawnSync(process.execPath, [cmakeJs, verb, ...common, ...extra], { cwd: root, stdio: 'inherit' });
    if (r.status !== 0) {
      throw new Error('native build failed; see the output above. README.md lists the requirements (CMake >= 3.19, a C++17 compiler, git).');
    }
  };
  // cmake-js's build configures only a new build folder: other options (Vulkan on, say) for an existing
  // one must configure it again, or they would be silently ignored.
  const stamp = path.join(outDir, '.imagebind-llm-options.json');
  const wanted = JSON.stringify(defs);
  if (fs.existsSync(path.join(outDir, 'CMakeCache.txt')) && (!fs.existsSync(stamp) || fs.readFileSync(stamp, 'utf8') !== wanted)) run('configure');
  run('build', target ? ['--target', target] : []);
  fs.writeFileSync(stamp, wanted);
  if (log) console.error(`[imagebind-llm] addon built in ${((Date.now() - started) / 1000).toFixed(0)} s`);
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  if (flag('IMAGEBIND_LLM_SKIP_BUILD', false)) {
    console.error('[imagebind-llm] IMAGEBIND_LLM_SKIP_BUILD set: not building the addon');
  } else {
    buildNative().catch((e) => { console.error(`[imagebind-llm] ${e.message}`); process.exit(1); });
  }
}
