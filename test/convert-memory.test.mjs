// The converter streams: converting a large checkpoint needs memory near its largest tensor, not near
// the checkpoint's size. Measured on a random ImageBind-shaped checkpoint this test writes (vision at
// ImageBind-huge width, fewer blocks, to keep CI fast); `npm run bench` does the full 4.5 GB one.
import test from 'ava';
import fs from 'node:fs';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import { root, tmpDir } from './helpers/paths.mjs';
import { HUGE, writeRandomImagebind } from '../scripts/lib/random-imagebind.mjs';

test('converting a 640 MB checkpoint stays far below its size in memory', async (t) => {
  const dir = tmpDir('ibl-mem-');
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const cfg = { ...HUGE, vision: { ...HUGE.vision, num_blocks: 8 } };
  const ckpt = path.join(dir, 'big.pth');
  const size = await writeRandomImagebind(ckpt, cfg, { modalities: ['vision'] });
  t.true(size > 600e6, `checkpoint is ${size} bytes`);
  const out = path.join(dir, 'big.gguf');
  const child = path.join(root, 'scripts', 'lib', 'convert-child.mjs');
  const r = JSON.parse(execFileSync(process.execPath, [child, ckpt, out, 'f16', JSON.stringify(cfg)], { encoding: 'utf8' }));
  t.log(`checkpoint ${(size / 2 ** 20).toFixed(0)} MiB → f16 GGUF ${(r.result.bytes / 2 ** 20).toFixed(0)} MiB in ${r.seconds.toFixed(1)} s, peak RSS ${(r.maxRssBytes / 2 ** 20).toFixed(0)} MiB`);
  t.deepEqual(r.result.modalities, ['vision']);
  t.true(r.result.bytes > size * 0.45 && r.result.bytes < size * 0.55, 'f16 output is about half the f32 checkpoint');
  // Node itself is ~50 MB; the largest tensor (5120 × 1280 f32) 25 MB plus its f16 copy.
  t.true(r.maxRssBytes < size * 0.4, `peak RSS ${r.maxRssBytes} must stay well below the checkpoint's ${size} bytes`);
});
