// Shared test paths: the package root, its lib/ build, the fixtures beside the checkout.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
export const libIndex = path.join(root, 'lib', 'index.js');
export const cliPath = path.join(root, 'lib', 'cli.js');
export const fixtures = process.env.IMAGEBIND_LLM_FIXTURES ?? path.resolve(root, '..', 'shared', 'fixtures');
export const pkg = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8'));

// The folders made here are removed when the test file is done, whatever the outcome, unless
// IBL_KEEP_TMP is set (to look at them). Under ava the worker is killed once its tests are done, so
// the removal is ava's completion handler; elsewhere (test/manual scripts) the process's exit.
const made = new Set();
function removeMade() {
  if (process.env.IBL_KEEP_TMP) return;
  for (const dir of made) {
    try {
      fs.rmSync(dir, { recursive: true, force: true, maxRetries: 2 });
    } catch {
      // A folder a test left unreadable, or a mount still busy: leave it rather than fail the run.
    }
  }
  made.clear();
}
// ava's workers are forked with an IPC channel (workerThreads: false); importing ava elsewhere exits.
if (typeof process.send === 'function') (await import('ava')).registerCompletionHandler(removeMade);
process.on('exit', removeMade);

export function tmpDir(prefix = 'ibl-test-') {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  made.add(dir);
  return dir;
}
