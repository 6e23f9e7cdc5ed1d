// The parity suites of encoder.test.mjs and llm.test.mjs, run on every non-CPU device of the build
// (in CI: Mesa's lavapipe through ggml's Vulkan backend), with the CPU suites' tolerances: encoders at
// f32/f16/q8_0 from the fixtures' input tensors and from the media files; the LLM's prompt logits and
// greedy tokens with the injection, with and without the kNN cache, with every layer on the device and
// with half of them on the CPU; where each layer's injection vector lives; two contexts decoded
// interleaved. Device selection errors are checked on any build. The device tests run one at a time:
// lavapipe runs on the same two cores as everything else.
import test from 'ava';
import fs from 'node:fs';
import path from 'node:path';
import { execFileSync, spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { libIndex, root, tmpDir } from './helpers/paths.mjs';
import { MEDIA_SOURCES, assertClose, assets, caseByName, fixturePath, manifest, readNpy, tinyA } from './helpers/fixtures.mjs';
import { checkCases, convertLlmFixtures, interleavedGreedy } from './helpers/llm-fixtures.mjs';

// lavapipe is a Vulkan device of type CPU, which ggml-vulkan lists only when asked to (docs/VULKAN.md).
// Set before the addon loads its backends, in this test process only.
if (process.env.GGML_VK_VISIBLE_DEVICES === undefined) process.env.GGML_VK_VISIBLE_DEVICES = '0';

const require = createRequire(import.meta.url);
const ibl = require(libIndex);
const exe = (name) => path.join(root, 'build', 'native', process.platform === 'win32' ? `${name}.exe` : name);
const TYPES = ['f32', 'f16', 'q8_0'];
// The CPU suites' tolerances, but for the f32 maximum difference: ggml-vulkan computes f32 matrix
// products through f16 where the device has f16 arithmetic (lavapipe has), which moves the largest
// element by up to 1.2e-3 of the maximum (cosine ≥ 0.9999996); with GGML_VK_DISABLE_F16=1 it is
// ≤ 2.1e-4. So f32 on a device: max diff ≤ 2e-3 of max, cosine ≥ 0.99999 as on the CPU (docs/DEVICES.md).
const F32_REL = 2e-3;
const TOL = { f32: { cosine: 0.99999, rel: F32_REL }, f16: { cosine: 0.9999 }, q8_0: { cosine: 0.999 } };
const COS = { f32: 0.99999, f16: 0.9999, q8_0: 0.999 };
const devices = ibl.devices().filter((d) => d.type !== 'cpu');
const modules = ibl.backendModules().modules;
const dir = tmpDir('ibl-devices-');
const enc = {};
let llmFiles = {};

test.before(async () => {
  if (!devices.length) return;
  for (const type of TYPES) {
    enc[type] = path.join(dir, `tiny-a-${type}.gguf`);
    await ibl.convertImagebind(path.join(tinyA, 'imagebind.pth'), enc[type], { type, config: path.join(tinyA, 'imagebind.config.json') });
  }
  llmFiles = await convertLlmFixtures(ibl, dir, TYPES);
});

test('an unknown device is a clear error listing the devices there are', async (t) => {
  const names = ibl.devices().map((d) => d.name);
  t.true(names.includes('CPU'));
  const gguf = path.join(dir, 'probe.gguf');
  await ibl.convertImagebind(path.join(tinyA, 'imagebind.pth'), gguf, { type: 'f32', config: path.join(tinyA, 'imagebind.config.json') });
  const e = await t.throwsAsync(ibl.loadEncoder(gguf, { device: 'NoSuchGPU7' }));
  t.is(e.code, 'ERR_NO_DEVICE');
  t.regex(e.message, /unknown device 'NoSuchGPU7'/);
  for (const n of names) t.true(e.message.includes(n), `${n} listed in: ${e.message}`);
  const cpu = await ibl.loadEncoder(gguf, { device: 'cpu' });
  t.is(cpu.info().device, 'CPU');
  cpu.dispose();
  const e2 = await t.throwsAsync(ibl.ImageBindLLM.load({ model: gguf, bind: gguf, gpuLayers: -2 }));
  t.is(e2.code, 'ERR_INVALID_ARG');
  t.regex(e2.message, /gpuLayers must be an integer between -1 and/);
});

if (!devices.length) {
  const why = modules.some((m) => /ggml-(vulkan|cuda|metal)/.test(m))
    ? `a GPU backend is loaded (${modules.join(', ')}) but it sees no device`
    : 'this build has no GPU backend (build with IMAGEBIND_LLM_VULKAN=1, or install a GPU flavour package)';
  console.log(`devices.test.mjs: no Vulkan or other non-CPU device: ${why}. The device parity suites are skipped.`);
  test.skip(`parity suites on a non-CPU device (${why})`, () => {});
}

for (const dev of devices) {
  for (const type of TYPES) {
    test.serial(`${dev.name}: encoders from the input tensors match the expected embeddings at ${type}`, (t) => {
      const env = { ...process.env, IBL_ENCODER_GGUF: enc[type], IBL_ENCODER_DEVICE: dev.name, IBL_ENCODER_COS: String(COS[type]), IBL_ENCODER_REL: type === 'f32' ? String(F32_REL) : '1e9' };
      const r = spawnSync(exe('ibl-core-tests'), [path.resolve(tinyA, '..'), 'encoder'], { env, encoding: 'utf8' });
      t.regex(r.stdout, new RegExp(`^device ${dev.name}$`, 'm'), 'ran on the device');
      t.log(r.stdout.split('\n').filter((l) => /embedding/.test(l)).map((l) => l.replace(/^ok +/, '')).join('\n'));
      t.regex(r.stdout, /^\d+ passed, 0 failed$/m, r.stdout + r.stderr);
      t.is((r.stdout.match(/^ok .*: embedding/gm) ?? []).length, manifest.imagebind_cases.length);
      t.is(r.status, 0);
    });

    test.serial(`${dev.name}: end to end from the source files at ${type}`, async (t) => {
      const e = await ibl.loadEncoder(enc[type], { threads: 2, device: dev.name });
      t.teardown(() => e.dispose());
      t.is(e.info().device, dev.name);
      const res = await e.embed(MEDIA_SOURCES.map(([kind, file]) => ({ kind, path: path.join(assets, file) })), { raw: true });
      const lines = res.map((r, i) => {
        const [, file, name] = MEDIA_SOURCES[i];
        const c = assertClose(t, r.scaled, readNpy(fixturePath(caseByName(name).expected)).data, type === 'f32' ? 'decoder' : TOL[type], `${file} (${type})`);
        return `${file}: cosine ${c.cosine.toFixed(7)}, max diff ${c.relDiff.toExponential(2)} of max`;
      });
      t.log(lines.join('\n'));
    });
  }

  const mmCases = manifest.llm_cases.filter((c) => c.inputs && c.inputs.length);
  for (const type of TYPES) {
    for (const split of [false, true]) {
      const layout = split ? 'half the layers on the CPU' : 'every layer on the device';
      test.serial(`${dev.name}: LLM logits and greedy tokens with the injection, with and without the cache (${type}, ${layout})`, async (t) => {
        const nLayer = JSON.parse(fs.readFileSync(path.join(tinyA, 'llama', 'params.json'), 'utf8')).n_layers;
        // gpuLayers counts the output layer too: floor(n/2) + 1 puts the last floor(n/2) blocks on the device.
        const gpuLayers = split ? Math.floor(nLayer / 2) + 1 : -1;
        const llm = await ibl.ImageBindLLM.load({ model: llmFiles[type].llm, bind: llmFiles[type].bind, cache: llmFiles.cache, threads: 2, device: dev.name, gpuLayers });
        t.teardown(() => llm.dispose());
        t.is(llm.info.device, dev.name);
        t.is(llm.info.gpuLayers, split ? gpuLayers : nLayer + 1);
        const lines = await checkCases(t, ibl, llm, llmFiles.encoder, mmCases,
          { tol: TOL[type], stepCos: COS[type], tokensMayDiffer: type === 'q8_0', device: dev.name, what: ` (${type}, ${layout})` });
        t.log(lines.join('\n'));
      });
    }
  }

  for (const split of [false, true]) {
    test.serial(`${dev.name}: each layer's injection vector lives on that layer's device (${split ? 'half the layers on the CPU' : 'every layer on the device'})`, (t) => {
      const c = manifest.llm_cases.find((x) => x.name === 'image');
      const prompt = path.join(dir, 'prompt.txt');
      fs.writeFileSync(prompt, c.prompt);
      const nLayer = JSON.parse(fs.readFileSync(path.join(tinyA, 'llama', 'params.json'), 'utf8')).n_layers;
      const ngl = split ? Math.floor(nLayer / 2) + 1 : nLayer + 1;
      const out = execFileSync(exe('ibl-driver'), ['placement', llmFiles.f32.llm, llmFiles.f32.bind, prompt, path.join(tinyA, c.expected.visual), dev.name, String(ngl)],
        { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
      const placement = JSON.parse(out);
      t.is(placement.length, nLayer, 'every layer seen');
      for (const p of placement) {
        // llama.cpp offloads the output layer and the last ngl - 1 blocks.
        const onDevice = p.layer >= nLayer + 1 - ngl;
        t.false(p.injectionCopied, `layer ${p.layer}: the injection vector was read without a copy`);
        t.is(p.injectionHost, !onDevice, `layer ${p.layer}: injection in ${p.injectionBuffer}`);
        t.is(p.weightHost, !onDevice, `layer ${p.layer}: weights in ${p.weightBuffer}`);
        if (onDevice) t.is(p.injectionBuffer, p.weightBuffer, `layer ${p.layer}: injection and weights in the same device buffer`);
      }
      t.true(placement.some((p) => p.injectionHost) === split && placement.some((p) => !p.injectionHost), 'the layout is the one asked for');
      t.log(placement.map((p) => `layer ${p.layer}: injection in ${p.injectionBuffer}, weights in ${p.weightBuffer}`).join('\n'));
    });
  }

  test.serial(`${dev.name}: the C++ LLM checks scripts/gpu-check.sh runs pass, half the layers on the CPU (f32)`, (t) => {
    const nLayer = JSON.parse(fs.readFileSync(path.join(tinyA, 'llama', 'params.json'), 'utf8')).n_layers;
    const env = { ...process.env, IBL_LLM_GGUF: llmFiles.f32.llm, IBL_BIND_GGUF: llmFiles.f32.bind, IBL_LLM_DEVICE: dev.name,
      IBL_LLM_GPU_LAYERS: String(Math.floor(nLayer / 2) + 1), IBL_LLM_REL: String(F32_REL) };
    const r = spawnSync(exe('ibl-core-tests'), [path.resolve(tinyA, '..'), 'llm'], { env, encoding: 'utf8' });
    t.regex(r.stdout, new RegExp(`^device ${dev.name}, ${Math.floor(nLayer / 2) + 1} layer\\(s\\) offloaded$`, 'm'), r.stdout + r.stderr);
    t.regex(r.stdout, /^ok +placement: layer 0 /m, 'placement checked');
    t.regex(r.stdout, /^\d+ passed, 0 failed$/m, r.stdout + r.stderr);
    t.is(r.status, 0);
  });

  test.serial(`${dev.name}: two contexts with different injections, decoded interleaved, match their single-context runs`, async (t) => {
    const llm = await ibl.ImageBindLLM.load({ model: llmFiles.f32.llm, bind: llmFiles.f32.bind, threads: 2, device: dev.name });
    t.teardown(() => llm.dispose());
    t.is(llm.info.device, dev.name);
    const { got, want } = await interleavedGreedy(ibl, llm, llmFiles.encoder, mmCases, dev.name);
    t.deepEqual(got, want);
  });
}
