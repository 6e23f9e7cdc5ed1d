#!/usr/bin/env node
// imagebind-llm command line. Every command takes --json; errors go to stderr with a non-zero exit.
import path from 'node:path';
import { Command, Option } from 'commander';
import { SingleBar, Presets } from 'cli-progress';
import { convertImagebind } from './convert/imagebind';
import { convertCache } from './convert/cache';
import type { CacheType } from './convert/cache';
import type { EncoderType } from './convert/imagebind';
import { convertLlm, LLM_TYPES } from './convert/llm';
import type { BindType, LlmType } from './convert/llm';
import { EmbedInput, ImageBindEncoder, InputKind, cosineSimilarity, zeroShot } from './encoder';
import { DEMO_LABEL, buildDemo, defaultDemoDir } from './demo';
import { findFfmpeg } from './ffmpeg';
import { AskInput, AskOptions, ImageBindLLM } from './llm';
import { inspectGguf } from './gguf';
import type { GgufValue } from './native';
import { installationInfo } from './system';

/** A progress bar on stderr when it is a terminal; silent otherwise (pipes, CI). */
function progressBar(label: string): { update(done: number, total: number): void; stop(): void } {
  if (!process.stderr.isTTY) return { update() {}, stop() {} };
  const bar = new SingleBar({ format: `${label} [{bar}] {percentage}%`, stream: process.stderr, hideCursor: true }, Presets.shades_classic);
  let started = false;
  return {
    update(done, total) {
      if (!started) { bar.start(total, 0); started = true; }
      bar.setTotal(total);
      bar.update(done);
    },
    stop() { if (started) bar.stop(); },
  };
}

const INPUT_KINDS: InputKind[] = ['image', 'video', 'audio', 'text', 'depth', 'thermal', 'imu', 'point'];

/** Adds the repeatable input flags; every occurrence lands in `into`, in command-line order. */
function inputOptions(cmd: Command, into: EmbedInput[]): Command {
  for (const kind of INPUT_KINDS) {
    const flag = kind === 'text' ? `--text <string>` : `--${kind} <file>`;
    cmd.addOption(new Option(flag, `${kind} input (repeatable)`).argParser((v: string) => {
      into.push(kind === 'text' ? { kind: 'text', text: v } : { kind, path: v });
      return v;
    }));
  }
  return cmd
    .requiredOption('--encoder <gguf>', 'encoder GGUF (imagebind-llm convert imagebind)')
    .option('--threads <n>', 'CPU threads', (v) => parseInt(v, 10), 4)
    .option('--device <name>', 'auto, gpu, cpu, or a device name from `imagebind-llm info`', 'auto')
    .option('--truncation <mode>', "long texts: 'imagebind' (keep the end token) or 'imagebind-llm' (cut)", 'imagebind');
}

interface EncoderCliOptions { encoder: string; threads: number; device: string; truncation: 'imagebind' | 'imagebind-llm'; json?: boolean; raw?: boolean }

async function runEmbed(inputs: EmbedInput[], opts: EncoderCliOptions, raw = false) {
  if (inputs.length === 0) throw new Error('give at least one input (--image, --video, --audio, --text, --depth, --thermal, --imu, --point)');
  const enc = await ImageBindEncoder.load(opts.encoder, { threads: opts.threads, device: opts.device });
  const bar = progressBar('embedding');
  try {
    return await enc.embed(inputs, { truncation: opts.truncation, raw, onProgress: (d, t) => bar.update(d, t) });
  } finally {
    bar.stop();
    enc.dispose();
  }
}

function preview(v: Float32Array, n = 6): string {
  return `[${Array.from(v.slice(0, n), (x) => x.toFixed(4)).join(', ')}${v.length > n ? ', …' : ''}]`;
}

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
    console.log(`addon         ${info.addonPath} (${info.addon.kind === 'prebuilt' ? `prebuilt ${info.addon.package?.name}` : info.addon.kind === 'env' ? 'IMAGEBIND_LLM_ADDON' : 'source build'})`);
    console.log(`CPU variant   ${info.modules.cpuVariant} (${info.modules.cpuModule})`);
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

