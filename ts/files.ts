// Reading the files users name: only regular files (a FIFO would block the read forever, /dev/zero
// or /proc files never end), and never more than a bound that fits what the file can be.
import fs from 'node:fs';
import { AbortError, ImageBindError } from './errors';

/** Bounds on what is read into memory, per kind of file. */
export const READ_LIMITS = {
  /** An input file read whole: an image, a .npy array, a point cloud, a WAV. */
  input: 2 * 1024 ** 3,
  /** A JSON file of settings (params.json, an ImageBind config). */
  json: 16 * 1024 ** 2,
  /** A SentencePiece tokenizer.model. */
  tokenizer: 256 * 1024 ** 2,
} as const;

function kindOf(st: fs.Stats): string {
  if (st.isDirectory()) return 'a folder';
  if (st.isFIFO()) return 'a FIFO';
  if (st.isSocket()) return 'a socket';
  if (st.isCharacterDevice() || st.isBlockDevice()) return 'a device';
  return 'not a regular file';
}

function notFound(p: string, e: NodeJS.ErrnoException): ImageBindError {
  if (e.code === 'ENOENT' || e.code === 'ENOTDIR') return new ImageBindError('ERR_FILE_NOT_FOUND', `${p}: file not found`);
  return new ImageBindError('ERR_FILE_READ', `${p}: ${e.message}`);
}

/** The file's stats, when it is a regular file; else an error naming what it is. */
export async function statRegular(p: string): Promise<fs.Stats> {
  let st: fs.Stats;
  try {
    st = await fs.promises.stat(p);
  } catch (e) {
    throw notFound(p, e as NodeJS.ErrnoException);
  }
  if (!st.isFile()) throw new ImageBindError('ERR_FILE_READ', `${p}: is ${kindOf(st)}, expected a file`);
  return st;
}

export function statRegularSync(p: string): fs.Stats {
  let st: fs.Stats;
  try {
    st = fs.statSync(p);
  } catch (e) {
    throw notFound(p, e as NodeJS.ErrnoException);
  }
  if (!st.isFile()) throw new ImageBindError('ERR_FILE_READ', `${p}: is ${kindOf(st)}, expected a file`);
  return st;
}

function tooLarge(p: string, size: number, limit: number, what: string): ImageBindError {
  return new ImageBindError('ERR_FILE_TOO_LARGE', `${p}: ${size} bytes is more than ${limit} bytes, the most read for ${what}`);
}

/** Refuses an existing path that is not a regular file (before an open that would block on a FIFO);
 *  a missing one is left to the caller's open, which reports it its own way. */
export async function refuseSpecial(p: string): Promise<void> {
  const st = await fs.promises.stat(p).catch(() => null);
  if (st && !st.isFile()) throw new ImageBindError('ERR_FILE_READ', `${p}: is ${kindOf(st)}, expected a file`);
}

/** Reads a regular file whole, refusing one larger than `limit`. */
export async function readRegular(p: string, limit: number, what: string, signal?: AbortSignal): Promise<Buffer> {
  const st = await statRegular(p);
  if (st.size > limit) throw tooLarge(p, st.size, limit, what);
  try {
    const buf = await fs.promises.readFile(p, { signal });
    // The file may have grown between stat and read (/proc files report size 0).
    if (buf.length > limit) throw tooLarge(p, buf.length, limit, what);
    return buf;
  } catch (e) {
    if ((e as Error).name === 'AbortError') throw new AbortError();
    if (e instanceof ImageBindError) throw e;
    throw notFound(p, e as NodeJS.ErrnoException);
  }
}

export function readRegularSync(p: string, limit: number, what: string): Buffer {
  const st = statRegularSync(p);
  if (st.size > limit) throw tooLarge(p, st.size, limit, what);
  const buf = fs.readFileSync(p);
  if (buf.length > limit) throw tooLarge(p, buf.length, limit, what);
  return buf;
}
