// The tiny-a models converted once per test file: an f32 encoder, an f32 LLM + bind file, a cache.
import path from 'node:path';
import { createRequire } from 'node:module';
import { libIndex, tmpDir } from './paths.mjs';
import { tinyA } from './fixtures.mjs';

const require = createRequire(import.meta.url);
const ibl = require(libIndex);

export async function tinyModels(type = 'f32') {
  const dir = tmpDir('ibl-models-');
  const encoder = path.join(dir, 'encoder.gguf');
  await ibl.convertImagebind(path.join(tinyA, 'imagebind.pth'), encoder, { type: 'f32', config: path.join(tinyA, 'imagebind.config.json') });
  const llm = await ibl.convertLlm({ llamaDir: path.join(tinyA, 'llama'), adapter: path.join(tinyA, 'adapter.pth'), outPrefix: path.join(dir, `tiny-${type}`), type });
  const cache = path.join(dir, 'cache.gguf');
  await ibl.convertCache(path.join(tinyA, 'knn.index'), cache, { type: 'f32' });
  return { dir, encoder, model: llm.llm, bind: llm.bind, cache };
}
