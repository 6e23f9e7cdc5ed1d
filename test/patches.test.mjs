// Our llama.cpp changes live as patches in native/patches, applied at build time to the pinned source.
// This fails loudly when one stops applying to the pinned commit (or the tree drifts from it).
import test from 'ava';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import { pkg, root } from './helpers/paths.mjs';

const llama = path.join(root, 'deps', 'llama.cpp');
const patchDir = path.join(root, 'native', 'patches');
const patches = fs.readdirSync(patchDir).filter((f) => f.endsWith('.patch')).sort().map((f) => path.join(patchDir, f));
const git = (args, cwd) => execFileSync('git', args, { cwd, encoding: 'utf8', stdio: 'pipe' });

// The pinned commit checked out beside deps/llama.cpp with the patches applied in order, made once for both
// tests: per patch, null or why it did not apply.
let patched;
function patchedTree() {
  if (patched) return patched;
  const wt = fs.mkdtempSync(path.join(os.tmpdir(), 'ibl-llama-pristine-'));
  fs.rmSync(wt, { recursive: true });
  git(['worktree', 'add', '--detach', wt, pkg.imagebindLlm.llamaCppSource.commit], llama);
  const errors = patches.map((p) => {
    try {
      git(['apply', '--check', p], wt);
      git(['apply', p], wt);
      return null;
    } catch (e) {
      return e.stderr || e.message;
    }
  });
  patched = { wt, errors };
  return patched;
}
test.after.always(() => {
  if (patched) git(['worktree', 'remove', '--force', patched.wt], llama);
});

test('every patch applies cleanly to a pristine checkout of the pinned llama.cpp commit', (t) => {
  t.true(patches.length >= 1, 'the injection hook patch is there');
  const { errors } = patchedTree();
  patches.forEach((p, i) => {
    if (errors[i]) t.fail(`${path.basename(p)} no longer applies to llama.cpp ${pkg.imagebindLlm.llamaCppSource.commit}:\n${errors[i]}`);
    else t.pass(path.basename(p));
  });
});

test('the source we build is the pinned commit plus exactly our patches', (t) => {
  t.is(git(['rev-parse', 'HEAD'], llama).trim(), pkg.imagebindLlm.llamaCppSource.commit);
  // Modified files, and the new files patches add (untracked), less our own stamp file.
  const changed = [
    ...git(['diff', '--name-only'], llama).trim().split('\n'),
    ...git(['ls-files', '--others', '--exclude-standard'], llama).trim().split('\n'),
  ].filter((f) => f && f !== '.imagebind-llm-source.json').sort();
  const touched = [...new Set(patches.flatMap((p) => [...fs.readFileSync(p, 'utf8').matchAll(/^\+\+\+ b\/(.+)$/gm)].map((m) => m[1])))].sort();
  t.deepEqual(changed, touched);
  // Each file as the pinned commit plus every patch in order makes it (a later patch may change an
  // earlier one's context, so the patches are applied in sequence, not checked one by one).
  const { wt } = patchedTree();
  for (const f of touched) t.true(fs.readFileSync(path.join(wt, f)).equals(fs.readFileSync(path.join(llama, f))), `${f} is the pinned file plus the patches`);
});
