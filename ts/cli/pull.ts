// `pull`: download the released files, convert them into the model folder that every command uses
// by default. Progress on stderr: a bar per download (bytes, rate, time left) and per conversion on a
// terminal; one line per step otherwise; nothing with --json but the result on stdout.
import { Command, Option } from 'commander';
import { Presets, SingleBar } from 'cli-progress';
import { LLM_TYPES } from '../convert/llm';
import type { BindType, LlmType } from '../convert/llm';
import { ENCODER_TYPES, type EncoderType } from '../convert/imagebind';
import type { CacheType } from '../convert/cache';
import { isAbortError } from '../errors';
import { defaultModelsDir } from '../models';
import { pull, PullEvent } from '../pull';
import { intArg, UsageError } from './flags';
import { interruptSignal } from './interrupt';
import { formatBytes, note, printJson } from './output';

interface PullCliOptions {
  llama?: string; models?: string; dir?: string; base: 'chinese' | 'llama'; adapter: 'stable' | 'beta'; type: LlmType;
  encoderType: EncoderType; bindType: BindType; cacheType: CacheType; encoderConfig?: string; knn: boolean;
  keepDownloads?: boolean; connections: number; json?: boolean;
}

const STEP = { download: 'downloading', check: 'checking', convert: 'converting', hash: 'hashing' } as const;

/**
 * Draws the pull's progress: on a terminal a bar per download (kept as a record), and per check,
 * conversion and hash once it has taken a second (removed when done); elsewhere one line per step.
 */
class PullView {
  #bar: SingleBar | null = null;
  #key = '';
  #since = 0;
  #from = 0;

  constructor(private readonly tty: boolean, private readonly quiet: boolean) {}

  on(e: PullEvent): void {
    if (this.quiet) return;
    if (e.phase === 'note') {
      this.stop();
      note(e.message);
      return;
    }
    const key = `${e.phase} ${e.label}`;
    const download = e.phase === 'download';
    if (key !== this.#key) {
      this.stop();
      this.#key = key;
      this.#since = Date.now();
      this.#from = e.done;
      if (!this.tty && (download || e.phase === 'convert')) note(`${STEP[e.phase]} ${e.label}${download ? ` (${formatBytes(e.total)}${e.done ? `, ${formatBytes(e.done)} already here` : ''})` : ''}`);
    }
    if (!this.tty) return;
    if (!this.#bar) {
      if (!download && (Date.now() - this.#since < 1000 || e.done >= e.total)) return;
      this.#bar = new SingleBar({
        format: `${STEP[e.phase]} ${e.label} [{bar}] {percentage}%${e.phase === 'convert' ? '' : ' {doneBytes}/{totalBytes}'}${download ? ' {rate}' : ''} ETA {eta_formatted}`,
        stream: process.stderr, hideCursor: true, clearOnComplete: !download && e.phase !== 'convert', etaBuffer: 50, fps: 5,
      }, Presets.shades_classic);
      this.#bar.start(e.total, e.done, this.#payload(e.done, e.total));
      return;
    }
    this.#bar.update(e.done, this.#payload(e.done, e.total));
  }

  #payload(done: number, total: number): Record<string, string> {
    const s = (Date.now() - this.#since) / 1000;
    return { doneBytes: formatBytes(done), totalBytes: formatBytes(total), rate: s >= 0.5 ? `${formatBytes((done - this.#from) / s)}/s` : '' };
  }

  stop(): void {
    this.#bar?.stop();
    this.#bar = null;
    this.#key = '';
  }
}

