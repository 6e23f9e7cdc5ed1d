// One pull at a time per model folder. The lock is a file created exclusively (O_EXCL) that holds the
// owner's pid and host. A lock whose process is gone (Ctrl-C twice, a crash, a kill) is taken over at
// once on the same host, so the next run continues a download without waiting; mtime-based locks
// (proper-lockfile) would make it wait out a staleness period after every crash.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ImageBindError } from '../errors';

interface Owner {
  pid: number;
  host: string;
  started: string;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM'; // exists, owned by someone else
  }
}

function readOwner(file: string): Owner | undefined {
  try {
    const o = JSON.parse(fs.readFileSync(file, 'utf8')) as Owner;
    return Number.isSafeInteger(o.pid) && typeof o.host === 'string' ? o : undefined;
  } catch {
    return undefined;
  }
}

/** Takes `<dir>/.pull.lock`; returns the function that releases it. */
export function lockFolder(dir: string): () => void {
  const file = path.join(dir, '.pull.lock');
  const me: Owner = { pid: process.pid, host: os.hostname(), started: new Date().toISOString() };
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      fs.writeFileSync(file, JSON.stringify(me), { flag: 'wx' });
      let released = false;
      const release = () => {
        if (released) return;
        released = true;
        process.removeListener('exit', release);
        if (readOwner(file)?.pid === me.pid) fs.rmSync(file, { force: true });
      };
      process.on('exit', release);
      return release;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw new ImageBindError('ERR_FILE_WRITE', `${file}: cannot create the folder's lock: ${(e as Error).message}`);
    }
    const owner = readOwner(file);
    const stale = owner ? owner.host === me.host && !alive(owner.pid) : fs.statSync(file, { throwIfNoEntry: false }) !== undefined && Date.now() - fs.statSync(file).mtimeMs > 60_000;
    if (!stale) break;
    fs.rmSync(file, { force: true }); // its pull is gone: take over
  }
  const owner = readOwner(file);
  throw new ImageBindError('ERR_PULL_BUSY', `${dir}: another pull is filling this folder${owner ? ` (process ${owner.pid} on ${owner.host}, since ${owner.started})` : ''}; wait for it to finish (or, if none runs, remove ${file})`);
}
