// One file from the hub to disk: resumable, on several connections, checked before use.
//
// - The bytes go to `<partial>/<sha256>.part`, a name of our own (never the final name), with a
//   state file beside it (`<sha256>.json`: the bytes done in each segment). The state is written
//   only after the data it describes is flushed (fdatasync), so after Ctrl-C, a crash or a power cut
//   it never claims bytes the disk does not have; the next run asks only for what is missing.
// - The file is cut in segments (64 MiB) that up to `connections` requests fetch at once with HTTP
//   Range. The first answer decides: 206 means the server takes ranges and the other connections
//   start; a 200 (ranges ignored) means one stream from byte 0.
// - A connection that breaks, stalls (no byte for `stallMs`) or meets a 5xx/429 is retried with a
//   growing pause, from where it stopped; `retries` failures in a row without progress end the run
//   with an error that says the next run continues. 401/403/404 end it at once.
// - When every byte is there the file's size and sha256 (or git sha1 for a small non-LFS file) are
//   checked against the hub's; only then is it renamed to its final name. A mismatch removes it.
import crypto from 'node:crypto';
import fs from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { AbortError, ImageBindError } from '../errors';
import { describeFile, headers, Hub, networkError, RemoteFile, resolveUrl, retryable, statusError } from './hub';

export interface DownloadOptions {
  /** Where partial downloads and their state live. */
  partialDir: string;
  /** Parallel connections (range requests) per file. */
  connections: number;
  /** Segment size in bytes (the unit of parallel fetching). */
  segmentBytes: number;
  /** Failures in a row without progress before giving up. */
  retries: number;
  /** The first pause before a retry; it doubles up to 30 s. */
  retryDelayMs: number;
  /** A connection that delivers nothing for this long is retried. */
  stallMs: number;
  signal?: AbortSignal;
  /** Bytes present (resumed + fetched) of the file's total. */
  onProgress?: (done: number, total: number) => void;
  /** Bytes checked so far when verifying. */
  onVerify?: (done: number, total: number) => void;
}

export interface DownloadResult {
  path: string;
  sha256: string;
  /** The git blob sha1, when the hub listed one instead of a sha256. */
  gitSha1?: string;
  /** Bytes fetched by this run (the rest was there from an earlier one). */
  fetched: number;
  resumed: number;
}

interface State {
  version: 1;
  url: string;
  size: number;
  segment: number;
  done: number[];
}

const SAVE_EVERY_MS = 1000;
const UNREACHABLE = ['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'ENETUNREACH', 'EHOSTUNREACH', 'ETIMEDOUT', 'UND_ERR_CONNECT_TIMEOUT'];

export function diskFullError(file: string, what: string, cause: unknown): ImageBindError {
  return new ImageBindError('ERR_DISK_FULL', `${file}: no space left on the disk while writing ${what}; free some space and run pull again (a download continues where it stopped)`, { cause });
}

const isDiskFull = (e: unknown) => ['ENOSPC', 'EDQUOT'].includes((e as NodeJS.ErrnoException)?.code ?? '');

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const t = setTimeout(done, ms);
    function done() { clearTimeout(t); signal.removeEventListener('abort', done); resolve(); }
    signal.addEventListener('abort', done, { once: true });
  });
}

/** A key naming the partial files: the expected hash, so a changed file never resumes old bytes. */
function keyOf(f: RemoteFile): string {
  return f.sha256 ?? `git-${f.gitSha1}`;
}

class Transfer {
  readonly state: State;
  readonly stop = new AbortController();
  fatal: unknown = undefined;
  fetched = 0;
  private saving: Promise<void> = Promise.resolve();
  private lastSave = 0;

  constructor(readonly hub: Hub, readonly file: RemoteFile, readonly url: string, readonly fh: FileHandle, readonly part: string,
    readonly stateFile: string, state: State, readonly o: DownloadOptions) {
    this.state = state;
  }

  get done(): number { return this.state.done.reduce((a, b) => a + b, 0); }
  segStart(i: number): number { return i * this.state.segment; }
  segLen(i: number): number { return Math.min(this.state.segment, this.state.size - this.segStart(i)); }

