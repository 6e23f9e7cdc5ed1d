// Checks of option values at the API's edge: each names the option, the bound and what came.
import { addon } from './binding';
import { ImageBindError } from './errors';

function describe(v: unknown): string {
  return typeof v === 'number' || typeof v === 'string' ? JSON.stringify(v) : typeof v;
}

function invalid(name: string, expected: string, got: unknown): never {
  throw new ImageBindError('ERR_INVALID_ARG', `${name} must be ${expected}, got ${describe(got)}`);
}

/** An integer in [min, max]; undefined gives undefined. */
export function checkInt(value: unknown, name: string, min: number, max: number): number | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    invalid(name, `an integer between ${min} and ${max}`, value);
  }
  return value;
}

/** A finite number with optional bounds; `open` excludes them. */
export function checkNumber(value: unknown, name: string, o: { min?: number; max?: number; minOpen?: boolean; maxOpen?: boolean } = {}): number | undefined {
  if (value === undefined) return undefined;
  const lo = o.min === undefined ? '' : `${o.minOpen ? '>' : '≥'} ${o.min}`;
  const hi = o.max === undefined ? '' : `${o.maxOpen ? '<' : '≤'} ${o.max}`;
  const expected = `a finite number${lo || hi ? ' ' : ''}${[lo, hi].filter(Boolean).join(' and ')}`;
  if (typeof value !== 'number' || !Number.isFinite(value)) invalid(name, expected, value);
  if (o.min !== undefined && (o.minOpen ? value <= o.min : value < o.min)) invalid(name, expected, value);
  if (o.max !== undefined && (o.maxOpen ? value >= o.max : value > o.max)) invalid(name, expected, value);
  return value;
}

/** The thread counts this process may use: the default (cores it may run on) and the bound. */
export function threadLimits(): { default: number; max: number; logical: number } {
  return addon().threads();
}

/** undefined → 0 (the native default: the cores this process may use); else an integer in [1, max]. */
export function checkThreads(value: unknown, name = 'threads'): number {
  if (value === undefined) return 0;
  return checkInt(value, name, 1, threadLimits().max)!;
}

/** "auto", "gpu", "cpu" or the name of a device ggml reports, in any case (imagebind-llm info lists them). */
export function checkDevice(value: unknown, name = 'device'): string {
  if (value === undefined) return 'auto';
  if (typeof value !== 'string') invalid(name, 'a device name string', value);
  const v = value as string;
  if (['auto', 'cpu', 'gpu'].includes(v.toLowerCase())) return v.toLowerCase();
  const names = addon().backends().flatMap((b) => b.devices.map((d) => d.name));
  // ggml's names ("CPU", "Vulkan0", "CUDA0"), in any case.
  const found = names.find((n) => n.toLowerCase() === v.toLowerCase());
  if (found) return found;
  throw new ImageBindError('ERR_NO_DEVICE', `${name}: unknown device '${v}' (this build has: auto, gpu, cpu${names.length ? `, ${names.join(', ')}` : ''})`);
}
