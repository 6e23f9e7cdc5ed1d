// Walks the folders and files given to `index`: every regular file below them, once.
//
// Symbolic links are followed (a photo library often links folders in), but a folder is entered only
// once, by its (device, inode) identity, so a link back to an ancestor cannot loop; a file reached by
// two routes is listed once.  A folder that cannot be read is reported and skipped.
import fs from 'node:fs/promises';
import path from 'node:path';
import { AbortError, ImageBindError } from '../errors';

export interface WalkedFile {
  /** Absolute, as reached (links are not resolved, so a rename shows up as a rename). */
  path: string;
  size: number;
  /** Modification time in whole microseconds since the epoch. */
  mtimeUs: number;
}

export interface WalkOptions {
  signal?: AbortSignal;
  /** A folder or file that could not be read (the walk goes on). */
  onProblem?: (file: string, message: string) => void;
}

type Stat = import('node:fs').BigIntStats;

function identity(st: Stat): string {
  return `${st.dev}:${st.ino}`;
}

function toFile(p: string, st: Stat): WalkedFile {
  return { path: p, size: Number(st.size), mtimeUs: Number(st.mtimeNs / 1000n) };
}

/** Every regular file under the roots, sorted within each folder; roots must exist. */
export async function walk(roots: string[], options: WalkOptions = {}): Promise<WalkedFile[]> {
  const out: WalkedFile[] = [];
  const seen = new Set<string>();
  const problem = options.onProblem ?? (() => {});
  for (const r of roots) {
    const root = path.resolve(r);
    let st: Stat;
    try {
      st = await fs.stat(root, { bigint: true });
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      throw new ImageBindError(code === 'ENOENT' ? 'ERR_FILE_NOT_FOUND' : 'ERR_FILE_READ', `${root}: ${code === 'ENOENT' ? 'no such file or folder' : (e as Error).message}`);
    }
    await visit(root, st);
  }
  return out;

  async function visit(p: string, st: Stat): Promise<void> {
    if (options.signal?.aborted) throw new AbortError('indexing aborted', { cause: options.signal.reason });
    const id = identity(st);
    if (seen.has(id)) return;
    seen.add(id);
    if (st.isFile()) {
      out.push(toFile(p, st));
      return;
    }
    if (!st.isDirectory()) return;  // sockets, devices, FIFOs
    let names: string[];
    try {
      names = (await fs.readdir(p)).sort();
    } catch (e) {
      problem(p, `cannot read the folder: ${(e as Error).message}`);
      return;
    }
    for (const name of names) {
      const child = path.join(p, name);
      let cst: Stat;
      try {
        cst = await fs.stat(child, { bigint: true });  // follows links; a dangling one fails here
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code;
        if (code === 'ENOENT') continue;  // removed while walking, or a dangling link: nothing to index
        problem(child, (e as Error).message);
        continue;
      }
      await visit(child, cst);
    }
  }
}