export function registerPull(program: Command): void {
  program
    .command('pull')
    .description('download the released ImageBind-LLM files (resumable, sha256-checked) and convert them, with your LLaMA-7B, into the model folder that ask, chat, embed and similarity use by default')
    .option('--llama <dir>', "your LLaMA-7B: Meta's folder (params.json, consolidated.00.pth, tokenizer.model here or one up) or a Hugging Face one (config.json, *.safetensors or pytorch_model*.bin, tokenizer.model); without it only the encoder and cache are made")
    .option('--models <dir>', `the model folder (default: IMAGEBIND_LLM_MODELS, else ${defaultModelsDir()})`)
    .option('--dir <dir>', 'the same as --models')
    .addOption(new Option('--base <base>', "chinese: Open-Chinese-LLaMA-7B = LLaMA-7B + the released delta, what 7B.pth was trained on; llama: plain LLaMA-7B").choices(['chinese', 'llama']).default('chinese'))
    .addOption(new Option('--adapter <which>', 'stable: 7B.pth; beta: 7B-beta.pth (trained on plain LLaMA: needs --base llama)').choices(['stable', 'beta']).default('stable'))
    .addOption(new Option('--type <type>', 'LLM weight type (q4_k_m: the best quality for its speed on a CPU)').choices([...LLM_TYPES]).default('q4_k_m'))
    .addOption(new Option('--encoder-type <type>', 'encoder weight type').choices([...ENCODER_TYPES]).default('f16'))
    .addOption(new Option('--bind-type <type>', 'bind network type (f16: 1.2 GB for 7B instead of 2.3 GB)').choices(['f32', 'f16']).default('f16'))
    .addOption(new Option('--cache-type <type>', 'kNN cache type').choices(['f32', 'f16']).default('f16'))
    .option('--encoder-config <file>', 'hyperparameters of an encoder checkpoint other than ImageBind-huge (see `convert imagebind --config`)')
    .option('--no-knn', 'do not fetch the kNN cache')
    .option('--keep-downloads', 'keep the downloaded checkpoints in <models>/downloads (default: delete them once converted)')
    .option('--connections <n>', 'parallel connections per file, 1–16', intArg(1, 16), 4)
    .option('--json', 'print the result as JSON (no progress)')
    .action(async (opts: PullCliOptions) => {
      if (opts.dir && opts.models && opts.dir !== opts.models) throw new UsageError('--dir and --models name the same folder: give one');
      if (opts.adapter === 'beta' && opts.base !== 'llama') throw new UsageError('--adapter beta was trained on plain LLaMA-7B: add --base llama');
      const view = new PullView(!!process.stderr.isTTY, !!opts.json);
      const started = Date.now();
      let res;
      try {
        res = await pull({
          llama: opts.llama, models: opts.models ?? opts.dir, base: opts.base, adapter: opts.adapter, type: opts.type,
          encoderType: opts.encoderType, bindType: opts.bindType, cacheType: opts.cacheType, encoderConfig: opts.encoderConfig,
          knn: opts.knn, keepDownloads: opts.keepDownloads, connections: opts.connections, signal: interruptSignal(),
          onEvent: (e) => view.on(e),
        });
      } catch (e) {
        view.stop();
        if (isAbortError(e)) note('pull stopped: what was downloaded is kept; run `imagebind-llm pull` again to continue');
        throw e;
      } finally {
        view.stop();
      }
      if (opts.json) {
        printJson({ ...res, seconds: (Date.now() - started) / 1000 });
        return;
      }
      for (const s of res.skipped) note(`skipped ${s}`);
      console.log(`model folder ${res.dir} (${res.built.length ? `made: ${res.built.join(', ')}` : 'nothing to do'}${res.kept.length ? `; up to date: ${res.kept.join(', ')}` : ''}; ${formatBytes(res.fetchedBytes)} downloaded)`);
      for (const role of ['encoder', 'llm', 'bind', 'cache'] as const) {
        const e = res.models.entries[role];
        if (e) console.log(`  ${role.padEnd(8)} ${e.file} (${e.type}, ${formatBytes(e.bytes)})`);
      }
      if (res.models.llm) console.log('ready: npx imagebind-llm ask --image dog.jpg "What is in the picture?"');
      else if (res.models.encoder) console.log('ready: npx imagebind-llm similarity --image dog.jpg --text "a dog" --text "a car"');
    });
}
