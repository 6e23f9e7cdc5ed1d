#!/usr/bin/env node
// imagebind-llm command line. Every command takes --json; errors go to stderr with a non-zero exit.
import { Command } from 'commander';
import { findFfmpeg } from './ffmpeg';
import { inspectGguf } from './gguf';
import type { GgufValue } from './native';
import { installationInfo } from './system';

function printJson(value: unknown): void {
  process.stdout.write(JSON.stringify(value, (_k, v) => (typeof v === 'bigint' ? v.toString() : v), 2) + '\n');
}

function formatBytes(n: number): string {
  if (n >= 1 << 30) return `${(n / (1 << 30)).toFixed(1)} GiB`;
  if (n >= 1 << 20) return `${(n / (1 << 20)).toFixed(1)} MiB`;
  if (n >= 1 << 10) return `${(n / (1 << 10)).toFixed(1)} KiB`;
  return `${n} B`;
}

function summarizeValue(v: GgufValue): string {
  if (Array.isArray(v)) {
    const head = v.slice(0, 4).map((x) => JSON.stringify(typeof x === 'bigint' ? x.toString() : x)).join(', ');
    return `[${head}${v.length > 4 ? `, … ${v.length} items` : ''}]`;
  }
  return typeof v === 'string' ? JSON.stringify(v.length > 80 ? v.slice(0, 77) + '...' : v) : String(v);
}

const program = new Command();
program
  .name('imagebind-llm')
  .description('ImageBind-LLM on llama.cpp/ggml: embed images, audio, video, depth, thermal, IMU and point clouds, and ask questions about them')
  .showHelpAfterError();

program
  .command('info')
  .description('show the installation: versions, pinned llama.cpp, ggml backends and devices, ffmpeg')
  .option('--json', 'print JSON')
  .action(async (opts: { json?: boolean }) => {
    const info = installationInfo();
    const ffmpeg = await findFfmpeg().then((f) => f, (e: Error) => ({ error: e.message }));
    if (opts.json) {
      printJson({ ...info, ffmpeg });
      return;
    }
    const v = info.versions;
    console.log(`imagebind-llm ${v.package}`);
    console.log(`llama.cpp     ${v.llamaCppTag} (${v.llamaCppCommit})`);
    console.log(`ggml          ${v.ggmlVersion} (${v.ggmlCommit})`);
    console.log(`addon         ${info.addonPath}`);
    for (const b of info.backends) {
      const feats = Object.entries(b.features).map(([k, val]) => (val === '1' ? k : `${k}=${val}`)).join(' ');
      console.log(`backend       ${b.name}${feats ? `: ${feats}` : ''}`);
      for (const d of b.devices) {
        console.log(`  device      ${d.name} [${d.type}] ${d.description}${d.memoryTotal ? `, ${formatBytes(d.memoryFree)} free of ${formatBytes(d.memoryTotal)}` : ''}`);
      }
    }
    if ('error' in ffmpeg) console.log(`ffmpeg        not found (${ffmpeg.error.split('\n')[0]})`);
    else console.log(`ffmpeg        ${ffmpeg.version} (${ffmpeg.source}: ${ffmpeg.path})`);
  });

program
  .command('inspect')
  .description('list the metadata keys and tensors (name, type, shape) of a GGUF file')
  .argument('<file>', '.gguf file')
  .option('--json', 'print JSON')
  .action(async (file: string, opts: { json?: boolean }) => {
    const info = await inspectGguf(file);
    if (opts.json) {
      printJson(info);
      return;
    }
    console.log(`${file}: GGUF v${info.version}, ${Object.keys(info.metadata).length} keys, ${info.tensors.length} tensors, ${formatBytes(info.fileSize)}`);
    for (const [k, val] of Object.entries(info.metadata)) console.log(`  ${k} (${info.metadataTypes[k]}) = ${summarizeValue(val)}`);
    for (const t of info.tensors) console.log(`  ${t.name.padEnd(48)} ${t.type.padEnd(6)} [${t.shape.join(', ')}]`);
  });

program.parseAsync(process.argv).catch((e: unknown) => {
  const err = e as { message?: string; code?: string };
  process.stderr.write(`imagebind-llm: ${err.message ?? String(e)}\n`);
  process.exitCode = 1;
});
