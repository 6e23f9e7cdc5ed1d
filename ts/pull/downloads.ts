// The downloads folder of a model folder (`<models>/downloads`): finished downloads under readable
// names (`<repo owner>--<repo name>/<path in the repo>`), partial ones under `.partial/` (see
// download.ts), and a record of what was checked, so a kept download is not hashed again on every run
// but is never used without its size and sha256 matching the hub's.
import fs from 'node:fs';
import path from 'node:path';
import { ImageBindError } from '../errors';
import { downloadFile, DownloadOptions, DownloadResult, hashFile } from './download';
import type { Hub, RemoteFile } from './hub';

interface Checked {
  sha256: string;
  gitSha1?: string;
  size: number;
  mtimeMs: number;
}

export class Downloads {
  readonly dir: string;
  readonly partialDir: string;
  readonly #recordFile: string;

  constructor(modelsDir: string) {
    this.dir = path.join(modelsDir, 'downloads');
    this.partialDir = path.join(this.dir, '.partial');
    this.#recordFile = path.join(this.dir, 'checked.json');
  }

  /** Where a released file is kept. */
  pathOf(f: RemoteFile): string {
    return path.join(this.dir, f.repo.replace('/', '--'), ...f.path.split('/'));
  }

  #record(): Record<string, Checked> {
    try {
      const r = JSON.parse(fs.readFileSync(this.#recordFile, 'utf8')) as Record<string, Checked>;
      return r && typeof r === 'object' ? r : {};
    } catch {
      return {};
    }
  }

  #remember(file: string, c: Checked): void {
    const r = this.#record();
    r[path.relative(this.dir, file)] = c;
    const tmp = `${this.#recordFile}.tmp`;
    fs.writeFileSync(tmp, JSON.stringify(r, null, 1));
    fs.renameSync(tmp, this.#recordFile);
  }

  /** Bytes still to fetch for `f` (0 when a checked copy is kept; less when a partial one waits). */
  missingBytes(f: RemoteFile, segmentBytes: number): number {
    if (fs.existsSync(this.pathOf(f))) return 0;
    try {
      const key = f.sha256 ?? `git-${f.gitSha1}`;
      const s = JSON.parse(fs.readFileSync(path.join(this.partialDir, `${key}.json`), 'utf8')) as { segment: number; done: number[] };
      if (s.segment === segmentBytes && Array.isArray(s.done)) return Math.max(0, f.size - s.done.reduce((a, b) => a + (Number(b) || 0), 0));
    } catch {
      // no partial download
    }
    return f.size;
  }

  /**
   * The file, downloaded or kept: a kept copy is used only when its size matches and its sha256 was
   * checked (now, or before with the same size and modification time); one that does not match is removed.
   */
  async get(hub: Hub, f: RemoteFile, o: DownloadOptions): Promise<DownloadResult & { kept: boolean }> {
    const dest = this.pathOf(f);
    const st = fs.statSync(dest, { throwIfNoEntry: false });
    if (st) {
      const rec = this.#record()[path.relative(this.dir, dest)];
      let c: Checked | undefined = rec && rec.size === st.size && rec.mtimeMs === st.mtimeMs ? rec : undefined;
      if (!c && st.size === f.size) {
        const h = await hashFile(dest, st.size, !f.sha256, o.onVerify, o.signal);
        c = { sha256: h.sha256, gitSha1: h.gitSha1, size: st.size, mtimeMs: st.mtimeMs };
      }
      if (c && c.size === f.size && (f.sha256 ? c.sha256 === f.sha256 : c.gitSha1 === f.gitSha1)) {
        this.#remember(dest, c);
        return { path: dest, sha256: c.sha256, fetched: 0, resumed: st.size, kept: true };
      }
      fs.rmSync(dest, { force: true });
    }
    const res = await downloadFile(hub, f, dest, { ...o, partialDir: this.partialDir });
    const now = fs.statSync(dest);
    this.#remember(dest, { sha256: res.sha256, gitSha1: res.gitSha1, size: now.size, mtimeMs: now.mtimeMs });
    return { ...res, kept: false };
  }

  /** Removes kept downloads (all, or the given files) and empty folders left behind. */
  remove(files?: string[]): void {
    if (!files) {
      fs.rmSync(this.dir, { recursive: true, force: true });
      return;
    }
    const r = this.#record();
    for (const f of files) {
      fs.rmSync(f, { force: true });
      delete r[path.relative(this.dir, f)];
      for (let d = path.dirname(f); d.startsWith(this.dir + path.sep); d = path.dirname(d)) {
        try { fs.rmdirSync(d); } catch { break; }
      }
    }
    if (fs.existsSync(this.dir)) fs.writeFileSync(this.#recordFile, JSON.stringify(r, null, 1));
  }
}

/** Free bytes for this process in the file system of `dir`. */
export function freeBytes(dir: string): number {
  const s = fs.statfsSync(dir);
  return s.bavail * s.bsize;
}

const GB = (n: number) => `${(n / 1e9).toFixed(n < 1e9 ? 3 : 1)} GB`;

/** Fails before any work when `dir`'s file system has less than `need` bytes free. */
export function checkFreeSpace(dir: string, need: number, what: string): void {
  const free = freeBytes(dir);
  if (free < need) {
    throw new ImageBindError('ERR_DISK_FULL', `${dir}: ${what} needs about ${GB(need)} free, but the disk has ${GB(free)}: free some space, or choose another folder with --models (IMAGEBIND_LLM_MODELS)`);
  }
}
