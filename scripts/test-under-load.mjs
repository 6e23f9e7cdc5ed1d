#!/usr/bin/env node
// Runs the test suite several times in a row while other processes keep every core busy: the check
// that the tests are not flaky on a loaded machine (issue 7).
//
//   node scripts/test-under-load.mjs [--runs 5] [--hogs N] [-- <ava arguments>]
//
// --hogs: how many busy processes to run beside the tests (default: one per core the process may use).
// Everything after `--` goes to ava (default: the whole suite, as `npm test` runs it). Prints one line
// per run (pass/fail, duration, the load average) and exits non-zero when any run failed.
import os from 'node:os';
import path from 'node:path';
import { spawn, spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const root = path.join(path.dirname(fileURLToPath(import.meta.url)), '..');
const argv = process.argv.slice(2);
const dashes = argv.indexOf('--');
const own = dashes >= 0 ? argv.slice(0, dashes) : argv;
const avaArgs = dashes >= 0 ? argv.slice(dashes + 1) : [];

function intFlag(name, dflt) {
  const i = own.indexOf(`--${name}`);
  if (i < 0) return dflt;
  const v = Number(own[i + 1]);
  if (!Number.isInteger(v) || v < 0 || v > 1024) {
    console.error(`--${name} must be an integer from 0 to 1024 (got ${own[i + 1]})`);
    process.exit(2);
  }
  return v;
}

const runs = intFlag('runs', 5);
const hogCount = intFlag('hogs', os.availableParallelism());
// Each hog spins at the tests' own priority, so the tests get about half the machine.
const hogs = Array.from({ length: hogCount }, () => spawn(process.execPath, ['-e', 'for (;;) {}'], { stdio: 'ignore' }));
const stopHogs = () => { for (const h of hogs) h.kill('SIGKILL'); };
process.on('exit', stopHogs);
process.on('SIGINT', () => { stopHogs(); process.exit(130); });

console.log(`${runs} run(s) of ava ${avaArgs.join(' ') || '(the whole suite)'} beside ${hogCount} busy process(es); ${os.cpus()[0]?.model ?? 'unknown CPU'}, ${os.availableParallelism()} core(s)`);
let failed = 0;
for (let i = 1; i <= runs; i++) {
  const t0 = Date.now();
  const r = spawnSync(process.execPath, [path.join(root, 'node_modules', 'ava', 'entrypoints', 'cli.mjs'), ...avaArgs], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'], encoding: 'utf8', maxBuffer: 1 << 28 });
  const out = `${r.stdout}${r.stderr}`;
  const summary = out.match(/(\d+ tests? (?:passed|failed)[^\n]*)/g) ?? [];
  const ok = r.status === 0;
  if (!ok) {
    failed++;
    console.log(out.split('\n').filter((l) => /✘|failed|Error/.test(l)).slice(0, 40).join('\n'));
  }
  console.log(`run ${i}/${runs}: ${ok ? 'passed' : `FAILED (exit ${r.status ?? r.signal})`} in ${((Date.now() - t0) / 1000).toFixed(0)} s; ${summary.join('; ')}; load average ${os.loadavg()[0].toFixed(2)}`);
}
stopHogs();
console.log(failed ? `${failed} of ${runs} run(s) failed` : `all ${runs} runs passed`);
process.exit(failed ? 1 : 0);
