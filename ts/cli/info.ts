// `info`, `inspect` and `model`: what is installed, and what a GGUF file holds.
import type { Command } from 'commander';
import { ImageBindEncoder } from '../encoder';
import { findFfmpeg } from '../ffmpeg';
import { inspectGguf } from '../gguf';
import type { GgufValue } from '../native';
import { threadLimits } from '../options';
import { installationInfo } from '../system';
import { ModelSet, modelsDir, resolveModels } from '../models';
import { formatBytes, printJson } from './output';

function summarizeValue(v: GgufValue): string {
  if (Array.isArray(v)) {
    const head = v.slice(0, 4).map((x) => JSON.stringify(typeof x === 'bigint' ? x.toString() : x)).join(', ');
    return `[${head}${v.length > 4 ? `, … ${v.length} items` : ''}]`;
  }
  return typeof v === 'string' ? JSON.stringify(v.length > 80 ? v.slice(0, 77) + '...' : v) : String(v);
}

export function registerInfo(program: Command): void {
  program
    .command('info')
    .description('show the installation: versions, pinned llama.cpp, ggml backends and devices, threads, ffmpeg, the model folder')
    .option('--json', 'print JSON')
    .action(async (opts: { json?: boolean }) => {
      const info = installationInfo();
      const threads = threadLimits();
      const ffmpeg = await findFfmpeg().then((f) => f, (e: Error) => ({ error: e.message }));
      let models: ModelSet | { dir: string; error: string };
      try {
        models = resolveModels();
      } catch (e) {
        models = { dir: modelsDir().dir, error: (e as Error).message };
      }
      if (opts.json) {
        printJson({ ...info, threads, ffmpeg, models });
        return;
      }
      const v = info.versions;
      console.log(`imagebind-llm ${v.package}`);
      console.log(`llama.cpp     ${v.llamaCppTag} (${v.llamaCppCommit})`);
      console.log(`ggml          ${v.ggmlVersion} (${v.ggmlCommit})`);
      console.log(`addon         ${info.addonPath} (${info.addon.kind === 'prebuilt' ? `prebuilt ${info.addon.package?.name}` : info.addon.kind === 'env' ? 'IMAGEBIND_LLM_ADDON' : 'source build'})`);
      console.log(`CPU variant   ${info.modules.cpuVariant} (${info.modules.cpuModule})`);
      console.log(`threads       ${threads.default} by default (${threads.logical} logical CPUs available, at most ${threads.max})`);
      for (const b of info.backends) {
        const feats = Object.entries(b.features).map(([k, val]) => (val === '1' ? k : `${k}=${val}`)).join(' ');
        console.log(`backend       ${b.name}${feats ? `: ${feats}` : ''}`);
        for (const d of b.devices) {
          console.log(`  device      ${d.name} [${d.type}] ${d.description}${d.memoryTotal ? `, ${formatBytes(d.memoryFree)} free of ${formatBytes(d.memoryTotal)}` : ''}`);
        }
      }
      if ('error' in ffmpeg) console.log(`ffmpeg        not found (${ffmpeg.error.split('\n')[0]})`);
      else console.log(`ffmpeg        ${ffmpeg.version} (${ffmpeg.source}: ${ffmpeg.path})`);
      const roles = 'error' in models ? [] : Object.entries(models.entries).map(([r, e]) => `${r} ${e!.file}`);
      console.log(`models        ${models.dir}: ${'error' in models ? models.error : roles.length ? roles.join(', ') : 'empty (imagebind-llm pull fills it)'}`);
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

  program
    .command('model')
    .description('show what a model GGUF holds (an encoder: modalities and sizes)')
    .argument('<file>', '.gguf file')
    .option('--json', 'print JSON')
    .action(async (file: string, opts: { json?: boolean }) => {
      const g = await inspectGguf(file);
      const arch = g.metadata['general.architecture'];
      if (arch !== 'imagebind') {
        const summary = { file, architecture: arch, tensors: g.tensors.length, bytes: g.fileSize };
        if (opts.json) printJson(summary);
        else console.log(`${file}: ${String(arch)} model, ${g.tensors.length} tensors, ${formatBytes(g.fileSize)}`);
        return;
      }
      const enc = await ImageBindEncoder.load(file, { threads: 1, device: 'cpu' });
      const info = enc.info();
      enc.dispose();
      if (opts.json) {
        printJson(info);
        return;
      }
      console.log(`${file}: ImageBind encoder '${info.name}', ${info.fileType}, ${info.outDim}-d output, ${formatBytes(info.weightsBytes)}`);
      for (const [m, h] of Object.entries(info.modalities)) {
        console.log(`  ${m.padEnd(8)} width ${h!.embedDim}, ${h!.blocks} blocks, ${h!.heads} heads, ${h!.tokens} tokens${h!.logitScale ? `, logit scale ${+h!.logitScale.toFixed(3)}` : ''}`);
      }
    });
}
