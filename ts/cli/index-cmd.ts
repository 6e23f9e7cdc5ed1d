// `index`: adds folders and files to a media index, incrementally (the command is named index; this
// file is not the CLI's entry).
import type { Command } from 'commander';
import { MediaIndex } from '../search';
import { intArg } from './flags';
import { interruptSignal } from './interrupt';
import { MediaCliOptions, mediaOptions } from './media-flags';
import { note, printJson } from './output';
import { progress } from './progress';
import { resolveEncoderPath } from './resolve-encoder';

interface IndexCliOptions extends MediaCliOptions { prune?: boolean; reembed?: boolean; batch?: number }

export function registerIndex(program: Command): void {
  mediaOptions(program.command('index'), 'only these kinds of files')
    .description('index folders and files for search: new and changed files are embedded, unchanged ones skipped; safe to interrupt and run again')
    .argument('<paths...>', 'folders (walked recursively) and files')
    .option('--prune', 'also drop indexed files under the given folders that no longer exist')
    .option('--reembed', 'the index was built with another encoder: empty it and embed everything with this one')
    .option('--batch <n>', 'files per encoder call and per committed transaction (default 16)', intArg(1, 256))
    .option('--json', 'print the summary as JSON')
    .action(async (paths: string[], opts: IndexCliOptions) => {
      const encoder = resolveEncoderPath(opts.encoder, opts.models);
      const signal = interruptSignal();
      const index = await MediaIndex.open(opts.db, { encoder, threads: opts.threads, device: opts.device, reembed: opts.reembed, signal });
      const bar = progress('indexing', opts, 'files');
      try {
        const res = await index.add(paths, {
          signal, kinds: opts.kinds, prune: opts.prune, batchSize: opts.batch,
          onProgress: (p) => bar.update(p.done, p.total),
          onFileError: (_file, e) => {
            bar.stop();
            note(`imagebind-llm: skipped ${e.message}`);
          },
        });
        bar.stop();
        if (opts.json) {
          printJson({ db: index.file, ...res });
          return;
        }
        console.log(`${index.file}: ${res.files} media files: ${res.embedded} embedded, ${res.reused} reused from identical content, ` +
          `${res.unchanged} unchanged, ${res.removed} removed${res.failed.length ? `, ${res.failed.length} skipped (see above)` : ''}`);
      } finally {
        bar.stop();
        await index.close();
      }
    });
}
