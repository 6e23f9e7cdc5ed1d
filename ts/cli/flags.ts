// The CLI's shared flags and strict parsers. Every value is checked where it enters, and an error
// names the flag, the bound and what came (commander prefixes "option '--x <n>' argument 'y' is
// invalid."). Usage errors exit with 2 and one line.
import { Command, InvalidArgumentError, Option } from 'commander';
import type { EmbedInput, InputKind } from '../encoder';
import { checkDevice, threadLimits } from '../options';

/** A usage error found after parsing (a missing or conflicting flag): one line, exit code 2. */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

const INT = /^[+-]?\d+$/;
const NUM = /^[+-]?(\d+\.?\d*|\.\d+)(e[+-]?\d+)?$/i;

/** An integer in [min, max], written as digits (no 1e3, no 0x, no trailing text). */
export function intArg(min: number, max: number): (v: string) => number {
  return (v: string) => {
    const n = Number(v);
    if (!INT.test(v.trim()) || !Number.isSafeInteger(n) || n < min || n > max) {
      throw new InvalidArgumentError(`expected an integer between ${min} and ${max}`);
    }
    return n;
  };
}

/** A finite decimal number within bounds (open bounds exclude the value itself). */
export function numArg(o: { min?: number; max?: number; minOpen?: boolean; maxOpen?: boolean }): (v: string) => number {
  const lo = o.min === undefined ? '' : `${o.minOpen ? '>' : '≥'} ${o.min}`;
  const hi = o.max === undefined ? '' : `${o.maxOpen ? '<' : '≤'} ${o.max}`;
  const expected = `expected a number${lo || hi ? ' ' : ''}${[lo, hi].filter(Boolean).join(' and ')}`;
  return (v: string) => {
    const n = Number(v);
    if (!NUM.test(v.trim()) || !Number.isFinite(n)) throw new InvalidArgumentError(expected);
    if (o.min !== undefined && (o.minOpen ? n <= o.min : n < o.min)) throw new InvalidArgumentError(expected);
    if (o.max !== undefined && (o.maxOpen ? n >= o.max : n > o.max)) throw new InvalidArgumentError(expected);
    return n;
  };
}

function collect(v: string, prev: string[]): string[] {
  return [...prev, v];
}

/** --threads and --device, with the bounds of this machine and this build. */
export function runtimeOptions(cmd: Command): Command {
  const t = threadLimits();
  return cmd
    .option('--threads <n>', `CPU threads (default ${t.default}: the cores this process may use)`, intArg(1, t.max))
    .option('--device <name>', 'auto, gpu, cpu, or a device that `imagebind-llm info` lists (e.g. Vulkan0)', (v: string) => {
      try {
        return checkDevice(v, '--device');
      } catch (e) {
        throw new InvalidArgumentError((e as Error).message.replace(/^--device: /, ''));
      }
    }, 'auto');
}

export const INPUT_KINDS: InputKind[] = ['image', 'video', 'audio', 'text', 'depth', 'thermal', 'imu', 'point'];
export const MEDIA_KINDS = INPUT_KINDS.filter((k) => k !== 'text') as Exclude<InputKind, 'text'>[];

/** The repeatable input flags; every occurrence lands in `into`, in command-line order. */
export function inputOptions(cmd: Command, into: EmbedInput[], kinds: InputKind[] = INPUT_KINDS): Command {
  for (const kind of kinds) {
    const flag = kind === 'text' ? `--text <string>` : `--${kind} <file>`;
    cmd.addOption(new Option(flag, `${kind} input (repeatable)`).argParser((v: string) => {
      into.push(kind === 'text' ? { kind: 'text', text: v } : { kind, path: v });
      return v;
    }));
  }
  return cmd;
}

const WEIGHT_KEYS = [...MEDIA_KINDS, 'vision'];

/** --weight kind=w (repeatable) → { kind: w }; `kinds` are the kinds it may name (default: the media kinds). */
export function weightOption(cmd: Command, kinds: readonly string[] = MEDIA_KINDS): Command {
  return cmd.option('--weight <kind=w>', `mixing weight per input kind (${kinds.join(', ')}), e.g. audio=0.5; repeatable`, collect, [] as string[]);
}

export function parseWeights(list: string[], kinds: readonly string[] = MEDIA_KINDS): Record<string, number> {
  const keys = kinds === MEDIA_KINDS ? WEIGHT_KEYS : kinds;
  const out: Record<string, number> = {};
  for (const w of list) {
    const m = /^([a-z]+)=(.+)$/.exec(w);
    if (!m) throw new UsageError(`--weight ${w}: expected <kind>=<weight>, e.g. audio=0.5`);
    if (!keys.includes(m[1]!)) throw new UsageError(`--weight ${w}: unknown input kind '${m[1]}' (one of ${kinds.join(', ')})`);
    try {
      out[m[1]!] = numArg({ min: 0 })(m[2]!);
    } catch {
      throw new UsageError(`--weight ${w}: the weight must be a number ≥ 0`);
    }
  }
  return out;
}

export { collect };
