// Finds an ffmpeg that runs, in this order:
//   1. the FFMPEG_PATH environment variable (if set, it must work: a broken override is an error);
//   2. the optional dependency `ffmpeg-static` (its binary is downloaded at install time, which fails
//      offline, so it may be absent);
//   3. the optional dependency `@ffmpeg-installer/ffmpeg` (its binary ships inside the npm package);
//   4. `ffmpeg` on the PATH.
import { execFile } from 'node:child_process';
import { ImageBindError } from './errors';

export type FfmpegSource = 'FFMPEG_PATH' | 'ffmpeg-static' | '@ffmpeg-installer/ffmpeg' | 'PATH';

export interface FfmpegInfo {
  path: string;
  source: FfmpegSource;
  /** The version word of `ffmpeg -version`'s first line, e.g. "4.1" or "n7.1". */
  version: string;
}

export interface FindFfmpegOptions {
  env?: NodeJS.ProcessEnv;
  /** Override how the npm packages are resolved (tests); return null when not installed. */
  resolveFfmpegStatic?: () => string | null;
  resolveFfmpegInstaller?: () => string | null;
  /** Ignore the cached result. */
  fresh?: boolean;
}

function requireOptional(resolve: () => string | null | undefined): string | null {
  try {
    return resolve() ?? null;
  } catch {
    return null;
  }
}

const defaultStatic = () => requireOptional(() => {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const p = require('ffmpeg-static') as string | null | { default?: string };
  return typeof p === 'string' ? p : p?.default ?? null;
});

const defaultInstaller = () => requireOptional(() => {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  return (require('@ffmpeg-installer/ffmpeg') as { path?: string }).path ?? null;
});

/** Runs `<bin> -version`; resolves to the version word, rejects with the reason it does not run. */
export function probeFfmpeg(bin: string, env: NodeJS.ProcessEnv = process.env): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(bin, ['-hide_banner', '-version'], { timeout: 15000, env, windowsHide: true }, (err, stdout) => {
      if (err) {
        const e = err as NodeJS.ErrnoException;
        reject(new Error(e.code === 'ENOENT' ? 'not found' : e.code === 'EACCES' ? 'not executable' : e.message.split('\n')[0]));
        return;
      }
      const m = /^ffmpeg version (\S+)/m.exec(stdout);
      if (!m) reject(new Error('it ran, but did not print "ffmpeg version ..."'));
      else resolve(m[1]!);
    });
  });
}

let cachedInfo: Promise<FfmpegInfo> | null = null;

/** Finds a working ffmpeg (cached after the first success). */
export function findFfmpeg(options: FindFfmpegOptions = {}): Promise<FfmpegInfo> {
  const custom = options.env || options.resolveFfmpegStatic || options.resolveFfmpegInstaller;
  if (!custom && !options.fresh && cachedInfo) return cachedInfo;
  const p = search(options);
  if (!custom) {
    cachedInfo = p;
    p.catch(() => { if (cachedInfo === p) cachedInfo = null; });
  }
  return p;
}

async function search(options: FindFfmpegOptions): Promise<FfmpegInfo> {
  const env = options.env ?? process.env;
  const tried: string[] = [];

  const override = env.FFMPEG_PATH;
  if (override) {
    try {
      return { path: override, source: 'FFMPEG_PATH', version: await probeFfmpeg(override, env) };
    } catch (e) {
      throw new ImageBindError('ERR_FFMPEG_NOT_FOUND',
        `FFMPEG_PATH is set to ${override}, but that ffmpeg does not run: ${(e as Error).message}`);
    }
  }
  tried.push('FFMPEG_PATH: not set');

  const candidates: Array<[FfmpegSource, string | null]> = [
    ['ffmpeg-static', (options.resolveFfmpegStatic ?? defaultStatic)()],
    ['@ffmpeg-installer/ffmpeg', (options.resolveFfmpegInstaller ?? defaultInstaller)()],
  ];
  for (const [source, bin] of candidates) {
    if (!bin) {
      tried.push(`${source}: not installed`);
      continue;
    }
    try {
      return { path: bin, source, version: await probeFfmpeg(bin, env) };
    } catch (e) {
      tried.push(`${source}: ${bin}: ${(e as Error).message}`);
    }
  }

  const onPath = process.platform === 'win32' ? 'ffmpeg.exe' : 'ffmpeg';
  try {
    return { path: onPath, source: 'PATH', version: await probeFfmpeg(onPath, env) };
  } catch (e) {
    tried.push(`PATH: ${(e as Error).message}`);
  }
  throw new ImageBindError('ERR_FFMPEG_NOT_FOUND',
    `ffmpeg is needed to decode audio and video, but none runs here. Tried:\n  ${tried.join('\n  ')}\n` +
    'Install ffmpeg, or set FFMPEG_PATH to an ffmpeg executable.');
}
