// Converts the fixtures (tiny-a) into the GGUF files scripts/gpu-check.sh checks: the encoder and the
// LLM + bind file at f32, f16 and q8_0. Run it wherever Node is, then copy the folder to the GPU machine.
//   node scripts/make-parity-files.mjs <out-dir> [fixtures-dir]
import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const ibl = createRequire(import.meta.url)(path.join(root, 'lib', 'index.js'));
const [out, fixtures = path.resolve(root, '..', 'shared', 'fixtures')] = process.argv.slice(2);
if (!out) {
  console.error('usage: node scripts/make-parity-files.mjs <out-dir> [fixtures-dir]');
  process.exit(2);
}
const tinyA = path.join(fixtures, 'tiny-a');
fs.mkdirSync(out, { recursive: true });
for (const type of ['f32', 'f16', 'q8_0']) {
  await ibl.convertImagebind(path.join(tinyA, 'imagebind.pth'), path.join(out, `encoder-${type}.gguf`), { type, config: path.join(tinyA, 'imagebind.config.json') });
  await ibl.convertLlm({ llamaDir: path.join(tinyA, 'llama'), adapter: path.join(tinyA, 'adapter.pth'), outPrefix: path.join(out, `tiny-${type}`), type });
}
console.log(`wrote ${fs.readdirSync(out).join(', ')} to ${out}`);
