// Where converters write: every output goes to a temporary file of its own (a unique name in the same
// folder, never a name a user could own, like `<out>.partial`), and the outputs replace their targets
// together, only when all are complete. A failed, aborted or interrupted conversion removes its
// temporary files and leaves the user's existing files exactly as they were. (A crash between the
// renames of a set can still leave one file new: sets that must match carry a shared id, checked when
// they are loaded.)
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { ImageBindError } from '../errors';

// Temporary files of the conversions running in this process, removed if the process exits first
// (a second Ctrl-C, process.exit()).
const live = new Set<string>();
let exitHook = false;

function removeLiveOnExit(): void {
  if (exitHook) return;
  exitHook = true;
  process.once('exit', () => {
    for (const f of live) fs.rmSync(f, { force: true });
  });
}

export class OutputFiles {
  readonly #temps = new Map<string, string>();
  #done = false;

  private constructor(finals: string[]) {
    for (const f of finals) {
      const abs = path.resolve(f);
      const tmp = path.join(path.dirname(abs), `.${path.basename(abs)}.${process.pid}-${crypto.randomBytes(6).toString('hex')}.tmp`);
      this.#temps.set(abs, tmp);
      live.add(tmp);
    }
    removeLiveOnExit();
  }

  /** Checks that each target can be written (its folder exists, it is not a folder) before any work. */
  static prepare(finals: string[]): OutputFiles {
    const seen = new Set<string>();
    for (const f of finals) {
      const abs = path.resolve(f);
      if (seen.has(abs)) throw new ImageBindError('ERR_INVALID_ARG', `${f}: the same output file twice`);
      seen.add(abs);
      const dir = path.dirname(abs);
      let st: fs.Stats | undefined;
      try {
        st = fs.statSync(dir);
      } catch {
        throw new ImageBindError('ERR_FILE_WRITE', `${f}: the folder ${dir} does not exist`);
      }
      if (!st.isDirectory()) throw new ImageBindError('ERR_FILE_WRITE', `${f}: ${dir} is not a folder`);
      if (fs.existsSync(abs) && fs.statSync(abs).isDirectory()) throw new ImageBindError('ERR_FILE_WRITE', `${f}: is a folder`);
    }
    return new OutputFiles(finals);
  }

  /** The temporary file to write instead of `final`. */
  temp(final: string): string {
    const t = this.#temps.get(path.resolve(final));
    if (!t) throw new ImageBindError('ERR_INVALID_STATE', `${final} is not an output of this conversion`);
    return t;
  }

  /** Puts every output in place (back-to-back renames over the targets). */
  commit(): void {
    if (this.#done) return;
    for (const [, tmp] of this.#temps) {
      if (!fs.existsSync(tmp)) throw new ImageBindError('ERR_INVALID_STATE', `${tmp} was not written`);
    }
    for (const [final, tmp] of this.#temps) {
      try {
        fs.renameSync(tmp, final);
      } catch (e) {
        throw new ImageBindError('ERR_FILE_WRITE', `${final}: cannot put the new file in place: ${(e as Error).message}`);
      }
      live.delete(tmp);
    }
    this.#done = true;
  }

  /** Removes the temporary files (after a failure); the targets are untouched. */
  discard(): void {
    for (const [, tmp] of this.#temps) {
      fs.rmSync(tmp, { force: true });
      live.delete(tmp);
    }
    this.#done = true;
  }

  /** Runs `fn` with the temporary names; commits when it succeeds, discards when it throws. */
  static async write<T>(finals: string[], fn: (out: OutputFiles) => Promise<T>): Promise<T> {
    const out = OutputFiles.prepare(finals);
    try {
      const r = await fn(out);
      out.commit();
      return r;
    } catch (e) {
      out.discard();
      throw e;
    }
  }
}

/** Writes one tensor; a NaN/Inf refused by the native writer is reported against the source file. */
export async function writeTensorFrom(source: string, writer: { writeTensor(name: string, data: Float32Array | Uint8Array): Promise<void> },
  name: string, data: Float32Array | Uint8Array): Promise<void> {
  try {
    await writer.writeTensor(name, data);
  } catch (e) {
    if ((e as { code?: string }).code === 'ERR_NON_FINITE') throw new ImageBindError('ERR_NON_FINITE', `${source}: ${(e as Error).message}: the weights are corrupt`);
    throw e;
  }
}

/** A random id that files converted together carry, so that a loader can tell a mixed pair. */
export function conversionId(): string {
  return crypto.randomUUID();
}
