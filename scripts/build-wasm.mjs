// Assembles the WebAssembly text sources under ts/ (today: ts/search/sketch-kernel.wat) into lib/,
// beside the compiled TypeScript that loads them.  wabt (the WebAssembly Binary Toolkit, compiled
// to JavaScript) is a development dependency: the published lib/ already holds the .wasm files.
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import wabtInit from 'wabt';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const SOURCES = ['search/sketch-kernel.wat'];

// Post-MVP features the kernels use: 128-bit SIMD, and a shared memory (threads).
const FEATURES = { simd: true, threads: true };

const wabt = await wabtInit();
for (const rel of SOURCES) {
  const src = path.join(root, 'ts', rel);
  const mod = wabt.parseWat(src, fs.readFileSync(src, 'utf8'), FEATURES);
  try {
    mod.validate(FEATURES);
    const out = path.join(root, 'lib', rel.replace(/\.wat$/, '.wasm'));
    fs.mkdirSync(path.dirname(out), { recursive: true });
    fs.writeFileSync(out, mod.toBinary({}).buffer);
  } finally {
    mod.destroy();
  }
}
