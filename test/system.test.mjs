import test from 'ava';
import fs from 'node:fs';
import path from 'node:path';
import { execFileSync, spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { cliPath, libIndex, pkg } from './helpers/paths.mjs';

const require = createRequire(import.meta.url);
const ibl = require(libIndex);

test('versions name the package and the pinned llama.cpp', (t) => {
  const v = ibl.versions();
  t.is(v.package, pkg.version);
  t.is(v.llamaCppCommit, pkg.imagebindLlm.llamaCppSource.commit);
  t.is(v.llamaCppTag, pkg.imagebindLlm.llamaCppSource.tag);
  t.regex(v.ggmlVersion, /\d/);
  t.true(v.napi >= 8);
});

test('the CPU backend is present with a CPU device', (t) => {
  const backends = ibl.backends();
  const cpu = backends.find((b) => b.name === 'CPU');
  t.truthy(cpu, `backends: ${backends.map((b) => b.name).join(', ')}`);
  t.true(cpu.devices.some((d) => d.type === 'cpu'));
  t.regex(ibl.systemInfo(), /CPU/);
});

test('the CPU backend is built with the SIMD this host has (AVX2/FMA/F16C)', (t) => {
  if (process.arch !== 'x64' || !fs.existsSync('/proc/cpuinfo')) return t.pass('x86-64 Linux only');
  const flags = new Set((/^flags\s*:(.*)$/m.exec(fs.readFileSync('/proc/cpuinfo', 'utf8'))?.[1] ?? '').trim().split(/\s+/));
  const features = ibl.backends().find((b) => b.name === 'CPU').features;
  for (const [cpuinfo, ggml] of [['avx2', 'AVX2'], ['fma', 'FMA'], ['f16c', 'F16C']]) {
    if (flags.has(cpuinfo)) t.is(features[ggml], '1', `${ggml} should be compiled in: the host has it`);
  }
});

test('CLI info --json reports versions and backends', (t) => {
  const out = JSON.parse(execFileSync(process.execPath, [cliPath, 'info', '--json'], { encoding: 'utf8' }));
  t.is(out.versions.package, pkg.version);
  t.true(out.backends.some((b) => b.name === 'CPU'));
  t.truthy(out.addonPath);
  t.is(out.modules.cpuVariant, ibl.backendModules().cpuVariant);
  const text = execFileSync(process.execPath, [cliPath, 'info'], { encoding: 'utf8' });
  t.regex(text, /^CPU variant +\S+ \(\S*ggml-cpu\S*\)$/m);
});

test('the backends are modules loaded beside libggml, and info names the CPU module chosen', (t) => {
  const m = ibl.backendModules();
  t.true(fs.existsSync(m.dir));
  t.true(m.modules.includes(m.cpuModule));
  t.true(fs.existsSync(path.join(m.dir, m.cpuModule)));
  // One module named for how it was compiled, or (IMAGEBIND_LLM_CPU_VARIANTS=1) the variant chosen.
  if (/^(lib)?ggml-cpu\.(so|dll)$/.test(m.cpuModule)) t.true(['native', 'generic'].includes(m.cpuVariant), m.cpuVariant);
  else t.true(m.cpuModule.includes(`ggml-cpu-${m.cpuVariant}.`), `${m.cpuModule} is variant ${m.cpuVariant}`);
  t.is(ibl.addonSource().kind, 'source');
});

test('IMAGEBIND_LLM_CPU_VARIANT naming a variant the build lacks is a clear error', (t) => {
  const r = spawnSync(process.execPath, ['-e', `require(${JSON.stringify(libIndex)}).backendModules()`],
    { encoding: 'utf8', env: { ...process.env, IMAGEBIND_LLM_CPU_VARIANT: 'no-such-cpu' } });
  t.not(r.status, 0);
  t.regex(r.stderr, /ERR_NO_BACKEND|IMAGEBIND_LLM_CPU_VARIANT=no-such-cpu: no such CPU module/);
});

test('CLI exits non-zero with a message on an unknown command', (t) => {
  const err = t.throws(() => execFileSync(process.execPath, [cliPath, 'no-such-command'], { encoding: 'utf8', stdio: 'pipe' }));
  t.not(err.status, 0);
  t.regex(err.stderr, /unknown command/);
});
