// The LLM fixtures (tiny-a) converted with our converters, and the ImageBind embeddings of an LLM
// case's inputs: shared by the CPU suite (llm.test.mjs) and the device suite (devices.test.mjs).
import fs from 'node:fs';
import path from 'node:path';
import { assertClose, caseByName, compare, fixturePath, imageToClip, readNpy, tinyA } from './fixtures.mjs';

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

/**
 * Two sessions over one model, each with its own case's injection (cases `image` and `point`), decoded
 * a token at a time in turn: returns each session's 12 greedy tokens and the fixtures' single-context ones.
 */
export async function interleavedGreedy(ibl, llm, encoderPath, cases, device = 'cpu') {
  const [a, b] = [cases[0], cases.find((c) => c.name === 'point')];
  const va = await llm.visualFromEmbeddings(...Object.values(await caseEmbeddings(ibl, encoderPath, a, device)), false);
  const vb = await llm.visualFromEmbeddings(...Object.values(await caseEmbeddings(ibl, encoderPath, b, device)), false);
  const sa = await llm.createSession({ contextSize: 512 });
  const sb = await llm.createSession({ contextSize: 512 });
  try {
    // Turn 1: each prompt with one token generated, then both continue a token at a time, alternating.
    const got = [[], []];
    let ra = await sa.ask(a.prompt, { raw: true, visual: va, temperature: 0, maxTokens: 1 });
    let rb = await sb.ask(b.prompt, { raw: true, visual: vb, temperature: 0, maxTokens: 1 });
    got[0].push(...ra.tokens); got[1].push(...rb.tokens);
    for (let i = 1; i < 12; i++) {
      ra = await sa.continue({ temperature: 0, maxTokens: 1 });
      rb = await sb.continue({ temperature: 0, maxTokens: 1 });
      got[0].push(...ra.tokens); got[1].push(...rb.tokens);
    }
    const want = [a, b].map((c) => JSON.parse(fs.readFileSync(fixturePath(c.expected.greedy), 'utf8')).no_knn.tokens);
    return { got, want };
  } finally {
    sa.dispose();
    sb.dispose();
  }
}

/**
 * Asks every case with inputs, with and without the kNN cache, greedily: asserts the prompt tokens, the
 * prompt logits (tolerance `tol`, as assertClose takes it), each step's logits while the generated
 * prefix is the reference's (cosine ≥ stepCos) and, unless `tokensMayDiffer`, the 12 greedy tokens.
 * Returns one line of figures per run.
 */
export async function checkCases(t, ibl, llm, encoderPath, cases, { tol, stepCos, tokensMayDiffer = false, device = 'cpu', what = '' }) {
  const lines = [];
  for (const c of cases) {
    const { embeddings, weights } = await caseEmbeddings(ibl, encoderPath, c, device);
    const greedy = JSON.parse(fs.readFileSync(fixturePath(c.expected.greedy), 'utf8'));
    for (const knn of [false, true]) {
      const k = c.expected.knn_search;
      const v = await llm.visualFromEmbeddings(embeddings, weights, knn ? { k: k.cache_size, t: k.cache_t, weight: k.cache_weight } : false);
      const s = await llm.createSession({ contextSize: 512 });
      try {
        const r = await s.ask(c.prompt, { raw: true, visual: v, temperature: 0, maxTokens: 12, logits: true, stepLogits: true });
        const name = `${c.name}${knn ? ' knn' : ''}${what}`;
        t.deepEqual(r.promptTokens, c.prompt_tokens);
        const g = greedy[knn ? 'knn' : 'no_knn'];
        const cmp = assertClose(t, r.logits, readNpy(fixturePath(knn ? c.expected.logits_knn : c.expected.logits)).data, tol, `${name} logits`);
        const steps = readNpy(fixturePath(g.step_logits));
        const n = llm.info.nVocab;
        // Step i's logits are comparable while the generated prefix is the reference's (q8_0 may diverge).
        let same = 0;
        while (same < r.tokens.length && r.tokens[same] === g.tokens[same]) same++;
        let worst = 1;
        r.stepLogits.forEach((row, i) => { if (i < steps.shape[0] && i <= same) worst = Math.min(worst, compare(row, steps.data.subarray(i * n, (i + 1) * n)).cosine); });
        if (!tokensMayDiffer) t.deepEqual(r.tokens, g.tokens, `${name} greedy tokens`);
        t.true(worst >= stepCos, `${name} step logits cosine ${worst}`);
        lines.push(`${c.name}${knn ? ' +knn' : ''}: logits cosine ${cmp.cosine.toFixed(7)}, max diff ${cmp.relDiff.toExponential(2)} of max; worst step cosine ${worst.toFixed(7)}; tokens ${same === g.tokens.length ? 'identical' : `identical for ${same} of ${g.tokens.length}`}`);
      } finally {
        s.dispose();
      }
    }
  }
  return lines;
}
