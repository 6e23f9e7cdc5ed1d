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

// Every test file runs in its own process (ava's workerThreads: false): the folders made here are
// removed when it exits, whatever the outcome, unless IBL_KEEP_TMP is set (to look at them).
const made = new Set();
process.on('exit', () => {
  if (process.env.IBL_KEEP_TMP) return;
  for (const dir of made) {
    try {
      fs.rmSync(dir, { recursive: true, force: true, maxRetries: 2 });
    } catch {
      // A folder a test left unreadable, or a mount still busy: leave it rather than fail the run.
    }
  }
});

export function tmpDir(prefix = 'ibl-test-') {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  made.add(dir);
  return dir;
}
