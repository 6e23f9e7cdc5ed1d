// `search`: the indexed files nearest to a query of any modalities.
import type { Command } from 'commander';
import type { EmbedInput } from '../encoder';
import { MediaIndex, SearchInput } from '../search';
import { INPUT_KINDS, UsageError, inputOptions, intArg, parseWeights, weightOption } from './flags';
import { interruptSignal } from './interrupt';
import { MediaCliOptions, mediaOptions } from './media-flags';
import { resolveEncoderPath } from './resolve-encoder';

interface SearchCliOptions extends MediaCliOptions { k: number; weight: string[] }

export function registerSearch(program: Command): void {
  const inputs: EmbedInput[] = [];
  mediaOptions(weightOption(inputOptions(program.command('search'), inputs), INPUT_KINDS), 'only files of these kinds')
    .description('the indexed files nearest to the query; several inputs are mixed by their weights')
    .option('--k <n>', 'how many results (default 20)', intArg(1, 4096), 20)
    .option('--json', 'print one JSON object per result, a line each')
    .action(async (opts: SearchCliOptions) => {
      if (inputs.length === 0) throw new UsageError('give a query: --text, --image, --audio, --video, --point, --depth, --thermal or --imu (repeatable)');
      const weights = parseWeights(opts.weight, INPUT_KINDS);
      const encoder = resolveEncoderPath(opts.encoder, opts.models);
      const signal = interruptSignal();
      const index = await MediaIndex.open(opts.db, { encoder, threads: opts.threads, device: opts.device, create: false, signal });
      try {
        const hits = await index.search(inputs as SearchInput[], { k: opts.k, kinds: opts.kinds, weights, signal });
        hits.forEach((h, i) => {
          if (opts.json) process.stdout.write(JSON.stringify({ rank: i + 1, score: h.score, kind: h.kind, path: h.path }) + '\n');
          else console.log(`${h.score.toFixed(4).padStart(8)}  ${h.kind.padEnd(7)}  ${h.path}`);
        });
      } finally {
        await index.close();
      }
    });
}
