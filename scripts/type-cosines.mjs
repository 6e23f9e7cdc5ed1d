#!/usr/bin/env node
// The reduced encoder types against f32: cosine of each type's embeddings to f32's, through the public API.
//
//   node scripts/type-cosines.mjs [--types f16,bf16,q8_0] [--threads 2] [--huge <dir>]
//
// Always: the fixtures' tiny-a checkpoint converted at every type, every encoded source file of the fixtures
// (images, WAVs, videos, PLY, depth, thermal, IMU); prints the minimum over them per type.
// With --huge: the ImageBind-huge GGUFs of scripts/bench.mjs (<dir>/imagebind_huge_random-<type>.gguf, f32 among
// them) on the inputs scripts/bench.mjs times (vision, text, audio).
// Needs lib/ (npm run build:ts) and ../shared/fixtures.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { trunkInput } from './lib/bench-inputs.mjs';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const ibl = createRequire(import.meta.url)(path.join(root, 'lib', 'index.js'));
const { MEDIA_SOURCES, assets, tinyA } = await import(path.join(root, 'test', 'helpers', 'fixtures.mjs'));

const { values: opt } = parseArgs({
  options: {
    types: { type: 'string', default: 'f16,bf16,q8_0' },
    threads: { type: 'string', default: '2' },
    huge: { type: 'string' },
  },
});
const types = opt.types.split(',').filter((t) => t && t !== 'f32');
const threads = Number(opt.threads);

async function embedWith(gguf, inputs) {
  const enc = await ibl.loadEncoder(gguf, { threads, device: 'cpu' });
  try {
    return (await enc.embed(inputs)).map((e) => e.embedding);
  } finally {
    enc.dispose();
  }
}

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'ibl-type-cosines-'));
try {
  const sources = MEDIA_SOURCES.map(([kind, file]) => ({ kind, path: path.join(assets, file) }));
  const fixtures = {};
  for (const type of ['f32', ...types]) {
    const gguf = path.join(tmp, `tiny-a-${type}.gguf`);
    await ibl.convertImagebind(path.join(tinyA, 'imagebind.pth'), gguf, { type, config: path.join(tinyA, 'imagebind.config.json') });
    fixtures[type] = await embedWith(gguf, sources);
  }
  console.log(`fixtures (tiny-a; ${MEDIA_SOURCES.map((s) => s[1]).join(', ')}), ${threads} threads:`);
  for (const type of types) {
    const c = fixtures[type].map((e, i) => ibl.cosineSimilarity(e, fixtures.f32[i]));
    const worst = c.indexOf(Math.min(...c));
    console.log(`  ${type} vs f32: min cosine ${c[worst].toFixed(6)} (${MEDIA_SOURCES[worst][1]}) over ${c.length} inputs`);
  }

  if (opt.huge) {
    const trunks = ['vision', 'text', 'audio'];
    const huge = {};
    for (const type of ['f32', ...types]) {
      huge[type] = await embedWith(path.join(opt.huge, `imagebind_huge_random-${type}.gguf`), trunks.map(trunkInput));
    }
    console.log(`ImageBind-huge (${opt.huge}), ${threads} threads:`);
    for (const type of types) {
      const c = trunks.map((t, i) => `${t} ${ibl.cosineSimilarity(huge[type][i], huge.f32[i]).toFixed(6)}`);
      console.log(`  ${type} vs f32: ${c.join(', ')}`);
    }
  }
} finally {
  fs.rmSync(tmp, { recursive: true, force: true });
}
