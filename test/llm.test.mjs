// ImageBind-LLM end to end against the upstream fixtures (tiny-a): prompt tokens, the mixed and
// kNN-blended vectors, the bind network, logits and greedy tokens with the injection hook in llama.cpp.
import test from 'ava';
import fs from 'node:fs';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { cliPath, libIndex, tmpDir } from './helpers/paths.mjs';
import { assertClose, fixturePath, manifest, readNpy, tinyA } from './helpers/fixtures.mjs';
import { caseEmbeddings as caseEmbeddingsOf, checkCases, convertLlmFixtures, interleavedGreedy } from './helpers/llm-fixtures.mjs';

const require = createRequire(import.meta.url);
const ibl = require(libIndex);
const dir = tmpDir('ibl-llm-');
const files = {};
const TYPES = ['f32', 'f16', 'q8_0'];
const TOL = { f32: 'f32', f16: { cosine: 0.9999 }, q8_0: { cosine: 0.999 } };
const llmCases = manifest.llm_cases;
const mmCases = llmCases.filter((c) => c.inputs && c.inputs.length);
const textOnly = llmCases.find((c) => c.name === 'text_only');

test.before(async () => {
  Object.assign(files, await convertLlmFixtures(ibl, dir, TYPES));
});

async function load(type, withCache = true) {
  return ibl.ImageBindLLM.load({ model: files[type].llm, bind: files[type].bind, cache: withCache ? files.cache : undefined, encoder: files.encoder, threads: 1 });
}

const caseEmbeddings = (llm, c) => caseEmbeddingsOf(ibl, files.encoder, c);

test('the converted LLM tokenizes every fixture prompt to the fixture ids', async (t) => {
  const llm = await load('f32', false);
  t.teardown(() => llm.dispose());
  for (const c of llmCases) t.deepEqual(llm.tokenize(c.prompt), c.prompt_tokens, c.name);
  t.is(llm.info.nLayer, JSON.parse(fs.readFileSync(path.join(tinyA, 'llama', 'params.json'), 'utf8')).n_layers);
});

test('mixed vector, kNN search and blend, bind network output (f32)', async (t) => {
  const llm = await load('f32');
  t.teardown(() => llm.dispose());
  const lines = [];
  const fmt = (c) => `cosine ${c.cosine.toFixed(8)}, max diff ${c.relDiff.toExponential(2)} of max`;
  for (const c of mmCases) {
    const { embeddings, weights } = await caseEmbeddings(llm, c);
    const plain = await llm.visualFromEmbeddings(embeddings, weights, false);
    const cin = assertClose(t, plain.mixed, readNpy(fixturePath(c.expected.visual_in)).data, 'f32', `${c.name} visual_in`);
    const cv = assertClose(t, plain.visual, readNpy(fixturePath(c.expected.visual)).data, 'f32', `${c.name} visual`);
    lines.push(`${c.name}: mixed ${fmt(cin)}; bind ${fmt(cv)}`);
    const k = c.expected.knn_search;
    const knn = await llm.visualFromEmbeddings(embeddings, weights, { k: k.cache_size, t: k.cache_t, weight: k.cache_weight });
    t.deepEqual(knn.hits.map((h) => h.index), k.indices, `${c.name} neighbours`);
    knn.hits.forEach((h, i) => t.true(Math.abs(h.score - k.sims[i]) < 1e-5, `${c.name} similarity ${i}`));
    const ck = assertClose(t, knn.visual, readNpy(fixturePath(c.expected.visual_knn)).data, 'f32', `${c.name} visual_knn`);
    lines.push(`${c.name}: kNN neighbours identical; bind after blend ${fmt(ck)}`);
  }
  t.log(lines.join('\n'));
});

for (const type of TYPES) {
  test(`prompt logits and greedy generation with the injection, with and without the cache (${type})`, async (t) => {
    const llm = await load(type);
    t.teardown(() => llm.dispose());
    const lines = await checkCases(t, ibl, llm, files.encoder, mmCases,
      { tol: TOL[type], stepCos: type === 'f32' ? 0.99999 : TOL[type].cosine, tokensMayDiffer: type === 'q8_0', what: ` (${type})` });
    t.log(lines.join('\n'));
  });
}

test('text only: no injection, the plain fine-tuned model (logits and greedy tokens)', async (t) => {
  for (const type of TYPES) {
    const llm = await load(type, false);
    const s = await llm.createSession();
    const res = await s.ask(textOnly.prompt, { raw: true, temperature: 0, maxTokens: 12, logits: true });
    const greedy = JSON.parse(fs.readFileSync(fixturePath(textOnly.expected.greedy), 'utf8'));
    t.deepEqual(res.promptTokens, textOnly.prompt_tokens);
    const cmp = assertClose(t, res.logits, readNpy(fixturePath(textOnly.expected.logits)).data, TOL[type], `text_only logits (${type})`);
    t.log(`${type}: logits cosine ${cmp.cosine.toFixed(8)}, max diff ${cmp.relDiff.toExponential(2)} of max; tokens ${JSON.stringify(res.tokens) === JSON.stringify(greedy.tokens) ? 'identical' : 'differ'}`);
    if (type !== 'q8_0') t.deepEqual(res.tokens, greedy.tokens, `text_only greedy (${type})`);
    s.dispose();
    llm.dispose();
  }
});