const convert = program.command('convert').description('convert released PyTorch checkpoints to GGUF');
convert
  .command('imagebind')
  .description('ImageBind checkpoint (imagebind_huge.pth, imagebind_w3D.pth) → encoder GGUF')
  .argument('<checkpoint>', '.pth file')
  .requiredOption('-o, --output <file>', 'output .gguf')
  .option('--config <file>', 'hyperparameters JSON (the fixtures\' imagebind.config.json schema); default ImageBind-huge')
  .addOption(new Option('--type <type>', 'weight matrix type').choices(['f32', 'f16', 'q8_0']).default('f16'))
  .option('--json', 'print JSON')
  .action(async (checkpoint: string, opts: { output: string; config?: string; type: EncoderType; json?: boolean }) => {
    const bar = progressBar('converting');
    const started = Date.now();
    let res;
    try {
      res = await convertImagebind(checkpoint, opts.output, { config: opts.config, type: opts.type, onProgress: (d, t) => bar.update(d, t) });
    } finally {
      bar.stop();
    }
    if (opts.json) printJson({ ...res, seconds: (Date.now() - started) / 1000 });
    else console.log(`wrote ${res.path}: ${res.modalities.join(', ')}; ${res.tensors} tensors, ${formatBytes(res.bytes)}, ${res.type}`);
  });

convert
  .command('cache')
  .description('faiss flat index (ImageBind-LLM knn.index) → kNN cache GGUF for cache-enhanced inference')
  .argument('<index>', 'faiss IndexFlatIP / IndexFlatL2 file (faiss.write_index)')
  .requiredOption('-o, --output <file>', 'output .gguf')
  .addOption(new Option('--type <type>', 'feature type').choices(['f16', 'f32']).default('f16'))
  .option('--chunk-rows <n>', 'rows per feature tensor (default 65536)', (v) => parseInt(v, 10))
  .option('--json', 'print JSON')
  .action(async (index: string, opts: { output: string; type: CacheType; chunkRows?: number; json?: boolean }) => {
    const bar = progressBar('converting');
    const started = Date.now();
    let res;
    try {
      res = await convertCache(index, opts.output, { type: opts.type, chunkRows: opts.chunkRows, onProgress: (d, t) => bar.update(d, t) });
    } finally {
      bar.stop();
    }
    if (opts.json) printJson({ ...res, seconds: (Date.now() - started) / 1000 });
    else console.log(`wrote ${res.path}: ${res.count} × ${res.dimension} ${res.metric} cache, ${res.type}, ${res.chunks} chunk${res.chunks === 1 ? '' : 's'} of ${res.chunkRows} rows, ${formatBytes(res.bytes)}`);
  });

convert
  .command('llm')
  .description('Meta-layout LLaMA + ImageBind-LLM adapter checkpoint → <prefix>-llm.gguf (llama.cpp model, adapter merged) and <prefix>-bind.gguf (bind network, injection)')
  .requiredOption('--llama <dir>', 'LLaMA folder: params.json, tokenizer.model, consolidated.00.pth (…)')
  .requiredOption('--adapter <file>', 'ImageBind-LLM adapter checkpoint (.pth)')
  .requiredOption('-o, --output <prefix>', 'output prefix: writes <prefix>-llm.gguf and <prefix>-bind.gguf')
  .addOption(new Option('--type <type>', 'LLM weight type').choices([...LLM_TYPES]).default('f16'))
  .addOption(new Option('--bind-type <type>', 'bind network matrix type').choices(['f32', 'f16']).default('f32'))
  .option('--context-length <n>', 'llama.context_length to record', (v) => parseInt(v, 10), 512)
  .option('--json', 'print JSON')
  .action(async (opts: { llama: string; adapter: string; output: string; type: LlmType; bindType: BindType; contextLength: number; json?: boolean }) => {
    const bar = progressBar('converting');
    const started = Date.now();
    let res;
    try {
      res = await convertLlm({
        llamaDir: opts.llama, adapter: opts.adapter, outPrefix: opts.output, type: opts.type, bindType: opts.bindType,
        contextLength: opts.contextLength, onProgress: (d, t) => bar.update(d, t),
      });
    } finally {
      bar.stop();
    }
    if (opts.json) printJson({ ...res, seconds: (Date.now() - started) / 1000 });
    else {
      console.log(`wrote ${res.llm}: llama, ${res.layers} layers, dim ${res.dim}, vocabulary ${res.vocabSize}, ${res.type}, ${formatBytes(res.bytes.llm)}`);
      console.log(`wrote ${res.bind}: bind network (${res.bridge}), ${res.queryLayer} injected layers, ${res.bindType}, ${formatBytes(res.bytes.bind)}`);
    }
  });