  /** Flushes the data, then records the state (serialised: one save at a time). */
  save(force = false): Promise<void> {
    const now = Date.now();
    if (!force && now - this.lastSave < SAVE_EVERY_MS) return this.saving;
    this.lastSave = now;
    const snapshot = JSON.stringify(this.state);
    this.saving = this.saving.then(async () => {
      await this.fh.datasync().catch(() => undefined); // a device (a test's /dev/full) cannot sync
      const tmp = `${this.stateFile}.tmp`;
      await fs.promises.writeFile(tmp, snapshot);
      await fs.promises.rename(tmp, this.stateFile);
    }).catch((e) => {
      if (isDiskFull(e)) this.fail(diskFullError(this.stateFile, `the download state of ${describeFile(this.file)}`, e));
    });
    return this.saving;
  }

  fail(e: unknown): void {
    if (this.fatal === undefined) this.fatal = e;
    this.stop.abort();
  }

  private async write(chunk: Uint8Array, pos: number): Promise<void> {
    try {
      let off = 0;
      while (off < chunk.length) {
        const { bytesWritten } = await this.fh.write(chunk, off, chunk.length - off, pos + off);
        off += bytesWritten;
      }
    } catch (e) {
      throw isDiskFull(e) ? diskFullError(this.part, describeFile(this.file), e) : new ImageBindError('ERR_FILE_WRITE', `${this.part}: cannot write: ${(e as Error).message}`, { cause: e });
    }
  }

  /**
   * One request for bytes [from, to]. Returns 'ranged', or 'whole' for a 200 (the server sent the whole
   * file, written here from byte 0), or throws. `onAnswer` hears the mode before the first byte.
   */
  async request(from: number, to: number, onAnswer: (mode: 'ranged' | 'whole') => void, onBytes: (pos: number, n: number) => void): Promise<'ranged' | 'whole'> {
    const ctl = new AbortController();
    const onStop = () => ctl.abort();
    this.stop.signal.addEventListener('abort', onStop, { once: true });
    let stalled = false;
    let timer = setTimeout(() => { stalled = true; ctl.abort(); }, this.o.stallMs);
    const alive = () => { clearTimeout(timer); timer = setTimeout(() => { stalled = true; ctl.abort(); }, this.o.stallMs); };
    try {
      let res: Response;
      try {
        res = await fetch(this.url, { signal: ctl.signal, headers: headers(this.hub, { range: `bytes=${from}-${to}`, 'accept-encoding': 'identity' }) });
      } catch (e) {
        if (this.stop.signal.aborted) throw e;
        if (stalled) throw new Cut(`no answer for ${this.o.stallMs / 1000} s`);
        // Refused or unresolvable: the host cannot be reached; anything else broke an open connection.
        const code = (e as { cause?: { code?: string } }).cause?.code ?? '';
        if (UNREACHABLE.includes(code)) throw new Retry(networkError(this.hub, e, this.file));
        throw new Cut(`the connection broke (${code || (e as Error).message})`);
      }
      if (res.status !== 206 && res.status !== 200) {
        await res.body?.cancel().catch(() => undefined);
        if (res.status === 416) throw new ImageBindError('ERR_PULL_CHANGED', `${describeFile(this.file)}: the server refuses the byte range ${from}-${to} (416): the file there is not the ${this.file.size} bytes the hub listed`);
        const err = statusError(this.hub, res.status, this.file, this.url);
        throw retryable(res.status) ? new Retry(err) : err;
      }
      let pos = from;
      let end = to + 1;
      let mode: 'ranged' | 'whole' = 'ranged';
      if (res.status === 206) {
        const m = /^bytes (\d+)-(\d+)\/(\d+|\*)$/.exec(res.headers.get('content-range') ?? '');
        if (!m || Number(m[1]) !== from || Number(m[2]) !== to) throw new ImageBindError('ERR_PULL_HUB_INVALID', `${this.url}: asked for bytes ${from}-${to}, got Content-Range ${JSON.stringify(res.headers.get('content-range'))}`);
        if (m[3] !== '*' && Number(m[3]) !== this.file.size) throw new ImageBindError('ERR_PULL_CHANGED', `${describeFile(this.file)}: the server's file is ${m[3]} bytes, but the hub listed ${this.file.size}: it changed; run pull again`);
      } else {
        mode = 'whole';
        pos = 0;
        end = this.file.size;
      }
      onAnswer(mode);
      const body = res.body;
      if (!body) throw new Cut('an empty answer');
      try {
        for await (const chunk of body as unknown as AsyncIterable<Uint8Array>) {
          alive();
          const n = Math.min(chunk.length, end - pos);
          if (n > 0) {
            await this.write(n === chunk.length ? chunk : chunk.subarray(0, n), pos);
            onBytes(pos, n);
            pos += n;
            this.fetched += n;
          }
          if (pos >= end) break;
        }
      } catch (e) {
        if (e instanceof ImageBindError) throw e;
        if (this.stop.signal.aborted) throw e;
        throw new Cut(stalled ? `nothing arrived for ${this.o.stallMs / 1000} s` : `the connection broke (${(e as { cause?: Error }).cause?.message ?? (e as Error).message})`);
      }
      if (pos < end) throw new Cut(`the connection closed after ${pos - from} of ${end - from} bytes`);
      return mode;
    } finally {
      clearTimeout(timer);
      this.stop.signal.removeEventListener('abort', onStop);
    }
  }
}