test('two contexts over one model, each with its own image, generate interleaved and match their single-context runs', async (t) => {
  const llm = await load('f32', false);
  t.teardown(() => llm.dispose());
  const { got, want } = await interleavedGreedy(ibl, llm, files.encoder, mmCases);
  t.deepEqual(got, want);
});

test('bad model files and mismatches are clear errors', async (t) => {
  const bad = tmpDir('ibl-llm-bad-');
  const e1 = await t.throwsAsync(ibl.ImageBindLLM.load({ model: files.f32.llm, bind: path.join(bad, 'missing-bind.gguf') }));
  t.is(e1.code, 'ERR_FILE_NOT_FOUND');
  t.regex(e1.message, /missing-bind\.gguf/);
  const e2 = await t.throwsAsync(ibl.ImageBindLLM.load({ model: files.encoder, bind: files.f32.bind }));
  t.is(e2.code, 'ERR_MODEL_WRONG_TYPE');
  t.regex(e2.message, /this is the encoder/);
  const e3 = await t.throwsAsync(ibl.ImageBindLLM.load({ model: files.f32.llm, bind: files.f32.llm }));
  t.is(e3.code, 'ERR_MODEL_WRONG_TYPE');
  // A bind file for another model size: same tensors, metadata saying 4 layers.
  const g = await ibl.inspectGguf(files.f32.bind);
  const bytes = fs.readFileSync(files.f32.bind);
  const meta = Object.entries(g.metadata).map(([key, value]) => {
    const ty = g.metadataTypes[key];
    if (key === 'imagebind-llm-bind.llm.block_count') value = value + 1;
    return ty.startsWith('array<') ? { key, type: 'array', elemType: ty.slice(6, -1), value } : { key, type: ty, value };
  });
  const other = path.join(bad, 'other-bind.gguf');
  await ibl.writeGguf(other, { metadata: meta, tensors: g.tensors.map((x) => ({ name: x.name, type: x.type, shape: x.shape, data: new Uint8Array(bytes.subarray(x.offset, x.offset + x.size)) })) });
  const e4 = await t.throwsAsync(ibl.ImageBindLLM.load({ model: files.f32.llm, bind: other }));
  t.is(e4.code, 'ERR_MODEL_MISMATCH');
  t.regex(e4.message, /other-bind\.gguf was converted for a model with \d+ layers/);
  // An encoder whose output size differs from the bind network's input.
  const { writeRandomImagebind } = await import('../scripts/lib/random-imagebind.mjs');
  const cfg = { out_embed_dim: 16, vision: { embed_dim: 64, num_blocks: 1, num_heads: 4, mlp_hidden: 128 } };
  const ck = path.join(bad, 'enc16.pth');
  await writeRandomImagebind(ck, cfg, { modalities: ['vision'] });
  const enc16 = path.join(bad, 'enc16.gguf');
  await ibl.convertImagebind(ck, enc16, { config: cfg, type: 'f32' });
  const e5 = await t.throwsAsync(ibl.ImageBindLLM.load({ model: files.f32.llm, bind: files.f32.bind, encoder: enc16 }));
  t.is(e5.code, 'ERR_MODEL_MISMATCH');
  t.regex(e5.message, /gives 16-d embeddings, but the bind network .* takes 32-d/);
  // A cache search without a cache.
  const llm = await load('f32', false);
  t.teardown(() => llm.dispose());
  const e6 = await t.throwsAsync(llm.visualFromEmbeddings([new Float32Array(32).fill(0.1)], [1], true));
  t.regex(e6.message, /needs a cache/);
});

test('CLI ask: --json with text, tokens, promptTokens and --logits; streaming text without --json', (t) => {
  const c = mmCases[0];
  const img = path.join(tinyA, '..', 'assets', 'dog_image.png');
  const base = ['ask', '--encoder', files.encoder, '--model', files.f32.llm, '--bind', files.f32.bind, '--image', img, '--temperature', '0', '--max-tokens', '12', '--threads', '1'];
  const out = JSON.parse(execFileSync(process.execPath, [cliPath, ...base, '--json', '--logits', c.instruction], { encoding: 'utf8' }));
  t.deepEqual(out.promptTokens, c.prompt_tokens);
  const greedy = JSON.parse(fs.readFileSync(fixturePath(c.expected.greedy), 'utf8'));
  t.deepEqual(out.tokens, greedy.no_knn.tokens);
  t.is(out.text, greedy.no_knn.text);
  assertClose(t, out.logits, readNpy(fixturePath(c.expected.logits)).data, 'f32', 'CLI logits');
  const text = execFileSync(process.execPath, [cliPath, ...base, c.instruction], { encoding: 'utf8' });
  t.is(text.trim(), greedy.no_knn.text.trim());
  const err = t.throws(() => execFileSync(process.execPath, [cliPath, 'ask', '--model', files.f32.llm, '--bind', files.f32.bind, '--image', img, 'hi'], { encoding: 'utf8', stdio: 'pipe' }));
  t.is(err.status, 2);
  t.regex(err.stderr, /--image needs --encoder/);
});
