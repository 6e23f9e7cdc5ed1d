// Builds the native addon: unpacks the pinned llama.cpp source, then runs cmake-js.
//
// Build options (environment variable, or the same name as npm config, e.g.
// `npm install --imagebind-llm-cuda=true` sets npm_config_imagebind_llm_cuda):
//   IMAGEBIND_LLM_CUDA=1        build the ggml CUDA backend (needs the CUDA toolkit)
//   IMAGEBIND_LLM_METAL=0|1     Metal backend (default: on on macOS)
//   IMAGEBIND_LLM_NATIVE=0      do not tune the CPU backend for this machine's SIMD (portable build)
//   IMAGEBIND_LLM_AMX=1         keep ggml's Intel AMX kernels in a native build (off: some VMs trap on AMX)
//   IMAGEBIND_LLM_BUILD_TOOLS=0 skip the C++ driver build/native/ibl-driver (built by default)
//   IMAGEBIND_LLM_JOBS=N        parallel compile jobs (default: number of cores)
//   IMAGEBIND_LLM_SKIP_BUILD=1  do nothing (e.g. when a prebuilt addon is provided)
//   IMAGEBIND_LLM_DEBUG=1       Debug configuration
// The build directory (build/native) is kept: rebuilding after a change to our C++ recompiles only
// our sources, not llama.cpp.
import { spawnSync } from 'node:child_process';
import os from 'node:os';
import path from 'node:path';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { ensureLlamaSource } from './llama-source.mjs';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const require = createRequire(path.join(root, 'package.json'));

function option(name) {
  const env = process.env[name];
  if (env !== undefined && env !== '') return env;
  const npmName = `npm_config_${name.toLowerCase()}`;
  const npmVal = process.env[npmName];
  return npmVal !== undefined && npmVal !== '' ? npmVal : undefined;
}

function flag(name, dflt) {
  const v = option(name);
  if (v === undefined) return dflt;
  return !/^(0|false|off|no)$/i.test(v);
}

async function main() {
  if (flag('IMAGEBIND_LLM_SKIP_BUILD', false)) {
    console.error('[imagebind-llm] IMAGEBIND_LLM_SKIP_BUILD set: not building the addon');
    return;
  }
  const started = Date.now();
  const llamaDir = await ensureLlamaSource();
  const defs = {
    LLAMA_CPP_DIR: llamaDir,
    IBL_CUDA: flag('IMAGEBIND_LLM_CUDA', false) ? 'ON' : 'OFF',
    IBL_METAL: flag('IMAGEBIND_LLM_METAL', process.platform === 'darwin') ? 'ON' : 'OFF',
    IBL_NATIVE: flag('IMAGEBIND_LLM_NATIVE', true) ? 'ON' : 'OFF',
    IBL_BUILD_TOOLS: flag('IMAGEBIND_LLM_BUILD_TOOLS', true) ? 'ON' : 'OFF',
    IBL_AMX: flag('IMAGEBIND_LLM_AMX', false) ? 'ON' : 'OFF',
  };
  const jobs = Number(option('IMAGEBIND_LLM_JOBS')) || (os.availableParallelism?.() ?? os.cpus().length);
  const cmakeJs = path.join(path.dirname(require.resolve('cmake-js/package.json')), 'bin', 'cmake-js');
  const args = [cmakeJs, 'build', '--out', path.join(root, 'build', 'native'), '--parallel', String(jobs), '--log-level', 'warn'];
  if (flag('IMAGEBIND_LLM_DEBUG', false)) args.push('--config', 'Debug');
  for (const [k, v] of Object.entries(defs)) args.push(`--CD${k}=${v}`);
  console.error(`[imagebind-llm] building the addon (${Object.entries(defs).filter(([k]) => k !== 'LLAMA_CPP_DIR').map(([k, v]) => `${k}=${v}`).join(' ')}, ${jobs} jobs)`);
  const r = spawnSync(process.execPath, args, { cwd: root, stdio: 'inherit' });
  if (r.status !== 0) {
    console.error('[imagebind-llm] native build failed; see the output above. README.md lists the requirements (CMake >= 3.19, a C++17 compiler, git).');
    process.exit(r.status ?? 1);
  }
  console.error(`[imagebind-llm] addon built in ${((Date.now() - started) / 1000).toFixed(0)} s`);
}

main().catch((e) => { console.error(`[imagebind-llm] ${e.message}`); process.exit(1); });
