// The LLM fixtures (tiny-a) converted with our converters, and the ImageBind embeddings of an LLM
// case's inputs: shared by the CPU suite (llm.test.mjs) and the device suite (devices.test.mjs).
import path from 'node:path';
import { caseByName, fixturePath, imageToClip, readNpy, tinyA } from './fixtures.mjs';

/** Converts the encoder (f32), the LLM at each type and the kNN cache (f32) into dir. */
export async function convertLlmFixtures(ibl, dir, types) {
  const files = { encoder: path.join(dir, 'encoder-f32.gguf'), cache: path.join(dir, 'cache-f32.gguf') };
  await ibl.convertImagebind(path.join(tinyA, 'imagebind.pth'), files.encoder, { type: 'f32', config: path.join(tinyA, 'imagebind.config.json') });
  for (const type of types) {
    files[type] = await ibl.convertLlm({ llamaDir: path.join(tinyA, 'llama'), adapter: path.join(tinyA, 'adapter.pth'), outPrefix: path.join(dir, `tiny-${type}`), type });
  }
  await ibl.convertCache(path.join(tinyA, 'knn.index'), files.cache, { type: 'f32' });
  return files;
}

/** The ImageBind embeddings of a case's inputs, from the fixture input tensors (the fixtures' e_i). */
export async function caseEmbeddings(ibl, encoderPath, c, device = 'cpu') {
  const enc = await ibl.loadEncoder(encoderPath, { threads: 2, device });
  try {
    const out = [];
    for (const inp of c.inputs) {
      const ic = caseByName(inp.imagebind_case);
      const x = readNpy(fixturePath(ic.input));
      let data = x.data;
      if (ic.input_tiling) {
        const reps = ic.input_tiling.repeats;
        data = new Float32Array(x.data.length * reps);
        for (let r = 0; r < reps; r++) data.set(x.data, r * x.data.length);
      }
      if (inp.imagebind_modality === 'vision' && x.shape.length === 4) data = imageToClip(x.data, x.shape);
      if (inp.imagebind_modality === 'point') {
        const [r] = await enc.embed([{ kind: 'point', path: path.join(tinyA, '..', 'assets', 'airplane.npy') }]);
        out.push(r.embedding);
        continue;
      }
      const [r] = await enc.embed([{ kind: 'tensor', modality: inp.imagebind_modality, tensor: { data, shape: [data.length] } }]);
      out.push(r.embedding);
    }
    return { embeddings: out, weights: c.inputs.map((i) => i.weight) };
  } finally {
    enc.dispose();
  }
}
