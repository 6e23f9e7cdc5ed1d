// Progress where a person waits: a bar on stderr, only on a terminal, only once the work has taken
// about a second, cleared when done. Never on stdout, never with --json.
import { Presets, SingleBar } from 'cli-progress';

export interface Progress {
  /** done/total, or a fraction 0 … 1 when total is omitted. */
  update(done: number, total?: number): void;
  /** Removes the bar (if one was shown). */
  stop(): void;
}

const SHOW_AFTER_MS = 1000;

/** With `unit` (e.g. 'files'), the bar shows done/total, the rate per second and the ETA. */
export function progress(label: string, o: { json?: boolean } = {}, unit?: string): Progress {
  if (!process.stderr.isTTY || o.json) return { update() {}, stop() {} };
  const started = Date.now();
  let bar: SingleBar | null = null;
  let stopped = false;
  const rate = (d: number) => (d / Math.max((Date.now() - started) / 1000, 1e-3)).toFixed(1);
  return {
    update(done, total) {
      if (stopped) return;
      const t = total ?? 1000;
      const d = total === undefined ? Math.round(done * 1000) : done;
      if (!bar) {
        if (Date.now() - started < SHOW_AFTER_MS || d >= t) return;
        const format = unit
          ? `${label} [{bar}] {value}/{total} ${unit} · {rate} ${unit}/s · ETA {eta_formatted}`
          : `${label} [{bar}] {percentage}% {eta_formatted}`;
        bar = new SingleBar({ format, stream: process.stderr, hideCursor: true, clearOnComplete: true }, Presets.shades_classic);
        bar.start(t, d, { rate: rate(d) });
        return;
      }
      bar.setTotal(t);
      bar.update(d, { rate: rate(d) });
    },
    stop() {
      stopped = true;
      if (bar) {
        bar.stop();
        bar = null;
      }
    },
  };
}
