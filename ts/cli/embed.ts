// `embed` and `similarity`: ImageBind embeddings of inputs of any modality, and how close they are.
import { Command, InvalidArgumentError } from 'commander';
import { EmbedInput, Embedding, ImageBindEncoder, cosineSimilarity, zeroShot } from '../encoder';
import { defaultModelsDir } from '../models';
import { resolveEncoderPath } from './resolve-encoder';
import { UsageError, inputOptions, runtimeOptions } from './flags';
import { interruptSignal } from './interrupt';
import { preview, printJson } from './output';
import { progress } from './progress';

interface EncoderCliOptions { encoder?: string; models?: string; threads?: number; device: string; truncation: 'imagebind' | 'imagebind-llm'; json?: boolean; raw?: boolean }

function encoderOptions(cmd: Command, into: EmbedInput[]): Command {
  return runtimeOptions(inputOptions(cmd, into))
    .option('--encoder <gguf>', 'encoder GGUF (imagebind-llm convert imagebind; default: the model folder\'s)')
    .option('--models <dir>', `model folder that \`imagebind-llm pull\` filled, used when --encoder is omitted (default: IMAGEBIND_LLM_MODELS, else ${defaultModelsDir()})`)
    .option('--truncation <mode>', "long texts: 'imagebind' (keep the end token) or 'imagebind-llm' (cut)", (v: string) => {
      if (v !== 'imagebind' && v !== 'imagebind-llm') throw new InvalidArgumentError('expected imagebind or imagebind-llm');
      return v;
    }, 'imagebind');
}

async function runEmbed(inputs: EmbedInput[], opts: EncoderCliOptions, raw = false): Promise<Embedding[]> {
  opts.encoder = resolveEncoderPath(opts.encoder, opts.models);
  if (inputs.length === 0) throw new UsageError('give at least one input (--image, --video, --audio, --text, --depth, --thermal, --imu, --point)');
  const signal = interruptSignal();
  const loading = progress('loading the encoder', opts);
  let enc: ImageBindEncoder;
  try {
    enc = await ImageBindEncoder.load(opts.encoder, { threads: opts.threads, device: opts.device, signal, onProgress: (f) => loading.update(f) });
  } finally {
    loading.stop();
  }
  const bar = progress('embedding', opts);
  try {
    return await enc.embed(inputs, { truncation: opts.truncation, raw, signal, onProgress: (d, t) => bar.update(d, t) });
  } finally {
    bar.stop();
    enc.dispose();
  }
}

export function registerEmbed(program: Command): void {
  const embedInputs: EmbedInput[] = [];
  encoderOptions(program.command('embed'), embedInputs)
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
  encoderOptions(program.command('similarity'), simInputs)
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
}
