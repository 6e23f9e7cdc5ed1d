// The C++ core's own checks against the fixtures (ibl-core-tests, built by npm install): npy reading,
// image/video-frame, audio, text and point preprocessing, each against the fixtures' tensors; and the ggml
// CPU kernels our patches change (mul_mat, gelu_erf) against double-precision references.
import test from 'ava';
import fs from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';
import { spawnSync } from 'node:child_process';
import { fixtures, root, tmpDir } from './helpers/paths.mjs';

const bin = path.join(root, 'build', 'native', process.platform === 'win32' ? 'ibl-core-tests.exe' : 'ibl-core-tests');
// The C++ tokenizer test reads the CLIP merges as plain text (the converter embeds them in the GGUF).
const merges = path.join(tmpDir('ibl-core-'), 'bpe_merges.txt');
fs.writeFileSync(merges, zlib.gunzipSync(fs.readFileSync(path.join(fixtures, 'clip_bpe', 'bpe_simple_vocab_16e6.txt.gz'))));

for (const area of ['npy', 'image', 'audio', 'text', 'points', 'kernels']) {
  test(`core ${area} checks pass`, (t) => {
    const r = spawnSync(bin, [fixtures, area], { encoding: 'utf8', env: { ...process.env, IBL_BPE_MERGES: merges } });
    const failures = r.stdout.split('\n').filter((l) => l.startsWith('FAIL'));
    t.deepEqual(failures, [], r.stderr);
    const m = /^(\d+) passed, (\d+) failed$/m.exec(r.stdout);
    t.truthy(m, r.stdout + r.stderr);
    t.true(Number(m[1]) > 5, `${m[1]} checks ran`);
    t.is(Number(m[2]), 0);
    t.is(r.status, 0);
  });
}