/** A failure worth retrying (the error to report if the retries run out). */
class Retry extends Error {
  constructor(readonly error: ImageBindError) { super(error.message); }
}
/** A connection that ended early or stalled. */
class Cut extends Error {}

async function loadState(stateFile: string, part: string, url: string, size: number, segment: number): Promise<State | undefined> {
  try {
    const s = JSON.parse(await fs.promises.readFile(stateFile, 'utf8')) as State;
    const n = Math.max(1, Math.ceil(size / segment));
    const ok = s.version === 1 && s.size === size && s.segment === segment && Array.isArray(s.done) && s.done.length === n &&
      s.done.every((d, i) => Number.isSafeInteger(d) && d >= 0 && d <= Math.min(segment, size - i * segment));
    if (ok && fs.existsSync(part)) return { ...s, url };
  } catch {
    // no state, or a damaged one: start over
  }
  return undefined;
}

/** Streams a file through sha256 (and the git blob sha1 when one is expected). */
export async function hashFile(file: string, size: number, gitSha1: boolean, onVerify?: (done: number, total: number) => void, signal?: AbortSignal): Promise<{ sha256: string; gitSha1?: string }> {
  const h = crypto.createHash('sha256');
  const g = gitSha1 ? crypto.createHash('sha1').update(`blob ${size}\0`) : undefined;
  let done = 0;
  for await (const chunk of fs.createReadStream(file, { highWaterMark: 1 << 20, signal }) as AsyncIterable<Buffer>) {
    h.update(chunk);
    g?.update(chunk);
    done += chunk.length;
    onVerify?.(done, size);
  }
  return { sha256: h.digest('hex'), gitSha1: g?.digest('hex') };
}

/** Downloads `file` to `dest` (see the top of this file). */
export async function downloadFile(hub: Hub, file: RemoteFile, dest: string, o: DownloadOptions): Promise<DownloadResult> {
  const what = describeFile(file);
  if (o.signal?.aborted) throw new AbortError(`download of ${what} aborted`);
  await fs.promises.mkdir(o.partialDir, { recursive: true });
  const key = keyOf(file);
  const part = path.join(o.partialDir, `${key}.part`);
  const stateFile = path.join(o.partialDir, `${key}.json`);
  const url = resolveUrl(hub, file);
  const segment = Math.max(1, o.segmentBytes);
  const nSeg = Math.max(1, Math.ceil(file.size / segment));
  let state = await loadState(stateFile, part, url, file.size, segment);
  // O_TRUNC for a fresh start: whatever was at that name is not ours to resume.
  const fh = await fs.promises.open(part, state ? 'r+' : 'w+').catch((e) => {
    throw isDiskFull(e) ? diskFullError(part, what, e) : new ImageBindError('ERR_FILE_WRITE', `${part}: cannot open: ${(e as Error).message}`, { cause: e });
  });
  state ??= { version: 1, url, size: file.size, segment, done: new Array<number>(nSeg).fill(0) };
  const t = new Transfer(hub, file, url, fh, part, stateFile, state, o);
  const resumed = t.done;
  const onAbort = () => t.fail(new AbortError(`download of ${what} aborted`));
  o.signal?.addEventListener('abort', onAbort, { once: true });
  const progress = () => o.onProgress?.(t.done, file.size);
  try {
    progress();
    await fetchAll(t, progress);
    await t.save(true);
    if (t.fatal !== undefined) throw t.fatal;
  } catch (e) {
    t.fail(e);
    await t.save(true);
    await fh.close().catch(() => undefined);
    throw t.fatal;
  } finally {
    o.signal?.removeEventListener('abort', onAbort);
  }
  await fh.close();
  return verifyAndPlace(file, part, stateFile, dest, t, resumed, o);
}