const embedInputs: EmbedInput[] = [];
inputOptions(program.command('embed'), embedInputs)
  .description('ImageBind embeddings of the inputs, in the order given')
  .option('--json', 'print a JSON array: one {modality, input, embedding} per input')
  .option('--raw', 'also print the raw head output and the scaled embedding')
  .action(async (opts: EncoderCliOptions) => {
    const res = await runEmbed(embedInputs, opts, !!opts.raw);
    if (opts.json) {
      printJson(res.map((r) => ({
        kind: r.kind, modality: r.modality, input: r.input, clips: r.clips, embedding: Array.from(r.embedding),
        ...(opts.raw ? { raw: Array.from(r.raw!), scaled: Array.from(r.scaled!) } : {}),
      })));
      return;
    }
    for (const r of res) console.log(`${r.kind.padEnd(7)} ${r.input}\n        ${r.embedding.length}-d ${preview(r.embedding)}${r.clips > 1 ? ` (${r.clips} clips)` : ''}`);
  });

const simInputs: EmbedInput[] = [];
inputOptions(program.command('similarity'), simInputs)
  .description('cosine similarities between all inputs; with texts, zero-shot classification of the other inputs over them')
  .option('--json', 'print JSON')
  .action(async (opts: EncoderCliOptions) => {
    const res = await runEmbed(simInputs, opts);
    const matrix = res.map((a) => res.map((b) => cosineSimilarity(a.embedding, b.embedding)));
    const texts = res.filter((r) => r.kind === 'text');
    const others = res.filter((r) => r.kind !== 'text');
    const zero = texts.length > 1 ? others.map((o) => ({
      input: o.input,
      probabilities: Object.fromEntries(zeroShot(o.embedding, texts.map((t) => t.embedding)).map((p, i) => [texts[i]!.input, p])),
    })) : [];
    if (opts.json) {
      printJson({ inputs: res.map((r) => ({ kind: r.kind, input: r.input })), similarity: matrix, zeroShot: zero });
      return;
    }
    const names = res.map((r, i) => `${i + 1}:${r.kind}`);
    res.forEach((r, i) => console.log(`${names[i]!.padEnd(12)} ${r.input}`));
    console.log('\n' + ' '.repeat(12) + names.map((n) => n.padStart(10)).join(''));
    matrix.forEach((row, i) => console.log(names[i]!.padEnd(12) + row.map((x) => x.toFixed(4).padStart(10)).join('')));
    for (const z of zero) {
      const best = Object.entries(z.probabilities).sort((a, b) => b[1] - a[1]);
      console.log(`\n${z.input}:`);
      for (const [t, p] of best) console.log(`  ${(100 * p).toFixed(1).padStart(5)}%  ${t}`);
    }
  });

interface AskCliOptions {
  encoder?: string; model: string; bind: string; cache?: string; weight: string[]; temperature?: number; topP?: number; topK?: number;
  repeatPenalty?: number; seed?: number; maxTokens?: number; context?: string; raw?: boolean; json?: boolean; logits?: boolean;
  threads: number; gpuLayers?: number; device: string; knn?: boolean; cacheK?: number; cacheT?: number; cacheWeight?: number; stop: string[];
}

/** The options `ask` and `chat` share; input flags land in `inputs`, in order. */
function llmOptions(cmd: Command, inputs: EmbedInput[]): Command {
  for (const kind of INPUT_KINDS.filter((k) => k !== 'text')) {
    cmd.addOption(new Option(`--${kind} <file>`, `${kind} input (repeatable)`).argParser((v: string) => {
      inputs.push({ kind, path: v } as EmbedInput);
      return v;
    }));
  }
  const num = (v: string) => Number(v);
  return cmd
    .option('--encoder <gguf>', 'encoder GGUF (needed with multimodal inputs)')
    .requiredOption('--model <gguf>', '<prefix>-llm.gguf')
    .requiredOption('--bind <gguf>', '<prefix>-bind.gguf')
    .option('--cache <gguf>', 'kNN cache GGUF: enables cache-enhanced inference')
    .option('--no-knn', 'do not use the cache even when given')
    .option('--cache-k <n>', 'cache neighbours (cache_size)', num)
    .option('--cache-t <t>', 'cache softmax factor (cache_t)', num)
    .option('--cache-weight <w>', 'share of the cache in the blend (cache_weight)', num)
    .option('--weight <modality=w>', 'mixing weight per input kind, e.g. image=1 audio=0.5 (repeatable)', (v: string, prev: string[]) => [...prev, v], [] as string[])
    .option('--temperature <t>', 'sampling temperature (default 0.1; 0 = greedy)', num)
    .option('--top-p <p>', 'nucleus sampling (default 0.75)', num)
    .option('--top-k <k>', 'top-k sampling (default off)', num)
    .option('--repeat-penalty <r>', 'repetition penalty (default 1 = off)', num)
    .option('--seed <n>', 'random seed', num)
    .option('--max-tokens <n>', 'most tokens to generate (default 256)', num)
    .option('--stop <string>', 'stop string (repeatable)', (v: string, prev: string[]) => [...prev, v], [] as string[])
    .option('--context <text>', "the prompt template's Input field")
    .option('--raw', 'send the prompt as given, without the Alpaca template')
    .option('--threads <n>', 'CPU threads', (v) => parseInt(v, 10), 4)
    .option('--gpu-layers <n>', 'layers offloaded to the GPU (GPU builds)', num)
    .option('--device <name>', 'auto, gpu, cpu, or a device name from `imagebind-llm info`', 'auto');
}

