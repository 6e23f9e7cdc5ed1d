// npm's install hook. With a prebuilt platform package that loads (the usual case: npm installed
// @imagebind-llm/<platform>-<arch> as an optional dependency) it does nothing, so npm's approval of
// install scripts is not needed. Otherwise, or with --build-from-source / IMAGEBIND_LLM_FROM_SOURCE=1,
// it builds the addon from source (scripts/build-native.mjs).
import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';
import { buildNative, flag, root } from './build-native.mjs';

const require = createRequire(import.meta.url);
const log = (msg) => console.error(`[imagebind-llm] ${msg}`);

// What a published package would load, from its compiled lib/ (a git checkout has none before `prepare`).
function prebuiltThatLoads() {
  const lib = path.join(root, 'lib', 'index.js');
  if (!fs.existsSync(lib)) return null;
  const ibl = require(lib);
  const source = ibl.addonSource();
  if (source.kind !== 'prebuilt') return null;
  const modules = ibl.backendModules();  // loads the addon and its backends: proves they work here
  return `${source.package.name} ${source.package.version} (CPU variant ${modules.cpuVariant}` +
    `${source.gpuPackages.length ? `, with ${source.gpuPackages.map((g) => g.name).join(', ')}` : ''})`;
}

async function main() {
  if (flag('IMAGEBIND_LLM_SKIP_BUILD', false)) {
    log('IMAGEBIND_LLM_SKIP_BUILD set: not building the addon');
    return;
  }
  const fromSource = flag('IMAGEBIND_LLM_FROM_SOURCE', false) || flag('BUILD_FROM_SOURCE', false);
  if (!fromSource) {
    try {
      const prebuilt = prebuiltThatLoads();
      if (prebuilt) {
        log(`using the prebuilt addon from ${prebuilt}`);
        return;
      }
    } catch (e) {
      if (e.code === 'ERR_ADDON_VERSION') throw e;
      log(`the prebuilt addon does not load here (${e.message.split('\n')[0]}): building from source`);
    }
  }
  await buildNative();
}

main().catch((e) => { log(e.message); process.exit(1); });
