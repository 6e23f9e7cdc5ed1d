// Runs one encoder conversion in its own process and prints {result, maxRssBytes, seconds} as JSON,
// so callers (the memory test, the benchmark) can measure the converter's peak memory alone.
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const require = createRequire(import.meta.url);
const ibl = require(path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'lib', 'index.js'));
const [checkpoint, out, type, config] = process.argv.slice(2);
const t0 = process.hrtime.bigint();
const result = await ibl.convertImagebind(checkpoint, out, { type, config: config ? JSON.parse(config) : undefined });
const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
// resourceUsage().maxRSS is in kilobytes.
process.stdout.write(JSON.stringify({ result, maxRssBytes: process.resourceUsage().maxRSS * 1024, seconds }) + '\n');
