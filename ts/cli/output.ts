// What the CLI prints: JSON on stdout, sizes, vector previews.
export function printJson(value: unknown, compact = false): void {
  process.stdout.write(JSON.stringify(value, (_k, v) => (typeof v === 'bigint' ? v.toString() : v), compact ? undefined : 2) + '\n');
}

export function formatBytes(n: number): string {
  if (n >= 1 << 30) return `${(n / (1 << 30)).toFixed(1)} GiB`;
  if (n >= 1 << 20) return `${(n / (1 << 20)).toFixed(1)} MiB`;
  if (n >= 1 << 10) return `${(n / (1 << 10)).toFixed(1)} KiB`;
  return `${n} B`;
}

export function preview(v: Float32Array, n = 6): string {
  return `[${Array.from(v.slice(0, n), (x) => x.toFixed(4)).join(', ')}${v.length > n ? ', …' : ''}]`;
}

/** Writes to stderr (messages that must not mix with a command's output on stdout). */
export function note(message: string): void {
  process.stderr.write(`${message}\n`);
}
