// The README's first command: the demo builds its own RANDOM-weight model set and media, then runs them.
import test from 'ava';
import { execFileSync } from 'node:child_process';
import { cliPath, tmpDir } from './helpers/paths.mjs';

test('imagebind-llm demo builds a random-weight model set and runs every modality', (t) => {
  const dir = tmpDir('ibl-demo-');
  const out = JSON.parse(execFileSync(process.execPath, [cliPath, 'demo', '--dir', dir, '--json'], { encoding: 'utf8' }));
  t.regex(out.label, /RANDOM WEIGHTS/);
  t.deepEqual(out.embeddings.map((e) => e.kind), ['image', 'image', 'video', 'audio', 'depth', 'thermal', 'imu', 'point']);
  for (const e of [...out.embeddings, ...out.texts]) {
    t.is(e.embedding.length, 32);
    t.true(Math.abs(Math.hypot(...e.embedding) - 1) < 1e-4);
  }
  t.is(out.embeddings.find((e) => e.kind === 'video').clips, 15);
  t.is(out.embeddings.find((e) => e.kind === 'audio').clips, 3);
  // ImageBind-LLM end to end on the demo's random LLaMA: an answer was generated with the injection.
  t.true(out.ask.tokens.length > 0 && out.ask.tokens.length <= 16);
  t.true(out.ask.promptTokens > 10);
  t.is(typeof out.ask.text, 'string');
  // A second run reuses what the first built.
  const again = JSON.parse(execFileSync(process.execPath, [cliPath, 'demo', '--dir', dir, '--json'], { encoding: 'utf8' }));
  t.deepEqual(again.embeddings[0].embedding, out.embeddings[0].embedding);
});