function askOptionsOf(opts: AskCliOptions, inputs: EmbedInput[]): AskOptions {
  const weights: Record<string, number> = {};
  for (const w of opts.weight) {
    const m = /^([a-z]+)=([0-9.eE+-]+)$/.exec(w);
    if (!m || !Number.isFinite(Number(m[2])) || Number(m[2]) < 0) throw new Error(`--weight ${w}: expected <modality>=<non-negative number>`);
    weights[m[1]!] = Number(m[2]);
  }
  const cache = opts.cache && opts.knn !== false ? { k: opts.cacheK, t: opts.cacheT, weight: opts.cacheWeight } : false;
  return {
    inputs: inputs as AskInput[], weights, context: opts.context, raw: opts.raw, temperature: opts.temperature, topP: opts.topP,
    topK: opts.topK, repeatPenalty: opts.repeatPenalty, seed: opts.seed, maxTokens: opts.maxTokens, stop: opts.stop, cache,
  };
}

async function loadLlmCli(opts: AskCliOptions): Promise<ImageBindLLM> {
  return ImageBindLLM.load({ model: opts.model, bind: opts.bind, cache: opts.cache, encoder: opts.encoder, threads: opts.threads,
    gpuLayers: opts.gpuLayers, device: opts.device });
}

const askInputs: EmbedInput[] = [];
llmOptions(program.command('ask'), askInputs)
  .description('ask ImageBind-LLM about the inputs; streams the answer to stdout')
  .argument('<instruction>', 'the question or instruction')
  .option('--json', 'print one JSON object: text, tokens, promptTokens')
  .option('--logits', 'with --json: also the last-token logits of the prompt')
  .action(async (instruction: string, opts: AskCliOptions) => {
    const llm = await loadLlmCli(opts);
    const ac = new AbortController();
    process.once('SIGINT', () => ac.abort());
    try {
      const ask = askOptionsOf(opts, askInputs);
      const res = await llm.ask(instruction, {
        ...ask, signal: ac.signal, logits: !!opts.logits,
        onToken: opts.json ? undefined : (t) => process.stdout.write(t),
      });
      if (opts.json) {
        printJson({ text: res.text, tokens: res.tokens, promptTokens: res.promptTokens, stopReason: res.stopReason, ...(res.logits ? { logits: Array.from(res.logits) } : {}) });
      } else {
        process.stdout.write('\n');
      }
    } finally {
      llm.dispose();
    }
  });

const chatInputs: EmbedInput[] = [];
llmOptions(program.command('chat'), chatInputs)
  .description('interactive conversation about the inputs (the KV cache is kept between turns; /reset, /exit)')
  .action(async (opts: AskCliOptions) => {
    const readline = await import('node:readline/promises');
    const llm = await loadLlmCli(opts);
    const session = await llm.createSession();
    const rl = readline.createInterface({ input: process.stdin, output: process.stdout });
    let first = true;
    try {
      for (;;) {
        let line: string;
        try {
          line = (await rl.question('> ')).trim();
        } catch {
          break;  // stdin closed
        }
        if (line === '/exit' || line === '/quit') break;
        if (line === '/reset') { session.reset(); first = true; continue; }
        if (!line) continue;
        const ask = askOptionsOf(opts, chatInputs);
        const ac = new AbortController();
        const onSig = () => ac.abort();
        process.once('SIGINT', onSig);
        try {
          await session.ask(line, { ...ask, inputs: first ? ask.inputs : undefined, signal: ac.signal, onToken: (t) => process.stdout.write(t) });
        } catch (e) {
          if ((e as { code?: string }).code !== 'ABORT_ERR') throw e;
          process.stdout.write(' [stopped]');
        } finally {
          process.removeListener('SIGINT', onSig);
        }
        process.stdout.write('\n');
        first = false;
      }
    } finally {
      rl.close();
      session.dispose();
      llm.dispose();
    }
  });