/**
 * Runs the segment requests: one connection first, until the server's first answer says whether it
 * takes ranges (206: the other connections join) or not (200: the whole file comes on that one).
 */
async function fetchAll(t: Transfer, progress: () => void): Promise<void> {
  const { state, o } = t;
  const incomplete = () => state.done.map((_, i) => i).filter((i) => state.done[i]! < t.segLen(i));
  const queue = incomplete();
  if (queue.length === 0) return;
  let whole = false;
  let answered!: (ranged: boolean) => void;
  const ranges = new Promise<boolean>((r) => { answered = r; });
  const onBytes = (pos: number, n: number) => {
    // Bytes at pos: the segments they fall in are done up to there (a whole-file stream fills them in order).
    for (let i = Math.floor(pos / state.segment); n > 0; i++) {
      const take = Math.min(n, t.segStart(i) + t.segLen(i) - pos);
      state.done[i] = pos + take - t.segStart(i);
      pos += take;
      n -= take;
    }
    progress();
    void t.save();
  };
  /** Fetches what segment i lacks, retrying; 'whole' when the server sent the whole file instead. */
  const fetchSegment = async (i: number): Promise<'ranged' | 'whole'> => {
    let failures = 0;
    for (;;) {
      if (whole) i = incomplete()[0] ?? i; // one stream from the start: resume where it broke
      const from = t.segStart(i) + state.done[i]!;
      const to = t.segStart(i) + t.segLen(i) - 1;
      if (from > to || t.stop.signal.aborted) return 'ranged';
      const before = t.done;
      try {
        return await t.request(from, to, (mode) => { whole = mode === 'whole'; answered(!whole); }, onBytes);
      } catch (e) {
        if (!(e instanceof Retry) && !(e instanceof Cut)) throw e;
        failures = t.done > before ? 1 : failures + 1;
        if (failures > o.retries) {
          throw e instanceof Retry ? e.error : new ImageBindError('ERR_PULL_CONNECTION',
            `${describeFile(t.file)}: ${e.message}${failures > 1 ? ` (${failures} times in a row)` : ''}; ${t.done} of ${t.file.size} bytes are kept: run pull again to continue`);
        }
        await sleep(Math.min(o.retryDelayMs * 2 ** (failures - 1), 30_000), t.stop.signal);
      }
    }
  };
  const drain = async (): Promise<void> => {
    for (let i = queue.shift(); i !== undefined && !t.stop.signal.aborted; i = queue.shift()) await fetchSegment(i);
  };
  const first = async (): Promise<void> => {
    try {
      await fetchSegment(queue.shift()!);
    } finally {
      answered(false); // no-op once answered; else the others stop waiting
    }
    if (whole) queue.splice(0, queue.length, ...incomplete());
    await drain();
  };
  const others = Array.from({ length: Math.min(o.connections, queue.length) - 1 }, async () => {
    if (await ranges) await drain();
  });
  await Promise.all([first(), ...others].map((p) => p.catch((e) => t.fail(e))));
}

async function verifyAndPlace(file: RemoteFile, part: string, stateFile: string, dest: string, t: Transfer, resumed: number, o: DownloadOptions): Promise<DownloadResult> {
  const what = describeFile(file);
  const size = (await fs.promises.stat(part)).size;
  const remove = async () => { await fs.promises.rm(part, { force: true }); await fs.promises.rm(stateFile, { force: true }); };
  if (size !== file.size) {
    await remove();
    throw new ImageBindError('ERR_PULL_CHECKSUM', `${what}: the download is ${size} bytes, the hub says ${file.size}; it was removed: run pull again`);
  }
  const got = await hashFile(part, size, !!file.gitSha1 && !file.sha256, o.onVerify, o.signal);
  const want = file.sha256 ?? file.gitSha1!;
  const have = file.sha256 ? got.sha256 : got.gitSha1!;
  if (have !== want) {
    await remove();
    throw new ImageBindError('ERR_PULL_CHECKSUM', `${what}: the download's ${file.sha256 ? 'sha256' : 'git sha1'} is ${have}, but the hub says ${want}; the file was removed: run pull again to fetch it anew`);
  }
  await fs.promises.mkdir(path.dirname(dest), { recursive: true });
  await fs.promises.rename(part, dest);
  await fs.promises.rm(stateFile, { force: true });
  return { path: dest, sha256: got.sha256, gitSha1: got.gitSha1, fetched: t.fetched, resumed };
}
