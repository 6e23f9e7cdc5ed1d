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

export function tmpDir(prefix = 'ibl-test-') {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}