program
  .command('demo')
  .description('run every stage on a tiny demo model set with RANDOM weights that the package builds for itself, on media it synthesises')
  .option('--dir <dir>', 'where the demo models and media live', defaultDemoDir())
  .option('--threads <n>', 'CPU threads', (v) => parseInt(v, 10), 2)
  .option('--json', 'print JSON')
  .action(async (opts: { dir: string; threads: number; json?: boolean }) => {
    const log = (m: string) => process.stderr.write(`${m}\n`);
    const demo = await buildDemo(opts.dir, log);
    const enc = await ImageBindEncoder.load(demo.encoder, { threads: opts.threads });
    const llm = await ImageBindLLM.load({ model: demo.llm, bind: demo.bind, encoder: enc, threads: opts.threads });
    try {
      const res = await enc.embed(demo.inputs);
      const texts = res.filter((r) => r.kind === 'text');
      const rows = res.filter((r) => r.kind !== 'text').map((r) => ({
        kind: r.kind, input: r.input, clips: r.clips, embedding: Array.from(r.embedding),
        zeroShot: Object.fromEntries(zeroShot(r.embedding, texts.map((t) => t.embedding)).map((p, i) => [texts[i]!.input, p])),
      }));
      // The whole ImageBind-LLM path: an image and a sound, mixed, bound, injected, answered.
      const question = 'What is in this picture?';
      const answer = await llm.ask(question, {
        inputs: demo.inputs.filter((i) => i.kind === 'image' || i.kind === 'audio').slice(0, 2) as AskInput[],
        temperature: 0, maxTokens: 16, onToken: opts.json ? undefined : undefined,
      });
      if (opts.json) {
        printJson({
          label: DEMO_LABEL, encoder: demo.encoder, llm: demo.llm, bind: demo.bind, embeddings: rows,
          texts: texts.map((t) => ({ text: t.input, embedding: Array.from(t.embedding) })),
          ask: { question, text: answer.text, tokens: answer.tokens, promptTokens: answer.promptTokens.length, stopReason: answer.stopReason },
        });
        return;
      }
      console.log(`*** ${DEMO_LABEL}: the numbers below show that every stage runs, not what the inputs mean ***`);
      console.log(`encoder ${demo.encoder}\nllm     ${demo.llm}\nbind    ${demo.bind}`);
      for (const r of res) console.log(`${r.kind.padEnd(7)} ${path.basename(r.input)}${r.clips > 1 ? ` (${r.clips} clips)` : ''}: ${preview(r.embedding, 4)}`);
      for (const r of rows) {
        const best = Object.entries(r.zeroShot).sort((a, b) => b[1] - a[1])[0]!;
        console.log(`zero-shot ${path.basename(r.input)} → "${best[0]}" (${(100 * best[1]).toFixed(1)}%)`);
      }
      console.log(`ask (image + sound injected): "${question}" → ${JSON.stringify(answer.text)} (${answer.tokens.length} tokens, random weights)`);
    } finally {
      llm.dispose();
      enc.dispose();
    }
  });

program
  .command('model')
  .description('show what a model GGUF holds (an encoder: modalities and sizes)')
  .argument('<file>', '.gguf file')
  .option('--threads <n>', 'CPU threads', (v) => parseInt(v, 10), 1)
  .option('--json', 'print JSON')
  .action(async (file: string, opts: { json?: boolean; threads: number }) => {
    const g = await inspectGguf(file);
    const arch = g.metadata['general.architecture'];
    if (arch !== 'imagebind') {
      const summary = { file, architecture: arch, tensors: g.tensors.length, bytes: g.fileSize };
      if (opts.json) printJson(summary);
      else console.log(`${file}: ${String(arch)} model, ${g.tensors.length} tensors, ${formatBytes(g.fileSize)}`);
      return;
    }
    const enc = await ImageBindEncoder.load(file, { threads: opts.threads, device: 'cpu' });
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

program.parseAsync(process.argv).catch((e: unknown) => {
  const err = e as { message?: string; code?: string };
  process.stderr.write(`imagebind-llm: ${err.message ?? String(e)}\n`);
  process.exitCode = 1;
});
